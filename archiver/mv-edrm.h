/* mv-edrm: writing an EDRM XML 1.2 load file, the description of a case
 * bundle that e-discovery platforms import, as it is streamed:
 *
 *   Root (MajorVersion 1, MinorVersion 2)
 *     Batch
 *       Documents / Document (DocID, DocType, MimeType)
 *         Tags / Tag (TagName, TagDataType, TagValue)
 *         Files / File (FileType) / ExternalFile (FilePath, FileName,
 *                                                 FileSize, Hash, HashType)
 *       Relationships / Relationship (Type, ParentDocId, ChildDocId)
 *
 * schema/edrm-1.2.xsd describes exactly this; it is compiled in
 * (mv_edrm_xsd) so that every bundle carries it.  Documents are written one
 * at a time (xmlTextWriter, to a file); relationships are spooled to a
 * temporary file and written at the end, so memory does not grow with the
 * number of documents.
 *
 * Ownership: the writer from mv_edrm_open is finished by mv_edrm_close or
 * dropped by mv_edrm_abort (both set it to NULL and accept NULL).  The
 * strings of mv_edrm_document are borrowed for the call. */
#ifndef MV_EDRM_H
#define MV_EDRM_H

#include <glib.h>

#include "mv-status.h"

extern const char mv_edrm_xsd[];
extern const size_t mv_edrm_xsd_len;

typedef struct {
	const char *name;   /* "#From", "#Subject", "RegistrationNumber", ... */
	const char *type;   /* "Text", "DateTime", "Integer", "Boolean" */
	const char *value;  /* any UTF-8 (cleaned for XML); NULL: tag left out */
} mv_edrm_tag;

typedef struct {
	const char *file_type; /* "Native", "Text" */
	const char *path;      /* folder in the bundle, '/'-separated */
	const char *name;      /* file name in that folder */
	gint64 size;
	const char *sha256;    /* hex */
} mv_edrm_file;

typedef struct {
	const char *doc_id;      /* unique in the load file */
	const char *doc_type;    /* "Message", "File" */
	const char *mime_type;   /* or NULL */
	const char *parent_id;   /* for an attachment: its message's DocID; else NULL */
	const mv_edrm_tag *tags;
	guint n_tags;
	const mv_edrm_file *files;
	guint n_files;
} mv_edrm_document;

typedef struct mv_edrm_writer mv_edrm_writer;

mv_status mv_edrm_open(const char *path, const char *description, mv_edrm_writer **writer_r,
                       char **error_r) MV_WARN_UNUSED;
mv_status mv_edrm_write(mv_edrm_writer *w, const mv_edrm_document *doc, char **error_r)
	MV_WARN_UNUSED;
/* Bytes written so far (an estimate of the file's size). */
guint64 mv_edrm_bytes(const mv_edrm_writer *w);
mv_status mv_edrm_close(mv_edrm_writer **w, char **error_r) MV_WARN_UNUSED;
void mv_edrm_abort(mv_edrm_writer **w);

/* s as text XML 1.0 can carry: valid UTF-8, without NUL, other control
 * characters than tab, LF and CR, or U+FFFE/U+FFFF (each becomes U+FFFD).
 * NULL for NULL; otherwise a new string (g_free). */
char *mv_xml_clean(const char *s);

#endif

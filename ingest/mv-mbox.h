/* mv-mbox: reading messages out of an mbox file (mboxrd or mboxo).
 *
 * A message starts at a line beginning "From " that is the first line of
 * the file or follows an empty line; the From_ line itself is not part of
 * the message, and the one empty line before the next From_ line is the
 * separator, not message content.  Quoted From lines are unescaped per the
 * variant: mboxrd removes one '>' from /^>+From /, mboxo from /^>From /.
 *
 * SECURITY: reads untrusted files; a message over max_bytes is skipped
 * (reported as MV_ERR_LIMIT for that message) without holding it in memory.
 *
 * Ownership: mv_mbox_open returns a reader freed by mv_mbox_close;
 * mv_mbox_next returns a new GBytes (g_bytes_unref) and envelope sender
 * (g_free). */
#ifndef MV_MBOX_H
#define MV_MBOX_H

#include <glib.h>
#include <stdio.h>

#include "mv-status.h"

typedef enum { MV_MBOXRD, MV_MBOXO } mv_mbox_variant;

typedef struct mv_mbox_reader mv_mbox_reader;

/* Does this data start like an mbox (a "From " line)? */
gboolean mv_mbox_looks_like(const char *head, gsize len);

mv_status mv_mbox_open(const char *path, mv_mbox_variant variant, mv_mbox_reader **reader_r,
                       char **error_r) MV_WARN_UNUSED;

/* Read an mbox from a stream already open (an archive member): name is
 * for messages; mv_mbox_close closes f.  Offsets (mv_mbox_offset) are
 * ftello's, mv_mbox_seek needs a seekable stream. */
mv_mbox_reader *mv_mbox_open_stream(FILE *f, const char *name, mv_mbox_variant variant);

/* Next message: *msg_r is NULL at the end of the file.  *index_r is its
 * 1-based position in the file.  MV_ERR_LIMIT: the message was larger than
 * max_bytes and was skipped (call again for the next one); MV_ERR_IO: the
 * file cannot be read (stop). */
mv_status mv_mbox_next(mv_mbox_reader *reader, gsize max_bytes, GBytes **msg_r,
                       char **envelope_from_r, gint64 *index_r, char **error_r) MV_WARN_UNUSED;

/* The byte offset where the message mv_mbox_next returned last ends (its
 * successor's From_ line, or the end of the file): where a resumed import
 * starts (mv_mbox_seek). */
gint64 mv_mbox_offset(const mv_mbox_reader *reader);

/* Continue reading at offset (a From_ line, as mv_mbox_offset gave it),
 * the next message numbered index + 1. */
mv_status mv_mbox_seek(mv_mbox_reader *reader, gint64 offset, gint64 index, char **error_r)
	MV_WARN_UNUSED;

void mv_mbox_close(mv_mbox_reader **reader);

#endif

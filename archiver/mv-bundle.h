/* mv-bundle: the container of a case bundle, and checking one.
 *
 * A bundle is a set of files with relative, '/'-separated names whose
 * components are safe names (mv-safename.h), written as a directory, a zip
 * or a (POSIX pax) tar file.  Every file added is hashed as it is written;
 * closing the bundle adds SHA256SUMS, one line per file in the order added,
 * in sha256sum's format ("HEX  NAME"), so `sha256sum -c SHA256SUMS` run in
 * the unpacked bundle checks it.  Files are written as they come (zip and
 * tar through libarchive, streaming): nothing but the list of names and
 * hashes (kept in a temporary file) is held back.
 *
 * A zip or tar bundle holds its files in one top-level folder (FOLDER/NAME;
 * SHA256SUMS names them relative to it), so that unpacking it makes one
 * folder; a directory bundle is that folder itself.
 *
 * With a signer (mv_bundle_writer_set_signer), closing also adds
 * SHA256SUMS.asc, a detached signature of SHA256SUMS: the one file that
 * SHA256SUMS cannot list.
 *
 * mv_bundle_verify reads a directory, zip or tar bundle and checks, in this
 * order: SHA256SUMS exists (at the top, or in the one top-level folder
 * that holds everything) and the signature over it, when there is one,
 * checks out (the caller's check_signature); every line is well-formed
 * with a safe name; every file it lists exists with that SHA-256; no file
 * is unlisted (apart from SHA256SUMS and SHA256SUMS.asc); then the
 * caller's extra checks (see mv_bundle_checks).
 *
 * Ownership: a writer from mv_bundle_writer_open is finished by
 * mv_bundle_writer_close or thrown away by mv_bundle_writer_abort (both set
 * it to NULL and accept NULL). */
#ifndef MV_BUNDLE_H
#define MV_BUNDLE_H

#include <glib.h>

#include "mv-hash.h"
#include "mv-status.h"

typedef enum { MV_BUNDLE_DIR, MV_BUNDLE_ZIP, MV_BUNDLE_TAR } mv_bundle_format;

#define MV_BUNDLE_FOLDER_MAX 100 /* bytes of a top-level folder's name (a safe name) */

#define MV_BUNDLE_SUMS "SHA256SUMS"
#define MV_BUNDLE_SIG "SHA256SUMS.asc"
#define MV_BUNDLE_SIG_MAX (1024 * 1024) /* bytes a signature file may have */

/* "dir", "zip", "tar" <-> format; FALSE for anything else. */
gboolean mv_bundle_format_parse(const char *name, mv_bundle_format *format_r);
const char *mv_bundle_format_name(mv_bundle_format format);

typedef struct mv_bundle_writer mv_bundle_writer;

/* Create path (which must not exist: MV_ERR_USAGE).  mtime (seconds since
 * the epoch) is every entry's modification time in zip and tar.  folder
 * (a safe name; zip and tar only, NULL for none) is the top-level folder
 * every entry of a zip or tar is written under. */
mv_status mv_bundle_writer_open(const char *path, mv_bundle_format format, gint64 mtime,
                                const char *folder, mv_bundle_writer **writer_r,
                                char **error_r) MV_WARN_UNUSED;

/* Signs SHA256SUMS: the bytes readable from sums_fd (from its start) ->
 * *sig_r, an ASCII-armoured detached signature. */
typedef mv_status (*mv_bundle_sign_fn)(void *context, int sums_fd, GBytes **sig_r,
                                       char **error_r);

/* Closing will add SHA256SUMS.asc, made by sign. */
void mv_bundle_writer_set_signer(mv_bundle_writer *w, mv_bundle_sign_fn sign, void *context);

/* Add a file named name (every component safe: MV_ERR_INTERNAL otherwise)
 * holding data[0..len).  sha_hex_r (may be NULL) receives its SHA-256. */
mv_status mv_bundle_add(mv_bundle_writer *w, const char *name, const void *data, gsize len,
                        char sha_hex_r[MV_SHA256_HEX_LEN + 1], char **error_r) MV_WARN_UNUSED;

/* Add a file whose content is the file at src_path (read in chunks). */
mv_status mv_bundle_add_file(mv_bundle_writer *w, const char *name, const char *src_path,
                             gint64 *size_r, char sha_hex_r[MV_SHA256_HEX_LEN + 1],
                             char **error_r) MV_WARN_UNUSED;

/* Bytes of file content and number of files added so far. */
guint64 mv_bundle_content_bytes(const mv_bundle_writer *w);
guint64 mv_bundle_file_count(const mv_bundle_writer *w);

/* Add SHA256SUMS (and, with a signer, SHA256SUMS.asc) and finish the
 * container.  sums_hex_r receives the SHA-256 of SHA256SUMS.  The writer
 * is freed whatever the outcome. */
mv_status mv_bundle_writer_close(mv_bundle_writer **w, char sums_hex_r[MV_SHA256_HEX_LEN + 1],
                                 char **error_r) MV_WARN_UNUSED;

/* Stop writing; what was written stays (the caller reports it). */
void mv_bundle_writer_abort(mv_bundle_writer **w);

/* What mv_bundle_verify found. */
typedef struct {
	mv_bundle_format format;
	gint64 files;             /* files listed in SHA256SUMS, all checked */
	guint64 bytes;            /* their total size */
	char sums_sha256[MV_SHA256_HEX_LEN + 1]; /* of SHA256SUMS */
	char folder[MV_BUNDLE_FOLDER_MAX + 1];   /* the top-level folder, or "" (flat) */
	gboolean is_signed;       /* SHA256SUMS.asc is there (and was checked) */
} mv_bundle_report;

/* A check run on each file after its hash matched: name, its content
 * (only for names the function asked for with want_content; NULL
 * otherwise), and size.  Return MV_OK or MV_ERR_INTEGRITY with *error_r
 * naming the discrepancy. */
typedef struct {
	/* Should the content of this file be kept for check_file? (Small
	 * metadata files only.) */
	gboolean (*want_content)(void *context, const char *name);
	mv_status (*check_file)(void *context, const char *name, GBytes *content, guint64 size,
	                        const char *sha_hex, char **error_r);
	/* After every file checked out. */
	mv_status (*finish)(void *context, char **error_r);
	void *context;
	/* When the bundle holds SHA256SUMS.asc: check it against SHA256SUMS,
	 * before anything else (NULL: the signature is accepted unchecked). */
	mv_status (*check_signature)(void *context, GBytes *sums, GBytes *signature,
	                             char **error_r);
} mv_bundle_checks;

/* Check the bundle at path (directory, zip or tar; the format is
 * detected; flat bundles of older versions, SHA256SUMS at the top of a zip
 * or tar, are read too).  MV_ERR_INTEGRITY with *error_r naming the first
 * discrepancy (a file whose content changed, a missing or an extra file, a
 * malformed SHA256SUMS, or what checks found); MV_ERR_NOT_FOUND when path does not
 * exist; MV_ERR_INPUT when it is not a bundle container. */
mv_status mv_bundle_verify(const char *path, const mv_bundle_checks *checks,
                           mv_bundle_report *report_r, char **error_r) MV_WARN_UNUSED;

#endif

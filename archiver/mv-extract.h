/* mv-extract: the text inside attachments, for search and export.
 *
 * One decoded MIME leaf in, UTF-8 text out: PDF (poppler-glib, in a
 * program of its own, libexec/mailvault-pdftext, under memory, CPU and
 * wall-clock limits), Office Open XML
 * (docx, xlsx, pptx) and OpenDocument (odt, ods, odp) through libarchive
 * and libxml2's streaming reader, RTF (a small reader of our own: Debian
 * ships no C library for it), HTML and plain-text attachments (their
 * charset converted).  A leaf inside an attached message (message/rfc822)
 * is read like an attachment, so an attached message's body and its own
 * attachments are found by `attachment:` too.
 *
 * SECURITY: every input is an untrusted attachment.  Each reader is bounded
 * before it spends memory or time (mv_extract_limits): zip entries, bytes
 * inflated per entry and per archive, compression ratio, PDF pages, time
 * and address space, RTF group depth, output bytes.  A reader that fails
 * or crosses a limit reports why; what it read until then is kept.
 *
 * The bound of the search text (docs/architecture.md, "Attachment text"):
 * each part keeps the first part_text_max bytes of its text (default
 * 256 KiB), the parts of one message together at most message_text_max
 * (default 1 MiB), in the order of the parts in the message; a part that
 * comes after the message's budget is spent keeps nothing and is flagged.
 * 256 KiB of text makes a tsvector well under PostgreSQL's 1 MB limit (a
 * lexeme costs at most about 2.7 times its bytes in the text). */
#ifndef MV_EXTRACT_H
#define MV_EXTRACT_H

#include <glib.h>

#include "mv-blobstore.h"
#include "mv-db.h"
#include "mv-message.h"
#include "mv-status.h"

/* Bumped when an extractor improves: `index --reextract` redoes the
 * messages extracted by an older version. */
#define MV_EXTRACT_VERSION 1

typedef struct {
	gsize part_text_max;      /* text kept per part (default 256 KiB) */
	gsize message_text_max;   /* text kept per message (default 1 MiB) */
	guint zip_entries_max;    /* entries of an Office/ODF zip (default 10000) */
	gsize zip_entry_max;      /* bytes inflated per XML entry (default 64 MiB) */
	gsize zip_total_max;      /* bytes inflated per zip (default 256 MiB) */
	guint zip_ratio_max;      /* inflated / compressed, past 1 MiB (default 200) */
	guint pdf_pages_max;      /* pages read of a PDF (default 2000) */
	guint pdf_timeout_ms;     /* wall clock per PDF (default 20000) */
	gsize pdf_memory_max;     /* address space the PDF child may add (default 1 GiB) */
	guint rtf_depth_max;      /* RTF group nesting (default 512) */
} mv_extract_limits;

void mv_extract_limits_default(mv_extract_limits *limits);

typedef enum {
	MV_EXTRACT_NONE,      /* not a kind of content we read: no text, no error */
	MV_EXTRACT_OK,        /* text appended */
	MV_EXTRACT_FAILED,    /* *why_r says why; what was read is appended */
} mv_extract_result;

/* Append the text of one decoded leaf to out, at most max_out bytes of
 * out in total (on a UTF-8 character boundary).  declared_type,
 * detected_type, filename and charset may be NULL.  *why_r must be NULL on
 * entry (why_r may be NULL); on MV_EXTRACT_FAILED it is a new one-line
 * reason (g_free), the first one met.  Safe to call from several
 * threads at once. */
mv_extract_result mv_extract_part(const char *declared_type, const char *detected_type,
                                  const char *filename, const char *charset, const guint8 *data,
                                  gsize len, const mv_extract_limits *limits, gsize max_out,
                                  GString *out, char **why_r);

/* The readers, one by one (for mv_extract_part and the fuzz targets):
 * same contract as mv_extract_part. */
mv_extract_result mv_extract_rtf(const guint8 *data, gsize len, const mv_extract_limits *limits,
                                 gsize max_out, GString *out, char **why_r);
mv_extract_result mv_extract_office(const guint8 *data, gsize len, const mv_extract_limits *limits,
                                    gsize max_out, GString *out, char **why_r);
/* The text nodes of one Office/ODF XML document (entry: its name in the
 * zip, which says how cells are read). */
mv_extract_result mv_extract_office_xml(const char *entry, const guint8 *data, gsize len,
                                        gsize max_out, GString *out, char **why_r);
mv_extract_result mv_extract_pdf(const guint8 *data, gsize len, const mv_extract_limits *limits,
                                 gsize max_out, GString *out, char **why_r);

/* The extract stage: for each part of msg holding content (the parser's
 * keep_attachment_content), add its text to msg->part_texts within the
 * limits, flag "text-extraction-failed: PATH: REASON" for a part that
 * failed or crossed a limit, and drop the content of the parts that are
 * not attachments (keep_content FALSE: of every part).  Never fails. */
void mv_extract_message(mv_message *msg, const mv_extract_limits *limits, gboolean keep_content);

/* The extract stage's mode in this process, from MAILVAULT_EXTRACT (the
 * configuration file's [ingest] extract sets it): unset or "on" (any
 * other value too): at ingest; "off": not at all (for tests and for
 * measuring its cost); "deferred": not at ingest, so a message is
 * committed and acknowledged sooner, but a message that has attachments
 * (mv_extract_would_read) goes into every active ongoing hold as a
 * pending item instead of being judged on its text so far
 * (mv_message.text_deferred, retention/mv-hold.c).  The messages stored
 * without extraction (off or deferred) are `index --reextract`'s. */
typedef enum {
	MV_EXTRACT_MODE_ON,
	MV_EXTRACT_MODE_OFF,
	MV_EXTRACT_MODE_DEFERRED,
} mv_extract_mode;

mv_extract_mode mv_extract_mode_get(void);

/* mv_extract_mode_get() == MV_EXTRACT_MODE_ON. */
gboolean mv_extract_enabled(void);

/* Whether `index --reextract` would read msg (without --all): it has an
 * attachment or a part with a file name -- the same condition as the
 * SQL that selects the messages to re-extract, and as the one under which
 * mv_hold_settle_pending waits for a message's text (MV_EXTRACT_AWAITING_SQL). */
gboolean mv_extract_would_read(const mv_message *msg);

/* An SQL condition on a message row `m`: extraction has something to read
 * in it (an attachment, or a part with a file name): mv_extract_would_read
 * in SQL, and what `index --reextract` selects. */
#define MV_EXTRACT_READS_SQL                                                          \
	"(m.has_attachment OR EXISTS (SELECT 1 FROM part p WHERE p.message_id = m.id " \
	"AND p.filename IS NOT NULL))"

/* An SQL condition on a message row `m`: its attachment text is still to
 * be read (MV_EXTRACT_READS_SQL, and no text_extraction row at all).
 * Ongoing holds' pending items of such a message are not settled until it
 * has been read. */
#define MV_EXTRACT_AWAITING_SQL                                                    \
	"(" MV_EXTRACT_READS_SQL " AND NOT EXISTS (SELECT 1 FROM text_extraction te " \
	"WHERE te.message_id = m.id))"

/* Limits from the defaults, then the environment (each bounded; an
 * invalid value keeps the default): MAILVAULT_EXTRACT_PDF_TIMEOUT_MS
 * (100..600000), MAILVAULT_EXTRACT_PDF_PAGES (1..100000). */
void mv_extract_limits_from_env(mv_extract_limits *limits);

/* Re-extraction (`mailvault index --reextract`): recompute the attachment
 * text of the stored messages with attachments (or a part with a file
 * name: an inline PDF) that have none by this
 * extractor version (all: every one of them), archived at or after since
 * (seconds since the epoch; 0: any time), from their stored bytes (read
 * and verified as `get` reads them), batch messages a transaction, in id
 * order (read and stored on db, a chunk of at most 64 MiB of messages at
 * a time; parsed and extracted on a pool of threads, one per processor,
 * at most 8).  progress (may be NULL) is called after each batch with the
 * messages done and the total.  Idempotent: a second run finds nothing to
 * do (all: does the same again).  *done_r: messages re-extracted.  A
 * message whose bytes cannot be read (damaged) is skipped and counted in
 * *damaged_r; only a database failure is an error. */
typedef void mv_reextract_progress_fn(void *context, gint64 done, gint64 total);
mv_status mv_extract_reextract(mv_db *db, mv_blobstore *blobs, gint64 since, gboolean all,
                               guint batch, mv_reextract_progress_fn *progress, void *context,
                               gint64 *done_r, gint64 *damaged_r, char **error_r) MV_WARN_UNUSED;

/* *count_r: the messages `index --reextract` (without --all or --since)
 * would read now: deferred at ingest, stored with extraction off or
 * before it existed, or read by an older extractor.  One count over the
 * messages (not constant-time: for `index`, not for `stats`). */
mv_status mv_extract_awaiting_count(mv_db *db, gint64 *count_r, char **error_r) MV_WARN_UNUSED;

#endif

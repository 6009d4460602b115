/* mv-index-html: a bundle's index.html, written row by row: one table of
 * the messages (date, from, to, subject, attachments, class, registration
 * number) linking to each message's files, sortable by any column and
 * filterable, with inline CSS and JavaScript only: it works offline, from
 * the unpacked bundle, and loads nothing from anywhere.
 *
 * The view (sort column and direction, filter text) is kept in the URL
 * fragment, e.g. index.html#sort=0:desc&filter=invoice, so that a view can
 * be bookmarked; when the script has run, <body> carries data-status="ready"
 * and data-rows/data-shown (or data-status="error" and data-error).
 *
 * Ownership: the writer is finished by mv_index_html_close or dropped by
 * mv_index_html_abort (both set it to NULL, accept NULL). */
#ifndef MV_INDEX_HTML_H
#define MV_INDEX_HTML_H

#include <glib.h>

#include "mv-status.h"

typedef struct mv_index_html mv_index_html;

typedef struct {
	const char *href;  /* relative path in the bundle (not yet URL-escaped) */
	const char *label;
} mv_index_link;

typedef struct {
	const char *date;          /* ISO 8601, or NULL */
	const char *from, *to, *subject, *retention_class, *registration;
	const char *bcc;           /* header Bcc and the envelope's blind
	                              recipients, or NULL */
	gint64 attachments;
	const char *text_href;     /* the .txt */
	const char *extracted;     /* the start of the text extracted from the
	                              attachments (shown marked as extracted;
	                              all of it is in the .txt), or NULL */
	const mv_index_link *links; /* .eml, .txt, attachments */
	guint n_links;
} mv_index_row;

mv_status mv_index_html_open(const char *path, const char *title, const char *subtitle,
                             mv_index_html **writer_r, char **error_r) MV_WARN_UNUSED;
mv_status mv_index_html_row(mv_index_html *w, const mv_index_row *row, char **error_r)
	MV_WARN_UNUSED;
guint64 mv_index_html_bytes(const mv_index_html *w);
mv_status mv_index_html_close(mv_index_html **w, char **error_r) MV_WARN_UNUSED;
void mv_index_html_abort(mv_index_html **w);

#endif

/* mv-report: the archive's report as one self-contained HTML page (inline
 * SVG and CSS, no scripts, no external assets): size and growth, traffic,
 * retention classes, upcoming expiries, active holds, the last purge runs
 * and the last verify. */
#ifndef MV_REPORT_H
#define MV_REPORT_H

#include <glib.h>

#include "mv-db.h"
#include "mv-status.h"

typedef struct {
	const char *tz;     /* traffic buckets' time zone; NULL: UTC */
	gint64 top;         /* top domains shown (0: 10) */
} mv_report_options;

/* The page, appended to out.  Every text that comes from the archive
 * (subjects, hold names and reasons, domains, actors) is escaped.
 * MV_ERR_DENIED for a session bound to its grants (employee, auditor). */
mv_status mv_report_html(mv_db *db, const mv_report_options *options, GString *out, char **error_r)
	MV_WARN_UNUSED;

#endif

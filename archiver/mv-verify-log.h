/* mv-verify-log: each `verify` run's summary (schema/023-verify-runs.sql),
 * read back by the report. */
#ifndef MV_VERIFY_LOG_H
#define MV_VERIFY_LOG_H

#include <glib.h>

#include "mv-db.h"
#include "mv-status.h"

typedef struct {
	gint64 sample;        /* 0: every message */
	gint64 checked, damaged;
	gboolean audit_intact;
	gint64 audit_entries;
	gint64 records, findings;
} mv_verify_summary;

/* Record a run by actor; the database decides its scope (the whole
 * archive, or what the session may see). */
mv_status mv_verify_log_record(mv_db *db, const char *actor, const mv_verify_summary *s,
                               char **error_r) MV_WARN_UNUSED;

#endif

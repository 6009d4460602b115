/* mv-verify-log: record verify runs. */
#include "mv-verify-log.h"

mv_status mv_verify_log_record(mv_db *db, const char *actor, const mv_verify_summary *s,
                               char **error_r)
{
	char v[7][24];
	gint64 n[] = {s->sample, s->checked, s->damaged, s->audit_entries, s->records, s->findings};
	for (guint i = 0; i < G_N_ELEMENTS(n); i++)
		g_snprintf(v[i], sizeof v[i], "%" G_GINT64_FORMAT, n[i]);
	const char *values[] = {actor, s->sample > 0 ? v[0] : NULL, v[1], v[2],
	                        s->audit_intact ? "true" : "false", v[3], v[4], v[5]};
	PGresult *r = NULL;
	mv_status st = mv_db_query(mv_db_writer(db), /* the primary, on a replica */
	                           "SELECT mv_verify_record($1, $2::bigint, $3::bigint, $4::bigint, $5::boolean, "
	                           "$6::bigint, $7::bigint, $8::bigint)",
	                           G_N_ELEMENTS(values), values, NULL, NULL, 0, &r, error_r);
	PQclear(r);
	return st;
}

/* mv-seal: the stored records checked against the audit chain. */
#include "mv-seal.h"

#include <string.h>

void mv_seal_finding_free(gpointer p)
{
	mv_seal_finding *f = p;
	if (f == NULL)
		return;
	g_free(f->detail);
	g_free(f);
}

/* The newest seal the chain holds per message id: "id=N seal=HEX" at the
 * end of a line of an ingest.batch entry (after its sha256= and source=
 * fields: the greedy source match takes the line's last occurrence, so
 * a source name cannot forge one), or opening a line of record.retention
 * and record.seal-baseline entries. */
static const char check_sql[] =
	"WITH sealed AS ("
	" SELECT DISTINCT ON (x.id) x.id, x.seal FROM ("
	"  SELECT e.seq, (r[1])::bigint AS id, r[2] AS seal"
	"    FROM audit_event e,"
	"         regexp_matches(e.details, '(?:^|\\n)(?:sha256=[0-9a-f]{64} source=[^\\n]* )?"
	"id=([0-9]+) seal=([0-9a-f]{64})(?= |\\n|$)', 'g') AS r"
	"   WHERE e.action IN ('ingest.batch', 'record.retention', 'record.seal-baseline')"
	" ) x ORDER BY x.id, x.seq DESC), "
	"now AS (SELECT m.id, encode(mv_message_seal(m.id), 'hex') AS seal FROM message m) "
	"SELECT coalesce(n.id, s.id), "
	"       CASE WHEN n.id IS NULL THEN 'deleted' WHEN s.id IS NULL THEN 'unsealed' "
	"            ELSE 'changed' END "
	"  FROM sealed s FULL JOIN now n ON n.id = s.id "
	" WHERE (n.id IS NULL AND NOT EXISTS (SELECT 1 FROM tombstone t WHERE t.message_id = s.id)) "
	"    OR (s.id IS NULL) OR (n.id IS NOT NULL AND s.id IS NOT NULL AND n.seal <> s.seal) "
	" ORDER BY 1 LIMIT $1";

mv_status mv_seal_check(mv_db *db, guint max_findings, gint64 *checked_r, GPtrArray **findings_r,
                        gboolean *more_r, char **error_r)
{
	*checked_r = 0;
	*findings_r = NULL;
	*more_r = FALSE;
	char limit[24];
	g_snprintf(limit, sizeof limit, "%u", max_findings + 1);
	const char *v[] = {limit};
	PGresult *r = NULL;
	mv_status st = mv_db_query(db, check_sql, 1, v, NULL, NULL, 0, &r, error_r);
	if (st != MV_OK)
		return st;
	GPtrArray *out = g_ptr_array_new_with_free_func(mv_seal_finding_free);
	for (int i = 0; i < PQntuples(r); i++) {
		if (out->len >= max_findings) {
			*more_r = TRUE;
			break;
		}
		mv_seal_finding *f = g_new0(mv_seal_finding, 1);
		f->id = g_ascii_strtoll(PQgetvalue(r, i, 0), NULL, 10);
		const char *kind = PQgetvalue(r, i, 1);
		if (strcmp(kind, "deleted") == 0) {
			f->problem = MV_SEAL_DELETED;
			f->detail = g_strdup("deleted without a tombstone: the audit trail names it, the "
			                     "archive no longer holds it, and no purge destroyed it");
		} else if (strcmp(kind, "unsealed") == 0) {
			f->problem = MV_SEAL_UNSEALED;
			f->detail = g_strdup("not in the audit trail: no ingest entry names it (added past "
			                     "the archive)");
		} else {
			f->problem = MV_SEAL_CHANGED;
			f->detail = g_strdup("changed without an audit entry: its metadata (row, addresses, "
			                     "arrivals or parts) differs from the seal the audit trail holds");
		}
		g_ptr_array_add(out, f);
	}
	PQclear(r);
	/* The count, apart from the findings (an archive without any has no
	 * row to carry it). */
	st = mv_db_query(db, "SELECT count(*) FROM message", 0, NULL, NULL, NULL, 0, &r, error_r);
	if (st == MV_OK)
		*checked_r = g_ascii_strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	if (st != MV_OK) {
		g_ptr_array_free(out, TRUE);
		return st;
	}
	*findings_r = out;
	return MV_OK;
}

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
/* A role bound by row-level security (an employee, an auditor:
 * schema/019-access.sql) cannot tell a record removed from one it may not
 * see: for it only what it sees is checked (mv_sees_all()). */
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
	" WHERE (n.id IS NULL AND mv_sees_all() AND NOT EXISTS (SELECT 1 FROM tombstone t WHERE t.message_id = s.id)) "
	"    OR (s.id IS NULL) OR (n.id IS NOT NULL AND s.id IS NOT NULL AND n.seal <> s.seal) "
	" ORDER BY 1 LIMIT $1";

/* The hold items the chain's record.hold-items entries add up to (the last
 * word on each hold and message: added, settled or removed), against
 * hold_item. */
static const char hold_items_sql[] =
	"WITH ops AS ("
	" SELECT e.seq, (r[1])::integer AS hold_id, r[2] AS op, r[3] AS pending,"
	"        unnest(string_to_array(r[4], ','))::bigint AS message_id"
	"   FROM audit_event e,"
	"        regexp_matches(e.details, '(?:^|\n)hold=([0-9]+) (added|settled|removed)=[0-9]+"
	"(?: pending=(yes|no))? ids=([0-9,]+)', 'g') AS r"
	"  WHERE e.action = 'record.hold-items'), "
	"last AS (SELECT DISTINCT ON (hold_id, message_id) hold_id, message_id, op, pending FROM ops"
	"          ORDER BY hold_id, message_id, seq DESC), "
	"expected AS (SELECT hold_id, message_id, op = 'added' AND pending = 'yes' AS pending FROM last"
	"              WHERE op <> 'removed') "
	"SELECT coalesce(x.hold_id, i.hold_id), coalesce(x.message_id, i.message_id), "
	"       CASE WHEN i.hold_id IS NULL THEN 'missing' WHEN x.hold_id IS NULL THEN 'unrecorded' "
	"            ELSE 'pending' END "
	"  FROM expected x FULL JOIN hold_item i ON i.hold_id = x.hold_id AND i.message_id = x.message_id "
	" WHERE (i.hold_id IS NULL AND mv_sees_all()) OR x.hold_id IS NULL OR i.pending <> x.pending "
	" ORDER BY 1, 2 LIMIT $1";

/* Holds whose release, or existence, differs from the record.hold
 * entries (holds made before those entries existed are named only by
 * their release, which 016 recorded). */
static const char holds_sql[] =
	"WITH ev AS ("
	" SELECT (r[2])::integer AS hold_id, r[1] AS what"
	"   FROM audit_event e, regexp_matches(e.details, '^(created|released) id=([0-9]+) ') AS r"
	"  WHERE e.action = 'record.hold'), "
	"known AS (SELECT hold_id, bool_or(what = 'released') AS released FROM ev GROUP BY hold_id) "
	"SELECT coalesce(h.id, k.hold_id), "
	"       CASE WHEN h.id IS NULL THEN 'gone' "
	"            WHEN h.released_at IS NOT NULL THEN 'released' ELSE 'active' END "
	"  FROM hold h FULL JOIN known k ON k.hold_id = h.id "
	" WHERE (h.id IS NULL AND mv_sees_all()) "
	"    OR (h.released_at IS NOT NULL AND NOT coalesce(k.released, false)) "
	"    OR (h.released_at IS NULL AND coalesce(k.released, false)) "
	" ORDER BY 1 LIMIT $1";

static mv_status check_holds(mv_db *db, guint max_findings, GPtrArray *out, gboolean *more_r,
                             char **error_r)
{
	char limit[24];
	g_snprintf(limit, sizeof limit, "%u", max_findings + 1);
	const char *v[] = {limit};
	PGresult *r = NULL;
	mv_status st = mv_db_query(db, hold_items_sql, 1, v, NULL, NULL, 0, &r, error_r);
	for (int i = 0; st == MV_OK && i < PQntuples(r); i++) {
		if (out->len >= max_findings) {
			*more_r = TRUE;
			break;
		}
		mv_seal_finding *f = g_new0(mv_seal_finding, 1);
		f->problem = MV_SEAL_HOLD_ITEM;
		f->hold_id = g_ascii_strtoll(PQgetvalue(r, i, 0), NULL, 10);
		f->id = g_ascii_strtoll(PQgetvalue(r, i, 1), NULL, 10);
		const char *kind = PQgetvalue(r, i, 2);
		f->detail = g_strdup_printf(
			"hold %" G_GINT64_FORMAT ": %s", f->hold_id,
			strcmp(kind, "missing") == 0
				? "no longer covers it, and no audit entry removed it"
				: strcmp(kind, "unrecorded") == 0 ? "covers it, but no audit entry added it"
				                                  : "its pending state differs from the audit trail");
		g_ptr_array_add(out, f);
	}
	PQclear(r);
	if (st != MV_OK)
		return st;
	st = mv_db_query(db, holds_sql, 1, v, NULL, NULL, 0, &r, error_r);
	for (int i = 0; st == MV_OK && i < PQntuples(r); i++) {
		if (out->len >= max_findings) {
			*more_r = TRUE;
			break;
		}
		mv_seal_finding *f = g_new0(mv_seal_finding, 1);
		f->problem = MV_SEAL_HOLD;
		f->hold_id = g_ascii_strtoll(PQgetvalue(r, i, 0), NULL, 10);
		const char *kind = PQgetvalue(r, i, 1);
		f->detail = g_strdup_printf(
			"hold %" G_GINT64_FORMAT ": %s", f->hold_id,
			strcmp(kind, "gone") == 0 ? "the audit trail names it, the archive no longer has it"
			: strcmp(kind, "released") == 0 ? "released, but no audit entry released it"
			                                : "active, but the audit trail released it");
		g_ptr_array_add(out, f);
	}
	PQclear(r);
	return st;
}

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
	if (!*more_r && (st = check_holds(db, max_findings, out, more_r, error_r)) != MV_OK) {
		g_ptr_array_free(out, TRUE);
		return st;
	}
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

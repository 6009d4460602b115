/* mv-tombstone: what the archive keeps of a destroyed record, found by
 * its id, SHA-256 or registration number (`get` and `show` of a purged
 * message).  In a file of its own, apart from the purge runs of
 * mv-purge.c, so that the `mailvault` program, which reads tombstones but
 * runs no purge, links neither the retention policy nor libxml2
 * (docs/scaling.md). */
#include "mv-purge.h"
#include "mv-purge-sql.h"

#include "mv-store.h"

/* ---- tombstones ---- */

void mv_tombstone_free(mv_tombstone **tombstone)
{
	if (tombstone == NULL || *tombstone == NULL)
		return;
	mv_tombstone *t = *tombstone;
	g_free(t->sha256);
	g_free(t->registration);
	g_free(t->message_id);
	g_free(t->date);
	g_free(t->from);
	g_free(t->class_name);
	g_free(t->expires_at);
	g_free(t->deciding_rule);
	g_free(t->archived_at);
	g_free(t->destroyed_at);
	g_free(t->run_state);
	g_free(t->performed_by);
	g_free(t->run_finished_at);
	g_free(t->certificate_sha256);
	if (t->approvals != NULL)
		g_ptr_array_unref(t->approvals);
	g_free(t);
	*tombstone = NULL;
}

char *mv_tombstone_describe(const mv_tombstone *t)
{
	char *erasure = t->erasure_request > 0
	                    ? g_strdup_printf(" on erasure request %" G_GINT64_FORMAT, t->erasure_request)
	                    : g_strdup("");
	char *text = g_strdup_printf("message %" G_GINT64_FORMAT "%s%s%s was destroyed%s by purge run %"
	                             G_GINT64_FORMAT " at %s", t->id, t->registration ? " (" : "",
	                             t->registration ? t->registration : "", t->registration ? ")" : "",
	                             erasure, t->run, t->destroyed_at ? t->destroyed_at : "an unknown time");
	g_free(erasure);
	return text;
}

static void approval_free(gpointer p)
{
	mv_purge_approval *a = p;
	g_free(a->by);
	g_free(a->actor);
	g_free(a->at);
	g_free(a);
}

mv_status mv_purge_tombstone_find(mv_db *db, const char *ref, mv_tombstone **tombstone_r,
                                  char **error_r)
{
	*tombstone_r = NULL;
	mv_ref_kind kind;
	char *value = NULL;
	int len = 0;
	mv_status st = mv_store_ref_parse(ref, &kind, &value, &len, error_r);
	if (st != MV_OK)
		return st;
	static const char *const where[] = {
		[MV_REF_ID] = "t.message_id = $1",
		[MV_REF_SHA256] = "t.sha256 = $1",
		[MV_REF_REGISTRATION] = "t.registration = $1",
	};
	char *sql = g_strdup_printf(
		"SELECT t.message_id, encode(t.sha256, 'hex'), t.size, t.registration, t.message_id_hdr, "
		MV_SQL_ISO_UTC("t.date") ", t.from_addr, t.retention_class, "
		MV_SQL_ISO_UTC("t.expires_at") ", t.deciding_rule, coalesce(t.policy_version, 0), "
		MV_SQL_ISO_UTC("t.archived_at") ", " MV_SQL_ISO_UTC("t.destroyed_at") ", "
		"d.run, d.id, " SQL_RUN_STATE ", d.performed_by, " MV_SQL_ISO_UTC("d.finished_at") ", "
		"encode(d.certificate_sha256, 'hex') "
		"FROM tombstone t JOIN disposition d ON d.id = t.disposition_id WHERE %s "
		"ORDER BY t.destroyed_at DESC, t.message_id DESC LIMIT 1",
		where[kind]);
	const char *v[] = {value};
	int lengths[] = {len}, formats[] = {kind == MV_REF_SHA256};
	PGresult *r = NULL;
	st = mv_db_query(db, sql, 1, v, lengths, formats, 0, &r, error_r);
	g_free(sql);
	g_free(value);
	if (st != MV_OK)
		return st;
	if (PQntuples(r) != 1) {
		PQclear(r);
		return mv_fail(error_r, MV_ERR_NOT_FOUND, "no message %s in the archive", ref);
	}
	mv_tombstone *t = g_new0(mv_tombstone, 1);
#define COL(n) (PQgetisnull(r, 0, n) ? NULL : g_strdup(PQgetvalue(r, 0, n)))
	t->id = g_ascii_strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	t->sha256 = COL(1);
	t->size = g_ascii_strtoll(PQgetvalue(r, 0, 2), NULL, 10);
	t->registration = COL(3);
	t->message_id = COL(4);
	t->date = COL(5);
	t->from = COL(6);
	t->class_name = COL(7);
	t->expires_at = COL(8);
	t->deciding_rule = COL(9);
	t->policy_version = g_ascii_strtoll(PQgetvalue(r, 0, 10), NULL, 10);
	t->archived_at = COL(11);
	t->destroyed_at = COL(12);
	t->run = g_ascii_strtoll(PQgetvalue(r, 0, 13), NULL, 10);
	t->disposition_id = g_ascii_strtoll(PQgetvalue(r, 0, 14), NULL, 10);
	t->run_state = COL(15);
	t->performed_by = COL(16);
	t->run_finished_at = COL(17);
	t->certificate_sha256 = COL(18);
#undef COL
	PQclear(r);
	t->approvals = g_ptr_array_new_with_free_func(approval_free);
	char id[24];
	g_snprintf(id, sizeof id, "%" G_GINT64_FORMAT, t->id);
	const char *av[] = {id};
	st = mv_db_query(db,
	                 "SELECT x.who, x.actor, " MV_SQL_ISO_UTC("x.at") ", x.req FROM ("
	                 "SELECT d.decided_by AS who, d.actor, d.decided_at AS at, d.id AS k, "
	                 "NULL::bigint AS req "
	                 "FROM review_decision d JOIN tombstone t ON t.message_id = d.message_id "
	                 "WHERE t.message_id = $1 AND d.decision = 'approve' "
	                 "AND d.expires_at = t.expires_at AND d.decided_at <= t.destroyed_at "
	                 "UNION ALL SELECT e.proposed_role || ' (proposed erasure ' || e.id || ')', "
	                 "e.proposed_by, e.proposed_at, 0, e.id "
	                 "FROM erasure_request e JOIN tombstone t ON t.message_id = e.message_id "
	                 "AND t.disposition_id = e.disposition_id WHERE t.message_id = $1 "
	                 "AND e.state = 'erased' "
	                 "UNION ALL SELECT e.decided_role || ' (approved erasure ' || e.id || ')', "
	                 "e.decided_by, e.decided_at, 1, e.id "
	                 "FROM erasure_request e JOIN tombstone t ON t.message_id = e.message_id "
	                 "AND t.disposition_id = e.disposition_id WHERE t.message_id = $1 "
	                 "AND e.state = 'erased') x ORDER BY x.at, x.k",
	                 1, av, NULL, NULL, 0, &r, error_r);
	for (int i = 0; st == MV_OK && i < PQntuples(r); i++) {
		mv_purge_approval *a = g_new0(mv_purge_approval, 1);
		a->by = g_strdup(PQgetvalue(r, i, 0));
		a->actor = g_strdup(PQgetvalue(r, i, 1));
		a->at = g_strdup(PQgetvalue(r, i, 2));
		if (!PQgetisnull(r, i, 3))
			t->erasure_request = g_ascii_strtoll(PQgetvalue(r, i, 3), NULL, 10);
		g_ptr_array_add(t->approvals, a);
	}
	PQclear(r);
	if (st != MV_OK) {
		mv_tombstone_free(&t);
		return st;
	}
	*tombstone_r = t;
	return MV_OK;
}

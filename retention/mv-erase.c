/* mv-erase: erasure requests, decided by two people in the database. */
#include "mv-erase.h"

#include <string.h>

#include "mv-purge.h"

void mv_erase_request_free(gpointer request)
{
	mv_erase_request *r = request;
	if (r == NULL)
		return;
	g_free(r->reason);
	g_free(r->state);
	g_free(r->proposed_role);
	g_free(r->proposed_by);
	g_free(r->proposed_at);
	g_free(r->decided_role);
	g_free(r->decided_by);
	g_free(r->decided_at);
	g_free(r->note);
	g_free(r->certificate_sha256);
	g_free(r);
}

#define SQL_REQUEST_COLUMNS                                                                   \
	"e.id, e.message_id, e.reason, e.state, e.proposed_role, e.proposed_by, "                  \
	MV_SQL_ISO_UTC("e.proposed_at") ", e.decided_role, e.decided_by, "                         \
	MV_SQL_ISO_UTC("e.decided_at") ", e.note, coalesce(d.run, 0), "                            \
	"encode(d.certificate_sha256, 'hex') "                                                     \
	"FROM erasure_request e LEFT JOIN disposition d ON d.id = e.disposition_id "

static mv_erase_request *request_from_row(PGresult *r, int i)
{
#define COL(n) (PQgetisnull(r, i, n) ? NULL : g_strdup(PQgetvalue(r, i, n)))
	mv_erase_request *e = g_new0(mv_erase_request, 1);
	e->id = g_ascii_strtoll(PQgetvalue(r, i, 0), NULL, 10);
	e->message = g_ascii_strtoll(PQgetvalue(r, i, 1), NULL, 10);
	e->reason = COL(2);
	e->state = COL(3);
	e->proposed_role = COL(4);
	e->proposed_by = COL(5);
	e->proposed_at = COL(6);
	e->decided_role = COL(7);
	e->decided_by = COL(8);
	e->decided_at = COL(9);
	e->note = COL(10);
	e->run = g_ascii_strtoll(PQgetvalue(r, i, 11), NULL, 10);
	e->certificate_sha256 = COL(12);
#undef COL
	return e;
}

mv_status mv_erase_list(mv_db *db, const char *state, gint64 id, GPtrArray **requests_r,
                        char **error_r)
{
	*requests_r = NULL;
	char num[24];
	g_snprintf(num, sizeof num, "%" G_GINT64_FORMAT, id);
	const char *v[] = {state, id > 0 ? num : NULL};
	PGresult *r = NULL;
	/* Bounded: a proposal names at most MV_ERASE_MAX_IDS messages, and
	 * requests are people's decisions, not a bulk path. */
	mv_status st = mv_db_query(db,
	                           "SELECT " SQL_REQUEST_COLUMNS
	                           "WHERE ($1::text IS NULL OR e.state = $1) "
	                           "AND ($2::bigint IS NULL OR e.id = $2) ORDER BY e.id LIMIT 100000",
	                           2, v, NULL, NULL, 0, &r, error_r);
	if (st != MV_OK)
		return st;
	if (id > 0 && PQntuples(r) == 0) {
		PQclear(r);
		return mv_fail(error_r, MV_ERR_NOT_FOUND, "no erasure request %s (mailvault erase list)", num);
	}
	GPtrArray *list = g_ptr_array_new_with_free_func(mv_erase_request_free);
	for (int i = 0; i < PQntuples(r); i++)
		g_ptr_array_add(list, request_from_row(r, i));
	PQclear(r);
	*requests_r = list;
	return MV_OK;
}

mv_status mv_erase_propose(mv_db *db, const gint64 *ids, guint n, const char *reason,
                           const char *actor, GPtrArray **requests_r, char **error_r)
{
	*requests_r = NULL;
	if (n == 0 || n > MV_ERASE_MAX_IDS)
		return mv_fail(error_r, MV_ERR_USAGE, "propose the erasure of 1 to %d messages at a time",
		               MV_ERASE_MAX_IDS);
	char *trimmed = reason != NULL ? g_strstrip(g_strdup(reason)) : NULL;
	gboolean empty = trimmed == NULL || *trimmed == '\0';
	g_free(trimmed);
	if (empty || strlen(reason) > 2000)
		return mv_fail(error_r, MV_ERR_USAGE, "an erasure needs a reason (--reason, at most 2000 bytes)");
	GString *arr = g_string_new("{");
	for (guint i = 0; i < n; i++)
		mv_db_array_int(arr, ids[i]);
	g_string_append_c(arr, '}');
	mv_status st = mv_db_exec(db, "BEGIN", error_r);
	PGresult *r = NULL;
	if (st == MV_OK) {
		const char *v[] = {arr->str, reason, actor};
		st = mv_db_query(db, "SELECT o_request FROM mv_erase_propose($1::bigint[], $2, $3)", 3, v,
		                 NULL, NULL, 0, &r, error_r);
	}
	GString *reqs = g_string_new("{");
	for (int i = 0; st == MV_OK && i < PQntuples(r); i++)
		mv_db_array_int(reqs, g_ascii_strtoll(PQgetvalue(r, i, 0), NULL, 10));
	g_string_append_c(reqs, '}');
	PQclear(r);
	r = NULL;
	if (st == MV_OK) {
		const char *v[] = {reqs->str};
		st = mv_db_query(db, "SELECT " SQL_REQUEST_COLUMNS "WHERE e.id = ANY ($1::bigint[]) ORDER BY e.message_id",
		                 1, v, NULL, NULL, 0, &r, error_r);
	}
	st = mv_db_end(db, st, error_r);
	if (st == MV_OK) {
		GPtrArray *list = g_ptr_array_new_with_free_func(mv_erase_request_free);
		for (int i = 0; i < PQntuples(r); i++)
			g_ptr_array_add(list, request_from_row(r, i));
		*requests_r = list;
	}
	PQclear(r);
	g_string_free(arr, TRUE);
	g_string_free(reqs, TRUE);
	return st;
}

mv_status mv_erase_reject(mv_db *db, gint64 request, const char *note, const char *actor,
                          char **error_r)
{
	char num[24];
	g_snprintf(num, sizeof num, "%" G_GINT64_FORMAT, request);
	const char *v[] = {num, note, actor};
	PGresult *r = NULL;
	mv_status st = mv_db_query(db, "SELECT mv_erase_reject($1, $2, $3)", 3, v, NULL, NULL, 0, &r,
	                           error_r);
	PQclear(r);
	return st;
}

mv_status mv_erase_approve(mv_db *db, gint64 request, const char *actor, guint wait_seconds,
                           mv_erase_request **request_r, char **error_r)
{
	*request_r = NULL;
	char num[24];
	g_snprintf(num, sizeof num, "%" G_GINT64_FORMAT, request);
	/* The run opened by the approval is completed under the purge lock, as
	 * purge completes its own: no purge takes it for an interrupted one. */
	gboolean locked = FALSE;
	mv_status st = mv_purge_lock(db, wait_seconds, &locked, error_r);
	if (st != MV_OK)
		return st;
	if (!locked)
		return mv_fail(error_r, MV_ERR_BUSY, "a purge is running; try again later (or --wait SECONDS)");
	st = mv_db_exec(db, "BEGIN", error_r);
	PGresult *r = NULL;
	if (st == MV_OK) {
		const char *v[] = {num, actor};
		st = mv_db_query(db, "SELECT o_state, o_note, coalesce(o_disposition, 0) "
		                     "FROM mv_erase_approve($1, $2)",
		                 2, v, NULL, NULL, 0, &r, error_r);
	}
	char *state = NULL, *note = NULL;
	gint64 disposition = 0;
	if (st == MV_OK) {
		state = g_strdup(PQgetvalue(r, 0, 0));
		note = PQgetisnull(r, 0, 1) ? NULL : g_strdup(PQgetvalue(r, 0, 1));
		disposition = g_ascii_strtoll(PQgetvalue(r, 0, 2), NULL, 10);
	}
	PQclear(r);
	st = mv_db_end(db, st, error_r);
	if (st == MV_OK && disposition > 0) {
		char *sha = NULL, *why = g_strdup_printf("erasure request %s", num);
		gint64 count = 0;
		st = mv_purge_finish_run(db, disposition, actor, "complete", why, &sha, &count, error_r);
		g_free(sha);
		g_free(why);
	}
	mv_purge_unlock(db);
	if (st == MV_OK) {
		GPtrArray *one = NULL;
		st = mv_erase_list(db, NULL, request, &one, error_r);
		if (st == MV_OK) {
			*request_r = g_ptr_array_steal_index(one, 0);
			g_ptr_array_unref(one);
		}
	}
	if (st == MV_OK && strcmp(state, "erased") != 0)
		st = mv_fail(error_r, MV_ERR_DENIED, "erasure request %s %s: %s", num,
		             strcmp(state, "refused") == 0 ? "refused" : "not approved",
		             note != NULL ? note : "-");
	g_free(state);
	g_free(note);
	return st;
}

/* mv-hold: creating, listing and releasing legal holds. */
#include "mv-hold.h"

#include <string.h>

#include "mv-audit.h"
#include "mv-query.h"

void mv_hold_info_free(gpointer p)
{
	mv_hold_info *h = p;
	if (h == NULL)
		return;
	g_free(h->name);
	g_free(h->case_ref);
	g_free(h->reason);
	g_free(h->query);
	g_free(h->created_by);
	g_free(h->created_at);
	g_free(h->released_by);
	g_free(h->released_at);
	g_free(h->release_reason);
	g_free(h);
}

mv_status mv_hold_create(mv_db *db, const char *name, const char *case_ref, const char *reason,
                         const char *query, gboolean ongoing, const char *actor,
                         gint64 *held_r, char **error_r)
{
	*held_r = 0;
	mv_query_sql *q = NULL;
	mv_status st = mv_query_compile(query, 2, &q, error_r);
	if (st != MV_OK)
		return st;
	st = mv_db_exec(db, "BEGIN", error_r);
	PGresult *r = NULL;
	char *id = NULL;
	if (st == MV_OK) {
		const char *v[] = {name, case_ref, reason, query, ongoing ? "t" : "f", actor};
		r = PQexecParams(mv_db_conn(db),
		                 "INSERT INTO hold (name, case_ref, reason, query, ongoing, created_by) "
		                 "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO NOTHING RETURNING id",
		                 6, NULL, v, NULL, NULL, 0);
		if (PQresultStatus(r) != PGRES_TUPLES_OK)
			st = mv_db_fail(db, r, "cannot create the hold", error_r);
		else if (PQntuples(r) == 0)
			st = mv_fail(error_r, MV_ERR_USAGE, "a hold named '%s' exists already", name);
		else
			id = g_strdup(PQgetvalue(r, 0, 0));
		PQclear(r);
	}
	if (st == MV_OK) {
		char *sql = g_strdup_printf("INSERT INTO hold_item (hold_id, message_id) "
		                            "SELECT $1::integer, m.id FROM message m WHERE %s",
		                            q->where);
		const char *lead[] = {id};
		st = mv_db_query_params(db, sql, lead, 1, q->params, &r, error_r);
		if (st == MV_OK)
			*held_r = g_ascii_strtoll(PQcmdTuples(r), NULL, 10);
		PQclear(r);
		g_free(sql);
	}
	if (st == MV_OK) {
		char *details = g_strdup_printf("case=%s\nreason=%s\nquery=%s\nongoing=%s\nmessages=%" G_GINT64_FORMAT,
		                                case_ref, reason, query, ongoing ? "yes" : "no", *held_r);
		char *subject = g_strdup_printf("hold %s", name);
		st = mv_audit_append(db, actor, "hold.create", subject, details, NULL, error_r);
		g_free(details);
		g_free(subject);
	}
	st = mv_db_end(db, st, error_r);
	g_free(id);
	mv_query_sql_free(&q);
	return st;
}

mv_status mv_hold_release(mv_db *db, const char *name, const char *reason, const char *actor,
                          char **error_r)
{
	mv_status st = mv_db_exec(db, "BEGIN", error_r);
	PGresult *r = NULL;
	if (st == MV_OK) {
		const char *v[] = {name, actor, reason};
		st = mv_db_query(db,
		                 "UPDATE hold SET released_by = $2, released_at = now(), release_reason = $3 "
		                 "WHERE name = $1 AND released_at IS NULL",
		                 3, v, NULL, NULL, 0, &r, error_r);
		if (st == MV_OK && strcmp(PQcmdTuples(r), "1") != 0)
			st = mv_fail(error_r, MV_ERR_NOT_FOUND, "no active hold named '%s'", name);
		PQclear(r);
	}
	if (st == MV_OK) {
		char *subject = g_strdup_printf("hold %s", name);
		char *details = g_strdup_printf("reason=%s", reason);
		st = mv_audit_append(db, actor, "hold.release", subject, details, NULL, error_r);
		g_free(subject);
		g_free(details);
	}
	st = mv_db_end(db, st, error_r);
	return st;
}

#define HOLD_COLUMNS                                                                              \
	"h.name, h.case_ref, h.reason, h.query, h.ongoing, h.created_by, "                          \
	MV_SQL_ISO_UTC("h.created_at") ", h.released_by, "                                           \
	MV_SQL_ISO_UTC("h.released_at") ", "                                                         \
	"h.release_reason, (SELECT count(*) FROM hold_item i WHERE i.hold_id = h.id)"

static mv_hold_info *row(const PGresult *r, int i)
{
	mv_hold_info *h = g_new0(mv_hold_info, 1);
#define COL(n) (PQgetisnull(r, i, n) ? NULL : g_strdup(PQgetvalue(r, i, n)))
	h->name = COL(0);
	h->case_ref = COL(1);
	h->reason = COL(2);
	h->query = COL(3);
	h->ongoing = strcmp(PQgetvalue(r, i, 4), "t") == 0;
	h->created_by = COL(5);
	h->created_at = COL(6);
	h->released_by = COL(7);
	h->released_at = COL(8);
	h->release_reason = COL(9);
#undef COL
	h->messages = g_ascii_strtoll(PQgetvalue(r, i, 10), NULL, 10);
	return h;
}

mv_status mv_hold_list(mv_db *db, GPtrArray **holds_r, char **error_r)
{
	*holds_r = NULL;
	PGresult *r = NULL;
	mv_status st = mv_db_query(db, "SELECT " HOLD_COLUMNS " FROM hold h ORDER BY h.id", 0, NULL,
	                           NULL, NULL, 0, &r, error_r);
	if (st != MV_OK)
		return st;
	GPtrArray *out = g_ptr_array_new_with_free_func(mv_hold_info_free);
	for (int i = 0; i < PQntuples(r); i++)
		g_ptr_array_add(out, row(r, i));
	PQclear(r);
	*holds_r = out;
	return MV_OK;
}

mv_status mv_hold_show(mv_db *db, const char *name, mv_hold_info **hold_r, char **error_r)
{
	*hold_r = NULL;
	const char *v[] = {name};
	PGresult *r = NULL;
	mv_status st = mv_db_query(db, "SELECT " HOLD_COLUMNS " FROM hold h WHERE h.name = $1", 1, v,
	                           NULL, NULL, 0, &r, error_r);
	if (st != MV_OK)
		return st;
	if (PQntuples(r) != 1) {
		PQclear(r);
		return mv_fail(error_r, MV_ERR_NOT_FOUND, "no hold named '%s'", name);
	}
	*hold_r = row(r, 0);
	PQclear(r);
	return MV_OK;
}

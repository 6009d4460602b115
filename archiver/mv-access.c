/* mv-access: grants of access and why a role sees a message. */
#include "mv-access.h"

#include <stdlib.h>

void mv_access_grant_free(gpointer p)
{
	mv_access_grant *g = p;
	if (g == NULL)
		return;
	g_free(g->role);
	g_free(g->what);
	g_free(g->granted_by);
	g_free(g->granted_at);
	g_free(g);
}

mv_status mv_access_set(mv_db *db, gboolean grant, mv_access_kind kind, const char *role,
                        const char *what, const char *actor, gboolean *changed_r, char **error_r)
{
	static const char *const sql[2][2] = {
		{"SELECT mv_access_revoke_address($1, $2, $3)", "SELECT mv_access_revoke_case($1, $2, $3)"},
		{"SELECT mv_access_grant_address($1, $2, $3)", "SELECT mv_access_grant_case($1, $2, $3)"},
	};
	*changed_r = FALSE;
	const char *v[] = {role, what, actor};
	PGresult *r = NULL;
	mv_status st = mv_db_query(db, sql[grant ? 1 : 0][kind == MV_ACCESS_CASE ? 1 : 0], 3, v, NULL,
	                           NULL, 0, &r, error_r);
	if (st == MV_OK)
		*changed_r = PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] == 't';
	PQclear(r);
	return st;
}

mv_status mv_access_list(mv_db *db, const char *role, GPtrArray **grants_r, char **error_r)
{
	*grants_r = NULL;
	const char *v[] = {role != NULL ? role : ""};
	PGresult *r = NULL;
	mv_status st = mv_db_query(
		db,
		"SELECT role, kind, what, granted_by, " MV_SQL_ISO_UTC("granted_at") " FROM ("
		" SELECT role, 0 AS kind, address AS what, granted_by, granted_at FROM access_address"
		" UNION ALL SELECT c.role, 1, h.name, c.granted_by, c.granted_at"
		"  FROM access_case c JOIN hold h ON h.id = c.hold_id) g"
		" WHERE $1 = '' OR role = $1 ORDER BY role, kind, what",
		1, v, NULL, NULL, 0, &r, error_r);
	if (st != MV_OK)
		return st;
	GPtrArray *out = g_ptr_array_new_with_free_func(mv_access_grant_free);
	for (int i = 0; i < PQntuples(r); i++) {
		mv_access_grant *g = g_new0(mv_access_grant, 1);
		g->role = g_strdup(PQgetvalue(r, i, 0));
		g->kind = atoi(PQgetvalue(r, i, 1)) == 1 ? MV_ACCESS_CASE : MV_ACCESS_ADDRESS;
		g->what = g_strdup(PQgetvalue(r, i, 2));
		g->granted_by = g_strdup(PQgetvalue(r, i, 3));
		g->granted_at = g_strdup(PQgetvalue(r, i, 4));
		g_ptr_array_add(out, g);
	}
	PQclear(r);
	*grants_r = out;
	return MV_OK;
}

mv_status mv_access_check(mv_db *db, const char *role, gint64 id, gboolean *visible_r,
                          char ***reasons_r, char **error_r)
{
	*visible_r = FALSE;
	*reasons_r = NULL;
	char idtext[24];
	g_snprintf(idtext, sizeof idtext, "%" G_GINT64_FORMAT, id);
	const char *v[] = {role, idtext};
	PGresult *r = NULL;
	mv_status st = mv_db_query(db,
	                           "SELECT o_visible, r FROM mv_access_explain($1, $2::bigint), "
	                           "unnest(o_reasons) WITH ORDINALITY AS x(r, n) ORDER BY n",
	                           2, v, NULL, NULL, 0, &r, error_r);
	if (st != MV_OK)
		return st;
	GPtrArray *reasons = g_ptr_array_new();
	for (int i = 0; i < PQntuples(r); i++) {
		*visible_r = PQgetvalue(r, i, 0)[0] == 't';
		g_ptr_array_add(reasons, g_strdup(PQgetvalue(r, i, 1)));
	}
	g_ptr_array_add(reasons, NULL);
	*reasons_r = (char **)g_ptr_array_free(reasons, FALSE);
	PQclear(r);
	return MV_OK;
}

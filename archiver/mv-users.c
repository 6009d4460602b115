/* mv-users: database roles for the operating-system users of the embedded
 * cluster. */
#include "mv-users.h"

#include <pwd.h>
#include <string.h>

#include "mv-cluster.h"

static const char *const known_roles[] = {"ingest", "legal", "auditor", "purge", "employee", NULL};

void mv_user_free(gpointer p)
{
	mv_user *u = p;
	if (u == NULL)
		return;
	g_free(u->role);
	g_free(u->os_user);
	g_free(u->roles);
	g_free(u->added_by);
	g_free(u->added_at);
	g_free(u->removed_at);
	g_free(u);
}

gboolean mv_users_role_known(const char *name)
{
	return name != NULL && g_strv_contains(known_roles, name);
}

/* The cluster at home, which this process must own. */
static mv_status owned_cluster(const char *home, mv_cluster **c_r, char **error_r)
{
	mv_status st = mv_cluster_new(home, c_r, error_r);
	if (st == MV_OK && !mv_cluster_is_owner(*c_r)) {
		st = mv_fail(error_r, MV_ERR_DENIED,
		             "only the owner of the embedded database in %s (or root) manages its users",
		             mv_cluster_home(*c_r));
		mv_cluster_free(c_r);
	}
	return st;
}

mv_status mv_users_add(mv_db *db, const char *home, const char *os_user, const char *const *roles,
                       guint n_roles, const char *const *addresses, guint n_addresses,
                       const char *actor, gboolean *socket_closed_r, char **error_r)
{
	*socket_closed_r = FALSE;
	if (n_roles == 0)
		return mv_fail(error_r, MV_ERR_USAGE, "give the user a role: --role ingest|legal|auditor|purge|employee");
	for (guint i = 0; i < n_roles; i++)
		if (!mv_users_role_known(roles[i]))
			return mv_fail(error_r, MV_ERR_USAGE,
			               "unknown role '%s' (ingest, legal, auditor, purge or employee)", roles[i]);
	if (getpwnam(os_user) == NULL)
		return mv_fail(error_r, MV_ERR_NOT_FOUND, "no operating-system user %s", os_user);
	mv_cluster *c = NULL;
	mv_status st = owned_cluster(home, &c, error_r);
	if (st != MV_OK)
		return st;
	const char *service = mv_cluster_service_user(c);
	if (strcmp(os_user, "root") == 0 || g_strcmp0(os_user, service) == 0) {
		st = mv_fail(error_r, MV_ERR_USAGE,
		             "%s runs the embedded database and logs in as its owner already", os_user);
		mv_cluster_free(&c);
		return st;
	}
	GString *groups = g_string_new("{");
	for (guint i = 0; i < n_roles; i++) {
		char *g = g_strconcat("mailvault_", roles[i], NULL);
		mv_db_array_text(groups, g);
		g_free(g);
	}
	g_string_append_c(groups, '}');
	const char *v[] = {os_user, groups->str, actor};
	PGresult *r = NULL;
	st = mv_db_exec(db, "BEGIN", error_r);
	if (st == MV_OK)
		st = mv_db_query(db, "SELECT mv_user_add($1, $1, $2::text[], $3)", 3, v, NULL, NULL, 0,
		                 &r, error_r);
	PQclear(r);
	for (guint i = 0; st == MV_OK && i < n_addresses; i++) {
		const char *a[] = {os_user, addresses[i], actor};
		r = NULL;
		st = mv_db_query(db, "SELECT mv_access_grant_address($1, $2, $3)", 3, a, NULL, NULL, 0,
		                 &r, error_r);
		PQclear(r);
	}
	st = mv_db_end(db, st, error_r);
	/* The role exists before the map lets anyone log in as it. */
	if (st == MV_OK)
		st = mv_cluster_map_user(c, os_user, os_user, TRUE, error_r);
	if (st == MV_OK)
		*socket_closed_r = !mv_cluster_socket_open(c);
	g_string_free(groups, TRUE);
	mv_cluster_free(&c);
	return st;
}

mv_status mv_users_remove(mv_db *db, const char *home, const char *os_user, const char *actor,
                          char **error_r)
{
	mv_cluster *c = NULL;
	mv_status st = owned_cluster(home, &c, error_r);
	if (st != MV_OK)
		return st;
	const char *v[] = {os_user, actor};
	PGresult *r = NULL;
	st = mv_db_exec(db, "BEGIN", error_r);
	if (st == MV_OK)
		st = mv_db_query(db, "SELECT 1 FROM peer_user WHERE role = $1 AND removed_at IS NULL", 1,
		                 v, NULL, NULL, 0, &r, error_r);
	if (st == MV_OK && PQntuples(r) == 0)
		st = mv_fail(error_r, MV_ERR_NOT_FOUND, "no user %s (mailvault user list)", os_user);
	PQclear(r);
	r = NULL;
	/* The map goes first: from here on nobody logs in as the role. */
	if (st == MV_OK)
		st = mv_cluster_map_user(c, os_user, NULL, FALSE, error_r);
	if (st == MV_OK)
		st = mv_db_query(db, "SELECT mv_user_remove($1, $2)", 2, v, NULL, NULL, 0, &r, error_r);
	PQclear(r);
	st = mv_db_end(db, st, error_r);
	mv_cluster_free(&c);
	return st;
}

mv_status mv_users_list(mv_db *db, GPtrArray **users_r, char **error_r)
{
	*users_r = NULL;
	PGresult *r = NULL;
	mv_status st = mv_db_query(
		db,
		"SELECT role, os_user, array_to_string(ARRAY(SELECT substr(g, 11) FROM unnest(groups) g), ','), "
		"added_by, " MV_SQL_ISO_UTC("added_at") ", " MV_SQL_ISO_UTC("removed_at") " "
		"FROM peer_user ORDER BY role",
		0, NULL, NULL, NULL, 0, &r, error_r);
	if (st != MV_OK)
		return st;
	GPtrArray *out = g_ptr_array_new_with_free_func(mv_user_free);
	for (int i = 0; i < PQntuples(r); i++) {
		mv_user *u = g_new0(mv_user, 1);
#define COL(n) (PQgetisnull(r, i, n) ? NULL : g_strdup(PQgetvalue(r, i, n)))
		u->role = COL(0);
		u->os_user = COL(1);
		u->roles = COL(2);
		u->added_by = COL(3);
		u->added_at = COL(4);
		u->removed_at = COL(5);
#undef COL
		g_ptr_array_add(out, u);
	}
	PQclear(r);
	*users_r = out;
	return MV_OK;
}

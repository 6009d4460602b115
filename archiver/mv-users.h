/* mv-users: the people of the embedded cluster (`mailvault user`).
 *
 * On the embedded cluster every login is authenticated by the operating
 * system (peer, see mv-cluster.h).  Adding a user gives operating-system
 * user NAME a database role of the same name, granted one or more of the
 * group roles of docs/database-roles.md (mailvault_ingest, _legal,
 * _auditor, _purge), and the line of pg_ident.conf that lets NAME, and only
 * NAME, log in as it; the table peer_user (schema/015-reviewers.sql) keeps
 * the same map, so that the database can name the person behind a role
 * (review decisions record it).  Removing a user takes the line and the
 * group roles away; the role stays, NOLOGIN, since records name it.
 * Both are audit entries (user.add, user.remove).  Only the owner of the
 * cluster may do either.
 *
 * Ownership: mv_user values in a GPtrArray with its free function set. */
#ifndef MV_USERS_H
#define MV_USERS_H

#include "mv-db.h"

typedef struct {
	char *role;        /* the database role */
	char *os_user;     /* the operating-system user mapped to it */
	char *roles;       /* comma-separated short group names: "legal,auditor" */
	char *added_by, *added_at;
	char *removed_at;  /* NULL while the user may log in */
} mv_user;

void mv_user_free(gpointer user);

/* Whether name is one of the short group names ingest, legal, auditor,
 * purge, employee. */
gboolean mv_users_role_known(const char *name);

/* Add (or extend) os_user with the groups roles[0..n) (short names), in
 * the embedded cluster at home (NULL: the default) that db is connected
 * to as its owner.  MV_ERR_NOT_FOUND: no such operating-system user;
 * MV_ERR_USAGE: an unknown group, or the owner's own users (root, the
 * service user), who log in as the owner role already.
 * addresses[0..n_addresses): e-mail addresses granted to the role in the
 * same transaction (schema/019-access.sql: an employee sees the messages
 * where one of them appears).
 * *socket_closed_r: the running server was started by an older mailvault,
 * whose socket only its owner can reach; it must be restarted once. */
mv_status mv_users_add(mv_db *db, const char *home, const char *os_user, const char *const *roles,
                       guint n_roles, const char *const *addresses, guint n_addresses,
                       const char *actor, gboolean *socket_closed_r,
                       char **error_r) MV_WARN_UNUSED;

/* Take os_user's access away.  MV_ERR_NOT_FOUND when it has none. */
mv_status mv_users_remove(mv_db *db, const char *home, const char *os_user, const char *actor,
                          char **error_r) MV_WARN_UNUSED;

/* Every user ever added, by name. */
mv_status mv_users_list(mv_db *db, GPtrArray **users_r, char **error_r) MV_WARN_UNUSED;

#endif

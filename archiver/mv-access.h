/* mv-access: who may see which messages (schema/019-access.sql).
 *
 * Row-level security in PostgreSQL decides; this module only writes the
 * grants it reads (addresses granted to an employee's role, holds granted
 * to an auditor's role) through the database's own functions, which check
 * them and write the audit entries (access.grant, access.revoke), and asks
 * the database why a role sees a message or not.  Granting is the legal
 * role's (and the owner's).
 *
 * Ownership: mv_access_grant values in a GPtrArray with its free function
 * set; reasons a NULL-terminated vector (g_strfreev). */
#ifndef MV_ACCESS_H
#define MV_ACCESS_H

#include "mv-db.h"

typedef enum { MV_ACCESS_ADDRESS, MV_ACCESS_CASE } mv_access_kind;

typedef struct {
	char *role;
	mv_access_kind kind;
	char *what;       /* the address, or the hold's name */
	char *granted_by, *granted_at;
} mv_access_grant;

void mv_access_grant_free(gpointer grant);

/* Grant (grant TRUE) or revoke role's access to an address or a hold.
 * *changed_r: FALSE when it was granted already (or not granted).
 * MV_ERR_NOT_FOUND: no such login role or hold; MV_ERR_USAGE: not an
 * address; MV_ERR_DENIED: the caller's role may not grant. */
mv_status mv_access_set(mv_db *db, gboolean grant, mv_access_kind kind, const char *role,
                        const char *what, const char *actor, gboolean *changed_r,
                        char **error_r) MV_WARN_UNUSED;

/* The grants of role (NULL: of everyone), by role, kind, what. */
mv_status mv_access_list(mv_db *db, const char *role, GPtrArray **grants_r, char **error_r)
	MV_WARN_UNUSED;

/* Whether role sees message id, and why (one reason a line). */
mv_status mv_access_check(mv_db *db, const char *role, gint64 id, gboolean *visible_r,
                          char ***reasons_r, char **error_r) MV_WARN_UNUSED;

#endif

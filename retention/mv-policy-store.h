/* mv-policy-store: policy versions in PostgreSQL (table policy).
 *
 * Loading a policy parses and checks it, refuses it when it would shorten
 * or remove a locked class of the current version, and stores the exact
 * bytes, their SHA-256, the file name, who loaded it and when as the next
 * version.  The newest version is the current policy.
 *
 * Ownership: policies returned are new (mv_policy_free); version rows are
 * mv_policy_version* in a GPtrArray with its free function set. */
#ifndef MV_POLICY_STORE_H
#define MV_POLICY_STORE_H

#include "mv-db.h"
#include "mv-policy.h"

typedef struct {
	gint64 version;
	char *name, *sha256, *source_file, *loaded_by, *loaded_at;
	char *label;    /* the --by label, or NULL */
	char *db_role;  /* the database role that loaded it (NULL before schema 015) */
} mv_policy_version;

void mv_policy_version_free(gpointer version);

/* The current policy, or *policy_r NULL and *version_r 0 when none. */
mv_status mv_policy_store_current(mv_db *db, mv_policy **policy_r, gint64 *version_r,
                                  char **error_r) MV_WARN_UNUSED;
/* Version `version` (MV_ERR_NOT_FOUND when absent); *xml_r: g_free. */
mv_status mv_policy_store_get(mv_db *db, gint64 version, mv_policy **policy_r, char **xml_r,
                              char **error_r) MV_WARN_UNUSED;
/* Every check `policy load` makes of the file at path, without storing
 * it: mv_policy_parse_file, no NUL byte, and, when db is not NULL, the
 * successor check against the current version (*current_version_r: the
 * version checked against, 0 when none is loaded).  Problems (FILE:LINE:
 * ...) are appended to problems.  On success *next_r (may be NULL) is the
 * parsed policy and *current_r (may be NULL) the current one (or NULL). */
mv_status mv_policy_store_check(mv_db *db, const char *path, mv_policy **next_r,
                                mv_policy **current_r, gint64 *current_version_r,
                                GPtrArray *problems, char **error_r) MV_WARN_UNUSED;

/* Check (mv_policy_store_check, under a lock so two loads cannot both pass
 * against the same version) and store the file at path as the next
 * version, loaded by actor (the audit actor, mv_audit_actor) with an
 * optional label (--by).  Problems (FILE:LINE: ...) are appended to
 * problems; the current policy stays in force on any failure.  *previous_r
 * (may be NULL): the version it replaced (or NULL) and its number in
 * *previous_version_r (0: none), *loaded_r (may be NULL): the version
 * loaded. */
mv_status mv_policy_store_load(mv_db *db, const char *path, const char *actor, const char *label,
                               gint64 *version_r, mv_policy **previous_r,
                               gint64 *previous_version_r, mv_policy **loaded_r,
                               GPtrArray *problems, char **error_r) MV_WARN_UNUSED;
/* Every version, oldest first. */
mv_status mv_policy_store_history(mv_db *db, GPtrArray **versions_r, char **error_r)
	MV_WARN_UNUSED;

#endif

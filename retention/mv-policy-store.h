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
} mv_policy_version;

void mv_policy_version_free(gpointer version);

/* The current policy, or *policy_r NULL and *version_r 0 when none. */
mv_status mv_policy_store_current(mv_db *db, mv_policy **policy_r, gint64 *version_r,
                                  char **error_r) MV_WARN_UNUSED;
/* Version `version` (MV_ERR_NOT_FOUND when absent); *xml_r: g_free. */
mv_status mv_policy_store_get(mv_db *db, gint64 version, mv_policy **policy_r, char **xml_r,
                              char **error_r) MV_WARN_UNUSED;
/* Parse, check against the current version and store the file at path.
 * Problems (FILE:LINE: ...) are appended to problems; the current policy
 * stays in force on any failure. */
mv_status mv_policy_store_load(mv_db *db, const char *path, const char *loaded_by,
                               gint64 *version_r, GPtrArray *problems, char **error_r)
	MV_WARN_UNUSED;
/* Every version, oldest first. */
mv_status mv_policy_store_history(mv_db *db, GPtrArray **versions_r, char **error_r)
	MV_WARN_UNUSED;

#endif

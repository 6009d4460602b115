/* mv-directory: database roles from the company directory (LDAP, Active
 * Directory), `mailvault user sync`.
 *
 * PostgreSQL authenticates directory users itself (pg_hba.conf method
 * ldap; on the embedded cluster `mailvault db directory`): mailvault stores
 * no password.  A sync reads, with libldap, the members of the directory
 * groups mapped to mailvault's roles (groupOfNames / groupOfUniqueNames /
 * AD group "member" DNs, posixGroup "memberUid"), each member's login name
 * (uid, or sAMAccountName for Active Directory) and addresses ("mail", and
 * "proxyAddresses" values with an smtp: or SMTP: prefix), and brings the
 * database to match (schema/026-directory.sql): a LOGIN role without a
 * password per user, granted the mapped group roles and their addresses
 * (an employee sees the messages where one appears); a user no longer in
 * any mapped group, or disabled in Active Directory (userAccountControl
 * bit 2), keeps their role NOLOGIN without group roles or the addresses a
 * sync gave.  Idempotent; one audit entry (user.sync) per user changed.
 * A mapped group the directory does not have is an error, not "nobody".
 *
 * Ownership: *changes_r is a GPtrArray of mv_directory_change with its free
 * function set. */
#ifndef MV_DIRECTORY_H
#define MV_DIRECTORY_H

#include "mv-db.h"

/* Bounds: a directory bigger than this is refused, not half-synced. */
#define MV_DIRECTORY_MAX_USERS 100000
#define MV_DIRECTORY_MAX_ADDRESSES 200 /* per user */

typedef struct {
	const char *uri;             /* ldap://host:port or ldaps://... */
	const char *base;            /* search base DN */
	const char *bind_dn;         /* NULL: anonymous */
	const char *bind_password;   /* with bind_dn */
	gboolean starttls;           /* StartTLS on an ldap:// URI */
	const char *login_attribute; /* NULL: "uid" (AD: sAMAccountName) */
	const char *const *groups;   /* group cn, or DN, ... */
	const char *const *roles;    /* ... and the short role it maps to */
	guint n_groups;
	gboolean dry_run;            /* say what would change; change nothing */
	const char *actor;
} mv_directory_options;

typedef struct {
	char *role;      /* the database role (the login name, lower case) */
	char *dn;        /* the directory entry; NULL for a removed user */
	char *action;    /* "created", "updated", "disabled", "unchanged" or "skipped" */
	char **changes;  /* what changed, or why it was skipped; NULL-terminated */
} mv_directory_change;

void mv_directory_change_free(gpointer change);

mv_status mv_directory_sync(mv_db *db, const mv_directory_options *options,
                            GPtrArray **changes_r, char **error_r) MV_WARN_UNUSED;

#endif

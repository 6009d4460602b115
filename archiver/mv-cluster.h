/* mv-cluster: the embedded default database, a private PostgreSQL cluster
 * that mailvault initialises and runs itself under its home directory:
 *
 *   HOME/pgdata        the cluster (initdb), owned by the service user
 *   HOME/run           its Unix socket (listen_addresses = '', mode 0700)
 *   HOME/postgres.log  the server log
 *
 * PostgreSQL refuses to run as root: when mailvault runs as root, the server
 * programs run as an unprivileged system user (MAILVAULT_USER, default
 * "mailvault"), created with useradd when missing.
 *
 * Authentication is peer only: the socket may be reached by anyone, and
 * pg_ident.conf (map "mailvault") lets the service user and root log in as
 * the owner role mailvault, and each person added with `mailvault user add`
 * as the role of their own name.  The owner of the cluster (root, or the
 * user its data directory belongs to) initialises, starts, stops and
 * migrates it; anyone else is a guest, who only connects, as their own role.
 *
 * Ownership: mv_cluster_new returns a new cluster handle in *cluster_r, freed
 * by mv_cluster_free; strings returned by getters belong to the handle. */
#ifndef MV_CLUSTER_H
#define MV_CLUSTER_H

#include <glib.h>

#include "mv-status.h"

typedef struct mv_cluster mv_cluster;

#define MV_DB_NAME "mailvault"

/* The home directory used when none is given: $MAILVAULT_HOME, else
 * /var/lib/mailvault for root, else $XDG_DATA_HOME/mailvault or
 * ~/.local/share/mailvault.  Returns a new string (g_free). */
char *mv_cluster_default_home(void);

/* Resolve paths and the PostgreSQL server programs for home (NULL: the
 * default home).  Does not touch the disk beyond looking. */
mv_status mv_cluster_new(const char *home, mv_cluster **cluster_r, char **error_r) MV_WARN_UNUSED;
void mv_cluster_free(mv_cluster **cluster);

const char *mv_cluster_home(const mv_cluster *cluster);
const char *mv_cluster_socket_dir(const mv_cluster *cluster);
const char *mv_cluster_log_path(const mv_cluster *cluster);
/* Whether this process owns the cluster (root, or the owner of its data
 * directory, or nobody yet); the name of the user it runs as. */
gboolean mv_cluster_is_owner(const mv_cluster *cluster);
const char *mv_cluster_login(const mv_cluster *cluster);
/* The operating-system user the server runs as (NULL for a guest, who
 * cannot tell). */
const char *mv_cluster_service_user(const mv_cluster *cluster);
/* libpq connection string for database dbname on the cluster's socket, as
 * the owner role (the owner) or as the role named after the user (a guest). */
char *mv_cluster_conninfo(const mv_cluster *cluster, const char *dbname);

gboolean mv_cluster_is_initialised(const mv_cluster *cluster);
gboolean mv_cluster_is_running(const mv_cluster *cluster);

/* initdb (if not yet done), settings, and the mailvault database.  Starts
 * the server to create the database and leaves it running. */
mv_status mv_cluster_init(mv_cluster *cluster, char **error_r) MV_WARN_UNUSED;
/* Start the server (no-op when running); waits until it accepts connections. */
mv_status mv_cluster_start(mv_cluster *cluster, char **error_r) MV_WARN_UNUSED;
/* Stop the server (fast shutdown; no-op when stopped). */
mv_status mv_cluster_stop(mv_cluster *cluster, char **error_r) MV_WARN_UNUSED;
/* Init, start and stop are the owner's: MV_ERR_DENIED for a guest. */

/* Let operating-system user os_user log in as database role role (add), or
 * no longer as any role (!add): pg_ident.conf, and a running server reloads
 * it (returns once new connections see it).  The owner's. */
mv_status mv_cluster_map_user(mv_cluster *cluster, const char *os_user, const char *role,
                              gboolean add, char **error_r) MV_WARN_UNUSED;
/* Whether the running server's socket lets every user connect (a cluster
 * started by an older mailvault does not until it is restarted). */
gboolean mv_cluster_socket_open(const mv_cluster *cluster);

/* Directory logins (docs/access.md): a TCP listener on address listen,
 * port `port`, whose connections from allow (an address/prefix; NULL: the
 * listen address alone) PostgreSQL authenticates against LDAP with the
 * options of pg_hba.conf's ldap method (ldap_options: ldapurl=... or
 * ldapserver=... ldapbasedn=... ldapsearchattribute=...); the owner role
 * never logs in that way.  Kept in HOME/directory.conf (which tells guests
 * the port too); listen NULL removes it.  A running server is restarted.
 * The owner's only. */
mv_status mv_cluster_set_directory(mv_cluster *cluster, const char *listen, int port,
                                   const char *allow, const char *ldap_options,
                                   char **error_r) MV_WARN_UNUSED;

/* The directory listener's address (NULL: none) and the port. */
const char *mv_cluster_directory_listen(const mv_cluster *cluster, int *port_r);

#endif

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
/* libpq connection string for database dbname on the cluster's socket. */
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

#endif

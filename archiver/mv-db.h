/* mv-db: the PostgreSQL connection, schema migrations and query helpers.
 *
 * Which database: an explicit conninfo (--db), else $MAILVAULT_DB, else the
 * PG* environment when PGHOST, PGDATABASE or PGSERVICE is set, else the
 * embedded default cluster under the home directory (see mv-cluster.h),
 * which is initialised, started and migrated on first use.  An external
 * database is never migrated implicitly: `mailvault db migrate` does it.
 *
 * All SQL with values goes through parameterised calls.
 * Ownership: mv_db_open returns a handle freed by mv_db_close; PGresult
 * values returned through res_r belong to the caller (PQclear). */
#ifndef MV_DB_H
#define MV_DB_H

#include <glib.h>
#include <libpq-fe.h>

#include "mv-status.h"

typedef struct mv_db mv_db;

typedef struct {
	const char *home;      /* embedded cluster home, or NULL for the default */
	const char *conninfo;  /* explicit connection string, or NULL */
	gboolean no_migrate;   /* do not migrate the embedded cluster on open */
	gboolean no_start;     /* only connect to the embedded cluster: never
	                          initialise or start it (a daemon reconnecting
	                          after an outage must not restart a server an
	                          administrator stopped) */
	guint statement_timeout_ms; /* cancel any statement running longer (an
	                               interactive command's bound); 0: none */
	const char *actor;     /* mailvault.actor of the session (who acts, for
	                          the audit entries the database writes), or NULL */
} mv_db_options;

typedef struct {
	int version;
	const char *name;
	const char *sql;
} mv_migration;

/* The migrations compiled in from schema/NNN-name.sql, in order. */
extern const mv_migration mv_migrations[];
extern const int mv_migrations_count;

/* A read replica (a streaming-replication standby): reads go to replica,
 * writes (mv_db_writer: the audit entries of reads) to primary, which the
 * replica now owns and closes with itself. */
void mv_db_attach_primary(mv_db *replica, mv_db *primary);
/* The connection that writes go to: the attached primary, else db. */
mv_db *mv_db_writer(mv_db *db);
/* TRUE when db reads from a replica (mv_db_attach_primary). */
gboolean mv_db_is_replica(const mv_db *db);
/* How far a replica is behind its primary: WAL bytes received by the
 * primary but not yet replayed here, and seconds since the last replayed
 * transaction (-1 when nothing was replayed yet).  MV_ERR_CONFIG when db
 * is not a standby. */
mv_status mv_db_replica_lag(mv_db *db, gint64 *bytes_r, double *seconds_r, char **error_r)
	MV_WARN_UNUSED;

/* True when options select the embedded cluster: an explicit home and no
 * explicit conninfo, or no conninfo anywhere. */
gboolean mv_db_uses_embedded(const mv_db_options *options);

mv_status mv_db_open(const mv_db_options *options, mv_db **db_r, char **error_r) MV_WARN_UNUSED;
void mv_db_close(mv_db **db);

PGconn *mv_db_conn(mv_db *db);
/* Whether the connection is still usable. */
gboolean mv_db_connected(mv_db *db);
/* A description of where the database is, for messages (no password). */
const char *mv_db_describe(const mv_db *db);
/* The home directory the options named (NULL: none given, the default). */
const char *mv_db_home(const mv_db *db);

/* Apply every migration not yet recorded in schema_version, each in its own
 * transaction, under an advisory lock.  *applied_r (may be NULL) receives
 * the number applied. */
mv_status mv_db_migrate(mv_db *db, int *applied_r, char **error_r) MV_WARN_UNUSED;
/* Highest applied version (0: none). */
mv_status mv_db_schema_version(mv_db *db, int *version_r, char **error_r) MV_WARN_UNUSED;

/* Run a statement without parameters that returns no rows. */
mv_status mv_db_exec(mv_db *db, const char *sql, char **error_r) MV_WARN_UNUSED;

/* End the open transaction: COMMIT when st is MV_OK (returning COMMIT's
 * status), else ROLLBACK (returning st unchanged). */
mv_status mv_db_end(mv_db *db, mv_status st, char **error_r) MV_WARN_UNUSED;

/* SQL expression formatting a timestamptz column as ISO 8601 UTC to the
 * second ("2026-11-28T13:05:00Z"), for query text. */
#define MV_SQL_ISO_UTC(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

/* mv_db_query with text parameters lead[0..n_lead) followed by the
 * strings of more (char*, may be NULL): for SQL around a compiled query's
 * WHERE clause (mv_query_compile numbers its parameters after the lead). */
mv_status mv_db_query_params(mv_db *db, const char *sql, const char *const *lead, guint n_lead,
                             const GPtrArray *more, PGresult **res_r, char **error_r)
	MV_WARN_UNUSED;

/* PostgreSQL array literals for text parameters: start a GString with
 * "{", append elements (a comma is put between them), end with "}".  Text
 * elements are quoted and escaped; a NULL text element is NULL. */
void mv_db_array_text(GString *s, const char *v);
void mv_db_array_int(GString *s, gint64 v);
/* "{v[0],v[1],...}"; g_free. */
char *mv_db_int_array(const gint64 *v, guint n);

/* A binary-format result's int8 / int4 value (the caller checked the
 * length and that it is not NULL). */
gint64 mv_db_get_int8(const PGresult *r, int row, int col);
gint32 mv_db_get_int4(const PGresult *r, int row, int col);

/* Run a parameterised statement; values are text unless formats says
 * binary.  On success *res_r holds the result (PQclear it). */
mv_status mv_db_query(mv_db *db, const char *sql, int n_params, const char *const *values,
                      const int *lengths, const int *formats, int result_format,
                      PGresult **res_r, char **error_r) MV_WARN_UNUSED;

/* Like mv_db_query, for a statement run many times: prepared once per
 * connection under name (a static string naming this exact sql). */
mv_status mv_db_query_prepared(mv_db *db, const char *name, const char *sql, int n_params,
                               const char *const *values, const int *lengths,
                               const int *formats, int result_format, PGresult **res_r,
                               char **error_r) MV_WARN_UNUSED;

/* Prepare sql as name on this connection unless already done. */
mv_status mv_db_prepare(mv_db *db, const char *name, const char *sql, int n_params,
                        char **error_r) MV_WARN_UNUSED;

/* Pipeline mode: statements are sent without waiting for their results, so
 * the client's work overlaps the server's.  Each result is handed to
 * result_fn(context, tag, result) (result valid during the call only) in
 * order; failed statements are not, and the first error is returned by
 * mv_db_pipeline_end.  Statements sent by name must have been prepared
 * with mv_db_prepare first; name NULL sends sql unprepared. */
typedef void (*mv_db_result_fn)(void *context, void *tag, const PGresult *result);
mv_status mv_db_pipeline_begin(mv_db *db, mv_db_result_fn result_fn, void *context,
                               char **error_r) MV_WARN_UNUSED;
gboolean mv_db_in_pipeline(const mv_db *db);
mv_status mv_db_pipeline_send(mv_db *db, const char *name, const char *sql, int n_params,
                              const char *const *values, const int *lengths,
                              const int *formats, void *tag, char **error_r) MV_WARN_UNUSED;
/* Consume whatever results have arrived, without blocking. */
mv_status mv_db_pipeline_poll(mv_db *db, char **error_r) MV_WARN_UNUSED;
/* Send a sync, wait for every result, leave pipeline mode. */
mv_status mv_db_pipeline_end(mv_db *db, char **error_r) MV_WARN_UNUSED;

/* A statement whose result is not needed (an insert, a function call), in
 * the current transaction: queued in the pipeline when one is open, else
 * run at once.  Used by ingest hooks that run in either mode. */
mv_status mv_db_send(mv_db *db, const char *sql, int n_params, const char *const *values,
                     char **error_r) MV_WARN_UNUSED;

/* Map a failed result or connection to a status and message. */
mv_status mv_db_fail(mv_db *db, const PGresult *res, const char *what, char **error_r);
/* Whether the last failure (as seen by mv_db_fail) was a deadlock or a
 * serialization failure: the transaction may simply be run again. */
gboolean mv_db_failure_is_transient(const mv_db *db);
/* Whether the last failure was a statement cancelled by its timeout
 * (57014, query_canceled). */
gboolean mv_db_failure_is_timeout(const mv_db *db);

#endif

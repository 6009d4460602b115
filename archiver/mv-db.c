/* mv-db: connection selection, session settings and migrations. */
#include "mv-db.h"

#include <string.h>

#include "mv-cluster.h"

struct mv_db {
	PGconn *conn;
	char *describe;
	GHashTable *prepared; /* statement names prepared on this connection */
	/* pipeline state */
	gboolean piping;
	GQueue pending;       /* of pending_query* in send order */
	mv_db_result_fn result_fn;
	void *result_context;
	char *pipe_error;     /* first failure */
	mv_status pipe_status; /* and its status */
	char last_sqlstate[6]; /* of the last failure mv_db_fail saw, or "" */
	char *home;            /* --home as given (NULL: the default home) */
	mv_db *primary;        /* writes go here when this is a replica */
};

typedef struct {
	void *tag;
	gboolean is_sync;
} pending_query;

#define MIGRATION_LOCK_KEY 7231980411L

static const char *env_nonempty(const char *name)
{
	const char *v = g_getenv(name);
	return v != NULL && *v != '\0' ? v : NULL;
}

gboolean mv_db_uses_embedded(const mv_db_options *options)
{
	if (options->conninfo != NULL)
		return FALSE;
	if (options->home != NULL)
		return TRUE; /* an explicit --home means the embedded cluster */
	if (env_nonempty("MAILVAULT_DB") != NULL)
		return FALSE;
	return env_nonempty("PGHOST") == NULL && env_nonempty("PGDATABASE") == NULL &&
	       env_nonempty("PGSERVICE") == NULL;
}

static void quiet_notice(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

/* The session settings of every connection, the actor for the audit
 * entries the database writes itself (schema/013-record-guards.sql) and
 * the schema's state, in one round trip: a command's start-up used to be
 * five (docs/scaling.md).  $1 the statement timeout or NULL, $2 the actor
 * or NULL, $3 the number of migrations this binary embeds. */
#define SESSION_SETTINGS                                                                       \
	"SELECT set_config('client_min_messages', 'warning', false), "                             \
	"set_config('TimeZone', 'UTC', false), set_config('application_name', 'mailvault', false), " \
	"CASE WHEN $1::text IS NOT NULL THEN set_config('statement_timeout', $1::text, false) END, " \
	"CASE WHEN $2::text IS NOT NULL THEN set_config('mailvault.actor', $2::text, false) END, "  \
	"$3::int"
/* current: schema_version holds exactly the migrations 1..N this binary
 * embeds (a newer schema is left to mv_db_migrate's loop, which changes
 * nothing then, and to the version check of guests); version: the highest. */
#define SESSION_AND_SCHEMA                                                                     \
	SESSION_SETTINGS ", v.current, v.version FROM (SELECT "                                    \
	"count(*) FILTER (WHERE version BETWEEN 1 AND $3::int) = $3::int "                         \
	"AND coalesce(max(version), 0) = $3::int AS current, "                                     \
	"coalesce(max(version), 0) AS version FROM schema_version) v"

static mv_status session_start(mv_db *db, const mv_db_options *options, gboolean schema,
                               gboolean *current_r, int *version_r, char **error_r)
{
	*current_r = FALSE;
	*version_r = 0;
	char timeout[16], count[16];
	g_snprintf(timeout, sizeof timeout, "%u", options->statement_timeout_ms);
	g_snprintf(count, sizeof count, "%d", mv_migrations_count);
	const char *v[] = {options->statement_timeout_ms > 0 ? timeout : NULL, options->actor, count};
	PGresult *r = NULL;
	mv_status st;
	if (schema) {
		char *err = NULL;
		st = mv_db_query(db, SESSION_AND_SCHEMA, 3, v, NULL, NULL, 0, &r, &err);
		if (st == MV_OK) {
			*current_r = strcmp(PQgetvalue(r, 0, 6), "t") == 0;
			*version_r = (int)g_ascii_strtoll(PQgetvalue(r, 0, 7), NULL, 10);
			PQclear(r);
			return MV_OK;
		}
		/* 42P01 undefined_table: a database without schema_version (the
		 * failed statement set nothing): version 0, settings alone. */
		if (strcmp(db->last_sqlstate, "42P01") != 0) {
			if (error_r != NULL)
				*error_r = err;
			else
				g_free(err);
			return st;
		}
		g_free(err);
	}
	st = mv_db_query(db, SESSION_SETTINGS, 3, v, NULL, NULL, 0, &r, error_r);
	PQclear(r);
	return st;
}

mv_status mv_db_open(const mv_db_options *options, mv_db **db_r, char **error_r)
{
	*db_r = NULL;
	char *conninfo = NULL;
	char *describe = NULL;
	gboolean embedded = mv_db_uses_embedded(options);
	mv_status st = MV_OK;
	mv_cluster *cluster = NULL;
	/* A guest of the embedded cluster (not its owner) logs in as its own
	 * role and never initialises, starts or migrates it. */
	gboolean owner = TRUE;
	if (embedded) {
		st = mv_cluster_new(options->home, &cluster, error_r);
		if (st != MV_OK)
			return st;
		owner = mv_cluster_is_owner(cluster);
		if (owner && !options->no_start && !mv_cluster_is_initialised(cluster))
			st = mv_cluster_init(cluster, error_r);
		if (st != MV_OK) {
			mv_cluster_free(&cluster);
			return st;
		}
		conninfo = mv_cluster_conninfo(cluster, MV_DB_NAME);
		describe = g_strdup_printf("embedded database in %s", mv_cluster_home(cluster));
	} else {
		const char *ci = options->conninfo != NULL ? options->conninfo : env_nonempty("MAILVAULT_DB");
		conninfo = g_strdup(ci != NULL ? ci : "");
		describe = g_strdup("external database");
	}

	/* A running embedded server is simply connected to (no ping, no
	 * server programs looked up); only when that fails is it started. */
	PGconn *conn = PQconnectdb(conninfo);
	if (PQstatus(conn) != CONNECTION_OK && embedded && owner && !options->no_start) {
		PQfinish(conn);
		conn = NULL;
		st = mv_cluster_start(cluster, error_r);
		if (st == MV_OK)
			conn = PQconnectdb(conninfo);
	}
	if (st == MV_OK && PQstatus(conn) != CONNECTION_OK) {
		char *msg = g_strstrip(g_strdup(PQerrorMessage(conn)));
		char *nl = strchr(msg, '\n');
		if (nl != NULL)
			*nl = '\0';
		if (embedded && !owner && mv_cluster_is_running(cluster))
			/* The server answered and refused this user. */
			st = mv_fail(error_r, MV_ERR_DENIED,
			             "%s may not use the %s (%s); the administrator grants it with "
			             "mailvault user add %s --role ROLE", mv_cluster_login(cluster),
			             describe, msg, mv_cluster_login(cluster));
		else if (embedded && !owner)
			st = mv_fail(error_r, MV_ERR_DB,
			             "the %s is not running, and only its owner may start it "
			             "(mailvault db start)", describe);
		else
			st = mv_fail(error_r, MV_ERR_DB, "cannot connect to the %s: %s", describe, msg);
		g_free(msg);
	}
	mv_cluster_free(&cluster);
	g_free(conninfo);
	if (st != MV_OK) {
		g_free(describe);
		PQfinish(conn);
		return st;
	}
	PQsetNoticeProcessor(conn, quiet_notice, NULL);
	mv_db *db = g_new0(mv_db, 1);
	db->conn = conn;
	db->describe = describe;
	db->home = g_strdup(options->home);
	db->prepared = g_hash_table_new(g_str_hash, g_str_equal);
	gboolean owns = embedded && owner;
	gboolean current = FALSE;
	int version = 0;
	/* Every command opens the database: when the schema is complete (the
	 * usual case) the start-up query says so, and the migration loop, a
	 * locked transaction per migration, is not run at all. */
	st = session_start(db, options, !options->no_migrate, &current, &version, error_r);
	if (st == MV_OK && owns && !options->no_migrate && !current)
		st = mv_db_migrate(db, NULL, error_r);
	if (st == MV_OK && !owns && !options->no_migrate) {
		if (version < mv_migrations_count)
			st = mv_fail(error_r, MV_ERR_DB,
			             "the database schema is at version %d, this mailvault needs %d: "
			             "run mailvault db migrate", version, mv_migrations_count);
		else if (version > mv_migrations_count)
			st = mv_fail(error_r, MV_ERR_DB,
			             "the database schema (version %d) is newer than this mailvault (%d)",
			             version, mv_migrations_count);
	}
	if (st != MV_OK) {
		mv_db_close(&db);
		return st;
	}
	*db_r = db;
	return MV_OK;
}

void mv_db_attach_primary(mv_db *replica, mv_db *primary)
{
	mv_db_close(&replica->primary);
	replica->primary = primary;
}

mv_db *mv_db_writer(mv_db *db)
{
	return db->primary != NULL ? db->primary : db;
}

gboolean mv_db_is_replica(const mv_db *db)
{
	return db->primary != NULL;
}

mv_status mv_db_replica_lag(mv_db *db, gint64 *bytes_r, double *seconds_r, char **error_r)
{
	*bytes_r = 0;
	*seconds_r = -1;
	if (db->primary == NULL)
		return mv_fail(error_r, MV_ERR_CONFIG, "not reading from a replica");
	PGresult *r = NULL;
	mv_status st = mv_db_query(db->primary, "SELECT pg_current_wal_lsn()::text", 0, NULL, NULL,
	                           NULL, 0, &r, error_r);
	if (st != MV_OK)
		return st;
	char *lsn = g_strdup(PQgetvalue(r, 0, 0));
	PQclear(r);
	const char *v[] = {lsn};
	st = mv_db_query(db,
	                 "SELECT pg_is_in_recovery(), "
	                 "greatest(pg_wal_lsn_diff($1::pg_lsn, pg_last_wal_replay_lsn()), 0)::bigint, "
	                 "extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp())",
	                 1, v, NULL, NULL, 0, &r, error_r);
	g_free(lsn);
	if (st != MV_OK)
		return st;
	if (strcmp(PQgetvalue(r, 0, 0), "t") != 0)
		st = mv_fail(error_r, MV_ERR_CONFIG, "the read database is not a standby (it is not in recovery)");
	else {
		*bytes_r = PQgetisnull(r, 0, 1) ? 0 : g_ascii_strtoll(PQgetvalue(r, 0, 1), NULL, 10);
		*seconds_r = PQgetisnull(r, 0, 2) ? -1 : g_ascii_strtod(PQgetvalue(r, 0, 2), NULL);
	}
	PQclear(r);
	return st;
}

const char *mv_db_home(const mv_db *db)
{
	return db->home;
}

void mv_db_close(mv_db **db)
{
	if (db == NULL || *db == NULL)
		return;
	mv_db_close(&(*db)->primary);
	PQfinish((*db)->conn);
	g_free((*db)->describe);
	g_free((*db)->home);
	g_hash_table_destroy((*db)->prepared);
	g_queue_clear_full(&(*db)->pending, g_free);
	g_free((*db)->pipe_error);
	g_free(*db);
	*db = NULL;
}

PGconn *mv_db_conn(mv_db *db)
{
	return db->conn;
}

const char *mv_db_describe(const mv_db *db)
{
	return db->describe;
}

/* SQLSTATE 42501, insufficient_privilege: the role lacks a grant;
 * 57014, query_canceled: the statement timeout ran out. */
static mv_status result_status(const PGresult *res)
{
	const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	if (state != NULL && strcmp(state, "42501") == 0)
		return MV_ERR_DENIED;
	if (state != NULL && strcmp(state, "57014") == 0)
		return MV_ERR_LIMIT;
	if (state != NULL && strcmp(state, "P0002") == 0) /* no_data_found, raised by our functions */
		return MV_ERR_NOT_FOUND;
	if (state != NULL && strcmp(state, "22023") == 0) /* invalid_parameter_value, likewise */
		return MV_ERR_USAGE;
	return MV_ERR_DB;
}
#define DENIED_HINT " (this database role lacks the grant; see docs/database-roles.md)"

mv_status mv_db_fail(mv_db *db, const PGresult *res, const char *what, char **error_r)
{
	const char *msg = res != NULL ? PQresultErrorMessage(res) : "";
	const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	g_strlcpy(db->last_sqlstate, state != NULL ? state : "", sizeof db->last_sqlstate);
	if (msg == NULL || *msg == '\0')
		msg = PQerrorMessage(db->conn);
	char *clean = g_strstrip(g_strdup(msg));
	char *nl = strchr(clean, '\n');
	if (nl != NULL)
		*nl = '\0';
	mv_status st = mv_fail(error_r, result_status(res), "%s: %s%s", what, clean,
	                       result_status(res) == MV_ERR_DENIED ? DENIED_HINT
	                       : result_status(res) == MV_ERR_LIMIT
	                               ? " (longer than the statement timeout, MAILVAULT_STATEMENT_TIMEOUT)"
	                               : "");
	g_free(clean);
	return st;
}

mv_status mv_db_query_params(mv_db *db, const char *sql, const char *const *lead, guint n_lead,
                             const GPtrArray *more, PGresult **res_r, char **error_r)
{
	guint n_more = more != NULL ? more->len : 0;
	const char **values = g_new0(const char *, MAX(n_lead + n_more, 1));
	for (guint i = 0; i < n_lead; i++)
		values[i] = lead[i];
	for (guint i = 0; i < n_more; i++)
		values[n_lead + i] = more->pdata[i];
	mv_status st = mv_db_query(db, sql, (int)(n_lead + n_more), values, NULL, NULL, 0, res_r,
	                           error_r);
	g_free(values);
	return st;
}

static void array_sep(GString *s)
{
	if (s->len > 1)
		g_string_append_c(s, ',');
}

void mv_db_array_text(GString *s, const char *v)
{
	array_sep(s);
	if (v == NULL) {
		g_string_append(s, "NULL");
		return;
	}
	g_string_append_c(s, '"');
	for (const char *p = v; *p;) {
		size_t plain = strcspn(p, "\"\\");
		g_string_append_len(s, p, (gssize)plain);
		p += plain;
		if (*p) {
			g_string_append_c(s, '\\');
			g_string_append_c(s, *p++);
		}
	}
	g_string_append_c(s, '"');
}

void mv_db_array_int(GString *s, gint64 v)
{
	array_sep(s);
	g_string_append_printf(s, "%" G_GINT64_FORMAT, v);
}

char *mv_db_int_array(const gint64 *v, guint n)
{
	GString *s = g_string_new("{");
	for (guint i = 0; i < n; i++)
		mv_db_array_int(s, v[i]);
	g_string_append_c(s, '}');
	return g_string_free(s, FALSE);
}

gboolean mv_db_failure_is_transient(const mv_db *db)
{
	/* 40001 serialization_failure, 40P01 deadlock_detected */
	return strcmp(db->last_sqlstate, "40001") == 0 || strcmp(db->last_sqlstate, "40P01") == 0;
}

gboolean mv_db_failure_is_timeout(const mv_db *db)
{
	return strcmp(db->last_sqlstate, "57014") == 0;
}

gint64 mv_db_get_int8(const PGresult *r, int row, int col)
{
	guint64 be;
	memcpy(&be, PQgetvalue(r, row, col), 8);
	return (gint64)GUINT64_FROM_BE(be);
}

gint32 mv_db_get_int4(const PGresult *r, int row, int col)
{
	guint32 be;
	memcpy(&be, PQgetvalue(r, row, col), 4);
	return (gint32)GUINT32_FROM_BE(be);
}

mv_status mv_db_exec(mv_db *db, const char *sql, char **error_r)
{
	PGresult *r = PQexec(db->conn, sql);
	ExecStatusType s = PQresultStatus(r);
	mv_status st = MV_OK;
	if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK)
		st = mv_db_fail(db, r, "database command failed", error_r);
	PQclear(r);
	return st;
}

mv_status mv_db_end(mv_db *db, mv_status st, char **error_r)
{
	if (st == MV_OK)
		return mv_db_exec(db, "COMMIT", error_r);
	PQclear(PQexec(db->conn, "ROLLBACK"));
	return st;
}

mv_status mv_db_query(mv_db *db, const char *sql, int n_params, const char *const *values,
                      const int *lengths, const int *formats, int result_format,
                      PGresult **res_r, char **error_r)
{
	*res_r = NULL;
	PGresult *r = PQexecParams(db->conn, sql, n_params, NULL, values, lengths, formats,
	                           result_format);
	ExecStatusType s = PQresultStatus(r);
	if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
		mv_status st = mv_db_fail(db, r, "database query failed", error_r);
		PQclear(r);
		return st;
	}
	*res_r = r;
	return MV_OK;
}

mv_status mv_db_prepare(mv_db *db, const char *name, const char *sql, int n_params,
                        char **error_r)
{
	if (g_hash_table_contains(db->prepared, name))
		return MV_OK;
	PGresult *p = PQprepare(db->conn, name, sql, n_params, NULL);
	if (PQresultStatus(p) != PGRES_COMMAND_OK) {
		mv_status st = mv_db_fail(db, p, "cannot prepare a statement", error_r);
		PQclear(p);
		return st;
	}
	PQclear(p);
	g_hash_table_add(db->prepared, (gpointer)name);
	return MV_OK;
}

mv_status mv_db_pipeline_begin(mv_db *db, mv_db_result_fn result_fn, void *context,
                               char **error_r)
{
	if (db->piping || PQenterPipelineMode(db->conn) != 1)
		return mv_db_fail(db, NULL, "cannot enter pipeline mode", error_r);
	db->piping = TRUE;
	g_queue_init(&db->pending);
	db->result_fn = result_fn;
	db->result_context = context;
	g_clear_pointer(&db->pipe_error, g_free);
	return MV_OK;
}

gboolean mv_db_in_pipeline(const mv_db *db)
{
	return db->piping;
}

static void pipe_note_error(mv_db *db, const PGresult *r)
{
	if (db->pipe_error != NULL)
		return;
	const char *msg = r != NULL ? PQresultErrorMessage(r) : NULL;
	if (msg == NULL || *msg == '\0')
		msg = PQerrorMessage(db->conn);
	char *clean = g_strstrip(g_strdup(msg));
	char *nl = strchr(clean, '\n');
	if (nl != NULL)
		*nl = '\0';
	db->pipe_error = clean;
	db->pipe_status = result_status(r);
	const char *state = r != NULL ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	g_strlcpy(db->last_sqlstate, state != NULL ? state : "", sizeof db->last_sqlstate);
}

mv_status mv_db_pipeline_send(mv_db *db, const char *name, const char *sql, int n_params,
                              const char *const *values, const int *lengths,
                              const int *formats, void *tag, char **error_r)
{
	int ok = name != NULL
	             ? PQsendQueryPrepared(db->conn, name, n_params, values, lengths, formats, 0)
	             : PQsendQueryParams(db->conn, sql, n_params, NULL, values, lengths, formats, 0);
	if (ok != 1)
		return mv_db_fail(db, NULL, "cannot send a statement", error_r);
	pending_query *q = g_new0(pending_query, 1);
	q->tag = tag;
	g_queue_push_tail(&db->pending, q);
	return MV_OK;
}

gboolean mv_db_connected(mv_db *db)
{
	return db != NULL && PQstatus(db->conn) == CONNECTION_OK;
}

mv_status mv_db_send(mv_db *db, const char *sql, int n_params, const char *const *values,
                     char **error_r)
{
	if (mv_db_in_pipeline(db))
		return mv_db_pipeline_send(db, NULL, sql, n_params, values, NULL, NULL, NULL, error_r);
	PGresult *r = NULL;
	mv_status st = mv_db_query(db, sql, n_params, values, NULL, NULL, 0, &r, error_r);
	PQclear(r);
	return st;
}

/* Hand out results; with block FALSE only those already received. */
static mv_status pipe_drain(mv_db *db, gboolean block, char **error_r)
{
	int nulls = 0;
	while (!g_queue_is_empty(&db->pending)) {
		if (!block) {
			if (PQconsumeInput(db->conn) != 1)
				return mv_db_fail(db, NULL, "connection lost", error_r);
			if (PQisBusy(db->conn))
				return MV_OK;
		}
		pending_query *head = g_queue_peek_head(&db->pending);
		PGresult *r = PQgetResult(db->conn);
		if (r == NULL) {
			if (head->is_sync) {
				/* Between results a NULL is normal once; twice in a
				 * row while waiting for the sync means nothing more
				 * will come. */
				if (PQstatus(db->conn) != CONNECTION_OK || ++nulls > 2)
					return mv_db_fail(db, NULL, "connection lost", error_r);
				continue;
			}
			g_free(g_queue_pop_head(&db->pending));
			continue;
		}
		nulls = 0;
		ExecStatusType s = PQresultStatus(r);
		if (s == PGRES_PIPELINE_SYNC) {
			g_free(g_queue_pop_head(&db->pending));
		} else if (s == PGRES_FATAL_ERROR || s == PGRES_BAD_RESPONSE) {
			pipe_note_error(db, r);
		} else if (s == PGRES_PIPELINE_ABORTED) {
			/* skipped after an earlier error */
		} else if (head->tag != NULL && db->result_fn != NULL) {
			db->result_fn(db->result_context, head->tag, r);
		}
		PQclear(r);
	}
	return MV_OK;
}

mv_status mv_db_pipeline_poll(mv_db *db, char **error_r)
{
	return pipe_drain(db, FALSE, error_r);
}

mv_status mv_db_pipeline_end(mv_db *db, char **error_r)
{
	mv_status st = MV_OK;
	if (PQpipelineSync(db->conn) != 1) {
		st = mv_db_fail(db, NULL, "cannot sync the pipeline", error_r);
	} else {
		pending_query *q = g_new0(pending_query, 1);
		q->is_sync = TRUE;
		g_queue_push_tail(&db->pending, q);
		st = pipe_drain(db, TRUE, error_r);
	}
	g_queue_clear_full(&db->pending, g_free);
	if (PQexitPipelineMode(db->conn) != 1 && st == MV_OK)
		st = mv_db_fail(db, NULL, "cannot leave pipeline mode", error_r);
	db->piping = FALSE;
	if (st == MV_OK && db->pipe_error != NULL)
		st = mv_fail(error_r, db->pipe_status, "%s%s", db->pipe_error,
		             db->pipe_status == MV_ERR_DENIED ? DENIED_HINT : "");
	g_clear_pointer(&db->pipe_error, g_free);
	return st;
}

mv_status mv_db_query_prepared(mv_db *db, const char *name, const char *sql, int n_params,
                               const char *const *values, const int *lengths,
                               const int *formats, int result_format, PGresult **res_r,
                               char **error_r)
{
	*res_r = NULL;
	if (!g_hash_table_contains(db->prepared, name)) {
		PGresult *p = PQprepare(db->conn, name, sql, n_params, NULL);
		if (PQresultStatus(p) != PGRES_COMMAND_OK) {
			mv_status st = mv_db_fail(db, p, "cannot prepare a statement", error_r);
			PQclear(p);
			return st;
		}
		PQclear(p);
		g_hash_table_add(db->prepared, (gpointer)name);
	}
	PGresult *r = PQexecPrepared(db->conn, name, n_params, values, lengths, formats,
	                             result_format);
	ExecStatusType s = PQresultStatus(r);
	if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
		mv_status st = mv_db_fail(db, r, "database query failed", error_r);
		PQclear(r);
		return st;
	}
	*res_r = r;
	return MV_OK;
}

mv_status mv_db_schema_version(mv_db *db, int *version_r, char **error_r)
{
	*version_r = 0;
	PGresult *r = NULL;
	mv_status st = mv_db_query(db, "SELECT to_regclass('schema_version') IS NOT NULL", 0, NULL,
	                           NULL, NULL, 0, &r, error_r);
	if (st != MV_OK)
		return st;
	gboolean exists = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
	PQclear(r);
	if (!exists)
		return MV_OK;
	st = mv_db_query(db, "SELECT coalesce(max(version), 0) FROM schema_version", 0, NULL, NULL,
	                 NULL, 0, &r, error_r);
	if (st != MV_OK)
		return st;
	*version_r = (int)g_ascii_strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return MV_OK;
}

mv_status mv_db_migrate(mv_db *db, int *applied_r, char **error_r)
{
	int applied = 0;
	if (applied_r != NULL)
		*applied_r = 0;
	for (int i = 0; i < mv_migrations_count; i++) {
		const mv_migration *m = &mv_migrations[i];
		mv_status st = mv_db_exec(db, "BEGIN", error_r);
		if (st != MV_OK)
			return st;
		st = mv_db_exec(db,
		                "SELECT pg_advisory_xact_lock(7231980411); "
		                "CREATE TABLE IF NOT EXISTS schema_version ("
		                " version integer PRIMARY KEY, name text NOT NULL,"
		                " applied_at timestamptz NOT NULL DEFAULT now())",
		                error_r);
		char version[16];
		g_snprintf(version, sizeof version, "%d", m->version);
		const char *params[] = {version, m->name};
		PGresult *r = NULL;
		if (st == MV_OK)
			st = mv_db_query(db, "SELECT 1 FROM schema_version WHERE version = $1", 1, params,
			                 NULL, NULL, 0, &r, error_r);
		gboolean done = r != NULL && PQntuples(r) > 0;
		PQclear(r);
		r = NULL; /* cleared again below when the migration fails */
		if (st == MV_OK && !done) {
			st = mv_db_exec(db, m->sql, error_r);
			if (st != MV_OK) {
				char *inner = *error_r;
				*error_r = NULL;
				st = mv_fail(error_r, MV_ERR_DB, "migration %s failed: %s", m->name, inner);
				g_free(inner);
			}
			if (st == MV_OK)
				st = mv_db_query(db, "INSERT INTO schema_version (version, name) VALUES ($1, $2)",
				                 2, params, NULL, NULL, 0, &r, error_r);
			PQclear(r);
			if (st == MV_OK)
				applied++;
		}
		if (st != MV_OK) {
			PQclear(PQexec(db->conn, "ROLLBACK"));
			return st;
		}
		st = mv_db_exec(db, "COMMIT", error_r);
		if (st != MV_OK)
			return st;
	}
	if (applied_r != NULL)
		*applied_r = applied;
	return MV_OK;
}

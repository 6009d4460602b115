/* mv-hold: creating, listing and releasing legal holds. */
#include "mv-hold.h"

#include <string.h>

#include "mv-audit.h"
#include "mv-catalog.h"
#include "mv-extract.h"
#include "mv-query.h"

void mv_hold_info_free(gpointer p)
{
	mv_hold_info *h = p;
	if (h == NULL)
		return;
	g_free(h->name);
	g_free(h->case_ref);
	g_free(h->reason);
	g_free(h->query);
	g_free(h->created_by);
	g_free(h->created_at);
	g_free(h->released_by);
	g_free(h->released_at);
	g_free(h->release_reason);
	g_free(h);
}

/* Run an ongoing hold's query the way ingest will, on the newest
 * MV_HOLD_TRIAL_BATCH messages, within MV_HOLD_TRIAL_MS. */
static mv_status ongoing_trial(mv_db *db, const char *query, char **error_r)
{
	mv_query_sql *q = NULL;
	mv_status st = mv_query_compile(query, 1, &q, error_r);
	if (st == MV_OK)
		st = mv_catalog_query_resolve(db, q, error_r);
	if (st != MV_OK) {
		mv_query_sql_free(&q);
		return st;
	}
	st = mv_db_exec(db, "BEGIN", error_r);
	if (st == MV_OK)
		st = mv_db_exec(db, "SET LOCAL statement_timeout = " G_STRINGIFY(MV_HOLD_TRIAL_MS), error_r);
	if (st == MV_OK) {
		char *sql = g_strdup_printf(
			"SELECT count(*) FROM message m WHERE m.sha256 = ANY (ARRAY("
			"SELECT sha256 FROM message ORDER BY id DESC LIMIT %d)) AND (%s)",
			MV_HOLD_TRIAL_BATCH, q->where);
		PGresult *r = NULL;
		st = mv_db_query_params(db, sql, NULL, 0, q->params, &r, error_r);
		PQclear(r);
		g_free(sql);
	}
	mv_query_sql_free(&q);
	mv_status end = mv_db_exec(db, "ROLLBACK", NULL);
	if (st == MV_ERR_LIMIT) {
		g_clear_pointer(error_r, g_free);
		return mv_fail(error_r, MV_ERR_LIMIT,
		               "the query is too slow for an ongoing hold: it must answer within %d ms "
		               "for a batch of %d new messages, as it runs in every ingest transaction "
		               "(narrow it, or create the hold without --ongoing)",
		               MV_HOLD_TRIAL_MS, MV_HOLD_TRIAL_BATCH);
	}
	return st != MV_OK ? st : end;
}

mv_status mv_hold_create(mv_db *db, const char *name, const char *case_ref, const char *reason,
                         const char *query, gboolean ongoing, const char *actor,
                         gint64 *held_r, gint64 *pending_r, char **error_r)
{
	*held_r = 0;
	*pending_r = 0;
	/* A name is printed by `hold list` and named in audit entries: 1 to
	 * 200 characters of valid UTF-8, none of them a control character
	 * (a terminal escape sequence could rewrite what an operator sees). */
	gboolean name_ok = name != NULL && *name != '\0' && g_utf8_validate(name, -1, NULL) &&
	                   g_utf8_strlen(name, -1) <= 200;
	for (const char *c = name; name_ok && *c != '\0'; c = g_utf8_next_char(c))
		if (g_unichar_iscntrl(g_utf8_get_char(c)))
			name_ok = FALSE;
	if (!name_ok)
		return mv_fail(error_r, MV_ERR_USAGE,
		               "a hold name is 1 to 200 printable characters (no control characters)");
	mv_query_sql *q = NULL;
	mv_status st = mv_query_compile(query, 2, &q, error_r);
	if (st == MV_OK)
		st = mv_catalog_query_resolve(db, q, error_r);
	if (st != MV_OK) {
		mv_query_sql_free(&q);
		return st;
	}
	if (ongoing) {
		st = ongoing_trial(db, query, error_r);
		if (st != MV_OK) {
			mv_query_sql_free(&q);
			return st;
		}
	}
	st = mv_db_exec(db, "BEGIN", error_r);
	PGresult *r = NULL;
	char *id = NULL;
	if (st == MV_OK) {
		const char *v[] = {name, case_ref, reason, query, ongoing ? "t" : "f", actor};
		r = PQexecParams(mv_db_conn(db),
		                 "INSERT INTO hold (name, case_ref, reason, query, ongoing, created_by) "
		                 "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO NOTHING RETURNING id",
		                 6, NULL, v, NULL, NULL, 0);
		if (PQresultStatus(r) != PGRES_TUPLES_OK)
			st = mv_db_fail(db, r, "cannot create the hold", error_r);
		else if (PQntuples(r) == 0)
			st = mv_fail(error_r, MV_ERR_USAGE, "a hold named '%s' exists already", name);
		else
			id = g_strdup(PQgetvalue(r, 0, 0));
		PQclear(r);
	}
	if (st == MV_OK) {
		char *sql = g_strdup_printf("INSERT INTO hold_item (hold_id, message_id) "
		                            "SELECT $1::integer, m.id FROM message m WHERE %s",
		                            q->where);
		const char *lead[] = {id};
		st = mv_db_query_params(db, sql, lead, 1, q->params, &r, error_r);
		if (st == MV_OK)
			*held_r = g_ascii_strtoll(PQcmdTuples(r), NULL, 10);
		PQclear(r);
		g_free(sql);
	}
	/* The messages whose attachment text is still to be read (ingest
	 * deferred it) and that a query with text terms did not match on
	 * their text so far: pending, settled once `index --reextract` has
	 * read them.  A query that reads no text has judged them already. */
	if (st == MV_OK && q->text_terms->len > 0) {
		const char *lead[] = {id};
		st = mv_db_query(db,
		                 "INSERT INTO hold_item (hold_id, message_id, pending) "
		                 "SELECT $1::integer, m.id, true FROM message m WHERE " MV_EXTRACT_AWAITING_SQL
		                 " ON CONFLICT DO NOTHING",
		                 1, lead, NULL, NULL, 0, &r, error_r);
		if (st == MV_OK)
			*pending_r = g_ascii_strtoll(PQcmdTuples(r), NULL, 10);
		PQclear(r);
	}
	if (st == MV_OK) {
		char *pending = *pending_r > 0 ? g_strdup_printf("\npending=%" G_GINT64_FORMAT, *pending_r)
		                               : g_strdup("");
		char *details = g_strdup_printf("case=%s\nreason=%s\nquery=%s\nongoing=%s\nmessages=%" G_GINT64_FORMAT
		                                "%s",
		                                case_ref, reason, query, ongoing ? "yes" : "no", *held_r,
		                                pending);
		g_free(pending);
		char *subject = g_strdup_printf("hold %s", name);
		st = mv_audit_append(db, actor, "hold.create", subject, details, NULL, error_r);
		g_free(details);
		g_free(subject);
	}
	st = mv_db_end(db, st, error_r);
	g_free(id);
	mv_query_sql_free(&q);
	return st;
}

mv_status mv_hold_release(mv_db *db, const char *name, const char *reason, const char *actor,
                          char **error_r)
{
	mv_status st = mv_db_exec(db, "BEGIN", error_r);
	PGresult *r = NULL;
	if (st == MV_OK) {
		const char *v[] = {name, actor, reason};
		st = mv_db_query(db,
		                 "UPDATE hold SET released_by = $2, released_at = now(), release_reason = $3 "
		                 "WHERE name = $1 AND released_at IS NULL",
		                 3, v, NULL, NULL, 0, &r, error_r);
		if (st == MV_OK && strcmp(PQcmdTuples(r), "1") != 0)
			st = mv_fail(error_r, MV_ERR_NOT_FOUND, "no active hold named '%s'", name);
		PQclear(r);
	}
	if (st == MV_OK) {
		char *subject = g_strdup_printf("hold %s", name);
		char *details = g_strdup_printf("reason=%s", reason);
		st = mv_audit_append(db, actor, "hold.release", subject, details, NULL, error_r);
		g_free(subject);
		g_free(details);
	}
	st = mv_db_end(db, st, error_r);
	return st;
}

#define HOLD_COLUMNS                                                                              \
	"h.name, h.case_ref, h.reason, h.query, h.ongoing, h.created_by, "                          \
	MV_SQL_ISO_UTC("h.created_at") ", h.released_by, "                                           \
	MV_SQL_ISO_UTC("h.released_at") ", "                                                         \
	"h.release_reason, (SELECT count(*) FROM hold_item i WHERE i.hold_id = h.id AND NOT i.pending), " \
	"(SELECT count(*) FROM hold_item i WHERE i.hold_id = h.id AND i.pending)"

static mv_hold_info *row(const PGresult *r, int i)
{
	mv_hold_info *h = g_new0(mv_hold_info, 1);
#define COL(n) (PQgetisnull(r, i, n) ? NULL : g_strdup(PQgetvalue(r, i, n)))
	h->name = COL(0);
	h->case_ref = COL(1);
	h->reason = COL(2);
	h->query = COL(3);
	h->ongoing = strcmp(PQgetvalue(r, i, 4), "t") == 0;
	h->created_by = COL(5);
	h->created_at = COL(6);
	h->released_by = COL(7);
	h->released_at = COL(8);
	h->release_reason = COL(9);
#undef COL
	h->messages = g_ascii_strtoll(PQgetvalue(r, i, 10), NULL, 10);
	h->pending = g_ascii_strtoll(PQgetvalue(r, i, 11), NULL, 10);
	return h;
}

mv_status mv_hold_list(mv_db *db, GPtrArray **holds_r, char **error_r)
{
	*holds_r = NULL;
	PGresult *r = NULL;
	mv_status st = mv_db_query(db, "SELECT " HOLD_COLUMNS " FROM hold h ORDER BY h.id", 0, NULL,
	                           NULL, NULL, 0, &r, error_r);
	if (st != MV_OK)
		return st;
	GPtrArray *out = g_ptr_array_new_with_free_func(mv_hold_info_free);
	for (int i = 0; i < PQntuples(r); i++)
		g_ptr_array_add(out, row(r, i));
	PQclear(r);
	*holds_r = out;
	return MV_OK;
}

mv_status mv_hold_show(mv_db *db, const char *name, mv_hold_info **hold_r, char **error_r)
{
	*hold_r = NULL;
	const char *v[] = {name};
	PGresult *r = NULL;
	mv_status st = mv_db_query(db, "SELECT " HOLD_COLUMNS " FROM hold h WHERE h.name = $1", 1, v,
	                           NULL, NULL, 0, &r, error_r);
	if (st != MV_OK)
		return st;
	if (PQntuples(r) != 1) {
		PQclear(r);
		return mv_fail(error_r, MV_ERR_NOT_FOUND, "no hold named '%s'", name);
	}
	*hold_r = row(r, 0);
	PQclear(r);
	return MV_OK;
}

/* ---- ongoing holds as an ingest stage ---- */

typedef struct {
	char *id;
	mv_query_sql *sql;
	char *insert;
} ongoing_hold;

typedef struct {
	GPtrArray *holds;        /* ongoing_hold*, loaded by prepare */
	char timeout_ms[16];     /* each hold query's statement timeout */
	gboolean defer_next;     /* the next send defers the evaluation */
	gboolean force_timeout;  /* MAILVAULT_TEST_FAIL_STAGE=ongoing-holds */
} ongoing_context;

static void ongoing_holds_clear(GPtrArray *holds)
{
	for (guint i = 0; i < holds->len; i++) {
		ongoing_hold *h = holds->pdata[i];
		g_free(h->id);
		mv_query_sql_free(&h->sql);
		g_free(h->insert);
		g_free(h);
	}
	g_ptr_array_set_size(holds, 0);
}

static mv_status ongoing_prepare(mv_db *db, void *context, char **error_r)
{
	GPtrArray *holds = ((ongoing_context *)context)->holds;
	ongoing_holds_clear(holds);
	PGresult *r = NULL;
	mv_status st = mv_db_query(db,
	                           "SELECT id, query FROM hold WHERE ongoing AND released_at IS NULL "
	                           "ORDER BY id",
	                           0, NULL, NULL, NULL, 0, &r, error_r);
	for (int i = 0; st == MV_OK && i < PQntuples(r); i++) {
		ongoing_hold *h = g_new0(ongoing_hold, 1);
		h->id = g_strdup(PQgetvalue(r, i, 0));
		char *qerr = NULL;
		if (mv_query_compile(PQgetvalue(r, i, 1), 3, &h->sql, &qerr) != MV_OK ||
		    mv_catalog_query_resolve(db, h->sql, &qerr) != MV_OK) {
			/* Stored queries were compiled when the hold was created. */
			st = mv_fail(error_r, MV_ERR_INTERNAL, "hold %s: %s", h->id, qerr);
			g_free(qerr);
		} else {
			h->insert = g_strdup_printf(
				"INSERT INTO hold_item (hold_id, message_id) SELECT $1::integer, m.id "
				"FROM message m WHERE m.sha256 = ANY ($2::bytea[]) AND (%s) "
				"ON CONFLICT DO NOTHING",
				h->sql->where);
		}
		g_ptr_array_add(holds, h);
	}
	PQclear(r);
	if (st != MV_OK)
		ongoing_holds_clear(holds);
	return st;
}

static void sha_array_add(GString *shas, const mv_message *msg)
{
	char hex[MV_SHA256_HEX_LEN + 1];
	mv_sha256_to_hex(msg->sha256, hex);
	g_string_append_printf(shas, "%s\"\\\\x%s\"", shas->len > 1 ? "," : "", hex);
}

/* Every message of shas into every active ongoing hold as a pending item,
 * a statement whose cost no query can raise (schema/012-hold-pending.sql). */
static mv_status send_pending(mv_db *db, const char *shas, char **error_r)
{
	const char *v[] = {shas};
	return mv_db_send(db,
	                  "INSERT INTO hold_item (hold_id, message_id, pending) "
	                  "SELECT h.id, m.id, true FROM hold h CROSS JOIN message m "
	                  "WHERE h.ongoing AND h.released_at IS NULL AND m.sha256 = ANY ($1::bytea[]) "
	                  "ON CONFLICT DO NOTHING",
	                  1, v, error_r);
}

/* The same for one hold. */
static mv_status send_pending_one(mv_db *db, const char *hold_id, const char *shas,
                                  char **error_r)
{
	const char *v[] = {hold_id, shas};
	return mv_db_send(db,
	                  "INSERT INTO hold_item (hold_id, message_id, pending) "
	                  "SELECT $1::integer, m.id, true FROM message m "
	                  "WHERE m.sha256 = ANY ($2::bytea[]) ON CONFLICT DO NOTHING",
	                  2, v, error_r);
}

/* Every hold query runs under the hook's statement timeout.  Deferred (the
 * transaction before ran out of time), every message of the transaction
 * goes into every active ongoing hold as a pending item instead.  So does
 * a message whose attachment text was deferred (MAILVAULT_EXTRACT=deferred,
 * mv_message.text_deferred) for every hold whose query has a text term (a
 * bare word or phrase, attachment:): judged on its text so far, such a
 * query would miss what its attachments say; mv_hold_settle_pending
 * decides once `index --reextract` has read it.  A hold whose query reads
 * no text (from:, subject:, filename: ...) judges it at once. */
static mv_status ongoing_send(mv_db *db, void *context, mv_message *const *msgs, guint n,
                              char **error_r)
{
	ongoing_context *c = context;
	GPtrArray *holds = c->holds;
	if (n == 0 || holds->len == 0)
		return MV_OK;
	mv_status st = MV_OK;
	if (c->defer_next) {
		c->defer_next = FALSE;
		GString *all = g_string_new("{");
		for (guint i = 0; i < n; i++)
			sha_array_add(all, msgs[i]);
		g_string_append_c(all, '}');
		/* A pipelined send copies its parameters: the string may go after. */
		st = send_pending(db, all->str, error_r);
		g_string_free(all, TRUE);
		return st;
	}
	/* ready: the messages every hold judges now; all: with the deferred. */
	GString *ready = g_string_new("{"), *deferred = g_string_new("{"), *all = g_string_new("{");
	for (guint i = 0; i < n; i++) {
		sha_array_add(msgs[i]->text_deferred ? deferred : ready, msgs[i]);
		sha_array_add(all, msgs[i]);
	}
	g_string_append_c(ready, '}');
	g_string_append_c(deferred, '}');
	g_string_append_c(all, '}');
	gboolean any_deferred = deferred->len > 2;
	const char *t[] = {c->timeout_ms};
	st = mv_db_send(db, "SELECT set_config('statement_timeout', $1, true)", 1, t, error_r);
	if (st == MV_OK && c->force_timeout)
		st = mv_db_send(db, "SELECT pg_sleep(3600)", 0, NULL, error_r);
	for (guint i = 0; st == MV_OK && i < holds->len; i++) {
		ongoing_hold *h = holds->pdata[i];
		gboolean reads_text = h->sql->text_terms->len > 0;
		const char *judged = reads_text ? ready->str : all->str;
		if (reads_text && any_deferred)
			st = send_pending_one(db, h->id, deferred->str, error_r);
		if (st != MV_OK || strcmp(judged, "{}") == 0)
			continue;
		guint np = h->sql->params->len + 2;
		const char **v = g_new0(const char *, np);
		v[0] = h->id;
		v[1] = judged;
		for (guint k = 0; k < h->sql->params->len; k++)
			v[k + 2] = h->sql->params->pdata[k];
		st = mv_db_send(db, h->insert, (int)np, v, error_r);
		g_free(v);
	}
	if (st == MV_OK)
		st = mv_db_send(db, "SET LOCAL statement_timeout = DEFAULT", 0, NULL, error_r);
	g_string_free(ready, TRUE);
	g_string_free(deferred, TRUE);
	g_string_free(all, TRUE);
	return st;
}

/* A hold query ran out of its time: defer the evaluation in the retry. */
static gboolean ongoing_degrade(mv_db *db, void *context)
{
	ongoing_context *c = context;
	if (c->holds->len == 0 || c->defer_next || !mv_db_failure_is_timeout(db))
		return FALSE;
	c->defer_next = TRUE;
	return TRUE;
}

mv_store_hook *mv_hold_ongoing_hook_new(void)
{
	ongoing_context *c = g_new0(ongoing_context, 1);
	c->holds = g_ptr_array_new();
	const char *t = g_getenv("MAILVAULT_HOLD_TIMEOUT");
	gint64 ms = t != NULL && *t != '\0' ? g_ascii_strtoll(t, NULL, 10) : MV_HOLD_INGEST_TIMEOUT_MS;
	g_snprintf(c->timeout_ms, sizeof c->timeout_ms, "%" G_GINT64_FORMAT, CLAMP(ms, 1, G_MAXINT32));
	const char *fail = g_getenv("MAILVAULT_TEST_FAIL_STAGE");
	c->force_timeout = fail != NULL && strcmp(fail, "ongoing-holds") == 0;
	mv_store_hook *hook = g_new0(mv_store_hook, 1);
	hook->name = "ongoing holds";
	hook->prepare = ongoing_prepare;
	hook->send = ongoing_send;
	hook->degrade = ongoing_degrade;
	hook->context = c;
	return hook;
}

void mv_hold_ongoing_hook_free(mv_store_hook **hook)
{
	if (hook == NULL || *hook == NULL)
		return;
	ongoing_context *c = (*hook)->context;
	ongoing_holds_clear(c->holds);
	g_ptr_array_free(c->holds, TRUE);
	g_free(c);
	g_free(*hook);
	*hook = NULL;
}

mv_status mv_hold_settle_pending(mv_db *db, const char *actor, gint64 *settled_r, char **error_r)
{
	*settled_r = 0;
	PGresult *r = NULL;
	/* Only holds with a pending item that can be decided now: one whose
	 * message awaits its attachment text waits (below), and a hold with
	 * nothing else gets no transaction and no audit entry on each pass
	 * of the indexer. */
	mv_status st = mv_db_query(db,
	                           "SELECT h.id, h.name, h.query FROM hold h WHERE EXISTS "
	                           "(SELECT 1 FROM hold_item i JOIN message m ON m.id = i.message_id "
	                           "WHERE i.hold_id = h.id AND i.pending AND NOT " MV_EXTRACT_AWAITING_SQL ") "
	                           "ORDER BY h.id",
	                           0, NULL, NULL, NULL, 0, &r, error_r);
	for (int i = 0; st == MV_OK && i < PQntuples(r); i++) {
		const char *id = PQgetvalue(r, i, 0), *name = PQgetvalue(r, i, 1);
		mv_query_sql *q = NULL;
		st = mv_query_compile(PQgetvalue(r, i, 2), 2, &q, error_r);
		if (st == MV_OK)
			st = mv_catalog_query_resolve(db, q, error_r);
		/* One snapshot for both statements: a pending item ingest adds
		 * meanwhile is neither decided nor removed here. */
		if (st == MV_OK)
			st = mv_db_exec(db, "BEGIN ISOLATION LEVEL REPEATABLE READ", error_r);
		if (st != MV_OK) {
			mv_query_sql_free(&q);
			break;
		}
		const char *lead[] = {id};
		PGresult *u = NULL;
		gint64 kept = 0, dropped = 0;
		/* A message whose attachment text is still to be read (ingest
		 * deferred it) waits: judged now, a query on its attachments
		 * would miss it.  `index --reextract` reads it first. */
		char *sql = g_strdup_printf("UPDATE hold_item i SET pending = false FROM message m "
		                            "WHERE i.hold_id = $1::integer AND i.pending "
		                            "AND m.id = i.message_id AND NOT " MV_EXTRACT_AWAITING_SQL
		                            " AND (%s)",
		                            q->where);
		st = mv_db_query_params(db, sql, lead, 1, q->params, &u, error_r);
		if (st == MV_OK)
			kept = g_ascii_strtoll(PQcmdTuples(u), NULL, 10);
		PQclear(u);
		g_free(sql);
		if (st == MV_OK) {
			st = mv_db_query(db,
			                 "DELETE FROM hold_item i USING message m WHERE i.hold_id = $1::integer "
			                 "AND i.pending AND m.id = i.message_id AND NOT " MV_EXTRACT_AWAITING_SQL,
			                 1, lead, NULL, NULL, 0, &u, error_r);
			if (st == MV_OK)
				dropped = g_ascii_strtoll(PQcmdTuples(u), NULL, 10);
			PQclear(u);
		}
		/* (Nothing decided: the items were settled meanwhile by another.) */
		if (st == MV_OK && kept + dropped > 0) {
			char *subject = g_strdup_printf("hold %s", name);
			char *details = g_strdup_printf("deferred at ingest, now settled: held=%" G_GINT64_FORMAT
			                                "\nnot matching=%" G_GINT64_FORMAT,
			                                kept, dropped);
			st = mv_audit_append(db, actor, "hold.settle", subject, details, NULL, error_r);
			g_free(subject);
			g_free(details);
		}
		st = mv_db_end(db, st, error_r);
		mv_query_sql_free(&q);
		if (st == MV_OK)
			*settled_r += kept + dropped;
	}
	PQclear(r);
	return st;
}

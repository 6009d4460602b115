/* mv-purge: purge runs and destruction certificates. */
#include "mv-purge.h"
#include "mv-purge-sql.h"

#include <string.h>

#include "mv-audit.h"
#include "mv-hash.h"
#include "mv-hold.h"
#include "mv-review.h"
#include "mv-store.h"

#define PURGE_BATCH 500
#define CERTIFICATE_PAGE 5000

void mv_purge_result_free(mv_purge_result **result)
{
	if (result == NULL || *result == NULL)
		return;
	g_free((*result)->certificate_sha256);
	g_free(*result);
	*result = NULL;
}

static char *class_array(const mv_policy *policy)
{
	GString *s = g_string_new("{");
	for (guint i = 0; policy != NULL && i < mv_policy_class_count(policy); i++) {
		const mv_retention_class *c = mv_policy_class(policy, i);
		if (c->disposition == MV_DISPOSITION_PURGE)
			mv_db_array_text(s, c->name);
	}
	g_string_append_c(s, '}');
	return g_string_free(s, FALSE);
}

/* ---- certificates ---- */

typedef struct {
	gint64 disposition_id, run, policy_version, destroyed;
	int format;
	const char *performed_by, *completed_at, *started_at, *state;
} certificate_header;

typedef struct {
	mv_sha256_ctx *sha;
	mv_purge_write_fn *write;
	void *context;
} certificate_sink;

static void sink_put(certificate_sink *sink, const char *text, gsize len)
{
	mv_sha256_update(sink->sha, text, len);
	if (sink->write != NULL)
		sink->write(sink->context, text, len);
}

static void sink_printf(certificate_sink *sink, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static void sink_printf(certificate_sink *sink, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *text = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	sink_put(sink, text, strlen(text));
	g_free(text);
}

/* Reviewer names are free text: no tab or line end may break a line. */
static char *one_line(const char *text)
{
	char *s = g_strdup(text);
	for (char *c = s; *c != '\0'; c++)
		if (*c == '\t' || *c == '\n' || *c == '\r')
			*c = ' ';
	return s;
}

/* An erasure (schema/025-erasure.sql): its proposer and its approver, by
 * database role, as approvals of tombstone t's destruction (who, at, k). */
#define SQL_T_ERASURE_APPROVALS                                                               \
	"SELECT e.proposed_role || ' (proposed erasure ' || e.id || ')', e.proposed_at, 0 "      \
	"FROM erasure_request e WHERE e.disposition_id = t.disposition_id "                      \
	"AND e.message_id = t.message_id AND e.state = 'erased' "                                 \
	"UNION ALL SELECT e.decided_role || ' (approved erasure ' || e.id || ')', e.decided_at, 1 " \
	"FROM erasure_request e WHERE e.disposition_id = t.disposition_id "                      \
	"AND e.message_id = t.message_id AND e.state = 'erased'"

/* The approvals of tombstone t's destruction, separated by US (0x1f). (Review approvals
 * name the reviewer given with --by; erasures the database roles.) */
#define SQL_T_APPROVERS                                                                   \
	"(SELECT string_agg(x.who, E'\\x1f' ORDER BY x.at, x.k) FROM ("                     \
	"SELECT d.decided_by AS who, d.decided_at AS at, d.id AS k "                          \
	"FROM review_decision d WHERE d.message_id = t.message_id AND d.decision = 'approve' " \
	"AND d.expires_at = t.expires_at AND d.decided_at <= t.destroyed_at "                  \
	"UNION ALL " SQL_T_ERASURE_APPROVALS ") x)"

/* The canonical text: a header, then one line per destroyed record in
 * message id order, read from the run's tombstones page by page. */
static mv_status render(mv_db *db, const certificate_header *h, mv_purge_write_fn *write,
                        mv_purge_item_fn *record_fn, void *context, char *sha256_hex_r,
                        char **error_r)
{
	certificate_sink sink = {mv_sha256_new(), write, context};
	if (h->format == 1)
		sink_printf(&sink,
		            "mailvault destruction certificate\n"
		            "disposition: %" G_GINT64_FORMAT "\n"
		            "performed by: %s\n"
		            "completed at: %s\n"
		            "policy version: %" G_GINT64_FORMAT "\n"
		            "records destroyed: %" G_GINT64_FORMAT "\n"
		            "registration\tsha256\tdate\tclass\texpired\tpolicy version\n",
		            h->disposition_id, h->performed_by, h->completed_at, h->policy_version,
		            h->destroyed);
	else
		sink_printf(&sink,
		            "mailvault destruction certificate\n"
		            "run: %" G_GINT64_FORMAT "\n"
		            "state: %s\n"
		            "performed by: %s\n"
		            "started at: %s\n"
		            "completed at: %s\n"
		            "policy version: %" G_GINT64_FORMAT "\n"
		            "records destroyed: %" G_GINT64_FORMAT "\n"
		            "registration\tsha256\tdate\tclass\texpired\tpolicy version\tapproved by\n",
		            h->run, h->state, h->performed_by, h->started_at, h->completed_at,
		            h->policy_version, h->destroyed);
	char disp[24], after[24] = "0";
	g_snprintf(disp, sizeof disp, "%" G_GINT64_FORMAT, h->disposition_id);
	mv_status st = MV_OK;
	gint64 lines = 0;
	for (;;) {
		const char *v[] = {disp, after};
		PGresult *r = NULL;
		st = mv_db_query(db,
		                 "SELECT t.message_id, coalesce(t.registration, '-'), encode(t.sha256, 'hex'), "
		                 "coalesce(" MV_SQL_ISO_UTC("t.date") ", '-'), coalesce(t.retention_class, '-'), "
		                 "coalesce(" MV_SQL_ISO_UTC("t.expires_at") ", '-'), "
		                 "coalesce(t.policy_version, 0), " SQL_T_APPROVERS " "
		                 "FROM tombstone t WHERE t.disposition_id = $1 AND t.message_id > $2 "
		                 "ORDER BY t.message_id LIMIT " G_STRINGIFY(CERTIFICATE_PAGE),
		                 2, v, NULL, NULL, 0, &r, error_r);
		if (st != MV_OK)
			break;
		int rows = PQntuples(r);
		for (int i = 0; i < rows; i++) {
			char **approvers = PQgetisnull(r, i, 7) ? g_new0(char *, 1)
			                                        : g_strsplit(PQgetvalue(r, i, 7), "\x1f", -1);
			if (h->format == 1) {
				sink_printf(&sink, "%s\t%s\t%s\t%s\t%s\t%s\n", PQgetvalue(r, i, 1),
				            PQgetvalue(r, i, 2), PQgetvalue(r, i, 3), PQgetvalue(r, i, 4),
				            PQgetvalue(r, i, 5), PQgetvalue(r, i, 6));
			} else {
				GString *names = g_string_new(NULL);
				for (char **a = approvers; *a != NULL; a++) {
					char *clean = one_line(*a);
					g_string_append_printf(names, "%s%s", names->len ? ", " : "", clean);
					g_free(clean);
				}
				sink_printf(&sink, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", PQgetvalue(r, i, 1),
				            PQgetvalue(r, i, 2), PQgetvalue(r, i, 3), PQgetvalue(r, i, 4),
				            PQgetvalue(r, i, 5), PQgetvalue(r, i, 6),
				            names->len ? names->str : "-");
				g_string_free(names, TRUE);
			}
			if (record_fn != NULL) {
#define DASH_NULL(n) (strcmp(PQgetvalue(r, i, n), "-") == 0 ? NULL : PQgetvalue(r, i, n))
				mv_purge_item it = {
					.id = g_ascii_strtoll(PQgetvalue(r, i, 0), NULL, 10),
					.registration = DASH_NULL(1),
					.sha256 = PQgetvalue(r, i, 2),
					.date = DASH_NULL(3),
					.class_name = DASH_NULL(4),
					.expires_at = DASH_NULL(5),
					.policy_version = g_ascii_strtoll(PQgetvalue(r, i, 6), NULL, 10),
					.approved_by = approvers,
				};
#undef DASH_NULL
				record_fn(context, &it);
			}
			g_strfreev(approvers);
		}
		if (rows > 0)
			g_strlcpy(after, PQgetvalue(r, rows - 1, 0), sizeof after);
		lines += rows;
		PQclear(r);
		if (rows < CERTIFICATE_PAGE)
			break;
	}
	uint8_t sha[MV_SHA256_LEN];
	mv_sha256_finish(&sink.sha, sha);
	if (st == MV_OK && lines != h->destroyed)
		st = mv_fail(error_r, MV_ERR_INTEGRITY,
		             "purge run %" G_GINT64_FORMAT " records %" G_GINT64_FORMAT
		             " destroyed messages but has %" G_GINT64_FORMAT " tombstones",
		             h->run, h->destroyed, lines);
	if (st == MV_OK)
		mv_sha256_to_hex(sha, sha256_hex_r);
	return st;
}

/* Complete run disposition_id (destroyed records counted from its
 * tombstones) in state `state`: render its certificate, store the
 * completion and the certificate's SHA-256, and record it in the audit
 * trail, in one transaction.  note (may be NULL) is added to the audit
 * entry's details. */
static mv_status finish_run(mv_db *db, gint64 disposition_id, const char *actor,
                            const char *state, const char *note, char **sha256_r,
                            gint64 *count_r, char **error_r)
{
	*sha256_r = NULL;
	char disp[24];
	g_snprintf(disp, sizeof disp, "%" G_GINT64_FORMAT, disposition_id);
	mv_status st = mv_db_exec(db, "BEGIN", error_r);
	PGresult *r = NULL;
	if (st == MV_OK) {
		const char *v[] = {disp};
		st = mv_db_query(db,
		                 "SELECT d.performed_by, coalesce(d.policy_version, 0), "
		                 MV_SQL_ISO_UTC("now()") ", "
		                 "(SELECT count(*) FROM tombstone t WHERE t.disposition_id = d.id), "
		                 "d.run, " MV_SQL_ISO_UTC("d.started_at") ", d.certificate_format "
		                 "FROM disposition d WHERE d.id = $1 FOR UPDATE",
		                 1, v, NULL, NULL, 0, &r, error_r);
	}
	if (st == MV_OK && PQntuples(r) != 1)
		st = mv_fail(error_r, MV_ERR_NOT_FOUND, "no disposition %s", disp);
	char hex[MV_SHA256_HEX_LEN + 1] = "";
	certificate_header h = {0};
	if (st == MV_OK) {
		h.disposition_id = disposition_id;
		h.performed_by = PQgetvalue(r, 0, 0);
		h.policy_version = g_ascii_strtoll(PQgetvalue(r, 0, 1), NULL, 10);
		h.completed_at = PQgetvalue(r, 0, 2);
		h.destroyed = g_ascii_strtoll(PQgetvalue(r, 0, 3), NULL, 10);
		h.run = g_ascii_strtoll(PQgetvalue(r, 0, 4), NULL, 10);
		h.started_at = PQgetvalue(r, 0, 5);
		h.format = (int)g_ascii_strtoll(PQgetvalue(r, 0, 6), NULL, 10);
		h.state = state;
		st = render(db, &h, NULL, NULL, NULL, hex, error_r);
	}
	if (st == MV_OK) {
		uint8_t sha[MV_SHA256_LEN];
		mv_sha256_from_hex(hex, sha);
		char n[24];
		g_snprintf(n, sizeof n, "%" G_GINT64_FORMAT, h.destroyed);
		const char *uv[] = {disp, n, h.completed_at, (const char *)sha, state};
		int lengths[] = {0, 0, 0, MV_SHA256_LEN, 0}, formats[] = {0, 0, 0, 1, 0};
		PGresult *u = NULL;
		st = mv_db_query(db,
		                 "UPDATE disposition SET finished_at = $3::timestamptz, destroyed = $2, "
		                 "certificate_sha256 = $4, state = $5 WHERE id = $1",
		                 5, uv, lengths, formats, 0, &u, error_r);
		PQclear(u);
		if (st == MV_OK) {
			char *subject = g_strdup_printf("run %" G_GINT64_FORMAT, h.run);
			char *details = g_strdup_printf("run=%" G_GINT64_FORMAT "\nstate=%s%s%s\ndestroyed=%s\n"
			                                "certificate_sha256=%s\ndisposition=%s",
			                                h.run, state, note ? "\n" : "", note ? note : "", n,
			                                hex, disp);
			st = mv_audit_append(db, actor, "purge", subject, details, NULL, error_r);
			g_free(subject);
			g_free(details);
		}
	}
	PQclear(r);
	st = mv_db_end(db, st, error_r);
	if (st == MV_OK) {
		*sha256_r = g_strdup(hex);
		*count_r = h.destroyed;
	}
	return st;
}

mv_status mv_purge_certificate(mv_db *db, gint64 run, mv_purge_write_fn *write,
                               mv_purge_item_fn *record_fn, void *context, char *sha256_hex_r,
                               char **error_r)
{
	char num[24];
	g_snprintf(num, sizeof num, "%" G_GINT64_FORMAT, run);
	const char *v[] = {num};
	PGresult *r = NULL;
	mv_status st = mv_db_query(db,
	                           "SELECT performed_by, coalesce(policy_version, 0), "
	                           MV_SQL_ISO_UTC("finished_at") ", destroyed, "
	                           "encode(certificate_sha256, 'hex'), certificate, id, state, "
	                           MV_SQL_ISO_UTC("started_at") ", certificate_format "
	                           "FROM disposition WHERE run = $1",
	                           1, v, NULL, NULL, 0, &r, error_r);
	if (st != MV_OK)
		return st;
	if (PQntuples(r) != 1 || PQgetisnull(r, 0, 2) || PQgetisnull(r, 0, 4)) {
		const char *why = PQntuples(r) != 1 ? "there is no such run"
		                  : strcmp(PQgetvalue(r, 0, 7), "refused-busy") == 0
		                          ? "it was refused (another purge was running) and has no certificate"
		                          : "it has not finished";
		st = mv_fail(error_r, MV_ERR_NOT_FOUND, "no certificate of purge run %s: %s", num, why);
		PQclear(r);
		return st;
	}
	char *stored = g_strdup(PQgetvalue(r, 0, 4));
	if (!PQgetisnull(r, 0, 5)) {
		/* A run from before certificates were rendered kept its text. */
		const char *text = PQgetvalue(r, 0, 5);
		gsize len = strlen(text);
		uint8_t sha[MV_SHA256_LEN];
		mv_sha256(text, len, sha);
		mv_sha256_to_hex(sha, sha256_hex_r);
		if (write != NULL)
			write(context, text, len);
	} else {
		certificate_header h = {
			.disposition_id = g_ascii_strtoll(PQgetvalue(r, 0, 6), NULL, 10),
			.run = run,
			.performed_by = PQgetvalue(r, 0, 0),
			.policy_version = g_ascii_strtoll(PQgetvalue(r, 0, 1), NULL, 10),
			.completed_at = PQgetvalue(r, 0, 2),
			.destroyed = g_ascii_strtoll(PQgetvalue(r, 0, 3), NULL, 10),
			.state = PQgetvalue(r, 0, 7),
			.started_at = PQgetvalue(r, 0, 8),
			.format = (int)g_ascii_strtoll(PQgetvalue(r, 0, 9), NULL, 10),
		};
		st = render(db, &h, write, record_fn, context, sha256_hex_r, error_r);
	}
	PQclear(r);
	if (st == MV_OK && g_ascii_strcasecmp(stored, sha256_hex_r) != 0)
		st = mv_fail(error_r, MV_ERR_INTEGRITY,
		             "the certificate of purge run %s no longer matches its stored SHA-256 "
		             "(%s): its records were altered", num, stored);
	g_free(stored);
	return st;
}

/* ---- recorded runs ---- */

void mv_purge_run_free(gpointer run)
{
	mv_purge_run *r = run;
	if (r == NULL)
		return;
	g_free(r->state);
	g_free(r->performed_by);
	g_free(r->started_at);
	g_free(r->finished_at);
	g_free(r->certificate_sha256);
	g_free(r);
}

/* An unfinished run is running while a purge holds the lock and it is the
 * newest unfinished one; otherwise it was interrupted (the next run
 * completes it): SQL_RUN_STATE, mv-purge-sql.h. */
mv_status mv_purge_runs(mv_db *db, gint64 run, GPtrArray **runs_r, char **error_r)
{
	*runs_r = NULL;
	char num[24];
	g_snprintf(num, sizeof num, "%" G_GINT64_FORMAT, run);
	const char *v[] = {run > 0 ? num : NULL};
	PGresult *r = NULL;
	mv_status st = mv_db_query(
		db,
		"SELECT d.run, d.id, " SQL_RUN_STATE ", d.performed_by, " MV_SQL_ISO_UTC("d.started_at") ", "
		MV_SQL_ISO_UTC("d.finished_at") ", coalesce(d.policy_version, 0), d.destroyed, "
		"encode(d.certificate_sha256, 'hex') "
		"FROM disposition d WHERE $1::integer IS NULL OR d.run = $1 ORDER BY d.run",
		1, v, NULL, NULL, 0, &r, error_r);
	if (st != MV_OK)
		return st;
	if (run > 0 && PQntuples(r) == 0) {
		PQclear(r);
		return mv_fail(error_r, MV_ERR_NOT_FOUND, "no purge run %s", num);
	}
	GPtrArray *runs = g_ptr_array_new_with_free_func(mv_purge_run_free);
	for (int i = 0; i < PQntuples(r); i++) {
#define COL(n) (PQgetisnull(r, i, n) ? NULL : g_strdup(PQgetvalue(r, i, n)))
		mv_purge_run *x = g_new0(mv_purge_run, 1);
		x->run = g_ascii_strtoll(PQgetvalue(r, i, 0), NULL, 10);
		x->disposition_id = g_ascii_strtoll(PQgetvalue(r, i, 1), NULL, 10);
		x->state = COL(2);
		x->performed_by = COL(3);
		x->started_at = COL(4);
		x->finished_at = COL(5);
		x->policy_version = g_ascii_strtoll(PQgetvalue(r, i, 6), NULL, 10);
		x->destroyed = g_ascii_strtoll(PQgetvalue(r, i, 7), NULL, 10);
		x->certificate_sha256 = COL(8);
#undef COL
		g_ptr_array_add(runs, x);
	}
	PQclear(r);
	*runs_r = runs;
	return MV_OK;
}

/* ---- runs ---- */

/* Up to n due messages with an id above after, in id order. */
static mv_status due_batch(mv_db *db, const char *const classes[3], gint64 after, gint64 n,
                           PGresult **r_r, char **error_r)
{
	char aft[24], lim[24];
	g_snprintf(aft, sizeof aft, "%" G_GINT64_FORMAT, after);
	g_snprintf(lim, sizeof lim, "%" G_GINT64_FORMAT, n);
	const char *v[] = {classes[0], aft, classes[1], classes[2], lim};
	return mv_db_query(
		db,
		"SELECT m.id, m.registration, encode(m.sha256, 'hex'), " MV_SQL_ISO_UTC("m.date") ", "
		"m.retention_class, " MV_SQL_ISO_UTC("m.expires_at") ", coalesce(m.policy_version, 0) "
		"FROM message m WHERE m.id > $2 AND m.expires_at < now() "
		"AND (m.retention_class = ANY ($1::text[]) "
		/* review classes: once approved for this expiry by enough reviewers */
		"     OR (m.retention_class = ANY ($3::text[]) "
		"         AND (SELECT count(DISTINCT d.decided_by) " MV_SQL_M_APPROVALS ") "
		"             >= CASE WHEN m.retention_class = ANY ($4::text[]) THEN 2 ELSE 1 END)) "
		"AND NOT " MV_SQL_M_UNDER_HOLD " ORDER BY m.id LIMIT $5",
		5, v, NULL, NULL, 0, r_r, error_r);
}

static void item_from_row(PGresult *r, int i, mv_purge_item *it)
{
#define COL(n) (PQgetisnull(r, i, n) ? NULL : PQgetvalue(r, i, n))
	it->id = g_ascii_strtoll(PQgetvalue(r, i, 0), NULL, 10);
	it->registration = COL(1);
	it->sha256 = COL(2);
	it->date = COL(3);
	it->class_name = COL(4);
	it->expires_at = COL(5);
#undef COL
	it->policy_version = g_ascii_strtoll(PQgetvalue(r, i, 6), NULL, 10);
}

/* Destroy the batch's messages through mv_purge_messages (which re-checks
 * each) in one transaction; report those destroyed. */
static mv_status destroy_batch(mv_db *db, PGresult *batch, const char *disp,
                               mv_purge_item_fn *item_fn, void *context, gint64 *count,
                               char **error_r)
{
	int rows = PQntuples(batch);
	GString *ids = g_string_new("{");
	for (int i = 0; i < rows; i++)
		mv_db_array_int(ids, g_ascii_strtoll(PQgetvalue(batch, i, 0), NULL, 10));
	g_string_append_c(ids, '}');
	GHashTable *destroyed = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	mv_status st = mv_db_exec(db, "BEGIN", error_r);
	PGresult *r = NULL;
	if (st == MV_OK) {
		const char *v[] = {ids->str, disp};
		st = mv_db_query(db, "SELECT mv_purge_messages($1::bigint[], $2)", 2, v, NULL, NULL, 0,
		                 &r, error_r);
	}
	for (int i = 0; st == MV_OK && i < PQntuples(r); i++)
		g_hash_table_add(destroyed, g_strdup(PQgetvalue(r, i, 0)));
	PQclear(r);
	st = mv_db_end(db, st, error_r);
	for (int i = 0; st == MV_OK && i < rows; i++) {
		if (!g_hash_table_contains(destroyed, PQgetvalue(batch, i, 0)))
			continue; /* held or changed meanwhile: left alone */
		(*count)++;
		if (item_fn != NULL) {
			mv_purge_item it;
			item_from_row(batch, i, &it);
			item_fn(context, &it);
		}
	}
	g_hash_table_destroy(destroyed);
	g_string_free(ids, TRUE);
	return st;
}

/* Complete runs left unfinished by an interrupted purge (we hold the lock,
 * so none is running), other than ours (disposition_id, run). */
static mv_status finish_interrupted(mv_db *db, const char *actor, gint64 disposition_id,
                                    gint64 run, char **error_r)
{
	char disp[24];
	g_snprintf(disp, sizeof disp, "%" G_GINT64_FORMAT, disposition_id);
	const char *v[] = {disp};
	PGresult *r = NULL;
	mv_status st = mv_db_query(db,
	                           "SELECT id FROM disposition WHERE finished_at IS NULL AND id <> $1 "
	                           "ORDER BY id",
	                           1, v, NULL, NULL, 0, &r, error_r);
	char *note = g_strdup_printf("completed after an interruption, by run %" G_GINT64_FORMAT, run);
	for (int i = 0; st == MV_OK && i < PQntuples(r); i++) {
		char *sha = NULL;
		gint64 n = 0;
		st = finish_run(db, g_ascii_strtoll(PQgetvalue(r, i, 0), NULL, 10), actor, "interrupted",
		                note, &sha, &n, error_r);
		g_free(sha);
	}
	g_free(note);
	PQclear(r);
	return st;
}

mv_status mv_purge_finish_run(mv_db *db, gint64 disposition_id, const char *actor,
                              const char *state, const char *note, char **sha256_r,
                              gint64 *count_r, char **error_r)
{
	return finish_run(db, disposition_id, actor, state, note, sha256_r, count_r, error_r);
}

/* Take the purge lock, waiting up to wait_seconds for a running purge. */
static mv_status take_lock(mv_db *db, guint wait_seconds, gboolean *locked_r, char **error_r)
{
	PGresult *r = NULL;
	mv_status st;
	if (wait_seconds == 0) {
		st = mv_db_query(db, "SELECT pg_try_advisory_lock(" PURGE_LOCK_KEY ")", 0, NULL, NULL,
		                 NULL, 0, &r, error_r);
	} else {
		char ms[24];
		g_snprintf(ms, sizeof ms, "%" G_GUINT64_FORMAT, (guint64)MIN(wait_seconds, 2000000u) * 1000);
		const char *v[] = {ms};
		st = mv_db_query(db, "SELECT mv_advisory_lock_wait(" PURGE_LOCK_KEY ", $1::integer)", 1, v,
		                 NULL, NULL, 0, &r, error_r);
	}
	if (st == MV_OK)
		*locked_r = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
	PQclear(r);
	return st;
}

mv_status mv_purge_lock(mv_db *db, guint wait_seconds, gboolean *locked_r, char **error_r)
{
	*locked_r = FALSE;
	return take_lock(db, wait_seconds, locked_r, error_r);
}

void mv_purge_unlock(mv_db *db)
{
	PQclear(PQexec(mv_db_conn(db), "SELECT pg_advisory_unlock(" PURGE_LOCK_KEY ")"));
}

/* A run's row: started now by actor, numbered by the database.  state NULL:
 * running; else the run is recorded as finished in that state, with its
 * audit entry (details), in one transaction. */
static mv_status open_run(mv_db *db, const char *actor, gint64 policy_version, const char *state,
                          const char *details, gint64 *disposition_r, gint64 *run_r,
                          char **error_r)
{
	char ver[24];
	g_snprintf(ver, sizeof ver, "%" G_GINT64_FORMAT, policy_version);
	const char *v[] = {actor, policy_version > 0 ? ver : NULL, state};
	PGresult *r = NULL;
	mv_status st = MV_OK;
	if (state != NULL)
		st = mv_db_exec(db, "BEGIN", error_r);
	if (st == MV_OK)
		st = mv_db_query(db,
		                 state == NULL
		                     ? "INSERT INTO disposition (performed_by, policy_version) "
		                       "VALUES ($1, $2) RETURNING id, run"
		                     : "INSERT INTO disposition (performed_by, policy_version, state, "
		                       "finished_at) VALUES ($1, $2, $3, now()) RETURNING id, run",
		                 state == NULL ? 2 : 3, v, NULL, NULL, 0, &r, error_r);
	if (st == MV_OK) {
		*disposition_r = g_ascii_strtoll(PQgetvalue(r, 0, 0), NULL, 10);
		*run_r = g_ascii_strtoll(PQgetvalue(r, 0, 1), NULL, 10);
	}
	PQclear(r);
	if (state == NULL)
		return st;
	if (st == MV_OK) {
		char *subject = g_strdup_printf("run %" G_GINT64_FORMAT, *run_r);
		char *all = g_strdup_printf("run=%" G_GINT64_FORMAT "\nstate=%s\ndisposition=%" G_GINT64_FORMAT
		                            "\n%s", *run_r, state, *disposition_r, details);
		st = mv_audit_append(db, actor, "purge", subject, all, NULL, error_r);
		g_free(subject);
		g_free(all);
	}
	return mv_db_end(db, st, error_r);
}

mv_status mv_purge(mv_db *db, const mv_policy *policy, gint64 policy_version,
                   const mv_purge_options *o, mv_purge_item_fn *item_fn, void *context,
                   mv_purge_result **result_r, char **error_r)
{
	*result_r = NULL;
	gboolean locked = FALSE;
	mv_status st = take_lock(db, o->wait_seconds, &locked, error_r);
	if (st != MV_OK)
		return st;
	if (!locked) {
		char *waited = o->wait_seconds > 0
		                   ? g_strdup_printf(" after waiting %u s", o->wait_seconds)
		                   : g_strdup("");
		if (o->dry_run) {
			st = mv_fail(error_r, MV_ERR_BUSY, "another purge is running%s; try again later",
			             waited);
			g_free(waited);
			return st;
		}
		/* A refused run is a run too: numbered, listed, audited. */
		mv_purge_result *res = g_new0(mv_purge_result, 1);
		char *details = g_strdup_printf("another purge held the lock%s", waited);
		char *rerr = NULL;
		mv_status rst = open_run(db, o->actor, policy_version, "refused-busy", details,
		                         &res->disposition_id, &res->run, &rerr);
		g_free(details);
		if (rst != MV_OK) {
			st = mv_fail(error_r, rst, "another purge is running%s, and the refusal could not "
			             "be recorded: %s", waited, rerr);
			mv_purge_result_free(&res);
		} else {
			res->state = "refused-busy";
			*result_r = res;
			st = mv_fail(error_r, MV_ERR_BUSY,
			             "another purge is running%s; this attempt is recorded as run %"
			             G_GINT64_FORMAT " (refused-busy); try again later or use --wait SECONDS",
			             waited, res->run);
		}
		g_free(rerr);
		g_free(waited);
		return st;
	}

	mv_purge_result *res = g_new0(mv_purge_result, 1);
	char *review = NULL, *four_eyes = NULL, *purge_classes = class_array(policy);
	mv_review_class_arrays(policy, &review, &four_eyes);
	const char *classes[3] = {purge_classes, review, four_eyes};
	char disp[24] = "";
	if (!o->dry_run) {
		st = open_run(db, o->actor, policy_version, NULL, NULL, &res->disposition_id, &res->run,
		              error_r);
		g_snprintf(disp, sizeof disp, "%" G_GINT64_FORMAT, res->disposition_id);
		if (st == MV_OK)
			st = finish_interrupted(db, o->actor, res->disposition_id, res->run, error_r);
	}
	gint64 after = 0;
	while (st == MV_OK) {
		gint64 n = PURGE_BATCH;
		if (o->limit > 0)
			n = MIN(n, o->limit - res->count);
		if (n <= 0)
			break;
		PGresult *batch = NULL;
		st = due_batch(db, classes, after, n, &batch, error_r);
		if (st != MV_OK)
			break;
		int rows = PQntuples(batch);
		if (rows == 0) {
			PQclear(batch);
			break;
		}
		after = g_ascii_strtoll(PQgetvalue(batch, rows - 1, 0), NULL, 10);
		if (o->dry_run) {
			for (int i = 0; i < rows; i++) {
				res->count++;
				if (item_fn != NULL) {
					mv_purge_item it;
					item_from_row(batch, i, &it);
					item_fn(context, &it);
				}
			}
			PQclear(batch);
			continue;
		}
		/* A deadlock with a concurrent ingest over a shared blob rolls the
		 * batch back whole; it is simply run again. */
		for (int attempt = 1; st == MV_OK; attempt++) {
			char *berr = NULL;
			st = destroy_batch(db, batch, disp, item_fn, context, &res->count, &berr);
			if (st != MV_OK && attempt < 5 && mv_db_failure_is_transient(db)) {
				g_free(berr);
				g_usleep((gulong)attempt * 50000);
				st = MV_OK;
				continue;
			}
			if (st != MV_OK)
				mv_fail(error_r, st, "%s", berr);
			g_free(berr);
			break;
		}
		PQclear(batch);
	}
	/* Every run that started gets its certificate and audit entry; after a
	 * failure it certifies what was destroyed. */
	if (res->disposition_id != 0) {
		char *ferr = NULL;
		gint64 n = 0;
		res->state = st != MV_OK ? "failed" : res->count > 0 ? "complete" : "nothing-due";
		mv_status fst = finish_run(db, res->disposition_id, o->actor, res->state, NULL,
		                           &res->certificate_sha256, &n, &ferr);
		if (st == MV_OK) {
			st = fst;
			if (fst != MV_OK)
				mv_fail(error_r, fst, "%s", ferr);
		}
		g_free(ferr);
	}
	g_free(purge_classes);
	g_free(review);
	g_free(four_eyes);
	PQclear(PQexec(mv_db_conn(db), "SELECT pg_advisory_unlock(" PURGE_LOCK_KEY ")"));
	if (st != MV_OK && res->run == 0) {
		mv_purge_result_free(&res);
		return st;
	}
	*result_r = res;
	return st;
}

/* mv-purge: purge runs and destruction certificates. */
#include "mv-purge.h"

#include <string.h>

#include "mv-audit.h"
#include "mv-hash.h"
#include "mv-hold.h"
#include "mv-review.h"

#define PURGE_LOCK_KEY "7231980414"
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
	gint64 disposition_id, policy_version, destroyed;
	const char *performed_by, *completed_at;
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

/* The canonical text: a header, then one line per destroyed record in
 * message id order, read from the run's tombstones page by page. */
static mv_status render(mv_db *db, const certificate_header *h, mv_purge_write_fn *write,
                        void *context, char *sha256_hex_r, char **error_r)
{
	certificate_sink sink = {mv_sha256_new(), write, context};
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
	char disp[24], after[24] = "0";
	g_snprintf(disp, sizeof disp, "%" G_GINT64_FORMAT, h->disposition_id);
	mv_status st = MV_OK;
	gint64 lines = 0;
	for (;;) {
		const char *v[] = {disp, after};
		PGresult *r = NULL;
		st = mv_db_query(db,
		                 "SELECT message_id, coalesce(registration, '-'), encode(sha256, 'hex'), "
		                 "coalesce(" MV_SQL_ISO_UTC("date") ", '-'), coalesce(retention_class, '-'), "
		                 "coalesce(" MV_SQL_ISO_UTC("expires_at") ", '-'), coalesce(policy_version, 0) "
		                 "FROM tombstone WHERE disposition_id = $1 AND message_id > $2 "
		                 "ORDER BY message_id LIMIT " G_STRINGIFY(CERTIFICATE_PAGE),
		                 2, v, NULL, NULL, 0, &r, error_r);
		if (st != MV_OK)
			break;
		int rows = PQntuples(r);
		for (int i = 0; i < rows; i++)
			sink_printf(&sink, "%s\t%s\t%s\t%s\t%s\t%s\n", PQgetvalue(r, i, 1),
			            PQgetvalue(r, i, 2), PQgetvalue(r, i, 3), PQgetvalue(r, i, 4),
			            PQgetvalue(r, i, 5), PQgetvalue(r, i, 6));
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
		             "disposition %" G_GINT64_FORMAT " records %" G_GINT64_FORMAT
		             " destroyed messages but has %" G_GINT64_FORMAT " tombstones",
		             h->disposition_id, h->destroyed, lines);
	if (st == MV_OK)
		mv_sha256_to_hex(sha, sha256_hex_r);
	return st;
}

/* Complete run disposition_id (destroyed records counted from its
 * tombstones): render its certificate, store the completion and the
 * certificate's SHA-256, and record it in the audit trail, in one
 * transaction.  Also completes a run that was interrupted. */
static mv_status finish_run(mv_db *db, gint64 disposition_id, const char *actor,
                            gboolean interrupted, char **sha256_r, gint64 *count_r,
                            char **error_r)
{
	char disp[24];
	g_snprintf(disp, sizeof disp, "%" G_GINT64_FORMAT, disposition_id);
	mv_status st = mv_db_exec(db, "BEGIN", error_r);
	PGresult *r = NULL;
	if (st == MV_OK) {
		const char *v[] = {disp};
		st = mv_db_query(db,
		                 "SELECT d.performed_by, coalesce(d.policy_version, 0), "
		                 MV_SQL_ISO_UTC("now()") ", "
		                 "(SELECT count(*) FROM tombstone t WHERE t.disposition_id = d.id) "
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
		st = render(db, &h, NULL, NULL, hex, error_r);
	}
	if (st == MV_OK) {
		uint8_t sha[MV_SHA256_LEN];
		mv_sha256_from_hex(hex, sha);
		char n[24];
		g_snprintf(n, sizeof n, "%" G_GINT64_FORMAT, h.destroyed);
		const char *uv[] = {disp, n, h.completed_at, (const char *)sha};
		int lengths[] = {0, 0, 0, MV_SHA256_LEN}, formats[] = {0, 0, 0, 1};
		PGresult *u = NULL;
		st = mv_db_query(db,
		                 "UPDATE disposition SET finished_at = $3::timestamptz, destroyed = $2, "
		                 "certificate_sha256 = $4 WHERE id = $1",
		                 4, uv, lengths, formats, 0, &u, error_r);
		PQclear(u);
		if (st == MV_OK) {
			char *subject = g_strdup_printf("disposition %s", disp);
			char *details = g_strdup_printf("destroyed=%s\ncertificate_sha256=%s%s", n, hex,
			                                interrupted ? "\ncompleted after an interruption" : "");
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

mv_status mv_purge_certificate(mv_db *db, gint64 disposition_id, mv_purge_write_fn *write,
                               void *context, char *sha256_hex_r, char **error_r)
{
	char disp[24];
	g_snprintf(disp, sizeof disp, "%" G_GINT64_FORMAT, disposition_id);
	const char *v[] = {disp};
	PGresult *r = NULL;
	mv_status st = mv_db_query(db,
	                           "SELECT performed_by, coalesce(policy_version, 0), "
	                           MV_SQL_ISO_UTC("finished_at") ", destroyed, "
	                           "encode(certificate_sha256, 'hex'), certificate "
	                           "FROM disposition WHERE id = $1 AND finished_at IS NOT NULL",
	                           1, v, NULL, NULL, 0, &r, error_r);
	if (st != MV_OK)
		return st;
	if (PQntuples(r) != 1) {
		PQclear(r);
		return mv_fail(error_r, MV_ERR_NOT_FOUND, "no completed purge run (disposition) %s",
		               disp);
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
			.disposition_id = disposition_id,
			.performed_by = PQgetvalue(r, 0, 0),
			.policy_version = g_ascii_strtoll(PQgetvalue(r, 0, 1), NULL, 10),
			.completed_at = PQgetvalue(r, 0, 2),
			.destroyed = g_ascii_strtoll(PQgetvalue(r, 0, 3), NULL, 10),
		};
		st = render(db, &h, write, context, sha256_hex_r, error_r);
	}
	PQclear(r);
	if (st == MV_OK && g_ascii_strcasecmp(stored, sha256_hex_r) != 0)
		st = mv_fail(error_r, MV_ERR_INTEGRITY,
		             "the certificate of disposition %s no longer matches its stored SHA-256 "
		             "(%s): its records were altered", disp, stored);
	g_free(stored);
	return st;
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
 * so none is running). */
static mv_status finish_interrupted(mv_db *db, const char *actor, char **error_r)
{
	PGresult *r = NULL;
	mv_status st = mv_db_query(db, "SELECT id FROM disposition WHERE finished_at IS NULL ORDER BY id",
	                           0, NULL, NULL, NULL, 0, &r, error_r);
	for (int i = 0; st == MV_OK && i < PQntuples(r); i++) {
		char *sha = NULL;
		gint64 n = 0;
		st = finish_run(db, g_ascii_strtoll(PQgetvalue(r, i, 0), NULL, 10), actor, TRUE, &sha,
		                &n, error_r);
		g_free(sha);
	}
	PQclear(r);
	return st;
}

mv_status mv_purge(mv_db *db, const mv_policy *policy, gint64 policy_version, gint64 limit,
                   gboolean dry_run, const char *actor, mv_purge_item_fn *item_fn,
                   void *context, mv_purge_result **result_r, char **error_r)
{
	*result_r = NULL;
	PGresult *r = NULL;
	mv_status st = mv_db_query(db, "SELECT pg_try_advisory_lock(" PURGE_LOCK_KEY ")", 0, NULL,
	                           NULL, NULL, 0, &r, error_r);
	if (st != MV_OK)
		return st;
	gboolean locked = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
	PQclear(r);
	if (!locked)
		return mv_fail(error_r, MV_ERR_BUSY, "another purge is running; try again later");

	mv_purge_result *res = g_new0(mv_purge_result, 1);
	char *review = NULL, *four_eyes = NULL, *purge_classes = class_array(policy);
	mv_review_class_arrays(policy, &review, &four_eyes);
	const char *classes[3] = {purge_classes, review, four_eyes};
	char disp[24] = "";
	if (!dry_run)
		st = finish_interrupted(db, actor, error_r);
	gint64 after = 0;
	while (st == MV_OK) {
		gint64 n = PURGE_BATCH;
		if (limit > 0)
			n = MIN(n, limit - res->count);
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
		if (dry_run) {
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
		if (res->disposition_id == 0) {
			char ver[24];
			g_snprintf(ver, sizeof ver, "%" G_GINT64_FORMAT, policy_version);
			const char *v[] = {actor, policy_version > 0 ? ver : NULL};
			st = mv_db_query(db,
			                 "INSERT INTO disposition (performed_by, policy_version) "
			                 "VALUES ($1, $2) RETURNING id",
			                 2, v, NULL, NULL, 0, &r, error_r);
			if (st == MV_OK) {
				res->disposition_id = g_ascii_strtoll(PQgetvalue(r, 0, 0), NULL, 10);
				g_snprintf(disp, sizeof disp, "%" G_GINT64_FORMAT, res->disposition_id);
			}
			PQclear(r);
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
	/* Even after a failure, what was destroyed gets its certificate. */
	if (res->disposition_id != 0) {
		char *ferr = NULL;
		gint64 n = 0;
		mv_status fst = finish_run(db, res->disposition_id, actor, FALSE,
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
	if (st != MV_OK) {
		mv_purge_result_free(&res);
		return st;
	}
	*result_r = res;
	return MV_OK;
}

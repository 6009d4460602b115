/* mv-purge: purge runs and destruction certificates. */
#include "mv-purge.h"

#include <string.h>

#include "mv-audit.h"
#include "mv-hash.h"
#include "mv-review.h"

#define PURGE_LOCK_KEY "7231980414"
#define PURGE_BATCH 100

static void item_free(gpointer p)
{
	mv_purge_item *i = p;
	if (i == NULL)
		return;
	g_free(i->registration);
	g_free(i->sha256);
	g_free(i->date);
	g_free(i->class_name);
	g_free(i->expires_at);
	g_free(i);
}

void mv_purge_result_free(mv_purge_result **result)
{
	if (result == NULL || *result == NULL)
		return;
	g_ptr_array_free((*result)->items, TRUE);
	g_free((*result)->certificate);
	g_free((*result)->certificate_sha256);
	g_free(*result);
	*result = NULL;
}

static char *class_array(const mv_policy *policy)
{
	GString *s = g_string_new("{");
	for (guint i = 0; policy != NULL && i < mv_policy_class_count(policy); i++) {
		const mv_retention_class *c = mv_policy_class(policy, i);
		if (c->disposition != MV_DISPOSITION_PURGE)
			continue;
		if (s->len > 1)
			g_string_append_c(s, ',');
		g_string_append_c(s, '"');
		for (const char *p = c->name; *p; p++) {
			if (*p == '"' || *p == '\\')
				g_string_append_c(s, '\\');
			g_string_append_c(s, *p);
		}
		g_string_append_c(s, '"');
	}
	g_string_append_c(s, '}');
	return g_string_free(s, FALSE);
}

static mv_status due(mv_db *db, const mv_policy *policy, gint64 limit, GPtrArray *items,
                     char **error_r)
{
	char *classes = class_array(policy), *review = NULL, *four_eyes = NULL;
	mv_review_class_arrays(policy, &review, &four_eyes);
	char lim[24];
	g_snprintf(lim, sizeof lim, "%" G_GINT64_FORMAT, limit);
	const char *v[] = {classes, limit > 0 ? lim : NULL, review, four_eyes};
	PGresult *r = NULL;
	mv_status st = mv_db_query(
		db,
		"SELECT m.id, m.registration, encode(m.sha256, 'hex'), " MV_SQL_ISO_UTC("m.date") ", "
		"m.retention_class, " MV_SQL_ISO_UTC("m.expires_at") ", coalesce(m.policy_version, 0) "
		"FROM message m WHERE m.expires_at < now() "
		"AND (m.retention_class = ANY ($1::text[]) "
		/* review classes: once approved for this expiry by enough reviewers */
		"     OR (m.retention_class = ANY ($3::text[]) "
		"         AND (SELECT count(DISTINCT d.decided_by) FROM review_decision d "
		"              WHERE d.message_id = m.id AND d.decision = 'approve' "
		"              AND d.expires_at = m.expires_at) "
		"             >= CASE WHEN m.retention_class = ANY ($4::text[]) THEN 2 ELSE 1 END)) "
		"AND NOT EXISTS (SELECT 1 FROM hold_item i JOIN hold h ON h.id = i.hold_id "
		"WHERE i.message_id = m.id AND h.released_at IS NULL) "
		"ORDER BY m.expires_at, m.id LIMIT $2",
		4, v, NULL, NULL, 0, &r, error_r);
	g_free(classes);
	g_free(review);
	g_free(four_eyes);
	for (int i = 0; st == MV_OK && i < PQntuples(r); i++) {
		mv_purge_item *it = g_new0(mv_purge_item, 1);
#define COL(n) (PQgetisnull(r, i, n) ? NULL : g_strdup(PQgetvalue(r, i, n)))
		it->id = g_ascii_strtoll(PQgetvalue(r, i, 0), NULL, 10);
		it->registration = COL(1);
		it->sha256 = COL(2);
		it->date = COL(3);
		it->class_name = COL(4);
		it->expires_at = COL(5);
#undef COL
		it->policy_version = g_ascii_strtoll(PQgetvalue(r, i, 6), NULL, 10);
		g_ptr_array_add(items, it);
	}
	PQclear(r);
	return st;
}

mv_status mv_purge(mv_db *db, const mv_policy *policy, gint64 policy_version, gint64 limit,
                   gboolean dry_run, const char *actor, mv_purge_result **result_r,
                   char **error_r)
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
	res->items = g_ptr_array_new_with_free_func(item_free);
	GPtrArray *candidates = g_ptr_array_new_with_free_func(item_free);
	st = due(db, policy, limit, candidates, error_r);
	if (st == MV_OK && dry_run) {
		g_ptr_array_free(res->items, TRUE);
		res->items = candidates;
		candidates = NULL;
	} else if (st == MV_OK && candidates->len > 0) {
		char ver[24];
		g_snprintf(ver, sizeof ver, "%" G_GINT64_FORMAT, policy_version);
		const char *v[] = {actor, policy_version > 0 ? ver : NULL};
		st = mv_db_query(db,
		                 "INSERT INTO disposition (performed_by, policy_version) VALUES ($1, $2) "
		                 "RETURNING id",
		                 2, v, NULL, NULL, 0, &r, error_r);
		if (st == MV_OK)
			res->disposition_id = g_ascii_strtoll(PQgetvalue(r, 0, 0), NULL, 10);
		PQclear(r);
		char disp[24];
		g_snprintf(disp, sizeof disp, "%" G_GINT64_FORMAT, res->disposition_id);
		for (guint start = 0; st == MV_OK && start < candidates->len; start += PURGE_BATCH) {
			st = mv_db_exec(db, "BEGIN", error_r);
			GPtrArray *done = g_ptr_array_new();
			for (guint i = start; st == MV_OK && i < candidates->len && i < start + PURGE_BATCH; i++) {
				mv_purge_item *it = candidates->pdata[i];
				char id[24];
				g_snprintf(id, sizeof id, "%" G_GINT64_FORMAT, it->id);
				const char *pv[] = {id, disp};
				st = mv_db_query(db, "SELECT mv_purge_message($1, $2)", 2, pv, NULL, NULL, 0, &r,
				                 error_r);
				if (st == MV_OK && strcmp(PQgetvalue(r, 0, 0), "t") == 0)
					g_ptr_array_add(done, it);
				PQclear(r);
			}
			st = mv_db_end(db, st, error_r);
			if (st == MV_OK)
				for (guint i = 0; i < done->len; i++) {
					g_ptr_array_add(res->items, done->pdata[i]);
					/* ownership moves to res->items */
					for (guint k = 0; k < candidates->len; k++)
						if (candidates->pdata[k] == done->pdata[i])
							candidates->pdata[k] = NULL;
				}
			g_ptr_array_free(done, TRUE);
		}
		if (st == MV_OK) {
			GDateTime *now = g_date_time_new_now_utc();
			char *when = g_date_time_format(now, "%Y-%m-%dT%H:%M:%SZ");
			g_date_time_unref(now);
			GString *c = g_string_new(NULL);
			g_string_append_printf(c,
			                       "mailvault destruction certificate\n"
			                       "disposition: %" G_GINT64_FORMAT "\n"
			                       "performed by: %s\n"
			                       "completed at: %s\n"
			                       "policy version: %" G_GINT64_FORMAT "\n"
			                       "records destroyed: %u\n"
			                       "registration\tsha256\tdate\tclass\texpired\tpolicy version\n",
			                       res->disposition_id, actor, when, policy_version, res->items->len);
			for (guint i = 0; i < res->items->len; i++) {
				const mv_purge_item *it = res->items->pdata[i];
				g_string_append_printf(c, "%s\t%s\t%s\t%s\t%s\t%" G_GINT64_FORMAT "\n",
				                       it->registration != NULL ? it->registration : "-", it->sha256,
				                       it->date != NULL ? it->date : "-", it->class_name,
				                       it->expires_at, it->policy_version);
			}
			g_free(when);
			uint8_t sha[MV_SHA256_LEN];
			char hex[MV_SHA256_HEX_LEN + 1];
			mv_sha256(c->str, c->len, sha);
			mv_sha256_to_hex(sha, hex);
			res->certificate = g_string_free(c, FALSE);
			res->certificate_sha256 = g_strdup(hex);
			char n[24];
			g_snprintf(n, sizeof n, "%u", res->items->len);
			const char *uv[] = {disp, n, res->certificate, (const char *)sha};
			int lengths[] = {0, 0, 0, MV_SHA256_LEN}, formats[] = {0, 0, 0, 1};
			st = mv_db_exec(db, "BEGIN", error_r);
			if (st == MV_OK)
				st = mv_db_query(db,
				                 "UPDATE disposition SET finished_at = now(), destroyed = $2, "
				                 "certificate = $3, certificate_sha256 = $4 WHERE id = $1",
				                 4, uv, lengths, formats, 0, &r, error_r);
			PQclear(r);
			if (st == MV_OK) {
				char *subject = g_strdup_printf("disposition %s", disp);
				char *details = g_strdup_printf("destroyed=%s\ncertificate_sha256=%s", n, hex);
				st = mv_audit_append(db, actor, "purge", subject, details, NULL, error_r);
				g_free(subject);
				g_free(details);
			}
			st = mv_db_end(db, st, error_r);
		}
	}
	if (candidates != NULL)
		g_ptr_array_free(candidates, TRUE);
	PQclear(PQexec(mv_db_conn(db), "SELECT pg_advisory_unlock(" PURGE_LOCK_KEY ")"));
	if (st != MV_OK) {
		mv_purge_result_free(&res);
		return st;
	}
	*result_r = res;
	return MV_OK;
}

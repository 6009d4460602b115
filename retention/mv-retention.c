/* mv-retention: explain and apply. */
#include "mv-retention.h"

#include <string.h>

#include "mv-audit.h"
#include "mv-store.h"

static mv_status first_arrival(mv_db *db, const char *idtext, char **source_r, char **env_from_r,
                               GPtrArray *env_to, gint64 *archived_r, char **error_r)
{
	const char *v[] = {idtext};
	PGresult *r = NULL;
	mv_status st = mv_db_query(db,
	                           "SELECT a.source, a.envelope_from, "
	                           "extract(epoch FROM m.archived_at)::bigint, a.id "
	                           "FROM message m LEFT JOIN LATERAL (SELECT * FROM arrival x "
	                           "WHERE x.message_id = m.id ORDER BY x.id LIMIT 1) a ON true "
	                           "WHERE m.id = $1",
	                           1, v, NULL, NULL, 0, &r, error_r);
	if (st != MV_OK)
		return st;
	if (PQntuples(r) != 1) {
		PQclear(r);
		return mv_fail(error_r, MV_ERR_NOT_FOUND, "no message %s in the archive", idtext);
	}
	*source_r = PQgetisnull(r, 0, 0) ? NULL : g_strdup(PQgetvalue(r, 0, 0));
	*env_from_r = PQgetisnull(r, 0, 1) ? NULL : g_strdup(PQgetvalue(r, 0, 1));
	*archived_r = g_ascii_strtoll(PQgetvalue(r, 0, 2), NULL, 10);
	char *aid = PQgetisnull(r, 0, 3) ? NULL : g_strdup(PQgetvalue(r, 0, 3));
	PQclear(r);
	if (aid != NULL) {
		const char *av[] = {aid};
		st = mv_db_query(db,
		                 "SELECT t FROM arrival, unnest(envelope_to) WITH ORDINALITY AS u(t, n) "
		                 "WHERE id = $1 ORDER BY n",
		                 1, av, NULL, NULL, 0, &r, error_r);
		for (int i = 0; st == MV_OK && i < PQntuples(r); i++)
			g_ptr_array_add(env_to, g_strdup(PQgetvalue(r, i, 0)));
		PQclear(r);
		g_free(aid);
	}
	return st;
}

mv_status mv_retention_evaluate(mv_db *db, mv_blobstore *blobs, const mv_policy *policy,
                                gint64 policy_version, gint64 id, mv_message **msg_r,
                                mv_rules_result **result_r, char **error_r)
{
	*msg_r = NULL;
	*result_r = NULL;
	char idtext[24];
	g_snprintf(idtext, sizeof idtext, "%" G_GINT64_FORMAT, id);
	char *source = NULL, *env_from = NULL;
	GPtrArray *env_to = g_ptr_array_new_with_free_func(g_free);
	gint64 archived = 0;
	GBytes *raw = NULL;
	mv_status st = first_arrival(db, idtext, &source, &env_from, env_to, &archived, error_r);
	if (st == MV_OK)
		st = mv_store_get_raw(db, blobs, id, &raw, error_r);
	mv_message *msg = NULL;
	if (st == MV_OK) {
		mv_parse_limits limits;
		mv_parse_limits_default(&limits);
		st = mv_message_parse(raw, &limits, &msg, error_r);
	}
	if (st == MV_OK) {
		g_ptr_array_add(env_to, NULL);
		mv_classify_context cc = {.source = source, .envelope_from = env_from,
		                          .envelope_to = (const char *const *)env_to->pdata,
		                          .archive_date = archived};
		st = mv_classify_message(policy, policy_version, msg, &cc, result_r, error_r);
	}
	if (raw != NULL)
		g_bytes_unref(raw);
	g_free(source);
	g_free(env_from);
	g_ptr_array_free(env_to, TRUE);
	if (st != MV_OK) {
		mv_message_free(&msg);
		return st;
	}
	*msg_r = msg;
	return MV_OK;
}

static gboolean same_tags(const char *stored, const mv_message_retention *ret)
{
	GString *s = g_string_new("{");
	for (guint i = 0; ret->tags != NULL && i < ret->tags->len; i++) {
		if (i)
			g_string_append_c(s, ',');
		g_string_append(s, ret->tags->pdata[i]);
	}
	g_string_append_c(s, '}');
	gboolean same = strcmp(s->str, stored) == 0;
	g_string_free(s, TRUE);
	return same;
}

static char *tags_literal(const mv_message_retention *ret)
{
	GString *s = g_string_new("{");
	for (guint i = 0; ret->tags != NULL && i < ret->tags->len; i++)
		mv_db_array_text(s, ret->tags->pdata[i]);
	g_string_append_c(s, '}');
	return g_string_free(s, FALSE);
}

mv_status mv_retention_apply(mv_db *db, mv_blobstore *blobs, const mv_policy *policy,
                             gint64 policy_version, gboolean dry_run,
                             mv_apply_progress_fn progress, void *context,
                             mv_apply_stats *stats_r, char **error_r)
{
	*stats_r = (mv_apply_stats){0};
	gint64 after = 0;
	for (;;) {
		char aft[24];
		g_snprintf(aft, sizeof aft, "%" G_GINT64_FORMAT, after);
		const char *v[] = {aft};
		PGresult *r = NULL;
		mv_status st = mv_db_query(db,
		                           "SELECT id, retention_class, "
		                           "coalesce(extract(epoch FROM expires_at)::bigint, 0), "
		                           "deciding_rule, coalesce(policy_version, 0), tags::text, "
		                           "(SELECT extract(epoch FROM max(d.extended_until))::bigint "
		                           " FROM review_decision d WHERE d.message_id = message.id "
		                           " AND d.decision = 'extend') "
		                           "FROM message WHERE id > $1 ORDER BY id LIMIT 200",
		                           1, v, NULL, NULL, 0, &r, error_r);
		if (st != MV_OK)
			return st;
		int rows = PQntuples(r);
		if (rows == 0) {
			PQclear(r);
			break;
		}
		if (!dry_run && (st = mv_db_exec(db, "BEGIN", error_r)) != MV_OK) {
			PQclear(r);
			return st;
		}
		for (int i = 0; i < rows && st == MV_OK; i++) {
			gint64 id = g_ascii_strtoll(PQgetvalue(r, i, 0), NULL, 10);
			after = id;
			stats_r->examined++;
			const char *old_class = PQgetisnull(r, i, 1) ? NULL : PQgetvalue(r, i, 1);
			gint64 old_expiry = g_ascii_strtoll(PQgetvalue(r, i, 2), NULL, 10);
			const char *old_rule = PQgetisnull(r, i, 3) ? NULL : PQgetvalue(r, i, 3);
			gint64 old_version = g_ascii_strtoll(PQgetvalue(r, i, 4), NULL, 10);
			mv_message *msg = NULL;
			mv_rules_result *res = NULL;
			char *err = NULL;
			if (mv_retention_evaluate(db, blobs, policy, policy_version, id, &msg, &res, &err) != MV_OK) {
				stats_r->failed++;
				g_free(err);
				continue;
			}
			mv_message_retention *ret = &msg->retention;
			/* An extension granted in review is a floor (the database
			 * enforces it too: see schema/006-review.sql). */
			if (!PQgetisnull(r, i, 6)) {
				gint64 ext_floor = g_ascii_strtoll(PQgetvalue(r, i, 6), NULL, 10);
				if (ret->expiry < ext_floor)
					ret->expiry = ext_floor;
			}
			if (old_class != NULL && strcmp(old_class, ret->class_name) != 0) {
				const mv_retention_class *oc = mv_policy_find_class(policy, old_class);
				if (oc != NULL && oc->locked && ret->expiry < old_expiry) {
					stats_r->kept_by_lock++;
					mv_rules_result_free(&res);
					mv_message_free(&msg);
					continue;
				}
			}
			if (old_class != NULL && old_expiry > ret->expiry) {
				const mv_retention_class *oc = mv_policy_find_class(policy, old_class);
				if (oc != NULL && oc->locked && strcmp(old_class, ret->class_name) == 0) {
					stats_r->kept_by_lock++;
					mv_rules_result_free(&res);
					mv_message_free(&msg);
					continue;
				}
			}
			gboolean class_changed = old_class == NULL || strcmp(old_class, ret->class_name) != 0;
			gboolean expiry_changed = old_expiry != ret->expiry;
			gboolean changed = class_changed || expiry_changed || old_version != policy_version ||
			                   g_strcmp0(old_rule, ret->rule) != 0 ||
			                   !same_tags(PQgetvalue(r, i, 5), ret);
			stats_r->class_changed += class_changed;
			stats_r->expiry_changed += expiry_changed;
			stats_r->changed += changed;
			if (changed && !dry_run) {
				char idt[24], exp[24], ver[24];
				g_snprintf(idt, sizeof idt, "%" G_GINT64_FORMAT, id);
				g_snprintf(exp, sizeof exp, "%" G_GINT64_FORMAT, ret->expiry);
				g_snprintf(ver, sizeof ver, "%" G_GINT64_FORMAT, policy_version);
				char *tags = tags_literal(ret);
				const char *uv[] = {idt, ret->class_name, exp, ret->rule, ver, tags, ret->direction};
				PGresult *u = NULL;
				st = mv_db_query(db,
				                 "UPDATE message SET retention_class = $2, expires_at = to_timestamp($3), "
				                 "deciding_rule = $4, policy_version = $5, tags = $6, direction = $7 "
				                 "WHERE id = $1",
				                 7, uv, NULL, NULL, 0, &u, error_r);
				PQclear(u);
				g_free(tags);
			}
			mv_rules_result_free(&res);
			mv_message_free(&msg);
		}
		PQclear(r);
		if (!dry_run) {
			st = mv_db_end(db, st, error_r);
		}
		if (st != MV_OK)
			return st;
		if (progress != NULL)
			progress(context, stats_r);
	}
	if (!dry_run) {
		char *subject = g_strdup_printf("policy version %" G_GINT64_FORMAT, policy_version);
		char *details = g_strdup_printf("examined=%" G_GINT64_FORMAT "\nchanged=%" G_GINT64_FORMAT
		                                "\nclass_changed=%" G_GINT64_FORMAT "\nexpiry_changed=%"
		                                G_GINT64_FORMAT "\nkept_by_lock=%" G_GINT64_FORMAT
		                                "\nfailed=%" G_GINT64_FORMAT,
		                                stats_r->examined, stats_r->changed, stats_r->class_changed,
		                                stats_r->expiry_changed, stats_r->kept_by_lock, stats_r->failed);
		mv_status st = mv_audit_append(db, mv_audit_actor(), "retention.apply", subject, details,
		                               NULL, error_r);
		g_free(subject);
		g_free(details);
		return st;
	}
	return MV_OK;
}

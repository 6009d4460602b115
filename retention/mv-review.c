/* mv-review: the review queue and review decisions. */
#include "mv-review.h"

#include <string.h>

#include "mv-audit.h"
#include "mv-hold.h"

void mv_review_item_free(gpointer p)
{
	mv_review_item *it = p;
	if (it == NULL)
		return;
	g_free(it->registration);
	g_free(it->sha256);
	g_free(it->date);
	g_free(it->from);
	g_free(it->subject);
	g_free(it->class_name);
	g_free(it->expires_at);
	g_free(it->approved_by);
	g_free(it);
}

void mv_review_class_arrays(const mv_policy *policy, char **review_r, char **four_eyes_r)
{
	GString *review = g_string_new("{"), *four = g_string_new("{");
	for (guint i = 0; policy != NULL && i < mv_policy_class_count(policy); i++) {
		const mv_retention_class *c = mv_policy_class(policy, i);
		if (c->disposition != MV_DISPOSITION_REVIEW)
			continue;
		mv_db_array_text(review, c->name);
		if (c->four_eyes)
			mv_db_array_text(four, c->name);
	}
	g_string_append_c(review, '}');
	g_string_append_c(four, '}');
	*review_r = g_string_free(review, FALSE);
	*four_eyes_r = g_string_free(four, FALSE);
}

/* Columns of one item; $1 the review classes, $2 those with four eyes. */
#define ITEM_COLUMNS                                                                              \
	"m.id, m.registration, encode(m.sha256, 'hex'), " MV_SQL_ISO_UTC("m.date") ", m.from_addr, " \
	"m.subject, m.retention_class, " MV_SQL_ISO_UTC("m.expires_at") ", "                         \
	"(SELECT count(DISTINCT d.decided_by) " MV_SQL_M_APPROVALS "), "                              \
	"CASE WHEN m.retention_class = ANY ($2::text[]) THEN 2 ELSE 1 END, "                          \
	"(SELECT string_agg(DISTINCT d.decided_by, ',') " MV_SQL_M_APPROVALS "), "                    \
	MV_SQL_M_UNDER_HOLD ", m.expires_at < now(), m.retention_class = ANY ($1::text[])"

enum { C_ID, C_REG, C_SHA, C_DATE, C_FROM, C_SUBJECT, C_CLASS, C_EXPIRES, C_APPROVALS, C_NEEDED,
       C_APPROVED_BY, C_HELD, C_EXPIRED, C_REVIEW_CLASS };

static mv_review_item *item_from_row(PGresult *r, int i)
{
	mv_review_item *it = g_new0(mv_review_item, 1);
#define COL(n) (PQgetisnull(r, i, n) ? NULL : g_strdup(PQgetvalue(r, i, n)))
	it->id = g_ascii_strtoll(PQgetvalue(r, i, C_ID), NULL, 10);
	it->registration = COL(C_REG);
	it->sha256 = COL(C_SHA);
	it->date = COL(C_DATE);
	it->from = COL(C_FROM);
	it->subject = COL(C_SUBJECT);
	it->class_name = COL(C_CLASS);
	it->expires_at = COL(C_EXPIRES);
	it->approved_by = COL(C_APPROVED_BY);
#undef COL
	it->approvals = (guint)g_ascii_strtoull(PQgetvalue(r, i, C_APPROVALS), NULL, 10);
	it->needed = (guint)g_ascii_strtoull(PQgetvalue(r, i, C_NEEDED), NULL, 10);
	it->held = strcmp(PQgetvalue(r, i, C_HELD), "t") == 0;
	return it;
}

mv_status mv_review_list(mv_db *db, const mv_policy *policy, gint64 limit, GPtrArray **items_r,
                         char **error_r)
{
	*items_r = NULL;
	char *review = NULL, *four = NULL;
	mv_review_class_arrays(policy, &review, &four);
	char lim[24];
	g_snprintf(lim, sizeof lim, "%" G_GINT64_FORMAT, limit);
	const char *v[] = {review, four, limit > 0 ? lim : NULL};
	PGresult *r = NULL;
	mv_status st = mv_db_query(
		db,
		"SELECT " ITEM_COLUMNS " FROM message m "
		"WHERE m.expires_at < now() AND m.retention_class = ANY ($1::text[]) "
		"AND NOT " MV_SQL_M_UNDER_HOLD " ORDER BY m.expires_at, m.id LIMIT $3",
		3, v, NULL, NULL, 0, &r, error_r);
	g_free(review);
	g_free(four);
	if (st != MV_OK)
		return st;
	GPtrArray *items = g_ptr_array_new_with_free_func(mv_review_item_free);
	for (int i = 0; i < PQntuples(r); i++)
		g_ptr_array_add(items, item_from_row(r, i));
	PQclear(r);
	*items_r = items;
	return MV_OK;
}

/* Read message id as an item, with a row lock for a decision (lock) or
 * without, for the report after it; MV_ERR_NOT_FOUND when absent. */
static mv_status read_item(mv_db *db, const char *review, const char *four, gint64 id,
                           gboolean lock, mv_review_item **item_r, gboolean *expired_r,
                           gboolean *review_class_r, char **error_r)
{
	char idt[24];
	g_snprintf(idt, sizeof idt, "%" G_GINT64_FORMAT, id);
	const char *v[] = {review, four, idt};
	PGresult *r = NULL;
	mv_status st = mv_db_query(db,
	                           lock ? "SELECT " ITEM_COLUMNS " FROM message m WHERE m.id = $3 "
	                                  "FOR UPDATE OF m"
	                                : "SELECT " ITEM_COLUMNS " FROM message m WHERE m.id = $3",
	                           3, v, NULL, NULL, 0, &r, error_r);
	if (st != MV_OK)
		return st;
	if (PQntuples(r) != 1) {
		PQclear(r);
		return mv_fail(error_r, MV_ERR_NOT_FOUND, "no message %s in the archive", idt);
	}
	*item_r = item_from_row(r, 0);
	*expired_r = strcmp(PQgetvalue(r, 0, C_EXPIRED), "t") == 0;
	*review_class_r = strcmp(PQgetvalue(r, 0, C_REVIEW_CLASS), "t") == 0;
	PQclear(r);
	return MV_OK;
}

static const char *item_name(const mv_review_item *it, char *buf, gsize size)
{
	if (it->registration != NULL)
		g_snprintf(buf, size, "%s (id %" G_GINT64_FORMAT ")", it->registration, it->id);
	else
		g_snprintf(buf, size, "id %" G_GINT64_FORMAT, it->id);
	return buf;
}

typedef enum { DECIDE_APPROVE, DECIDE_EXTEND } decision_kind;

static mv_status decide(mv_db *db, const mv_policy *policy, decision_kind kind, const gint64 *ids,
                        guint n, const char *until, const char *reason, const char *by,
                        const char *actor, GPtrArray **items_r, char **error_r)
{
	*items_r = NULL;
	if (by == NULL || *by == '\0')
		return mv_fail(error_r, MV_ERR_USAGE, "a review decision needs the reviewer's name");
	if (kind == DECIDE_EXTEND && (reason == NULL || *reason == '\0'))
		return mv_fail(error_r, MV_ERR_USAGE, "an extension needs a reason");
	char *review = NULL, *four = NULL;
	mv_review_class_arrays(policy, &review, &four);
	GPtrArray *items = g_ptr_array_new_with_free_func(mv_review_item_free);
	PGresult *r = NULL;
	char *until_iso = NULL;
	mv_status st = mv_db_exec(db, "BEGIN", error_r);
	if (st == MV_OK && kind == DECIDE_EXTEND) {
		const char *v[] = {until};
		st = mv_db_query(db, "SELECT " MV_SQL_ISO_UTC("$1::timestamptz") ", $1::timestamptz > now()",
		                 1, v, NULL, NULL, 0, &r, error_r);
		if (st != MV_OK) {
			g_free(*error_r);
			*error_r = NULL;
			st = mv_fail(error_r, MV_ERR_USAGE, "--until '%s' is not a date (YYYY-MM-DD)", until);
		} else if (strcmp(PQgetvalue(r, 0, 1), "t") != 0) {
			st = mv_fail(error_r, MV_ERR_USAGE, "--until %s is not in the future", until);
		} else {
			until_iso = g_strdup(PQgetvalue(r, 0, 0));
		}
		PQclear(r);
	}
	for (guint k = 0; st == MV_OK && k < n; k++) {
		mv_review_item *it = NULL;
		gboolean expired = FALSE, review_class = FALSE;
		char name[96];
		st = read_item(db, review, four, ids[k], TRUE, &it, &expired, &review_class, error_r);
		if (st != MV_OK)
			break;
		item_name(it, name, sizeof name);
		g_ptr_array_add(items, it);
		if (!review_class) {
			st = mv_fail(error_r, MV_ERR_USAGE,
			             "message %s is of class %s, whose disposition is not review", name,
			             it->class_name != NULL ? it->class_name : "(none)");
		} else if (kind == DECIDE_APPROVE && it->held) {
			st = mv_fail(error_r, MV_ERR_USAGE, "message %s is under a legal hold", name);
		} else if (kind == DECIDE_APPROVE && !expired) {
			st = mv_fail(error_r, MV_ERR_USAGE, "message %s has not expired (until %s)", name,
			             it->expires_at);
		}
		if (st == MV_OK && kind == DECIDE_APPROVE && it->approved_by != NULL) {
			char **names = g_strsplit(it->approved_by, ",", -1);
			gboolean again = g_strv_contains((const char *const *)names, by);
			g_strfreev(names);
			if (again)
				st = mv_fail(error_r, MV_ERR_USAGE,
				             it->needed > 1
				                 ? "%s approved message %s already; its class needs a second, "
				                   "different reviewer"
				                 : "%s approved message %s already",
				             by, name);
		}
		if (st == MV_OK && kind == DECIDE_EXTEND && it->expires_at != NULL) {
			const char *v[] = {until_iso, it->expires_at};
			st = mv_db_query(db, "SELECT $1::timestamptz > $2::timestamptz", 2, v, NULL, NULL, 0,
			                 &r, error_r);
			if (st == MV_OK && strcmp(PQgetvalue(r, 0, 0), "t") != 0)
				st = mv_fail(error_r, MV_ERR_USAGE,
				             "message %s is kept until %s already; --until must be later", name,
				             it->expires_at);
			PQclear(r);
		}
		if (st != MV_OK)
			break;
		char idt[24];
		g_snprintf(idt, sizeof idt, "%" G_GINT64_FORMAT, it->id);
		const char *v[] = {idt, kind == DECIDE_APPROVE ? "approve" : "extend", by, actor,
		                   it->expires_at, kind == DECIDE_EXTEND ? until_iso : NULL, reason};
		st = mv_db_query(db,
		                 "INSERT INTO review_decision (message_id, decision, decided_by, actor, "
		                 "expires_at, extended_until, reason) VALUES ($1, $2, $3, $4, "
		                 "coalesce($5::timestamptz, now()), $6, $7)",
		                 7, v, NULL, NULL, 0, &r, error_r);
		PQclear(r);
		if (st == MV_OK && kind == DECIDE_EXTEND) {
			const char *uv[] = {idt, until_iso};
			st = mv_db_query(db, "UPDATE message SET expires_at = $2 WHERE id = $1", 2, uv, NULL,
			                 NULL, 0, &r, error_r);
			PQclear(r);
		}
		char *subject = g_strdup_printf("message %s", name);
		char *details =
			kind == DECIDE_APPROVE
				? g_strdup_printf("sha256=%s\nclass=%s\nexpired=%s\nreviewer=%s\napprovals=%u/%u",
			                      it->sha256, it->class_name, it->expires_at, by, it->approvals + 1,
			                      it->needed)
				: g_strdup_printf("sha256=%s\nclass=%s\nexpired=%s\nreviewer=%s\nuntil=%s\n"
			                      "reason=%s",
			                      it->sha256, it->class_name, it->expires_at, by, until_iso,
			                      reason);
		if (st == MV_OK)
			st = mv_audit_append(db, actor,
			                     kind == DECIDE_APPROVE ? "review-approve" : "review-extend",
			                     subject, details, NULL, error_r);
		g_free(subject);
		g_free(details);
	}
	st = mv_db_end(db, st, error_r);
	/* Report the state after the decisions. */
	for (guint k = 0; st == MV_OK && k < items->len; k++) {
		mv_review_item *it = items->pdata[k];
		gboolean expired, review_class;
		mv_review_item *now = NULL;
		st = read_item(db, review, four, it->id, FALSE, &now, &expired, &review_class, error_r);
		if (st == MV_OK) {
			mv_review_item_free(it);
			items->pdata[k] = now;
		}
	}
	g_free(review);
	g_free(four);
	g_free(until_iso);
	if (st != MV_OK) {
		g_ptr_array_free(items, TRUE);
		return st;
	}
	*items_r = items;
	return MV_OK;
}

mv_status mv_review_approve(mv_db *db, const mv_policy *policy, const gint64 *ids, guint n,
                            const char *by, const char *actor, GPtrArray **items_r, char **error_r)
{
	return decide(db, policy, DECIDE_APPROVE, ids, n, NULL, NULL, by, actor, items_r, error_r);
}

mv_status mv_review_extend(mv_db *db, const mv_policy *policy, const gint64 *ids, guint n,
                           const char *until, const char *reason, const char *by,
                           const char *actor, GPtrArray **items_r, char **error_r)
{
	return decide(db, policy, DECIDE_EXTEND, ids, n, until, reason, by, actor, items_r, error_r);
}

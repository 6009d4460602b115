/* mv-review: the review queue and review decisions. */
#include "mv-review.h"

#include <string.h>

#include "mv-audit.h"
#include "mv-hold.h"

static void approver_free(gpointer p)
{
	mv_review_approver *a = p;
	if (a == NULL)
		return;
	g_free(a->identity);
	g_free(a->os_user);
	g_free(a->label);
	g_free(a->at);
	g_free(a);
}

void mv_review_item_free(gpointer p)
{
	mv_review_item *it = p;
	if (it == NULL)
		return;
	if (it->approvers != NULL)
		g_ptr_array_free(it->approvers, TRUE);
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
	it->approvers = g_ptr_array_new_with_free_func(approver_free);
	return it;
}

/* Fill in the approvers of items[0..n) (of each one's current expiry). */
static mv_status load_approvers(mv_db *db, GPtrArray *items, char **error_r)
{
	if (items->len == 0)
		return MV_OK;
	GHashTable *by_id = g_hash_table_new(g_int64_hash, g_int64_equal);
	GString *ids = g_string_new("{");
	for (guint i = 0; i < items->len; i++) {
		mv_review_item *it = items->pdata[i];
		g_ptr_array_set_size(it->approvers, 0);
		g_hash_table_insert(by_id, &it->id, it);
		mv_db_array_int(ids, it->id);
	}
	g_string_append_c(ids, '}');
	const char *v[] = {ids->str};
	PGresult *r = NULL;
	mv_status st = mv_db_query(db,
	                           "SELECT m.id, d.decided_by, d.os_user, d.label, "
	                           MV_SQL_ISO_UTC("d.decided_at") " "
	                           "FROM message m JOIN review_decision d ON d.message_id = m.id "
	                           "AND d.decision = 'approve' AND d.expires_at = m.expires_at "
	                           "WHERE m.id = ANY ($1::bigint[]) ORDER BY m.id, d.decided_at, d.id",
	                           1, v, NULL, NULL, 0, &r, error_r);
	for (int i = 0; st == MV_OK && i < PQntuples(r); i++) {
		gint64 id = g_ascii_strtoll(PQgetvalue(r, i, 0), NULL, 10);
		mv_review_item *it = g_hash_table_lookup(by_id, &id);
		if (it == NULL)
			continue;
		mv_review_approver *a = g_new0(mv_review_approver, 1);
#define COL(n) (PQgetisnull(r, i, n) ? NULL : g_strdup(PQgetvalue(r, i, n)))
		a->identity = COL(1);
		a->os_user = COL(2);
		a->label = COL(3);
		a->at = COL(4);
#undef COL
		g_ptr_array_add(it->approvers, a);
	}
	PQclear(r);
	g_string_free(ids, TRUE);
	g_hash_table_destroy(by_id);
	return st;
}

mv_status mv_review_whoami(mv_db *db, char **identity_r, char **os_user_r, char **error_r)
{
	*identity_r = NULL;
	*os_user_r = NULL;
	PGresult *r = NULL;
	mv_status st = mv_db_query(db, "SELECT session_user, mv_session_os_user()", 0, NULL, NULL,
	                           NULL, 0, &r, error_r);
	if (st == MV_OK) {
		*identity_r = g_strdup(PQgetvalue(r, 0, 0));
		*os_user_r = PQgetisnull(r, 0, 1) ? NULL : g_strdup(PQgetvalue(r, 0, 1));
	}
	PQclear(r);
	return st;
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
	st = load_approvers(db, items, error_r);
	if (st != MV_OK) {
		g_ptr_array_free(items, TRUE);
		return st;
	}
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
	mv_review_item *it = item_from_row(r, 0);
	*expired_r = strcmp(PQgetvalue(r, 0, C_EXPIRED), "t") == 0;
	*review_class_r = strcmp(PQgetvalue(r, 0, C_REVIEW_CLASS), "t") == 0;
	PQclear(r);
	GPtrArray *one = g_ptr_array_new();
	g_ptr_array_add(one, it);
	st = load_approvers(db, one, error_r);
	g_ptr_array_free(one, TRUE);
	if (st != MV_OK) {
		mv_review_item_free(it);
		return st;
	}
	*item_r = it;
	return MV_OK;
}

/* "OS user Y (database role X)", or "database role X" */
static char *identity_text(const char *identity, const char *os_user)
{
	if (os_user != NULL)
		return g_strdup_printf("OS user %s (database role %s)", os_user, identity);
	return g_strdup_printf("database role %s", identity);
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
                        guint n, const char *until, const char *reason, const char *label,
                        const char *actor, GPtrArray **items_r, char **error_r)
{
	*items_r = NULL;
	if (label != NULL && *label == '\0')
		label = NULL;
	if (kind == DECIDE_EXTEND && (reason == NULL || *reason == '\0'))
		return mv_fail(error_r, MV_ERR_USAGE, "an extension needs a reason");
	char *review = NULL, *four = NULL;
	mv_review_class_arrays(policy, &review, &four);
	GPtrArray *items = g_ptr_array_new_with_free_func(mv_review_item_free);
	PGresult *r = NULL;
	char *until_iso = NULL, *me = NULL, *my_os = NULL;
	mv_status st = mv_db_exec(db, "BEGIN", error_r);
	if (st == MV_OK)
		st = mv_review_whoami(db, &me, &my_os, error_r);
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
		/* Four eyes are two identities: the same role cannot approve
		 * twice, whatever it calls itself (the database refuses it too). */
		for (guint a = 0; st == MV_OK && kind == DECIDE_APPROVE && a < it->approvers->len; a++) {
			const mv_review_approver *ap = it->approvers->pdata[a];
			if (strcmp(ap->identity, me) != 0)
				continue;
			char *who = identity_text(me, my_os);
			st = mv_fail(error_r, MV_ERR_DENIED,
			             it->needed > 1
			                 ? "%s approved message %s already%s%s%s; its class needs a second "
			                   "approval by another person"
			                 : "%s approved message %s already%s%s%s",
			             who, name, ap->label != NULL ? " (as '" : "",
			             ap->label != NULL ? ap->label : "", ap->label != NULL ? "')" : "");
			g_free(who);
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
		/* Who decided (decided_by, db_role, os_user) is the database's to
		 * say: a trigger sets it (schema/015-reviewers.sql). */
		const char *v[] = {idt, kind == DECIDE_APPROVE ? "approve" : "extend", label, actor,
		                   kind == DECIDE_EXTEND ? until_iso : NULL, reason};
		st = mv_db_query(db,
		                 "INSERT INTO review_decision (message_id, decision, decided_by, label, actor, "
		                 "expires_at, extended_until, reason) "
		                 "SELECT m.id, $2, '', $3, $4, m.expires_at, $5, $6 FROM message m "
		                 "WHERE m.id = $1 RETURNING decided_by, os_user",
		                 6, v, NULL, NULL, 0, &r, error_r);
		char *by = NULL, *by_os = NULL;
		if (st == MV_OK && PQntuples(r) == 1) {
			by = g_strdup(PQgetvalue(r, 0, 0));
			by_os = PQgetisnull(r, 0, 1) ? NULL : g_strdup(PQgetvalue(r, 0, 1));
		} else if (st == MV_OK) {
			st = mv_fail(error_r, MV_ERR_INTERNAL, "message %s: no decision recorded", name);
		}
		PQclear(r);
		if (st == MV_OK && kind == DECIDE_EXTEND) {
			const char *uv[] = {idt, until_iso};
			st = mv_db_query(db, "UPDATE message SET expires_at = $2 WHERE id = $1", 2, uv, NULL,
			                 NULL, 0, &r, error_r);
			PQclear(r);
		}
		char *subject = g_strdup_printf("message %s", name);
		GString *details = g_string_new(NULL);
		g_string_append_printf(details, "sha256=%s\nclass=%s\nexpired=%s\nreviewer=%s\nos_user=%s\n"
		                       "label=%s",
		                       it->sha256, it->class_name, it->expires_at, by != NULL ? by : "",
		                       by_os != NULL ? by_os : "", label != NULL ? label : "");
		if (kind == DECIDE_APPROVE)
			g_string_append_printf(details, "\napprovals=%u/%u", it->approvals + 1, it->needed);
		else
			g_string_append_printf(details, "\nuntil=%s\nreason=%s", until_iso, reason);
		if (st == MV_OK)
			st = mv_audit_append(db, actor,
			                     kind == DECIDE_APPROVE ? "review-approve" : "review-extend",
			                     subject, details->str, NULL, error_r);
		g_free(subject);
		g_string_free(details, TRUE);
		g_free(by);
		g_free(by_os);
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
	g_free(me);
	g_free(my_os);
	if (st != MV_OK) {
		g_ptr_array_free(items, TRUE);
		return st;
	}
	*items_r = items;
	return MV_OK;
}

mv_status mv_review_approve(mv_db *db, const mv_policy *policy, const gint64 *ids, guint n,
                            const char *label, const char *actor, GPtrArray **items_r,
                            char **error_r)
{
	return decide(db, policy, DECIDE_APPROVE, ids, n, NULL, NULL, label, actor, items_r, error_r);
}

mv_status mv_review_extend(mv_db *db, const mv_policy *policy, const gint64 *ids, guint n,
                           const char *until, const char *reason, const char *label,
                           const char *actor, GPtrArray **items_r, char **error_r)
{
	return decide(db, policy, DECIDE_EXTEND, ids, n, until, reason, label, actor, items_r, error_r);
}

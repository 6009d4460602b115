/* mv-classify: from a parsed message to the rules engine's input. */
#include "mv-classify.h"

#include <string.h>

static const char **role_list(const mv_message *msg, const char *role, guint *n_r)
{
	GPtrArray *a = g_ptr_array_new();
	for (guint i = 0; i < msg->addresses->len; i++) {
		const mv_address *ad = msg->addresses->pdata[i];
		if (strcmp(ad->role, role) == 0)
			g_ptr_array_add(a, ad->address);
	}
	*n_r = a->len;
	return (const char **)g_ptr_array_free(a, FALSE);
}

mv_status mv_classify_message(const mv_policy *policy, gint64 policy_version, mv_message *msg,
                              const mv_classify_context *ctx, mv_rules_result **result_r,
                              char **error_r)
{
	if (result_r != NULL)
		*result_r = NULL;
	mv_rules_input in = {0};
	in.from = msg->from_addr;
	in.envelope_from = ctx->envelope_from;
	in.to = role_list(msg, "to", &in.n_to);
	in.cc = role_list(msg, "cc", &in.n_cc);
	in.bcc = role_list(msg, "bcc", &in.n_bcc);
	guint n_env = 0;
	for (const char *const *r = ctx->envelope_to; r != NULL && *r != NULL; r++)
		n_env++;
	in.envelope_rcpt = ctx->envelope_to;
	in.n_envelope_rcpt = n_env;
	mv_rules_header *hdrs = g_new0(mv_rules_header, msg->headers->len + 1);
	for (guint i = 0; i < msg->headers->len; i++) {
		const mv_header *h = msg->headers->pdata[i];
		hdrs[i].name = h->name;
		hdrs[i].value = h->value;
	}
	in.headers = hdrs;
	in.n_headers = msg->headers->len;
	in.subject = msg->subject;
	in.body = msg->body->str;
	in.body_len = (gssize)msg->body->len;
	mv_rules_attachment *att = g_new0(mv_rules_attachment, msg->parts->len + 1);
	guint na = 0;
	for (guint i = 0; i < msg->parts->len; i++) {
		const mv_part *p = msg->parts->pdata[i];
		if (!p->is_attachment && p->filename == NULL)
			continue;
		att[na].filename = p->filename;
		att[na].detected_type = p->detected_type;
		att[na].declared_type = p->declared_type;
		na++;
	}
	in.attachments = att;
	in.n_attachments = na;
	in.size = (gint64)g_bytes_get_size(msg->raw);
	in.has_attachment = msg->has_attachment;
	in.source = ctx->source;
	in.message_date = msg->date;
	in.has_message_date = msg->has_date;
	in.archive_date = ctx->archive_date;
	in.virus = msg->verdicts.virus;
	in.spam_verdict = msg->verdicts.spam;

	mv_rules_result *res = NULL;
	mv_status st = mv_rules_evaluate(policy, &in, NULL, &res, error_r);
	g_free((gpointer)in.to);
	g_free((gpointer)in.cc);
	g_free((gpointer)in.bcc);
	g_free(hdrs);
	g_free(att);
	if (st != MV_OK)
		return st;
	mv_message_retention *ret = &msg->retention;
	g_free(ret->class_name);
	g_free(ret->rule);
	if (ret->tags != NULL)
		g_ptr_array_free(ret->tags, TRUE);
	ret->class_name = g_strdup(res->cls->name);
	ret->expiry = res->expiry;
	ret->rule = res->rule != NULL ? g_strdup(res->rule->name) : NULL;
	ret->policy_version = policy_version;
	ret->tags = g_ptr_array_new_with_free_func(g_free);
	for (guint i = 0; i < res->tags->len; i++)
		g_ptr_array_add(ret->tags, g_strdup(res->tags->pdata[i]));
	ret->direction = mv_direction_to_string(res->direction);
	ret->archive_date = ctx->archive_date;
	if (result_r != NULL)
		*result_r = res;
	else
		mv_rules_result_free(&res);
	return MV_OK;
}

/* mv-rules: evaluate a policy's rules on one message (see mv-rules.h).
 *
 * SECURITY: everything in mv_rules_input comes from untrusted mail.  It is
 * only read: addresses, file names and types are case-folded copies (made
 * valid UTF-8 first); regular expressions run under the PCRE2 limits of
 * mv_rules_limits, and a test that fails for any reason counts as no match
 * and is reported in the result's warnings. */
#include "mv-rules.h"

#include <string.h>

#include "mv-policy-private.h"

void mv_rules_limits_default(mv_rules_limits *limits)
{
	limits->match_limit = MV_RULES_MATCH_LIMIT_DEFAULT;
	limits->depth_limit = MV_RULES_DEPTH_LIMIT_DEFAULT;
	limits->heap_limit_kib = MV_RULES_HEAP_LIMIT_DEFAULT;
}

mv_status mv_rules_limits_check(const mv_rules_limits *limits, char **error_r)
{
	if (limits->match_limit < MV_RULES_MATCH_LIMIT_MIN ||
	    limits->match_limit > MV_RULES_MATCH_LIMIT_MAX)
		return mv_fail(error_r, MV_ERR_CONFIG, "regex match limit %u is outside %u..%u",
		               limits->match_limit, MV_RULES_MATCH_LIMIT_MIN, MV_RULES_MATCH_LIMIT_MAX);
	if (limits->depth_limit < MV_RULES_DEPTH_LIMIT_MIN ||
	    limits->depth_limit > MV_RULES_DEPTH_LIMIT_MAX)
		return mv_fail(error_r, MV_ERR_CONFIG, "regex depth limit %u is outside %u..%u",
		               limits->depth_limit, MV_RULES_DEPTH_LIMIT_MIN, MV_RULES_DEPTH_LIMIT_MAX);
	if (limits->heap_limit_kib < MV_RULES_HEAP_LIMIT_MIN ||
	    limits->heap_limit_kib > MV_RULES_HEAP_LIMIT_MAX)
		return mv_fail(error_r, MV_ERR_CONFIG, "regex heap limit %u KiB is outside %u..%u",
		               limits->heap_limit_kib, MV_RULES_HEAP_LIMIT_MIN, MV_RULES_HEAP_LIMIT_MAX);
	return MV_OK;
}

/* ---------------------------------------------------------------------- */
/* spam verdict headers */

static const char *skip_space(const char *s)
{
	while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
		s++;
	return s;
}

/* value begins with word (any case) followed by a non-alphanumeric. */
static gboolean starts_with_word(const char *value, const char *word)
{
	const char *v = skip_space(value);
	gsize n = strlen(word);
	return g_ascii_strncasecmp(v, word, n) == 0 && !g_ascii_isalnum(v[n]);
}

static gboolean header_says_spam(const char *name, const char *value)
{
	if (g_ascii_strcasecmp(name, "X-Spam-Flag") == 0 ||
	    g_ascii_strcasecmp(name, "X-Spam-Status") == 0 ||
	    g_ascii_strcasecmp(name, "X-Barracuda-Spam-Status") == 0)
		return starts_with_word(value, "yes");
	if (g_ascii_strcasecmp(name, "X-Spam") == 0)
		return starts_with_word(value, "yes") || starts_with_word(value, "true");
	if (g_ascii_strcasecmp(name, "X-Spam-Level") == 0) {
		const char *v = skip_space(value);
		int stars = 0;
		while (v[stars] == '*')
			stars++;
		return stars >= 5;
	}
	if (g_ascii_strcasecmp(name, "X-MS-Exchange-Organization-SCL") == 0) {
		char *v = g_strstrip(g_strdup(value));
		gint64 scl;
		gboolean spam = g_ascii_string_to_signed(v, 10, -1, 9, &scl, NULL) && scl >= 5;
		g_free(v);
		return spam;
	}
	if (g_ascii_strcasecmp(name, "X-Forefront-Antispam-Report") == 0) {
		char *v = g_ascii_strdown(value, -1);
		gboolean spam = strstr(v, "sfv:spm") != NULL;
		g_free(v);
		return spam;
	}
	return FALSE;
}

gboolean mv_rules_is_spam(const mv_rules_header *headers, guint n_headers)
{
	for (guint i = 0; i < n_headers; i++) {
		if (headers[i].name != NULL &&
		    header_says_spam(headers[i].name, headers[i].value != NULL ? headers[i].value : ""))
			return TRUE;
	}
	return FALSE;
}

/* The headers' verdict or spamd's. */
static int spam_of(const mv_rules_input *in)
{
	if (in->spam_verdict != NULL && strcmp(in->spam_verdict, "yes") == 0)
		return 1;
	return mv_rules_is_spam(in->headers, in->n_headers) ? 1 : 0;
}

/* ---------------------------------------------------------------------- */
/* the evaluation context: the input, normalised once */

typedef struct {
	char *name;      /* folded, or NULL */
	char *detected;  /* folded, parameters cut, or NULL */
	char *declared;
} attachment;

typedef struct {
	const mv_policy *policy;
	const mv_rules_input *in;
	char *from, *envelope_from;     /* folded addresses, or NULL */
	GPtrArray *to, *cc, *bcc, *envelope_rcpt;  /* char*, folded, owned */
	attachment *attachments;
	char *source;                   /* folded ("" when none) */
	const char *subject;
	const char *body;
	gsize body_len;
	mv_direction direction;
	int spam;                       /* -1: not computed yet */
	pcre2_match_data *md;
	pcre2_match_context *mctx;
	mv_rules_result *result;
	const mv_rule *rule;            /* being evaluated, for warnings */
} eval_ctx;

/* "  <Alice@Example.COM> " -> "alice@example.com"; NULL stays NULL. */
static char *fold_address(const char *a)
{
	if (a == NULL)
		return NULL;
	char *f = g_strstrip(mv_policy_fold(a));
	gsize n = strlen(f);
	if (n >= 2 && f[0] == '<' && f[n - 1] == '>') {
		memmove(f, f + 1, n - 2);
		f[n - 2] = '\0';
		g_strstrip(f);
	}
	return f;
}

static GPtrArray *fold_addresses(const char *const *list, guint n)
{
	GPtrArray *out = g_ptr_array_new_full(n, g_free);
	for (guint i = 0; i < n; i++) {
		if (list[i] != NULL)
			g_ptr_array_add(out, fold_address(list[i]));
	}
	return out;
}

static char *fold_type(const char *t)
{
	if (t == NULL)
		return NULL;
	char *f = mv_policy_fold(t);
	char *semi = strchr(f, ';');
	if (semi != NULL)
		*semi = '\0';
	return g_strstrip(f);
}

static const char *domain_of(const char *address)
{
	const char *at = strrchr(address, '@');
	return at != NULL ? at + 1 : "";
}

static gboolean is_internal(const eval_ctx *x, const char *address)
{
	return address != NULL && strchr(address, '@') != NULL &&
	       mv_policy_domain_is_internal_folded(x->policy, domain_of(address));
}

static mv_direction compute_direction(const eval_ctx *x)
{
	const char *sender = x->from != NULL && *x->from != '\0' ? x->from : x->envelope_from;
	gboolean internal_rcpt = FALSE, external_rcpt = FALSE;
	GPtrArray *lists[] = {x->to, x->cc, x->bcc, x->envelope_rcpt};
	for (gsize l = 0; l < G_N_ELEMENTS(lists); l++) {
		for (guint i = 0; i < lists[l]->len; i++) {
			if (is_internal(x, lists[l]->pdata[i]))
				internal_rcpt = TRUE;
			else
				external_rcpt = TRUE;
		}
	}
	if (is_internal(x, sender))
		return external_rcpt ? MV_DIRECTION_OUTBOUND : MV_DIRECTION_INTERNAL;
	return internal_rcpt ? MV_DIRECTION_INBOUND : MV_DIRECTION_EXTERNAL;
}

static void ctx_init(eval_ctx *x, const mv_policy *policy, const mv_rules_input *in)
{
	memset(x, 0, sizeof *x);
	x->policy = policy;
	x->in = in;
	x->from = fold_address(in->from);
	x->envelope_from = fold_address(in->envelope_from);
	x->to = fold_addresses(in->to, in->n_to);
	x->cc = fold_addresses(in->cc, in->n_cc);
	x->bcc = fold_addresses(in->bcc, in->n_bcc);
	x->envelope_rcpt = fold_addresses(in->envelope_rcpt, in->n_envelope_rcpt);
	x->attachments = g_new0(attachment, in->n_attachments + 1);
	for (guint i = 0; i < in->n_attachments; i++) {
		const mv_rules_attachment *a = &in->attachments[i];
		x->attachments[i].name = a->filename != NULL ? mv_policy_fold(a->filename) : NULL;
		x->attachments[i].detected = fold_type(a->detected_type);
		x->attachments[i].declared = fold_type(a->declared_type);
	}
	x->source = g_strstrip(mv_policy_fold(in->source));
	x->subject = in->subject != NULL ? in->subject : "";
	x->body = in->body != NULL ? in->body : "";
	x->body_len = in->body == NULL ? 0 : in->body_len < 0 ? strlen(in->body) : (gsize)in->body_len;
	x->spam = -1;
	x->direction = compute_direction(x);
}

static void ctx_clear(eval_ctx *x)
{
	g_free(x->from);
	g_free(x->envelope_from);
	g_ptr_array_free(x->to, TRUE);
	g_ptr_array_free(x->cc, TRUE);
	g_ptr_array_free(x->bcc, TRUE);
	g_ptr_array_free(x->envelope_rcpt, TRUE);
	for (guint i = 0; i < x->in->n_attachments; i++) {
		g_free(x->attachments[i].name);
		g_free(x->attachments[i].detected);
		g_free(x->attachments[i].declared);
	}
	g_free(x->attachments);
	g_free(x->source);
	if (x->md != NULL)
		pcre2_match_data_free(x->md);
	if (x->mctx != NULL)
		pcre2_match_context_free(x->mctx);
}

mv_direction mv_rules_direction(const mv_policy *policy, const mv_rules_input *in)
{
	eval_ctx x;
	ctx_init(&x, policy, in);
	mv_direction d = x.direction;
	ctx_clear(&x);
	return d;
}

/* ---------------------------------------------------------------------- */
/* conditions */

static gboolean address_matches(const mv_condition *c, const char *address)
{
	if (address == NULL)
		return FALSE;
	return mv_glob_match_folded(c->glob, c->by_domain ? domain_of(address) : address);
}

static gboolean any_address_matches(const mv_condition *c, const GPtrArray *list)
{
	for (guint i = 0; i < list->len; i++) {
		if (address_matches(c, list->pdata[i]))
			return TRUE;
	}
	return FALSE;
}

static gboolean regex_matches(eval_ctx *x, const mv_condition *c, const char *s, gsize len)
{
	if (c->re == NULL)
		return FALSE;
	int rc = pcre2_match(c->re, (PCRE2_SPTR)s, len, 0, 0, x->md, x->mctx);
	if (rc >= 0)
		return TRUE;
	if (rc == PCRE2_ERROR_NOMATCH || rc == PCRE2_ERROR_PARTIAL)
		return FALSE;
	PCRE2_UCHAR msg[256];
	if (pcre2_get_error_message(rc, msg, sizeof msg) < 0)
		g_strlcpy((char *)msg, "matching failed", sizeof msg);
	if (rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT ||
	    rc == PCRE2_ERROR_HEAPLIMIT || rc == PCRE2_ERROR_JIT_STACKLIMIT)
		x->result->limit_hit = TRUE;
	g_ptr_array_add(x->result->warnings,
	                g_strdup_printf("rule '%s': <%s regex=\"%s\"> (line %u): %s; counted as "
	                                "no match",
	                                x->rule != NULL ? x->rule->name : "?", c->element, c->regex,
	                                c->line, (const char *)msg));
	return FALSE;
}

static gboolean evaluate(eval_ctx *x, const mv_condition *c)
{
	const mv_rules_input *in = x->in;
	switch (c->kind) {
	case MV_COND_ALL:
		for (guint i = 0; i < c->children->len; i++) {
			if (!evaluate(x, c->children->pdata[i]))
				return FALSE;
		}
		return TRUE;
	case MV_COND_ANY:
		for (guint i = 0; i < c->children->len; i++) {
			if (evaluate(x, c->children->pdata[i]))
				return TRUE;
		}
		return FALSE;
	case MV_COND_NOT:
		return c->children->len == 0 || !evaluate(x, c->children->pdata[0]);
	case MV_COND_FROM:
		return address_matches(c, x->from) || address_matches(c, x->envelope_from);
	case MV_COND_TO:
		return any_address_matches(c, x->to);
	case MV_COND_CC:
		return any_address_matches(c, x->cc);
	case MV_COND_BCC:
		return any_address_matches(c, x->bcc);
	case MV_COND_ENVELOPE:
		return any_address_matches(c, x->envelope_rcpt);
	case MV_COND_RECIPIENT:
		return any_address_matches(c, x->to) || any_address_matches(c, x->cc) ||
		       any_address_matches(c, x->bcc) || any_address_matches(c, x->envelope_rcpt);
	case MV_COND_DIRECTION:
		return x->direction == c->direction;
	case MV_COND_HEADER:
		for (guint i = 0; i < in->n_headers; i++) {
			const mv_rules_header *h = &in->headers[i];
			if (h->name == NULL || c->header == NULL ||
			    g_ascii_strcasecmp(h->name, c->header) != 0)
				continue;
			if (c->regex == NULL)
				return TRUE;
			const char *v = h->value != NULL ? h->value : "";
			if (regex_matches(x, c, v, strlen(v)))
				return TRUE;
		}
		return FALSE;
	case MV_COND_SUBJECT:
		return regex_matches(x, c, x->subject, strlen(x->subject));
	case MV_COND_BODY:
		return regex_matches(x, c, x->body, x->body_len);
	case MV_COND_ATTACHMENT_NAME:
		for (guint i = 0; i < in->n_attachments; i++) {
			const char *name = x->attachments[i].name;
			if (name != NULL && mv_glob_match_folded(c->glob, name))
				return TRUE;
		}
		return FALSE;
	case MV_COND_ATTACHMENT_TYPE:
		for (guint i = 0; i < in->n_attachments; i++) {
			const attachment *a = &x->attachments[i];
			if (c->type_match != MV_TYPE_MATCH_DECLARED && a->detected != NULL &&
			    mv_glob_match_folded(c->glob, a->detected))
				return TRUE;
			if (c->type_match != MV_TYPE_MATCH_DETECTED && a->declared != NULL &&
			    mv_glob_match_folded(c->glob, a->declared))
				return TRUE;
		}
		return FALSE;
	case MV_COND_SIZE:
		return (!c->has_min || in->size >= c->min) && (!c->has_max || in->size <= c->max);
	case MV_COND_HAS_ATTACHMENT:
		return in->has_attachment;
	case MV_COND_SPAM:
		if (x->spam < 0)
			x->spam = spam_of(in);
		return x->spam == 1;
	case MV_COND_VIRUS:
		return in->virus != NULL && strcmp(in->virus, "infected") == 0;
	case MV_COND_SOURCE:
		return mv_glob_match_folded(c->glob, x->source);
	}
	return FALSE;
}

/* ---------------------------------------------------------------------- */
/* the result */

void mv_rules_result_free(mv_rules_result **result)
{
	if (result == NULL || *result == NULL)
		return;
	mv_rules_result *r = *result;
	g_ptr_array_free(r->tags, TRUE);
	g_array_free(r->matches, TRUE);
	g_free(r->reason);
	g_ptr_array_free(r->warnings, TRUE);
	g_free(r);
	*result = NULL;
}

static char *format_day(gint64 t)
{
	GDateTime *dt = g_date_time_new_from_unix_utc(CLAMP(t, MV_TIME_MIN, MV_TIME_MAX));
	char *s = dt != NULL ? g_date_time_format(dt, "%Y-%m-%d") : g_strdup("?");
	if (dt != NULL)
		g_date_time_unref(dt);
	return s;
}

/* "P7Y from the message date" */
static void append_class_term(GString *s, const mv_retention_class *c, const mv_rules_input *in)
{
	g_string_append_printf(s, "%s from the ", c->duration_text);
	if (c->start == MV_START_ARCHIVE_DATE)
		g_string_append(s, "archive date");
	else if (in->has_message_date)
		g_string_append(s, "message date");
	else
		g_string_append(s, "archive date, the message having no date");
}

static char *build_reason(const mv_rules_result *r, const mv_rules_input *in, gint best)
{
	GString *s = g_string_new(NULL);
	char *day = format_day(r->expiry);
	if (best < 0) {
		GString *tag_rules = g_string_new(NULL);
		for (guint i = 0; i < r->matches->len; i++) {
			const mv_rules_match *m = &g_array_index(r->matches, mv_rules_match, i);
			g_string_append_printf(tag_rules, "%s'%s'", i > 0 ? ", " : "", m->rule->name);
		}
		if (r->matches->len == 0)
			g_string_append(s, "no rule matched");
		else
			g_string_append_printf(s, "no matching rule names a class (only the tag rule%s %s)",
			                       r->matches->len > 1 ? "s" : "", tag_rules->str);
		g_string_free(tag_rules, TRUE);
		g_string_append_printf(s, ", so the default class '%s' applies (", r->cls->name);
		append_class_term(s, r->cls, in);
		g_string_append_printf(s, "): expires %s", day);
		g_free(day);
		return g_string_free(s, FALSE);
	}

	guint proposals = 0;
	for (guint i = 0; i < r->matches->len; i++) {
		if (g_array_index(r->matches, mv_rules_match, i).cls != NULL)
			proposals++;
	}
	g_string_append_printf(s, "rule '%s' (line %u) gives class '%s' (", r->rule->name,
	                       r->rule->line, r->cls->name);
	append_class_term(s, r->cls, in);
	g_string_append_printf(s, "): expires %s", day);
	g_free(day);
	if (proposals == 1) {
		g_string_append(s, "; no other matching rule names a class");
		return g_string_free(s, FALSE);
	}
	g_string_append_printf(s, "; the latest expiry of the %u matching rules that name a class",
	                       proposals);
	gboolean first_tie = TRUE, first_shorter = TRUE;
	for (guint i = 0; i < r->matches->len; i++) {
		const mv_rules_match *m = &g_array_index(r->matches, mv_rules_match, i);
		if (m->cls == NULL || (gint)i == best || m->expiry != r->expiry)
			continue;
		g_string_append_printf(s, "%s'%s' (%s)", first_tie ? "; tied with later rule " : ", ",
		                       m->rule->name, m->cls->name);
		first_tie = FALSE;
	}
	if (!first_tie)
		g_string_append(s, ", the earlier rule wins");
	for (guint i = 0; i < r->matches->len; i++) {
		const mv_rules_match *m = &g_array_index(r->matches, mv_rules_match, i);
		if (m->cls == NULL || m->expiry == r->expiry)
			continue;
		char *d = format_day(m->expiry);
		g_string_append_printf(s, "%s'%s' (%s, %s)", first_shorter ? "; beats " : ", ",
		                       m->rule->name, m->cls->name, d);
		g_free(d);
		first_shorter = FALSE;
	}
	return g_string_free(s, FALSE);
}

mv_status mv_rules_evaluate(const mv_policy *policy, const mv_rules_input *in,
                            const mv_rules_limits *limits, mv_rules_result **result_r,
                            char **error_r)
{
	*result_r = NULL;
	mv_rules_limits lim;
	if (limits != NULL)
		lim = *limits;
	else
		mv_rules_limits_default(&lim);
	lim.match_limit = CLAMP(lim.match_limit, MV_RULES_MATCH_LIMIT_MIN, MV_RULES_MATCH_LIMIT_MAX);
	lim.depth_limit = CLAMP(lim.depth_limit, MV_RULES_DEPTH_LIMIT_MIN, MV_RULES_DEPTH_LIMIT_MAX);
	lim.heap_limit_kib = CLAMP(lim.heap_limit_kib, MV_RULES_HEAP_LIMIT_MIN, MV_RULES_HEAP_LIMIT_MAX);

	eval_ctx x;
	ctx_init(&x, policy, in);
	x.md = pcre2_match_data_create(1, NULL);
	x.mctx = pcre2_match_context_create(NULL);
	if (x.md == NULL || x.mctx == NULL) {
		ctx_clear(&x);
		return mv_fail(error_r, MV_ERR_INTERNAL, "out of memory creating PCRE2 match data");
	}
	pcre2_set_match_limit(x.mctx, lim.match_limit);
	pcre2_set_depth_limit(x.mctx, lim.depth_limit);
	pcre2_set_heap_limit(x.mctx, lim.heap_limit_kib);

	mv_rules_result *r = g_new0(mv_rules_result, 1);
	r->tags = g_ptr_array_new_with_free_func(g_free);
	r->matches = g_array_new(FALSE, FALSE, sizeof(mv_rules_match));
	r->warnings = g_ptr_array_new_with_free_func(g_free);
	r->direction = x.direction;
	x.result = r;

	/* Expiry of each class for this message, computed once. */
	guint nclasses = mv_policy_class_count(policy);
	gint64 *expiry = g_new(gint64, nclasses);
	gboolean *known = g_new0(gboolean, nclasses);

	gint best = -1;
	gint64 best_expiry = 0;
	for (guint i = 0; i < policy->rules->len; i++) {
		const mv_rule *rule = policy->rules->pdata[i];
		x.rule = rule;
		if (!evaluate(&x, rule->condition))
			continue;
		mv_rules_match m = {.rule = rule, .cls = rule->cls, .expiry = 0};
		if (m.cls != NULL) {
			if (!known[m.cls->index]) {
				expiry[m.cls->index] = mv_retention_expiry(m.cls, in->message_date,
				                                           in->has_message_date,
				                                           in->archive_date);
				known[m.cls->index] = TRUE;
			}
			m.expiry = expiry[m.cls->index];
			if (best < 0 || m.expiry > best_expiry) {
				best = (gint)r->matches->len;
				best_expiry = m.expiry;
			}
		}
		g_array_append_val(r->matches, m);
		for (guint t = 0; t < rule->tags->len; t++) {
			const char *tag = rule->tags->pdata[t];
			gboolean seen = FALSE;
			for (guint k = 0; k < r->tags->len && !seen; k++)
				seen = strcmp(r->tags->pdata[k], tag) == 0;
			if (!seen)
				g_ptr_array_add(r->tags, g_strdup(tag));
		}
	}
	g_free(expiry);
	g_free(known);

	if (best >= 0) {
		const mv_rules_match *m = &g_array_index(r->matches, mv_rules_match, best);
		r->rule = m->rule;
		r->cls = m->cls;
		r->expiry = m->expiry;
	} else {
		r->rule = NULL;
		r->cls = policy->default_class;
		r->expiry = mv_retention_expiry(r->cls, in->message_date, in->has_message_date,
		                                in->archive_date);
	}
	if (x.spam < 0)
		x.spam = spam_of(in);
	r->spam = x.spam == 1;
	r->reason = build_reason(r, in, best);
	ctx_clear(&x);
	*result_r = r;
	return MV_OK;
}

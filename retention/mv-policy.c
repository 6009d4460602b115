/* mv-policy: read, validate and check a retention policy (XML, libxml2,
 * schema/policy.xsd compiled into the binary), durations and expiry dates,
 * and the successor check for locked classes.
 *
 * SECURITY: the policy text is parsed without network access (NONET),
 * without entity substitution or DTD loading, and a DOCTYPE is refused; its
 * size is bounded by MV_POLICY_MAX_BYTES.  Regular expressions are compiled
 * here (PCRE2, UTF with invalid UTF allowed in subjects) and only ever
 * matched under limits (mv-rules.c). */
#include "mv-policy-private.h"

#include <errno.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>
#include <libxml/xmlschemas.h>
#include <string.h>
#include <sys/stat.h>

/* generated from schema/policy.xsd by scripts/embed-file.py */
extern const char mv_policy_xsd[];
extern const size_t mv_policy_xsd_len;

#if LIBXML_VERSION >= 21200
typedef const xmlError *mv_xml_error_ptr;
#else
typedef xmlError *mv_xml_error_ptr;
#endif

/* ---------------------------------------------------------------------- */
/* names */

const char *mv_retention_start_to_string(mv_retention_start start)
{
	return start == MV_START_ARCHIVE_DATE ? "archive-date" : "message-date";
}

const char *mv_disposition_to_string(mv_disposition disposition)
{
	return disposition == MV_DISPOSITION_REVIEW ? "review" : "purge";
}

const char *mv_direction_to_string(mv_direction direction)
{
	switch (direction) {
	case MV_DIRECTION_INTERNAL:
		return "internal";
	case MV_DIRECTION_OUTBOUND:
		return "outbound";
	case MV_DIRECTION_INBOUND:
		return "inbound";
	case MV_DIRECTION_EXTERNAL:
		return "external";
	}
	return "external";
}

const char *mv_policy_schema(gsize *len_r)
{
	if (len_r != NULL)
		*len_r = mv_policy_xsd_len;
	return mv_policy_xsd;
}

/* ---------------------------------------------------------------------- */
/* case folding and globs */

char *mv_policy_fold(const char *s)
{
	if (s == NULL)
		return g_strdup("");
	if (!g_utf8_validate(s, -1, NULL)) {
		char *valid = g_utf8_make_valid(s, -1);
		char *folded = g_utf8_casefold(valid, -1);
		g_free(valid);
		return folded;
	}
	for (const char *p = s; *p != '\0'; p++) {
		if ((unsigned char)*p >= 0x80)
			return g_utf8_casefold(s, -1);
	}
	return g_ascii_strdown(s, -1);
}

/* Iterative glob with one backtracking point (the last '*'): linear in
 * practice, O(pattern x text) at worst. */
gboolean mv_glob_match_folded(const char *p, const char *t)
{
	const char *star_p = NULL, *star_t = NULL;
	while (*t != '\0') {
		if (*p == '*') {
			while (*p == '*')
				p++;
			if (*p == '\0')
				return TRUE;
			star_p = p;
			star_t = t;
			continue;
		}
		if (*p == '?') {
			p++;
			t = g_utf8_next_char(t);
			continue;
		}
		if (*p != '\0' && *p == *t) {
			p++;
			t++;
			continue;
		}
		if (star_p == NULL)
			return FALSE;
		star_t = g_utf8_next_char(star_t);
		t = star_t;
		p = star_p;
	}
	while (*p == '*')
		p++;
	return *p == '\0';
}

gboolean mv_glob_match(const char *pattern, const char *text)
{
	char *p = mv_policy_fold(pattern);
	char *t = mv_policy_fold(text);
	gboolean ok = mv_glob_match_folded(p, t);
	g_free(p);
	g_free(t);
	return ok;
}

/* ---------------------------------------------------------------------- */
/* durations */

mv_status mv_duration_parse(const char *text, mv_duration *dur_r, char **error_r)
{
	static const char designators[] = "YMWD";
	gint64 value[4] = {0, 0, 0, 0};
	int next = 0;

	if (text == NULL || *text == '\0')
		return mv_fail(error_r, MV_ERR_CONFIG, "the duration is empty");
	if (text[0] != 'P')
		return mv_fail(error_r, MV_ERR_CONFIG,
		               "a duration starts with P, as in P7Y, P6M, P2W or P90D");
	if (strchr(text, 'T') != NULL || strchr(text, 't') != NULL)
		return mv_fail(error_r, MV_ERR_CONFIG,
		               "time parts (T...) are not supported: retention is counted "
		               "in years, months, weeks and days");
	const char *p = text + 1;
	if (*p == '\0')
		return mv_fail(error_r, MV_ERR_CONFIG, "nothing follows P");
	while (*p != '\0') {
		if (*p == '-' || *p == '+')
			return mv_fail(error_r, MV_ERR_CONFIG, "signs are not allowed");
		if (!g_ascii_isdigit(*p))
			return mv_fail(error_r, MV_ERR_CONFIG, "expected a number at \"%s\"", p);
		gint64 n = 0;
		int digits = 0;
		while (g_ascii_isdigit(*p)) {
			if (++digits > 7)
				return mv_fail(error_r, MV_ERR_CONFIG, "a number is too large");
			n = n * 10 + (*p - '0');
			p++;
		}
		if (*p == '.' || *p == ',')
			return mv_fail(error_r, MV_ERR_CONFIG, "fractions are not supported");
		if (*p == '\0')
			return mv_fail(error_r, MV_ERR_CONFIG,
			               "the number %" G_GINT64_FORMAT
			               " has no designator (Y, M, W or D)",
			               n);
		const char *d = strchr(designators, *p);
		if (d == NULL) {
			if (strchr("ymwd", *p) != NULL)
				return mv_fail(error_r, MV_ERR_CONFIG,
				               "designators are upper case (Y, M, W, D)");
			return mv_fail(error_r, MV_ERR_CONFIG,
			               "unknown designator '%c' (only Y, M, W and D)", *p);
		}
		int idx = (int)(d - designators);
		if (idx < next)
			return mv_fail(error_r, MV_ERR_CONFIG,
			               "designators come in the order Y, M, W, D, each at most once");
		value[idx] = n;
		next = idx + 1;
		p++;
	}
	gint64 months = value[0] * 12 + value[1];
	gint64 days = value[2] * 7 + value[3];
	if (months == 0 && days == 0)
		return mv_fail(error_r, MV_ERR_CONFIG,
		               "a duration of zero is not allowed (the shortest is P1D)");
	if (months > MV_DURATION_MAX_MONTHS || days > MV_DURATION_MAX_DAYS)
		return mv_fail(error_r, MV_ERR_CONFIG, "longer than 1000 years");
	dur_r->months = (gint32)months;
	dur_r->days = (gint32)days;
	return MV_OK;
}

char *mv_duration_to_string(const mv_duration *d)
{
	GString *s = g_string_new("P");
	if (d->months / 12 != 0)
		g_string_append_printf(s, "%dY", d->months / 12);
	if (d->months % 12 != 0)
		g_string_append_printf(s, "%dM", d->months % 12);
	if (d->days != 0 || s->len == 1)
		g_string_append_printf(s, "%dD", d->days);
	return g_string_free(s, FALSE);
}

gint64 mv_duration_add(const mv_duration *d, gint64 start)
{
	start = CLAMP(start, MV_TIME_MIN, MV_TIME_MAX);
	GDateTime *dt = g_date_time_new_from_unix_utc(start);
	if (dt == NULL)
		return MV_TIME_MAX;
	GDateTime *m = g_date_time_add_months(dt, d->months);
	g_date_time_unref(dt);
	if (m == NULL)
		return MV_TIME_MAX;
	GDateTime *r = g_date_time_add_days(m, d->days);
	g_date_time_unref(m);
	if (r == NULL)
		return MV_TIME_MAX;
	gint64 out = g_date_time_to_unix(r);
	g_date_time_unref(r);
	return MIN(out, MV_TIME_MAX);
}

/* Proleptic Gregorian day numbers (days since 1970-01-01), after Howard
 * Hinnant's civil-date algorithms: the same arithmetic as mv_duration_add
 * (months first with the day clamped, then days), in integers, so that
 * mv_duration_never_shorter can try every day of a 400-year cycle. */
static gint64 days_from_civil(gint64 y, int m, int d)
{
	y -= m <= 2;
	gint64 era = (y >= 0 ? y : y - 399) / 400;
	gint64 yoe = y - era * 400;
	gint64 doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	gint64 doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static void civil_from_days(gint64 z, gint64 *y_r, int *m_r, int *d_r)
{
	z += 719468;
	gint64 era = (z >= 0 ? z : z - 146096) / 146097;
	gint64 doe = z - era * 146097;
	gint64 yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	gint64 doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	gint64 mp = (5 * doy + 2) / 153;
	*d_r = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m_r = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y_r = yoe + era * 400 + (*m_r <= 2);
}

static int days_in_month(gint64 y, int m)
{
	static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		return 29;
	return days[m - 1];
}

static gint64 add_duration_days(gint64 z, const mv_duration *dur)
{
	gint64 y;
	int m, d;
	civil_from_days(z, &y, &m, &d);
	gint64 total = y * 12 + (m - 1) + dur->months;
	gint64 y2 = total >= 0 ? total / 12 : -((-total + 11) / 12);
	int m2 = (int)(total - y2 * 12) + 1;
	d = MIN(d, days_in_month(y2, m2));
	return days_from_civil(y2, m2, d) + dur->days;
}

gboolean mv_duration_never_shorter(const mv_duration *next, const mv_duration *current,
                                   gint64 *example_r)
{
	/* Adding more months (day clamped) and then more days never gives an
	 * earlier date. */
	if (next->months >= current->months && next->days >= current->days)
		return TRUE;
	/* Otherwise try every start day of one 400-year Gregorian cycle: the
	 * calendar repeats after it, so this covers every date. */
	gint64 first = days_from_civil(2001, 1, 1);
	for (gint64 z = first; z < first + 146097; z++) {
		if (add_duration_days(z, next) < add_duration_days(z, current)) {
			if (example_r != NULL)
				*example_r = z * 86400;
			return FALSE;
		}
	}
	return TRUE;
}

gint64 mv_retention_expiry(const mv_retention_class *cls, gint64 message_date,
                           gboolean has_message_date, gint64 archive_date)
{
	gint64 start = archive_date;
	if (cls->start == MV_START_MESSAGE_DATE && has_message_date)
		start = message_date;
	return mv_duration_add(&cls->duration, start);
}

/* ---------------------------------------------------------------------- */
/* problems */

typedef struct {
	guint line;
	guint seq;
	char *text;   /* "FILE:LINE: ..." */
} problem;

/* Problems are collected, then sorted by line (in order of discovery on
 * one line) and handed over, at most MV_POLICY_MAX_PROBLEMS of them. */
typedef struct {
	const char *filename;
	GPtrArray *problems;  /* where they go (may be NULL) */
	GArray *found;        /* problem */
} problem_sink;

static void problem_sink_init(problem_sink *sink, const char *filename, GPtrArray *problems)
{
	sink->filename = filename;
	sink->problems = problems;
	sink->found = g_array_new(FALSE, FALSE, sizeof(problem));
}

/* One line: control characters (a newline in an attribute, say) become
 * spaces. */
static char *one_line(char *s)
{
	g_strstrip(s);
	for (char *p = s; *p != '\0'; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	}
	return s;
}

static void problem_addv(problem_sink *sink, guint line, const char *fmt, va_list ap)
{
	char *msg = one_line(g_strdup_vprintf(fmt, ap));
	problem p = {.line = line > 0 ? line : 1, .seq = sink->found->len};
	p.text = g_strdup_printf("%s:%u: %s", sink->filename, p.line, msg);
	g_free(msg);
	g_array_append_val(sink->found, p);
}

static void problem_add(problem_sink *sink, guint line, const char *fmt, ...) G_GNUC_PRINTF(3, 4);
static void problem_add(problem_sink *sink, guint line, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	problem_addv(sink, line, fmt, ap);
	va_end(ap);
}

static gint problem_cmp(gconstpointer a, gconstpointer b)
{
	const problem *x = a, *y = b;
	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Ends the report: hands the problems over (sorted, capped, with a line
 * for those left out) and returns MV_OK when there were none, else
 * MV_ERR_CONFIG with *error_r set to the first. */
static mv_status problem_finish(problem_sink *sink, char **error_r)
{
	GArray *found = sink->found;
	sink->found = NULL;
	guint n = found->len;
	if (n == 0) {
		g_array_free(found, TRUE);
		return MV_OK;
	}
	g_array_sort(found, problem_cmp);
	const problem *first = &g_array_index(found, problem, 0);
	if (n == 1)
		mv_fail(error_r, MV_ERR_CONFIG, "%s", first->text);
	else
		mv_fail(error_r, MV_ERR_CONFIG, "%s (and %u more problems)", first->text, n - 1);
	for (guint i = 0; i < n; i++) {
		problem *p = &g_array_index(found, problem, i);
		if (sink->problems != NULL && i < MV_POLICY_MAX_PROBLEMS)
			g_ptr_array_add(sink->problems, p->text);
		else
			g_free(p->text);
	}
	if (n > MV_POLICY_MAX_PROBLEMS && sink->problems != NULL)
		g_ptr_array_add(sink->problems, g_strdup_printf("%s: %u more problems not shown",
		                                                sink->filename,
		                                                n - MV_POLICY_MAX_PROBLEMS));
	g_array_free(found, TRUE);
	return MV_ERR_CONFIG;
}

static void xml_error(void *data, mv_xml_error_ptr err)
{
	problem_sink *sink = data;
	if (err == NULL || err->level < XML_ERR_ERROR)
		return;
	guint line = err->line > 0 ? (guint)err->line : 0;
	if (err->node != NULL) {
		long l = xmlGetLineNo((const xmlNode *)err->node);
		if (l > 0)
			line = (guint)l;
	}
	problem_add(sink, line, "%s", err->message != NULL ? err->message : "XML error");
}

/* Errors compiling the embedded schema are bugs: kept apart. */
static void schema_error(void *data, mv_xml_error_ptr err)
{
	GString *out = data;
	if (err == NULL || err->level < XML_ERR_ERROR || out->len > 0)
		return;
	g_string_append_printf(out, "policy.xsd:%d: %s", err->line,
	                       err->message != NULL ? err->message : "error");
	g_strstrip(out->str);
	out->len = strlen(out->str);
}

/* ---------------------------------------------------------------------- */
/* freeing */

static void condition_free(mv_condition *c)
{
	if (c == NULL)
		return;
	if (c->children != NULL)
		g_ptr_array_free(c->children, TRUE);
	g_free(c->glob);
	g_free(c->header);
	g_free(c->regex);
	if (c->re != NULL)
		pcre2_code_free(c->re);
	g_free(c);
}

static void class_free(mv_retention_class *c)
{
	if (c == NULL)
		return;
	g_free(c->name);
	g_free(c->duration_text);
	g_free(c->description);
	g_free(c);
}

static void rule_free(mv_rule *r)
{
	if (r == NULL)
		return;
	g_free(r->name);
	g_free(r->description);
	g_ptr_array_free(r->tags, TRUE);
	condition_free(r->condition);
	g_free(r);
}

void mv_policy_free(mv_policy **policy)
{
	if (policy == NULL || *policy == NULL)
		return;
	mv_policy *p = *policy;
	g_free(p->filename);
	g_free(p->name);
	if (p->xml != NULL)
		g_bytes_unref(p->xml);
	g_ptr_array_free(p->internal_domains, TRUE);
	g_hash_table_destroy(p->class_by_name);
	g_hash_table_destroy(p->rule_by_name);
	g_ptr_array_free(p->rules, TRUE);
	g_ptr_array_free(p->classes, TRUE);
	g_free(p);
	*policy = NULL;
}

/* ---------------------------------------------------------------------- */
/* building the policy from the document */

typedef struct {
	mv_rule *rule;        /* NULL for <default-class> */
	char *ref;
	guint line;
} class_ref;

typedef struct {
	problem_sink *sink;
	mv_policy *policy;
	GPtrArray *refs;      /* class_ref*, owned */
	gboolean has_default;
	guint default_line;
} builder;

static void class_ref_free(class_ref *r)
{
	g_free(r->ref);
	g_free(r);
}

static guint node_line(const xmlNode *n)
{
	long l = xmlGetLineNo(n);
	return l > 0 ? (guint)l : 0;
}

static gboolean is_element(const xmlNode *n, const char *name)
{
	return n->type == XML_ELEMENT_NODE &&
	       (name == NULL || strcmp((const char *)n->name, name) == 0);
}

/* The attribute's value (new string, g_free) or NULL. */
static char *attr(const xmlNode *n, const char *name)
{
	xmlChar *v = xmlGetNoNsProp(n, (const xmlChar *)name);
	if (v == NULL)
		return NULL;
	char *s = g_strdup((const char *)v);
	xmlFree(v);
	return s;
}

/* The attribute's value with white space trimmed, as xs:token reads it. */
static char *attr_token(const xmlNode *n, const char *name)
{
	char *s = attr(n, name);
	return s != NULL ? g_strstrip(s) : NULL;
}

static char *text_token(const xmlNode *n)
{
	xmlChar *v = xmlNodeGetContent(n);
	char *s = g_strdup(v != NULL ? (const char *)v : "");
	xmlFree(v);
	return g_strstrip(s);
}

static gboolean attr_bool(const xmlNode *n, const char *name)
{
	char *s = attr_token(n, name);
	gboolean v = s != NULL && (strcmp(s, "true") == 0 || strcmp(s, "1") == 0);
	g_free(s);
	return v;
}

static void build_class(builder *b, const xmlNode *n)
{
	guint line = node_line(n);
	char *name = attr_token(n, "name");
	if (name == NULL)
		return; /* the schema says so */
	const mv_retention_class *prev = g_hash_table_lookup(b->policy->class_by_name, name);
	if (prev != NULL) {
		problem_add(b->sink, line, "duplicate class name '%s' (first declared on line %u)",
		            name, prev->line);
		g_free(name);
		return;
	}
	mv_retention_class *c = g_new0(mv_retention_class, 1);
	c->name = name;
	c->line = line;
	c->index = b->policy->classes->len;
	c->duration_text = attr_token(n, "duration");
	if (c->duration_text != NULL) {
		char *why = NULL;
		if (mv_duration_parse(c->duration_text, &c->duration, &why) != MV_OK)
			problem_add(b->sink, line, "class '%s': invalid duration \"%s\": %s", name,
			            c->duration_text, why);
		g_free(why);
	}
	char *s = attr_token(n, "start");
	c->start = s != NULL && strcmp(s, "archive-date") == 0 ? MV_START_ARCHIVE_DATE
	                                                        : MV_START_MESSAGE_DATE;
	g_free(s);
	s = attr_token(n, "disposition");
	c->disposition = s != NULL && strcmp(s, "review") == 0 ? MV_DISPOSITION_REVIEW
	                                                       : MV_DISPOSITION_PURGE;
	g_free(s);
	c->locked = attr_bool(n, "locked");
	c->four_eyes = attr_bool(n, "four-eyes");
	c->description = attr(n, "description");
	g_ptr_array_add(b->policy->classes, c);
	g_hash_table_insert(b->policy->class_by_name, c->name, c);
}

static const struct {
	const char *name;
	mv_cond_kind kind;
} condition_kinds[] = {
	{"all", MV_COND_ALL},
	{"any", MV_COND_ANY},
	{"not", MV_COND_NOT},
	{"from", MV_COND_FROM},
	{"to", MV_COND_TO},
	{"cc", MV_COND_CC},
	{"bcc", MV_COND_BCC},
	{"envelope", MV_COND_ENVELOPE},
	{"recipient", MV_COND_RECIPIENT},
	{"direction", MV_COND_DIRECTION},
	{"header", MV_COND_HEADER},
	{"subject", MV_COND_SUBJECT},
	{"body", MV_COND_BODY},
	{"attachment-name", MV_COND_ATTACHMENT_NAME},
	{"attachment-type", MV_COND_ATTACHMENT_TYPE},
	{"size", MV_COND_SIZE},
	{"has-attachment", MV_COND_HAS_ATTACHMENT},
	{"spam", MV_COND_SPAM},
	{"virus", MV_COND_VIRUS},
	{"source", MV_COND_SOURCE},
};

static pcre2_code *compile_regex(builder *b, mv_condition *c, const char *rule,
                                 const char *pattern, const xmlNode *n)
{
	char *cs = attr_token(n, "case");
	gboolean caseless = cs != NULL && strcmp(cs, "insensitive") == 0;
	g_free(cs);
	uint32_t options = PCRE2_UTF | PCRE2_MATCH_INVALID_UTF | PCRE2_NEVER_BACKSLASH_C;
	if (caseless)
		options |= PCRE2_CASELESS;
	int code;
	PCRE2_SIZE offset;
	pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, options, &code,
	                               &offset, NULL);
	if (re == NULL) {
		PCRE2_UCHAR msg[256];
		if (pcre2_get_error_message(code, msg, sizeof msg) < 0)
			g_strlcpy((char *)msg, "error", sizeof msg);
		problem_add(b->sink, c->line,
		            "rule '%s': <%s>: invalid regular expression \"%s\": %s at offset %zu",
		            rule, c->element, pattern, (const char *)msg, (size_t)offset);
		return NULL;
	}
	/* Much faster matching; the interpreter is used where JIT is missing. */
	(void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
	return re;
}

static mv_condition *build_condition(builder *b, const xmlNode *n, const char *rule);

static void build_children(builder *b, mv_condition *c, const xmlNode *n, const char *rule)
{
	for (const xmlNode *k = n->children; k != NULL; k = k->next) {
		if (!is_element(k, NULL))
			continue;
		mv_condition *child = build_condition(b, k, rule);
		if (child != NULL)
			g_ptr_array_add(c->children, child);
	}
}

static void build_address(builder *b, mv_condition *c, const xmlNode *n, const char *rule)
{
	char *address = attr_token(n, "address");
	char *domain = attr_token(n, "domain");
	if (address != NULL && domain != NULL) {
		problem_add(b->sink, c->line, "rule '%s': <%s> takes address= or domain=, not both",
		            rule, c->element);
	} else if (address == NULL && domain == NULL) {
		problem_add(b->sink, c->line, "rule '%s': <%s> needs address= or domain=", rule,
		            c->element);
	} else if (address != NULL) {
		if (strchr(address, '@') == NULL && strchr(address, '*') == NULL)
			problem_add(b->sink, c->line,
			            "rule '%s': <%s address=\"%s\"> has no @: did you mean domain=?",
			            rule, c->element, address);
		c->glob = mv_policy_fold(address);
	} else {
		c->by_domain = TRUE;
		c->glob = mv_policy_fold(domain[0] == '@' ? domain + 1 : domain);
	}
	g_free(address);
	g_free(domain);
}

static mv_condition *build_condition(builder *b, const xmlNode *n, const char *rule)
{
	gsize i;
	for (i = 0; i < G_N_ELEMENTS(condition_kinds); i++) {
		if (strcmp((const char *)n->name, condition_kinds[i].name) == 0)
			break;
	}
	if (i == G_N_ELEMENTS(condition_kinds))
		return NULL; /* the schema reports it */
	mv_condition *c = g_new0(mv_condition, 1);
	c->kind = condition_kinds[i].kind;
	c->element = condition_kinds[i].name;
	c->line = node_line(n);
	char *s;
	switch (c->kind) {
	case MV_COND_ALL:
	case MV_COND_ANY:
	case MV_COND_NOT:
		c->children = g_ptr_array_new_with_free_func((GDestroyNotify)condition_free);
		build_children(b, c, n, rule);
		break;
	case MV_COND_FROM:
	case MV_COND_TO:
	case MV_COND_CC:
	case MV_COND_BCC:
	case MV_COND_ENVELOPE:
	case MV_COND_RECIPIENT:
		build_address(b, c, n, rule);
		break;
	case MV_COND_DIRECTION:
		s = text_token(n);
		if (strcmp(s, "outbound") == 0)
			c->direction = MV_DIRECTION_OUTBOUND;
		else if (strcmp(s, "inbound") == 0)
			c->direction = MV_DIRECTION_INBOUND;
		else if (strcmp(s, "external") == 0)
			c->direction = MV_DIRECTION_EXTERNAL;
		else
			c->direction = MV_DIRECTION_INTERNAL;
		g_free(s);
		break;
	case MV_COND_HEADER:
		c->header = attr_token(n, "name");
		c->regex = attr(n, "regex");
		if (c->regex != NULL)
			c->re = compile_regex(b, c, rule, c->regex, n);
		break;
	case MV_COND_SUBJECT:
	case MV_COND_BODY:
		c->regex = attr(n, "regex");
		if (c->regex != NULL)
			c->re = compile_regex(b, c, rule, c->regex, n);
		break;
	case MV_COND_ATTACHMENT_NAME:
		s = attr_token(n, "glob");
		c->glob = mv_policy_fold(s != NULL ? s : "");
		g_free(s);
		break;
	case MV_COND_ATTACHMENT_TYPE:
		s = attr_token(n, "type");
		c->glob = mv_policy_fold(s != NULL ? s : "");
		g_free(s);
		s = attr_token(n, "match");
		if (s != NULL && strcmp(s, "detected") == 0)
			c->type_match = MV_TYPE_MATCH_DETECTED;
		else if (s != NULL && strcmp(s, "declared") == 0)
			c->type_match = MV_TYPE_MATCH_DECLARED;
		g_free(s);
		break;
	case MV_COND_SIZE: {
		char *min = attr_token(n, "min"), *max = attr_token(n, "max");
		guint64 v;
		if (min != NULL && g_ascii_string_to_unsigned(min, 10, 0, G_MAXINT64, &v, NULL)) {
			c->has_min = TRUE;
			c->min = (gint64)v;
		}
		if (max != NULL && g_ascii_string_to_unsigned(max, 10, 0, G_MAXINT64, &v, NULL)) {
			c->has_max = TRUE;
			c->max = (gint64)v;
		}
		if (min == NULL && max == NULL)
			problem_add(b->sink, c->line, "rule '%s': <size> needs min= or max= (bytes)",
			            rule);
		else if (c->has_min && c->has_max && c->min > c->max)
			problem_add(b->sink, c->line,
			            "rule '%s': <size min=\"%s\" max=\"%s\">: min is larger than max, "
			            "so it can never match",
			            rule, min, max);
		g_free(min);
		g_free(max);
		break;
	}
	case MV_COND_HAS_ATTACHMENT:
	case MV_COND_SPAM:
	case MV_COND_VIRUS:
		break;
	case MV_COND_SOURCE:
		s = text_token(n);
		c->glob = mv_policy_fold(s);
		g_free(s);
		break;
	}
	return c;
}

static void build_rule(builder *b, const xmlNode *n)
{
	guint line = node_line(n);
	char *name = attr_token(n, "name");
	if (name == NULL)
		name = g_strdup_printf("(line %u)", line); /* the schema reports it */
	else if (g_hash_table_contains(b->policy->rule_by_name, name)) {
		const mv_rule *prev = g_hash_table_lookup(b->policy->rule_by_name, name);
		problem_add(b->sink, line, "duplicate rule name '%s' (first declared on line %u)",
		            name, prev->line);
	}
	mv_rule *r = g_new0(mv_rule, 1);
	r->name = name;
	r->line = line;
	r->index = b->policy->rules->len;
	r->description = attr(n, "description");
	r->tags = g_ptr_array_new_with_free_func(g_free);
	r->condition = g_new0(mv_condition, 1);
	r->condition->kind = MV_COND_ALL;
	r->condition->element = "rule";
	r->condition->line = line;
	r->condition->children = g_ptr_array_new_with_free_func((GDestroyNotify)condition_free);
	gboolean has_class = FALSE;
	for (const xmlNode *k = n->children; k != NULL; k = k->next) {
		if (!is_element(k, NULL))
			continue;
		if (is_element(k, "class")) {
			char *ref = attr_token(k, "ref");
			if (ref == NULL || has_class) {
				g_free(ref); /* the schema reports it */
				continue;
			}
			has_class = TRUE;
			class_ref *cr = g_new0(class_ref, 1);
			cr->rule = r;
			cr->ref = ref;
			cr->line = node_line(k);
			g_ptr_array_add(b->refs, cr);
		} else if (is_element(k, "tag")) {
			char *tag = text_token(k);
			gboolean dup = FALSE;
			for (guint i = 0; i < r->tags->len && !dup; i++)
				dup = strcmp(r->tags->pdata[i], tag) == 0;
			if (dup || *tag == '\0')
				g_free(tag);
			else
				g_ptr_array_add(r->tags, tag);
		} else {
			mv_condition *c = build_condition(b, k, name);
			if (c != NULL)
				g_ptr_array_add(r->condition->children, c);
		}
	}
	if (!has_class && r->tags->len == 0)
		problem_add(b->sink, line, "rule '%s' has neither a <class> nor a <tag>: it does nothing",
		            name);
	if (!g_hash_table_contains(b->policy->rule_by_name, r->name))
		g_hash_table_insert(b->policy->rule_by_name, r->name, r);
	g_ptr_array_add(b->policy->rules, r);
}

static char *declared_classes(const mv_policy *p)
{
	if (p->classes->len == 0)
		return g_strdup("no classes are declared");
	GString *s = g_string_new("declared: ");
	for (guint i = 0; i < p->classes->len; i++) {
		const mv_retention_class *c = p->classes->pdata[i];
		if (i == 12) {
			g_string_append(s, ", ...");
			break;
		}
		g_string_append_printf(s, "%s%s", i > 0 ? ", " : "", c->name);
	}
	return g_string_free(s, FALSE);
}

static void build_policy(builder *b, const xmlNode *root)
{
	mv_policy *p = b->policy;
	p->root_line = node_line(root);
	p->name = attr(root, "name");
	for (const xmlNode *n = root->children; n != NULL; n = n->next) {
		if (is_element(n, "internal-domains")) {
			for (const xmlNode *d = n->children; d != NULL; d = d->next) {
				if (!is_element(d, "domain"))
					continue;
				char *s = text_token(d);
				if (*s != '\0')
					g_ptr_array_add(p->internal_domains,
					                mv_policy_fold(s[0] == '@' ? s + 1 : s));
				g_free(s);
			}
		} else if (is_element(n, "classes")) {
			if (p->classes_line == 0)
				p->classes_line = node_line(n);
			for (const xmlNode *c = n->children; c != NULL; c = c->next) {
				if (is_element(c, "class"))
					build_class(b, c);
			}
		} else if (is_element(n, "default-class")) {
			char *ref = attr_token(n, "ref");
			if (ref != NULL && !b->has_default) {
				b->has_default = TRUE;
				class_ref *cr = g_new0(class_ref, 1);
				cr->ref = ref;
				cr->line = node_line(n);
				g_ptr_array_add(b->refs, cr);
			} else {
				g_free(ref);
			}
		} else if (is_element(n, "rules")) {
			for (const xmlNode *r = n->children; r != NULL; r = r->next) {
				if (is_element(r, "rule"))
					build_rule(b, r);
			}
		}
	}
	for (guint i = 0; i < b->refs->len; i++) {
		const class_ref *cr = b->refs->pdata[i];
		const mv_retention_class *c = g_hash_table_lookup(p->class_by_name, cr->ref);
		if (c == NULL) {
			char *known = declared_classes(p);
			if (cr->rule != NULL)
				problem_add(b->sink, cr->line, "rule '%s': unknown class '%s' (%s)",
				            cr->rule->name, cr->ref, known);
			else
				problem_add(b->sink, cr->line, "<default-class>: unknown class '%s' (%s)",
				            cr->ref, known);
			g_free(known);
		} else if (cr->rule != NULL) {
			cr->rule->cls = c;
		} else {
			p->default_class = c;
		}
	}
	if (!b->has_default)
		problem_add(b->sink, p->root_line,
		            "the policy has no <default-class ref=\"...\"/>: it must name the class "
		            "of messages no rule matches");
}

static mv_policy *policy_new(void)
{
	mv_policy *p = g_new0(mv_policy, 1);
	p->internal_domains = g_ptr_array_new_with_free_func(g_free);
	p->classes = g_ptr_array_new_with_free_func((GDestroyNotify)class_free);
	p->rules = g_ptr_array_new_with_free_func((GDestroyNotify)rule_free);
	p->class_by_name = g_hash_table_new(g_str_hash, g_str_equal);
	p->rule_by_name = g_hash_table_new(g_str_hash, g_str_equal);
	return p;
}

/* ---------------------------------------------------------------------- */
/* parsing */

/* The line of "<!DOCTYPE" in the text (libxml2 keeps none for the DTD). */
static guint doctype_line(const char *xml, gsize len)
{
	const char *d = g_strstr_len(xml, (gssize)len, "<!DOCTYPE");
	guint line = 1;
	for (const char *p = xml; d != NULL && p < d; p++) {
		if (*p == '\n')
			line++;
	}
	return line;
}

static xmlSchemaPtr compile_schema(char **error_r)
{
	GString *err = g_string_new(NULL);
	xmlSchemaParserCtxtPtr pctxt = xmlSchemaNewMemParserCtxt(mv_policy_xsd, (int)mv_policy_xsd_len);
	xmlSchemaPtr schema = NULL;
	if (pctxt != NULL) {
		xmlSchemaSetParserStructuredErrors(pctxt, schema_error, err);
		schema = xmlSchemaParse(pctxt);
		xmlSchemaFreeParserCtxt(pctxt);
	}
	if (schema == NULL)
		mv_fail(error_r, MV_ERR_INTERNAL, "the embedded policy schema does not compile: %s",
		        err->len > 0 ? err->str : "out of memory");
	g_string_free(err, TRUE);
	return schema;
}

mv_status mv_policy_parse(const char *xml, gsize len, const char *filename, mv_policy **policy_r,
                          GPtrArray *problems, char **error_r)
{
	*policy_r = NULL;
	if (filename == NULL)
		filename = "policy";
	problem_sink sink;
	problem_sink_init(&sink, filename, problems);
	if (len > MV_POLICY_MAX_BYTES) {
		problem_add(&sink, 1, "the policy is %" G_GSIZE_FORMAT " bytes, more than the limit of %d",
		            len, MV_POLICY_MAX_BYTES);
		(void)problem_finish(&sink, error_r);
		return MV_ERR_LIMIT;
	}
	if (xml == NULL) {
		xml = "";
		len = 0;
	}

	xmlInitParser();
	char *schema_error_msg = NULL;
	xmlSchemaPtr schema = compile_schema(&schema_error_msg);
	if (schema == NULL) {
		g_array_free(sink.found, TRUE);
		mv_status st = mv_fail(error_r, MV_ERR_INTERNAL, "%s", schema_error_msg);
		g_free(schema_error_msg);
		return st;
	}

	/* Parser errors go to the structured handler of this thread while we
	 * parse (libxml2 keeps it per thread); the previous one is restored. */
	xmlStructuredErrorFunc old_handler = xmlStructuredError;
	void *old_context = xmlStructuredErrorContext;
	xmlSetStructuredErrorFunc(&sink, (xmlStructuredErrorFunc)xml_error);
	xmlDocPtr doc = xmlReadMemory(xml, (int)len, filename, NULL,
	                              XML_PARSE_NONET | XML_PARSE_BIG_LINES | XML_PARSE_NOWARNING);
	xmlSetStructuredErrorFunc(old_context, old_handler);

	if (doc == NULL) {
		if (sink.found->len == 0)
			problem_add(&sink, 1, "not a well-formed XML document");
	} else {
		if (doc->intSubset != NULL || doc->extSubset != NULL)
			problem_add(&sink, doctype_line(xml, len),
			            "a policy may not have a DOCTYPE (no DTDs or entities)");
		xmlSchemaValidCtxtPtr vctxt = xmlSchemaNewValidCtxt(schema);
		if (vctxt == NULL) {
			problem_add(&sink, 1, "out of memory validating the policy");
		} else {
			xmlSchemaSetValidStructuredErrors(vctxt, (xmlStructuredErrorFunc)xml_error, &sink);
			int rc = xmlSchemaValidateDoc(vctxt, doc);
			if (rc != 0 && sink.found->len == 0)
				problem_add(&sink, 1, "the policy does not validate against policy.xsd");
			xmlSchemaFreeValidCtxt(vctxt);
		}
	}
	xmlSchemaFree(schema);

	/* The meaning is checked even when the schema found problems, so that
	 * one run reports everything; the builder skips what it cannot read. */
	mv_policy *p = policy_new();
	p->filename = g_strdup(filename);
	if (doc != NULL) {
		const xmlNode *root = xmlDocGetRootElement(doc);
		if (root != NULL && is_element(root, "policy")) {
			builder b = {.sink = &sink, .policy = p};
			b.refs = g_ptr_array_new_with_free_func((GDestroyNotify)class_ref_free);
			build_policy(&b, root);
			g_ptr_array_free(b.refs, TRUE);
		}
		xmlFreeDoc(doc);
	}
	mv_status st = problem_finish(&sink, error_r);
	if (st != MV_OK) {
		mv_policy_free(&p);
		return st;
	}
	p->xml = g_bytes_new(xml, len);
	mv_sha256(xml, len, p->sha256);
	mv_sha256_to_hex(p->sha256, p->sha256_hex);
	*policy_r = p;
	return MV_OK;
}

mv_status mv_policy_parse_file(const char *path, mv_policy **policy_r, GPtrArray *problems,
                               char **error_r)
{
	*policy_r = NULL;
	struct stat st;
	if (stat(path, &st) != 0) {
		int e = errno;
		return mv_fail(error_r, e == ENOENT ? MV_ERR_NOT_FOUND : MV_ERR_IO, "%s: %s", path,
		               g_strerror(e));
	}
	if (!S_ISREG(st.st_mode))
		return mv_fail(error_r, MV_ERR_IO, "%s: not a regular file", path);
	if ((guint64)st.st_size > MV_POLICY_MAX_BYTES)
		return mv_policy_parse(NULL, (gsize)st.st_size, path, policy_r, problems, error_r);
	char *data = NULL;
	gsize len = 0;
	GError *gerr = NULL;
	if (!g_file_get_contents(path, &data, &len, &gerr)) {
		mv_status s = mv_fail(error_r, MV_ERR_IO, "%s", gerr->message);
		g_error_free(gerr);
		return s;
	}
	mv_status s = mv_policy_parse(data, len, path, policy_r, problems, error_r);
	g_free(data);
	return s;
}

/* ---------------------------------------------------------------------- */
/* accessors */

const char *mv_policy_xml(const mv_policy *policy, gsize *len_r)
{
	return g_bytes_get_data(policy->xml, len_r);
}

void mv_policy_sha256(const mv_policy *policy, uint8_t out[MV_SHA256_LEN])
{
	memcpy(out, policy->sha256, MV_SHA256_LEN);
}

const char *mv_policy_sha256_hex(const mv_policy *policy)
{
	return policy->sha256_hex;
}

const char *mv_policy_filename(const mv_policy *policy)
{
	return policy->filename;
}

const char *mv_policy_name(const mv_policy *policy)
{
	return policy->name;
}

guint mv_policy_internal_domain_count(const mv_policy *policy)
{
	return policy->internal_domains->len;
}

const char *mv_policy_internal_domain(const mv_policy *policy, guint i)
{
	g_return_val_if_fail(i < policy->internal_domains->len, NULL);
	return policy->internal_domains->pdata[i];
}

gboolean mv_policy_domain_is_internal_folded(const mv_policy *policy, const char *domain)
{
	if (domain == NULL || *domain == '\0')
		return FALSE;
	for (guint i = 0; i < policy->internal_domains->len; i++) {
		if (mv_glob_match_folded(policy->internal_domains->pdata[i], domain))
			return TRUE;
	}
	return FALSE;
}

gboolean mv_policy_domain_is_internal(const mv_policy *policy, const char *domain)
{
	char *d = mv_policy_fold(domain);
	gboolean v = mv_policy_domain_is_internal_folded(policy, d);
	g_free(d);
	return v;
}

static gboolean address_is_internal(const mv_policy *policy, const char *address)
{
	if (address == NULL)
		return FALSE;
	const char *at = strrchr(address, '@');
	if (at == NULL)
		return FALSE;
	char *d = mv_policy_fold(at + 1);
	g_strstrip(d);
	gsize n = strlen(d);
	if (n > 0 && d[n - 1] == '>')
		d[n - 1] = '\0';
	gboolean v = mv_policy_domain_is_internal_folded(policy, d);
	g_free(d);
	return v;
}

mv_direction mv_policy_direction(const mv_policy *policy, const char *sender,
                                 const char *const *recipients, guint n)
{
	gboolean internal_rcpt = FALSE, external_rcpt = FALSE;
	for (guint i = 0; i < n; i++) {
		if (address_is_internal(policy, recipients[i]))
			internal_rcpt = TRUE;
		else
			external_rcpt = TRUE;
	}
	if (address_is_internal(policy, sender))
		return external_rcpt ? MV_DIRECTION_OUTBOUND : MV_DIRECTION_INTERNAL;
	return internal_rcpt ? MV_DIRECTION_INBOUND : MV_DIRECTION_EXTERNAL;
}

guint mv_policy_class_count(const mv_policy *policy)
{
	return policy->classes->len;
}

const mv_retention_class *mv_policy_class(const mv_policy *policy, guint i)
{
	g_return_val_if_fail(i < policy->classes->len, NULL);
	return policy->classes->pdata[i];
}

const mv_retention_class *mv_policy_find_class(const mv_policy *policy, const char *name)
{
	return name != NULL ? g_hash_table_lookup(policy->class_by_name, name) : NULL;
}

const mv_retention_class *mv_policy_default_class(const mv_policy *policy)
{
	return policy->default_class;
}

guint mv_policy_rule_count(const mv_policy *policy)
{
	return policy->rules->len;
}

const mv_rule *mv_policy_rule(const mv_policy *policy, guint i)
{
	g_return_val_if_fail(i < policy->rules->len, NULL);
	return policy->rules->pdata[i];
}

const mv_rule *mv_policy_find_rule(const mv_policy *policy, const char *name)
{
	return name != NULL ? g_hash_table_lookup(policy->rule_by_name, name) : NULL;
}

/* ---------------------------------------------------------------------- */
/* successor check */

static char *format_date(gint64 t)
{
	GDateTime *dt = g_date_time_new_from_unix_utc(CLAMP(t, MV_TIME_MIN, MV_TIME_MAX));
	char *s = dt != NULL ? g_date_time_format(dt, "%Y-%m-%d") : g_strdup("?");
	if (dt != NULL)
		g_date_time_unref(dt);
	return s;
}

mv_status mv_policy_check_successor(const mv_policy *current, const mv_policy *next,
                                    GPtrArray *problems, char **error_r)
{
	problem_sink sink;
	problem_sink_init(&sink, next->filename, problems);
	for (guint i = 0; i < current->classes->len; i++) {
		const mv_retention_class *c = current->classes->pdata[i];
		if (!c->locked)
			continue;
		const mv_retention_class *n = g_hash_table_lookup(next->class_by_name, c->name);
		if (n == NULL) {
			problem_add(&sink, next->classes_line > 0 ? next->classes_line : next->root_line,
			            "locked class '%s' (line %u of the current policy) is missing: a "
			            "locked class can never be removed",
			            c->name, c->line);
			continue;
		}
		if (!n->locked)
			problem_add(&sink, n->line,
			            "class '%s' is locked in the current policy and cannot be unlocked",
			            c->name);
		if (n->start != c->start)
			problem_add(&sink, n->line,
			            "locked class '%s': start changed from %s to %s; the start of a "
			            "locked class cannot change",
			            c->name, mv_retention_start_to_string(c->start),
			            mv_retention_start_to_string(n->start));
		gint64 example = 0;
		if (!mv_duration_never_shorter(&n->duration, &c->duration, &example)) {
			char *from = format_date(example);
			char *was = format_date(mv_duration_add(&c->duration, example));
			char *now = format_date(mv_duration_add(&n->duration, example));
			problem_add(&sink, n->line,
			            "locked class '%s' would be shortened from %s to %s (from %s it "
			            "would expire on %s instead of %s): a locked class can never be "
			            "shortened",
			            c->name, c->duration_text, n->duration_text, from, now, was);
			g_free(from);
			g_free(was);
			g_free(now);
		}
		if (c->disposition == MV_DISPOSITION_REVIEW && n->disposition != MV_DISPOSITION_REVIEW)
			problem_add(&sink, n->line,
			            "locked class '%s': disposition changed from review to purge; a "
			            "locked class's records stay reviewed",
			            c->name);
		if (c->four_eyes && !n->four_eyes)
			problem_add(&sink, n->line,
			            "locked class '%s': four-eyes approval cannot be dropped", c->name);
	}
	return problem_finish(&sink, error_r);
}

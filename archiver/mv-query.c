/* mv-query: tokenizer and recursive-descent parser for the query language.
 * SECURITY: untrusted input; bounded nesting; values become parameters. */
#include "mv-query.h"

#include <math.h>
#include <string.h>

#include "mv-store.h"

/* Bounds that keep a query's cost for PostgreSQL small: each term is a
 * subquery (250 address terms took 105 s to plan and run on 290
 * messages), and a phrase is one tsquery node per word (16,000 words
 * exhausted the server's stack). */
#define MAX_NESTING 64
#define MAX_TERMS 100
#define MAX_VALUE_BYTES 1024
#define MAX_PHRASE_WORDS 64

typedef enum { T_END, T_LPAREN, T_RPAREN, T_NOT, T_OR, T_AND, T_TERM } tok_kind;

typedef struct {
	tok_kind kind;
	char *field;   /* T_TERM: lower-case field name or NULL */
	char *value;   /* T_TERM: value (unquoted) */
	gboolean quoted;
	gsize pos;     /* byte offset in the query */
	gsize value_pos; /* byte offset of the value */
} token;

typedef struct {
	const char *q;
	GArray *toks;  /* token */
	guint at;
	GString *sql;
	GPtrArray *params;
	int first_param;
	int depth;
	int terms;
	gboolean tombstone;          /* compiling for MV_QUERY_TOMBSTONES */
	gboolean mentions_destroyed; /* a destroyed: term was seen */
	int negated;                 /* NOT levels around the current term */
	GString *highlight;          /* tsquery of the text terms not negated */
	GArray *text_terms;          /* mv_query_text_term */
	GString *walk;               /* the top-level date conjuncts (mv_query_sql.walk) */
	gboolean top_or;             /* the query is an OR at its top level */
	char **error_r;
} parser;

static int column_of(const char *q, gsize pos)
{
	const char *end = q + pos;
	if (!g_utf8_validate(q, (gssize)pos, NULL))
		return (int)pos + 1;
	return (int)g_utf8_pointer_to_offset(q, end) + 1;
}

static mv_status syntax(parser *p, gsize pos, const char *fmt, const char *arg)
{
	char *what = g_strdup_printf(fmt, arg);
	mv_status st = mv_fail(p->error_r, MV_ERR_QUERY, "query error at column %d: %s",
	                       column_of(p->q, pos), what);
	g_free(what);
	return st;
}

static gboolean is_special(char c)
{
	return c == '(' || c == ')' || c == '"' || g_ascii_isspace(c);
}

/* Read a quoted string starting at q[i] == '"'; returns new index or -1. */
static gssize read_quoted(const char *q, gsize i, GString *out)
{
	i++;
	while (q[i] != '\0' && q[i] != '"') {
		if (q[i] == '\\' && (q[i + 1] == '"' || q[i + 1] == '\\'))
			i++;
		g_string_append_c(out, q[i]);
		i++;
	}
	if (q[i] != '"')
		return -1;
	return (gssize)i + 1;
}

static void tokens_free(GArray *toks)
{
	for (guint i = 0; i < toks->len; i++) {
		token *t = &g_array_index(toks, token, i);
		g_free(t->field);
		g_free(t->value);
	}
	g_array_free(toks, TRUE);
}

static mv_status tokenize(parser *p)
{
	const char *q = p->q;
	gsize i = 0;
	while (q[i] != '\0') {
		if (g_ascii_isspace(q[i])) {
			i++;
			continue;
		}
		token t = {.pos = i};
		if (q[i] == '(') {
			t.kind = T_LPAREN;
			i++;
		} else if (q[i] == ')') {
			t.kind = T_RPAREN;
			i++;
		} else if (q[i] == '-' && q[i + 1] != '\0' && !g_ascii_isspace(q[i + 1]) && q[i + 1] != ')') {
			t.kind = T_NOT;
			i++;
		} else if (q[i] == '"') {
			GString *v = g_string_new(NULL);
			gssize next = read_quoted(q, i, v);
			if (next < 0) {
				g_string_free(v, TRUE);
				return syntax(p, i, "%s", "unterminated quoted phrase");
			}
			t.kind = T_TERM;
			t.quoted = TRUE;
			t.value = g_string_free(v, FALSE);
			i = (gsize)next;
		} else {
			gsize start = i;
			while (q[i] != '\0' && !is_special(q[i]) && q[i] != ':')
				i++;
			if (q[i] == ':' && i > start) {
				t.field = g_ascii_strdown(q + start, (gssize)(i - start));
				i++;
				t.value_pos = i;
				if (q[i] == '"') {
					GString *v = g_string_new(NULL);
					gssize next = read_quoted(q, i, v);
					if (next < 0) {
						g_string_free(v, TRUE);
						g_free(t.field);
						return syntax(p, i, "%s", "unterminated quoted phrase");
					}
					if (v->len == 0) {
						g_string_free(v, TRUE);
						mv_status st = syntax(p, t.value_pos, "field '%s:' needs a value", t.field);
						g_free(t.field);
						return st;
					}
					t.value = g_string_free(v, FALSE);
					t.quoted = TRUE;
					i = (gsize)next;
				} else {
					gsize vs = i;
					while (q[i] != '\0' && !is_special(q[i]))
						i++;
					if (i == vs) {
						mv_status st = syntax(p, vs, "field '%s:' needs a value", t.field);
						g_free(t.field);
						return st;
					}
					t.value = g_strndup(q + vs, i - vs);
				}
				t.kind = T_TERM;
			} else {
				while (q[i] != '\0' && !is_special(q[i]))
					i++;
				char *word = g_strndup(q + start, i - start);
				if (strcmp(word, "OR") == 0) {
					t.kind = T_OR;
					g_free(word);
				} else if (strcmp(word, "AND") == 0) {
					t.kind = T_AND;
					g_free(word);
				} else if (strcmp(word, "NOT") == 0) {
					t.kind = T_NOT;
					g_free(word);
				} else {
					t.kind = T_TERM;
					t.value = word;
				}
			}
		}
		g_array_append_val(p->toks, t);
	}
	token end = {.kind = T_END, .pos = i};
	g_array_append_val(p->toks, end);
	return MV_OK;
}

static token *peek(parser *p)
{
	return &g_array_index(p->toks, token, p->at);
}

/* Add a parameter, return its $ number. */
static int param(parser *p, char *value_owned)
{
	g_ptr_array_add(p->params, value_owned);
	return p->first_param + (int)p->params->len - 1;
}

static char *like_escape(const char *v)
{
	GString *s = g_string_new(NULL);
	for (const char *c = v; *c; c++) {
		if (*c == '%' || *c == '_' || *c == '\\')
			g_string_append_c(s, '\\');
		g_string_append_c(s, *c);
	}
	return g_string_free(s, FALSE);
}

static char *glob_to_like(const char *v)
{
	GString *s = g_string_new(NULL);
	for (const char *c = v; *c; c++) {
		if (*c == '*')
			g_string_append_c(s, '%');
		else if (*c == '?')
			g_string_append_c(s, '_');
		else {
			if (*c == '%' || *c == '_' || *c == '\\')
				g_string_append_c(s, '\\');
			g_string_append_c(s, *c);
		}
	}
	return g_string_free(s, FALSE);
}

static void address_term(parser *p, const char *roles, const char *v)
{
	GString *s = p->sql;
	g_string_append_printf(s, "EXISTS (SELECT 1 FROM address a WHERE a.message_id = m.id "
	                          "AND a.role IN (%s) AND ", roles);
	if (v[0] == '@') {
		int n = param(p, g_utf8_strdown(v + 1, -1));
		g_string_append_printf(s, "split_part(a.address, '@', 2) = $%d)", n);
	} else if (strchr(v, '@') != NULL) {
		int n = param(p, g_utf8_strdown(v, -1));
		g_string_append_printf(s, "a.address = $%d)", n);
	} else {
		char *e = like_escape(v);
		int n = param(p, g_strdup_printf("%%%s%%", e));
		g_free(e);
		g_string_append_printf(s, "(a.address ILIKE $%d OR a.name ILIKE $%d))", n, n);
	}
}

/* YYYY, YYYY-MM or YYYY-MM-DD as the date of its first day
 * ("YYYY-MM-DD", g_free), or NULL when v is none of them or no such day. */
static char *period_start(const char *v)
{
	gsize len = strlen(v);
	if (len != 4 && len != 7 && len != 10)
		return NULL;
	for (gsize i = 0; i < len; i++)
		if ((i == 4 || i == 7) ? v[i] != '-' : !g_ascii_isdigit(v[i]))
			return NULL;
	int y = (int)g_ascii_strtoll(v, NULL, 10);
	int mo = len >= 7 ? (int)g_ascii_strtoll(v + 5, NULL, 10) : 1;
	int d = len == 10 ? (int)g_ascii_strtoll(v + 8, NULL, 10) : 1;
	if (!g_date_valid_dmy((GDateDay)d, (GDateMonth)mo, (GDateYear)y))
		return NULL;
	return g_strdup_printf("%04d-%02d-%02d", y, mo, d);
}

/* The From address a tombstone keeps, matched as from: matches an
 * address: exact, @domain, or part of it. */
static void tombstone_from(parser *p, const char *v)
{
	GString *s = p->sql;
	if (v[0] == '@') {
		int n = param(p, g_utf8_strdown(v + 1, -1));
		g_string_append_printf(s, "coalesce(split_part(m.from_addr, '@', 2) = $%d, false)", n);
	} else if (strchr(v, '@') != NULL) {
		int n = param(p, g_utf8_strdown(v, -1));
		g_string_append_printf(s, "coalesce(m.from_addr = $%d, false)", n);
	} else {
		char *e = like_escape(v);
		int n = param(p, g_strdup_printf("%%%s%%", e));
		g_free(e);
		g_string_append_printf(s, "coalesce(m.from_addr ILIKE $%d, false)", n);
	}
}

/* A term over a tombstone (see mv-query.h), where it differs from the term
 * over a message; *handled_r FALSE where it does not (the columns a
 * tombstone shares with message: the message form applies). */
static mv_status tombstone_term(parser *p, token *t, gboolean *handled_r)
{
	const char *f = t->field, *v = t->value;
	GString *s = p->sql;
	*handled_r = TRUE;
	if (f == NULL || strcmp(f, "to") == 0 || strcmp(f, "cc") == 0 || strcmp(f, "bcc") == 0 ||
	    strcmp(f, "subject") == 0 || strcmp(f, "filename") == 0 || strcmp(f, "type") == 0 ||
	    strcmp(f, "attachment") == 0 || strcmp(f, "tag") == 0 || strcmp(f, "virus") == 0 ||
	    strcmp(f, "spam") == 0 || strcmp(f, "lang") == 0 ||
	    strcmp(f, "folder") == 0) {
		g_string_append(s, "NULL::boolean"); /* not kept: unknown */
	} else if (strcmp(f, "has") == 0) {
		if (g_ascii_strcasecmp(v, "attachment") != 0)
			return syntax(p, t->value_pos, "unknown has: value '%s' (try has:attachment)", v);
		g_string_append(s, "NULL::boolean");
	} else if (strcmp(f, "from") == 0) {
		tombstone_from(p, v);
	} else if (strcmp(f, "addr") == 0) {
		/* the From address, or another role nobody knows any more */
		g_string_append(s, "(");
		tombstone_from(p, v);
		g_string_append(s, " OR NULL::boolean)");
	} else if (strcmp(f, "hold") == 0) {
		g_string_append(s, "FALSE"); /* a destroyed record is under no hold */
	} else {
		*handled_r = FALSE;
	}
	return MV_OK;
}

static guint count_words(const char *v)
{
	guint n = 0;
	gboolean in_word = FALSE;
	for (const char *c = v; *c != '\0'; c++) {
		gboolean space = g_ascii_isspace(*c);
		if (!space && !in_word)
			n++;
		in_word = !space;
	}
	return n;
}

/* Full text: the message's search text (body) and the text extracted from
 * its attachments (part_text), through the search vector and query
 * functions of the schema (mv_search_vector, mv_search_query); a row not
 * indexed yet is matched by computing its vector on the fly. */
static void text_term(parser *p, const token *t, gboolean body)
{
	int n = param(p, g_strdup(t->value));
	const char *phrase = t->quoted ? "true" : "false";
	mv_query_text_term tt = {.param = n, .phrase = t->quoted};
	g_array_append_val(p->text_terms, tt);
	/* One EXISTS correlated with m, over the body text and the attachments'
	 * text together (UNION ALL; attachment: only the latter): the planner
	 * may start from message (an employee's or auditor's visible set,
	 * schema/027-rls-plan.sql) and probe the texts by message_id, or, for a
	 * selective term, from the GIN indexes (with the rows not yet indexed,
	 * whose vector is computed here).  Two EXISTS joined by OR could not
	 * become a semi-join; "m.id IN (...)" read every match first. */
	g_string_append(p->sql, "EXISTS (SELECT 1 FROM (");
	if (body)
		g_string_append(p->sql, "SELECT x.message_id, x.tsv, x.doc, x.lang FROM message_text x "
		                        "UNION ALL ");
	g_string_append_printf(p->sql,
	                       "SELECT y.message_id, y.tsv, y.doc, y.lang FROM part_text y) t "
	                       "WHERE t.message_id = m.id AND (t.tsv @@ mv_search_query($%d, %s) OR "
	                       "(t.tsv IS NULL AND mv_search_vector(t.doc, t.lang) @@ "
	                       "mv_search_query($%d, %s))))",
	                       n, phrase, n, phrase);
	/* Snippets mark what the query's text terms match. */
	if (p->negated == 0)
		g_string_append_printf(p->highlight, "%smv_search_query($%d, %s)",
		                       p->highlight->len > 0 ? " || " : "", n, phrase);
}

static mv_status term(parser *p, token *t)
{
	GString *s = p->sql;
	if (++p->terms > MAX_TERMS)
		return syntax(p, t->pos, "more than %s terms", G_STRINGIFY(MAX_TERMS));
	if (strlen(t->value) > MAX_VALUE_BYTES)
		return syntax(p, t->field != NULL ? t->value_pos : t->pos, "a value longer than %s bytes",
		              G_STRINGIFY(MAX_VALUE_BYTES));
	if (t->quoted && count_words(t->value) > MAX_PHRASE_WORDS)
		return syntax(p, t->field != NULL ? t->value_pos : t->pos, "a phrase of more than %s words",
		              G_STRINGIFY(MAX_PHRASE_WORDS));
	const char *f = t->field;
	const char *v = t->value;
	if (p->tombstone) {
		gboolean handled = FALSE;
		mv_status st = tombstone_term(p, t, &handled);
		if (st != MV_OK || handled)
			return st;
	}
	if (f == NULL) {
		/* mv_search_query/mv_search_vector (schema/021-search-languages.sql):
		 * every language's stems, exact forms and CJK bigrams, over the
		 * body text and the attachments' text. */
		text_term(p, t, TRUE);
	} else if (strcmp(f, "attachment") == 0) {
		text_term(p, t, FALSE);
	} else if (strcmp(f, "lang") == 0) {
		/* an ISO 639-1 code (de), or one with its script (zh-Hant); lang:zh
		 * takes zh-Hant too */
		gsize l = strlen(v);
		gboolean okv = l >= 2 && l <= 16;
		for (gsize i = 0; okv && i < l; i++)
			okv = g_ascii_isalpha(v[i]) || (v[i] == '-' && i >= 2);
		if (!okv)
			return syntax(p, t->value_pos, "lang: takes a language code such as de or "
			                               "zh-Hant, not '%s'", v);
		int n = param(p, g_ascii_strdown(v, -1));
		int sub = param(p, g_strdup_printf("%s-%%", (const char *)p->params->pdata[n - p->first_param]));
		g_string_append_printf(s, "m.id IN (SELECT x.message_id FROM message_text x WHERE "
		                          "lower(x.lang) = $%d OR lower(x.lang) LIKE $%d)", n, sub);
	} else if (strcmp(f, "from") == 0) {
		address_term(p, "'from', 'sender'", v);
	} else if (strcmp(f, "to") == 0) {
		address_term(p, "'to'", v);
	} else if (strcmp(f, "cc") == 0) {
		address_term(p, "'cc'", v);
	} else if (strcmp(f, "bcc") == 0) {
		address_term(p, "'bcc', 'envelope-rcpt'", v);
	} else if (strcmp(f, "addr") == 0) {
		address_term(p, "'from', 'sender', 'reply-to', 'to', 'cc', 'bcc', 'envelope-from', "
		                "'envelope-rcpt'", v);
	} else if (strcmp(f, "subject") == 0) {
		char *e = like_escape(v);
		int n = param(p, g_strdup_printf("%%%s%%", e));
		g_free(e);
		g_string_append_printf(s, "coalesce(m.subject ILIKE $%d, false)", n);
	} else if (strcmp(f, "after") == 0 || strcmp(f, "before") == 0) {
		char *day = period_start(v);
		if (day == NULL)
			return syntax(p, t->value_pos, "'%s' is not a date (YYYY, YYYY-MM or YYYY-MM-DD)", v);
		int n = param(p, day);
		/* Outside NOT a plain comparison, which the date order index
		 * takes as its range (a message without a date is excluded either
		 * way: NULL filters as false); under NOT, coalesce keeps it in. */
		if (p->negated == 0) {
			g_string_append_printf(s, "m.date %s $%d::date", f[0] == 'a' ? ">=" : "<", n);
			/* a conjunct of the whole query: every match satisfies it */
			if (p->depth == 0)
				g_string_append_printf(p->walk, "%sm.date %s $%d::date",
				                       p->walk->len > 0 ? " AND " : "",
				                       f[0] == 'a' ? ">=" : "<", n);
		} else
			g_string_append_printf(s, "coalesce(m.date %s $%d::date, false)",
			                       f[0] == 'a' ? ">=" : "<", n);
	} else if (strcmp(f, "has") == 0) {
		if (g_ascii_strcasecmp(v, "attachment") != 0)
			return syntax(p, t->value_pos, "unknown has: value '%s' (try has:attachment)", v);
		g_string_append(s, "m.has_attachment");
	} else if (strcmp(f, "filename") == 0) {
		int n = param(p, glob_to_like(v));
		g_string_append_printf(s, "EXISTS (SELECT 1 FROM part pt WHERE pt.message_id = m.id "
		                          "AND pt.filename ILIKE $%d)", n);
	} else if (strcmp(f, "type") == 0) {
		char *lower = g_ascii_strdown(v, -1);
		int n = param(p, glob_to_like(lower));
		g_free(lower);
		g_string_append_printf(s, "EXISTS (SELECT 1 FROM part pt WHERE pt.message_id = m.id "
		                          "AND (pt.declared_type LIKE $%d OR pt.detected_type LIKE $%d))",
		                       n, n);
	} else if (strcmp(f, "class") == 0) {
		int n = param(p, g_strdup(v));
		g_string_append_printf(s, "coalesce(m.retention_class = $%d, false)", n);
	} else if (strcmp(f, "tag") == 0) {
		int n = param(p, g_strdup(v));
		g_string_append_printf(s, "$%d = ANY (m.tags)", n);
	} else if (strcmp(f, "hold") == 0) {
		int n = param(p, g_strdup(v));
		g_string_append_printf(s, "EXISTS (SELECT 1 FROM hold_item hi JOIN hold h ON h.id = hi.hold_id "
		                          "WHERE hi.message_id = m.id AND NOT hi.pending AND h.released_at IS NULL "
		                          "AND (h.name = $%d OR h.case_ref = $%d))",
		                       n, n);
	} else if (strcmp(f, "virus") == 0) {
		/* yes, no, unscanned (never scanned, or the scan failed), or a
		 * signature name (glob, case-insensitive) */
		if (g_ascii_strcasecmp(v, "yes") == 0)
			g_string_append(s, "EXISTS (SELECT 1 FROM verdict vd WHERE vd.message_id = m.id "
			                   "AND vd.virus = 'infected')");
		else if (g_ascii_strcasecmp(v, "no") == 0)
			g_string_append(s, "EXISTS (SELECT 1 FROM verdict vd WHERE vd.message_id = m.id "
			                   "AND vd.virus = 'clean')");
		else if (g_ascii_strcasecmp(v, "unscanned") == 0)
			g_string_append(s, "NOT EXISTS (SELECT 1 FROM verdict vd WHERE vd.message_id = m.id "
			                   "AND vd.virus IN ('clean', 'infected'))");
		else {
			int n = param(p, glob_to_like(v));
			g_string_append_printf(s, "EXISTS (SELECT 1 FROM verdict vd WHERE vd.message_id = m.id "
			                          "AND vd.virus = 'infected' AND EXISTS (SELECT 1 FROM "
			                          "unnest(string_to_array(vd.virus_name, ';')) sig(name) "
			                          "WHERE sig.name ILIKE $%d))", n);
		}
	} else if (strcmp(f, "spam") == 0) {
		/* yes, no, unscanned, or >N / <N / >=N / <=N on the score */
		if (g_ascii_strcasecmp(v, "yes") == 0 || g_ascii_strcasecmp(v, "no") == 0) {
			g_string_append_printf(s, "EXISTS (SELECT 1 FROM verdict vd WHERE vd.message_id = m.id "
			                          "AND vd.spam = '%s')", g_ascii_tolower(v[0]) == 'y' ? "yes" : "no");
		} else if (g_ascii_strcasecmp(v, "unscanned") == 0) {
			g_string_append(s, "NOT EXISTS (SELECT 1 FROM verdict vd WHERE vd.message_id = m.id "
			                   "AND vd.spam IN ('yes', 'no'))");
		} else if (v[0] == '>' || v[0] == '<') {
			const char *num = v + 1;
			const char *op = v[0] == '>' ? ">" : "<";
			if (*num == '=') {
				num++;
				op = v[0] == '>' ? ">=" : "<=";
			}
			char *end = NULL;
			double d = g_ascii_strtod(num, &end);
			if (*num == '\0' || end == NULL || *end != '\0' || !isfinite(d))
				return syntax(p, t->value_pos, "spam: takes yes, no, unscanned or a score "
				                               "such as >5, not '%s'", v);
			char buf[G_ASCII_DTOSTR_BUF_SIZE];
			int n = param(p, g_strdup(g_ascii_dtostr(buf, sizeof buf, d)));
			g_string_append_printf(s, "EXISTS (SELECT 1 FROM verdict vd WHERE vd.message_id = m.id "
			                          "AND vd.spam_score %s $%d::float8)", op, n);
		} else {
			return syntax(p, t->value_pos, "spam: takes yes, no, unscanned or a score such as "
			                               ">5, not '%s'", v);
		}
	} else if (strcmp(f, "folder") == 0) {
		/* The folder an import found the message in (arrival.folder_path,
		 * schema/020): that folder or any below it, whole segments only,
		 * without regard to case.  "Inbox/Projects/" is "Inbox/Projects". */
		char *folder = g_utf8_strdown(v, -1);
		gsize l = strlen(folder);
		while (l > 0 && folder[l - 1] == '/')
			folder[--l] = '\0';
		if (l == 0) {
			g_free(folder);
			return syntax(p, t->value_pos, "folder: takes a folder path such as %s", "Inbox/Projects");
		}
		char *e = like_escape(folder);
		int n = param(p, folder);
		int k = param(p, g_strdup_printf("%s/%%", e));
		g_free(e);
		g_string_append_printf(s, "EXISTS (SELECT 1 FROM arrival fa WHERE fa.message_id = m.id "
		                          "AND (lower(fa.folder_path) = $%d OR lower(fa.folder_path) LIKE $%d))",
		                       n, k);
	} else if (strcmp(f, "registration") == 0) {
		char *canonical = mv_store_registration_canonical(v);
		int n = param(p, canonical != NULL ? canonical : g_strdup(v));
		g_string_append_printf(s, "coalesce(m.registration = $%d, false)", n);
	} else if (strcmp(f, "destroyed") == 0) {
		gboolean yes = g_ascii_strcasecmp(v, "yes") == 0;
		if (!yes && g_ascii_strcasecmp(v, "no") != 0)
			return syntax(p, t->value_pos, "destroyed: takes yes or no, not '%s'", v);
		p->mentions_destroyed = TRUE;
		g_string_append(s, yes == p->tombstone ? "TRUE" : "FALSE");
	} else if (strcmp(f, "message-id") == 0 || strcmp(f, "msgid") == 0) {
		const char *id = v[0] == '<' ? v + 1 : v;
		char *copy = g_strdup(id);
		gsize l = strlen(copy);
		if (l > 0 && copy[l - 1] == '>')
			copy[l - 1] = '\0';
		int n = param(p, copy);
		g_string_append_printf(s, "coalesce(m.message_id = $%d, false)", n);
	} else {
		return syntax(p, t->pos, "unknown field '%s:'", f);
	}
	return MV_OK;
}

static mv_status or_expr(parser *p);

static mv_status unary(parser *p)
{
	token *t = peek(p);
	if (t->kind == T_NOT) {
		p->at++;
		if (++p->depth > MAX_NESTING)
			return syntax(p, t->pos, "%s", "nested too deeply");
		g_string_append(p->sql, "NOT (");
		p->negated++;
		mv_status st = unary(p);
		p->negated--;
		g_string_append(p->sql, ")");
		p->depth--;
		return st;
	}
	if (t->kind == T_LPAREN) {
		p->at++;
		if (++p->depth > MAX_NESTING)
			return syntax(p, t->pos, "%s", "nested too deeply");
		g_string_append(p->sql, "(");
		mv_status st = or_expr(p);
		if (st != MV_OK)
			return st;
		token *close = peek(p);
		if (close->kind != T_RPAREN)
			return syntax(p, close->pos, "%s", "expected ')'");
		p->at++;
		g_string_append(p->sql, ")");
		p->depth--;
		return MV_OK;
	}
	if (t->kind == T_TERM) {
		p->at++;
		return term(p, t);
	}
	if (t->kind == T_END)
		return syntax(p, t->pos, "%s", "unexpected end of query");
	if (t->kind == T_RPAREN)
		return syntax(p, t->pos, "%s", "unexpected ')'");
	return syntax(p, t->pos, "unexpected '%s'", t->kind == T_OR ? "OR" : "AND");
}

static mv_status and_expr(parser *p)
{
	mv_status st = unary(p);
	for (;;) {
		if (st != MV_OK)
			return st;
		token *t = peek(p);
		if (t->kind == T_AND) {
			p->at++;
			t = peek(p);
			if (t->kind == T_END || t->kind == T_RPAREN || t->kind == T_OR)
				return syntax(p, t->pos, "%s", "expected a term after AND");
		} else if (t->kind == T_END || t->kind == T_RPAREN || t->kind == T_OR) {
			return MV_OK;
		}
		g_string_append(p->sql, " AND ");
		st = unary(p);
	}
}

static mv_status or_expr(parser *p)
{
	g_string_append(p->sql, "(");
	mv_status st = and_expr(p);
	while (st == MV_OK && peek(p)->kind == T_OR) {
		p->at++;
		if (p->depth == 0)
			p->top_or = TRUE;
		g_string_append(p->sql, ") OR (");
		st = and_expr(p);
	}
	g_string_append(p->sql, ")");
	return st;
}

mv_status mv_query_compile(const char *query, int first_param, mv_query_sql **sql_r,
                           char **error_r)
{
	return mv_query_compile_for(query, MV_QUERY_MESSAGES, first_param, sql_r, error_r);
}

mv_status mv_query_compile_for(const char *query, mv_query_target target, int first_param,
                               mv_query_sql **sql_r, char **error_r)
{
	*sql_r = NULL;
	if (query == NULL)
		query = "";
	if (!g_utf8_validate(query, -1, NULL))
		return mv_fail(error_r, MV_ERR_QUERY, "query error: the query is not valid UTF-8");
	parser p = {.q = query, .toks = g_array_new(FALSE, TRUE, sizeof(token)),
	            .sql = g_string_new(NULL), .params = g_ptr_array_new_with_free_func(g_free),
	            .first_param = first_param, .tombstone = target == MV_QUERY_TOMBSTONES,
	            .highlight = g_string_new(NULL),
	            .text_terms = g_array_new(FALSE, FALSE, sizeof(mv_query_text_term)),
	            .walk = g_string_new(NULL), .error_r = error_r};
	mv_status st = tokenize(&p);
	if (st == MV_OK) {
		if (peek(&p)->kind == T_END) {
			g_string_assign(p.sql, "TRUE");
		} else {
			st = or_expr(&p);
			if (st == MV_OK && peek(&p)->kind != T_END)
				st = syntax(&p, peek(&p)->pos, "%s", peek(&p)->kind == T_RPAREN
				                                          ? "unexpected ')'"
				                                          : "unexpected token");
		}
	}
	tokens_free(p.toks);
	if (st != MV_OK) {
		g_string_free(p.sql, TRUE);
		g_string_free(p.highlight, TRUE);
		g_ptr_array_free(p.params, TRUE);
		g_array_free(p.text_terms, TRUE);
		g_string_free(p.walk, TRUE);
		return st;
	}
	mv_query_sql *out = g_new0(mv_query_sql, 1);
	out->where = g_string_free(p.sql, FALSE);
	out->params = p.params;
	out->first_param = first_param;
	out->text_terms = p.text_terms;
	out->mentions_destroyed = p.mentions_destroyed;
	/* Under a top-level OR a date conjunct binds only its own branch. */
	if (p.top_or || p.walk->len == 0)
		g_string_assign(p.walk, "TRUE");
	out->walk = g_string_free(p.walk, FALSE);
	if (p.highlight->len > 0)
		out->highlight = g_strdup_printf("(%s)", p.highlight->str);
	g_string_free(p.highlight, TRUE);
	*sql_r = out;
	return MV_OK;
}

void mv_query_sql_free(mv_query_sql **sql)
{
	if (sql == NULL || *sql == NULL)
		return;
	g_free((*sql)->where);
	g_free((*sql)->highlight);
	g_free((*sql)->walk);
	g_ptr_array_free((*sql)->params, TRUE);
	g_array_free((*sql)->text_terms, TRUE);
	g_free(*sql);
	*sql = NULL;
}

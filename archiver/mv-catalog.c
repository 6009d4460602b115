/* mv-catalog: read-only queries over the archive's metadata. */
#include "mv-catalog.h"
#include "mv-blind.h"

#include <string.h>

#include "mv-query.h"
#include "mv-store.h"

static char *dup_value(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? NULL : g_strdup(PQgetvalue(r, row, col));
}

static gint64 int_value(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? 0 : g_ascii_strtoll(PQgetvalue(r, row, col), NULL, 10);
}

void mv_hit_free(gpointer hit)
{
	mv_hit *h = hit;
	if (h == NULL)
		return;
	g_free(h->sha256);
	g_free(h->date);
	g_free(h->from);
	g_free(h->subject);
	g_free(h->parse_status);
	g_free(h->registration);
	g_free(h->retention_class);
	g_free(h->destroyed_at);
	g_free(h->lang);
	g_free(h->snippet);
	g_free(h);
}

/* Whitespace and control characters folded to single spaces (the
 * markers kept), trimmed. */
static char *fold_snippet(const char *in)
{
	char *valid = g_utf8_make_valid(in, -1);
	GString *s = g_string_sized_new(strlen(valid));
	gboolean space = TRUE; /* drop leading space */
	for (const char *c = valid; *c != '\0'; c++) {
		unsigned char u = (unsigned char)*c;
		if (*c == MV_SNIPPET_START || *c == MV_SNIPPET_END) {
			g_string_append_c(s, *c);
		} else if (u < 0x20 || u == 0x7f || u == ' ') {
			if (!space)
				g_string_append_c(s, ' ');
			space = TRUE;
			continue;
		} else {
			g_string_append_c(s, *c);
		}
		space = FALSE;
	}
	while (s->len > 0 && s->str[s->len - 1] == ' ')
		g_string_truncate(s, s->len - 1);
	g_free(valid);
	return g_string_free(s, FALSE);
}

/* The characters written without spaces between words, as
 * mv_cjk_class() in schema/021-search-languages.sql says. */
static gboolean is_cjk(gunichar c)
{
	return (c >= 0x2E80 && c <= 0x2FDF) || (c >= 0x3041 && c <= 0x30FF) ||
	       (c >= 0x3105 && c <= 0x312F) || (c >= 0x3131 && c <= 0x318E) ||
	       (c >= 0x31A0 && c <= 0x31FF) || (c >= 0x3400 && c <= 0x4DBF) ||
	       (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0xA960 && c <= 0xA97F) ||
	       (c >= 0xAC00 && c <= 0xD7AF) || (c >= 0xF900 && c <= 0xFAFF) ||
	       (c >= 0xFF66 && c <= 0xFF9F);
}

/* The runs of CJK characters in the query's bare words and phrases (the
 * words search finds by their bigrams; a field term such as subject:
 * or a negated word is no snippet's), longest first, at most 16. */
static GPtrArray *cjk_runs(const char *query)
{
	GPtrArray *runs = g_ptr_array_new_with_free_func(g_free);
	char *valid = g_utf8_make_valid(query, -1);
	char **words = g_strsplit_set(valid, " \t\r\n", -1);
	for (char **w = words; *w != NULL; w++) {
		if (**w == '-' || strchr(*w, ':') != NULL)
			continue;
		const char *start = NULL;
		for (const char *c = *w;; c = g_utf8_next_char(c)) {
			gboolean cjk = *c != '\0' && is_cjk(g_utf8_get_char(c));
			if (cjk && start == NULL)
				start = c;
			if (!cjk && start != NULL) {
				if (runs->len < 16)
					g_ptr_array_add(runs, g_strndup(start, (gsize)(c - start)));
				start = NULL;
			}
			if (*c == '\0')
				break;
		}
	}
	g_strfreev(words);
	g_free(valid);
	for (guint i = 1; i < runs->len; i++) /* longest first: insertion sort */
		for (guint j = i; j > 0 && strlen(runs->pdata[j]) > strlen(runs->pdata[j - 1]); j--) {
			gpointer t = runs->pdata[j];
			runs->pdata[j] = runs->pdata[j - 1];
			runs->pdata[j - 1] = t;
		}
	return runs;
}

/* s with every occurrence of a run outside the marks already there marked. */
static char *mark_runs(const char *s, gsize len, const GPtrArray *runs)
{
	GString *out = g_string_sized_new(len + 16);
	gboolean inside = FALSE;
	for (gsize i = 0; i < len;) {
		if (s[i] == MV_SNIPPET_START || s[i] == MV_SNIPPET_END)
			inside = s[i] == MV_SNIPPET_START;
		const char *hit = NULL;
		for (guint k = 0; !inside && hit == NULL && k < runs->len; k++) {
			const char *run = runs->pdata[k];
			gsize rl = strlen(run);
			if (rl > 0 && rl <= len - i && memcmp(s + i, run, rl) == 0)
				hit = run;
		}
		if (hit != NULL) {
			g_string_append_c(out, MV_SNIPPET_START);
			g_string_append(out, hit);
			g_string_append_c(out, MV_SNIPPET_END);
			i += strlen(hit);
		} else {
			g_string_append_c(out, s[i]);
			i++;
		}
	}
	return g_string_free(out, FALSE);
}

/* Whether s holds one of runs. */
static const char *find_run(const char *s, const GPtrArray *runs)
{
	const char *first = NULL;
	for (guint k = 0; k < runs->len; k++) {
		const char *at = strstr(s, runs->pdata[k]);
		if (at != NULL && (first == NULL || at < first))
			first = at;
	}
	return first;
}

#define CJK_BEFORE 24 /* characters of context before the first CJK hit */
#define CJK_AFTER 60  /* ... and after it */

/* The snippet with the query's CJK words marked: ts_headline's when it
 * shows one (marked there), else ts_headline's fragments (when they mark
 * another term) and a fragment of text around the first CJK word. */
static char *cjk_snippet(const char *headline, const char *text, const GPtrArray *runs)
{
	if (headline != NULL && find_run(headline, runs) != NULL)
		return mark_runs(headline, strlen(headline), runs);
	const char *at = text != NULL ? find_run(text, runs) : NULL;
	if (at == NULL)
		return g_strdup(headline);
	const char *from = at;
	for (int i = 0; i < CJK_BEFORE && from > text; i++)
		from = g_utf8_find_prev_char(text, from);
	const char *to = at;
	for (int i = 0; i < CJK_AFTER && *to != '\0'; i++)
		to = g_utf8_next_char(to);
	char *window = mark_runs(from, (gsize)(to - from), runs);
	char *res = headline != NULL && strchr(headline, MV_SNIPPET_START) != NULL
	                ? g_strdup_printf("%s ... %s", headline, window)
	                : g_strdup(window);
	g_free(window);
	return res;
}

gboolean mv_catalog_snippets_decode(const char *query)
{
	mv_query_sql *q = NULL;
	if (mv_query_compile(query, 5, &q, NULL) != MV_OK)
		return TRUE; /* the search says what is wrong with it */
	GPtrArray *runs = cjk_runs(query);
	gboolean want_text = q->highlight != NULL || runs->len > 0;
	g_ptr_array_unref(runs);
	mv_query_sql_free(&q);
	return want_text;
}

mv_status mv_catalog_snippets(mv_db *db, mv_blobstore *blobs, const char *query,
                              GPtrArray *hits, char **error_r)
{
	/* ids: every hit's (for its language); with_snippet: the first
	 * MV_SNIPPET_MAX_HITS */
	GString *ids = g_string_new("{");
	GString *with_snippet = g_string_new("{");
	guint n = 0;
	for (guint i = 0; i < hits->len; i++) {
		const mv_hit *h = hits->pdata[i];
		if (h->destroyed)
			continue;
		g_string_append_printf(ids, "%s%" G_GINT64_FORMAT, n > 0 ? "," : "", h->id);
		if (n < MV_SNIPPET_MAX_HITS)
			g_string_append_printf(with_snippet, "%s%" G_GINT64_FORMAT, n > 0 ? "," : "", h->id);
		n++;
	}
	g_string_append_c(ids, '}');
	g_string_append_c(with_snippet, '}');
	mv_query_sql *q = NULL;
	mv_status st = n == 0 ? MV_OK : mv_query_compile(query, 5, &q, error_r);
	if (n == 0 || st != MV_OK) {
		g_string_free(ids, TRUE);
		g_string_free(with_snippet, TRUE);
		return st;
	}
	GPtrArray *runs = cjk_runs(query);
	gboolean want_text = q->highlight != NULL || runs->len > 0;
	if (want_text && blobs == NULL) {
		g_ptr_array_unref(runs);
		mv_query_sql_free(&q);
		g_string_free(ids, TRUE);
		g_string_free(with_snippet, TRUE);
		return mv_fail(error_r, MV_ERR_INTERNAL,
		               "snippets of this query decode stored texts: no blob store given");
	}
	/* The languages of every hit, the stored texts of those that get a
	 * snippet (the first MV_SNIPPET_INPUT characters of a text stored in
	 * clear before schema/029). */
	const char *v1[] = {ids->str, want_text ? with_snippet->str : "{}"};
	PGresult *r = NULL;
	st = mv_db_query(db,
	                 "SELECT t.message_id, t.lang, m.sha256, "
	                 "  CASE WHEN t.message_id = ANY ($2::bigint[]) THEN t.ztext END, "
	                 "  CASE WHEN t.message_id = ANY ($2::bigint[]) THEN "
	                 "    left(t.doc, " G_STRINGIFY(MV_SNIPPET_INPUT) ") END "
	                 "FROM message_text t JOIN message m ON m.id = t.message_id "
	                 "WHERE t.message_id = ANY ($1::bigint[])",
	                 2, v1, NULL, NULL, 0, &r, error_r);
	g_string_free(ids, TRUE);
	g_string_free(with_snippet, TRUE);
	GHashTable *by_id = g_hash_table_new(g_int64_hash, g_int64_equal);
	for (guint i = 0; i < hits->len; i++) {
		mv_hit *h = hits->pdata[i];
		if (!h->destroyed)
			g_hash_table_insert(by_id, &h->id, h);
	}
	/* id -> decoded text (at most MV_SNIPPET_INPUT characters, without
	 * the marker characters, so that only marks are marks) */
	GHashTable *texts = g_hash_table_new_full(g_int64_hash, g_int64_equal, NULL, g_free);
	GString *sids = g_string_new("{"), *sdocs = g_string_new("{"), *slangs = g_string_new("{");
	for (int i = 0; st == MV_OK && i < PQntuples(r); i++) {
		gint64 id = int_value(r, i, 0);
		mv_hit *h = g_hash_table_lookup(by_id, &id);
		if (h == NULL)
			continue;
		g_free(h->lang);
		h->lang = dup_value(r, i, 1);
		if (PQgetisnull(r, i, 3) && PQgetisnull(r, i, 4))
			continue;
		size_t shalen = 0;
		unsigned char *sha = PQunescapeBytea((const unsigned char *)PQgetvalue(r, i, 2), &shalen);
		char *text = NULL;
		if (sha == NULL || shalen != MV_SHA256_LEN)
			st = mv_fail(error_r, MV_ERR_DB, "unexpected result reading search texts");
		else
			st = mv_blobstore_pg_text_read(blobs, r, i, 3, sha, NULL, &text, error_r);
		PQfreemem(sha);
		if (st != MV_OK)
			break;
		if (g_utf8_strlen(text, -1) > MV_SNIPPET_INPUT)
			*g_utf8_offset_to_pointer(text, MV_SNIPPET_INPUT) = '\0';
		for (char *c = text; *c != '\0'; c++)
			if (*c == MV_SNIPPET_START || *c == MV_SNIPPET_END)
				*c = ' ';
		mv_db_array_text(sids, PQgetvalue(r, i, 0));
		mv_db_array_text(sdocs, text);
		mv_db_array_text(slangs, h->lang);
		g_hash_table_insert(texts, &h->id, text);
	}
	PQclear(r);
	r = NULL;
	g_string_append_c(sids, '}');
	g_string_append_c(sdocs, '}');
	g_string_append_c(slangs, '}');
	if (st == MV_OK && q->highlight != NULL && g_hash_table_size(texts) > 0) {
		/* Every parameter typed, also those of terms the snippet does not
		 * use (an unused one has no type and fails the statement). */
		GString *typed = g_string_new("num_nonnulls($2::text");
		for (guint i = 0; i < q->params->len; i++)
			g_string_append_printf(typed, ", $%u::text", i + 5);
		g_string_append(typed, ") >= 0");
		char *sql = g_strdup_printf("SELECT u.id, ts_headline(mv_lang_config(u.lang), u.doc, %s, $2) "
		                            "FROM unnest($1::bigint[], $3::text[], $4::text[]) AS u(id, doc, lang) "
		                            "WHERE %s",
		                            q->highlight, typed->str);
		g_string_free(typed, TRUE);
		const char *lead[] = {sids->str,
		                      "MaxFragments=2, MaxWords=14, MinWords=6, "
		                      "FragmentDelimiter=\" ... \", StartSel=\x02, StopSel=\x03",
		                      sdocs->str, slangs->str};
		st = mv_db_query_params(db, sql, lead, 4, q->params, &r, error_r);
		g_free(sql);
	}
	for (int i = 0; st == MV_OK && r != NULL && i < PQntuples(r); i++) {
		gint64 id = int_value(r, i, 0);
		mv_hit *h = g_hash_table_lookup(by_id, &id);
		if (h == NULL || PQgetisnull(r, i, 1))
			continue;
		g_free(h->snippet);
		h->snippet = g_strdup(PQgetvalue(r, i, 1));
	}
	if (st == MV_OK && runs->len > 0) {
		GHashTableIter it;
		gpointer key, value;
		g_hash_table_iter_init(&it, texts);
		while (g_hash_table_iter_next(&it, &key, &value)) {
			mv_hit *h = g_hash_table_lookup(by_id, key);
			char *marked = cjk_snippet(h->snippet, value, runs);
			g_free(h->snippet);
			h->snippet = marked;
		}
	}
	for (guint i = 0; st == MV_OK && i < hits->len; i++) {
		mv_hit *h = hits->pdata[i];
		if (h->snippet != NULL) {
			char *folded = fold_snippet(h->snippet);
			g_free(h->snippet);
			h->snippet = folded;
		}
	}
	PQclear(r);
	g_string_free(sids, TRUE);
	g_string_free(sdocs, TRUE);
	g_string_free(slangs, TRUE);
	g_hash_table_destroy(texts);
	g_hash_table_destroy(by_id);
	g_ptr_array_free(runs, TRUE);
	mv_query_sql_free(&q);
	return st;
}


mv_status mv_catalog_query_resolve(mv_db *db, mv_query_sql *q, char **error_r)
{
	if (q->text_terms == NULL || q->text_terms->len == 0)
		return MV_OK;
	mv_blind *blind = mv_blind_remembered();
	mv_status st = MV_OK;
	if (blind == NULL) {
		PGresult *r = NULL;
		st = mv_db_query(db, "SELECT mv_search_blind() IS NOT NULL", 0, NULL, NULL, NULL, 0, &r,
		                 error_r);
		gboolean is_blind = st == MV_OK && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
		PQclear(r);
		if (st != MV_OK || !is_blind)
			return st;
		/* the key, through a blob store (it remembers the index) */
		mv_blobstore_settings settings;
		mv_blobstore_settings_default(&settings);
		mv_blobstore *blobs = NULL;
		char *inner = NULL;
		st = mv_blobstore_pg_new(db, &settings, &blobs, &inner);
		if (st == MV_OK && mv_blobstore_pg_blind(blobs) != NULL)
			blind = mv_blind_ref((mv_blind *)mv_blobstore_pg_blind(blobs));
		mv_blobstore_free(&blobs);
		if (st != MV_OK) {
			st = mv_fail(error_r, st, "the search index is blind (encryption is on): a word "
			             "search needs the key: %s", inner);
			g_free(inner);
			return st;
		}
		if (blind == NULL)
			return mv_fail(error_r, MV_ERR_CONFIG, "the search index is blind, but the archive "
			               "has no key for it");
	}
	/* every term's clear tsquery, in one round trip */
	GString *vals = g_string_new("{"), *phr = g_string_new("{");
	for (guint i = 0; i < q->text_terms->len; i++) {
		const mv_query_text_term *t = &g_array_index(q->text_terms, mv_query_text_term, i);
		mv_db_array_text(vals, q->params->pdata[t->param - q->first_param]);
		mv_db_array_text(phr, t->phrase ? "t" : "f");
	}
	g_string_append_c(vals, '}');
	g_string_append_c(phr, '}');
	const char *v[] = {vals->str, phr->str};
	PGresult *r = NULL;
	st = mv_db_query(db, "SELECT mv_search_query(u.q, u.p)::text FROM "
	                     "unnest($1::text[], $2::boolean[]) WITH ORDINALITY AS u(q, p, k) "
	                     "ORDER BY u.k",
	                 2, v, NULL, NULL, 0, &r, error_r);
	g_string_free(vals, TRUE);
	g_string_free(phr, TRUE);
	if (st == MV_OK && PQntuples(r) != (int)q->text_terms->len)
		st = mv_fail(error_r, MV_ERR_DB, "unexpected result making the query blind");
	GString *where = g_string_new(q->where);
	for (guint i = 0; st == MV_OK && i < q->text_terms->len; i++) {
		const mv_query_text_term *t = &g_array_index(q->text_terms, mv_query_text_term, i);
		char *bq = NULL;
		st = mv_blind_query(blind, PQgetvalue(r, (int)i, 0), &bq, error_r);
		if (st != MV_OK)
			break;
		if (*bq == '\0') { /* no word to search (a stop word): as before */
			g_free(bq);
			continue;
		}
		g_ptr_array_add(q->params, bq);
		int b = q->first_param + (int)q->params->len - 1;
		const char *ph = t->phrase ? "true" : "false";
		char *needle = g_strdup_printf("t.tsv @@ mv_search_query($%d, %s)", t->param, ph);
		char *repl = g_strdup_printf("t.tsv @@ ($%d::tsquery || mv_search_query($%d, %s))", b,
		                             t->param, ph);
		const char *at = strstr(where->str, needle);
		if (at == NULL) {
			st = mv_fail(error_r, MV_ERR_INTERNAL, "a text term's condition was not found");
		} else {
			gssize pos = at - where->str;
			g_string_erase(where, pos, (gssize)strlen(needle));
			g_string_insert(where, pos, repl);
		}
		g_free(needle);
		g_free(repl);
	}
	PQclear(r);
	mv_blind_free(&blind);
	if (st == MV_OK) {
		g_free(q->where);
		q->where = g_string_free(where, FALSE);
	} else {
		g_string_free(where, TRUE);
	}
	return st;
}

mv_status mv_catalog_search(mv_db *db, const char *query, gint64 limit, GPtrArray **hits_r,
                            char **error_r)
{
	return mv_catalog_find(db, query, limit, FALSE, hits_r, error_r);
}

/* The columns of a hit, in the order mv_catalog_find reads them. */
#define HIT_COLUMNS                                                                        \
	"m.id, encode(m.sha256, 'hex'), m.size, " MV_SQL_ISO_UTC("m.date") ", m.from_addr, " \
	"m.subject, m.has_attachment, m.parse_status, m.registration, m.retention_class"
#define NEWEST_FIRST "m.date DESC NULLS LAST, m.id DESC"

/* The newest matches of a query with a text term, found in one of two
 * ways whose costs differ by orders of magnitude, and PostgreSQL's
 * estimates cannot choose between them: a phrase's or a combination's
 * matches are estimated from each word alone ("purchase order": 12,839 estimated, 170 found in a million
 * messages), so the planner walked the whole archive in date order
 * looking for a page it could not fill (7.8 s), where reading the 170
 * from the text index and sorting them takes 0.2 s.
 *
 * So the walk in date order is bounded: it reads at most WALK_FIRST
 * messages of the query's date range (mv_query_sql.walk), newest first,
 * and is complete when it fills the page or reads the range to its end.
 * When the matches it found are dense enough to fill the page within
 * WALK_MAX messages, one longer walk is tried.  Otherwise every match is
 * collected through the indexes (a materialised set, which the planner
 * must compute whole: it starts from the most selective index) and the
 * newest are sorted out; that costs what the matches cost, not what the
 * archive holds.  The result is the same in every case: the newest
 * `limit` matches, newest first. */
#define WALK_FIRST 2000
#define WALK_MAX 20000
#define WALK_MIN_FOUND 10

/* Column 0 of every row: how many messages of the walk range the walk
 * could read (up to walk); hits from column 1, absent (one row of NULLs)
 * when none matched. */
static mv_status walk_newest(mv_db *db, const mv_query_sql *q, const char *lim, gint64 walk,
                             PGresult **r_r, char **error_r)
{
	char *sql = g_strdup_printf(
		"SELECT w.n, h.* FROM (SELECT count(*) AS n FROM (SELECT 1 FROM message m WHERE %s "
		"ORDER BY " NEWEST_FIRST " LIMIT %" G_GINT64_FORMAT ") r) w "
		"LEFT JOIN LATERAL (SELECT " HIT_COLUMNS " FROM (SELECT * FROM message m WHERE %s "
		"ORDER BY " NEWEST_FIRST " LIMIT %" G_GINT64_FORMAT ") m WHERE %s "
		"ORDER BY " NEWEST_FIRST " LIMIT $1) h ON true",
		q->walk, walk, q->walk, walk, q->where);
	const char *lead[] = {lim};
	mv_status st = mv_db_query_params(db, sql, lead, 1, q->params, r_r, error_r);
	g_free(sql);
	return st;
}

static gint64 walk_hits(const PGresult *r)
{
	gint64 n = 0;
	for (int i = 0; i < PQntuples(r); i++)
		n += !PQgetisnull(r, i, 1);
	return n;
}

/* The newest `limit` (> 0; lim is it in text) messages matching q; the
 * hit columns start at *first_r of *r_r, whose rows with a NULL id there
 * are no hits. */
static mv_status find_newest(mv_db *db, const mv_query_sql *q, gint64 limit, const char *lim,
                             PGresult **r_r, int *first_r, char **error_r)
{
	*first_r = 1;
	gint64 walk = WALK_FIRST;
	/* MAILVAULT_SEARCH_WALK: the first walk's length, for tests that drive
	 * a small archive through every way (docs/search.md) */
	const char *env = g_getenv("MAILVAULT_SEARCH_WALK");
	gint64 first = env != NULL ? g_ascii_strtoll(env, NULL, 10) : 0;
	if (first >= 1 && first <= WALK_MAX)
		walk = first;
	const gint64 first_walk = walk;
	for (;;) {
		PGresult *r = NULL;
		mv_status st = walk_newest(db, q, lim, walk, &r, error_r);
		if (st != MV_OK)
			return st;
		gint64 found = walk_hits(r);
		gint64 read = PQntuples(r) > 0 ? int_value(r, 0, 0) : 0;
		if (found >= limit || read < walk) {
			*r_r = r;
			return MV_OK;
		}
		PQclear(r);
		if (walk > first_walk || found < WALK_MIN_FOUND)
			break;
		/* A walk long enough to fill the page at the density seen, with
		 * half again as margin. */
		double longer = (double)limit * (double)walk / (double)found * 1.5;
		if (longer > WALK_MAX)
			break;
		walk = (gint64)longer + 1;
	}
	char *sql = g_strdup_printf(
		"WITH hit AS MATERIALIZED (SELECT m.id, m.date FROM message m WHERE %s) "
		"SELECT " HIT_COLUMNS " FROM (SELECT hit.id FROM hit "
		"ORDER BY hit.date DESC NULLS LAST, hit.id DESC LIMIT $1) h "
		"JOIN message m ON m.id = h.id ORDER BY " NEWEST_FIRST,
		q->where);
	const char *lead[] = {lim};
	*first_r = 0;
	mv_status st = mv_db_query_params(db, sql, lead, 1, q->params, r_r, error_r);
	g_free(sql);
	return st;
}

mv_status mv_catalog_find(mv_db *db, const char *query, gint64 limit, gboolean include_destroyed,
                          GPtrArray **hits_r, char **error_r)
{
	*hits_r = NULL;
	mv_query_sql *q = NULL, *tq = NULL;
	mv_status st = mv_query_compile(query, 2, &q, error_r);
	if (st == MV_OK)
		st = mv_catalog_query_resolve(db, q, error_r);
	if (st != MV_OK) {
		mv_query_sql_free(&q);
		return st;
	}
	char *sql = NULL;
	if (include_destroyed || q->mentions_destroyed) {
		/* Destroyed records too: the tombstones, by the same query. */
		st = mv_query_compile_for(query, MV_QUERY_TOMBSTONES, 2 + (int)q->params->len, &tq,
		                          error_r);
		if (st != MV_OK) {
			mv_query_sql_free(&q);
			return st;
		}
		for (guint i = 0; i < tq->params->len; i++)
			g_ptr_array_add(q->params, g_strdup(tq->params->pdata[i]));
		sql = g_strdup_printf(
			"SELECT " HIT_COLUMNS ", false, NULL::text, NULL::integer, m.date "
			"FROM message m WHERE %s "
			"UNION ALL "
			"SELECT m.id, encode(m.sha256, 'hex'), m.size, " MV_SQL_ISO_UTC("m.date") ", "
			"m.from_addr, NULL::text, false, NULL::text, m.registration, m.retention_class, "
			"true, " MV_SQL_ISO_UTC("m.destroyed_at") ", d.run, m.date "
			"FROM " MV_QUERY_TOMBSTONE_SOURCE " m JOIN disposition d ON d.id = m.disposition_id "
			"WHERE %s "
			"ORDER BY 14 DESC NULLS LAST, 1 DESC LIMIT $1",
			q->where, tq->where);
		mv_query_sql_free(&tq);
	} else if (limit <= 0 || q->text_terms->len == 0) {
		/* Every match (no order of reading is cheaper than another), or
		 * no text term: the planner's estimates of addresses, dates and
		 * columns are good enough to choose between a walk and an index,
		 * and one statement is what a selective search like from:X costs
		 * least (find_newest's walk first took it from 17 to 23 ms). */
		sql = g_strdup_printf("SELECT " HIT_COLUMNS " FROM message m WHERE %s "
		                      "ORDER BY " NEWEST_FIRST " LIMIT $1", q->where);
	}
	PGresult *r = NULL;
	int c = 0; /* the column of the first hit column */
	char lim[24];
	g_snprintf(lim, sizeof lim, "%" G_GINT64_FORMAT, limit);
	if (sql != NULL) {
		const char *lead[] = {limit > 0 ? lim : NULL};
		st = mv_db_query_params(db, sql, lead, 1, q->params, &r, error_r);
		g_free(sql);
	} else {
		st = find_newest(db, q, limit, lim, &r, &c, error_r);
	}
	mv_query_sql_free(&q);
	if (st != MV_OK)
		return st;
	GPtrArray *hits = g_ptr_array_new_with_free_func(mv_hit_free);
	for (int i = 0; i < PQntuples(r); i++) {
		if (PQgetisnull(r, i, c))
			continue; /* find_newest's row saying it found nothing */
		mv_hit *h = g_new0(mv_hit, 1);
		h->id = int_value(r, i, c);
		h->sha256 = dup_value(r, i, c + 1);
		h->size = int_value(r, i, c + 2);
		h->date = dup_value(r, i, c + 3);
		h->from = dup_value(r, i, c + 4);
		h->subject = dup_value(r, i, c + 5);
		h->has_attachment = strcmp(PQgetvalue(r, i, c + 6), "t") == 0;
		h->parse_status = dup_value(r, i, c + 7);
		h->registration = dup_value(r, i, c + 8);
		h->retention_class = dup_value(r, i, c + 9);
		if (PQnfields(r) - c > 10) {
			h->destroyed = strcmp(PQgetvalue(r, i, c + 10), "t") == 0;
			h->destroyed_at = dup_value(r, i, c + 11);
			h->purge_run = int_value(r, i, c + 12);
		}
		g_ptr_array_add(hits, h);
	}
	PQclear(r);
	*hits_r = hits;
	return MV_OK;
}

static void stats_from_row(const PGresult *r, int first, mv_stats *s)
{
	s->messages = int_value(r, 0, first + 0);
	s->arrivals = int_value(r, 0, first + 1);
	s->raw_bytes = int_value(r, 0, first + 2);
	s->stored_bytes = int_value(r, 0, first + 3);
	s->blobs = int_value(r, 0, first + 4);
	s->flagged = int_value(r, 0, first + 5);
	s->pending_index = int_value(r, 0, first + 6);
	s->virus_unscanned = int_value(r, 0, first + 7);
	s->virus_infected = int_value(r, 0, first + 8);
	s->spam_unscanned = int_value(r, 0, first + 9);
}

/* mv_stats() (schema 037): the maintained counters (stats_delta, a few
 * hundred rows at most) for a role that sees the whole archive, else the
 * recount of what row-level security (schema 019) lets this role see. */
mv_status mv_catalog_stats(mv_db *db, mv_stats *stats_r, char **error_r)
{
	*stats_r = (mv_stats){0};
	PGresult *r = NULL;
	mv_status st = mv_db_query(db, "SELECT * FROM mv_stats()", 0, NULL, NULL, NULL, 0, &r, error_r);
	if (st != MV_OK)
		return st;
	stats_from_row(r, 0, stats_r);
	stats_r->restricted = PQgetvalue(r, 0, 10)[0] == 't';
	PQclear(r);
	return MV_OK;
}

mv_status mv_catalog_stats_recount(mv_db *db, mv_stats *stats_r, mv_stats *recount_r,
                                   char **error_r)
{
	*stats_r = (mv_stats){0};
	*recount_r = (mv_stats){0};
	PGresult *r = NULL;
	/* One statement, so one snapshot: both read the same archive. */
	mv_status st = mv_db_query(db, "SELECT s.*, c.* FROM mv_stats() s, mv_stats_recount() c", 0,
	                           NULL, NULL, NULL, 0, &r, error_r);
	if (st != MV_OK)
		return st;
	stats_from_row(r, 0, stats_r);
	stats_r->restricted = PQgetvalue(r, 0, 10)[0] == 't';
	stats_from_row(r, 12, recount_r);
	recount_r->restricted = stats_r->restricted;
	PQclear(r);
	return MV_OK;
}

mv_status mv_catalog_stats_rebuild(mv_db *db, char **error_r)
{
	PGresult *r = NULL;
	mv_status st = mv_db_query(db, "SELECT mv_stats_rebuild()", 0, NULL, NULL, NULL, 0, &r, error_r);
	PQclear(r);
	return st;
}

static void address_free(gpointer p)
{
	mv_record_address *a = p;
	g_free(a->role);
	g_free(a->address);
	g_free(a->name);
	g_free(a);
}

static void part_free(gpointer p)
{
	mv_record_part *a = p;
	g_free(a->path);
	g_free(a->declared_type);
	g_free(a->detected_type);
	g_free(a->filename);
	g_free(a->blob_sha256);
	g_free(a->virus);
	g_free(a->virus_name);
	g_free(a);
}

/* The arrival's typed facts (columns first..first+16 of r) as the one
 * line `show` prints (mv_arrival_details). */
static char *arrival_details(const PGresult *r, int row, int first)
{
	uint8_t report[MV_SHA256_LEN], original[MV_SHA256_LEN], file[MV_SHA256_LEN];
	const char *v[17];
	for (int k = 0; k < 17; k++)
		v[k] = PQgetisnull(r, row, first + k) ? NULL : PQgetvalue(r, row, first + k);
	mv_arrival_info a = {
		.client_addr = v[0], .helo = v[1], .tls = v[2], .protocol = v[3],
		.imap = v[5] != NULL, .imap_mailbox = v[4],
		.imap_uidvalidity = v[5] != NULL ? g_ascii_strtoull(v[5], NULL, 10) : 0,
		.imap_uid = v[6] != NULL ? g_ascii_strtoull(v[6], NULL, 10) : 0,
		.imap_internaldate = v[7] != NULL ? g_ascii_strtoll(v[7], NULL, 10) : 0,
		.journal_report = v[8] != NULL && mv_sha256_from_hex(v[8], report) == 0 ? report : NULL,
		.journal_original = v[9] != NULL && mv_sha256_from_hex(v[9], original) == 0 ? original : NULL,
		.journal_problem = v[10],
		.source_sha256 = v[12] != NULL && mv_sha256_from_hex(v[12], file) == 0 ? file : NULL,
		.folder_path = v[13],
		.item_id = v[14],
		.reconstructed = v[16] != NULL && strcmp(v[16], "t") == 0,
	};
	gsize entry_len = 0;
	guchar *entry = NULL;
	if (v[15] != NULL && strlen(v[15]) % 2 == 0 && strlen(v[15]) <= 2048) {
		entry_len = strlen(v[15]) / 2;
		entry = g_malloc0(entry_len + 1);
		for (gsize i = 0; i < entry_len; i++)
			entry[i] = (guchar)(g_ascii_xdigit_value(v[15][2 * i]) * 16 +
			                    g_ascii_xdigit_value(v[15][2 * i + 1]));
		a.entry_id = entry;
		a.entry_id_len = entry_len;
	}
	char **bcc = v[11] != NULL && *v[11] != '\0' ? g_strsplit(v[11], ",", -1) : NULL;
	a.envelope_bcc = (const char *const *)bcc;
	char *details = mv_arrival_details(&a);
	g_strfreev(bcc);
	g_free(entry);
	return details;
}

static void arrival_free(gpointer p)
{
	mv_record_arrival *a = p;
	g_free(a->source);
	g_free(a->source_ref);
	g_free(a->received_at);
	g_free(a->envelope_from);
	g_free(a->details);
	g_ptr_array_unref(a->envelope_to);
	g_free(a);
}

void mv_record_free(mv_record **record)
{
	if (record == NULL || *record == NULL)
		return;
	mv_record *m = *record;
	g_free(m->sha256);
	g_free(m->message_id);
	g_free(m->date);
	g_free(m->date_raw);
	g_free(m->from);
	g_free(m->from_name);
	g_free(m->subject);
	g_free(m->parse_status);
	g_free(m->archived_at);
	g_free(m->registration);
	g_free(m->retention_class);
	g_free(m->expires_at);
	g_free(m->deciding_rule);
	g_free(m->direction);
	g_free(m->virus);
	g_free(m->virus_name);
	g_free(m->virus_at);
	g_free(m->spam);
	g_free(m->spam_reason);
	g_free(m->spam_at);
	g_free(m->spam_score);
	g_free(m->spam_threshold);
	if (m->tags != NULL)
		g_ptr_array_unref(m->tags);
	if (m->addresses != NULL)
		g_ptr_array_unref(m->addresses);
	if (m->parts != NULL)
		g_ptr_array_unref(m->parts);
	if (m->arrivals != NULL)
		g_ptr_array_unref(m->arrivals);
	if (m->flags != NULL)
		g_ptr_array_unref(m->flags);
	g_free(m);
	*record = NULL;
}

/* The statements of one record, sent together in one pipeline (one round
 * trip instead of eight: each costs a context switch to the server and
 * back, some milliseconds on a loaded machine; docs/scaling.md), in this
 * order; their results come back in the same order and record_result
 * files each by its tag. */
enum record_part {
	REC_MESSAGE = 1,
	REC_ADDRESSES,
	REC_PARTS,
	REC_VERDICT,
	REC_ARRIVALS,
	REC_ENVELOPE_TO,
	REC_FLAGS,
	REC_TAGS,
};

static const char *const record_sql[] = {
	[REC_MESSAGE] =
		"SELECT encode(sha256, 'hex'), size, message_id, " MV_SQL_ISO_UTC("date") ", date_raw, "
		"from_addr, from_name, subject, parse_status, " MV_SQL_ISO_UTC("archived_at") ", has_attachment, "
		"registration, retention_class, " MV_SQL_ISO_UTC("expires_at") ", deciding_rule, direction, "
		"policy_version FROM message WHERE id = $1",
	[REC_ADDRESSES] =
		"SELECT role, address, name FROM address WHERE message_id = $1 ORDER BY "
		"array_position(ARRAY['from','sender','reply-to','to','cc','bcc',"
		"'envelope-from','envelope-rcpt'], role), ctid",
	[REC_PARTS] =
		"SELECT pt.path, pt.declared_type, pt.detected_type, pt.filename, pt.size, "
		"encode(pt.blob_sha256, 'hex'), pv.virus, pv.virus_name FROM part pt "
		"LEFT JOIN part_verdict pv ON pv.message_id = pt.message_id "
		"AND pv.path = pt.path WHERE pt.message_id = $1 "
		"ORDER BY string_to_array(nullif(pt.path, ''), '.')::int[] NULLS FIRST",
	[REC_VERDICT] =
		"SELECT virus, virus_name, " MV_SQL_ISO_UTC("virus_at") ", spam, spam_reason, "
		MV_SQL_ISO_UTC("spam_at") ", spam_score::text, spam_threshold::text "
		"FROM verdict WHERE message_id = $1",
	[REC_ARRIVALS] =
		"SELECT id, source, source_ref, " MV_SQL_ISO_UTC("received_at") ", "
		"envelope_from, host(client_addr), helo, tls, protocol, imap_mailbox, "
		"imap_uidvalidity, imap_uid, extract(epoch FROM imap_internaldate)::bigint, "
		"encode(journal_report_sha256, 'hex'), encode(journal_original_sha256, 'hex'), "
		"journal_problem, array_to_string(envelope_bcc, ','), "
		"encode(source_sha256, 'hex'), folder_path, item_id, "
		"encode(entry_id, 'hex'), reconstructed "
		"FROM arrival WHERE message_id = $1 ORDER BY id",
	[REC_ENVELOPE_TO] =
		"SELECT a.id, t.rcpt FROM arrival a, unnest(a.envelope_to) "
		"WITH ORDINALITY AS t(rcpt, n) WHERE a.message_id = $1 ORDER BY a.id, t.n",
	[REC_FLAGS] =
		"SELECT f FROM message, unnest(flags) WITH ORDINALITY AS t(f, n) "
		"WHERE id = $1 ORDER BY n",
	[REC_TAGS] =
		"SELECT t FROM message, unnest(tags) WITH ORDINALITY AS x(t, n) "
		"WHERE id = $1 ORDER BY n",
};

typedef struct {
	mv_record *m;
	gboolean found;
	GHashTable *arrivals_by_id; /* gint64* -> mv_record_arrival* of m->arrivals */
} record_reading;

static void record_result(void *context, void *tag, const PGresult *r)
{
	record_reading *rr = context;
	mv_record *m = rr->m;
	switch ((enum record_part)GPOINTER_TO_INT(tag)) {
	case REC_MESSAGE:
		if (PQntuples(r) != 1)
			return;
		rr->found = TRUE;
		m->sha256 = dup_value(r, 0, 0);
		m->size = int_value(r, 0, 1);
		m->message_id = dup_value(r, 0, 2);
		m->date = dup_value(r, 0, 3);
		m->date_raw = dup_value(r, 0, 4);
		m->from = dup_value(r, 0, 5);
		m->from_name = dup_value(r, 0, 6);
		m->subject = dup_value(r, 0, 7);
		m->parse_status = dup_value(r, 0, 8);
		m->archived_at = dup_value(r, 0, 9);
		m->has_attachment = strcmp(PQgetvalue(r, 0, 10), "t") == 0;
		m->registration = dup_value(r, 0, 11);
		m->retention_class = dup_value(r, 0, 12);
		m->expires_at = dup_value(r, 0, 13);
		m->deciding_rule = dup_value(r, 0, 14);
		m->direction = dup_value(r, 0, 15);
		m->policy_version = int_value(r, 0, 16);
		return;
	case REC_ADDRESSES:
		for (int i = 0; i < PQntuples(r); i++) {
			mv_record_address *a = g_new0(mv_record_address, 1);
			a->role = dup_value(r, i, 0);
			a->address = dup_value(r, i, 1);
			a->name = dup_value(r, i, 2);
			g_ptr_array_add(m->addresses, a);
		}
		return;
	case REC_PARTS:
		for (int i = 0; i < PQntuples(r); i++) {
			mv_record_part *p = g_new0(mv_record_part, 1);
			p->path = dup_value(r, i, 0);
			p->declared_type = dup_value(r, i, 1);
			p->detected_type = dup_value(r, i, 2);
			p->filename = dup_value(r, i, 3);
			p->size = int_value(r, i, 4);
			p->blob_sha256 = dup_value(r, i, 5);
			p->virus = dup_value(r, i, 6);
			p->virus_name = dup_value(r, i, 7);
			g_ptr_array_add(m->parts, p);
		}
		return;
	case REC_VERDICT:
		if (PQntuples(r) != 1)
			return;
		m->virus = dup_value(r, 0, 0);
		m->virus_name = dup_value(r, 0, 1);
		m->virus_at = dup_value(r, 0, 2);
		m->spam = dup_value(r, 0, 3);
		m->spam_reason = dup_value(r, 0, 4);
		m->spam_at = dup_value(r, 0, 5);
		m->spam_score = dup_value(r, 0, 6);
		m->spam_threshold = dup_value(r, 0, 7);
		return;
	case REC_ARRIVALS:
		for (int i = 0; i < PQntuples(r); i++) {
			mv_record_arrival *a = g_new0(mv_record_arrival, 1);
			a->id = int_value(r, i, 0);
			a->source = dup_value(r, i, 1);
			a->source_ref = dup_value(r, i, 2);
			a->received_at = dup_value(r, i, 3);
			a->envelope_from = dup_value(r, i, 4);
			a->details = arrival_details(r, i, 5);
			a->envelope_to = g_ptr_array_new_with_free_func(g_free);
			g_ptr_array_add(m->arrivals, a);
			g_hash_table_insert(rr->arrivals_by_id, &a->id, a);
		}
		return;
	case REC_ENVELOPE_TO:
		for (int i = 0; i < PQntuples(r); i++) {
			gint64 aid = int_value(r, i, 0);
			mv_record_arrival *a = g_hash_table_lookup(rr->arrivals_by_id, &aid);
			if (a != NULL)
				g_ptr_array_add(a->envelope_to, dup_value(r, i, 1));
		}
		return;
	case REC_FLAGS:
		for (int i = 0; i < PQntuples(r); i++)
			g_ptr_array_add(m->flags, dup_value(r, i, 0));
		return;
	case REC_TAGS:
		for (int i = 0; i < PQntuples(r); i++)
			g_ptr_array_add(m->tags, dup_value(r, i, 0));
		return;
	}
}

mv_status mv_catalog_record(mv_db *db, gint64 id, mv_record **record_r, char **error_r)
{
	*record_r = NULL;
	char idtext[24];
	g_snprintf(idtext, sizeof idtext, "%" G_GINT64_FORMAT, id);
	const char *v[] = {idtext};
	mv_record *m = g_new0(mv_record, 1);
	m->id = id;
	m->tags = g_ptr_array_new_with_free_func(g_free);
	m->addresses = g_ptr_array_new_with_free_func(address_free);
	m->parts = g_ptr_array_new_with_free_func(part_free);
	m->arrivals = g_ptr_array_new_with_free_func(arrival_free);
	m->flags = g_ptr_array_new_with_free_func(g_free);
	record_reading rr = {.m = m, .arrivals_by_id = g_hash_table_new(g_int64_hash, g_int64_equal)};
	/* Inside a caller's pipeline the statements go one by one. */
	gboolean pipe = !mv_db_in_pipeline(db);
	mv_status st = pipe ? mv_db_pipeline_begin(db, record_result, &rr, error_r) : MV_OK;
	for (int k = REC_MESSAGE; st == MV_OK && k <= REC_TAGS; k++) {
		if (pipe) {
			st = mv_db_pipeline_send(db, NULL, record_sql[k], 1, v, NULL, NULL, GINT_TO_POINTER(k),
			                         error_r);
		} else {
			PGresult *r = NULL;
			st = mv_db_query(db, record_sql[k], 1, v, NULL, NULL, 0, &r, error_r);
			if (st == MV_OK)
				record_result(&rr, GINT_TO_POINTER(k), r);
			PQclear(r);
		}
	}
	if (pipe) {
		/* The pipeline is left whatever happened while sending. */
		char *e = NULL;
		mv_status end = mv_db_pipeline_end(db, st == MV_OK ? error_r : &e);
		g_free(e);
		if (st == MV_OK)
			st = end;
	}
	g_hash_table_destroy(rr.arrivals_by_id);
	if (st == MV_OK && !rr.found)
		st = mv_fail(error_r, MV_ERR_NOT_FOUND, "no message %s in the archive", idtext);
	if (st != MV_OK) {
		mv_record_free(&m);
		return st;
	}
	*record_r = m;
	return MV_OK;
}

/* mv-blind: the keyed blind index of the search vectors (mv-blind.h). */
#include "mv-blind.h"

#include <string.h>

#define INDEX_LABEL "mailvault search index v1"
#define MAX_POS 16383     /* PostgreSQL's largest position */
#define MAX_POSITIONS 256 /* positions PostgreSQL keeps per lexeme */
/* What PostgreSQL allows a tsvector's lexemes and positions (1 MB), less
 * a margin: a blind vector that would need more leaves the rest out. */
#define MAX_VECTOR_DATA (1000 * 1000)

struct mv_blind {
	gint refs;
	int version;
	mv_key *key;
};

mv_status mv_blind_new(const mv_key *data_key, int version, mv_blind **blind_r, char **error_r)
{
	mv_key *k = NULL;
	mv_status st = mv_key_derive(data_key, INDEX_LABEL, &k, error_r);
	if (st != MV_OK)
		return st;
	mv_blind *b = g_new0(mv_blind, 1);
	b->refs = 1;
	b->version = version;
	b->key = k;
	*blind_r = b;
	return MV_OK;
}

mv_blind *mv_blind_ref(mv_blind *blind)
{
	if (blind != NULL)
		g_atomic_int_inc(&blind->refs);
	return blind;
}

void mv_blind_free(mv_blind **blind)
{
	if (blind == NULL || *blind == NULL)
		return;
	if (g_atomic_int_dec_and_test(&(*blind)->refs)) {
		mv_key_free(&(*blind)->key);
		g_free(*blind);
	}
	*blind = NULL;
}

int mv_blind_version(const mv_blind *blind)
{
	return blind->version;
}

static const char B32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

gboolean mv_blind_lexeme_shaped(const char *lexeme, gsize len)
{
	if (len != MV_BLIND_LEXEME_LEN)
		return FALSE;
	for (gsize i = 0; i < len; i++)
		if (!((lexeme[i] >= 'A' && lexeme[i] <= 'Z') || (lexeme[i] >= '2' && lexeme[i] <= '7')))
			return FALSE;
	return TRUE;
}

/* The hash of a lexeme: 60 bits of its HMAC, base32. */
static gboolean hash_lexeme(mv_mac *mac, const char *lex, gsize len,
                            char out[MV_BLIND_LEXEME_LEN + 1])
{
	uint8_t h[32];
	if (!mv_mac_compute(mac, lex, len, h))
		return FALSE;
	guint64 v = 0;
	for (int i = 0; i < 8; i++)
		v = (v << 8) | h[i];
	for (int i = 0; i < MV_BLIND_LEXEME_LEN; i++)
		out[i] = B32[(v >> (59 - 5 * i)) & 31];
	out[MV_BLIND_LEXEME_LEN] = '\0';
	return TRUE;
}

/* The characters written without spaces (mv_cjk_class, schema/021). */
static gboolean is_cjk(gunichar c)
{
	return (c >= 0x2E80 && c <= 0x2FDF) || (c >= 0x3041 && c <= 0x30FF) ||
	       (c >= 0x3105 && c <= 0x312F) || (c >= 0x3131 && c <= 0x318E) ||
	       (c >= 0x31A0 && c <= 0x31FF) || (c >= 0x3400 && c <= 0x4DBF) ||
	       (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0xA960 && c <= 0xA97F) ||
	       (c >= 0xAC00 && c <= 0xD7AF) || (c >= 0xF900 && c <= 0xFAFF) ||
	       (c >= 0xFF66 && c <= 0xFF9F);
}

/* The byte length of lex's first character when it is a CJK one, else 0
 * (lex is valid UTF-8). */
static gsize cjk_first(const char *lex, gsize len)
{
	if (len == 0)
		return 0;
	gunichar c = g_utf8_get_char(lex);
	if (!is_cjk(c))
		return 0;
	gsize n = (gsize)(g_utf8_next_char(lex) - lex);
	return n <= len ? n : 0;
}

static mv_status malformed(char **error_r, const char *what, gsize at)
{
	return mv_fail(error_r, MV_ERR_INPUT, "search index: malformed %s at byte %" G_GSIZE_FORMAT,
	               what, at);
}

/* Read a quoted lexeme at s[*i] == '\''; its bytes into lex. */
static gboolean read_lexeme(const char *s, gsize *i, GString *lex)
{
	gsize k = *i + 1;
	g_string_truncate(lex, 0);
	for (;;) {
		char c = s[k];
		if (c == '\0')
			return FALSE;
		if (c == '\'') {
			if (s[k + 1] == '\'') {
				g_string_append_c(lex, '\'');
				k += 2;
				continue;
			}
			k++;
			break;
		}
		if (c == '\\') {
			if (s[k + 1] == '\0')
				return FALSE;
			k++;
			c = s[k];
		}
		g_string_append_c(lex, c);
		if (lex->len > MV_BLIND_MAX_LEXEME)
			return FALSE;
		k++;
	}
	*i = k;
	return lex->len > 0 && g_utf8_validate(lex->str, (gssize)lex->len, NULL);
}

/* One lexeme of the blind vector being built: its hash and positions. */
typedef struct {
	char hash[MV_BLIND_LEXEME_LEN + 1];
	guint count;  /* positions so far (PostgreSQL keeps 256) */
	GString *pos; /* "1A,5" */
} entry;

static void entry_free(gpointer p)
{
	entry *e = p;
	g_string_free(e->pos, TRUE);
	g_free(e);
}

/* Add the positions pos[0..len) (already checked: "N[W](,N[W])*") of a
 * lexeme whose hash is h. */
static void add_positions(GHashTable *by_hash, GPtrArray *order, const char *h, const char *pos,
                          gsize len)
{
	entry *e = g_hash_table_lookup(by_hash, h);
	if (e == NULL) {
		e = g_new0(entry, 1);
		memcpy(e->hash, h, sizeof e->hash);
		e->pos = g_string_new(NULL);
		g_hash_table_insert(by_hash, e->hash, e);
		g_ptr_array_add(order, e);
	}
	gsize i = 0;
	while (i < len && e->count < MAX_POSITIONS) {
		gsize k = i;
		while (k < len && pos[k] != ',')
			k++;
		if (e->pos->len > 0)
			g_string_append_c(e->pos, ',');
		g_string_append_len(e->pos, pos + i, (gssize)(k - i));
		e->count++;
		i = k + 1;
	}
}

mv_status mv_blind_vector(const mv_blind *blind, const char *tsv, char **out_r, char **error_r)
{
	*out_r = NULL;
	gsize total = strlen(tsv);
	if (total > MV_BLIND_MAX_TEXT)
		return mv_fail(error_r, MV_ERR_LIMIT, "search index: a vector of %" G_GSIZE_FORMAT
		               " bytes (at most %" G_GSIZE_FORMAT ")", total, MV_BLIND_MAX_TEXT);
	mv_mac *mac = NULL;
	mv_status st = mv_mac_new(blind->key, &mac, error_r);
	if (st != MV_OK)
		return st;
	GHashTable *by_hash = g_hash_table_new(g_str_hash, g_str_equal);
	GPtrArray *order = g_ptr_array_new_with_free_func(entry_free);
	GString *lex = g_string_new(NULL), *pos = g_string_new(NULL);
	gsize i = 0;
	while (st == MV_OK) {
		while (tsv[i] == ' ')
			i++;
		if (tsv[i] == '\0')
			break;
		if (tsv[i] != '\'') {
			st = malformed(error_r, "vector (a lexeme not quoted)", i);
			break;
		}
		gsize at = i;
		if (!read_lexeme(tsv, &i, lex)) {
			st = malformed(error_r, "vector lexeme", at);
			break;
		}
		/* positions: :pos[weight](,pos[weight])*, copied without D (the
		 * default weight) */
		g_string_truncate(pos, 0);
		if (tsv[i] == ':') {
			i++;
			for (;;) {
				gsize from = i;
				guint v = 0;
				while (g_ascii_isdigit(tsv[i]) && i - from < 6) {
					v = v * 10 + (guint)(tsv[i] - '0');
					i++;
				}
				if (i == from || g_ascii_isdigit(tsv[i]) || v < 1 || v > MAX_POS) {
					st = malformed(error_r, "vector position", i);
					break;
				}
				if (pos->len > 0)
					g_string_append_c(pos, ',');
				g_string_append_len(pos, tsv + from, (gssize)(i - from));
				if (tsv[i] >= 'A' && tsv[i] <= 'D') {
					if (tsv[i] != 'D')
						g_string_append_c(pos, tsv[i]);
					i++;
				}
				if (tsv[i] != ',')
					break;
				i++;
			}
			if (st != MV_OK)
				break;
		}
		if (tsv[i] != ' ' && tsv[i] != '\0') {
			st = malformed(error_r, "vector (no space after an entry)", i);
			break;
		}
		char h[MV_BLIND_LEXEME_LEN + 1];
		gsize first = cjk_first(lex->str, lex->len);
		for (int pass = 0; pass < 2 && st == MV_OK; pass++) {
			/* pass 1: a CJK bigram's first character, at its positions */
			gsize len = pass == 0 ? lex->len : first;
			if (pass == 1 && (first == 0 || first == lex->len))
				break;
			if (!hash_lexeme(mac, lex->str, len, h)) {
				st = mv_fail(error_r, MV_ERR_INTERNAL, "search index: HMAC failed");
				break;
			}
			add_positions(by_hash, order, h, pos->str, pos->len);
		}
	}
	GString *res = NULL;
	if (st == MV_OK) {
		res = g_string_sized_new(order->len * 20);
		gsize data = 0;
		for (guint k = 0; k < order->len; k++) {
			const entry *e = order->pdata[k];
			/* PostgreSQL's storage of the entry: the lexeme, then (2-byte
			 * aligned) a count and 2 bytes a position */
			data += MV_BLIND_LEXEME_LEN + 1 + (e->count > 0 ? 2 + 2 * (gsize)e->count : 0);
			if (data > MAX_VECTOR_DATA)
				break;
			if (res->len > 0)
				g_string_append_c(res, ' ');
			g_string_append_len(res, e->hash, MV_BLIND_LEXEME_LEN);
			if (e->pos->len > 0) {
				g_string_append_c(res, ':');
				g_string_append_len(res, e->pos->str, (gssize)e->pos->len);
			}
		}
	}
	g_hash_table_unref(by_hash);
	g_ptr_array_free(order, TRUE);
	g_string_free(lex, TRUE);
	g_string_free(pos, TRUE);
	mv_mac_free(&mac);
	if (st == MV_OK)
		*out_r = g_string_free(res, FALSE);
	return st;
}

mv_status mv_blind_query(const mv_blind *blind, const char *tsq, char **out_r, char **error_r)
{
	*out_r = NULL;
	gsize total = strlen(tsq);
	if (total > MV_BLIND_MAX_TEXT)
		return mv_fail(error_r, MV_ERR_LIMIT, "search index: a query of %" G_GSIZE_FORMAT
		               " bytes", total);
	mv_mac *mac = NULL;
	mv_status st = mv_mac_new(blind->key, &mac, error_r);
	if (st != MV_OK)
		return st;
	GString *res = g_string_sized_new(total + 16);
	GString *lex = g_string_new(NULL);
	gsize i = 0;
	while (st == MV_OK && tsq[i] != '\0') {
		char c = tsq[i];
		if (c == ' ' || c == '(' || c == ')' || c == '!' || c == '&' || c == '|') {
			g_string_append_c(res, c);
			i++;
		} else if (c == '<') {
			/* <-> or <N> */
			gsize k = i + 1;
			if (tsq[k] == '-')
				k++;
			else
				while (g_ascii_isdigit(tsq[k]) && k - i <= 6)
					k++;
			if (tsq[k] != '>' || k == i + 1) {
				st = malformed(error_r, "query operator", i);
				break;
			}
			g_string_append_len(res, tsq + i, (gssize)(k + 1 - i));
			i = k + 1;
		} else if (c == '\'') {
			gsize at = i;
			if (!read_lexeme(tsq, &i, lex)) {
				st = malformed(error_r, "query lexeme", at);
				break;
			}
			gboolean prefix = FALSE;
			char weights[5] = "";
			int nw = 0;
			if (tsq[i] == ':') {
				i++;
				while (tsq[i] == '*' || (tsq[i] >= 'A' && tsq[i] <= 'D')) {
					if (tsq[i] == '*')
						prefix = TRUE;
					else if (nw < 4 && strchr(weights, tsq[i]) == NULL)
						weights[nw++] = tsq[i];
					i++;
				}
			}
			gsize len = lex->len;
			if (prefix) {
				gsize first = cjk_first(lex->str, lex->len);
				if (first == 0 || first != lex->len) {
					st = mv_fail(error_r, MV_ERR_QUERY,
					             "a prefix search cannot use the blind search index "
					             "(encryption is on): search whole words");
					break;
				}
			}
			char h[MV_BLIND_LEXEME_LEN + 1];
			if (!hash_lexeme(mac, lex->str, len, h)) {
				st = mv_fail(error_r, MV_ERR_INTERNAL, "search index: HMAC failed");
				break;
			}
			g_string_append(res, h);
			if (nw > 0) {
				g_string_append_c(res, ':');
				g_string_append(res, weights);
			}
		} else {
			st = malformed(error_r, "query", i);
		}
	}
	g_string_free(lex, TRUE);
	mv_mac_free(&mac);
	if (st != MV_OK) {
		g_string_free(res, TRUE);
		return st;
	}
	*out_r = g_string_free(res, FALSE);
	return MV_OK;
}

static GMutex remembered_lock;
static mv_blind *remembered;

void mv_blind_remember(mv_blind *blind)
{
	g_mutex_lock(&remembered_lock);
	if (remembered == NULL)
		remembered = mv_blind_ref(blind);
	g_mutex_unlock(&remembered_lock);
}

mv_blind *mv_blind_remembered(void)
{
	g_mutex_lock(&remembered_lock);
	mv_blind *b = mv_blind_ref(remembered);
	g_mutex_unlock(&remembered_lock);
	return b;
}

/* mv-safename: sanitising untrusted file names.
 *
 * SECURITY: input comes from received mail (attachment names, RFC 2231 or
 * RFC 2047 decoded, any bytes); see mv-safename.h for what "safe" means. */
#include "mv-safename.h"

#include <string.h>

#include "mv-message.h"

#define MAX_EXT_BYTES 16

struct mv_safename_set {
	GHashTable *taken; /* case-folded name -> NULL */
	gsize max_bytes;
};

static gboolean forbidden_char(gunichar c)
{
	if (c < 0x20 || c == 0x7f || (c >= 0x80 && c <= 0x9f))
		return TRUE;
	if (c < 0x80)
		return strchr("/\\:*?\"<>|", (int)c) != NULL;
	switch (g_unichar_type(c)) {
	case G_UNICODE_CONTROL:
	case G_UNICODE_FORMAT:        /* bidi overrides, zero-width characters */
	case G_UNICODE_LINE_SEPARATOR:
	case G_UNICODE_PARAGRAPH_SEPARATOR:
	case G_UNICODE_SURROGATE:
	case G_UNICODE_UNASSIGNED:
	case G_UNICODE_PRIVATE_USE:
		return TRUE;
	default:
		/* Look-alikes of the path separators. */
		return c == 0x2215 || c == 0x2044 || c == 0xff0f || c == 0xff3c || c == 0x29f8 ||
		       c == 0x29f9;
	}
}

/* Is stem (the part before the first dot) a reserved Windows device? */
static gboolean reserved_device(const char *name)
{
	static const char *const names[] = {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"};
	gsize stem = strcspn(name, ".");
	/* Windows also ignores trailing spaces before the extension. */
	while (stem > 0 && name[stem - 1] == ' ')
		stem--;
	for (gsize i = 0; i < G_N_ELEMENTS(names); i++)
		if (stem == strlen(names[i]) && g_ascii_strncasecmp(name, names[i], stem) == 0)
			return TRUE;
	if (stem == 4 && (g_ascii_strncasecmp(name, "COM", 3) == 0 ||
	                  g_ascii_strncasecmp(name, "LPT", 3) == 0) &&
	    name[3] >= '0' && name[3] <= '9')
		return TRUE;
	/* COM¹ COM² COM³ LPT¹ ... (superscript digits, 2 bytes in UTF-8) */
	if (stem == 5 && (g_ascii_strncasecmp(name, "COM", 3) == 0 ||
	                  g_ascii_strncasecmp(name, "LPT", 3) == 0) &&
	    (guchar)name[3] == 0xc2 &&
	    ((guchar)name[4] == 0xb9 || (guchar)name[4] == 0xb2 || (guchar)name[4] == 0xb3))
		return TRUE;
	return FALSE;
}

/* Cut s to at most max bytes on a character boundary. */
static void utf8_truncate(GString *s, gsize max)
{
	if (s->len <= max)
		return;
	const char *end = g_utf8_find_prev_char(s->str, s->str + max + 1);
	g_string_truncate(s, end != NULL ? (gsize)(end - s->str) : 0);
}

static void strip_trailing(GString *s)
{
	while (s->len > 0 && (s->str[s->len - 1] == '.' || s->str[s->len - 1] == ' '))
		g_string_truncate(s, s->len - 1);
}

/* Shorten s to max bytes, keeping a short extension. */
static void shorten(GString *s, gsize max)
{
	if (s->len <= max)
		return;
	const char *dot = strrchr(s->str, '.');
	gsize ext_len = dot != NULL ? s->len - (gsize)(dot - s->str) : 0;
	if (dot == NULL || dot == s->str || ext_len > MAX_EXT_BYTES || ext_len + 1 > max / 2) {
		utf8_truncate(s, max);
		strip_trailing(s);
		return;
	}
	char *ext = g_strdup(dot);
	g_string_truncate(s, (gsize)(dot - s->str));
	utf8_truncate(s, max - ext_len);
	strip_trailing(s);
	g_string_append(s, ext);
	g_free(ext);
}

char *mv_safename(const char *name, gssize len, gsize max_bytes, const char *fallback)
{
	if (max_bytes < 16)
		max_bytes = 16;
	if (name == NULL)
		return g_strdup(fallback);
	char *clean = mv_utf8_clean(name, len);
	char *nfc = g_utf8_normalize(clean, -1, G_NORMALIZE_NFC);
	g_free(clean);
	GString *s = g_string_sized_new(64);
	for (const char *p = nfc != NULL ? nfc : ""; *p != '\0'; p = g_utf8_next_char(p)) {
		gunichar c = g_utf8_get_char(p);
		if (forbidden_char(c))
			g_string_append_c(s, '_');
		else
			g_string_append_unichar(s, c);
	}
	g_free(nfc);
	/* Leading spaces go; a leading dot would hide the file (and "." and
	 * ".." must never be a name). */
	gsize lead = 0;
	while (lead < s->len && s->str[lead] == ' ')
		lead++;
	g_string_erase(s, 0, (gssize)lead);
	strip_trailing(s);
	for (gsize i = 0; i < s->len && s->str[i] == '.'; i++)
		s->str[i] = '_';
	if (s->len == 0) {
		g_string_free(s, TRUE);
		return g_strdup(fallback);
	}
	if (reserved_device(s->str))
		g_string_prepend_c(s, '_');
	shorten(s, max_bytes);
	if (s->len == 0) {
		g_string_free(s, TRUE);
		return g_strdup(fallback);
	}
	return g_string_free(s, FALSE);
}

gboolean mv_safename_is_safe(const char *name, gsize max_bytes)
{
	if (name == NULL || *name == '\0' || strlen(name) > max_bytes)
		return FALSE;
	char *again = mv_safename(name, -1, max_bytes, "");
	gboolean same = strcmp(again, name) == 0;
	g_free(again);
	return same;
}

mv_safename_set *mv_safename_set_new(gsize max_bytes)
{
	mv_safename_set *set = g_new0(mv_safename_set, 1);
	set->taken = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	set->max_bytes = max_bytes < 16 ? 16 : max_bytes;
	return set;
}

void mv_safename_set_free(mv_safename_set **set)
{
	if (set == NULL || *set == NULL)
		return;
	g_hash_table_destroy((*set)->taken);
	g_free(*set);
	*set = NULL;
}

/* Key for case-insensitive comparison. */
static char *fold(const char *name)
{
	char *f = g_utf8_casefold(name, -1);
	char *n = g_utf8_normalize(f, -1, G_NORMALIZE_NFC);
	g_free(f);
	return n != NULL ? n : g_strdup(name);
}

static gboolean try_take(mv_safename_set *set, const char *name)
{
	char *key = fold(name);
	if (g_hash_table_contains(set->taken, key)) {
		g_free(key);
		return FALSE;
	}
	g_hash_table_add(set->taken, key);
	return TRUE;
}

char *mv_safename_take(mv_safename_set *set, const char *safe_name)
{
	if (try_take(set, safe_name))
		return g_strdup(safe_name);
	const char *dot = strrchr(safe_name, '.');
	gsize ext_len = dot != NULL && dot != safe_name ? strlen(dot) : 0;
	if (ext_len > MAX_EXT_BYTES)
		ext_len = 0;
	for (guint n = 2;; n++) {
		char suffix[32];
		g_snprintf(suffix, sizeof suffix, " (%u)", n);
		GString *s = g_string_new_len(safe_name, (gssize)(strlen(safe_name) - ext_len));
		gsize room = set->max_bytes - strlen(suffix) - ext_len;
		utf8_truncate(s, room);
		strip_trailing(s);
		g_string_append(s, suffix);
		g_string_append(s, safe_name + strlen(safe_name) - ext_len);
		if (try_take(set, s->str))
			return g_string_free(s, FALSE);
		g_string_free(s, TRUE);
	}
}

/* mv-message: parse one message with GMime into archive metadata.
 *
 * SECURITY: parses untrusted network and file input.  GMime does the MIME
 * work; this file bounds what is kept (depth, part count, text size) and
 * never trusts offsets it is handed without checking them against the raw
 * buffer.  libmagic and libxml2 see only decoded, bounded part content. */
#include "mv-message.h"
#include "mv-lang.h"

#include <gmime/gmime.h>
#include <libxml/HTMLparser.h>
#include <libxml/tree.h>
#include <magic.h>
#include <string.h>

#define MAGIC_SNIFF_BYTES (64 * 1024)
#define MAX_ADDRESSES 10000

static magic_t magic_cookie;
/* libmagic's soft (database) tests compile their regular expressions on
 * every call, which made content sniffing half of ingest's CPU.  Parts that
 * declare a text type are first checked with the built-in tests only
 * (text, encoding, JSON, CSV); only when those do not find text is the
 * full database consulted, so a binary file declared as text is still
 * recognised. */
static magic_t magic_text_cookie;
static GMutex magic_lock;
static gboolean parser_ready;

void mv_parse_limits_default(mv_parse_limits *limits)
{
	limits->max_depth = 64;
	limits->max_parts = 5000;
	limits->max_text_bytes = 256 * 1024;
	limits->min_splice_bytes = 2048;
	limits->min_decoded_bytes = MV_RECIPE_MIN_BYTES;
	limits->no_type_detection = FALSE;
}

mv_status mv_parser_init(char **error_r)
{
	if (parser_ready)
		return MV_OK;
	g_mime_init();
	xmlInitParser();
	magic_cookie = magic_open(MAGIC_MIME_TYPE | MAGIC_NO_CHECK_COMPRESS);
	if (magic_cookie == NULL)
		return mv_fail(error_r, MV_ERR_CONFIG, "libmagic: cannot open");
	if (magic_load(magic_cookie, NULL) != 0) {
		mv_status st = mv_fail(error_r, MV_ERR_CONFIG, "libmagic: cannot load the database: %s",
		                       magic_error(magic_cookie));
		magic_close(magic_cookie);
		magic_cookie = NULL;
		return st;
	}
	magic_text_cookie = magic_open(MAGIC_MIME_TYPE | MAGIC_NO_CHECK_COMPRESS | MAGIC_NO_CHECK_SOFT);
	if (magic_text_cookie == NULL || magic_load(magic_text_cookie, NULL) != 0) {
		mv_status st = mv_fail(error_r, MV_ERR_CONFIG, "libmagic: cannot load the database");
		if (magic_text_cookie != NULL)
			magic_close(magic_text_cookie);
		magic_close(magic_cookie);
		magic_cookie = magic_text_cookie = NULL;
		return st;
	}
	parser_ready = TRUE;
	return MV_OK;
}

void mv_parser_shutdown(void)
{
	if (!parser_ready)
		return;
	magic_close(magic_cookie);
	magic_close(magic_text_cookie);
	magic_cookie = magic_text_cookie = NULL;
	g_mime_shutdown();
	xmlCleanupParser();
	parser_ready = FALSE;
}

/* Append s, stopping at the limit on a character boundary. */
static void text_append(GString *out, const char *s, gsize len, gsize max_bytes)
{
	if (out->len >= max_bytes)
		return;
	gsize room = max_bytes - out->len;
	if (len > room) {
		const char *end = g_utf8_find_prev_char(s, s + room + 1);
		len = end != NULL ? (gsize)(end - s) : 0;
	}
	g_string_append_len(out, s, (gssize)len);
}

static gboolean html_is_block(const xmlChar *name)
{
	static const char *const blocks[] = {"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4",
	                                     "h5", "h6", "table", "ul", "ol", "blockquote",
	                                     "pre", "hr", "title", "td", "th", NULL};
	for (int i = 0; blocks[i] != NULL; i++)
		if (xmlStrcasecmp(name, (const xmlChar *)blocks[i]) == 0)
			return TRUE;
	return FALSE;
}

void mv_html_to_text(const char *html, gsize len, GString *out, gsize max_bytes)
{
	if (len > G_MAXINT)
		len = G_MAXINT;
	htmlDocPtr doc = htmlReadMemory(html, (int)len, NULL, "UTF-8",
	                                HTML_PARSE_RECOVER | HTML_PARSE_NOERROR |
	                                HTML_PARSE_NOWARNING | HTML_PARSE_NONET);
	if (doc == NULL)
		return;
	/* Iterative walk: the tree may be deep, the stack is not. */
	xmlNodePtr node = xmlDocGetRootElement(doc);
	while (node != NULL && out->len < max_bytes) {
		gboolean descend = TRUE;
		if (node->type == XML_ELEMENT_NODE) {
			if (xmlStrcasecmp(node->name, (const xmlChar *)"script") == 0 ||
			    xmlStrcasecmp(node->name, (const xmlChar *)"style") == 0)
				descend = FALSE;
			else if (html_is_block(node->name))
				text_append(out, "\n", 1, max_bytes);
		} else if (node->type == XML_TEXT_NODE || node->type == XML_CDATA_SECTION_NODE) {
			if (node->content != NULL)
				text_append(out, (const char *)node->content,
				            strlen((const char *)node->content), max_bytes);
			descend = FALSE;
		}
		if (descend && node->children != NULL) {
			node = node->children;
			continue;
		}
		while (node != NULL && node->next == NULL) {
			node = node->parent;
			if (node == NULL || node->type == XML_DOCUMENT_NODE ||
			    node->type == XML_HTML_DOCUMENT_NODE)
				node = NULL;
			else if (node->type == XML_ELEMENT_NODE && html_is_block(node->name))
				text_append(out, "\n", 1, max_bytes);
		}
		if (node != NULL)
			node = node->next;
	}
	xmlFreeDoc(doc);
}

static void header_free(gpointer p);

static void add_flag(mv_message *msg, const char *flag)
{
	for (guint i = 0; i < msg->flags->len; i++)
		if (strcmp(msg->flags->pdata[i], flag) == 0)
			return;
	g_ptr_array_add(msg->flags, g_strdup(flag));
}

static void address_free(gpointer p)
{
	mv_address *a = p;
	g_free(a->role);
	g_free(a->address);
	g_free(a->name);
	g_free(a);
}

static void part_free(gpointer p)
{
	mv_part *part = p;
	g_free(part->path);
	g_free(part->declared_type);
	g_free(part->detected_type);
	g_free(part->filename);
	g_free(part->charset);
	g_free(part->virus_name);
	g_free(part->recipe);
	if (part->decoded != NULL)
		g_bytes_unref(part->decoded);
	if (part->content != NULL)
		g_bytes_unref(part->content);
	g_free(part);
}

static void add_address_list(mv_message *msg, const char *role, InternetAddressList *list,
                             guint depth)
{
	if (list == NULL || depth > 4)
		return;
	int n = internet_address_list_length(list);
	for (int i = 0; i < n && msg->addresses->len < MAX_ADDRESSES; i++) {
		InternetAddress *ia = internet_address_list_get_address(list, i);
		if (INTERNET_ADDRESS_IS_GROUP(ia)) {
			add_address_list(msg, role,
			                 internet_address_group_get_members(INTERNET_ADDRESS_GROUP(ia)),
			                 depth + 1);
			continue;
		}
		if (!INTERNET_ADDRESS_IS_MAILBOX(ia))
			continue;
		const char *addr = internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(ia));
		const char *name = internet_address_get_name(ia);
		mv_address *a = g_new0(mv_address, 1);
		a->role = g_strdup(role);
		char *clean = mv_utf8_clean(addr != NULL ? addr : "", -1);
		a->address = g_utf8_strdown(g_strstrip(clean), -1);
		g_free(clean);
		a->name = name != NULL && *name != '\0' ? mv_utf8_clean(name, -1) : NULL;
		g_ptr_array_add(msg->addresses, a);
	}
}

typedef struct {
	mv_message *msg;
	const mv_parse_limits *limits;
	const guint8 *raw;
	gsize raw_len;
	gsize last_splice_end;
	GString *body;
	guint in_message;    /* attached messages around the part being walked */
} walk_ctx;

static char *child_path(const char *path, int index)
{
	return *path == '\0' ? g_strdup_printf("%d", index) : g_strdup_printf("%s.%d", path, index);
}

static char *declared_type_of(GMimeObject *obj)
{
	GMimeContentType *ct = g_mime_object_get_content_type(obj);
	if (ct == NULL)
		return g_strdup("text/plain");
	char *t = g_mime_content_type_get_mime_type(ct);
	char *clean = mv_utf8_clean(t, -1);
	char *lower = g_ascii_strdown(clean, -1);
	g_free(t);
	g_free(clean);
	return lower;
}

static char *detect_type(const guint8 *data, gsize len, gboolean declared_text)
{
	if (len == 0)
		return g_strdup("application/x-empty");
	g_mutex_lock(&magic_lock);
	const char *t = NULL;
	if (declared_text) {
		t = magic_buffer(magic_text_cookie, data, MIN(len, MAGIC_SNIFF_BYTES));
		if (t != NULL && !g_str_has_prefix(t, "text/"))
			t = NULL;
	}
	if (t == NULL)
		t = magic_buffer(magic_cookie, data, MIN(len, MAGIC_SNIFF_BYTES));
	char *res = g_strdup(t != NULL ? t : "application/octet-stream");
	g_mutex_unlock(&magic_lock);
	return res;
}

/* A spliced leaf's blob: its decoded content with a recipe when one
 * rebuilds the encoded bytes exactly (mv-recipe.h: base64 at any line
 * length or line ends, quoted-printable), else its encoded bytes. */
static void splice_leaf(walk_ctx *c, GMimeDataWrapper *content, GByteArray *bytes, mv_part *rec)
{
	const guint8 *enc = c->raw + rec->raw_offset;
	mv_recipe_encoding how = MV_RECIPE_NONE;
	switch (g_mime_data_wrapper_get_encoding(content)) {
	case GMIME_CONTENT_ENCODING_BASE64:
		how = MV_RECIPE_BASE64;
		break;
	case GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE:
		how = MV_RECIPE_QP;
		break;
	default:
		break;
	}
	mv_recipe recipe;
	if (how != MV_RECIPE_NONE && c->limits->min_decoded_bytes > 0 &&
	    bytes->len >= c->limits->min_decoded_bytes &&
	    mv_recipe_find(how, enc, rec->raw_len, bytes->data, bytes->len, &recipe)) {
		rec->recipe = g_memdup2(&recipe, sizeof recipe);
		rec->decoded = rec->content != NULL ? g_bytes_ref(rec->content)
		                                    : g_bytes_new(bytes->data, bytes->len);
		mv_sha256(bytes->data, bytes->len, rec->blob_sha256);
		return;
	}
	mv_sha256(enc, rec->raw_len, rec->blob_sha256);
}

static void walk_leaf(walk_ctx *c, GMimePart *part, mv_part *rec)
{
	GMimeObject *obj = GMIME_OBJECT(part);
	const char *fn = g_mime_part_get_filename(part);
	rec->filename = fn != NULL ? mv_utf8_clean(fn, -1) : NULL;
	const char *cs = g_mime_object_get_content_type_parameter(obj, "charset");
	rec->charset = cs != NULL ? mv_utf8_clean(cs, -1) : NULL;
	rec->in_message = c->in_message > 0;
	const char *disp = g_mime_object_get_disposition(obj);
	gboolean is_text = g_str_has_prefix(rec->declared_type, "text/");
	/* An attachment is what the sender attached: declared so, or carrying
	 * a file name without being marked inline (signature logos are not). */
	gboolean inline_disp = disp != NULL && g_ascii_strcasecmp(disp, "inline") == 0;
	rec->is_attachment = (disp != NULL && g_ascii_strcasecmp(disp, "attachment") == 0) ||
	                     (rec->filename != NULL && !inline_disp);
	if (rec->is_attachment)
		c->msg->has_attachment = TRUE;

	GMimeDataWrapper *content = g_mime_part_get_content(part);
	if (content == NULL) {
		rec->detected_type = g_strdup("application/x-empty");
		return;
	}
	/* Where the encoded content sits in the raw bytes (the parser keeps
	 * substreams of the original when persist_stream is on). */
	GMimeStream *src = g_mime_data_wrapper_get_stream(content);
	if (src != NULL && src->bound_start >= 0 && src->bound_end >= src->bound_start &&
	    (gsize)src->bound_end <= c->raw_len) {
		rec->raw_offset = (gsize)src->bound_start;
		rec->raw_len = (gsize)(src->bound_end - src->bound_start);
	}

	GMimeStream *decoded = g_mime_stream_mem_new();
	g_mime_data_wrapper_write_to_stream(content, decoded);
	GByteArray *bytes = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(decoded));
	rec->size = bytes->len;
	if (!c->limits->no_type_detection)
		rec->detected_type = detect_type(bytes->data, bytes->len, is_text);
	gboolean body_text = is_text && (rec->filename == NULL || !rec->is_attachment);
	rec->body_text = body_text;
	if (c->limits->keep_attachment_content &&
	    (rec->is_attachment || rec->in_message || !body_text))
		rec->content = g_bytes_new(bytes->data, bytes->len);

	if (body_text && c->body->len < c->limits->max_text_bytes) {
		char *text = GMIME_IS_TEXT_PART(part) ? g_mime_text_part_get_text(GMIME_TEXT_PART(part))
		                                      : NULL;
		char *clean = mv_utf8_clean(text != NULL ? text : (const char *)bytes->data,
		                            text != NULL ? -1 : (gssize)bytes->len);
		g_free(text);
		if (strcmp(rec->declared_type, "text/html") == 0)
			mv_html_to_text(clean, strlen(clean), c->body, c->limits->max_text_bytes);
		else
			text_append(c->body, clean, strlen(clean), c->limits->max_text_bytes);
		text_append(c->body, "\n", 1, c->limits->max_text_bytes);
		g_free(clean);
	}

	if (!body_text && rec->raw_len >= c->limits->min_splice_bytes &&
	    rec->raw_offset >= c->last_splice_end) {
		rec->spliced = TRUE;
		c->last_splice_end = rec->raw_offset + rec->raw_len;
		splice_leaf(c, content, bytes, rec);
	}
	g_object_unref(decoded);
}

static void walk(walk_ctx *c, GMimeObject *obj, const char *path, guint depth)
{
	mv_message *msg = c->msg;
	if (depth > c->limits->max_depth) {
		add_flag(msg, "mime-depth-limit");
		return;
	}
	if (msg->parts->len >= c->limits->max_parts) {
		add_flag(msg, "mime-part-limit");
		return;
	}
	mv_part *rec = g_new0(mv_part, 1);
	rec->path = g_strdup(path);
	rec->declared_type = declared_type_of(obj);
	g_ptr_array_add(msg->parts, rec);

	if (GMIME_IS_MULTIPART(obj)) {
		GMimeMultipart *mp = GMIME_MULTIPART(obj);
		int n = g_mime_multipart_get_count(mp);
		for (int i = 0; i < n; i++) {
			char *p = child_path(path, i + 1);
			walk(c, g_mime_multipart_get_part(mp, i), p, depth + 1);
			g_free(p);
			if (msg->parts->len >= c->limits->max_parts && i + 1 < n) {
				add_flag(msg, "mime-part-limit");
				break;
			}
		}
	} else if (GMIME_IS_MESSAGE_PART(obj)) {
		GMimeMessage *inner = g_mime_message_part_get_message(GMIME_MESSAGE_PART(obj));
		if (inner != NULL) {
			const char *subj = g_mime_message_get_subject(inner);
			if (subj != NULL) {
				char *clean = mv_utf8_clean(subj, -1);
				text_append(c->body, clean, strlen(clean), c->limits->max_text_bytes);
				text_append(c->body, "\n", 1, c->limits->max_text_bytes);
				g_free(clean);
			}
			GMimeObject *body = g_mime_message_get_mime_part(inner);
			if (body != NULL) {
				char *p = child_path(path, 1);
				c->in_message++;
				walk(c, body, p, depth + 1);
				c->in_message--;
				g_free(p);
			}
		}
		msg->has_attachment = TRUE;
		rec->is_attachment = TRUE;
	} else if (GMIME_IS_PART(obj)) {
		walk_leaf(c, GMIME_PART(obj), rec);
	}
}

/* ---- the pre-scan: bounds before GMime spends memory ----
 *
 * GMime builds the whole MIME tree before any limit of ours applies: a
 * 10 MB message of a million empty parts cost 1.5 GB, and a chain of
 * nested message/rfc822 parts recurses once per level.  One linear pass
 * over the bytes first counts what would become parts (delimiter lines of
 * the boundaries the message declares, and Content-Type fields: every
 * nested message and every multipart has one) and the fields of the
 * top-level header block.  Over the limits, GMime sees only the top-level
 * header block (too many parts) or nothing (too many header fields), and
 * the message is stored raw and flagged.  Its cost is that of the bytes:
 * the boundary set and a line at a time. */

#define PRESCAN_MAX_HEADER_LINES 10000
/* Parts GMime may build: twice max_parts (delimiters count opening and
 * closing lines), at least this many. */
#define PRESCAN_MIN_PART_BOUND 10000
#define PRESCAN_MAX_BOUNDARIES 10000

typedef struct {
	gsize header_end;     /* bytes of the top-level header block and its empty line */
	gsize header_lines;   /* lines in it */
	gsize parts;          /* estimated parts: max(delimiters, content-type fields) */
} prescan_result;

static gboolean line_starts_ci(const guint8 *line, gsize len, const char *prefix)
{
	gsize n = strlen(prefix);
	return len >= n && g_ascii_strncasecmp((const char *)line, prefix, n) == 0;
}

/* Add the boundary parameter values of line (an unfolded piece of a field)
 * to set. */
static void note_boundaries(const guint8 *line, gsize len, GHashTable *set)
{
	static const char key[] = "boundary=";
	for (gsize i = 0; i + sizeof key - 1 < len; i++) {
		if (g_ascii_strncasecmp((const char *)line + i, key, sizeof key - 1) != 0)
			continue;
		gsize j = i + sizeof key - 1, start, end;
		if (j < len && line[j] == '"') {
			start = ++j;
			while (j < len && line[j] != '"' && line[j] != '\r' && line[j] != '\n')
				j++;
		} else {
			start = j;
			while (j < len && line[j] != ';' && line[j] != ' ' && line[j] != '\t' &&
			       line[j] != '\r' && line[j] != '\n')
				j++;
		}
		end = j;
		if (end > start && end - start <= 200 && g_hash_table_size(set) < PRESCAN_MAX_BOUNDARIES) {
			/* Already there: the set keeps one copy. */
			g_hash_table_add(set, g_bytes_new(line + start, end - start));
		}
		i = j;
	}
}

/* Is line "--BOUNDARY" or "--BOUNDARY--" (white space after) for a
 * boundary of set? */
static gboolean is_delimiter(const guint8 *line, gsize len, GHashTable *set)
{
	if (len < 3 || line[0] != '-' || line[1] != '-' || g_hash_table_size(set) == 0)
		return FALSE;
	gsize end = len;
	while (end > 2 && (line[end - 1] == '\n' || line[end - 1] == '\r' || line[end - 1] == ' ' ||
	                   line[end - 1] == '\t'))
		end--;
	GBytes *key = g_bytes_new_static(line + 2, end - 2);
	gboolean hit = g_hash_table_contains(set, key);
	g_bytes_unref(key);
	if (!hit && end - 2 >= 2 && line[end - 1] == '-' && line[end - 2] == '-') {
		key = g_bytes_new_static(line + 2, end - 4);
		hit = g_hash_table_contains(set, key);
		g_bytes_unref(key);
	}
	return hit;
}

static void prescan(const guint8 *data, gsize len, prescan_result *r)
{
	*r = (prescan_result){.header_end = len};
	GHashTable *boundaries = g_hash_table_new_full(g_bytes_hash, g_bytes_equal,
	                                               (GDestroyNotify)g_bytes_unref, NULL);
	gsize delimiters = 0, content_types = 0;
	gboolean in_top_header = TRUE;
	const guint8 *end = data + len;
	for (const guint8 *line = data; line < end;) {
		const guint8 *nl = memchr(line, '\n', (gsize)(end - line));
		gsize l = nl != NULL ? (gsize)(nl - line) + 1 : (gsize)(end - line);
		gboolean empty = (l == 1 && line[0] == '\n') || (l == 2 && line[0] == '\r' && line[1] == '\n');
		if (in_top_header) {
			if (empty) {
				in_top_header = FALSE;
				r->header_end = (gsize)(line - data) + l;
			} else {
				r->header_lines++;
			}
		}
		if (line_starts_ci(line, l, "content-type:"))
			content_types++;
		if (memchr(line, '=', l) != NULL)
			note_boundaries(line, l, boundaries);
		if (line[0] == '-' && is_delimiter(line, l, boundaries))
			delimiters++;
		line += l;
	}
	r->parts = MAX(delimiters, content_types);
	g_hash_table_destroy(boundaries);
}

static void part_text_free(gpointer p)
{
	mv_part_text *t = p;
	g_free(t->path);
	g_free(t->doc);
	g_free(t->problem);
	g_free(t->tsv);
	if (t->ztext != NULL)
		g_bytes_unref(t->ztext);
	g_free(t);
}

static mv_message *message_new(GBytes *raw)
{
	mv_message *msg = g_new0(mv_message, 1);
	msg->raw = g_bytes_ref(raw);
	msg->addresses = g_ptr_array_new_with_free_func(address_free);
	msg->parts = g_ptr_array_new_with_free_func(part_free);
	msg->part_texts = g_ptr_array_new_with_free_func(part_text_free);
	msg->flags = g_ptr_array_new_with_free_func(g_free);
	msg->text = g_string_new(NULL);
	msg->body = g_string_new(NULL);
	msg->headers = g_ptr_array_new_with_free_func(header_free);
	msg->parse_status = "ok";
	return msg;
}

#define MAX_HEADERS 1000
#define MAX_HEADER_VALUE (64 * 1024)

static void header_free(gpointer p)
{
	mv_header *h = p;
	g_free(h->name);
	g_free(h->value);
	g_free(h);
}

static void fill_headers(mv_message *msg, GMimeMessage *m, GString *doc, gsize max_text)
{
	GMimeObject *obj = GMIME_OBJECT(m);
	GMimeHeaderList *hl = g_mime_object_get_header_list(obj);
	int nh = hl != NULL ? g_mime_header_list_get_count(hl) : 0;
	for (int i = 0; i < nh && msg->headers->len < MAX_HEADERS; i++) {
		GMimeHeader *hdr = g_mime_header_list_get_header_at(hl, i);
		const char *name = g_mime_header_get_name(hdr);
		const char *value = g_mime_header_get_value(hdr);
		mv_header *h = g_new0(mv_header, 1);
		h->name = mv_utf8_clean(name != NULL ? name : "", -1);
		gsize vlen = value != NULL ? strlen(value) : 0;
		h->value = mv_utf8_clean(value != NULL ? value : "", (gssize)MIN(vlen, MAX_HEADER_VALUE));
		g_ptr_array_add(msg->headers, h);
	}
	const char *mid = g_mime_message_get_message_id(m);
	msg->message_id = mid != NULL ? mv_utf8_clean(mid, -1) : NULL;
	const char *date = g_mime_object_get_header(obj, "Date");
	msg->date_raw = date != NULL ? mv_utf8_clean(date, -1) : NULL;
	GDateTime *dt = g_mime_message_get_date(m);
	if (dt != NULL) {
		msg->date = g_date_time_to_unix(dt);
		msg->has_date = TRUE;
	} else if (date != NULL) {
		add_flag(msg, "bad-date");
	}
	const char *subj = g_mime_message_get_subject(m);
	msg->subject = subj != NULL ? mv_utf8_clean(subj, -1) : NULL;

	static const struct {
		GMimeAddressType type;
		const char *role;
	} roles[] = {
		{GMIME_ADDRESS_TYPE_FROM, "from"},       {GMIME_ADDRESS_TYPE_SENDER, "sender"},
		{GMIME_ADDRESS_TYPE_REPLY_TO, "reply-to"}, {GMIME_ADDRESS_TYPE_TO, "to"},
		{GMIME_ADDRESS_TYPE_CC, "cc"},           {GMIME_ADDRESS_TYPE_BCC, "bcc"},
	};
	for (gsize i = 0; i < G_N_ELEMENTS(roles); i++)
		add_address_list(msg, roles[i].role, g_mime_message_get_addresses(m, roles[i].type), 0);
	for (guint i = 0; i < msg->addresses->len; i++) {
		mv_address *a = msg->addresses->pdata[i];
		if (msg->from_addr == NULL && strcmp(a->role, "from") == 0) {
			msg->from_addr = g_strdup(a->address);
			msg->from_name = g_strdup(a->name);
		}
		if (a->name != NULL) {
			text_append(doc, a->name, strlen(a->name), max_text);
			text_append(doc, " ", 1, max_text);
		}
		text_append(doc, a->address, strlen(a->address), max_text);
		text_append(doc, "\n", 1, max_text);
	}
	if (msg->subject != NULL) {
		text_append(doc, msg->subject, strlen(msg->subject), max_text);
		text_append(doc, "\n", 1, max_text);
	}
}

/* Does the first line look like "Name: value" (RFC 5322 field name)? */
static gboolean starts_with_header(const guint8 *data, gsize len)
{
	gsize i = 0;
	while (i < len && data[i] >= 33 && data[i] <= 126 && data[i] != ':')
		i++;
	gsize name_len = i;
	while (i < len && (data[i] == ' ' || data[i] == '\t'))
		i++; /* obsolete syntax allows space before the colon */
	return name_len > 0 && i < len && data[i] == ':';
}

/* The language of the subject and the body text (not the addresses and
 * names, which belong to no language); bounded by MV_LANG_MAX_BYTES. */
static const char *detect_lang(const mv_message *msg)
{
	GString *t = g_string_sized_new(MV_LANG_MAX_BYTES);
	if (msg->subject != NULL) {
		g_string_append(t, msg->subject);
		g_string_append_c(t, '\n');
	}
	if (t->len < MV_LANG_MAX_BYTES)
		g_string_append_len(t, msg->body->str,
		                    (gssize)MIN(msg->body->len, MV_LANG_MAX_BYTES - t->len));
	const char *lang = mv_lang_detect(t->str, t->len);
	g_string_free(t, TRUE);
	return lang;
}

mv_status mv_message_parse(GBytes *raw, const mv_parse_limits *limits, mv_message **msg_r,
                           char **error_r)
{
	(void)error_r;
	gsize len = 0;
	const guint8 *data = g_bytes_get_data(raw, &len);
	mv_message *msg = message_new(raw);
	mv_sha256(data != NULL ? data : (const guint8 *)"", len, msg->sha256);

	if (data != NULL && memchr(data, '\0', len) != NULL)
		add_flag(msg, "nul-bytes");

	/* Bounds before GMime: over them, GMime parses only the top-level
	 * header block, or nothing. */
	prescan_result pre;
	prescan(data != NULL ? data : (const guint8 *)"", len, &pre);
	gsize parse_len = len;
	gboolean body_skipped = FALSE;
	if (pre.header_lines > PRESCAN_MAX_HEADER_LINES) {
		char *why = g_strdup_printf("header-limit: more than %d header lines, not parsed",
		                            PRESCAN_MAX_HEADER_LINES);
		mv_message_free(&msg);
		msg = mv_message_new_unparsed(raw, why);
		g_free(why);
		char *clean = mv_utf8_clean((const char *)(data != NULL ? data : (const guint8 *)""),
		                            (gssize)MIN(len, limits->max_text_bytes));
		text_append(msg->text, clean, strlen(clean), limits->max_text_bytes);
		g_free(clean);
		*msg_r = msg;
		return MV_OK;
	}
	gsize part_bound = MAX(2 * (gsize)limits->max_parts, PRESCAN_MIN_PART_BOUND);
	if (pre.parts > part_bound) {
		char *why = g_strdup_printf("mime-part-limit: about %zu parts (over %zu), body not parsed",
		                            pre.parts, part_bound);
		add_flag(msg, why);
		g_free(why);
		parse_len = pre.header_end;
		body_skipped = TRUE;
	}

	GMimeStream *stream = g_mime_stream_mem_new_with_buffer(data != NULL ? (const char *)data : "", parse_len);
	GMimeParser *parser = g_mime_parser_new_with_stream(stream);
	g_mime_parser_set_persist_stream(parser, TRUE);
	g_mime_parser_set_format(parser, GMIME_FORMAT_MESSAGE);
	GMimeParserOptions *opts = g_mime_parser_options_new();
	g_mime_parser_options_set_rfc2047_compliance_mode(opts, GMIME_RFC_COMPLIANCE_LOOSE);
	g_mime_parser_options_set_address_compliance_mode(opts, GMIME_RFC_COMPLIANCE_LOOSE);
	g_mime_parser_options_set_parameter_compliance_mode(opts, GMIME_RFC_COMPLIANCE_LOOSE);
	GMimeMessage *m = g_mime_parser_construct_message(parser, opts);

	GString *doc = g_string_new(NULL);
	if (m == NULL) {
		msg->parse_status = "unparsable";
		add_flag(msg, "mime-parser-rejected");
		if (!starts_with_header(data, len))
			add_flag(msg, "no-headers");
	} else {
		GMimeHeaderList *hl = g_mime_object_get_header_list(GMIME_OBJECT(m));
		if (hl == NULL || g_mime_header_list_get_count(hl) == 0) {
			msg->parse_status = "unparsable";
			add_flag(msg, "no-headers");
		}
		if (strcmp(msg->parse_status, "ok") == 0 && !starts_with_header(data, len) &&
		    !(len >= 5 && memcmp(data, "From ", 5) == 0)) {
			/* GMime's loose mode takes almost anything for a header;
			 * a first line that is no "Name: value" field means this
			 * is not a message. */
			msg->parse_status = "unparsable";
			add_flag(msg, "no-headers");
		}
		fill_headers(msg, m, doc, limits->max_text_bytes);
		walk_ctx c = {.msg = msg, .limits = limits, .raw = data, .raw_len = len, .body = doc};
		gsize body_start = doc->len;
		GMimeObject *body = g_mime_message_get_mime_part(m);
		if (body != NULL)
			walk(&c, body, "", 0);
		g_string_append_len(msg->body, doc->str + body_start, (gssize)(doc->len - body_start));
		g_object_unref(m);
	}
	g_mime_parser_options_free(opts);
	g_object_unref(parser);
	g_object_unref(stream);

	if (strcmp(msg->parse_status, "ok") == 0 && msg->flags->len > 0) {
		for (guint i = 0; i < msg->flags->len; i++)
			if (strcmp(msg->flags->pdata[i], "bad-date") != 0)
				msg->parse_status = "partial";
	}
	gsize text_from = body_skipped ? parse_len : 0;
	if ((strcmp(msg->parse_status, "unparsable") == 0 || body_skipped) && len > text_from) {
		/* Keep whatever text there is searchable (of a skipped body: its
		 * bytes as they are). */
		char *clean = mv_utf8_clean((const char *)data + text_from,
		                            (gssize)MIN(len - text_from, limits->max_text_bytes));
		text_append(doc, clean, strlen(clean), limits->max_text_bytes);
		g_free(clean);
	}
	g_string_free(msg->text, TRUE);
	msg->text = doc;
	msg->lang = detect_lang(msg);
	*msg_r = msg;
	return MV_OK;
}

mv_message *mv_message_new_unparsed(GBytes *raw, const char *flag)
{
	gsize len = 0;
	const guint8 *data = g_bytes_get_data(raw, &len);
	mv_message *msg = message_new(raw);
	mv_sha256(data != NULL ? data : (const guint8 *)"", len, msg->sha256);
	msg->parse_status = "unparsable";
	add_flag(msg, flag);
	return msg;
}

void mv_message_free(mv_message **msg)
{
	if (msg == NULL || *msg == NULL)
		return;
	mv_message *m = *msg;
	g_bytes_unref(m->raw);
	g_free(m->message_id);
	g_free(m->date_raw);
	g_free(m->from_addr);
	g_free(m->from_name);
	g_free(m->subject);
	g_ptr_array_free(m->addresses, TRUE);
	g_ptr_array_free(m->parts, TRUE);
	g_ptr_array_free(m->part_texts, TRUE);
	g_ptr_array_free(m->flags, TRUE);
	g_string_free(m->text, TRUE);
	g_free(m->tsv);
	g_string_free(m->body, TRUE);
	g_ptr_array_free(m->headers, TRUE);
	g_free(m->verdicts.virus_name);
	g_free(m->verdicts.spam_reason);
	g_free(m->retention.class_name);
	g_free(m->retention.rule);
	if (m->retention.tags != NULL)
		g_ptr_array_free(m->retention.tags, TRUE);
	g_free(m);
	*msg = NULL;
}

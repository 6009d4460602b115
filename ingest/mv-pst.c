/* mv-pst: Outlook PST / OST mail items as RFC 5322 messages (libpst reads
 * the file; GMime writes the MIME).
 * SECURITY: reads untrusted files; see mv-pst.h for the bounds. */
#include "mv-pst.h"

#include <errno.h>
#include <gmime/gmime.h>
#include <libpst/libpst.h>
#include <libpst/timeconv.h>
#include <string.h>

#include "mv-hash.h"

typedef struct {
	pst_desc_tree *next; /* the next entry of this folder, or NULL */
	char *path;          /* this folder's path */
	guint depth;
} frame;

struct mv_pst {
	pst_file pf;
	gboolean opened;
	mv_pst_limits limits;
	GArray *stack;       /* of frame */
	guint8 store_key[16];
	gboolean has_store_key;
	gint64 index;        /* mail items seen */
	gint64 other;        /* non-mail items seen */
	gint64 entry;        /* folder entries visited, depth first */
	gint64 restart_entry; /* mv_pst_set_restart */
	mv_pst_entry_fn before_parse;
	void *before_parse_context;
	GMimeFormatOptions *format;
};

void mv_pst_limits_default(mv_pst_limits *limits)
{
	limits->max_message_bytes = 256 * 1024 * 1024;
	limits->max_attachments = 1000;
	limits->max_depth = 64;
}

gboolean mv_pst_looks_like(const guint8 *head, gsize len)
{
	return len >= 4 && memcmp(head, "!BDN", 4) == 0;
}

/* A property string as valid UTF-8 (g_free), or NULL when absent. */
static char *text(pst_item *item, pst_string *s)
{
	if (s->str == NULL)
		return NULL;
	pst_convert_utf8_null(item, s);
	if (s->str == NULL)
		return NULL;
	return g_utf8_make_valid(s->str, -1);
}

/* One folder name as a path segment: '/' and '%' escaped. */
static void append_segment(GString *path, const char *name)
{
	if (path->len > 0)
		g_string_append_c(path, '/');
	for (const char *c = name; *c != '\0'; c++) {
		if (*c == '/')
			g_string_append(path, "%2F");
		else if (*c == '%')
			g_string_append(path, "%25");
		else if ((guchar)*c >= 0x20)
			g_string_append_c(path, *c);
	}
}

static void frame_clear(gpointer p)
{
	g_free(((frame *)p)->path);
}

mv_status mv_pst_open(const char *path, const mv_pst_limits *limits, mv_pst **pst_r,
                      char **error_r)
{
	*pst_r = NULL;
	FILE *probe = fopen(path, "rb");
	if (probe == NULL)
		return mv_fail(error_r, MV_ERR_IO, "cannot open %s: %s", path, g_strerror(errno));
	guint8 head[4] = {0};
	gsize got = fread(head, 1, sizeof head, probe);
	fclose(probe);
	if (!mv_pst_looks_like(head, got))
		return mv_fail(error_r, MV_ERR_INPUT, "%s is not a PST or OST file", path);
	mv_pst *p = g_new0(mv_pst, 1);
	p->limits = *limits;
	p->stack = g_array_new(FALSE, TRUE, sizeof(frame));
	g_array_set_clear_func(p->stack, frame_clear);
	p->format = g_mime_format_options_new();
	g_mime_format_options_set_newline_format(p->format, GMIME_NEWLINE_FORMAT_DOS);
	/* Strings of a non-Unicode PST without a code page of their own are
	 * read as Windows-1252, Outlook's default for such files. */
	if (pst_open(&p->pf, path, "windows-1252") != 0) {
		mv_pst_close(&p);
		return mv_fail(error_r, MV_ERR_INPUT, "%s: not a PST or OST file libpst can read", path);
	}
	p->opened = TRUE;
	if (pst_load_index(&p->pf) != 0) {
		mv_pst_close(&p);
		return mv_fail(error_r, MV_ERR_INPUT, "%s: the PST's index cannot be read", path);
	}
	pst_load_extended_attributes(&p->pf);
	pst_desc_tree *d = p->pf.d_head;
	pst_item *store = d != NULL ? pst_parse_item(&p->pf, d, NULL) : NULL;
	if (store == NULL || store->message_store == NULL) {
		if (store != NULL)
			pst_freeItem(store);
		mv_pst_close(&p);
		return mv_fail(error_r, MV_ERR_INPUT, "%s: the PST has no message store", path);
	}
	if (store->record_key.size == 16 && store->record_key.data != NULL) {
		memcpy(p->store_key, store->record_key.data, 16);
		p->has_store_key = TRUE;
	}
	pst_desc_tree *top = pst_getTopOfFolders(&p->pf, store);
	pst_freeItem(store);
	if (top == NULL) {
		mv_pst_close(&p);
		return mv_fail(error_r, MV_ERR_INPUT, "%s: the PST has no top of folders", path);
	}
	frame f = {.next = top->child, .path = g_strdup(""), .depth = 0};
	g_array_append_val(p->stack, f);
	*pst_r = p;
	return MV_OK;
}

gint64 mv_pst_other_items(const mv_pst *pst)
{
	return pst->other;
}

void mv_pst_set_restart(mv_pst *pst, gint64 entry, gint64 index_base, gint64 other_base)
{
	pst->restart_entry = entry;
	pst->index = index_base;
	pst->other = other_base;
}

void mv_pst_set_entry_hook(mv_pst *pst, mv_pst_entry_fn fn, void *context)
{
	pst->before_parse = fn;
	pst->before_parse_context = context;
}

void mv_pst_item_free(mv_pst_item **item)
{
	if (item == NULL || *item == NULL)
		return;
	if ((*item)->raw != NULL)
		g_bytes_unref((*item)->raw);
	g_free((*item)->folder_path);
	g_free((*item)->item_id);
	g_free(*item);
	*item = NULL;
}

void mv_pst_close(mv_pst **pst)
{
	if (pst == NULL || *pst == NULL)
		return;
	mv_pst *p = *pst;
	if (p->opened)
		pst_close(&p->pf);
	g_array_free(p->stack, TRUE);
	g_mime_format_options_free(p->format);
	g_free(p);
	*pst = NULL;
}

/* ---- rebuilding one item ---- */

typedef struct {
	mv_pst *pst;
	gsize bytes;        /* content added so far */
	guint attachments;
	char *error;        /* the first reason the item cannot be rebuilt */
	mv_status status;
} build;

static gboolean budget(build *b, gsize more)
{
	if (b->status != MV_OK)
		return FALSE;
	if (more > b->pst->limits.max_message_bytes - MIN(b->bytes, b->pst->limits.max_message_bytes)) {
		b->status = MV_ERR_LIMIT;
		b->error = g_strdup_printf("the rebuilt message would be larger than the limit of %zu bytes",
		                           b->pst->limits.max_message_bytes);
		return FALSE;
	}
	b->bytes += more;
	return TRUE;
}

static GMimePart *leaf(const char *type, const char *subtype, const void *data, gsize len,
                       GMimeContentEncoding encoding)
{
	GMimePart *part = g_mime_part_new_with_type(type, subtype);
	GByteArray *copy = g_byte_array_sized_new((guint)len);
	g_byte_array_append(copy, data, (guint)len);
	GMimeStream *mem = g_mime_stream_mem_new_with_byte_array(copy);
	GMimeDataWrapper *dw = g_mime_data_wrapper_new_with_stream(mem, GMIME_CONTENT_ENCODING_DEFAULT);
	g_mime_part_set_content(part, dw);
	g_object_unref(dw);
	g_object_unref(mem);
	g_mime_part_set_content_encoding(part, encoding);
	return part;
}

static GMimeObject *text_part(const char *subtype, const char *utf8)
{
	GMimePart *part = leaf("text", subtype, utf8, strlen(utf8), GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE);
	g_mime_object_set_content_type_parameter(GMIME_OBJECT(part), "charset", "utf-8");
	return GMIME_OBJECT(part);
}

/* Give every multipart below obj (obj too) a boundary derived from the
 * SHA-256 of its parts as written: bottom up, so a boundary covers the
 * final bytes of what it encloses. */
static void set_boundaries(GMimeObject *obj, GMimeFormatOptions *format)
{
	if (GMIME_IS_MESSAGE_PART(obj)) {
		GMimeMessage *m = g_mime_message_part_get_message(GMIME_MESSAGE_PART(obj));
		if (m != NULL && g_mime_message_get_mime_part(m) != NULL)
			set_boundaries(g_mime_message_get_mime_part(m), format);
		return;
	}
	if (!GMIME_IS_MULTIPART(obj))
		return;
	GMimeMultipart *mp = GMIME_MULTIPART(obj);
	GChecksum *sum = g_checksum_new(G_CHECKSUM_SHA256);
	int n = g_mime_multipart_get_count(mp);
	for (int i = 0; i < n; i++) {
		GMimeObject *child = g_mime_multipart_get_part(mp, i);
		set_boundaries(child, format);
		char *s = g_mime_object_to_string(child, format);
		g_checksum_update(sum, (const guchar *)s, (gssize)strlen(s));
		g_checksum_update(sum, (const guchar *)"\0", 1);
		g_free(s);
	}
	char *boundary = g_strdup_printf("=_mv_%.40s", g_checksum_get_string(sum));
	g_mime_multipart_set_boundary(mp, boundary);
	g_free(boundary);
	g_checksum_free(sum);
}

static GMimeMessage *rebuild(build *b, pst_item *item, guint depth);

/* The message an attachment carries (PR_ATTACH_METHOD 5), as libpst reads
 * it from the attachment's sub-nodes, or NULL. */
static pst_item *embedded_item(mv_pst *p, pst_item_attach *a)
{
	if (a->id2_head == NULL)
		return NULL;
	pst_desc_tree d = {0};
	d.desc = pst_getID(&p->pf, a->i_id);
	if (d.desc == NULL)
		return NULL;
	return pst_parse_item(&p->pf, &d, a->id2_head);
}

static GMimeObject *attachment_part(build *b, pst_item *item, pst_item_attach *a, guint depth)
{
	mv_pst *p = b->pst;
	if (a->method == PST_ATTACH_EMBEDDED) {
		if (depth + 1 > p->limits.max_depth) {
			b->status = MV_ERR_LIMIT;
			b->error = g_strdup_printf("messages embedded deeper than %u levels", p->limits.max_depth);
			return NULL;
		}
		pst_item *inner = embedded_item(p, a);
		if (inner == NULL || inner->email == NULL) {
			if (inner != NULL)
				pst_freeItem(inner);
			b->status = MV_ERR_INPUT;
			b->error = g_strdup("an attached message cannot be read");
			return NULL;
		}
		GMimeMessage *m = rebuild(b, inner, depth + 1);
		pst_freeItem(inner);
		if (m == NULL)
			return NULL;
		GMimeMessagePart *mp = g_mime_message_part_new_with_message("rfc822", m);
		g_object_unref(m);
		return GMIME_OBJECT(mp);
	}
	pst_binary data = {0};
	gboolean owned = FALSE;
	if (a->data.data != NULL) {
		data = a->data;
	} else if (a->i_id != 0 && a->i_id != (uint64_t)-1) {
		data = pst_attach_to_mem(&p->pf, a);
		owned = TRUE;
	}
	if (!budget(b, data.size)) {
		if (owned)
			free(data.data);
		return NULL;
	}
	char *type = text(item, &a->mimetype);
	char **tv = type != NULL ? g_strsplit(type, "/", 2) : NULL;
	gboolean typed = tv != NULL && tv[0] != NULL && tv[1] != NULL && *tv[0] != '\0' &&
	                 *tv[1] != '\0' && strpbrk(type, " ;\"\r\n\t") == NULL;
	GMimePart *part = leaf(typed ? tv[0] : "application", typed ? tv[1] : "octet-stream",
	                       data.data != NULL ? data.data : "", data.size,
	                       GMIME_CONTENT_ENCODING_BASE64);
	g_strfreev(tv);
	g_free(type);
	if (owned)
		free(data.data);
	char *name = text(item, &a->filename2);
	if (name == NULL || *name == '\0') {
		g_free(name);
		name = text(item, &a->filename1);
	}
	char *cid = text(item, &a->content_id);
	g_mime_object_set_disposition(GMIME_OBJECT(part), cid != NULL && *cid != '\0' ? "inline" : "attachment");
	if (name != NULL && *name != '\0')
		g_mime_part_set_filename(part, name);
	if (cid != NULL && *cid != '\0') {
		/* The id without its angle brackets (GMime adds them). */
		char *bare = g_strdup(cid[0] == '<' ? cid + 1 : cid);
		gsize l = strlen(bare);
		if (l > 0 && bare[l - 1] == '>')
			bare[l - 1] = '\0';
		g_strdelimit(bare, "\r\n", ' ');
		g_mime_object_set_content_id(GMIME_OBJECT(part), bare);
		g_free(bare);
	}
	g_free(name);
	g_free(cid);
	return GMIME_OBJECT(part);
}

static const char *const mime_fields[] = {"Content-Type", "Content-Transfer-Encoding",
                                          "Content-Disposition", "Content-ID",
                                          "Content-Description", "MIME-Version"};

/* The transport headers as a message without a body, their MIME fields
 * removed (the body is rebuilt), or NULL when they do not parse. */
static GMimeMessage *from_transport_headers(const char *headers)
{
	GString *h = g_string_new(NULL);
	/* Up to the first empty line: a header block, nothing after it. */
	for (const char *line = headers; *line != '\0';) {
		const char *end = strchr(line, '\n');
		gsize len = end != NULL ? (gsize)(end - line) : strlen(line);
		gsize l = len;
		if (l > 0 && line[l - 1] == '\r')
			l--;
		if (l == 0)
			break;
		g_string_append_len(h, line, (gssize)l);
		g_string_append(h, "\r\n");
		if (end == NULL)
			break;
		line = end + 1;
	}
	if (h->len == 0) {
		g_string_free(h, TRUE);
		return NULL;
	}
	g_string_append(h, "\r\n");
	GMimeStream *s = g_mime_stream_mem_new_with_buffer(h->str, h->len);
	g_string_free(h, TRUE);
	GMimeParser *parser = g_mime_parser_new_with_stream(s);
	g_object_unref(s);
	GMimeMessage *m = g_mime_parser_construct_message(parser, NULL);
	g_object_unref(parser);
	if (m == NULL)
		return NULL;
	GMimeHeaderList *list = g_mime_object_get_header_list(GMIME_OBJECT(m));
	for (gsize i = 0; i < G_N_ELEMENTS(mime_fields); i++)
		while (g_mime_header_list_contains(list, mime_fields[i]))
			g_mime_header_list_remove(list, mime_fields[i]);
	/* The parsed body (empty) goes; ours replaces it. */
	return m;
}

static void add_display_list(GMimeMessage *m, GMimeAddressType type, const char *header,
                             const char *display)
{
	/* PR_DISPLAY_TO / _CC: names (or addresses) separated by "; ".  An
	 * entry that is an address becomes a mailbox; the list as Outlook
	 * showed it is kept in X-MS-Display-To / -Cc. */
	if (display == NULL || *display == '\0')
		return;
	char **names = g_strsplit(display, ";", 0);
	InternetAddressList *list = g_mime_message_get_addresses(m, type);
	for (char **n = names; *n != NULL; n++) {
		char *e = g_strstrip(*n);
		if (*e != '\0' && strchr(e, '@') != NULL && strchr(e, ' ') == NULL)
			internet_address_list_add(list, internet_address_mailbox_new(NULL, e));
	}
	g_strfreev(names);
	char *encoded = g_mime_utils_header_encode_text(NULL, display, "utf-8");
	g_mime_object_append_header(GMIME_OBJECT(m), header, encoded, "utf-8");
	g_free(encoded);
}

static GDateTime *filetime(const FILETIME *ft)
{
	if (ft == NULL)
		return NULL;
	time_t t = pst_fileTimeToUnixTime(ft);
	return g_date_time_new_from_unix_utc((gint64)t);
}

/* A message of the item's properties (no transport headers). */
static GMimeMessage *from_properties(pst_item *item)
{
	pst_item_email *e = item->email;
	GMimeMessage *m = g_mime_message_new(FALSE);
	GDateTime *when = filetime(e->sent_date);
	if (when == NULL)
		when = filetime(e->arrival_date);
	if (when == NULL)
		when = filetime(item->create_date);
	if (when != NULL) {
		g_mime_message_set_date(m, when);
		g_date_time_unref(when);
	}
	char *name = text(item, &e->outlook_sender_name);
	char *addr = text(item, &e->sender_address);
	char *kind = text(item, &e->sender_access);
	if (addr == NULL || (kind != NULL && g_ascii_strcasecmp(kind, "SMTP") != 0)) {
		/* An Exchange (EX) address is an X.500 DN: the SMTP one is
		 * PR_SENDER_EMAIL_ADDRESS when that is SMTP. */
		char *kind2 = text(item, &e->sender2_access);
		char *addr2 = text(item, &e->sender2_address);
		if (addr2 != NULL && (kind2 == NULL || g_ascii_strcasecmp(kind2, "SMTP") == 0)) {
			g_free(addr);
			addr = addr2;
			addr2 = NULL;
		}
		g_free(kind2);
		g_free(addr2);
	}
	if (name == NULL)
		name = text(item, &e->outlook_sender_name2);
	if (addr != NULL || name != NULL)
		g_mime_message_add_mailbox(m, GMIME_ADDRESS_TYPE_FROM, name, addr != NULL ? addr : "");
	g_free(name);
	g_free(addr);
	g_free(kind);
	char *to = text(item, &e->sentto_address);
	char *cc = text(item, &e->cc_address);
	add_display_list(m, GMIME_ADDRESS_TYPE_TO, "X-MS-Display-To", to);
	add_display_list(m, GMIME_ADDRESS_TYPE_CC, "X-MS-Display-Cc", cc);
	g_free(to);
	g_free(cc);
	char *subject = text(item, &item->subject);
	if (subject != NULL) {
		/* libpst leaves the subject prefix marker (0x01, length) in. */
		const char *s = subject;
		if ((guchar)s[0] == 0x01 && s[1] != '\0')
			s += 2;
		g_mime_message_set_subject(m, s, "utf-8");
	}
	g_free(subject);
	char *mid = text(item, &e->messageid);
	if (mid != NULL) {
		char *bare = g_strdup(mid[0] == '<' ? mid + 1 : mid);
		gsize l = strlen(bare);
		if (l > 0 && bare[l - 1] == '>')
			bare[l - 1] = '\0';
		if (*bare != '\0' && strpbrk(bare, " \r\n<>") == NULL)
			g_mime_message_set_message_id(m, bare);
		g_free(bare);
	}
	g_free(mid);
	char *irt = text(item, &e->in_reply_to);
	if (irt != NULL && strpbrk(irt, "\r\n") == NULL)
		g_mime_object_append_header(GMIME_OBJECT(m), "In-Reply-To", irt, "utf-8");
	g_free(irt);
	return m;
}

static GMimeMessage *rebuild(build *b, pst_item *item, guint depth)
{
	mv_pst *p = b->pst;
	pst_item_email *e = item->email;
	char *headers = text(item, &e->header);
	GMimeMessage *m = NULL;
	if (headers != NULL && *headers != '\0' && budget(b, strlen(headers)))
		m = from_transport_headers(headers);
	g_free(headers);
	if (b->status != MV_OK)
		return NULL;
	if (m == NULL)
		m = from_properties(item);
	g_mime_object_set_header(GMIME_OBJECT(m), "MIME-Version", "1.0", NULL);

	char *plain = text(item, &item->body);
	char *html = text(item, &e->htmlbody);
	gsize body_len = (plain != NULL ? strlen(plain) : 0) + (html != NULL ? strlen(html) : 0);
	if (!budget(b, body_len)) {
		g_free(plain);
		g_free(html);
		g_object_unref(m);
		return NULL;
	}
	GMimeObject *body;
	if (plain != NULL && html != NULL) {
		GMimeMultipart *alt = g_mime_multipart_new_with_subtype("alternative");
		GMimeObject *a = text_part("plain", plain), *h = text_part("html", html);
		g_mime_multipart_add(alt, a);
		g_mime_multipart_add(alt, h);
		g_object_unref(a);
		g_object_unref(h);
		body = GMIME_OBJECT(alt);
	} else {
		body = text_part(html != NULL ? "html" : "plain", html != NULL ? html : plain != NULL ? plain : "");
	}
	g_free(plain);
	g_free(html);

	GMimeMultipart *mixed = NULL;
	for (pst_item_attach *a = item->attach; a != NULL; a = a->next) {
		if (a->method == PST_ATTACH_NONE)
			continue;
		if (++b->attachments > p->limits.max_attachments) {
			b->status = MV_ERR_LIMIT;
			b->error = g_strdup_printf("more than %u attachments", p->limits.max_attachments);
			break;
		}
		GMimeObject *part = attachment_part(b, item, a, depth);
		if (part == NULL)
			break;
		if (mixed == NULL) {
			mixed = g_mime_multipart_new_with_subtype("mixed");
			g_mime_multipart_add(mixed, body);
			g_object_unref(body);
			body = GMIME_OBJECT(mixed);
		}
		g_mime_multipart_add(mixed, part);
		g_object_unref(part);
	}
	g_mime_message_set_mime_part(m, body);
	g_object_unref(body);
	if (b->status != MV_OK) {
		g_object_unref(m);
		return NULL;
	}
	return m;
}

/* ---- walking the folders ---- */

static gboolean is_mail(const pst_item *item)
{
	return item->email != NULL && (item->type == PST_TYPE_NOTE || item->type == PST_TYPE_SCHEDULE ||
	                               item->type == PST_TYPE_REPORT);
}

mv_status mv_pst_next(mv_pst *p, gint64 skip_to, mv_pst_item **item_r, gint64 *index_r,
                      char **error_r)
{
	*item_r = NULL;
	*index_r = 0;
	while (p->stack->len > 0) {
		frame *f = &g_array_index(p->stack, frame, p->stack->len - 1);
		pst_desc_tree *d = f->next;
		if (d == NULL) {
			g_array_set_size(p->stack, p->stack->len - 1);
			continue;
		}
		f->next = d->next;
		gint64 entry = ++p->entry;
		/* Restarting after libpst crashed on entry restart_entry: the
		 * entries before it without children were read by the reader
		 * that crashed; the entry itself is not parsed again (only its
		 * children are walked). */
		gboolean crashed = entry == p->restart_entry;
		if (entry < p->restart_entry && d->child == NULL)
			continue;
		if (!crashed && p->before_parse != NULL)
			p->before_parse(p->before_parse_context, entry, (guint64)d->d_id, p->index, p->other);
		pst_item *item = crashed ? NULL : pst_parse_item(&p->pf, d, NULL);
		if (item == NULL) {
			if (crashed && d->child == NULL)
				continue; /* reported by the caller */
			if (d->child != NULL) {
				/* A folder (it has children) that cannot be read: its
				 * items are walked all the same, under its node id. */
				if (p->stack->len < p->limits.max_depth) {
					GString *path = g_string_new(f->path);
					char *seg = g_strdup_printf("nid-%#" G_GINT64_MODIFIER "x", (guint64)d->d_id);
					append_segment(path, seg);
					g_free(seg);
					frame child = {.next = d->child, .path = g_string_free(path, FALSE),
					               .depth = f->depth + 1};
					g_array_append_val(p->stack, child);
				}
				continue;
			}
			*index_r = ++p->index;
			return mv_fail(error_r, MV_ERR_INPUT, "item nid=%#" G_GINT64_MODIFIER "x cannot be read",
			               (guint64)d->d_id);
		}
		if (item->folder != NULL || (d->child != NULL && item->email == NULL)) {
			if (d->child != NULL) {
				if (p->stack->len >= p->limits.max_depth) {
					char *path = g_strdup(f->path);
					pst_freeItem(item);
					*index_r = p->index;
					mv_status st = mv_fail(error_r, MV_ERR_LIMIT,
					                       "folder %s: folders nested deeper than %u levels skipped",
					                       path, p->limits.max_depth);
					g_free(path);
					return st;
				}
				char *name = text(item, &item->file_as);
				GString *path = g_string_new(f->path);
				if (name != NULL && *name != '\0') {
					append_segment(path, name);
				} else {
					char *seg = g_strdup_printf("nid-%#" G_GINT64_MODIFIER "x", (guint64)d->d_id);
					append_segment(path, seg);
					g_free(seg);
				}
				g_free(name);
				frame child = {.next = d->child, .path = g_string_free(path, FALSE),
				               .depth = f->depth + 1};
				g_array_append_val(p->stack, child);
			}
			pst_freeItem(item);
			continue;
		}
		if (!is_mail(item)) {
			p->other++;
			pst_freeItem(item);
			continue;
		}
		gint64 index = ++p->index;
		if (index < skip_to) {
			pst_freeItem(item);
			continue;
		}
		build b = {.pst = p, .status = MV_OK};
		GMimeMessage *m = rebuild(&b, item, 0);
		if (m == NULL) {
			pst_freeItem(item);
			*index_r = index;
			mv_status st = mv_fail(error_r, b.status != MV_OK ? b.status : MV_ERR_INPUT,
			                       "item nid=%#" G_GINT64_MODIFIER "x: %s", (guint64)d->d_id,
			                       b.error != NULL ? b.error : "cannot be rebuilt");
			g_free(b.error);
			return st;
		}
		set_boundaries(g_mime_message_get_mime_part(m), p->format);
		char *raw = g_mime_object_to_string(GMIME_OBJECT(m), p->format);
		g_object_unref(m);
		gsize len = strlen(raw);
		if (len > p->limits.max_message_bytes) {
			g_free(raw);
			pst_freeItem(item);
			*index_r = index;
			return mv_fail(error_r, MV_ERR_LIMIT,
			               "item nid=%#" G_GINT64_MODIFIER "x: the rebuilt message is larger than "
			               "the limit of %zu bytes", (guint64)d->d_id, p->limits.max_message_bytes);
		}
		mv_pst_item *out = g_new0(mv_pst_item, 1);
		out->raw = g_bytes_new_take(raw, len);
		out->folder_path = g_strdup(f->path);
		out->item_id = g_strdup_printf("nid=%#" G_GINT64_MODIFIER "x", (guint64)d->d_id);
		out->index = index;
		out->attachments = b.attachments;
		if (p->has_store_key) {
			/* [MS-PST] 2.2.1 EntryID: rgbFlags (0), the store's
			 * PidTagRecordKey, the node id (little-endian). */
			memset(out->entry_id, 0, 4);
			memcpy(out->entry_id + 4, p->store_key, 16);
			guint32 nid = (guint32)d->d_id;
			for (int i = 0; i < 4; i++)
				out->entry_id[20 + i] = (guint8)(nid >> (8 * i));
			out->entry_id_len = 24;
		}
		pst_freeItem(item);
		*index_r = index;
		*item_r = out;
		return MV_OK;
	}
	return MV_OK;
}

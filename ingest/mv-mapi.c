/* mv-mapi: MAPI properties to deterministic MIME (see mv-mapi.h).
 * SECURITY: the properties come from hostile files; header text is
 * checked before it reaches a header, sizes by the caller's limit. */
#include "mv-mapi.h"

#include <gmime/gmime.h>
#include <string.h>

mv_mapi_message *mv_mapi_message_new(void)
{
	mv_mapi_message *m = g_new0(mv_mapi_message, 1);
	m->recipients = g_ptr_array_new();
	m->attachments = g_ptr_array_new();
	return m;
}

void mv_mapi_message_free(mv_mapi_message *m)
{
	if (m == NULL)
		return;
	g_free(m->transport_headers);
	g_free(m->subject);
	g_free(m->body);
	g_free(m->html);
	g_free(m->sender_name);
	g_free(m->sender_address);
	g_free(m->display_to);
	g_free(m->display_cc);
	g_free(m->message_id);
	g_free(m->in_reply_to);
	for (guint i = 0; i < m->recipients->len; i++) {
		mv_mapi_recipient *r = m->recipients->pdata[i];
		g_free(r->name);
		g_free(r->address);
		g_free(r);
	}
	g_ptr_array_free(m->recipients, TRUE);
	for (guint i = 0; i < m->attachments->len; i++) {
		mv_mapi_attachment *a = m->attachments->pdata[i];
		g_free(a->filename);
		g_free(a->mime_type);
		g_free(a->content_id);
		if (a->data != NULL)
			g_bytes_unref(a->data);
		mv_mapi_message_free(a->embedded);
		g_free(a);
	}
	g_ptr_array_free(m->attachments, TRUE);
	g_free(m);
}

mv_mapi_attachment *mv_mapi_add_attachment(mv_mapi_message *m)
{
	mv_mapi_attachment *a = g_new0(mv_mapi_attachment, 1);
	g_ptr_array_add(m->attachments, a);
	return a;
}

void mv_mapi_add_recipient(mv_mapi_message *m, mv_mapi_rcpt_type type, const char *name,
                           const char *address)
{
	mv_mapi_recipient *r = g_new0(mv_mapi_recipient, 1);
	r->type = type;
	r->name = g_strdup(name);
	r->address = g_strdup(address);
	g_ptr_array_add(m->recipients, r);
}

/* ---- writing ---- */

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
	return m;
}

/* PR_DISPLAY_TO / _CC: names (or addresses) separated by ";".  Entries
 * that are addresses become mailboxes; the list as Outlook showed it is
 * kept in X-MS-Display-To / -Cc. */
static void add_display_list(GMimeMessage *m, GMimeAddressType type, const char *header,
                             const char *display, gboolean addresses)
{
	if (display == NULL || *display == '\0')
		return;
	if (addresses) {
		char **names = g_strsplit(display, ";", 0);
		InternetAddressList *list = g_mime_message_get_addresses(m, type);
		for (char **n = names; *n != NULL; n++) {
			char *e = g_strstrip(*n);
			if (*e != '\0' && strchr(e, '@') != NULL && strpbrk(e, " <>\"") == NULL)
				internet_address_list_add(list, internet_address_mailbox_new(NULL, e));
		}
		g_strfreev(names);
	}
	char *encoded = g_mime_utils_header_encode_text(NULL, display, "utf-8");
	g_mime_object_append_header(GMIME_OBJECT(m), header, encoded, "utf-8");
	g_free(encoded);
}

static gboolean one_line(const char *s)
{
	return s != NULL && *s != '\0' && strpbrk(s, "\r\n") == NULL;
}

/* A message of the properties (no transport headers). */
static GMimeMessage *from_properties(const mv_mapi_message *mm)
{
	GMimeMessage *m = g_mime_message_new(FALSE);
	if (mm->has_date) {
		GDateTime *when = g_date_time_new_from_unix_utc(mm->date);
		if (when != NULL) {
			g_mime_message_set_date(m, when);
			g_date_time_unref(when);
		}
	}
	if (one_line(mm->sender_address) || one_line(mm->sender_name))
		g_mime_message_add_mailbox(m, GMIME_ADDRESS_TYPE_FROM,
		                           one_line(mm->sender_name) ? mm->sender_name : NULL,
		                           one_line(mm->sender_address) ? mm->sender_address : "");
	gboolean have_table = FALSE;
	for (guint i = 0; i < mm->recipients->len; i++) {
		const mv_mapi_recipient *r = mm->recipients->pdata[i];
		if (!one_line(r->address) || strchr(r->address, '@') == NULL)
			continue;
		GMimeAddressType t = r->type == MV_MAPI_CC    ? GMIME_ADDRESS_TYPE_CC
		                     : r->type == MV_MAPI_BCC ? GMIME_ADDRESS_TYPE_BCC
		                                              : GMIME_ADDRESS_TYPE_TO;
		g_mime_message_add_mailbox(m, t, one_line(r->name) ? r->name : NULL, r->address);
		have_table = TRUE;
	}
	add_display_list(m, GMIME_ADDRESS_TYPE_TO, "X-MS-Display-To", mm->display_to, !have_table);
	add_display_list(m, GMIME_ADDRESS_TYPE_CC, "X-MS-Display-Cc", mm->display_cc, !have_table);
	if (mm->subject != NULL) {
		/* A subject prefix marker (0x01, length) some stores leave in. */
		const char *s = mm->subject;
		if ((guchar)s[0] == 0x01 && s[1] != '\0')
			s += 2;
		char *flat = g_strdup(s);
		g_strdelimit(flat, "\r\n", ' ');
		g_mime_message_set_subject(m, flat, "utf-8");
		g_free(flat);
	}
	if (mm->message_id != NULL) {
		const char *mid = mm->message_id;
		char *bare = g_strdup(mid[0] == '<' ? mid + 1 : mid);
		gsize l = strlen(bare);
		if (l > 0 && bare[l - 1] == '>')
			bare[l - 1] = '\0';
		if (*bare != '\0' && strpbrk(bare, " \r\n<>") == NULL)
			g_mime_message_set_message_id(m, bare);
		g_free(bare);
	}
	if (one_line(mm->in_reply_to))
		g_mime_object_append_header(GMIME_OBJECT(m), "In-Reply-To", mm->in_reply_to, "utf-8");
	return m;
}

static GMimeMessage *build(const mv_mapi_message *mm, guint depth);

static GMimeObject *attachment_part(const mv_mapi_attachment *a, guint depth)
{
	if (a->embedded != NULL) {
		GMimeMessage *m = build(a->embedded, depth + 1);
		GMimeMessagePart *mp = g_mime_message_part_new_with_message("rfc822", m);
		g_object_unref(m);
		return GMIME_OBJECT(mp);
	}
	gsize len = 0;
	const void *data = a->data != NULL ? g_bytes_get_data(a->data, &len) : NULL;
	const char *type = a->mime_type;
	char **tv = type != NULL ? g_strsplit(type, "/", 2) : NULL;
	gboolean typed = tv != NULL && tv[0] != NULL && tv[1] != NULL && *tv[0] != '\0' &&
	                 *tv[1] != '\0' && strpbrk(type, " ;\"\r\n\t") == NULL;
	GMimePart *part = leaf(typed ? tv[0] : "application", typed ? tv[1] : "octet-stream",
	                       data != NULL ? data : "", len, GMIME_CONTENT_ENCODING_BASE64);
	g_strfreev(tv);
	const char *cid = a->content_id;
	gboolean has_cid = cid != NULL && *cid != '\0';
	g_mime_object_set_disposition(GMIME_OBJECT(part), has_cid ? "inline" : "attachment");
	if (a->filename != NULL && *a->filename != '\0') {
		char *flat = g_strdup(a->filename);
		g_strdelimit(flat, "\r\n", ' ');
		g_mime_part_set_filename(part, flat);
		g_free(flat);
	}
	if (has_cid) {
		/* The id without its angle brackets (GMime adds them). */
		char *bare = g_strdup(cid[0] == '<' ? cid + 1 : cid);
		gsize l = strlen(bare);
		if (l > 0 && bare[l - 1] == '>')
			bare[l - 1] = '\0';
		g_strdelimit(bare, "\r\n", ' ');
		g_mime_object_set_content_id(GMIME_OBJECT(part), bare);
		g_free(bare);
	}
	return GMIME_OBJECT(part);
}

static GMimeMessage *build(const mv_mapi_message *mm, guint depth)
{
	GMimeMessage *m = NULL;
	if (mm->transport_headers != NULL && *mm->transport_headers != '\0')
		m = from_transport_headers(mm->transport_headers);
	if (m == NULL)
		m = from_properties(mm);
	g_mime_object_set_header(GMIME_OBJECT(m), "MIME-Version", "1.0", NULL);
	GMimeObject *body;
	if (mm->body != NULL && mm->html != NULL) {
		GMimeMultipart *alt = g_mime_multipart_new_with_subtype("alternative");
		GMimeObject *a = text_part("plain", mm->body), *h = text_part("html", mm->html);
		g_mime_multipart_add(alt, a);
		g_mime_multipart_add(alt, h);
		g_object_unref(a);
		g_object_unref(h);
		body = GMIME_OBJECT(alt);
	} else {
		body = text_part(mm->html != NULL ? "html" : "plain",
		                 mm->html != NULL ? mm->html : mm->body != NULL ? mm->body : "");
	}
	if (mm->attachments->len > 0) {
		GMimeMultipart *mixed = g_mime_multipart_new_with_subtype("mixed");
		g_mime_multipart_add(mixed, body);
		g_object_unref(body);
		for (guint i = 0; i < mm->attachments->len; i++) {
			GMimeObject *part = attachment_part(mm->attachments->pdata[i], depth);
			g_mime_multipart_add(mixed, part);
			g_object_unref(part);
		}
		body = GMIME_OBJECT(mixed);
	}
	g_mime_message_set_mime_part(m, body);
	g_object_unref(body);
	return m;
}

mv_status mv_mapi_to_mime(const mv_mapi_message *mm, gsize max_bytes, GBytes **raw_r,
                          char **error_r)
{
	*raw_r = NULL;
	GMimeFormatOptions *format = g_mime_format_options_new();
	g_mime_format_options_set_newline_format(format, GMIME_NEWLINE_FORMAT_DOS);
	GMimeMessage *m = build(mm, 0);
	set_boundaries(g_mime_message_get_mime_part(m), format);
	char *raw = g_mime_object_to_string(GMIME_OBJECT(m), format);
	g_object_unref(m);
	g_mime_format_options_free(format);
	gsize len = strlen(raw);
	if (len > max_bytes) {
		g_free(raw);
		return mv_fail(error_r, MV_ERR_LIMIT, "the rebuilt message is larger than the limit of %zu bytes",
		               max_bytes);
	}
	*raw_r = g_bytes_new_take(raw, len);
	return MV_OK;
}

/* mv-pst: Outlook PST / OST mail items as RFC 5322 messages (libpst reads
 * the file; GMime writes the MIME).
 * SECURITY: reads untrusted files; see mv-pst.h for the bounds. */
#include "mv-pst.h"

#include <errno.h>
#include <inttypes.h>
#include <libpst/libpst.h>
#include <libpst/timeconv.h>
#include <string.h>
#include <sys/stat.h>

#include "mv-mapi.h"

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
	guint64 declared_size; /* the header's file size, when larger than the file */
	guint64 actual_size;
	mv_pst_entry_fn before_parse;
	void *before_parse_context;
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
	/* Strings of a non-Unicode PST without a code page of their own are
	 * read as Windows-1252, Outlook's default for such files. */
	if (pst_open(&p->pf, path, "windows-1252") != 0) {
		mv_pst_close(&p);
		return mv_fail(error_r, MV_ERR_INPUT, "%s: not a PST or OST file libpst can read", path);
	}
	p->opened = TRUE;
	struct stat sb;
	if (fstat(fileno(p->pf.fp), &sb) == 0 && (guint64)sb.st_size < p->pf.size) {
		p->declared_size = p->pf.size;
		p->actual_size = (guint64)sb.st_size;
	}
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
	g_free(p);
	*pst = NULL;
}

/* ---- one item's properties ---- */

typedef struct {
	mv_pst *pst;
	gsize bytes;        /* content gathered so far */
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

static gboolean filetime(const FILETIME *ft, gint64 *t_r)
{
	if (ft == NULL)
		return FALSE;
	*t_r = (gint64)pst_fileTimeToUnixTime(ft);
	return TRUE;
}

static mv_mapi_message *properties(build *b, pst_item *item, guint depth);

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

static gboolean add_attachment(build *b, mv_mapi_message *m, pst_item *item, pst_item_attach *a,
                               guint depth)
{
	mv_pst *p = b->pst;
	if (a->method == PST_ATTACH_EMBEDDED) {
		if (depth + 1 > p->limits.max_depth) {
			b->status = MV_ERR_LIMIT;
			b->error = g_strdup_printf("messages embedded deeper than %u levels", p->limits.max_depth);
			return FALSE;
		}
		pst_item *inner = embedded_item(p, a);
		if (inner == NULL || inner->email == NULL) {
			if (inner != NULL)
				pst_freeItem(inner);
			b->status = MV_ERR_INPUT;
			b->error = g_strdup("an attached message cannot be read");
			return FALSE;
		}
		mv_mapi_message *em = properties(b, inner, depth + 1);
		pst_freeItem(inner);
		if (em == NULL)
			return FALSE;
		mv_mapi_add_attachment(m)->embedded = em;
		return TRUE;
	}
	pst_binary data = {0};
	gboolean owned = FALSE;
	if (a->data.data != NULL) {
		data = a->data;
	} else if (a->i_id != 0 && a->i_id != (uint64_t)-1) {
		data = pst_attach_to_mem(&p->pf, a);
		owned = TRUE;
		/* A block the index does not hold, or one that holds bytes
		 * libpst could not read (a file cut short): the attachment
		 * would be stored empty, so the message would not be the one
		 * the PST holds. */
		pst_index_ll *block = data.data == NULL ? pst_getID(&p->pf, a->i_id) : NULL;
		if (data.data == NULL && (block == NULL || block->size > 0)) {
			b->status = MV_ERR_INPUT;
			b->error = g_strdup_printf("the data of attachment %u cannot be read (block %#" PRIx64
			                           ")", b->attachments, (uint64_t)a->i_id);
			return FALSE;
		}
	} else if (a->method == PST_ATTACH_BY_VALUE && a->filename1.str == NULL &&
	           a->filename2.str == NULL && a->mimetype.str == NULL) {
		/* Only its row in the attachment table was read: libpst could
		 * not read the attachment's own properties (its data, names). */
		b->status = MV_ERR_INPUT;
		b->error = g_strdup_printf("attachment %u cannot be read", b->attachments);
		return FALSE;
	}
	if (!budget(b, data.size)) {
		if (owned)
			free(data.data);
		return FALSE;
	}
	mv_mapi_attachment *ma = mv_mapi_add_attachment(m);
	ma->data = g_bytes_new(data.data, data.data != NULL ? data.size : 0);
	if (owned)
		free(data.data);
	ma->mime_type = text(item, &a->mimetype);
	ma->filename = text(item, &a->filename2);
	if (ma->filename == NULL || *ma->filename == '\0') {
		g_free(ma->filename);
		ma->filename = text(item, &a->filename1);
	}
	ma->content_id = text(item, &a->content_id);
	return TRUE;
}

/* The item's properties as mv-mapi.h has them, or NULL (b says why). */
static mv_mapi_message *properties(build *b, pst_item *item, guint depth)
{
	pst_item_email *e = item->email;
	mv_mapi_message *m = mv_mapi_message_new();
	m->transport_headers = text(item, &e->header);
	m->subject = text(item, &item->subject);
	m->body = text(item, &item->body);
	m->html = text(item, &e->htmlbody);
	if (!budget(b, (m->transport_headers != NULL ? strlen(m->transport_headers) : 0) +
	                   (m->body != NULL ? strlen(m->body) : 0) + (m->html != NULL ? strlen(m->html) : 0))) {
		mv_mapi_message_free(m);
		return NULL;
	}
	m->has_date = filetime(e->sent_date, &m->date) || filetime(e->arrival_date, &m->date) ||
	              filetime(item->create_date, &m->date);
	m->sender_name = text(item, &e->outlook_sender_name);
	if (m->sender_name == NULL)
		m->sender_name = text(item, &e->outlook_sender_name2);
	char *addr = text(item, &e->sender_address);
	char *kind = text(item, &e->sender_access);
	if (addr == NULL || (kind != NULL && g_ascii_strcasecmp(kind, "SMTP") != 0)) {
		/* An Exchange (EX) address is an X.500 DN: the SMTP one is
		 * PR_SENDER_EMAIL_ADDRESS when that is SMTP. */
		char *kind2 = text(item, &e->sender2_access);
		char *addr2 = text(item, &e->sender2_address);
		if (addr2 != NULL && (kind2 == NULL || g_ascii_strcasecmp(kind2, "SMTP") == 0)) {
			g_free(addr);
			addr = g_steal_pointer(&addr2);
		}
		g_free(kind2);
		g_free(addr2);
	}
	m->sender_address = addr;
	g_free(kind);
	m->display_to = text(item, &e->sentto_address);
	m->display_cc = text(item, &e->cc_address);
	m->message_id = text(item, &e->messageid);
	m->in_reply_to = text(item, &e->in_reply_to);
	for (pst_item_attach *a = item->attach; a != NULL; a = a->next) {
		if (a->method == PST_ATTACH_NONE)
			continue;
		if (++b->attachments > b->pst->limits.max_attachments) {
			b->status = MV_ERR_LIMIT;
			b->error = g_strdup_printf("more than %u attachments", b->pst->limits.max_attachments);
		}
		if (b->status != MV_OK || !add_attachment(b, m, item, a, depth)) {
			mv_mapi_message_free(m);
			return NULL;
		}
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
		mv_mapi_message *m = properties(&b, item, 0);
		GBytes *raw = NULL;
		char *why = NULL;
		mv_status st = m != NULL ? mv_mapi_to_mime(m, p->limits.max_message_bytes, &raw, &why)
		                         : (b.status != MV_OK ? b.status : MV_ERR_INPUT);
		mv_mapi_message_free(m);
		if (st != MV_OK) {
			pst_freeItem(item);
			*index_r = index;
			st = mv_fail(error_r, st, "item nid=%#" G_GINT64_MODIFIER "x: %s", (guint64)d->d_id,
			             why != NULL ? why : b.error != NULL ? b.error : "cannot be rebuilt");
			g_free(why);
			g_free(b.error);
			return st;
		}
		mv_pst_item *out = g_new0(mv_pst_item, 1);
		out->raw = raw;
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
	if (p->declared_size > 0) {
		/* Once, after the items it still holds: a file cut short loses
		 * the items whose blocks lay beyond its end, and nothing else
		 * may say so. */
		guint64 declared = p->declared_size, actual = p->actual_size;
		p->declared_size = 0;
		*index_r = 0; /* the file, not an item: FILE#0 */
		return mv_fail(error_r, MV_ERR_INPUT, "the file is cut short: %" PRIu64 " of the %" PRIu64
		               " bytes its header declares; items stored beyond its end are missing",
		               actual, declared);
	}
	return MV_OK;
}

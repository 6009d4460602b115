/* mv-pst-proc: a PST read in a child process (see mv-pst-proc.h).
 * SECURITY: the child reads a hostile file; the parent bounds every record
 * it reads from the child. */
#include "mv-pst-proc.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Records: one type byte, then fields; integers are 8 bytes little-endian,
 * strings and bytes are a length (integer) then the bytes. */
enum {
	REC_OPENED = 'H',  /* the file opened */
	REC_FATAL = 'F',   /* status, message: the file cannot be read at all */
	REC_ENTRY = 'P',   /* entry, nid, index, other: about to parse */
	REC_ITEM = 'M',    /* index, attachments, folder, item id, entry id, raw */
	REC_FAILED = 'E',  /* index, status, message */
	REC_END = 'D',     /* other */
};

#define MAX_TEXT (64 * 1024)
#define MAX_CRASHES 1000

/* ---- the child ---- */

typedef struct {
	FILE *out;
	gboolean failed;
} writer;

static void put_int(writer *w, gint64 v)
{
	guint8 b[8];
	for (int i = 0; i < 8; i++)
		b[i] = (guint8)((guint64)v >> (8 * i));
	if (fwrite(b, 1, 8, w->out) != 8)
		w->failed = TRUE;
}

static void put_bytes(writer *w, const void *data, gsize len)
{
	put_int(w, (gint64)len);
	if (len > 0 && fwrite(data, 1, len, w->out) != len)
		w->failed = TRUE;
}

static void put_text(writer *w, const char *s)
{
	put_bytes(w, s != NULL ? s : "", s != NULL ? MIN(strlen(s), MAX_TEXT) : 0);
}

static void put_type(writer *w, int type)
{
	if (fputc(type, w->out) == EOF)
		w->failed = TRUE;
}

static void on_entry(void *context, gint64 entry, guint64 nid, gint64 index, gint64 other)
{
	writer *w = context;
	put_type(w, REC_ENTRY);
	put_int(w, entry);
	put_int(w, (gint64)nid);
	put_int(w, index);
	put_int(w, other);
	/* Out before libpst touches the entry: if it crashes, the parent
	 * knows which entry it was. */
	if (fflush(w->out) != 0)
		w->failed = TRUE;
}

mv_status mv_pst_serve(const char *path, const mv_pst_limits *limits, gint64 skip_to,
                       gint64 restart_entry, gint64 index_base, gint64 other_base, int fd,
                       char **error_r)
{
	FILE *out = fdopen(fd, "wb");
	if (out == NULL)
		return mv_fail(error_r, MV_ERR_IO, "cannot write records: %s", g_strerror(errno));
	writer w = {.out = out};
	mv_pst *pst = NULL;
	char *err = NULL;
	mv_status st = mv_pst_open(path, limits, &pst, &err);
	if (st != MV_OK) {
		put_type(&w, REC_FATAL);
		put_int(&w, st);
		put_text(&w, err);
		fclose(out);
		st = mv_fail(error_r, st, "%s", err);
		g_free(err);
		return st;
	}
	put_type(&w, REC_OPENED);
	if (restart_entry > 0)
		mv_pst_set_restart(pst, restart_entry, index_base, other_base);
	mv_pst_set_entry_hook(pst, on_entry, &w);
	while (!w.failed) {
		mv_pst_item *item = NULL;
		gint64 index = 0;
		st = mv_pst_next(pst, skip_to, &item, &index, &err);
		if (st != MV_OK) {
			put_type(&w, REC_FAILED);
			put_int(&w, index);
			put_int(&w, st);
			put_text(&w, err);
			g_clear_pointer(&err, g_free);
			continue;
		}
		if (item == NULL)
			break;
		gsize len = 0;
		const void *raw = g_bytes_get_data(item->raw, &len);
		put_type(&w, REC_ITEM);
		put_int(&w, item->index);
		put_int(&w, item->attachments);
		put_text(&w, item->folder_path);
		put_text(&w, item->item_id);
		put_bytes(&w, item->entry_id, item->entry_id_len);
		put_bytes(&w, raw, len);
		mv_pst_item_free(&item);
	}
	put_type(&w, REC_END);
	put_int(&w, mv_pst_other_items(pst));
	mv_pst_close(&pst);
	if (fclose(out) != 0 || w.failed)
		return mv_fail(error_r, MV_ERR_IO, "cannot write records: %s", g_strerror(errno));
	return MV_OK;
}

/* ---- the parent ---- */

struct mv_pst_proc {
	char **argv_base;      /* helper argv (owned copy) */
	char *path;
	mv_pst_limits limits;
	gint64 skip_to;
	GPid pid;              /* 0 when no child runs */
	FILE *in;
	gboolean ended;
	/* the last entry the running child announced */
	gint64 entry, nid, index, other;
	gint64 other_total;    /* of children that ended */
	guint crashes;
};

static gboolean get_int(FILE *in, gint64 *v)
{
	guint8 b[8];
	if (fread(b, 1, 8, in) != 8)
		return FALSE;
	guint64 x = 0;
	for (int i = 0; i < 8; i++)
		x |= (guint64)b[i] << (8 * i);
	*v = (gint64)x;
	return TRUE;
}

/* A length-prefixed field of at most max bytes (NUL-terminated copy).
 * The memory grows with the bytes that arrive (64 KiB, then doubling), not
 * with the length the child announced: a child that announces 256 MiB and
 * dies costs the parent what it sent. */
static gboolean get_bytes(FILE *in, gsize max, guint8 **data_r, gsize *len_r)
{
	gint64 len;
	*data_r = NULL;
	if (!get_int(in, &len) || len < 0 || (guint64)len > max)
		return FALSE;
	gsize want = (gsize)len, have = 0, cap = MIN(want, (gsize)64 << 10) + 1;
	guint8 *d = g_try_malloc(cap);
	if (d == NULL)
		return FALSE;
	while (have < want) {
		if (have + 1 >= cap) {
			gsize more = MIN(want + 1, cap * 2);
			guint8 *bigger = g_try_realloc(d, more);
			if (bigger == NULL) {
				g_free(d);
				return FALSE;
			}
			d = bigger;
			cap = more;
		}
		gsize n = fread(d + have, 1, MIN(want - have, cap - 1 - have), in);
		if (n == 0) {
			g_free(d);
			return FALSE;
		}
		have += n;
	}
	d[want] = '\0';
	*data_r = d;
	*len_r = want;
	return TRUE;
}

static char *get_text(FILE *in)
{
	guint8 *d = NULL;
	gsize len = 0;
	if (!get_bytes(in, MAX_TEXT, &d, &len))
		return NULL;
	char *valid = g_utf8_make_valid((const char *)d, (gssize)len);
	g_free(d);
	return valid;
}

/* Reap the child; a description of how it ended (g_free). */
static char *reap(mv_pst_proc *p)
{
	if (p->in != NULL) {
		fclose(p->in);
		p->in = NULL;
	}
	if (p->pid == 0)
		return g_strdup("no reader");
	int status = 0;
	pid_t r;
	do
		r = waitpid(p->pid, &status, 0);
	while (r < 0 && errno == EINTR);
	g_spawn_close_pid(p->pid);
	p->pid = 0;
	if (r < 0)
		return g_strdup_printf("the reader was lost: %s", g_strerror(errno));
	if (WIFSIGNALED(status))
		return g_strdup_printf("signal %d (%s)", WTERMSIG(status), g_strsignal(WTERMSIG(status)));
	return g_strdup_printf("exit status %d", WEXITSTATUS(status));
}

static mv_status spawn(mv_pst_proc *p, gint64 restart_entry, gint64 index_base,
                       gint64 other_base, char **error_r)
{
	GPtrArray *argv = g_ptr_array_new_with_free_func(g_free);
	for (char **a = p->argv_base; *a != NULL; a++)
		g_ptr_array_add(argv, g_strdup(*a));
	g_ptr_array_add(argv, g_strdup_printf("--max-size=%zu", p->limits.max_message_bytes));
	g_ptr_array_add(argv, g_strdup_printf("--skip-to=%" G_GINT64_FORMAT, p->skip_to));
	if (restart_entry > 0) {
		g_ptr_array_add(argv, g_strdup_printf("--restart=%" G_GINT64_FORMAT ",%" G_GINT64_FORMAT
		                                      ",%" G_GINT64_FORMAT, restart_entry, index_base,
		                                      other_base));
	}
	g_ptr_array_add(argv, g_strdup("--"));
	g_ptr_array_add(argv, g_strdup(p->path));
	g_ptr_array_add(argv, NULL);
	GError *gerr = NULL;
	int out_fd = -1;
	gboolean ok = g_spawn_async_with_pipes(NULL, (char **)argv->pdata, NULL,
	                                       G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_CLOEXEC_PIPES,
	                                       NULL, NULL, &p->pid, NULL, &out_fd, NULL, &gerr);
	g_ptr_array_free(argv, TRUE);
	if (!ok) {
		mv_status st = mv_fail(error_r, MV_ERR_CONFIG, "cannot start the PST reader: %s",
		                       gerr->message);
		g_error_free(gerr);
		p->pid = 0;
		return st;
	}
	p->in = fdopen(out_fd, "rb");
	if (p->in == NULL) {
		close(out_fd);
		g_free(reap(p));
		return mv_fail(error_r, MV_ERR_IO, "cannot read the PST reader: %s", g_strerror(errno));
	}
	p->entry = 0;
	p->index = index_base;
	p->other = other_base;
	return MV_OK;
}

mv_status mv_pst_proc_open(const char *const *helper_argv, const char *path,
                           const mv_pst_limits *limits, gint64 skip_to, mv_pst_proc **proc_r,
                           char **error_r)
{
	*proc_r = NULL;
	mv_pst_proc *p = g_new0(mv_pst_proc, 1);
	p->argv_base = g_strdupv((char **)helper_argv);
	p->path = g_strdup(path);
	p->limits = *limits;
	p->skip_to = skip_to;
	mv_status st = spawn(p, 0, 0, 0, error_r);
	if (st != MV_OK) {
		mv_pst_proc_close(&p);
		return st;
	}
	int type = fgetc(p->in);
	if (type == REC_OPENED) {
		*proc_r = p;
		return MV_OK;
	}
	if (type == REC_FATAL) {
		gint64 code = MV_ERR_INPUT;
		char *msg = get_int(p->in, &code) ? get_text(p->in) : NULL;
		if (code <= MV_OK || code >= MV_STATUS_COUNT)
			code = MV_ERR_INPUT;
		st = mv_fail(error_r, (mv_status)code, "%s", msg != NULL ? msg : "cannot be read");
		g_free(msg);
	} else {
		char *how = reap(p);
		st = mv_fail(error_r, MV_ERR_INPUT, "%s: the PST reader ended opening it (%s)", path, how);
		g_free(how);
	}
	mv_pst_proc_close(&p);
	return st;
}

gint64 mv_pst_proc_other_items(const mv_pst_proc *p)
{
	return p->other_total + (p->ended ? 0 : p->other);
}

guint mv_pst_proc_crashes(const mv_pst_proc *p)
{
	return p->crashes;
}

/* The child ended without its end record: report the entry it was on and
 * start another after it. */
static mv_status crashed(mv_pst_proc *p, gint64 *index_r, char **error_r)
{
	if (p->pid != 0)
		kill(p->pid, SIGKILL); /* a garbled stream: it may still run */
	char *how = reap(p);
	p->crashes++;
	gint64 entry = p->entry, nid = p->nid, index = p->index, other = p->other;
	*index_r = index;
	mv_status st;
	if (entry == 0 || p->crashes > MAX_CRASHES) {
		/* Not even an entry begun, or too many: give the file up. */
		p->ended = TRUE;
		p->other_total += other;
		st = mv_fail(error_r, MV_ERR_INPUT, "the PST reader (libpst) ended (%s)%s; the rest of "
		             "the file is not read", how, p->crashes > MAX_CRASHES ? " too often" : "");
		g_free(how);
		return st;
	}
	st = mv_fail(error_r, MV_ERR_INPUT, "entry %" G_GINT64_FORMAT " (nid=%#" G_GINT64_MODIFIER
	             "x) cannot be read: the PST reader (libpst) ended (%s); reading on after it",
	             entry, (guint64)nid, how);
	g_free(how);
	char *err = NULL;
	if (spawn(p, entry, index, other, &err) != MV_OK) {
		p->ended = TRUE;
		p->other_total += other;
		g_free(*error_r);
		st = mv_fail(error_r, MV_ERR_INPUT, "%s", err);
		g_free(err);
		return st;
	}
	int type = fgetc(p->in);
	if (type != REC_OPENED) {
		/* It opened before: whatever this is, stop here. */
		g_free(reap(p));
		p->ended = TRUE;
		p->other_total += other;
	}
	return st;
}

mv_status mv_pst_proc_next(mv_pst_proc *p, mv_pst_item **item_r, gint64 *index_r, char **error_r)
{
	*item_r = NULL;
	*index_r = 0;
	while (!p->ended) {
		int type = fgetc(p->in);
		if (type == EOF)
			return crashed(p, index_r, error_r);
		if (type == REC_ENTRY) {
			if (!get_int(p->in, &p->entry) || !get_int(p->in, &p->nid) ||
			    !get_int(p->in, &p->index) || !get_int(p->in, &p->other))
				return crashed(p, index_r, error_r);
			continue;
		}
		if (type == REC_FAILED) {
			gint64 index = 0, code = MV_ERR_INPUT;
			char *msg = NULL;
			if (!get_int(p->in, &index) || !get_int(p->in, &code) || (msg = get_text(p->in)) == NULL)
				return crashed(p, index_r, error_r);
			if (code <= MV_OK || code >= MV_STATUS_COUNT)
				code = MV_ERR_INPUT;
			*index_r = index;
			mv_status st = mv_fail(error_r, (mv_status)code, "%s", msg);
			g_free(msg);
			return st;
		}
		if (type == REC_ITEM) {
			mv_pst_item *item = g_new0(mv_pst_item, 1);
			gint64 att = 0;
			guint8 *entry_id = NULL, *raw = NULL;
			gsize entry_len = 0, raw_len = 0;
			gboolean ok = get_int(p->in, &item->index) && get_int(p->in, &att) &&
			              (item->folder_path = get_text(p->in)) != NULL &&
			              (item->item_id = get_text(p->in)) != NULL &&
			              get_bytes(p->in, sizeof item->entry_id, &entry_id, &entry_len) &&
			              get_bytes(p->in, p->limits.max_message_bytes, &raw, &raw_len);
			if (!ok) {
				g_free(entry_id);
				g_free(raw);
				mv_pst_item_free(&item);
				return crashed(p, index_r, error_r);
			}
			memcpy(item->entry_id, entry_id, entry_len);
			item->entry_id_len = entry_len;
			g_free(entry_id);
			item->attachments = (guint)CLAMP(att, 0, G_MAXUINT);
			item->raw = g_bytes_new_take(raw, raw_len);
			*index_r = item->index;
			*item_r = item;
			return MV_OK;
		}
		if (type == REC_END) {
			gint64 other = 0;
			if (!get_int(p->in, &other))
				return crashed(p, index_r, error_r);
			p->other_total += other;
			p->ended = TRUE;
			g_free(reap(p));
			return MV_OK;
		}
		/* Anything else: the stream is not ours any more. */
		return crashed(p, index_r, error_r);
	}
	return MV_OK;
}

void mv_pst_proc_close(mv_pst_proc **proc)
{
	if (proc == NULL || *proc == NULL)
		return;
	mv_pst_proc *p = *proc;
	if (p->pid != 0)
		kill(p->pid, SIGKILL);
	g_free(reap(p));
	g_strfreev(p->argv_base);
	g_free(p->path);
	g_free(p);
	*proc = NULL;
}

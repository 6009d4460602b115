/* mv-import: walk import sources and feed the store in batches.
 * SECURITY: reads untrusted files; sizes are bounded by max_message_bytes. */
#include "mv-import.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "mv-hash.h"
#include "mv-pipeline.h"
#include "mv-msg.h"
#include "mv-pst.h"
#include "mv-pst-proc.h"

/* Where an earlier run left a source file (import_resume). */
typedef struct {
	gint64 position; /* PST: mail items; mbox: bytes */
	gint64 items;    /* messages */
} resume_point;

typedef struct {
	mv_db *db;
	mv_blobstore *blobs;
	const mv_import_options *opt;
	mv_import_stats *stats;
	GPtrArray *failures;
	mv_pipeline *pipeline;
	GMutex lock;            /* stats, failures, current */
	char *current;          /* file being read */
	gint64 last_progress;   /* monotonic, reader thread only */
	GPtrArray *files;       /* mv_import_file*, in the order read */
	GHashTable *resume;     /* identity -> resume_point*, as loaded */
	mv_pipeline_hook resume_hook;
	guint committed;        /* messages committed with a resume position */
	gboolean top_level;     /* the file being read was named by the caller */
} importer;

#define STAT(imp, expr)                  \
	do {                                 \
		g_mutex_lock(&(imp)->lock);      \
		expr;                            \
		g_mutex_unlock(&(imp)->lock);    \
	} while (0)

/* The pipeline failed for good (database gone): stop reading. */
static gboolean stopped(importer *imp)
{
	return mv_pipeline_failure(imp->pipeline, NULL) != MV_OK;
}

void mv_import_failure_free(gpointer failure)
{
	mv_import_failure *f = failure;
	if (f == NULL)
		return;
	g_free(f->where);
	g_free(f->error);
	g_free(f);
}

void mv_import_options_default(mv_import_options *options)
{
	*options = (mv_import_options){0};
	options->batch_size = 200;
	options->batch_bytes = 64 * 1024 * 1024;
	options->max_message_bytes = 256 * 1024 * 1024;
	options->mbox_variant = MV_MBOXRD;
	mv_parse_limits_default(&options->limits);
	options->train_dictionary = TRUE;
	options->index = TRUE;
	options->resume = TRUE;
}

static void add_failure(importer *imp, const char *where, const char *error)
{
	mv_import_failure *f = g_new0(mv_import_failure, 1);
	f->where = g_strdup(where);
	f->error = g_strdup(error);
	g_mutex_lock(&imp->lock);
	g_ptr_array_add(imp->failures, f);
	imp->stats->failed++;
	g_mutex_unlock(&imp->lock);
}

static void progress(importer *imp, gboolean force)
{
	if (imp->opt->progress == NULL)
		return;
	gint64 now = g_get_monotonic_time();
	if (!force && now - imp->last_progress < 200 * 1000)
		return;
	imp->last_progress = now;
	g_mutex_lock(&imp->lock);
	mv_import_stats copy = *imp->stats;
	char *current = g_strdup(imp->current);
	g_mutex_unlock(&imp->lock);
	imp->opt->progress(imp->opt->progress_context, &copy, current);
	g_free(current);
}

void mv_import_file_free(gpointer file)
{
	mv_import_file *f = file;
	if (f == NULL)
		return;
	g_free(f->path);
	g_free(f);
}

static mv_import_file *file_begin(importer *imp, const char *path, const char *kind)
{
	mv_import_file *f = g_new0(mv_import_file, 1);
	f->path = g_strdup(path);
	f->kind = kind;
	g_mutex_lock(&imp->lock);
	g_ptr_array_add(imp->files, f);
	g_mutex_unlock(&imp->lock);
	return f;
}

typedef struct {
	importer *imp;
	char *where;
	mv_import_file *file;
	gboolean reconstructed;
	/* the resume position once this message is committed */
	char *identity;        /* or NULL: nothing to resume */
	const char *kind;
	char *path;
	gint64 position, items;
	gboolean last;         /* the file's last message: the file is done */
} submitted;

/* The pipeline's outcome of one message: counted only after COMMIT. */
static void on_done(void *context, const mv_pipeline_outcome *o)
{
	submitted *sub = context;
	importer *imp = sub->imp;
	mv_import_file *f = sub->file;
	if (o->status == MV_OK) {
		/* Each record: an unwrapped journal report is two. */
		for (guint i = 0; i < o->n; i++) {
			const mv_pipeline_record *r = &o->records[i];
			if (r->is_new)
				STAT(imp, imp->stats->new_count++; imp->stats->flagged += r->flagged;
				     if (f != NULL) { f->stats.new_count++; f->stats.flagged += r->flagged; });
			else
				STAT(imp, imp->stats->duplicate++; if (f != NULL) f->stats.duplicate++);
		}
		if (sub->reconstructed)
			STAT(imp, imp->stats->reconstructed++; if (f != NULL) f->stats.reconstructed++);
	} else {
		add_failure(imp, sub->where, o->error);
		if (f != NULL)
			STAT(imp, f->stats.failed++);
	}
	if (o->status == MV_OK && sub->identity != NULL && imp->opt->test_die_after_commits > 0 &&
	    ++imp->committed >= imp->opt->test_die_after_commits)
		raise(SIGKILL); /* tests: an import killed right after a commit */
	g_free(sub->where);
	g_free(sub->identity);
	g_free(sub->path);
	g_free(sub);
}

/* The resume hook: in the transaction that commits a source's messages,
 * the position after the last of them (per source file). */
static mv_status resume_send(mv_db *db, void *context, gpointer const *args, guint n,
                             char **error_r)
{
	(void)context;
	for (guint i = 0; i < n; i++) {
		const submitted *sub = args[i];
		if (sub->identity == NULL)
			continue;
		/* Only the last of a run of the same file. */
		if (i + 1 < n && ((const submitted *)args[i + 1])->identity != NULL &&
		    strcmp(((const submitted *)args[i + 1])->identity, sub->identity) == 0)
			continue;
		char pos[24], items[24];
		g_snprintf(pos, sizeof pos, "%" G_GINT64_FORMAT, sub->position);
		g_snprintf(items, sizeof items, "%" G_GINT64_FORMAT, sub->items);
		char *path = mv_utf8_clean(sub->path, -1);
		const char *v[] = {sub->identity, path, sub->kind, pos, items, sub->last ? "t" : "f"};
		/* A finished file read again starts over (its row too). */
		mv_status st = mv_db_send(db,
		                          "INSERT INTO import_resume (identity, path, kind, position, items, done) "
		                          "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (identity) DO UPDATE SET "
		                          "position = CASE WHEN import_resume.done THEN excluded.position "
		                          "ELSE greatest(import_resume.position, excluded.position) END, "
		                          "items = CASE WHEN import_resume.done THEN excluded.items "
		                          "ELSE greatest(import_resume.items, excluded.items) END, "
		                          "done = excluded.done, path = excluded.path, updated_at = now()",
		                          6, v, error_r);
		g_free(path);
		if (st != MV_OK)
			return st;
	}
	return MV_OK;
}

typedef struct {
	const char *identity; /* or NULL */
	const char *kind;
	const char *path;
	gint64 position, items;
	gboolean last;
} resume_at;

/* Hand one message read from the sources to the pipeline. */
static void submit_message(importer *imp, GBytes *raw, const mv_arrival_info *arrival,
                           mv_import_file *file, const resume_at *resume)
{
	gint64 size = (gint64)g_bytes_get_size(raw);
	STAT(imp, imp->stats->seen++; imp->stats->bytes += size;
	     if (file != NULL) { file->stats.seen++; file->stats.bytes += size; });
	submitted *sub = g_new0(submitted, 1);
	sub->imp = imp;
	sub->where = g_strdup(arrival->source_ref);
	sub->file = file;
	sub->reconstructed = arrival->reconstructed;
	if (resume != NULL && resume->identity != NULL && imp->opt->resume) {
		sub->identity = g_strdup(resume->identity);
		sub->kind = resume->kind;
		sub->path = g_strdup(resume->path);
		sub->position = resume->position;
		sub->items = resume->items;
		sub->last = resume->last;
	}
	mv_pipeline_submission s = {.raw = raw, .arrival = arrival,
	                            .unwrap_journal = imp->opt->journal_reports,
	                            .hook = sub->identity != NULL ? &imp->resume_hook : NULL,
	                            .hook_arg = sub,
	                            .done = on_done, .done_context = sub};
	mv_pipeline_submit(imp->pipeline, &s);
	progress(imp, FALSE);
}

static void add_message(importer *imp, GBytes *raw, const char *ref, const char *envelope_from,
                        mv_import_file *file, const resume_at *resume)
{
	mv_arrival_info arrival = {.source_ref = ref, .envelope_from = envelope_from};
	submit_message(imp, raw, &arrival, file, resume);
}

/* Where an unfinished earlier run left this file, or NULL (never read,
 * or read to its end: then it is read again from the start). */
static const resume_point *resume_lookup(importer *imp, const char *identity)
{
	return imp->resume != NULL && imp->opt->resume ? g_hash_table_lookup(imp->resume, identity)
	                                               : NULL;
}

/* The identity of an mbox or zip for resuming: its kind, path, size,
 * modification time and the SHA-256 of its first 64 KiB (or NULL when
 * unreadable). */
static char *file_identity(const char *kind, const char *path)
{
	struct stat sb;
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return NULL;
	if (fstat(fileno(f), &sb) != 0) {
		fclose(f);
		return NULL;
	}
	guint8 *head = g_malloc(65536);
	gsize n = fread(head, 1, 65536, f);
	fclose(f);
	uint8_t sha[MV_SHA256_LEN];
	char hex[MV_SHA256_HEX_LEN + 1];
	mv_sha256(head, n, sha);
	mv_sha256_to_hex(sha, hex);
	g_free(head);
	char *abs = g_canonicalize_filename(path, NULL);
	char *id = g_strdup_printf("%s:%s:%" G_GINT64_FORMAT ":%" G_GINT64_FORMAT ".%09ld:%s", kind,
	                           abs, (gint64)sb.st_size, (gint64)sb.st_mtim.tv_sec,
	                           sb.st_mtim.tv_nsec, hex);
	g_free(abs);
	return id;
}

/* SHA-256 of a whole file, read in 1 MiB blocks. */
static gboolean file_sha256(const char *path, uint8_t out[MV_SHA256_LEN], char **error_r)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		*error_r = g_strdup_printf("cannot read %s: %s", path, g_strerror(errno));
		return FALSE;
	}
	GChecksum *sum = g_checksum_new(G_CHECKSUM_SHA256);
	guint8 *buf = g_malloc(1 << 20);
	gsize n;
	while ((n = fread(buf, 1, 1 << 20, f)) > 0)
		g_checksum_update(sum, buf, (gssize)n);
	gboolean ok = !ferror(f);
	if (!ok)
		*error_r = g_strdup_printf("cannot read %s: %s", path, g_strerror(errno));
	fclose(f);
	g_free(buf);
	gsize len = MV_SHA256_LEN;
	g_checksum_get_digest(sum, out, &len);
	g_checksum_free(sum);
	return ok;
}

static void submit_pst_item(importer *imp, const char *path, const uint8_t *sha,
                            const char *identity, mv_import_file *file, mv_pst_item *item,
                            gboolean last)
{
	char *ref = g_strdup_printf("%s#%" G_GINT64_FORMAT, path, item->index);
	mv_arrival_info arrival = {
		.source_ref = ref,
		.source_sha256 = sha,
		.folder_path = item->folder_path,
		.item_id = item->item_id,
		.entry_id = item->entry_id_len > 0 ? item->entry_id : NULL,
		.entry_id_len = item->entry_id_len,
		.reconstructed = TRUE,
	};
	resume_at at = {.identity = identity, .kind = "pst", .path = path,
	                .position = item->index, .items = item->index, .last = last};
	submit_message(imp, item->raw, &arrival, file, &at);
	g_free(ref);
}

/* ---- zip archives of messages ---- */

#define ZIP_MAX_ENTRIES 10000000

static ssize_t zip_cookie_read(void *cookie, char *buf, size_t n)
{
	la_ssize_t r = archive_read_data(cookie, buf, n);
	return r < 0 ? -1 : (ssize_t)r;
}

/* One message of a zip, held back until the next is known, so that the
 * last one can say the file is done. */
typedef struct {
	GBytes *raw;
	char *ref;
	gboolean msg;            /* rebuilt from an MSG member */
	uint8_t sha[MV_SHA256_LEN];
	guint8 *entry_id;
	gsize entry_id_len;
	gint64 items;
} zip_held;

static void zip_flush(importer *imp, const char *path, const char *identity, mv_import_file *file,
                      zip_held *h, gboolean last)
{
	if (h->raw == NULL)
		return;
	mv_arrival_info arrival = {.source_ref = h->ref};
	if (h->msg) {
		arrival.source_sha256 = h->sha;
		arrival.item_id = "msg";
		arrival.entry_id = h->entry_id;
		arrival.entry_id_len = h->entry_id_len;
		arrival.reconstructed = TRUE;
	}
	resume_at at = {.identity = identity, .kind = "zip", .path = path, .position = h->items,
	                .items = h->items, .last = last};
	submit_message(imp, h->raw, &arrival, file, &at);
	g_bytes_unref(h->raw);
	g_free(h->ref);
	g_free(h->entry_id);
	*h = (zip_held){0};
}

static void zip_hold(importer *imp, const char *path, const char *identity, mv_import_file *file,
                     zip_held *h, GBytes *raw, const char *ref, gint64 items)
{
	zip_flush(imp, path, identity, file, h, FALSE);
	gsize len = 0;
	const guint8 *d = g_bytes_get_data(raw, &len);
	if (mv_msg_looks_like(d, len)) {
		mv_msg_result *res = NULL;
		char *err = NULL;
		if (mv_msg_read(d, len, imp->opt->max_message_bytes, &res, &err) != MV_OK) {
			STAT(imp, imp->stats->seen++; file->stats.seen++; file->stats.failed++);
			add_failure(imp, ref, err);
			g_free(err);
			return;
		}
		if (!res->is_mail) {
			STAT(imp, imp->stats->other_items++; file->stats.other_items++);
			mv_msg_result_free(&res);
			return;
		}
		h->msg = TRUE;
		mv_sha256(d, len, h->sha);
		h->raw = g_bytes_ref(res->raw);
		h->entry_id = g_steal_pointer(&res->entry_id);
		h->entry_id_len = res->entry_id_len;
		mv_msg_result_free(&res);
	} else {
		h->raw = g_bytes_ref(raw);
	}
	h->ref = g_strdup(ref);
	h->items = items;
}

static gboolean zip_member_is_mbox(const char *name)
{
	char *base = g_path_get_basename(name);
	char *lower = g_ascii_strdown(base, -1);
	gboolean yes = g_str_has_suffix(lower, ".mbox") || g_str_has_suffix(lower, ".mbx") ||
	               strcmp(lower, "mbox") == 0;
	g_free(lower);
	g_free(base);
	return yes;
}

/* A zip of messages (.eml, .msg, any other file is one message; an mbox
 * member is split), streamed: one member at a time, at most one message
 * in memory. */
static void import_zip(importer *imp, const char *path)
{
	mv_import_file *file = file_begin(imp, path, "zip");
	char *identity = imp->opt->resume ? file_identity("zip", path) : NULL;
	const resume_point *rp = identity != NULL ? resume_lookup(imp, identity) : NULL;
	gint64 skip = rp != NULL ? rp->items : 0;
	if (rp != NULL)
		file->resumed_from = rp->items;
	struct archive *a = archive_read_new();
	archive_read_support_format_zip_streamable(a);
	archive_read_support_filter_none(a);
	if (archive_read_open_filename(a, path, 1 << 16) != ARCHIVE_OK) {
		char *e = g_strdup_printf("%s: not a zip file that can be read: %s", path,
		                          archive_error_string(a) != NULL ? archive_error_string(a) : "?");
		add_failure(imp, path, e);
		STAT(imp, file->stats.failed++);
		g_free(e);
		archive_read_free(a);
		g_free(identity);
		return;
	}
	zip_held held = {0};
	gint64 entries = 0, items = 0, resumed = 0;
	gboolean complete = FALSE;
	struct archive_entry *e;
	int r;
	while (!stopped(imp) && (r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
		if (++entries > ZIP_MAX_ENTRIES) {
			add_failure(imp, path, "more than 10,000,000 zip members: the rest is not read");
			STAT(imp, file->stats.failed++);
			break;
		}
		if (archive_entry_filetype(e) != AE_IFREG)
			continue;
		const char *name = archive_entry_pathname(e);
		if (name == NULL || strstr(name, "__MACOSX/") != NULL)
			continue;
		char *base = g_path_get_basename(name);
		gboolean hidden = base[0] == '.';
		g_free(base);
		if (hidden)
			continue;
		char *ref = g_strdup_printf("%s#%s", path, name);
		if (zip_member_is_mbox(name)) {
			static cookie_io_functions_t io = {.read = zip_cookie_read};
			FILE *f = fopencookie(a, "rb", io);
			mv_mbox_reader *mr = f != NULL ? mv_mbox_open_stream(f, ref, imp->opt->mbox_variant) : NULL;
			char *err = NULL;
			while (mr != NULL && !stopped(imp)) {
				GBytes *msg = NULL;
				char *from = NULL;
				gint64 index = 0;
				mv_status st = mv_mbox_next(mr, imp->opt->max_message_bytes, &msg, &from, &index, &err);
				char *mref = g_strdup_printf("%s#%" G_GINT64_FORMAT, ref, index);
				g_free(from);
				if (st == MV_OK && msg == NULL) {
					g_free(mref);
					break;
				}
				items++;
				if (items <= skip) {
					resumed++;
				} else if (st != MV_OK) {
					STAT(imp, imp->stats->seen++; file->stats.seen++; file->stats.failed++);
					add_failure(imp, mref, err);
				} else {
					zip_hold(imp, path, identity, file, &held, msg, mref, items);
				}
				if (msg != NULL)
					g_bytes_unref(msg);
				g_clear_pointer(&err, g_free);
				g_free(mref);
				if (st != MV_OK && st != MV_ERR_LIMIT)
					break;
			}
			mv_mbox_close(&mr);
			g_free(ref);
			continue;
		}
		items++;
		if (items <= skip) {
			resumed++;
			archive_read_data_skip(a);
			g_free(ref);
			continue;
		}
		la_int64_t declared = archive_entry_size_is_set(e) ? archive_entry_size(e) : -1;
		if (declared > (la_int64_t)imp->opt->max_message_bytes) {
			char *msg = g_strdup_printf("%s is larger than the limit of %zu bytes", ref,
			                            imp->opt->max_message_bytes);
			STAT(imp, imp->stats->seen++; file->stats.seen++; file->stats.failed++);
			add_failure(imp, ref, msg);
			g_free(msg);
			archive_read_data_skip(a);
			g_free(ref);
			continue;
		}
		GByteArray *buf = g_byte_array_new();
		guint8 chunk[65536];
		la_ssize_t n;
		gboolean too_big = FALSE;
		while ((n = archive_read_data(a, chunk, sizeof chunk)) > 0) {
			if (buf->len + (gsize)n > imp->opt->max_message_bytes) {
				too_big = TRUE;
				break;
			}
			g_byte_array_append(buf, chunk, (guint)n);
		}
		if (n < 0 || too_big) {
			char *msg = too_big ? g_strdup_printf("%s is larger than the limit of %zu bytes", ref,
			                                      imp->opt->max_message_bytes)
			                    : g_strdup_printf("%s: %s", ref, archive_error_string(a));
			STAT(imp, imp->stats->seen++; file->stats.seen++; file->stats.failed++);
			add_failure(imp, ref, msg);
			g_free(msg);
			g_byte_array_free(buf, TRUE);
			g_free(ref);
			if (n < 0)
				break;
			archive_read_data_skip(a);
			continue;
		}
		if (buf->len == 0) {
			STAT(imp, imp->stats->empty_files++; file->stats.empty_files++);
			g_byte_array_free(buf, TRUE);
			g_free(ref);
			continue;
		}
		GBytes *raw = g_byte_array_free_to_bytes(buf);
		zip_hold(imp, path, identity, file, &held, raw, ref, items);
		g_bytes_unref(raw);
		g_free(ref);
	}
	if (!stopped(imp) && r == ARCHIVE_EOF)
		complete = TRUE;
	else if (!stopped(imp) && r != ARCHIVE_OK) {
		char *msg = g_strdup_printf("%s: %s", path, archive_error_string(a) != NULL
		                                                ? archive_error_string(a) : "cannot be read");
		add_failure(imp, path, msg);
		STAT(imp, file->stats.failed++);
		g_free(msg);
	}
	zip_flush(imp, path, identity, file, &held, complete);
	STAT(imp, imp->stats->resumed += resumed; file->stats.resumed += resumed);
	archive_read_free(a);
	g_free(identity);
}

static gboolean is_zip_name(const char *path)
{
	char *lower = g_ascii_strdown(path, -1);
	gboolean yes = g_str_has_suffix(lower, ".zip");
	g_free(lower);
	return yes;
}

/* Every mail item of a PST / OST, rebuilt (mv-pst.h). */
static void import_pst(importer *imp, const char *path)
{
	mv_import_file *file = file_begin(imp, path, "pst");
	uint8_t sha[MV_SHA256_LEN];
	char *err = NULL;
	if (!file_sha256(path, sha, &err)) {
		add_failure(imp, path, err);
		STAT(imp, file->stats.failed++);
		g_free(err);
		return;
	}
	char hex[MV_SHA256_HEX_LEN + 1];
	mv_sha256_to_hex(sha, hex);
	char *identity = g_strdup_printf("pst:%s", hex);
	gint64 skip_to = 1;
	const resume_point *rp = resume_lookup(imp, identity);
	if (rp != NULL) {
		skip_to = rp->position + 1;
		file->resumed_from = rp->position;
	}
	mv_pst_limits limits;
	mv_pst_limits_default(&limits);
	limits.max_message_bytes = imp->opt->max_message_bytes;
	mv_pst *pst = NULL;
	mv_pst_proc *proc = NULL;
	mv_status ost = imp->opt->pst_helper != NULL
	                    ? mv_pst_proc_open(imp->opt->pst_helper, path, &limits, skip_to, &proc, &err)
	                    : mv_pst_open(path, &limits, &pst, &err);
	if (ost != MV_OK) {
		add_failure(imp, path, err);
		STAT(imp, file->stats.failed++);
		g_free(err);
		g_free(identity);
		return;
	}
	/* Each item is submitted once the next is known, the last as the
	 * file's end (a finished file is read again from its start). */
	mv_pst_item *held = NULL;
	for (;;) {
		mv_pst_item *item = NULL;
		gint64 index = 0;
		mv_status st = stopped(imp)     ? MV_OK
		               : proc != NULL ? mv_pst_proc_next(proc, &item, &index, &err)
		                              : mv_pst_next(pst, skip_to, &item, &index, &err);
		if (held != NULL && (st == MV_OK || stopped(imp))) {
			submit_pst_item(imp, path, sha, identity, file, held, item == NULL && !stopped(imp));
			mv_pst_item_free(&held);
		}
		if (st != MV_OK) {
			char *where = g_strdup_printf("%s#%" G_GINT64_FORMAT, path, index);
			STAT(imp, imp->stats->seen++; file->stats.seen++; file->stats.failed++);
			add_failure(imp, where, err);
			g_free(where);
			g_clear_pointer(&err, g_free);
			continue;
		}
		if (item == NULL)
			break;
		held = item;
	}
	gint64 other = proc != NULL ? mv_pst_proc_other_items(proc) : mv_pst_other_items(pst);
	STAT(imp, imp->stats->other_items += other; file->stats.other_items += other;
	     if (skip_to > 1) { imp->stats->resumed += skip_to - 1; file->stats.resumed += skip_to - 1; });
	mv_pst_close(&pst);
	mv_pst_proc_close(&proc);
	g_free(identity);
}

static void import_mbox(importer *imp, const char *path)
{
	mv_import_file *file = file_begin(imp, path, "mbox");
	mv_mbox_reader *r = NULL;
	char *err = NULL;
	if (mv_mbox_open(path, imp->opt->mbox_variant, &r, &err) != MV_OK) {
		add_failure(imp, path, err);
		STAT(imp, file->stats.failed++);
		g_free(err);
		return;
	}
	char *identity = imp->opt->resume ? file_identity("mbox", path) : NULL;
	struct stat msb;
	gint64 mbox_size = stat(path, &msb) == 0 ? (gint64)msb.st_size : G_MAXINT64;
	const resume_point *rp = identity != NULL ? resume_lookup(imp, identity) : NULL;
	if (rp != NULL) {
		if (mv_mbox_seek(r, rp->position, rp->items, &err) != MV_OK) {
			add_failure(imp, path, err);
			STAT(imp, file->stats.failed++);
			g_free(err);
			g_free(identity);
			mv_mbox_close(&r);
			return;
		}
		file->resumed_from = rp->position;
		STAT(imp, imp->stats->resumed += rp->items; file->stats.resumed += rp->items);
	}
	while (!stopped(imp)) {
		GBytes *msg = NULL;
		char *from = NULL;
		gint64 index = 0;
		mv_status st = mv_mbox_next(r, imp->opt->max_message_bytes, &msg, &from, &index, &err);
		char *ref = g_strdup_printf("%s#%" G_GINT64_FORMAT, path, index);
		if (st == MV_ERR_LIMIT) {
			STAT(imp, imp->stats->seen++; file->stats.seen++; file->stats.failed++);
			add_failure(imp, ref, err);
			g_clear_pointer(&err, g_free);
			g_free(ref);
			continue;
		}
		if (st != MV_OK) {
			add_failure(imp, ref, err);
			STAT(imp, file->stats.failed++);
			g_clear_pointer(&err, g_free);
			g_free(ref);
			break;
		}
		if (msg == NULL) {
			g_free(ref);
			break;
		}
		resume_at at = {.identity = identity, .kind = "mbox", .path = path,
		                .position = mv_mbox_offset(r), .items = index,
		                .last = mv_mbox_offset(r) >= mbox_size};
		add_message(imp, msg, ref, from, file, &at);
		g_bytes_unref(msg);
		g_free(from);
		g_free(ref);
	}
	g_free(identity);
	mv_mbox_close(&r);
}

/* An mbox is a file that starts with a From_ line and is named like one
 * (*.mbox, *.mbx, mbox) or holds a second From_ line after an empty line.
 * A lone message file that happens to begin with a From_ line is archived
 * whole, byte for byte. */
static gboolean is_mbox_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return FALSE;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n = getline(&line, &cap, f);
	gboolean mbox = FALSE;
	if (n >= 5 && mv_mbox_looks_like(line, (gsize)n)) {
		char *base = g_path_get_basename(path);
		char *lower = g_ascii_strdown(base, -1);
		mbox = g_str_has_suffix(lower, ".mbox") || g_str_has_suffix(lower, ".mbx") ||
		       strcmp(lower, "mbox") == 0;
		g_free(lower);
		g_free(base);
		gboolean prev_empty = FALSE;
		while (!mbox && (n = getline(&line, &cap, f)) >= 0) {
			if (prev_empty && mv_mbox_looks_like(line, (gsize)n))
				mbox = TRUE;
			prev_empty = (n == 1 && line[0] == '\n') || (n == 2 && line[0] == '\r' && line[1] == '\n');
		}
	}
	free(line);
	fclose(f);
	return mbox;
}

/* The first 8 bytes of a file (fewer when it is shorter). */
static gsize file_head(const char *path, guint8 head[8])
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return 0;
	gsize n = fread(head, 1, 8, f);
	fclose(f);
	return n;
}

/* An Outlook MSG file: rebuilt from its properties (mv-msg.h). */
static void import_msg(importer *imp, const char *path, GBytes *data)
{
	/* A file of its own in the report only when named on the command
	 * line: a tree of a million files reports its containers. */
	mv_import_file *file = imp->top_level ? file_begin(imp, path, "msg") : NULL;
	gsize len = 0;
	const guint8 *d = g_bytes_get_data(data, &len);
	mv_msg_result *res = NULL;
	char *err = NULL;
	if (mv_msg_read(d, len, imp->opt->max_message_bytes, &res, &err) != MV_OK) {
		STAT(imp, imp->stats->seen++; if (file != NULL) { file->stats.seen++; file->stats.failed++; });
		add_failure(imp, path, err);
		g_free(err);
		return;
	}
	if (!res->is_mail) {
		STAT(imp, imp->stats->other_items++; if (file != NULL) file->stats.other_items++);
		mv_msg_result_free(&res);
		return;
	}
	uint8_t sha[MV_SHA256_LEN];
	mv_sha256(d, len, sha);
	mv_arrival_info arrival = {
		.source_ref = path,
		.source_sha256 = sha,
		.item_id = "msg",
		.entry_id = res->entry_id,
		.entry_id_len = res->entry_id_len,
		.reconstructed = TRUE,
	};
	submit_message(imp, res->raw, &arrival, file, NULL);
	mv_msg_result_free(&res);
}

static void import_file(importer *imp, const char *path, gboolean allow_mbox)
{
	struct stat sb;
	if (stat(path, &sb) != 0) {
		char *e = g_strdup_printf("cannot read %s: %s", path, g_strerror(errno));
		add_failure(imp, path, e);
		g_free(e);
		return;
	}
	if (!S_ISREG(sb.st_mode)) {
		/* A FIFO or a device would block or never end. */
		char *e = g_strdup_printf("%s is not a regular file", path);
		add_failure(imp, path, e);
		g_free(e);
		return;
	}
	g_mutex_lock(&imp->lock);
	g_free(imp->current);
	imp->current = g_strdup(path);
	g_mutex_unlock(&imp->lock);
	if (sb.st_size == 0) {
		STAT(imp, imp->stats->empty_files++);
		return;
	}
	guint8 head[8];
	gsize head_len = file_head(path, head);
	if (mv_pst_looks_like(head, head_len)) {
		import_pst(imp, path);
		return;
	}
	if (head_len >= 4 && memcmp(head, "PK\x03\x04", 4) == 0 && is_zip_name(path)) {
		import_zip(imp, path);
		return;
	}
	if (allow_mbox && is_mbox_file(path)) {
		import_mbox(imp, path);
		return;
	}
	if ((guint64)sb.st_size > imp->opt->max_message_bytes) {
		STAT(imp, imp->stats->seen++);
		char *e = g_strdup_printf("%s is larger than the limit of %zu bytes", path,
		                          imp->opt->max_message_bytes);
		add_failure(imp, path, e);
		g_free(e);
		return;
	}
	char *data = NULL;
	gsize len = 0;
	GError *gerr = NULL;
	if (!g_file_get_contents(path, &data, &len, &gerr)) {
		STAT(imp, imp->stats->seen++);
		add_failure(imp, path, gerr->message);
		g_error_free(gerr);
		return;
	}
	GBytes *raw = g_bytes_new_take(data, len);
	if (mv_msg_looks_like(head, head_len))
		import_msg(imp, path, raw);
	else
		add_message(imp, raw, path, NULL, imp->top_level ? file_begin(imp, path, "message") : NULL,
		            NULL);
	g_bytes_unref(raw);
}

static gint compare_names(gconstpointer a, gconstpointer b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted entry names of dir (hidden ones skipped unless with_hidden). */
static GPtrArray *list_dir(importer *imp, const char *dir, gboolean with_hidden)
{
	GError *gerr = NULL;
	GDir *d = g_dir_open(dir, 0, &gerr);
	if (d == NULL) {
		add_failure(imp, dir, gerr->message);
		g_error_free(gerr);
		return NULL;
	}
	GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
	const char *name;
	while ((name = g_dir_read_name(d)) != NULL)
		if (with_hidden || name[0] != '.')
			g_ptr_array_add(names, g_strdup(name));
	g_dir_close(d);
	g_ptr_array_sort(names, compare_names);
	return names;
}

static gboolean is_maildir(const char *dir)
{
	char *cur = g_build_filename(dir, "cur", NULL);
	char *new_ = g_build_filename(dir, "new", NULL);
	gboolean yes = g_file_test(cur, G_FILE_TEST_IS_DIR) && g_file_test(new_, G_FILE_TEST_IS_DIR);
	g_free(cur);
	g_free(new_);
	return yes;
}

static void import_dir(importer *imp, const char *dir, guint depth);

static void import_maildir(importer *imp, const char *dir, guint depth)
{
	static const char *const subs[] = {"cur", "new"};
	for (gsize s = 0; s < G_N_ELEMENTS(subs) && !stopped(imp); s++) {
		char *sub = g_build_filename(dir, subs[s], NULL);
		GPtrArray *names = list_dir(imp, sub, FALSE);
		for (guint i = 0; names != NULL && i < names->len && !stopped(imp); i++) {
			char *path = g_build_filename(sub, names->pdata[i], NULL);
			if (g_file_test(path, G_FILE_TEST_IS_REGULAR))
				import_file(imp, path, FALSE);
			g_free(path);
		}
		if (names != NULL)
			g_ptr_array_free(names, TRUE);
		g_free(sub);
	}
	/* Maildir++ folders (.Sent, .Archive.2024, ...) live inside it. */
	GPtrArray *names = list_dir(imp, dir, TRUE);
	for (guint i = 0; names != NULL && i < names->len && !stopped(imp); i++) {
		const char *name = names->pdata[i];
		if (name[0] != '.' || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
			continue;
		char *path = g_build_filename(dir, name, NULL);
		if (g_file_test(path, G_FILE_TEST_IS_DIR) && !g_file_test(path, G_FILE_TEST_IS_SYMLINK) &&
		    is_maildir(path))
			import_maildir(imp, path, depth + 1);
		g_free(path);
	}
	if (names != NULL)
		g_ptr_array_free(names, TRUE);
}

static void import_dir(importer *imp, const char *dir, guint depth)
{
	if (depth > 64) {
		add_failure(imp, dir, "directory tree deeper than 64 levels");
		return;
	}
	if (is_maildir(dir)) {
		import_maildir(imp, dir, depth);
		return;
	}
	GPtrArray *names = list_dir(imp, dir, FALSE);
	for (guint i = 0; names != NULL && i < names->len && !stopped(imp); i++) {
		char *path = g_build_filename(dir, names->pdata[i], NULL);
		if (g_file_test(path, G_FILE_TEST_IS_SYMLINK))
			; /* never follow links inside a tree: no loops, no escapes */
		else if (g_file_test(path, G_FILE_TEST_IS_DIR))
			import_dir(imp, path, depth + 1);
		else if (g_file_test(path, G_FILE_TEST_IS_REGULAR))
			import_file(imp, path, TRUE);
		g_free(path);
	}
	if (names != NULL)
		g_ptr_array_free(names, TRUE);
}

mv_status mv_import_paths(mv_db *db, mv_blobstore *blobs, const char *const *paths,
                          const mv_import_options *options, mv_import_stats *stats_r,
                          GPtrArray *failures, char **error_r)
{
	*stats_r = (mv_import_stats){0};
	importer imp = {
		.db = db,
		.blobs = blobs,
		.opt = options,
		.stats = stats_r,
		.failures = failures,
	};
	g_mutex_init(&imp.lock);
	imp.files = g_ptr_array_new_with_free_func(mv_import_file_free);
	imp.resume_hook = (mv_pipeline_hook){.name = "import resume", .send = resume_send};
	if (options->resume) {
		/* Where earlier runs left their files: read before the pipeline
		 * takes the connection. */
		PGresult *r = NULL;
		char *rerr = NULL;
		if (mv_db_query(db, "SELECT identity, position, items FROM import_resume "
		                    "WHERE NOT done ORDER BY updated_at DESC LIMIT 1000000",
		                0, NULL, NULL, NULL, 0, &r, &rerr) == MV_OK) {
			imp.resume = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
			for (int i = 0; i < PQntuples(r); i++) {
				resume_point *rp = g_new0(resume_point, 1);
				rp->position = g_ascii_strtoll(PQgetvalue(r, i, 1), NULL, 10);
				rp->items = g_ascii_strtoll(PQgetvalue(r, i, 2), NULL, 10);
				g_hash_table_insert(imp.resume, g_strdup(PQgetvalue(r, i, 0)), rp);
			}
		}
		/* A database without the table (or a role without the grant)
		 * imports from the start. */
		g_free(rerr);
		PQclear(r);
	}
	mv_pipeline_options po;
	mv_pipeline_options_default(&po);
	po.source = options->source != NULL ? options->source : "import";
	po.db = options->db_options;
	po.db_conn = db;
	po.blobs = blobs;
	po.group_max = options->batch_size;
	po.group_bytes = options->batch_bytes;
	po.in_flight_max = MAX(options->batch_size * 2, 64);
	po.limits = options->limits;
	po.parse_threads = options->parse_threads;
	po.ordered = TRUE;
	po.full_groups = TRUE;
	po.train_dictionary = options->train_dictionary;
	po.train_first = TRUE;
	po.index = options->index ? MV_PIPELINE_INDEX_CONCURRENT : MV_PIPELINE_INDEX_NONE;
	po.index_before_free = options->index;
	mv_status st = mv_pipeline_new(&po, &imp.pipeline, error_r);
	if (st != MV_OK) {
		g_mutex_clear(&imp.lock);
		g_ptr_array_free(imp.files, TRUE);
		if (imp.resume != NULL)
			g_hash_table_destroy(imp.resume);
		return st;
	}
	for (const char *const *p = paths; *p != NULL && !stopped(&imp); p++) {
		struct stat sb;
		if (stat(*p, &sb) != 0) {
			/* The system's reason: no such file, a symlink loop, ... */
			char *e = g_strdup_printf("%s: %s", *p, g_strerror(errno));
			add_failure(&imp, *p, e);
			g_free(e);
		} else if (S_ISDIR(sb.st_mode)) {
			import_dir(&imp, *p, 0);
		} else {
			imp.top_level = TRUE;
			import_file(&imp, *p, TRUE);
			imp.top_level = FALSE;
		}
	}
	mv_pipeline_flush(imp.pipeline);
	char *fatal_error = NULL;
	mv_status fatal = mv_pipeline_failure(imp.pipeline, &fatal_error);
	/* Returns once what it stored is indexed (unless --no-index). */
	mv_pipeline_free(&imp.pipeline);
	progress(&imp, TRUE);
	g_free(imp.current);
	g_mutex_clear(&imp.lock);
	if (options->files != NULL)
		for (guint i = 0; i < imp.files->len; i++)
			g_ptr_array_add(options->files, g_steal_pointer(&imp.files->pdata[i]));
	g_ptr_array_free(imp.files, TRUE);
	if (imp.resume != NULL)
		g_hash_table_destroy(imp.resume);
	if (fatal != MV_OK) {
		st = mv_fail(error_r, fatal, "%s", fatal_error);
		g_free(fatal_error);
		return st;
	}
	if (stats_r->failed > 0)
		return mv_fail(error_r, MV_ERR_PARTIAL, "%" G_GINT64_FORMAT " messages failed",
		               stats_r->failed);
	return MV_OK;
}

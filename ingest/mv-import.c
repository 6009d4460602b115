/* mv-import: walk import sources and feed the store in batches.
 * SECURITY: reads untrusted files; sizes are bounded by max_message_bytes. */
#include "mv-import.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "mv-pipeline.h"

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

typedef struct {
	importer *imp;
	char *where;
} submitted;

/* The pipeline's outcome of one message: counted only after COMMIT. */
static void on_done(void *context, const mv_pipeline_outcome *o)
{
	submitted *sub = context;
	importer *imp = sub->imp;
	if (o->status == MV_OK) {
		/* Each record: an unwrapped journal report is two. */
		for (guint i = 0; i < o->n; i++) {
			const mv_pipeline_record *r = &o->records[i];
			if (r->is_new)
				STAT(imp, imp->stats->new_count++; imp->stats->flagged += r->flagged);
			else
				STAT(imp, imp->stats->duplicate++);
		}
	} else {
		add_failure(imp, sub->where, o->error);
	}
	g_free(sub->where);
	g_free(sub);
}

/* Hand one message read from the sources to the pipeline. */
static void add_message(importer *imp, GBytes *raw, const char *ref, const char *envelope_from)
{
	STAT(imp, imp->stats->seen++; imp->stats->bytes += (gint64)g_bytes_get_size(raw));
	submitted *sub = g_new0(submitted, 1);
	sub->imp = imp;
	sub->where = g_strdup(ref);
	mv_arrival_info arrival = {.source_ref = ref, .envelope_from = envelope_from};
	mv_pipeline_submission s = {.raw = raw, .arrival = &arrival,
	                            .unwrap_journal = imp->opt->journal_reports,
	                            .done = on_done, .done_context = sub};
	mv_pipeline_submit(imp->pipeline, &s);
	progress(imp, FALSE);
}

static void import_mbox(importer *imp, const char *path)
{
	mv_mbox_reader *r = NULL;
	char *err = NULL;
	if (mv_mbox_open(path, imp->opt->mbox_variant, &r, &err) != MV_OK) {
		add_failure(imp, path, err);
		g_free(err);
		return;
	}
	while (!stopped(imp)) {
		GBytes *msg = NULL;
		char *from = NULL;
		gint64 index = 0;
		mv_status st = mv_mbox_next(r, imp->opt->max_message_bytes, &msg, &from, &index, &err);
		char *ref = g_strdup_printf("%s#%" G_GINT64_FORMAT, path, index);
		if (st == MV_ERR_LIMIT) {
			STAT(imp, imp->stats->seen++);
			add_failure(imp, ref, err);
			g_clear_pointer(&err, g_free);
			g_free(ref);
			continue;
		}
		if (st != MV_OK) {
			add_failure(imp, ref, err);
			g_clear_pointer(&err, g_free);
			g_free(ref);
			break;
		}
		if (msg == NULL) {
			g_free(ref);
			break;
		}
		add_message(imp, msg, ref, from);
		g_bytes_unref(msg);
		g_free(from);
		g_free(ref);
	}
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
	add_message(imp, raw, path, NULL);
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
			import_file(&imp, *p, TRUE);
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

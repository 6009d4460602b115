/* mv-import: walk import sources and feed the store in batches.
 * SECURITY: reads untrusted files; sizes are bounded by max_message_bytes. */
#include "mv-import.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "mv-classify.h"
#include "mv-store.h"

#define TRAIN_MESSAGES 1000
#define TRAIN_MIN_MESSAGES 100
#define TRAIN_SAMPLE_BYTES (16 * 1024)

typedef struct {
	mv_message *msg;
	char *ref;
	char *envelope_from;
} pending;

/* A message read and waiting in the handoff queue, in reading order; a
 * parse thread fills in msg and sets ready (under importer.lock).  Ready
 * with msg NULL: it failed to parse (the failure is already recorded). */
typedef struct {
	pending p;
	GBytes *raw;    /* until parsed */
	gboolean ready;
} slot;

typedef struct {
	mv_db *db;
	mv_blobstore *blobs;
	const mv_import_options *opt;
	mv_import_stats *stats;
	GPtrArray *failures;
	GArray *queue;          /* pending */
	gsize queue_bytes;
	gboolean train_pending; /* still waiting to train a dictionary */
	mv_status fatal;        /* consumer only */
	char *fatal_error;
	char *current;          /* file being read; under lock */
	/* The walker and parser run in their own thread (the producer) and
	 * hand parsed messages over through a bounded queue to the thread that
	 * stores them (the consumer), so parsing overlaps the database. */
	GMutex lock;            /* stats, failures, current, handoff */
	GCond cond;
	GQueue handoff;         /* of slot*, in reading order */
	guint handoff_max;
	GThreadPool *parsers;   /* parse slots; NULL: the producer parses */
	gboolean producer_done;
	gint stop;              /* atomic: the consumer hit a fatal error */
	const char *const *paths;
	/* concurrent indexer */
	mv_db *index_db;
	gint import_done;       /* atomic */
	mv_status index_status;
	char *index_error;
} importer;

#define STAT(imp, expr)                  \
	do {                                 \
		g_mutex_lock(&(imp)->lock);      \
		expr;                            \
		g_mutex_unlock(&(imp)->lock);    \
	} while (0)

static gboolean stopped(importer *imp)
{
	return g_atomic_int_get(&imp->stop) != 0;
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
	options->source = "import";
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

static void progress(importer *imp)
{
	if (imp->opt->progress == NULL)
		return;
	g_mutex_lock(&imp->lock);
	mv_import_stats copy = *imp->stats;
	char *current = g_strdup(imp->current);
	g_mutex_unlock(&imp->lock);
	imp->opt->progress(imp->opt->progress_context, &copy, current);
	g_free(current);
}

static void train(importer *imp)
{
	imp->train_pending = FALSE;
	if (imp->queue->len < TRAIN_MIN_MESSAGES)
		return;
	GPtrArray *samples = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
	for (guint i = 0; i < imp->queue->len; i++) {
		GBytes *raw = g_array_index(imp->queue, pending, i).msg->raw;
		gsize len = g_bytes_get_size(raw);
		g_ptr_array_add(samples, g_bytes_new_from_bytes(raw, 0, MIN(len, TRAIN_SAMPLE_BYTES)));
	}
	char *err = NULL;
	/* A failed training is not an error: blobs are then compressed
	 * without a dictionary. */
	if (mv_blobstore_pg_train(imp->blobs, samples, &err) != MV_OK)
		g_free(err);
	g_ptr_array_free(samples, TRUE);
}

static void flush(importer *imp, gboolean final)
{
	if (imp->queue->len == 0 || imp->fatal != MV_OK)
		return;
	if (imp->train_pending) {
		if (!final && imp->queue->len < TRAIN_MESSAGES && imp->queue_bytes < imp->opt->batch_bytes)
			return;
		train(imp);
	}
	guint total = imp->queue->len;
	guint stored_upto = 0;
	for (guint start = 0; start < total && imp->fatal == MV_OK; start += imp->opt->batch_size) {
		guint n = MIN(imp->opt->batch_size, total - start);
		mv_message **msgs = g_new(mv_message *, n);
		mv_arrival_info *arr = g_new0(mv_arrival_info, n);
		mv_store_result *res = g_new0(mv_store_result, n);
		for (guint i = 0; i < n; i++) {
			pending *p = &g_array_index(imp->queue, pending, start + i);
			msgs[i] = p->msg;
			arr[i].source = imp->opt->source;
			arr[i].source_ref = p->ref;
			arr[i].envelope_from = p->envelope_from;
		}
		char *err = NULL;
		mv_status st = mv_store_batch(imp->db, imp->blobs, msgs, arr, n, res, &err);
		for (guint i = 0; i < n; i++) {
			pending *p = &g_array_index(imp->queue, pending, start + i);
			if (res[i].status == MV_OK) {
				gboolean flagged = strcmp(p->msg->parse_status, "ok") != 0;
				if (res[i].is_new)
					STAT(imp, imp->stats->new_count++; imp->stats->flagged += flagged);
				else
					STAT(imp, imp->stats->duplicate++);
			} else {
				add_failure(imp, p->ref, res[i].error != NULL ? res[i].error : err);
			}
			g_free(res[i].error);
		}
		if (st != MV_OK && st != MV_ERR_PARTIAL &&
		    (PQstatus(mv_db_conn(imp->db)) != CONNECTION_OK || st == MV_ERR_DENIED)) {
			imp->fatal = st;
			imp->fatal_error = g_strdup(err);
			g_atomic_int_set(&imp->stop, 1);
		}
		g_free(err);
		g_free(msgs);
		g_free(arr);
		g_free(res);
		stored_upto = start + n;
		progress(imp);
	}
	for (guint i = 0; i < total; i++) {
		pending *p = &g_array_index(imp->queue, pending, i);
		if (i >= stored_upto)
			add_failure(imp, p->ref, "not stored: the import stopped");
		mv_message_free(&p->msg);
		g_free(p->ref);
		g_free(p->envelope_from);
	}
	g_array_set_size(imp->queue, 0);
	imp->queue_bytes = 0;
}

static gboolean batch_ready(importer *imp)
{
	if (imp->train_pending)
		return imp->queue->len >= TRAIN_MESSAGES || imp->queue_bytes >= imp->opt->batch_bytes;
	return imp->queue->len >= imp->opt->batch_size || imp->queue_bytes >= imp->opt->batch_bytes;
}

/* Parse and classify a slot's message, then mark it ready.  Runs in a
 * parse thread (or in the producer when there is none). */
static void parse_slot(gpointer data, gpointer user_data)
{
	slot *sl = data;
	importer *imp = user_data;
	mv_message *msg = NULL;
	char *err = NULL;
	if (stopped(imp)) {
		add_failure(imp, sl->p.ref, "not stored: the import stopped");
	} else if (mv_message_parse(sl->raw, &imp->opt->limits, &msg, &err) != MV_OK) {
		add_failure(imp, sl->p.ref, err);
		g_clear_pointer(&err, g_free);
	} else if (imp->opt->policy != NULL) {
		const char *env_to[] = {NULL};
		mv_classify_context cc = {.source = imp->opt->source, .envelope_from = sl->p.envelope_from,
		                          .envelope_to = env_to, .archive_date = g_get_real_time() / G_USEC_PER_SEC};
		if (mv_classify_message(imp->opt->policy, imp->opt->policy_version, msg, &cc, NULL,
		                        &err) != MV_OK) {
			add_failure(imp, sl->p.ref, err);
			g_free(err);
			mv_message_free(&msg);
		}
	}
	g_clear_pointer(&sl->raw, g_bytes_unref);
	g_mutex_lock(&imp->lock);
	sl->p.msg = msg;
	sl->ready = TRUE;
	g_cond_broadcast(&imp->cond);
	g_mutex_unlock(&imp->lock);
}

/* Producer: queue the message in reading order and have it parsed (waits
 * while the consumer is behind). */
static void add_message(importer *imp, GBytes *raw, const char *ref, const char *envelope_from)
{
	STAT(imp, imp->stats->seen++; imp->stats->bytes += (gint64)g_bytes_get_size(raw));
	slot *sl = g_new0(slot, 1);
	sl->raw = g_bytes_ref(raw);
	sl->p.ref = g_strdup(ref);
	sl->p.envelope_from = g_strdup(envelope_from);
	g_mutex_lock(&imp->lock);
	while (imp->handoff.length >= imp->handoff_max && !stopped(imp))
		g_cond_wait(&imp->cond, &imp->lock);
	g_queue_push_tail(&imp->handoff, sl);
	g_cond_broadcast(&imp->cond);
	g_mutex_unlock(&imp->lock);
	if (imp->parsers == NULL || !g_thread_pool_push(imp->parsers, sl, NULL))
		parse_slot(sl, imp);
}

static void slot_free(slot *sl)
{
	if (sl->raw != NULL)
		g_bytes_unref(sl->raw);
	mv_message_free(&sl->p.msg);
	g_free(sl->p.ref);
	g_free(sl->p.envelope_from);
	g_free(sl);
}

/* Consumer: take parsed messages, store them in batches. */
static void consume(importer *imp)
{
	for (;;) {
		g_mutex_lock(&imp->lock);
		slot *sl;
		while ((sl = g_queue_peek_head(&imp->handoff)) == NULL ? !imp->producer_done : !sl->ready)
			g_cond_wait(&imp->cond, &imp->lock);
		g_queue_pop_head(&imp->handoff);
		g_cond_broadcast(&imp->cond);
		g_mutex_unlock(&imp->lock);
		if (sl == NULL)
			break; /* producer done, nothing left */
		if (sl->p.msg == NULL) { /* not parsed; its failure is recorded */
			slot_free(sl);
			continue;
		}
		g_array_append_val(imp->queue, sl->p);
		imp->queue_bytes += g_bytes_get_size(sl->p.msg->raw);
		g_free(sl);
		if (batch_ready(imp))
			flush(imp, FALSE);
	}
	flush(imp, TRUE);
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

/* The indexer thread: compute search vectors of committed messages while
 * the import goes on, then of whatever is left. */
static gpointer index_loop(gpointer data)
{
	importer *imp = data;
	for (;;) {
		gboolean done = g_atomic_int_get(&imp->import_done) != 0;
		gint64 n = 0;
		imp->index_status = mv_store_index_pending(imp->index_db, 500, 500, &n,
		                                           &imp->index_error);
		if (imp->index_status != MV_OK || (done && n == 0))
			break;
		if (n == 0)
			g_usleep(50 * 1000);
	}
	return NULL;
}

/* The producer thread: walk every path, parse, hand over. */
static gpointer produce(gpointer data)
{
	importer *imp = data;
	for (const char *const *p = imp->paths; *p != NULL && !stopped(imp); p++) {
		if (g_file_test(*p, G_FILE_TEST_IS_DIR))
			import_dir(imp, *p, 0);
		else if (g_file_test(*p, G_FILE_TEST_EXISTS))
			import_file(imp, *p, TRUE);
		else {
			char *e = g_strdup_printf("%s: no such file or directory", *p);
			add_failure(imp, *p, e);
			g_free(e);
		}
	}
	g_mutex_lock(&imp->lock);
	imp->producer_done = TRUE;
	g_cond_broadcast(&imp->cond);
	g_mutex_unlock(&imp->lock);
	return NULL;
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
		.queue = g_array_new(FALSE, TRUE, sizeof(pending)),
		.train_pending = options->train_dictionary && !mv_blobstore_pg_has_dictionary(blobs),
		.fatal = MV_OK,
	};
	imp.paths = paths;
	g_mutex_init(&imp.lock);
	g_cond_init(&imp.cond);
	g_queue_init(&imp.handoff);
	imp.handoff_max = MAX(options->batch_size, 64);
	guint nparse = options->parse_threads != 0 ? options->parse_threads
	                                           : CLAMP(g_get_num_processors(), 1, 8);
	if (nparse > 1)
		imp.parsers = g_thread_pool_new(parse_slot, &imp, (gint)nparse, TRUE, NULL);
	GThread *indexer = NULL;
	if (options->index_with != NULL) {
		char *err = NULL;
		if (mv_db_open(options->index_with, &imp.index_db, &err) == MV_OK)
			indexer = g_thread_new("mv-import-index", index_loop, &imp);
		else
			g_free(err); /* indexing is left for later; search still works */
	}
	GThread *producer = g_thread_new("mv-import-read", produce, &imp);
	consume(&imp);
	g_thread_join(producer);
	if (imp.parsers != NULL)
		g_thread_pool_free(imp.parsers, FALSE, TRUE); /* every slot is parsed */
	g_atomic_int_set(&imp.import_done, 1);
	if (indexer != NULL) {
		/* What is left unindexed is shared with a second connection
		 * (mv_index_pending takes rows with SKIP LOCKED), so the tail
		 * of an import uses both cores instead of one. */
		mv_db *tail_db = NULL;
		char *err = NULL;
		if (mv_db_open(options->index_with, &tail_db, &err) == MV_OK) {
			gint64 n = 0;
			do {
				g_clear_pointer(&err, g_free);
			} while (mv_store_index_pending(tail_db, 200, 200, &n, &err) == MV_OK && n > 0);
			mv_db_close(&tail_db);
		}
		g_free(err); /* the indexer thread reports what matters */
		g_thread_join(indexer);
	}
	mv_db_close(&imp.index_db);
	g_free(imp.index_error);
	/* After a fatal error the producer may have handed over more. */
	slot *left;
	while ((left = g_queue_pop_head(&imp.handoff)) != NULL) {
		if (left->p.msg == NULL) {
			slot_free(left);
			continue;
		}
		g_array_append_val(imp.queue, left->p);
		g_free(left);
	}
	/* Anything still queued after a fatal error was not stored. */
	for (guint i = 0; i < imp.queue->len; i++) {
		pending *q = &g_array_index(imp.queue, pending, i);
		add_failure(&imp, q->ref, "not stored: the import stopped");
		mv_message_free(&q->msg);
		g_free(q->ref);
		g_free(q->envelope_from);
	}
	g_array_free(imp.queue, TRUE);
	progress(&imp);
	g_free(imp.current);
	g_mutex_clear(&imp.lock);
	g_cond_clear(&imp.cond);
	if (imp.fatal != MV_OK) {
		mv_status st = mv_fail(error_r, imp.fatal, "%s", imp.fatal_error);
		g_free(imp.fatal_error);
		return st;
	}
	if (stats_r->failed > 0)
		return mv_fail(error_r, MV_ERR_PARTIAL, "%" G_GINT64_FORMAT " messages failed",
		               stats_r->failed);
	return MV_OK;
}

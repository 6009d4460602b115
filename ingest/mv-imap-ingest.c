/* mv-imap-ingest: journal mailbox → archive, one committed batch at a time.
 *
 * Untrusted input: message bytes and everything the server says (read by
 * mv-imap.c under its limits); message content is only parsed (mv-message)
 * and unwrapped (mv-journal), never interpreted here. */
#include "mv-imap-ingest.h"

#include <string.h>

#include "mv-cursor.h"
#include "mv-pipeline.h"

#define SIZES_CHUNK 5000 /* UIDs whose sizes are asked in one FETCH */

void mv_imap_ingest_options_default(mv_imap_ingest_options *o)
{
	*o = (mv_imap_ingest_options){.after = MV_AFTER_ARCHIVE_KEEP, .batch_size = 100,
	                              .batch_bytes = 32u * 1024 * 1024};
	mv_imap_options_default(&o->imap);
	mv_parse_limits_default(&o->limits);
	mv_blobstore_settings_default(&o->blob_settings);
}

static gboolean stopping(const mv_imap_ingest_options *o)
{
	return o->stop != NULL && g_atomic_int_get(o->stop) != 0;
}

/* ---- one pass ---- */

typedef struct {
	mv_db *db;
	mv_blobstore *blobs;
	const mv_db_options *db_options;
	const mv_imap_ingest_options *o;
	mv_imap *imap;
	mv_cursor cur;                  /* last_uid: committed (under lock) */
	char *mailbox;               /* the mailbox pulled, as in the URL */
	mv_imap_ingest_stats *stats; /* under lock */
	gint64 removed;              /* by the pass's thread */
	mv_pipeline *pipeline;
	mv_pipeline_hook cursor_hook;
	GMutex lock;
	GArray *committed;           /* guint64 UIDs for --after-archive */
	mv_status commit_status;     /* the first failed commit */
	char *commit_error;
} pass;

/* One fetched message on its way through the pipeline.  Its cursor step
 * covers the UIDs from the previous submission's (or the cursor's) to its
 * own, so the steps of a transaction join into one advance. */
typedef struct {
	pass *p;
	guint64 from_uid, uid;
} fetched;

/* The source hook: advance the cursor over the transaction's messages. */
static mv_status cursor_send(mv_db *db, void *context, gpointer const *args, guint n,
                             char **error_r)
{
	pass *p = context;
	const fetched *first = args[0], *last = args[n - 1];
	return mv_cursor_send_advance(db, p->cur.source, p->cur.uidvalidity, first->from_uid, last->uid,
	                              error_r);
}

/* The pipeline's outcome of one fetched message (after its COMMIT): count
 * it, and hand its UID over for --after-archive. */
static void on_done(void *context, const mv_pipeline_outcome *o)
{
	fetched *f = context;
	pass *p = f->p;
	g_mutex_lock(&p->lock);
	if (o->status == MV_OK) {
		if (o->skipped)
			p->stats->already++;
		for (guint i = 0; !o->skipped && i < o->n; i++) {
			if (o->records[i].is_new)
				p->stats->new_count++;
			else
				p->stats->duplicate++;
		}
		if (!o->skipped && o->journal == MV_JOURNAL_REPORT)
			p->stats->reports++;
		if (!o->skipped && o->journal == MV_JOURNAL_MALFORMED)
			p->stats->malformed++;
		p->cur.last_uid = f->uid;
		p->stats->last_uid = f->uid;
		g_array_append_val(p->committed, f->uid);
	} else if (p->commit_status == MV_OK) {
		p->commit_status = o->status;
		/* Another ingester of this source moved the cursor. */
		if (o->error != NULL && strstr(o->error, "another ingester") != NULL)
			p->commit_status = MV_ERR_BUSY;
		p->commit_error = g_strdup_printf("UID %" G_GUINT64_FORMAT ": %s", f->uid,
		                                  o->error != NULL ? o->error : "not stored");
	}
	g_mutex_unlock(&p->lock);
	g_free(f);
}

static gboolean commit_failed(pass *p)
{
	g_mutex_lock(&p->lock);
	gboolean failed = p->commit_status != MV_OK;
	g_mutex_unlock(&p->lock);
	return failed;
}

/* Apply --after-archive to uid_set (count UIDs), all committed; every UID
 * up to archived_upto is.  Only the thread holding the session calls it. */
static mv_status after_archive(pass *p, const char *uid_set, guint count, guint64 archived_upto,
                               char **error_r)
{
	if (p->o->after == MV_AFTER_ARCHIVE_KEEP || uid_set == NULL || *uid_set == '\0')
		return MV_OK;
	if (p->o->after == MV_AFTER_ARCHIVE_SEEN) {
		mv_status st = mv_imap_uid_add_flag(p->imap, uid_set, "\\Seen", error_r);
		if (st == MV_OK)
			p->removed += count;
		return st;
	}
	mv_status st = mv_imap_uid_add_flag(p->imap, uid_set, "\\Deleted", error_r);
	if (st != MV_OK)
		return st;
	if (mv_imap_has_capability(p->imap, "UIDPLUS")) {
		st = mv_imap_expunge(p->imap, uid_set, error_r);
	} else {
		/* Plain EXPUNGE removes every \Deleted message, also those other
		 * clients marked: only when all of them are archived already. */
		GArray *deleted = NULL;
		st = mv_imap_uid_search(p->imap, "DELETED", &deleted, error_r);
		if (st == MV_OK) {
			gboolean all_archived = TRUE;
			for (guint i = 0; i < deleted->len; i++)
				if (g_array_index(deleted, guint64, i) > archived_upto)
					all_archived = FALSE;
			g_array_unref(deleted);
			if (all_archived)
				st = mv_imap_expunge(p->imap, NULL, error_r);
		}
	}
	if (st == MV_OK)
		p->removed += count;
	return st;
}

/* Apply --after-archive to everything committed so far (the caller holds
 * the session). */
static mv_status drain_done(pass *p, char **error_r)
{
	g_mutex_lock(&p->lock);
	GArray *uids = p->committed;
	p->committed = g_array_new(FALSE, FALSE, sizeof(guint64));
	guint64 upto = p->cur.last_uid;
	g_mutex_unlock(&p->lock);
	mv_status st = MV_OK;
	if (uids->len > 0) {
		char *set = mv_imap_uid_set((const guint64 *)(void *)uids->data, uids->len);
		st = after_archive(p, set, uids->len, upto, error_r);
		g_free(set);
	}
	g_array_free(uids, TRUE);
	return st;
}

/* Fetch one batch of UIDs (ascending, above the cursor) and hand each
 * message to the pipeline, in UID order.  *prev_uid: the UID the next
 * cursor step starts from. */
static mv_status fetch_batch(pass *p, const guint64 *uids, guint n, guint64 *prev_uid,
                             char **error_r)
{
	char *set = mv_imap_uid_set(uids, n);
	GPtrArray *got = NULL;
	mv_status st = mv_imap_uid_fetch(p->imap, set, TRUE, &got, error_r);
	g_free(set);
	if (st != MV_OK)
		return st;
	/* Only what was asked for, in UID order.  A UID that did not come back
	 * at all was expunged by someone else meanwhile; one that came back
	 * without its body cannot be skipped: the batch fails. */
	GPtrArray *mine = g_ptr_array_new();
	GHashTable *asked = g_hash_table_new(g_int64_hash, g_int64_equal);
	for (guint k = 0; k < n; k++)
		g_hash_table_add(asked, (gpointer)&uids[k]);
	for (guint i = 0; i < got->len; i++) {
		mv_imap_message *m = got->pdata[i];
		gint64 key = (gint64)m->uid;
		if (m->raw == NULL || !g_hash_table_remove(asked, &key))
			continue;
		g_ptr_array_add(mine, m);
	}
	for (guint i = 0; st == MV_OK && i < got->len; i++) {
		mv_imap_message *m = got->pdata[i];
		gint64 key = (gint64)m->uid;
		if (m->raw == NULL && g_hash_table_contains(asked, &key))
			st = mv_fail(error_r, MV_ERR_INPUT,
			             "the IMAP server answered UID %" G_GUINT64_FORMAT " without its body",
			             m->uid);
	}
	g_hash_table_destroy(asked);
	for (guint i = 1; i < mine->len; i++) {
		for (guint j = i; j > 0; j--) {
			mv_imap_message *a = mine->pdata[j - 1], *b = mine->pdata[j];
			if (a->uid <= b->uid)
				break;
			mine->pdata[j - 1] = b;
			mine->pdata[j] = a;
		}
	}
	for (guint i = 0; st == MV_OK && i < mine->len && !commit_failed(p); i++) {
		mv_imap_message *m = mine->pdata[i];
		char ref[48];
		g_snprintf(ref, sizeof ref, "%" G_GUINT64_FORMAT "/%" G_GUINT64_FORMAT,
		           p->cur.uidvalidity, m->uid);
		mv_arrival_info arrival = {.source_ref = ref,
		                           .imap = TRUE,
		                           .imap_mailbox = p->mailbox,
		                           .imap_uidvalidity = p->cur.uidvalidity,
		                           .imap_uid = m->uid,
		                           .imap_internaldate = m->internaldate};
		fetched *f = g_new0(fetched, 1);
		f->p = p;
		f->from_uid = *prev_uid;
		f->uid = m->uid;
		*prev_uid = m->uid;
		g_mutex_lock(&p->lock);
		p->stats->fetched++;
		g_mutex_unlock(&p->lock);
		/* The same bytes in one journal mailbox are the same delivery:
		 * a rescan adds neither messages nor arrivals. */
		mv_pipeline_submission sub = {.raw = m->raw, .arrival = &arrival,
		                              .unwrap_journal = TRUE, .once_per_source = TRUE,
		                              .hook = &p->cursor_hook, .hook_arg = f,
		                              .done = on_done, .done_context = f};
		mv_pipeline_submit(p->pipeline, &sub);
	}
	g_ptr_array_free(mine, TRUE);
	g_ptr_array_free(got, TRUE);
	return st;
}

/* Search, plan batches by size, fetch each and hand it to the pipeline;
 * between fetches, flag what has been committed. */
static mv_status fetch_all(pass *p, char **error_r)
{
	mv_status st = MV_OK;
	guint64 upto = p->cur.last_uid, prev_uid = p->cur.last_uid;
	while (st == MV_OK && !stopping(p->o) && !commit_failed(p)) {
		char *crit = g_strdup_printf("UID %" G_GUINT64_FORMAT ":*", upto + 1);
		GArray *uids = NULL;
		st = mv_imap_uid_search(p->imap, crit, &uids, error_r);
		g_free(crit);
		if (st != MV_OK)
			break;
		/* "N:*" always includes the highest UID, even below N. */
		guint first = 0;
		while (first < uids->len && g_array_index(uids, guint64, first) <= upto)
			first++;
		guint total = MIN(uids->len - first, SIZES_CHUNK);
		if (total == 0) {
			g_array_unref(uids);
			break;
		}
		const guint64 *todo = &g_array_index(uids, guint64, first);
		char *set = mv_imap_uid_set(todo, total);
		GPtrArray *sizes = NULL;
		st = mv_imap_uid_fetch(p->imap, set, FALSE, &sizes, error_r);
		g_free(set);
		GHashTable *size_of = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, NULL);
		for (guint i = 0; st == MV_OK && i < sizes->len; i++) {
			mv_imap_message *m = sizes->pdata[i];
			gint64 *key = g_new(gint64, 1);
			*key = (gint64)m->uid;
			g_hash_table_insert(size_of, key, GSIZE_TO_POINTER((gsize)m->size + 1));
		}
		guint i = 0;
		while (st == MV_OK && i < total && !stopping(p->o) && !commit_failed(p)) {
			guint j = i;
			gsize bytes = 0;
			while (j < total && j - i < p->o->batch_size) {
				gint64 key = (gint64)todo[j];
				gsize sz = GPOINTER_TO_SIZE(g_hash_table_lookup(size_of, &key));
				if (sz > 0 && sz - 1 > p->o->imap.max_literal) {
					if (j == i)
						st = mv_fail(error_r, MV_ERR_LIMIT,
						             "UID %" G_GUINT64_FORMAT " is %zu bytes, over the %zu-byte "
						             "limit: not archived, the source stops before it",
						             todo[j], sz - 1, p->o->imap.max_literal);
					break;
				}
				if (j > i && bytes + sz > p->o->batch_bytes)
					break;
				bytes += sz;
				j++;
			}
			if (st != MV_OK || j == i)
				break;
			st = drain_done(p, error_r);
			if (st == MV_OK)
				st = fetch_batch(p, todo + i, j - i, &prev_uid, error_r);
			if (st == MV_OK)
				upto = todo[j - 1];
			i = j;
		}
		g_hash_table_destroy(size_of);
		if (sizes != NULL)
			g_ptr_array_free(sizes, TRUE);
		g_array_unref(uids);
	}
	return st;
}

static mv_status pull(pass *p, char **error_r)
{
	mv_imap_mailbox_info info;
	mv_status st = mv_imap_select(p->imap, NULL, &info, error_r);
	if (st != MV_OK)
		return st;
	if (!p->cur.has_uidvalidity || p->cur.uidvalidity != info.uidvalidity) {
		p->stats->rescanned = p->cur.has_uidvalidity;
		st = mv_cursor_reset(p->db, &p->cur, info.uidvalidity, error_r);
		if (st != MV_OK)
			return st;
	}
	p->stats->uidvalidity = info.uidvalidity;
	p->stats->last_uid = p->cur.last_uid;
	/* Committed earlier but perhaps not yet flagged (a crash in between). */
	if (p->o->after != MV_AFTER_ARCHIVE_KEEP && p->cur.last_uid > 0 && info.exists > 0) {
		char *range = g_strdup_printf("1:%" G_GUINT64_FORMAT, p->cur.last_uid);
		char *crit = g_strdup_printf("%s UID %s",
		                             p->o->after == MV_AFTER_ARCHIVE_SEEN ? "UNSEEN" : "UNDELETED",
		                             range);
		GArray *left = NULL;
		st = mv_imap_uid_search(p->imap, crit, &left, error_r);
		g_free(crit);
		if (st == MV_OK) {
			guint k = 0;
			while (k < left->len && g_array_index(left, guint64, k) <= p->cur.last_uid)
				k++;
			if (k > 0) {
				char *set = mv_imap_uid_set((const guint64 *)(void *)left->data, k);
				st = after_archive(p, set, k, p->cur.last_uid, error_r);
				g_free(set);
			}
			/* \Deleted set before a crash, not yet expunged. */
			if (st == MV_OK && p->o->after == MV_AFTER_ARCHIVE_DELETE &&
			    mv_imap_has_capability(p->imap, "UIDPLUS"))
				st = mv_imap_expunge(p->imap, range, error_r);
			g_array_unref(left);
		}
		g_free(range);
		if (st != MV_OK)
			return st;
	}
	/* From here the pipeline owns the database connection until it is
	 * freed: it parses and commits while this thread fetches. */
	mv_pipeline_options po;
	mv_pipeline_options_default(&po);
	po.source = p->cur.source;
	po.db = p->db_options;
	po.db_conn = p->db;
	po.blobs = p->blobs;
	po.group_max = p->o->batch_size;
	po.group_bytes = p->o->batch_bytes;
	po.in_flight_max = 2 * p->o->batch_size; /* fetch the next batch while one commits */
	po.limits = p->o->limits;
	po.ordered = TRUE;
	po.full_groups = TRUE;
	po.index = MV_PIPELINE_INDEX_CONCURRENT;
	po.index_before_free = TRUE;
	st = mv_pipeline_new(&po, &p->pipeline, error_r);
	if (st != MV_OK)
		return st;
	char *fetch_err = NULL;
	mv_status fetch_st = fetch_all(p, &fetch_err);
	mv_pipeline_flush(p->pipeline);
	/* The session is still this thread's: flag the last batches. */
	char *drain_err = NULL;
	mv_status drain_st = fetch_st == MV_OK || fetch_st == MV_ERR_LIMIT ? drain_done(p, &drain_err)
	                                                                   : MV_OK;
	mv_pipeline_free(&p->pipeline);
	p->stats->removed += p->removed;
	p->removed = 0;
	if (p->commit_status != MV_OK)
		st = mv_fail(error_r, p->commit_status, "%s", p->commit_error);
	else if (fetch_st != MV_OK)
		st = mv_fail(error_r, fetch_st, "%s", fetch_err);
	else if (drain_st != MV_OK)
		st = mv_fail(error_r, drain_st, "%s", drain_err);
	g_free(fetch_err);
	g_free(drain_err);
	return st;
}

mv_status mv_imap_ingest_pass(mv_db *db, mv_blobstore *blobs, const mv_db_options *db_options,
                              const mv_imap_ingest_options *o, mv_imap_ingest_stats *stats_r,
                              char **error_r)
{
	*stats_r = (mv_imap_ingest_stats){0};
	pass p = {.db = db, .blobs = blobs, .db_options = db_options, .o = o, .stats = stats_r};
	g_mutex_init(&p.lock);
	p.committed = g_array_new(FALSE, FALSE, sizeof(guint64));
	p.cursor_hook = (mv_pipeline_hook){.name = "imap cursor", .send = cursor_send, .context = &p};
	mv_status st = mv_imap_parse_url(o->imap.url, &p.mailbox, &p.cur.display, error_r);
	if (st == MV_OK) {
		p.cur.source = g_strdup_printf("imap:%s", o->name);
		st = mv_cursor_ensure(db, &p.cur, o->imap.user, error_r);
	}
	if (st == MV_OK)
		st = mv_imap_connect(&o->imap, &p.imap, error_r);
	if (st == MV_OK)
		st = pull(&p, error_r);
	/* Log out before the database work that follows. */
	mv_imap_close(&p.imap);
	if (p.cur.source != NULL && mv_db_connected(db))
		mv_cursor_note(db, p.cur.source, st == MV_OK ? NULL : *error_r);
	g_array_free(p.committed, TRUE);
	g_free(p.commit_error);
	g_mutex_clear(&p.lock);
	g_free(p.cur.source);
	g_free(p.cur.display);
	g_free(p.mailbox);
	return st;
}

/* ---- the run loop ---- */

static void sum(mv_imap_ingest_stats *t, const mv_imap_ingest_stats *s)
{
	t->fetched += s->fetched;
	t->new_count += s->new_count;
	t->duplicate += s->duplicate;
	t->already += s->already;
	t->reports += s->reports;
	t->malformed += s->malformed;
	t->removed += s->removed;
	t->uidvalidity = s->uidvalidity;
	t->last_uid = s->last_uid;
	t->rescanned |= s->rescanned;
}

static void logf_(mv_imap_ingest_log_fn log, void *ctx, const char *source, const char *fmt, ...)
	G_GNUC_PRINTF(4, 5);
static void logf_(mv_imap_ingest_log_fn log, void *ctx, const char *source, const char *fmt, ...)
{
	if (log == NULL)
		return;
	va_list ap;
	va_start(ap, fmt);
	char *line = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	log(ctx, source, line);
	g_free(line);
}

/* Sleep up to seconds, waking early when stop is set. */
static void nap(const mv_imap_ingest_options *o, guint seconds)
{
	gint64 until = g_get_monotonic_time() + (gint64)seconds * G_USEC_PER_SEC;
	while (!stopping(o) && g_get_monotonic_time() < until)
		g_usleep(100 * 1000);
}

mv_status mv_imap_ingest_run(const mv_db_options *db_options, const mv_imap_ingest_options *o,
                             guint poll_seconds, mv_imap_ingest_log_fn log, void *log_context,
                             mv_imap_ingest_stats *stats_r, char **error_r)
{
	mv_imap_ingest_stats total = {0};
	mv_db *db = NULL;
	mv_blobstore *blobs = NULL;
	mv_status st = MV_OK;
	guint backoff = 0;
	mv_db_options reopen = *db_options;
	for (;;) {
		char *err = NULL;
		st = MV_OK;
		if (db == NULL) {
			st = mv_db_open(&reopen, &db, &err);
			if (st == MV_OK)
				st = mv_blobstore_pg_new(db, &o->blob_settings, &blobs, &err);
			if (st != MV_OK)
				mv_db_close(&db);
			/* Reconnecting must not start a server an administrator stopped. */
			reopen.no_start = TRUE;
			reopen.no_migrate = TRUE;
		}
		mv_imap_ingest_stats s = {0};
		if (st == MV_OK)
			st = mv_imap_ingest_pass(db, blobs, &reopen, o, &s, &err);
		sum(&total, &s);
		if (st == MV_OK) {
			backoff = 0;
			if (s.fetched > 0 || s.removed > 0 || s.rescanned)
				logf_(log, log_context, o->name,
				      "uidvalidity=%" G_GUINT64_FORMAT " last_uid=%" G_GUINT64_FORMAT
				      " fetched=%" G_GINT64_FORMAT " new=%" G_GINT64_FORMAT
				      " duplicate=%" G_GINT64_FORMAT " already=%" G_GINT64_FORMAT
				      " reports=%" G_GINT64_FORMAT " removed=%" G_GINT64_FORMAT "%s",
				      s.uidvalidity, s.last_uid, s.fetched, s.new_count, s.duplicate, s.already,
				      s.reports, s.removed, s.rescanned ? " (uidvalidity changed: rescanned)" : "");
		} else {
			logf_(log, log_context, o->name, "error: %s", err);
		}
		if (poll_seconds == 0 || stopping(o)) {
			if (st != MV_OK) {
				mv_fail(error_r, st, "%s", err);
			}
			g_free(err);
			break;
		}
		g_free(err);
		if (db != NULL && !mv_db_connected(db)) {
			mv_blobstore_free(&blobs);
			mv_db_close(&db);
		}
		guint wait = poll_seconds;
		if (st != MV_OK) {
			/* 2, 4, 8 ... seconds, at most 10 minutes (or the poll
			 * interval when that is longer). */
			backoff = backoff == 0 ? 2 : MIN(backoff * 2, MAX(600u, poll_seconds));
			wait = backoff;
			logf_(log, log_context, o->name, "retrying in %u s", wait);
		}
		nap(o, wait);
		if (stopping(o)) {
			st = MV_OK;
			break;
		}
	}
	mv_blobstore_free(&blobs);
	mv_db_close(&db);
	if (stats_r != NULL)
		*stats_r = total;
	return st;
}


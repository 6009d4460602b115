/* mv-pipeline: receive → unwrap → stages → group commit → acknowledge,
 * once for every source.  See mv-pipeline.h for the contract.
 *
 * Untrusted input: the submitted bytes.  They are only parsed (GMime, under
 * the parse limits), unwrapped (mv-journal) and stored; memory in flight is
 * bounded by in_flight_max submissions and 2 x group_bytes. */
#include "mv-pipeline.h"

#include <string.h>

#include "mv-blind.h"
#include "mv-classify.h"
#include "mv-extract.h"
#include "mv-hold.h"
#include "mv-log.h"
#include "mv-policy-store.h"
#include "mv-scan.h"

#define TRAIN_MESSAGES 1000
#define TRAIN_MIN_MESSAGES 100
#define TRAIN_SAMPLE_BYTES (16 * 1024)
/* IN_PAUSES indexing: a pause is this long without a commit; this many
 * unindexed messages are indexed at once whatever the feed does. */
#define INDEX_QUIET_US (100 * 1000)
#define INDEX_BACKLOG_MAX 5000
#define INDEX_BATCH 200
/* The indexer settles the ongoing holds' pending items at most this often. */
#define SETTLE_EVERY_US (5 * G_USEC_PER_SEC)
#define RETRIES 4 /* attempts of a transaction that lost a deadlock */

/* ---- what travels through the pipeline ---- */

typedef struct {
	mv_message *msg;
	GBytes *raw;
	mv_arrival_info arrival;   /* points into the group's owned copies */
	char **env_to;             /* the journal report's envelope (original) */
	char **env_bcc;
	char *env_from;
	uint8_t link[MV_SHA256_LEN]; /* the other record of a report */
	const char *failed_stage;
} record;

typedef struct group {
	GBytes *raw;
	gsize bytes;
	mv_pipeline_submission sub;
	/* the source's arrival, owned */
	mv_arrival_info arrival;
	char *source_ref, *env_from, *client_addr, *helo, *tls, *protocol, *imap_mailbox;
	char **env_to;
	char *folder_path, *item_id;
	uint8_t source_sha256[MV_SHA256_LEN];
	GBytes *entry_id;
	guint n;
	record rec[2];
	mv_journal_kind journal;
	char *journal_problem;
	gboolean parsed;           /* under lock */
	gboolean skipped;
	mv_pipeline_outcome outcome;
	mv_pipeline_record out[2];
	char *error;
	/* submit_wait */
	GCond *waiter;
	gboolean finished;
} group;

/* ---- the stage table ---- */

typedef struct {
	mv_policy *policy;
	gint64 version;
} policy_ref;

typedef mv_status (*stage_each_fn)(mv_pipeline *p, record *r, char **error_r);

typedef struct {
	const char *name;
	/* Run on each record in a parse thread, in table order ... */
	stage_each_fn each;
	/* ... or inside the ingest transaction (one hook per connection). */
	mv_store_hook *(*hook_new)(void);
	void (*hook_free)(mv_store_hook **hook);
} stage;

static mv_status stage_parse(mv_pipeline *p, record *r, char **error_r);
static mv_status stage_extract(mv_pipeline *p, record *r, char **error_r);
static mv_store_hook *part_text_hook_new(void);
static void part_text_hook_free(mv_store_hook **hook);
static mv_status stage_vectors(mv_pipeline *p, record *r, char **error_r);
static mv_status stage_classify(mv_pipeline *p, record *r, char **error_r);
static mv_status stage_virus(mv_pipeline *p, record *r, char **error_r);
static mv_status stage_spam(mv_pipeline *p, record *r, char **error_r);
static mv_store_hook *verdicts_hook_new(void);
static void verdicts_hook_free(mv_store_hook **hook);

/* The ingest stages, in the order they run.  Stages still to come slot in
 * here: traffic counters (in the transaction).  Attachment text is read
 * right after parse, before the virus stage drops the attachments'
 * content, and stored in the transaction before the ongoing holds run
 * (hold queries match it).  The verdicts come before classify (rules
 * match them) and are stored before the ongoing holds run (hold queries
 * match them). */
static const stage stages[] = {
	{"parse", stage_parse, NULL, NULL},
	{"extract", stage_extract, part_text_hook_new, part_text_hook_free},
	{"vectors", stage_vectors, NULL, NULL},
	{"virus", stage_virus, NULL, NULL},
	{"spam", stage_spam, NULL, NULL},
	{"classify", stage_classify, NULL, NULL},
	{"verdicts", NULL, verdicts_hook_new, verdicts_hook_free},
	{"ongoing-holds", NULL, mv_hold_ongoing_hook_new, mv_hold_ongoing_hook_free},
};

/* ---- the pipeline ---- */

typedef struct {
	mv_db *db;
	mv_blobstore *blobs;
	gboolean borrowed;
	mv_store_hook *hooks[G_N_ELEMENTS(stages)];
	const stage *hook_stage[G_N_ELEMENTS(stages)];
	guint n_hooks;
	gint64 retry_after;
} writer;

struct mv_pipeline {
	mv_pipeline_options opt;
	mv_scan_config scan;        /* MAILVAULT_CLAMD, MAILVAULT_SPAMD, ... */
	mv_extract_mode extract;    /* attachment text: MAILVAULT_EXTRACT (on, off, deferred) */
	mv_extract_limits extract_limits;
	const char *fail_stage;     /* MAILVAULT_TEST_FAIL_STAGE: tests only */
	mv_blind *blind;            /* the blind search index (encryption on), or NULL */
	GThreadPool *parsers;
	GThread **writer_threads;
	guint n_writers;
	GThread *indexer;

	GMutex lock;                /* everything below */
	GCond work_cond;            /* writers: a group parsed, draining, stop */
	GCond space_cond;           /* submitters and flushers: a group done */
	GCond index_cond;           /* indexer: a commit, stop */
	GQueue pending;             /* group*, submitted and not yet taken */
	guint in_flight;            /* submitted, done not yet called */
	gsize in_flight_bytes;
	guint draining;             /* flushes waiting: hold nothing back */
	gboolean stop;              /* writers: exit once pending is empty */
	gboolean index_stop;
	mv_status failure;          /* for good (borrowed connection) */
	char *failure_error;
	GHashTable *failed_hooks;   /* mv_pipeline_hook* whose transaction failed */
	policy_ref policy;
	GPtrArray *old_policies;    /* mv_policy*, freed at the end */
	gboolean train_pending;     /* no dictionary yet */
	GPtrArray *samples;         /* GBytes: message starts to train from */
	gint64 unindexed;           /* committed, not yet indexed (upper bound) */
	gint64 last_commit;         /* monotonic */
};

/* A line for the daemon's log (opt.log: smtpd's), else for the program's
 * log handler (mv-log.h) at `level`, component "pipeline". */
static void logf_(mv_pipeline *p, mv_log_level level, const char *fmt, ...) G_GNUC_PRINTF(3, 4);
static void logf_(mv_pipeline *p, mv_log_level level, const char *fmt, ...)
{
	if (p->opt.log == NULL && !mv_log_enabled(level))
		return;
	va_list ap;
	va_start(ap, fmt);
	char *line = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	if (p->opt.log != NULL)
		p->opt.log(p->opt.log_context, line);
	else
		mv_log(level, "pipeline", "%s", line);
	g_free(line);
}

void mv_pipeline_options_default(mv_pipeline_options *o)
{
	*o = (mv_pipeline_options){0};
	o->source = "import";
	mv_blobstore_settings_default(&o->blob_settings);
	o->writers = 1;
	o->group_max = 200;
	o->group_bytes = 64 * 1024 * 1024;
	o->in_flight_max = 1024;
	mv_parse_limits_default(&o->limits);
	o->ordered = TRUE;
	o->train_dictionary = TRUE;
	o->index = MV_PIPELINE_INDEX_CONCURRENT;
}

static void add_flag(mv_message *msg, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static void add_flag(mv_message *msg, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	g_ptr_array_add(msg->flags, g_strdup_vprintf(fmt, ap));
	va_end(ap);
}

static gboolean forced_failure(mv_pipeline *p, const char *stage_name, char **error_r)
{
	if (p->fail_stage == NULL || strcmp(p->fail_stage, stage_name) != 0)
		return FALSE;
	mv_fail(error_r, MV_ERR_INTERNAL, "forced by MAILVAULT_TEST_FAIL_STAGE");
	return TRUE;
}

static mv_status stage_parse(mv_pipeline *p, record *r, char **error_r)
{
	if (forced_failure(p, "parse", error_r))
		return MV_ERR_INTERNAL;
	return mv_message_parse(r->raw, &p->opt.limits, &r->msg, error_r);
}

static mv_status stage_classify(mv_pipeline *p, record *r, char **error_r)
{
	g_mutex_lock(&p->lock);
	policy_ref pol = p->policy; /* immutable; replaced ones live until the end */
	g_mutex_unlock(&p->lock);
	if (forced_failure(p, "classify", error_r))
		return MV_ERR_INTERNAL;
	if (pol.policy == NULL)
		return MV_OK;
	mv_classify_context cc = {.source = p->opt.source,
	                          .envelope_from = r->arrival.envelope_from,
	                          .envelope_to = r->arrival.envelope_to,
	                          .archive_date = g_get_real_time() / G_USEC_PER_SEC};
	return mv_classify_message(pol.policy, pol.version, r->msg, &cc, NULL, error_r);
}

/* The text of each attachment (mv-extract), within its limits; a part
 * that fails is flagged "text-extraction-failed: PATH: WHY" by
 * mv_extract_message, the stage itself does not fail. */
static mv_status stage_extract(mv_pipeline *p, record *r, char **error_r)
{
	if (forced_failure(p, "extract", error_r))
		return MV_ERR_INTERNAL;
	if (r->msg == NULL || p->extract == MV_EXTRACT_MODE_OFF)
		return MV_OK;
	/* Deferred: read later by `index --reextract`; meanwhile the ongoing
	 * holds take the message as pending rather than judge it on the
	 * text it has so far (mv-hold.c). */
	if (p->extract == MV_EXTRACT_MODE_DEFERRED) {
		r->msg->text_deferred = mv_extract_would_read(r->msg);
		return MV_OK;
	}
	mv_extract_message(r->msg, &p->extract_limits, p->scan.clamd != NULL);
	return MV_OK;
}

static mv_status part_text_send(mv_db *db, void *context, mv_message *const *msgs, guint n,
                                char **error_r)
{
	(void)context;
	mv_status st = MV_OK;
	for (guint i = 0; i < n && st == MV_OK; i++)
		if (msgs[i]->text_extracted)
			st = mv_store_part_texts_send(db, &msgs[i], 1, MV_EXTRACT_VERSION, error_r);
	return st;
}

static mv_status part_text_prepare(mv_db *db, void *context, char **error_r)
{
	(void)context;
	return mv_store_part_texts_prepare(db, error_r);
}

static mv_store_hook *part_text_hook_new(void)
{
	mv_store_hook *hook = g_new0(mv_store_hook, 1);
	hook->name = "attachment-text";
	hook->prepare = part_text_prepare;
	hook->send = part_text_send;
	return hook;
}

static void part_text_hook_free(mv_store_hook **hook)
{
	g_clear_pointer(hook, g_free);
}

/* The search vectors of the message's text and of its attachment texts,
 * computed by PostgreSQL (mv_search_vector) on a connection of this parse
 * thread's own (opened on first use, kept in a GPrivate, closed when the
 * thread ends), so that the commit transaction, in the one writer, only
 * stores them (schema/029-search-text.sql): the vectors are computed by as
 * many backends as there are parse threads, as the indexer thread did
 * after the commit before 030.  The stage never fails: without a
 * connection (the database down) mv_ingest_batch
 * computes the vectors itself from the text. */
typedef struct {
	mv_db *db;
	const mv_pipeline *owner;
	gint64 retry_after;
} vectors_conn;

static void vectors_conn_free(gpointer data)
{
	vectors_conn *c = data;
	if (c == NULL)
		return;
	mv_db_close(&c->db);
	g_free(c);
}

static GPrivate vectors_conn_key = G_PRIVATE_INIT(vectors_conn_free);

static mv_status stage_vectors(mv_pipeline *p, record *r, char **error_r)
{
	(void)error_r;
	if (r->msg == NULL || r->msg->text == NULL || p->opt.db == NULL)
		return MV_OK;
	vectors_conn *c = g_private_get(&vectors_conn_key);
	if (c != NULL && (c->owner != p || (c->db != NULL && !mv_db_connected(c->db)))) {
		g_private_replace(&vectors_conn_key, NULL);
		c = NULL;
	}
	if (c == NULL) {
		c = g_new0(vectors_conn, 1);
		c->owner = p;
		g_private_set(&vectors_conn_key, c);
	}
	char *err = NULL;
	if (c->db == NULL) {
		if (g_get_monotonic_time() < c->retry_after)
			return MV_OK;
		mv_db_options o = *p->opt.db;
		o.no_start = TRUE;
		o.no_migrate = TRUE;
		if (mv_db_open(&o, &c->db, &err) != MV_OK) {
			c->retry_after = g_get_monotonic_time() + G_USEC_PER_SEC;
			g_free(err);
			return MV_OK;
		}
	}
	if (mv_store_vectors(c->db, r->msg, &err) != MV_OK) {
		logf_(p, MV_LOG_DEBUG, "search vectors left to the commit: %s", err);
		g_free(err);
	} else if (p->blind != NULL && mv_store_vectors_blind(p->blind, r->msg, &err) != MV_OK) {
		/* the commit makes them again on its connection */
		logf_(p, MV_LOG_DEBUG, "blind search vectors left to the commit: %s", err);
		g_free(err);
	}
	return MV_OK;
}

/* clamd: each attachment and the whole message, within the configured
 * time a message; clamd down or slow gives "unscanned", never an error:
 * `mailvault scan` takes the backlog. */
static mv_status stage_virus(mv_pipeline *p, record *r, char **error_r)
{
	if (forced_failure(p, "virus", error_r))
		return MV_ERR_INTERNAL;
	mv_scan_virus(&p->scan, r->msg);
	return MV_OK;
}

static mv_status stage_spam(mv_pipeline *p, record *r, char **error_r)
{
	if (forced_failure(p, "spam", error_r))
		return MV_ERR_INTERNAL;
	mv_scan_spam(&p->scan, r->msg);
	return MV_OK;
}

static mv_status verdicts_send(mv_db *db, void *context, mv_message *const *msgs, guint n,
                               char **error_r)
{
	(void)context;
	return mv_scan_store_send(db, msgs, n, error_r);
}

static mv_store_hook *verdicts_hook_new(void)
{
	mv_store_hook *hook = g_new0(mv_store_hook, 1);
	hook->name = "verdicts";
	hook->send = verdicts_send;
	return hook;
}

static void verdicts_hook_free(mv_store_hook **hook)
{
	g_clear_pointer(hook, g_free);
}

/* Run the per-message stages on r.  A failing stage flags the message and
 * the next stages run on what there is; parse failing leaves a raw-only
 * message. */
static void run_stages(mv_pipeline *p, record *r)
{
	for (gsize i = 0; i < G_N_ELEMENTS(stages); i++) {
		if (stages[i].each == NULL)
			continue;
		char *err = NULL;
		if (stages[i].each(p, r, &err) == MV_OK) {
			g_free(err);
			continue;
		}
		char *flag = g_strdup_printf("stage %s failed: %s", stages[i].name,
		                             err != NULL ? err : "unknown error");
		if (r->msg == NULL)
			r->msg = mv_message_new_unparsed(r->raw, flag);
		else
			g_ptr_array_add(r->msg->flags, g_strdup(flag));
		if (r->failed_stage == NULL)
			r->failed_stage = stages[i].name;
		g_free(flag);
		g_free(err);
	}
}

/* ---- submission ---- */

static char **strv_dup(const char *const *v)
{
	return v != NULL ? g_strdupv((char **)v) : NULL;
}

static void group_free(group *g)
{
	for (guint i = 0; i < g->n; i++) {
		record *r = &g->rec[i];
		mv_message_free(&r->msg);
		if (r->raw != NULL)
			g_bytes_unref(r->raw);
		g_strfreev(r->env_to);
		g_strfreev(r->env_bcc);
		g_free(r->env_from);
	}
	g_bytes_unref(g->raw);
	g_free(g->source_ref);
	g_free(g->env_from);
	g_free(g->client_addr);
	g_free(g->helo);
	g_free(g->tls);
	g_free(g->protocol);
	g_free(g->imap_mailbox);
	g_free(g->folder_path);
	g_free(g->item_id);
	if (g->entry_id != NULL)
		g_bytes_unref(g->entry_id);
	g_strfreev(g->env_to);
	g_free(g->journal_problem);
	g_free(g->error);
	g_free(g);
}

static group *group_new(mv_pipeline *p, const mv_pipeline_submission *s)
{
	group *g = g_new0(group, 1);
	g->raw = g_bytes_ref(s->raw);
	g->bytes = g_bytes_get_size(s->raw);
	g->sub = *s;
	const mv_arrival_info *a = s->arrival;
	static const mv_arrival_info none = {0};
	if (a == NULL)
		a = &none;
	g->source_ref = g_strdup(a->source_ref);
	g->env_from = g_strdup(a->envelope_from);
	g->env_to = strv_dup(a->envelope_to);
	g->client_addr = g_strdup(a->client_addr);
	g->helo = g_strdup(a->helo);
	g->tls = g_strdup(a->tls);
	g->protocol = g_strdup(a->protocol);
	g->imap_mailbox = g_strdup(a->imap_mailbox);
	g->folder_path = g_strdup(a->folder_path);
	g->item_id = g_strdup(a->item_id);
	if (a->source_sha256 != NULL)
		memcpy(g->source_sha256, a->source_sha256, MV_SHA256_LEN);
	if (a->entry_id != NULL)
		g->entry_id = g_bytes_new(a->entry_id, MIN(a->entry_id_len, 1024));
	g->arrival = (mv_arrival_info){
		.source = p->opt.source,
		.source_ref = g->source_ref,
		.envelope_from = g->env_from,
		.envelope_to = (const char *const *)g->env_to,
		.client_addr = g->client_addr,
		.helo = g->helo,
		.tls = g->tls,
		.protocol = g->protocol,
		.imap = a->imap,
		.imap_mailbox = g->imap_mailbox,
		.imap_uidvalidity = a->imap_uidvalidity,
		.imap_uid = a->imap_uid,
		.imap_internaldate = a->imap_internaldate,
		.source_sha256 = a->source_sha256 != NULL ? g->source_sha256 : NULL,
		.folder_path = g->folder_path,
		.item_id = g->item_id,
		.entry_id = g->entry_id != NULL ? g_bytes_get_data(g->entry_id, NULL) : NULL,
		.entry_id_len = g->entry_id != NULL ? g_bytes_get_size(g->entry_id) : 0,
		.reconstructed = a->reconstructed,
	};
	g->sub.arrival = NULL;
	return g;
}

/* Run the stages and, where allowed, unwrap a journal report: in a parse
 * thread.  The submitted message is parsed first; only one that may be a
 * report (mv_journal_candidate) is unwrapped. */
static void parse_group(gpointer data, gpointer user_data)
{
	group *g = data;
	mv_pipeline *p = user_data;
	record *w = &g->rec[0];
	g->n = 1;
	w->raw = g_bytes_ref(g->raw);
	w->arrival = g->arrival;
	run_stages(p, w);
	/* Rebuilt from MAPI properties (a PST or MSG item): the record says
	 * so itself, not only its arrival (docs/import.md). */
	if (g->arrival.reconstructed && w->msg != NULL)
		add_flag(w->msg, "reconstructed");
	mv_journal_report rep = {.kind = MV_JOURNAL_NONE};
	if (g->sub.unwrap_journal && w->failed_stage != stages[0].name &&
	    mv_journal_candidate(w->msg))
		mv_journal_unwrap(g->raw, &rep);
	g->journal = rep.kind;
	if (rep.kind == MV_JOURNAL_REPORT) {
		/* The original, with the envelope the report lists (Bcc
		 * included), then the report itself with the source's. */
		g->rec[1] = *w;
		w = &g->rec[1];
		record *o = &g->rec[0];
		*o = (record){0};
		g->n = 2;
		o->raw = g_bytes_ref(rep.original);
		o->env_from = g_strdup(rep.sender);
		g_ptr_array_add(rep.recipients, NULL);
		o->env_to = g_strdupv((char **)rep.recipients->pdata);
		g_ptr_array_add(rep.bcc, NULL);
		o->env_bcc = g_strdupv((char **)rep.bcc->pdata);
		o->arrival = g->arrival;
		o->arrival.envelope_from = o->env_from;
		o->arrival.envelope_to = (const char *const *)o->env_to;
		o->arrival.envelope_bcc = (const char *const *)o->env_bcc;
		run_stages(p, o);
		/* Each names the other by the SHA-256 its parse computed. */
		memcpy(o->link, w->msg->sha256, MV_SHA256_LEN);
		memcpy(w->link, o->msg->sha256, MV_SHA256_LEN);
		o->arrival.journal_report = o->link;
		w->arrival.journal_original = w->link;
	} else if (rep.kind == MV_JOURNAL_MALFORMED) {
		g->journal_problem = g_strdup(rep.problem);
		w->arrival.journal_problem = g->journal_problem;
		add_flag(w->msg, "journal report not unwrapped: %s", rep.problem);
	}
	mv_journal_report_clear(&rep);
	g_mutex_lock(&p->lock);
	g->parsed = TRUE;
	g_cond_broadcast(&p->work_cond);
	g_mutex_unlock(&p->lock);
}

/* Tell the source; the group is freed unless a waiter owns it. */
static void finish_group(mv_pipeline *p, group *g)
{
	mv_pipeline_outcome *o = &g->outcome;
	o->n = g->n;
	o->records = g->out;
	o->journal = g->journal;
	o->skipped = g->skipped;
	o->error = g->error;
	for (guint i = 0; i < g->n; i++) {
		record *r = &g->rec[i];
		mv_pipeline_record *out = &g->out[i];
		if (r->msg != NULL) {
			memcpy(out->sha256, r->msg->sha256, MV_SHA256_LEN);
			out->parse_status = r->msg->parse_status;
			out->flagged = strcmp(r->msg->parse_status, "ok") != 0 || r->failed_stage != NULL;
		}
		out->failed_stage = r->failed_stage;
	}
	if (g->sub.done != NULL)
		g->sub.done(g->sub.done_context, o);
	g_mutex_lock(&p->lock);
	p->in_flight--;
	p->in_flight_bytes -= g->bytes;
	g_cond_broadcast(&p->space_cond);
	if (g->waiter != NULL) {
		g->finished = TRUE;
		g_cond_signal(g->waiter);
		g = NULL; /* the waiter frees it */
	}
	g_mutex_unlock(&p->lock);
	if (g != NULL)
		group_free(g);
}

static void fail_group(mv_pipeline *p, group *g, mv_status st, const char *error)
{
	g->outcome.status = st;
	g_free(g->error);
	g->error = g_strdup(error != NULL ? error : "not stored");
	finish_group(p, g);
}

static guint in_flight_limit(mv_pipeline *p)
{
	guint limit = MAX(p->opt.in_flight_max, 1);
	if (p->opt.full_groups)
		limit = MAX(limit, 2 * p->opt.group_max);
	if (p->opt.train_first && p->train_pending)
		limit = MAX(limit, TRAIN_MESSAGES + p->opt.group_max);
	return limit;
}

/* A waiting submitter parses a message up to this size itself instead of
 * handing it to a parse thread (it would only wait): one context switch
 * less per message for a daemon's sessions.  Larger ones go to the pool,
 * whose size bounds how many are parsed at once. */
#define INLINE_PARSE_MAX (256 * 1024)

static group *enqueue(mv_pipeline *p, const mv_pipeline_submission *s, GCond *waiter)
{
	group *g = group_new(p, s);
	g->waiter = waiter;
	g_mutex_lock(&p->lock);
	while (p->failure == MV_OK && p->in_flight > 0 &&
	       (p->in_flight >= in_flight_limit(p) ||
	        p->in_flight_bytes + g->bytes > 2 * p->opt.group_bytes))
		g_cond_wait(&p->space_cond, &p->lock);
	p->in_flight++;
	p->in_flight_bytes += g->bytes;
	if (p->failure != MV_OK) {
		char *err = g_strdup(p->failure_error);
		mv_status st = p->failure;
		g_mutex_unlock(&p->lock);
		fail_group(p, g, st, err);
		g_free(err);
		return g;
	}
	g_queue_push_tail(&p->pending, g);
	g_mutex_unlock(&p->lock);
	if ((waiter != NULL && g->bytes <= INLINE_PARSE_MAX) ||
	    !g_thread_pool_push(p->parsers, g, NULL))
		parse_group(g, p);
	return g;
}

void mv_pipeline_submit(mv_pipeline *p, const mv_pipeline_submission *s)
{
	enqueue(p, s, NULL);
}

mv_status mv_pipeline_submit_wait(mv_pipeline *p, const mv_pipeline_submission *s)
{
	GCond waiter;
	g_cond_init(&waiter);
	group *g = enqueue(p, s, &waiter);
	g_mutex_lock(&p->lock);
	while (!g->finished)
		g_cond_wait(&waiter, &p->lock);
	g_mutex_unlock(&p->lock);
	g_cond_clear(&waiter);
	mv_status st = g->outcome.status;
	group_free(g);
	return st;
}

void mv_pipeline_flush(mv_pipeline *p)
{
	g_mutex_lock(&p->lock);
	p->draining++;
	g_cond_broadcast(&p->work_cond);
	while (p->in_flight > 0)
		g_cond_wait(&p->space_cond, &p->lock);
	p->draining--;
	g_mutex_unlock(&p->lock);
}

mv_status mv_pipeline_failure(mv_pipeline *p, char **error_r)
{
	g_mutex_lock(&p->lock);
	mv_status st = p->failure;
	if (st != MV_OK)
		mv_fail(error_r, st, "%s", p->failure_error);
	g_mutex_unlock(&p->lock);
	return st;
}

/* ---- the writers ---- */

/* Groups ready to commit, taken off pending (under lock): parsed, whole,
 * in order when ordered, at most group_max messages and group_bytes. */
static GPtrArray *take_ready(mv_pipeline *p)
{
	GPtrArray *take = g_ptr_array_new();
	guint msgs = 0;
	gsize bytes = 0;
	if (p->opt.full_groups) {
		/* Only a whole group, or when flushing the last, smaller one once
		 * everything is parsed: wait until that much is parsed. */
		gboolean all_parsed = TRUE;
		for (GList *l = p->pending.head; l != NULL; l = l->next) {
			group *g = l->data;
			if (!g->parsed) {
				all_parsed = FALSE;
				if (p->opt.ordered)
					break;
				continue;
			}
			msgs += g->n;
			bytes += g->bytes;
		}
		gboolean last = (p->draining > 0 || p->stop) && all_parsed;
		if (msgs < p->opt.group_max && bytes < p->opt.group_bytes && !last)
			return take;
		msgs = 0;
		bytes = 0;
	}
	GList *l = p->pending.head;
	while (l != NULL) {
		group *g = l->data;
		GList *next = l->next;
		if (!g->parsed) {
			if (p->opt.ordered)
				break;
			l = next;
			continue;
		}
		if (take->len > 0 && (msgs + g->n > p->opt.group_max || bytes + g->bytes > p->opt.group_bytes))
			break;
		msgs += g->n;
		bytes += g->bytes;
		g_ptr_array_add(take, g);
		g_queue_delete_link(&p->pending, l);
		l = next;
	}
	return take;
}

/* train_first: hold everything back until enough is parsed to train from
 * (or a flush says no more is coming).  Under lock. */
static gboolean holding_for_dictionary(mv_pipeline *p)
{
	if (!p->opt.train_first || !p->train_pending)
		return FALSE;
	guint msgs = 0;
	gsize bytes = 0;
	gboolean all_parsed = TRUE;
	for (GList *l = p->pending.head; l != NULL; l = l->next) {
		group *g = l->data;
		if (!g->parsed) {
			all_parsed = FALSE;
			break;
		}
		msgs += g->n;
		bytes += g->bytes;
	}
	if (msgs >= TRAIN_MESSAGES || bytes >= p->opt.group_bytes)
		return FALSE;
	/* A flush: nothing more is coming once everything is parsed. */
	return !((p->draining > 0 || p->stop) && all_parsed);
}

static void train(mv_pipeline *p, writer *w, GPtrArray *samples)
{
	if (samples->len < TRAIN_MIN_MESSAGES || w->blobs == NULL)
		return;
	char *err = NULL;
	/* A failed training is not an error: blobs are then compressed
	 * without a dictionary. */
	if (mv_blobstore_pg_train(w->blobs, samples, &err) == MV_OK)
		logf_(p, MV_LOG_DEBUG, "trained a compression dictionary from %u messages", samples->len);
	else
		logf_(p, MV_LOG_WARN, "no compression dictionary: %s", err);
	g_free(err);
}

/* train_first: train from the start of what is parsed. */
static void train_from_pending(mv_pipeline *p, writer *w)
{
	GPtrArray *samples = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
	g_mutex_lock(&p->lock);
	p->train_pending = FALSE;
	for (GList *l = p->pending.head; l != NULL && samples->len < TRAIN_MESSAGES; l = l->next) {
		group *g = l->data;
		if (!g->parsed)
			break;
		for (guint i = 0; i < g->n; i++) {
			gsize len = g_bytes_get_size(g->rec[i].raw);
			g_ptr_array_add(samples,
			                g_bytes_new_from_bytes(g->rec[i].raw, 0, MIN(len, TRAIN_SAMPLE_BYTES)));
		}
	}
	g_mutex_unlock(&p->lock);
	train(p, w, samples);
	g_ptr_array_free(samples, TRUE);
}

/* Otherwise: train once TRAIN_MESSAGES messages have committed. */
static void sample_committed(mv_pipeline *p, writer *w, group *const *gs, guint n)
{
	GPtrArray *full = NULL;
	g_mutex_lock(&p->lock);
	for (guint k = 0; p->samples != NULL && k < n; k++) {
		group *g = gs[k];
		if (g->outcome.status != MV_OK || g->skipped)
			continue;
		for (guint i = 0; i < g->n && p->samples->len < TRAIN_MESSAGES; i++) {
			gsize len = g_bytes_get_size(g->rec[i].raw);
			g_ptr_array_add(p->samples,
			                g_bytes_new_from_bytes(g->rec[i].raw, 0, MIN(len, TRAIN_SAMPLE_BYTES)));
		}
	}
	if (p->samples != NULL && p->samples->len >= TRAIN_MESSAGES) {
		full = p->samples;
		p->samples = NULL;
		p->train_pending = FALSE;
	}
	g_mutex_unlock(&p->lock);
	if (full != NULL) {
		train(p, w, full);
		g_ptr_array_free(full, TRUE);
	}
}

static void writer_disconnect(writer *w)
{
	if (w->borrowed)
		return;
	mv_blobstore_free(&w->blobs);
	mv_db_close(&w->db);
}

/* A usable connection, or the reason there is none. */
static mv_status writer_connect(mv_pipeline *p, writer *w, char **error_r)
{
	if (w->borrowed) {
		if (!mv_db_connected(w->db))
			return mv_fail(error_r, MV_ERR_DB, "the database connection was lost");
		return MV_OK;
	}
	if (w->db != NULL && !mv_db_connected(w->db))
		writer_disconnect(w);
	if (w->db != NULL)
		return MV_OK;
	if (g_get_monotonic_time() < w->retry_after)
		return mv_fail(error_r, MV_ERR_DB, "database unavailable");
	mv_db_options o = *p->opt.db;
	o.no_start = TRUE;
	o.no_migrate = TRUE;
	mv_status st = mv_db_open(&o, &w->db, error_r);
	if (st == MV_OK)
		st = mv_blobstore_pg_new(w->db, &p->opt.blob_settings, &w->blobs, error_r);
	if (st != MV_OK) {
		writer_disconnect(w);
		w->retry_after = g_get_monotonic_time() + G_USEC_PER_SEC;
		logf_(p, MV_LOG_DEBUG, "database unavailable: %s", *error_r);
		return st;
	}
	g_mutex_lock(&p->lock);
	if (p->train_pending && !p->opt.train_first && p->samples == NULL &&
	    !mv_blobstore_pg_has_dictionary(w->blobs))
		p->samples = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
	g_mutex_unlock(&p->lock);
	return MV_OK;
}

/* A source hook's arguments in one transaction, as a store hook. */
typedef struct {
	const mv_pipeline_hook *hook;
	GPtrArray *args;
	mv_store_hook store;
} source_hook;

static mv_status source_hook_send(mv_db *db, void *context, mv_message *const *msgs, guint n,
                                  char **error_r)
{
	(void)msgs;
	(void)n;
	source_hook *sh = context;
	return sh->hook->send(db, sh->hook->context, sh->args->pdata, sh->args->len, error_r);
}

/* Commit groups gs[0..n) in one transaction (skipped groups bring only
 * their hook arguments); sets each group's outcome status. */
static mv_status commit_groups_once(writer *w, group *const *gs, guint n, char **error_r)
{
	GPtrArray *msgs = g_ptr_array_new();
	GArray *arrivals = g_array_new(FALSE, FALSE, sizeof(mv_arrival_info));
	GPtrArray *hooks = g_ptr_array_new();
	GPtrArray *source_hooks = g_ptr_array_new();
	for (guint h = 0; h < w->n_hooks; h++)
		g_ptr_array_add(hooks, w->hooks[h]);
	for (guint k = 0; k < n; k++) {
		group *g = gs[k];
		for (guint i = 0; !g->skipped && i < g->n; i++) {
			g_ptr_array_add(msgs, g->rec[i].msg);
			g_array_append_val(arrivals, g->rec[i].arrival);
		}
		if (g->sub.hook == NULL)
			continue;
		source_hook *sh = NULL;
		for (guint i = 0; i < source_hooks->len && sh == NULL; i++)
			if (((source_hook *)source_hooks->pdata[i])->hook == g->sub.hook)
				sh = source_hooks->pdata[i];
		if (sh == NULL) {
			sh = g_new0(source_hook, 1);
			sh->hook = g->sub.hook;
			sh->args = g_ptr_array_new();
			sh->store = (mv_store_hook){.name = g->sub.hook->name, .send = source_hook_send,
			                            .context = sh};
			g_ptr_array_add(source_hooks, sh);
			g_ptr_array_add(hooks, &sh->store);
		}
		g_ptr_array_add(sh->args, g->sub.hook_arg);
	}
	mv_status st = MV_OK;
	if (msgs->len > 0 || source_hooks->len > 0) {
		mv_store_result *res = g_new0(mv_store_result, MAX(msgs->len, 1));
		st = mv_store_commit(w->db, w->blobs, (mv_message *const *)msgs->pdata,
		                     (const mv_arrival_info *)(void *)arrivals->data, msgs->len,
		                     (const mv_store_hook *const *)hooks->pdata, hooks->len, res,
		                     error_r);
		guint at = 0;
		for (guint k = 0; k < n; k++) {
			group *g = gs[k];
			for (guint i = 0; !g->skipped && i < g->n; i++, at++) {
				g->out[i].id = res[at].id;
				g->out[i].is_new = res[at].is_new;
				g_strlcpy(g->out[i].registration, res[at].registration,
				          sizeof g->out[i].registration);
			}
		}
		for (guint i = 0; i < msgs->len; i++)
			g_free(res[i].error);
		g_free(res);
	}
	for (guint k = 0; k < n; k++)
		gs[k]->outcome.status = st;
	for (guint i = 0; i < source_hooks->len; i++) {
		source_hook *sh = source_hooks->pdata[i];
		g_ptr_array_free(sh->args, TRUE);
		g_free(sh);
	}
	g_ptr_array_free(source_hooks, TRUE);
	g_ptr_array_free(hooks, TRUE);
	g_ptr_array_free(msgs, TRUE);
	g_array_free(arrivals, TRUE);
	return st;
}

/* commit_groups_once, and once more when it failed and a stage's hook can
 * do less next time (the ongoing holds defer a query that ran out of its
 * time, so that no hold can stop ingest). */
static mv_status commit_groups(writer *w, group *const *gs, guint n, char **error_r)
{
	mv_status st = commit_groups_once(w, gs, n, error_r);
	if (st == MV_OK || !mv_db_connected(w->db))
		return st;
	gboolean degraded = FALSE;
	for (guint h = 0; h < w->n_hooks; h++) {
		mv_store_hook *hook = w->hooks[h];
		if (hook->degrade != NULL && hook->degrade(w->db, hook->context))
			degraded = TRUE;
	}
	if (!degraded)
		return st;
	g_clear_pointer(error_r, g_free);
	return commit_groups_once(w, gs, n, error_r);
}

/* once_per_source: mark the groups whose submitted bytes already have an
 * arrival from this source, or came earlier in this take. */
static mv_status skip_known(mv_pipeline *p, writer *w, GPtrArray *take, char **error_r)
{
	uint8_t (*shas)[MV_SHA256_LEN] = g_malloc((gsize)MAX(take->len, 1) * MV_SHA256_LEN);
	guint asked = 0;
	for (guint k = 0; k < take->len; k++) {
		group *g = take->pdata[k];
		if (g->sub.once_per_source)
			memcpy(shas[asked++], g->rec[g->n - 1].msg->sha256, MV_SHA256_LEN);
	}
	GHashTable *known = g_hash_table_new_full(g_bytes_hash, g_bytes_equal,
	                                          (GDestroyNotify)g_bytes_unref, NULL);
	mv_status st = mv_store_arrived_from(w->db, p->opt.source,
	                                     (const uint8_t(*)[MV_SHA256_LEN])shas, asked, known,
	                                     error_r);
	g_free(shas);
	for (guint k = 0; st == MV_OK && k < take->len; k++) {
		group *g = take->pdata[k];
		if (!g->sub.once_per_source)
			continue;
		GBytes *key = g_bytes_new(g->rec[g->n - 1].msg->sha256, MV_SHA256_LEN);
		if (g_hash_table_contains(known, key)) {
			g->skipped = TRUE;
			g_bytes_unref(key);
		} else {
			g_hash_table_add(known, key); /* a second copy in this take */
		}
	}
	g_hash_table_destroy(known);
	return st;
}

static gboolean hook_failed(mv_pipeline *p, group *g)
{
	if (g->sub.hook == NULL)
		return FALSE;
	g_mutex_lock(&p->lock);
	gboolean failed = g_hash_table_contains(p->failed_hooks, g->sub.hook);
	g_mutex_unlock(&p->lock);
	return failed;
}

static void note_outcome(mv_pipeline *p, group *g)
{
	if (g->outcome.status == MV_OK || g->sub.hook == NULL)
		return;
	g_mutex_lock(&p->lock);
	g_hash_table_add(p->failed_hooks, (gpointer)g->sub.hook);
	g_mutex_unlock(&p->lock);
}

static gboolean fatal_failure(mv_db *db, mv_status st)
{
	return !mv_db_connected(db) || st == MV_ERR_DENIED;
}

/* Commit a take: together when it can, else one group per transaction (a
 * deadlock retried), so that one bad message cannot fail the others. */
static void commit_take(mv_pipeline *p, writer *w, GPtrArray *take)
{
	char *err = NULL;
	mv_status st = writer_connect(p, w, &err);
	if (st == MV_OK)
		st = skip_known(p, w, take, &err);
	/* A group behind a failure of its own hook cannot commit. */
	GPtrArray *todo = g_ptr_array_new();
	for (guint k = 0; k < take->len; k++) {
		group *g = take->pdata[k];
		if (st != MV_OK) {
			g->outcome.status = st;
			g->error = g_strdup(err);
			note_outcome(p, g);
		} else if (hook_failed(p, g)) {
			g->outcome.status = MV_ERR_INPUT;
			g->error = g_strdup("not stored: an earlier message of this source failed");
		} else {
			g_ptr_array_add(todo, g);
		}
	}
	if (todo->len > 0) {
		st = commit_groups(w, (group *const *)todo->pdata, todo->len, &err);
		if (st != MV_OK && (todo->len == 1 || fatal_failure(w->db, st))) {
			for (guint k = 0; k < todo->len; k++) {
				group *g = todo->pdata[k];
				g->error = g_strdup(err);
				note_outcome(p, g);
			}
		} else if (st != MV_OK) {
			/* Isolate the failure: one group per transaction, in order. */
			for (guint k = 0; k < todo->len; k++) {
				group *g = todo->pdata[k];
				char *e = NULL;
				mv_status s;
				if (hook_failed(p, g)) {
					s = g->outcome.status = MV_ERR_INPUT;
					e = g_strdup("not stored: an earlier message of this source failed");
				} else {
					for (guint attempt = 1;; attempt++) {
						g_clear_pointer(&e, g_free);
						s = commit_groups(w, &g, 1, &e);
						if (s == MV_OK || attempt >= RETRIES || fatal_failure(w->db, s) ||
						    !mv_db_failure_is_transient(w->db))
							break;
						g_usleep(attempt * 20000);
					}
				}
				if (s != MV_OK) {
					g->error = g_strdup(e);
					note_outcome(p, g);
				}
				g_free(e);
				if (s != MV_OK && fatal_failure(w->db, s)) {
					for (guint j = k + 1; j < todo->len; j++) {
						group *h = todo->pdata[j];
						h->outcome.status = s;
						h->error = g_strdup(g->error);
						note_outcome(p, h);
					}
					break;
				}
			}
		}
	}
	if (st != MV_OK && w->db != NULL && fatal_failure(w->db, st) && w->borrowed) {
		/* The source's own connection is gone: nothing more can commit. */
		g_mutex_lock(&p->lock);
		if (p->failure == MV_OK) {
			p->failure = st;
			p->failure_error = g_strdup(err);
		}
		g_mutex_unlock(&p->lock);
	}
	g_free(err);
	g_ptr_array_free(todo, TRUE);

	guint committed = 0;
	for (guint k = 0; k < take->len; k++) {
		group *g = take->pdata[k];
		if (g->outcome.status == MV_OK && !g->skipped)
			committed += g->n;
	}
	if (committed > 0) {
		if (p->samples != NULL)
			sample_committed(p, w, (group *const *)take->pdata, take->len);
		g_mutex_lock(&p->lock);
		p->unindexed += committed;
		p->last_commit = g_get_monotonic_time();
		g_cond_signal(&p->index_cond);
		g_mutex_unlock(&p->lock);
	}
	for (guint k = 0; k < take->len; k++)
		finish_group(p, take->pdata[k]);
}

static gpointer writer_main(gpointer data)
{
	mv_pipeline *p = data;
	writer w = {0};
	if (p->opt.db_conn != NULL) {
		w.db = p->opt.db_conn;
		w.blobs = p->opt.blobs;
		w.borrowed = TRUE;
	}
	for (gsize i = 0; i < G_N_ELEMENTS(stages); i++) {
		if (stages[i].hook_new == NULL)
			continue;
		w.hook_stage[w.n_hooks] = &stages[i];
		w.hooks[w.n_hooks++] = stages[i].hook_new();
	}
	for (;;) {
		g_mutex_lock(&p->lock);
		GPtrArray *take = NULL;
		for (;;) {
			gboolean hold = holding_for_dictionary(p);
			if (!hold && p->opt.train_first && p->train_pending)
				break; /* train before taking anything */
			if (!hold) {
				take = take_ready(p);
				if (take->len > 0)
					break;
				g_ptr_array_free(take, TRUE);
				take = NULL;
				if (p->stop && g_queue_is_empty(&p->pending))
					break;
			}
			g_cond_wait(&p->work_cond, &p->lock);
		}
		gboolean train_now = take == NULL && p->opt.train_first && p->train_pending;
		g_mutex_unlock(&p->lock);
		if (train_now) {
			char *err = NULL;
			if (writer_connect(p, &w, &err) == MV_OK && !mv_blobstore_pg_has_dictionary(w.blobs))
				train_from_pending(p, &w);
			else {
				g_mutex_lock(&p->lock);
				p->train_pending = FALSE;
				g_mutex_unlock(&p->lock);
			}
			g_free(err);
			continue;
		}
		if (take == NULL)
			break;
		commit_take(p, &w, take);
		g_ptr_array_free(take, TRUE);
	}
	for (guint h = 0; h < w.n_hooks; h++)
		w.hook_stage[h]->hook_free(&w.hooks[h]);
	writer_disconnect(&w);
	return NULL;
}

/* ---- the indexer ---- */

/* IN_PAUSES: should the indexer run now?  Under lock; *until_r: when to
 * look again if not. */
static gboolean index_now(mv_pipeline *p, gint64 *until_r)
{
	*until_r = 0;
	if (p->unindexed <= 0)
		return FALSE;
	if (p->opt.index == MV_PIPELINE_INDEX_CONCURRENT || p->unindexed >= INDEX_BACKLOG_MAX)
		return TRUE;
	gint64 quiet_at = p->last_commit + INDEX_QUIET_US;
	if (g_get_monotonic_time() >= quiet_at)
		return TRUE;
	*until_r = quiet_at;
	return FALSE;
}

/* Computes the search vectors of committed messages on its own connection,
 * so that a commit never waits on indexing (search finds messages not yet
 * indexed too, only more slowly). */
static gpointer indexer_main(gpointer data)
{
	mv_pipeline *p = data;
	mv_db *db = NULL;
	gboolean failing = FALSE;
	gint64 settle_after = 0;
	for (;;) {
		g_mutex_lock(&p->lock);
		gint64 until = 0;
		while (!p->index_stop && !index_now(p, &until)) {
			if (until > 0)
				g_cond_wait_until(&p->index_cond, &p->lock, until);
			else
				g_cond_wait(&p->index_cond, &p->lock);
		}
		gboolean stop = p->index_stop;
		g_mutex_unlock(&p->lock);
		if (stop)
			break;
		if (db != NULL && !mv_db_connected(db))
			mv_db_close(&db);
		char *err = NULL;
		if (db == NULL) {
			mv_db_options o = *p->opt.db;
			o.no_start = TRUE;
			o.no_migrate = TRUE;
			if (mv_db_open(&o, &db, &err) != MV_OK) {
				/* The writer reports an unavailable database. */
				g_free(err);
				g_usleep(500 * 1000);
				continue;
			}
		}
		gint64 done = 0;
		if (mv_store_index_pending(db, INDEX_BATCH, INDEX_BATCH, &done, &err) != MV_OK) {
			if (!failing) /* one line per outage, not one per attempt */
				logf_(p, MV_LOG_WARN, "indexing: %s", err);
			failing = TRUE;
			g_free(err);
			mv_db_close(&db);
			g_usleep(500 * 1000);
			continue;
		}
		failing = FALSE;
		/* New messages an ongoing hold deferred (its query ran out of
		 * time in the ingest transaction) are decided here, outside it;
		 * at most every SETTLE_EVERY_US: with extraction deferred the
		 * pending items of messages awaiting their text wait for
		 * index --reextract, and looking at them after every commit
		 * would cost more the longer the backlog. */
		gint64 settled = 0, now = g_get_monotonic_time();
		mv_status sst = MV_OK;
		if (now >= settle_after) {
			settle_after = now + SETTLE_EVERY_US;
			sst = mv_hold_settle_pending(db, "mailvault ingest", &settled, &err);
		}
		if (sst != MV_OK) {
			logf_(p, MV_LOG_WARN, "ongoing holds: settling deferred messages: %s", err);
			g_clear_pointer(&err, g_free);
		} else if (settled > 0) {
			logf_(p, MV_LOG_DEBUG, "ongoing holds: %" G_GINT64_FORMAT " deferred messages settled", settled);
		}
		/* A full batch: there may be more (left by an earlier run or an
		 * outage) even when the count says none. */
		g_mutex_lock(&p->lock);
		p->unindexed = done < INDEX_BATCH ? 0 : MAX(p->unindexed - done, 1);
		g_mutex_unlock(&p->lock);
	}
	mv_db_close(&db);
	return NULL;
}

/* What is left unindexed, on two connections at once (SKIP LOCKED shares
 * the rows): the indexer's and this one. */
static void index_rest(mv_pipeline *p)
{
	mv_db_options o = *p->opt.db;
	o.no_start = TRUE;
	o.no_migrate = TRUE;
	mv_db *db = NULL;
	char *err = NULL;
	if (mv_db_open(&o, &db, &err) == MV_OK) {
		gint64 n = 0;
		do {
			g_clear_pointer(&err, g_free);
		} while (mv_store_index_pending(db, INDEX_BATCH, INDEX_BATCH, &n, &err) == MV_OK &&
		         n > 0);
		mv_db_close(&db);
	}
	g_free(err); /* best effort: search computes missing vectors itself */
}

/* ---- life cycle ---- */

static void policy_free_ptr(gpointer policy)
{
	mv_policy *pol = policy;
	mv_policy_free(&pol);
}

mv_status mv_pipeline_new(const mv_pipeline_options *options, mv_pipeline **pipeline_r,
                          char **error_r)
{
	*pipeline_r = NULL;
	if (options->db == NULL)
		return mv_fail(error_r, MV_ERR_INTERNAL, "pipeline without database options");
	mv_pipeline *p = g_new0(mv_pipeline, 1);
	p->opt = *options;
	if (p->opt.group_max == 0)
		p->opt.group_max = 200;
	if (p->opt.group_bytes == 0)
		p->opt.group_bytes = 64 * 1024 * 1024;
	if (p->opt.db_conn != NULL || p->opt.writers == 0)
		p->opt.writers = 1;
	p->fail_stage = g_getenv("MAILVAULT_TEST_FAIL_STAGE");
	mv_scan_config_from_env(&p->scan);
	p->extract = mv_extract_mode_get();
	mv_extract_limits_from_env(&p->extract_limits);
	if (p->scan.clamd != NULL || p->extract == MV_EXTRACT_MODE_ON)
		p->opt.limits.keep_attachment_content = TRUE;
	g_mutex_init(&p->lock);
	g_cond_init(&p->work_cond);
	g_cond_init(&p->space_cond);
	g_cond_init(&p->index_cond);
	g_queue_init(&p->pending);
	p->failed_hooks = g_hash_table_new(NULL, NULL);
	p->old_policies = g_ptr_array_new_with_free_func(policy_free_ptr);

	/* The policy in force, and a check that the database answers. */
	mv_db *db = p->opt.db_conn;
	mv_status st = MV_OK;
	if (db == NULL)
		st = mv_db_open(p->opt.db, &db, error_r);
	if (st == MV_OK)
		st = mv_policy_store_current(db, &p->policy.policy, &p->policy.version, error_r);
	/* The blind search index, when encryption is on: the parse threads
	 * make the vectors blind (stage_vectors). */
	if (st == MV_OK) {
		mv_blobstore *blobs = p->opt.blobs;
		if (blobs == NULL)
			st = mv_blobstore_pg_new(db, &p->opt.blob_settings, &blobs, error_r);
		if (st == MV_OK)
			p->blind = mv_blind_ref((mv_blind *)mv_blobstore_pg_blind(blobs));
		if (st == MV_OK && p->opt.train_dictionary)
			p->train_pending = !mv_blobstore_pg_has_dictionary(blobs);
		if (blobs != p->opt.blobs)
			mv_blobstore_free(&blobs);
	}
	if (db != p->opt.db_conn)
		mv_db_close(&db);
	if (st != MV_OK) {
		p->opt.index = MV_PIPELINE_INDEX_NONE;
		mv_pipeline_free(&p);
		return st;
	}
	guint nparse = p->opt.parse_threads != 0 ? p->opt.parse_threads
	                                         : CLAMP(g_get_num_processors(), 1, 8);
	p->parsers = g_thread_pool_new(parse_group, p, (gint)nparse, TRUE, NULL);
	p->unindexed = G_MAXINT32; /* what an earlier run left unindexed */
	if (p->opt.index != MV_PIPELINE_INDEX_NONE)
		p->indexer = g_thread_new("mv-index", indexer_main, p);
	p->n_writers = p->opt.writers;
	p->writer_threads = g_new0(GThread *, p->n_writers);
	for (guint i = 0; i < p->n_writers; i++)
		p->writer_threads[i] = g_thread_new("mv-writer", writer_main, p);
	*pipeline_r = p;
	return MV_OK;
}

mv_status mv_pipeline_reload_policy(mv_pipeline *p, gint64 *version_r, char **error_r)
{
	mv_db_options o = *p->opt.db;
	o.no_start = TRUE;
	o.no_migrate = TRUE;
	mv_db *db = NULL;
	mv_policy *policy = NULL;
	gint64 version = 0;
	mv_status st = mv_db_open(&o, &db, error_r);
	if (st == MV_OK)
		st = mv_policy_store_current(db, &policy, &version, error_r);
	mv_db_close(&db);
	if (st != MV_OK)
		return st;
	g_mutex_lock(&p->lock);
	if (p->policy.policy != NULL)
		g_ptr_array_add(p->old_policies, p->policy.policy);
	p->policy = (policy_ref){policy, version};
	g_mutex_unlock(&p->lock);
	if (version_r != NULL)
		*version_r = version;
	return MV_OK;
}

void mv_pipeline_free(mv_pipeline **pp)
{
	mv_pipeline *p = pp != NULL ? *pp : NULL;
	if (p == NULL)
		return;
	if (p->writer_threads != NULL) {
		mv_pipeline_flush(p);
		g_mutex_lock(&p->lock);
		p->stop = TRUE;
		g_cond_broadcast(&p->work_cond);
		g_mutex_unlock(&p->lock);
		for (guint i = 0; i < p->n_writers; i++)
			g_thread_join(p->writer_threads[i]);
		g_free(p->writer_threads);
	}
	if (p->parsers != NULL)
		g_thread_pool_free(p->parsers, FALSE, TRUE);
	if (p->indexer != NULL) {
		if (p->opt.index_before_free && p->failure == MV_OK)
			index_rest(p);
		g_mutex_lock(&p->lock);
		p->index_stop = TRUE;
		g_cond_signal(&p->index_cond);
		g_mutex_unlock(&p->lock);
		g_thread_join(p->indexer);
	}
	if (p->samples != NULL)
		g_ptr_array_free(p->samples, TRUE);
	mv_policy_free(&p->policy.policy);
	g_ptr_array_free(p->old_policies, TRUE);
	mv_blind_free(&p->blind);
	g_hash_table_destroy(p->failed_hooks);
	g_free(p->failure_error);
	g_mutex_clear(&p->lock);
	g_cond_clear(&p->work_cond);
	g_cond_clear(&p->space_cond);
	g_cond_clear(&p->index_cond);
	g_free(p);
	*pp = NULL;
}

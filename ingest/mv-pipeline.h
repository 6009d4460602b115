/* mv-pipeline: the one ingest path.  Every source (file import, the SMTP
 * feed, the IMAP journal puller) hands each message it received to a
 * pipeline and is told the outcome only after COMMIT:
 *
 *   submit ─> unwrap ─> stages (parse, classify) ─> group commit (one
 *   writer: messages, ongoing holds, the source's hook, one transaction)
 *   ─> done callback ─> the source acknowledges (SMTP reply, IMAP flag or
 *   expunge, import count)
 *
 * and, after the commit, the indexer computes search vectors on its own
 * connection.  The stages are one declared table in mv-pipeline.c.
 *
 * The rule for a failing stage: a message whose parse or classification
 * fails is stored all the same, byte-exact, with the flag "stage NAME
 * failed: WHY" (parse: as "unparsable"; classify: without a class).
 * Nothing is dropped because a stage failed.  Only the transaction itself
 * (the database, or a stage that runs inside it such as the ongoing holds)
 * can fail a message, and then the source is told so and keeps it (SMTP
 * 451, the IMAP cursor stays before it, import reports it failed).
 *
 * Journal reports are unwrapped only where the submission allows it
 * (mv-journal.h): the original becomes a record of its own with the
 * report's envelope (Bcc included), the report a second record; both
 * commit in one transaction and the outcome carries both.
 *
 * Threads: submit may be called from any thread and waits while too much
 * is in flight; done callbacks run in a writer thread, in commit order,
 * and must not block for long nor call back into the pipeline.
 *
 * Ownership: mv_pipeline_new's options and what they point to are borrowed
 * until mv_pipeline_free (db_conn and blobs too, when given).  A
 * submission is copied; its raw bytes are referenced. */
#ifndef MV_PIPELINE_H
#define MV_PIPELINE_H

#include <glib.h>

#include "mv-blobstore.h"
#include "mv-db.h"
#include "mv-journal.h"
#include "mv-message.h"
#include "mv-status.h"
#include "mv-store.h"

typedef struct mv_pipeline mv_pipeline;

typedef enum {
	MV_PIPELINE_INDEX_NONE,       /* leave search vectors to `mailvault index` */
	MV_PIPELINE_INDEX_CONCURRENT, /* index while ingesting, on a second
	                                 connection (bulk: import, IMAP) */
	MV_PIPELINE_INDEX_IN_PAUSES,  /* index when the feed pauses (100 ms
	                                 without a commit) or 5,000 wait (smtpd) */
} mv_pipeline_index;

typedef void (*mv_pipeline_log_fn)(void *context, const char *line);

typedef struct {
	const char *source;          /* every arrival's source: "import", "smtp",
	                                "lmtp", "imap:NAME" */
	const mv_db_options *db;     /* how to open connections (required) */
	mv_db *db_conn;              /* a connection to commit on (borrowed), or
	                                NULL: each writer opens its own and opens
	                                it again after an outage */
	mv_blobstore *blobs;         /* db_conn's blob store */
	mv_blobstore_settings blob_settings; /* for connections of its own */
	guint writers;               /* writers on connections of their own (1) */
	guint group_max;             /* messages per transaction (200) */
	gsize group_bytes;           /* bytes per transaction (64 MiB) */
	guint in_flight_max;         /* submissions not done before submit waits (1024) */
	mv_parse_limits limits;
	guint parse_threads;         /* 0: one per processor, at most 8 */
	gboolean ordered;            /* commit in submission order: ids follow
	                                the input and a source hook sees its
	                                groups in order */
	gboolean full_groups;        /* commit group_max messages (or group_bytes)
	                                at a time, fewer only when flushing (bulk
	                                sources); else whatever is waiting (a
	                                daemon's group commit) */
	gboolean train_dictionary;   /* train a zstd dictionary from the first
	                                messages when the archive has none (TRUE) */
	gboolean train_first;        /* hold the first 1,000 messages until the
	                                dictionary is trained, so they use it too
	                                (bulk import); else train once 1,000 are
	                                committed */
	mv_pipeline_index index;
	gboolean index_before_free;  /* mv_pipeline_free returns once everything
	                                committed is indexed */
	mv_pipeline_log_fn log;      /* a daemon's log (outages, dictionary), or NULL */
	void *log_context;
} mv_pipeline_options;

void mv_pipeline_options_default(mv_pipeline_options *options);

/* A source's statements in the transaction that commits its messages: an
 * IMAP cursor advancing over the UIDs it covers.  send gets the hook_arg
 * of every submission of this hook in the transaction, in submission order
 * (skipped ones too), and may only send statements with mv_db_send.  Once
 * a transaction with a submission of the hook fails, every later
 * submission of the hook fails without being tried: a cursor never moves
 * past a message that was not stored. */
typedef struct {
	const char *name;
	mv_status (*send)(mv_db *db, void *context, gpointer const *args, guint n, char **error_r);
	void *context;
} mv_pipeline_hook;

/* One committed (or failed) record of a submission. */
typedef struct {
	uint8_t sha256[MV_SHA256_LEN];
	gint64 id;                /* when committed */
	gboolean is_new;          /* FALSE: the bytes were archived before */
	char registration[24];
	const char *parse_status; /* "ok", "partial", "unparsable" */
	gboolean flagged;         /* parse_status is not "ok", or a stage failed */
	const char *failed_stage; /* the first stage that failed, or NULL */
} mv_pipeline_record;

typedef struct {
	mv_status status;         /* MV_OK: every record is committed */
	const char *error;        /* when not MV_OK */
	gboolean skipped;         /* once_per_source: these bytes already
	                             arrived from this source; nothing stored */
	mv_journal_kind journal;  /* NONE, REPORT (records: original, report),
	                             MALFORMED (one record, flagged) */
	guint n;                  /* records: 1, or 2 for an unwrapped report */
	const mv_pipeline_record *records;
} mv_pipeline_outcome;

/* Called once per submission, after its COMMIT (or failure).  The outcome
 * is valid during the call only. */
typedef void (*mv_pipeline_done_fn)(void *context, const mv_pipeline_outcome *outcome);

typedef struct {
	GBytes *raw;                   /* the exact bytes received (referenced) */
	const mv_arrival_info *arrival; /* copied; its source is the pipeline's */
	gboolean unwrap_journal;       /* unwrap a journal report: only where
	                                  the source receives nothing else */
	gboolean once_per_source;      /* skip bytes that already arrived from
	                                  this source (a journal mailbox rescan);
	                                  needs a single writer */
	const mv_pipeline_hook *hook;  /* or NULL */
	gpointer hook_arg;
	mv_pipeline_done_fn done;
	void *done_context;
} mv_pipeline_submission;

/* Start the pipeline: parse threads, writers, indexer.  Loads the current
 * retention policy (on db_conn, or on a connection opened with db as it is,
 * which may start and migrate the embedded database).  Fails on a database
 * that cannot be reached. */
mv_status mv_pipeline_new(const mv_pipeline_options *options, mv_pipeline **pipeline_r,
                          char **error_r) MV_WARN_UNUSED;

/* Hand over one message.  done is called exactly once: later from a writer
 * thread, or before this returns when the pipeline has failed for good. */
void mv_pipeline_submit(mv_pipeline *p, const mv_pipeline_submission *submission);

/* submit, then wait for the outcome: the submission's done (may be NULL)
 * sees it first, in the writer's thread.  Returns the outcome's status. */
mv_status mv_pipeline_submit_wait(mv_pipeline *p, const mv_pipeline_submission *submission);

/* Wait until everything submitted so far is done (committed or failed). */
void mv_pipeline_flush(mv_pipeline *p);

/* A failure that ends the pipeline's work for good (its borrowed
 * connection is gone, or the role may not ingest), with its message
 * (g_free), or MV_OK. */
mv_status mv_pipeline_failure(mv_pipeline *p, char **error_r);

/* Load the current retention policy again (SIGHUP); the old one stays in
 * use by messages already being classified.  *version_r: now in force. */
mv_status mv_pipeline_reload_policy(mv_pipeline *p, gint64 *version_r, char **error_r)
	MV_WARN_UNUSED;

/* Finish what is in flight, stop the threads (index first when
 * index_before_free), free everything. */
void mv_pipeline_free(mv_pipeline **p);

#endif

/* mv-purge: disposal of expired records with a destruction certificate.
 *
 * A run destroys every message whose expiry has passed, that no active
 * hold covers, and whose class's disposition (in the current policy) is
 * "purge", or "review" with destruction approved for that expiry (see
 * mv-review.h: two reviewers for a four-eyes class); each goes through mv_purge_message() in the database, which
 * checks expiry and holds again, leaves a tombstone and removes content no
 * other message shares.  The run's certificate lists what was destroyed
 * (registration number, SHA-256, date, class, expiry, deciding policy
 * version), when and by whom.  It is not stored as text: it is rendered
 * from the run's disposition row and tombstones (mv_purge_certificate), and
 * the run stores its SHA-256 and records it in the audit trail, so anyone
 * can re-render a past certificate and check it.  Runs are mutually exclusive (MV_ERR_BUSY, or
 * wait for the running one) and idempotent.
 *
 * Runs are numbered 1, 2, 3, ... without gaps (schema/014-purge-runs.sql):
 * every run that is not a dry run is a disposition row with its number and
 * state and an audit entry (action "purge"), also one that found nothing
 * due (state nothing-due, a certificate of no records) and one refused
 * because another run held the lock (refused-busy, no certificate).
 *
 * A destroyed record stays findable: mv_purge_tombstone_find gives what it
 * was, when and by which run it was destroyed, and who approved it.
 *
 * Ownership: mv_purge_result_free, mv_purge_run_free (GPtrArray free
 * function), mv_tombstone_free. */
#ifndef MV_PURGE_H
#define MV_PURGE_H

#include "mv-db.h"
#include "mv-policy.h"

typedef struct {
	gint64 id;
	char *registration, *sha256, *date, *class_name, *expires_at;
	gint64 policy_version;
	char **approved_by; /* certificate records: who approved its destruction
	                       (review classes), NULL-terminated; else NULL */
} mv_purge_item;

/* Called for each message destroyed (or, in a dry run, due), in the order
 * of destruction; the item is only valid during the call. */
typedef void mv_purge_item_fn(void *context, const mv_purge_item *item);

typedef struct {
	gint64 limit;        /* destroy at most this many; 0: no limit */
	gboolean dry_run;    /* list what is due, destroy nothing, record no run */
	guint wait_seconds;  /* wait this long for a running purge; 0: refuse at once */
	const char *actor;   /* who performs it (audit trail, certificate) */
} mv_purge_options;

typedef struct {
	gint64 run;              /* the run's number; 0 for a dry run */
	gint64 disposition_id;   /* its disposition row; 0 for a dry run */
	gint64 count;            /* destroyed (dry run: due) */
	const char *state;       /* static: complete, nothing-due, failed,
	                            refused-busy; NULL for a dry run */
	char *certificate_sha256; /* NULL for a dry run or a refused run */
} mv_purge_result;

void mv_purge_result_free(mv_purge_result **result);

/* One purge run, batch by batch: memory does not grow with the number of
 * records.  item_fn may be NULL.  When another run holds the purge lock
 * (after waiting options->wait_seconds), MV_ERR_BUSY: the refusal is
 * recorded as a run (not for a dry run).  *result_r is set on success and
 * also on failure once a run was recorded (its number and state). */
mv_status mv_purge(mv_db *db, const mv_policy *policy, gint64 policy_version,
                   const mv_purge_options *options, mv_purge_item_fn *item_fn, void *context,
                   mv_purge_result **result_r, char **error_r) MV_WARN_UNUSED;

/* A recorded run. */
typedef struct {
	gint64 run, disposition_id;
	char *state;         /* as in schema/014-purge-runs.sql; an unfinished
	                        run that no purge is running is "interrupted" */
	char *performed_by, *started_at, *finished_at; /* finished_at: NULL while running */
	gint64 policy_version; /* 0: none */
	gint64 destroyed;
	char *certificate_sha256; /* hex, or NULL (refused or unfinished runs) */
} mv_purge_run;

void mv_purge_run_free(gpointer run);

/* Run `run` (0: every run, in order).  *runs_r: GPtrArray of mv_purge_run*;
 * MV_ERR_NOT_FOUND when run > 0 does not exist. */
mv_status mv_purge_runs(mv_db *db, gint64 run, GPtrArray **runs_r, char **error_r)
	MV_WARN_UNUSED;

/* Receives the text of a certificate piece by piece. */
typedef void mv_purge_write_fn(void *context, const char *text, gsize len);

/* Render the destruction certificate of run number `run` from its record
 * and tombstones (streamed; write may be NULL to only hash it; record_fn,
 * if not NULL, gets each record as it is rendered, with its approvers) and
 * check it against the SHA-256 the run stored.  *sha256_hex_r (65 bytes)
 * gets the rendered text's SHA-256.  MV_ERR_NOT_FOUND for no such run, or
 * one without a certificate (refused, unfinished), MV_ERR_INTEGRITY when
 * the text no longer matches the stored SHA-256.
 *
 * The text (format 2, runs since schema 014; UTF-8, LF line ends):
 *   mailvault destruction certificate
 *   run: N
 *   state: STATE
 *   performed by: ACTOR
 *   started at: ISO 8601 UTC
 *   completed at: ISO 8601 UTC
 *   policy version: V (0: none)
 *   records destroyed: N
 *   registration TAB sha256 TAB date TAB class TAB expired TAB policy version TAB approved by
 *   one line per record in message id order, "-" for an empty field,
 *   approvers separated by ", ".
 * Format 1 (earlier runs) has "disposition: ID" instead of run, state and
 * start, and no approved by column. */
mv_status mv_purge_certificate(mv_db *db, gint64 run, mv_purge_write_fn *write,
                               mv_purge_item_fn *record_fn, void *context, char *sha256_hex_r,
                               char **error_r) MV_WARN_UNUSED;

/* One approval of a destroyed record's destruction (review_decision). */
typedef struct {
	char *by;     /* the reviewer named with --by */
	char *actor;  /* who ran the command */
	char *at;     /* ISO 8601 UTC */
} mv_purge_approval;

/* What the archive keeps of a destroyed record. */
typedef struct {
	gint64 id, size, policy_version;
	char *sha256, *registration, *message_id, *date, *from, *class_name, *expires_at,
		*deciding_rule, *archived_at, *destroyed_at; /* NULL when unknown */
	gint64 run, disposition_id;       /* the purge run that destroyed it */
	char *run_state, *performed_by, *run_finished_at, *certificate_sha256;
	GPtrArray *approvals;             /* mv_purge_approval*, in order: review
	                                     approvals, or an erasure's proposer and
	                                     approver (by: "ROLE (proposed erasure N)") */
	gint64 erasure_request;           /* the erasure request it was destroyed on; 0: none */
} mv_tombstone;

void mv_tombstone_free(mv_tombstone **tombstone);

/* One line: "message ID (REGISTRATION) was destroyed [on erasure request
 * R] by purge run N at TIME".  g_free. */
char *mv_tombstone_describe(const mv_tombstone *tombstone);

/* The tombstone of a destroyed record by message id, SHA-256 or
 * registration number (as mv_store_resolve takes them; the latest when
 * the same bytes were destroyed twice).  MV_ERR_USAGE for a malformed ref,
 * MV_ERR_NOT_FOUND when there is none. */
mv_status mv_purge_tombstone_find(mv_db *db, const char *ref, mv_tombstone **tombstone_r,
                                  char **error_r) MV_WARN_UNUSED;

/* For other ways of destroying records that use purge's runs and
 * certificates (mv-erase.h): take the purge lock (as mv_purge does: wait up
 * to wait_seconds; *locked_r FALSE when another run holds it), release it,
 * and complete run disposition_id in state `state`: render its certificate
 * from its tombstones, store its SHA-256 (*sha256_r, hex, g_free) and write
 * the run's audit entry (action "purge", note added to its details). */
mv_status mv_purge_lock(mv_db *db, guint wait_seconds, gboolean *locked_r, char **error_r)
	MV_WARN_UNUSED;
void mv_purge_unlock(mv_db *db);
mv_status mv_purge_finish_run(mv_db *db, gint64 disposition_id, const char *actor,
                              const char *state, const char *note, char **sha256_r,
                              gint64 *count_r, char **error_r) MV_WARN_UNUSED;

#endif

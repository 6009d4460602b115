/* mv-retention: explain and apply. */
#include "mv-scan.h"
#include "mv-retention.h"

#include <string.h>

#include "mv-audit.h"
#include "mv-hold.h"
#include "mv-pool.h"
#include "mv-store.h"

static mv_status first_arrival(mv_db *db, const char *idtext, char **source_r, char **env_from_r,
                               GPtrArray *env_to, gint64 *archived_r, char **error_r)
{
	const char *v[] = {idtext};
	PGresult *r = NULL;
	mv_status st = mv_db_query(db,
	                           "SELECT a.source, a.envelope_from, "
	                           "extract(epoch FROM m.archived_at)::bigint, a.id "
	                           "FROM message m LEFT JOIN LATERAL (SELECT * FROM arrival x "
	                           "WHERE x.message_id = m.id ORDER BY x.id LIMIT 1) a ON true "
	                           "WHERE m.id = $1",
	                           1, v, NULL, NULL, 0, &r, error_r);
	if (st != MV_OK)
		return st;
	if (PQntuples(r) != 1) {
		PQclear(r);
		return mv_fail(error_r, MV_ERR_NOT_FOUND, "no message %s in the archive", idtext);
	}
	*source_r = PQgetisnull(r, 0, 0) ? NULL : g_strdup(PQgetvalue(r, 0, 0));
	*env_from_r = PQgetisnull(r, 0, 1) ? NULL : g_strdup(PQgetvalue(r, 0, 1));
	*archived_r = g_ascii_strtoll(PQgetvalue(r, 0, 2), NULL, 10);
	char *aid = PQgetisnull(r, 0, 3) ? NULL : g_strdup(PQgetvalue(r, 0, 3));
	PQclear(r);
	if (aid != NULL) {
		const char *av[] = {aid};
		st = mv_db_query(db,
		                 "SELECT t FROM arrival, unnest(envelope_to) WITH ORDINALITY AS u(t, n) "
		                 "WHERE id = $1 ORDER BY n",
		                 1, av, NULL, NULL, 0, &r, error_r);
		for (int i = 0; st == MV_OK && i < PQntuples(r); i++)
			g_ptr_array_add(env_to, g_strdup(PQgetvalue(r, i, 0)));
		PQclear(r);
		g_free(aid);
	}
	return st;
}

mv_status mv_retention_evaluate(mv_db *db, mv_blobstore *blobs, const mv_policy *policy,
                                gint64 policy_version, gint64 id, mv_message **msg_r,
                                mv_rules_result **result_r, char **error_r)
{
	*msg_r = NULL;
	*result_r = NULL;
	char idtext[24];
	g_snprintf(idtext, sizeof idtext, "%" G_GINT64_FORMAT, id);
	char *source = NULL, *env_from = NULL;
	GPtrArray *env_to = g_ptr_array_new_with_free_func(g_free);
	gint64 archived = 0;
	GBytes *raw = NULL;
	mv_status st = first_arrival(db, idtext, &source, &env_from, env_to, &archived, error_r);
	if (st == MV_OK)
		st = mv_store_get_raw(db, blobs, id, &raw, error_r);
	mv_message *msg = NULL;
	if (st == MV_OK) {
		mv_parse_limits limits;
		mv_parse_limits_default(&limits);
		st = mv_message_parse(raw, &limits, &msg, error_r);
	}
	if (st == MV_OK) /* the scanners' verdicts, for <virus/> and <spam/> */
		st = mv_scan_load(db, id, msg, error_r);
	if (st == MV_OK) {
		g_ptr_array_add(env_to, NULL);
		mv_classify_context cc = {.source = source, .envelope_from = env_from,
		                          .envelope_to = (const char *const *)env_to->pdata,
		                          .archive_date = archived};
		st = mv_classify_message(policy, policy_version, msg, &cc, result_r, error_r);
	}
	if (raw != NULL)
		g_bytes_unref(raw);
	g_free(source);
	g_free(env_from);
	g_ptr_array_free(env_to, TRUE);
	if (st != MV_OK) {
		mv_message_free(&msg);
		return st;
	}
	*msg_r = msg;
	return MV_OK;
}

static gboolean same_tags(const char *stored, const mv_message_retention *ret)
{
	GString *s = g_string_new("{");
	for (guint i = 0; ret->tags != NULL && i < ret->tags->len; i++) {
		if (i)
			g_string_append_c(s, ',');
		g_string_append(s, ret->tags->pdata[i]);
	}
	g_string_append_c(s, '}');
	gboolean same = strcmp(s->str, stored) == 0;
	g_string_free(s, TRUE);
	return same;
}

static char *tags_literal(const mv_message_retention *ret)
{
	GString *s = g_string_new("{");
	for (guint i = 0; ret->tags != NULL && i < ret->tags->len; i++)
		mv_db_array_text(s, ret->tags->pdata[i]);
	g_string_append_c(s, '}');
	return g_string_free(s, FALSE);
}

void mv_apply_stats_clear(mv_apply_stats *stats)
{
	if (stats->due_by_class != NULL)
		g_ptr_array_free(stats->due_by_class, TRUE);
	stats->due_by_class = NULL;
}

static void due_class_free(gpointer p)
{
	mv_due_class *d = p;
	g_free(d->class_name);
	g_free(d);
}

/* What keeps a message from what the rules give it. */
typedef struct {
	gint64 extension;    /* latest review extension (0: none): a floor */
	gint64 floor;        /* the database's retention floor, the latest expiry a
	                        locked class gave it (schema 013; 0: none) */
	gboolean held;       /* under an active legal hold */
} keepers;

typedef struct {
	const char *class_name;
	gint64 expiry;
	/* before a hold's say, for what would become due */
	const char *unheld_class;
	gint64 unheld_expiry;
	gboolean kept_by_lock, kept_by_hold, raised_by_extension, raised_by_floor;
} effective;

/* What apply makes of a message stored as old_class until old_expiry (0:
 * none) that the rules now give ret: an extension granted in review and
 * the floor a locked class left are floors; a locked class keeps its class
 * and expiry rather than be shortened; so does a legal hold (the database
 * refuses both, schema 013). */
static void effective_of(const mv_policy *policy, const char *old_class, gint64 old_expiry,
                         const keepers *k, const mv_message_retention *ret, effective *e)
{
	*e = (effective){.class_name = ret->class_name, .expiry = ret->expiry};
	if (k->extension != 0 && e->expiry < k->extension) {
		e->expiry = k->extension;
		e->raised_by_extension = TRUE;
	}
	const mv_retention_class *oc = old_class != NULL ? mv_policy_find_class(policy, old_class) : NULL;
	if (oc != NULL && oc->locked && e->expiry < old_expiry) {
		e->class_name = old_class;
		e->expiry = old_expiry;
		e->kept_by_lock = TRUE;
	} else if (k->floor != 0 && e->expiry < k->floor) {
		e->expiry = k->floor;
		e->raised_by_floor = TRUE;
	}
	e->unheld_class = e->class_name;
	e->unheld_expiry = e->expiry;
	if (k->held && old_expiry != 0 && e->expiry < old_expiry) {
		e->class_name = old_class;
		e->expiry = old_expiry;
		e->kept_by_hold = TRUE;
	}
}

/* SQL: message m's retention floor in seconds, or NULL: read through
 * to_jsonb so that this works whether the database keeps one or not;
 * "infinity" (a locked record without expiry) as MV_TIME_MAX. */
#define SQL_M_FLOOR                                                                            \
	"(SELECT CASE WHEN f IS NULL THEN NULL WHEN isfinite(f) THEN extract(epoch FROM f)::bigint " \
	"ELSE 253402300799 END " \
	" FROM (SELECT (to_jsonb(m) ->> 'retention_floor')::timestamptz AS f) x)"

/* Whether a record of class cls until expiry (0: none) is due under
 * policy at now: expired, in a class whose disposition destroys it (purge)
 * or reviews it. */
static gboolean due_under(const mv_policy *policy, const char *cls, gint64 expiry, gint64 now,
                          mv_disposition *disposition_r)
{
	if (policy == NULL || cls == NULL || expiry == 0 || expiry >= now)
		return FALSE;
	const mv_retention_class *c = mv_policy_find_class(policy, cls);
	if (c == NULL)
		return FALSE;
	*disposition_r = c->disposition;
	return TRUE;
}

static mv_due_class *due_class(mv_apply_stats *stats, const char *cls, mv_disposition disposition)
{
	for (guint i = 0; i < stats->due_by_class->len; i++) {
		mv_due_class *d = stats->due_by_class->pdata[i];
		if (strcmp(d->class_name, cls) == 0)
			return d;
	}
	mv_due_class *d = g_new0(mv_due_class, 1);
	d->class_name = g_strdup(cls);
	d->disposition = disposition;
	/* Kept in name order. */
	guint at = 0;
	while (at < stats->due_by_class->len &&
	       strcmp(((mv_due_class *)stats->due_by_class->pdata[at])->class_name, cls) < 0)
		at++;
	g_ptr_array_insert(stats->due_by_class, (gint)at, d);
	return d;
}

/* Count a record that the change makes due now (or would, but for a
 * hold): due after, and not due with the same disposition before. */
static void count_due(mv_apply_stats *stats, const mv_policy *before, const mv_policy *after,
                      const char *old_class, gint64 old_expiry, const char *new_class,
                      gint64 new_expiry, gboolean held, gint64 now)
{
	mv_disposition was = MV_DISPOSITION_PURGE, is = MV_DISPOSITION_PURGE;
	if (!due_under(after, new_class, new_expiry, now, &is))
		return;
	if (due_under(before, old_class, old_expiry, now, &was) && was == is)
		return;
	mv_due_class *d = due_class(stats, new_class, is);
	if (held) {
		d->held++;
		stats->held_now++;
	} else if (is == MV_DISPOSITION_PURGE) {
		d->due++;
		stats->due_now++;
	} else {
		d->due++;
		stats->review_now++;
	}
}

static mv_status db_now(mv_db *db, gint64 *now_r, char **error_r)
{
	PGresult *r = NULL;
	mv_status st = mv_db_query(db, "SELECT extract(epoch FROM now())::bigint", 0, NULL, NULL, NULL,
	                           0, &r, error_r);
	if (st == MV_OK)
		*now_r = g_ascii_strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return st;
}

/* ---- apply: a page of messages read in a few statements, then parsed
 * and classified on a pool of threads (one per processor, at most 8), as
 * index --reextract does; what each result means is decided in id order
 * on the command's connection.  Raw messages are read a chunk at a time
 * (at most APPLY_CHUNK_BYTES, or one larger message), so memory stays
 * bounded whatever the page. ---- */
#define APPLY_PAGE 200
#define APPLY_CHUNK_BYTES (G_GINT64_CONSTANT(64) * 1024 * 1024)

typedef struct {
	gint64 id;
	gint64 size;
	/* the first arrival's facts (mv_retention_evaluate's first_arrival) */
	char *source, *env_from;
	GPtrArray *env_to;          /* char*, owned */
	gint64 archived;
	gboolean has_verdicts;
	mv_message_verdicts verdicts;
	GBytes *raw;                /* read, or NULL: damaged or gone (failed) */
	mv_message *msg;            /* parsed and classified by a worker */
	mv_rules_result *res;
	mv_status status;
	char *error;
} apply_job;

typedef struct {
	const mv_policy *policy;
	gint64 version;
	mv_parse_limits limits;
} apply_shared;

static void apply_job_clear(apply_job *job)
{
	g_free(job->source);
	g_free(job->env_from);
	if (job->env_to != NULL)
		g_ptr_array_free(job->env_to, TRUE);
	g_free(job->verdicts.virus_name);
	g_free(job->verdicts.spam_reason);
	if (job->raw != NULL)
		g_bytes_unref(job->raw);
	mv_rules_result_free(&job->res);
	mv_message_free(&job->msg);
	g_free(job->error);
	*job = (apply_job){0};
}

static void apply_work(void *data, void *context)
{
	apply_job *job = data;
	const apply_shared *sh = context;
	job->status = mv_message_parse(job->raw, &sh->limits, &job->msg, &job->error);
	if (job->status == MV_OK) {
		if (job->has_verdicts) { /* moved: the message owns them now */
			g_free(job->msg->verdicts.virus_name);
			g_free(job->msg->verdicts.spam_reason);
			job->msg->verdicts = job->verdicts;
			job->verdicts = (mv_message_verdicts){0};
		}
		g_ptr_array_add(job->env_to, NULL);
		mv_classify_context cc = {.source = job->source, .envelope_from = job->env_from,
		                          .envelope_to = (const char *const *)job->env_to->pdata,
		                          .archive_date = job->archived};
		job->status = mv_classify_message(sh->policy, sh->version, job->msg, &cc, &job->res,
		                                  &job->error);
	}
}

/* The first arrival's facts and the stored verdicts of jobs[0..n), two
 * statements for the page instead of four per message. */
static mv_status apply_read_facts(mv_db *db, apply_job *jobs, guint n, char **error_r)
{
	GString *ids = g_string_new("{");
	for (guint i = 0; i < n; i++)
		mv_db_array_int(ids, jobs[i].id);
	g_string_append_c(ids, '}');
	const char *v[] = {ids->str};
	PGresult *r = NULL;
	/* One row per recipient of the first arrival (one with NULL when it
	 * has none, or the message no arrival), in the order of jobs. */
	mv_status st = mv_db_query(db,
	                           "SELECT x.n, a.source, a.envelope_from, "
	                           "extract(epoch FROM m.archived_at)::bigint, u.t "
	                           "FROM unnest($1::bigint[]) WITH ORDINALITY AS x(id, n) "
	                           "JOIN message m ON m.id = x.id "
	                           "LEFT JOIN LATERAL (SELECT * FROM arrival y WHERE y.message_id = m.id "
	                           " ORDER BY y.id LIMIT 1) a ON true "
	                           "LEFT JOIN LATERAL unnest(a.envelope_to) WITH ORDINALITY AS u(t, k) "
	                           " ON true "
	                           "ORDER BY x.n, u.k",
	                           1, v, NULL, NULL, 0, &r, error_r);
	int seen = -1;
	for (int i = 0; st == MV_OK && i < PQntuples(r); i++) {
		gint64 n1 = g_ascii_strtoll(PQgetvalue(r, i, 0), NULL, 10);
		if (n1 < 1 || n1 > (gint64)n)
			continue;
		apply_job *job = &jobs[n1 - 1];
		if ((int)n1 != seen) {
			seen = (int)n1;
			job->source = PQgetisnull(r, i, 1) ? NULL : g_strdup(PQgetvalue(r, i, 1));
			job->env_from = PQgetisnull(r, i, 2) ? NULL : g_strdup(PQgetvalue(r, i, 2));
			job->archived = g_ascii_strtoll(PQgetvalue(r, i, 3), NULL, 10);
		}
		if (!PQgetisnull(r, i, 4))
			g_ptr_array_add(job->env_to, g_strdup(PQgetvalue(r, i, 4)));
	}
	PQclear(r);
	r = NULL;
	if (st == MV_OK)
		st = mv_db_query(db,
		                 "SELECT x.n, " MV_SCAN_VERDICT_COLUMNS " "
		                 "FROM unnest($1::bigint[]) WITH ORDINALITY AS x(id, n) "
		                 "JOIN verdict ON verdict.message_id = x.id",
		                 1, v, NULL, NULL, 0, &r, error_r);
	for (int i = 0; st == MV_OK && i < PQntuples(r); i++) {
		gint64 n1 = g_ascii_strtoll(PQgetvalue(r, i, 0), NULL, 10);
		if (n1 < 1 || n1 > (gint64)n)
			continue;
		jobs[n1 - 1].has_verdicts = TRUE;
		mv_scan_verdicts_from_row(r, i, 1, &jobs[n1 - 1].verdicts);
	}
	PQclear(r);
	g_string_free(ids, TRUE);
	return st;
}

static void apply_on_raw(void *context, guint index, GBytes *raw, mv_status status,
                         const char *error)
{
	apply_job *jobs = context;
	if (status == MV_OK && raw != NULL) {
		jobs[index].raw = g_bytes_ref(raw);
	} else {
		jobs[index].status = status != MV_OK ? status : MV_ERR_NOT_FOUND;
		jobs[index].error = g_strdup(error != NULL ? error : "not found");
	}
}

/* Read jobs[0..n) (one chunk) and parse and classify them on the pool;
 * a job that could not be read or parsed has its status and error. */
static mv_status apply_evaluate_chunk(mv_db *db, mv_blobstore *blobs, mv_pool *pool,
                                      apply_job *jobs, guint n, char **error_r)
{
	gint64 *ids = g_new(gint64, n);
	for (guint i = 0; i < n; i++)
		ids[i] = jobs[i].id;
	mv_status st = mv_store_get_raw_each(db, blobs, ids, n, apply_on_raw, jobs, error_r);
	g_free(ids);
	for (guint i = 0; st == MV_OK && i < n; i++)
		if (jobs[i].raw != NULL)
			mv_pool_push(pool, &jobs[i]);
	mv_pool_wait(pool);
	return st;
}

mv_status mv_retention_apply(mv_db *db, mv_blobstore *blobs, const mv_policy *policy,
                             gint64 policy_version, const mv_policy *before, gboolean dry_run,
                             mv_apply_progress_fn progress, void *context,
                             mv_apply_stats *stats_r, char **error_r)
{
	*stats_r = (mv_apply_stats){0};
	stats_r->due_by_class = g_ptr_array_new_with_free_func(due_class_free);
	if (before == NULL)
		before = policy;
	gint64 now = 0;
	mv_status st = db_now(db, &now, error_r);
	if (st != MV_OK)
		return st;
	apply_shared sh = {.policy = policy, .version = policy_version};
	mv_parse_limits_default(&sh.limits);
	mv_pool *pool = mv_pool_new(apply_work, &sh, 8);
	if (pool == NULL)
		st = mv_fail(error_r, MV_ERR_INTERNAL, "cannot start the evaluation threads");
	apply_job *jobs = g_new0(apply_job, APPLY_PAGE);
	gint64 after = 0;
	while (st == MV_OK) {
		char aft[24], lim[16];
		g_snprintf(aft, sizeof aft, "%" G_GINT64_FORMAT, after);
		g_snprintf(lim, sizeof lim, "%d", APPLY_PAGE);
		const char *v[] = {aft, lim};
		PGresult *r = NULL;
		st = mv_db_query(db,
		                 "SELECT m.id, m.retention_class, "
		                 "coalesce(extract(epoch FROM m.expires_at)::bigint, 0), "
		                 "m.deciding_rule, coalesce(m.policy_version, 0), m.tags::text, "
		                 "(SELECT extract(epoch FROM max(d.extended_until))::bigint "
		                 " FROM review_decision d WHERE d.message_id = m.id "
		                 " AND d.decision = 'extend'), " MV_SQL_M_UNDER_HOLD ", " SQL_M_FLOOR ", "
		                 "m.size "
		                 "FROM message m WHERE m.id > $1 ORDER BY m.id LIMIT $2::integer",
		                 2, v, NULL, NULL, 0, &r, error_r);
		if (st != MV_OK)
			break;
		int rows = PQntuples(r);
		if (rows == 0) {
			PQclear(r);
			break;
		}
		for (int i = 0; i < rows; i++) {
			jobs[i].id = g_ascii_strtoll(PQgetvalue(r, i, 0), NULL, 10);
			jobs[i].size = g_ascii_strtoll(PQgetvalue(r, i, 9), NULL, 10);
			jobs[i].env_to = g_ptr_array_new_with_free_func(g_free);
		}
		st = apply_read_facts(db, jobs, (guint)rows, error_r);
		if (st == MV_OK && !dry_run)
			st = mv_db_exec(db, "BEGIN", error_r);
		if (st != MV_OK) {
			PQclear(r);
			for (int i = 0; i < rows; i++)
				apply_job_clear(&jobs[i]);
			break;
		}
		GString *up_ids = g_string_new("{"), *up_class = g_string_new("{"),
		        *up_exp = g_string_new("{"), *up_rule = g_string_new("{"),
		        *up_tags = g_string_new("{"), *up_dir = g_string_new("{");
		guint up_n = 0;
		for (int c0 = 0; c0 < rows && st == MV_OK;) {
			int c1 = c0;
			gint64 bytes = 0;
			do
				bytes += jobs[c1++].size;
			while (c1 < rows && bytes + jobs[c1].size <= APPLY_CHUNK_BYTES);
			st = apply_evaluate_chunk(db, blobs, pool, jobs + c0, (guint)(c1 - c0), error_r);
			for (int i = c0; i < c1 && st == MV_OK; i++) {
				apply_job *job = &jobs[i];
				gint64 id = job->id;
				after = id;
				stats_r->examined++;
				const char *old_class = PQgetisnull(r, i, 1) ? NULL : PQgetvalue(r, i, 1);
				gint64 old_expiry = g_ascii_strtoll(PQgetvalue(r, i, 2), NULL, 10);
				const char *old_rule = PQgetisnull(r, i, 3) ? NULL : PQgetvalue(r, i, 3);
				gint64 old_version = g_ascii_strtoll(PQgetvalue(r, i, 4), NULL, 10);
				keepers k = {
					.extension = PQgetisnull(r, i, 6) ? 0 : g_ascii_strtoll(PQgetvalue(r, i, 6), NULL, 10),
					.held = strcmp(PQgetvalue(r, i, 7), "t") == 0,
					.floor = PQgetisnull(r, i, 8) ? 0 : g_ascii_strtoll(PQgetvalue(r, i, 8), NULL, 10),
				};
				if (job->status != MV_OK) {
					stats_r->failed++;
					continue;
				}
				mv_message_retention *ret = &job->msg->retention;
				effective e;
				effective_of(policy, old_class, old_expiry, &k, ret, &e);
				count_due(stats_r, before, policy, old_class, old_expiry, e.unheld_class,
				          e.unheld_expiry, k.held, now);
				if (e.kept_by_lock || e.kept_by_hold) {
					stats_r->kept_by_lock += e.kept_by_lock;
					stats_r->kept_by_hold += e.kept_by_hold;
					continue;
				}
				ret->expiry = e.expiry;
				gboolean class_changed = old_class == NULL || strcmp(old_class, ret->class_name) != 0;
				gboolean expiry_changed = old_expiry != ret->expiry;
				gboolean changed = class_changed || expiry_changed || old_version != policy_version ||
				                   g_strcmp0(old_rule, ret->rule) != 0 ||
				                   !same_tags(PQgetvalue(r, i, 5), ret);
				stats_r->class_changed += class_changed;
				stats_r->expiry_changed += expiry_changed;
				stats_r->changed += changed;
				if (changed && !dry_run) {
					/* One UPDATE a page (below): one statement, one audit
					 * entry from the database for all the page's changes. */
					mv_db_array_int(up_ids, id);
					mv_db_array_text(up_class, ret->class_name);
					mv_db_array_int(up_exp, ret->expiry);
					mv_db_array_text(up_rule, ret->rule);
					char *tags = tags_literal(ret);
					mv_db_array_text(up_tags, tags);
					g_free(tags);
					mv_db_array_text(up_dir, ret->direction);
					up_n++;
				}
			}
			for (int i = c0; i < c1; i++)
				apply_job_clear(&jobs[i]);
			c0 = c1;
		}
		for (int i = 0; i < rows; i++)
			apply_job_clear(&jobs[i]);
		PQclear(r);
		if (st == MV_OK && up_n > 0) {
			GString *arrays[] = {up_ids, up_class, up_exp, up_rule, up_tags, up_dir};
			for (gsize a = 0; a < G_N_ELEMENTS(arrays); a++)
				g_string_append_c(arrays[a], '}');
			char ver[24];
			g_snprintf(ver, sizeof ver, "%" G_GINT64_FORMAT, policy_version);
			const char *uv[] = {up_ids->str, up_class->str, up_exp->str, up_rule->str, ver,
			                    up_tags->str, up_dir->str};
			PGresult *u = NULL;
			st = mv_db_query(db,
			                 "UPDATE message m SET retention_class = u.class, "
			                 "expires_at = to_timestamp(u.exp), deciding_rule = u.rule, "
			                 "policy_version = $5, tags = u.tags::text[], direction = u.dir "
			                 "FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], "
			                 "$6::text[], $7::text[]) AS u(id, class, exp, rule, tags, dir) "
			                 "WHERE m.id = u.id",
			                 7, uv, NULL, NULL, 0, &u, error_r);
			PQclear(u);
		}
		g_string_free(up_ids, TRUE);
		g_string_free(up_class, TRUE);
		g_string_free(up_exp, TRUE);
		g_string_free(up_rule, TRUE);
		g_string_free(up_tags, TRUE);
		g_string_free(up_dir, TRUE);
		if (!dry_run) {
			st = mv_db_end(db, st, error_r);
		}
		if (st != MV_OK)
			break;
		if (progress != NULL)
			progress(context, stats_r);
	}
	g_free(jobs);
	mv_pool_free(&pool);
	if (st != MV_OK)
		return st;
	if (!dry_run) {
		char *subject = g_strdup_printf("policy version %" G_GINT64_FORMAT, policy_version);
		GString *details = g_string_new(NULL);
		g_string_append_printf(details, "examined=%" G_GINT64_FORMAT "\nchanged=%" G_GINT64_FORMAT
		                       "\nclass_changed=%" G_GINT64_FORMAT "\nexpiry_changed=%"
		                       G_GINT64_FORMAT "\nkept_by_lock=%" G_GINT64_FORMAT
		                       "\nkept_by_hold=%" G_GINT64_FORMAT
		                       "\nfailed=%" G_GINT64_FORMAT "\ndue_now=%" G_GINT64_FORMAT
		                       "\nreview_now=%" G_GINT64_FORMAT "\nheld_now=%" G_GINT64_FORMAT,
		                       stats_r->examined, stats_r->changed, stats_r->class_changed,
		                       stats_r->expiry_changed, stats_r->kept_by_lock, stats_r->kept_by_hold,
		                       stats_r->failed,
		                       stats_r->due_now, stats_r->review_now, stats_r->held_now);
		for (guint i = 0; i < stats_r->due_by_class->len; i++) {
			const mv_due_class *d = stats_r->due_by_class->pdata[i];
			g_string_append_printf(details, "\ndue class=%s disposition=%s due=%" G_GINT64_FORMAT
			                       " held=%" G_GINT64_FORMAT, d->class_name,
			                       mv_disposition_to_string(d->disposition), d->due, d->held);
		}
		st = mv_audit_append(db, mv_audit_actor(), "retention.apply", subject, details->str, NULL,
		                     error_r);
		g_free(subject);
		g_string_free(details, TRUE);
		return st;
	}
	return MV_OK;
}

void mv_retention_explanation_free(mv_retention_explanation **x)
{
	if (x == NULL || *x == NULL)
		return;
	mv_retention_explanation *e = *x;
	mv_rules_result_free(&e->result);
	mv_message_free(&e->msg);
	g_free(e->stored_class);
	if (e->holds != NULL)
		g_ptr_array_free(e->holds, TRUE);
	g_free(e);
	*x = NULL;
}

static void hold_free(gpointer p)
{
	mv_retention_hold *h = p;
	g_free(h->name);
	g_free(h->case_ref);
	g_free(h);
}

mv_status mv_retention_explain(mv_db *db, mv_blobstore *blobs, const mv_policy *policy,
                               gint64 policy_version, gint64 id, mv_retention_explanation **x_r,
                               char **error_r)
{
	*x_r = NULL;
	mv_retention_explanation *x = g_new0(mv_retention_explanation, 1);
	x->id = id;
	x->holds = g_ptr_array_new_with_free_func(hold_free);
	char idt[24];
	g_snprintf(idt, sizeof idt, "%" G_GINT64_FORMAT, id);
	const char *v[] = {idt};
	PGresult *r = NULL;
	mv_status st = mv_retention_evaluate(db, blobs, policy, policy_version, id, &x->msg, &x->result,
	                                     error_r);
	if (st == MV_OK)
		st = db_now(db, &x->now, error_r);
	if (st == MV_OK)
		st = mv_db_query(db,
		                 "SELECT m.retention_class, coalesce(extract(epoch FROM m.expires_at)::bigint, 0), "
		                 "(SELECT extract(epoch FROM max(d.extended_until))::bigint "
		                 " FROM review_decision d WHERE d.message_id = m.id AND d.decision = 'extend'), "
		                 SQL_M_FLOOR " FROM message m WHERE m.id = $1",
		                 1, v, NULL, NULL, 0, &r, error_r);
	if (st == MV_OK && PQntuples(r) != 1)
		st = mv_fail(error_r, MV_ERR_NOT_FOUND, "no message %s in the archive", idt);
	if (st == MV_OK) {
		x->stored_class = PQgetisnull(r, 0, 0) ? NULL : g_strdup(PQgetvalue(r, 0, 0));
		x->stored_expiry = g_ascii_strtoll(PQgetvalue(r, 0, 1), NULL, 10);
		x->extension = PQgetisnull(r, 0, 2) ? 0 : g_ascii_strtoll(PQgetvalue(r, 0, 2), NULL, 10);
		x->floor = PQgetisnull(r, 0, 3) ? 0 : g_ascii_strtoll(PQgetvalue(r, 0, 3), NULL, 10);
	}
	PQclear(r);
	r = NULL;
	if (st == MV_OK)
		st = mv_db_query(db,
		                 "SELECT h.name, h.case_ref, bool_and(i.pending) FROM hold_item i "
		                 "JOIN hold h ON h.id = i.hold_id "
		                 "WHERE i.message_id = $1 AND h.released_at IS NULL "
		                 "GROUP BY h.id, h.name, h.case_ref ORDER BY h.id",
		                 1, v, NULL, NULL, 0, &r, error_r);
	for (int i = 0; st == MV_OK && i < PQntuples(r); i++) {
		mv_retention_hold *h = g_new0(mv_retention_hold, 1);
		h->name = g_strdup(PQgetvalue(r, i, 0));
		h->case_ref = g_strdup(PQgetvalue(r, i, 1));
		h->pending = strcmp(PQgetvalue(r, i, 2), "t") == 0;
		g_ptr_array_add(x->holds, h);
	}
	PQclear(r);
	if (st != MV_OK) {
		mv_retention_explanation_free(&x);
		return st;
	}
	const mv_retention_class *sc =
		x->stored_class != NULL ? mv_policy_find_class(policy, x->stored_class) : NULL;
	x->stored_locked = sc != NULL && sc->locked;
	keepers k = {.extension = x->extension, .floor = x->floor, .held = x->holds->len > 0};
	effective e;
	effective_of(policy, x->stored_class, x->stored_expiry, &k, &x->msg->retention, &e);
	x->effective_class = e.class_name;
	x->effective_expiry = e.expiry;
	x->kept_by_lock = e.kept_by_lock;
	x->kept_by_hold = e.kept_by_hold;
	x->raised_by_extension = e.raised_by_extension;
	x->raised_by_floor = e.raised_by_floor;
	x->unheld_expiry = e.unheld_expiry;
	x->effective_cls = mv_policy_find_class(policy, x->effective_class);
	*x_r = x;
	return MV_OK;
}

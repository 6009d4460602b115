/* mv-imap-ingest: journal mailbox → archive, one committed batch at a time.
 *
 * Untrusted input: message bytes and everything the server says (read by
 * mv-imap.c under its limits); message content is only parsed (mv-message)
 * and unwrapped (mv-journal), never interpreted here. */
#include "mv-imap-ingest.h"

#include <string.h>

#include "mv-audit.h"
#include "mv-classify.h"
#include "mv-hash.h"
#include "mv-journal.h"
#include "mv-policy-store.h"
#include "mv-store.h"

#define CURSOR_ADVANCE_SQL "SELECT mv_ingest_cursor_advance($1, $2, $3, $4)"
#define SIZES_CHUNK 5000 /* UIDs whose sizes are asked in one FETCH */

void mv_imap_ingest_options_default(mv_imap_ingest_options *o)
{
	*o = (mv_imap_ingest_options){.after = MV_AFTER_ARCHIVE_KEEP, .batch_size = 100,
	                              .batch_bytes = 32u * 1024 * 1024};
	mv_imap_options_default(&o->imap);
	mv_parse_limits_default(&o->limits);
	mv_blobstore_settings_default(&o->blob_settings);
}

void mv_ingest_source_status_free(gpointer status)
{
	mv_ingest_source_status *s = status;
	if (s == NULL)
		return;
	g_free(s->source);
	g_free(s->url);
	g_free(s->username);
	g_free(s->last_success);
	g_free(s->last_error);
	g_free(s->updated);
	g_free(s);
}

static gboolean stopping(const mv_imap_ingest_options *o)
{
	return o->stop != NULL && g_atomic_int_get(o->stop) != 0;
}

/* ---- the cursor ---- */

typedef struct {
	char *source;  /* "imap:NAME" */
	char *display; /* URL without credentials */
	gboolean has_uidvalidity;
	guint64 uidvalidity, last_uid;
} cursor;

static mv_status cursor_ensure(mv_db *db, cursor *c, const char *user, char **error_r)
{
	const char *v[] = {c->source, c->display, user};
	PGresult *r = NULL;
	mv_status st = mv_db_query(db,
	                           "INSERT INTO ingest_cursor (source, url, username) VALUES ($1, $2, $3) "
	                           "ON CONFLICT (source) DO UPDATE SET url = EXCLUDED.url, "
	                           "username = EXCLUDED.username "
	                           "RETURNING uidvalidity, last_uid",
	                           3, v, NULL, NULL, 0, &r, error_r);
	if (st == MV_OK) {
		c->has_uidvalidity = !PQgetisnull(r, 0, 0);
		c->uidvalidity = g_ascii_strtoull(PQgetvalue(r, 0, 0), NULL, 10);
		c->last_uid = g_ascii_strtoull(PQgetvalue(r, 0, 1), NULL, 10);
	}
	PQclear(r);
	return st;
}

/* Reset the cursor to a new UIDVALIDITY (uid 0), with an audit entry when
 * it had another one. */
static mv_status cursor_reset(mv_db *db, cursor *c, guint64 uidvalidity, char **error_r)
{
	char old[24] = "", now[24];
	if (c->has_uidvalidity)
		g_snprintf(old, sizeof old, "%" G_GUINT64_FORMAT, c->uidvalidity);
	g_snprintf(now, sizeof now, "%" G_GUINT64_FORMAT, uidvalidity);
	mv_status st = mv_db_exec(db, "BEGIN", error_r);
	if (st == MV_OK) {
		const char *v[] = {c->source, now, c->has_uidvalidity ? old : NULL};
		PGresult *r = NULL;
		st = mv_db_query(db,
		                 "UPDATE ingest_cursor SET uidvalidity = $2, last_uid = 0, updated = now() "
		                 "WHERE source = $1 AND uidvalidity IS NOT DISTINCT FROM $3::bigint",
		                 3, v, NULL, NULL, 0, &r, error_r);
		if (st == MV_OK && strcmp(PQcmdTuples(r), "1") != 0)
			st = mv_fail(error_r, MV_ERR_BUSY,
			             "the cursor of %s changed meanwhile: another ingester of this source runs",
			             c->source);
		PQclear(r);
	}
	if (st == MV_OK && c->has_uidvalidity) {
		char *details = g_strdup_printf("uidvalidity %s -> %s: full rescan from UID 1", old, now);
		st = mv_audit_append(db, c->source, "ingest.rescan", c->display, details, NULL, error_r);
		g_free(details);
	}
	st = mv_db_end(db, st, error_r);
	if (st == MV_OK) {
		c->has_uidvalidity = TRUE;
		c->uidvalidity = uidvalidity;
		c->last_uid = 0;
	}
	return st;
}

static void cursor_note(mv_db *db, const char *source, const char *error)
{
	const char *v[] = {source, error};
	PGresult *r = NULL;
	char *err = NULL;
	mv_status st = error != NULL
	                       ? mv_db_query(db,
	                                     "UPDATE ingest_cursor SET last_error = $2, updated = now() "
	                                     "WHERE source = $1",
	                                     2, v, NULL, NULL, 0, &r, &err)
	                       : mv_db_query(db,
	                                     "UPDATE ingest_cursor SET last_success = now(), "
	                                     "last_error = NULL, updated = now() WHERE source = $1",
	                                     1, v, NULL, NULL, 0, &r, &err);
	(void)st; /* best effort: the pass's own status is what is reported */
	g_free(err);
	PQclear(r);
}

/* ---- one batch ---- */

typedef struct {
	mv_message *msg;
	mv_arrival_info arr;
	char *details;
	char **env_to; /* NULL-terminated, owned, or NULL */
	char *env_from;
	char source_ref[48]; /* "UIDVALIDITY/UID" */
	char fetched_sha[MV_SHA256_HEX_LEN + 1]; /* of the bytes fetched */
	guint64 uid;
	gboolean is_report_original;
	gboolean malformed_report;
} item;

static void item_clear(item *it)
{
	mv_message_free(&it->msg);
	g_free(it->details);
	g_strfreev(it->env_to);
	g_free(it->env_from);
}

typedef struct {
	mv_db *db;
	mv_blobstore *blobs;
	const mv_imap_ingest_options *o;
	mv_imap *imap;
	cursor cur;
	mv_policy *policy;
	gint64 policy_version;
	mv_imap_ingest_stats *stats; /* written by the committing thread only */
	gint64 removed;              /* by whichever thread holds the session */
	/* The pipeline: the fetcher thread hands parsed batches over in
	 * `ready` (at most READY_MAX); the committer hands committed UID sets
	 * back in `done` for --after-archive. */
	GMutex lock;
	GCond cond;
	GQueue ready, done;
	gboolean abort;              /* the committer failed: stop fetching */
} pass;

#define READY_MAX 2

static char *iso_utc(gint64 t)
{
	GDateTime *dt = g_date_time_new_from_unix_utc(t);
	if (dt == NULL)
		return g_strdup("-");
	char *s = g_date_time_format(dt, "%Y-%m-%dT%H:%M:%SZ");
	g_date_time_unref(dt);
	return s;
}

static mv_status make_item(pass *p, GBytes *raw, const char *details, const char *env_from,
                           const char *const *env_to, item *it, char **error_r)
{
	*it = (item){0};
	mv_status st = mv_message_parse(raw, &p->o->limits, &it->msg, error_r);
	if (st != MV_OK)
		return st;
	it->details = g_strdup(details);
	it->env_from = g_strdup(env_from);
	it->env_to = env_to != NULL ? g_strdupv((char **)env_to) : NULL;
	if (p->policy != NULL) {
		mv_classify_context cc = {.source = p->cur.source,
		                          .envelope_from = env_from,
		                          .envelope_to = env_to,
		                          .archive_date = g_get_real_time() / G_USEC_PER_SEC};
		st = mv_classify_message(p->policy, p->policy_version, it->msg, &cc, NULL, error_r);
		if (st != MV_OK)
			item_clear(it);
	}
	return st;
}

static char *sha_hex_of(GBytes *b)
{
	gsize len = 0;
	const guint8 *d = g_bytes_get_data(b, &len);
	uint8_t sha[MV_SHA256_LEN];
	mv_sha256(d != NULL ? d : (const guint8 *)"", len, sha);
	char *hex = g_malloc(MV_SHA256_HEX_LEN + 1);
	mv_sha256_to_hex(sha, hex);
	return hex;
}

/* The items one fetched message becomes (one, or two for a journal report:
 * the original with the report's envelope, then the wrapper). */
static mv_status items_for(pass *p, const mv_imap_message *m, GArray *items, char **error_r)
{
	char *when = iso_utc(m->internaldate);
	GString *base = g_string_new(NULL);
	g_string_append_printf(base, "imap uidvalidity=%" G_GUINT64_FORMAT " uid=%" G_GUINT64_FORMAT
	                       " internaldate=%s",
	                       p->cur.uidvalidity, m->uid, when);
	g_free(when);
	guint first = items->len;
	mv_journal_report rep;
	mv_journal_unwrap(m->raw, &rep);
	mv_status st = MV_OK;
	item it;
	if (rep.kind == MV_JOURNAL_REPORT) {
		char *wrapper_sha = sha_hex_of(m->raw), *orig_sha = sha_hex_of(rep.original);
		GString *d = g_string_new(base->str);
		g_string_append_printf(d, " journal-report=%s", wrapper_sha);
		if (rep.bcc->len > 0) {
			g_string_append(d, " bcc=");
			for (guint i = 0; i < rep.bcc->len; i++)
				g_string_append_printf(d, "%s%s", i ? "," : "", (char *)rep.bcc->pdata[i]);
		}
		g_ptr_array_add(rep.recipients, NULL);
		st = make_item(p, rep.original, d->str, rep.sender,
		               (const char *const *)rep.recipients->pdata, &it, error_r);
		g_ptr_array_set_size(rep.recipients, rep.recipients->len - 1);
		if (st == MV_OK) {
			it.is_report_original = TRUE;
			g_array_append_val(items, it);
			g_string_printf(d, "%s journal-report-of=%s", base->str, orig_sha);
			st = make_item(p, m->raw, d->str, NULL, NULL, &it, error_r);
			if (st == MV_OK)
				g_array_append_val(items, it);
		}
		g_string_free(d, TRUE);
		g_free(wrapper_sha);
		g_free(orig_sha);
	} else {
		if (rep.kind == MV_JOURNAL_MALFORMED)
			g_string_append_printf(base, " journal-report-malformed=\"%s\"", rep.problem);
		st = make_item(p, m->raw, base->str, NULL, NULL, &it, error_r);
		if (st == MV_OK && rep.kind == MV_JOURNAL_MALFORMED) {
			it.malformed_report = TRUE;
			g_ptr_array_add(it.msg->flags,
			                g_strdup_printf("journal report not unwrapped: %s", rep.problem));
		}
		if (st == MV_OK)
			g_array_append_val(items, it);
	}
	mv_journal_report_clear(&rep);
	g_string_free(base, TRUE);
	if (st == MV_OK) {
		char *hex = sha_hex_of(m->raw);
		for (guint i = first; i < items->len; i++) {
			item *x = &g_array_index(items, item, i);
			g_snprintf(x->source_ref, sizeof x->source_ref,
			           "%" G_GUINT64_FORMAT "/%" G_GUINT64_FORMAT, p->cur.uidvalidity, m->uid);
			g_strlcpy(x->fetched_sha, hex, sizeof x->fetched_sha);
			x->uid = m->uid;
		}
		g_free(hex);
	}
	return st;
}

/* The SHA-256 (hex) of those fetched messages whose bytes already have an
 * arrival from this source. */
static mv_status already_archived(pass *p, const GArray *items, GHashTable **known_r,
                                  char **error_r)
{
	*known_r = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	if (items->len == 0)
		return MV_OK;
	GString *arr = g_string_new("{");
	for (guint i = 0; i < items->len; i++)
		g_string_append_printf(arr, "%s\"\\\\x%s\"", i ? "," : "",
		                       g_array_index(items, item, i).fetched_sha);
	g_string_append_c(arr, '}');
	const char *v[] = {p->cur.source, arr->str};
	PGresult *r = NULL;
	mv_status st = mv_db_query(p->db,
	                           "SELECT DISTINCT encode(m.sha256, 'hex') FROM message m "
	                           "JOIN arrival a ON a.message_id = m.id "
	                           "WHERE a.source = $1 AND m.sha256 = ANY ($2::bytea[])",
	                           2, v, NULL, NULL, 0, &r, error_r);
	for (int i = 0; st == MV_OK && i < PQntuples(r); i++)
		g_hash_table_add(*known_r, g_strdup(PQgetvalue(r, i, 0)));
	PQclear(r);
	g_string_free(arr, TRUE);
	return st;
}

/* Store items (all from UIDs up to to_uid) and advance the cursor to
 * to_uid in the same transaction. */
static mv_status commit_items(pass *p, item *items, guint n, guint64 to_uid, char **error_r)
{
	char vv[24], from[24], to[24];
	g_snprintf(vv, sizeof vv, "%" G_GUINT64_FORMAT, p->cur.uidvalidity);
	g_snprintf(from, sizeof from, "%" G_GUINT64_FORMAT, p->cur.last_uid);
	g_snprintf(to, sizeof to, "%" G_GUINT64_FORMAT, to_uid);
	const char *values[] = {p->cur.source, vv, from, to};
	mv_status st;
	if (n == 0) {
		PGresult *r = NULL;
		st = mv_db_query(p->db, CURSOR_ADVANCE_SQL, 4, values, NULL, NULL, 0, &r, error_r);
		PQclear(r);
	} else {
		mv_store_extra extra = {.sql = CURSOR_ADVANCE_SQL, .n_params = 4, .values = values};
		mv_message **msgs = g_new(mv_message *, n);
		mv_arrival_info *arr = g_new0(mv_arrival_info, n);
		mv_store_result *res = g_new0(mv_store_result, n);
		for (guint i = 0; i < n; i++) {
			msgs[i] = items[i].msg;
			arr[i] = (mv_arrival_info){.source = p->cur.source,
			                           .source_ref = items[i].source_ref,
			                           .envelope_from = items[i].env_from,
			                           .envelope_to = (const char *const *)items[i].env_to,
			                           .details = items[i].details};
		}
		st = mv_store_batch_with(p->db, p->blobs, msgs, arr, n, &extra, res, error_r);
		if (st == MV_OK) {
			for (guint i = 0; i < n; i++) {
				if (res[i].is_new)
					p->stats->new_count++;
				else
					p->stats->duplicate++;
				if (items[i].is_report_original)
					p->stats->reports++;
				if (items[i].malformed_report)
					p->stats->malformed++;
			}
		}
		for (guint i = 0; i < n; i++)
			g_free(res[i].error);
		g_free(msgs);
		g_free(arr);
		g_free(res);
	}
	if (st == MV_OK) {
		p->cur.last_uid = to_uid;
		p->stats->last_uid = to_uid;
	} else if (st == MV_ERR_DB && PQstatus(mv_db_conn(p->db)) == CONNECTION_OK && error_r != NULL &&
	           *error_r != NULL && strstr(*error_r, "another ingester") != NULL) {
		st = MV_ERR_BUSY;
	}
	return st;
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

/* A fetched and parsed batch on its way to the committer, or the end of
 * the fetcher's work (end, with its status). */
typedef struct {
	GArray *items;    /* item, in UID order */
	guint64 to_uid;   /* the highest UID fetched */
	gint64 fetched;   /* messages fetched */
	gboolean end;
	mv_status status;
	char *error;
} batch;

typedef struct {
	GArray *uids;     /* guint64: committed, for --after-archive */
	guint64 upto;     /* the cursor after their commit */
} done_set;

static void batch_free(batch *b)
{
	for (guint i = 0; b->items != NULL && i < b->items->len; i++)
		item_clear(&g_array_index(b->items, item, i));
	if (b->items != NULL)
		g_array_free(b->items, TRUE);
	g_free(b->error);
	g_free(b);
}

/* Fetch one batch of UIDs (ascending, above the cursor) and parse it. */
static mv_status fetch_batch(pass *p, const guint64 *uids, guint n, batch **batch_r,
                             char **error_r)
{
	*batch_r = NULL;
	char *set = mv_imap_uid_set(uids, n);
	GPtrArray *fetched = NULL;
	mv_status st = mv_imap_uid_fetch(p->imap, set, TRUE, &fetched, error_r);
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
	for (guint i = 0; i < fetched->len; i++) {
		mv_imap_message *m = fetched->pdata[i];
		gint64 key = (gint64)m->uid;
		if (m->raw == NULL || !g_hash_table_remove(asked, &key))
			continue;
		g_ptr_array_add(mine, m);
	}
	for (guint i = 0; st == MV_OK && i < fetched->len; i++) {
		mv_imap_message *m = fetched->pdata[i];
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
	batch *b = g_new0(batch, 1);
	b->items = g_array_new(FALSE, TRUE, sizeof(item));
	b->fetched = mine->len;
	b->to_uid = mine->len > 0 ? ((mv_imap_message *)mine->pdata[mine->len - 1])->uid : 0;
	for (guint i = 0; st == MV_OK && i < mine->len; i++)
		st = items_for(p, mine->pdata[i], b->items, error_r);
	g_ptr_array_free(mine, TRUE);
	g_ptr_array_free(fetched, TRUE);
	if (st != MV_OK) {
		batch_free(b);
		return st;
	}
	*batch_r = b;
	return MV_OK;
}

/* Commit a batch with the cursor; the UIDs it covers go to p->done. */
static mv_status commit_batch(pass *p, batch *b, char **error_r)
{
	p->stats->fetched += b->fetched;
	if (b->to_uid == 0)
		return MV_OK;
	GHashTable *known = NULL;
	mv_status st = already_archived(p, b->items, &known, error_r);
	if (st != MV_OK) {
		g_hash_table_destroy(known);
		return st;
	}
	/* Skip the items of a fetched message whose bytes have an arrival from
	 * this source, or came earlier in this batch under another UID: the
	 * same bytes in one journal mailbox are the same delivery. */
	GHashTable *first_uid = g_hash_table_new(g_str_hash, g_str_equal);
	GArray *keep = g_array_new(FALSE, TRUE, sizeof(item));
	guint64 last_counted = 0;
	for (guint i = 0; i < b->items->len; i++) {
		item *x = &g_array_index(b->items, item, i);
		gpointer seen_uid = g_hash_table_lookup(first_uid, x->fetched_sha);
		gboolean skip = g_hash_table_contains(known, x->fetched_sha) ||
		                (seen_uid != NULL && *(guint64 *)seen_uid != x->uid);
		if (seen_uid == NULL)
			g_hash_table_insert(first_uid, x->fetched_sha, &x->uid);
		if (skip) {
			if (x->uid != last_counted)
				p->stats->already++;
			last_counted = x->uid;
			continue;
		}
		g_array_append_val(keep, *x);
	}
	g_hash_table_destroy(first_uid);
	g_hash_table_destroy(known);
	char *err = NULL;
	item *items = (item *)(void *)keep->data;
	st = commit_items(p, items, keep->len, b->to_uid, &err);
	if (st != MV_OK && st != MV_ERR_BUSY && PQstatus(mv_db_conn(p->db)) == CONNECTION_OK &&
	    keep->len > 1) {
		/* Isolate the failure: one fetched message per transaction, each
		 * advancing the cursor past itself, up to the first that fails
		 * (the cursor stays before it). */
		g_free(err);
		err = NULL;
		st = MV_OK;
		guint k = 0;
		while (st == MV_OK && k < keep->len) {
			guint j = k;
			while (j < keep->len && items[j].uid == items[k].uid)
				j++;
			st = commit_items(p, &items[k], j - k, items[k].uid, &err);
			if (st != MV_OK) {
				char *e = g_strdup_printf("UID %" G_GUINT64_FORMAT ": %s", items[k].uid, err);
				g_free(err);
				err = e;
			}
			k = j;
		}
		if (st == MV_OK && p->cur.last_uid < b->to_uid)
			st = commit_items(p, NULL, 0, b->to_uid, &err);
	}
	if (st != MV_OK) {
		mv_fail(error_r, st, "%s", err);
		g_free(err);
	}
	g_array_free(keep, TRUE); /* the items themselves belong to the batch */
	/* Only what has committed may the mailbox forget. */
	done_set *d = g_new0(done_set, 1);
	d->uids = g_array_new(FALSE, FALSE, sizeof(guint64));
	d->upto = p->cur.last_uid;
	guint64 prev = 0;
	for (guint i = 0; i < b->items->len; i++) {
		guint64 u = g_array_index(b->items, item, i).uid;
		if (u != prev && u <= p->cur.last_uid)
			g_array_append_val(d->uids, u);
		prev = u;
	}
	g_mutex_lock(&p->lock);
	g_queue_push_tail(&p->done, d);
	g_mutex_unlock(&p->lock);
	return st;
}

/* Apply --after-archive to everything committed so far (the caller holds
 * the session). */
static mv_status drain_done(pass *p, char **error_r)
{
	mv_status st = MV_OK;
	for (;;) {
		g_mutex_lock(&p->lock);
		done_set *d = g_queue_pop_head(&p->done);
		g_mutex_unlock(&p->lock);
		if (d == NULL)
			break;
		if (st == MV_OK && d->uids->len > 0) {
			char *set = mv_imap_uid_set((const guint64 *)(void *)d->uids->data, d->uids->len);
			st = after_archive(p, set, d->uids->len, d->upto, error_r);
			g_free(set);
		}
		g_array_free(d->uids, TRUE);
		g_free(d);
	}
	return st;
}

static void hand_over(pass *p, batch *b)
{
	g_mutex_lock(&p->lock);
	while (p->ready.length >= READY_MAX && !p->abort)
		g_cond_wait(&p->cond, &p->lock);
	g_queue_push_tail(&p->ready, b);
	g_cond_broadcast(&p->cond);
	g_mutex_unlock(&p->lock);
}

static gboolean aborted(pass *p)
{
	g_mutex_lock(&p->lock);
	gboolean a = p->abort;
	g_mutex_unlock(&p->lock);
	return a;
}

/* The fetcher: search, plan batches by size, fetch and parse each, hand it
 * over; between fetches, flag what has been committed. */
static mv_status fetch_all(pass *p, guint64 from_uid, char **error_r)
{
	mv_status st = MV_OK;
	guint64 upto = from_uid;
	while (st == MV_OK && !stopping(p->o) && !aborted(p)) {
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
		while (st == MV_OK && i < total && !stopping(p->o) && !aborted(p)) {
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
			batch *b = NULL;
			if (st == MV_OK)
				st = fetch_batch(p, todo + i, j - i, &b, error_r);
			if (st == MV_OK) {
				upto = todo[j - 1];
				hand_over(p, b);
			}
			i = j;
		}
		g_hash_table_destroy(size_of);
		if (sizes != NULL)
			g_ptr_array_free(sizes, TRUE);
		g_array_unref(uids);
	}
	return st;
}

typedef struct {
	pass *p;
	guint64 from_uid;
} fetcher_args;

static gpointer fetcher_main(gpointer data)
{
	fetcher_args *a = data;
	batch *end = g_new0(batch, 1);
	end->end = TRUE;
	end->status = fetch_all(a->p, a->from_uid, &end->error);
	hand_over(a->p, end);
	return NULL;
}

static mv_status pull(pass *p, char **error_r)
{
	mv_imap_mailbox_info info;
	mv_status st = mv_imap_select(p->imap, NULL, &info, error_r);
	if (st != MV_OK)
		return st;
	if (!p->cur.has_uidvalidity || p->cur.uidvalidity != info.uidvalidity) {
		p->stats->rescanned = p->cur.has_uidvalidity;
		st = cursor_reset(p->db, &p->cur, info.uidvalidity, error_r);
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
	/* Fetch (and parse) the next batch while this one commits. */
	fetcher_args args = {.p = p, .from_uid = p->cur.last_uid};
	GThread *fetcher = g_thread_new("mv-imap-fetch", fetcher_main, &args);
	mv_status commit_st = MV_OK, fetch_st = MV_OK;
	char *commit_err = NULL, *fetch_err = NULL;
	for (;;) {
		g_mutex_lock(&p->lock);
		while (p->ready.length == 0)
			g_cond_wait(&p->cond, &p->lock);
		batch *b = g_queue_pop_head(&p->ready);
		g_cond_broadcast(&p->cond);
		g_mutex_unlock(&p->lock);
		if (b->end) {
			fetch_st = b->status;
			fetch_err = g_steal_pointer(&b->error);
			batch_free(b);
			break;
		}
		/* After a failure or a stop request, fetched batches are dropped:
		 * the cursor has not moved past them. */
		if (commit_st == MV_OK && !stopping(p->o)) {
			commit_st = commit_batch(p, b, &commit_err);
			if (commit_st != MV_OK) {
				g_mutex_lock(&p->lock);
				p->abort = TRUE;
				g_cond_broadcast(&p->cond);
				g_mutex_unlock(&p->lock);
			}
		}
		batch_free(b);
	}
	g_thread_join(fetcher);
	/* The session is this thread's again: flag the last batches. */
	char *drain_err = NULL;
	mv_status drain_st = fetch_st == MV_OK || fetch_st == MV_ERR_LIMIT ? drain_done(p, &drain_err)
	                                                                   : MV_OK;
	if (fetch_st != MV_OK && fetch_st != MV_ERR_LIMIT) {
		/* The session failed: what is committed is flagged next pass. */
		while (!g_queue_is_empty(&p->done)) {
			done_set *d = g_queue_pop_head(&p->done);
			g_array_free(d->uids, TRUE);
			g_free(d);
		}
	}
	p->stats->removed += p->removed;
	p->removed = 0;
	if (commit_st != MV_OK)
		st = mv_fail(error_r, commit_st, "%s", commit_err);
	else if (fetch_st != MV_OK)
		st = mv_fail(error_r, fetch_st, "%s", fetch_err);
	else if (drain_st != MV_OK)
		st = mv_fail(error_r, drain_st, "%s", drain_err);
	g_free(commit_err);
	g_free(fetch_err);
	g_free(drain_err);
	return st;
}

mv_status mv_imap_ingest_pass(mv_db *db, mv_blobstore *blobs, const mv_imap_ingest_options *o,
                              mv_imap_ingest_stats *stats_r, char **error_r)
{
	*stats_r = (mv_imap_ingest_stats){0};
	pass p = {.db = db, .blobs = blobs, .o = o, .stats = stats_r};
	g_mutex_init(&p.lock);
	g_cond_init(&p.cond);
	g_queue_init(&p.ready);
	g_queue_init(&p.done);
	char *mailbox = NULL;
	mv_status st = mv_imap_parse_url(o->imap.url, &mailbox, &p.cur.display, error_r);
	g_free(mailbox);
	if (st != MV_OK)
		return st;
	p.cur.source = g_strdup_printf("imap:%s", o->name);
	st = cursor_ensure(db, &p.cur, o->imap.user, error_r);
	if (st == MV_OK)
		st = mv_policy_store_current(db, &p.policy, &p.policy_version, error_r);
	if (st == MV_OK)
		st = mv_imap_connect(&o->imap, &p.imap, error_r);
	if (st == MV_OK)
		st = pull(&p, error_r);
	/* Log out before the database work that follows. */
	mv_imap_close(&p.imap);
	if (PQstatus(mv_db_conn(db)) == CONNECTION_OK) {
		cursor_note(db, p.cur.source, st == MV_OK ? NULL : *error_r);
		/* Search vectors of what was stored (best effort: search falls
		 * back to computing them, and the next pass catches up). */
		char *ierr = NULL;
		if (stats_r->new_count > 0 &&
		    mv_store_index_pending(db, 500, 0, NULL, &ierr) != MV_OK)
			g_free(ierr);
	}
	mv_policy_free(&p.policy);
	g_mutex_clear(&p.lock);
	g_cond_clear(&p.cond);
	g_free(p.cur.source);
	g_free(p.cur.display);
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
			st = mv_imap_ingest_pass(db, blobs, o, &s, &err);
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
		if (db != NULL && PQstatus(mv_db_conn(db)) != CONNECTION_OK) {
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

/* ---- status ---- */

mv_status mv_ingest_status_list(mv_db *db, GPtrArray **rows_r, char **error_r)
{
	*rows_r = NULL;
	PGresult *r = NULL;
	mv_status st = mv_db_query(db,
	                           "SELECT source, url, username, uidvalidity, last_uid, "
	                           MV_SQL_ISO_UTC("last_success") ", last_error, "
	                           MV_SQL_ISO_UTC("updated") " FROM ingest_cursor ORDER BY source",
	                           0, NULL, NULL, NULL, 0, &r, error_r);
	if (st != MV_OK)
		return st;
	GPtrArray *rows = g_ptr_array_new_with_free_func(mv_ingest_source_status_free);
	for (int i = 0; i < PQntuples(r); i++) {
		mv_ingest_source_status *s = g_new0(mv_ingest_source_status, 1);
		s->source = g_strdup(PQgetvalue(r, i, 0));
		s->url = g_strdup(PQgetvalue(r, i, 1));
		s->username = g_strdup(PQgetvalue(r, i, 2));
		s->has_uidvalidity = !PQgetisnull(r, i, 3);
		s->uidvalidity = g_ascii_strtoull(PQgetvalue(r, i, 3), NULL, 10);
		s->last_uid = g_ascii_strtoull(PQgetvalue(r, i, 4), NULL, 10);
		s->last_success = PQgetisnull(r, i, 5) ? NULL : g_strdup(PQgetvalue(r, i, 5));
		s->last_error = PQgetisnull(r, i, 6) ? NULL : g_strdup(PQgetvalue(r, i, 6));
		s->updated = g_strdup(PQgetvalue(r, i, 7));
		g_ptr_array_add(rows, s);
	}
	PQclear(r);
	*rows_r = rows;
	return MV_OK;
}

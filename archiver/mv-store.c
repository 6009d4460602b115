/* mv-store: batch ingest into PostgreSQL and byte-exact reads. */
#include "mv-store.h"

#include <string.h>

#include "mv-audit.h"
#include "mv-query.h"

/* ---- array literals for parameters (text format) ---- */

static void array_begin(GString *s)
{
	g_string_assign(s, "{");
}

static void array_sep(GString *s)
{
	if (s->len > 1)
		g_string_append_c(s, ',');
}

static void array_sha(GString *s, const uint8_t *sha)
{
	array_sep(s);
	if (sha == NULL) {
		g_string_append(s, "NULL");
		return;
	}
	char hex[MV_SHA256_HEX_LEN + 1];
	mv_sha256_to_hex(sha, hex);
	g_string_append_printf(s, "\"\\\\x%s\"", hex);
}

static void array_end(GString *s)
{
	g_string_append_c(s, '}');
}

/* A timestamp parameter ("2026-11-28 13:05:00+00") for t, or "" when GLib
 * cannot represent it (outside years 1..9999). */
static void pg_timestamp(gint64 t, char out[40])
{
	out[0] = '\0';
	GDateTime *dt = g_date_time_new_from_unix_utc(t);
	if (dt == NULL)
		return;
	char *d = g_date_time_format(dt, "%Y-%m-%d %H:%M:%S+00");
	g_strlcpy(out, d, 40);
	g_free(d);
	g_date_time_unref(dt);
}

/* ---- a batch: the parameters of one mv_ingest_batch() call ---- */

/* The function's parameters, in order (schema/010-ingest-batch.sql). */
enum {
	B_SHA, B_SIZE, B_SKEL, B_MID, B_DATE, B_DATE_RAW, B_FROM_ADDR, B_FROM_NAME, B_SUBJECT,
	B_HAS_ATT, B_STATUS, B_DOC, B_CLASS, B_EXPIRES, B_RULE, B_VERSION, B_DIRECTION,
	B_ARCHIVED, B_SOURCE, B_SOURCE_REF, B_ENV_FROM, B_DETAILS, B_FLAG_MSG, B_FLAGS,
	B_TAG_MSG, B_TAGS, B_SPLICE_MSG, B_SPLICE_OFF, B_SPLICE_BLOB, B_ADDR_MSG, B_ADDR_ROLE,
	B_ADDR, B_ADDR_NAME, B_PART_MSG, B_PART_PATH, B_PART_DECL, B_PART_DET, B_PART_FN,
	B_PART_SIZE, B_PART_BLOB, B_RCPT_MSG, B_RCPT,
	B_N
};

#define INGEST_SQL                                                                         \
	"SELECT o_pos, o_id, o_new, o_registration FROM mv_ingest_batch($1, $2, $3, $4, $5, " \
	"$6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, " \
	"$24, $25, $26, $27, $28, $29, $30, $31, $32, $33, $34, $35, $36, $37, $38, $39, $40, " \
	"$41, $42)"

typedef struct {
	GString *param[B_N]; /* PostgreSQL array literals, text format */
	guint n;             /* messages added */
} batch_params;

/* Where a batch's result rows go: results[pos - 1]. */
typedef struct {
	mv_store_result *results;
	guint n;
} batch_results;

static void batch_init(batch_params *b)
{
	for (int i = 0; i < B_N; i++) {
		b->param[i] = g_string_sized_new(i == B_DOC ? 65536 : 256);
		array_begin(b->param[i]);
	}
	b->n = 0;
}

static void batch_free(batch_params *b)
{
	for (int i = 0; i < B_N; i++)
		g_string_free(b->param[i], TRUE);
}

static void ingest_result(void *context, void *tag, const PGresult *r)
{
	(void)context;
	batch_results *br = tag;
	for (int row = 0; row < PQntuples(r); row++) {
		gint64 pos = g_ascii_strtoll(PQgetvalue(r, row, 0), NULL, 10);
		if (pos < 1 || pos > br->n)
			continue;
		mv_store_result *res = &br->results[pos - 1];
		res->id = g_ascii_strtoll(PQgetvalue(r, row, 1), NULL, 10);
		res->is_new = strcmp(PQgetvalue(r, row, 2), "t") == 0;
		g_strlcpy(res->registration, PQgetvalue(r, row, 3), sizeof res->registration);
		res->status = MV_OK;
	}
}

static void add_text(batch_params *b, int k, const char *v)
{
	mv_db_array_text(b->param[k], v);
}

/* A text value that did not come through the parser (envelope, source) is
 * made valid UTF-8 first. */
static void add_clean(batch_params *b, int k, const char *v)
{
	char *clean = mv_utf8_clean(v, -1);
	mv_db_array_text(b->param[k], clean);
	g_free(clean);
}

static void add_time(batch_params *b, int k, gboolean set, gint64 t)
{
	char ts[40] = "";
	if (set)
		pg_timestamp(t, ts);
	mv_db_array_text(b->param[k], *ts ? ts : NULL);
}

/* One list entry of the message at position pos. */
static void add_pos(batch_params *b, int k, guint pos)
{
	mv_db_array_int(b->param[k], pos);
}

/* Put msg's blobs (skeleton and spliced parts) and add its values to b.
 * On failure b is left part-filled: the caller drops the whole batch. */
static mv_status batch_add(batch_params *b, mv_blobstore *blobs, const mv_message *msg,
                           const mv_arrival_info *arr, char **error_r)
{
	gsize raw_len = 0;
	const guint8 *raw = g_bytes_get_data(msg->raw, &raw_len);
	if (raw == NULL)
		raw = (const guint8 *)"";
	guint pos = b->n + 1;

	/* Skeleton: the raw bytes without the spliced part contents. */
	GByteArray *skel = g_byte_array_sized_new((guint)MIN(raw_len, G_MAXUINT));
	gsize at = 0;
	mv_status st = MV_OK;
	for (guint i = 0; i < msg->parts->len && st == MV_OK; i++) {
		const mv_part *p = msg->parts->pdata[i];
		if (!p->spliced)
			continue;
		g_byte_array_append(skel, raw + at, (guint)(p->raw_offset - at));
		add_pos(b, B_SPLICE_MSG, pos);
		mv_db_array_int(b->param[B_SPLICE_OFF], skel->len);
		array_sha(b->param[B_SPLICE_BLOB], p->blob_sha256);
		st = mv_blobstore_put(blobs, p->blob_sha256, raw + p->raw_offset, p->raw_len, error_r);
		at = p->raw_offset + p->raw_len;
	}
	g_byte_array_append(skel, raw + at, (guint)(raw_len - at));
	uint8_t skel_sha[MV_SHA256_LEN];
	mv_sha256(skel->data, skel->len, skel_sha);
	if (st == MV_OK)
		st = mv_blobstore_put(blobs, skel_sha, skel->data, skel->len, error_r);
	g_byte_array_free(skel, TRUE);
	if (st != MV_OK)
		return st;

	array_sha(b->param[B_SHA], msg->sha256);
	mv_db_array_int(b->param[B_SIZE], (gint64)raw_len);
	array_sha(b->param[B_SKEL], skel_sha);
	add_text(b, B_MID, msg->message_id);
	add_time(b, B_DATE, msg->has_date, msg->date);
	add_text(b, B_DATE_RAW, msg->date_raw);
	add_text(b, B_FROM_ADDR, msg->from_addr);
	add_text(b, B_FROM_NAME, msg->from_name);
	add_text(b, B_SUBJECT, msg->subject);
	add_text(b, B_HAS_ATT, msg->has_attachment ? "t" : "f");
	add_text(b, B_STATUS, msg->parse_status);
	add_text(b, B_DOC, msg->text->str);

	const mv_message_retention *ret = &msg->retention;
	add_text(b, B_CLASS, ret->class_name);
	add_time(b, B_EXPIRES, ret->class_name != NULL, ret->expiry);
	add_text(b, B_RULE, ret->rule);
	if (ret->class_name != NULL)
		mv_db_array_int(b->param[B_VERSION], ret->policy_version);
	else
		add_text(b, B_VERSION, NULL);
	add_text(b, B_DIRECTION, ret->direction);
	add_time(b, B_ARCHIVED, ret->archive_date > 0, ret->archive_date);
	for (guint i = 0; ret->tags != NULL && i < ret->tags->len; i++) {
		add_pos(b, B_TAG_MSG, pos);
		add_text(b, B_TAGS, ret->tags->pdata[i]);
	}

	add_clean(b, B_SOURCE, arr->source != NULL ? arr->source : "unknown");
	add_clean(b, B_SOURCE_REF, arr->source_ref);
	add_clean(b, B_ENV_FROM, arr->envelope_from);
	add_clean(b, B_DETAILS, arr->details);
	for (const char *const *r = arr->envelope_to; r != NULL && *r != NULL; r++) {
		add_pos(b, B_RCPT_MSG, pos);
		add_clean(b, B_RCPT, *r);
	}

	for (guint i = 0; i < msg->flags->len; i++) {
		add_pos(b, B_FLAG_MSG, pos);
		add_text(b, B_FLAGS, msg->flags->pdata[i]);
	}
	for (guint i = 0; i < msg->addresses->len; i++) {
		const mv_address *ad = msg->addresses->pdata[i];
		add_pos(b, B_ADDR_MSG, pos);
		add_text(b, B_ADDR_ROLE, ad->role);
		add_text(b, B_ADDR, ad->address);
		add_text(b, B_ADDR_NAME, ad->name);
	}
	for (guint i = 0; i < msg->parts->len; i++) {
		const mv_part *p = msg->parts->pdata[i];
		add_pos(b, B_PART_MSG, pos);
		add_text(b, B_PART_PATH, p->path);
		add_text(b, B_PART_DECL, p->declared_type);
		add_text(b, B_PART_DET, p->detected_type);
		add_text(b, B_PART_FN, p->filename);
		mv_db_array_int(b->param[B_PART_SIZE], (gint64)p->size);
		array_sha(b->param[B_PART_BLOB], p->spliced ? p->blob_sha256 : NULL);
	}
	b->n++;
	return MV_OK;
}

/* Close b's arrays and send its call: in the pipeline when one is open
 * (results arrive through ingest_result with br as tag), else
 * synchronously.  b is complete afterwards; only batch_free remains. */
static mv_status batch_send(mv_db *db, batch_params *b, batch_results *br, char **error_r)
{
	const char *values[B_N];
	for (int i = 0; i < B_N; i++) {
		array_end(b->param[i]);
		values[i] = b->param[i]->str;
	}
	mv_status st;
	if (mv_db_in_pipeline(db)) {
		st = mv_db_pipeline_send(db, "mv_ingest_batch", INGEST_SQL, B_N, values, NULL, NULL,
		                         br, error_r);
	} else {
		PGresult *r = NULL;
		st = mv_db_query_prepared(db, "mv_ingest_batch", INGEST_SQL, B_N, values, NULL, NULL, 0,
		                          &r, error_r);
		if (st == MV_OK)
			ingest_result(NULL, br, r);
		PQclear(r);
	}
	return st;
}

/* Store msgs[0..n) in the current transaction (or pipeline); their results
 * go to br (which must live until the pipeline ends). */
static mv_status store_messages(mv_db *db, mv_blobstore *blobs, mv_message *const *msgs,
                                const mv_arrival_info *arrivals, guint n, batch_results *br,
                                char **error_r)
{
	batch_params b;
	batch_init(&b);
	mv_status st = MV_OK;
	for (guint i = 0; i < n && st == MV_OK; i++) {
		st = batch_add(&b, blobs, msgs[i], &arrivals[i], error_r);
		if (st == MV_OK && mv_db_in_pipeline(db))
			st = mv_db_pipeline_poll(db, error_r);
	}
	if (st == MV_OK)
		st = batch_send(db, &b, br, error_r);
	batch_free(&b);
	return st;
}

/* The audit entry of a committed batch: the SHA-256 of every message in it,
 * so the chain vouches for each archived message. */
static char *batch_details(mv_message *const *msgs, const mv_arrival_info *arrivals, guint n)
{
	GString *s = g_string_new(NULL);
	g_string_append_printf(s, "messages=%u", n);
	for (guint i = 0; i < n; i++) {
		char hex[MV_SHA256_HEX_LEN + 1];
		mv_sha256_to_hex(msgs[i]->sha256, hex);
		g_string_append_printf(s, "\nsha256=%s source=%s", hex,
		                       arrivals[i].source != NULL ? arrivals[i].source : "-");
	}
	return g_string_free(s, FALSE);
}

/* Ongoing holds: each active one's compiled query, applied to the batch's
 * messages inside the batch transaction. */
typedef struct {
	char *id;
	mv_query_sql *sql;
	char *insert;
} ongoing_hold;

static void ongoing_holds_free(GPtrArray *holds)
{
	for (guint i = 0; holds != NULL && i < holds->len; i++) {
		ongoing_hold *h = holds->pdata[i];
		g_free(h->id);
		mv_query_sql_free(&h->sql);
		g_free(h->insert);
		g_free(h);
	}
	if (holds != NULL)
		g_ptr_array_free(holds, TRUE);
}

static mv_status load_ongoing_holds(mv_db *db, GPtrArray **holds_r, char **error_r)
{
	*holds_r = g_ptr_array_new();
	PGresult *r = NULL;
	mv_status st = mv_db_query(db,
	                           "SELECT id, query FROM hold WHERE ongoing AND released_at IS NULL "
	                           "ORDER BY id",
	                           0, NULL, NULL, NULL, 0, &r, error_r);
	for (int i = 0; st == MV_OK && i < PQntuples(r); i++) {
		ongoing_hold *h = g_new0(ongoing_hold, 1);
		h->id = g_strdup(PQgetvalue(r, i, 0));
		char *qerr = NULL;
		if (mv_query_compile(PQgetvalue(r, i, 1), 3, &h->sql, &qerr) != MV_OK) {
			/* Stored queries were compiled when the hold was created. */
			st = mv_fail(error_r, MV_ERR_INTERNAL, "hold %s: %s", h->id, qerr);
			g_free(qerr);
		} else {
			h->insert = g_strdup_printf(
				"INSERT INTO hold_item (hold_id, message_id) SELECT $1::integer, m.id "
				"FROM message m WHERE m.sha256 = ANY ($2::bytea[]) AND (%s) "
				"ON CONFLICT DO NOTHING",
				h->sql->where);
		}
		g_ptr_array_add(*holds_r, h);
	}
	PQclear(r);
	return st;
}

static char *sha_array(mv_message *const *msgs, guint n)
{
	GString *s = g_string_new("{");
	for (guint i = 0; i < n; i++)
		array_sha(s, msgs[i]->sha256);
	array_end(s);
	return g_string_free(s, FALSE);
}

static mv_status send_hold_inserts(mv_db *db, GPtrArray *holds, const char *shas, char **error_r)
{
	mv_status st = MV_OK;
	for (guint i = 0; st == MV_OK && holds != NULL && i < holds->len; i++) {
		ongoing_hold *h = holds->pdata[i];
		guint n = h->sql->params->len + 2;
		const char **v = g_new0(const char *, n);
		v[0] = h->id;
		v[1] = shas;
		for (guint k = 0; k < h->sql->params->len; k++)
			v[k + 2] = h->sql->params->pdata[k];
		if (mv_db_in_pipeline(db)) {
			st = mv_db_pipeline_send(db, NULL, h->insert, (int)n, v, NULL, NULL, NULL, error_r);
		} else {
			PGresult *r = NULL;
			st = mv_db_query(db, h->insert, (int)n, v, NULL, NULL, 0, &r, error_r);
			PQclear(r);
		}
		g_free(v);
	}
	return st;
}

static void rollback(mv_db *db, mv_blobstore *blobs)
{
	PQclear(PQexec(mv_db_conn(db), "ROLLBACK"));
	mv_blobstore_reset(blobs);
}

static gboolean connection_lost(mv_db *db)
{
	return PQstatus(mv_db_conn(db)) != CONNECTION_OK;
}

mv_status mv_store_batch(mv_db *db, mv_blobstore *blobs, mv_message *const *msgs,
                         const mv_arrival_info *arrivals, guint n, mv_store_result *results,
                         char **error_r)
{
	return mv_store_batch_with(db, blobs, msgs, arrivals, n, NULL, results, error_r);
}

mv_status mv_store_batch_with(mv_db *db, mv_blobstore *blobs, mv_message *const *msgs,
                              const mv_arrival_info *arrivals, guint n,
                              const mv_store_extra *extra, mv_store_result *results,
                              char **error_r)
{
	for (guint i = 0; i < n; i++)
		results[i] = (mv_store_result){0};
	if (n == 0)
		return MV_OK;
	char *err = NULL;
	batch_results br = {results, n};
	/* The whole batch is one pipelined transaction: statements stream to
	 * the server while the next blobs are being compressed. */
	GPtrArray *holds = NULL;
	/* Without the ongoing holds nothing may be stored: a message that one
	 * of them should take must never be archived outside it. */
	mv_status st = load_ongoing_holds(db, &holds, &err);
	if (st != MV_OK) {
		for (guint i = 0; i < n; i++) {
			results[i].status = st;
			results[i].error = g_strdup(err);
		}
		mv_fail(error_r, st, "%s", err);
		g_free(err);
		ongoing_holds_free(holds);
		return st;
	}
	st = mv_blobstore_prepare(blobs, &err);
	if (st == MV_OK)
		st = mv_db_prepare(db, "mv_ingest_batch", INGEST_SQL, B_N, &err);
	if (st == MV_OK)
		st = mv_db_pipeline_begin(db, ingest_result, NULL, &err);
	if (st == MV_OK) {
		for (guint i = 0; i < n; i++)
			results[i].status = MV_ERR_INTERNAL;
		st = mv_db_pipeline_send(db, NULL, "BEGIN", 0, NULL, NULL, NULL, NULL, &err);
		if (st == MV_OK)
			st = store_messages(db, blobs, msgs, arrivals, n, &br, &err);
		char *details = batch_details(msgs, arrivals, n);
		char *shas = sha_array(msgs, n);
		if (st == MV_OK)
			st = send_hold_inserts(db, holds, shas, &err);
		if (st == MV_OK && extra != NULL)
			st = mv_db_pipeline_send(db, NULL, extra->sql, extra->n_params, extra->values,
			                         NULL, NULL, NULL, &err);
		const char *av[] = {arrivals[0].source != NULL ? arrivals[0].source : "ingest",
		                    "ingest.batch", "", details};
		if (st == MV_OK)
			st = mv_db_pipeline_send(db, NULL, MV_AUDIT_APPEND_SQL, 4, av, NULL, NULL, NULL, &err);
		if (st == MV_OK)
			st = mv_db_pipeline_send(db, NULL, "COMMIT", 0, NULL, NULL, NULL, NULL, &err);
		char *end_err = NULL;
		mv_status end = mv_db_pipeline_end(db, &end_err);
		g_free(details);
		g_free(shas);
		if (st == MV_OK) {
			st = end;
			err = end_err;
		} else {
			g_free(end_err);
		}
	}
	if (st == MV_OK) {
		for (guint i = 0; i < n; i++)
			if (results[i].status != MV_OK)
				st = mv_fail(&err, MV_ERR_INTERNAL, "no result for message %u of the batch", i);
	}
	if (st == MV_OK) {
		ongoing_holds_free(holds);
		return MV_OK;
	}
	rollback(db, blobs);
	if (connection_lost(db) || n == 1 || st == MV_ERR_DENIED || extra != NULL) {
		for (guint i = 0; i < n; i++) {
			results[i].status = st;
			results[i].error = g_strdup(err);
		}
		mv_fail(error_r, st, "%s", err);
		g_free(err);
		ongoing_holds_free(holds);
		return st;
	}
	g_free(err);

	/* Isolate the failure: one message per transaction. */
	guint failed = 0;
	mv_status last = MV_OK;
	for (guint i = 0, attempt = 1; i < n; i++) {
		char *e = NULL;
		mv_store_result *res = &results[i];
		*res = (mv_store_result){0};
		mv_status s = mv_db_exec(db, "BEGIN", &e);
		batch_results one = {res, 1};
		if (s == MV_OK)
			s = store_messages(db, blobs, &msgs[i], &arrivals[i], 1, &one, &e);
		if (s == MV_OK && holds != NULL) {
			char *shas = sha_array(&msgs[i], 1);
			s = send_hold_inserts(db, holds, shas, &e);
			g_free(shas);
		}
		if (s == MV_OK) {
			char *details = batch_details(&msgs[i], &arrivals[i], 1);
			s = mv_audit_append(db, arrivals[i].source != NULL ? arrivals[i].source : "ingest",
			                    "ingest.batch", "", details, NULL, &e);
			g_free(details);
		}
		if (s == MV_OK)
			s = mv_db_exec(db, "COMMIT", &e);
		/* A deadlock (say with a purge over a shared blob) is retried. */
		if (s != MV_OK && attempt < 4 && !connection_lost(db) && mv_db_failure_is_transient(db)) {
			rollback(db, blobs);
			g_free(e);
			g_free(res->error);
			g_usleep(attempt * 20000);
			attempt++;
			i--; /* again */
			continue;
		}
		attempt = 1;
		if (s != MV_OK) {
			rollback(db, blobs);
			res->status = s;
			res->error = e;
			failed++;
			last = s;
			if (connection_lost(db)) {
				for (guint j = i + 1; j < n; j++) {
					results[j].status = s;
					results[j].error = g_strdup(e);
				}
				failed += n - i - 1;
				break;
			}
		}
	}
	ongoing_holds_free(holds);
	if (failed == 0)
		return MV_OK;
	if (failed == n)
		return mv_fail(error_r, last, "%s", results[n - 1].error);
	return mv_fail(error_r, MV_ERR_PARTIAL, "%u of %u messages failed", failed, n);
}

mv_status mv_store_resolve(mv_db *db, const char *ref, gint64 *id_r, char **error_r)
{
	*id_r = 0;
	gboolean digits = *ref != '\0' && strlen(ref) <= 18;
	for (const char *p = ref; *p && digits; p++)
		digits = g_ascii_isdigit(*p);
	PGresult *r = NULL;
	mv_status st;
	if (digits) {
		const char *values[] = {ref};
		st = mv_db_query(db, "SELECT id FROM message WHERE id = $1", 1, values, NULL, NULL, 0,
		                 &r, error_r);
	} else {
		uint8_t sha[MV_SHA256_LEN];
		if (mv_sha256_from_hex(ref, sha) != 0)
			return mv_fail(error_r, MV_ERR_USAGE,
			               "'%s' is neither a message id nor a SHA-256 (64 hex digits)", ref);
		const char *values[] = {(const char *)sha};
		int lengths[] = {MV_SHA256_LEN}, formats[] = {1};
		st = mv_db_query(db, "SELECT id FROM message WHERE sha256 = $1", 1, values, lengths,
		                 formats, 0, &r, error_r);
	}
	if (st != MV_OK)
		return st;
	if (PQntuples(r) != 1) {
		PQclear(r);
		return mv_fail(error_r, MV_ERR_NOT_FOUND, "no message %s in the archive", ref);
	}
	*id_r = g_ascii_strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return MV_OK;
}

/* Messages of one read: at most this many bytes of them at a time. */
#define READ_CHUNK_BYTES (32 * 1024 * 1024)
#define READ_CHUNK_MESSAGES 200

/* Rebuild message rows [*row, ...) of one message (rows ordered by seq, the
 * skeleton first as seq -1) and check it; *row moves past them. */
static mv_status assemble(PGresult *r, int *row, mv_blobstore *blobs, GBytes **raw_r,
                          char **error_r)
{
	*raw_r = NULL;
	int first = *row, rows = PQntuples(r);
	gint64 id = mv_db_get_int8(r, first, 0);
	int last = first;
	while (last + 1 < rows && mv_db_get_int8(r, last + 1, 0) == id)
		last++;
	*row = last + 1;
	if (PQgetlength(r, first, 1) != MV_SHA256_LEN || PQgetlength(r, first, 2) != 8)
		return mv_fail(error_r, MV_ERR_INTEGRITY, "message %" G_GINT64_FORMAT
		               " has a malformed record", id);
	const uint8_t *sha = (const uint8_t *)PQgetvalue(r, first, 1);
	gint64 size = mv_db_get_int8(r, first, 2);
	GByteArray *out = g_byte_array_sized_new((guint)MAX(size, 0));
	GBytes *skel = NULL;
	gsize pos = 0, skel_len = 0;
	const guint8 *skel_data = NULL;
	mv_status st = MV_OK;
	for (int i = first; i <= last && st == MV_OK; i++) {
		gint32 seq = mv_db_get_int4(r, i, 3);
		if ((i == first) != (seq == -1) || PQgetlength(r, i, 5) != MV_SHA256_LEN) {
			st = mv_fail(error_r, MV_ERR_INTEGRITY,
			             "message %" G_GINT64_FORMAT " has a malformed splice list", id);
			break;
		}
		const uint8_t *bsha = (const uint8_t *)PQgetvalue(r, i, 5);
		if (PQgetisnull(r, i, 6)) {
			char hex[MV_SHA256_HEX_LEN + 1];
			mv_sha256_to_hex(bsha, hex);
			st = mv_fail(error_r, MV_ERR_INTEGRITY, "blob %s is missing", hex);
			break;
		}
		GBytes *blob = NULL;
		st = mv_blobstore_pg_decode(blobs, bsha, mv_db_get_int8(r, i, 6), mv_db_get_int4(r, i, 7),
		                            mv_db_get_int4(r, i, 8), PQgetvalue(r, i, 9),
		                            (size_t)PQgetlength(r, i, 9), &blob, error_r);
		if (st != MV_OK)
			break;
		if (seq == -1) {
			skel = blob;
			skel_data = g_bytes_get_data(skel, &skel_len);
			continue;
		}
		gsize off = (gsize)mv_db_get_int8(r, i, 4);
		if (off < pos || off > skel_len) {
			g_bytes_unref(blob);
			st = mv_fail(error_r, MV_ERR_INTEGRITY,
			             "message %" G_GINT64_FORMAT " has a malformed splice list", id);
			break;
		}
		g_byte_array_append(out, skel_data + pos, (guint)(off - pos));
		pos = off;
		gsize plen = 0;
		const guint8 *pdata = g_bytes_get_data(blob, &plen);
		g_byte_array_append(out, pdata, (guint)plen);
		g_bytes_unref(blob);
	}
	if (st == MV_OK)
		g_byte_array_append(out, skel_data + pos, (guint)(skel_len - pos));
	if (skel != NULL)
		g_bytes_unref(skel);
	if (st != MV_OK) {
		g_byte_array_free(out, TRUE);
		return st;
	}
	uint8_t check[MV_SHA256_LEN];
	mv_sha256(out->data != NULL ? out->data : (guint8 *)"", out->len, check);
	if ((gint64)out->len != size || memcmp(check, sha, MV_SHA256_LEN) != 0) {
		g_byte_array_free(out, TRUE);
		char hex[MV_SHA256_HEX_LEN + 1];
		mv_sha256_to_hex(sha, hex);
		return mv_fail(error_r, MV_ERR_INTEGRITY,
		               "message %" G_GINT64_FORMAT " does not match its SHA-256 %s: the stored "
		               "copy is damaged", id, hex);
	}
	*raw_r = g_byte_array_free_to_bytes(out);
	return MV_OK;
}

/* One query for a chunk of messages: each message's row and its blobs,
 * the skeleton first (seq -1), then the splices in order. */
#define READ_CHUNK_SQL                                                                          \
	"SELECT m.id, m.sha256, m.size, p.seq, p.off, p.sha, b.raw_size, b.codec::int4, "         \
	"coalesce(b.dict_id, 0)::int4, b.data FROM message m "                                    \
	"CROSS JOIN LATERAL (SELECT -1 AS seq, 0::bigint AS off, m.skeleton_sha256 AS sha "        \
	"  UNION ALL SELECT s.seq, s.\"offset\", s.blob_sha256 FROM message_splice s "              \
	"  WHERE s.message_id = m.id) p "                                                         \
	"LEFT JOIN blob b ON b.sha256 = p.sha "                                                   \
	"WHERE m.id = ANY ($1::bigint[]) ORDER BY m.id, p.seq"

static mv_status read_chunk(mv_db *db, mv_blobstore *blobs, const gint64 *ids, guint n,
                            mv_store_raw_fn *fn, void *context, char **error_r)
{
	char *arr = mv_db_int_array(ids, n);
	const char *v[] = {arr};
	PGresult *r = NULL;
	mv_status st = mv_db_query(db, READ_CHUNK_SQL, 1, v, NULL, NULL, 1, &r, error_r);
	g_free(arr);
	if (st != MV_OK)
		return st;
	/* Rows come in id order; hand the messages over in the caller's. */
	GArray *msg_ids = g_array_sized_new(FALSE, FALSE, sizeof(gint64), n);
	GArray *firsts = g_array_sized_new(FALSE, FALSE, sizeof(int), n);
	int rows = PQntuples(r);
	for (int i = 0; i < rows; i++) {
		if (PQgetlength(r, i, 0) != 8 || PQgetlength(r, i, 2) != 8 || PQgetlength(r, i, 3) != 4 ||
		    PQgetlength(r, i, 4) != 8 ||
		    (!PQgetisnull(r, i, 6) && (PQgetlength(r, i, 6) != 8 || PQgetlength(r, i, 7) != 4 ||
		                               PQgetlength(r, i, 8) != 4))) {
			st = mv_fail(error_r, MV_ERR_DB, "unexpected result reading messages");
			break;
		}
		gint64 id = mv_db_get_int8(r, i, 0);
		if (i == 0 || mv_db_get_int8(r, i - 1, 0) != id) {
			g_array_append_val(msg_ids, id);
			g_array_append_val(firsts, i);
		}
	}
	for (guint k = 0; st == MV_OK && k < n; k++) {
		GBytes *raw = NULL;
		char *err = NULL;
		mv_status ms;
		guint lo = 0, hi = msg_ids->len; /* binary search: msg_ids ascend */
		while (lo < hi) {
			guint mid = lo + (hi - lo) / 2;
			if (g_array_index(msg_ids, gint64, mid) < ids[k])
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo == msg_ids->len || g_array_index(msg_ids, gint64, lo) != ids[k]) {
			ms = mv_fail(&err, MV_ERR_NOT_FOUND, "no message %" G_GINT64_FORMAT " in the archive",
			             ids[k]);
		} else {
			int row = g_array_index(firsts, int, lo);
			ms = assemble(r, &row, blobs, &raw, &err);
		}
		fn(context, k, raw, ms, err);
		if (raw != NULL)
			g_bytes_unref(raw);
		g_free(err);
	}
	g_array_free(msg_ids, TRUE);
	g_array_free(firsts, TRUE);
	PQclear(r);
	return st;
}

typedef struct {
	mv_store_raw_fn *fn;
	void *context;
	guint offset;
} index_shift;

static void shift_index(void *context, guint index, GBytes *raw, mv_status status,
                        const char *error)
{
	index_shift *s = context;
	s->fn(s->context, s->offset + index, raw, status, error);
}

mv_status mv_store_get_raw_each(mv_db *db, mv_blobstore *blobs, const gint64 *ids, guint n,
                                mv_store_raw_fn *fn, void *context, char **error_r)
{
	if (n == 0)
		return MV_OK;
	if (n == 1) /* one message is one chunk whatever its size */
		return read_chunk(db, blobs, ids, 1, fn, context, error_r);
	/* Sizes first, so that a chunk holds a bounded number of bytes. */
	char *arr = mv_db_int_array(ids, n);
	const char *v[] = {arr};
	PGresult *r = NULL;
	mv_status st = mv_db_query(db, "SELECT id::text, size::text FROM message WHERE id = ANY ($1::bigint[])",
	                           1, v, NULL, NULL, 0, &r, error_r);
	g_free(arr);
	if (st != MV_OK)
		return st;
	GHashTable *sizes = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, NULL);
	for (int i = 0; i < PQntuples(r); i++) {
		gint64 *id = g_new(gint64, 1);
		*id = g_ascii_strtoll(PQgetvalue(r, i, 0), NULL, 10);
		g_hash_table_insert(sizes, id,
		                    GSIZE_TO_POINTER((gsize)g_ascii_strtoull(PQgetvalue(r, i, 1), NULL, 10)));
	}
	PQclear(r);
	guint start = 0;
	while (st == MV_OK && start < n) {
		guint end = start;
		gsize bytes = 0;
		while (end < n && end - start < READ_CHUNK_MESSAGES) {
			gsize sz = GPOINTER_TO_SIZE(g_hash_table_lookup(sizes, &ids[end]));
			if (end > start && bytes + sz > READ_CHUNK_BYTES)
				break;
			bytes += sz;
			end++;
		}
		/* fn sees indexes into the caller's array */
		index_shift shift = {fn, context, start};
		st = read_chunk(db, blobs, ids + start, end - start, shift_index, &shift, error_r);
		start = end;
	}
	g_hash_table_destroy(sizes);
	return st;
}

typedef struct {
	GBytes *raw;
	mv_status status;
	char *error;
} one_result;

static void keep_one(void *context, guint index, GBytes *raw, mv_status status,
                     const char *error)
{
	(void)index;
	one_result *o = context;
	o->status = status;
	o->raw = raw != NULL ? g_bytes_ref(raw) : NULL;
	o->error = g_strdup(error);
}

mv_status mv_store_get_raw(mv_db *db, mv_blobstore *blobs, gint64 id, GBytes **raw_r,
                           char **error_r)
{
	*raw_r = NULL;
	one_result o = {NULL, MV_ERR_INTERNAL, NULL};
	mv_status st = mv_store_get_raw_each(db, blobs, &id, 1, keep_one, &o, error_r);
	if (st != MV_OK) {
		g_free(o.error);
		if (o.raw != NULL)
			g_bytes_unref(o.raw);
		return st;
	}
	if (o.status != MV_OK) {
		mv_fail(error_r, o.status, "%s", o.error != NULL ? o.error : "cannot read the message");
		g_free(o.error);
		return o.status;
	}
	g_free(o.error);
	*raw_r = o.raw;
	return MV_OK;
}

mv_status mv_store_index_pending(mv_db *db, int batch_size, gint64 max_total, gint64 *done_r,
                                 char **error_r)
{
	gint64 done = 0;
	char batch[16];
	g_snprintf(batch, sizeof batch, "%d", batch_size);
	const char *values[] = {batch};
	for (;;) {
		PGresult *r = NULL;
		mv_status st = mv_db_query(db, "SELECT mv_index_pending($1)", 1, values, NULL, NULL, 0,
		                           &r, error_r);
		if (st != MV_OK) {
			if (done_r != NULL)
				*done_r = done;
			return st;
		}
		gint64 n = g_ascii_strtoll(PQgetvalue(r, 0, 0), NULL, 10);
		PQclear(r);
		done += n;
		if (n == 0 || (max_total > 0 && done >= max_total))
			break;
	}
	if (done_r != NULL)
		*done_r = done;
	return MV_OK;
}

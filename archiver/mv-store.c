/* mv-store: batch ingest into PostgreSQL and byte-exact reads. */
#include "mv-store.h"
#include "mv-lang.h"
#include "mv-recipe.h"

#include <string.h>

#include "mv-audit.h"
#include "mv-blind.h"

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

/* A bytea element of len bytes, or NULL when bytes is NULL. */
static void array_bytes(GString *s, const uint8_t *bytes, gsize len)
{
	array_sep(s);
	if (bytes == NULL) {
		g_string_append(s, "NULL");
		return;
	}
	g_string_append(s, "\"\\\\x");
	for (gsize i = 0; i < len; i++)
		g_string_append_printf(s, "%02x", bytes[i]);
	g_string_append_c(s, '"');
}

/* A bytea element of a GBytes (NULL: NULL), hex-encoded. */
static void array_gbytes(GString *s, GBytes *bytes)
{
	static const char digits[] = "0123456789abcdef";
	array_sep(s);
	if (bytes == NULL) {
		g_string_append(s, "NULL");
		return;
	}
	gsize len = 0;
	const guint8 *b = g_bytes_get_data(bytes, &len);
	g_string_append(s, "\"\\\\x");
	gsize at = s->len;
	g_string_set_size(s, at + 2 * len);
	for (gsize i = 0; i < len; i++) {
		s->str[at + 2 * i] = digits[b[i] >> 4];
		s->str[at + 2 * i + 1] = digits[b[i] & 15];
	}
	g_string_append_c(s, '"');
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

/* ---- arrival facts ---- */

char *mv_arrival_details(const mv_arrival_info *a)
{
	GString *d = g_string_new(NULL);
	if (a->client_addr != NULL || a->helo != NULL || a->protocol != NULL)
		g_string_append_printf(d, "client=%s helo=%s%s%s proto=%s",
		                       a->client_addr != NULL ? a->client_addr : "-",
		                       a->helo != NULL ? a->helo : "", a->tls != NULL ? " tls=" : "",
		                       a->tls != NULL ? a->tls : "",
		                       a->protocol != NULL ? a->protocol : "SMTP");
	if (a->imap) {
		GDateTime *dt = g_date_time_new_from_unix_utc(a->imap_internaldate);
		char *when = dt != NULL ? g_date_time_format(dt, "%Y-%m-%dT%H:%M:%SZ") : g_strdup("-");
		if (dt != NULL)
			g_date_time_unref(dt);
		g_string_append_printf(d, "%simap uidvalidity=%" G_GUINT64_FORMAT
		                       " uid=%" G_GUINT64_FORMAT " internaldate=%s",
		                       d->len ? " " : "", a->imap_uidvalidity, a->imap_uid, when);
		g_free(when);
	}
	char hex[MV_SHA256_HEX_LEN + 1];
	if (a->journal_report != NULL) {
		mv_sha256_to_hex(a->journal_report, hex);
		g_string_append_printf(d, "%sjournal-report=%s", d->len ? " " : "", hex);
		for (const char *const *b = a->envelope_bcc; b != NULL && *b != NULL; b++)
			g_string_append_printf(d, "%s%s", b == a->envelope_bcc ? " bcc=" : ",", *b);
	}
	if (a->journal_original != NULL) {
		mv_sha256_to_hex(a->journal_original, hex);
		g_string_append_printf(d, "%sjournal-report-of=%s", d->len ? " " : "", hex);
	}
	if (a->journal_problem != NULL)
		g_string_append_printf(d, "%sjournal-report-malformed=\"%s\"", d->len ? " " : "",
		                       a->journal_problem);
	if (a->source_sha256 != NULL) {
		mv_sha256_to_hex(a->source_sha256, hex);
		g_string_append_printf(d, "%sfile-sha256=%s", d->len ? " " : "", hex);
	}
	if (a->folder_path != NULL)
		g_string_append_printf(d, "%sfolder=\"%s\"", d->len ? " " : "", a->folder_path);
	if (a->item_id != NULL)
		g_string_append_printf(d, "%sitem=%s", d->len ? " " : "", a->item_id);
	if (a->entry_id != NULL) {
		g_string_append_printf(d, "%sentry-id=", d->len ? " " : "");
		for (gsize i = 0; i < a->entry_id_len; i++)
			g_string_append_printf(d, "%02x", a->entry_id[i]);
	}
	if (a->reconstructed)
		g_string_append_printf(d, "%sreconstructed", d->len ? " " : "");
	if (d->len == 0) {
		g_string_free(d, TRUE);
		return NULL;
	}
	return g_string_free(d, FALSE);
}

/* ---- a batch: the parameters of one mv_ingest_batch() call ---- */

/* The function's parameters, in order (schema/029-search-text.sql: 011's
 * arrival facts, 024's import facts, 021's p_lang and 029's p_ztext and p_tsv last). */
enum {
	B_SHA, B_SIZE, B_SKEL, B_MID, B_DATE, B_DATE_RAW, B_FROM_ADDR, B_FROM_NAME, B_SUBJECT,
	B_HAS_ATT, B_STATUS, B_DOC, B_CLASS, B_EXPIRES, B_RULE, B_VERSION, B_DIRECTION,
	B_ARCHIVED, B_SOURCE, B_SOURCE_REF, B_ENV_FROM, B_CLIENT, B_HELO, B_TLS, B_PROTO,
	B_IMAP_MAILBOX, B_IMAP_UIDVALIDITY, B_IMAP_UID, B_IMAP_INTERNALDATE, B_JREPORT,
	B_JORIGINAL, B_JPROBLEM, B_SRC_SHA, B_FOLDER, B_ITEM, B_ENTRY, B_RECON, B_FLAG_MSG, B_FLAGS,
	B_TAG_MSG, B_TAGS, B_SPLICE_MSG, B_SPLICE_OFF, B_SPLICE_BLOB, B_ADDR_MSG, B_ADDR_ROLE,
	B_ADDR, B_ADDR_NAME, B_PART_MSG, B_PART_PATH, B_PART_DECL, B_PART_DET, B_PART_FN,
	B_PART_SIZE, B_PART_BLOB, B_RCPT_MSG, B_RCPT, B_BCC_MSG, B_BCC, B_LANG, B_ZTEXT, B_TSV,
	B_N
};

#define INGEST_SQL                                                                         \
	"SELECT o_pos, o_id, o_new, o_registration FROM mv_ingest_batch($1, $2, $3, $4, $5, " \
	"$6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, " \
	"$24, $25, $26, $27, $28, $29, $30, $31, $32, $33, $34, $35, $36, $37, $38, $39, $40, " \
	"$41, $42, $43, $44, $45, $46, $47, $48, $49, $50, $51, $52, $53, $54, $55, $56, $57, " \
	"$58, $59, $60, $61, $62)"
G_STATIC_ASSERT(B_N == 62);

/* The recipes of the splices stored by decoded content (schema/028),
 * written by their own statement after mv_ingest_batch: message SHA-256,
 * splice number, the splice's blob, and the recipe. */
enum { R_MSG, R_SEQ, R_BLOB, R_ENC, R_LINE, R_CRLF, R_TAIL, R_SIZE, R_N };

#define RECIPE_SQL                                                                              \
	"INSERT INTO splice_recipe (message_id, seq, encoding, line_len, crlf, tail, encoded_size) " \
	"SELECT s.message_id, s.seq, r.enc, r.line_len, r.crlf, r.tail, r.size "                  \
	"FROM unnest($1::bytea[], $2::integer[], $3::bytea[], $4::text[], $5::integer[], "         \
	"  $6::boolean[], $7::bytea[], $8::bigint[]) AS r(msg, seq, blob, enc, line_len, crlf, tail, size) " \
	"JOIN message m ON m.sha256 = r.msg "                                                      \
	"JOIN message_splice s ON s.message_id = m.id AND s.seq = r.seq AND s.blob_sha256 = r.blob " \
	"ON CONFLICT (message_id, seq) DO NOTHING"

typedef struct {
	GString *param[B_N]; /* PostgreSQL array literals, text format */
	guint n;             /* messages added */
	GString *recipe[R_N];
	guint n_recipes;
} batch_params;

/* Where a batch's result rows go: results[pos - 1]. */
typedef struct {
	mv_store_result *results;
	guint n;
} batch_results;

static void batch_init(batch_params *b)
{
	for (int i = 0; i < B_N; i++) {
		b->param[i] = g_string_sized_new(i == B_DOC || i == B_ZTEXT || i == B_TSV ? 65536 : 256);
		array_begin(b->param[i]);
	}
	b->n = 0;
	for (int i = 0; i < R_N; i++) {
		b->recipe[i] = g_string_sized_new(256);
		array_begin(b->recipe[i]);
	}
	b->n_recipes = 0;
}

static void batch_free(batch_params *b)
{
	for (int i = 0; i < B_N; i++)
		g_string_free(b->param[i], TRUE);
	for (int i = 0; i < R_N; i++)
		g_string_free(b->recipe[i], TRUE);
}

/* The recipe of msg's splice number seq (1-based, as mv_ingest_batch
 * numbers them), stored by its decoded content. */
static void add_recipe(batch_params *b, const mv_message *msg, guint seq, const mv_part *p)
{
	const mv_recipe *r = p->recipe;
	array_sha(b->recipe[R_MSG], msg->sha256);
	mv_db_array_int(b->recipe[R_SEQ], seq);
	array_sha(b->recipe[R_BLOB], p->blob_sha256);
	mv_db_array_text(b->recipe[R_ENC], r->encoding == MV_RECIPE_BASE64 ? "base64" : "quoted-printable");
	mv_db_array_int(b->recipe[R_LINE], r->line_len);
	mv_db_array_text(b->recipe[R_CRLF], r->crlf ? "t" : "f");
	array_bytes(b->recipe[R_TAIL], r->tail, r->tail_len);
	mv_db_array_int(b->recipe[R_SIZE], (gint64)p->raw_len);
	b->n_recipes++;
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
	guint seq = 0;
	mv_status st = MV_OK;
	for (guint i = 0; i < msg->parts->len && st == MV_OK; i++) {
		const mv_part *p = msg->parts->pdata[i];
		if (!p->spliced)
			continue;
		seq++;
		g_byte_array_append(skel, raw + at, (guint)(p->raw_offset - at));
		add_pos(b, B_SPLICE_MSG, pos);
		mv_db_array_int(b->param[B_SPLICE_OFF], skel->len);
		array_sha(b->param[B_SPLICE_BLOB], p->blob_sha256);
		if (p->recipe != NULL && p->decoded != NULL) {
			/* Stored by its decoded content, shared however it was
			 * encoded (mv_message_parse checked the recipe). */
			gsize dlen = 0;
			const guint8 *d = g_bytes_get_data(p->decoded, &dlen);
			st = mv_blobstore_put(blobs, p->blob_sha256, d != NULL ? d : (const guint8 *)"", dlen,
			                      error_r);
			add_recipe(b, msg, seq, p);
		} else {
			st = mv_blobstore_put(blobs, p->blob_sha256, raw + p->raw_offset, p->raw_len, error_r);
		}
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
	/* The vector when a parse thread computed it (the text is then not
	 * sent: the database would only index it), else the text. */
	add_text(b, B_DOC, msg->tsv != NULL ? NULL : msg->text->str);
	add_text(b, B_TSV, msg->tsv);
	add_text(b, B_LANG, msg->lang);
	/* The search text is stored only encoded (compressed, sealed when the
	 * archive is encrypted); the database indexes the text of B_DOC and
	 * keeps none of it.  The attachment texts too (mv_store_part_texts_send
	 * sends them after this batch, in the same transaction). */
	GBytes *ztext = NULL;
	st = mv_blobstore_pg_text_encode(blobs, msg->sha256, NULL, msg->text->str, msg->text->len,
	                                 &ztext, error_r);
	if (st != MV_OK)
		return st;
	array_gbytes(b->param[B_ZTEXT], ztext);
	g_bytes_unref(ztext);
	for (guint k = 0; msg->part_texts != NULL && k < msg->part_texts->len && st == MV_OK; k++) {
		mv_part_text *t = msg->part_texts->pdata[k];
		g_clear_pointer(&t->ztext, g_bytes_unref);
		st = mv_blobstore_pg_text_encode(blobs, msg->sha256, t->path, t->doc, strlen(t->doc),
		                                 &t->ztext, error_r);
	}
	if (st != MV_OK)
		return st;

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
	add_clean(b, B_CLIENT, arr->client_addr);
	add_clean(b, B_HELO, arr->helo);
	add_clean(b, B_TLS, arr->tls);
	add_clean(b, B_PROTO, arr->protocol);
	add_clean(b, B_IMAP_MAILBOX, arr->imap ? arr->imap_mailbox : NULL);
	if (arr->imap) {
		mv_db_array_int(b->param[B_IMAP_UIDVALIDITY], (gint64)MIN(arr->imap_uidvalidity, G_MAXINT64));
		mv_db_array_int(b->param[B_IMAP_UID], (gint64)MIN(arr->imap_uid, G_MAXINT64));
	} else {
		add_text(b, B_IMAP_UIDVALIDITY, NULL);
		add_text(b, B_IMAP_UID, NULL);
	}
	add_time(b, B_IMAP_INTERNALDATE, arr->imap, arr->imap_internaldate);
	array_sha(b->param[B_JREPORT], arr->journal_report);
	array_sha(b->param[B_JORIGINAL], arr->journal_original);
	add_clean(b, B_JPROBLEM, arr->journal_problem);
	array_sha(b->param[B_SRC_SHA], arr->source_sha256);
	add_clean(b, B_FOLDER, arr->folder_path);
	add_clean(b, B_ITEM, arr->item_id);
	array_bytes(b->param[B_ENTRY], arr->entry_id, MIN(arr->entry_id_len, 1024));
	add_text(b, B_RECON, arr->reconstructed ? "t" : "f");
	for (const char *const *r = arr->envelope_to; r != NULL && *r != NULL; r++) {
		add_pos(b, B_RCPT_MSG, pos);
		add_clean(b, B_RCPT, *r);
	}
	for (const char *const *r = arr->envelope_bcc; r != NULL && *r != NULL; r++) {
		add_pos(b, B_BCC_MSG, pos);
		add_clean(b, B_BCC, *r);
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
	/* The recipes, once the splices they belong to exist (a message
	 * already archived keeps the splices and recipes it has). */
	if (st == MV_OK && b->n_recipes > 0) {
		const char *rv[R_N];
		for (int i = 0; i < R_N; i++) {
			array_end(b->recipe[i]);
			rv[i] = b->recipe[i]->str;
		}
		st = mv_db_send(db, RECIPE_SQL, R_N, rv, error_r);
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

/* The audit entry of a committed batch, written by the database
 * (mv_audit_ingest, schema/013-record-guards.sql): the SHA-256, source, id
 * and seal of every message in it, so the chain vouches for each archived
 * message and its metadata.  Its two array parameters. */
static void batch_audit_params(mv_message *const *msgs, const mv_arrival_info *arrivals, guint n,
                               GString *shas, GString *sources)
{
	g_string_assign(shas, "{");
	g_string_assign(sources, "{");
	for (guint i = 0; i < n; i++) {
		array_sha(shas, msgs[i]->sha256);
		char *clean = mv_utf8_clean(arrivals[i].source != NULL ? arrivals[i].source : "unknown", -1);
		mv_db_array_text(sources, clean);
		g_free(clean);
	}
	array_end(shas);
	array_end(sources);
}

static void rollback(mv_db *db, mv_blobstore *blobs)
{
	PQclear(PQexec(mv_db_conn(db), "ROLLBACK"));
	mv_blobstore_reset(blobs);
}

mv_status mv_store_commit(mv_db *db, mv_blobstore *blobs, mv_message *const *msgs,
                          const mv_arrival_info *arrivals, guint n,
                          const mv_store_hook *const *hooks, guint n_hooks,
                          mv_store_result *results, char **error_r)
{
	for (guint i = 0; i < n; i++)
		results[i] = (mv_store_result){.status = MV_ERR_INTERNAL};
	char *err = NULL;
	batch_results br = {results, n};
	mv_status st = MV_OK;
	/* The blind index: every message brings its blind vectors; those the
	 * parse threads did not make are made here, on this connection,
	 * before the transaction (schema/032-blind-index.sql). */
	const mv_blind *blind = mv_blobstore_pg_blind(blobs);
	for (guint i = 0; blind != NULL && st == MV_OK && i < n; i++)
		st = mv_store_vectors_ensure_blind(db, blind, msgs[i], &err);
	for (guint h = 0; st == MV_OK && h < n_hooks; h++)
		if (hooks[h]->prepare != NULL)
			st = hooks[h]->prepare(db, hooks[h]->context, &err);
	/* The whole batch is one pipelined transaction: statements stream to
	 * the server while the next blobs are being compressed. */
	if (st == MV_OK)
		st = mv_blobstore_prepare(blobs, &err);
	if (st == MV_OK)
		st = mv_db_prepare(db, "mv_ingest_batch", INGEST_SQL, B_N, &err);
	gboolean began = FALSE;
	if (st == MV_OK)
		st = mv_db_pipeline_begin(db, ingest_result, NULL, &err);
	if (st == MV_OK) {
		began = TRUE;
		st = mv_db_pipeline_send(db, NULL, "BEGIN", 0, NULL, NULL, NULL, NULL, &err);
		if (st == MV_OK && n > 0)
			st = store_messages(db, blobs, msgs, arrivals, n, &br, &err);
		for (guint h = 0; st == MV_OK && h < n_hooks; h++)
			st = hooks[h]->send(db, hooks[h]->context, msgs, n, &err);
		if (st == MV_OK && n > 0) {
			GString *shas = g_string_new(NULL), *sources = g_string_new(NULL);
			batch_audit_params(msgs, arrivals, n, shas, sources);
			const char *av[] = {arrivals[0].source != NULL ? arrivals[0].source : "ingest",
			                    shas->str, sources->str};
			st = mv_db_pipeline_send(db, NULL, "SELECT mv_audit_ingest($1, $2::bytea[], $3::text[])",
			                         3, av, NULL, NULL, NULL, &err);
			g_string_free(shas, TRUE);
			g_string_free(sources, TRUE);
		}
		if (st == MV_OK)
			st = mv_db_pipeline_send(db, NULL, "COMMIT", 0, NULL, NULL, NULL, NULL, &err);
		char *end_err = NULL;
		mv_status end = mv_db_pipeline_end(db, &end_err);
		if (st == MV_OK) {
			st = end;
			err = end_err;
		} else {
			g_free(end_err);
		}
	}
	for (guint i = 0; st == MV_OK && i < n; i++)
		if (results[i].status != MV_OK)
			st = mv_fail(&err, MV_ERR_INTERNAL, "no result for message %u of the batch", i);
	if (st == MV_OK)
		return MV_OK;
	if (began)
		rollback(db, blobs);
	else
		mv_blobstore_reset(blobs);
	for (guint i = 0; i < n; i++) {
		results[i].status = st;
		results[i].error = g_strdup(err);
	}
	mv_fail(error_r, st, "%s", err);
	g_free(err);
	return st;
}

mv_status mv_store_arrived_from(mv_db *db, const char *source, const uint8_t (*shas)[MV_SHA256_LEN],
                                guint n, GHashTable *known, char **error_r)
{
	if (n == 0)
		return MV_OK;
	GString *arr = g_string_new("{");
	for (guint i = 0; i < n; i++)
		array_sha(arr, shas[i]);
	array_end(arr);
	const char *v[] = {source, arr->str};
	PGresult *r = NULL;
	mv_status st = mv_db_query(db,
	                           "SELECT DISTINCT m.sha256 FROM message m "
	                           "JOIN arrival a ON a.message_id = m.id "
	                           "WHERE a.source = $1 AND m.sha256 = ANY ($2::bytea[])",
	                           2, v, NULL, NULL, 1, &r, error_r);
	g_string_free(arr, TRUE);
	for (int i = 0; st == MV_OK && i < PQntuples(r); i++)
		if (PQgetlength(r, i, 0) == MV_SHA256_LEN)
			g_hash_table_add(known, g_bytes_new(PQgetvalue(r, i, 0), MV_SHA256_LEN));
	PQclear(r);
	return st;
}

static gboolean all_digits(const char *s, gsize max)
{
	gsize n = strlen(s);
	if (n == 0 || n > max)
		return FALSE;
	for (const char *p = s; *p; p++)
		if (!g_ascii_isdigit(*p))
			return FALSE;
	return TRUE;
}

char *mv_store_registration_canonical(const char *text)
{
	if (strlen(text) < 6 || text[4] != '-')
		return NULL;
	char year[5];
	memcpy(year, text, 4);
	year[4] = '\0';
	if (!all_digits(year, 4) || !all_digits(text + 5, 18))
		return NULL;
	const char *n = text + 5;
	while (n[0] == '0' && n[1] != '\0')
		n++;
	GString *s = g_string_new(year);
	g_string_append_c(s, '-');
	for (gsize len = strlen(n); len < 7; len++)
		g_string_append_c(s, '0');
	g_string_append(s, n);
	return g_string_free(s, FALSE);
}

mv_status mv_store_ref_parse(const char *ref, mv_ref_kind *kind_r, char **value_r, int *len_r,
                             char **error_r)
{
	*value_r = NULL;
	*len_r = 0;
	if (all_digits(ref, 18)) {
		*kind_r = MV_REF_ID;
		*value_r = g_strdup(ref);
		return MV_OK;
	}
	char *reg = mv_store_registration_canonical(ref);
	if (reg != NULL) {
		*kind_r = MV_REF_REGISTRATION;
		*value_r = reg;
		return MV_OK;
	}
	uint8_t sha[MV_SHA256_LEN];
	if (mv_sha256_from_hex(ref, sha) != 0)
		return mv_fail(error_r, MV_ERR_USAGE,
		               "'%s' is neither a message id, a SHA-256 (64 hex digits) nor a "
		               "registration number (2026-0000123)", ref);
	*kind_r = MV_REF_SHA256;
	*value_r = g_memdup2(sha, MV_SHA256_LEN);
	*len_r = MV_SHA256_LEN;
	return MV_OK;
}

gboolean mv_store_ref_plain_id(const char *ref, gint64 *id_r)
{
	mv_ref_kind kind;
	char *value = NULL;
	int len = 0;
	if (mv_store_ref_parse(ref, &kind, &value, &len, NULL) != MV_OK)
		return FALSE;
	gboolean whole = FALSE;
	if (kind == MV_REF_ID) {
		char *end = NULL;
		errno = 0;
		gint64 id = g_ascii_strtoll(value, &end, 10);
		whole = errno == 0 && end != value && *end == '\0' && id > 0;
		if (whole)
			*id_r = id;
	}
	g_free(value);
	return whole;
}

mv_status mv_store_resolve(mv_db *db, const char *ref, gint64 *id_r, char **error_r)
{
	*id_r = 0;
	mv_ref_kind kind;
	char *value = NULL;
	int len = 0;
	mv_status st = mv_store_ref_parse(ref, &kind, &value, &len, error_r);
	if (st != MV_OK)
		return st;
	static const char *const sql[] = {
		[MV_REF_ID] = "SELECT id FROM message WHERE id = $1",
		[MV_REF_SHA256] = "SELECT id FROM message WHERE sha256 = $1",
		[MV_REF_REGISTRATION] = "SELECT id FROM message WHERE registration = $1",
	};
	const char *values[] = {value};
	int lengths[] = {len}, formats[] = {kind == MV_REF_SHA256};
	PGresult *r = NULL;
	st = mv_db_query(db, sql[kind], 1, values, lengths, formats, 0, &r, error_r);
	g_free(value);
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

/* Columns of a splice's recipe in READ_CHUNK_SQL (NULL: stored encoded). */
enum { COL_R_ENC = 13, COL_R_LINE, COL_R_CRLF, COL_R_TAIL };

/* The recipe on row i, if any: *has_r FALSE when the splice is stored
 * encoded.  MV_ERR_INTEGRITY when the row holds one this build cannot
 * apply. */
static mv_status row_recipe(const PGresult *r, int i, gint64 id, mv_recipe *recipe,
                            gboolean *has_r, char **error_r)
{
	*has_r = FALSE;
	if (PQgetisnull(r, i, COL_R_ENC))
		return MV_OK;
	memset(recipe, 0, sizeof *recipe);
	const char *enc = PQgetvalue(r, i, COL_R_ENC);
	int enc_len = PQgetlength(r, i, COL_R_ENC);
	if (enc_len == 6 && memcmp(enc, "base64", 6) == 0)
		recipe->encoding = MV_RECIPE_BASE64;
	else if (enc_len == 16 && memcmp(enc, "quoted-printable", 16) == 0)
		recipe->encoding = MV_RECIPE_QP;
	gint32 line = PQgetlength(r, i, COL_R_LINE) == 4 ? mv_db_get_int4(r, i, COL_R_LINE) : -1;
	int tail = PQgetlength(r, i, COL_R_TAIL);
	if (line < 0 || PQgetlength(r, i, COL_R_CRLF) != 1 || tail < 0 || tail > MV_RECIPE_MAX_TAIL)
		recipe->encoding = MV_RECIPE_NONE;
	else {
		recipe->line_len = (guint32)line;
		recipe->crlf = PQgetvalue(r, i, COL_R_CRLF)[0] != 0;
		recipe->tail_len = (guint)tail;
		memcpy(recipe->tail, PQgetvalue(r, i, COL_R_TAIL), (size_t)tail);
	}
	if (!mv_recipe_valid(recipe))
		return mv_fail(error_r, MV_ERR_INTEGRITY, "message %" G_GINT64_FORMAT
		               " has a malformed re-encoding recipe", id);
	*has_r = TRUE;
	return MV_OK;
}

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
		mv_blob_sealing sealing;
		mv_blob_sealing_from_row(r, i, 10, &sealing);
		st = mv_blobstore_pg_decode(blobs, bsha, mv_db_get_int8(r, i, 6), mv_db_get_int4(r, i, 7),
		                            mv_db_get_int4(r, i, 8), &sealing, PQgetvalue(r, i, 9),
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
		mv_recipe recipe;
		gboolean has_recipe = FALSE;
		st = row_recipe(r, i, id, &recipe, &has_recipe, error_r);
		if (st == MV_OK && has_recipe) {
			/* Stored by its decoded content: encode it back, within the
			 * message's recorded size. */
			gsize need = mv_recipe_encoded_len(&recipe, pdata, plen);
			if (need > (gsize)MAX(size, 0) - MIN(out->len, (gsize)MAX(size, 0)))
				st = mv_fail(error_r, MV_ERR_INTEGRITY, "message %" G_GINT64_FORMAT
				             " does not match its size: the stored copy is damaged", id);
			else
				st = mv_recipe_encode(&recipe, pdata, plen, out, error_r);
		} else if (st == MV_OK) {
			g_byte_array_append(out, pdata, (guint)plen);
		}
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
	"coalesce(b.dict_id, 0)::int4, b.data, b.key_version, b.enc_nonce, b.enc_tag, "           \
	"r.encoding, r.line_len, r.crlf, r.tail "                                                 \
	"FROM message m "                                                                         \
	"CROSS JOIN LATERAL (SELECT -1 AS seq, 0::bigint AS off, m.skeleton_sha256 AS sha "        \
	"  UNION ALL SELECT s.seq, s.\"offset\", s.blob_sha256 FROM message_splice s "              \
	"  WHERE s.message_id = m.id) p "                                                         \
	"LEFT JOIN blob b ON b.sha256 = p.sha "                                                   \
	"LEFT JOIN splice_recipe r ON r.message_id = m.id AND r.seq = p.seq "                     \
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

void mv_store_damage_free(gpointer damage)
{
	mv_store_damage *d = damage;
	if (d == NULL)
		return;
	g_free(d->error);
	g_free(d);
}

typedef struct {
	PGresult *rows; /* id, sha256 hex */
	const gint64 *ids;
	GPtrArray *damaged;
	gint64 checked;
	mv_store_verify_progress_fn *progress;
	void *context;
} verify_page;

static void verify_one(void *context, guint index, GBytes *raw, mv_status status,
                       const char *error)
{
	(void)raw;
	verify_page *p = context;
	/* Gone since the page was listed: destroyed by a purge running at the
	 * same time, not damage (a missing blob is MV_ERR_INTEGRITY). */
	if (status == MV_ERR_NOT_FOUND)
		return;
	p->checked++;
	if (status != MV_OK) {
		mv_store_damage *d = g_new0(mv_store_damage, 1);
		d->id = p->ids[index];
		g_strlcpy(d->sha256, PQgetvalue(p->rows, (int)index, 1), sizeof d->sha256);
		d->error = g_strdup(error != NULL ? error : "unreadable");
		g_ptr_array_add(p->damaged, d);
	}
	if (p->progress != NULL && p->checked % 200 == 0)
		p->progress(p->context, p->checked, p->damaged->len);
}

mv_status mv_store_verify(mv_db *db, mv_blobstore *blobs, gint64 sample,
                          mv_store_verify_progress_fn *progress, void *context,
                          gint64 *checked_r, GPtrArray **damaged_r, char **error_r)
{
	verify_page page = {.damaged = g_ptr_array_new_with_free_func(mv_store_damage_free),
	                    .progress = progress, .context = context};
	gint64 after = 0;
	mv_status st = MV_OK;
	for (;;) {
		char aft[24], lim[24];
		g_snprintf(aft, sizeof aft, "%" G_GINT64_FORMAT, after);
		g_snprintf(lim, sizeof lim, "%" G_GINT64_FORMAT, sample);
		const char *v[] = {sample > 0 ? lim : aft};
		PGresult *r = NULL;
		st = mv_db_query(db,
		                 sample > 0 ? "SELECT id, encode(sha256, 'hex') FROM message "
		                              "ORDER BY random() LIMIT $1"
		                            : "SELECT id, encode(sha256, 'hex') FROM message "
		                              "WHERE id > $1 ORDER BY id LIMIT 500",
		                 1, v, NULL, NULL, 0, &r, error_r);
		if (st != MV_OK)
			break;
		int rows = PQntuples(r);
		gint64 *ids = g_new(gint64, MAX(rows, 1));
		for (int i = 0; i < rows; i++)
			ids[i] = g_ascii_strtoll(PQgetvalue(r, i, 0), NULL, 10);
		if (rows > 0)
			after = ids[rows - 1];
		page.rows = r;
		page.ids = ids;
		st = mv_store_get_raw_each(db, blobs, ids, (guint)rows, verify_one, &page, error_r);
		g_free(ids);
		PQclear(r);
		if (st != MV_OK || rows == 0 || sample > 0)
			break;
	}
	*checked_r = page.checked;
	if (st != MV_OK) {
		g_ptr_array_free(page.damaged, TRUE);
		*damaged_r = NULL;
		return st;
	}
	*damaged_r = page.damaged;
	return MV_OK;
}

/* The arrays of msg's attachment texts: paths, texts (sent to be
 * indexed, not stored), problems and their encodings (t->ztext; a text
 * without one is stored in clear, as before 029: no caller does that). */
static void part_text_arrays(const mv_message *msg, GString *paths, GString *docs,
                             GString *problems, GString *ztexts, GString *tsvs)
{
	array_begin(paths);
	array_begin(docs);
	array_begin(problems);
	array_begin(ztexts);
	array_begin(tsvs);
	for (guint k = 0; k < msg->part_texts->len; k++) {
		const mv_part_text *t = msg->part_texts->pdata[k];
		mv_db_array_text(paths, t->path);
		mv_db_array_text(docs, t->tsv != NULL && t->ztext != NULL ? NULL : t->doc);
		mv_db_array_text(problems, t->problem);
		array_gbytes(ztexts, t->ztext);
		mv_db_array_text(tsvs, t->tsv);
	}
	array_end(paths);
	array_end(docs);
	array_end(problems);
	array_end(ztexts);
	array_end(tsvs);
}

/* The rows of msg's attachment texts, with their vector: tsv is the
 * client's vector as text, or NULL for the server to compute it.  The blind
 * index (schema/032) takes only the client's, refused unless blind. */
#define PART_TEXT_VALUES_WITH(tsv)                                                        \
	"p.path, CASE WHEN p.z IS NULL THEN p.doc END, p.z, p.problem, " tsv " "              \
	"FROM unnest($3::text[], $4::text[], $5::text[], $6::bytea[], $7::text[]) "           \
	"AS p(path, doc, problem, z, tsv)"
#define PART_TEXT_VALUES                                                                  \
	PART_TEXT_VALUES_WITH("coalesce(p.tsv::tsvector, mv_search_vector(p.doc, NULL))")
#define PART_TEXT_VALUES_BLIND PART_TEXT_VALUES_WITH("mv_blind_tsv(p.tsv)")

#define PART_TEXTS_SQL(values)                                                            \
	"WITH m AS (SELECT id FROM message WHERE sha256 = $1::bytea), "                       \
	"x AS (INSERT INTO text_extraction (message_id, version) SELECT id, $2::integer FROM m " \
	"  ON CONFLICT (message_id) DO NOTHING RETURNING message_id) "                        \
	"INSERT INTO part_text (message_id, path, doc, ztext, problem, tsv) "                 \
	"SELECT x.message_id, " values " CROSS JOIN x"
static const char part_texts_sql[] = PART_TEXTS_SQL(PART_TEXT_VALUES);
static const char part_texts_sql_blind[] = PART_TEXTS_SQL(PART_TEXT_VALUES_BLIND);
#define PART_TEXTS_STATEMENT "mv_part_texts"
#define PART_TEXTS_STATEMENT_BLIND "mv_part_texts_blind"
#define PART_TEXTS_PARAMS 7

mv_status mv_store_part_texts_prepare(mv_db *db, char **error_r)
{
	mv_status st = mv_db_prepare(db, PART_TEXTS_STATEMENT, part_texts_sql, PART_TEXTS_PARAMS,
	                             error_r);
	if (st == MV_OK)
		st = mv_db_prepare(db, PART_TEXTS_STATEMENT_BLIND, part_texts_sql_blind,
		                   PART_TEXTS_PARAMS, error_r);
	return st;
}

mv_status mv_store_part_texts_send(mv_db *db, mv_message *const *msgs, guint n, int version,
                                   char **error_r)
{
	char ver[16];
	g_snprintf(ver, sizeof ver, "%d", version);
	mv_status st = MV_OK;
	for (guint i = 0; i < n && st == MV_OK; i++) {
		const mv_message *msg = msgs[i];
		char hex[MV_SHA256_HEX_LEN + 1];
		mv_sha256_to_hex(msg->sha256, hex);
		char *sha = g_strdup_printf("\\x%s", hex);
		GString *paths = g_string_new(NULL), *docs = g_string_new(NULL),
		        *problems = g_string_new(NULL), *ztexts = g_string_new(NULL),
		        *tsvs = g_string_new(NULL);
		part_text_arrays(msg, paths, docs, problems, ztexts, tsvs);
		const char *v[] = {sha, ver, paths->str, docs->str, problems->str, ztexts->str, tsvs->str};
		G_STATIC_ASSERT(G_N_ELEMENTS(v) == PART_TEXTS_PARAMS);
		st = msg->tsv_blind ? mv_db_send_prepared(db, PART_TEXTS_STATEMENT_BLIND,
		                                          part_texts_sql_blind, PART_TEXTS_PARAMS, v,
		                                          error_r)
		                    : mv_db_send_prepared(db, PART_TEXTS_STATEMENT, part_texts_sql,
		                                          PART_TEXTS_PARAMS, v, error_r);
		g_free(sha);
		g_string_free(paths, TRUE);
		g_string_free(docs, TRUE);
		g_string_free(problems, TRUE);
		g_string_free(ztexts, TRUE);
		g_string_free(tsvs, TRUE);
	}
	return st;
}

mv_status mv_store_part_texts_replace(mv_db *db, mv_blobstore *blobs, gint64 id,
                                      mv_message *msg, int version, char **error_r)
{
	mv_status st = MV_OK;
	const mv_blind *blind = mv_blobstore_pg_blind(blobs);
	if (blind != NULL)
		st = mv_store_vectors_ensure_blind(db, blind, msg, error_r);
	if (st != MV_OK)
		return st;
	for (guint k = 0; k < msg->part_texts->len && st == MV_OK; k++) {
		mv_part_text *t = msg->part_texts->pdata[k];
		g_clear_pointer(&t->ztext, g_bytes_unref);
		st = mv_blobstore_pg_text_encode(blobs, msg->sha256, t->path, t->doc, strlen(t->doc),
		                                 &t->ztext, error_r);
	}
	if (st != MV_OK)
		return st;
	char idtext[24], ver[16];
	g_snprintf(idtext, sizeof idtext, "%" G_GINT64_FORMAT, id);
	g_snprintf(ver, sizeof ver, "%d", version);
	const char *v1[] = {idtext};
	PGresult *r = NULL;
	st = mv_db_query(db, "DELETE FROM part_text WHERE message_id = $1::bigint", 1, v1, NULL, NULL,
	                 0, &r, error_r);
	PQclear(r);
	r = NULL;
	if (st != MV_OK)
		return st;
	GString *paths = g_string_new(NULL), *docs = g_string_new(NULL), *problems = g_string_new(NULL),
	        *ztexts = g_string_new(NULL), *tsvs = g_string_new(NULL);
	part_text_arrays(msg, paths, docs, problems, ztexts, tsvs);
	const char *v2[] = {idtext, ver, paths->str, docs->str, problems->str, ztexts->str, tsvs->str};
	st = mv_db_query(db,
	                 msg->tsv_blind
	                     ? "WITH x AS (INSERT INTO text_extraction (message_id, version) "
	                       "  VALUES ($1::bigint, $2::integer) ON CONFLICT (message_id) DO UPDATE "
	                       "  SET version = EXCLUDED.version, extracted_at = now()) "
	                       "INSERT INTO part_text (message_id, path, doc, ztext, problem, tsv) "
	                       "SELECT $1::bigint, " PART_TEXT_VALUES_BLIND
	                     : "WITH x AS (INSERT INTO text_extraction (message_id, version) "
	                       "  VALUES ($1::bigint, $2::integer) ON CONFLICT (message_id) DO UPDATE "
	                       "  SET version = EXCLUDED.version, extracted_at = now()) "
	                       "INSERT INTO part_text (message_id, path, doc, ztext, problem, tsv) "
	                       "SELECT $1::bigint, " PART_TEXT_VALUES,
	                 G_N_ELEMENTS(v2), v2, NULL, NULL, 0, &r, error_r);
	PQclear(r);
	g_string_free(paths, TRUE);
	g_string_free(docs, TRUE);
	g_string_free(problems, TRUE);
	g_string_free(ztexts, TRUE);
	g_string_free(tsvs, TRUE);
	return st;
}

mv_status mv_store_vectors(mv_db *db, mv_message *msg, char **error_r)
{
	GString *docs = g_string_new("{");
	guint n = msg->part_texts != NULL ? msg->part_texts->len : 0;
	for (guint k = 0; k < n; k++)
		mv_db_array_text(docs, ((const mv_part_text *)msg->part_texts->pdata[k])->doc);
	g_string_append_c(docs, '}');
	const char *v[] = {msg->text->str, msg->lang, docs->str};
	PGresult *r = NULL;
	mv_status st = mv_db_query(db, "SELECT 0, mv_search_vector($1::text, $2::text)::text "
	                               "UNION ALL SELECT u.k::integer, mv_search_vector(u.d, NULL)::text "
	                               "FROM unnest($3::text[]) WITH ORDINALITY AS u(d, k)",
	                           3, v, NULL, NULL, 0, &r, error_r);
	g_string_free(docs, TRUE);
	if (st != MV_OK)
		return st;
	for (int i = 0; i < PQntuples(r); i++) {
		gint64 k = g_ascii_strtoll(PQgetvalue(r, i, 0), NULL, 10);
		char *tsv = PQgetisnull(r, i, 1) ? NULL : g_strdup(PQgetvalue(r, i, 1));
		if (k == 0) {
			g_free(msg->tsv);
			msg->tsv = tsv;
		} else if (k >= 1 && k <= (gint64)n) {
			mv_part_text *t = msg->part_texts->pdata[k - 1];
			g_free(t->tsv);
			t->tsv = tsv;
		} else {
			g_free(tsv);
		}
	}
	PQclear(r);
	return MV_OK;
}

mv_status mv_store_vectors_blind(const mv_blind *blind, mv_message *msg, char **error_r)
{
	if (msg->tsv_blind)
		return MV_OK;
	guint n = msg->part_texts != NULL ? msg->part_texts->len : 0;
	if (msg->tsv == NULL)
		return mv_fail(error_r, MV_ERR_INTERNAL, "no search vector to make blind");
	for (guint k = 0; k < n; k++)
		if (((const mv_part_text *)msg->part_texts->pdata[k])->tsv == NULL)
			return mv_fail(error_r, MV_ERR_INTERNAL, "no attachment vector to make blind");
	/* all or nothing: the vectors are replaced once all are made */
	char **out = g_new0(char *, n + 2);
	mv_status st = mv_blind_vector(blind, msg->tsv, &out[0], error_r);
	for (guint k = 0; k < n && st == MV_OK; k++)
		st = mv_blind_vector(blind, ((const mv_part_text *)msg->part_texts->pdata[k])->tsv,
		                     &out[k + 1], error_r);
	if (st != MV_OK) {
		g_strfreev(out);
		return st;
	}
	g_free(msg->tsv);
	msg->tsv = out[0];
	for (guint k = 0; k < n; k++) {
		mv_part_text *t = msg->part_texts->pdata[k];
		g_free(t->tsv);
		t->tsv = out[k + 1];
	}
	g_free(out);
	msg->tsv_blind = TRUE;
	return MV_OK;
}

mv_status mv_store_vectors_ensure_blind(mv_db *db, const mv_blind *blind, mv_message *msg,
                                        char **error_r)
{
	if (msg->tsv_blind)
		return MV_OK;
	gboolean have = msg->tsv != NULL;
	for (guint k = 0; have && msg->part_texts != NULL && k < msg->part_texts->len; k++)
		have = ((const mv_part_text *)msg->part_texts->pdata[k])->tsv != NULL;
	mv_status st = have ? MV_OK : mv_store_vectors(db, msg, error_r);
	if (st == MV_OK)
		st = mv_store_vectors_blind(blind, msg, error_r);
	return st;
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

/* One call's texts at most (bytes): a batch stops growing past it. */
#define REINDEX_BATCH_BYTES ((gsize)32 * 1024 * 1024)

static gboolean sha_of(const PGresult *r, int row, int col, uint8_t sha[MV_SHA256_LEN])
{
	size_t n = 0;
	unsigned char *b = PQunescapeBytea((const unsigned char *)PQgetvalue(r, row, col), &n);
	gboolean ok = b != NULL && n == MV_SHA256_LEN;
	if (ok)
		memcpy(sha, b, MV_SHA256_LEN);
	PQfreemem(b);
	return ok;
}

/* The key version of a stored text's header (schema/029), in SQL. */
#define ZTEXT_KEY_VERSION(col)                                                              \
	"((get_byte(" col ", 2)::bigint << 24) | (get_byte(" col ", 3) << 16) | "             \
	"(get_byte(" col ", 4) << 8) | get_byte(" col ", 5))"

/* Attachment texts still in clear (stored before 029), or sealed with
 * another key version than the newest (stored before key init or a
 * rotation), are encoded again. */
static mv_status reencode_part_texts(mv_db *db, mv_blobstore *blobs, int batch_size,
                                     char **error_r)
{
	char lim[16];
	g_snprintf(lim, sizeof lim, "%d", batch_size);
	for (;;) {
		char kv[16];
		g_snprintf(kv, sizeof kv, "%d", mv_blobstore_pg_key_version(blobs));
		const char *sel[] = {lim, kv};
		PGresult *r = NULL;
		mv_status st = mv_db_query(db, "SELECT t.message_id, t.path, m.sha256, t.ztext, t.doc "
		                               "FROM part_text t JOIN message m ON m.id = t.message_id "
		                               "WHERE (t.ztext IS NULL AND t.doc IS NOT NULL) OR "
		                               "  (octet_length(t.ztext) >= 10 AND "
		                               ZTEXT_KEY_VERSION("t.ztext") " <> $2::bigint) "
		                               "ORDER BY t.message_id, t.path LIMIT $1::integer",
		                           2, sel, NULL, NULL, 0, &r, error_r);
		if (st != MV_OK)
			return st;
		int n = PQntuples(r);
		GString *ids = g_string_new("{"), *paths = g_string_new("{"), *docs = g_string_new("{"),
		        *z = g_string_new("{");
		gsize bytes = 0;
		int k = 0;
		for (; k < n && st == MV_OK && bytes < REINDEX_BATCH_BYTES; k++) {
			uint8_t sha[MV_SHA256_LEN];
			if (!sha_of(r, k, 2, sha)) {
				st = mv_fail(error_r, MV_ERR_DB, "unexpected result reading attachment texts");
				break;
			}
			char *doc = NULL;
			st = mv_blobstore_pg_text_read(blobs, r, k, 3, sha, PQgetvalue(r, k, 1), &doc,
			                               error_r);
			GBytes *enc = NULL;
			if (st == MV_OK)
				st = mv_blobstore_pg_text_encode(blobs, sha, PQgetvalue(r, k, 1), doc,
				                                 strlen(doc), &enc, error_r);
			if (st != MV_OK) {
				g_free(doc);
				break;
			}
			mv_db_array_text(ids, PQgetvalue(r, k, 0));
			mv_db_array_text(paths, PQgetvalue(r, k, 1));
			mv_db_array_text(docs, doc);
			array_gbytes(z, enc);
			g_bytes_unref(enc);
			bytes += strlen(doc);
			g_free(doc);
		}
		PQclear(r);
		array_end(ids);
		array_end(paths);
		array_end(docs);
		array_end(z);
		if (st == MV_OK && k > 0) {
			const char *up[] = {ids->str, paths->str, docs->str, z->str};
			st = mv_db_query(db, "SELECT mv_reindex_part_texts($1::bigint[], $2::text[], "
			                     "$3::text[], $4::bytea[])",
			                 4, up, NULL, NULL, 0, &r, error_r);
			if (st == MV_OK && g_ascii_strtoll(PQgetvalue(r, 0, 0), NULL, 10) == 0)
				st = mv_fail(error_r, MV_ERR_DB, "attachment texts were not re-encoded");
			PQclear(r);
		}
		g_string_free(ids, TRUE);
		g_string_free(paths, TRUE);
		g_string_free(docs, TRUE);
		g_string_free(z, TRUE);
		if (st != MV_OK || k == 0)
			return st;
	}
}

/* ---- the blind index (schema/032-blind-index.sql) ----
 *
 * The texts are decoded here, their clear vectors computed by the server
 * from the text as a parameter (as at ingest), made blind here, and sent
 * back with the text sealed again where it is stale (mv_reseal_texts):
 * the server stores no clear vector and no clear text. */

/* The clear vectors of docs[i] in langs[i] (NULL: the rows' own), text
 * form, in order; *vecs_r: g_strfreev. */
static mv_status clear_vectors(mv_db *db, GPtrArray *docs, GPtrArray *langs, char ***vecs_r,
                               char **error_r)
{
	GString *d = g_string_new("{"), *l = g_string_new("{");
	for (guint i = 0; i < docs->len; i++) {
		mv_db_array_text(d, docs->pdata[i]);
		mv_db_array_text(l, langs->pdata[i]);
	}
	array_end(d);
	array_end(l);
	const char *v[] = {d->str, l->str};
	PGresult *r = NULL;
	mv_status st = mv_db_query(db, "SELECT mv_search_vector(u.d, u.l)::text FROM "
	                               "unnest($1::text[], $2::text[]) WITH ORDINALITY AS u(d, l, k) "
	                               "ORDER BY u.k",
	                           2, v, NULL, NULL, 0, &r, error_r);
	g_string_free(d, TRUE);
	g_string_free(l, TRUE);
	if (st != MV_OK)
		return st;
	if (PQntuples(r) != (int)docs->len) {
		PQclear(r);
		return mv_fail(error_r, MV_ERR_DB, "unexpected result computing search vectors");
	}
	char **vecs = g_new0(char *, docs->len + 1);
	for (guint i = 0; i < docs->len; i++)
		vecs[i] = g_strdup(PQgetvalue(r, (int)i, 0));
	PQclear(r);
	*vecs_r = vecs;
	return MV_OK;
}

/* Message texts (then attachment texts): with stale_only (key rotate, key
 * init) those sealed with another key version than the newest, in clear,
 * or whose vector is not blind; else (index --rebuild) every one.  A text
 * gets a blind vector when it has none or a clear one, or always without
 * stale_only; its sealing when stale. */
static mv_status blind_part_texts(mv_db *db, mv_blobstore *blobs, const mv_blind *blind,
                                  int batch_size, gboolean stale_only, char **error_r)
{
	char lim[16];
	g_snprintf(lim, sizeof lim, "%d", batch_size);
	char after_id[24] = "0";
	char *after_path = g_strdup("");
	mv_status st = MV_OK;
	for (;;) {
		char kv[16];
		g_snprintf(kv, sizeof kv, "%d", mv_blobstore_pg_key_version(blobs));
		const char *sel[] = {lim, kv, stale_only ? "t" : "f", after_id, after_path};
		PGresult *r = NULL;
		st = mv_db_query(db, "SELECT t.message_id, t.path, m.sha256, t.ztext, t.doc, t.lang, "
		                     "  (t.ztext IS NULL OR octet_length(t.ztext) < 10 OR "
		                     ZTEXT_KEY_VERSION("t.ztext") " <> $2::bigint), "
		                     "  (NOT $3::boolean OR t.tsv IS NULL OR NOT mv_tsv_blind(t.tsv)) "
		                     "FROM part_text t JOIN message m ON m.id = t.message_id "
		                     "WHERE (t.message_id, t.path) > ($4::bigint, $5::text) "
		                     "  AND (t.ztext IS NOT NULL OR t.doc IS NOT NULL) "
		                     "  AND (NOT $3::boolean OR t.ztext IS NULL OR "
		                     "       octet_length(t.ztext) < 10 OR "
		                     ZTEXT_KEY_VERSION("t.ztext") " <> $2::bigint OR "
		                     "       t.tsv IS NULL OR NOT mv_tsv_blind(t.tsv)) "
		                     "ORDER BY t.message_id, t.path LIMIT $1::integer",
		                 5, sel, NULL, NULL, 0, &r, error_r);
		if (st != MV_OK)
			break;
		int n = PQntuples(r);
		if (n == 0) {
			PQclear(r);
			break;
		}
		GString *ids = g_string_new("{"), *paths = g_string_new("{"), *z = g_string_new("{"),
		        *tsvs = g_string_new("{");
		GPtrArray *docs = g_ptr_array_new_with_free_func(g_free), *langs = g_ptr_array_new();
		GArray *rows = g_array_new(FALSE, FALSE, sizeof(int));
		gsize bytes = 0;
		int k = 0;
		for (; k < n && st == MV_OK && bytes < REINDEX_BATCH_BYTES; k++) {
			uint8_t sha[MV_SHA256_LEN];
			if (!sha_of(r, k, 2, sha)) {
				st = mv_fail(error_r, MV_ERR_DB, "unexpected result reading attachment texts");
				break;
			}
			char *doc = NULL;
			st = mv_blobstore_pg_text_read(blobs, r, k, 3, sha, PQgetvalue(r, k, 1), &doc,
			                               error_r);
			GBytes *enc = NULL;
			if (st == MV_OK && strcmp(PQgetvalue(r, k, 6), "t") == 0)
				st = mv_blobstore_pg_text_encode(blobs, sha, PQgetvalue(r, k, 1), doc,
				                                 strlen(doc), &enc, error_r);
			if (st != MV_OK) {
				g_free(doc);
				break;
			}
			mv_db_array_text(ids, PQgetvalue(r, k, 0));
			mv_db_array_text(paths, PQgetvalue(r, k, 1));
			array_gbytes(z, enc);
			if (enc != NULL)
				g_bytes_unref(enc);
			bytes += strlen(doc);
			if (strcmp(PQgetvalue(r, k, 7), "t") == 0) {
				g_ptr_array_add(docs, doc);
				g_ptr_array_add(langs, PQgetisnull(r, k, 5) ? NULL : PQgetvalue(r, k, 5));
				g_array_append_val(rows, k);
			} else {
				g_free(doc);
			}
		}
		char **vecs = NULL;
		if (st == MV_OK && docs->len > 0)
			st = clear_vectors(db, docs, langs, &vecs, error_r);
		for (int i = 0, j = 0; st == MV_OK && i < k; i++) {
			char *b = NULL;
			if (j < (int)rows->len && g_array_index(rows, int, j) == i) {
				st = mv_blind_vector(blind, vecs[j], &b, error_r);
				j++;
			}
			mv_db_array_text(tsvs, b);
			g_free(b);
		}
		g_strfreev(vecs);
		if (k > 0) {
			g_snprintf(after_id, sizeof after_id, "%s", PQgetvalue(r, k - 1, 0));
			g_free(after_path);
			after_path = g_strdup(PQgetvalue(r, k - 1, 1));
		}
		g_ptr_array_free(langs, TRUE);
		PQclear(r);
		g_ptr_array_free(docs, TRUE);
		g_array_free(rows, TRUE);
		array_end(ids);
		array_end(paths);
		array_end(z);
		array_end(tsvs);
		if (st == MV_OK && k > 0) {
			const char *up[] = {ids->str, paths->str, z->str, tsvs->str};
			st = mv_db_query(db, "SELECT mv_reseal_part_texts($1::bigint[], $2::text[], "
			                     "$3::bytea[], $4::text[])",
			                 4, up, NULL, NULL, 0, &r, error_r);
			PQclear(r);
		}
		g_string_free(ids, TRUE);
		g_string_free(paths, TRUE);
		g_string_free(z, TRUE);
		g_string_free(tsvs, TRUE);
		if (st != MV_OK || k == 0)
			break;
	}
	g_free(after_path);
	return st;
}

static mv_status blind_texts(mv_db *db, mv_blobstore *blobs, const mv_blind *blind,
                             int batch_size, gboolean stale_only, gint64 *done_r, char **error_r)
{
	*done_r = 0;
	batch_size = CLAMP(batch_size, 1, 10000);
	gint64 after = 0;
	char lim[16];
	g_snprintf(lim, sizeof lim, "%d", batch_size);
	for (;;) {
		char from[24], kv[16];
		g_snprintf(from, sizeof from, "%" G_GINT64_FORMAT, after);
		g_snprintf(kv, sizeof kv, "%d", mv_blobstore_pg_key_version(blobs));
		const char *sel[] = {from, lim, kv, stale_only ? "t" : "f"};
		PGresult *r = NULL;
		mv_status st = mv_db_query(db, "SELECT t.message_id, t.lang, m.sha256, t.ztext, t.doc, "
		                               "  (t.ztext IS NULL OR octet_length(t.ztext) < 10 OR "
		                               ZTEXT_KEY_VERSION("t.ztext") " <> $3::bigint), "
		                               "  (NOT $4::boolean OR t.tsv IS NULL OR "
		                               "   NOT mv_tsv_blind(t.tsv)) "
		                               "FROM message_text t JOIN message m ON m.id = t.message_id "
		                               "WHERE t.message_id > $1::bigint AND (NOT $4::boolean OR "
		                               "  t.ztext IS NULL OR octet_length(t.ztext) < 10 OR "
		                               ZTEXT_KEY_VERSION("t.ztext") " <> $3::bigint OR "
		                               "  t.tsv IS NULL OR NOT mv_tsv_blind(t.tsv)) "
		                               "ORDER BY t.message_id LIMIT $2::integer",
		                           4, sel, NULL, NULL, 0, &r, error_r);
		if (st != MV_OK)
			return st;
		int n = PQntuples(r);
		if (n == 0) {
			PQclear(r);
			return blind_part_texts(db, blobs, blind, batch_size, stale_only, error_r);
		}
		GString *ids = g_string_new("{"), *newlangs = g_string_new("{"), *z = g_string_new("{"),
		        *tsvs = g_string_new("{");
		GPtrArray *docs = g_ptr_array_new_with_free_func(g_free), *langs = g_ptr_array_new();
		GArray *rows = g_array_new(FALSE, FALSE, sizeof(int));
		gsize bytes = 0;
		int k = 0;
		for (; k < n && bytes < REINDEX_BATCH_BYTES; k++) {
			uint8_t sha[MV_SHA256_LEN];
			if (!sha_of(r, k, 2, sha)) {
				st = mv_fail(error_r, MV_ERR_DB, "unexpected result reading search texts");
				break;
			}
			char *text = NULL;
			st = mv_blobstore_pg_text_read(blobs, r, k, 3, sha, NULL, &text, error_r);
			GBytes *enc = NULL;
			if (st == MV_OK && strcmp(PQgetvalue(r, k, 5), "t") == 0)
				st = mv_blobstore_pg_text_encode(blobs, sha, NULL, text, strlen(text), &enc,
				                                 error_r);
			if (st != MV_OK) {
				g_free(text);
				break;
			}
			mv_db_array_text(ids, PQgetvalue(r, k, 0));
			const char *lang = PQgetisnull(r, k, 1) ? NULL : PQgetvalue(r, k, 1);
			const char *detected = NULL;
			if (!stale_only && lang == NULL)
				lang = detected =
				    mv_lang_detect(text, MIN(strlen(text), (size_t)MV_LANG_MAX_BYTES));
			mv_db_array_text(newlangs, detected);
			array_gbytes(z, enc);
			if (enc != NULL)
				g_bytes_unref(enc);
			bytes += strlen(text);
			if (strcmp(PQgetvalue(r, k, 6), "t") == 0) {
				g_ptr_array_add(docs, text);
				g_ptr_array_add(langs, (gpointer)lang);
				g_array_append_val(rows, k);
			} else {
				g_free(text);
			}
		}
		char **vecs = NULL;
		if (st == MV_OK && docs->len > 0)
			st = clear_vectors(db, docs, langs, &vecs, error_r);
		for (int i = 0, j = 0; st == MV_OK && i < k; i++) {
			char *b = NULL;
			if (j < (int)rows->len && g_array_index(rows, int, j) == i) {
				st = mv_blind_vector(blind, vecs[j], &b, error_r);
				j++;
			}
			mv_db_array_text(tsvs, b);
			g_free(b);
		}
		g_strfreev(vecs);
		if (k > 0)
			after = g_ascii_strtoll(PQgetvalue(r, k - 1, 0), NULL, 10);
		g_ptr_array_free(langs, TRUE); /* (borrowed from r) */
		PQclear(r);
		g_ptr_array_free(docs, TRUE);
		g_array_free(rows, TRUE);
		array_end(ids);
		array_end(newlangs);
		array_end(z);
		array_end(tsvs);
		if (st == MV_OK) {
			const char *up[] = {ids->str, newlangs->str, z->str, tsvs->str};
			st = mv_db_query(db, "SELECT mv_reseal_texts($1::bigint[], $2::text[], $3::bytea[], "
			                     "$4::text[])",
			                 4, up, NULL, NULL, 0, &r, error_r);
		}
		g_string_free(ids, TRUE);
		g_string_free(newlangs, TRUE);
		g_string_free(z, TRUE);
		g_string_free(tsvs, TRUE);
		if (st != MV_OK)
			return st;
		*done_r += g_ascii_strtoll(PQgetvalue(r, 0, 0), NULL, 10);
		PQclear(r);
	}
}

/* The message texts (then the attachment texts) decoded and sent back to
 * mv_reindex_texts: every text (index --rebuild), or with stale_only only
 * those in clear or sealed with another key version than the newest (key
 * rotate: the language is not detected again). */
static mv_status reindex_texts(mv_db *db, mv_blobstore *blobs, int batch_size,
                               gboolean stale_only, gint64 *done_r, char **error_r)
{
	const mv_blind *blind = mv_blobstore_pg_blind(blobs);
	if (blind != NULL)
		return blind_texts(db, blobs, blind, batch_size, stale_only, done_r, error_r);
	*done_r = 0;
	batch_size = CLAMP(batch_size, 1, 10000);
	gint64 after = 0;
	char lim[16];
	g_snprintf(lim, sizeof lim, "%d", batch_size);
	for (;;) {
		char from[24];
		g_snprintf(from, sizeof from, "%" G_GINT64_FORMAT, after);
		char kv[16];
		g_snprintf(kv, sizeof kv, "%d", mv_blobstore_pg_key_version(blobs));
		const char *sel[] = {from, lim, stale_only ? kv : NULL};
		PGresult *r = NULL;
		mv_status st = mv_db_query(db, "SELECT t.message_id, t.lang IS NULL, m.sha256, t.ztext, "
		                               "t.doc, CASE WHEN octet_length(t.ztext) >= 10 THEN "
		                               ZTEXT_KEY_VERSION("t.ztext") " END FROM message_text t "
		                               "JOIN message m ON m.id = t.message_id "
		                               "WHERE t.message_id > $1::bigint AND ($3::bigint IS NULL "
		                               "  OR t.ztext IS NULL OR octet_length(t.ztext) < 10 OR "
		                               ZTEXT_KEY_VERSION("t.ztext") " <> $3::bigint) "
		                               "ORDER BY t.message_id LIMIT $2::integer",
		                           3, sel, NULL, NULL, 0, &r, error_r);
		if (st != MV_OK)
			return st;
		int n = PQntuples(r);
		if (n == 0) {
			PQclear(r);
			return reencode_part_texts(db, blobs, batch_size, error_r);
		}
		GString *ids = g_string_new("{"), *langs = g_string_new("{"), *docs = g_string_new("{"),
		        *z = g_string_new("{");
		gsize bytes = 0;
		int k = 0;
		for (; k < n && bytes < REINDEX_BATCH_BYTES; k++) {
			uint8_t sha[MV_SHA256_LEN];
			if (!sha_of(r, k, 2, sha)) {
				st = mv_fail(error_r, MV_ERR_DB, "unexpected result reading search texts");
				break;
			}
			char *text = NULL;
			st = mv_blobstore_pg_text_read(blobs, r, k, 3, sha, NULL, &text, error_r);
			GBytes *enc = NULL;
			/* a text in clear, or sealed with another key version than
			 * the newest: its encoding, which replaces it */
			if (st == MV_OK && (PQgetisnull(r, k, 5) ||
			                    g_ascii_strtoll(PQgetvalue(r, k, 5), NULL, 10) !=
			                        mv_blobstore_pg_key_version(blobs)))
				st = mv_blobstore_pg_text_encode(blobs, sha, NULL, text, strlen(text), &enc,
				                                 error_r);
			if (st != MV_OK) {
				g_free(text);
				break;
			}
			mv_db_array_text(ids, PQgetvalue(r, k, 0));
			const char *lang = NULL;
			if (!stale_only && strcmp(PQgetvalue(r, k, 1), "t") == 0)
				lang = mv_lang_detect(text, MIN(strlen(text), (size_t)MV_LANG_MAX_BYTES));
			mv_db_array_text(langs, lang);
			mv_db_array_text(docs, text);
			array_gbytes(z, enc);
			bytes += strlen(text);
			g_free(text);
			if (enc != NULL)
				g_bytes_unref(enc);
		}
		if (k > 0)
			after = g_ascii_strtoll(PQgetvalue(r, k - 1, 0), NULL, 10);
		PQclear(r);
		array_end(ids);
		array_end(langs);
		array_end(docs);
		array_end(z);
		if (st == MV_OK) {
			const char *up[] = {ids->str, langs->str, docs->str, z->str};
			st = mv_db_query(db, "SELECT mv_reindex_texts($1::bigint[], $2::text[], $3::text[], "
			                     "$4::bytea[])",
			                 4, up, NULL, NULL, 0, &r, error_r);
		}
		g_string_free(ids, TRUE);
		g_string_free(langs, TRUE);
		g_string_free(docs, TRUE);
		g_string_free(z, TRUE);
		if (st != MV_OK)
			return st;
		*done_r += g_ascii_strtoll(PQgetvalue(r, 0, 0), NULL, 10);
		PQclear(r);
	}
}

mv_status mv_store_reindex(mv_db *db, mv_blobstore *blobs, int batch_size, gint64 *done_r,
                           char **error_r)
{
	return reindex_texts(db, blobs, batch_size, FALSE, done_r, error_r);
}

mv_status mv_store_reseal_texts(mv_db *db, mv_blobstore *blobs, int batch_size, gint64 *done_r,
                                char **error_r)
{
	return reindex_texts(db, blobs, batch_size, TRUE, done_r, error_r);
}

/* mv-audit: appending to and verifying the audit chain. */
#include "mv-audit.h"

#include <stdlib.h>
#include <string.h>

#include "mv-hash.h"

void mv_audit_entry_free(gpointer p)
{
	mv_audit_entry *e = p;
	if (e == NULL)
		return;
	g_free(e->at);
	g_free(e->actor);
	g_free(e->action);
	g_free(e->subject);
	g_free(e->details);
	g_free(e->hash);
	g_free(e->prev_hash);
	g_free(e);
}

const char *mv_audit_actor(void)
{
	const char *a = g_getenv("MAILVAULT_ACTOR");
	if (a != NULL && *a != '\0')
		return a;
	a = g_getenv("SUDO_USER");
	if (a != NULL && *a != '\0')
		return a;
	return g_get_user_name();
}

static int cmp_id(gconstpointer a, gconstpointer b)
{
	gint64 x = *(const gint64 *)a, y = *(const gint64 *)b;
	return x < y ? -1 : x > y;
}

char *mv_audit_read_details(const gint64 *ids, guint n)
{
	gint64 *sorted = g_memdup2(ids, (gsize)MAX(n, 1) * sizeof *ids);
	qsort(sorted, n, sizeof *sorted, cmp_id);
	GString *s = g_string_new(NULL);
	g_string_append_printf(s, "results=%u\n", n);
	if (n <= MV_AUDIT_READ_IDS) {
		g_string_append(s, "ids=");
		for (guint i = 0; i < n; i++)
			g_string_append_printf(s, "%s%" G_GINT64_FORMAT, i > 0 ? "," : "", sorted[i]);
	} else {
		GChecksum *c = g_checksum_new(G_CHECKSUM_SHA256);
		for (guint i = 0; i < n; i++) {
			char line[32];
			int len = g_snprintf(line, sizeof line, "%" G_GINT64_FORMAT "\n", sorted[i]);
			g_checksum_update(c, (const guchar *)line, len);
		}
		g_string_append_printf(s, "ids-sha256=%s", g_checksum_get_string(c));
		g_checksum_free(c);
	}
	g_free(sorted);
	return g_string_free(s, FALSE);
}

gboolean mv_audit_entry_by(const mv_audit_entry *e, const char *name)
{
	if (e->actor == NULL || name == NULL || *name == '\0')
		return FALSE;
	if (strcmp(e->actor, name) == 0)
		return TRUE;
	const char *mark = strstr(e->actor, " (database role ");
	if (mark == NULL)
		return FALSE;
	size_t n = strlen(name);
	if ((size_t)(mark - e->actor) == n && strncmp(e->actor, name, n) == 0)
		return TRUE;
	const char *role = mark + strlen(" (database role ");
	return strncmp(role, name, n) == 0 && strcmp(role + n, ")") == 0;
}

mv_status mv_audit_append(mv_db *db, const char *actor, const char *action, const char *subject,
                          const char *details, gint64 *seq_r, char **error_r)
{
	const char *v[] = {actor, action, subject != NULL ? subject : "", details != NULL ? details : ""};
	PGresult *r = NULL;
	/* On a read replica the entry is written on the primary. */
	mv_status st = mv_db_query(mv_db_writer(db), MV_AUDIT_APPEND_SQL, 4, v, NULL, NULL, 0, &r,
	                           error_r);
	if (st == MV_OK && seq_r != NULL)
		*seq_r = g_ascii_strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return st;
}

#define ENTRY_COLUMNS                                                                    \
	"seq, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), actor, " \
	"action, subject, details, prev_hash, hash, format"

/* The entries of a result of SELECT ENTRY_COLUMNS; r is cleared. */
static GPtrArray *entries_of(PGresult *r)
{
	GPtrArray *out = g_ptr_array_new_with_free_func(mv_audit_entry_free);
	for (int i = 0; i < PQntuples(r); i++) {
		mv_audit_entry *e = g_new0(mv_audit_entry, 1);
		e->seq = g_ascii_strtoll(PQgetvalue(r, i, 0), NULL, 10);
		e->at = g_strdup(PQgetvalue(r, i, 1));
		e->actor = g_strdup(PQgetvalue(r, i, 2));
		e->action = g_strdup(PQgetvalue(r, i, 3));
		e->subject = g_strdup(PQgetvalue(r, i, 4));
		e->details = g_strdup(PQgetvalue(r, i, 5));
		/* bytea as text: \x followed by hex */
		e->hash = g_strdup(PQgetvalue(r, i, 7) + 2);
		e->prev_hash = g_strdup(PQgetvalue(r, i, 6) + 2);
		e->format = (int)g_ascii_strtoll(PQgetvalue(r, i, 8), NULL, 10);
		g_ptr_array_add(out, e);
	}
	PQclear(r);
	return out;
}

mv_status mv_audit_list(mv_db *db, const char *since, GPtrArray **entries_r, char **error_r)
{
	*entries_r = NULL;
	const char *v[] = {since};
	PGresult *r = NULL;
	mv_status st = mv_db_query(db,
	                           "SELECT " ENTRY_COLUMNS " FROM audit_event "
	                           "WHERE $1::date IS NULL OR at >= $1::date ORDER BY seq",
	                           1, v, NULL, NULL, 0, &r, error_r);
	if (st != MV_OK)
		return st;
	*entries_r = entries_of(r);
	return MV_OK;
}

mv_status mv_audit_get(mv_db *db, const gint64 *seqs, guint n, GPtrArray **entries_r,
                       char **error_r)
{
	*entries_r = NULL;
	char *arr = mv_db_int_array(seqs, n);
	const char *v[] = {arr};
	PGresult *r = NULL;
	mv_status st = mv_db_query(db,
	                           "SELECT " ENTRY_COLUMNS " FROM audit_event "
	                           "WHERE seq = ANY($1::bigint[]) ORDER BY seq",
	                           1, v, NULL, NULL, 0, &r, error_r);
	g_free(arr);
	if (st != MV_OK)
		return st;
	*entries_r = entries_of(r);
	return MV_OK;
}

static void append_field(GString *s, const char *v)
{
	g_string_append_printf(s, "%zu:%s,", strlen(v), v);
}

gboolean mv_audit_entry_hash(int format, const char *seq, const char *at, const char *actor,
                             const char *action, const char *subject, const char *details,
                             const uint8_t prev[MV_SHA256_LEN], uint8_t hash_r[MV_SHA256_LEN])
{
	GString *text = g_string_new(NULL);
	if (format == 1) {
		g_string_append_printf(text, "%s\n%s\n%s\n%s\n%s\n%s", seq, at, actor, action, subject,
		                       details);
	} else if (format == 2) {
		g_string_append(text, "mailvault-audit-2:");
		const char *fields[] = {seq, at, actor, action, subject, details};
		for (gsize i = 0; i < G_N_ELEMENTS(fields); i++)
			append_field(text, fields[i]);
	} else {
		g_string_free(text, TRUE);
		return FALSE;
	}
	mv_sha256_ctx *ctx = mv_sha256_new();
	mv_sha256_update(ctx, prev, MV_SHA256_LEN);
	mv_sha256_update(ctx, text->str, text->len);
	mv_sha256_finish(&ctx, hash_r);
	g_string_free(text, TRUE);
	return TRUE;
}

mv_status mv_audit_anchor_parse(const char *text, mv_audit_anchor *anchor_r, char **error_r)
{
	const char *colon = strchr(text, ':');
	char *end = NULL;
	uint8_t sha[MV_SHA256_LEN];
	gint64 seq = colon != NULL ? g_ascii_strtoll(text, &end, 10) : 0;
	if (colon == NULL || end != colon || seq <= 0 || strlen(colon + 1) != MV_SHA256_HEX_LEN ||
	    mv_sha256_from_hex(colon + 1, sha) != 0)
		return mv_fail(error_r, MV_ERR_USAGE,
		               "anchor '%s' is not SEQ:HASH (an entry number and 64 hex digits)", text);
	anchor_r->seq = seq;
	mv_sha256_to_hex(sha, anchor_r->hash);
	return MV_OK;
}

static mv_status check_anchors(const mv_audit_anchor *anchors, guint n, gint64 seq,
                               const uint8_t hash[MV_SHA256_LEN], gint64 *bad_seq_r,
                               char **error_r)
{
	char hex[MV_SHA256_HEX_LEN + 1];
	mv_sha256_to_hex(hash, hex);
	for (guint i = 0; i < n; i++)
		if (anchors[i].seq == seq && g_ascii_strcasecmp(anchors[i].hash, hex) != 0) {
			*bad_seq_r = seq;
			return mv_fail(error_r, MV_ERR_INTEGRITY,
			               "audit entry %" G_GINT64_FORMAT " does not match the anchor recorded "
			               "for it: the trail was rewritten from there on", seq);
		}
	return MV_OK;
}

mv_status mv_audit_verify(mv_db *db, const mv_audit_anchor *anchors, guint n_anchors,
                          gint64 *checked_r, gint64 *bad_seq_r, mv_audit_anchor *head_r,
                          char **error_r)
{
	*checked_r = 0;
	*bad_seq_r = 0;
	if (head_r != NULL)
		*head_r = (mv_audit_anchor){0};
	uint8_t prev[MV_SHA256_LEN] = {0};
	gint64 expect = 1, after = 0;
	gboolean seen_v2 = FALSE;
	for (;;) {
		char aft[24];
		g_snprintf(aft, sizeof aft, "%" G_GINT64_FORMAT, after);
		const char *v[] = {aft};
		PGresult *r = NULL;
		mv_status st = mv_db_query(db,
		                           "SELECT " ENTRY_COLUMNS " FROM audit_event WHERE seq > $1 "
		                           "ORDER BY seq LIMIT 10000",
		                           1, v, NULL, NULL, 0, &r, error_r);
		if (st != MV_OK)
			return st;
		int rows = PQntuples(r);
		for (int i = 0; i < rows; i++) {
			gint64 seq = g_ascii_strtoll(PQgetvalue(r, i, 0), NULL, 10);
			after = seq;
			if (seq != expect) {
				*bad_seq_r = seq;
				PQclear(r);
				return mv_fail(error_r, MV_ERR_INTEGRITY,
				               "audit entry %" G_GINT64_FORMAT " follows %" G_GINT64_FORMAT
				               ": entries are missing or were inserted", seq, expect - 1);
			}
			uint8_t stored_prev[MV_SHA256_LEN], stored_hash[MV_SHA256_LEN];
			const char *ph = PQgetvalue(r, i, 6), *hh = PQgetvalue(r, i, 7);
			if (strlen(ph) != 2 + MV_SHA256_HEX_LEN || strlen(hh) != 2 + MV_SHA256_HEX_LEN ||
			    mv_sha256_from_hex(ph + 2, stored_prev) != 0 ||
			    mv_sha256_from_hex(hh + 2, stored_hash) != 0) {
				*bad_seq_r = seq;
				PQclear(r);
				return mv_fail(error_r, MV_ERR_INTEGRITY,
				               "audit entry %" G_GINT64_FORMAT " has a malformed hash", seq);
			}
			if (memcmp(stored_prev, prev, MV_SHA256_LEN) != 0) {
				*bad_seq_r = seq;
				PQclear(r);
				return mv_fail(error_r, MV_ERR_INTEGRITY,
				               "audit entry %" G_GINT64_FORMAT " does not follow the entry before it "
				               "(removed, inserted or reordered entries)", seq);
			}
			uint8_t computed[MV_SHA256_LEN];
			int format = (int)g_ascii_strtoll(PQgetvalue(r, i, 8), NULL, 10);
			/* Format 1 is only ever older than format 2: a format-1 entry
			 * after a format-2 one was downgraded. */
			if (format == 1 && seen_v2) {
				*bad_seq_r = seq;
				PQclear(r);
				return mv_fail(error_r, MV_ERR_INTEGRITY,
				               "audit entry %" G_GINT64_FORMAT " claims the old hash format after "
				               "newer entries: it was altered", seq);
			}
			seen_v2 = seen_v2 || format == 2;
			if (!mv_audit_entry_hash(format, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1),
			                         PQgetvalue(r, i, 2), PQgetvalue(r, i, 3), PQgetvalue(r, i, 4),
			                         PQgetvalue(r, i, 5), prev, computed) ||
			    memcmp(computed, stored_hash, MV_SHA256_LEN) != 0) {
				*bad_seq_r = seq;
				PQclear(r);
				return mv_fail(error_r, MV_ERR_INTEGRITY,
				               "audit entry %" G_GINT64_FORMAT " was altered: its content does not "
				               "match its hash", seq);
			}
			if (check_anchors(anchors, n_anchors, seq, stored_hash, bad_seq_r, error_r) != MV_OK) {
				PQclear(r);
				return MV_ERR_INTEGRITY;
			}
			memcpy(prev, stored_hash, MV_SHA256_LEN);
			expect++;
			(*checked_r)++;
		}
		PQclear(r);
		if (rows == 0)
			break;
	}
	for (guint i = 0; i < n_anchors; i++)
		if (anchors[i].seq > expect - 1) {
			*bad_seq_r = anchors[i].seq;
			return mv_fail(error_r, MV_ERR_INTEGRITY,
			               "the audit trail ends at entry %" G_GINT64_FORMAT " but an anchor was "
			               "recorded for entry %" G_GINT64_FORMAT ": entries were removed from its end",
			               expect - 1, anchors[i].seq);
		}
	if (head_r != NULL && expect > 1) {
		head_r->seq = expect - 1;
		mv_sha256_to_hex(prev, head_r->hash);
	}
	return MV_OK;
}

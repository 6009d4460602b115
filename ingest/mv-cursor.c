/* mv-cursor: the ingest_cursor table (schema/009-ingest-source.sql). */
#include "mv-cursor.h"

#include <string.h>

#include "mv-audit.h"

mv_status mv_cursor_ensure(mv_db *db, mv_cursor *c, const char *user, char **error_r)
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

mv_status mv_cursor_reset(mv_db *db, mv_cursor *c, guint64 uidvalidity, char **error_r)
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

void mv_cursor_note(mv_db *db, const char *source, const char *error)
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

mv_status mv_cursor_send_advance(mv_db *db, const char *source, guint64 uidvalidity,
                                 guint64 from_uid, guint64 to_uid, char **error_r)
{
	char vv[24], from[24], to[24];
	g_snprintf(vv, sizeof vv, "%" G_GUINT64_FORMAT, uidvalidity);
	g_snprintf(from, sizeof from, "%" G_GUINT64_FORMAT, from_uid);
	g_snprintf(to, sizeof to, "%" G_GUINT64_FORMAT, to_uid);
	const char *values[] = {source, vv, from, to};
	return mv_db_send(db, "SELECT mv_ingest_cursor_advance($1, $2, $3, $4)", 4, values, error_r);
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

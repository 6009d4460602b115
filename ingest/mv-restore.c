/* mv-restore: archive → IMAP APPEND. */
#include "mv-restore.h"

#include "mv-audit.h"
#include "mv-catalog.h"
#include "mv-query.h"
#include "mv-store.h"

void mv_restore_item_free(gpointer item)
{
	mv_restore_item *it = item;
	if (it == NULL)
		return;
	g_free(it->error);
	g_free(it);
}

static mv_status select_items(mv_db *db, const char *query, gint64 limit, GPtrArray **items_r,
                              char **error_r)
{
	mv_query_sql *q = NULL;
	mv_status st = mv_query_compile(query, 2, &q, error_r);
	if (st == MV_OK)
		st = mv_catalog_query_resolve(db, q, error_r);
	if (st != MV_OK) {
		mv_query_sql_free(&q);
		return st;
	}
	char *sql = g_strdup_printf(
		/* The internal date: the one the message had in the IMAP mailbox it
		 * was pulled from (recorded in the arrival), else its Date, else
		 * when it first arrived. */
		"SELECT m.id, encode(m.sha256, 'hex'), extract(epoch FROM coalesce("
		"(SELECT a.imap_internaldate FROM arrival a WHERE a.message_id = m.id "
		" AND a.imap_internaldate IS NOT NULL ORDER BY a.received_at, a.id LIMIT 1), m.date, "
		"(SELECT min(a.received_at) FROM arrival a WHERE a.message_id = m.id)))::bigint "
		"FROM message m WHERE %s ORDER BY m.id LIMIT $1",
		q->where);
	char lim[24];
	g_snprintf(lim, sizeof lim, "%" G_GINT64_FORMAT, limit);
	const char *lead[] = {limit > 0 ? lim : NULL};
	PGresult *r = NULL;
	st = mv_db_query_params(db, sql, lead, 1, q->params, &r, error_r);
	g_free(sql);
	mv_query_sql_free(&q);
	if (st != MV_OK)
		return st;
	GPtrArray *items = g_ptr_array_new_with_free_func(mv_restore_item_free);
	for (int i = 0; i < PQntuples(r); i++) {
		mv_restore_item *it = g_new0(mv_restore_item, 1);
		it->id = g_ascii_strtoll(PQgetvalue(r, i, 0), NULL, 10);
		g_strlcpy(it->sha256, PQgetvalue(r, i, 1), sizeof it->sha256);
		it->internal_date = g_ascii_strtoll(PQgetvalue(r, i, 2), NULL, 10);
		it->status = MV_ERR_INTERNAL;
		g_ptr_array_add(items, it);
	}
	PQclear(r);
	*items_r = items;
	return MV_OK;
}

mv_status mv_restore_query(mv_db *db, mv_blobstore *blobs, const char *query,
                           const mv_imap_options *imap_opt, const char *flags, gint64 limit,
                           GPtrArray **items_r, char **error_r)
{
	*items_r = NULL;
	char *mailbox = NULL, *display = NULL;
	mv_status st = mv_imap_parse_url(imap_opt->url, &mailbox, &display, error_r);
	if (st != MV_OK)
		return st;
	GPtrArray *items = NULL;
	st = select_items(db, query, limit, &items, error_r);
	if (st == MV_OK && items->len == 0)
		st = mv_fail(error_r, MV_ERR_NOT_FOUND, "no message matches the query");
	mv_imap *imap = NULL;
	if (st == MV_OK)
		st = mv_imap_connect(imap_opt, &imap, error_r);
	guint failed = 0;
	GString *audit = g_string_new(NULL);
	for (guint i = 0; st == MV_OK && i < items->len; i++) {
		mv_restore_item *it = items->pdata[i];
		GBytes *raw = NULL;
		char *err = NULL;
		it->status = mv_store_get_raw(db, blobs, it->id, &raw, &err);
		if (it->status == MV_OK) {
			/* 0 would mean "now" to the server; a message from before
			 * 1970 keeps its date when it is representable. */
			gint64 date = it->internal_date != 0 ? it->internal_date : 1;
			it->status = mv_imap_append(imap, mailbox, flags, date, raw, &it->uid, &err);
			g_bytes_unref(raw);
		}
		if (it->status == MV_OK) {
			g_string_append_printf(audit, "\nsha256=%s id=%" G_GINT64_FORMAT " uid=%" G_GUINT64_FORMAT,
			                       it->sha256, it->id, it->uid);
		} else {
			it->error = err;
			failed++;
			if (it->status == MV_ERR_IO) {
				/* The connection is gone: the rest cannot be restored. */
				for (guint k = i + 1; k < items->len; k++) {
					mv_restore_item *rest = items->pdata[k];
					rest->status = MV_ERR_IO;
					rest->error = g_strdup("not restored: the IMAP connection failed before it");
					failed++;
				}
				break;
			}
		}
	}
	mv_imap_close(&imap);
	if (st == MV_OK && failed < items->len) {
		char *details = g_strdup_printf("query=%s restored=%u failed=%u%s", query,
		                                items->len - failed, failed, audit->str);
		char *aerr = NULL;
		if (mv_audit_append(db, mv_audit_actor(), "restore", display, details, NULL, &aerr) != MV_OK) {
			st = mv_fail(error_r, MV_ERR_DB,
			             "messages were restored but the audit entry failed: %s", aerr);
			g_free(aerr);
		}
		g_free(details);
	}
	g_string_free(audit, TRUE);
	if (st == MV_OK && failed > 0)
		st = mv_fail(error_r, MV_ERR_PARTIAL, "%u of %u messages were not restored", failed,
		             items->len);
	if (items != NULL && (st == MV_OK || st == MV_ERR_PARTIAL || items->len > 0))
		*items_r = items;
	else if (items != NULL)
		g_ptr_array_free(items, TRUE);
	g_free(mailbox);
	g_free(display);
	return st;
}

/* mv-report: one self-contained HTML page about the archive.
 *
 * Security: hold names, case references, reasons, domains, actors and
 * class names are hostile input; every one goes through esc() (valid
 * UTF-8, then HTML-escaped) or the chart writer (libxml2).  The page has a
 * Content-Security-Policy that allows no script and no external load. */
#include "mv-report.h"

#include <string.h>

#include "mv-catalog.h"
#include "mv-chart.h"
#include "mv-traffic.h"

static void esc(GString *out, const char *s)
{
	char *valid = g_utf8_make_valid(s != NULL ? s : "", -1);
	char *e = g_markup_escape_text(valid, -1);
	g_string_append(out, e);
	g_free(e);
	g_free(valid);
}

static void human(GString *out, gint64 bytes)
{
	char *h = g_format_size_full((guint64)MAX(bytes, 0), G_FORMAT_SIZE_IEC_UNITS);
	g_string_append_printf(out, "%" G_GINT64_FORMAT " <span class=\"h\">(%s)</span>", bytes, h);
	g_free(h);
}

static const char *val(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? "" : PQgetvalue(r, row, col);
}

static gint64 ival(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? 0 : g_ascii_strtoll(PQgetvalue(r, row, col), NULL, 10);
}

/* A table from a query's result: headers, then each row's columns,
 * escaped; empty says what it means. */
static void table(GString *out, const PGresult *r, const char *const *headers, guint n, const char *empty)
{
	if (PQntuples(r) == 0) {
		g_string_append(out, "<p class=\"none\">");
		esc(out, empty);
		g_string_append(out, "</p>\n");
		return;
	}
	g_string_append(out, "<table><thead><tr>");
	for (guint i = 0; i < n; i++) {
		g_string_append(out, "<th>");
		esc(out, headers[i]);
		g_string_append(out, "</th>");
	}
	g_string_append(out, "</tr></thead><tbody>\n");
	for (int row = 0; row < PQntuples(r); row++) {
		g_string_append(out, "<tr>");
		for (guint i = 0; i < n; i++) {
			g_string_append(out, "<td>");
			esc(out, val(r, row, (int)i));
			g_string_append(out, "</td>");
		}
		g_string_append(out, "</tr>\n");
	}
	g_string_append(out, "</tbody></table>\n");
}

static void chart(GString *out, const char *title, const char *axis, GPtrArray *rows, mv_chart_kind kind)
{
	mv_chart_bar *bars = g_new0(mv_chart_bar, rows->len + 1);
	for (guint i = 0; i < rows->len; i++) {
		const mv_traffic_row *t = rows->pdata[i];
		bars[i].label = *t->key != '\0' ? t->key : "(none)";
		bars[i].value = t->messages;
	}
	char *svg = mv_chart_svg(title, axis, "messages", bars, rows->len, kind, FALSE);
	g_string_append(out, "<figure>");
	if (svg != NULL)
		g_string_append(out, svg);
	g_string_append(out, "</figure>\n");
	g_free(svg);
	g_free(bars);
}

static mv_status traffic_section(mv_db *db, const mv_report_options *o, GString *out, char **error_r)
{
	static const struct {
		mv_traffic_by by;
		const char *title;
		mv_chart_kind kind;
	} charts[] = {
		{MV_TRAFFIC_BY_MONTH, "Messages per month", MV_CHART_COLUMNS},
		{MV_TRAFFIC_BY_HOUR, "Messages per hour of the day", MV_CHART_COLUMNS},
		{MV_TRAFFIC_BY_WEEKDAY, "Messages per weekday", MV_CHART_COLUMNS},
		{MV_TRAFFIC_BY_DOMAIN, "Top domains (sent + received)", MV_CHART_ROWS},
	};
	g_string_append_printf(out, "<section id=\"traffic\"><h2>Traffic</h2>\n<p>From the traffic rollups; "
	                            "buckets in ");
	esc(out, o->tz != NULL ? o->tz : "UTC");
	g_string_append(out, " by each message's Date (docs/traffic.md).</p>\n");
	for (gsize i = 0; i < G_N_ELEMENTS(charts); i++) {
		mv_traffic_query q = {.by = charts[i].by, .tz = o->tz, .top = o->top > 0 ? o->top : 10};
		GPtrArray *rows = NULL;
		mv_status st = mv_traffic_run(db, &q, &rows, error_r);
		if (st != MV_OK)
			return st;
		/* A month chart of the last 36 months at most. */
		if (charts[i].by == MV_TRAFFIC_BY_MONTH && rows->len > 36)
			g_ptr_array_remove_range(rows, 0, rows->len - 36);
		char *title = g_strdup_printf("%s (%s)", charts[i].title, o->tz != NULL ? o->tz : "UTC");
		chart(out, title, mv_traffic_by_name(charts[i].by), rows, charts[i].kind);
		g_free(title);
		g_ptr_array_unref(rows);
	}
	g_string_append(out, "</section>\n");
	return MV_OK;
}

static const char style[] =
	"body{font-family:sans-serif;margin:2em;color:#222;max-width:1100px}"
	"h1{font-size:1.6em}h2{font-size:1.2em;border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}"
	"table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ccc;padding:.25em .6em;"
	"text-align:left;vertical-align:top}th{background:#f0f0f0}td{font-variant-numeric:tabular-nums}"
	".h{color:#666}.none{color:#666;font-style:italic}.bad{color:#a00;font-weight:bold}"
	".good{color:#070;font-weight:bold}figure{margin:1em 0}svg{max-width:100%;height:auto}";

mv_status mv_report_html(mv_db *db, const mv_report_options *o, GString *out, char **error_r)
{
	mv_report_options defaults = {0};
	if (o == NULL)
		o = &defaults;
	mv_storage_stats s;
	mv_status st = mv_traffic_storage(db, &s, error_r);
	if (st != MV_OK)
		return st;
	PGresult *r = NULL;
	st = mv_db_query(db, "SELECT " MV_SQL_ISO_UTC("now()") ", current_database()", 0, NULL, NULL, NULL, 0,
	                 &r, error_r);
	if (st != MV_OK)
		return st;
	g_string_append(out, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
	                     "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
	                     "style-src 'unsafe-inline'\">\n"
	                     "<meta name=\"viewport\" content=\"width=device-width\">\n"
	                     "<title>mailvault archive report</title>\n<style>");
	g_string_append(out, style);
	g_string_append(out, "</style></head><body>\n<h1>mailvault archive report</h1>\n<p>Generated ");
	esc(out, val(r, 0, 0));
	g_string_append(out, " from database ");
	esc(out, val(r, 0, 1));
	g_string_append(out, ".</p>\n");
	PQclear(r);

	/* Size */
	g_string_append(out, "<section id=\"size\"><h2>Archive size</h2>\n<table><tbody>\n");
	const struct {
		const char *label;
		gint64 v;
		gboolean bytes;
	} size_rows[] = {
		{"messages", s.messages, FALSE},
		{"arrivals (duplicates included)", s.arrivals, FALSE},
		{"raw bytes (each message once)", s.raw_bytes, TRUE},
		{"stored bytes (compressed, deduplicated blobs)", s.stored_bytes, TRUE},
		{"saved by message deduplication", s.dedup_messages, TRUE},
		{"saved by attachment deduplication", s.dedup_attachments, TRUE},
		{"saved by compression", s.compression, TRUE},
		{"blob table on disk", s.blob_disk_bytes, TRUE},
		{"search index on disk", s.index_bytes, TRUE},
		{"metadata on disk", s.metadata_bytes, TRUE},
	};
	for (gsize i = 0; i < G_N_ELEMENTS(size_rows); i++) {
		g_string_append(out, "<tr><th>");
		esc(out, size_rows[i].label);
		g_string_append(out, "</th><td>");
		if (size_rows[i].bytes)
			human(out, size_rows[i].v);
		else
			g_string_append_printf(out, "%" G_GINT64_FORMAT, size_rows[i].v);
		g_string_append(out, "</td></tr>\n");
	}
	g_string_append(out, "</tbody></table></section>\n");

	/* Growth: what was archived per month (archiving time, not Date). */
	st = mv_db_query(db,
	                 "SELECT * FROM (SELECT k, n, b, sum(b) OVER (ORDER BY k) FROM "
	                 "(SELECT to_char(date_trunc('month', archived_at AT TIME ZONE 'UTC'), 'YYYY-MM') AS k, "
	                 "count(*) AS n, sum(size) AS b FROM message GROUP BY 1) g ORDER BY k DESC LIMIT 36) x "
	                 "ORDER BY k",
	                 0, NULL, NULL, NULL, 0, &r, error_r);
	if (st != MV_OK)
		return st;
	g_string_append(out, "<section id=\"growth\"><h2>Growth</h2>\n<p>Messages archived per month "
	                     "(UTC, by archiving time; raw bytes and the running total).</p>\n");
	{
		GPtrArray *rows = g_ptr_array_new_with_free_func(mv_traffic_row_free);
		for (int i = 0; i < PQntuples(r); i++) {
			mv_traffic_row *t = g_new0(mv_traffic_row, 1);
			t->key = g_strdup(val(r, i, 0));
			t->messages = ival(r, i, 1);
			g_ptr_array_add(rows, t);
		}
		if (rows->len > 0)
			chart(out, "Messages archived per month (UTC)", "month", rows, MV_CHART_COLUMNS);
		g_ptr_array_unref(rows);
		static const char *const h[] = {"month", "messages", "raw bytes", "raw bytes in total"};
		table(out, r, h, G_N_ELEMENTS(h), "The archive is empty.");
	}
	PQclear(r);
	g_string_append(out, "</section>\n");

	st = traffic_section(db, o, out, error_r);
	if (st != MV_OK)
		return st;

	/* Classes */
	st = mv_db_query(db,
	                 "SELECT coalesce(retention_class, '(none)'), count(*), sum(size), "
	                 "to_char(min(expires_at) FILTER (WHERE expires_at > now()) AT TIME ZONE 'UTC', 'YYYY-MM-DD') "
	                 "FROM message GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 200",
	                 0, NULL, NULL, NULL, 0, &r, error_r);
	if (st != MV_OK)
		return st;
	g_string_append(out, "<section id=\"classes\"><h2>Retention classes</h2>\n");
	{
		static const char *const h[] = {"class", "records", "raw bytes", "next expiry (UTC)"};
		table(out, r, h, G_N_ELEMENTS(h), "No records.");
	}
	PQclear(r);
	g_string_append(out, "</section>\n");

	/* Expiries */
	st = mv_db_query(db,
	                 "SELECT to_char(date_trunc('month', expires_at AT TIME ZONE 'UTC'), 'YYYY-MM'), count(*), sum(size) "
	                 "FROM message WHERE expires_at > now() AND expires_at < now() + interval '12 months' "
	                 "GROUP BY 1 ORDER BY 1",
	                 0, NULL, NULL, NULL, 0, &r, error_r);
	if (st != MV_OK)
		return st;
	g_string_append(out, "<section id=\"expiries\"><h2>Upcoming expiries</h2>\n"
	                     "<p>Records whose retention ends in the next twelve months, by month (UTC).</p>\n");
	{
		static const char *const h[] = {"month", "records", "raw bytes"};
		table(out, r, h, G_N_ELEMENTS(h), "No record expires in the next twelve months.");
	}
	PQclear(r);
	st = mv_db_query(db, "SELECT count(*) FROM message WHERE expires_at <= now()", 0, NULL, NULL, NULL, 0, &r,
	                 error_r);
	if (st != MV_OK)
		return st;
	g_string_append_printf(out, "<p>Expired and still kept (held, awaiting review or the next purge): "
	                            "%" G_GINT64_FORMAT ".</p>\n</section>\n",
	                       ival(r, 0, 0));
	PQclear(r);

	/* Holds */
	st = mv_db_query(db,
	                 "SELECT h.name, h.case_ref, h.reason, CASE WHEN h.ongoing THEN 'yes' ELSE 'no' END, "
	                 "h.created_by, " MV_SQL_ISO_UTC("h.created_at") ", "
	                 "(SELECT count(*) FROM hold_item i WHERE i.hold_id = h.id) "
	                 "FROM hold h WHERE h.released_at IS NULL ORDER BY h.created_at, h.id LIMIT 500",
	                 0, NULL, NULL, NULL, 0, &r, error_r);
	if (st != MV_OK)
		return st;
	g_string_append(out, "<section id=\"holds\"><h2>Active holds</h2>\n");
	{
		static const char *const h[] = {"hold", "case", "reason", "ongoing", "created by", "created at (UTC)",
		                                "records"};
		table(out, r, h, G_N_ELEMENTS(h), "No active hold.");
	}
	PQclear(r);
	g_string_append(out, "</section>\n");

	/* Purge runs */
	st = mv_db_query(db,
	                 "SELECT run, state, " MV_SQL_ISO_UTC("started_at") ", "
	                 "CASE WHEN finished_at IS NULL THEN '' ELSE " MV_SQL_ISO_UTC("finished_at") " END, "
	                 "performed_by, coalesce(policy_version::text, ''), destroyed "
	                 "FROM disposition ORDER BY run DESC LIMIT 10",
	                 0, NULL, NULL, NULL, 0, &r, error_r);
	if (st != MV_OK)
		return st;
	g_string_append(out, "<section id=\"purges\"><h2>Last purge runs</h2>\n");
	{
		static const char *const h[] = {"run", "state", "started (UTC)", "finished (UTC)", "by", "policy",
		                                "destroyed"};
		table(out, r, h, G_N_ELEMENTS(h), "No purge has run.");
	}
	PQclear(r);
	g_string_append(out, "</section>\n");

	/* Verify */
	st = mv_db_query(db,
	                 "SELECT " MV_SQL_ISO_UTC("finished_at") ", actor, scope, "
	                 "coalesce(sample::text, 'all'), checked, damaged, "
	                 "CASE WHEN audit_intact THEN 'intact' ELSE 'BROKEN' END, audit_entries, records, findings, "
	                 "CASE WHEN ok THEN 'OK' ELSE 'PROBLEMS FOUND' END "
	                 "FROM verify_run ORDER BY id DESC LIMIT 5",
	                 0, NULL, NULL, NULL, 0, &r, error_r);
	if (st != MV_OK)
		return st;
	g_string_append(out, "<section id=\"verify\"><h2>Last verify</h2>\n");
	if (PQntuples(r) > 0) {
		gboolean ok = strcmp(val(r, 0, 10), "OK") == 0;
		g_string_append_printf(out, "<p>Last run: <span class=\"%s\">", ok ? "good" : "bad");
		esc(out, val(r, 0, 10));
		g_string_append(out, "</span> at ");
		esc(out, val(r, 0, 0));
		g_string_append(out, ".</p>\n");
	}
	{
		static const char *const h[] = {"finished (UTC)", "by", "scope", "sample", "messages checked",
		                                "damaged", "audit trail", "audit entries", "records checked",
		                                "records not as sealed", "result"};
		table(out, r, h, G_N_ELEMENTS(h), "verify has never run (mailvault verify).");
	}
	PQclear(r);
	g_string_append(out, "</section>\n</body></html>\n");
	return MV_OK;
}

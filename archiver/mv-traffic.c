/* mv-traffic: traffic statistics over the rollups of schema/022-traffic.sql.
 *
 * Every value of a query (direction, dates, time zone, domains, limit) is
 * a parameter; the SQL text is chosen from fixed fragments by the bucket
 * kind only. */
#include "mv-traffic.h"

#include <string.h>

static const char *const by_names[] = {"hour", "weekday", "day", "week", "month", "domain", "user"};

gboolean mv_traffic_by_parse(const char *name, mv_traffic_by *by_r)
{
	for (guint i = 0; name != NULL && i < G_N_ELEMENTS(by_names); i++) {
		if (strcmp(name, by_names[i]) == 0) {
			*by_r = (mv_traffic_by)i;
			return TRUE;
		}
	}
	return FALSE;
}

const char *mv_traffic_by_name(mv_traffic_by by)
{
	return (guint)by < G_N_ELEMENTS(by_names) ? by_names[by] : "?";
}

gboolean mv_traffic_by_is_time(mv_traffic_by by)
{
	return by != MV_TRAFFIC_BY_DOMAIN && by != MV_TRAFFIC_BY_USER;
}

void mv_traffic_row_free(gpointer row)
{
	mv_traffic_row *r = row;
	if (r == NULL)
		return;
	g_free(r->key);
	g_free(r);
}

/* The records, in the rollup's shape (bucket, direction, kind, domain,
 * usr, messages, bytes): the same definition as the triggers'. */
#define FROM_RECORDS                                                                          \
	"(SELECT mv_traffic_bucket(m.date, m.archived_at) AS bucket, "                            \
	"        coalesce(m.direction, 'unknown') AS direction, 'm'::\"char\" AS kind, "          \
	"        ''::text AS domain, ''::text AS usr, 1::bigint AS messages, m.size AS bytes "   \
	"   FROM message m "                                                                      \
	" UNION ALL "                                                                             \
	" SELECT mv_traffic_day(m.date, m.archived_at), coalesce(m.direction, 'unknown'), "   \
	"        's'::\"char\", mv_traffic_domain(m.from_addr), mv_traffic_user(m.from_addr), 1, " \
	"        m.size FROM message m "                                                          \
	" UNION ALL "                                                                             \
	" SELECT mv_traffic_day(m.date, m.archived_at), coalesce(m.direction, 'unknown'), "   \
	"        'r'::\"char\", mv_traffic_domain(p.k), p.k, 1, m.size "                          \
	"   FROM (SELECT DISTINCT message_id, mv_traffic_user(address) AS k FROM address "       \
	"          WHERE mv_traffic_recipient_role(role)) p JOIN message m ON m.id = p.message_id " \
	" UNION ALL "                                                                             \
	" SELECT mv_traffic_day(m.date, m.archived_at), coalesce(m.direction, 'unknown'), "   \
	"        'R'::\"char\", p.k, '', 1, m.size "                                              \
	"   FROM (SELECT DISTINCT message_id, mv_traffic_domain(address) AS k FROM address "     \
	"          WHERE mv_traffic_recipient_role(role)) p JOIN message m ON m.id = p.message_id)"

#define FROM_ROLLUPS \
	"(SELECT bucket, direction, kind, domain, usr, messages, bytes FROM traffic_rollup)"

/* $1 time zone, $2 direction or NULL, $3 since or NULL, $4 until or NULL,
 * $5 limit, $6 local domains (text[]) or NULL. */
static const char *key_sql(mv_traffic_by by)
{
	switch (by) {
	case MV_TRAFFIC_BY_HOUR:
		return "to_char(t.bucket AT TIME ZONE $1, 'HH24')";
	case MV_TRAFFIC_BY_WEEKDAY:
		return "extract(isodow FROM t.bucket AT TIME ZONE $1)::text";
	case MV_TRAFFIC_BY_DAY:
		return "to_char(t.bucket AT TIME ZONE $1, 'YYYY-MM-DD')";
	case MV_TRAFFIC_BY_WEEK:
		return "to_char(t.bucket AT TIME ZONE $1, 'IYYY-\"W\"IW')";
	case MV_TRAFFIC_BY_MONTH:
		return "to_char(t.bucket AT TIME ZONE $1, 'YYYY-MM')";
	case MV_TRAFFIC_BY_DOMAIN:
		return "t.domain";
	case MV_TRAFFIC_BY_USER:
		return "t.usr";
	}
	return "''";
}

static char *build_sql(const mv_traffic_query *q)
{
	gboolean time = mv_traffic_by_is_time(q->by);
	GString *s = g_string_new("SELECT k, ");
	if (time)
		g_string_append(
			s, "sum(t.messages), sum(t.bytes), "
			   "coalesce(sum(t.messages) FILTER (WHERE t.direction IN ('outbound', 'internal')), 0), "
			   "coalesce(sum(t.bytes) FILTER (WHERE t.direction IN ('outbound', 'internal')), 0), "
			   "coalesce(sum(t.messages) FILTER (WHERE t.direction IN ('inbound', 'internal')), 0), "
			   "coalesce(sum(t.bytes) FILTER (WHERE t.direction IN ('inbound', 'internal')), 0)");
	else
		g_string_append(s, "sum(t.messages), sum(t.bytes), "
		                   "coalesce(sum(t.messages) FILTER (WHERE t.kind = 's'), 0), "
		                   "coalesce(sum(t.bytes) FILTER (WHERE t.kind = 's'), 0), "
		                   "coalesce(sum(t.messages) FILTER (WHERE t.kind <> 's'), 0), "
		                   "coalesce(sum(t.bytes) FILTER (WHERE t.kind <> 's'), 0)");
	g_string_append_printf(s, " FROM (SELECT %s AS k, t.* FROM %s t WHERE ", key_sql(q->by),
	                       q->from_records ? FROM_RECORDS : FROM_ROLLUPS);
	if (time)
		g_string_append(s, "t.kind = 'm'");
	else if (q->by == MV_TRAFFIC_BY_DOMAIN)
		g_string_append(s, "t.kind IN ('s', 'R')");
	else
		g_string_append(s, "t.kind IN ('s', 'r') AND ($6::text[] IS NULL OR cardinality($6::text[]) = 0 "
		                   "OR EXISTS (SELECT 1 FROM unnest($6::text[]) AS d(g) "
		                   "WHERE t.domain = d.g OR (d.g LIKE '*.%' AND "
		                   "right(t.domain, length(d.g) - 1) = substr(d.g, 2))))");
	/* Senders and recipients count per UTC day: their dates are UTC days. */
	const char *zone = time ? "$1" : "'UTC'";
	if (!time)
		g_string_append(s, " AND $1::text IS NOT NULL");
	g_string_append_printf(s,
	                       " AND ($2::text IS NULL OR t.direction = $2) "
	                       "AND ($3::date IS NULL OR t.bucket >= ($3::date::timestamp AT TIME ZONE %s)) "
	                       "AND ($4::date IS NULL OR t.bucket < ($4::date::timestamp AT TIME ZONE %s))) t "
	                       "GROUP BY k HAVING sum(t.messages) <> 0 ",
	                       zone, zone);
	if (time)
		g_string_append(s, "ORDER BY k LIMIT $5::bigint");
	else
		g_string_append(s, "ORDER BY 2 DESC, 3 DESC, k LIMIT $5::bigint");
	return g_string_free(s, FALSE);
}

static gboolean valid_date(const char *d)
{
	if (d == NULL)
		return TRUE;
	if (strlen(d) != 10 || d[4] != '-' || d[7] != '-')
		return FALSE;
	for (int i = 0; i < 10; i++)
		if (i != 4 && i != 7 && !g_ascii_isdigit(d[i]))
			return FALSE;
	GDate date;
	g_date_clear(&date, 1);
	int y = (int)g_ascii_strtoll(d, NULL, 10), m = (int)g_ascii_strtoll(d + 5, NULL, 10),
	    dd = (int)g_ascii_strtoll(d + 8, NULL, 10);
	return y >= 1 && g_date_valid_dmy((GDateDay)dd, (GDateMonth)m, (GDateYear)y);
}

static const char *const directions[] = {"inbound", "outbound", "internal", "external", "unknown"};

static gboolean valid_direction(const char *d)
{
	for (guint i = 0; d != NULL && i < G_N_ELEMENTS(directions); i++)
		if (strcmp(d, directions[i]) == 0)
			return TRUE;
	return d == NULL;
}

/* The rollups show who writes to whom across the whole archive: a
 * session bound to its grants (employee, auditor) may not read them, nor
 * compute them from the records it sees (that would be a partial picture
 * presented as the archive's). */
static mv_status check_access(mv_db *db, char **error_r)
{
	PGresult *r = NULL;
	mv_status st = mv_db_query(db, "SELECT mv_sees_all() AND has_table_privilege('traffic_rollup', 'SELECT')",
	                           0, NULL, NULL, NULL, 0, &r, error_r);
	if (st != MV_OK)
		return st;
	gboolean ok = PQgetvalue(r, 0, 0)[0] == 't';
	PQclear(r);
	if (!ok)
		return mv_fail(error_r, MV_ERR_DENIED,
		               "traffic statistics show every user's correspondents: they are for the "
		               "legal role and the archive's owner (`mailvault stats` counts your own mail)");
	return MV_OK;
}

static mv_status check_tz(mv_db *db, const char *tz, char **error_r)
{
	if (strcmp(tz, "UTC") == 0)
		return MV_OK;
	PGresult *r = NULL;
	const char *v[] = {tz};
	mv_status st = mv_db_query(db, "SELECT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = $1)", 1, v,
	                           NULL, NULL, 0, &r, error_r);
	if (st != MV_OK)
		return st;
	gboolean ok = PQgetvalue(r, 0, 0)[0] == 't';
	PQclear(r);
	return ok ? MV_OK : mv_fail(error_r, MV_ERR_USAGE, "unknown time zone '%s'", tz);
}

static const char *const weekday_names[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};

static gint64 int_value(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? 0 : g_ascii_strtoll(PQgetvalue(r, row, col), NULL, 10);
}

mv_status mv_traffic_run(mv_db *db, const mv_traffic_query *q, GPtrArray **rows_r, char **error_r)
{
	*rows_r = NULL;
	if (!valid_direction(q->direction))
		return mv_fail(error_r, MV_ERR_USAGE,
		               "unknown direction '%s' (inbound, outbound, internal, external, unknown)",
		               q->direction);
	if (!valid_date(q->since) || !valid_date(q->until))
		return mv_fail(error_r, MV_ERR_USAGE, "a date is YYYY-MM-DD: '%s'",
		               !valid_date(q->since) ? q->since : q->until);
	if (q->top < 0 || q->top > MV_TRAFFIC_TOP_MAX)
		return mv_fail(error_r, MV_ERR_USAGE, "--top is 1 to %d", MV_TRAFFIC_TOP_MAX);
	const char *tz = q->tz != NULL ? q->tz : "UTC";
	mv_status st = check_access(db, error_r);
	if (st == MV_OK)
		st = check_tz(db, tz, error_r);
	if (st != MV_OK)
		return st;

	gint64 limit = mv_traffic_by_is_time(q->by) ? MV_TRAFFIC_ROWS_MAX
	               : q->top > 0                 ? q->top
	                                            : MV_TRAFFIC_TOP_DEFAULT;
	char lim[24];
	g_snprintf(lim, sizeof lim, "%" G_GINT64_FORMAT, limit);
	GString *domains = NULL;
	if (q->by == MV_TRAFFIC_BY_USER && q->local_domains != NULL && q->local_domains[0] != NULL) {
		domains = g_string_new("{");
		for (char **d = q->local_domains; *d != NULL; d++)
			mv_db_array_text(domains, *d);
		g_string_append_c(domains, '}');
	}
	const char *v[] = {tz, q->direction, q->since, q->until, lim, domains != NULL ? domains->str : NULL};
	char *sql = build_sql(q);
	PGresult *r = NULL;
	st = mv_db_query(db, sql, q->by == MV_TRAFFIC_BY_USER ? 6 : 5, v, NULL, NULL, 0, &r, error_r);
	g_free(sql);
	if (domains != NULL)
		g_string_free(domains, TRUE);
	if (st != MV_OK)
		return st;

	GPtrArray *rows = g_ptr_array_new_with_free_func(mv_traffic_row_free);
	/* Hours and weekdays: every bucket, empty ones too (a chart's axis). */
	guint fixed = q->by == MV_TRAFFIC_BY_HOUR ? 24 : q->by == MV_TRAFFIC_BY_WEEKDAY ? 7 : 0;
	for (guint i = 0; i < fixed; i++) {
		mv_traffic_row *row = g_new0(mv_traffic_row, 1);
		row->key = q->by == MV_TRAFFIC_BY_HOUR ? g_strdup_printf("%02u", i) : g_strdup(weekday_names[i]);
		g_ptr_array_add(rows, row);
	}
	for (int i = 0; i < PQntuples(r); i++) {
		mv_traffic_row *row;
		const char *k = PQgetvalue(r, i, 0);
		if (fixed > 0) {
			gint64 n = g_ascii_strtoll(k, NULL, 10);
			if (q->by == MV_TRAFFIC_BY_WEEKDAY)
				n -= 1;
			if (n < 0 || n >= (gint64)fixed)
				continue;
			row = rows->pdata[n];
		} else {
			row = g_new0(mv_traffic_row, 1);
			row->key = g_strdup(k);
			g_ptr_array_add(rows, row);
		}
		row->messages = int_value(r, i, 1);
		row->bytes = int_value(r, i, 2);
		row->sent = int_value(r, i, 3);
		row->sent_bytes = int_value(r, i, 4);
		row->received = int_value(r, i, 5);
		row->received_bytes = int_value(r, i, 6);
	}
	PQclear(r);
	*rows_r = rows;
	return MV_OK;
}

mv_status mv_traffic_rebuild(mv_db *db, gint64 batch, gint64 *messages_r, char **error_r)
{
	*messages_r = 0;
	if (batch <= 0)
		batch = 20000;
	mv_status st = mv_db_exec(db, "BEGIN", error_r);
	if (st != MV_OK)
		return st;
	PGresult *r = NULL;
	st = mv_db_query(db, "SELECT mv_traffic_rebuild_begin()", 0, NULL, NULL, NULL, 0, &r, error_r);
	gint64 upto = st == MV_OK ? int_value(r, 0, 0) : 0;
	PQclear(r);
	for (gint64 after = 0; st == MV_OK && after < upto; after += batch) {
		char a[24], b[24];
		g_snprintf(a, sizeof a, "%" G_GINT64_FORMAT, after);
		g_snprintf(b, sizeof b, "%" G_GINT64_FORMAT, MIN(after + batch, upto));
		const char *v[] = {a, b};
		r = NULL;
		st = mv_db_query(db, "SELECT mv_traffic_rebuild_batch($1::bigint, $2::bigint)", 2, v, NULL, NULL, 0,
		                 &r, error_r);
		if (st == MV_OK)
			*messages_r += int_value(r, 0, 0);
		PQclear(r);
	}
	return mv_db_end(db, st, error_r);
}

static void add_domains(GPtrArray *out, const char *list)
{
	char **parts = g_strsplit_set(list, ", \t\n", -1);
	for (char **p = parts; *p != NULL; p++) {
		if (**p == '\0')
			continue;
		char *d = g_ascii_strdown(*p, -1);
		gboolean seen = FALSE;
		for (guint i = 0; i < out->len && !seen; i++)
			seen = strcmp(out->pdata[i], d) == 0;
		if (seen)
			g_free(d);
		else
			g_ptr_array_add(out, d);
	}
	g_strfreev(parts);
}

mv_status mv_traffic_local_domains(mv_db *db, const char *setting, char ***domains_r, char **error_r)
{
	*domains_r = NULL;
	GPtrArray *out = g_ptr_array_new();
	if (setting == NULL || *setting == '\0')
		setting = g_getenv("MAILVAULT_LOCAL_DOMAINS");
	mv_status st = MV_OK;
	if (setting != NULL && *setting != '\0') {
		add_domains(out, setting);
	} else if (db != NULL) {
		/* The newest policy's <internal-domains>: what classify uses. */
		PGresult *r = NULL;
		st = mv_db_query(db,
		                 "SELECT d::text FROM (SELECT xml FROM policy ORDER BY version DESC LIMIT 1) p, "
		                 "unnest(xpath('/policy/internal-domains/domain/text()', p.xml::xml)) AS d "
		                 "LIMIT 1000",
		                 0, NULL, NULL, NULL, 0, &r, error_r);
		for (int i = 0; st == MV_OK && i < PQntuples(r); i++)
			add_domains(out, PQgetvalue(r, i, 0));
		PQclear(r);
	}
	for (guint i = 0; st == MV_OK && i < out->len; i++) {
		const char *d = out->pdata[i];
		const char *body = g_str_has_prefix(d, "*.") ? d + 2 : d;
		gboolean ok = *body != '\0' && strlen(d) <= 255;
		for (const char *c = body; ok && *c != '\0'; c++)
			ok = g_ascii_isalnum(*c) || *c == '-' || *c == '.' || (guchar)*c >= 0x80;
		if (!ok)
			st = mv_fail(error_r, MV_ERR_USAGE, "not a domain in the local domains: '%s'", d);
	}
	if (st != MV_OK) {
		g_ptr_array_set_free_func(out, g_free);
		g_ptr_array_unref(out);
		return st;
	}
	g_ptr_array_add(out, NULL);
	*domains_r = (char **)g_ptr_array_free(out, FALSE);
	return MV_OK;
}

mv_status mv_traffic_storage(mv_db *db, mv_storage_stats *s_r, char **error_r)
{
	*s_r = (mv_storage_stats){0};
	PGresult *r = NULL;
	mv_status st = mv_db_query(db, "SELECT mv_sees_all()", 0, NULL, NULL, NULL, 0, &r, error_r);
	if (st != MV_OK)
		return st;
	gboolean all = PQgetvalue(r, 0, 0)[0] == 't';
	PQclear(r);
	if (!all)
		return mv_fail(error_r, MV_ERR_DENIED,
		               "storage statistics cover the whole archive: they are for the staff roles "
		               "and the archive's owner (`mailvault stats` counts your own mail)");
	st = mv_db_query(
		db,
		"SELECT (SELECT count(*) FROM message), (SELECT count(*) FROM arrival), "
		"(SELECT count(*) FROM blob), "
		"(SELECT count(DISTINCT blob_sha256) FROM message_splice), "
		"(SELECT coalesce(sum(size), 0) FROM message), "
		"(SELECT coalesce(sum(m.size), 0) FROM arrival a JOIN message m ON m.id = a.message_id), "
		"(SELECT coalesce(sum(b.raw_size), 0) FROM message m JOIN blob b ON b.sha256 = m.skeleton_sha256), "
		/* per reference: the part's encoded size in its message, also
		 * when stored by its decoded content (schema/028) */
		"(SELECT coalesce(sum(coalesce(r.encoded_size, b.raw_size)), 0) FROM message_splice s "
		"  JOIN blob b ON b.sha256 = s.blob_sha256 "
		"  LEFT JOIN splice_recipe r ON r.message_id = s.message_id AND r.seq = s.seq), "
		"(SELECT coalesce(sum(b.raw_size), 0) FROM blob b WHERE b.sha256 IN "
		"   (SELECT blob_sha256 FROM message_splice)), "
		"(SELECT coalesce(sum(raw_size), 0) FROM blob), (SELECT coalesce(sum(stored_size), 0) FROM blob) "
		"  + (SELECT coalesce(sum(stored_size), 0) FROM pack_frame), "
		"pg_total_relation_size('blob') + pg_total_relation_size('pack_frame'), "
		"pg_total_relation_size('message_text') + pg_total_relation_size('part_text'), "
		"(SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
		"  WHERE c.relkind = 'r' AND c.relnamespace = current_schema()::regnamespace "
		"    AND c.relname NOT IN ('blob', 'message_text', 'part_text', 'pack_frame')), "
		"(SELECT count(*) FROM pack), (SELECT count(*) FROM pack_frame), "
		"(SELECT count(*) FROM blob WHERE pack_frame_id IS NOT NULL), "
		"(SELECT coalesce(sum(stored_size), 0) FROM pack_frame), "
		"(SELECT coalesce(sum(dead_count), 0) FROM pack_frame), "
		"(SELECT coalesce(sum(dead_bytes), 0) FROM pack_frame)",
		0, NULL, NULL, NULL, 0, &r, error_r);
	if (st != MV_OK)
		return st;
	mv_storage_stats *s = s_r;
	s->messages = int_value(r, 0, 0);
	s->arrivals = int_value(r, 0, 1);
	s->blobs = int_value(r, 0, 2);
	s->attachment_blobs = int_value(r, 0, 3);
	s->raw_bytes = int_value(r, 0, 4);
	s->arrived_bytes = int_value(r, 0, 5);
	s->dedup_messages = s->arrived_bytes - s->raw_bytes;
	s->attachment_refs = int_value(r, 0, 7);
	s->referenced_bytes = int_value(r, 0, 6) + s->attachment_refs;
	s->attachment_bytes = int_value(r, 0, 8);
	s->dedup_attachments = s->attachment_refs - s->attachment_bytes;
	s->blob_raw_bytes = int_value(r, 0, 9);
	s->stored_bytes = int_value(r, 0, 10);
	s->compression = s->blob_raw_bytes - s->stored_bytes;
	s->blob_disk_bytes = int_value(r, 0, 11);
	s->index_bytes = int_value(r, 0, 12);
	s->metadata_bytes = int_value(r, 0, 13);
	s->packs = int_value(r, 0, 14);
	s->pack_frames = int_value(r, 0, 15);
	s->packed_blobs = int_value(r, 0, 16);
	s->pack_stored_bytes = int_value(r, 0, 17);
	s->pack_dead_blobs = int_value(r, 0, 18);
	s->pack_dead_bytes = int_value(r, 0, 19);
	PQclear(r);
	return MV_OK;
}

/* mailvault stats traffic: messages and bytes per time bucket, domain or
 * user, from the traffic rollups (schema/022-traffic.sql). */
#include <stdio.h>
#include <string.h>

#include "mv-chart.h"
#include "mv-cli.h"
#include "mv-json.h"
#include "mv-traffic.h"

static const char traffic_help[] =
	"Usage: mailvault stats traffic [--by hour|weekday|day|week|month|domain|user]\n"
	"                               [--direction DIR] [--since DATE] [--until DATE]\n"
	"                               [--top N] [--tz ZONE] [--json | --csv | --svg FILE]\n"
	"       mailvault stats traffic --rebuild\n"
	"\n"
	"Messages and bytes per bucket, sent and received, from the traffic rollups the\n"
	"archive keeps at ingest and purge (docs/traffic.md).  Each stored message counts\n"
	"once (a duplicate arrival adds nothing), in the hour of its Date header (of its\n"
	"archiving when it has none, or one more than a day later), in UTC unless --tz.\n"
	"Time buckets: messages, bytes; sent = outbound + internal, received = inbound +\n"
	"internal (direction as the policy's internal domains decided at classification).\n"
	"Domains and users: sent = messages from it, received = messages to it (once per\n"
	"message), messages = sent + received; largest first.\n"
	"\n"
	"The rollups show every user's correspondents: only the legal role and the\n"
	"archive's owner may read them (an employee or auditor gets exit 77).\n"
	"\n"
	"Options:\n"
	"  --by BUCKET         hour (of the day), weekday, day, week (ISO), month, domain,\n"
	"                      user (default: day)\n"
	"  --direction DIR     inbound, outbound, internal, external or unknown (no policy\n"
	"                      classified the message) only\n"
	"  --since DATE        from DATE (YYYY-MM-DD, its first hour in --tz)\n"
	"  --until DATE        before DATE (YYYY-MM-DD, exclusive)\n"
	"  --top N             domains/users: the N largest (default 20, at most 10000)\n"
	"  --tz ZONE           buckets in this time zone (e.g. Europe/Paris; default UTC;\n"
	"                      rollups are hourly: zones with a half-hour offset are\n"
	"                      approximated to the hour)\n"
	"  --local-domains LIST  --by user: only addresses in these domains (comma-separated,\n"
	"                      *.example covers subdomains; else MAILVAULT_LOCAL_DOMAINS,\n"
	"                      else the policy's internal domains)\n"
	"  --all-users         --by user: every address, local or not\n"
	"  --json              JSON: keys by, tz, direction, since, until, source, rows\n"
	"                      (each: key, messages, bytes, sent, sent_bytes, received,\n"
	"                      received_bytes)\n"
	"  --csv               CSV (RFC 4180) with a header line of the same keys\n"
	"  --svg FILE          also write a bar chart of messages per bucket to FILE\n"
	"  --from-records      compute from the records instead of the rollups (slow;\n"
	"                      to check them)\n"
	"  --rebuild           recompute the rollups from the records (legal or owner;\n"
	"                      writers wait while it runs)\n" MV_CLI_COMMON_HELP;

/* A CSV field: quoted when it must be (RFC 4180), and a leading = + - @
 * is prefixed with ' so that a spreadsheet does not run it as a formula. */
static void csv_field(GString *s, const char *v)
{
	gboolean formula = v[0] == '=' || v[0] == '+' || v[0] == '-' || v[0] == '@' || v[0] == '\t' ||
	                   v[0] == '\r';
	gboolean quote = formula || strpbrk(v, ",\"\r\n") != NULL;
	if (!quote) {
		g_string_append(s, v);
		return;
	}
	g_string_append_c(s, '"');
	if (formula)
		g_string_append_c(s, '\'');
	for (const char *p = v; *p != '\0'; p++) {
		if (*p == '"')
			g_string_append_c(s, '"');
		g_string_append_c(s, *p);
	}
	g_string_append_c(s, '"');
}

/* For a terminal: valid UTF-8, control characters as '?'.  g_free. */
static char *printable(const char *s)
{
	char *v = g_utf8_make_valid(s, -1);
	for (char *p = v; *p != '\0'; p++)
		if ((guchar)*p < 0x20 || *p == 0x7f)
			*p = '?';
	return v;
}

static const char *shown_key(const mv_traffic_row *r)
{
	return *r->key != '\0' ? r->key : "(none)";
}

static char *chart_title(const mv_traffic_query *q)
{
	const char *what;
	switch (q->by) {
	case MV_TRAFFIC_BY_HOUR: what = "Messages per hour of the day"; break;
	case MV_TRAFFIC_BY_WEEKDAY: what = "Messages per weekday"; break;
	case MV_TRAFFIC_BY_DAY: what = "Messages per day"; break;
	case MV_TRAFFIC_BY_WEEK: what = "Messages per week"; break;
	case MV_TRAFFIC_BY_MONTH: what = "Messages per month"; break;
	case MV_TRAFFIC_BY_DOMAIN: what = "Top domains by messages sent and received"; break;
	default: what = "Top users by messages sent and received"; break;
	}
	return g_strdup_printf("%s (%s%s%s)", what, q->tz != NULL ? q->tz : "UTC",
	                       q->direction != NULL ? ", " : "", q->direction != NULL ? q->direction : "");
}

char *mv_cli_traffic_svg(const mv_traffic_query *q, const GPtrArray *rows, gboolean standalone);

char *mv_cli_traffic_svg(const mv_traffic_query *q, const GPtrArray *rows, gboolean standalone)
{
	mv_chart_bar *bars = g_new0(mv_chart_bar, rows->len + 1);
	for (guint i = 0; i < rows->len; i++) {
		const mv_traffic_row *r = rows->pdata[i];
		bars[i].label = shown_key(r);
		bars[i].value = r->messages;
	}
	char *title = chart_title(q);
	gboolean time = mv_traffic_by_is_time(q->by);
	char *svg = mv_chart_svg(title, time ? mv_traffic_by_name(q->by) : q->by == MV_TRAFFIC_BY_DOMAIN ? "domain" : "user",
	                         "messages", bars, rows->len, time ? MV_CHART_COLUMNS : MV_CHART_ROWS,
	                         standalone);
	g_free(title);
	g_free(bars);
	return svg;
}

static int rebuild(mv_cli *cli)
{
	mv_db *db = NULL;
	int rc = mv_cli_open(cli, &db, NULL);
	if (rc != 0)
		return rc;
	gint64 n = 0;
	char *err = NULL;
	mv_status st = mv_traffic_rebuild(db, 20000, &n, &err);
	mv_db_close(&db);
	if (st != MV_OK) {
		rc = mv_cli_fail(cli, st, err);
		g_free(err);
		return rc;
	}
	if (cli->json) {
		g_autoptr(JsonBuilder) b = json_builder_new();
		json_builder_begin_object(b);
		mv_json_add_int(b, "messages", n);
		json_builder_end_object(b);
		mv_json_write(b, stdout);
	} else {
		printf("traffic rollups rebuilt from %" G_GINT64_FORMAT " messages\n", n);
	}
	return 0;
}

int mv_cmd_stats_traffic(mv_cli *cli, int argc, char **argv);

int mv_cmd_stats_traffic(mv_cli *cli, int argc, char **argv)
{
	enum { O_BY = 1000, O_DIR, O_SINCE, O_UNTIL, O_TOP, O_TZ, O_CSV, O_SVG, O_REBUILD, O_RECORDS, O_LOCAL,
	       O_ALL_USERS };
	static const struct option longopts[] = {MV_CLI_COMMON_LONG_OPTIONS,
	                                         {"json", no_argument, NULL, 'j'},
	                                         {"by", required_argument, NULL, O_BY},
	                                         {"direction", required_argument, NULL, O_DIR},
	                                         {"since", required_argument, NULL, O_SINCE},
	                                         {"until", required_argument, NULL, O_UNTIL},
	                                         {"top", required_argument, NULL, O_TOP},
	                                         {"tz", required_argument, NULL, O_TZ},
	                                         {"csv", no_argument, NULL, O_CSV},
	                                         {"svg", required_argument, NULL, O_SVG},
	                                         {"rebuild", no_argument, NULL, O_REBUILD},
	                                         {"from-records", no_argument, NULL, O_RECORDS},
	                                         {"local-domains", required_argument, NULL, O_LOCAL},
	                                         {"all-users", no_argument, NULL, O_ALL_USERS},
	                                         {NULL, 0, NULL, 0}};
	mv_traffic_query q = {.by = MV_TRAFFIC_BY_DAY};
	gboolean csv = FALSE, do_rebuild = FALSE, all_users = FALSE;
	const char *svg_file = NULL, *local = NULL;
	int o;
	optind = 1;
	while ((o = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (mv_cli_common_option(cli, o, optarg))
			continue;
		switch (o) {
		case 'h':
			fputs(traffic_help, stdout);
			return 0;
		case 'j':
			cli->json = TRUE;
			break;
		case O_BY:
			if (!mv_traffic_by_parse(optarg, &q.by))
				return mv_cli_usage_error(cli, "--by is hour, weekday, day, week, month, domain or user");
			break;
		case O_DIR:
			q.direction = optarg;
			break;
		case O_SINCE:
			q.since = optarg;
			break;
		case O_UNTIL:
			q.until = optarg;
			break;
		case O_TOP:
			if (!mv_cli_positive(optarg, &q.top) || q.top > MV_TRAFFIC_TOP_MAX)
				return mv_cli_usage_error(cli, "--top is 1 to %d", MV_TRAFFIC_TOP_MAX);
			break;
		case O_TZ:
			q.tz = optarg;
			break;
		case O_CSV:
			csv = TRUE;
			break;
		case O_SVG:
			svg_file = optarg;
			break;
		case O_REBUILD:
			do_rebuild = TRUE;
			break;
		case O_RECORDS:
			q.from_records = TRUE;
			break;
		case O_LOCAL:
			local = optarg;
			break;
		case O_ALL_USERS:
			all_users = TRUE;
			break;
		default:
			return mv_cli_usage_error(cli, "unknown option");
		}
	}
	if (optind != argc)
		return mv_cli_usage_error(cli, "unexpected argument '%s'", argv[optind]);
	if (csv && cli->json)
		return mv_cli_usage_error(cli, "--json and --csv exclude each other");
	if (do_rebuild)
		return rebuild(cli);

	mv_db *db = NULL;
	cli->interactive = TRUE; /* only reads */
	int rc = mv_cli_open(cli, &db, NULL);
	if (rc != 0)
		return rc;
	char *err = NULL;
	char **domains = NULL;
	GPtrArray *rows = NULL;
	mv_status st = MV_OK;
	if (q.by == MV_TRAFFIC_BY_USER && !all_users)
		st = mv_traffic_local_domains(db, local, &domains, &err);
	q.local_domains = domains;
	if (st == MV_OK)
		st = mv_traffic_run(db, &q, &rows, &err);
	mv_db_close(&db);
	if (st != MV_OK) {
		g_strfreev(domains);
		rc = mv_cli_fail(cli, st, err);
		g_free(err);
		return rc;
	}
	if (svg_file != NULL) {
		char *svg = mv_cli_traffic_svg(&q, rows, TRUE);
		GError *gerr = NULL;
		if (svg == NULL || !g_file_set_contents(svg_file, svg, -1, &gerr)) {
			char *msg = g_strdup_printf("cannot write %s: %s", svg_file,
			                            gerr != NULL ? gerr->message : "out of memory");
			rc = mv_cli_fail(cli, MV_ERR_IO, msg);
			g_free(msg);
			g_clear_error(&gerr);
		}
		g_free(svg);
	}
	const char *tz = q.tz != NULL ? q.tz : "UTC";
	if (rc != 0) {
		/* the error is printed */
	} else if (cli->json) {
		g_autoptr(JsonBuilder) b = json_builder_new();
		json_builder_begin_object(b);
		mv_json_add_string(b, "by", mv_traffic_by_name(q.by));
		mv_json_add_string(b, "tz", tz);
		mv_json_add_string(b, "direction", q.direction);
		mv_json_add_string(b, "since", q.since);
		mv_json_add_string(b, "until", q.until);
		mv_json_add_string(b, "source", q.from_records ? "records" : "rollups");
		mv_json_begin_array(b, "rows");
		for (guint i = 0; i < rows->len; i++) {
			const mv_traffic_row *r = rows->pdata[i];
			json_builder_begin_object(b);
			mv_json_add_string(b, "key", r->key);
			mv_json_add_int(b, "messages", r->messages);
			mv_json_add_int(b, "bytes", r->bytes);
			mv_json_add_int(b, "sent", r->sent);
			mv_json_add_int(b, "sent_bytes", r->sent_bytes);
			mv_json_add_int(b, "received", r->received);
			mv_json_add_int(b, "received_bytes", r->received_bytes);
			json_builder_end_object(b);
		}
		json_builder_end_array(b);
		json_builder_end_object(b);
		mv_json_write(b, stdout);
	} else if (csv) {
		GString *s = g_string_new("key,messages,bytes,sent,sent_bytes,received,received_bytes\r\n");
		for (guint i = 0; i < rows->len; i++) {
			const mv_traffic_row *r = rows->pdata[i];
			csv_field(s, r->key);
			g_string_append_printf(s,
			                       ",%" G_GINT64_FORMAT ",%" G_GINT64_FORMAT ",%" G_GINT64_FORMAT
			                       ",%" G_GINT64_FORMAT ",%" G_GINT64_FORMAT ",%" G_GINT64_FORMAT "\r\n",
			                       r->messages, r->bytes, r->sent, r->sent_bytes, r->received,
			                       r->received_bytes);
		}
		fwrite(s->str, 1, s->len, stdout);
		g_string_free(s, TRUE);
	} else {
		printf("traffic by %s (%s%s%s)\n", mv_traffic_by_name(q.by), tz, q.direction ? ", " : "",
		       q.direction ? q.direction : "");
		printf("%-32s %10s %14s %10s %10s\n", mv_traffic_by_name(q.by), "messages", "bytes", "sent",
		       "received");
		for (guint i = 0; i < rows->len; i++) {
			const mv_traffic_row *r = rows->pdata[i];
			char *k = printable(shown_key(r));
			printf("%-32s %10" G_GINT64_FORMAT " %14" G_GINT64_FORMAT " %10" G_GINT64_FORMAT
			       " %10" G_GINT64_FORMAT "\n",
			       k, r->messages, r->bytes, r->sent, r->received);
			g_free(k);
		}
	}
	g_ptr_array_unref(rows);
	g_strfreev(domains);
	return rc;
}

static const char storage_help[] =
	"Usage: mailvault stats storage [--json]\n"
	"\n"
	"Where the archive's bytes go, and what deduplication and compression saved\n"
	"(definitions in docs/traffic.md):\n"
	"  raw bytes            each stored message's size, once\n"
	"  arrived bytes        each arrival's size (a message that arrived twice, twice)\n"
	"  message dedup saved  arrived - raw\n"
	"  attachment dedup     attachment bytes per referencing message - per distinct blob\n"
	"  compression saved    distinct blobs' uncompressed - stored (zstd) bytes\n"
	"  stored bytes         the distinct blobs' stored bytes (pack frames included)\n"
	"  packs, pack frames, packed blobs, pack stored bytes: what compact packed\n"
	"  pack dead blobs/bytes: destroyed blobs whose bytes are still in a frame\n"
	"                       (the next purge or compact removes them: docs/storage.md)\n"
	"  blob table, search index, metadata: their tables and indexes on disk\n"
	"\n"
	"Options:\n"
	"  --json          JSON with keys messages, arrivals, blobs, attachment_blobs,\n"
	"                  raw_bytes, arrived_bytes, dedup_messages, referenced_bytes,\n"
	"                  attachment_refs, attachment_bytes, dedup_attachments,\n"
	"                  blob_raw_bytes, stored_bytes, compression, blob_disk_bytes,\n"
	"                  index_bytes, metadata_bytes, packs, pack_frames, packed_blobs,\n"
	"                  pack_stored_bytes, pack_dead_blobs, pack_dead_bytes\n" MV_CLI_COMMON_HELP;

int mv_cmd_stats_storage(mv_cli *cli, int argc, char **argv);

int mv_cmd_stats_storage(mv_cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {MV_CLI_COMMON_LONG_OPTIONS,
	                                         {"json", no_argument, NULL, 'j'},
	                                         {NULL, 0, NULL, 0}};
	int o;
	optind = 1;
	while ((o = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (mv_cli_common_option(cli, o, optarg))
			continue;
		if (o == 'h') {
			fputs(storage_help, stdout);
			return 0;
		}
		if (o == 'j') {
			cli->json = TRUE;
			continue;
		}
		return mv_cli_usage_error(cli, "unknown option");
	}
	if (optind != argc)
		return mv_cli_usage_error(cli, "unexpected argument '%s'", argv[optind]);
	mv_db *db = NULL;
	cli->interactive = TRUE;
	int rc = mv_cli_open(cli, &db, NULL);
	if (rc != 0)
		return rc;
	mv_storage_stats s;
	char *err = NULL;
	mv_status st = mv_traffic_storage(db, &s, &err);
	mv_db_close(&db);
	if (st != MV_OK) {
		rc = mv_cli_fail(cli, st, err);
		g_free(err);
		return rc;
	}
	const struct {
		const char *key, *label;
		gint64 v;
	} f[] = {
		{"messages", "messages", s.messages},
		{"arrivals", "arrivals", s.arrivals},
		{"blobs", "blobs", s.blobs},
		{"attachment_blobs", "attachment blobs", s.attachment_blobs},
		{"raw_bytes", "raw bytes", s.raw_bytes},
		{"arrived_bytes", "arrived bytes", s.arrived_bytes},
		{"dedup_messages", "message dedup saved", s.dedup_messages},
		{"referenced_bytes", "referenced bytes", s.referenced_bytes},
		{"attachment_refs", "attachment refs bytes", s.attachment_refs},
		{"attachment_bytes", "attachment bytes", s.attachment_bytes},
		{"dedup_attachments", "attachment dedup saved", s.dedup_attachments},
		{"blob_raw_bytes", "blob raw bytes", s.blob_raw_bytes},
		{"stored_bytes", "stored bytes", s.stored_bytes},
		{"compression", "compression saved", s.compression},
		{"blob_disk_bytes", "blob table on disk", s.blob_disk_bytes},
		{"index_bytes", "search index on disk", s.index_bytes},
		{"metadata_bytes", "metadata on disk", s.metadata_bytes},
		{"packs", "packs", s.packs},
		{"pack_frames", "pack frames", s.pack_frames},
		{"packed_blobs", "packed blobs", s.packed_blobs},
		{"pack_stored_bytes", "pack stored bytes", s.pack_stored_bytes},
		{"pack_dead_blobs", "pack dead blobs", s.pack_dead_blobs},
		{"pack_dead_bytes", "pack dead bytes", s.pack_dead_bytes},
	};
	if (cli->json) {
		g_autoptr(JsonBuilder) b = json_builder_new();
		json_builder_begin_object(b);
		for (gsize i = 0; i < G_N_ELEMENTS(f); i++)
			mv_json_add_int(b, f[i].key, f[i].v);
		json_builder_end_object(b);
		mv_json_write(b, stdout);
	} else {
		for (gsize i = 0; i < G_N_ELEMENTS(f); i++)
			printf("%-24s %" G_GINT64_FORMAT "\n", f[i].label, f[i].v);
	}
	return 0;
}

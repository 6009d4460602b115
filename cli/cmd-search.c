/* mailvault search: find messages with the query language. */
#include <string.h>

#include "mv-audit.h"
#include "mv-catalog.h"
#include "mv-cli.h"
#include "mv-json.h"

static const char help[] =
	"Usage: mailvault search [OPTIONS] QUERY...\n"
	"\n"
	"Find messages, newest first.  QUERY words are joined with spaces.\n"
	"  from:ADDR to:ADDR cc:ADDR bcc:ADDR   an address, @domain, or part of a name\n"
	"  addr:ADDR      the same in any role, the envelope's sender and recipients too\n"
	"  subject:TEXT  has:attachment  filename:GLOB  type:MIME/TYPE  message-id:ID\n"
	"  after:DATE before:DATE   DATE is YYYY, YYYY-MM or YYYY-MM-DD (UTC); a year or\n"
	"                 month means its first day: after:2025 is on or after\n"
	"                 2025-01-01, before:2025-03 before 2025-03-01\n"
	"  class:NAME  tag:NAME  hold:NAME  registration:2026-0000123\n"
	"  destroyed:yes  destroyed records (their tombstones) only; destroyed:no\n"
	"  word \"a phrase\"   full text over subject, addresses, body and attachments\n"
	"  attachment:WORD attachment:\"a phrase\"   full text of the attachments only\n"
	"  -term  NOT term  a OR b  ( ... )\n"
	"A query that does not parse is an error naming the column (exit status 65).\n"
	"Destroyed records are searched with --include-destroyed or a destroyed: term;\n"
	"a tombstone keeps registration, Message-ID, date, From, class and expiry, and\n"
	"a term on anything else (text, subject, to, ...) never matches one.\n"
	"Every search is an entry of the audit trail (who, the query, how many\n"
	"matched); a search that cannot be recorded returns nothing.\n"
	"\n"
	"Options:\n"
	"  --json          print a JSON array of {id, sha256, date, from, subject, size,\n"
	"                  has_attachment, parse_status, registration, class, destroyed,\n"
	"                  destroyed_at, purge_run}\n"
	"  --limit N       at most N results (default 100; 0 for all)\n"
	"  --count         print only the number of matches\n"
	"  --include-destroyed\n"
	"                  also list destroyed records that match (marked as such)\n" MV_CLI_COMMON_HELP;

/* text cut or padded to width characters (not bytes: names are UTF-8). */
static char *column(const char *text, glong width)
{
	char *valid = g_utf8_make_valid(text, -1);
	glong len = g_utf8_strlen(valid, -1);
	GString *s = g_string_new(NULL);
	if (len > width)
		g_string_append_len(s, valid, g_utf8_offset_to_pointer(valid, width) - valid);
	else
		g_string_append(s, valid);
	for (glong i = len; i < width; i++)
		g_string_append_c(s, ' ');
	g_free(valid);
	return g_string_free(s, FALSE);
}

/* "--name VALUE" or "--name=VALUE" at argv[*i]; advances *i past VALUE.
 * *value_r is NULL when the value is missing. */
static gboolean option_value(int argc, char **argv, int *i, const char *name,
                             const char **value_r)
{
	gsize n = strlen(name);
	if (strncmp(argv[*i], name, n) != 0)
		return FALSE;
	if (argv[*i][n] == '=') {
		*value_r = argv[*i] + n + 1;
		return TRUE;
	}
	if (argv[*i][n] != '\0')
		return FALSE;
	*value_r = *i + 1 < argc ? argv[++*i] : NULL;
	return TRUE;
}

int mv_cmd_search(mv_cli *cli, int argc, char **argv)
{
	gint64 limit = 100;
	gboolean count = FALSE, include_destroyed = FALSE;
	/* Options may come before or after the query; any other word is part
	 * of the query, so "-term" negates without needing "--"; after "--"
	 * everything is query. */
	GPtrArray *words = g_ptr_array_new();
	gboolean only_query = FALSE;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *val = NULL;
		if (only_query) {
			g_ptr_array_add(words, argv[i]);
		} else if (strcmp(a, "--") == 0) {
			only_query = TRUE;
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			fputs(help, stdout);
			g_ptr_array_free(words, TRUE);
			return 0;
		} else if (strcmp(a, "--json") == 0) {
			cli->json = TRUE;
		} else if (strcmp(a, "--count") == 0) {
			count = TRUE;
		} else if (strcmp(a, "--include-destroyed") == 0) {
			include_destroyed = TRUE;
		} else if (option_value(argc, argv, &i, "--limit", &val)) {
			char *end = NULL;
			limit = val != NULL ? g_ascii_strtoll(val, &end, 10) : -1;
			if (val == NULL || end == val || *end != '\0' || limit < 0) {
				g_ptr_array_free(words, TRUE);
				return mv_cli_usage_error(cli, "--limit takes a number (0 for no limit)");
			}
		} else if (option_value(argc, argv, &i, "--home", &val)) {
			cli->home = val;
		} else if (option_value(argc, argv, &i, "--db", &val)) {
			cli->db = val;
		} else if (g_str_has_prefix(a, "--")) {
			g_ptr_array_free(words, TRUE);
			return mv_cli_usage_error(cli, "unknown option %s", a);
		} else {
			g_ptr_array_add(words, argv[i]);
		}
	}
	if (words->len == 0) {
		g_ptr_array_free(words, TRUE);
		return mv_cli_usage_error(cli, "no QUERY (use '' to match every message)");
	}
	g_ptr_array_add(words, NULL);
	char *query = g_strjoinv(" ", (char **)words->pdata);
	g_ptr_array_free(words, TRUE);
	mv_db *db = NULL;
	cli->interactive = TRUE; /* a person waits for the answer */
	int rc = mv_cli_open_read(cli, &db, NULL);
	if (rc != 0) {
		g_free(query);
		return rc;
	}
	GPtrArray *hits = NULL;
	char *err = NULL;
	mv_status st = mv_catalog_find(db, query, count ? 0 : limit, include_destroyed, &hits, &err);
	if (st == MV_OK) {
		guint destroyed = 0;
		for (guint i = 0; i < hits->len; i++)
			destroyed += ((const mv_hit *)hits->pdata[i])->destroyed;
		char *extra = destroyed > 0 ? g_strdup_printf(" (%u destroyed)", destroyed) : g_strdup("");
		gint64 *ids = g_new(gint64, MAX(hits->len, 1));
		for (guint i = 0; i < hits->len; i++)
			ids[i] = ((const mv_hit *)hits->pdata[i])->id;
		char *read = mv_audit_read_details(ids, hits->len);
		g_free(ids);
		char *details = g_strdup_printf("results=%u%s%s%s", hits->len, extra,
		                                !count && limit > 0 && hits->len == (guint)limit
		                                    ? " (limit reached)"
		                                    : "",
		                                strchr(read, '\n'));
		g_free(read);
		g_free(extra);
		st = mv_audit_append(db, mv_audit_actor(), "search", query, details, NULL, &err);
		g_free(details);
		if (st != MV_OK)
			g_ptr_array_unref(hits);
	}
	mv_db_close(&db);
	g_free(query);
	if (st != MV_OK) {
		rc = mv_cli_fail(cli, st, err);
		g_free(err);
		return rc;
	}
	if (count && !cli->json) {
		printf("%u\n", hits->len);
	} else if (count) {
		g_autoptr(JsonBuilder) b = json_builder_new();
		json_builder_begin_object(b);
		mv_json_add_int(b, "count", hits->len);
		json_builder_end_object(b);
		mv_json_write(b, stdout);
	} else if (cli->json) {
		g_autoptr(JsonBuilder) b = json_builder_new();
		json_builder_begin_array(b);
		for (guint i = 0; i < hits->len; i++) {
			const mv_hit *h = hits->pdata[i];
			mv_json_begin_object(b, NULL);
			mv_json_add_int(b, "id", h->id);
			mv_json_add_string(b, "sha256", h->sha256);
			mv_json_add_string(b, "date", h->date);
			mv_json_add_string(b, "from", h->from);
			mv_json_add_string(b, "subject", h->subject);
			mv_json_add_int(b, "size", h->size);
			if (h->destroyed)
				mv_json_add_null(b, "has_attachment"); /* not kept */
			else
				mv_json_add_bool(b, "has_attachment", h->has_attachment);
			mv_json_add_string(b, "parse_status", h->parse_status);
			mv_json_add_string(b, "registration", h->registration);
			mv_json_add_string(b, "class", h->retention_class);
			mv_json_add_bool(b, "destroyed", h->destroyed);
			mv_json_add_string(b, "destroyed_at", h->destroyed_at);
			if (h->destroyed)
				mv_json_add_int(b, "purge_run", h->purge_run);
			else
				mv_json_add_null(b, "purge_run");
			json_builder_end_object(b);
		}
		json_builder_end_array(b);
		mv_json_write(b, stdout);
	} else {
		for (guint i = 0; i < hits->len; i++) {
			const mv_hit *h = hits->pdata[i];
			char *from = column(h->from != NULL ? h->from : "-", 32);
			char *subject = h->destroyed
			                    ? g_strdup_printf("[destroyed %s by purge run %" G_GINT64_FORMAT "]",
			                                      h->destroyed_at != NULL ? h->destroyed_at : "-",
			                                      h->purge_run)
			                    : g_strdup(h->subject != NULL ? h->subject : "");
			printf("%-8" G_GINT64_FORMAT " %-12s %-20s %s %s\n", h->id,
			       h->registration != NULL ? h->registration : "-",
			       h->date != NULL ? h->date : "-", from, subject);
			g_free(subject);
			g_free(from);
		}
	}
	g_ptr_array_unref(hits);
	return 0;
}

/* mailvault search: find messages with the query language. */
#include <string.h>
#include <unistd.h>

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
	"  lang:CODE      the detected language (ISO 639-1: de, fr, ja; lang:zh takes zh-Hant)\n"
	"  word \"a phrase\"   full text over subject, addresses, body and attachments, in\n"
	"                 any language: exact forms, every language's stems (Vertrag finds\n"
	"                 Verträgen), Chinese/Japanese/Korean words inside sentences\n"
	"  attachment:WORD attachment:\"a phrase\"   full text of the attachments only\n"	"  -term  NOT term  a OR b  ( ... )\n"
	"A query that does not parse is an error naming the column (exit status 65).\n"
	"Destroyed records are searched with --include-destroyed or a destroyed: term;\n"
	"a tombstone keeps registration, Message-ID, date, From, class and expiry, and\n"
	"a term on anything else (text, subject, to, ...) never matches one.\n"
	"Every search is an entry of the audit trail (who, the query, how many\n"
	"matched); a search that cannot be recorded returns nothing.\n"
	"\n"
	"Each hit (of the first 1,000) shows a snippet: a short fragment of its text\n"
	"with the matching words marked [like this] (bold on a terminal).\n"
	"\n"
	"Options:\n"
	"  --json          print a JSON array of {id, sha256, date, from, subject, size,\n"
	"                  has_attachment, parse_status, registration, class, destroyed,\n"
	"                  destroyed_at, purge_run, lang, snippet}\n"
	"  --fields A,B,.. only these fields, in this order (text: tab-separated; JSON:\n"
	"                  only these keys): id registration date from subject snippet\n"
	"                  sha256 size has_attachment parse_status class lang destroyed\n"
	"                  destroyed_at purge_run\n"
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

typedef enum {
	F_ID, F_REGISTRATION, F_DATE, F_FROM, F_SUBJECT, F_SNIPPET, F_SHA256, F_SIZE,
	F_HAS_ATTACHMENT, F_PARSE_STATUS, F_CLASS, F_LANG, F_DESTROYED, F_DESTROYED_AT,
	F_PURGE_RUN, F_N
} field;

static const char *const field_names[F_N] = {
	"id", "registration", "date", "from", "subject", "snippet", "sha256", "size",
	"has_attachment", "parse_status", "class", "lang", "destroyed", "destroyed_at", "purge_run",
};

/* "a,b,c" as fields; FALSE (and *bad_r the first unknown name, g_free)
 * when a name is unknown or the list is empty. */
static gboolean parse_fields(const char *list, GArray *out, char **bad_r)
{
	*bad_r = NULL;
	char **names = g_strsplit(list, ",", -1);
	for (char **n = names; *n != NULL; n++) {
		char *name = g_strstrip(*n);
		int f = 0;
		while (f < F_N && strcmp(field_names[f], name) != 0)
			f++;
		if (f == F_N) {
			*bad_r = g_strdup(name);
			break;
		}
		g_array_append_val(out, f);
	}
	g_strfreev(names);
	return *bad_r == NULL && out->len > 0;
}

/* The snippet with its markers as start/end (or removed when NULL). */
static char *render_snippet(const char *snippet, const char *start, const char *end)
{
	if (snippet == NULL)
		return NULL;
	GString *s = g_string_new(NULL);
	for (const char *c = snippet; *c != '\0'; c++) {
		if (*c == MV_SNIPPET_START)
			g_string_append(s, start);
		else if (*c == MV_SNIPPET_END)
			g_string_append(s, end);
		else if (*c == '\t')
			g_string_append_c(s, ' ');
		else
			g_string_append_c(s, *c);
	}
	return g_string_free(s, FALSE);
}

/* One field of a hit as text (g_free), NULL when it has none. */
static char *field_text(const mv_hit *h, field f, const char *start, const char *end)
{
	switch (f) {
	case F_ID: return g_strdup_printf("%" G_GINT64_FORMAT, h->id);
	case F_REGISTRATION: return g_strdup(h->registration);
	case F_DATE: return g_strdup(h->date);
	case F_FROM: return g_strdup(h->from);
	case F_SUBJECT:
		if (h->destroyed)
			return g_strdup_printf("[destroyed %s by purge run %" G_GINT64_FORMAT "]",
			                       h->destroyed_at != NULL ? h->destroyed_at : "-", h->purge_run);
		return g_strdup(h->subject);
	case F_SNIPPET: return render_snippet(h->snippet, start, end);
	case F_SHA256: return g_strdup(h->sha256);
	case F_SIZE: return g_strdup_printf("%" G_GINT64_FORMAT, h->size);
	case F_HAS_ATTACHMENT: return h->destroyed ? NULL : g_strdup(h->has_attachment ? "yes" : "no");
	case F_PARSE_STATUS: return g_strdup(h->parse_status);
	case F_CLASS: return g_strdup(h->retention_class);
	case F_LANG: return g_strdup(h->lang);
	case F_DESTROYED: return g_strdup(h->destroyed ? "yes" : "no");
	case F_DESTROYED_AT: return g_strdup(h->destroyed_at);
	case F_PURGE_RUN:
		return h->destroyed ? g_strdup_printf("%" G_GINT64_FORMAT, h->purge_run) : NULL;
	case F_N: break;
	}
	return NULL;
}

static void json_field(JsonBuilder *b, const mv_hit *h, field f)
{
	switch (f) {
	case F_ID: mv_json_add_int(b, "id", h->id); break;
	case F_SIZE: mv_json_add_int(b, "size", h->size); break;
	case F_HAS_ATTACHMENT:
		if (h->destroyed)
			mv_json_add_null(b, "has_attachment"); /* not kept */
		else
			mv_json_add_bool(b, "has_attachment", h->has_attachment);
		break;
	case F_DESTROYED: mv_json_add_bool(b, "destroyed", h->destroyed); break;
	case F_PURGE_RUN:
		if (h->destroyed)
			mv_json_add_int(b, "purge_run", h->purge_run);
		else
			mv_json_add_null(b, "purge_run");
		break;
	case F_SUBJECT: mv_json_add_string(b, "subject", h->subject); break;
	default: {
		char *v = field_text(h, f, "[", "]");
		mv_json_add_string(b, field_names[f], v);
		g_free(v);
	}
	}
}

int mv_cmd_search(mv_cli *cli, int argc, char **argv)
{
	gint64 limit = 100;
	gboolean count = FALSE, include_destroyed = FALSE;
	g_autoptr(GArray) fields = NULL; /* of field; NULL: the default layout */
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
		} else if (option_value(argc, argv, &i, "--fields", &val)) {
			char *bad = NULL;
			if (fields != NULL)
				g_array_set_size(fields, 0);
			else
				fields = g_array_new(FALSE, FALSE, sizeof(field));
			if (val == NULL || !parse_fields(val, fields, &bad)) {
				int rc = bad != NULL ? mv_cli_usage_error(cli, "--fields: unknown field '%s' "
				                                               "(see --help)", bad)
				                     : mv_cli_usage_error(cli, "--fields takes a list such as "
				                                               "id,date,subject");
				g_free(bad);
				g_ptr_array_free(words, TRUE);
				return rc;
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
	gboolean want_snippets = !count;
	if (fields != NULL) {
		want_snippets = FALSE;
		for (guint i = 0; i < fields->len; i++) {
			field f = g_array_index(fields, field, i);
			want_snippets |= f == F_SNIPPET || f == F_LANG;
		}
	}
	mv_db *db = NULL;
	mv_blobstore *blobs = NULL;
	cli->interactive = TRUE; /* a person waits for the answer */
	/* Snippets decode the stored search text: the blob store (and the key,
	 * when the archive is encrypted). */
	int rc = mv_cli_open_read(cli, &db, want_snippets ? &blobs : NULL);
	if (rc != 0) {
		g_free(query);
		return rc;
	}
	GPtrArray *hits = NULL;
	char *err = NULL;
	mv_status st = mv_catalog_find(db, query, count ? 0 : limit, include_destroyed, &hits, &err);
	if (st == MV_OK && want_snippets && hits->len > 0) {
		st = mv_catalog_snippets(db, blobs, query, hits, &err);
		if (st != MV_OK)
			g_ptr_array_unref(hits);
	}
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
	mv_blobstore_free(&blobs);
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
			if (fields != NULL) {
				for (guint k = 0; k < fields->len; k++)
					json_field(b, h, g_array_index(fields, field, k));
			} else {
				static const field all[] = {F_ID, F_SHA256, F_DATE, F_FROM, F_SUBJECT, F_SIZE,
				                            F_HAS_ATTACHMENT, F_PARSE_STATUS, F_REGISTRATION,
				                            F_CLASS, F_DESTROYED, F_DESTROYED_AT, F_PURGE_RUN,
				                            F_LANG, F_SNIPPET};
				for (gsize k = 0; k < G_N_ELEMENTS(all); k++)
					json_field(b, h, all[k]);
			}
			json_builder_end_object(b);
		}
		json_builder_end_array(b);
		mv_json_write(b, stdout);
	} else {
		gboolean tty = isatty(STDOUT_FILENO) && g_getenv("NO_COLOR") == NULL;
		const char *mark_on = tty ? "\033[1m" : "[", *mark_off = tty ? "\033[0m" : "]";
		for (guint i = 0; i < hits->len; i++) {
			const mv_hit *h = hits->pdata[i];
			if (fields != NULL) {
				/* tab-separated, "-" for none */
				for (guint k = 0; k < fields->len; k++) {
					char *v = field_text(h, g_array_index(fields, field, k), mark_on, mark_off);
					if (v != NULL)
						g_strdelimit(v, "\t\n\r", ' ');
					printf("%s%s", k > 0 ? "\t" : "", v != NULL ? v : "-");
					g_free(v);
				}
				putchar('\n');
				continue;
			}
			char *from = column(h->from != NULL ? h->from : "-", 32);
			char *subject = field_text(h, F_SUBJECT, mark_on, mark_off);
			printf("%-8" G_GINT64_FORMAT " %-12s %-20s %s %s\n", h->id,
			       h->registration != NULL ? h->registration : "-",
			       h->date != NULL ? h->date : "-", from, subject != NULL ? subject : "");
			char *snippet = render_snippet(h->snippet, mark_on, mark_off);
			if (snippet != NULL && snippet[0] != '\0')
				printf("         %s\n", snippet);
			g_free(snippet);
			g_free(subject);
			g_free(from);
		}
	}
	g_ptr_array_unref(hits);
	return 0;
}

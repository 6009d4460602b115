/* mailvault audit: read and verify the hash-chained audit trail. */
#include <string.h>

#include "mv-audit.h"
#include "mv-cli.h"
#include "mv-json.h"

static const char help[] =
	"Usage: mailvault audit log [--since YYYY-MM-DD] [--actor NAME] [--json]\n"
	"       mailvault audit verify [--anchor SEQ:HASH]... [--json]\n"
	"       mailvault audit show SEQ [--json]\n"
	"\n"
	"  log       the audit trail: policy loads, retention runs, and every committed\n"
	"            ingest batch with the SHA-256 of each message\n"
	"  verify    recompute every entry's hash chain outside the database; names the\n"
	"            first altered, removed, inserted or reordered entry (exit 79) and\n"
	"            prints the newest entry as SEQ:HASH: an auditor who records it\n"
	"            and passes it back with --anchor later detects a trail cut short\n"
	"            or rewritten since\n"
	"  show      one entry whole: every field, its hash format, prev_hash and hash\n"
	"            (exit 66 when there is no entry SEQ)\n"
	"\n"
	"Options:\n"
	"  --since DATE    entries from that day on (UTC)\n"
	"  --actor NAME    only the entries NAME wrote: the actor the program named,\n"
	"                  or the database role the database added to it (every\n"
	"                  search, show, get, export and restore is an entry, with\n"
	"                  the ids it returned: what did this person look at)\n"
	"  --anchor SEQ:HASH  an entry recorded earlier; verify fails (exit 79) when\n"
	"                  the trail no longer reaches it or no longer matches it\n"
	"  --json          machine-readable output\n" MV_CLI_COMMON_HELP;

/* audit show SEQ: one entry, every field whole. */
static int show(mv_cli *cli, const char *arg)
{
	char *end = NULL;
	gint64 seq = g_ascii_strtoll(arg, &end, 10);
	if (!g_ascii_isdigit(*arg) || end == NULL || *end != '\0' || seq <= 0)
		return mv_cli_usage_error(cli, "SEQ is an entry number (1, 2, ...), not '%s'", arg);
	mv_db *db = NULL;
	cli->interactive = TRUE;
	int rc = mv_cli_open(cli, &db, NULL);
	if (rc != 0)
		return rc;
	GPtrArray *entries = NULL;
	char *err = NULL;
	mv_status st = mv_audit_get(db, &seq, 1, &entries, &err);
	mv_db_close(&db);
	if (st == MV_OK && entries->len == 0)
		st = mv_fail(&err, MV_ERR_NOT_FOUND, "no audit entry %" G_GINT64_FORMAT, seq);
	if (st == MV_OK) {
		const mv_audit_entry *e = entries->pdata[0];
		if (cli->json) {
			g_autoptr(JsonBuilder) b = json_builder_new();
			json_builder_begin_object(b);
			mv_json_add_int(b, "seq", e->seq);
			mv_json_add_string(b, "at", e->at);
			mv_json_add_string(b, "actor", e->actor);
			mv_json_add_string(b, "action", e->action);
			mv_json_add_string(b, "subject", e->subject);
			mv_json_add_string(b, "details", e->details);
			mv_json_add_int(b, "format", e->format);
			mv_json_add_string(b, "prev_hash", e->prev_hash);
			mv_json_add_string(b, "hash", e->hash);
			json_builder_end_object(b);
			mv_json_write(b, stdout);
		} else {
			printf("seq:       %" G_GINT64_FORMAT "\nat:        %s\nactor:     %s\naction:    %s\n"
			       "subject:   %s\nformat:    %d\nprev_hash: %s\nhash:      %s\ndetails:\n",
			       e->seq, e->at, e->actor, e->action, e->subject, e->format, e->prev_hash, e->hash);
			char **lines = g_strsplit(e->details, "\n", -1);
			for (char **l = lines; *l != NULL; l++)
				printf("  %s\n", *l);
			g_strfreev(lines);
		}
	}
	if (entries != NULL)
		g_ptr_array_unref(entries);
	if (st != MV_OK)
		rc = mv_cli_fail(cli, st, err);
	g_free(err);
	return rc;
}

int mv_cmd_audit(mv_cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {MV_CLI_COMMON_LONG_OPTIONS,
	                                         {"since", required_argument, NULL, 's'},
	                                         {"json", no_argument, NULL, 'j'},
	                                         {"anchor", required_argument, NULL, 'a'},
	                                         {"actor", required_argument, NULL, 'A'},
	                                         {NULL, 0, NULL, 0}};
	const char *since = NULL, *actor = NULL;
	g_autoptr(GArray) anchors = g_array_new(FALSE, TRUE, sizeof(mv_audit_anchor));
	int o;
	optind = 1;
	while ((o = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (mv_cli_common_option(cli, o, optarg))
			continue;
		if (o == 'h') {
			fputs(help, stdout);
			return 0;
		}
		if (o == 'j')
			cli->json = TRUE;
		else if (o == 'A')
			actor = optarg;
		else if (o == 'a') {
			mv_audit_anchor a;
			char *aerr = NULL;
			if (mv_audit_anchor_parse(optarg, &a, &aerr) != MV_OK) {
				int urc = mv_cli_usage_error(cli, "%s", aerr);
				g_free(aerr);
				return urc;
			}
			g_array_append_val(anchors, a);
		}
		else if (o == 's') {
			GDate *d = g_date_new();
			g_date_set_parse(d, optarg);
			gboolean ok = strlen(optarg) == 10 && g_date_valid(d);
			g_date_free(d);
			if (!ok)
				return mv_cli_usage_error(cli, "--since takes a date YYYY-MM-DD");
			since = optarg;
		} else
			return mv_cli_usage_error(cli, "unknown option");
	}
	if (optind < argc && strcmp(argv[optind], "show") == 0) {
		if (optind + 2 != argc)
			return mv_cli_usage_error(cli, "audit show takes one entry number SEQ");
		return show(cli, argv[optind + 1]);
	}
	if (optind + 1 != argc)
		return mv_cli_usage_error(cli, "expected log, verify or show");
	const char *action = argv[optind];
	if (strcmp(action, "log") != 0 && strcmp(action, "verify") != 0)
		return mv_cli_usage_error(cli, "unknown action '%s'", action);
	if (actor != NULL && action[0] != 'l')
		return mv_cli_usage_error(cli, "--actor belongs to audit log");
	mv_db *db = NULL;
	cli->interactive = action[0] == 'l'; /* verify walks the whole chain */
	int rc = mv_cli_open(cli, &db, NULL);
	if (rc != 0)
		return rc;
	char *err = NULL;
	mv_status st;
	if (action[0] == 'l') {
		GPtrArray *entries = NULL;
		st = mv_audit_list(db, since, &entries, &err);
		if (st == MV_OK && actor != NULL) {
			GPtrArray *kept = g_ptr_array_new_with_free_func(mv_audit_entry_free);
			for (guint i = 0; i < entries->len; i++) {
				if (mv_audit_entry_by(entries->pdata[i], actor))
					g_ptr_array_add(kept, entries->pdata[i]);
				else
					mv_audit_entry_free(entries->pdata[i]);
			}
			g_ptr_array_set_free_func(entries, NULL);
			g_ptr_array_unref(entries);
			entries = kept;
		}
		if (st == MV_OK && cli->json) {
			g_autoptr(JsonBuilder) b = json_builder_new();
			json_builder_begin_array(b);
			for (guint i = 0; i < entries->len; i++) {
				const mv_audit_entry *e = entries->pdata[i];
				mv_json_begin_object(b, NULL);
				mv_json_add_int(b, "seq", e->seq);
				mv_json_add_string(b, "at", e->at);
				mv_json_add_string(b, "actor", e->actor);
				mv_json_add_string(b, "action", e->action);
				mv_json_add_string(b, "subject", e->subject);
				mv_json_add_string(b, "details", e->details);
				mv_json_add_string(b, "hash", e->hash);
				mv_json_add_string(b, "prev_hash", e->prev_hash);
				mv_json_add_int(b, "format", e->format);
				json_builder_end_object(b);
			}
			json_builder_end_array(b);
			mv_json_write(b, stdout);
		}
		for (guint i = 0; st == MV_OK && !cli->json && i < entries->len; i++) {
			const mv_audit_entry *e = entries->pdata[i];
			char *oneline = g_strdelimit(g_strdup(e->details), "\n", ' ');
			printf("%-6" G_GINT64_FORMAT " %s %-12s %-16s %s %.160s\n", e->seq, e->at, e->actor,
			       e->action, e->subject, oneline);
			g_free(oneline);
		}
		if (entries != NULL)
			g_ptr_array_unref(entries);
	} else {
		gint64 checked = 0, bad = 0;
		mv_audit_anchor top;
		st = mv_audit_verify(db, (const mv_audit_anchor *)(void *)anchors->data, anchors->len,
		                     &checked, &bad, &top, &err);
		char *head = st == MV_OK && top.seq > 0 ? g_strdup(top.hash) : NULL;
		if (cli->json) {
			g_autoptr(JsonBuilder) b = json_builder_new();
			json_builder_begin_object(b);
			mv_json_add_bool(b, "intact", st == MV_OK);
			mv_json_add_int(b, "checked", checked);
			if (bad > 0)
				mv_json_add_int(b, "first_bad", bad);
			else
				mv_json_add_null(b, "first_bad");
			mv_json_add_string(b, "error", st == MV_OK ? NULL : err);
			mv_json_add_string(b, "head", head);
			mv_json_add_int(b, "head_seq", st == MV_OK ? top.seq : 0);
			mv_json_add_int(b, "anchors_checked", st == MV_OK ? anchors->len : 0);
			json_builder_end_object(b);
			mv_json_write(b, stdout);
		} else if (st == MV_OK) {
			printf("audit trail intact: %" G_GINT64_FORMAT " entries; newest hash %s\n", checked,
			       head != NULL ? head : "-");
			if (head != NULL)
				printf("anchor: %" G_GINT64_FORMAT ":%s\n", top.seq, head);
		}
		g_free(head);
		if (st == MV_ERR_INTEGRITY && cli->json) {
			g_free(err);
			mv_db_close(&db);
			return MV_EXIT_INTEGRITY;
		}
	}
	mv_db_close(&db);
	if (st != MV_OK)
		rc = mv_cli_fail(cli, st, err);
	g_free(err);
	return rc;
}

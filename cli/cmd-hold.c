/* mailvault hold: legal holds. */
#include <string.h>

#include "mv-audit.h"
#include "mv-cli.h"
#include "mv-json.h"
#include "mv-hold.h"

static const char help[] =
	"Usage: mailvault hold create NAME --case CASE --reason TEXT --query QUERY [--ongoing]\n"
	"       mailvault hold list [--json]\n"
	"       mailvault hold show NAME [--json]\n"
	"       mailvault hold release NAME --reason TEXT\n"
	"\n"
	"  create    hold every message QUERY matches (the query language of search),\n"
	"            at once; with --ongoing, new messages that match are held as they\n"
	"            are archived.  A message whose attachment text ingest deferred\n"
	"            (MAILVAULT_EXTRACT=deferred) is held pending (protected) until\n"
	"            'mailvault index --reextract' has read it; then the query decides\n"
	"  list      every hold, active and released, with its message count\n"
	"  show      one hold: query, counts, who created and released it and when\n"
	"  release   end a hold (recorded with the reason; holds are never deleted)\n"
	"\n"
	"Who acts is $MAILVAULT_ACTOR, else $SUDO_USER, else the login name.\n"
	"\n"
	"Options:\n"
	"  --case CASE     the case or matter reference\n"
	"  --reason TEXT   why (required for create and release)\n"
	"  --query QUERY   which messages\n"
	"  --ongoing       also hold matching messages archived later\n"
	"  --json          machine-readable output\n" MV_CLI_COMMON_HELP;

static void print_hold(const mv_hold_info *h)
{
	printf("%-20s case %-12s %s %-8s %6" G_GINT64_FORMAT " messages  by %s at %s%s%s\n",
	       h->name, h->case_ref, h->released_at != NULL ? "released" : "active  ",
	       h->ongoing ? "ongoing" : "", h->messages, h->created_by, h->created_at,
	       h->released_at != NULL ? "; released " : "",
	       h->released_at != NULL ? h->released_at : "");
	if (h->pending > 0)
		printf("%-20s %" G_GINT64_FORMAT " new messages protected, waiting for the hold's query "
		       "(it ran out of time at ingest, or their attachment text was deferred; "
		       "`mailvault index --reextract` settles them)\n",
		       "", h->pending);
}

/* One hold as a JSON object. */
static void add_hold(JsonBuilder *b, const mv_hold_info *h)
{
	json_builder_begin_object(b);
	mv_json_add_string(b, "name", h->name);
	mv_json_add_string(b, "case", h->case_ref);
	mv_json_add_string(b, "reason", h->reason);
	mv_json_add_string(b, "query", h->query);
	mv_json_add_bool(b, "ongoing", h->ongoing);
	mv_json_add_int(b, "messages", h->messages);
	mv_json_add_int(b, "pending", h->pending);
	mv_json_add_string(b, "created_by", h->created_by);
	mv_json_add_string(b, "created_at", h->created_at);
	mv_json_add_string(b, "released_by", h->released_by);
	mv_json_add_string(b, "released_at", h->released_at);
	mv_json_add_string(b, "release_reason", h->release_reason);
	json_builder_end_object(b);
}

int mv_cmd_hold(mv_cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {MV_CLI_COMMON_LONG_OPTIONS,
	                                         {"case", required_argument, NULL, 'c'},
	                                         {"reason", required_argument, NULL, 'r'},
	                                         {"query", required_argument, NULL, 'q'},
	                                         {"ongoing", no_argument, NULL, 'o'},
	                                         {"json", no_argument, NULL, 'j'},
	                                         {NULL, 0, NULL, 0}};
	const char *case_ref = NULL, *reason = NULL, *query = NULL;
	gboolean ongoing = FALSE;
	int o;
	optind = 1;
	while ((o = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (mv_cli_common_option(cli, o, optarg))
			continue;
		switch (o) {
		case 'h':
			fputs(help, stdout);
			return 0;
		case 'c': case_ref = optarg; break;
		case 'r': reason = optarg; break;
		case 'q': query = optarg; break;
		case 'o': ongoing = TRUE; break;
		case 'j': cli->json = TRUE; break;
		default: return mv_cli_usage_error(cli, "unknown option");
		}
	}
	if (optind >= argc)
		return mv_cli_usage_error(cli, "expected create, list, show or release");
	const char *action = argv[optind];
	const char *name = optind + 1 < argc ? argv[optind + 1] : NULL;
	gboolean needs_name = strcmp(action, "list") != 0;
	if ((needs_name && (name == NULL || optind + 2 != argc)) || (!needs_name && optind + 1 != argc))
		return mv_cli_usage_error(cli, needs_name ? "hold %s takes one NAME" : "hold list takes no argument", action);
	if (strcmp(action, "create") == 0 && (case_ref == NULL || reason == NULL || query == NULL))
		return mv_cli_usage_error(cli, "hold create needs --case, --reason and --query");
	if (strcmp(action, "release") == 0 && reason == NULL)
		return mv_cli_usage_error(cli, "hold release needs --reason");
	if (strcmp(action, "create") != 0 && strcmp(action, "release") != 0 &&
	    strcmp(action, "list") != 0 && strcmp(action, "show") != 0)
		return mv_cli_usage_error(cli, "unknown action '%s'", action);
	mv_db *db = NULL;
	/* list and show only read; create and release are administrative
	 * actions that must be allowed to finish on a large archive. */
	cli->interactive = strcmp(action, "list") == 0 || strcmp(action, "show") == 0;
	int rc = mv_cli_open(cli, &db, NULL);
	if (rc != 0)
		return rc;
	char *err = NULL;
	mv_status st;
	if (strcmp(action, "create") == 0) {
		gint64 held = 0, pending = 0;
		st = mv_hold_create(db, name, case_ref, reason, query, ongoing, mv_audit_actor(), &held,
		                    &pending, &err);
		if (st == MV_OK) {
			if (cli->json) {
				g_autoptr(JsonBuilder) b = json_builder_new();
				json_builder_begin_object(b);
				mv_json_add_string(b, "name", name);
				mv_json_add_int(b, "messages", held);
				mv_json_add_int(b, "pending", pending);
				json_builder_end_object(b);
				mv_json_write(b, stdout);
			} else {
				printf("hold %s: %" G_GINT64_FORMAT " messages held%s\n", name, held,
				       ongoing ? "; new matching messages will be held as they arrive" : "");
				if (pending > 0)
					printf("hold %s: %" G_GINT64_FORMAT " messages await their attachment text: "
					       "pending (protected) until 'mailvault index --reextract' reads it\n",
					       name, pending);
			}
		}
	} else if (strcmp(action, "release") == 0) {
		st = mv_hold_release(db, name, reason, mv_audit_actor(), &err);
		if (st == MV_OK)
			printf("hold %s released\n", name);
	} else if (strcmp(action, "list") == 0) {
		GPtrArray *holds = NULL;
		st = mv_hold_list(db, &holds, &err);
		if (st == MV_OK) {
			if (cli->json) {
				g_autoptr(JsonBuilder) b = json_builder_new();
				json_builder_begin_array(b);
				for (guint i = 0; i < holds->len; i++)
					add_hold(b, holds->pdata[i]);
				json_builder_end_array(b);
				mv_json_write(b, stdout);
			} else {
				for (guint i = 0; i < holds->len; i++)
					print_hold(holds->pdata[i]);
			}
			g_ptr_array_unref(holds);
		}
	} else {
		mv_hold_info *h = NULL;
		st = mv_hold_show(db, name, &h, &err);
		if (st == MV_OK) {
			if (cli->json) {
				g_autoptr(JsonBuilder) b = json_builder_new();
				add_hold(b, h);
				mv_json_write(b, stdout);
			} else {
				print_hold(h);
				printf("  query:  %s\n  reason: %s\n", h->query, h->reason);
				if (h->release_reason != NULL)
					printf("  released by %s: %s\n", h->released_by, h->release_reason);
			}
			mv_hold_info_free(h);
		}
	}
	mv_db_close(&db);
	if (st != MV_OK)
		rc = mv_cli_fail(cli, st, err);
	g_free(err);
	return rc;
}

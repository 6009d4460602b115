/* mailvault erase: erasure requests (GDPR Art. 17): propose, approve (a
 * second person), reject, list.  The rules are the database's
 * (schema/025-erasure.sql, retention/mv-erase.h). */
#include <string.h>

#include "mv-audit.h"
#include "mv-cli.h"
#include "mv-erase.h"
#include "mv-json.h"
#include "mv-pack.h"
#include "mv-store.h"

#define MAX_WAIT_SECONDS 2000000

static const char help[] =
	"Usage: mailvault erase ID|SHA256|REGISTRATION... --reason TEXT [--json]\n"
	"       mailvault erase approve REQUEST [--wait SECONDS] [--json]\n"
	"       mailvault erase reject REQUEST --reason TEXT [--json]\n"
	"       mailvault erase list [--state STATE] [--json]\n"
	"\n"
	"Erasure requests (GDPR Art. 17, where no retention obligation applies):\n"
	"destroy single records outside their retention schedule, on the word of two\n"
	"people.  A member of the legal role proposes; a second, different database\n"
	"role of the legal role approves, and only then is the record destroyed, the\n"
	"way purge destroys: a tombstone stays (`mailvault show`), and a purge run\n"
	"of its own carries the destruction certificate, naming the proposer and the\n"
	"approver (`mailvault purge --certificate RUN`).  A record under a legal hold\n"
	"or kept by a locked class is never erased: refused when proposed, and again\n"
	"when approved if a hold came meanwhile.  The database enforces all of this,\n"
	"whatever the client; every step is an audit entry (erase.propose,\n"
	"erase.refuse, erase.approve, erase.reject).\n"
	"\n"
	"  erase ID...  propose: one request per message (at most 1000); those that\n"
	"               may not be erased are recorded as refused (exit 77)\n"
	"  approve      approve request REQUEST: destroys the record and certifies it;\n"
	"               exit 77 when you proposed it yourself or it is refused now\n"
	"  reject       turn request REQUEST down (the proposer may withdraw it)\n"
	"  list         the requests, oldest first\n"
	"\n"
	"Options:\n"
	"  --reason TEXT   why (required to propose and to reject; at most 2000 bytes)\n"
	"  --wait SECONDS  approve: wait up to SECONDS for a running purge (default 0:\n"
	"                  exit 75 at once)\n"
	"  --state STATE   list: only proposed, erased, rejected or refused requests\n"
	"  --json          machine-readable output\n" MV_CLI_COMMON_HELP;

static void request_json(JsonBuilder *b, const mv_erase_request *e)
{
	mv_json_begin_object(b, NULL);
	mv_json_add_int(b, "request", e->id);
	mv_json_add_int(b, "message", e->message);
	mv_json_add_string(b, "state", e->state);
	mv_json_add_string(b, "reason", e->reason);
	mv_json_add_string(b, "proposed_role", e->proposed_role);
	mv_json_add_string(b, "proposed_by", e->proposed_by);
	mv_json_add_string(b, "proposed_at", e->proposed_at);
	mv_json_add_string(b, "decided_role", e->decided_role);
	mv_json_add_string(b, "decided_by", e->decided_by);
	mv_json_add_string(b, "decided_at", e->decided_at);
	mv_json_add_string(b, "note", e->note);
	if (e->run > 0)
		mv_json_add_int(b, "run", e->run);
	mv_json_add_string(b, "certificate_sha256", e->certificate_sha256);
	json_builder_end_object(b);
}

static void request_text(const mv_erase_request *e)
{
	printf("request %" G_GINT64_FORMAT ": message %" G_GINT64_FORMAT " %s; proposed by %s at %s",
	       e->id, e->message, e->state, e->proposed_role, e->proposed_at);
	if (e->decided_role != NULL)
		printf("; decided by %s at %s", e->decided_role, e->decided_at);
	if (e->run > 0)
		printf("; purge run %" G_GINT64_FORMAT " certificate %s", e->run,
		       e->certificate_sha256 != NULL ? e->certificate_sha256 : "(unfinished)");
	if (e->note != NULL)
		printf("\n  %s", e->note);
	printf("\n");
}

static void print_requests(const mv_cli *cli, GPtrArray *list, gboolean array)
{
	if (cli->json) {
		g_autoptr(JsonBuilder) b = json_builder_new();
		if (array)
			json_builder_begin_array(b);
		for (guint i = 0; i < list->len; i++)
			request_json(b, list->pdata[i]);
		if (array)
			json_builder_end_array(b);
		mv_json_write(b, stdout);
	} else {
		for (guint i = 0; i < list->len; i++)
			request_text(list->pdata[i]);
	}
}

static int fail(mv_cli *cli, mv_status st, char *err)
{
	int rc = mv_cli_fail(cli, st, err);
	g_free(err);
	return rc;
}

int mv_cmd_erase(mv_cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {MV_CLI_COMMON_LONG_OPTIONS,
	                                         {"json", no_argument, NULL, 'j'},
	                                         {"reason", required_argument, NULL, 'r'},
	                                         {"wait", required_argument, NULL, 'w'},
	                                         {"state", required_argument, NULL, 's'},
	                                         {NULL, 0, NULL, 0}};
	const char *reason = NULL, *state = NULL;
	gint64 wait = 0;
	int o;
	optind = 1;
	while ((o = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (mv_cli_common_option(cli, o, optarg))
			continue;
		switch (o) {
		case 'h':
			fputs(help, stdout);
			return 0;
		case 'j':
			cli->json = TRUE;
			continue;
		case 'r':
			reason = optarg;
			continue;
		case 's':
			state = optarg;
			continue;
		case 'w':
			if (strcmp(optarg, "0") != 0 && (!mv_cli_positive(optarg, &wait) || wait > MAX_WAIT_SECONDS))
				return mv_cli_usage_error(cli, "--wait takes a number of seconds up to %d",
				                          MAX_WAIT_SECONDS);
			continue;
		default:
			return mv_cli_usage_error(cli, "unknown option");
		}
	}
	if (optind >= argc)
		return mv_cli_usage_error(cli, "expected message IDs, or approve, reject or list");
	const char *action = argv[optind];
	int nargs = argc - optind - 1;
	gboolean is_list = strcmp(action, "list") == 0, is_approve = strcmp(action, "approve") == 0,
		 is_reject = strcmp(action, "reject") == 0;
	gint64 request = 0;
	if (is_list && nargs != 0)
		return mv_cli_usage_error(cli, "erase list takes no arguments");
	if (state != NULL && (!is_list || (strcmp(state, "proposed") != 0 && strcmp(state, "erased") != 0 &&
	                                   strcmp(state, "rejected") != 0 && strcmp(state, "refused") != 0)))
		return mv_cli_usage_error(cli, "--state is list's, one of proposed, erased, rejected, refused");
	if (is_approve || is_reject) {
		if (nargs != 1 || !mv_cli_positive(argv[optind + 1], &request))
			return mv_cli_usage_error(cli, "erase %s takes one REQUEST number", action);
		if (is_reject && reason == NULL)
			return mv_cli_usage_error(cli, "erase reject needs --reason TEXT");
	} else if (!is_list) {
		if (reason == NULL)
			return mv_cli_usage_error(cli, "an erasure needs --reason TEXT");
		if (argc - optind > MV_ERASE_MAX_IDS)
			return mv_cli_usage_error(cli, "propose at most %d messages at a time", MV_ERASE_MAX_IDS);
	}
	if (wait > 0 && !is_approve)
		return mv_cli_usage_error(cli, "--wait is approve's");
	mv_db *db = NULL;
	cli->interactive = TRUE;
	int rc = mv_cli_open(cli, &db, NULL);
	if (rc != 0)
		return rc;
	char *err = NULL;
	mv_status st = MV_OK;
	if (is_list) {
		GPtrArray *list = NULL;
		st = mv_erase_list(db, state, 0, &list, &err);
		if (st == MV_OK) {
			print_requests(cli, list, TRUE);
			if (!cli->json)
				printf("%u requests\n", list->len);
			g_ptr_array_unref(list);
		}
	} else if (is_reject) {
		st = mv_erase_reject(db, request, reason, mv_audit_actor(), &err);
		GPtrArray *one = NULL;
		if (st == MV_OK)
			st = mv_erase_list(db, NULL, request, &one, &err);
		if (st == MV_OK) {
			print_requests(cli, one, FALSE);
			g_ptr_array_unref(one);
		}
	} else if (is_approve) {
		mv_erase_request *e = NULL;
		st = mv_erase_approve(db, request, mv_audit_actor(), (guint)wait, &e, &err);
		if (st == MV_OK) {
			/* The erased record's bytes leave their pack frames now (docs/storage.md). */
			mv_pack_result pr;
			char *perr = NULL;
			if (mv_pack_sweep_db(db, cli->key_file, &pr, &perr) != MV_OK)
				fprintf(stderr, "mailvault: erase: the erased record's bytes are still in "
				        "their packs (mailvault compact removes them): %s\n", perr);
			g_free(perr);
		}
		if (e != NULL) {
			GPtrArray *one = g_ptr_array_new_with_free_func(mv_erase_request_free);
			g_ptr_array_add(one, e);
			if (st == MV_OK || !cli->json)
				print_requests(cli, one, FALSE);
			g_ptr_array_unref(one);
		}
	} else {
		GArray *ids = g_array_new(FALSE, FALSE, sizeof(gint64));
		for (int i = optind; st == MV_OK && i < argc; i++) {
			gint64 id = 0;
			st = mv_store_resolve(db, argv[i], &id, &err);
			if (st == MV_OK)
				g_array_append_val(ids, id);
		}
		GPtrArray *list = NULL;
		if (st == MV_OK)
			st = mv_erase_propose(db, (const gint64 *)(void *)ids->data, ids->len, reason,
			                      mv_audit_actor(), &list, &err);
		if (st == MV_OK) {
			print_requests(cli, list, TRUE);
			guint refused = 0;
			for (guint i = 0; i < list->len; i++)
				refused += strcmp(((mv_erase_request *)list->pdata[i])->state, "refused") == 0;
			if (refused > 0)
				st = mv_fail(&err, MV_ERR_DENIED, "%u of %u messages may not be erased (refused)",
				             refused, list->len);
			g_ptr_array_unref(list);
		}
		g_array_unref(ids);
	}
	mv_db_close(&db);
	if (st != MV_OK)
		return fail(cli, st, err);
	return 0;
}

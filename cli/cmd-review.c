/* mailvault review: the queue of expired records awaiting a destruction
 * decision, and the decisions. */
#include <string.h>

#include "mv-audit.h"
#include "mv-cli.h"
#include "mv-json.h"
#include "mv-policy-store.h"
#include "mv-review.h"
#include "mv-store.h"

static const char help[] =
	"Usage: mailvault review list [--limit N] [--json]\n"
	"       mailvault review approve ID... [--by LABEL] [--json]\n"
	"       mailvault review extend ID... --until DATE --reason TEXT [--by LABEL] [--json]\n"
	"\n"
	"Classes whose disposition is review are not destroyed when they expire:\n"
	"their expired, unheld messages wait here for a decision.\n"
	"\n"
	"  list      the queue: expired messages of review classes, oldest first,\n"
	"            with the approvals each has and needs\n"
	"  approve   approve destruction; the next `mailvault purge` destroys each\n"
	"            approved message with a certificate.  A class with four-eyes\n"
	"            needs two approvals by different people.\n"
	"  extend    keep the messages until DATE (later than today and than their\n"
	"            current expiry); approvals given so far lapse, and a later\n"
	"            policy cannot bring the expiry back before DATE\n"
	"\n"
	"ID is a message id or SHA-256.  Decisions are all or none, kept for good,\n"
	"and recorded in the audit trail with who ran the command ($MAILVAULT_ACTOR,\n"
	"else $SUDO_USER, else the login name).\n"
	"\n"
	"The reviewer is who the database says logged in: the database role and, on\n"
	"the embedded database, the operating-system user (`mailvault user add\n"
	"OSUSER --role legal` gives a person their own role).  The same identity\n"
	"cannot approve a message twice, under any --by label: exit 77.\n"
	"\n"
	"Options:\n"
	"  --by LABEL      a label kept with the decision (a name, a ticket); it does\n"
	"                  not identify the reviewer\n"
	"  --until DATE    YYYY-MM-DD (or an ISO 8601 timestamp)\n"
	"  --reason TEXT   why the retention is extended\n"
	"  --limit N       list at most N messages\n"
	"  --json          machine-readable output: an array of {id, registration,\n"
	"                  sha256, date, from, subject, class, expires_at, approvals,\n"
	"                  needed, approved_by, approvers: [{role, os_user, label,\n"
	"                  at}]}\n" MV_CLI_COMMON_HELP;

/* "mv-rev-a", "mv-rev-a 'alice'", "mailvault", joined by ", " */
static char *approvers_text(const mv_review_item *it)
{
	GString *s = g_string_new(NULL);
	for (guint i = 0; i < it->approvers->len; i++) {
		const mv_review_approver *a = it->approvers->pdata[i];
		if (i > 0)
			g_string_append(s, ", ");
		g_string_append(s, a->identity);
		if (a->os_user != NULL && strcmp(a->os_user, a->identity) != 0)
			g_string_append_printf(s, " (OS user %s)", a->os_user);
		if (a->label != NULL)
			g_string_append_printf(s, " '%s'", a->label);
	}
	return g_string_free(s, FALSE);
}

static void print_items(const GPtrArray *items, gboolean json)
{
	if (!json) {
		for (guint i = 0; i < items->len; i++) {
			const mv_review_item *it = items->pdata[i];
			char *by = approvers_text(it);
			printf("%-8" G_GINT64_FORMAT " %-16s %-14s expired %s  %u/%u approvals%s%s  %.60s\n",
			       it->id, it->registration != NULL ? it->registration : "-", it->class_name,
			       it->expires_at, it->approvals, it->needed, *by != '\0' ? " by " : "", by,
			       it->subject != NULL ? it->subject : "");
			g_free(by);
		}
		return;
	}
	g_autoptr(JsonBuilder) b = json_builder_new();
	json_builder_begin_array(b);
	for (guint i = 0; i < items->len; i++) {
		const mv_review_item *it = items->pdata[i];
		mv_json_begin_object(b, NULL);
		mv_json_add_int(b, "id", it->id);
		mv_json_add_string(b, "registration", it->registration);
		mv_json_add_string(b, "sha256", it->sha256);
		mv_json_add_string(b, "date", it->date);
		mv_json_add_string(b, "from", it->from);
		mv_json_add_string(b, "subject", it->subject);
		mv_json_add_string(b, "class", it->class_name);
		mv_json_add_string(b, "expires_at", it->expires_at);
		mv_json_add_int(b, "approvals", it->approvals);
		mv_json_add_int(b, "needed", it->needed);
		mv_json_add_string(b, "approved_by", it->approved_by);
		mv_json_begin_array(b, "approvers");
		for (guint k = 0; k < it->approvers->len; k++) {
			const mv_review_approver *a = it->approvers->pdata[k];
			mv_json_begin_object(b, NULL);
			mv_json_add_string(b, "role", a->identity);
			mv_json_add_string(b, "os_user", a->os_user);
			mv_json_add_string(b, "label", a->label);
			mv_json_add_string(b, "at", a->at);
			json_builder_end_object(b);
		}
		json_builder_end_array(b);
		json_builder_end_object(b);
	}
	json_builder_end_array(b);
	mv_json_write(b, stdout);
}

int mv_cmd_review(mv_cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {MV_CLI_COMMON_LONG_OPTIONS,
	                                         {"by", required_argument, NULL, 'b'},
	                                         {"until", required_argument, NULL, 'u'},
	                                         {"reason", required_argument, NULL, 'r'},
	                                         {"limit", required_argument, NULL, 'l'},
	                                         {"json", no_argument, NULL, 'j'},
	                                         {NULL, 0, NULL, 0}};
	const char *by = NULL, *until = NULL, *reason = NULL;
	gint64 limit = 0;
	int o;
	optind = 1;
	while ((o = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (mv_cli_common_option(cli, o, optarg))
			continue;
		switch (o) {
		case 'h':
			fputs(help, stdout);
			return 0;
		case 'b': by = optarg; break;
		case 'u': until = optarg; break;
		case 'r': reason = optarg; break;
		case 'j': cli->json = TRUE; break;
		case 'l':
			if (!mv_cli_positive(optarg, &limit))
				return mv_cli_usage_error(cli, "--limit takes a positive number");
			break;
		default:
			return mv_cli_usage_error(cli, "unknown option");
		}
	}
	if (optind >= argc)
		return mv_cli_usage_error(cli, "expected list, approve or extend");
	const char *action = argv[optind++];
	gboolean list = strcmp(action, "list") == 0, approve = strcmp(action, "approve") == 0,
		 extend = strcmp(action, "extend") == 0;
	if (!list && !approve && !extend)
		return mv_cli_usage_error(cli, "unknown action '%s'", action);
	if (list && optind != argc)
		return mv_cli_usage_error(cli, "review list takes no argument");
	if (!list && optind == argc)
		return mv_cli_usage_error(cli, "review %s needs at least one message ID", action);
	if (list && by != NULL)
		return mv_cli_usage_error(cli, "--by belongs to review approve and extend");
	if (extend && (until == NULL || reason == NULL))
		return mv_cli_usage_error(cli, "review extend needs --until DATE and --reason TEXT");
	if (!extend && (until != NULL || reason != NULL))
		return mv_cli_usage_error(cli, "--until and --reason belong to review extend");

	mv_db *db = NULL;
	cli->interactive = list; /* review list only reads */
	int rc = mv_cli_open(cli, &db, NULL);
	if (rc != 0)
		return rc;
	char *err = NULL;
	mv_policy *policy = NULL;
	gint64 version = 0;
	GPtrArray *items = NULL;
	GArray *ids = g_array_new(FALSE, FALSE, sizeof(gint64));
	mv_status st = mv_policy_store_current(db, &policy, &version, &err);
	for (int i = optind; st == MV_OK && i < argc; i++) {
		gint64 id = 0;
		st = mv_store_resolve(db, argv[i], &id, &err);
		if (st == MV_OK)
			g_array_append_val(ids, id);
	}
	if (st == MV_OK && list)
		st = mv_review_list(db, policy, limit, &items, &err);
	else if (st == MV_OK && approve)
		st = mv_review_approve(db, policy, (const gint64 *)(void *)ids->data, ids->len, by,
		                       mv_audit_actor(), &items, &err);
	else if (st == MV_OK)
		st = mv_review_extend(db, policy, (const gint64 *)(void *)ids->data, ids->len, until,
		                      reason, by, mv_audit_actor(), &items, &err);
	mv_db_close(&db);
	mv_policy_free(&policy);
	g_array_free(ids, TRUE);
	if (st != MV_OK) {
		rc = mv_cli_fail(cli, st, err);
		g_free(err);
		return rc;
	}
	if (cli->json || list) {
		print_items(items, cli->json);
		if (list && !cli->json)
			printf("%u messages await review\n", items->len);
	} else {
		for (guint i = 0; i < items->len; i++) {
			const mv_review_item *it = items->pdata[i];
			const char *reg = it->registration != NULL ? it->registration : "-";
			char *by = approvers_text(it);
			if (extend)
				printf("%s: kept until %s\n", reg, it->expires_at);
			else if (it->approvals >= it->needed)
				printf("%s: destruction approved (%u/%u, by %s); the next purge destroys it\n",
				       reg, it->approvals, it->needed, by);
			else
				printf("%s: %u/%u approvals (by %s); another person must approve too\n", reg,
				       it->approvals, it->needed, by);
			g_free(by);
		}
	}
	g_ptr_array_free(items, TRUE);
	return 0;
}

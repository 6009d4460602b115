/* mailvault retention: explain one message's class, re-apply the policy. */
#include <string.h>

#include "cmd-retention.h"
#include "mv-catalog.h"
#include "mv-cli.h"
#include "mv-progress.h"
#include "mv-json.h"
#include "mv-policy-store.h"
#include "mv-retention.h"
#include "mv-store.h"

static const char help[] =
	"Usage: mailvault retention explain ID|SHA256 [--json]\n"
	"       mailvault retention apply [--dry-run] [--json]\n"
	"\n"
	"  explain   every rule of the current policy that matches the message, the\n"
	"            class each gives and its expiry, which one won and why (the\n"
	"            longest retention wins; ties go to the earlier rule), what is\n"
	"            stored for the message now, the class and expiry in effect\n"
	"            (what apply keeps), and the lock, review extension or legal\n"
	"            hold that keeps it\n"
	"  apply     re-evaluate every stored message under the current policy and\n"
	"            store the new class, expiry, rule and tags; a message in a locked\n"
	"            class never gets a shorter expiry.  Prints how many changed and,\n"
	"            per class, how many records it makes due now: for destruction\n"
	"            by the next purge, for review, or kept only by a legal hold.\n"
	"\n"
	"Options:\n"
	"  --dry-run       count what would change, change nothing\n"
	"  --json          machine-readable output\n" MV_CLI_COMMON_HELP;

static char *iso(gint64 t)
{
	GDateTime *dt = g_date_time_new_from_unix_utc(t);
	if (dt == NULL)
		return g_strdup("-");
	char *s = g_date_time_format(dt, "%Y-%m-%dT%H:%M:%SZ");
	g_date_time_unref(dt);
	return s;
}

void mv_cli_due_print(FILE *f, const char *when, const mv_apply_stats *s)
{
	if (s->due_now == 0 && s->review_now == 0 && s->held_now == 0) {
		fprintf(f, "%s: no record becomes due for destruction\n", when);
		return;
	}
	fprintf(f, "%s: %" G_GINT64_FORMAT " records due for destruction now (the next purge destroys "
	        "them), %" G_GINT64_FORMAT " into the review queue, %" G_GINT64_FORMAT
	        " expired but kept by a legal hold\n",
	        when, s->due_now, s->review_now, s->held_now);
	for (guint i = 0; s->due_by_class != NULL && i < s->due_by_class->len; i++) {
		const mv_due_class *d = s->due_by_class->pdata[i];
		fprintf(f, "  %-20s %-7s %6" G_GINT64_FORMAT " %s", d->class_name,
		        mv_disposition_to_string(d->disposition), d->due,
		        d->disposition == MV_DISPOSITION_PURGE ? "due for destruction" : "due for review");
		if (d->held > 0)
			fprintf(f, ", %" G_GINT64_FORMAT " held", d->held);
		fputc('\n', f);
	}
}

void mv_cli_due_json(JsonBuilder *b, const mv_apply_stats *s)
{
	mv_json_add_int(b, "due_now", s->due_now);
	mv_json_add_int(b, "review_now", s->review_now);
	mv_json_add_int(b, "held_now", s->held_now);
	mv_json_begin_array(b, "due_by_class");
	for (guint i = 0; s->due_by_class != NULL && i < s->due_by_class->len; i++) {
		const mv_due_class *d = s->due_by_class->pdata[i];
		mv_json_begin_object(b, NULL);
		mv_json_add_string(b, "class", d->class_name);
		mv_json_add_string(b, "disposition", mv_disposition_to_string(d->disposition));
		mv_json_add_int(b, "due", d->due);
		mv_json_add_int(b, "held", d->held);
		json_builder_end_object(b);
	}
	json_builder_end_array(b);
}

static void on_progress(void *context, const mv_apply_stats *s)
{
	char detail[48];
	g_snprintf(detail, sizeof detail, "%" G_GINT64_FORMAT " changed", s->changed);
	mv_progress_update(context, s->examined, detail);
}

/* The lines that say what keeps the message as it is; each a sentence. */
static GPtrArray *kept_reasons(const mv_retention_explanation *x)
{
	GPtrArray *out = g_ptr_array_new_with_free_func(g_free);
	const mv_rules_result *res = x->result;
	g_autofree char *rules_exp = iso(res->expiry);
	if (x->kept_by_lock) {
		g_autofree char *kept = iso(x->stored_expiry);
		g_ptr_array_add(out, g_strdup_printf("class %s (locked) keeps expiry %s; the policy would "
		                                     "give %s until %s", x->stored_class, kept,
		                                     res->cls->name, rules_exp));
	}
	if (x->raised_by_extension && !x->kept_by_lock) {
		g_autofree char *ext = iso(x->extension);
		g_ptr_array_add(out, g_strdup_printf("a review extension keeps it until %s; the policy "
		                                     "would give %s", ext, rules_exp));
	}
	if (x->raised_by_floor && !x->raised_by_extension) {
		g_autofree char *fl = iso(x->floor);
		g_ptr_array_add(out, g_strdup_printf("the database keeps it until %s, the expiry a "
		                                     "locked class gave it; the policy would give %s",
		                                     fl, rules_exp));
	}
	if (x->kept_by_hold) {
		g_autofree char *kept = iso(x->stored_expiry);
		g_ptr_array_add(out, g_strdup_printf("a legal hold keeps class %s and expiry %s (neither "
		                                     "is shortened while it is held); the policy would "
		                                     "give %s until %s", x->stored_class, kept,
		                                     res->cls->name, rules_exp));
	}
	for (guint i = 0; i < x->holds->len; i++) {
		const mv_retention_hold *h = x->holds->pdata[i];
		g_ptr_array_add(out, g_strdup_printf("legal hold %s (case %s)%s keeps it whatever its "
		                                     "expiry, until the hold is released", h->name,
		                                     h->case_ref, h->pending ? ", pending," : ""));
	}
	return out;
}

/* What happens to the message next, in its effective state. */
static const char *status_of(const mv_retention_explanation *x, char **text_r)
{
	gboolean expired = x->effective_expiry != 0 && x->effective_expiry < x->now;
	gboolean applied = g_strcmp0(x->stored_class, x->effective_class) == 0 &&
	                   x->stored_expiry == x->effective_expiry;
	const char *when = applied ? "" : " once retention apply runs";
	g_autofree char *until = iso(x->effective_expiry);
	const char *code;
	if (x->holds->len > 0) {
		code = "held";
		*text_r = g_strdup_printf("held: not destroyed while a legal hold lasts%s",
		                          x->unheld_expiry != 0 && x->unheld_expiry < x->now
		                                  ? " (its retention has run out)"
		                                  : "");
	} else if (!expired || x->effective_cls == NULL) {
		code = "kept";
		*text_r = x->effective_expiry != 0 ? g_strdup_printf("kept until %s", until)
		                                   : g_strdup("kept (no expiry)");
	} else if (x->effective_cls->disposition == MV_DISPOSITION_REVIEW) {
		code = "review";
		*text_r = g_strdup_printf("expired %s: in the review queue%s (a destruction decision is "
		                          "needed)", until, when);
	} else {
		code = "due";
		*text_r = g_strdup_printf("expired %s: due for destruction; the next purge destroys it%s",
		                          until, when);
	}
	return code;
}

static int explain(mv_cli *cli, mv_db *db, mv_blobstore *blobs, const mv_policy *policy,
                   gint64 version, const char *ref)
{
	char *err = NULL;
	gint64 id = 0;
	mv_retention_explanation *x = NULL;
	mv_record *rec = NULL;
	mv_status st = mv_store_resolve(db, ref, &id, &err);
	if (st == MV_OK)
		st = mv_retention_explain(db, blobs, policy, version, id, &x, &err);
	if (st == MV_OK)
		st = mv_catalog_record(db, id, &rec, &err);
	if (st != MV_OK) {
		int rc = mv_cli_fail(cli, st, err);
		g_free(err);
		mv_retention_explanation_free(&x);
		return rc;
	}
	const mv_rules_result *res = x->result;
	char *exp = iso(res->expiry);
	char *eff_exp = x->effective_expiry != 0 ? iso(x->effective_expiry) : NULL;
	GPtrArray *kept = kept_reasons(x);
	char *status_text = NULL;
	const char *status = status_of(x, &status_text);
	if (cli->json) {
		g_autoptr(JsonBuilder) b = json_builder_new();
		json_builder_begin_object(b);
		mv_json_add_int(b, "id", id);
		mv_json_add_string(b, "registration", rec->registration);
		mv_json_add_int(b, "policy_version", version);
		mv_json_begin_array(b, "matches");
		for (guint i = 0; i < res->matches->len; i++) {
			const mv_rules_match *m = &g_array_index(res->matches, mv_rules_match, i);
			g_autofree char *mexp = m->cls != NULL ? iso(m->expiry) : NULL;
			mv_json_begin_object(b, NULL);
			mv_json_add_string(b, "rule", m->rule->name);
			mv_json_add_string(b, "class", m->cls != NULL ? m->cls->name : NULL);
			mv_json_add_string(b, "expires_at", mexp);
			json_builder_end_object(b);
		}
		json_builder_end_array(b);
		mv_json_add_string(b, "class", res->cls->name);
		mv_json_add_string(b, "rule", res->rule != NULL ? res->rule->name : NULL);
		mv_json_add_string(b, "expires_at", exp);
		mv_json_add_string(b, "reason", res->reason);
		mv_json_add_strings(b, "tags", res->tags);
		mv_json_add_string(b, "stored_class", rec->retention_class);
		mv_json_add_string(b, "stored_expires_at", rec->expires_at);
		mv_json_add_bool(b, "stored_locked", x->stored_locked);
		mv_json_add_string(b, "effective_class", x->effective_class);
		mv_json_add_string(b, "effective_expires_at", eff_exp);
		mv_json_add_bool(b, "kept_by_lock", x->kept_by_lock);
		mv_json_add_bool(b, "kept_by_hold", x->kept_by_hold);
		if (x->extension != 0) {
			g_autofree char *ext = iso(x->extension);
			mv_json_add_string(b, "extended_until", ext);
		} else {
			mv_json_add_null(b, "extended_until");
		}
		mv_json_begin_array(b, "holds");
		for (guint i = 0; i < x->holds->len; i++) {
			const mv_retention_hold *h = x->holds->pdata[i];
			mv_json_begin_object(b, NULL);
			mv_json_add_string(b, "name", h->name);
			mv_json_add_string(b, "case", h->case_ref);
			mv_json_add_bool(b, "pending", h->pending);
			json_builder_end_object(b);
		}
		json_builder_end_array(b);
		mv_json_add_strings(b, "kept_by", kept);
		mv_json_add_string(b, "status", status);
		mv_json_add_string(b, "status_text", status_text);
		json_builder_end_object(b);
		mv_json_write(b, stdout);
	} else {
		printf("message %" G_GINT64_FORMAT " (registration %s) under policy version %" G_GINT64_FORMAT "\n",
		       id, rec->registration != NULL ? rec->registration : "-", version);
		if (res->matches->len == 0)
			printf("  no rule matches\n");
		for (guint i = 0; i < res->matches->len; i++) {
			const mv_rules_match *m = &g_array_index(res->matches, mv_rules_match, i);
			char *mexp = m->cls != NULL ? iso(m->expiry) : g_strdup("-");
			printf("  rule %-24s -> %-16s expires %s\n", m->rule->name,
			       m->cls != NULL ? m->cls->name : "(tags only)", mexp);
			g_free(mexp);
		}
		printf("class:   %s (%s)\n", res->cls->name,
		       res->rule != NULL ? res->rule->name : "default class");
		printf("expiry:  %s\n", exp);
		printf("why:     %s\n", res->reason);
		for (guint i = 0; i < res->tags->len; i++)
			printf("tag:     %s\n", (const char *)res->tags->pdata[i]);
		for (guint i = 0; res->warnings != NULL && i < res->warnings->len; i++)
			printf("warning: %s\n", (const char *)res->warnings->pdata[i]);
		printf("stored:  %s%s until %s\n",
		       rec->retention_class != NULL ? rec->retention_class : "(unclassified)",
		       x->stored_locked ? " (locked)" : "",
		       rec->expires_at != NULL ? rec->expires_at : "-");
		printf("in effect: %s until %s\n", x->effective_class,
		       eff_exp != NULL ? eff_exp : "-");
		for (guint i = 0; i < kept->len; i++)
			printf("kept:    %s\n", (const char *)kept->pdata[i]);
		printf("status:  %s\n", status_text);
	}
	g_free(status_text);
	g_ptr_array_free(kept, TRUE);
	g_free(exp);
	g_free(eff_exp);
	mv_record_free(&rec);
	mv_retention_explanation_free(&x);
	return 0;
}

int mv_cmd_retention(mv_cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {MV_CLI_COMMON_LONG_OPTIONS,
	                                         {"dry-run", no_argument, NULL, 'n'},
	                                         {"json", no_argument, NULL, 'j'},
	                                         {NULL, 0, NULL, 0}};
	gboolean dry_run = FALSE;
	int o;
	optind = 1;
	while ((o = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (mv_cli_common_option(cli, o, optarg))
			continue;
		if (o == 'h') {
			fputs(help, stdout);
			return 0;
		}
		if (o == 'n')
			dry_run = TRUE;
		else if (o == 'j')
			cli->json = TRUE;
		else
			return mv_cli_usage_error(cli, "unknown option");
	}
	if (optind >= argc)
		return mv_cli_usage_error(cli, "expected explain ID or apply");
	const char *action = argv[optind];
	gboolean is_explain = strcmp(action, "explain") == 0;
	if (is_explain && optind + 2 != argc)
		return mv_cli_usage_error(cli, "retention explain takes one message ID or SHA-256");
	if (!is_explain && (strcmp(action, "apply") != 0 || optind + 1 != argc))
		return mv_cli_usage_error(cli, "expected explain ID or apply");
	mv_db *db = NULL;
	mv_blobstore *blobs = NULL;
	cli->interactive = is_explain; /* explain only reads */
	int rc = mv_cli_open(cli, &db, &blobs);
	if (rc != 0)
		return rc;
	mv_policy *policy = NULL;
	gint64 version = 0;
	char *err = NULL;
	mv_status st = mv_policy_store_current(db, &policy, &version, &err);
	if (st == MV_OK && policy == NULL)
		st = mv_fail(&err, MV_ERR_CONFIG, "no retention policy loaded (mailvault policy load FILE)");
	if (st != MV_OK) {
		rc = mv_cli_fail(cli, st, err);
	} else if (is_explain) {
		rc = explain(cli, db, blobs, policy, version, argv[optind + 1]);
	} else {
		mv_apply_stats s;
		mv_progress *progress = mv_progress_new("retention apply", "messages examined", 0);
		st = mv_retention_apply(db, blobs, policy, version, NULL, dry_run,
		                        progress != NULL ? on_progress : NULL, progress, &s, &err);
		mv_progress_free(&progress);
		if (st != MV_OK) {
			rc = mv_cli_fail(cli, st, err);
		} else if (cli->json) {
			g_autoptr(JsonBuilder) b = json_builder_new();
			json_builder_begin_object(b);
			mv_json_add_int(b, "policy_version", version);
			mv_json_add_bool(b, "dry_run", dry_run);
			mv_json_add_int(b, "examined", s.examined);
			mv_json_add_int(b, "changed", s.changed);
			mv_json_add_int(b, "class_changed", s.class_changed);
			mv_json_add_int(b, "expiry_changed", s.expiry_changed);
			mv_json_add_int(b, "kept_by_lock", s.kept_by_lock);
			mv_json_add_int(b, "kept_by_hold", s.kept_by_hold);
			mv_json_add_int(b, "failed", s.failed);
			mv_cli_due_json(b, &s);
			json_builder_end_object(b);
			mv_json_write(b, stdout);
		} else {
			printf("policy version %" G_GINT64_FORMAT "%s: %" G_GINT64_FORMAT " examined, %" G_GINT64_FORMAT
			       " changed (%" G_GINT64_FORMAT " class, %" G_GINT64_FORMAT " expiry), %" G_GINT64_FORMAT
			       " kept by a locked class, %" G_GINT64_FORMAT " by a legal hold, %" G_GINT64_FORMAT
			       " failed\n",
			       version, dry_run ? " (dry run)" : "", s.examined, s.changed, s.class_changed,
			       s.expiry_changed, s.kept_by_lock, s.kept_by_hold, s.failed);
			mv_cli_due_print(stdout, dry_run ? "once applied" : "applied", &s);
		}
		if (st == MV_OK && s.failed > 0)
			rc = MV_EXIT_DATAERR;
		mv_apply_stats_clear(&s);
	}
	g_free(err);
	mv_policy_free(&policy);
	mv_blobstore_free(&blobs);
	mv_db_close(&db);
	return rc;
}

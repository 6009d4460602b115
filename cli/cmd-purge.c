/* mailvault purge: dispose of expired records (for cron). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "mv-audit.h"
#include "mv-cli.h"
#include "mv-progress.h"
#include "mv-json.h"
#include "mv-pack.h"
#include "mv-policy-store.h"
#include "mv-purge.h"

#define MAX_WAIT_SECONDS 2000000

static const char help[] =
	"Usage: mailvault purge [--dry-run] [--limit N] [--wait SECONDS] [--certificate-out FILE]\n"
	"                       [--json] [--quiet]\n"
	"       mailvault purge --list [--json]\n"
	"       mailvault purge --certificate RUN [--certificate-out FILE] [--json]\n"
	"\n"
	"Destroy every message whose retention has expired, that no active hold\n"
	"covers, and whose class's disposition is purge (classes with disposition\n"
	"review once approved).  Each destroyed message leaves a tombstone (metadata,\n"
	"hashes, approvals: `mailvault show` finds it); the run's destruction\n"
	"certificate is printed, its SHA-256 stored and recorded in the audit trail.\n"
	"Safe to run while ingest runs; idempotent; quiet with --quiet unless\n"
	"something fails: fit for cron.  Runs are numbered 1, 2, 3, ...; every run\n"
	"is recorded and audited, also one that found nothing due and one refused\n"
	"because another purge was running (exit 75 unless --wait).\n"
	"\n"
	"Options:\n"
	"  --dry-run       list what would be destroyed, destroy nothing, record no run\n"
	"  --limit N       destroy at most N messages in this run\n"
	"  --wait SECONDS  wait up to SECONDS for a running purge to end, then run\n"
	"                  (default 0: refuse at once, exit 75)\n"
	"  --certificate-out FILE\n"
	"                  also write the run's certificate to FILE (replaced\n"
	"                  atomically): the text, or with --json the JSON certificate\n"
	"  --list          the recorded runs: run, state, start, end, who, policy\n"
	"                  version, destroyed, certificate SHA-256\n"
	"  --certificate RUN\n"
	"                  print run RUN's certificate again, rendered from its\n"
	"                  tombstones, and check it against the SHA-256 the run\n"
	"                  stored (exit 79 when they differ)\n"
	"  --json          {dry_run, records: [...], run, disposition, state, destroyed\n"
	"                  (or due), certificate_sha256, error}; records are written as\n"
	"                  they go (docs/cli.md)\n"
	"  --quiet         print nothing on success\n" MV_CLI_COMMON_HELP;

/* ---- a file replaced atomically: written beside it, then renamed ---- */

typedef struct {
	char *path, *tmp;
	FILE *f;
} atomic_file;

static mv_status atomic_open(const char *path, atomic_file *a, char **error_r)
{
	*a = (atomic_file){0};
	char *dir = g_path_get_dirname(path), *base = g_path_get_basename(path);
	a->tmp = g_strdup_printf("%s/.%s.XXXXXX", dir, base);
	g_free(dir);
	g_free(base);
	int fd = g_mkstemp_full(a->tmp, O_WRONLY | O_CLOEXEC, 0644);
	if (fd < 0 || (a->f = fdopen(fd, "w")) == NULL) {
		mv_status st = mv_fail(error_r, MV_ERR_IO, "cannot write %s: %s", path, g_strerror(errno));
		if (fd >= 0) {
			close(fd);
			unlink(a->tmp);
		}
		g_free(a->tmp);
		a->tmp = NULL;
		return st;
	}
	a->path = g_strdup(path);
	return MV_OK;
}

/* Commit (keep = TRUE: flush, sync, rename over path) or discard. */
static mv_status atomic_close(atomic_file *a, gboolean keep, char **error_r)
{
	if (a->f == NULL)
		return MV_OK;
	mv_status st = MV_OK;
	if (keep && (fflush(a->f) != 0 || ferror(a->f) || fsync(fileno(a->f)) != 0))
		st = mv_fail(error_r, MV_ERR_IO, "cannot write %s: %s", a->path, g_strerror(errno));
	if (fclose(a->f) != 0 && keep && st == MV_OK)
		st = mv_fail(error_r, MV_ERR_IO, "cannot write %s: %s", a->path, g_strerror(errno));
	a->f = NULL;
	if (keep && st == MV_OK && rename(a->tmp, a->path) != 0)
		st = mv_fail(error_r, MV_ERR_IO, "cannot replace %s: %s", a->path, g_strerror(errno));
	if (!keep || st != MV_OK)
		unlink(a->tmp);
	g_free(a->tmp);
	g_free(a->path);
	*a = (atomic_file){0};
	return st;
}

/* ---- output of a run ---- */

typedef struct {
	gboolean json, dry_run, quiet;
	gint64 n, seen;
	mv_progress *progress;
} purge_output;

static void print_item(void *context, const mv_purge_item *it)
{
	purge_output *out = context;
	mv_progress_update(out->progress, ++out->seen, NULL);
	if (out->json) {
		g_autoptr(JsonBuilder) b = json_builder_new();
		json_builder_begin_object(b);
		mv_json_add_string(b, "registration", it->registration);
		mv_json_add_string(b, "sha256", it->sha256);
		mv_json_add_string(b, "class", it->class_name);
		mv_json_add_string(b, "expires_at", it->expires_at);
		json_builder_end_object(b);
		mv_json_stream_element(stdout, b, out->n++ == 0);
	} else if (out->dry_run && !out->quiet) {
		printf("due: %s %s %s expired %s\n", it->registration != NULL ? it->registration : "-",
		       it->sha256, it->class_name, it->expires_at);
	}
}

static void write_file(void *context, const char *text, gsize len)
{
	fwrite(text, 1, len, context);
}

/* ---- certificates ---- */

typedef struct {
	FILE *f;
	gint64 n;
} json_records;

static void json_record(void *context, const mv_purge_item *it)
{
	json_records *j = context;
	g_autoptr(JsonBuilder) b = json_builder_new();
	json_builder_begin_object(b);
	mv_json_add_int(b, "id", it->id);
	mv_json_add_string(b, "registration", it->registration);
	mv_json_add_string(b, "sha256", it->sha256);
	mv_json_add_string(b, "date", it->date);
	mv_json_add_string(b, "class", it->class_name);
	mv_json_add_string(b, "expires_at", it->expires_at);
	mv_json_add_int(b, "policy_version", it->policy_version);
	mv_json_begin_array(b, "approved_by");
	for (char **a = it->approved_by; a != NULL && *a != NULL; a++)
		mv_json_add_string(b, NULL, *a);
	json_builder_end_array(b);
	json_builder_end_object(b);
	mv_json_stream_element(j->f, b, j->n++ == 0);
}

/* Render run's certificate to f: its text, or (json) the JSON certificate:
 * the run's record, its records with their approvers, and the SHA-256 of
 * the text certificate.  sha_r gets that SHA-256. */
static mv_status render_certificate(mv_db *db, gint64 run, gboolean json, FILE *f,
                                    char sha_r[MV_SHA256_HEX_LEN + 1], char **error_r)
{
	if (!json)
		return mv_purge_certificate(db, run, write_file, NULL, f, sha_r, error_r);
	GPtrArray *runs = NULL;
	mv_status st = mv_purge_runs(db, run, &runs, error_r);
	if (st != MV_OK)
		return st;
	const mv_purge_run *r = runs->pdata[0];
	g_autoptr(JsonBuilder) head = json_builder_new();
	json_builder_begin_object(head);
	mv_json_add_string(head, "type", "mailvault destruction certificate");
	mv_json_add_int(head, "run", r->run);
	mv_json_add_string(head, "state", r->state);
	mv_json_add_string(head, "performed_by", r->performed_by);
	mv_json_add_string(head, "started_at", r->started_at);
	mv_json_add_string(head, "completed_at", r->finished_at);
	mv_json_add_int(head, "policy_version", r->policy_version);
	mv_json_add_int(head, "destroyed", r->destroyed);
	json_builder_end_object(head);
	g_ptr_array_unref(runs);
	mv_json_stream_begin(f, head, "records");
	json_records j = {f, 0};
	st = mv_purge_certificate(db, run, NULL, json_record, &j, sha_r, error_r);
	g_autoptr(JsonBuilder) tail = json_builder_new();
	json_builder_begin_object(tail);
	mv_json_add_string(tail, "certificate_sha256", st == MV_OK ? sha_r : NULL);
	json_builder_end_object(tail);
	mv_json_stream_end(f, tail);
	return st;
}

/* Write run's certificate to path atomically (nothing is written when it
 * does not check out). */
static mv_status certificate_to_file(mv_db *db, gint64 run, gboolean json, const char *path,
                                     char sha_r[MV_SHA256_HEX_LEN + 1], char **error_r)
{
	atomic_file a;
	mv_status st = atomic_open(path, &a, error_r);
	if (st != MV_OK)
		return st;
	st = render_certificate(db, run, json, a.f, sha_r, error_r);
	mv_status cst = atomic_close(&a, st == MV_OK, error_r);
	return st != MV_OK ? st : cst;
}

static int show_certificate(mv_cli *cli, mv_db *db, gint64 run, const char *out_path)
{
	char sha[MV_SHA256_HEX_LEN + 1] = "";
	char *err = NULL;
	mv_status st;
	if (out_path != NULL)
		st = certificate_to_file(db, run, cli->json, out_path, sha, &err);
	else
		st = mv_purge_certificate(db, run, cli->json ? NULL : write_file, NULL, stdout, sha, &err);
	if (cli->json && (st == MV_OK || st == MV_ERR_INTEGRITY)) {
		GPtrArray *runs = NULL;
		char *rerr = NULL;
		gint64 disposition = 0;
		if (mv_purge_runs(db, run, &runs, &rerr) == MV_OK) {
			disposition = ((const mv_purge_run *)runs->pdata[0])->disposition_id;
			g_ptr_array_unref(runs);
		}
		g_free(rerr);
		g_autoptr(JsonBuilder) b = json_builder_new();
		json_builder_begin_object(b);
		mv_json_add_int(b, "run", run);
		mv_json_add_int(b, "disposition", disposition);
		mv_json_add_bool(b, "intact", st == MV_OK);
		mv_json_add_string(b, "certificate_sha256", sha[0] ? sha : NULL);
		mv_json_add_string(b, "certificate_out", st == MV_OK ? out_path : NULL);
		json_builder_end_object(b);
		mv_json_write(b, stdout);
	} else if (st == MV_OK && out_path != NULL) {
		printf("certificate of run %" G_GINT64_FORMAT " written to %s (sha256 %s, matches the "
		       "stored one)\n", run, out_path, sha);
	} else if (st == MV_OK) {
		printf("certificate sha256: %s (matches the stored one)\n", sha);
	}
	int rc = 0;
	if (st != MV_OK)
		rc = mv_cli_fail(cli, st, err);
	g_free(err);
	return rc;
}

/* ---- purge --list ---- */

static int list_runs(mv_cli *cli, mv_db *db)
{
	GPtrArray *runs = NULL;
	char *err = NULL;
	mv_status st = mv_purge_runs(db, 0, &runs, &err);
	if (st != MV_OK) {
		int rc = mv_cli_fail(cli, st, err);
		g_free(err);
		return rc;
	}
	if (cli->json) {
		g_autoptr(JsonBuilder) b = json_builder_new();
		json_builder_begin_array(b);
		for (guint i = 0; i < runs->len; i++) {
			const mv_purge_run *r = runs->pdata[i];
			mv_json_begin_object(b, NULL);
			mv_json_add_int(b, "run", r->run);
			mv_json_add_int(b, "disposition", r->disposition_id);
			mv_json_add_string(b, "state", r->state);
			mv_json_add_string(b, "started_at", r->started_at);
			mv_json_add_string(b, "finished_at", r->finished_at);
			mv_json_add_string(b, "performed_by", r->performed_by);
			if (r->policy_version > 0)
				mv_json_add_int(b, "policy_version", r->policy_version);
			else
				mv_json_add_null(b, "policy_version");
			mv_json_add_int(b, "destroyed", r->destroyed);
			mv_json_add_string(b, "certificate_sha256", r->certificate_sha256);
			json_builder_end_object(b);
		}
		json_builder_end_array(b);
		mv_json_write(b, stdout);
	} else if (runs->len == 0) {
		printf("no purge runs yet\n");
	} else {
		printf("%-6s %-12s %-20s %-20s %9s %6s %-64s %s\n", "run", "state", "started", "finished",
		       "destroyed", "policy", "certificate sha256", "by");
		for (guint i = 0; i < runs->len; i++) {
			const mv_purge_run *r = runs->pdata[i];
			char pol[24] = "-";
			if (r->policy_version > 0)
				g_snprintf(pol, sizeof pol, "%" G_GINT64_FORMAT, r->policy_version);
			printf("%-6" G_GINT64_FORMAT " %-12s %-20s %-20s %9" G_GINT64_FORMAT " %6s %-64s %s\n",
			       r->run, r->state, r->started_at, r->finished_at ? r->finished_at : "-",
			       r->destroyed, pol, r->certificate_sha256 ? r->certificate_sha256 : "-",
			       r->performed_by);
		}
	}
	g_ptr_array_unref(runs);
	return 0;
}

/* ---- purge ---- */

static void sweep_packs(mv_cli *cli, mv_db *db)
{
	mv_pack_result res;
	char *err = NULL;
	if (mv_pack_sweep_db(db, cli->key_file, &res, &err) != MV_OK)
		fprintf(stderr, "mailvault: purge: the destroyed messages' bytes are still in their "
		        "packs (mailvault compact removes them): %s\n", err);
	g_free(err);
}

int mv_cmd_purge(mv_cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {MV_CLI_COMMON_LONG_OPTIONS,
	                                         {"dry-run", no_argument, NULL, 'n'},
	                                         {"limit", required_argument, NULL, 'l'},
	                                         {"json", no_argument, NULL, 'j'},
	                                         {"quiet", no_argument, NULL, 'q'},
	                                         {"certificate", required_argument, NULL, 'c'},
	                                         {"certificate-out", required_argument, NULL, 'o'},
	                                         {"list", no_argument, NULL, 'L'},
	                                         {"wait", required_argument, NULL, 'w'},
	                                         {NULL, 0, NULL, 0}};
	gboolean dry_run = FALSE, quiet = FALSE, list = FALSE;
	gint64 limit = 0, certificate = 0, wait = 0;
	const char *cert_out = NULL;
	int o;
	optind = 1;
	while ((o = getopt_long(argc, argv, "hq", longopts, NULL)) != -1) {
		if (mv_cli_common_option(cli, o, optarg))
			continue;
		switch (o) {
		case 'h':
			fputs(help, stdout);
			return 0;
		case 'n': dry_run = TRUE; break;
		case 'j': cli->json = TRUE; break;
		case 'q': quiet = TRUE; break;
		case 'L': list = TRUE; break;
		case 'o':
			if (*optarg == '\0')
				return mv_cli_usage_error(cli, "--certificate-out takes a file name");
			cert_out = optarg;
			break;
		case 'w':
			if (strcmp(optarg, "0") != 0 &&
			    (!mv_cli_positive(optarg, &wait) || wait > MAX_WAIT_SECONDS))
				return mv_cli_usage_error(cli, "--wait takes a number of seconds (0 to %d)",
				                          MAX_WAIT_SECONDS);
			break;
		case 'l':
		case 'c':
			if (!mv_cli_positive(optarg, o == 'l' ? &limit : &certificate))
				return mv_cli_usage_error(cli, "--%s takes a positive number",
				                          o == 'l' ? "limit" : "certificate");
			break;
		default:
			return mv_cli_usage_error(cli, "unknown option");
		}
	}
	if (optind != argc)
		return mv_cli_usage_error(cli, "unexpected argument '%s'", argv[optind]);
	if (list && (certificate > 0 || dry_run || limit > 0 || cert_out != NULL || wait > 0))
		return mv_cli_usage_error(cli, "--list takes no other option but --json");
	if (certificate > 0 && (dry_run || limit > 0 || wait > 0))
		return mv_cli_usage_error(cli, "--certificate shows a past run; it takes no --dry-run, "
		                               "--limit or --wait");
	if (dry_run && cert_out != NULL)
		return mv_cli_usage_error(cli, "a dry run has no certificate (--certificate-out)");
	mv_db *db = NULL;
	cli->interactive = certificate > 0 || list; /* showing past runs only reads */
	int rc = mv_cli_open(cli, &db, NULL);
	if (rc != 0)
		return rc;
	if (list || certificate > 0) {
		rc = list ? list_runs(cli, db) : show_certificate(cli, db, certificate, cert_out);
		mv_db_close(&db);
		return rc;
	}
	char *err = NULL;
	mv_policy *policy = NULL;
	gint64 version = 0;
	mv_purge_result *res = NULL;
	purge_output out = {.json = cli->json, .dry_run = dry_run, .quiet = quiet};
	if (cli->json) {
		/* The records are written as they are destroyed. */
		g_autoptr(JsonBuilder) head = json_builder_new();
		json_builder_begin_object(head);
		mv_json_add_bool(head, "dry_run", dry_run);
		json_builder_end_object(head);
		mv_json_stream_begin(stdout, head, "records");
	}
	mv_status st = mv_policy_store_current(db, &policy, &version, &err);
	if (st == MV_OK) {
		mv_purge_options opts = {.limit = limit, .dry_run = dry_run, .wait_seconds = (guint)wait,
		                         .actor = mv_audit_actor()};
		out.progress = mv_progress_new(dry_run ? "purge (dry run)" : "purging",
		                               dry_run ? "records due" : "records destroyed", 0);
		st = mv_purge(db, policy, version, &opts, print_item, &out, &res, &err);
		mv_progress_free(&out.progress);
	}
	mv_policy_free(&policy);
	/* The destroyed blobs that lived in packs: their bytes leave their
	 * frames now (docs/storage.md); what cannot be done here (no key file,
	 * a role without the right) is left to the next compact, and said. */
	if (res != NULL && !dry_run && res->count > 0)
		sweep_packs(cli, db);
	/* The certificate file: whenever the run has a certificate, also after
	 * a failure (it certifies what was destroyed). */
	mv_status fst = MV_OK;
	char *ferr = NULL;
	char fsha[MV_SHA256_HEX_LEN + 1] = "";
	if (cert_out != NULL && res != NULL && res->certificate_sha256 != NULL)
		fst = certificate_to_file(db, res->run, cli->json, cert_out, fsha, &ferr);
	if (cli->json) {
		g_autoptr(JsonBuilder) tail = json_builder_new();
		json_builder_begin_object(tail);
		mv_json_add_int(tail, "run", res != NULL ? res->run : 0);
		mv_json_add_int(tail, "disposition", res != NULL ? res->disposition_id : 0);
		mv_json_add_string(tail, "state", res != NULL ? res->state : NULL);
		mv_json_add_int(tail, dry_run ? "due" : "destroyed", res != NULL ? res->count : 0);
		mv_json_add_string(tail, "certificate_sha256", res != NULL ? res->certificate_sha256 : NULL);
		mv_json_add_string(tail, "certificate_out",
		                   cert_out != NULL && fst == MV_OK && fsha[0] ? cert_out : NULL);
		mv_json_add_string(tail, "error", st != MV_OK ? err : fst != MV_OK ? ferr : NULL);
		json_builder_end_object(tail);
		mv_json_stream_end(stdout, tail);
	} else if (st == MV_OK && !quiet) {
		if (dry_run) {
			printf("%" G_GINT64_FORMAT " messages due for destruction (dry run: nothing destroyed)\n",
			       res->count);
		} else if (res->count > 0) {
			char sha[MV_SHA256_HEX_LEN + 1];
			char *cerr = NULL;
			if (mv_purge_certificate(db, res->run, write_file, NULL, stdout, sha, &cerr) == MV_OK)
				printf("certificate sha256: %s\n", res->certificate_sha256);
			else
				st = mv_fail(&err, MV_ERR_INTEGRITY, "%s", cerr);
			g_free(cerr);
		} else {
			printf("nothing to destroy (run %" G_GINT64_FORMAT ", certificate sha256 %s)\n",
			       res->run, res->certificate_sha256);
		}
	}
	mv_db_close(&db);
	mv_purge_result_free(&res);
	if (st != MV_OK)
		rc = mv_cli_fail(cli, st, err);
	else if (fst != MV_OK)
		rc = mv_cli_fail(cli, fst, ferr);
	g_free(err);
	g_free(ferr);
	return rc;
}

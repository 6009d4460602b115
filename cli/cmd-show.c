/* mailvault show: everything known of one message. */

#include "mv-audit.h"
#include "mv-catalog.h"
#include "mv-cli.h"
#include "mv-json.h"
#include "mv-purge.h"
#include "mv-store.h"

static const char help[] =
	"Usage: mailvault show [OPTIONS] ID|SHA256|REGISTRATION\n"
	"\n"
	"Show a message's record: id, sha256, size, Message-ID, date, from, subject,\n"
	"addresses (role, address, name), MIME parts (path, declared and detected type,\n"
	"file name, size), arrivals (source, time, envelope) and flags.  The message is\n"
	"named by its id, its SHA-256 or its registration number (2026-0000123).\n"
	"\n"
	"A record destroyed by purge is shown from its tombstone: what it was\n"
	"(registration, Message-ID, date, from, size, SHA-256, class, expiry), when\n"
	"and by which purge run it was destroyed, and who approved its destruction;\n"
	"the exit status is then 80.\n"
	"\n"
	"Options:\n"
	"  --json          JSON with the stable keys id, sha256, size, message_id, date,\n"
	"                  from, subject, addresses, parts, arrivals, flags, destroyed\n"
	"                  (docs/cli.md)\n" MV_CLI_COMMON_HELP;

static void print_json(const mv_record *m)
{
	g_autoptr(JsonBuilder) b = json_builder_new();
	json_builder_begin_object(b);
	mv_json_add_int(b, "id", m->id);
	mv_json_add_bool(b, "destroyed", FALSE);
	mv_json_add_string(b, "sha256", m->sha256);
	mv_json_add_int(b, "size", m->size);
	mv_json_add_string(b, "message_id", m->message_id);
	mv_json_add_string(b, "date", m->date);
	mv_json_add_string(b, "date_raw", m->date_raw);
	mv_json_add_string(b, "from", m->from);
	mv_json_add_string(b, "subject", m->subject);
	mv_json_add_string(b, "parse_status", m->parse_status);
	mv_json_add_bool(b, "has_attachment", m->has_attachment);
	mv_json_add_string(b, "archived_at", m->archived_at);
	mv_json_add_string(b, "registration", m->registration);
	if (m->retention_class == NULL) {
		mv_json_add_null(b, "retention");
	} else {
		mv_json_begin_object(b, "retention");
		mv_json_add_string(b, "class", m->retention_class);
		mv_json_add_string(b, "expires_at", m->expires_at);
		mv_json_add_string(b, "rule", m->deciding_rule);
		mv_json_add_int(b, "policy_version", m->policy_version);
		mv_json_add_string(b, "direction", m->direction);
		json_builder_end_object(b);
	}
	mv_json_add_strings(b, "tags", m->tags);
	mv_json_begin_array(b, "addresses");
	for (guint i = 0; i < m->addresses->len; i++) {
		const mv_record_address *a = m->addresses->pdata[i];
		mv_json_begin_object(b, NULL);
		mv_json_add_string(b, "role", a->role);
		mv_json_add_string(b, "address", a->address);
		mv_json_add_string(b, "name", a->name);
		json_builder_end_object(b);
	}
	json_builder_end_array(b);
	mv_json_begin_array(b, "parts");
	for (guint i = 0; i < m->parts->len; i++) {
		const mv_record_part *p = m->parts->pdata[i];
		mv_json_begin_object(b, NULL);
		mv_json_add_string(b, "path", p->path);
		mv_json_add_string(b, "declared_type", p->declared_type);
		mv_json_add_string(b, "detected_type", p->detected_type);
		mv_json_add_string(b, "filename", p->filename);
		mv_json_add_int(b, "size", p->size);
		mv_json_add_string(b, "blob_sha256", p->blob_sha256);
		mv_json_add_string(b, "virus", p->virus);
		mv_json_add_string(b, "virus_name", p->virus_name);
		json_builder_end_object(b);
	}
	json_builder_end_array(b);
	mv_json_begin_array(b, "arrivals");
	for (guint i = 0; i < m->arrivals->len; i++) {
		const mv_record_arrival *a = m->arrivals->pdata[i];
		mv_json_begin_object(b, NULL);
		mv_json_add_string(b, "source", a->source);
		mv_json_add_string(b, "source_ref", a->source_ref);
		mv_json_add_string(b, "received_at", a->received_at);
		mv_json_add_string(b, "envelope_from", a->envelope_from);
		mv_json_add_strings(b, "envelope_to", a->envelope_to);
		mv_json_add_string(b, "details", a->details);
		json_builder_end_object(b);
	}
	json_builder_end_array(b);
	mv_json_add_strings(b, "flags", m->flags);
	if (m->virus == NULL && m->spam == NULL) {
		mv_json_add_null(b, "verdicts");
	} else {
		mv_json_begin_object(b, "verdicts");
		mv_json_add_string(b, "virus", m->virus);
		mv_json_add_string(b, "virus_name", m->virus_name);
		mv_json_add_string(b, "virus_at", m->virus_at);
		mv_json_add_string(b, "spam", m->spam);
		if (m->spam_score != NULL)
			mv_json_add_double(b, "spam_score", g_ascii_strtod(m->spam_score, NULL));
		else
			mv_json_add_null(b, "spam_score");
		if (m->spam_threshold != NULL)
			mv_json_add_double(b, "spam_threshold", g_ascii_strtod(m->spam_threshold, NULL));
		else
			mv_json_add_null(b, "spam_threshold");
		mv_json_add_string(b, "spam_reason", m->spam_reason);
		mv_json_add_string(b, "spam_at", m->spam_at);
		json_builder_end_object(b);
	}
	json_builder_end_object(b);
	mv_json_write(b, stdout);
}

static const char *or_dash(const char *s)
{
	return s != NULL && *s != '\0' ? s : "-";
}

static void print_text(const mv_record *m)
{
	printf("id:          %" G_GINT64_FORMAT "\n", m->id);
	printf("sha256:      %s\n", m->sha256);
	printf("size:        %" G_GINT64_FORMAT "\n", m->size);
	printf("message-id:  %s\n", or_dash(m->message_id));
	printf("date:        %s\n", or_dash(m->date));
	printf("from:        %s\n", or_dash(m->from));
	printf("subject:     %s\n", or_dash(m->subject));
	printf("status:      %s\n", or_dash(m->parse_status));
	printf("registration: %s\n", or_dash(m->registration));
	if (m->retention_class != NULL)
		printf("retention:   %s until %s (rule %s, policy version %" G_GINT64_FORMAT ", %s)\n",
		       m->retention_class, or_dash(m->expires_at), or_dash(m->deciding_rule),
		       m->policy_version, or_dash(m->direction));
	for (guint i = 0; i < m->tags->len; i++)
		printf("tag:         %s\n", (const char *)m->tags->pdata[i]);
	for (guint i = 0; i < m->flags->len; i++)
		printf("flag:        %s\n", (const char *)m->flags->pdata[i]);
	if (m->virus != NULL)
		printf("virus:       %s%s%s\n", m->virus, m->virus_name ? ": " : "",
		       m->virus_name ? m->virus_name : "");
	if (m->spam != NULL && m->spam_score != NULL)
		printf("spam:        %s (score %s, threshold %s)\n", m->spam, m->spam_score,
		       or_dash(m->spam_threshold));
	else if (m->spam != NULL)
		printf("spam:        %s%s%s\n", m->spam, m->spam_reason ? ": " : "",
		       m->spam_reason ? m->spam_reason : "");
	for (guint i = 0; i < m->addresses->len; i++) {
		const mv_record_address *a = m->addresses->pdata[i];
		printf("address:     %-13s %s%s%s%s\n", a->role, a->address, a->name ? " (" : "",
		       a->name ? a->name : "", a->name ? ")" : "");
	}
	for (guint i = 0; i < m->parts->len; i++) {
		const mv_record_part *p = m->parts->pdata[i];
		printf("part:        %-6s %s (detected %s) %s %" G_GINT64_FORMAT " bytes%s%s%s%s\n",
		       *p->path ? p->path : "-", or_dash(p->declared_type), or_dash(p->detected_type),
		       or_dash(p->filename), p->size, p->virus ? ", virus " : "", p->virus ? p->virus : "",
		       p->virus_name ? ": " : "", p->virus_name ? p->virus_name : "");
	}
	for (guint i = 0; i < m->arrivals->len; i++) {
		const mv_record_arrival *a = m->arrivals->pdata[i];
		printf("arrival:     %s %s %s from=%s to=", or_dash(a->received_at), or_dash(a->source),
		       or_dash(a->source_ref), or_dash(a->envelope_from));
		for (guint j = 0; j < a->envelope_to->len; j++)
			printf("%s%s", j ? "," : "", (const char *)a->envelope_to->pdata[j]);
		putchar('\n');
		/* How it arrived: SMTP client, IMAP UID, the PST item and its
		 * folder, ... (mv_arrival_details). */
		if (a->details != NULL)
			printf("             %s\n", a->details);
	}
}

/* A destroyed record: its tombstone. */
static void print_tombstone_json(const mv_tombstone *t)
{
	g_autoptr(JsonBuilder) b = json_builder_new();
	json_builder_begin_object(b);
	mv_json_add_int(b, "id", t->id);
	mv_json_add_bool(b, "destroyed", TRUE);
	mv_json_add_string(b, "sha256", t->sha256);
	mv_json_add_int(b, "size", t->size);
	mv_json_add_string(b, "message_id", t->message_id);
	mv_json_add_string(b, "date", t->date);
	mv_json_add_string(b, "from", t->from);
	mv_json_add_string(b, "registration", t->registration);
	mv_json_add_string(b, "archived_at", t->archived_at);
	if (t->class_name == NULL) {
		mv_json_add_null(b, "retention");
	} else {
		mv_json_begin_object(b, "retention");
		mv_json_add_string(b, "class", t->class_name);
		mv_json_add_string(b, "expires_at", t->expires_at);
		mv_json_add_string(b, "rule", t->deciding_rule);
		mv_json_add_int(b, "policy_version", t->policy_version);
		json_builder_end_object(b);
	}
	mv_json_begin_object(b, "destruction");
	mv_json_add_int(b, "run", t->run);
	mv_json_add_int(b, "disposition", t->disposition_id);
	mv_json_add_string(b, "destroyed_at", t->destroyed_at);
	mv_json_add_string(b, "state", t->run_state);
	mv_json_add_string(b, "performed_by", t->performed_by);
	mv_json_add_string(b, "finished_at", t->run_finished_at);
	mv_json_add_string(b, "certificate_sha256", t->certificate_sha256);
	json_builder_end_object(b);
	mv_json_begin_array(b, "approvals");
	for (guint i = 0; i < t->approvals->len; i++) {
		const mv_purge_approval *a = t->approvals->pdata[i];
		mv_json_begin_object(b, NULL);
		mv_json_add_string(b, "by", a->by);
		mv_json_add_string(b, "actor", a->actor);
		mv_json_add_string(b, "at", a->at);
		json_builder_end_object(b);
	}
	json_builder_end_array(b);
	json_builder_end_object(b);
	mv_json_write(b, stdout);
}

static void print_tombstone_text(const mv_tombstone *t)
{
	printf("id:          %" G_GINT64_FORMAT "\n", t->id);
	printf("DESTROYED:   %s by purge run %" G_GINT64_FORMAT " (%s, performed by %s)\n",
	       or_dash(t->destroyed_at), t->run, or_dash(t->run_state), or_dash(t->performed_by));
	printf("certificate: %s (mailvault purge --certificate %" G_GINT64_FORMAT ")\n",
	       or_dash(t->certificate_sha256), t->run);
	printf("sha256:      %s\n", t->sha256);
	printf("size:        %" G_GINT64_FORMAT "\n", t->size);
	printf("message-id:  %s\n", or_dash(t->message_id));
	printf("date:        %s\n", or_dash(t->date));
	printf("from:        %s\n", or_dash(t->from));
	printf("registration: %s\n", or_dash(t->registration));
	printf("archived:    %s\n", or_dash(t->archived_at));
	if (t->class_name != NULL)
		printf("retention:   %s until %s (rule %s, policy version %" G_GINT64_FORMAT ")\n",
		       t->class_name, or_dash(t->expires_at), or_dash(t->deciding_rule),
		       t->policy_version);
	for (guint i = 0; i < t->approvals->len; i++) {
		const mv_purge_approval *a = t->approvals->pdata[i];
		printf("approved:    %s at %s (command run by %s)\n", a->by, a->at, a->actor);
	}
}

/* The record ref names.  A message ID needs no lookup of its own: the
 * record's statements find it or say that it is not there (one round trip
 * fewer for the common `show ID`, as in cmd-get.c). */
static mv_status read_record(mv_db *db, const char *ref, gint64 *id_r, mv_record **m_r,
                             char **error_r)
{
	if (mv_store_ref_plain_id(ref, id_r)) {
		char *e = NULL;
		mv_status st = mv_catalog_record(db, *id_r, m_r, &e);
		if (st == MV_ERR_NOT_FOUND) {
			g_free(e);
			return mv_fail(error_r, st, "no message %s in the archive", ref);
		}
		if (error_r != NULL)
			*error_r = e;
		else
			g_free(e);
		return st;
	}
	mv_status st = mv_store_resolve(db, ref, id_r, error_r);
	if (st == MV_OK)
		st = mv_catalog_record(db, *id_r, m_r, error_r);
	return st;
}

int mv_cmd_show(mv_cli *cli, int argc, char **argv)
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
			fputs(help, stdout);
			return 0;
		}
		if (o == 'j') {
			cli->json = TRUE;
			continue;
		}
		return mv_cli_usage_error(cli, "unknown option");
	}
	if (optind + 1 != argc)
		return mv_cli_usage_error(cli, "expected one message ID, SHA-256 or registration number");
	mv_db *db = NULL;
	cli->interactive = TRUE; /* a person waits for the answer */
	int rc = mv_cli_open_read(cli, &db, NULL);
	if (rc != 0)
		return rc;
	char *err = NULL;
	gint64 id = 0;
	mv_record *m = NULL;
	mv_status st = read_record(db, argv[optind], &id, &m, &err);
	if (st == MV_OK) {
		/* Every read is accountable: who looked at which record. */
		char *details = mv_audit_read_details(&id, 1);
		st = mv_audit_append(db, mv_audit_actor(), "show", argv[optind], details, NULL, &err);
		g_free(details);
		if (st != MV_OK)
			mv_record_free(&m);
	}
	if (st == MV_ERR_NOT_FOUND) {
		/* Not in the archive: destroyed, perhaps. */
		mv_tombstone *t = NULL;
		char *terr = NULL;
		mv_status tst = mv_purge_tombstone_find(db, argv[optind], &t, &terr);
		if (tst == MV_OK) {
			if (cli->json)
				print_tombstone_json(t);
			else
				print_tombstone_text(t);
			g_free(err);
			err = mv_tombstone_describe(t);
			st = MV_ERR_DESTROYED;
			mv_tombstone_free(&t);
		} else if (tst != MV_ERR_NOT_FOUND) {
			g_free(err);
			err = g_strdup(terr);
			st = tst;
		}
		g_free(terr);
	}
	/* Perhaps not replayed yet: say how far behind a replica is. */
	mv_cli_replica_lag_note(db, st, &err);
	mv_db_close(&db);
	if (st != MV_OK) {
		rc = mv_cli_fail(cli, st, err);
		g_free(err);
		return rc;
	}
	if (cli->json)
		print_json(m);
	else
		print_text(m);
	mv_record_free(&m);
	return 0;
}

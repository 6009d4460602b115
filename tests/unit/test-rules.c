/* Unit tests of retention/mv-rules.c: every condition kind (generated
 * cases with the expected class), the combinators (random expression trees
 * checked against a reference evaluator), direction, spam verdicts, the
 * longest-retention-wins rule and its ties, tags, explain output, regex
 * limits, and the sample policy on a small corpus of typical messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <glib.h>
#include <string.h>

#include "mv-rules.h"

#define SAMPLE MV_SOURCE_ROOT "/docs/policy-sample.xml"

/* ---- helpers ---- */

static gint64 utc(int y, int mo, int d)
{
	GDateTime *dt = g_date_time_new_utc(y, mo, d, 12, 0, 0);
	gint64 t = g_date_time_to_unix(dt);
	g_date_time_unref(dt);
	return t;
}

static mv_policy *parse_ok(const char *xml)
{
	GPtrArray *problems = g_ptr_array_new_with_free_func(g_free);
	mv_policy *p = NULL;
	char *error = NULL;
	if (mv_policy_parse(xml, strlen(xml), "t.xml", &p, problems, &error) != MV_OK) {
		for (guint i = 0; i < problems->len; i++)
			print_message("  %s\n", (const char *)problems->pdata[i]);
		fail_msg("policy does not parse: %s\n%s", error, xml);
	}
	g_ptr_array_free(problems, TRUE);
	return p;
}

/* A message described compactly; NULL ends each list. */
typedef struct {
	const char *from, *envelope_from;
	const char *to[4], *cc[4], *bcc[4], *rcpt[4];
	mv_rules_header headers[6];
	const char *subject, *body;
	mv_rules_attachment att[4];
	gint64 size;
	gboolean has_attachment;
	const char *source;
	gboolean no_date;
	const char *virus, *spam_verdict;
} msg;

static guint count(const char *const *list, guint max)
{
	guint n = 0;
	while (n < max && list[n] != NULL)
		n++;
	return n;
}

static void to_input(const msg *m, mv_rules_input *in)
{
	memset(in, 0, sizeof *in);
	in->from = m->from;
	in->envelope_from = m->envelope_from;
	in->to = m->to;
	in->n_to = count(m->to, 4);
	in->cc = m->cc;
	in->n_cc = count(m->cc, 4);
	in->bcc = m->bcc;
	in->n_bcc = count(m->bcc, 4);
	in->envelope_rcpt = m->rcpt;
	in->n_envelope_rcpt = count(m->rcpt, 4);
	in->headers = m->headers;
	while (in->n_headers < 6 && m->headers[in->n_headers].name != NULL)
		in->n_headers++;
	in->subject = m->subject;
	in->body = m->body;
	in->body_len = -1;
	in->attachments = m->att;
	while (in->n_attachments < 4 &&
	       (m->att[in->n_attachments].filename != NULL ||
	        m->att[in->n_attachments].detected_type != NULL ||
	        m->att[in->n_attachments].declared_type != NULL))
		in->n_attachments++;
	in->size = m->size;
	in->has_attachment = m->has_attachment;
	in->source = m->source;
	in->message_date = utc(2024, 1, 15);
	in->has_message_date = !m->no_date;
	in->archive_date = utc(2024, 1, 20);
	in->virus = m->virus;
	in->spam_verdict = m->spam_verdict;
}

static mv_rules_result *evaluate(const mv_policy *p, const msg *m, const mv_rules_limits *limits)
{
	mv_rules_input in;
	to_input(m, &in);
	mv_rules_result *r = NULL;
	char *error = NULL;
	assert_int_equal(mv_rules_evaluate(p, &in, limits, &r, &error), MV_OK);
	assert_null(error);
	assert_non_null(r);
	assert_non_null(r->cls);
	assert_non_null(r->reason);
	return r;
}

/* One rule "r" with the given conditions giving class "hit"; default "miss". */
static char *one_rule_policy(const char *conditions)
{
	return g_strdup_printf(
		"<policy>\n"
		"<internal-domains><domain>corp.example</domain><domain>*.corp.example</domain>"
		"</internal-domains>\n"
		"<classes><class name=\"hit\" duration=\"P10Y\"/><class name=\"miss\" duration=\"P1Y\"/>"
		"</classes>\n"
		"<default-class ref=\"miss\"/>\n"
		"<rules><rule name=\"r\">%s<class ref=\"hit\"/></rule></rules>\n"
		"</policy>\n",
		conditions);
}

/* Does the one-rule policy with these conditions match m? */
static gboolean matches(const char *conditions, const msg *m, mv_rules_result **result_r)
{
	char *xml = one_rule_policy(conditions);
	mv_policy *p = parse_ok(xml);
	mv_rules_result *r = evaluate(p, m, NULL);
	gboolean hit = strcmp(r->cls->name, "hit") == 0;
	/* class, deciding rule and matches agree */
	if (hit) {
		assert_non_null(r->rule);
		assert_string_equal(r->rule->name, "r");
		assert_int_equal(r->matches->len, 1);
	} else {
		assert_string_equal(r->cls->name, "miss");
		assert_null(r->rule);
		assert_int_equal(r->matches->len, 0);
	}
	if (result_r != NULL)
		*result_r = r;
	else
		mv_rules_result_free(&r);
	mv_policy_free(&p);
	g_free(xml);
	return hit;
}

/* ---- every leaf condition ---- */

typedef struct {
	const char *conditions;
	msg m;
	gboolean match;
} leaf_case;

static void test_leaf_conditions(void **state)
{
	(void)state;
	const leaf_case cases[] = {
		/* from: exact, glob, domain, case, envelope sender, brackets */
		{"<from address=\"alice@corp.example\"/>", {.from = "Alice@Corp.Example"}, TRUE},
		{"<from address=\"alice@corp.example\"/>", {.from = "<alice@corp.example>"}, TRUE},
		{"<from address=\"alice@corp.example\"/>", {.from = "alice2@corp.example"}, FALSE},
		{"<from address=\"alice@corp.example\"/>", {.from = NULL}, FALSE},
		{"<from address=\"alice@corp.example\"/>",
		 {.from = "x@other.example", .envelope_from = "alice@corp.example"}, TRUE},
		{"<from address=\"*@lawfirm.example\"/>", {.from = "bob@LawFirm.example"}, TRUE},
		{"<from address=\"*@lawfirm.example\"/>", {.from = "bob@lawfirm.example.evil"}, FALSE},
		{"<from address=\"b?b@lawfirm.example\"/>", {.from = "bob@lawfirm.example"}, TRUE},
		{"<from domain=\"lawfirm.example\"/>", {.from = "bob@lawfirm.example"}, TRUE},
		{"<from domain=\"@lawfirm.example\"/>", {.from = "bob@lawfirm.example"}, TRUE},
		{"<from domain=\"lawfirm.example\"/>", {.from = "bob@mail.lawfirm.example"}, FALSE},
		{"<from domain=\"*.lawfirm.example\"/>", {.from = "bob@mail.lawfirm.example"}, TRUE},
		{"<from domain=\"*.lawfirm.example\"/>", {.from = "bob@lawfirm.example"}, FALSE},
		{"<from domain=\"lawfirm.example\"/>", {.from = "lawfirm.example"}, FALSE},
		/* to/cc/bcc/envelope/recipient: any address of the role */
		{"<to domain=\"x.example\"/>", {.to = {"a@y.example", "b@X.example"}}, TRUE},
		{"<to domain=\"x.example\"/>", {.to = {"a@y.example", "b@z.example"}}, FALSE},
		{"<recipient address=\"legal@corp.example\"/>", {.rcpt = {"LEGAL@corp.example"}}, TRUE},
		{"<envelope address=\"j@corp.example\"/>", {.to = {"j@corp.example"}}, FALSE},
		/* header: presence, regex, case, several of the same name */
		{"<header name=\"X-DocuSign-Envelope-Id\"/>",
		 {.headers = {{"x-docusign-envelope-id", "123"}}}, TRUE},
		{"<header name=\"X-DocuSign-Envelope-Id\"/>", {.headers = {{"X-Other", "123"}}}, FALSE},
		{"<header name=\"Precedence\" regex=\"^bulk$\"/>", {.headers = {{"Precedence", "bulk"}}},
		 TRUE},
		{"<header name=\"Precedence\" regex=\"^bulk$\"/>", {.headers = {{"Precedence", "BULK"}}},
		 FALSE},
		{"<header name=\"Precedence\" regex=\"^bulk$\" case=\"insensitive\"/>",
		 {.headers = {{"Precedence", "BULK"}}}, TRUE},
		{"<header name=\"Received\" regex=\"mx2\"/>",
		 {.headers = {{"Received", "from mx1"}, {"Subject", "x"}, {"RECEIVED", "from mx2"}}}, TRUE},
		{"<header name=\"X-Empty\" regex=\"^$\"/>", {.headers = {{"X-Empty", NULL}}}, TRUE},
		/* subject */
		{"<subject regex=\"\\binvoice\\b\"/>", {.subject = "Your invoice 42"}, TRUE},
		{"<subject regex=\"\\binvoice\\b\"/>", {.subject = "Your INVOICE 42"}, FALSE},
		{"<subject regex=\"\\binvoice\\b\" case=\"insensitive\"/>", {.subject = "Your INVOICE 42"},
		 TRUE},
		{"<subject regex=\"\\binvoice\\b\"/>", {.subject = "invoices"}, FALSE},
		{"<subject regex=\"^$\"/>", {.subject = NULL}, TRUE},
		{"<subject regex=\"rechnung\" case=\"insensitive\"/>", {.subject = "RECHNUNG Nr. 5"}, TRUE},
		{"<subject regex=\"übersicht\" case=\"insensitive\"/>", {.subject = "ÜBERSICHT"}, TRUE},
		{"<subject regex=\"Rechnung\"/>", {.subject = "\xff\xfe Rechnung \xc3"}, TRUE},
		/* body */
		{"<body regex=\"litigation hold\" case=\"insensitive\"/>",
		 {.body = "Please note:\nLitigation Hold notice."}, TRUE},
		{"<body regex=\"litigation hold\"/>", {.body = "nothing here"}, FALSE},
		{"<body regex=\"(?m)^Total: \\d+\"/>", {.body = "Items\nTotal: 42\n"}, TRUE},
		{"<body regex=\"x\"/>", {.body = NULL}, FALSE},
		/* attachment-name */
		{"<attachment-name glob=\"*.pdf\"/>",
		 {.att = {{"scan.jpg", NULL, NULL}, {"Report.PDF", NULL, NULL}}}, TRUE},
		{"<attachment-name glob=\"*.pdf\"/>", {.att = {{"report.pdf.exe", NULL, NULL}}}, FALSE},
		{"<attachment-name glob=\"invoice-????.pdf\"/>", {.att = {{"Invoice-2025.pdf", NULL, NULL}}},
		 TRUE},
		{"<attachment-name glob=\"*\"/>", {.att = {{NULL, "image/png", NULL}}}, FALSE},
		/* attachment-type: detected and/or declared, globs, parameters */
		{"<attachment-type type=\"application/pdf\"/>", {.att = {{"a", "application/pdf", NULL}}},
		 TRUE},
		{"<attachment-type type=\"application/pdf\"/>",
		 {.att = {{"a", "application/octet-stream", "Application/PDF; name=a"}}}, TRUE},
		{"<attachment-type type=\"application/pdf\" match=\"detected\"/>",
		 {.att = {{"a", "application/octet-stream", "application/pdf"}}}, FALSE},
		{"<attachment-type type=\"application/pdf\" match=\"declared\"/>",
		 {.att = {{"a", "application/pdf", "application/octet-stream"}}}, FALSE},
		{"<attachment-type type=\"application/pdf\" match=\"declared\"/>",
		 {.att = {{"a", NULL, "application/pdf"}}}, TRUE},
		{"<attachment-type type=\"image/*\"/>", {.att = {{"a", "image/png", NULL}}}, TRUE},
		{"<attachment-type type=\"image/*\"/>", {.att = {{"a", "application/pdf", NULL}}}, FALSE},
		/* size: inclusive bounds */
		{"<size min=\"100\"/>", {.size = 100}, TRUE},
		{"<size min=\"100\"/>", {.size = 99}, FALSE},
		{"<size max=\"100\"/>", {.size = 100}, TRUE},
		{"<size max=\"100\"/>", {.size = 101}, FALSE},
		{"<size min=\"10\" max=\"20\"/>", {.size = 15}, TRUE},
		{"<size min=\"10\" max=\"20\"/>", {.size = 21}, FALSE},
		/* has-attachment */
		{"<has-attachment/>", {.has_attachment = TRUE}, TRUE},
		{"<has-attachment/>", {.has_attachment = FALSE}, FALSE},
		/* spam (the verdict headers are tested in test_spam_headers) */
		{"<spam/>", {.headers = {{"X-Spam-Flag", "YES"}}}, TRUE},
		{"<spam/>", {.headers = {{"X-Spam-Flag", "NO"}}}, FALSE},
		/* spamd's verdict (mv-scan) */
		{"<spam/>", {.spam_verdict = "yes"}, TRUE},
		{"<spam/>", {.spam_verdict = "no"}, FALSE},
		{"<spam/>", {.spam_verdict = "unscanned"}, FALSE},
		/* virus: clamd's verdict */
		{"<virus/>", {.virus = "infected"}, TRUE},
		{"<virus/>", {.virus = "clean"}, FALSE},
		{"<virus/>", {.virus = "unscanned"}, FALSE},
		{"<virus/>", {0}, FALSE},
		/* source */
		{"<source>imap:*</source>", {.source = "imap:journal"}, TRUE},
		{"<source>imap:*</source>", {.source = "import"}, FALSE},
		{"<source>import</source>", {.source = "IMPORT"}, TRUE},
		{"<source>smtp</source>", {.source = NULL}, FALSE},
		{"<source>*</source>", {.source = NULL}, TRUE},
		/* several conditions directly in a rule: all must hold */
		{"<has-attachment/><size min=\"10\"/>", {.has_attachment = TRUE, .size = 5}, FALSE},
		{"<has-attachment/><size min=\"10\"/>", {.has_attachment = TRUE, .size = 50}, TRUE},
	};
	for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
		gboolean got = matches(cases[i].conditions, &cases[i].m, NULL);
		if (got != cases[i].match)
			fail_msg("case %zu: %s: expected %s", i, cases[i].conditions,
			         cases[i].match ? "hit" : "miss");
	}
}

/* Generated: an address in one role is found by its own element and by
 * <recipient>, never by the others. */
static void test_address_roles(void **state)
{
	(void)state;
	static const char *const roles[] = {"to", "cc", "bcc", "envelope"};
	static const char *const elements[] = {"to", "cc", "bcc", "envelope", "recipient", "from"};
	for (gsize r = 0; r < G_N_ELEMENTS(roles); r++) {
		msg m = {.from = "sender@other.example"};
		const char **list = r == 0 ? m.to : r == 1 ? m.cc : r == 2 ? m.bcc : m.rcpt;
		list[0] = "nobody@other.example";
		list[1] = "Target@Corp.Example";
		for (gsize e = 0; e < G_N_ELEMENTS(elements); e++) {
			gboolean want = e == r || strcmp(elements[e], "recipient") == 0;
			for (int by_domain = 0; by_domain < 2; by_domain++) {
				char *cond = by_domain ? g_strdup_printf("<%s domain=\"corp.example\"/>", elements[e])
				                       : g_strdup_printf("<%s address=\"target@corp.example\"/>",
				                                         elements[e]);
				if (matches(cond, &m, NULL) != want)
					fail_msg("address in %s, %s: expected %d", roles[r], cond, want);
				g_free(cond);
			}
		}
	}
}

/* ---- direction ---- */

static void test_direction(void **state)
{
	(void)state;
	static const struct {
		msg m;
		mv_direction want;
	} cases[] = {
		{{.from = "a@corp.example", .to = {"b@corp.example"}, .cc = {"c@eu.corp.example"}},
		 MV_DIRECTION_INTERNAL},
		{{.from = "a@corp.example", .to = {"b@corp.example", "x@other.example"}},
		 MV_DIRECTION_OUTBOUND},
		{{.from = "a@corp.example", .bcc = {"x@other.example"}}, MV_DIRECTION_OUTBOUND},
		{{.from = "x@other.example", .to = {"y@other2.example"}, .cc = {"a@corp.example"}},
		 MV_DIRECTION_INBOUND},
		{{.from = "x@other.example", .rcpt = {"a@Corp.Example"}}, MV_DIRECTION_INBOUND},
		{{.from = "x@other.example", .to = {"y@other.example"}}, MV_DIRECTION_EXTERNAL},
		/* no recipients */
		{{.from = "a@corp.example"}, MV_DIRECTION_INTERNAL},
		{{.from = "x@other.example"}, MV_DIRECTION_EXTERNAL},
		/* no From: the envelope sender */
		{{.envelope_from = "a@corp.example", .to = {"x@other.example"}}, MV_DIRECTION_OUTBOUND},
		/* no sender at all: external */
		{{.to = {"a@corp.example"}}, MV_DIRECTION_INBOUND},
		/* look-alike domains are external */
		{{.from = "a@corp.example.evil", .to = {"b@corp.example"}}, MV_DIRECTION_INBOUND},
		{{.from = "a@notcorp.example", .to = {"b@notcorp.example"}}, MV_DIRECTION_EXTERNAL},
		/* an address without a domain is external */
		{{.from = "a@corp.example", .to = {"undisclosed-recipients"}}, MV_DIRECTION_OUTBOUND},
	};
	static const char *const names[] = {"internal", "outbound", "inbound", "external"};
	char *xml = one_rule_policy("<spam/>");
	mv_policy *p = parse_ok(xml);
	for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
		mv_rules_input in;
		to_input(&cases[i].m, &in);
		mv_direction d = mv_rules_direction(p, &in);
		if (d != cases[i].want)
			fail_msg("case %zu: direction %s, expected %s", i, mv_direction_to_string(d),
			         mv_direction_to_string(cases[i].want));
		mv_rules_result *r = evaluate(p, &cases[i].m, NULL);
		assert_int_equal(r->direction, cases[i].want);
		mv_rules_result_free(&r);
		/* and the <direction> condition, for each value */
		for (gsize k = 0; k < G_N_ELEMENTS(names); k++) {
			char *cond = g_strdup_printf("<direction>%s</direction>", names[k]);
			if (matches(cond, &cases[i].m, NULL) != (k == (gsize)cases[i].want))
				fail_msg("case %zu: %s", i, cond);
			g_free(cond);
		}
	}
	/* mv_policy_direction agrees on plain lists */
	const char *rcpts[] = {"b@corp.example", "x@other.example"};
	assert_int_equal(mv_policy_direction(p, "a@corp.example", rcpts, 1), MV_DIRECTION_INTERNAL);
	assert_int_equal(mv_policy_direction(p, "<A@CORP.EXAMPLE>", rcpts, 2), MV_DIRECTION_OUTBOUND);
	assert_int_equal(mv_policy_direction(p, NULL, rcpts, 2), MV_DIRECTION_INBOUND);
	assert_int_equal(mv_policy_direction(p, "x@other.example", rcpts + 1, 1),
	                 MV_DIRECTION_EXTERNAL);
	mv_policy_free(&p);
	g_free(xml);
}

/* ---- spam verdict headers ---- */

static void test_spam_headers(void **state)
{
	(void)state;
	static const struct {
		const char *name, *value;
		gboolean spam;
	} cases[] = {
		{"X-Spam-Flag", "YES", TRUE},
		{"x-spam-flag", " yes", TRUE},
		{"X-Spam-Flag", "NO", FALSE},
		{"X-Spam-Flag", "yesterday", FALSE},
		{"X-Spam-Status", "Yes, score=7.3 required=5.0 tests=BAYES_99", TRUE},
		{"X-Spam-Status", "No, score=1.2 required=5.0", FALSE},
		{"X-Spam-Level", "*****", TRUE},
		{"X-Spam-Level", "************", TRUE},
		{"X-Spam-Level", "****", FALSE},
		{"X-Spam-Level", "", FALSE},
		{"X-Spam", "Yes", TRUE},
		{"X-Spam", "true", TRUE},
		{"X-Spam", "No", FALSE},
		{"X-Barracuda-Spam-Status", "Yes, SCORE=9.0", TRUE},
		{"X-Barracuda-Spam-Status", "No, SCORE=0.5", FALSE},
		{"X-MS-Exchange-Organization-SCL", "5", TRUE},
		{"X-MS-Exchange-Organization-SCL", " 9 ", TRUE},
		{"X-MS-Exchange-Organization-SCL", "4", FALSE},
		{"X-MS-Exchange-Organization-SCL", "-1", FALSE},
		{"X-MS-Exchange-Organization-SCL", "high", FALSE},
		{"X-Forefront-Antispam-Report", "CIP:1.2.3.4;CTRY:;SFV:SPM;SFS:(1);", TRUE},
		{"X-Forefront-Antispam-Report", "CIP:1.2.3.4;SFV:NSPM;", FALSE},
		{"X-Spam-Score", "12.5", FALSE},
		{"Subject", "X-Spam-Flag: YES", FALSE},
	};
	for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
		mv_rules_header h[2] = {{"Received", "from x"}, {cases[i].name, cases[i].value}};
		if (mv_rules_is_spam(h, 2) != cases[i].spam)
			fail_msg("%s: %s: expected %d", cases[i].name, cases[i].value, cases[i].spam);
		msg m = {.headers = {{"Received", "from x"}, {cases[i].name, cases[i].value}}};
		assert_int_equal(matches("<spam/>", &m, NULL), cases[i].spam);
	}
	assert_false(mv_rules_is_spam(NULL, 0));
}

/* ---- combinators: random trees against a reference evaluator ---- */

/* Leaves: 0 <has-attachment/>, 1 <spam/>, 2 <direction>internal</direction>;
 * an assignment is 3 bits. */
typedef struct node {
	int kind; /* 0 leaf, 1 all, 2 any, 3 not */
	int leaf;
	struct node *kids[3];
	int nkids;
} node;

static node *random_tree(GRand *rand, int depth)
{
	node *n = g_new0(node, 1);
	n->kind = depth == 0 ? 0 : g_rand_int_range(rand, 0, 4);
	if (n->kind == 0) {
		n->leaf = g_rand_int_range(rand, 0, 3);
	} else {
		n->nkids = n->kind == 3 ? 1 : g_rand_int_range(rand, 1, 4);
		for (int i = 0; i < n->nkids; i++)
			n->kids[i] = random_tree(rand, depth - 1);
	}
	return n;
}

static void tree_free(node *n)
{
	for (int i = 0; i < n->nkids; i++)
		tree_free(n->kids[i]);
	g_free(n);
}

static void tree_xml(const node *n, GString *out)
{
	static const char *const leaves[] = {"<has-attachment/>", "<spam/>",
	                                     "<direction>internal</direction>"};
	static const char *const names[] = {NULL, "all", "any", "not"};
	if (n->kind == 0) {
		g_string_append(out, leaves[n->leaf]);
		return;
	}
	g_string_append_printf(out, "<%s>", names[n->kind]);
	for (int i = 0; i < n->nkids; i++)
		tree_xml(n->kids[i], out);
	g_string_append_printf(out, "</%s>", names[n->kind]);
}

static gboolean tree_eval(const node *n, int bits)
{
	switch (n->kind) {
	case 0:
		return (bits >> n->leaf) & 1;
	case 1:
		for (int i = 0; i < n->nkids; i++) {
			if (!tree_eval(n->kids[i], bits))
				return FALSE;
		}
		return TRUE;
	case 2:
		for (int i = 0; i < n->nkids; i++) {
			if (tree_eval(n->kids[i], bits))
				return TRUE;
		}
		return FALSE;
	default:
		return !tree_eval(n->kids[0], bits);
	}
}

static void assignment_msg(int bits, msg *m)
{
	memset(m, 0, sizeof *m);
	m->has_attachment = bits & 1;
	m->headers[0].name = "X-Spam-Flag";
	m->headers[0].value = bits & 2 ? "YES" : "NO";
	m->from = bits & 4 ? "a@corp.example" : "x@other.example";
	m->to[0] = bits & 4 ? "b@corp.example" : "y@other.example";
}

static void test_combinators(void **state)
{
	(void)state;
	/* the basic truth tables, written out */
	static const struct {
		const char *cond;
		const char *truth; /* over bits 0..7 */
	} tables[] = {
		{"<all><has-attachment/><spam/></all>", "00010001"},
		{"<any><has-attachment/><spam/></any>", "01110111"},
		{"<not><has-attachment/></not>", "10101010"},
		{"<not><not><spam/></not></not>", "00110011"},
		{"<all><has-attachment/></all>", "01010101"},
		{"<any><direction>internal</direction></any>", "00001111"},
		{"<not><any><has-attachment/><spam/><direction>internal</direction></any></not>",
		 "10000000"},
		{"<any><all><has-attachment/><spam/></all><not><direction>internal</direction></not></any>",
		 "11110001"},
	};
	for (gsize i = 0; i < G_N_ELEMENTS(tables); i++) {
		for (int bits = 0; bits < 8; bits++) {
			msg m;
			assignment_msg(bits, &m);
			if (matches(tables[i].cond, &m, NULL) != (tables[i].truth[bits] == '1'))
				fail_msg("%s on %d", tables[i].cond, bits);
		}
	}
	/* random nested trees */
	GRand *rand = g_rand_new_with_seed(42);
	for (int t = 0; t < 60; t++) {
		node *tree = random_tree(rand, 1 + t % 4);
		GString *cond = g_string_new(NULL);
		tree_xml(tree, cond);
		char *xml = one_rule_policy(cond->str);
		mv_policy *p = parse_ok(xml);
		for (int bits = 0; bits < 8; bits++) {
			msg m;
			assignment_msg(bits, &m);
			mv_rules_result *r = evaluate(p, &m, NULL);
			gboolean got = strcmp(r->cls->name, "hit") == 0;
			if (got != tree_eval(tree, bits))
				fail_msg("%s on %d: got %d", cond->str, bits, got);
			mv_rules_result_free(&r);
		}
		mv_policy_free(&p);
		g_free(xml);
		g_string_free(cond, TRUE);
		tree_free(tree);
	}
	g_rand_free(rand);
}

/* ---- longest retention wins ---- */

#define LADDER_CLASSES                                                                           \
	"<classes>\n"                                                                             \
	"<class name=\"m1y\" duration=\"P1Y\"/>\n"                                                \
	"<class name=\"f7y\" duration=\"P7Y\"/>\n"                                                \
	"<class name=\"h7y\" duration=\"P84M\"/>\n"                                               \
	"<class name=\"l10y\" duration=\"P10Y\" disposition=\"review\"/>\n"                      \
	"<class name=\"s90d\" duration=\"P90D\" start=\"archive-date\"/>\n"                       \
	"<class name=\"d3y\" duration=\"P3Y\"/>\n"                                                \
	"</classes>\n<default-class ref=\"d3y\"/>\n"

static const char *const ladder_rules[] = {
	"<rule name=\"r-m1y\"><header name=\"X-M\"/><class ref=\"m1y\"/><tag>a</tag><tag>b</tag></rule>",
	"<rule name=\"r-f7y\"><header name=\"X-F\"/><class ref=\"f7y\"/><tag>b</tag><tag>c</tag></rule>",
	"<rule name=\"r-h7y\"><header name=\"X-H\"/><class ref=\"h7y\"/><tag>c</tag></rule>",
	"<rule name=\"r-l10y\"><header name=\"X-L\"/><class ref=\"l10y\"/></rule>",
	"<rule name=\"r-s90d\"><header name=\"X-S\"/><class ref=\"s90d\"/><tag>spam</tag></rule>",
	"<rule name=\"r-tag\"><header name=\"X-T\"/><tag>t</tag><tag>a</tag></rule>",
};
static const char *const ladder_headers[] = {"X-M", "X-F", "X-H", "X-L", "X-S", "X-T"};
static const char *const ladder_names[] = {"r-m1y", "r-f7y", "r-h7y", "r-l10y", "r-s90d", "r-tag"};

static mv_policy *ladder_policy(gboolean reversed)
{
	GString *s = g_string_new("<policy>\n" LADDER_CLASSES "<rules>\n");
	for (gsize i = 0; i < G_N_ELEMENTS(ladder_rules); i++) {
		gsize k = reversed ? G_N_ELEMENTS(ladder_rules) - 1 - i : i;
		g_string_append_printf(s, "%s\n", ladder_rules[k]);
	}
	g_string_append(s, "</rules></policy>\n");
	mv_policy *p = parse_ok(s->str);
	g_string_free(s, TRUE);
	return p;
}

/* Every subset of matching rules, both rule orders, two date situations:
 * the winner is the latest expiry, the earlier rule on ties, and the tags
 * are the union in rule order. */
static void test_longest_wins_generated(void **state)
{
	(void)state;
	for (int reversed = 0; reversed < 2; reversed++) {
		mv_policy *p = ladder_policy(reversed);
		for (int old = 0; old < 2; old++) {
			for (int set = 0; set < (1 << G_N_ELEMENTS(ladder_headers)); set++) {
				msg m = {0};
				int nh = 0;
				for (gsize h = 0; h < G_N_ELEMENTS(ladder_headers); h++) {
					if (set & (1 << h)) {
						m.headers[nh].name = ladder_headers[h];
						m.headers[nh].value = "1";
						nh++;
					}
				}
				mv_rules_input in;
				to_input(&m, &in);
				if (old) /* an old message archived late: 90 days from archiving beat 1 year */
					in.message_date = utc(2020, 1, 1), in.archive_date = utc(2025, 6, 1);
				mv_rules_result *r = NULL;
				char *error = NULL;
				assert_int_equal(mv_rules_evaluate(p, &in, NULL, &r, &error), MV_OK);

				/* reference */
				const mv_rule *want_rule = NULL;
				gint64 want_expiry = 0;
				GPtrArray *want_tags = g_ptr_array_new();
				guint nmatch = 0;
				for (guint i = 0; i < mv_policy_rule_count(p); i++) {
					const mv_rule *rule = mv_policy_rule(p, i);
					gsize h;
					for (h = 0; h < G_N_ELEMENTS(ladder_names); h++) {
						if (strcmp(ladder_names[h], rule->name) == 0)
							break;
					}
					assert_true(h < G_N_ELEMENTS(ladder_rules));
					if (!(set & (1 << h)))
						continue;
					nmatch++;
					for (guint t = 0; t < rule->tags->len; t++) {
						gboolean seen = FALSE;
						for (guint k = 0; k < want_tags->len; k++)
							seen = seen || strcmp(want_tags->pdata[k], rule->tags->pdata[t]) == 0;
						if (!seen)
							g_ptr_array_add(want_tags, rule->tags->pdata[t]);
					}
					if (rule->cls == NULL)
						continue;
					gint64 e = mv_retention_expiry(rule->cls, in.message_date, TRUE, in.archive_date);
					if (want_rule == NULL || e > want_expiry) {
						want_rule = rule;
						want_expiry = e;
					}
				}
				if (want_rule == NULL)
					want_expiry = mv_retention_expiry(mv_policy_default_class(p), in.message_date,
					                                  TRUE, in.archive_date);
				if (r->rule != want_rule)
					fail_msg("set %d reversed %d old %d: rule %s, expected %s", set, reversed, old,
					         r->rule ? r->rule->name : "(default)",
					         want_rule ? want_rule->name : "(default)");
				assert_ptr_equal(r->cls, want_rule != NULL ? want_rule->cls : mv_policy_default_class(p));
				assert_int_equal(r->expiry, want_expiry);
				assert_int_equal(r->matches->len, nmatch);
				assert_int_equal(r->tags->len, want_tags->len);
				for (guint k = 0; k < want_tags->len; k++)
					assert_string_equal(r->tags->pdata[k], want_tags->pdata[k]);
				g_ptr_array_free(want_tags, TRUE);
				mv_rules_result_free(&r);
			}
		}
		mv_policy_free(&p);
	}
}

static mv_rules_result *ladder(const mv_policy *p, const char *const *headers)
{
	msg m = {0};
	for (int i = 0; headers[i] != NULL; i++) {
		m.headers[i].name = headers[i];
		m.headers[i].value = "1";
	}
	return evaluate(p, &m, NULL);
}

static void test_longest_wins_explained(void **state)
{
	(void)state;
	mv_policy *p = ladder_policy(FALSE);

	/* 7 years beat 1 year, whatever the order */
	const char *mf[] = {"X-M", "X-F", NULL};
	mv_rules_result *r = ladder(p, mf);
	assert_string_equal(r->cls->name, "f7y");
	assert_string_equal(r->rule->name, "r-f7y");
	assert_int_equal(r->expiry, utc(2031, 1, 15));
	assert_int_equal(r->matches->len, 2);
	const mv_rules_match *m0 = &g_array_index(r->matches, mv_rules_match, 0);
	const mv_rules_match *m1 = &g_array_index(r->matches, mv_rules_match, 1);
	assert_string_equal(m0->rule->name, "r-m1y");
	assert_string_equal(m0->cls->name, "m1y");
	assert_int_equal(m0->expiry, utc(2025, 1, 15));
	assert_string_equal(m1->rule->name, "r-f7y");
	assert_int_equal(m1->expiry, utc(2031, 1, 15));
	assert_int_equal(r->tags->len, 3); /* a b c */
	assert_string_equal(r->reason,
	                    "rule 'r-f7y' (line 13) gives class 'f7y' (P7Y from the message date): "
	                    "expires 2031-01-15; the latest expiry of the 2 matching rules that name a "
	                    "class; beats 'r-m1y' (m1y, 2025-01-15)");
	mv_rules_result_free(&r);

	/* a tie (P7Y and P84M): the earlier rule wins */
	const char *fh[] = {"X-H", "X-F", NULL};
	r = ladder(p, fh);
	assert_string_equal(r->rule->name, "r-f7y");
	assert_non_null(strstr(r->reason, "tied with later rule 'r-h7y' (h7y), the earlier rule wins"));
	mv_rules_result_free(&r);
	mv_policy *rev = ladder_policy(TRUE);
	r = ladder(rev, fh);
	assert_string_equal(r->rule->name, "r-h7y");
	assert_string_equal(r->cls->name, "h7y");
	mv_rules_result_free(&r);
	mv_policy_free(&rev);

	/* nothing matches: the default class */
	const char *none[] = {"X-Nothing", NULL};
	r = ladder(p, none);
	assert_string_equal(r->cls->name, "d3y");
	assert_null(r->rule);
	assert_int_equal(r->matches->len, 0);
	assert_int_equal(r->tags->len, 0);
	assert_int_equal(r->expiry, utc(2027, 1, 15));
	assert_string_equal(r->reason, "no rule matched, so the default class 'd3y' applies (P3Y from "
	                               "the message date): expires 2027-01-15");
	mv_rules_result_free(&r);

	/* only a tag rule: tags, but the default class */
	const char *tag[] = {"X-T", NULL};
	r = ladder(p, tag);
	assert_string_equal(r->cls->name, "d3y");
	assert_null(r->rule);
	assert_int_equal(r->matches->len, 1);
	assert_null(g_array_index(r->matches, mv_rules_match, 0).cls);
	assert_int_equal(r->tags->len, 2);
	assert_string_equal(r->tags->pdata[0], "t");
	assert_non_null(strstr(r->reason, "only the tag rule 'r-tag'"));
	mv_rules_result_free(&r);

	/* a short class never beats the default... because the default only
	 * applies when nothing names a class: spam alone gets 90 days */
	const char *spam[] = {"X-S", NULL};
	r = ladder(p, spam);
	assert_string_equal(r->cls->name, "s90d");
	assert_int_equal(r->expiry, utc(2024, 4, 19)); /* archive date 2024-01-20 + 90 days */
	assert_non_null(strstr(r->reason, "P90D from the archive date"));
	assert_non_null(strstr(r->reason, "no other matching rule names a class"));
	mv_rules_result_free(&r);

	/* everything at once: 10 years */
	const char *all[] = {"X-M", "X-F", "X-H", "X-L", "X-S", "X-T"};
	msg m = {0};
	for (int i = 0; i < 6; i++)
		m.headers[i] = (mv_rules_header){all[i], "1"};
	r = evaluate(p, &m, NULL);
	assert_string_equal(r->cls->name, "l10y");
	assert_int_equal(r->matches->len, 6);
	assert_int_equal(r->tags->len, 5); /* a b c spam t */
	assert_string_equal(r->tags->pdata[3], "spam");
	assert_string_equal(r->tags->pdata[4], "t");
	mv_rules_result_free(&r);

	/* no message date: message-date classes count from the archive date */
	msg nd = {.headers = {{"X-F", "1"}}, .no_date = TRUE};
	r = evaluate(p, &nd, NULL);
	assert_int_equal(r->expiry, utc(2031, 1, 20));
	assert_non_null(strstr(r->reason, "the message having no date"));
	mv_rules_result_free(&r);
	mv_policy_free(&p);
}

/* ---- regex limits ---- */

static void test_pathological_regex(void **state)
{
	(void)state;
	char *xml = g_strdup_printf(
		"<policy><classes><class name=\"hit\" duration=\"P10Y\"/><class name=\"miss\" "
		"duration=\"P1Y\"/><class name=\"other\" duration=\"P2Y\"/></classes>\n"
		"<default-class ref=\"miss\"/><rules>\n"
		"<rule name=\"evil\"><body regex=\"(a+)+$\"/><class ref=\"hit\"/></rule>\n"
		"<rule name=\"negated\"><not><subject regex=\"(x+x+)+y\"/></not><tag>negated</tag></rule>\n"
		"<rule name=\"fine\"><body regex=\"^a\"/><class ref=\"other\"/></rule>\n"
		"</rules></policy>");
	mv_policy *p = parse_ok(xml);
	char *body = g_malloc(20002);
	memset(body, 'a', 20000);
	body[20000] = 'b';
	body[20001] = '\0';
	char *subject = g_strnfill(5000, 'x');
	msg m = {.body = body, .subject = subject};

	mv_rules_limits limits;
	mv_rules_limits_default(&limits);
	for (int pass = 0; pass < 2; pass++) {
		if (pass == 1)
			limits.match_limit = MV_RULES_MATCH_LIMIT_MIN;
		mv_rules_result *r = evaluate(p, &m, &limits);
		/* the limit was hit (not a timing assertion): no match, a warning */
		assert_true(r->limit_hit);
		assert_true(r->warnings->len >= 1);
		assert_non_null(strstr(r->warnings->pdata[0], "rule 'evil': <body regex=\"(a+)+$\"> (line 3)"));
		assert_non_null(strstr(r->warnings->pdata[0], "limit"));
		assert_non_null(strstr(r->warnings->pdata[0], "counted as no match"));
		/* the other rules were still evaluated */
		assert_string_equal(r->cls->name, "other");
		/* inside <not>, a test that hit the limit counts as no match, so the
		 * <not> holds */
		gboolean negated = FALSE;
		for (guint i = 0; i < r->tags->len; i++)
			negated = negated || strcmp(r->tags->pdata[i], "negated") == 0;
		assert_true(negated);
		mv_rules_result_free(&r);
	}
	/* a harmless body: no warning */
	msg ok = {.body = "aaa", .subject = "x"};
	mv_rules_result *r = evaluate(p, &ok, NULL);
	assert_false(r->limit_hit);
	assert_int_equal(r->warnings->len, 0);
	assert_string_equal(r->cls->name, "hit");
	mv_rules_result_free(&r);

	/* body_len bounds the text looked at */
	mv_rules_input in;
	msg cut = {.body = "xxxa"};
	to_input(&cut, &in);
	in.body_len = 3;
	char *error = NULL;
	assert_int_equal(mv_rules_evaluate(p, &in, NULL, &r, &error), MV_OK);
	assert_string_equal(r->cls->name, "miss");
	mv_rules_result_free(&r);
	mv_rules_result_free(&r);
	mv_rules_result_free(NULL);

	g_free(subject);
	g_free(body);
	mv_policy_free(&p);
	g_free(xml);
}

static void test_limits_check(void **state)
{
	(void)state;
	mv_rules_limits l;
	mv_rules_limits_default(&l);
	char *error = NULL;
	assert_int_equal(mv_rules_limits_check(&l, &error), MV_OK);
	l.match_limit = MV_RULES_MATCH_LIMIT_MIN - 1;
	assert_int_equal(mv_rules_limits_check(&l, &error), MV_ERR_CONFIG);
	assert_non_null(strstr(error, "match limit"));
	g_clear_pointer(&error, g_free);
	mv_rules_limits_default(&l);
	l.depth_limit = MV_RULES_DEPTH_LIMIT_MAX + 1;
	assert_int_equal(mv_rules_limits_check(&l, &error), MV_ERR_CONFIG);
	g_clear_pointer(&error, g_free);
	mv_rules_limits_default(&l);
	l.heap_limit_kib = 0;
	assert_int_equal(mv_rules_limits_check(&l, &error), MV_ERR_CONFIG);
	g_clear_pointer(&error, g_free);
}

/* ---- the sample policy on typical company mail ---- */

typedef struct {
	const char *what;
	msg m;
	const char *cls;
	const char *rule;   /* deciding rule, NULL for the default */
	const char *tags;   /* space-separated, in order */
} corpus_case;

static void test_sample_policy_corpus(void **state)
{
	(void)state;
	const corpus_case cases[] = {
		{"vendor invoice to accounts payable",
		 {.from = "billing@supplier.example", .to = {"accounts-payable@corp.example"},
		  .subject = "Invoice 4711 for March", .has_attachment = TRUE,
		  .att = {{"invoice-4711.pdf", "application/pdf", "application/pdf"}}},
		 "finance-7y", "finance-mailboxes", "finance invoice"},
		{"spam to an employee",
		 {.from = "winner@lottery.example", .to = {"bob@corp.example"},
		  .headers = {{"X-Spam-Flag", "YES"}, {"X-Spam-Status", "Yes, score=12.1"}},
		  .subject = "You won"},
		 "spam-90d", "spam", "spam"},
		{"spam verdict on internal mail is ignored",
		 {.from = "alice@corp.example", .to = {"bob@corp.example"},
		  .headers = {{"X-Spam-Flag", "YES"}}, .subject = "lunch?"},
		 "default-3y", NULL, ""},
		{"newsletter",
		 {.from = "news@shop.example", .to = {"bob@corp.example"},
		  .headers = {{"List-Unsubscribe", "<mailto:unsub@shop.example>"}}, .subject = "Deals"},
		 "marketing-1y", "bulk-mail", "marketing"},
		{"newsletter with an invoice: longest wins",
		 {.from = "news@shop.example", .to = {"bob@corp.example"},
		  .headers = {{"List-Unsubscribe", "<mailto:unsub@shop.example>"}},
		  .subject = "Your invoice and our deals"},
		 "finance-7y", "invoices", "finance invoice marketing"},
		{"phishing invoice flagged as spam: still kept as finance",
		 {.from = "x@phish.example", .to = {"bob@corp.example"},
		  .headers = {{"X-Spam-Level", "**********"}}, .subject = "Invoice overdue"},
		 "finance-7y", "invoices", "finance invoice spam"},
		{"signed contract",
		 {.from = "partner@acme.example", .to = {"sales@corp.example"},
		  .subject = "Signed Agreement", .has_attachment = TRUE,
		  .att = {{"MSA-final.pdf", "application/pdf", "application/octet-stream"}}},
		 "contracts-10y", "contracts", "contract"},
		{"contract-like name but not a document: no contract",
		 {.from = "partner@acme.example", .to = {"sales@corp.example"}, .subject = "agreement",
		  .att = {{"agreement.jpg", "image/jpeg", "image/jpeg"}}},
		 "default-3y", NULL, ""},
		{"e-signature service",
		 {.from = "dse_na2@docusign.net", .to = {"sales@corp.example"},
		  .headers = {{"X-DocuSign-Envelope-Id", "abc"}}, .subject = "Completed"},
		 "contracts-10y", "contracts", "contract"},
		{"outside counsel sending an invoice: 10 years beat 7",
		 {.from = "counsel@lawfirm.example", .to = {"bob@corp.example"},
		  .subject = "Invoice for legal services"},
		 "legal-10y", "outside-counsel", "finance invoice legal"},
		{"privileged body",
		 {.from = "alice@corp.example", .to = {"bob@corp.example"}, .subject = "re: dispute",
		  .body = "This message is protected by ATTORNEY-CLIENT PRIVILEGE."},
		 "legal-10y", "privileged", "legal privileged"},
		{"payslip",
		 {.from = "payroll@corp.example", .to = {"bob@corp.example"}, .subject = "March",
		  .att = {{"Payslip-2025-03.pdf", "application/pdf", "application/pdf"}}},
		 "hr-7y", "hr", "hr personal-data"},
		{"ordinary internal mail",
		 {.from = "alice@corp.example", .to = {"bob@corp.example"}, .subject = "lunch?",
		  .source = "smtp"},
		 "default-3y", NULL, ""},
		{"large imported message: tags only",
		 {.from = "alice@corp.example", .to = {"bob@corp.example"}, .subject = "photos",
		  .size = 30 * 1024 * 1024, .source = "import"},
		 "default-3y", NULL, "large legacy"},
		{"subsidiary writes to a customer",
		 {.from = "eve@eu.corp.example", .to = {"c@customer.example"},
		  .headers = {{"X-Spam-Flag", "YES"}}, .subject = "quote"},
		 "default-3y", NULL, ""},
	};
	GPtrArray *problems = g_ptr_array_new_with_free_func(g_free);
	mv_policy *p = NULL;
	char *error = NULL;
	assert_int_equal(mv_policy_parse_file(SAMPLE, &p, problems, &error), MV_OK);
	assert_int_equal(problems->len, 0);
	for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
		mv_rules_result *r = evaluate(p, &cases[i].m, NULL);
		GString *tags = g_string_new(NULL);
		for (guint t = 0; t < r->tags->len; t++)
			g_string_append_printf(tags, "%s%s", t > 0 ? " " : "", (const char *)r->tags->pdata[t]);
		const char *rule = r->rule != NULL ? r->rule->name : NULL;
		if (strcmp(r->cls->name, cases[i].cls) != 0 || g_strcmp0(rule, cases[i].rule) != 0 ||
		    strcmp(tags->str, cases[i].tags) != 0)
			fail_msg("%s: got %s by %s [%s], expected %s by %s [%s]; %s", cases[i].what,
			         r->cls->name, rule ? rule : "(default)", tags->str, cases[i].cls,
			         cases[i].rule ? cases[i].rule : "(default)", cases[i].tags, r->reason);
		assert_int_equal(r->warnings->len, 0);
		g_string_free(tags, TRUE);
		mv_rules_result_free(&r);
	}
	mv_policy_free(&p);
	g_ptr_array_free(problems, TRUE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_leaf_conditions),
		cmocka_unit_test(test_address_roles),
		cmocka_unit_test(test_direction),
		cmocka_unit_test(test_spam_headers),
		cmocka_unit_test(test_combinators),
		cmocka_unit_test(test_longest_wins_generated),
		cmocka_unit_test(test_longest_wins_explained),
		cmocka_unit_test(test_pathological_regex),
		cmocka_unit_test(test_limits_check),
		cmocka_unit_test(test_sample_policy_corpus),
	};
	return cmocka_run_group_tests_name("rules", tests, NULL, NULL);
}

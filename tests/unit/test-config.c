/* Unit tests of the configuration file (cli/mv-config.c): line numbers of
 * errors, values checked against the table, a command's options put before
 * the user's; and of the log line format (archiver/mv-log.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <glib.h>
#include <glib/gstdio.h>
#include <string.h>

#include "mv-config.h"
#include "mv-log.h"

static char *write_conf(const char *text, gsize len)
{
	char *path = NULL;
	int fd = g_file_open_tmp("mvconf-XXXXXX", &path, NULL);
	assert_true(fd >= 0);
	close(fd);
	assert_true(g_file_set_contents(path, text, (gssize)len, NULL));
	return path;
}

/* Load text; return the error with the path replaced by "F" (NULL: loaded). */
static char *load_error(const char *text, gsize len, mv_config **config_r)
{
	char *path = write_conf(text, len);
	mv_config *c = NULL;
	char *err = NULL;
	mv_status st = mv_config_load(path, &c, &err);
	char *out = NULL;
	if (st != MV_OK) {
		assert_int_equal(st, MV_ERR_CONFIG);
		assert_null(c);
		assert_true(g_str_has_prefix(err, path));
		out = g_strconcat("F", err + strlen(path), NULL);
		g_free(err);
	} else if (config_r != NULL) {
		*config_r = c;
	} else {
		mv_config_free(&c);
	}
	g_unlink(path);
	g_free(path);
	return out;
}

#define EXPECT_ERROR(text, want)                                   \
	do {                                                           \
		char *e_ = load_error(text, strlen(text), NULL);           \
		assert_non_null(e_);                                       \
		assert_string_equal(e_, want);                             \
		g_free(e_);                                                \
	} while (0)

static void test_errors_name_the_line(void **state)
{
	(void)state;
	EXPECT_ERROR("# comment\n\n[database]\nhome = /x\n\nhoem = /y\n",
	             "F:6: unknown key 'hoem' in [database]");
	EXPECT_ERROR("[database]\r\nhome = /x\r\n[nope]\r\n", "F:3: unknown section [nope]");
	EXPECT_ERROR("[search]\nlimit = -1\n", "F:2: limit in [search]: '-1' is not a number from 0 to 2147483647");
	EXPECT_ERROR("[search]\nlimit = 99999999999999999999\n",
	             "F:2: limit in [search]: '99999999999999999999' is not a number from 0 to 2147483647");
	EXPECT_ERROR("[import]\nquiet = 1\n", "F:2: quiet in [import]: '1' is not true or false");
	EXPECT_ERROR("[export]\nformat = rar\n", "F:2: format in [export]: 'rar' is not one of dir|zip|tar|mbox");
	EXPECT_ERROR("[database]\nhome =\n", "F:2: home in [database]: empty value");
	EXPECT_ERROR("[database]\nhome[de] = /x\n", "F:2: unknown key 'home[de]' in [database]");
	EXPECT_ERROR("[database\n", "F:1: malformed section header: [database");
	EXPECT_ERROR("[]\n", "F:1: malformed section header: []");
	EXPECT_ERROR("home = /x\n", "F:1: a key before the first [section]");
	EXPECT_ERROR("[database]\n= /x\n", "F:2: a line without a key");
	EXPECT_ERROR("[imap:]\nurl = x\n", "F:1: unknown section [imap:]");
	EXPECT_ERROR("[export]\nencrypt-to = ;\n", "F:2: encrypt-to in [export]: empty value");
	/* The second [database] group: its line is still found. */
	EXPECT_ERROR("[database]\nhome = /x\n[search]\nlimit = 1\n[database]\nbad = 1\n",
	             "F:6: unknown key 'bad' in [database]");
	char nul[] = "[database]\nhome = /x\0y\n";
	char *e = load_error(nul, sizeof nul - 1, NULL);
	assert_string_equal(e, "F: holds a NUL byte");
	g_free(e);
	e = load_error("[database]\nhome = /\xff\n", 20, NULL);
	assert_string_equal(e, "F: is not valid UTF-8");
	g_free(e);
}

static void test_missing_file(void **state)
{
	(void)state;
	mv_config *c = NULL;
	char *err = NULL;
	assert_int_equal(mv_config_load("/nonexistent/mailvault.conf", &c, &err), MV_ERR_CONFIG);
	assert_null(c);
	assert_true(g_str_has_prefix(err, "/nonexistent/mailvault.conf: cannot read"));
	g_free(err);
}

static char *joined(char **v)
{
	return g_strjoinv(" ", v);
}

static void test_command_options(void **state)
{
	(void)state;
	const char *text = "[import]\nbatch = 50\nquiet = true\nno-index = false\n"
	                   "[export]\nencrypt-to = a@x; b@x\n"
	                   "[review]\nlimit = 5\n[purge]\nwait = 9\n[logging]\nlevel = debug\n"
	                   "[imap:j]\nurl = imaps://h/J\n";
	mv_config *c = NULL;
	assert_null(load_error(text, strlen(text), &c));
	assert_string_equal(mv_config_get(c, "logging", "level"), "debug");
	assert_null(mv_config_get(c, "logging", "progress"));

	char *in1[] = {"import", "--batch", "7", "a.eml", NULL};
	int n = 0;
	char *added = NULL;
	char **out = mv_config_command_argv(c, 4, in1, &n, &added);
	char *s = joined(out);
	/* the file's first, the user's after them (they win) */
	assert_string_equal(s, "import --batch=50 --quiet --batch 7 a.eml");
	assert_int_equal(n, 6);
	assert_string_equal(added, "--batch=50 --quiet");
	g_free(s);
	g_free(added);
	g_strfreev(out);

	char *in2[] = {"export", "--hold", "h", NULL};
	out = mv_config_command_argv(c, 3, in2, &n, &added);
	s = joined(out);
	assert_string_equal(s, "export --encrypt-to=a@x --encrypt-to=b@x --hold h");
	g_free(s);
	g_free(added);
	g_strfreev(out);

	char *in3[] = {"review", "list", "--json", NULL};
	out = mv_config_command_argv(c, 3, in3, &n, &added);
	s = joined(out);
	assert_string_equal(s, "review list --limit=5 --json"); /* after the subcommand */
	g_free(s);
	g_free(added);
	g_strfreev(out);

	char *in4[] = {"review", "approve", "12", NULL};
	out = mv_config_command_argv(c, 3, in4, &n, &added);
	s = joined(out);
	assert_string_equal(s, "review approve 12"); /* [review] limit is list's only */
	assert_string_equal(added, "");
	g_free(s);
	g_free(added);
	g_strfreev(out);

	char *in5[] = {"purge", "--list", NULL};
	out = mv_config_command_argv(c, 2, in5, &n, &added);
	s = joined(out);
	assert_string_equal(s, "purge --list"); /* wait is not for --list */
	g_free(s);
	g_free(added);
	g_strfreev(out);
	char *in6[] = {"purge", NULL};
	out = mv_config_command_argv(c, 1, in6, &n, &added);
	s = joined(out);
	assert_string_equal(s, "purge --wait=9");
	g_free(s);
	g_free(added);
	g_strfreev(out);

	char *in7[] = {"search", "x", NULL};
	out = mv_config_command_argv(c, 2, in7, &n, &added);
	s = joined(out);
	assert_string_equal(s, "search x");
	g_free(s);
	g_free(added);
	g_strfreev(out);
	/* no configuration: argv as it was */
	out = mv_config_command_argv(NULL, 2, in7, &n, &added);
	s = joined(out);
	assert_string_equal(s, "search x");
	g_free(s);
	g_free(added);
	g_strfreev(out);
	mv_config_free(&c);
	assert_null(c);
}

static void test_environment_not_overridden(void **state)
{
	(void)state;
	const char *text = "[database]\nhome = /from/file\nstatement-timeout = 5\n";
	mv_config *c = NULL;
	assert_null(load_error(text, strlen(text), &c));
	g_setenv("MAILVAULT_HOME", "/from/env", TRUE);
	g_unsetenv("MAILVAULT_STATEMENT_TIMEOUT");
	mv_config_apply_env(c);
	assert_string_equal(g_getenv("MAILVAULT_HOME"), "/from/env");
	assert_string_equal(g_getenv("MAILVAULT_STATEMENT_TIMEOUT"), "5");
	mv_config_free(&c);
}

static void test_locate(void **state)
{
	(void)state;
	assert_string_equal(mv_config_locate("/x.conf"), "/x.conf");
	g_setenv("MAILVAULT_CONFIG", "/env.conf", TRUE);
	assert_string_equal(mv_config_locate(NULL), "/env.conf");
	g_setenv("MAILVAULT_CONFIG", "", TRUE);
	assert_null(mv_config_locate(NULL));
	g_unsetenv("MAILVAULT_CONFIG");
}

static void test_sample_loads(void **state)
{
	(void)state;
	/* the sample, every key uncommented with a value of its type */
	char *buf = NULL;
	gsize len = 0;
	FILE *f = open_memstream(&buf, &len);
	mv_config_write_keys(f);
	fclose(f);
	GString *conf = g_string_new(NULL);
	char **lines = g_strsplit(buf, "\n", -1);
	const char *last = "";
	for (char **l = lines; *l != NULL && **l != '\0'; l++) {
		char **cols = g_strsplit(*l, "\t", 5);
		assert_non_null(cols[4]);
		if (strcmp(cols[0], last) != 0)
			g_string_append_printf(conf, "[%s]\n", strcmp(cols[0], "imap:*") == 0 ? "imap:x" : cols[0]);
		last = g_intern_string(cols[0]);
		const char *v = g_str_has_prefix(cols[2], "number ") ? cols[2] + 7 /* its minimum */
		                : strcmp(cols[2], "true|false") == 0 ? "true"
		                : strchr(cols[2], '|') != NULL        ? NULL
		                                                      : "x";
		if (v == NULL) {
			char **ch = g_strsplit(cols[2], "|", 2);
			g_string_append_printf(conf, "%s = %s\n", cols[1], ch[0]);
			g_strfreev(ch);
		} else {
			g_string_append_printf(conf, "%s = %.*s\n", cols[1], (int)strcspn(v, "."), v);
		}
		g_strfreev(cols);
	}
	g_strfreev(lines);
	free(buf);
	char *e = load_error(conf->str, conf->len, NULL);
	if (e != NULL)
		fail_msg("%s", e);
	g_string_free(conf, TRUE);
}

/* ---- logs ---- */

static GPtrArray *seen;

static void collect(mv_log_level level, const char *component, const char *message, void *context)
{
	(void)context;
	g_ptr_array_add(seen, g_strdup_printf("%s %s %s", mv_log_level_name(level), component, message));
}

static void test_log(void **state)
{
	(void)state;
	char *l = mv_log_format_line(MV_LOG_WARN, "smtpd", "a\nb\rc\td", TRUE);
	assert_string_equal(l, "<4>warn smtpd: a?b?c\td\n");
	g_free(l);
	l = mv_log_format_line(MV_LOG_INFO, "imap:j", "x=1", FALSE);
	GRegex *re = g_regex_new("^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z mailvault\\[\\d+\\] "
	                         "info imap:j: x=1\\n$", 0, 0, NULL);
	assert_true(g_regex_match(re, l, 0, NULL));
	g_regex_unref(re);
	g_free(l);
	mv_log_level lv;
	assert_true(mv_log_level_parse("debug", &lv));
	assert_int_equal(lv, MV_LOG_DEBUG);
	assert_false(mv_log_level_parse("loud", &lv));
	assert_false(mv_log_level_parse(NULL, &lv));

	seen = g_ptr_array_new_with_free_func(g_free);
	mv_log(MV_LOG_ERROR, "x", "dropped: no handler");
	mv_log_set_handler(collect, NULL, MV_LOG_WARN);
	assert_true(mv_log_enabled(MV_LOG_ERROR));
	assert_false(mv_log_enabled(MV_LOG_INFO));
	mv_log(MV_LOG_INFO, "x", "below the threshold");
	mv_log(MV_LOG_WARN, "x", "n=%d", 3);
	mv_log_set_handler(NULL, NULL, MV_LOG_DEBUG);
	mv_log(MV_LOG_ERROR, "x", "dropped again");
	assert_int_equal(seen->len, 1);
	assert_string_equal(seen->pdata[0], "warn x n=3");
	g_ptr_array_free(seen, TRUE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_errors_name_the_line),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_command_options),
		cmocka_unit_test(test_environment_not_overridden),
		cmocka_unit_test(test_locate),
		cmocka_unit_test(test_sample_loads),
		cmocka_unit_test(test_log),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

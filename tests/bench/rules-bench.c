/* rules-bench: the cost of classifying one message under a policy.
 *
 *   rules-bench POLICY.xml PATH...
 *
 * Parses every message under PATH (files, recursively; not timed), then
 * classifies all of them under the policy several times and prints the
 * mean cost per message in microseconds (CPU time of this thread). */
#include <glib.h>
#include <stdio.h>
#include <time.h>

#include "mv-classify.h"
#include "mv-message.h"
#include "mv-policy.h"

static void collect(const char *path, GPtrArray *files)
{
	if (g_file_test(path, G_FILE_TEST_IS_DIR)) {
		GDir *d = g_dir_open(path, 0, NULL);
		const char *name;
		while (d != NULL && (name = g_dir_read_name(d)) != NULL) {
			char *p = g_build_filename(path, name, NULL);
			collect(p, files);
			g_free(p);
		}
		if (d != NULL)
			g_dir_close(d);
	} else if (g_file_test(path, G_FILE_TEST_IS_REGULAR)) {
		g_ptr_array_add(files, g_strdup(path));
	}
}

static double cpu_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: rules-bench POLICY.xml PATH...\n");
		return 64;
	}
	char *err = NULL;
	if (mv_parser_init(&err) != MV_OK) {
		fprintf(stderr, "rules-bench: %s\n", err);
		return 78;
	}
	GPtrArray *problems = g_ptr_array_new_with_free_func(g_free);
	mv_policy *policy = NULL;
	if (mv_policy_parse_file(argv[1], &policy, problems, &err) != MV_OK) {
		for (guint i = 0; i < problems->len; i++)
			fprintf(stderr, "%s\n", (const char *)problems->pdata[i]);
		return 65;
	}
	GPtrArray *files = g_ptr_array_new_with_free_func(g_free);
	for (int i = 2; i < argc; i++)
		collect(argv[i], files);
	GPtrArray *msgs = g_ptr_array_new();
	mv_parse_limits limits;
	mv_parse_limits_default(&limits);
	for (guint i = 0; i < files->len; i++) {
		char *data = NULL;
		gsize len = 0;
		if (!g_file_get_contents(files->pdata[i], &data, &len, NULL))
			continue;
		GBytes *raw = g_bytes_new_take(data, len);
		mv_message *m = NULL;
		if (mv_message_parse(raw, &limits, &m, &err) == MV_OK)
			g_ptr_array_add(msgs, m);
		g_bytes_unref(raw);
	}
	const char *env_to[] = {"archive@corp.example", NULL};
	mv_classify_context ctx = {.source = "import", .envelope_to = env_to,
	                           .archive_date = 1764000000};
	const int rounds = 5;
	GHashTable *classes = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	double t0 = cpu_seconds();
	for (int r = 0; r < rounds; r++) {
		for (guint i = 0; i < msgs->len; i++) {
			mv_message *m = msgs->pdata[i];
			if (mv_classify_message(policy, 1, m, &ctx, NULL, &err) != MV_OK) {
				fprintf(stderr, "rules-bench: %s\n", err);
				return 70;
			}
			if (r == 0) {
				guint n = GPOINTER_TO_UINT(g_hash_table_lookup(classes, m->retention.class_name));
				g_hash_table_replace(classes, g_strdup(m->retention.class_name),
				                     GUINT_TO_POINTER(n + 1));
			}
		}
	}
	double t = cpu_seconds() - t0;
	double per = t / ((double)msgs->len * rounds) * 1e6;
	printf("rules: %u, messages: %u, rounds: %d\n", mv_policy_rule_count(policy), msgs->len, rounds);
	printf("classification: %.1f microseconds per message (target < 50: %s)\n", per,
	       per < 50.0 ? "met" : "NOT met");
	GHashTableIter it;
	gpointer k, v;
	g_hash_table_iter_init(&it, classes);
	while (g_hash_table_iter_next(&it, &k, &v))
		printf("  %-16s %u\n", (const char *)k, GPOINTER_TO_UINT(v));
	return 0;
}

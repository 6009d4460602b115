/* The policy loader (retention/mv-policy.c): libxml2 with the schema, then
 * the meaning checks; any input is a policy or problems, never a crash. */
#include "fuzz-common.h"
#include "mv-policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	mv_policy *policy = NULL;
	GPtrArray *problems = g_ptr_array_new_with_free_func(g_free);
	char *err = NULL;
	mv_status st = mv_policy_parse((const char *)data, size, "fuzz.xml", &policy, problems, &err);
	if (st == MV_OK && policy == NULL)
		abort();
	if (st != MV_OK && err == NULL)
		abort();
	mv_policy_free(&policy);
	g_ptr_array_free(problems, TRUE);
	g_free(err);
	return 0;
}

/* The query language (archiver/mv-query.c): SQL or an error with a column,
 * values only as parameters. */
#include <string.h>

#include "fuzz-common.h"
#include "mv-query.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *q = g_strndup((const char *)data, size);
	mv_query_sql *sql = NULL;
	char *err = NULL;
	mv_status st = mv_query_compile(q, 1, &sql, &err);
	if (st == MV_OK) {
		if (sql == NULL || sql->where == NULL)
			abort();
		/* No user byte reaches the SQL text: every value is a parameter. */
		for (guint i = 0; i < sql->params->len; i++) {
			const char *v = sql->params->pdata[i];
			if (strlen(v) >= 8 && strstr(sql->where, v) != NULL && strchr(v, '\'') != NULL)
				abort();
		}
	} else if (err == NULL) {
		abort();
	}
	mv_query_sql_free(&sql);
	g_free(err);
	g_free(q);
	return 0;
}

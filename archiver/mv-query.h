/* mv-query: the search query language, compiled to a parameterised SQL
 * condition on `message m`.  One parser for search (and later holds,
 * exports and purge previews).
 *
 *   query   := or_expr
 *   or_expr := and_expr ("OR" and_expr)*
 *   and_expr:= unary+                     (juxtaposition means AND; "AND" allowed)
 *   unary   := ("-" | "NOT") unary | "(" or_expr ")" | term
 *   term    := FIELD ":" value | value
 *   value   := WORD | "quoted phrase"
 *
 * Fields: from: to: cc: bcc: (address, @domain or part of a name),
 * subject:, after:/before: (YYYY-MM-DD, UTC), has:attachment, filename:
 * (glob), type: (MIME type, trailing star allowed), message-id:, class:
 * (retention class), tag:, registration:.  A bare word or
 * phrase is full-text search over subject, addresses and body text.
 *
 * Limits (each a syntax error naming its column): 100 terms, nesting 64
 * deep, a value of 1,024 bytes, a quoted phrase of 64 words.
 *
 * SECURITY: the query is untrusted user input; values only ever reach SQL as
 * parameters.
 *
 * Ownership: mv_query_compile returns a new mv_query_sql freed by
 * mv_query_sql_free; on a syntax error *error_r names the column (1-based,
 * in characters). */
#ifndef MV_QUERY_H
#define MV_QUERY_H

#include <glib.h>

#include "mv-status.h"

typedef struct {
	char *where;        /* SQL boolean expression using $first.. params */
	GPtrArray *params;  /* char*, owned; params->pdata[i] is $(first + i) */
} mv_query_sql;

/* Compile query; parameters are numbered from first_param (1 when the
 * condition is the statement's only use of parameters). */
mv_status mv_query_compile(const char *query, int first_param, mv_query_sql **sql_r,
                           char **error_r) MV_WARN_UNUSED;
void mv_query_sql_free(mv_query_sql **sql);

#endif

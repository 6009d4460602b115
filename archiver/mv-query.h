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
 * Fields: from: to: cc: bcc: (address, @domain or part of a name), addr:
 * (the same, in any role: from, sender, reply-to, to, cc, bcc and the
 * envelope's sender and recipients), subject:, after:/before: (YYYY,
 * YYYY-MM or YYYY-MM-DD, UTC: a year or month stands for its first day, so
 * after:2025 is on or after 2025-01-01 and before:2025-03 is before
 * 2025-03-01), has:attachment, filename: (glob), type: (MIME type,
 * trailing star allowed), message-id:, class: (retention class), tag:,
 * hold:, registration: (2026-0000123, or without the leading zeros:
 * 2026-123), destroyed:yes|no, attachment: (full text of the attachments
 * only), lang: (the detected language, ISO 639-1:
 * lang:de; lang:zh takes zh-Hant too).  A bare word or phrase is full-text
 * search over subject, addresses, body text and the text of attachments
 * (part_text), in any language: a word
 * matches by its exact form, by its stem in any language PostgreSQL
 * stems, and (Chinese, Japanese, Korean) as a chain of character bigrams,
 * so a word in the middle of a sentence without spaces is found
 * (mv_search_query, schema/021-search-languages.sql).
 *
 * Destroyed records: a query compiled for MV_QUERY_TOMBSTONES is a
 * condition on the tombstones of purged records (MV_QUERY_TOMBSTONE_SOURCE
 * as `m`).  A tombstone keeps the registration, Message-ID, date, From
 * address, class and expiry; a term on what it does not keep (text,
 * subject, to/cc/bcc, attachments, tags) is unknown there (SQL NULL): it
 * never makes a destroyed record match, nor does its negation; addr:
 * matches its From address.  destroyed:yes is false for messages and true
 * for tombstones, destroyed:no the reverse.
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

/* A bare word or phrase (or attachment: term): its value is parameter
 * $param; in where, "t.tsv @@ mv_search_query($param, true|false)" is
 * its match against the stored vectors (mv_catalog_query_resolve rewrites
 * it for the blind index). */
typedef struct {
	int param;
	gboolean phrase;
} mv_query_text_term;

typedef struct {
	char *where;        /* SQL boolean expression using $first.. params */
	GPtrArray *params;  /* char*, owned; params->pdata[i] is $(first + i) */
	gboolean mentions_destroyed; /* the query has a destroyed: term */
	char *highlight;    /* SQL tsquery expression (same parameters) of the
	                       bare words and phrases not under NOT, for
	                       ts_headline; NULL when there are none */
	char *walk;         /* SQL condition on m's own columns (the query's
	                       top-level date conjuncts, or TRUE) that every
	                       message matching where satisfies: the range a
	                       bounded walk in date order may read
	                       (mv_catalog_find) */
	int first_param;    /* the number of params->pdata[0] */
	GArray *text_terms; /* mv_query_text_term, in order */
} mv_query_sql;

typedef enum {
	MV_QUERY_MESSAGES,   /* a condition on `message m` */
	MV_QUERY_TOMBSTONES, /* a condition on MV_QUERY_TOMBSTONE_SOURCE `m` */
} mv_query_target;

/* The tombstones as the relation a MV_QUERY_TOMBSTONES condition reads:
 * "FROM " MV_QUERY_TOMBSTONE_SOURCE " m WHERE " condition. */
#define MV_QUERY_TOMBSTONE_SOURCE                                                          \
	"(SELECT t.message_id AS id, t.sha256, t.size, t.date, t.from_addr, t.registration, " \
	"t.retention_class, t.expires_at, t.message_id_hdr AS message_id, t.destroyed_at, "  \
	"t.disposition_id FROM tombstone t)"

/* Compile query; parameters are numbered from first_param (1 when the
 * condition is the statement's only use of parameters). */
mv_status mv_query_compile(const char *query, int first_param, mv_query_sql **sql_r,
                           char **error_r) MV_WARN_UNUSED;
/* The same for either target (mv_query_compile: MV_QUERY_MESSAGES). */
mv_status mv_query_compile_for(const char *query, mv_query_target target, int first_param,
                               mv_query_sql **sql_r, char **error_r) MV_WARN_UNUSED;
void mv_query_sql_free(mv_query_sql **sql);

#endif

/* mv-policy: the retention policy (docs/policy.md): internal domains,
 * retention classes, the default class and the rules, read from XML,
 * validated against schema/policy.xsd (compiled into the binary) and then
 * checked for meaning.  Also: ISO 8601 durations, expiry dates, and the
 * successor check that keeps locked classes from ever being shortened.
 *
 * SECURITY: the policy file is configuration written by a records manager,
 * but is still parsed defensively: libxml2 without network access, without
 * entity substitution, no DOCTYPE allowed, at most MV_POLICY_MAX_BYTES; every
 * regular expression is compiled once here and matched under limits by
 * mv-rules.
 *
 * Problems: mv_policy_parse and mv_policy_check_successor report every
 * problem they find (not only the first) as one line "FILE:LINE: what is
 * wrong", appended to the caller's `problems` array (char*, each to be
 * g_free'd: create it with g_ptr_array_new_with_free_func(g_free)); NULL is
 * allowed when only *error_r is wanted.
 *
 * Ownership: a policy returned in *policy_r is owned by the caller and freed
 * with mv_policy_free.  It is immutable: several threads may read and
 * evaluate (mv-rules) the same policy at once.  Every pointer an accessor
 * returns (classes, rules, strings) is owned by the policy and valid until
 * it is freed. */
#ifndef MV_POLICY_H
#define MV_POLICY_H

#include <glib.h>
#include <stdint.h>

#include "mv-hash.h"
#include "mv-status.h"

/* Largest policy file accepted (bytes). */
#define MV_POLICY_MAX_BYTES (8 * 1024 * 1024)
/* At most this many problems are reported; one more line says how many
 * were left out. */
#define MV_POLICY_MAX_PROBLEMS 200

/* Bounds of a duration (see mv_duration_parse). */
#define MV_DURATION_MAX_MONTHS (1000 * 12)
#define MV_DURATION_MAX_DAYS (1000 * 366)

/* Expiry dates are clamped to 9999-12-31T23:59:59Z (the end of GDateTime's
 * range), start dates to [0001-01-01T00:00:00Z, that]. */
#define MV_TIME_MIN G_GINT64_CONSTANT(-62135596800)
#define MV_TIME_MAX G_GINT64_CONSTANT(253402300799)

/* ---- durations ---- */

/* An ISO 8601 duration PnYnMnWnD, kept as months (12 x years + months) and
 * days (7 x weeks + days).  P1Y and P12M are the same duration; P1Y and
 * P365D are not (see mv_duration_never_shorter). */
typedef struct {
	gint32 months;
	gint32 days;
} mv_duration;

/* Parse "P7Y", "P1Y6M", "P90D", "P2W", "P1Y2M3W4D": 'P', then one or more
 * <digits><designator> with designators Y, M, W, D each at most once and in
 * that order.  Refused, with a one-line reason in *error_r: time parts
 * (T...), fractions, signs, lower case, empty or zero durations (the
 * shortest is P1D), more than MV_DURATION_MAX_MONTHS months or
 * MV_DURATION_MAX_DAYS days.  Returns MV_OK or MV_ERR_CONFIG. */
mv_status mv_duration_parse(const char *text, mv_duration *dur_r, char **error_r) MV_WARN_UNUSED;

/* The canonical text of d ("P7Y", "P1Y6M", "P90D"; weeks are shown as
 * days).  Returns a new string (g_free). */
char *mv_duration_to_string(const mv_duration *d);

/* start + d, in UTC, with GDateTime: first the months are added in one step
 * (years are 12 months), the day of the month clamped to the last day of
 * the resulting month (2025-01-31 + P1M = 2025-02-28, 2024-02-29 + P7Y =
 * 2031-02-28, 2024-02-29 + P1Y1M = 2025-03-29), then the days; the time of
 * day is kept.  start is clamped to [MV_TIME_MIN, MV_TIME_MAX], the result
 * to MV_TIME_MAX.  Seconds since the epoch. */
gint64 mv_duration_add(const mv_duration *d, gint64 start);

/* TRUE when, from every possible start date, start + next is on or after
 * start + current: next never gives an earlier expiry than current.  Exact
 * for mv_duration_add's arithmetic (P12M vs P1Y: equal, TRUE both ways;
 * P365D vs P1Y: FALSE, a year is 366 days across a 29 February; P366D vs
 * P1Y: TRUE; P1M1D vs P31D: FALSE from 2025-02-01).  When FALSE and
 * example_r is non-NULL, *example_r receives a start date (seconds, UTC
 * midnight) at which next expires earlier. */
gboolean mv_duration_never_shorter(const mv_duration *next, const mv_duration *current,
                                   gint64 *example_r);

/* ---- classes ---- */

typedef enum {
	MV_START_MESSAGE_DATE = 0, /* the message's Date (archive date if it has none) */
	MV_START_ARCHIVE_DATE = 1, /* when mailvault received it */
} mv_retention_start;

typedef enum {
	MV_DISPOSITION_PURGE = 0,  /* destroyed by `purge` once expired */
	MV_DISPOSITION_REVIEW = 1, /* listed for review; destroyed only when approved */
} mv_disposition;

/* Static names as in the policy file: "message-date", "purge", ... */
const char *mv_retention_start_to_string(mv_retention_start start);
const char *mv_disposition_to_string(mv_disposition disposition);

typedef struct {
	char *name;
	char *duration_text;        /* as written in the policy, e.g. "P7Y" */
	mv_duration duration;
	mv_retention_start start;
	mv_disposition disposition;
	gboolean locked;            /* may never be shortened or removed */
	gboolean four_eyes;         /* disposal needs two distinct approvers */
	char *description;          /* or NULL */
	guint line;                 /* of its <class> element */
	guint index;                /* position in the policy, from 0 */
} mv_retention_class;

/* The expiry date of a record of class cls: mv_duration_add of the class's
 * duration to the message date (start="message-date" and has_message_date)
 * or to the archive date (start="archive-date", or no message date).
 * Seconds since the epoch, UTC. */
gint64 mv_retention_expiry(const mv_retention_class *cls, gint64 message_date,
                           gboolean has_message_date, gint64 archive_date);

/* ---- rules ---- */

/* The conditions of a rule; evaluated by mv-rules (mv-policy-private.h). */
typedef struct mv_condition mv_condition;

typedef struct {
	char *name;
	char *description;              /* or NULL */
	const mv_retention_class *cls;  /* the class it proposes; NULL for a
	                                   rule that only adds tags */
	GPtrArray *tags;                /* char*, owned: its tags, in document
	                                   order, without duplicates */
	guint line;                     /* of its <rule> element */
	guint index;                    /* position in the policy, from 0 */
	mv_condition *condition;        /* its conditions (an implicit <all>) */
} mv_rule;

/* ---- directions ---- */

typedef enum {
	MV_DIRECTION_INTERNAL = 0, /* internal sender, every recipient internal */
	MV_DIRECTION_OUTBOUND = 1, /* internal sender, some recipient external */
	MV_DIRECTION_INBOUND = 2,  /* external sender, some recipient internal */
	MV_DIRECTION_EXTERNAL = 3, /* no internal party at all */
} mv_direction;

/* Static name as in the policy file: "internal", "outbound", ... */
const char *mv_direction_to_string(mv_direction direction);

/* ---- the policy ---- */

typedef struct mv_policy mv_policy;

/* Parse and check the policy xml[0..len); filename names it in problems
 * (NULL: "policy").  On success returns MV_OK and a new policy in
 * *policy_r.  Otherwise *policy_r is NULL, every problem found is appended
 * to problems, *error_r is the first problem (with the count of the others)
 * and the status is:
 *   MV_ERR_CONFIG   the policy has problems (malformed XML, schema
 *                   violations, unknown class references, duplicate names,
 *                   invalid durations or regular expressions, no default
 *                   class, ...);
 *   MV_ERR_LIMIT    it is larger than MV_POLICY_MAX_BYTES;
 *   MV_ERR_INTERNAL the embedded schema does not compile (a bug). */
mv_status mv_policy_parse(const char *xml, gsize len, const char *filename, mv_policy **policy_r,
                          GPtrArray *problems, char **error_r) MV_WARN_UNUSED;

/* mv_policy_parse of the file at path (named path in problems).  Also
 * MV_ERR_NOT_FOUND when there is no such file and MV_ERR_IO when it cannot
 * be read. */
mv_status mv_policy_parse_file(const char *path, mv_policy **policy_r, GPtrArray *problems,
                               char **error_r) MV_WARN_UNUSED;

/* Free *policy and set it to NULL; NULL and *policy == NULL are allowed. */
void mv_policy_free(mv_policy **policy);

/* The exact bytes parsed (to be stored as the policy version), and their
 * SHA-256. */
const char *mv_policy_xml(const mv_policy *policy, gsize *len_r);
void mv_policy_sha256(const mv_policy *policy, uint8_t out[MV_SHA256_LEN]);
const char *mv_policy_sha256_hex(const mv_policy *policy);

const char *mv_policy_filename(const mv_policy *policy);
const char *mv_policy_name(const mv_policy *policy);  /* <policy name=>, or NULL */

/* Internal domains (case-folded, exact or globs), in document order. */
guint mv_policy_internal_domain_count(const mv_policy *policy);
const char *mv_policy_internal_domain(const mv_policy *policy, guint i);
/* TRUE if domain (any case) matches one of the internal domains. */
gboolean mv_policy_domain_is_internal(const mv_policy *policy, const char *domain);
/* The direction of a message from sender (an address, or NULL when
 * unknown: counted as external) to recipients[0..n) (addresses; an
 * address without '@' has no domain and is external). */
mv_direction mv_policy_direction(const mv_policy *policy, const char *sender,
                                 const char *const *recipients, guint n);

/* Classes in document order; lookup by exact name (NULL if none). */
guint mv_policy_class_count(const mv_policy *policy);
const mv_retention_class *mv_policy_class(const mv_policy *policy, guint i);
const mv_retention_class *mv_policy_find_class(const mv_policy *policy, const char *name);
const mv_retention_class *mv_policy_default_class(const mv_policy *policy);

/* Rules in document order; lookup by exact name (NULL if none). */
guint mv_policy_rule_count(const mv_policy *policy);
const mv_rule *mv_policy_rule(const mv_policy *policy, guint i);
const mv_rule *mv_policy_find_rule(const mv_policy *policy, const char *name);

/* May next replace current?  Refused (MV_ERR_CONFIG, every reason appended
 * to problems as "NEXT-FILE:LINE: ...", the first in *error_r) when a class
 * locked in current is, in next: missing, not locked, shorter for some start
 * date (mv_duration_never_shorter), counted from a different start, purged
 * instead of reviewed, or without four-eyes approval it had.  Classes that
 * were not locked may change freely.  MV_OK otherwise. */
mv_status mv_policy_check_successor(const mv_policy *current, const mv_policy *next,
                                    GPtrArray *problems, char **error_r) MV_WARN_UNUSED;

/* The schema, as compiled into the binary (NUL-terminated; len_r may be
 * NULL). */
const char *mv_policy_schema(gsize *len_r);

/* Case-insensitive glob: '*' matches any run of characters, '?' one
 * character, everything else itself (no escapes, no brackets, '/' not
 * special).  Both strings are UTF-8 (invalid bytes never match a literal). */
gboolean mv_glob_match(const char *pattern, const char *text);

#endif

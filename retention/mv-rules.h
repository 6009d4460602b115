/* mv-rules: classify one message under a policy (docs/policy.md).
 *
 * Every rule is evaluated.  Each matching rule that names a class proposes
 * it; the proposal with the LATEST expiry date for this message wins (the
 * longest retention), and on equal expiry dates the earlier rule in the
 * policy wins, so no rule can shorten what another protects.  When no rule
 * proposes a class, the policy's default class applies (and there is no
 * deciding rule).  The tags are the union of the tags of every matching
 * rule (tag-only rules included), in policy order, each once.
 *
 * SECURITY: the input is untrusted mail.  Regular expressions run with a
 * PCRE2 match limit, depth limit and heap limit (mv_rules_limits); a test
 * that hits one counts as "no match" and is reported as a warning in the
 * result (and sets limit_hit), so a pathological pattern such as (a+)+$ on
 * a long line cannot stall ingest.  Invalid UTF-8 in the input never
 * matches a literal character but is otherwise harmless.
 *
 * Ownership: mv_rules_input only borrows the caller's strings and arrays
 * for the duration of the call.  mv_rules_evaluate returns a new result
 * (free with mv_rules_result_free) that owns its tags, reason and warnings
 * and borrows the classes and rules it points to from the policy: the
 * policy must outlive the result.  Evaluation does not modify the policy;
 * several threads may evaluate under one policy at once. */
#ifndef MV_RULES_H
#define MV_RULES_H

#include <glib.h>

#include "mv-policy.h"
#include "mv-status.h"

typedef struct {
	const char *name;   /* any case, without the colon */
	const char *value;  /* unfolded, RFC 2047-decoded, UTF-8 */
} mv_rules_header;

typedef struct {
	const char *filename;       /* decoded, UTF-8, or NULL */
	const char *detected_type;  /* libmagic's MIME type, or NULL */
	const char *declared_type;  /* from Content-Type, without parameters, or NULL */
} mv_rules_attachment;

/* What the rules look at.  Addresses are bare (local@domain), any case;
 * angle brackets and surrounding white space are ignored.  Every pointer
 * may be NULL when its count is 0. */
typedef struct {
	const char *from;                  /* From: header address, or NULL */
	const char *envelope_from;         /* envelope sender (MAIL FROM), or NULL */
	const char *const *to;             /* To: header addresses */
	guint n_to;
	const char *const *cc;             /* Cc: header addresses */
	guint n_cc;
	const char *const *bcc;            /* Bcc: header addresses */
	guint n_bcc;
	const char *const *envelope_rcpt;  /* envelope recipients (RCPT TO, journal) */
	guint n_envelope_rcpt;
	const mv_rules_header *headers;    /* every header field, in order */
	guint n_headers;
	const char *subject;               /* decoded, UTF-8, or NULL */
	const char *body;                  /* body text, UTF-8 (HTML reduced to text) */
	gssize body_len;                   /* bytes, or -1 when body is NUL-terminated */
	const mv_rules_attachment *attachments;  /* the parts other than the
	                                            body text (mv_part with
	                                            is_attachment or a file name) */
	guint n_attachments;
	gint64 size;                       /* of the raw message, bytes */
	gboolean has_attachment;           /* as mv_message.has_attachment */
	const char *source;                /* "smtp", "import", "imap:NAME", ... or NULL */
	gint64 message_date;               /* seconds since the epoch, UTC */
	gboolean has_message_date;         /* FALSE: message-date classes count
	                                      from the archive date */
	gint64 archive_date;               /* when mailvault received it */
	const char *virus;                 /* clamd's verdict (mv_message_verdicts):
	                                      "infected", "clean", "unscanned" or NULL */
	const char *spam_verdict;          /* spamd's: "yes", "no", "unscanned" or NULL */
} mv_rules_input;

/* Limits on each regular expression test (PCRE2). */
typedef struct {
	guint32 match_limit;     /* pcre2_set_match_limit (default 1,000,000) */
	guint32 depth_limit;     /* pcre2_set_depth_limit (default 10,000) */
	guint32 heap_limit_kib;  /* pcre2_set_heap_limit, KiB (default 16,384) */
} mv_rules_limits;

#define MV_RULES_MATCH_LIMIT_DEFAULT 1000000u
#define MV_RULES_MATCH_LIMIT_MIN 1000u
#define MV_RULES_MATCH_LIMIT_MAX 100000000u
#define MV_RULES_DEPTH_LIMIT_DEFAULT 10000u
#define MV_RULES_DEPTH_LIMIT_MIN 100u
#define MV_RULES_DEPTH_LIMIT_MAX 10000000u
#define MV_RULES_HEAP_LIMIT_DEFAULT 16384u
#define MV_RULES_HEAP_LIMIT_MIN 256u
#define MV_RULES_HEAP_LIMIT_MAX 4194304u

void mv_rules_limits_default(mv_rules_limits *limits);
/* MV_ERR_CONFIG, naming the value, when a limit is outside its bounds.
 * (mv_rules_evaluate clamps silently.) */
mv_status mv_rules_limits_check(const mv_rules_limits *limits, char **error_r) MV_WARN_UNUSED;

/* One matching rule. */
typedef struct {
	const mv_rule *rule;
	const mv_retention_class *cls;  /* rule->cls: NULL for a tag-only rule */
	gint64 expiry;                  /* of cls for this message (0 when cls is NULL) */
} mv_rules_match;

typedef struct {
	const mv_retention_class *cls;  /* the winning class (never NULL) */
	const mv_rule *rule;            /* the deciding rule; NULL: the default class */
	gint64 expiry;                  /* seconds since the epoch, UTC */
	mv_direction direction;
	gboolean spam;                  /* the spam verdict headers or spamd say spam */
	GPtrArray *tags;                /* char*, owned: union of the matching
	                                   rules' tags, policy order, each once */
	GArray *matches;                /* mv_rules_match: every matching rule,
	                                   in policy order (for `retention explain`) */
	char *reason;                   /* one line: why the winner won */
	GPtrArray *warnings;            /* char*, owned: regex limits hit, ... */
	gboolean limit_hit;             /* some regex test hit a PCRE2 limit */
} mv_rules_result;

/* Classify in under policy.  limits NULL means the defaults.  Fails only
 * with MV_ERR_INTERNAL (out of memory in PCRE2); *result_r is then NULL. */
mv_status mv_rules_evaluate(const mv_policy *policy, const mv_rules_input *in,
                            const mv_rules_limits *limits, mv_rules_result **result_r,
                            char **error_r) MV_WARN_UNUSED;

/* Free *result and set it to NULL; NULL and *result == NULL are allowed. */
void mv_rules_result_free(mv_rules_result **result);

/* The direction of in under policy's internal domains: the sender is the
 * From: address, or the envelope sender when there is none; the recipients
 * are To, Cc, Bcc and the envelope recipients together. */
mv_direction mv_rules_direction(const mv_policy *policy, const mv_rules_input *in);

/* The spam verdict of the headers (docs/policy.md, "Spam"): TRUE when any of
 *   X-Spam-Flag: YES                        (SpamAssassin)
 *   X-Spam-Status: Yes, ...                 (SpamAssassin)
 *   X-Spam-Level: *****  (5 or more stars)  (SpamAssassin)
 *   X-Spam: Yes | True                      (Rspamd and others)
 *   X-Barracuda-Spam-Status: Yes, ...       (Barracuda)
 *   X-MS-Exchange-Organization-SCL: 5 to 9  (Exchange spam confidence level)
 *   X-Forefront-Antispam-Report: ...SFV:SPM...  (Exchange Online Protection)
 * (names and values compared without regard to case). */
gboolean mv_rules_is_spam(const mv_rules_header *headers, guint n_headers);

#endif

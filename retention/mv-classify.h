/* mv-classify: classify a parsed message under a policy and record the
 * outcome in the message (mv_message.retention) before it is stored, so the
 * class, expiry, deciding rule, tags and policy version are written in the
 * ingest transaction.
 *
 * Ownership: result_r (optional) receives the full evaluation, for
 * `retention explain` (mv_rules_result_free); it borrows from policy. */
#ifndef MV_CLASSIFY_H
#define MV_CLASSIFY_H

#include "mv-message.h"
#include "mv-policy.h"
#include "mv-rules.h"

typedef struct {
	const char *source;               /* "import", "smtp", ... */
	const char *envelope_from;        /* or NULL */
	const char *const *envelope_to;   /* NULL-terminated, or NULL */
	gint64 archive_date;              /* seconds since the epoch */
} mv_classify_context;

mv_status mv_classify_message(const mv_policy *policy, gint64 policy_version, mv_message *msg,
                              const mv_classify_context *ctx, mv_rules_result **result_r,
                              char **error_r) MV_WARN_UNUSED;

#endif

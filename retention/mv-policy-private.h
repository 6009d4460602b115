/* mv-policy-private: the compiled conditions of a policy, shared by
 * mv-policy.c (which builds them) and mv-rules.c (which evaluates them).
 * Not part of the library's interface. */
#ifndef MV_POLICY_PRIVATE_H
#define MV_POLICY_PRIVATE_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "mv-policy.h"

typedef enum {
	MV_COND_ALL,
	MV_COND_ANY,
	MV_COND_NOT,
	MV_COND_FROM,
	MV_COND_TO,
	MV_COND_CC,
	MV_COND_BCC,
	MV_COND_ENVELOPE,
	MV_COND_RECIPIENT,
	MV_COND_DIRECTION,
	MV_COND_HEADER,
	MV_COND_SUBJECT,
	MV_COND_BODY,
	MV_COND_ATTACHMENT_NAME,
	MV_COND_ATTACHMENT_TYPE,
	MV_COND_SIZE,
	MV_COND_HAS_ATTACHMENT,
	MV_COND_SPAM,
	MV_COND_VIRUS,
	MV_COND_SOURCE,
} mv_cond_kind;

/* Which type of an attachment <attachment-type> looks at. */
typedef enum {
	MV_TYPE_MATCH_ANY = 0,
	MV_TYPE_MATCH_DETECTED = 1,
	MV_TYPE_MATCH_DECLARED = 2,
} mv_type_match;

struct mv_condition {
	mv_cond_kind kind;
	const char *element;   /* static: the element name, for messages */
	guint line;
	GPtrArray *children;   /* ALL / ANY / NOT: mv_condition*, owned */
	char *glob;            /* address, domain, attachment name and type,
	                          source: case-folded glob */
	gboolean by_domain;    /* address conditions: glob is on the domain */
	char *header;          /* HEADER: the header name */
	char *regex;           /* HEADER / SUBJECT / BODY: the pattern as written
	                          (NULL for a header presence test) */
	pcre2_code *re;        /* compiled regex (JIT-compiled when possible) */
	mv_direction direction;
	mv_type_match type_match;
	gboolean has_min, has_max;
	gint64 min, max;       /* SIZE, bytes, inclusive */
};

struct mv_policy {
	char *filename;
	char *name;
	GBytes *xml;
	uint8_t sha256[MV_SHA256_LEN];
	char sha256_hex[MV_SHA256_HEX_LEN + 1];
	GPtrArray *internal_domains;   /* char*, case-folded */
	GPtrArray *classes;            /* mv_retention_class*, owned */
	GHashTable *class_by_name;     /* name -> mv_retention_class*, borrowed */
	const mv_retention_class *default_class;
	GPtrArray *rules;              /* mv_rule*, owned */
	GHashTable *rule_by_name;      /* name -> mv_rule*, borrowed */
	guint root_line;
	guint classes_line;
};

/* Case-fold s for comparisons (valid UTF-8 made of it first); NULL gives
 * "".  Returns a new string (g_free). */
char *mv_policy_fold(const char *s);

/* mv_glob_match on a pattern and text already case-folded. */
gboolean mv_glob_match_folded(const char *pattern, const char *text);

/* mv_policy_domain_is_internal on a case-folded domain. */
gboolean mv_policy_domain_is_internal_folded(const mv_policy *policy, const char *domain);

#endif

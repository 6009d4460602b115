/* mv-message: one received message, parsed into the metadata the archive
 * keeps (GMime 3), and cut into the byte ranges stored as separate blobs.
 *
 * SECURITY: the input is untrusted mail.  Parsing is bounded by
 * mv_parse_limits (MIME depth, part count, text bytes); a message GMime
 * cannot make sense of is still returned, with parse_status "unparsable" or
 * "partial" and the reasons in flags, never an error: every message is
 * archived.
 *
 * Ownership: mv_message_parse returns a new mv_message in *msg_r that owns
 * every string, array and the raw bytes it holds; free it with
 * mv_message_free.  mv_parser_init/mv_parser_shutdown bracket the process's
 * use of GMime and libmagic. */
#ifndef MV_MESSAGE_H
#define MV_MESSAGE_H

#include <glib.h>
#include <stdint.h>

#include "mv-hash.h"
#include "mv-recipe.h"
#include "mv-status.h"

typedef struct {
	guint max_depth;          /* MIME nesting kept as parts (default 64) */
	guint max_parts;          /* parts recorded per message (default 5000) */
	gsize max_text_bytes;     /* body text kept for search (default 256 KiB) */
	gsize min_splice_bytes;   /* non-text parts at least this big are stored
	                             as their own deduplicated blob (default 2048) */
	gsize min_decoded_bytes;  /* a spliced part in base64 or quoted-printable
	                             whose decoded content is at least this big
	                             is stored by its decoded content when a
	                             recipe rebuilds its bytes exactly
	                             (mv-recipe.h; default MV_RECIPE_MIN_BYTES,
	                             0: never) */
	gboolean no_type_detection; /* leave parts' detected_type NULL: for readers
	                               that want only the text (default FALSE) */
	gboolean keep_attachment_content; /* keep each attachment's decoded
	                               content in mv_part.content, and that of
	                               every leaf inside an attached message,
	                               for the extract and virus stages
	                               (default FALSE) */
} mv_parse_limits;

void mv_parse_limits_default(mv_parse_limits *limits);

typedef struct {
	char *role;       /* from, sender, reply-to, to, cc, bcc */
	char *address;    /* normalised: lower-case, trimmed; may be "" for groups */
	char *name;       /* decoded display name, UTF-8, or NULL */
} mv_address;

typedef struct {
	char *path;           /* "1", "1.2", ... ("" for a single-part message) */
	char *declared_type;  /* from Content-Type, lower-case */
	char *detected_type;  /* libmagic's verdict on the decoded content */
	char *filename;       /* decoded, UTF-8, or NULL */
	char *charset;        /* the charset parameter of its Content-Type, or NULL */
	gboolean in_message;  /* inside an attached message (message/rfc822) */
	gboolean body_text;   /* its text is part of the message's body text */
	gint64 size;          /* decoded content size */
	gboolean spliced;     /* stored as its own blob (its encoded bytes, or its
	                         decoded content with recipe) */
	gsize raw_offset;     /* range of its encoded content in the raw bytes */
	gsize raw_len;
	uint8_t blob_sha256[MV_SHA256_LEN]; /* of raw[raw_offset..+raw_len) when spliced,
	                         of decoded when recipe is set */
	mv_recipe *recipe;    /* spliced by decoded content: encoding decoded
	                         with it gives raw[raw_offset..+raw_len) exactly
	                         (checked); owned, or NULL */
	GBytes *decoded;      /* the decoded content stored as the blob when
	                         recipe is set; owned */
	gboolean is_attachment;
	GBytes *content;      /* decoded content of an attachment, of any leaf
	                         in_message and of any leaf that is not body
	                         text (an inline PDF), only with
	                         keep_attachment_content; the extract and virus
	                         stages drop it */
	/* Virus verdict of an attachment (mv-scan.h): NULL when not asked,
	 * else "clean", "infected" (virus_name) or "unscanned" (virus_name:
	 * why).  Static status string, owned name. */
	const char *virus;
	char *virus_name;
} mv_part;

/* The text extracted from one part (mv-extract.h): path of the part, its
 * text (UTF-8 without NUL, bounded, maybe "") and why extraction failed or
 * was cut (NULL when it did not); all owned.  ztext: doc as stored
 * (mv_blobstore_pg_text_encode), set by mv-store when it is sent, or NULL;
 * tsv: its search vector as text (mv_store_vectors), or NULL. */
typedef struct {
	char *path;
	char *doc;
	char *problem;
	GBytes *ztext;
	char *tsv;
} mv_part_text;

typedef struct {
	char *name;   /* as in the message */
	char *value;  /* unfolded, RFC 2047-decoded, UTF-8, at most 64 KiB */
} mv_header;

/* Retention fields, filled by the classifier (retention/) before storing;
 * class_name NULL when no policy is loaded. */
typedef struct {
	char *class_name;
	gint64 expiry;            /* seconds since the epoch, UTC */
	char *rule;               /* deciding rule, NULL for the default class */
	gint64 policy_version;    /* 0 when unclassified */
	GPtrArray *tags;          /* char*, owned, or NULL */
	const char *direction;    /* static string, or NULL */
	gint64 archive_date;      /* the archive time the expiry counts from
	                             (stored as archived_at); 0: now */
} mv_message_retention;

/* Scanner verdicts, filled by the virus and spam stages (ingest) or by
 * `mailvault scan`.  virus: NULL when no scanner was asked, else "clean",
 * "infected" (virus_name: the signature, ";"-joined when several) or
 * "unscanned" (virus_name: why, e.g. "too large", "clamd unavailable").
 * spam: NULL when not asked, else "yes", "no" or "unscanned" (spam_reason
 * why), with score and threshold when scanned. */
typedef struct {
	const char *virus;
	char *virus_name;
	const char *spam;
	double spam_score;
	double spam_threshold;
	char *spam_reason;
} mv_message_verdicts;

typedef struct {
	GBytes *raw;                  /* the exact bytes received */
	uint8_t sha256[MV_SHA256_LEN];
	char *message_id;             /* without angle brackets, or NULL */
	char *date_raw;               /* Date header as received, or NULL */
	gint64 date;                  /* seconds since the epoch (valid if has_date) */
	gboolean has_date;
	char *from_addr, *from_name;
	char *subject;                /* decoded, UTF-8 */
	GPtrArray *addresses;         /* of mv_address*, owned */
	GPtrArray *parts;             /* of mv_part*, owned, in document order */
	GPtrArray *part_texts;        /* of mv_part_text*, owned: attachment text,
	                                 filled by the extract stage */
	gboolean text_extracted;      /* the extract stage ran on it */
	gboolean text_deferred;       /* MAILVAULT_EXTRACT=deferred skipped the
	                                 extract stage and it has attachments
	                                 (mv_extract_would_read): ongoing holds
	                                 take it as pending (mv-hold.c) */
	GString *text;                /* search text: subject, addresses, body; bounded */
	GString *body;                /* body text alone (HTML reduced), UTF-8, bounded */
	const char *lang;             /* detected language of subject and body
	                                 (mv_lang_detect, static), or NULL */
	char *tsv;                    /* the search vector of text, as PostgreSQL's
	                                 text form, when the pipeline computed it on
	                                 a parse thread (mv_store_vectors), or NULL */
	gboolean tsv_blind;           /* tsv and every part text's tsv are blind
	                                 (mv_store_vectors_blind, mv-blind.h) */
	GPtrArray *headers;           /* of mv_header*, owned, in order (at most 1000) */
	mv_message_retention retention;
	mv_message_verdicts verdicts;
	gboolean has_attachment;
	const char *parse_status;     /* "ok", "partial", "unparsable" (static) */
	GPtrArray *flags;             /* of char*, owned: why it is not "ok" */
} mv_message;

/* Set up GMime and libmagic for this process.  Returns MV_ERR_CONFIG if the
 * magic database cannot be loaded. */
mv_status mv_parser_init(char **error_r) MV_WARN_UNUSED;
void mv_parser_shutdown(void);

/* Parse raw (a reference is taken).  Fails only on MV_ERR_INTERNAL. */
mv_status mv_message_parse(GBytes *raw, const mv_parse_limits *limits, mv_message **msg_r,
                           char **error_r) MV_WARN_UNUSED;
void mv_message_free(mv_message **msg);

/* A message that no stage could make sense of: raw (a reference is taken)
 * with its SHA-256, parse_status "unparsable" and flag (copied) as the
 * only flag; nothing else.  It is stored all the same.  Never fails. */
mv_message *mv_message_new_unparsed(GBytes *raw, const char *flag);

/* Make s valid UTF-8 without NUL characters (invalid bytes become U+FFFD,
 * NUL is dropped).  Returns a new string (g_free) or NULL for NULL. */
char *mv_utf8_clean(const char *s, gssize len);

/* Reduce an HTML document (UTF-8) to plain text with libxml2, dropping
 * script and style; appends at most max_bytes to out. */
void mv_html_to_text(const char *html, gsize len, GString *out, gsize max_bytes);

#endif

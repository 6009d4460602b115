/* mv-mapi: an Outlook message as its MAPI properties (what a PST item or
 * an MSG file holds), and its deterministic rebuilding as RFC 5322 bytes.
 *
 * The readers (mv-pst.c over libpst, mv-msg.c over libgsf) fill an
 * mv_mapi_message; mv_mapi_to_mime writes it (docs/import.md says what is
 * kept):
 *
 *   - header: the transport headers (PR_TRANSPORT_MESSAGE_HEADERS) when
 *     present, less their Content-* and MIME-Version fields; else one built
 *     from the properties (Date, From, To / Cc / Bcc from the recipient
 *     table or the display lists, Subject, Message-ID, In-Reply-To), text
 *     as RFC 2047 encoded-words (GMime);
 *   - body: text/plain and text/html (multipart/alternative when both),
 *     then in multipart/mixed one part per attachment (base64) and each
 *     attached message as message/rfc822, rebuilt the same way;
 *   - every boundary derived from the SHA-256 of what it encloses, CRLF
 *     line ends: the same properties always give the same bytes.
 *
 * Ownership: mv_mapi_message_new / _free; every string and GBytes in it is
 * owned by it (strings valid UTF-8). */
#ifndef MV_MAPI_H
#define MV_MAPI_H

#include <glib.h>

#include "mv-status.h"

typedef enum { MV_MAPI_TO = 1, MV_MAPI_CC = 2, MV_MAPI_BCC = 3 } mv_mapi_rcpt_type;

typedef struct {
	mv_mapi_rcpt_type type;
	char *name;     /* or NULL */
	char *address;  /* SMTP address, or NULL */
} mv_mapi_recipient;

typedef struct mv_mapi_message mv_mapi_message;

typedef struct {
	char *filename;     /* long name, else short, or NULL */
	char *mime_type;    /* PR_ATTACH_MIME_TAG, or NULL */
	char *content_id;   /* or NULL */
	GBytes *data;       /* or NULL (an embedded message) */
	mv_mapi_message *embedded; /* an attached message, or NULL */
} mv_mapi_attachment;

struct mv_mapi_message {
	char *transport_headers;
	char *subject;
	char *body;         /* plain text */
	char *html;
	char *sender_name, *sender_address;
	char *display_to, *display_cc;
	char *message_id, *in_reply_to;
	gboolean has_date;
	gint64 date;        /* seconds since the epoch, UTC */
	GPtrArray *recipients;  /* mv_mapi_recipient*; empty: use the display lists */
	GPtrArray *attachments; /* mv_mapi_attachment* */
};

mv_mapi_message *mv_mapi_message_new(void);
void mv_mapi_message_free(mv_mapi_message *m);

/* Add an attachment (owned by m from then on). */
mv_mapi_attachment *mv_mapi_add_attachment(mv_mapi_message *m);
void mv_mapi_add_recipient(mv_mapi_message *m, mv_mapi_rcpt_type type, const char *name,
                           const char *address);

/* The message as RFC 5322 bytes (g_bytes_unref).  MV_ERR_LIMIT when they
 * would be larger than max_bytes. */
mv_status mv_mapi_to_mime(const mv_mapi_message *m, gsize max_bytes, GBytes **raw_r,
                          char **error_r) MV_WARN_UNUSED;

#endif

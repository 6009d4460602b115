/* mv-imap: a small IMAP4rev1 client for pulling a journal mailbox and for
 * restoring messages into a mailbox.
 *
 * libcurl makes the connection (TCP, implicit TLS for imaps://, STARTTLS
 * for imap://, certificate checks, the login: CURLOPT_CONNECT_ONLY stops
 * right after it); this module then speaks IMAP itself over that channel
 * (curl_easy_send / curl_easy_recv), because libcurl's URL interface
 * fetches one message per request and cannot set an APPEND's internal date.
 *
 * Security: everything read from the server is untrusted.  Responses are
 * read by a strict reader with caps on line length and literal size, and
 * every wait has a timeout.  The password is handed to libcurl only; it is
 * never logged, echoed or put in an error message.
 *
 * Ownership: mv_imap_connect returns a session freed by mv_imap_close.
 * Returned arrays and strings are the caller's, as documented below. */
#ifndef MV_IMAP_H
#define MV_IMAP_H

#include <glib.h>

#include "mv-status.h"

typedef struct mv_imap mv_imap;

typedef struct {
	const char *url;         /* imap://host[:port]/MAILBOX or imaps://... */
	const char *user;
	const char *password;    /* borrowed; never copied into messages */
	const char *ca_file;     /* PEM CA bundle, or NULL: the system's */
	gboolean allow_plaintext; /* imap:// without STARTTLS when the server
	                             offers none (the password then travels
	                             in clear: loopback tests only) */
	guint timeout;           /* seconds per network wait (default 60) */
	gsize max_literal;       /* largest message accepted (default 256 MiB) */
} mv_imap_options;

void mv_imap_options_default(mv_imap_options *options);

/* The parts of an IMAP URL.  *mailbox_r (g_free) is the decoded path without
 * its leading slash ("INBOX" when empty); *display_r (g_free, may be NULL)
 * the URL without user information.  MV_ERR_USAGE when it is not an
 * imap:// or imaps:// URL or names a mailbox with control characters. */
mv_status mv_imap_parse_url(const char *url, char **mailbox_r, char **display_r,
                            char **error_r) MV_WARN_UNUSED;

/* Connect and log in.  Errors: MV_ERR_CONFIG (login refused, TLS
 * certificate not trusted, TLS not offered), MV_ERR_IO (network).
 * Commands below fail with MV_ERR_IO when the connection failed (the
 * session is then unusable) and MV_ERR_INPUT when the server refused the
 * command (NO / BAD; the session goes on). */
mv_status mv_imap_connect(const mv_imap_options *options, mv_imap **imap_r, char **error_r)
	MV_WARN_UNUSED;
/* Log out (best effort) and free; accepts NULL. */
void mv_imap_close(mv_imap **imap);

/* The mailbox named by the URL (owned by the session). */
const char *mv_imap_mailbox(const mv_imap *imap);
/* Whether the server announced capability cap (e.g. "UIDPLUS"). */
gboolean mv_imap_has_capability(const mv_imap *imap, const char *cap);

typedef struct {
	guint64 uidvalidity;
	guint64 uidnext;   /* 0 when the server did not say */
	guint64 exists;
} mv_imap_mailbox_info;

/* SELECT mailbox (NULL: the URL's).  MV_ERR_NOT_FOUND when it does not exist. */
mv_status mv_imap_select(mv_imap *imap, const char *mailbox, mv_imap_mailbox_info *info_r,
                         char **error_r) MV_WARN_UNUSED;

/* UID SEARCH criteria (ASCII, trusted).  *uids_r: GArray of guint64 in
 * ascending order (g_array_unref). */
mv_status mv_imap_uid_search(mv_imap *imap, const char *criteria, GArray **uids_r,
                             char **error_r) MV_WARN_UNUSED;

typedef struct {
	guint64 uid;
	guint64 size;        /* RFC822.SIZE, 0 when not fetched */
	GBytes *raw;         /* BODY[], or NULL when not fetched */
	gint64 internaldate; /* seconds since the epoch, or 0 */
} mv_imap_message;

void mv_imap_message_free(gpointer message);

/* UID FETCH uid_set (UID INTERNALDATE RFC822.SIZE[ BODY.PEEK[]]), in one
 * command.  *msgs_r: mv_imap_message* (free function set), one per FETCH
 * response with a UID, in the order the server sent them (a UID may appear
 * more than once: unsolicited flag updates come without a body, raw NULL);
 * UIDs it did not return (expunged meanwhile) are absent.  With body, a
 * message over max_literal fails the whole fetch with MV_ERR_LIMIT. */
mv_status mv_imap_uid_fetch(mv_imap *imap, const char *uid_set, gboolean body,
                            GPtrArray **msgs_r, char **error_r) MV_WARN_UNUSED;

/* UID STORE uid_set +FLAGS.SILENT (flag). */
mv_status mv_imap_uid_add_flag(mv_imap *imap, const char *uid_set, const char *flag,
                               char **error_r) MV_WARN_UNUSED;
/* UID EXPUNGE uid_set (needs UIDPLUS), or EXPUNGE when uid_set is NULL. */
mv_status mv_imap_expunge(mv_imap *imap, const char *uid_set, char **error_r) MV_WARN_UNUSED;

/* APPEND raw to mailbox with flags ("\\Seen" or NULL) and internal date
 * (seconds since the epoch; 0: the server's now).  A missing mailbox is
 * created first when the server answers TRYCREATE.  *uid_r (may be NULL)
 * receives the new UID when the server reports APPENDUID, else 0. */
mv_status mv_imap_append(mv_imap *imap, const char *mailbox, const char *flags,
                         gint64 internal_date, GBytes *raw, guint64 *uid_r, char **error_r)
	MV_WARN_UNUSED;

/* "1:5,7,9:12" for ascending uids (g_free). */
char *mv_imap_uid_set(const guint64 *uids, guint n);

/* The IMAP date-time form ("28-Nov-2026 15:04:05 +0000") of t, in UTC. */
char *mv_imap_format_date(gint64 t);
/* Parse an IMAP date-time; FALSE when malformed. */
gboolean mv_imap_parse_date(const char *s, gint64 *t_r);

#endif

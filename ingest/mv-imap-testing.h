/* mv-imap-testing: an IMAP session whose server is a byte buffer, for the
 * fuzz target (tests/fuzz/fuzz-imap.c) and tests only; not part of the
 * library's API.
 *
 * The session reads the server's bytes from the buffer (at most one
 * receive chunk per read; its end reads as the server closing the
 * connection) and drops what it sends; no curl handle, socket or poll.
 * Everything else (the reader, the parsers, the commands, their tags
 * M1, M2, ...) is the code a real session runs.
 *
 * Ownership: the buffer is borrowed and must outlive the session; the
 * session is freed by mv_imap_close, as one from mv_imap_connect. */
#ifndef MV_IMAP_TESTING_H
#define MV_IMAP_TESTING_H

#include "mv-imap.h"

/* Run what mv_imap_connect runs after the login (CAPABILITY, tag M1) with
 * server_bytes (len bytes; NULL when len is 0) as the server's answers.
 * Of options, timeout and max_literal apply, and url names the session's
 * mailbox (NULL: INBOX); the rest is unused.  Errors as mv_imap_connect's
 * (MV_ERR_IO when the bytes run out; *imap_r NULL). */
mv_status mv_imap_open_memory(const guint8 *server_bytes, gsize len,
                              const mv_imap_options *options, mv_imap **imap_r, char **error_r)
	MV_WARN_UNUSED;

#endif

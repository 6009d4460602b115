/* mv-status: the one status type of the mailvault library.
 *
 * Every library function that can fail returns an mv_status and, where it
 * takes a `char **error_r`, sets *error_r to a newly allocated one-line
 * description (free with g_free) on failure and leaves it untouched on
 * success.  The library never prints and never exits; the CLI maps each
 * status to one message line and a sysexits-style exit code.
 * Codes only ever grow: never renumber one. */
#ifndef MV_STATUS_H
#define MV_STATUS_H

#include <glib.h>

typedef enum {
	MV_OK = 0,
	MV_ERR_USAGE,        /* bad arguments or options */
	MV_ERR_QUERY,        /* a search query that does not parse */
	MV_ERR_INPUT,        /* input data that cannot be read as mail */
	MV_ERR_NOT_FOUND,    /* no such message / file */
	MV_ERR_IO,           /* reading or writing a file failed */
	MV_ERR_DB,           /* the database is unavailable or failed */
	MV_ERR_INTEGRITY,    /* stored data does not match its SHA-256 */
	MV_ERR_CONFIG,       /* bad configuration or environment */
	MV_ERR_LIMIT,        /* a configured limit was crossed */
	MV_ERR_INTERNAL,     /* a bug */
	MV_ERR_PARTIAL,      /* some items of a batch failed (see summary) */
	MV_ERR_BUSY,         /* another run holds the lock; try again later */
	MV_ERR_DENIED,       /* the database role may not do this */
	MV_ERR_DESTROYED,    /* the record was destroyed by purge (its tombstone remains) */
	MV_ERR_SIGNATURE,    /* an OpenPGP signature does not check out */
	MV_STATUS_COUNT
} mv_status;

/* Static string naming the status; never NULL. */
const char *mv_status_to_string(mv_status status);

/* Set *error_r (if error_r is non-NULL and *error_r is NULL) to a formatted
 * message; returns status so callers can `return mv_fail(...)`. */
mv_status mv_fail(char **error_r, mv_status status, const char *fmt, ...)
	G_GNUC_PRINTF(3, 4);

#define MV_WARN_UNUSED G_GNUC_WARN_UNUSED_RESULT

#endif

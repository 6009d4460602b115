/* mv-progress: the progress line of long commands (import, export, verify,
 * retention apply, purge, scan, key rotate, index), on standard error.
 *
 * Shown when standard error is a terminal, unless --no-progress, [logging]
 * progress = never or MAILVAULT_NO_PROGRESS; shown on a non-terminal too
 * with --progress ([logging] progress = always), one plain line every few
 * seconds instead of a line rewritten in place.  The line says what is
 * done, the count (of the total when known), the rate and, with a total,
 * the time left:
 *   verifying: 1200/5000 messages (24%), 410/s, 9 s left
 */
#ifndef MV_PROGRESS_H
#define MV_PROGRESS_H

#include <glib.h>

typedef enum { MV_PROGRESS_AUTO, MV_PROGRESS_ALWAYS, MV_PROGRESS_NEVER } mv_progress_mode;

/* Set once by main (--progress / --no-progress / the config file). */
void mv_progress_set_mode(mv_progress_mode mode);
/* TRUE when progress is to be shown. */
gboolean mv_progress_enabled(void);

typedef struct mv_progress mv_progress;

/* NULL when progress is not shown (every function below accepts NULL).
 * what: "importing"; unit: "messages"; total 0 when unknown. */
mv_progress *mv_progress_new(const char *what, const char *unit, gint64 total);
void mv_progress_set_total(mv_progress *p, gint64 total);
/* done so far; detail (may be NULL) is appended: "3 failed".  Drawn at most
 * five times a second on a terminal, every 5 s otherwise. */
void mv_progress_update(mv_progress *p, gint64 done, const char *detail);
/* Bytes as well as the count (import): the line adds the megabytes done
 * and their rate, and with a byte total (0: unknown, or no longer
 * meaningful) the time left comes from the bytes, not the count:
 *   importing: 5200 messages read, 410/s, 160.2 MB, 12.6 MB/s, 6 min 10 s left, ... */
void mv_progress_set_bytes_total(mv_progress *p, gint64 bytes_total);
void mv_progress_update_bytes(mv_progress *p, gint64 done, gint64 bytes, const char *detail);
/* Clear the line (terminal) and free. */
void mv_progress_free(mv_progress **p);

#endif

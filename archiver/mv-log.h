/* mv-log: one log line format for every component (smtpd, ingest, scan,
 * purge ...).  The library never prints: mv_log() hands each line to the
 * handler the program installed (the mailvault command writes it to
 * standard error, docs/architecture.md "Logs"); without a handler lines are
 * dropped.
 *
 * Line format (mv_log_format_line):
 *   2026-12-06T12:00:00.123Z mailvault[4242] info smtpd: message text key=value ...
 * Under systemd (JOURNAL_STREAM set) the time and pid are left to the
 * journal and the line starts with the syslog priority "<3>".."<7>" that
 * journald reads: "<6>info smtpd: ...". */
#ifndef MV_LOG_H
#define MV_LOG_H

#include <glib.h>

typedef enum {
	MV_LOG_ERROR, /* the program cannot do what it was asked */
	MV_LOG_WARN,  /* bad input or environment; going on */
	MV_LOG_INFO,  /* what a daemon did: a message stored, a pass, a reload */
	MV_LOG_DEBUG, /* detail for finding a problem */
} mv_log_level;

/* Called for each line at or above the threshold; component and message are
 * valid during the call only.  May be called from any thread. */
typedef void mv_log_handler(mv_log_level level, const char *component, const char *message,
                            void *context);

/* Install the handler (NULL: drop every line) and the threshold. */
void mv_log_set_handler(mv_log_handler *handler, void *context, mv_log_level threshold);
/* TRUE when a line of this level would reach the handler. */
gboolean mv_log_enabled(mv_log_level level);
void mv_log(mv_log_level level, const char *component, const char *fmt, ...) G_GNUC_PRINTF(3, 4);

/* "error", "warn", "info", "debug". */
const char *mv_log_level_name(mv_log_level level);
/* FALSE when name is none of the above. */
gboolean mv_log_level_parse(const char *name, mv_log_level *level_r);

/* One line, with '\n', in the format above (journal: the "<N>" form).
 * Newlines and other control characters in message are written as '?' so
 * one event is one line.  Free with g_free. */
char *mv_log_format_line(mv_log_level level, const char *component, const char *message,
                         gboolean journal);

#endif

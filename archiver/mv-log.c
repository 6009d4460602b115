/* mv-log: see mv-log.h. */
#include "mv-log.h"

#include <unistd.h>

static mv_log_handler *log_handler;
static void *log_context;
static gint log_threshold = MV_LOG_INFO;

void mv_log_set_handler(mv_log_handler *handler, void *context, mv_log_level threshold)
{
	log_handler = handler;
	log_context = context;
	g_atomic_int_set(&log_threshold, (gint)threshold);
}

gboolean mv_log_enabled(mv_log_level level)
{
	return log_handler != NULL && (gint)level <= g_atomic_int_get(&log_threshold);
}

void mv_log(mv_log_level level, const char *component, const char *fmt, ...)
{
	if (!mv_log_enabled(level))
		return;
	va_list ap;
	va_start(ap, fmt);
	char *msg = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	log_handler(level, component, msg, log_context);
	g_free(msg);
}

static const char *const names[] = {"error", "warn", "info", "debug"};

const char *mv_log_level_name(mv_log_level level)
{
	return (guint)level < G_N_ELEMENTS(names) ? names[level] : "info";
}

gboolean mv_log_level_parse(const char *name, mv_log_level *level_r)
{
	for (guint i = 0; name != NULL && i < G_N_ELEMENTS(names); i++)
		if (g_strcmp0(name, names[i]) == 0) {
			*level_r = (mv_log_level)i;
			return TRUE;
		}
	return FALSE;
}

char *mv_log_format_line(mv_log_level level, const char *component, const char *message,
                         gboolean journal)
{
	/* syslog priorities: err 3, warning 4, info 6, debug 7 */
	static const int prio[] = {3, 4, 6, 7};
	GString *s = g_string_sized_new(128);
	if (journal) {
		g_string_append_printf(s, "<%d>", prio[(guint)level < 4 ? level : 2]);
	} else {
		GDateTime *now = g_date_time_new_now_utc();
		char *ts = g_date_time_format(now, "%Y-%m-%dT%H:%M:%S");
		g_string_append_printf(s, "%s.%03dZ mailvault[%ld] ", ts,
		                       g_date_time_get_microsecond(now) / 1000, (long)getpid());
		g_free(ts);
		g_date_time_unref(now);
	}
	g_string_append_printf(s, "%s %s: ", mv_log_level_name(level),
	                       component != NULL ? component : "mailvault");
	for (const char *p = message; *p != '\0'; p++)
		g_string_append_c(s, (unsigned char)*p < 0x20 && *p != '\t' ? '?' : *p);
	g_string_append_c(s, '\n');
	return g_string_free(s, FALSE);
}

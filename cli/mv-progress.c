/* mv-progress: see mv-progress.h. */
#include "mv-progress.h"

#include <stdio.h>
#include <unistd.h>

static mv_progress_mode progress_mode = MV_PROGRESS_AUTO;

struct mv_progress {
	char *what, *unit;
	gint64 total, start, last_draw, done;
	gint64 bytes, bytes_total; /* mv_progress_update_bytes; bytes -1 when not counted */
	gboolean tty, drawn;
};

void mv_progress_set_mode(mv_progress_mode mode)
{
	progress_mode = mode;
}

gboolean mv_progress_enabled(void)
{
	if (progress_mode == MV_PROGRESS_ALWAYS)
		return TRUE;
	if (progress_mode == MV_PROGRESS_NEVER || g_getenv("MAILVAULT_NO_PROGRESS") != NULL)
		return FALSE;
	return isatty(STDERR_FILENO);
}

mv_progress *mv_progress_new(const char *what, const char *unit, gint64 total)
{
	if (!mv_progress_enabled())
		return NULL;
	mv_progress *p = g_new0(mv_progress, 1);
	p->what = g_strdup(what);
	p->unit = g_strdup(unit);
	p->total = total;
	p->bytes = -1;
	p->start = g_get_monotonic_time();
	p->tty = isatty(STDERR_FILENO);
	return p;
}

void mv_progress_set_total(mv_progress *p, gint64 total)
{
	if (p != NULL)
		p->total = total;
}

static void format_duration(GString *s, gint64 seconds)
{
	if (seconds >= 3600)
		g_string_append_printf(s, "%" G_GINT64_FORMAT " h %02" G_GINT64_FORMAT " min", seconds / 3600,
		                       seconds % 3600 / 60);
	else if (seconds >= 60)
		g_string_append_printf(s, "%" G_GINT64_FORMAT " min %02" G_GINT64_FORMAT " s", seconds / 60,
		                       seconds % 60);
	else
		g_string_append_printf(s, "%" G_GINT64_FORMAT " s", seconds);
}

void mv_progress_set_bytes_total(mv_progress *p, gint64 bytes_total)
{
	if (p != NULL)
		p->bytes_total = bytes_total;
}

void mv_progress_update(mv_progress *p, gint64 done, const char *detail)
{
	if (p == NULL)
		return;
	mv_progress_update_bytes(p, done, p->bytes, detail);
}

void mv_progress_update_bytes(mv_progress *p, gint64 done, gint64 bytes, const char *detail)
{
	if (p == NULL)
		return;
	p->done = done;
	p->bytes = bytes;
	gint64 now = g_get_monotonic_time();
	if (p->drawn && now - p->last_draw < (p->tty ? 200000 : 5000000))
		return;
	p->last_draw = now;
	p->drawn = TRUE;
	double secs = (double)(now - p->start) / 1e6;
	double rate = secs > 0.001 ? (double)done / secs : 0;
	GString *s = g_string_new(NULL);
	g_string_append_printf(s, "%s: %" G_GINT64_FORMAT, p->what, done);
	if (p->total > 0)
		g_string_append_printf(s, "/%" G_GINT64_FORMAT " %s (%d%%)", p->total, p->unit,
		                       (int)(done * 100 / p->total));
	else
		g_string_append_printf(s, " %s", p->unit);
	if (rate > 0)
		g_string_append_printf(s, ", %.0f/s", rate);
	if (bytes >= 0)
		g_string_append_printf(s, ", %.1f MB, %.1f MB/s", (double)bytes / 1e6,
		                       secs > 0.001 ? (double)bytes / secs / 1e6 : 0.0);
	if (p->bytes_total > 0 && bytes > 0) {
		if (bytes < p->bytes_total && secs > 0.001) {
			g_string_append(s, ", ");
			format_duration(s, (gint64)((double)(p->bytes_total - bytes) /
			                            ((double)bytes / secs) + 0.5));
			g_string_append(s, " left");
		}
	} else if (p->total > 0 && rate > 0 && done <= p->total) {
		g_string_append(s, ", ");
		format_duration(s, (gint64)((double)(p->total - done) / rate + 0.5));
		g_string_append(s, " left");
	}
	if (detail != NULL && *detail != '\0')
		g_string_append_printf(s, ", %s", detail);
	if (p->tty)
		fprintf(stderr, "\r\033[K%s", s->str);
	else
		fprintf(stderr, "%s\n", s->str);
	fflush(stderr);
	g_string_free(s, TRUE);
}

void mv_progress_free(mv_progress **pp)
{
	if (pp == NULL || *pp == NULL)
		return;
	mv_progress *p = *pp;
	if (p->tty && p->drawn) {
		fputs("\r\033[K", stderr);
		fflush(stderr);
	}
	g_free(p->what);
	g_free(p->unit);
	g_free(p);
	*pp = NULL;
}

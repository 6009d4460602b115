/* mv-chart: bar charts as SVG (libxml2's writer: every label is escaped),
 * self-contained (no scripts, fonts or links), for `stats traffic --svg`
 * and the HTML report. */
#ifndef MV_CHART_H
#define MV_CHART_H

#include <glib.h>

typedef struct {
	const char *label; /* any text (hostile input allowed: it is escaped) */
	gint64 value;      /* >= 0 */
} mv_chart_bar;

typedef enum {
	MV_CHART_COLUMNS, /* vertical bars, left to right (time) */
	MV_CHART_ROWS,    /* horizontal bars, top to bottom (top-N) */
} mv_chart_kind;

/* The chart as an SVG document; standalone adds the XML declaration (a
 * file), else it is an <svg> element to inline in HTML.  Each bar is a
 * <rect class="bar"> carrying data-label and data-value, its length
 * proportional to value over the largest value (the chart's scale is in
 * data-scale on the <svg>: length = value * scale).  Returns NULL only if
 * libxml2 fails to allocate.  g_free. */
char *mv_chart_svg(const char *title, const char *label_axis, const char *value_axis,
                   const mv_chart_bar *bars, guint n, mv_chart_kind kind, gboolean standalone);

#endif

/* mv-chart: SVG bar charts through libxml2's xmlTextWriter.
 *
 * Security: labels are message metadata (domains, addresses, hold names)
 * and hostile; they are made valid UTF-8 without control characters and
 * written as escaped text or attribute values by libxml2, never pasted. */
#include "mv-chart.h"

#include <libxml/xmlwriter.h>
#include <string.h>

/* Valid UTF-8, no characters XML 1.0 forbids, at most max characters
 * (longer ends in an ellipsis; max 0: no limit).  g_free. */
static char *clean_text(const char *s, glong max)
{
	char *valid = g_utf8_make_valid(s != NULL ? s : "", -1);
	GString *out = g_string_new(NULL);
	glong n = 0;
	for (const char *p = valid; *p != '\0'; p = g_utf8_next_char(p)) {
		gunichar c = g_utf8_get_char(p);
		if ((c < 0x20 && c != '\t') || c == 0xFFFE || c == 0xFFFF)
			c = ' ';
		if (max > 0 && n == max - 1 && g_utf8_strlen(p, -1) > 1) {
			g_string_append_unichar(out, 0x2026);
			break;
		}
		g_string_append_unichar(out, c);
		n++;
	}
	g_free(valid);
	return g_string_free(out, FALSE);
}

static void attr_num(xmlTextWriterPtr w, const char *name, double v)
{
	char buf[G_ASCII_DTOSTR_BUF_SIZE];
	xmlTextWriterWriteAttribute(w, BAD_CAST name, BAD_CAST g_ascii_formatd(buf, sizeof buf, "%.3f", v));
}

static void text_el(xmlTextWriterPtr w, double x, double y, const char *anchor, const char *cls,
                    const char *transform, const char *text)
{
	xmlTextWriterStartElement(w, BAD_CAST "text");
	attr_num(w, "x", x);
	attr_num(w, "y", y);
	if (anchor != NULL)
		xmlTextWriterWriteAttribute(w, BAD_CAST "text-anchor", BAD_CAST anchor);
	if (cls != NULL)
		xmlTextWriterWriteAttribute(w, BAD_CAST "class", BAD_CAST cls);
	if (transform != NULL)
		xmlTextWriterWriteAttribute(w, BAD_CAST "transform", BAD_CAST transform);
	xmlTextWriterWriteString(w, BAD_CAST text);
	xmlTextWriterEndElement(w);
}

static void line_el(xmlTextWriterPtr w, double x1, double y1, double x2, double y2)
{
	xmlTextWriterStartElement(w, BAD_CAST "line");
	attr_num(w, "x1", x1);
	attr_num(w, "y1", y1);
	attr_num(w, "x2", x2);
	attr_num(w, "y2", y2);
	xmlTextWriterWriteAttribute(w, BAD_CAST "class", BAD_CAST "axis");
	xmlTextWriterEndElement(w);
}

static char *fmt_int(gint64 v)
{
	return g_strdup_printf("%" G_GINT64_FORMAT, v);
}

/* A tick's value, max * g / 4, exactly (one decimal when not whole). */
static char *fmt_tick(gint64 max, int g)
{
	if ((max * g) % 4 == 0)
		return fmt_int(max * g / 4);
	char buf[G_ASCII_DTOSTR_BUF_SIZE];
	return g_strdup(g_ascii_formatd(buf, sizeof buf, "%.1f", (double)max * g / 4.0));
}

char *mv_chart_svg(const char *title, const char *label_axis, const char *value_axis,
                   const mv_chart_bar *bars, guint n, mv_chart_kind kind, gboolean standalone)
{
	gint64 max = 0;
	for (guint i = 0; i < n; i++)
		max = MAX(max, MAX(bars[i].value, 0));
	const double top = 40, left_cols = 70, bar_row = 22;
	double width, height, plot_len, left;
	double step = 0;
	if (kind == MV_CHART_COLUMNS) {
		step = n > 0 ? CLAMP(640.0 / n, 4.0, 40.0) : 40.0;
		left = left_cols;
		plot_len = 240;
		width = MAX(520.0, left + step * n + 30);
		height = top + plot_len + 110;
	} else {
		left = 240;
		plot_len = 420;
		width = left + plot_len + 110;
		height = top + bar_row * MAX(n, 1u) + 60;
	}
	double scale = max > 0 ? plot_len / (double)max : 0.0;

	xmlBufferPtr buf = xmlBufferCreate();
	if (buf == NULL)
		return NULL;
	xmlTextWriterPtr w = xmlNewTextWriterMemory(buf, 0);
	if (w == NULL) {
		xmlBufferFree(buf);
		return NULL;
	}
	if (standalone)
		xmlTextWriterStartDocument(w, NULL, "UTF-8", NULL);
	xmlTextWriterStartElement(w, BAD_CAST "svg");
	xmlTextWriterWriteAttribute(w, BAD_CAST "xmlns", BAD_CAST "http://www.w3.org/2000/svg");
	attr_num(w, "width", width);
	attr_num(w, "height", height);
	char vb[128];
	g_snprintf(vb, sizeof vb, "0 0 %.0f %.0f", width, height);
	xmlTextWriterWriteAttribute(w, BAD_CAST "viewBox", BAD_CAST vb);
	xmlTextWriterWriteAttribute(w, BAD_CAST "role", BAD_CAST "img");
	char sc[G_ASCII_DTOSTR_BUF_SIZE];
	xmlTextWriterWriteAttribute(w, BAD_CAST "data-scale", BAD_CAST g_ascii_formatd(sc, sizeof sc, "%.9g", scale));
	xmlTextWriterWriteAttribute(w, BAD_CAST "data-kind",
	                            BAD_CAST(kind == MV_CHART_COLUMNS ? "columns" : "rows"));

	char *t = clean_text(title, 200);
	xmlTextWriterWriteElement(w, BAD_CAST "title", BAD_CAST t);
	xmlTextWriterStartElement(w, BAD_CAST "style");
	xmlTextWriterWriteString(
		w, BAD_CAST "text{font-family:sans-serif;font-size:11px;fill:#222}"
		            ".title{font-size:15px;font-weight:bold}.axis{stroke:#444;stroke-width:1}"
		            ".bar{fill:#3b6ea5}.grid{stroke:#ddd;stroke-width:1}.axis-title{font-size:12px}");
	xmlTextWriterEndElement(w);
	text_el(w, width / 2, 22, "middle", "title", NULL, t);
	g_free(t);

	char *la = clean_text(label_axis, 80), *va = clean_text(value_axis, 80);
	/* Label every k-th column so that labels do not overlap. */
	guint every = kind == MV_CHART_COLUMNS && step < 14 ? (guint)(14.0 / step + 0.999) : 1;
	if (kind == MV_CHART_COLUMNS) {
		double base = top + plot_len;
		for (int g = 0; g <= 4; g++) {
			double y = base - plot_len * g / 4.0;
			xmlTextWriterStartElement(w, BAD_CAST "line");
			attr_num(w, "x1", left);
			attr_num(w, "y1", y);
			attr_num(w, "x2", left + step * n);
			attr_num(w, "y2", y);
			xmlTextWriterWriteAttribute(w, BAD_CAST "class", BAD_CAST "grid");
			xmlTextWriterEndElement(w);
			char *tick = fmt_tick(max, g);
			text_el(w, left - 6, y + 4, "end", "tick", NULL, tick);
			g_free(tick);
		}
		line_el(w, left, top, left, base);
		line_el(w, left, base, left + step * n, base);
		for (guint i = 0; i < n; i++) {
			double h = MAX(bars[i].value, 0) * scale;
			double x = left + step * i;
			char *label = clean_text(bars[i].label, 0);
			char *v = fmt_int(bars[i].value);
			xmlTextWriterStartElement(w, BAD_CAST "rect");
			xmlTextWriterWriteAttribute(w, BAD_CAST "class", BAD_CAST "bar");
			attr_num(w, "x", x + step * 0.1);
			attr_num(w, "y", base - h);
			attr_num(w, "width", step * 0.8);
			attr_num(w, "height", h);
			xmlTextWriterWriteAttribute(w, BAD_CAST "data-label", BAD_CAST label);
			xmlTextWriterWriteAttribute(w, BAD_CAST "data-value", BAD_CAST v);
			char *tip = g_strdup_printf("%s: %s", label, v);
			xmlTextWriterWriteElement(w, BAD_CAST "title", BAD_CAST tip);
			g_free(tip);
			xmlTextWriterEndElement(w);
			if (i % every == 0) {
				char *shown = clean_text(bars[i].label, 16);
				char tr[96];
				double lx = x + step / 2, ly = base + 12;
				g_snprintf(tr, sizeof tr, "rotate(-45 %.3f %.3f)", lx, ly);
				text_el(w, lx, ly, "end", "label", tr, shown);
				g_free(shown);
			}
			g_free(label);
			g_free(v);
		}
		text_el(w, left + step * n / 2, height - 8, "middle", "axis-title", NULL, la);
		char tr[96];
		g_snprintf(tr, sizeof tr, "rotate(-90 16 %.3f)", top + plot_len / 2);
		text_el(w, 16, top + plot_len / 2, "middle", "axis-title", tr, va);
	} else {
		double base = top + bar_row * n;
		line_el(w, left, top, left, base);
		line_el(w, left, base, left + plot_len, base);
		for (int g = 0; g <= 4; g++) {
			char *tick = fmt_tick(max, g);
			text_el(w, left + plot_len * g / 4.0, base + 14, "middle", "tick", NULL, tick);
			g_free(tick);
		}
		for (guint i = 0; i < n; i++) {
			double len = MAX(bars[i].value, 0) * scale;
			double y = top + bar_row * i;
			char *label = clean_text(bars[i].label, 0);
			char *v = fmt_int(bars[i].value);
			xmlTextWriterStartElement(w, BAD_CAST "rect");
			xmlTextWriterWriteAttribute(w, BAD_CAST "class", BAD_CAST "bar");
			attr_num(w, "x", left);
			attr_num(w, "y", y + 2);
			attr_num(w, "width", len);
			attr_num(w, "height", bar_row - 4);
			xmlTextWriterWriteAttribute(w, BAD_CAST "data-label", BAD_CAST label);
			xmlTextWriterWriteAttribute(w, BAD_CAST "data-value", BAD_CAST v);
			char *tip = g_strdup_printf("%s: %s", label, v);
			xmlTextWriterWriteElement(w, BAD_CAST "title", BAD_CAST tip);
			g_free(tip);
			xmlTextWriterEndElement(w);
			char *shown = clean_text(bars[i].label, 36);
			text_el(w, left - 6, y + bar_row - 7, "end", "label", NULL, shown);
			text_el(w, left + len + 4, y + bar_row - 7, NULL, "value", NULL, v);
			g_free(shown);
			g_free(label);
			g_free(v);
		}
		text_el(w, left + plot_len / 2, base + 34, "middle", "axis-title", NULL, va);
		text_el(w, left - 6, top - 6, "end", "axis-title", NULL, la);
	}
	g_free(la);
	g_free(va);
	xmlTextWriterEndElement(w); /* svg */
	if (standalone)
		xmlTextWriterEndDocument(w);
	xmlFreeTextWriter(w); /* flushes */
	char *out = g_strdup((const char *)xmlBufferContent(buf));
	xmlBufferFree(buf);
	return out;
}

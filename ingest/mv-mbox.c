/* mv-mbox: an mbox splitter.  SECURITY: untrusted input; lines of any
 * length are handled by getline; message size is bounded by the caller. */
#include "mv-mbox.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct mv_mbox_reader {
	FILE *f;
	char *path;
	mv_mbox_variant variant;
	char *line;           /* getline buffer */
	size_t cap;
	ssize_t pending_len;  /* a From_ line already read (>= 0) or -1 */
	char *pending_from;   /* its envelope sender */
	gint64 index;
	gboolean started;
	gint64 end_offset;    /* where the last message returned ends */
};

gboolean mv_mbox_looks_like(const char *head, gsize len)
{
	return len >= 5 && memcmp(head, "From ", 5) == 0;
}

mv_status mv_mbox_open(const char *path, mv_mbox_variant variant, mv_mbox_reader **reader_r,
                       char **error_r)
{
	*reader_r = NULL;
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return mv_fail(error_r, errno == ENOENT ? MV_ERR_NOT_FOUND : MV_ERR_IO,
		               "cannot open %s: %s", path, g_strerror(errno));
	mv_mbox_reader *r = g_new0(mv_mbox_reader, 1);
	r->f = f;
	r->path = g_strdup(path);
	r->variant = variant;
	r->pending_len = -1;
	*reader_r = r;
	return MV_OK;
}

mv_mbox_reader *mv_mbox_open_stream(FILE *f, const char *name, mv_mbox_variant variant)
{
	mv_mbox_reader *r = g_new0(mv_mbox_reader, 1);
	r->f = f;
	r->path = g_strdup(name);
	r->variant = variant;
	r->pending_len = -1;
	return r;
}

void mv_mbox_close(mv_mbox_reader **reader)
{
	if (reader == NULL || *reader == NULL)
		return;
	mv_mbox_reader *r = *reader;
	fclose(r->f);
	free(r->line);
	g_free(r->path);
	g_free(r->pending_from);
	g_free(r);
	*reader = NULL;
}

static gboolean is_empty_line(const char *l, ssize_t n)
{
	return (n == 1 && l[0] == '\n') || (n == 2 && l[0] == '\r' && l[1] == '\n');
}

static char *envelope_sender(const char *line, ssize_t n)
{
	const char *p = line + 5;
	const char *end = line + n;
	while (p < end && *p == ' ')
		p++;
	const char *s = p;
	while (p < end && *p != ' ' && *p != '\r' && *p != '\n')
		p++;
	if (p == s)
		return NULL;
	return g_strndup(s, (gsize)(p - s));
}

/* Number of bytes to drop from the start of a body line when unquoting. */
static gsize unquote_skip(mv_mbox_variant variant, const char *l, ssize_t n)
{
	if (n < 6 || l[0] != '>')
		return 0;
	ssize_t i = 0;
	while (i < n && l[i] == '>')
		i++;
	if (n - i < 5 || memcmp(l + i, "From ", 5) != 0)
		return 0;
	if (variant == MV_MBOXO && i != 1)
		return 0;
	return 1;
}

mv_status mv_mbox_next(mv_mbox_reader *r, gsize max_bytes, GBytes **msg_r,
                       char **envelope_from_r, gint64 *index_r, char **error_r)
{
	*msg_r = NULL;
	*envelope_from_r = NULL;
	ssize_t n;
	if (r->pending_len < 0) {
		/* Find the first From_ line (skipping leading empty lines). */
		while ((n = getline(&r->line, &r->cap, r->f)) >= 0) {
			if (mv_mbox_looks_like(r->line, (gsize)n)) {
				r->pending_len = n;
				g_free(r->pending_from);
				r->pending_from = envelope_sender(r->line, n);
				break;
			}
			if (!is_empty_line(r->line, n)) {
				if (ferror(r->f))
					break;
				return mv_fail(error_r, MV_ERR_INPUT, "%s is not an mbox: no From line at the start",
				               r->path);
			}
		}
		if (r->pending_len < 0) {
			if (ferror(r->f))
				return mv_fail(error_r, MV_ERR_IO, "cannot read %s: %s", r->path,
				               g_strerror(errno));
			return MV_OK; /* end */
		}
	}
	char *from = r->pending_from;
	r->pending_from = NULL;
	r->pending_len = -1;
	r->index++;
	GByteArray *buf = g_byte_array_new();
	gboolean too_big = FALSE;
	gboolean prev_empty = FALSE;
	ssize_t prev_len = 0; /* length of the held-back empty line */
	while ((n = getline(&r->line, &r->cap, r->f)) >= 0) {
		if (prev_empty && mv_mbox_looks_like(r->line, (gsize)n)) {
			/* The held-back empty line was the separator. */
			r->pending_len = n;
			r->pending_from = envelope_sender(r->line, n);
			r->end_offset = (gint64)ftello(r->f) - (gint64)n;
			prev_empty = FALSE;
			break;
		}
		if (prev_empty && !too_big) {
			if (buf->len + (gsize)prev_len > max_bytes) {
				too_big = TRUE;
				g_byte_array_set_size(buf, 0);
			} else {
				const char *nl = prev_len == 2 ? "\r\n" : "\n";
				g_byte_array_append(buf, (const guint8 *)nl, (guint)prev_len);
			}
		}
		prev_empty = is_empty_line(r->line, n);
		if (prev_empty) {
			prev_len = n;
			continue;
		}
		gsize skip = unquote_skip(r->variant, r->line, n);
		if (!too_big && buf->len + (gsize)n - skip > max_bytes) {
			too_big = TRUE;
			g_byte_array_set_size(buf, 0);
		}
		if (!too_big)
			g_byte_array_append(buf, (const guint8 *)r->line + skip, (guint)((gsize)n - skip));
	}
	if (n < 0)
		r->end_offset = (gint64)ftello(r->f);
	/* At end of file, a trailing empty line is the final separator. */
	if (n < 0 && ferror(r->f)) {
		g_byte_array_free(buf, TRUE);
		g_free(from);
		return mv_fail(error_r, MV_ERR_IO, "cannot read %s: %s", r->path, g_strerror(errno));
	}
	*index_r = r->index;
	if (too_big) {
		g_byte_array_free(buf, TRUE);
		g_free(from);
		return mv_fail(error_r, MV_ERR_LIMIT, "%s: message %" G_GINT64_FORMAT
		               " is larger than the limit of %zu bytes", r->path, r->index, max_bytes);
	}
	*envelope_from_r = from;
	*msg_r = g_byte_array_free_to_bytes(buf);
	return MV_OK;
}

gint64 mv_mbox_offset(const mv_mbox_reader *reader)
{
	return reader->end_offset;
}

mv_status mv_mbox_seek(mv_mbox_reader *r, gint64 offset, gint64 index, char **error_r)
{
	if (offset < 0 || fseeko(r->f, (off_t)offset, SEEK_SET) != 0)
		return mv_fail(error_r, MV_ERR_IO, "cannot seek in %s: %s", r->path, g_strerror(errno));
	r->pending_len = -1;
	g_clear_pointer(&r->pending_from, g_free);
	r->index = index;
	r->end_offset = offset;
	return MV_OK;
}

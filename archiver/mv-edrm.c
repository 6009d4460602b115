/* mv-edrm: the EDRM XML 1.2 load file writer (libxml2 xmlTextWriter). */
#include "mv-edrm.h"

#include <errno.h>
#include <libxml/xmlwriter.h>
#include <stdio.h>
#include <string.h>

#include "mv-message.h"

struct mv_edrm_writer {
	xmlTextWriterPtr x;
	char *path;
	FILE *relations; /* "parent\tchild\n" lines, written at the end */
	guint64 relation_count;
	guint64 bytes;
};

char *mv_xml_clean(const char *s)
{
	if (s == NULL)
		return NULL;
	char *valid = mv_utf8_clean(s, -1);
	GString *out = g_string_sized_new(strlen(valid));
	for (const char *p = valid; *p != '\0'; p = g_utf8_next_char(p)) {
		gunichar c = g_utf8_get_char(p);
		if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0xfffe || c == 0xffff)
			g_string_append(out, "\xef\xbf\xbd");
		else
			g_string_append_len(out, p, g_utf8_next_char(p) - p);
	}
	g_free(valid);
	return g_string_free(out, FALSE);
}

static mv_status xml_failed(mv_edrm_writer *w, char **error_r)
{
	return mv_fail(error_r, MV_ERR_IO, "cannot write %s: %s", w->path, g_strerror(errno));
}

#define X(call)                                                                                   \
	do {                                                                                      \
		int rc_ = (call);                                                                  \
		if (rc_ < 0)                                                                       \
			return xml_failed(w, error_r);                                                 \
		w->bytes += (guint64)rc_;                                                          \
	} while (0)

static int attr(xmlTextWriterPtr x, const char *name, const char *value)
{
	char *clean = mv_xml_clean(value != NULL ? value : "");
	int rc = xmlTextWriterWriteAttribute(x, BAD_CAST name, BAD_CAST clean);
	g_free(clean);
	return rc;
}

mv_status mv_edrm_open(const char *path, const char *description, mv_edrm_writer **writer_r,
                       char **error_r)
{
	*writer_r = NULL;
	mv_edrm_writer *w = g_new0(mv_edrm_writer, 1);
	w->path = g_strdup(path);
	w->relations = tmpfile();
	w->x = w->relations != NULL ? xmlNewTextWriterFilename(path, 0) : NULL;
	if (w->x == NULL) {
		mv_status st = mv_fail(error_r, MV_ERR_IO, "cannot create %s: %s", path, g_strerror(errno));
		mv_edrm_abort(&w);
		return st;
	}
	*writer_r = w;
	xmlTextWriterSetIndent(w->x, 1);
	xmlTextWriterSetIndentString(w->x, BAD_CAST " ");
	X(xmlTextWriterStartDocument(w->x, "1.0", "UTF-8", NULL));
	X(xmlTextWriterStartElement(w->x, BAD_CAST "Root"));
	X(attr(w->x, "MajorVersion", "1"));
	X(attr(w->x, "MinorVersion", "2"));
	X(attr(w->x, "Description", description));
	X(attr(w->x, "Locale", "en-US"));
	X(attr(w->x, "DataInterchangeType", "Update"));
	X(xmlTextWriterStartElement(w->x, BAD_CAST "Batch"));
	X(xmlTextWriterStartElement(w->x, BAD_CAST "Documents"));
	return MV_OK;
}

mv_status mv_edrm_write(mv_edrm_writer *w, const mv_edrm_document *doc, char **error_r)
{
	X(xmlTextWriterStartElement(w->x, BAD_CAST "Document"));
	X(attr(w->x, "DocID", doc->doc_id));
	X(attr(w->x, "DocType", doc->doc_type));
	if (doc->mime_type != NULL)
		X(attr(w->x, "MimeType", doc->mime_type));
	X(xmlTextWriterStartElement(w->x, BAD_CAST "Tags"));
	for (guint i = 0; i < doc->n_tags; i++) {
		const mv_edrm_tag *t = &doc->tags[i];
		if (t->value == NULL)
			continue;
		X(xmlTextWriterStartElement(w->x, BAD_CAST "Tag"));
		X(attr(w->x, "TagName", t->name));
		X(attr(w->x, "TagDataType", t->type));
		X(attr(w->x, "TagValue", t->value));
		X(xmlTextWriterEndElement(w->x));
	}
	X(xmlTextWriterEndElement(w->x));
	X(xmlTextWriterStartElement(w->x, BAD_CAST "Files"));
	for (guint i = 0; i < doc->n_files; i++) {
		const mv_edrm_file *f = &doc->files[i];
		char size[24];
		g_snprintf(size, sizeof size, "%" G_GINT64_FORMAT, f->size);
		X(xmlTextWriterStartElement(w->x, BAD_CAST "File"));
		X(attr(w->x, "FileType", f->file_type));
		X(xmlTextWriterStartElement(w->x, BAD_CAST "ExternalFile"));
		X(attr(w->x, "FilePath", f->path));
		X(attr(w->x, "FileName", f->name));
		X(attr(w->x, "FileSize", size));
		X(attr(w->x, "Hash", f->sha256));
		X(attr(w->x, "HashType", "SHA256"));
		X(xmlTextWriterEndElement(w->x));
		X(xmlTextWriterEndElement(w->x));
	}
	X(xmlTextWriterEndElement(w->x));
	X(xmlTextWriterEndElement(w->x));
	if (doc->parent_id != NULL) {
		if (strpbrk(doc->parent_id, "\t\n") != NULL || strpbrk(doc->doc_id, "\t\n") != NULL)
			return mv_fail(error_r, MV_ERR_INTERNAL, "document id with a tab or newline");
		if (fprintf(w->relations, "%s\t%s\n", doc->parent_id, doc->doc_id) < 0)
			return mv_fail(error_r, MV_ERR_IO, "cannot write a temporary file: %s",
			               g_strerror(errno));
		w->relation_count++;
	}
	return MV_OK;
}

guint64 mv_edrm_bytes(const mv_edrm_writer *w)
{
	return w->bytes + w->relation_count * 80;
}

static mv_status finish(mv_edrm_writer *w, char **error_r)
{
	X(xmlTextWriterEndElement(w->x)); /* Documents */
	X(xmlTextWriterStartElement(w->x, BAD_CAST "Relationships"));
	if (fflush(w->relations) != 0 || fseek(w->relations, 0, SEEK_SET) != 0)
		return mv_fail(error_r, MV_ERR_IO, "cannot read a temporary file: %s", g_strerror(errno));
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	mv_status st = MV_OK;
	while (st == MV_OK && (n = getline(&line, &cap, w->relations)) > 0) {
		if (line[n - 1] == '\n')
			line[n - 1] = '\0';
		char *tab = strchr(line, '\t');
		if (tab == NULL)
			continue;
		*tab = '\0';
		if (xmlTextWriterStartElement(w->x, BAD_CAST "Relationship") < 0 ||
		    attr(w->x, "Type", "Attachment") < 0 || attr(w->x, "ParentDocId", line) < 0 ||
		    attr(w->x, "ChildDocId", tab + 1) < 0 || xmlTextWriterEndElement(w->x) < 0)
			st = xml_failed(w, error_r);
	}
	free(line);
	if (st != MV_OK)
		return st;
	X(xmlTextWriterEndElement(w->x)); /* Relationships */
	X(xmlTextWriterEndElement(w->x)); /* Batch */
	X(xmlTextWriterEndElement(w->x)); /* Root */
	X(xmlTextWriterEndDocument(w->x));
	return MV_OK;
}

mv_status mv_edrm_close(mv_edrm_writer **wp, char **error_r)
{
	mv_edrm_writer *w = *wp;
	mv_status st = finish(w, error_r);
	if (st == MV_OK && xmlTextWriterFlush(w->x) < 0)
		st = xml_failed(w, error_r);
	xmlFreeTextWriter(w->x);
	w->x = NULL;
	mv_edrm_abort(wp);
	return st;
}

void mv_edrm_abort(mv_edrm_writer **wp)
{
	if (wp == NULL || *wp == NULL)
		return;
	mv_edrm_writer *w = *wp;
	*wp = NULL;
	if (w->x != NULL)
		xmlFreeTextWriter(w->x);
	if (w->relations != NULL)
		fclose(w->relations);
	g_free(w->path);
	g_free(w);
}

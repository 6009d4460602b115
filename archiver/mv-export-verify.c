/* mv-export-verify: checking a case bundle against itself: SHA256SUMS (via
 * mv-bundle), the EDRM load file (schema, every file's size and hash) and
 * the manifest's counts.
 *
 * SECURITY: the bundle is untrusted input.  XML is parsed by libxml2
 * without network access, entity substitution or DTD loading. */
#include "mv-export.h"

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlschemas.h>
#include <string.h>

#include "mv-bundle.h"
#include "mv-edrm.h"

typedef struct {
	GHashTable *files;   /* name -> "size sha" */
	GBytes *manifest, *loadfile, *errors;
	gint64 files_checked, documents, attachments, error_entries, selected;
} checks_ctx;

static gboolean want(void *context, const char *name)
{
	(void)context;
	return strcmp(name, "manifest.xml") == 0 || strcmp(name, "loadfile.xml") == 0 ||
	       strcmp(name, "errors.xml") == 0;
}

/* documents/D/D.eml and documents/D/attachments/NAME */
static void classify(checks_ctx *c, const char *name)
{
	if (!g_str_has_prefix(name, "documents/"))
		return;
	char **p = g_strsplit(name + strlen("documents/"), "/", -1);
	guint n = g_strv_length(p);
	if (n == 2) {
		char *eml = g_strconcat(p[0], ".eml", NULL);
		if (strcmp(p[1], eml) == 0)
			c->documents++;
		g_free(eml);
	} else if (n == 3 && strcmp(p[1], "attachments") == 0) {
		c->attachments++;
	}
	g_strfreev(p);
}

static mv_status check_file(void *context, const char *name, GBytes *content, guint64 size,
                            const char *sha_hex, char **error_r)
{
	(void)error_r;
	checks_ctx *c = context;
	c->files_checked++;
	g_hash_table_insert(c->files, g_strdup(name),
	                    g_strdup_printf("%" G_GUINT64_FORMAT " %s", size, sha_hex));
	classify(c, name);
	GBytes **slot = strcmp(name, "manifest.xml") == 0   ? &c->manifest
	                : strcmp(name, "loadfile.xml") == 0 ? &c->loadfile
	                : strcmp(name, "errors.xml") == 0   ? &c->errors
	                                                    : NULL;
	if (slot != NULL && content != NULL)
		*slot = g_bytes_ref(content);
	return MV_OK;
}

static xmlDocPtr parse(GBytes *b, const char *name)
{
	gsize len = 0;
	const char *data = g_bytes_get_data(b, &len);
	if (len > G_MAXINT)
		return NULL;
	return xmlReadMemory(data, (int)len, name, NULL,
	                     XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING | XML_PARSE_HUGE);
}

static gint64 attr_int(xmlNodePtr n, const char *name, gboolean *ok)
{
	xmlChar *v = xmlGetProp(n, BAD_CAST name);
	gint64 out = -1;
	if (v != NULL) {
		char *end = NULL;
		out = g_ascii_strtoll((const char *)v, &end, 10);
		if (end == NULL || *end != '\0' || end == (char *)v)
			out = -1;
	}
	if (out < 0)
		*ok = FALSE;
	xmlFree(v);
	return out;
}

static xmlNodePtr child(xmlNodePtr n, const char *name)
{
	for (xmlNodePtr c = n != NULL ? n->children : NULL; c != NULL; c = c->next)
		if (c->type == XML_ELEMENT_NODE && xmlStrcmp(c->name, BAD_CAST name) == 0)
			return c;
	return NULL;
}

static mv_status check_manifest(checks_ctx *c, char **error_r)
{
	if (c->manifest == NULL)
		return mv_fail(error_r, MV_ERR_INTEGRITY, "manifest.xml: missing");
	xmlDocPtr doc = parse(c->manifest, "manifest.xml");
	xmlNodePtr root = doc != NULL ? xmlDocGetRootElement(doc) : NULL;
	xmlNodePtr counts = root != NULL && xmlStrcmp(root->name, BAD_CAST "Manifest") == 0
	                    ? child(root, "Counts") : NULL;
	mv_status st = MV_OK;
	gboolean ok = counts != NULL;
	gint64 files = 0, docs = 0, atts = 0, errs = 0;
	if (ok) {
		files = attr_int(counts, "files", &ok);
		docs = attr_int(counts, "documents", &ok);
		atts = attr_int(counts, "attachments", &ok);
		errs = attr_int(counts, "errors", &ok);
		c->selected = attr_int(counts, "selected", &ok);
	}
	if (!ok)
		st = mv_fail(error_r, MV_ERR_INTEGRITY, "manifest.xml: malformed (no Counts)");
	else if (files != c->files_checked)
		st = mv_fail(error_r, MV_ERR_INTEGRITY, "count mismatch: manifest.xml says %" G_GINT64_FORMAT
		             " files, SHA256SUMS lists %" G_GINT64_FORMAT, files, c->files_checked);
	else if (docs != c->documents)
		st = mv_fail(error_r, MV_ERR_INTEGRITY, "count mismatch: manifest.xml says %" G_GINT64_FORMAT
		             " documents, the bundle has %" G_GINT64_FORMAT " .eml files", docs, c->documents);
	else if (atts != c->attachments)
		st = mv_fail(error_r, MV_ERR_INTEGRITY, "count mismatch: manifest.xml says %" G_GINT64_FORMAT
		             " attachments, the bundle has %" G_GINT64_FORMAT, atts, c->attachments);
	else if (errs != c->error_entries)
		st = mv_fail(error_r, MV_ERR_INTEGRITY, "count mismatch: manifest.xml says %" G_GINT64_FORMAT
		             " errors, errors.xml lists %" G_GINT64_FORMAT, errs, c->error_entries);
	else if (c->selected < docs + errs)
		st = mv_fail(error_r, MV_ERR_INTEGRITY, "count mismatch: manifest.xml says %" G_GINT64_FORMAT
		             " messages selected but the part holds %" G_GINT64_FORMAT,
		             c->selected, docs + errs);
	xmlFreeDoc(doc);
	return st;
}

static mv_status check_errors(checks_ctx *c, char **error_r)
{
	if (c->errors == NULL)
		return mv_fail(error_r, MV_ERR_INTEGRITY, "errors.xml: missing");
	xmlDocPtr doc = parse(c->errors, "errors.xml");
	xmlNodePtr root = doc != NULL ? xmlDocGetRootElement(doc) : NULL;
	if (root == NULL || xmlStrcmp(root->name, BAD_CAST "Errors") != 0) {
		xmlFreeDoc(doc);
		return mv_fail(error_r, MV_ERR_INTEGRITY, "errors.xml: malformed");
	}
	for (xmlNodePtr n = root->children; n != NULL; n = n->next)
		if (n->type == XML_ELEMENT_NODE && xmlStrcmp(n->name, BAD_CAST "Error") == 0)
			c->error_entries++;
	xmlFreeDoc(doc);
	return MV_OK;
}

static void silent(void *ctx, const char *msg, ...)
{
	(void)ctx;
	(void)msg;
}

static mv_status check_loadfile(checks_ctx *c, char **error_r)
{
	if (c->loadfile == NULL)
		return mv_fail(error_r, MV_ERR_INTEGRITY, "loadfile.xml: missing");
	xmlDocPtr doc = parse(c->loadfile, "loadfile.xml");
	if (doc == NULL)
		return mv_fail(error_r, MV_ERR_INTEGRITY, "loadfile.xml: not well-formed XML");
	xmlSchemaParserCtxtPtr pc = xmlSchemaNewMemParserCtxt(mv_edrm_xsd, (int)mv_edrm_xsd_len);
	xmlSchemaPtr schema = pc != NULL ? xmlSchemaParse(pc) : NULL;
	xmlSchemaValidCtxtPtr vc = schema != NULL ? xmlSchemaNewValidCtxt(schema) : NULL;
	mv_status st = MV_OK;
	if (vc == NULL) {
		st = mv_fail(error_r, MV_ERR_INTERNAL, "the compiled-in EDRM schema does not load");
	} else {
		xmlSchemaSetValidErrors(vc, silent, silent, NULL);
		if (xmlSchemaValidateDoc(vc, doc) != 0) {
			const xmlError *e = xmlGetLastError();
			st = mv_fail(error_r, MV_ERR_INTEGRITY, "loadfile.xml: not valid against edrm-1.2.xsd%s%s",
			             e != NULL && e->message != NULL ? ": " : "",
			             e != NULL && e->message != NULL ? g_strchomp(e->message) : "");
		}
	}
	xmlSchemaFreeValidCtxt(vc);
	xmlSchemaFree(schema);
	xmlSchemaFreeParserCtxt(pc);
	gint64 documents = 0;
	xmlNodePtr docs = child(child(xmlDocGetRootElement(doc), "Batch"), "Documents");
	for (xmlNodePtr d = docs != NULL ? docs->children : NULL; st == MV_OK && d != NULL; d = d->next) {
		if (d->type != XML_ELEMENT_NODE)
			continue;
		documents++;
		xmlNodePtr files = child(d, "Files");
		for (xmlNodePtr f = files != NULL ? files->children : NULL; st == MV_OK && f != NULL; f = f->next) {
			xmlNodePtr ef = f->type == XML_ELEMENT_NODE ? child(f, "ExternalFile") : NULL;
			if (ef == NULL)
				continue;
			xmlChar *path = xmlGetProp(ef, BAD_CAST "FilePath");
			xmlChar *name = xmlGetProp(ef, BAD_CAST "FileName");
			xmlChar *size = xmlGetProp(ef, BAD_CAST "FileSize");
			xmlChar *hash = xmlGetProp(ef, BAD_CAST "Hash");
			char *full = g_strdup_printf("%s%s%s", path != NULL ? (char *)path : "",
			                             path != NULL && *path != '\0' ? "/" : "",
			                             name != NULL ? (char *)name : "");
			char *want_v = g_strdup_printf("%s %s", size != NULL ? (char *)size : "",
			                               hash != NULL ? (char *)hash : "");
			const char *have = g_hash_table_lookup(c->files, full);
			if (have == NULL)
				st = mv_fail(error_r, MV_ERR_INTEGRITY, "%s: missing (named in loadfile.xml)", full);
			else if (strcmp(have, want_v) != 0)
				st = mv_fail(error_r, MV_ERR_INTEGRITY, "%s: size or SHA-256 differs from loadfile.xml",
				             full);
			g_free(full);
			g_free(want_v);
			xmlFree(path);
			xmlFree(name);
			xmlFree(size);
			xmlFree(hash);
		}
	}
	if (st == MV_OK && documents != c->documents + c->attachments)
		st = mv_fail(error_r, MV_ERR_INTEGRITY, "count mismatch: loadfile.xml has %" G_GINT64_FORMAT
		             " documents, the bundle %" G_GINT64_FORMAT " messages and attachments",
		             documents, c->documents + c->attachments);
	xmlFreeDoc(doc);
	return st;
}

static mv_status finish(void *context, char **error_r)
{
	checks_ctx *c = context;
	mv_status st = check_errors(c, error_r);
	if (st == MV_OK)
		st = check_manifest(c, error_r);
	if (st == MV_OK)
		st = check_loadfile(c, error_r);
	return st;
}

void mv_export_verify_report_clear(mv_export_verify_report *r)
{
	g_free(r->format);
	g_free(r->sums_sha256);
	*r = (mv_export_verify_report){0};
}

mv_status mv_export_verify(const char *path, mv_export_verify_report *report_r, char **error_r)
{
	*report_r = (mv_export_verify_report){0};
	checks_ctx c = {.files = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free)};
	mv_bundle_checks checks = {want, check_file, finish, &c};
	mv_bundle_report br;
	mv_status st = mv_bundle_verify(path, &checks, &br, error_r);
	report_r->files = br.files;
	report_r->bytes = br.bytes;
	report_r->documents = c.documents;
	report_r->attachments = c.attachments;
	report_r->errors = c.error_entries;
	report_r->selected = c.selected;
	report_r->format = g_strdup(mv_bundle_format_name(br.format));
	report_r->sums_sha256 = g_strdup(br.sums_sha256);
	if (c.manifest != NULL)
		g_bytes_unref(c.manifest);
	if (c.loadfile != NULL)
		g_bytes_unref(c.loadfile);
	if (c.errors != NULL)
		g_bytes_unref(c.errors);
	g_hash_table_destroy(c.files);
	return st;
}

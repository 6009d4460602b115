/* mv-export-verify: checking a case bundle against itself: the signature of
 * SHA256SUMS (mv-sign), SHA256SUMS (via mv-bundle), the EDRM load file
 * (schema, every file's size and hash), the manifest's counts and the
 * audit.xml chain excerpt.
 *
 * SECURITY: the bundle is untrusted input.  XML is parsed by libxml2
 * without network access, entity substitution or DTD loading. */
#include "mv-export.h"

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlschemas.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "mv-audit.h"
#include "mv-bundle.h"
#include "mv-edrm.h"
#include "mv-hash.h"
#include "mv-sign.h"

typedef struct {
	GHashTable *files;   /* name -> "size sha" */
	GBytes *manifest, *loadfile, *errors, *audit, *destroyed;
	gint64 files_checked, documents, attachments, error_entries, selected, destroyed_entries;
	gint64 audit_entries;
	gboolean audit_checked;
	gboolean is_signed;
	const char *want_signer;   /* fingerprint the signature must have, or NULL */
	mv_sig_result sig;
} checks_ctx;

static gboolean want(void *context, const char *name)
{
	(void)context;
	return strcmp(name, "manifest.xml") == 0 || strcmp(name, "loadfile.xml") == 0 ||
	       strcmp(name, "errors.xml") == 0 || strcmp(name, "audit.xml") == 0 ||
	       strcmp(name, "destroyed.xml") == 0;
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
	GBytes **slot = strcmp(name, "manifest.xml") == 0    ? &c->manifest
	                : strcmp(name, "loadfile.xml") == 0  ? &c->loadfile
	                : strcmp(name, "errors.xml") == 0    ? &c->errors
	                : strcmp(name, "audit.xml") == 0     ? &c->audit
	                : strcmp(name, "destroyed.xml") == 0 ? &c->destroyed
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
	gint64 files = 0, docs = 0, atts = 0, errs = 0, destroyed = -1;
	if (ok) {
		files = attr_int(counts, "files", &ok);
		docs = attr_int(counts, "documents", &ok);
		atts = attr_int(counts, "attachments", &ok);
		errs = attr_int(counts, "errors", &ok);
		c->selected = attr_int(counts, "selected", &ok);
		if (xmlHasProp(counts, BAD_CAST "destroyed") != NULL) /* bundles since destroyed.xml */
			destroyed = attr_int(counts, "destroyed", &ok);
	}
	xmlChar *claimed = root != NULL ? xmlGetProp(child(root, "Export"), BAD_CAST "signature") : NULL;
	if (!ok)
		st = mv_fail(error_r, MV_ERR_INTEGRITY, "manifest.xml: malformed (no Counts)");
	else if (claimed != NULL && !c->is_signed)
		st = mv_fail(error_r, MV_ERR_SIGNATURE, "%s: missing (manifest.xml says the bundle was signed)",
		             MV_BUNDLE_SIG);
	else if (destroyed >= 0 && c->destroyed == NULL)
		st = mv_fail(error_r, MV_ERR_INTEGRITY, "destroyed.xml: missing (manifest.xml counts it)");
	else if (destroyed >= 0 && destroyed != c->destroyed_entries)
		st = mv_fail(error_r, MV_ERR_INTEGRITY, "count mismatch: manifest.xml says %" G_GINT64_FORMAT
		             " destroyed records, destroyed.xml lists %" G_GINT64_FORMAT, destroyed,
		             c->destroyed_entries);
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
	xmlFree(claimed);
	xmlFreeDoc(doc);
	return st;
}

/* destroyed.xml (when there is one): its Record entries. */
static mv_status check_destroyed(checks_ctx *c, char **error_r)
{
	if (c->destroyed == NULL)
		return MV_OK;
	xmlDocPtr doc = parse(c->destroyed, "destroyed.xml");
	xmlNodePtr root = doc != NULL ? xmlDocGetRootElement(doc) : NULL;
	if (root == NULL || xmlStrcmp(root->name, BAD_CAST "Destroyed") != 0) {
		xmlFreeDoc(doc);
		return mv_fail(error_r, MV_ERR_INTEGRITY, "destroyed.xml: malformed");
	}
	for (xmlNodePtr n = root->children; n != NULL; n = n->next)
		if (n->type == XML_ELEMENT_NODE && xmlStrcmp(n->name, BAD_CAST "Record") == 0)
			c->destroyed_entries++;
	xmlFreeDoc(doc);
	return MV_OK;
}

/* An attribute as a new string (g_free), base64-decoded when b64; NULL
 * when missing or not decodable. */
static char *field(xmlNodePtr n, const char *name, gboolean b64)
{
	xmlChar *v = xmlGetProp(n, BAD_CAST name);
	if (v == NULL)
		return NULL;
	char *out = NULL;
	if (!b64) {
		out = g_strdup((const char *)v);
	} else {
		gsize len = 0;
		guchar *d = g_base64_decode((const char *)v, &len);
		if (d != NULL && memchr(d, '\0', len) == NULL)
			out = g_strndup((const char *)d, len);
		g_free(d);
	}
	xmlFree(v);
	return out;
}

/* audit.xml: every entry's hash recomputed from its fields and prev_hash
 * (mv_audit_entry_hash), entries in ascending order, and an entry that
 * directly follows another (seq + 1) linked to it.  An audit.xml of an
 * older mailvault (no prev_hash) is counted, not checked. */
static mv_status check_audit(checks_ctx *c, char **error_r)
{
	if (c->audit == NULL)
		return mv_fail(error_r, MV_ERR_INTEGRITY, "audit.xml: missing");
	xmlDocPtr doc = parse(c->audit, "audit.xml");
	xmlNodePtr root = doc != NULL ? xmlDocGetRootElement(doc) : NULL;
	if (root == NULL || xmlStrcmp(root->name, BAD_CAST "AuditTrail") != 0) {
		xmlFreeDoc(doc);
		return mv_fail(error_r, MV_ERR_INTEGRITY, "audit.xml: malformed");
	}
	gboolean checkable = xmlHasProp(root, BAD_CAST "hash_rules") != NULL;
	mv_status st = MV_OK;
	gint64 last_seq = 0;
	uint8_t last_hash[MV_SHA256_LEN] = {0};
	for (xmlNodePtr n = root->children; st == MV_OK && n != NULL; n = n->next) {
		if (n->type != XML_ELEMENT_NODE || xmlStrcmp(n->name, BAD_CAST "Entry") != 0)
			continue;
		c->audit_entries++;
		if (!checkable)
			continue;
		xmlChar *enc = xmlGetProp(n, BAD_CAST "encoding");
		gboolean b64 = enc != NULL && xmlStrcmp(enc, BAD_CAST "base64") == 0;
		gboolean bad_enc = enc != NULL && !b64;
		xmlFree(enc);
		char *seq = field(n, "seq", FALSE), *fmt = field(n, "format", FALSE);
		char *at = field(n, "at", b64), *actor = field(n, "actor", b64);
		char *action = field(n, "action", b64), *subject = field(n, "subject", b64);
		char *prev = field(n, "prev_hash", FALSE), *hash = field(n, "hash", FALSE);
		xmlChar *text = xmlNodeGetContent(n);
		char *details = NULL;
		if (text != NULL && !b64) {
			details = g_strdup((const char *)text);
		} else if (text != NULL) {
			gsize len = 0;
			guchar *d = g_base64_decode((const char *)text, &len);
			if (d != NULL && memchr(d, '\0', len) == NULL)
				details = g_strndup((const char *)d, len);
			g_free(d);
		}
		xmlFree(text);
		char *end = NULL;
		gint64 n_seq = seq != NULL ? g_ascii_strtoll(seq, &end, 10) : 0;
		int format = fmt != NULL ? (int)g_ascii_strtoll(fmt, NULL, 10) : 0;
		uint8_t p[MV_SHA256_LEN], h[MV_SHA256_LEN], computed[MV_SHA256_LEN];
		if (bad_enc || seq == NULL || end == NULL || *end != '\0' || n_seq <= 0 || at == NULL ||
		    actor == NULL || action == NULL || subject == NULL || details == NULL ||
		    prev == NULL || hash == NULL || mv_sha256_from_hex(prev, p) != 0 ||
		    mv_sha256_from_hex(hash, h) != 0)
			st = mv_fail(error_r, MV_ERR_INTEGRITY, "audit.xml: entry %s is malformed",
			             seq != NULL ? seq : "without a seq");
		else if (n_seq <= last_seq)
			st = mv_fail(error_r, MV_ERR_INTEGRITY, "audit.xml: entry %" G_GINT64_FORMAT
			             " is out of order (after entry %" G_GINT64_FORMAT ")", n_seq, last_seq);
		else if (!mv_audit_entry_hash(format, seq, at, actor, action, subject, details, p, computed))
			st = mv_fail(error_r, MV_ERR_INTEGRITY, "audit.xml: entry %" G_GINT64_FORMAT
			             " has a hash format (%d) this mailvault does not know", n_seq, format);
		else if (memcmp(computed, h, MV_SHA256_LEN) != 0)
			st = mv_fail(error_r, MV_ERR_INTEGRITY, "audit.xml: entry %" G_GINT64_FORMAT
			             " was altered: its fields and prev_hash do not give its hash", n_seq);
		else if (n_seq == last_seq + 1 && memcmp(p, last_hash, MV_SHA256_LEN) != 0)
			st = mv_fail(error_r, MV_ERR_INTEGRITY, "audit.xml: entry %" G_GINT64_FORMAT
			             " does not link to entry %" G_GINT64_FORMAT " (its prev_hash is not "
			             "that entry's hash)", n_seq, last_seq);
		else if (n_seq == 1 && memcmp(p, (uint8_t[MV_SHA256_LEN]){0}, MV_SHA256_LEN) != 0)
			st = mv_fail(error_r, MV_ERR_INTEGRITY, "audit.xml: entry 1 does not start the chain");
		if (st == MV_OK) {
			last_seq = n_seq;
			memcpy(last_hash, h, MV_SHA256_LEN);
		}
		g_free(seq);
		g_free(fmt);
		g_free(at);
		g_free(actor);
		g_free(action);
		g_free(subject);
		g_free(prev);
		g_free(hash);
		g_free(details);
	}
	c->audit_checked = checkable && st == MV_OK;
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
		st = check_destroyed(c, error_r);
	if (st == MV_OK)
		st = check_manifest(c, error_r);
	if (st == MV_OK)
		st = check_loadfile(c, error_r);
	if (st == MV_OK)
		st = check_audit(c, error_r);
	return st;
}

/* Fingerprints compared without spaces, in any case. */
static gboolean same_fpr(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return FALSE;
	for (;;) {
		while (*a == ' ')
			a++;
		while (*b == ' ')
			b++;
		if (*a == '\0' || *b == '\0')
			return *a == *b;
		if (g_ascii_tolower(*a) != g_ascii_tolower(*b))
			return FALSE;
		a++;
		b++;
	}
}

static mv_status check_signature(void *context, GBytes *sums, GBytes *signature, char **error_r)
{
	checks_ctx *c = context;
	c->is_signed = TRUE;
	mv_status st = mv_sign_verify(sums, signature, &c->sig, error_r);
	if (st != MV_OK)
		return st;
	const char *who = c->sig.fpr != NULL ? c->sig.fpr : "an unknown key";
	switch (c->sig.state) {
	case MV_SIG_BAD:
		return mv_fail(error_r, MV_ERR_SIGNATURE, "%s: BAD signature by %s: %s", MV_BUNDLE_SIG, who,
		               c->sig.detail != NULL ? c->sig.detail : "it does not check out");
	case MV_SIG_NO_PUBKEY:
		/* The other checks still run; the result is an error all the same. */
		return MV_OK;
	case MV_SIG_GOOD:
		break;
	}
	if (c->want_signer != NULL && !same_fpr(c->want_signer, c->sig.fpr) &&
	    !same_fpr(c->want_signer, c->sig.sig_fpr))
		return mv_fail(error_r, MV_ERR_SIGNATURE, "%s: signed by %s, not by %s", MV_BUNDLE_SIG, who,
		               c->want_signer);
	return MV_OK;
}

void mv_export_verify_report_clear(mv_export_verify_report *r)
{
	g_free(r->format);
	g_free(r->sums_sha256);
	g_free(r->folder);
	g_free(r->signature);
	g_free(r->signer);
	g_free(r->signer_uid);
	g_free(r->signer_validity);
	*r = (mv_export_verify_report){0};
}

mv_status mv_export_verify(const char *path, mv_export_verify_report *report_r, char **error_r)
{
	return mv_export_verify_signed(path, NULL, report_r, error_r);
}

static mv_status verify_clear(const char *path, const char *signer,
                              mv_export_verify_report *report_r, char **error_r);

/* An encrypted bundle: decrypt it into a private temporary directory,
 * check what comes out, remove it. */
static mv_status verify_encrypted(const char *path, const char *signer,
                                  mv_export_verify_report *report_r, char **error_r)
{
	*report_r = (mv_export_verify_report){0};
	GError *gerr = NULL;
	char *dir = g_dir_make_tmp("mailvault-verify-XXXXXX", &gerr);
	if (dir == NULL) {
		mv_status st = mv_fail(error_r, MV_ERR_IO, "cannot create a temporary directory: %s",
		                       gerr->message);
		g_error_free(gerr);
		return st;
	}
	char *clear = g_build_filename(dir, "bundle", NULL);
	mv_status st = MV_OK;
	int fd = open(clear, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		st = mv_fail(error_r, MV_ERR_IO, "cannot create %s: %s", clear, g_strerror(errno));
	if (st == MV_OK)
		st = mv_decrypt_file(path, fd, error_r);
	if (fd >= 0 && close(fd) != 0 && st == MV_OK)
		st = mv_fail(error_r, MV_ERR_IO, "cannot write %s: %s", clear, g_strerror(errno));
	if (st == MV_OK) {
		st = verify_clear(clear, signer, report_r, error_r);
		/* Name the file the user gave, not the temporary one. */
		if (st != MV_OK && error_r != NULL && *error_r != NULL) {
			char **pieces = g_strsplit(*error_r, clear, -1);
			g_free(*error_r);
			*error_r = g_strjoinv(path, pieces);
			g_strfreev(pieces);
		}
	}
	report_r->encrypted = TRUE;
	unlink(clear);
	rmdir(dir);
	g_free(clear);
	g_free(dir);
	return st;
}

mv_status mv_export_verify_signed(const char *path, const char *signer,
                                  mv_export_verify_report *report_r, char **error_r)
{
	if (g_str_has_suffix(path, ".gpg") && g_file_test(path, G_FILE_TEST_IS_REGULAR))
		return verify_encrypted(path, signer, report_r, error_r);
	return verify_clear(path, signer, report_r, error_r);
}

static mv_status verify_clear(const char *path, const char *signer,
                              mv_export_verify_report *report_r, char **error_r)
{
	*report_r = (mv_export_verify_report){0};
	checks_ctx c = {.files = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free),
	                .want_signer = signer};
	mv_bundle_checks checks = {want, check_file, finish, &c, check_signature};
	mv_bundle_report br;
	mv_status st = mv_bundle_verify(path, &checks, &br, error_r);
	if (st == MV_OK && c.is_signed && c.sig.state == MV_SIG_NO_PUBKEY)
		st = mv_fail(error_r, MV_ERR_CONFIG, "%s: signed by key %s, whose public key is not in the "
		             "GnuPG keyring (%s): import it (gpg --import) and verify again; everything "
		             "else checks out", MV_BUNDLE_SIG, c.sig.fpr != NULL ? c.sig.fpr : "(unknown)",
		             g_getenv("GNUPGHOME") != NULL ? "GNUPGHOME" : "~/.gnupg");
	if (st == MV_OK && signer != NULL && !c.is_signed)
		st = mv_fail(error_r, MV_ERR_SIGNATURE, "the bundle is not signed (no %s); %s was expected "
		             "to sign it", MV_BUNDLE_SIG, signer);
	report_r->files = br.files;
	report_r->bytes = br.bytes;
	report_r->documents = c.documents;
	report_r->attachments = c.attachments;
	report_r->errors = c.error_entries;
	report_r->selected = c.selected;
	report_r->format = g_strdup(mv_bundle_format_name(br.format));
	report_r->sums_sha256 = g_strdup(br.sums_sha256);
	report_r->folder = g_strdup(br.folder);
	report_r->destroyed = c.destroyed_entries;
	report_r->audit_entries = c.audit_entries;
	report_r->audit_checked = c.audit_checked;
	report_r->signature = g_strdup(!c.is_signed                        ? "none"
	                               : c.sig.state == MV_SIG_GOOD      ? "good"
	                               : c.sig.state == MV_SIG_NO_PUBKEY ? "no-public-key"
	                                                                 : "bad");
	report_r->signer = g_strdup(c.sig.fpr);
	report_r->signer_uid = g_strdup(c.sig.uid);
	report_r->signer_validity = g_strdup(c.sig.validity);
	mv_sig_result_clear(&c.sig);
	if (c.audit != NULL)
		g_bytes_unref(c.audit);
	if (c.destroyed != NULL)
		g_bytes_unref(c.destroyed);
	if (c.manifest != NULL)
		g_bytes_unref(c.manifest);
	if (c.loadfile != NULL)
		g_bytes_unref(c.loadfile);
	if (c.errors != NULL)
		g_bytes_unref(c.errors);
	g_hash_table_destroy(c.files);
	return st;
}

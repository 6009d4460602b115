/* mv-bundle: writing a bundle's files into a directory, zip or tar, with
 * SHA256SUMS; verifying a bundle.
 *
 * SECURITY: mv_bundle_verify reads bundles from anywhere (they travel to
 * auditors and back): entry names are untrusted, nothing is extracted, and
 * a name that is absolute, holds "..", or is otherwise unsafe is reported,
 * never followed. */
#include "mv-bundle.h"

#include <archive.h>
#include <archive_entry.h>
#include <unzip.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mv-safename.h"

#define CHUNK (256 * 1024)

struct mv_bundle_writer {
	mv_bundle_format format;
	char *path;
	gint64 mtime;
	struct archive *ar;   /* zip, tar */
	FILE *sums;           /* SHA256SUMS lines so far (temporary file) */
	GHashTable *dirs;     /* directories made (dir format) */
	char *folder;         /* top-level folder of zip and tar entries, or NULL */
	mv_bundle_sign_fn sign;
	void *sign_context;
	guint64 bytes, files;
	gboolean broken;      /* a write failed: the container is unusable */
};

gboolean mv_bundle_format_parse(const char *name, mv_bundle_format *format_r)
{
	if (g_strcmp0(name, "dir") == 0)
		*format_r = MV_BUNDLE_DIR;
	else if (g_strcmp0(name, "zip") == 0)
		*format_r = MV_BUNDLE_ZIP;
	else if (g_strcmp0(name, "tar") == 0)
		*format_r = MV_BUNDLE_TAR;
	else
		return FALSE;
	return TRUE;
}

const char *mv_bundle_format_name(mv_bundle_format format)
{
	switch (format) {
	case MV_BUNDLE_DIR: return "dir";
	case MV_BUNDLE_ZIP: return "zip";
	case MV_BUNDLE_TAR: return "tar";
	}
	return "?";
}

/* Every component of a '/'-separated relative name is a safe name. */
static gboolean safe_path(const char *name)
{
	if (name == NULL || *name == '\0' || strlen(name) > 4096)
		return FALSE;
	char **parts = g_strsplit(name, "/", -1);
	gboolean ok = TRUE;
	for (char **p = parts; ok && *p != NULL; p++)
		ok = mv_safename_is_safe(*p, MV_SAFENAME_MAX_BYTES);
	g_strfreev(parts);
	return ok;
}

mv_status mv_bundle_writer_open(const char *path, mv_bundle_format format, gint64 mtime,
                                const char *folder, mv_bundle_writer **writer_r, char **error_r)
{
	*writer_r = NULL;
	struct stat st;
	if (lstat(path, &st) == 0)
		return mv_fail(error_r, MV_ERR_USAGE, "%s exists already; a bundle is written to a new path",
		               path);
	if (format != MV_BUNDLE_DIR && folder != NULL &&
	    !mv_safename_is_safe(folder, MV_BUNDLE_FOLDER_MAX))
		return mv_fail(error_r, MV_ERR_INTERNAL, "unsafe bundle folder name '%s'", folder);
	mv_bundle_writer *w = g_new0(mv_bundle_writer, 1);
	w->format = format;
	w->path = g_strdup(path);
	w->mtime = mtime;
	w->folder = format != MV_BUNDLE_DIR ? g_strdup(folder) : NULL;
	w->sums = tmpfile();
	if (w->sums == NULL) {
		mv_status s = mv_fail(error_r, MV_ERR_IO, "cannot create a temporary file: %s",
		                      g_strerror(errno));
		g_free(w->folder);
		g_free(w->path);
		g_free(w);
		return s;
	}
	if (format == MV_BUNDLE_DIR) {
		if (mkdir(path, 0755) != 0) {
			mv_status s = mv_fail(error_r, MV_ERR_IO, "cannot create %s: %s", path,
			                      g_strerror(errno));
			fclose(w->sums);
			g_free(w->folder);
			g_free(w->path);
			g_free(w);
			return s;
		}
		w->dirs = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	} else {
		w->ar = archive_write_new();
		int r = format == MV_BUNDLE_ZIP ? archive_write_set_format_zip(w->ar)
		                                : archive_write_set_format_pax_restricted(w->ar);
		if (r == ARCHIVE_OK && format == MV_BUNDLE_ZIP)
			r = archive_write_set_options(w->ar, "zip:hdrcharset=UTF-8");
		if (r == ARCHIVE_OK && format == MV_BUNDLE_TAR)
			r = archive_write_set_bytes_in_last_block(w->ar, 1);
		if (r == ARCHIVE_OK)
			r = archive_write_open_filename(w->ar, path);
		if (r != ARCHIVE_OK) {
			mv_status s = mv_fail(error_r, MV_ERR_IO, "cannot create %s: %s", path,
			                      archive_error_string(w->ar));
			archive_write_free(w->ar);
			fclose(w->sums);
			g_free(w->folder);
			g_free(w->path);
			g_free(w);
			return s;
		}
	}
	*writer_r = w;
	return MV_OK;
}

void mv_bundle_writer_set_signer(mv_bundle_writer *w, mv_bundle_sign_fn sign, void *context)
{
	w->sign = sign;
	w->sign_context = context;
}

/* Directory format: make the parents of name under the root. */
static mv_status make_parents(mv_bundle_writer *w, const char *name, char **error_r)
{
	const char *slash = name;
	while ((slash = strchr(slash, '/')) != NULL) {
		char *dir = g_strndup(name, (gsize)(slash - name));
		if (!g_hash_table_contains(w->dirs, dir)) {
			char *full = g_build_filename(w->path, dir, NULL);
			if (mkdir(full, 0755) != 0 && errno != EEXIST) {
				mv_status s = mv_fail(error_r, MV_ERR_IO, "cannot create %s: %s", full,
				                      g_strerror(errno));
				g_free(full);
				g_free(dir);
				return s;
			}
			g_free(full);
			g_hash_table_add(w->dirs, dir);
		} else {
			g_free(dir);
		}
		slash++;
	}
	return MV_OK;
}

static gboolean write_fd(int fd, const guint8 *p, gsize n)
{
	while (n > 0) {
		ssize_t k = write(fd, p, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return FALSE;
		p += k;
		n -= (gsize)k;
	}
	return TRUE;
}

/* One file being added: where it goes and its running hash. */
typedef struct {
	mv_bundle_writer *w;
	const char *name;
	int fd;              /* dir format */
	mv_sha256_ctx *sha;
	guint64 size;
} adding;

/* Start a file, whatever its name (SHA256SUMS and its signature too). */
static mv_status begin_file(mv_bundle_writer *w, const char *name, guint64 size, adding *a,
                            char **error_r)
{
	*a = (adding){.w = w, .name = name, .fd = -1};
	if (w->broken)
		return mv_fail(error_r, MV_ERR_IO, "%s: an earlier write failed", w->path);
	if (w->format == MV_BUNDLE_DIR) {
		mv_status s = make_parents(w, name, error_r);
		if (s != MV_OK)
			return s;
		char *full = g_build_filename(w->path, name, NULL);
		a->fd = open(full, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
		if (a->fd < 0) {
			s = mv_fail(error_r, MV_ERR_IO, "cannot create %s: %s", full, g_strerror(errno));
			g_free(full);
			return s;
		}
		g_free(full);
	} else {
		struct archive_entry *e = archive_entry_new();
		char *full = w->folder != NULL ? g_strconcat(w->folder, "/", name, NULL) : g_strdup(name);
		archive_entry_set_pathname_utf8(e, full);
		g_free(full);
		archive_entry_set_size(e, (la_int64_t)size);
		archive_entry_set_filetype(e, AE_IFREG);
		archive_entry_set_perm(e, 0644);
		archive_entry_set_mtime(e, (time_t)w->mtime, 0);
		int r = archive_write_header(w->ar, e);
		archive_entry_free(e);
		if (r != ARCHIVE_OK) {
			w->broken = r == ARCHIVE_FATAL;
			return mv_fail(error_r, MV_ERR_IO, "%s: cannot add %s: %s", w->path, name,
			               archive_error_string(w->ar));
		}
	}
	a->sha = mv_sha256_new();
	return MV_OK;
}

static mv_status add_begin(mv_bundle_writer *w, const char *name, guint64 size, adding *a,
                           char **error_r)
{
	*a = (adding){.w = w, .name = name, .fd = -1};
	if (!safe_path(name) || strcmp(name, MV_BUNDLE_SUMS) == 0 || strcmp(name, MV_BUNDLE_SIG) == 0)
		return mv_fail(error_r, MV_ERR_INTERNAL, "unsafe bundle file name '%s'", name);
	return begin_file(w, name, size, a, error_r);
}

static mv_status add_data(adding *a, const void *data, gsize len, char **error_r)
{
	mv_bundle_writer *w = a->w;
	if (len == 0)
		return MV_OK;
	mv_sha256_update(a->sha, data, len);
	a->size += len;
	if (w->format == MV_BUNDLE_DIR) {
		if (!write_fd(a->fd, data, len)) {
			w->broken = TRUE;
			return mv_fail(error_r, MV_ERR_IO, "cannot write %s/%s: %s", w->path, a->name,
			               g_strerror(errno));
		}
		return MV_OK;
	}
	la_ssize_t k = archive_write_data(w->ar, data, len);
	if (k < 0 || (gsize)k != len) {
		w->broken = TRUE;
		return mv_fail(error_r, MV_ERR_IO, "%s: cannot write %s: %s", w->path, a->name,
		               archive_error_string(w->ar));
	}
	return MV_OK;
}

/* Finish the file; listed: add its line to SHA256SUMS (every file but
 * SHA256SUMS itself). */
static mv_status add_end(adding *a, mv_status st, gboolean listed,
                         char sha_hex_r[MV_SHA256_HEX_LEN + 1], char **error_r)
{
	mv_bundle_writer *w = a->w;
	uint8_t sha[MV_SHA256_LEN] = {0};
	char hex[MV_SHA256_HEX_LEN + 1];
	if (a->sha != NULL)
		mv_sha256_finish(&a->sha, sha);
	mv_sha256_to_hex(sha, hex);
	if (a->fd >= 0) {
		if (close(a->fd) != 0 && st == MV_OK) {
			w->broken = TRUE;
			st = mv_fail(error_r, MV_ERR_IO, "cannot write %s/%s: %s", w->path, a->name,
			             g_strerror(errno));
		}
		a->fd = -1;
	} else if (w->ar != NULL && st == MV_OK && archive_write_finish_entry(w->ar) != ARCHIVE_OK) {
		w->broken = TRUE;
		st = mv_fail(error_r, MV_ERR_IO, "%s: cannot write %s: %s", w->path, a->name,
		             archive_error_string(w->ar));
	}
	if (st != MV_OK)
		return st;
	if (listed && fprintf(w->sums, "%s  %s\n", hex, a->name) < 0)
		return mv_fail(error_r, MV_ERR_IO, "cannot write a temporary file: %s", g_strerror(errno));
	w->bytes += a->size;
	w->files++;
	if (sha_hex_r != NULL)
		memcpy(sha_hex_r, hex, sizeof hex);
	return MV_OK;
}

mv_status mv_bundle_add(mv_bundle_writer *w, const char *name, const void *data, gsize len,
                        char sha_hex_r[MV_SHA256_HEX_LEN + 1], char **error_r)
{
	adding a;
	mv_status st = add_begin(w, name, len, &a, error_r);
	if (st != MV_OK)
		return st;
	st = add_data(&a, data, len, error_r);
	return add_end(&a, st, TRUE, sha_hex_r, error_r);
}

static mv_status add_stream(mv_bundle_writer *w, const char *name, FILE *src, const char *what,
                            gint64 *size_r, char sha_hex_r[MV_SHA256_HEX_LEN + 1],
                            char **error_r)
{
	struct stat stt;
	if (fstat(fileno(src), &stt) != 0)
		return mv_fail(error_r, MV_ERR_IO, "cannot read %s: %s", what, g_strerror(errno));
	adding a;
	mv_status st = add_begin(w, name, (guint64)stt.st_size, &a, error_r);
	if (st != MV_OK)
		return st;
	guint8 *buf = g_malloc(CHUNK);
	size_t n;
	while (st == MV_OK && a.size < (guint64)stt.st_size && (n = fread(buf, 1, CHUNK, src)) > 0)
		st = add_data(&a, buf, MIN((guint64)n, (guint64)stt.st_size - a.size), error_r);
	if (st == MV_OK && (ferror(src) || a.size != (guint64)stt.st_size))
		st = mv_fail(error_r, MV_ERR_IO, "cannot read %s: %s", what,
		             ferror(src) ? g_strerror(errno) : "it changed while being read");
	g_free(buf);
	if (size_r != NULL)
		*size_r = (gint64)a.size;
	return add_end(&a, st, TRUE, sha_hex_r, error_r);
}

mv_status mv_bundle_add_file(mv_bundle_writer *w, const char *name, const char *src_path,
                             gint64 *size_r, char sha_hex_r[MV_SHA256_HEX_LEN + 1],
                             char **error_r)
{
	FILE *f = fopen(src_path, "rb");
	if (f == NULL)
		return mv_fail(error_r, MV_ERR_IO, "cannot open %s: %s", src_path, g_strerror(errno));
	mv_status st = add_stream(w, name, f, src_path, size_r, sha_hex_r, error_r);
	fclose(f);
	return st;
}

guint64 mv_bundle_content_bytes(const mv_bundle_writer *w)
{
	return w->bytes;
}

guint64 mv_bundle_file_count(const mv_bundle_writer *w)
{
	return w->files;
}

static void writer_free(mv_bundle_writer *w)
{
	if (w->ar != NULL)
		archive_write_free(w->ar);
	if (w->sums != NULL)
		fclose(w->sums);
	if (w->dirs != NULL)
		g_hash_table_destroy(w->dirs);
	g_free(w->folder);
	g_free(w->path);
	g_free(w);
}

/* The signature of SHA256SUMS (the temporary file sums), as the file
 * SHA256SUMS.asc: not listed. */
static mv_status add_signature(mv_bundle_writer *w, FILE *sums, char **error_r)
{
	GBytes *sig = NULL;
	if (lseek(fileno(sums), 0, SEEK_SET) != 0)
		return mv_fail(error_r, MV_ERR_IO, "cannot read back a temporary file: %s", g_strerror(errno));
	mv_status st = w->sign(w->sign_context, fileno(sums), &sig, error_r);
	if (st != MV_OK)
		return st;
	gsize len = 0;
	const void *data = g_bytes_get_data(sig, &len);
	adding a;
	st = begin_file(w, MV_BUNDLE_SIG, len, &a, error_r);
	if (st == MV_OK) {
		st = add_data(&a, data, len, error_r);
		st = add_end(&a, st, FALSE, NULL, error_r);
	}
	g_bytes_unref(sig);
	return st;
}

mv_status mv_bundle_writer_close(mv_bundle_writer **wp, char sums_hex_r[MV_SHA256_HEX_LEN + 1],
                                 char **error_r)
{
	mv_bundle_writer *w = *wp;
	*wp = NULL;
	mv_status st = MV_OK;
	if (fflush(w->sums) != 0 || fseek(w->sums, 0, SEEK_SET) != 0)
		st = mv_fail(error_r, MV_ERR_IO, "cannot read back a temporary file: %s", g_strerror(errno));
	/* SHA256SUMS itself is not listed in SHA256SUMS.  add_begin refuses
	 * that name from callers, so it is begun here. */
	FILE *sums = w->sums;
	w->sums = NULL;
	struct stat stt;
	adding a = {.w = w, .name = MV_BUNDLE_SUMS, .fd = -1};
	if (st == MV_OK && fstat(fileno(sums), &stt) != 0)
		st = mv_fail(error_r, MV_ERR_IO, "cannot read a temporary file: %s", g_strerror(errno));
	if (st == MV_OK)
		st = begin_file(w, MV_BUNDLE_SUMS, (guint64)stt.st_size, &a, error_r);
	if (st == MV_OK) {
		guint8 *buf = g_malloc(CHUNK);
		size_t n;
		while (st == MV_OK && (n = fread(buf, 1, CHUNK, sums)) > 0)
			st = add_data(&a, buf, n, error_r);
		if (st == MV_OK && ferror(sums))
			st = mv_fail(error_r, MV_ERR_IO, "cannot read a temporary file: %s", g_strerror(errno));
		g_free(buf);
	}
	st = add_end(&a, st, FALSE, sums_hex_r, error_r);
	if (st == MV_OK && w->sign != NULL)
		st = add_signature(w, sums, error_r);
	fclose(sums);
	if (w->ar != NULL) {
		if (archive_write_close(w->ar) != ARCHIVE_OK && st == MV_OK)
			st = mv_fail(error_r, MV_ERR_IO, "cannot finish %s: %s", w->path,
			             archive_error_string(w->ar));
	}
	writer_free(w);
	return st;
}

void mv_bundle_writer_abort(mv_bundle_writer **wp)
{
	if (wp == NULL || *wp == NULL)
		return;
	mv_bundle_writer *w = *wp;
	*wp = NULL;
	if (w->ar != NULL)
		archive_write_close(w->ar);
	writer_free(w);
}

/* ---- verifying ---- */

typedef struct {
	char hex[MV_SHA256_HEX_LEN + 1];
	guint64 size;
	GBytes *content; /* kept for checks, or NULL */
	gboolean oversize; /* a signature file too large to be one */
} found_file;

static void found_free(gpointer p)
{
	found_file *f = p;
	if (f->content != NULL)
		g_bytes_unref(f->content);
	g_free(f);
}

typedef struct {
	const mv_bundle_checks *checks;
	GHashTable *found; /* name -> found_file */
	GBytes *sums;
} scan;

/* Hash one file's content from a read function. */
typedef la_ssize_t (*read_fn)(void *src, void *buf, size_t len);

/* Is name (or name without a top-level folder) one whose content is
 * kept?  Which folder a zip or tar uses is known only once every entry is
 * read, so both are asked. */
static gboolean keep_content(scan *s, const char *name, gboolean *is_sig_r)
{
	const char *slash = strchr(name, '/');
	const char *names[] = {name, slash != NULL ? slash + 1 : NULL};
	*is_sig_r = FALSE;
	gboolean keep = FALSE;
	for (gsize i = 0; i < G_N_ELEMENTS(names) && names[i] != NULL; i++) {
		if (strcmp(names[i], MV_BUNDLE_SIG) == 0)
			*is_sig_r = keep = TRUE;
		else if (strcmp(names[i], MV_BUNDLE_SUMS) == 0 ||
		         (s->checks != NULL && s->checks->want_content != NULL &&
		          s->checks->want_content(s->checks->context, names[i])))
			keep = TRUE;
	}
	return keep;
}

static mv_status hash_entry(scan *s, const char *name, read_fn rd, void *src, char **error_r)
{
	if (g_hash_table_contains(s->found, name))
		return mv_fail(error_r, MV_ERR_INTEGRITY, "%s: appears twice in the bundle", name);
	gboolean is_sig = FALSE;
	gboolean keep = keep_content(s, name, &is_sig);
	GByteArray *content = keep ? g_byte_array_new() : NULL;
	mv_sha256_ctx *ctx = mv_sha256_new();
	guint8 *buf = g_malloc(CHUNK);
	found_file *f = g_new0(found_file, 1);
	la_ssize_t n;
	while ((n = rd(src, buf, CHUNK)) > 0) {
		mv_sha256_update(ctx, buf, (size_t)n);
		f->size += (guint64)n;
		if (content != NULL && is_sig && f->size > MV_BUNDLE_SIG_MAX) {
			g_byte_array_unref(content);
			content = NULL;
			f->oversize = TRUE;
		}
		if (content != NULL)
			g_byte_array_append(content, buf, (guint)n);
	}
	g_free(buf);
	uint8_t sha[MV_SHA256_LEN];
	mv_sha256_finish(&ctx, sha);
	mv_sha256_to_hex(sha, f->hex);
	if (content != NULL)
		f->content = g_byte_array_free_to_bytes(content);
	if (n < 0) {
		found_free(f);
		return mv_fail(error_r, MV_ERR_INTEGRITY, "%s: cannot be read (damaged)", name);
	}
	g_hash_table_insert(s->found, g_strdup(name), f);
	return MV_OK;
}

static la_ssize_t read_archive(void *src, void *buf, size_t len)
{
	return archive_read_data(src, buf, len);
}

static la_ssize_t read_fd(void *src, void *buf, size_t len)
{
	int fd = *(int *)src;
	for (;;) {
		ssize_t n = read(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		return n;
	}
}

static mv_status scan_dir(scan *s, const char *root, const char *rel, guint depth, char **error_r)
{
	char *dirpath = rel != NULL ? g_build_filename(root, rel, NULL) : g_strdup(root);
	DIR *d = opendir(dirpath);
	if (d == NULL) {
		mv_status st = mv_fail(error_r, MV_ERR_IO, "cannot read %s: %s", dirpath, g_strerror(errno));
		g_free(dirpath);
		return st;
	}
	GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
	struct dirent *de;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			g_ptr_array_add(names, g_strdup(de->d_name));
	closedir(d);
	mv_status st = MV_OK;
	for (guint i = 0; st == MV_OK && i < names->len; i++) {
		const char *n = names->pdata[i];
		char *r = rel != NULL ? g_strconcat(rel, "/", n, NULL) : g_strdup(n);
		char *full = g_build_filename(dirpath, n, NULL);
		struct stat stt;
		if (lstat(full, &stt) != 0) {
			st = mv_fail(error_r, MV_ERR_IO, "cannot read %s: %s", full, g_strerror(errno));
		} else if (S_ISDIR(stt.st_mode)) {
			if (depth > 32)
				st = mv_fail(error_r, MV_ERR_INTEGRITY, "%s: directories nested too deep", r);
			else
				st = scan_dir(s, root, r, depth + 1, error_r);
		} else if (!S_ISREG(stt.st_mode)) {
			st = mv_fail(error_r, MV_ERR_INTEGRITY, "%s: not a regular file (extra file)", r);
		} else {
			int fd = open(full, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
			if (fd < 0) {
				st = mv_fail(error_r, MV_ERR_IO, "cannot read %s: %s", full, g_strerror(errno));
			} else {
				st = hash_entry(s, r, read_fd, &fd, error_r);
				close(fd);
			}
		}
		g_free(full);
		g_free(r);
	}
	g_ptr_array_unref(names);
	g_free(dirpath);
	return st;
}

/* One entry as a reader of the archive sees it. */
typedef struct {
	char *name;
	guint64 size; /* bytes read */
} entry_seen;

static void entry_seen_free(gpointer p)
{
	entry_seen *e = p;
	g_free(e->name);
	g_free(e);
}

/* A zip read the way `unzip -l`/`sha256sum` after `unzip` see it is read
 * through its central directory (zip_seekable); a streaming reader sees
 * the local headers.  An attacker can make them differ (a name changed in
 * the central directory only, a CRC in one of them), so a zip is read
 * both ways, every entry's data in full (libarchive checks each CRC), and
 * the two lists must agree. */
static mv_status zip_local_entries(const char *path, GPtrArray *seen, char **error_r)
{
	struct archive *a = archive_read_new();
	archive_read_support_format_zip_streamable(a);
	archive_read_support_filter_none(a);
	mv_status st = MV_OK;
	if (archive_read_open_filename(a, path, CHUNK) != ARCHIVE_OK) {
		st = mv_fail(error_r, MV_ERR_INTEGRITY, "%s: local headers unreadable: %s", path,
		             archive_error_string(a));
		archive_read_free(a);
		return st;
	}
	guint8 *buf = g_malloc(CHUNK);
	struct archive_entry *e;
	int r;
	while (st == MV_OK && (r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
		const char *name = archive_entry_pathname_utf8(e);
		if (name == NULL)
			name = archive_entry_pathname(e);
		entry_seen *x = g_new0(entry_seen, 1);
		x->name = g_strdup(name != NULL ? name : "");
		la_ssize_t n;
		while ((n = archive_read_data(a, buf, CHUNK)) > 0)
			x->size += (guint64)n;
		g_ptr_array_add(seen, x);
		if (n < 0)
			st = mv_fail(error_r, MV_ERR_INTEGRITY, "%s: damaged in its local header or data: %s",
			             x->name, archive_error_string(a));
	}
	if (st == MV_OK && r != ARCHIVE_EOF)
		st = mv_fail(error_r, MV_ERR_INTEGRITY, "%s: damaged local headers: %s", path,
		             archive_error_string(a));
	g_free(buf);
	archive_read_free(a);
	return st;
}

/* The zip's central directory as unzip reads it (minizip): each record's
 * name and size, and its data read through it (minizip checks that the
 * local header agrees with the record, and the CRC the record holds).
 * Flags other than deflate options, a data descriptor and UTF-8 names
 * (encryption, patched data, ...), methods other than stored and deflate
 * and a version needed above 4.5 (zip64) are refused: mailvault writes none, and a reader may not
 * extract such an entry at all. */
#define ZIP_FLAGS_ALLOWED (0x0002 | 0x0004 | 0x0008 | 0x0800)
static mv_status zip_central_entries(const char *path, GPtrArray *seen, char **error_r)
{
	unzFile z = unzOpen64(path);
	if (z == NULL)
		return mv_fail(error_r, MV_ERR_INTEGRITY, "%s: its central directory cannot be read", path);
	mv_status st = MV_OK;
	char *buf = g_malloc(CHUNK);
	int r = unzGoToFirstFile(z);
	while (st == MV_OK && r == UNZ_OK) {
		unz_file_info64 info;
		char name[4096];
		if (unzGetCurrentFileInfo64(z, &info, name, sizeof name, NULL, 0, NULL, 0) != UNZ_OK ||
		    info.size_filename >= sizeof name) {
			st = mv_fail(error_r, MV_ERR_INTEGRITY, "%s: a damaged central directory record", path);
			break;
		}
		if ((info.flag & ~(uLong)ZIP_FLAGS_ALLOWED) != 0 ||
		    (info.compression_method != 0 && info.compression_method != Z_DEFLATED) ||
		    info.version_needed > 45) {
			st = mv_fail(error_r, MV_ERR_INTEGRITY,
			             "%s: flags 0x%lx, method %lu or version %lu in the central directory "
			             "(not written by mailvault; a reader may not extract it)",
			             name, (unsigned long)info.flag, (unsigned long)info.compression_method,
			             (unsigned long)info.version_needed);
			break;
		}
		guint64 n = 0;
		int rd = 0;
		if (unzOpenCurrentFile(z) != UNZ_OK) {
			st = mv_fail(error_r, MV_ERR_INTEGRITY,
			             "%s: its local header disagrees with the central directory", name);
			break;
		}
		while ((rd = unzReadCurrentFile(z, buf, CHUNK)) > 0)
			n += (guint64)rd;
		int closed = unzCloseCurrentFile(z);
		if (rd < 0 || closed != UNZ_OK || n != info.uncompressed_size) {
			st = mv_fail(error_r, MV_ERR_INTEGRITY,
			             "%s: its data does not match the central directory (size or CRC)", name);
			break;
		}
		entry_seen *x = g_new0(entry_seen, 1);
		x->name = g_strdup(name);
		x->size = info.uncompressed_size;
		g_ptr_array_add(seen, x);
		r = unzGoToNextFile(z);
	}
	if (st == MV_OK && r != UNZ_END_OF_LIST_OF_FILE)
		st = mv_fail(error_r, MV_ERR_INTEGRITY, "%s: a damaged central directory", path);
	g_free(buf);
	unzClose(z);
	return st;
}

/* Two views of a zip's entries must agree, entry by entry. */
static mv_status same_entries(GPtrArray *a, GPtrArray *b, const char *what, char **error_r)
{
	for (guint i = 0; i < MAX(a->len, b->len); i++) {
		entry_seen *x = i < a->len ? a->pdata[i] : NULL;
		entry_seen *y = i < b->len ? b->pdata[i] : NULL;
		if (x == NULL || y == NULL || strcmp(x->name, y->name) != 0 || x->size != y->size)
			return mv_fail(error_r, MV_ERR_INTEGRITY,
			               "the zip's %s disagree at entry %u (%s, %s)", what, i + 1,
			               x != NULL ? x->name : "nothing", y != NULL ? y->name : "nothing");
	}
	return MV_OK;
}

static mv_status scan_archive(scan *s, const char *path, mv_bundle_format *format_r,
                              char **error_r)
{
	struct archive *a = archive_read_new();
	archive_read_support_format_zip_seekable(a);
	archive_read_support_format_tar(a);
	archive_read_support_filter_none(a);
	mv_status st = MV_OK;
	if (archive_read_open_filename(a, path, CHUNK) != ARCHIVE_OK) {
		st = mv_fail(error_r, MV_ERR_INPUT, "%s is not a zip or tar bundle: %s", path,
		             archive_error_string(a));
		archive_read_free(a);
		return st;
	}
	GPtrArray *seen = g_ptr_array_new_with_free_func(entry_seen_free);
	struct archive_entry *e;
	int r;
	gboolean first = TRUE;
	while (st == MV_OK && (r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
		if (first) {
			*format_r = (archive_format(a) & ARCHIVE_FORMAT_BASE_MASK) == ARCHIVE_FORMAT_ZIP
			                    ? MV_BUNDLE_ZIP : MV_BUNDLE_TAR;
			first = FALSE;
		}
		const char *name = archive_entry_pathname_utf8(e);
		if (name == NULL)
			name = archive_entry_pathname(e);
		if (name == NULL) {
			st = mv_fail(error_r, MV_ERR_INTEGRITY, "an entry without a name");
			break;
		}
		/* mailvault writes regular files only: anything else (a
		 * directory, a link, a device) is an extra entry. */
		if (archive_entry_filetype(e) != AE_IFREG) {
			st = mv_fail(error_r, MV_ERR_INTEGRITY, "%s: not a regular file (extra entry)", name);
			break;
		}
		char *copy = g_strdup(name);
		st = hash_entry(s, copy, read_archive, a, error_r);
		if (st == MV_OK) {
			entry_seen *x = g_new0(entry_seen, 1);
			x->name = copy;
			x->size = ((found_file *)g_hash_table_lookup(s->found, copy))->size;
			g_ptr_array_add(seen, x);
		} else {
			g_free(copy);
		}
	}
	if (st == MV_OK && first && r != ARCHIVE_EOF)
		st = mv_fail(error_r, MV_ERR_INPUT, "%s is not a zip or tar bundle: %s", path,
		             archive_error_string(a));
	else if (st == MV_OK && r != ARCHIVE_EOF)
		st = mv_fail(error_r, MV_ERR_INTEGRITY, "%s: damaged archive: %s", path,
		             archive_error_string(a));
	archive_read_free(a);
	if (st == MV_OK && !first && *format_r == MV_BUNDLE_ZIP) {
		GPtrArray *local = g_ptr_array_new_with_free_func(entry_seen_free);
		GPtrArray *central = g_ptr_array_new_with_free_func(entry_seen_free);
		st = zip_local_entries(path, local, error_r);
		if (st == MV_OK)
			st = zip_central_entries(path, central, error_r);
		if (st == MV_OK)
			st = same_entries(central, local, "central directory and its local headers", error_r);
		if (st == MV_OK)
			st = same_entries(central, seen, "central directory and its contents", error_r);
		g_ptr_array_free(local, TRUE);
		g_ptr_array_free(central, TRUE);
	}
	g_ptr_array_free(seen, TRUE);
	return st;
}

static gint compare_str(gconstpointer a, gconstpointer b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Where SHA256SUMS is: at the top (a directory, or a flat zip or tar of an
 * older mailvault: names stay as they are), or in the one top-level folder
 * FOLDER that holds every file (FOLDER/ is taken off every name, and
 * folder_r receives FOLDER).  Anything beside that folder is extra. */
static mv_status strip_folder(scan *s, char folder_r[MV_BUNDLE_FOLDER_MAX + 1], char **error_r)
{
	folder_r[0] = '\0';
	if (g_hash_table_contains(s->found, MV_BUNDLE_SUMS))
		return MV_OK;
	char *folder = NULL;
	guint candidates = 0;
	GHashTableIter it;
	gpointer k;
	g_hash_table_iter_init(&it, s->found);
	while (g_hash_table_iter_next(&it, &k, NULL)) {
		const char *slash = strchr(k, '/');
		if (slash != NULL && strcmp(slash + 1, MV_BUNDLE_SUMS) == 0) {
			candidates++;
			g_free(folder);
			folder = g_strndup(k, (gsize)(slash - (const char *)k));
		}
	}
	if (candidates != 1) {
		g_free(folder);
		return candidates == 0 ? MV_OK /* reported as SHA256SUMS missing */
		       : mv_fail(error_r, MV_ERR_INTEGRITY, "%u top-level folders hold a %s: one bundle "
		                 "has one folder", candidates, MV_BUNDLE_SUMS);
	}
	if (strlen(folder) > MV_BUNDLE_FOLDER_MAX || !mv_safename_is_safe(folder, MV_BUNDLE_FOLDER_MAX)) {
		mv_status st = mv_fail(error_r, MV_ERR_INTEGRITY, "the bundle's folder has an unsafe name");
		g_free(folder);
		return st;
	}
	gsize flen = strlen(folder);
	GHashTable *stripped = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, found_free);
	GPtrArray *outside = g_ptr_array_new();
	g_hash_table_iter_init(&it, s->found);
	gpointer v;
	while (g_hash_table_iter_next(&it, &k, &v)) {
		const char *name = k;
		if (strncmp(name, folder, flen) == 0 && name[flen] == '/' && name[flen + 1] != '\0') {
			g_hash_table_iter_steal(&it);
			g_hash_table_insert(stripped, g_strdup(name + flen + 1), v);
			g_free(k);
		} else {
			g_ptr_array_add(outside, g_strdup(name));
		}
	}
	mv_status st = MV_OK;
	if (outside->len > 0) {
		g_ptr_array_sort(outside, compare_str);
		st = mv_fail(error_r, MV_ERR_INTEGRITY, "%s: extra file, outside the bundle's folder %s/",
		             (const char *)outside->pdata[0], folder);
	}
	g_ptr_array_set_free_func(outside, g_free);
	g_ptr_array_unref(outside);
	g_hash_table_destroy(s->found);
	s->found = stripped;
	g_strlcpy(folder_r, folder, MV_BUNDLE_FOLDER_MAX + 1);
	g_free(folder);
	return st;
}

mv_status mv_bundle_verify(const char *path, const mv_bundle_checks *checks,
                           mv_bundle_report *report_r, char **error_r)
{
	*report_r = (mv_bundle_report){0};
	struct stat stt;
	if (stat(path, &stt) != 0)
		return mv_fail(error_r, errno == ENOENT ? MV_ERR_NOT_FOUND : MV_ERR_IO, "cannot read %s: %s",
		               path, g_strerror(errno));
	scan s = {.checks = checks,
	          .found = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, found_free)};
	mv_status st;
	if (S_ISDIR(stt.st_mode)) {
		report_r->format = MV_BUNDLE_DIR;
		st = scan_dir(&s, path, NULL, 0, error_r);
	} else {
		st = scan_archive(&s, path, &report_r->format, error_r);
	}
	if (st == MV_OK)
		st = strip_folder(&s, report_r->folder, error_r);
	found_file *sums = st == MV_OK ? g_hash_table_lookup(s.found, MV_BUNDLE_SUMS) : NULL;
	if (st == MV_OK && sums == NULL)
		st = mv_fail(error_r, MV_ERR_INTEGRITY, "%s: missing (not a bundle, or it was removed)",
		             MV_BUNDLE_SUMS);
	found_file *sig = st == MV_OK ? g_hash_table_lookup(s.found, MV_BUNDLE_SIG) : NULL;
	if (sig != NULL) {
		report_r->is_signed = TRUE;
		if (sig->oversize || sig->content == NULL)
			st = mv_fail(error_r, MV_ERR_INTEGRITY, "%s: larger than a signature can be (%"
			             G_GUINT64_FORMAT " bytes)", MV_BUNDLE_SIG, sig->size);
		else if (checks != NULL && checks->check_signature != NULL)
			st = checks->check_signature(checks->context, sums->content, sig->content, error_r);
	}
	GHashTable *listed = g_hash_table_new(g_str_hash, g_str_equal);
	char **lines = NULL;
	char *sums_text = NULL;
	if (st == MV_OK) {
		memcpy(report_r->sums_sha256, sums->hex, sizeof sums->hex);
		gsize len = 0;
		const char *data = g_bytes_get_data(sums->content, &len);
		if (len == 0 || data[len - 1] != '\n' || memchr(data, '\0', len) != NULL)
			st = mv_fail(error_r, MV_ERR_INTEGRITY, "%s: malformed (empty, not ending in a newline, "
			             "or holding NUL)", MV_BUNDLE_SUMS);
		else {
			sums_text = g_strndup(data, len - 1);
			lines = g_strsplit(sums_text, "\n", -1);
		}
	}
	for (gsize i = 0; st == MV_OK && lines != NULL && lines[i] != NULL; i++) {
		const char *l = lines[i];
		gsize n = strlen(l);
		uint8_t sha[MV_SHA256_LEN];
		if (n < MV_SHA256_HEX_LEN + 3 || l[MV_SHA256_HEX_LEN] != ' ' ||
		    (l[MV_SHA256_HEX_LEN + 1] != ' ' && l[MV_SHA256_HEX_LEN + 1] != '*')) {
			st = mv_fail(error_r, MV_ERR_INTEGRITY, "%s: line %zu is malformed", MV_BUNDLE_SUMS, i + 1);
			break;
		}
		char hex[MV_SHA256_HEX_LEN + 1];
		memcpy(hex, l, MV_SHA256_HEX_LEN);
		hex[MV_SHA256_HEX_LEN] = '\0';
		const char *name = l + MV_SHA256_HEX_LEN + 2;
		if (mv_sha256_from_hex(hex, sha) != 0) {
			st = mv_fail(error_r, MV_ERR_INTEGRITY, "%s: line %zu has no SHA-256", MV_BUNDLE_SUMS, i + 1);
			break;
		}
		if (!safe_path(name) || strcmp(name, MV_BUNDLE_SUMS) == 0 || strcmp(name, MV_BUNDLE_SIG) == 0) {
			st = mv_fail(error_r, MV_ERR_INTEGRITY, "%s: line %zu names an unsafe path",
			             MV_BUNDLE_SUMS, i + 1);
			break;
		}
		if (g_hash_table_contains(listed, name)) {
			st = mv_fail(error_r, MV_ERR_INTEGRITY, "%s: listed twice in %s", name, MV_BUNDLE_SUMS);
			break;
		}
		g_hash_table_add(listed, (gpointer)name);
		found_file *f = g_hash_table_lookup(s.found, name);
		if (f == NULL) {
			st = mv_fail(error_r, MV_ERR_INTEGRITY, "%s: missing (listed in %s)", name, MV_BUNDLE_SUMS);
			break;
		}
		mv_sha256_to_hex(sha, hex); /* lower case */
		if (strcmp(hex, f->hex) != 0) {
			st = mv_fail(error_r, MV_ERR_INTEGRITY, "%s: content changed (SHA-256 %s, %s says %s)",
			             name, f->hex, MV_BUNDLE_SUMS, hex);
			break;
		}
		report_r->files++;
		report_r->bytes += f->size;
		if (checks != NULL && checks->check_file != NULL)
			st = checks->check_file(checks->context, name, f->content, f->size, f->hex, error_r);
	}
	if (st == MV_OK) {
		GPtrArray *extra = g_ptr_array_new();
		GHashTableIter it;
		gpointer k;
		g_hash_table_iter_init(&it, s.found);
		while (g_hash_table_iter_next(&it, &k, NULL))
			if (strcmp(k, MV_BUNDLE_SUMS) != 0 && strcmp(k, MV_BUNDLE_SIG) != 0 &&
			    !g_hash_table_contains(listed, k))
				g_ptr_array_add(extra, k);
		if (extra->len > 0) {
			g_ptr_array_sort(extra, compare_str);
			st = mv_fail(error_r, MV_ERR_INTEGRITY, "%s: extra file, not listed in %s",
			             (const char *)extra->pdata[0], MV_BUNDLE_SUMS);
		}
		g_ptr_array_unref(extra);
	}
	if (st == MV_OK && checks != NULL && checks->finish != NULL)
		st = checks->finish(checks->context, error_r);
	g_strfreev(lines);
	g_free(sums_text);
	g_hash_table_destroy(listed);
	g_hash_table_destroy(s.found);
	return st;
}

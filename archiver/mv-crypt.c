/* mv-crypt: AES-256-GCM through OpenSSL EVP, and key handling. */
#include "mv-crypt.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mv-cluster.h"

typedef struct {
	GMutex lock;
	gint64 remaining; /* nonces reserved and not yet used */
	gint64 used;      /* seals made in this process */
	gboolean spent;   /* the refill granted no more */
	mv_nonce_refill_fn refill;
	void *context;
	GDestroyNotify free_context;
} nonce_budget;

struct mv_key {
	uint8_t bytes[MV_KEY_LEN];
	nonce_budget *budget; /* NULL: seals are not counted */
};

/* One page per key: locked, left out of core dumps, wiped on free. */
static mv_key *key_alloc(void)
{
	long page = sysconf(_SC_PAGESIZE);
	size_t size = page > (long)sizeof(mv_key) ? (size_t)page : sizeof(mv_key);
	void *p = NULL;
	if (posix_memalign(&p, size, size) != 0)
		g_error("out of memory");
	memset(p, 0, size);
	(void)mlock(p, size); /* best effort: RLIMIT_MEMLOCK may refuse */
#ifdef MADV_DONTDUMP
	(void)madvise(p, size, MADV_DONTDUMP);
#endif
	return p;
}

void mv_key_free(mv_key **key)
{
	if (key == NULL || *key == NULL)
		return;
	long page = sysconf(_SC_PAGESIZE);
	size_t size = page > (long)sizeof(mv_key) ? (size_t)page : sizeof(mv_key);
	nonce_budget *b = (*key)->budget;
	if (b != NULL) {
		if (b->free_context != NULL)
			b->free_context(b->context);
		g_mutex_clear(&b->lock);
		g_free(b);
	}
	OPENSSL_cleanse(*key, sizeof(mv_key));
	(void)munlock(*key, size);
	free(*key);
	*key = NULL;
}

void mv_key_fingerprint(const mv_key *key, uint8_t fpr_r[MV_KEY_FPR_LEN])
{
	static const char label[] = "mailvault key fingerprint v1";
	unsigned int n = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(ctx, label, sizeof label - 1) != 1 ||
	    EVP_DigestUpdate(ctx, key->bytes, MV_KEY_LEN) != 1 ||
	    EVP_DigestFinal_ex(ctx, fpr_r, &n) != 1 || n != MV_KEY_FPR_LEN)
		g_error("SHA-256 is not available");
	EVP_MD_CTX_free(ctx);
}

gboolean mv_key_equal(const mv_key *a, const mv_key *b)
{
	return CRYPTO_memcmp(a->bytes, b->bytes, MV_KEY_LEN) == 0;
}

void mv_key_protection(const mv_key *key, gboolean *locked_r, gboolean *nodump_r)
{
	*locked_r = *nodump_r = FALSE;
	FILE *f = fopen("/proc/self/smaps", "re");
	if (f == NULL)
		return;
	uintptr_t at = (uintptr_t)key;
	gboolean in = FALSE;
	char line[512];
	while (fgets(line, sizeof line, f) != NULL) {
		unsigned long lo = 0, hi = 0;
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
			in = at >= lo && at < hi;
			continue;
		}
		if (in && strncmp(line, "VmFlags:", 8) == 0) {
			char **flags = g_strsplit_set(line + 8, " \t\n", -1);
			for (char **fl = flags; *fl != NULL; fl++) {
				if (strcmp(*fl, "lo") == 0)
					*locked_r = TRUE;
				else if (strcmp(*fl, "dd") == 0)
					*nodump_r = TRUE;
			}
			g_strfreev(flags);
			break;
		}
	}
	fclose(f);
}

void mv_key_set_nonce_budget(mv_key *key, mv_nonce_refill_fn fn, void *context,
                             GDestroyNotify free_context)
{
	g_return_if_fail(key->budget == NULL);
	nonce_budget *b = g_new0(nonce_budget, 1);
	g_mutex_init(&b->lock);
	b->refill = fn;
	b->context = context;
	b->free_context = free_context;
	key->budget = b;
}

/* With b locked: a nonce ready for the next seal, refilled when empty. */
static mv_status budget_ready(nonce_budget *b, char **error_r)
{
	if (b->remaining == 0 && !b->spent) {
		gint64 granted = 0;
		mv_status st = b->refill(b->context, &granted, error_r);
		if (st != MV_OK)
			return st;
		if (granted <= 0)
			b->spent = TRUE;
		else
			b->remaining = granted;
	}
	if (b->remaining == 0)
		return mv_fail(error_r, MV_ERR_LIMIT,
		               "this data key has sealed as many blobs as its nonce budget allows");
	return MV_OK;
}

mv_status mv_key_nonce_ensure(const mv_key *key, char **error_r)
{
	nonce_budget *b = key->budget;
	if (b == NULL)
		return MV_OK;
	g_mutex_lock(&b->lock);
	mv_status st = budget_ready(b, error_r);
	g_mutex_unlock(&b->lock);
	return st;
}

gboolean mv_key_nonces_spent(const mv_key *key)
{
	nonce_budget *b = key->budget;
	if (b == NULL)
		return FALSE;
	g_mutex_lock(&b->lock);
	gboolean spent = b->spent && b->remaining == 0;
	g_mutex_unlock(&b->lock);
	return spent;
}

gint64 mv_key_nonces_used(const mv_key *key)
{
	nonce_budget *b = key->budget;
	if (b == NULL)
		return 0;
	g_mutex_lock(&b->lock);
	gint64 used = b->used;
	g_mutex_unlock(&b->lock);
	return used;
}

/* Take one nonce from key's budget (none: seals are not counted). */
static mv_status take_nonce(const mv_key *key, char **error_r)
{
	nonce_budget *b = key->budget;
	if (b == NULL)
		return MV_OK;
	g_mutex_lock(&b->lock);
	mv_status st = budget_ready(b, error_r);
	if (st == MV_OK) {
		b->remaining--;
		b->used++;
	}
	g_mutex_unlock(&b->lock);
	return st;
}

mv_status mv_key_random(mv_key **key_r, char **error_r)
{
	mv_key *k = key_alloc();
	if (RAND_priv_bytes(k->bytes, MV_KEY_LEN) != 1) {
		mv_key_free(&k);
		return mv_fail(error_r, MV_ERR_INTERNAL, "no random bytes for a key");
	}
	*key_r = k;
	return MV_OK;
}

char *mv_key_file_path(const char *file, const char *home)
{
	if (file != NULL && *file != '\0')
		return g_strdup(file);
	const char *env = g_getenv("MAILVAULT_KEY_FILE");
	if (env != NULL && *env != '\0')
		return g_strdup(env);
	if (home != NULL && *home != '\0')
		return g_build_filename(home, "master.key", NULL);
	char *h = mv_cluster_default_home();
	char *path = g_build_filename(h, "master.key", NULL);
	g_free(h);
	return path;
}

mv_status mv_key_file_read(const char *path, mv_key **key_r, char **error_r)
{
	*key_r = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return mv_fail(error_r, MV_ERR_CONFIG, "cannot open the key file %s: %s", path,
		               g_strerror(errno));
	struct stat sb;
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
		close(fd);
		return mv_fail(error_r, MV_ERR_CONFIG, "the key file %s is not a regular file", path);
	}
	if ((sb.st_mode & 077) != 0) {
		close(fd);
		return mv_fail(error_r, MV_ERR_CONFIG,
		               "the key file %s is open to others (mode %04o); chmod 600 it", path,
		               (unsigned)(sb.st_mode & 07777));
	}
	if (sb.st_size != MV_KEY_LEN) {
		close(fd);
		return mv_fail(error_r, MV_ERR_CONFIG,
		               "the key file %s is not a mailvault key (%d bytes expected)", path,
		               MV_KEY_LEN);
	}
	mv_key *k = key_alloc();
	size_t got = 0;
	while (got < MV_KEY_LEN) {
		ssize_t n = read(fd, k->bytes + got, MV_KEY_LEN - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	if (got != MV_KEY_LEN) {
		mv_key_free(&k);
		return mv_fail(error_r, MV_ERR_CONFIG, "cannot read the key file %s", path);
	}
	*key_r = k;
	return MV_OK;
}

mv_status mv_key_file_create(const char *path, char **error_r)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return mv_fail(error_r, errno == EEXIST ? MV_ERR_CONFIG : MV_ERR_IO,
		               "cannot create the key file %s: %s", path, g_strerror(errno));
	mv_key *k = NULL;
	mv_status st = mv_key_random(&k, error_r);
	if (st == MV_OK) {
		size_t put = 0;
		while (put < MV_KEY_LEN) {
			ssize_t n = write(fd, k->bytes + put, MV_KEY_LEN - put);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			put += (size_t)n;
		}
		if (put != MV_KEY_LEN || fsync(fd) != 0)
			st = mv_fail(error_r, MV_ERR_IO, "cannot write the key file %s: %s", path,
			             g_strerror(errno));
	}
	mv_key_free(&k);
	if (close(fd) != 0 && st == MV_OK)
		st = mv_fail(error_r, MV_ERR_IO, "cannot write the key file %s: %s", path,
		             g_strerror(errno));
	if (st != MV_OK) {
		unlink(path);
		return st;
	}
	/* The file's name is durable too: a key file that vanished in a
	 * crash after a key command committed would leave the archive shut. */
	char *dir = g_path_get_dirname(path);
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fsync(dfd) != 0)
		st = mv_fail(error_r, MV_ERR_IO, "cannot sync the directory %s: %s", dir,
		             g_strerror(errno));
	if (dfd >= 0)
		close(dfd);
	g_free(dir);
	return st;
}

static mv_status gcm(gboolean seal, const mv_key *key, const void *aad, size_t aad_len,
                     const void *in, size_t len, const uint8_t *nonce, uint8_t *tag,
                     uint8_t *out, char **error_r)
{
	if (len > INT_MAX || aad_len > INT_MAX)
		return mv_fail(error_r, MV_ERR_LIMIT, "a blob too large to encrypt");
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int ok = ctx != NULL;
	int n = 0;
	ok = ok && EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL, seal ? 1 : 0) == 1;
	ok = ok && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, MV_NONCE_LEN, NULL) == 1;
	ok = ok && EVP_CipherInit_ex(ctx, NULL, NULL, key->bytes, nonce, seal ? 1 : 0) == 1;
	ok = ok && EVP_CipherUpdate(ctx, NULL, &n, aad, (int)aad_len) == 1;
	ok = ok && (len == 0 || EVP_CipherUpdate(ctx, out, &n, in, (int)len) == 1);
	if (!ok) {
		EVP_CIPHER_CTX_free(ctx);
		return mv_fail(error_r, MV_ERR_INTERNAL, "AES-256-GCM is not available");
	}
	mv_status st = MV_OK;
	if (seal) {
		if (EVP_CipherFinal_ex(ctx, out + len, &n) != 1 ||
		    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, MV_TAG_LEN, tag) != 1)
			st = mv_fail(error_r, MV_ERR_INTERNAL, "AES-256-GCM encryption failed");
	} else {
		if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, MV_TAG_LEN, tag) != 1 ||
		    EVP_CipherFinal_ex(ctx, out + len, &n) != 1)
			st = mv_fail(error_r, MV_ERR_INTEGRITY, "does not authenticate");
	}
	EVP_CIPHER_CTX_free(ctx);
	return st;
}

mv_status mv_aead_seal(const mv_key *key, const void *aad, size_t aad_len, const void *in,
                       size_t len, uint8_t nonce_r[MV_NONCE_LEN], uint8_t tag_r[MV_TAG_LEN],
                       GBytes **out_r, char **error_r)
{
	*out_r = NULL;
	mv_status st = take_nonce(key, error_r);
	if (st != MV_OK)
		return st;
	if (RAND_bytes(nonce_r, MV_NONCE_LEN) != 1)
		return mv_fail(error_r, MV_ERR_INTERNAL, "no random bytes for a nonce");
	uint8_t *out = g_malloc(len + 16); /* room for a final block that GCM never writes */
	st = gcm(TRUE, key, aad, aad_len, in, len, nonce_r, tag_r, out, error_r);
	if (st != MV_OK) {
		g_free(out);
		return st;
	}
	*out_r = g_bytes_new_take(out, len);
	return MV_OK;
}

mv_status mv_aead_open(const mv_key *key, const void *aad, size_t aad_len, const void *in,
                       size_t len, const uint8_t nonce[MV_NONCE_LEN], const uint8_t tag[MV_TAG_LEN],
                       GBytes **out_r, char **error_r)
{
	*out_r = NULL;
	uint8_t t[MV_TAG_LEN];
	memcpy(t, tag, MV_TAG_LEN);
	uint8_t *out = g_malloc(len + 16);
	mv_status st = gcm(FALSE, key, aad, aad_len, in, len, nonce, t, out, error_r);
	if (st != MV_OK) {
		g_free(out);
		return st;
	}
	*out_r = g_bytes_new_take(out, len);
	return MV_OK;
}

static void wrap_aad(int version, char aad[64])
{
	g_snprintf(aad, 64, "mailvault data key v1 version=%d", version);
}

mv_status mv_key_wrap(const mv_key *master, int version, const mv_key *data_key,
                      uint8_t wrapped_r[MV_WRAPPED_LEN], char **error_r)
{
	char aad[64];
	wrap_aad(version, aad);
	if (RAND_bytes(wrapped_r, MV_NONCE_LEN) != 1)
		return mv_fail(error_r, MV_ERR_INTERNAL, "no random bytes for a nonce");
	return gcm(TRUE, master, aad, strlen(aad), data_key->bytes, MV_KEY_LEN, wrapped_r,
	           wrapped_r + MV_NONCE_LEN + MV_KEY_LEN, wrapped_r + MV_NONCE_LEN, error_r);
}

mv_status mv_key_unwrap(const mv_key *master, int version, const void *wrapped, size_t len,
                        mv_key **data_key_r, char **error_r)
{
	*data_key_r = NULL;
	if (len != MV_WRAPPED_LEN)
		return mv_fail(error_r, MV_ERR_INTEGRITY, "data key version %d is malformed", version);
	const uint8_t *w = wrapped;
	char aad[64];
	wrap_aad(version, aad);
	uint8_t tag[MV_TAG_LEN];
	memcpy(tag, w + MV_NONCE_LEN + MV_KEY_LEN, MV_TAG_LEN);
	mv_key *k = key_alloc();
	char *inner = NULL;
	/* out needs room past the key for gcm's final call: the page has it. */
	mv_status st = gcm(FALSE, master, aad, strlen(aad), w + MV_NONCE_LEN, MV_KEY_LEN, w, tag,
	                   k->bytes, &inner);
	g_free(inner);
	if (st != MV_OK) {
		mv_key_free(&k);
		return mv_fail(error_r, MV_ERR_CONFIG,
		               "the key file does not open data key version %d: it is not this "
		               "archive's key file", version);
	}
	*data_key_r = k;
	return MV_OK;
}

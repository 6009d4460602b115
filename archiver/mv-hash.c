/* mv-hash: SHA-256 through OpenSSL's EVP interface. */
#include "mv-hash.h"

#include <openssl/evp.h>
#include <string.h>

void mv_sha256(const void *data, size_t len, uint8_t out[MV_SHA256_LEN])
{
	unsigned int n = 0;
	EVP_Digest(data, len, out, &n, EVP_sha256(), NULL);
}

void mv_sha256_to_hex(const uint8_t sha[MV_SHA256_LEN], char hex[MV_SHA256_HEX_LEN + 1])
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < MV_SHA256_LEN; i++) {
		hex[2 * i] = digits[sha[i] >> 4];
		hex[2 * i + 1] = digits[sha[i] & 0xf];
	}
	hex[MV_SHA256_HEX_LEN] = '\0';
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int mv_sha256_from_hex(const char *hex, uint8_t sha[MV_SHA256_LEN])
{
	if (hex == NULL || strlen(hex) != MV_SHA256_HEX_LEN)
		return -1;
	for (size_t i = 0; i < MV_SHA256_LEN; i++) {
		int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		sha[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

struct mv_sha256_ctx {
	EVP_MD_CTX *md;
};

mv_sha256_ctx *mv_sha256_new(void)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (md == NULL)
		return NULL;
	if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(md);
		return NULL;
	}
	mv_sha256_ctx *ctx = OPENSSL_zalloc(sizeof(*ctx));
	if (ctx == NULL) {
		EVP_MD_CTX_free(md);
		return NULL;
	}
	ctx->md = md;
	return ctx;
}

void mv_sha256_update(mv_sha256_ctx *ctx, const void *data, size_t len)
{
	EVP_DigestUpdate(ctx->md, data, len);
}

void mv_sha256_finish(mv_sha256_ctx **ctx, uint8_t out[MV_SHA256_LEN])
{
	unsigned int n = 0;
	if (ctx == NULL || *ctx == NULL)
		return;
	EVP_DigestFinal_ex((*ctx)->md, out, &n);
	EVP_MD_CTX_free((*ctx)->md);
	OPENSSL_free(*ctx);
	*ctx = NULL;
}

/* mv-codec: zstd compression for blobs.  Stored data is untrusted on the way
 * back (it may have been altered in the database): every size is checked. */
#include "mv-codec.h"

#define ZDICT_STATIC_LINKING_ONLY
#include <zdict.h>
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_c_forceAttachDict */
#include <zstd.h>

/* The compression side of a dictionary is built on first use: a command
 * that only reads (get, show, export) never pays the millisecond that
 * ZSTD_createCDict takes for a 112 KiB dictionary. */
struct mv_zdict {
	int id;
	int level;
	GBytes *data;      /* the dictionary's bytes (packs load them with their own parameters) */
	GMutex cdict_lock; /* writers on several threads may share one dict */
	ZSTD_CDict *cdict;
	ZSTD_DDict *ddict;
	ZSTD_CDict *frame_cdict; /* for pack frames, at frame_level (made once) */
	int frame_level;
};

mv_zdict *mv_zdict_new(int id, const void *data, size_t len, int level)
{
	mv_zdict *d = g_new0(mv_zdict, 1);
	d->id = id;
	d->level = level;
	g_mutex_init(&d->cdict_lock);
	d->ddict = ZSTD_createDDict(data, len);
	if (d->ddict == NULL) {
		mv_zdict_free(&d);
		return NULL;
	}
	d->data = g_bytes_new(data, len);
	return d;
}

static ZSTD_CDict *zdict_cdict(mv_zdict *d)
{
	g_mutex_lock(&d->cdict_lock);
	if (d->cdict == NULL && d->data != NULL) {
		gsize len = 0;
		const void *p = g_bytes_get_data(d->data, &len);
		d->cdict = ZSTD_createCDict(p, len, d->level);
	}
	ZSTD_CDict *c = d->cdict;
	g_mutex_unlock(&d->cdict_lock);
	return c;
}

GBytes *mv_zdict_data(const mv_zdict *dict)
{
	return dict->data;
}

/* The dictionary prepared for frames at level: made once per dictionary
 * and level.  Loading a 1 MiB dictionary into each frame's context at level
 * 19 cost a third of compact's CPU time (docs/storage.md, "Where compact's
 * time goes"). */
static ZSTD_CDict *zdict_frame_cdict(mv_zdict *d, int level)
{
	g_mutex_lock(&d->cdict_lock);
	if ((d->frame_cdict == NULL || d->frame_level != level) && d->data != NULL) {
		ZSTD_freeCDict(d->frame_cdict);
		gsize len = 0;
		const void *p = g_bytes_get_data(d->data, &len);
		d->frame_cdict = ZSTD_createCDict(p, len, level);
		d->frame_level = level;
	}
	ZSTD_CDict *c = d->frame_cdict;
	g_mutex_unlock(&d->cdict_lock);
	return c;
}

#define FRAME_ATTACH_BELOW (192 * 1024)

mv_status mv_codec_compress_frame(const void *in, size_t len, int level, mv_zdict *dict,
                                  GBytes **out_r, char **error_r)
{
	*out_r = NULL;
	ZSTD_CDict *cdict = NULL;
	if (dict != NULL && dict->data != NULL) {
		cdict = zdict_frame_cdict(dict, level);
		if (cdict == NULL)
			return mv_fail(error_r, MV_ERR_INTERNAL, "cannot prepare a zstd dictionary");
	}
	ZSTD_CCtx *cctx = ZSTD_createCCtx();
	if (cctx == NULL)
		return mv_fail(error_r, MV_ERR_INTERNAL, "cannot create a zstd context");
	/* No long-distance matching: a frame (1 MiB) is inside level 19's
	 * window already; measured, it changed no byte of the ratio and cost
	 * CPU time. */
	size_t rc = ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level);
	if (!ZSTD_isError(rc))
		rc = ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 1);
	if (!ZSTD_isError(rc))
		rc = ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 0);
	/* A small frame (a reader set of few blobs) attaches the prepared
	 * dictionary instead of copying its tables into the context: half the
	 * CPU at 40 KB; from about 256 KiB copying is faster (measured,
	 * docs/storage.md). */
	if (!ZSTD_isError(rc) && cdict != NULL && len < FRAME_ATTACH_BELOW)
		rc = ZSTD_CCtx_setParameter(cctx, ZSTD_c_forceAttachDict, ZSTD_dictForceAttach);
	if (!ZSTD_isError(rc) && cdict != NULL)
		rc = ZSTD_CCtx_refCDict(cctx, cdict);
	if (ZSTD_isError(rc)) {
		ZSTD_freeCCtx(cctx);
		return mv_fail(error_r, MV_ERR_INTERNAL, "zstd parameters refused: %s",
		               ZSTD_getErrorName(rc));
	}
	size_t cap = ZSTD_compressBound(len);
	void *buf = g_malloc(cap);
	size_t n = ZSTD_compress2(cctx, buf, cap, in, len);
	ZSTD_freeCCtx(cctx);
	if (ZSTD_isError(n)) {
		g_free(buf);
		return mv_fail(error_r, MV_ERR_INTERNAL, "zstd compression failed: %s",
		               ZSTD_getErrorName(n));
	}
	*out_r = g_bytes_new_take(g_realloc(buf, n), n);
	return MV_OK;
}

int mv_zdict_id(const mv_zdict *dict)
{
	return dict->id;
}

void mv_zdict_free(mv_zdict **dict)
{
	if (dict == NULL || *dict == NULL)
		return;
	ZSTD_freeCDict((*dict)->cdict);
	ZSTD_freeCDict((*dict)->frame_cdict);
	ZSTD_freeDDict((*dict)->ddict);
	if ((*dict)->data != NULL)
		g_bytes_unref((*dict)->data);
	g_mutex_clear(&(*dict)->cdict_lock);
	g_free(*dict);
	*dict = NULL;
}

mv_status mv_zdict_train(GPtrArray *samples, size_t max_size, GBytes **dict_r, char **error_r)
{
	*dict_r = NULL;
	if (samples->len < 16)
		return mv_fail(error_r, MV_ERR_INPUT, "too few samples to train a dictionary");
	GByteArray *all = g_byte_array_new();
	size_t *sizes = g_new(size_t, samples->len);
	for (guint i = 0; i < samples->len; i++) {
		gsize n = 0;
		const guint8 *p = g_bytes_get_data(samples->pdata[i], &n);
		g_byte_array_append(all, p, (guint)n);
		sizes[i] = n;
	}
	void *buf = g_malloc(max_size);
	size_t got = ZDICT_trainFromBuffer(buf, max_size, all->data, sizes, samples->len);
	g_byte_array_free(all, TRUE);
	g_free(sizes);
	if (ZDICT_isError(got)) {
		g_free(buf);
		return mv_fail(error_r, MV_ERR_INPUT, "dictionary training failed: %s",
		               ZDICT_getErrorName(got));
	}
	*dict_r = g_bytes_new_take(g_realloc(buf, got), got);
	return MV_OK;
}

static void free_cctx(gpointer cctx)
{
	ZSTD_freeCCtx(cctx);
}

static GPrivate thread_cctx = G_PRIVATE_INIT(free_cctx);

mv_status mv_codec_compress(const void *in, size_t len, int level, mv_zdict *dict,
                            mv_codec *codec_r, GBytes **out_r, char **error_r)
{
	/* One compression context per thread, kept (and freed when the thread
	 * ends): making one per blob allocated and cleared its tables each
	 * time, which cost more than compressing a small message. */
	ZSTD_CCtx *cctx = g_private_get(&thread_cctx);
	if (cctx == NULL) {
		cctx = ZSTD_createCCtx();
		if (cctx == NULL)
			return mv_fail(error_r, MV_ERR_INTERNAL, "cannot create a zstd context");
		g_private_set(&thread_cctx, cctx);
	}
	size_t cap = ZSTD_compressBound(len);
	void *buf = g_malloc(cap);
	size_t n;
	ZSTD_CDict *cdict = dict != NULL ? zdict_cdict(dict) : NULL;
	if (dict != NULL && cdict == NULL) {
		g_free(buf);
		return mv_fail(error_r, MV_ERR_INTERNAL, "cannot build the zstd compression dictionary");
	}
	if (cdict != NULL)
		n = ZSTD_compress_usingCDict(cctx, buf, cap, in, len, cdict);
	else
		n = ZSTD_compressCCtx(cctx, buf, cap, in, len, level);
	if (ZSTD_isError(n)) {
		g_free(buf);
		return mv_fail(error_r, MV_ERR_INTERNAL, "zstd compression failed: %s",
		               ZSTD_getErrorName(n));
	}
	if (n >= len) {
		g_free(buf);
		*codec_r = MV_CODEC_NONE;
		*out_r = g_bytes_new(in, len);
		return MV_OK;
	}
	*codec_r = dict != NULL ? MV_CODEC_ZSTD_DICT : MV_CODEC_ZSTD;
	*out_r = g_bytes_new_take(g_realloc(buf, n), n);
	return MV_OK;
}

static void free_dctx(gpointer dctx)
{
	ZSTD_freeDCtx(dctx);
}

static GPrivate thread_dctx = G_PRIVATE_INIT(free_dctx);

mv_status mv_codec_decompress(mv_codec codec, const void *in, size_t len, size_t raw_size,
                              const mv_zdict *dict, GBytes **out_r, char **error_r)
{
	*out_r = NULL;
	if (codec == MV_CODEC_NONE) {
		if (len != raw_size)
			return mv_fail(error_r, MV_ERR_INTEGRITY,
			               "stored blob has %zu bytes, expected %zu", len, raw_size);
		*out_r = g_bytes_new(in, len);
		return MV_OK;
	}
	if (codec != MV_CODEC_ZSTD && codec != MV_CODEC_ZSTD_DICT)
		return mv_fail(error_r, MV_ERR_INTEGRITY, "unknown blob codec %d", (int)codec);
	if (codec == MV_CODEC_ZSTD_DICT && dict == NULL)
		return mv_fail(error_r, MV_ERR_INTEGRITY, "blob needs a dictionary that is missing");
	unsigned long long declared = ZSTD_getFrameContentSize(in, len);
	if (declared != raw_size)
		return mv_fail(error_r, MV_ERR_INTEGRITY,
		               "compressed blob declares %llu bytes, expected %zu", declared, raw_size);
	void *buf = g_malloc(raw_size > 0 ? raw_size : 1);
	/* One decompression context per thread, kept (and freed when the
	 * thread ends): creating one per blob cost as much as decompressing a
	 * small blob. */
	ZSTD_DCtx *dctx = g_private_get(&thread_dctx);
	if (dctx == NULL) {
		dctx = ZSTD_createDCtx();
		g_private_set(&thread_dctx, dctx);
	}
	size_t n;
	if (dctx == NULL)
		n = (size_t)-1;
	else if (codec == MV_CODEC_ZSTD_DICT)
		n = ZSTD_decompress_usingDDict(dctx, buf, raw_size, in, len, dict->ddict);
	else
		n = ZSTD_decompressDCtx(dctx, buf, raw_size, in, len);
	if (ZSTD_isError(n) || n != raw_size) {
		g_free(buf);
		return mv_fail(error_r, MV_ERR_INTEGRITY, "stored blob does not decompress: %s",
		               ZSTD_isError(n) ? ZSTD_getErrorName(n) : "wrong size");
	}
	*out_r = g_bytes_new_take(buf, raw_size);
	return MV_OK;
}

mv_status mv_codec_decompress_prefix(mv_codec codec, const void *in, size_t len,
                                     size_t raw_size, size_t want, const mv_zdict *dict,
                                     GBytes **out_r, char **error_r)
{
	*out_r = NULL;
	if (want > raw_size)
		return mv_fail(error_r, MV_ERR_INTEGRITY, "asked for %zu bytes of %zu", want, raw_size);
	if (want == raw_size || codec == MV_CODEC_NONE)
		return mv_codec_decompress(codec, in, len, raw_size, dict, out_r, error_r);
	if (codec != MV_CODEC_ZSTD && codec != MV_CODEC_ZSTD_DICT)
		return mv_fail(error_r, MV_ERR_INTEGRITY, "unknown blob codec %d", (int)codec);
	if (codec == MV_CODEC_ZSTD_DICT && dict == NULL)
		return mv_fail(error_r, MV_ERR_INTEGRITY, "blob needs a dictionary that is missing");
	unsigned long long declared = ZSTD_getFrameContentSize(in, len);
	if (declared != raw_size)
		return mv_fail(error_r, MV_ERR_INTEGRITY,
		               "compressed data declares %llu bytes, expected %zu", declared, raw_size);
	ZSTD_DCtx *dctx = g_private_get(&thread_dctx);
	if (dctx == NULL) {
		dctx = ZSTD_createDCtx();
		if (dctx == NULL)
			return mv_fail(error_r, MV_ERR_INTERNAL, "cannot create a zstd context");
		g_private_set(&thread_dctx, dctx);
	}
	size_t rc = ZSTD_DCtx_reset(dctx, ZSTD_reset_session_and_parameters);
	if (!ZSTD_isError(rc) && codec == MV_CODEC_ZSTD_DICT)
		rc = ZSTD_DCtx_refDDict(dctx, dict->ddict);
	void *buf = g_malloc(want > 0 ? want : 1);
	ZSTD_outBuffer out = {buf, want, 0};
	ZSTD_inBuffer inb = {in, len, 0};
	/* Stop once the first want bytes are out: the rest of the frame is
	 * never decompressed. */
	while (!ZSTD_isError(rc) && out.pos < want) {
		rc = ZSTD_decompressStream(dctx, &out, &inb);
		if (ZSTD_isError(rc) || rc == 0 || (inb.pos == inb.size && out.pos < out.size))
			break;
	}
	(void)ZSTD_DCtx_reset(dctx, ZSTD_reset_session_and_parameters);
	if (ZSTD_isError(rc) || out.pos != want) {
		g_free(buf);
		return mv_fail(error_r, MV_ERR_INTEGRITY, "stored data does not decompress: %s",
		               ZSTD_isError(rc) ? ZSTD_getErrorName(rc) : "too short");
	}
	*out_r = g_bytes_new_take(buf, want);
	return MV_OK;
}

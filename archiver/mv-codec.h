/* mv-codec: compression of blob data with zstd, optionally with a trained
 * dictionary.  The codec numbers are stored in blob.codec and never change.
 *
 * Ownership: mv_codec_compress / mv_codec_decompress return a new GBytes in
 * *out_r (g_bytes_unref it); an mv_zdict is created by mv_zdict_new and
 * freed by mv_zdict_free. */
#ifndef MV_CODEC_H
#define MV_CODEC_H

#include <glib.h>
#include <stddef.h>

#include "mv-status.h"

typedef enum {
	MV_CODEC_NONE = 0,
	MV_CODEC_ZSTD = 1,
	MV_CODEC_ZSTD_DICT = 2,
} mv_codec;

#define MV_ZSTD_LEVEL_DEFAULT 3
#define MV_ZSTD_LEVEL_MIN 1
#define MV_ZSTD_LEVEL_MAX 19

/* A trained dictionary, usable for both directions.  id is the database id. */
typedef struct mv_zdict mv_zdict;
mv_zdict *mv_zdict_new(int id, const void *data, size_t len, int level);
int mv_zdict_id(const mv_zdict *dict);
/* The dictionary's bytes (borrowed). */
GBytes *mv_zdict_data(const mv_zdict *dict);

/* Compress one pack frame (docs/storage.md): always zstd (never stored as
 * is), at level, with dict (prepared once per dictionary and level, kept in
 * dict) when dict is non-NULL; read back with mv_codec_decompress
 * (MV_CODEC_ZSTD or MV_CODEC_ZSTD_DICT with the same dictionary). */
mv_status mv_codec_compress_frame(const void *in, size_t len, int level, mv_zdict *dict,
                                  GBytes **out_r, char **error_r) MV_WARN_UNUSED;
void mv_zdict_free(mv_zdict **dict);

/* Train a dictionary of at most max_size bytes from samples (GBytes*).
 * Returns MV_OK and a new GBytes in *dict_r, or MV_ERR_INPUT when the
 * samples are too few or too small to train on. */
mv_status mv_zdict_train(GPtrArray *samples, size_t max_size, GBytes **dict_r, char **error_r)
	MV_WARN_UNUSED;

/* Compress in[0..len).  With dict non-NULL the result is MV_CODEC_ZSTD_DICT.
 * When compression does not make the data smaller, the data is kept as is
 * and *codec_r is MV_CODEC_NONE. */
mv_status mv_codec_compress(const void *in, size_t len, int level, mv_zdict *dict,
                            mv_codec *codec_r, GBytes **out_r, char **error_r) MV_WARN_UNUSED;

/* Decompress data stored with codec; raw_size is the expected size and is
 * checked.  dict must be the blob's dictionary for MV_CODEC_ZSTD_DICT. */
mv_status mv_codec_decompress(mv_codec codec, const void *in, size_t len, size_t raw_size,
                              const mv_zdict *dict, GBytes **out_r, char **error_r) MV_WARN_UNUSED;

/* The first want bytes (want <= raw_size) of data stored with codec,
 * decompressing no further than needed (pack frames: docs/storage.md); the
 * declared size is checked; want == raw_size is mv_codec_decompress. */
mv_status mv_codec_decompress_prefix(mv_codec codec, const void *in, size_t len,
                                     size_t raw_size, size_t want, const mv_zdict *dict,
                                     GBytes **out_r, char **error_r) MV_WARN_UNUSED;

#endif

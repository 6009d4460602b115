/* mv-blind: the keyed blind index of the search vectors, when encryption
 * at rest is on (docs/encryption.md "Blind search index").
 *
 * PostgreSQL still does the linguistics: it turns a text into a tsvector
 * (mv_search_vector) and a query into a tsquery (mv_search_query).  The
 * client parses the text form of either, replaces every lexeme by its
 * keyed hash (HMAC-SHA-256 with the index key, the first 60 bits in
 * RFC 4648 base32, upper case: 12 characters that no clear lexeme can
 * spell, PostgreSQL's parsers lower-case every word) and sends the result,
 * so the database stores and compares hashes only.  Positions and weights
 * are kept: phrase queries, weights (stems are weight A), ranking and GIN
 * indexing work as before.
 *
 * Prefix queries cannot match hashes.  The one the search makes itself, a
 * single Chinese/Japanese/Korean character ('X':*, over the character
 * bigrams of schema/021), works: each CJK bigram's lexeme brings its first
 * character's hash at the same positions, and 'X':* becomes that hash.
 * Any other prefix is MV_ERR_QUERY.
 *
 * The index key is derived (HKDF-SHA-256, info "mailvault search index
 * v1") from the data key of the version recorded in search_index_key
 * (schema/032-blind-index.sql); it never leaves the client.
 *
 * SECURITY: the texts parsed here come from the database (hostile input):
 * every lexeme, position and size is checked; malformed text is an error,
 * never a guess.
 *
 * Ownership: mv_blind is reference-counted (mv_blind_ref, mv_blind_free);
 * it is immutable and may be used by several threads at once. */
#ifndef MV_BLIND_H
#define MV_BLIND_H

#include <glib.h>

#include "mv-crypt.h"
#include "mv-status.h"

/* Characters of a blind lexeme. */
#define MV_BLIND_LEXEME_LEN 12
/* The largest vector or query text accepted (bytes). */
#define MV_BLIND_MAX_TEXT ((gsize)64 * 1024 * 1024)
/* The longest lexeme PostgreSQL stores (bytes, 2 KiB - 1). */
#define MV_BLIND_MAX_LEXEME 2047

typedef struct mv_blind mv_blind;

/* The blind index of key version `version`, its key derived from that
 * version's data key. */
mv_status mv_blind_new(const mv_key *data_key, int version, mv_blind **blind_r, char **error_r)
	MV_WARN_UNUSED;
mv_blind *mv_blind_ref(mv_blind *blind);
void mv_blind_free(mv_blind **blind);
int mv_blind_version(const mv_blind *blind);

/* The blind form of a tsvector's text (as PostgreSQL prints it: 'lexeme'
 * with '' and \\ escaped, :positions with weights, space-separated).
 * MV_ERR_INPUT when it is malformed.  *out_r: g_free. */
mv_status mv_blind_vector(const mv_blind *blind, const char *tsv, char **out_r, char **error_r)
	MV_WARN_UNUSED;
/* The blind form of a tsquery's text: each quoted lexeme replaced by its
 * hash, operators (& | ! <-> <N> parentheses) and weights kept; a single
 * CJK character's prefix ('X':*) becomes its hash.  MV_ERR_QUERY for any
 * other prefix, MV_ERR_INPUT when the text is malformed.  *out_r: g_free. */
mv_status mv_blind_query(const mv_blind *blind, const char *tsq, char **out_r, char **error_r)
	MV_WARN_UNUSED;
/* Whether a lexeme is shaped as a blind one. */
gboolean mv_blind_lexeme_shaped(const char *lexeme, gsize len);

/* The process's blind index: the blob store remembers the one it loads
 * (a process serves one archive; the index key never changes), so that
 * queries compiled anywhere in the process can be made blind
 * (mv_catalog_query_resolve).  mv_blind_remembered returns a new
 * reference, or NULL. */
void mv_blind_remember(mv_blind *blind);
mv_blind *mv_blind_remembered(void);

#endif

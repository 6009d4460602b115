/* mv-safename: file names that are safe on every system, made from
 * untrusted names (attachment file names in received mail).
 *
 * A safe name is one path component of valid NFC UTF-8, 1..max_bytes bytes,
 * with no '/', '\\', NUL, control or format characters (bidi overrides
 * included), none of : * ? " < > |, no leading dot, no trailing dot or
 * space, and not a reserved Windows device name (CON, PRN, AUX, NUL,
 * COM1-9, LPT1-9, with or without an extension).  It can never be "." or
 * "..", so joined under a directory it stays inside it.
 *
 * SECURITY: the input is untrusted; these functions are total (any bytes,
 * any length) and never return an unsafe name.
 *
 * Ownership: every returned string is new (g_free); an mv_safename_set is
 * freed with mv_safename_set_free. */
#ifndef MV_SAFENAME_H
#define MV_SAFENAME_H

#include <glib.h>

/* Default cap on a name's length in bytes. */
#define MV_SAFENAME_MAX_BYTES 100

/* A safe version of name (NULL or "" give fallback, which must itself be
 * safe).  max_bytes is at least 16.  The extension (up to 16 bytes after the
 * last dot) is kept when the name is shortened. */
char *mv_safename(const char *name, gssize len, gsize max_bytes, const char *fallback);

/* TRUE when name is already safe under max_bytes (what mv_safename returns
 * is). */
gboolean mv_safename_is_safe(const char *name, gsize max_bytes);

/* Names taken in one directory, compared case-insensitively (after Unicode
 * case folding), as on Windows and macOS file systems. */
typedef struct mv_safename_set mv_safename_set;

mv_safename_set *mv_safename_set_new(gsize max_bytes);
void mv_safename_set_free(mv_safename_set **set);

/* Take safe_name in set, or, when it (or a name differing only in case) is
 * taken, "stem (2).ext", "stem (3).ext", ... shortened to stay within
 * max_bytes.  Returns the name taken (new string). */
char *mv_safename_take(mv_safename_set *set, const char *safe_name);

#endif

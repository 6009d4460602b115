/* mv-json: --json output through json-glib.  A thin layer over JsonBuilder:
 * every string value is first made valid UTF-8 with mv_utf8_clean (invalid
 * bytes become U+FFFD, NUL is dropped), so the output is valid JSON in
 * UTF-8 whatever bytes stored mail held.
 *
 * key is the member's name inside an object, NULL for an element of an
 * array.  Close what mv_json_begin_* opened with json_builder_end_object or
 * json_builder_end_array. */
#ifndef MV_JSON_H
#define MV_JSON_H

#include <glib.h>
#include <json-glib/json-glib.h>
#include <stdio.h>

void mv_json_begin_object(JsonBuilder *b, const char *key);
void mv_json_begin_array(JsonBuilder *b, const char *key);
void mv_json_add_string(JsonBuilder *b, const char *key, const char *value); /* NULL: null */
void mv_json_add_int(JsonBuilder *b, const char *key, gint64 value);
void mv_json_add_double(JsonBuilder *b, const char *key, double value);
void mv_json_add_bool(JsonBuilder *b, const char *key, gboolean value);
void mv_json_add_null(JsonBuilder *b, const char *key);
/* An array of the strings; NULL gives []. */
void mv_json_add_strings(JsonBuilder *b, const char *key, const GPtrArray *values);

/* Write b's root (compact) and a newline to f.  FALSE when writing failed. */
gboolean mv_json_write(JsonBuilder *b, FILE *f);

/* An object written while it is produced, for output that must not wait
 * for the end (purge's records): the members of head (an object), then key
 * with an array whose elements are written one by one as they come, then
 * the members of tail (an object) and a newline. */
void mv_json_stream_begin(FILE *f, JsonBuilder *head, const char *key);
void mv_json_stream_element(FILE *f, JsonBuilder *element, gboolean first);
gboolean mv_json_stream_end(FILE *f, JsonBuilder *tail);

#endif

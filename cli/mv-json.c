/* mv-json: --json output through json-glib. */
#include "mv-json.h"

#include "mv-message.h"

static void member(JsonBuilder *b, const char *key)
{
	if (key != NULL)
		json_builder_set_member_name(b, key);
}

void mv_json_begin_object(JsonBuilder *b, const char *key)
{
	member(b, key);
	json_builder_begin_object(b);
}

void mv_json_begin_array(JsonBuilder *b, const char *key)
{
	member(b, key);
	json_builder_begin_array(b);
}

void mv_json_add_string(JsonBuilder *b, const char *key, const char *value)
{
	member(b, key);
	if (value == NULL) {
		json_builder_add_null_value(b);
		return;
	}
	g_autofree char *clean = mv_utf8_clean(value, -1);
	json_builder_add_string_value(b, clean);
}

void mv_json_add_int(JsonBuilder *b, const char *key, gint64 value)
{
	member(b, key);
	json_builder_add_int_value(b, value);
}

void mv_json_add_double(JsonBuilder *b, const char *key, double value)
{
	member(b, key);
	json_builder_add_double_value(b, value);
}

void mv_json_add_bool(JsonBuilder *b, const char *key, gboolean value)
{
	member(b, key);
	json_builder_add_boolean_value(b, value);
}

void mv_json_add_null(JsonBuilder *b, const char *key)
{
	member(b, key);
	json_builder_add_null_value(b);
}

void mv_json_add_strings(JsonBuilder *b, const char *key, const GPtrArray *values)
{
	mv_json_begin_array(b, key);
	for (guint i = 0; values != NULL && i < values->len; i++)
		mv_json_add_string(b, NULL, values->pdata[i]);
	json_builder_end_array(b);
}

/* The compact text of node. */
static char *generate_node(JsonNode *node, gsize *len_r)
{
	g_autoptr(JsonGenerator) gen = json_generator_new();
	json_generator_set_root(gen, node);
	return json_generator_to_data(gen, len_r);
}

static char *generate(JsonBuilder *b, gsize *len_r)
{
	g_autoptr(JsonNode) root = json_builder_get_root(b);
	return generate_node(root, len_r);
}

gboolean mv_json_write(JsonBuilder *b, FILE *f)
{
	gsize len = 0;
	g_autofree char *text = generate(b, &len);
	gboolean ok = fwrite(text, 1, len, f) == len;
	return fputc('\n', f) != EOF && ok;
}

void mv_json_stream_begin(FILE *f, JsonBuilder *head, const char *key)
{
	gsize len = 0, klen = 0;
	g_autofree char *text = generate(head, &len); /* {...} */
	g_autoptr(JsonNode) name = json_node_init_string(json_node_alloc(), key);
	g_autofree char *ktext = generate_node(name, &klen);
	fwrite(text, 1, len - 1, f); /* without its closing brace */
	if (len > 2)
		fputc(',', f);
	fwrite(ktext, 1, klen, f);
	fputs(":[", f);
}

void mv_json_stream_element(FILE *f, JsonBuilder *element, gboolean first)
{
	gsize len = 0;
	g_autofree char *text = generate(element, &len);
	if (!first)
		fputc(',', f);
	fwrite(text, 1, len, f);
}

gboolean mv_json_stream_end(FILE *f, JsonBuilder *tail)
{
	gsize len = 0;
	g_autofree char *text = generate(tail, &len); /* {...} */
	fputc(']', f);
	if (len > 2) {
		fputc(',', f);
		fwrite(text + 1, 1, len - 1, f); /* without its opening brace */
	} else {
		fputc('}', f);
	}
	fputc('\n', f);
	return ferror(f) == 0;
}

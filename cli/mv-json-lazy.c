/* mv-json-lazy: json-glib, loaded when a command first writes JSON.
 *
 * Only the `mailvault` program links this file (meson.build).  json-glib
 * brings GIO, and GIO libmount, libblkid and libselinux: loading them cost
 * every command some 2 ms of CPU at start-up (docs/scaling.md), while only
 * `--json` output uses them.  The functions below, the json-glib functions
 * that program calls (with json-glib's own prototypes, from its header),
 * stand in for the library at link time, so the program does not list it;
 * the first call opens the library with dlopen and each function forwards
 * to the real one, found once with dlsym.  The JSON itself is json-glib's
 * exactly as before.  `mailvault-full` links json-glib as usual.
 *
 * A json-glib function newly called by a command of `mailvault` fails to
 * link there until it is added here (the link, not a run, says so). */
#include <dlfcn.h>
#include <json-glib/json-glib.h>
#include <stdio.h>
#include <stdlib.h>

#include "mv-cli.h"

#define JSON_GLIB_SONAME "libjson-glib-1.0.so.0"

static void *json_glib_symbol(const char *name)
{
	static void *lib;
	if (lib == NULL) {
		lib = dlopen(JSON_GLIB_SONAME, RTLD_NOW | RTLD_LOCAL);
		if (lib == NULL) {
			fflush(stdout);
			fprintf(stderr, "mailvault: cannot load %s for JSON output: %s\n", JSON_GLIB_SONAME,
			        dlerror());
			exit(MV_EXIT_SOFTWARE);
		}
	}
	void *fn = dlsym(lib, name);
	if (fn == NULL) {
		fflush(stdout);
		fprintf(stderr, "mailvault: %s has no %s\n", JSON_GLIB_SONAME, name);
		exit(MV_EXIT_SOFTWARE);
	}
	return fn;
}

/* The real function, looked up on first use. */
#define REAL(name)                                              \
	static __typeof__(name) *real;                              \
	if (real == NULL)                                           \
		real = (__typeof__(name) *)json_glib_symbol(#name)

JsonBuilder *json_builder_new(void)
{
	REAL(json_builder_new);
	return real();
}

JsonNode *json_builder_get_root(JsonBuilder *builder)
{
	REAL(json_builder_get_root);
	return real(builder);
}

JsonBuilder *json_builder_begin_array(JsonBuilder *builder)
{
	REAL(json_builder_begin_array);
	return real(builder);
}

JsonBuilder *json_builder_end_array(JsonBuilder *builder)
{
	REAL(json_builder_end_array);
	return real(builder);
}

JsonBuilder *json_builder_begin_object(JsonBuilder *builder)
{
	REAL(json_builder_begin_object);
	return real(builder);
}

JsonBuilder *json_builder_end_object(JsonBuilder *builder)
{
	REAL(json_builder_end_object);
	return real(builder);
}

JsonBuilder *json_builder_set_member_name(JsonBuilder *builder, const gchar *member_name)
{
	REAL(json_builder_set_member_name);
	return real(builder, member_name);
}

JsonBuilder *json_builder_add_int_value(JsonBuilder *builder, gint64 value)
{
	REAL(json_builder_add_int_value);
	return real(builder, value);
}

JsonBuilder *json_builder_add_double_value(JsonBuilder *builder, gdouble value)
{
	REAL(json_builder_add_double_value);
	return real(builder, value);
}

JsonBuilder *json_builder_add_boolean_value(JsonBuilder *builder, gboolean value)
{
	REAL(json_builder_add_boolean_value);
	return real(builder, value);
}

JsonBuilder *json_builder_add_string_value(JsonBuilder *builder, const gchar *value)
{
	REAL(json_builder_add_string_value);
	return real(builder, value);
}

JsonBuilder *json_builder_add_null_value(JsonBuilder *builder)
{
	REAL(json_builder_add_null_value);
	return real(builder);
}

JsonGenerator *json_generator_new(void)
{
	REAL(json_generator_new);
	return real();
}

void json_generator_set_root(JsonGenerator *generator, JsonNode *node)
{
	REAL(json_generator_set_root);
	real(generator, node);
}

gchar *json_generator_to_data(JsonGenerator *generator, gsize *length)
{
	REAL(json_generator_to_data);
	return real(generator, length);
}

JsonNode *json_node_alloc(void)
{
	REAL(json_node_alloc);
	return real();
}

JsonNode *json_node_init_string(JsonNode *node, const char *value)
{
	REAL(json_node_init_string);
	return real(node, value);
}

void json_node_unref(JsonNode *node)
{
	REAL(json_node_unref);
	real(node);
}

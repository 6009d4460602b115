/* mv-policy-store: policy versions in the database. */
#include "mv-policy-store.h"

#include <string.h>

#include "mv-audit.h"
#include "mv-hash.h"

void mv_policy_version_free(gpointer p)
{
	mv_policy_version *v = p;
	if (v == NULL)
		return;
	g_free(v->name);
	g_free(v->sha256);
	g_free(v->source_file);
	g_free(v->loaded_by);
	g_free(v->loaded_at);
	g_free(v->label);
	g_free(v->db_role);
	g_free(v);
}

static mv_status parse_stored(const char *xml, gsize len, gint64 version, mv_policy **policy_r,
                              char **error_r)
{
	char *name = g_strdup_printf("policy version %" G_GINT64_FORMAT, version);
	GPtrArray *problems = g_ptr_array_new_with_free_func(g_free);
	mv_status st = mv_policy_parse(xml, len, name, policy_r, problems, error_r);
	g_ptr_array_free(problems, TRUE);
	g_free(name);
	return st;
}

mv_status mv_policy_store_get(mv_db *db, gint64 version, mv_policy **policy_r, char **xml_r,
                              char **error_r)
{
	*policy_r = NULL;
	if (xml_r != NULL)
		*xml_r = NULL;
	char v[24];
	g_snprintf(v, sizeof v, "%" G_GINT64_FORMAT, version);
	const char *values[] = {v};
	PGresult *r = NULL;
	mv_status st = mv_db_query(db, "SELECT xml FROM policy WHERE version = $1", 1, values, NULL,
	                           NULL, 0, &r, error_r);
	if (st != MV_OK)
		return st;
	if (PQntuples(r) != 1) {
		PQclear(r);
		return mv_fail(error_r, MV_ERR_NOT_FOUND, "no policy version %s", v);
	}
	const char *xml = PQgetvalue(r, 0, 0);
	st = parse_stored(xml, strlen(xml), version, policy_r, error_r);
	if (st == MV_OK && xml_r != NULL)
		*xml_r = g_strdup(xml);
	PQclear(r);
	return st;
}

mv_status mv_policy_store_current(mv_db *db, mv_policy **policy_r, gint64 *version_r,
                                  char **error_r)
{
	*policy_r = NULL;
	*version_r = 0;
	PGresult *r = NULL;
	mv_status st = mv_db_query(db, "SELECT max(version) FROM policy", 0, NULL, NULL, NULL, 0, &r,
	                           error_r);
	if (st != MV_OK)
		return st;
	gint64 version = PQgetisnull(r, 0, 0) ? 0 : g_ascii_strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	if (version == 0)
		return MV_OK;
	st = mv_policy_store_get(db, version, policy_r, NULL, error_r);
	if (st == MV_OK)
		*version_r = version;
	return st;
}

/* The checks of a load, against current (NULL: none loaded). */
static mv_status check_next(const char *path, const mv_policy *current, const mv_policy *next,
                            GPtrArray *problems, char **error_r)
{
	gsize len = 0;
	const char *xml = mv_policy_xml(next, &len);
	if (memchr(xml, '\0', len) != NULL) {
		mv_status st = mv_fail(error_r, MV_ERR_CONFIG, "%s: the policy contains a NUL byte", path);
		if (problems != NULL)
			g_ptr_array_add(problems, g_strdup_printf("%s: the policy contains a NUL byte", path));
		return st;
	}
	if (current != NULL)
		return mv_policy_check_successor(current, next, problems, error_r);
	return MV_OK;
}

mv_status mv_policy_store_check(mv_db *db, const char *path, mv_policy **next_r,
                                mv_policy **current_r, gint64 *current_version_r,
                                GPtrArray *problems, char **error_r)
{
	if (next_r != NULL)
		*next_r = NULL;
	if (current_r != NULL)
		*current_r = NULL;
	*current_version_r = 0;
	mv_policy *next = NULL, *current = NULL;
	mv_status st = mv_policy_parse_file(path, &next, problems, error_r);
	if (st == MV_OK && db != NULL)
		st = mv_policy_store_current(db, &current, current_version_r, error_r);
	if (st == MV_OK)
		st = check_next(path, current, next, problems, error_r);
	if (st == MV_OK && next_r != NULL)
		*next_r = g_steal_pointer(&next);
	if (st == MV_OK && current_r != NULL)
		*current_r = g_steal_pointer(&current);
	mv_policy_free(&next);
	mv_policy_free(&current);
	return st;
}

mv_status mv_policy_store_load(mv_db *db, const char *path, const char *actor, const char *label,
                               gint64 *version_r, mv_policy **previous_r,
                               gint64 *previous_version_r, mv_policy **loaded_r,
                               GPtrArray *problems, char **error_r)
{
	*version_r = 0;
	*previous_version_r = 0;
	if (previous_r != NULL)
		*previous_r = NULL;
	if (loaded_r != NULL)
		*loaded_r = NULL;
	if (label != NULL && *label == '\0')
		label = NULL;
	/* Serialise loads, so two cannot both pass the check against the
	 * same current version. */
	mv_status st = mv_db_exec(db, "BEGIN; SELECT pg_advisory_xact_lock(7231980412)", error_r);
	mv_policy *current = NULL, *next = NULL;
	gint64 cur_version = 0;
	if (st == MV_OK)
		st = mv_policy_store_check(db, path, &next, &current, &cur_version, problems, error_r);
	uint8_t sha[MV_SHA256_LEN];
	PGresult *r = NULL;
	if (st == MV_OK) {
		gsize len = 0;
		const char *xml = mv_policy_xml(next, &len);
		char *text = g_strndup(xml, len);
		mv_sha256(xml, len, sha);
		/* The loading role (db_role) is the database's to record
		 * (schema/015-reviewers.sql). */
		const char *values[] = {mv_policy_name(next), text, (const char *)sha, path, actor, label};
		int lengths[] = {0, 0, MV_SHA256_LEN, 0, 0, 0};
		int formats[] = {0, 0, 1, 0, 0, 0};
		st = mv_db_query(db,
		                 "INSERT INTO policy (name, xml, sha256, source_file, loaded_by, label) "
		                 "VALUES ($1, $2, $3, $4, $5, $6) RETURNING version",
		                 6, values, lengths, formats, 0, &r, error_r);
		if (st == MV_OK)
			*version_r = g_ascii_strtoll(PQgetvalue(r, 0, 0), NULL, 10);
		PQclear(r);
		g_free(text);
	}
	if (st == MV_OK) {
		char hex[MV_SHA256_HEX_LEN + 1];
		mv_sha256_to_hex(sha, hex);
		char *subject = g_strdup_printf("policy version %" G_GINT64_FORMAT, *version_r);
		char *details = g_strdup_printf("file=%s\nsha256=%s\nloaded_by=%s\nlabel=%s\nreplaces=%"
		                                G_GINT64_FORMAT, path, hex, actor,
		                                label != NULL ? label : "", cur_version);
		st = mv_audit_append(db, actor, "policy.load", subject, details, NULL, error_r);
		g_free(subject);
		g_free(details);
	}
	st = mv_db_end(db, st, error_r);
	if (st == MV_OK)
		*previous_version_r = cur_version;
	if (st == MV_OK && previous_r != NULL)
		*previous_r = g_steal_pointer(&current);
	if (st == MV_OK && loaded_r != NULL)
		*loaded_r = g_steal_pointer(&next);
	mv_policy_free(&current);
	mv_policy_free(&next);
	return st;
}

mv_status mv_policy_store_history(mv_db *db, GPtrArray **versions_r, char **error_r)
{
	*versions_r = NULL;
	PGresult *r = NULL;
	mv_status st = mv_db_query(
		db,
		"SELECT version, name, encode(sha256, 'hex'), source_file, loaded_by, "
		MV_SQL_ISO_UTC("loaded_at") ", label, db_role "
		"FROM policy ORDER BY version",
		0, NULL, NULL, NULL, 0, &r, error_r);
	if (st != MV_OK)
		return st;
	GPtrArray *out = g_ptr_array_new_with_free_func(mv_policy_version_free);
	for (int i = 0; i < PQntuples(r); i++) {
		mv_policy_version *v = g_new0(mv_policy_version, 1);
		v->version = g_ascii_strtoll(PQgetvalue(r, i, 0), NULL, 10);
		v->name = PQgetisnull(r, i, 1) ? NULL : g_strdup(PQgetvalue(r, i, 1));
		v->sha256 = g_strdup(PQgetvalue(r, i, 2));
		v->source_file = PQgetisnull(r, i, 3) ? NULL : g_strdup(PQgetvalue(r, i, 3));
		v->loaded_by = g_strdup(PQgetvalue(r, i, 4));
		v->loaded_at = g_strdup(PQgetvalue(r, i, 5));
		v->label = PQgetisnull(r, i, 6) ? NULL : g_strdup(PQgetvalue(r, i, 6));
		v->db_role = PQgetisnull(r, i, 7) ? NULL : g_strdup(PQgetvalue(r, i, 7));
		g_ptr_array_add(out, v);
	}
	PQclear(r);
	*versions_r = out;
	return MV_OK;
}

/* mv-directory: database roles from the company directory, with libldap. */
#include "mv-directory.h"

#include <ldap.h>
#include <string.h>

#include "mv-users.h"

#define LDAP_TIMEOUT_SECONDS 30

void mv_directory_change_free(gpointer change)
{
	mv_directory_change *c = change;
	if (c == NULL)
		return;
	g_free(c->role);
	g_free(c->dn);
	g_free(c->action);
	g_strfreev(c->changes);
	g_free(c);
}

/* What the directory says of one user. */
typedef struct {
	char *role, *dn;
	GTree *groups;    /* full role names (mailvault_employee), sorted */
	GTree *addresses; /* lower case, sorted */
} dir_user;

static void dir_user_free(gpointer p)
{
	dir_user *u = p;
	g_free(u->role);
	g_free(u->dn);
	g_tree_unref(u->groups);
	g_tree_unref(u->addresses);
	g_free(u);
}

static int str_cmp(gconstpointer a, gconstpointer b, gpointer data)
{
	(void)data;
	return strcmp(a, b);
}

static GTree *str_set(void)
{
	return g_tree_new_full(str_cmp, NULL, g_free, NULL);
}

static void set_add(GTree *set, const char *s)
{
	if (g_tree_lookup_extended(set, s, NULL, NULL))
		return;
	g_tree_insert(set, g_strdup(s), GINT_TO_POINTER(1));
}

static gboolean array_add(gpointer key, gpointer value, gpointer data)
{
	(void)value;
	mv_db_array_text(data, key);
	return FALSE;
}

static char *set_array(GTree *set)
{
	GString *s = g_string_new("{");
	g_tree_foreach(set, array_add, s);
	g_string_append_c(s, '}');
	return g_string_free(s, FALSE);
}

/* A role name mailvault gives (schema 015/021 check it again). */
static gboolean role_name_ok(const char *s)
{
	if (s == NULL || *s == '\0' || strlen(s) > 32 || g_str_has_prefix(s, "pg_") ||
	    g_str_has_prefix(s, "mailvault"))
		return FALSE;
	if (!(g_ascii_islower(*s) || *s == '_'))
		return FALSE;
	for (const char *p = s; *p; p++)
		if (!(g_ascii_islower(*p) || g_ascii_isdigit(*p) || *p == '_' || *p == '-'))
			return FALSE;
	return TRUE;
}

/* An address worth granting: local@domain, printable, no blanks. */
static char *address_of(const struct berval *v, gboolean proxy)
{
	const char *p = v->bv_val;
	gsize n = v->bv_len;
	if (proxy) {
		/* proxyAddresses: "SMTP:primary@x", "smtp:alias@x"; X500:, sip:, ... are not mail */
		if (n < 5 || g_ascii_strncasecmp(p, "smtp:", 5) != 0)
			return NULL;
		p += 5;
		n -= 5;
	}
	if (n < 3 || n > 254 || memchr(p, '\0', n) != NULL)
		return NULL;
	char *a = g_ascii_strdown(p, (gssize)n);
	const char *at = strchr(a, '@');
	gboolean ok = at != NULL && at != a && at[1] != '\0' && strchr(at + 1, '@') == NULL;
	for (const char *c = a; ok && *c; c++)
		ok = (unsigned char)*c > ' ' && *c != 0x7f;
	if (!ok) {
		g_free(a);
		return NULL;
	}
	return a;
}

typedef struct {
	LDAP *ld;
	const mv_directory_options *o;
	const char *login_attr;
	GHashTable *users; /* role -> dir_user */
	GHashTable *seen_dn; /* dn -> role, or "" for an entry that is not a user */
} sync_ctx;

static mv_status ldap_fail(char **error_r, LDAP *ld, int rc, const char *what)
{
	char *diag = NULL;
	if (ld != NULL)
		ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diag);
	mv_status st = mv_fail(error_r, rc == LDAP_INVALID_CREDENTIALS || rc == LDAP_INSUFFICIENT_ACCESS
	                                        ? MV_ERR_DENIED : MV_ERR_CONFIG,
	                       "LDAP %s: %s%s%s", what, ldap_err2string(rc),
	                       diag != NULL && *diag ? ": " : "", diag != NULL ? diag : "");
	ldap_memfree(diag);
	return st;
}

static mv_status search(sync_ctx *x, const char *base, int scope, const char *filter, char **attrs,
                        LDAPMessage **res_r, int *rc_r, char **error_r)
{
	struct timeval tl = {LDAP_TIMEOUT_SECONDS, 0};
	*res_r = NULL;
	int rc = ldap_search_ext_s(x->ld, base, scope, filter, attrs, 0, NULL, NULL, &tl,
	                           MV_DIRECTORY_MAX_USERS + 1, res_r);
	*rc_r = rc;
	if (rc == LDAP_SUCCESS)
		return MV_OK;
	if (rc == LDAP_NO_SUCH_OBJECT && scope == LDAP_SCOPE_BASE)
		return MV_OK; /* a member that is gone: no user */
	ldap_msgfree(*res_r);
	*res_r = NULL;
	char *what = g_strdup_printf("search of %s", base);
	mv_status st = ldap_fail(error_r, x->ld, rc, what);
	g_free(what);
	return st;
}

/* The user entry at dn (or found by filter under the base): add it to
 * role_full's members. */
static mv_status add_member(sync_ctx *x, const char *dn, const char *filter, const char *role_full,
                            char **error_r)
{
	const char *known = dn != NULL ? g_hash_table_lookup(x->seen_dn, dn) : NULL;
	if (known != NULL) {
		dir_user *u = *known ? g_hash_table_lookup(x->users, known) : NULL;
		if (u != NULL)
			set_add(u->groups, role_full);
		return MV_OK;
	}
	char *attrs[] = {(char *)x->login_attr, "mail", "proxyAddresses", "userAccountControl", NULL};
	LDAPMessage *res = NULL;
	int rc = 0;
	mv_status st = dn != NULL
	                       ? search(x, dn, LDAP_SCOPE_BASE, "(objectClass=*)", attrs, &res, &rc, error_r)
	                       : search(x, x->o->base, LDAP_SCOPE_SUBTREE, filter, attrs, &res, &rc, error_r);
	if (st != MV_OK || res == NULL)
		return st;
	for (LDAPMessage *e = ldap_first_entry(x->ld, res); e != NULL; e = ldap_next_entry(x->ld, e)) {
		char *edn = ldap_get_dn(x->ld, e);
		struct berval **login = ldap_get_values_len(x->ld, e, x->login_attr);
		struct berval **uac = ldap_get_values_len(x->ld, e, "userAccountControl");
		char *role = NULL;
		gboolean disabled = FALSE;
		if (uac != NULL && uac[0] != NULL && uac[0]->bv_len < 12) {
			char num[16];
			memcpy(num, uac[0]->bv_val, uac[0]->bv_len);
			num[uac[0]->bv_len] = '\0';
			disabled = (g_ascii_strtoll(num, NULL, 10) & 2) != 0; /* ACCOUNTDISABLE */
		}
		if (login != NULL && login[0] != NULL && login[0]->bv_len <= 64 &&
		    memchr(login[0]->bv_val, '\0', login[0]->bv_len) == NULL && !disabled)
			role = g_ascii_strdown(login[0]->bv_val, (gssize)login[0]->bv_len);
		if (edn != NULL)
			g_hash_table_replace(x->seen_dn, g_strdup(edn), g_strdup(role != NULL ? role : ""));
		if (role != NULL) {
			dir_user *u = g_hash_table_lookup(x->users, role);
			if (u == NULL) {
				if (g_hash_table_size(x->users) >= MV_DIRECTORY_MAX_USERS) {
					st = mv_fail(error_r, MV_ERR_LIMIT, "the directory's groups have more than %d "
					             "members; nothing was changed", MV_DIRECTORY_MAX_USERS);
				} else {
					u = g_new0(dir_user, 1);
					u->role = g_strdup(role);
					u->dn = g_strdup(edn != NULL ? edn : "");
					u->groups = str_set();
					u->addresses = str_set();
					g_hash_table_insert(x->users, g_strdup(role), u);
				}
			}
			if (u != NULL) {
				set_add(u->groups, role_full);
				for (int proxy = 0; proxy < 2; proxy++) {
					struct berval **v = ldap_get_values_len(x->ld, e, proxy ? "proxyAddresses" : "mail");
					for (int i = 0; v != NULL && v[i] != NULL; i++) {
						char *a = address_of(v[i], proxy);
						if (a != NULL && g_tree_nnodes(u->addresses) < MV_DIRECTORY_MAX_ADDRESSES)
							set_add(u->addresses, a);
						g_free(a);
					}
					ldap_value_free_len(v);
				}
			}
		}
		g_free(role);
		ldap_value_free_len(login);
		ldap_value_free_len(uac);
		ldap_memfree(edn);
		if (st != MV_OK)
			break;
	}
	ldap_msgfree(res);
	return st;
}

static char *escaped(const char *value)
{
	struct berval in = {.bv_val = (char *)value, .bv_len = strlen(value)}, out = {0};
	if (ldap_bv2escaped_filter_value(&in, &out) != 0)
		return NULL;
	char *s = g_strndup(out.bv_val, out.bv_len);
	ber_memfree(out.bv_val);
	return s;
}

/* Every member of group `group` (a cn under the base, or a DN). */
static mv_status read_group(sync_ctx *x, const char *group, const char *role_full, char **error_r)
{
	char *attrs[] = {"member", "uniqueMember", "memberUid", NULL};
	LDAPMessage *res = NULL;
	int rc = 0;
	mv_status st;
	if (strchr(group, '=') != NULL) {
		st = search(x, group, LDAP_SCOPE_BASE, "(objectClass=*)", attrs, &res, &rc, error_r);
	} else {
		char *cn = escaped(group);
		if (cn == NULL)
			return mv_fail(error_r, MV_ERR_USAGE, "group name %s cannot be searched for", group);
		char *filter = g_strdup_printf("(&(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)"
		                               "(objectClass=group)(objectClass=posixGroup))(cn=%s))", cn);
		st = search(x, x->o->base, LDAP_SCOPE_SUBTREE, filter, attrs, &res, &rc, error_r);
		g_free(filter);
		g_free(cn);
	}
	if (st != MV_OK)
		return st;
	int n = res != NULL ? ldap_count_entries(x->ld, res) : 0;
	if (n != 1) {
		ldap_msgfree(res);
		return mv_fail(error_r, MV_ERR_NOT_FOUND,
		               n == 0 ? "the directory has no group %s (under %s); nothing was changed"
		                      : "the directory has several groups %s (under %s): name it by its DN; "
		                        "nothing was changed",
		               group, x->o->base);
	}
	LDAPMessage *e = ldap_first_entry(x->ld, res);
	for (int kind = 0; st == MV_OK && kind < 3; kind++) {
		struct berval **v = ldap_get_values_len(x->ld, e, attrs[kind]);
		for (int i = 0; st == MV_OK && v != NULL && v[i] != NULL; i++) {
			char *val = g_strndup(v[i]->bv_val, v[i]->bv_len);
			if (kind < 2) {
				st = add_member(x, val, NULL, role_full, error_r);
			} else {
				char *uid = escaped(val);
				char *filter = uid != NULL ? g_strdup_printf("(%s=%s)", x->login_attr, uid) : NULL;
				if (filter != NULL)
					st = add_member(x, NULL, filter, role_full, error_r);
				g_free(filter);
				g_free(uid);
			}
			g_free(val);
		}
		ldap_value_free_len(v);
	}
	ldap_msgfree(res);
	return st;
}

static mv_status read_directory(sync_ctx *x, char **error_r)
{
	const mv_directory_options *o = x->o;
	int rc = ldap_initialize(&x->ld, o->uri);
	if (rc != LDAP_SUCCESS)
		return ldap_fail(error_r, NULL, rc, o->uri);
	int v3 = LDAP_VERSION3, off = 0;
	struct timeval tv = {LDAP_TIMEOUT_SECONDS, 0};
	ldap_set_option(x->ld, LDAP_OPT_PROTOCOL_VERSION, &v3);
	ldap_set_option(x->ld, LDAP_OPT_NETWORK_TIMEOUT, &tv);
	ldap_set_option(x->ld, LDAP_OPT_TIMEOUT, &tv);
	ldap_set_option(x->ld, LDAP_OPT_REFERRALS, &off);
	if (o->starttls && (rc = ldap_start_tls_s(x->ld, NULL, NULL)) != LDAP_SUCCESS)
		return ldap_fail(error_r, x->ld, rc, "StartTLS");
	struct berval cred = {0};
	if (o->bind_dn != NULL && o->bind_password != NULL) {
		cred.bv_val = (char *)o->bind_password;
		cred.bv_len = strlen(o->bind_password);
	}
	rc = ldap_sasl_bind_s(x->ld, o->bind_dn, LDAP_SASL_SIMPLE, &cred, NULL, NULL, NULL);
	if (rc != LDAP_SUCCESS)
		return ldap_fail(error_r, x->ld, rc, o->bind_dn != NULL ? "bind" : "anonymous bind");
	mv_status st = MV_OK;
	for (guint i = 0; st == MV_OK && i < o->n_groups; i++) {
		char *full = g_strconcat("mailvault_", o->roles[i], NULL);
		st = read_group(x, o->groups[i], full, error_r);
		g_free(full);
	}
	return st;
}

/* Run `sql` with params, one text per row of its only column. */
static mv_status query_lines(mv_db *db, const char *sql, int n, const char *const *v, char ***lines_r,
                             char **error_r)
{
	PGresult *r = NULL;
	mv_status st = mv_db_query(db, sql, n, v, NULL, NULL, 0, &r, error_r);
	if (st == MV_OK) {
		char **lines = g_new0(char *, PQntuples(r) + 1);
		for (int i = 0; i < PQntuples(r); i++)
			lines[i] = g_strdup(PQgetvalue(r, i, 0));
		*lines_r = lines;
	}
	PQclear(r);
	return st;
}

static gint change_cmp(gconstpointer a, gconstpointer b)
{
	const mv_directory_change *x = *(mv_directory_change *const *)a, *y = *(mv_directory_change *const *)b;
	return strcmp(x->role, y->role);
}

mv_status mv_directory_sync(mv_db *db, const mv_directory_options *o, GPtrArray **changes_r,
                            char **error_r)
{
	*changes_r = NULL;
	if (o->uri == NULL || o->base == NULL || o->n_groups == 0)
		return mv_fail(error_r, MV_ERR_USAGE, "a sync needs the directory's URI, a base DN and at "
		                                      "least one group mapped to a role");
	for (guint i = 0; i < o->n_groups; i++)
		if (!mv_users_role_known(o->roles[i]))
			return mv_fail(error_r, MV_ERR_USAGE, "group %s: unknown role '%s' (employee, auditor, "
			               "legal, ingest or purge)", o->groups[i], o->roles[i]);
	sync_ctx x = {
		.o = o,
		.login_attr = o->login_attribute != NULL ? o->login_attribute : "uid",
		.users = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, dir_user_free),
		.seen_dn = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free),
	};
	mv_status st = read_directory(&x, error_r);
	gboolean began = FALSE;
	if (x.ld != NULL)
		ldap_unbind_ext_s(x.ld, NULL, NULL);
	GPtrArray *changes = g_ptr_array_new_with_free_func(mv_directory_change_free);
	if (st == MV_OK)
		st = mv_db_exec(db, "BEGIN", error_r);
	began = st == MV_OK;
	/* The users the directory has, in name order. */
	GList *names = st == MV_OK ? g_list_sort(g_hash_table_get_keys(x.users), (GCompareFunc)strcmp) : NULL;
	for (GList *l = names; st == MV_OK && l != NULL; l = l->next) {
		dir_user *u = g_hash_table_lookup(x.users, l->data);
		mv_directory_change *c = g_new0(mv_directory_change, 1);
		c->role = g_strdup(u->role);
		c->dn = g_strdup(u->dn);
		g_ptr_array_add(changes, c);
		if (!role_name_ok(u->role)) {
			c->action = g_strdup("skipped");
			c->changes = g_new0(char *, 2);
			c->changes[0] = g_strdup("not a name mailvault gives a database role (lower-case "
			                         "letters, digits, - and _, at most 32; not pg_*, not mailvault*)");
			continue;
		}
		char *groups = set_array(u->groups), *addresses = set_array(u->addresses);
		const char *v[] = {u->role, u->dn, groups, addresses, o->actor};
		char *uerr = NULL;
		st = mv_db_exec(db, "SAVEPOINT mv_user", error_r);
		if (st == MV_OK) {
			mv_status ust = query_lines(db, "SELECT unnest(mv_directory_apply($1, $2, $3::text[], "
			                                "$4::text[], $5))",
			                            5, v, &c->changes, &uerr);
			if (ust == MV_ERR_USAGE) {
				/* this user only: skipped, with the database's reason */
				st = mv_db_exec(db, "ROLLBACK TO SAVEPOINT mv_user", error_r);
				c->action = g_strdup("skipped");
				c->changes = g_new0(char *, 2);
				c->changes[0] = g_strdup(uerr);
			} else if (ust != MV_OK) {
				st = mv_fail(error_r, ust, "%s", uerr);
			} else {
				st = mv_db_exec(db, "RELEASE SAVEPOINT mv_user", error_r);
				gboolean created = c->changes[0] != NULL && g_str_has_prefix(c->changes[0], "created role");
				c->action = g_strdup(created ? "created" : c->changes[0] != NULL ? "updated" : "unchanged");
			}
		}
		g_free(uerr);
		g_free(groups);
		g_free(addresses);
	}
	g_list_free(names);
	/* Those the directory no longer has. */
	char **gone = NULL;
	if (st == MV_OK)
		st = query_lines(db, "SELECT role FROM directory_user WHERE removed_at IS NULL ORDER BY role", 0,
		                 NULL, &gone, error_r);
	for (char **g = gone; st == MV_OK && g != NULL && *g != NULL; g++) {
		if (g_hash_table_contains(x.users, *g))
			continue;
		mv_directory_change *c = g_new0(mv_directory_change, 1);
		c->role = g_strdup(*g);
		c->action = g_strdup("disabled");
		g_ptr_array_add(changes, c);
		const char *v[] = {*g, o->actor};
		st = query_lines(db, "SELECT unnest(mv_directory_disable($1, $2))", 2, v, &c->changes, error_r);
	}
	g_strfreev(gone);
	if (st == MV_OK && o->dry_run) {
		st = mv_db_exec(db, "ROLLBACK", error_r);
	} else if (began) {
		st = mv_db_end(db, st, error_r);
	}
	g_hash_table_destroy(x.users);
	g_hash_table_destroy(x.seen_dn);
	if (st != MV_OK) {
		g_ptr_array_unref(changes);
		return st;
	}
	g_ptr_array_sort(changes, change_cmp);
	*changes_r = changes;
	return MV_OK;
}

-- 026-directory: logins from the company directory (LDAP, Active
-- Directory).  PostgreSQL authenticates these users against the directory
-- itself (pg_hba.conf method ldap, docs/access.md); mailvault stores no
-- password.  `mailvault user sync` reads the directory and brings each
-- user's database role, group roles and address grants to what the
-- directory says, through mv_directory_apply / mv_directory_disable:
--
--   directory_user   the roles the directory manages: its DN, the group
--                    roles and the addresses the last sync gave it (so a
--                    sync takes back only what a sync gave, never a grant
--                    legal made by hand), and when it left the directory
--
-- A user who leaves the directory keeps their role, NOLOGIN, without group
-- roles or directory addresses: the audit trail and the decisions that
-- name the role stay meaningful, and nobody can log in as it.  A role the
-- directory did not create (a peer user, an administrator) is never taken
-- over.

CREATE TABLE directory_user (
    role       text PRIMARY KEY,
    dn         text NOT NULL,
    groups     text[] NOT NULL DEFAULT '{}',
    addresses  text[] NOT NULL DEFAULT '{}',
    synced_by  text NOT NULL,
    synced_at  timestamptz NOT NULL DEFAULT now(),
    removed_at timestamptz
);

-- Bring role p_role to what the directory says: LOGIN without a password,
-- exactly the group roles p_groups (of those a sync manages) and the
-- addresses p_addresses (granted by a sync; grants made by hand stay).
-- Returns the changes made, one text each (none: it was up to date); each
-- change of a user is one audit entry (user.sync).
CREATE FUNCTION mv_directory_apply(p_role text, p_dn text, p_groups text[], p_addresses text[],
                                   p_actor text) RETURNS text[]
LANGUAGE plpgsql AS $$
DECLARE
    d directory_user%ROWTYPE;
    r record;
    g text;
    a text;
    v_groups text[] := ARRAY(SELECT DISTINCT x FROM unnest(coalesce(p_groups, '{}')) x ORDER BY 1);
    v_addrs text[] := ARRAY(SELECT DISTINCT lower(x) FROM unnest(coalesce(p_addresses, '{}')) x ORDER BY 1);
    v_old_groups text[] := '{}';
    v_old_addrs text[] := '{}';
    v_changes text[] := '{}';
BEGIN
    IF p_role !~ '^[a-z_][a-z0-9_-]{0,31}$' OR p_role LIKE 'pg\_%' OR p_role LIKE 'mailvault%' THEN
        RAISE EXCEPTION 'user name %: not a name mailvault gives a database role '
                        '(lower-case letters, digits, - and _, at most 32; not pg_*, not mailvault*)', p_role
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOREACH g IN ARRAY v_groups LOOP
        IF g NOT IN ('mailvault_ingest', 'mailvault_legal', 'mailvault_auditor', 'mailvault_purge',
                     'mailvault_employee') THEN
            RAISE EXCEPTION 'unknown role %', g USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END LOOP;
    FOREACH a IN ARRAY v_addrs LOOP
        IF a !~ '^[^@\s]+@[^@\s]+$' THEN
            RAISE EXCEPTION 'address % of %: not an e-mail address', a, p_role
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END LOOP;
    SELECT * INTO d FROM directory_user WHERE role = p_role FOR UPDATE;
    SELECT rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls, rolcanlogin INTO r
      FROM pg_roles WHERE rolname = p_role;
    IF FOUND AND d.role IS NULL THEN
        RAISE EXCEPTION 'database role % exists and the directory did not create it; '
                        'mailvault user sync does not take it over', p_role
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF FOUND AND (r.rolsuper OR r.rolcreaterole OR r.rolcreatedb OR r.rolreplication OR r.rolbypassrls) THEN
        RAISE EXCEPTION 'database role % has administrative rights; it cannot be a person''s role', p_role
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT FOUND THEN
        EXECUTE format('CREATE ROLE %I LOGIN PASSWORD NULL', p_role);
        v_changes := v_changes || ('created role ' || p_role);
    ELSIF NOT r.rolcanlogin THEN
        EXECUTE format('ALTER ROLE %I LOGIN PASSWORD NULL', p_role);
        v_changes := v_changes || ('enabled login of ' || p_role);
    END IF;
    IF d.role IS NOT NULL AND d.removed_at IS NULL THEN
        v_old_groups := d.groups;
        v_old_addrs := d.addresses;
    END IF;
    FOREACH g IN ARRAY v_groups LOOP
        IF NOT pg_has_role(p_role, g, 'MEMBER') OR NOT g = ANY (v_old_groups) THEN
            EXECUTE format('GRANT %I TO %I', g, p_role);
            IF NOT g = ANY (v_old_groups) THEN
                v_changes := v_changes || ('granted ' || g);
            END IF;
        END IF;
    END LOOP;
    FOREACH g IN ARRAY v_old_groups LOOP
        IF NOT g = ANY (v_groups) THEN
            EXECUTE format('REVOKE %I FROM %I', g, p_role);
            v_changes := v_changes || ('revoked ' || g);
        END IF;
    END LOOP;
    FOREACH a IN ARRAY v_addrs LOOP
        INSERT INTO access_address (role, address, granted_by) VALUES (p_role, a, p_actor)
        ON CONFLICT DO NOTHING;
        IF NOT a = ANY (v_old_addrs) THEN
            v_changes := v_changes || ('granted address ' || a);
        END IF;
    END LOOP;
    FOREACH a IN ARRAY v_old_addrs LOOP
        IF NOT a = ANY (v_addrs) THEN
            DELETE FROM access_address WHERE role = p_role AND address = a;
            v_changes := v_changes || ('revoked address ' || a);
        END IF;
    END LOOP;
    INSERT INTO directory_user AS u (role, dn, groups, addresses, synced_by)
    VALUES (p_role, p_dn, v_groups, v_addrs, p_actor)
    ON CONFLICT (role) DO UPDATE
       SET dn = EXCLUDED.dn, groups = EXCLUDED.groups, addresses = EXCLUDED.addresses,
           synced_by = EXCLUDED.synced_by, synced_at = now(), removed_at = NULL;
    IF d.role IS NOT NULL AND d.dn <> p_dn THEN
        v_changes := v_changes || ('directory entry ' || p_dn);
    END IF;
    IF cardinality(v_changes) > 0 THEN
        PERFORM mv_audit_append(p_actor, 'user.sync', 'user ' || p_role,
                                'dn=' || p_dn || E'\nroles=' || array_to_string(v_groups, ',') ||
                                E'\naddresses=' || array_to_string(v_addrs, ',') ||
                                E'\nchanges=' || array_to_string(v_changes, '; '));
    END IF;
    RETURN v_changes;
END;
$$;

-- A user who left the directory (or its mapped groups): NOLOGIN, without
-- the group roles and addresses a sync gave.  Returns the changes (none
-- when it was disabled already).
CREATE FUNCTION mv_directory_disable(p_role text, p_actor text) RETURNS text[]
LANGUAGE plpgsql AS $$
DECLARE
    d directory_user%ROWTYPE;
    g text;
    a text;
    v_changes text[] := '{}';
BEGIN
    SELECT * INTO d FROM directory_user WHERE role = p_role FOR UPDATE;
    IF NOT FOUND OR d.removed_at IS NOT NULL THEN
        RETURN v_changes;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = p_role) THEN
        FOREACH g IN ARRAY d.groups LOOP
            EXECUTE format('REVOKE %I FROM %I', g, p_role);
            v_changes := v_changes || ('revoked ' || g);
        END LOOP;
        EXECUTE format('ALTER ROLE %I NOLOGIN', p_role);
        v_changes := v_changes || ('disabled login of ' || p_role);
    END IF;
    FOREACH a IN ARRAY d.addresses LOOP
        DELETE FROM access_address WHERE role = p_role AND address = a;
        v_changes := v_changes || ('revoked address ' || a);
    END LOOP;
    UPDATE directory_user SET groups = '{}', addresses = '{}', removed_at = now(), synced_by = p_actor,
                              synced_at = now()
     WHERE role = p_role;
    PERFORM mv_audit_append(p_actor, 'user.sync', 'user ' || p_role,
                            'dn=' || d.dn || E'\nremoved from the directory' ||
                            E'\nchanges=' || array_to_string(v_changes, '; '));
    RETURN v_changes;
END;
$$;

-- The owner runs a sync (it creates roles); nobody else.
REVOKE ALL ON FUNCTION mv_directory_apply(text, text, text[], text[], text) FROM PUBLIC;
REVOKE ALL ON FUNCTION mv_directory_disable(text, text) FROM PUBLIC;
REVOKE ALL ON directory_user FROM mailvault_ingest, mailvault_auditor, mailvault_purge;
GRANT SELECT ON directory_user TO mailvault_legal;

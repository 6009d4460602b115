-- 019-access: who may see what, decided by PostgreSQL (row-level security).
--
--  mailvault_employee  sees the messages where one of the addresses granted
--                      to their role (access_address) appears in any header
--                      or envelope role of table address
--  mailvault_auditor   sees only the messages of the holds (cases) granted
--                      to their role (access_case); exports only those
--  mailvault_legal     sees everything; grants and revokes addresses and cases
--  mailvault_ingest,   see what their jobs need (ingest deduplicates, settles
--  mailvault_purge     ongoing holds, indexes; purge judges expiry and holds):
--                      every row, as before; their table privileges are
--                      unchanged
--
-- RLS is ENABLEd, not FORCEd: the schema owner (the operator's account)
-- is not bound by it, so that the SECURITY DEFINER functions it owns
-- (mv_ingest_batch, mv_purge_message, mv_index_pending, the audit and
-- guard triggers) still see every row they must judge.  None of them
-- returns content to its caller; the ones an employee or an auditor may
-- execute are mv_audit_append (returns an entry number) and mv_visible
-- (whether the caller sees one message).
--
-- Visibility is decided by the grants alone: the policies ask
-- mv_visible_ids(current_user) (mv_visible(role, id) for one message),
-- run as the owner; they answer only for a role the session may act as
-- (its own, or one it may SET ROLE to: employees and auditors are members
-- of none but their group), so nobody learns another's view.  Every table that
-- reveals a message's content or metadata asks it: message, message_text,
-- address, part, arrival, message_splice, review_decision.  Blobs are
-- content-addressed and shared between messages, so a blob has no message
-- of its own: its policy asks whether the caller sees a message, splice or
-- part that names it; those subqueries run under the caller's own policies,
-- so a blob is readable exactly when it belongs to a message the caller
-- may read (and the same attachment in someone else's message is the same
-- bytes the caller already has).

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mailvault_employee') THEN
        IF NOT (SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user) THEN
            RAISE EXCEPTION 'role mailvault_employee does not exist and % may not create it: create it '
                            '(NOLOGIN) as an administrator, then migrate again', current_user;
        END IF;
        CREATE ROLE mailvault_employee NOLOGIN;
    END IF;
END;
$$;

-- ---- grants of access ----

CREATE TABLE access_address (
    role       text NOT NULL,
    address    text NOT NULL CHECK (address = lower(address) AND address LIKE '_%@_%'),
    granted_by text NOT NULL,
    granted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (role, address)
);

CREATE TABLE access_case (
    role       text NOT NULL,
    hold_id    integer NOT NULL REFERENCES hold (id),
    granted_by text NOT NULL,
    granted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (role, hold_id)
);

CREATE INDEX address_lower_idx ON address (lower(address));
-- (message_skeleton_idx, 008, serves the blob policy's first question)

-- Whether role p_role sees message p_id through its grants.
CREATE FUNCTION mv_visible_to(p_role text, p_id bigint) RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM address a JOIN access_address g ON g.address = lower(a.address)
                    WHERE a.message_id = p_id AND g.role = p_role)
        OR EXISTS (SELECT 1 FROM hold_item i JOIN access_case c ON c.hold_id = i.hold_id
                    WHERE i.message_id = p_id AND c.role = p_role)
$$;

-- Whether role p_role (the policies pass current_user) sees message p_id
-- through its grants; false unless the session may act as p_role (is it,
-- or may SET ROLE to it), so that nobody learns another's view.
CREATE FUNCTION mv_visible(p_role text, p_id bigint) RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT (p_role = session_user OR pg_has_role(session_user, p_role, 'MEMBER'))
           AND mv_visible_to(p_role, p_id)
$$;

-- Whether this session sees the whole archive (the owner, a superuser,
-- the staff roles), or only what it was granted.
CREATE FUNCTION mv_sees_all() RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT NOT row_security_active('message') OR pg_has_role('mailvault_legal', 'MEMBER')
        OR pg_has_role('mailvault_ingest', 'MEMBER') OR pg_has_role('mailvault_purge', 'MEMBER')
$$;

-- The ids of every message role p_role sees through its grants, for a role
-- the session may act as (else none).  The policies ask
-- "id IN (SELECT mv_visible_ids(current_user))": one set per statement
-- (a hashed subplan), not one call per row (tests/bench/rls-bench.sh).
CREATE FUNCTION mv_visible_ids(p_role text) RETURNS SETOF bigint LANGUAGE sql STABLE AS $$
    SELECT a.message_id FROM address a JOIN access_address g ON lower(a.address) = g.address
     WHERE g.role = p_role AND (p_role = session_user OR pg_has_role(session_user, p_role, 'MEMBER'))
    UNION
    SELECT i.message_id FROM hold_item i JOIN access_case c ON c.hold_id = i.hold_id
     WHERE c.role = p_role AND (p_role = session_user OR pg_has_role(session_user, p_role, 'MEMBER'))
$$;

-- ---- row-level security ----

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['message', 'message_text', 'address', 'part', 'arrival', 'message_splice',
                             'review_decision', 'verdict', 'part_verdict', 'blob', 'tombstone', 'hold',
                             'hold_item', 'disposition', 'audit_event', 'access_address', 'access_case'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        -- the staff roles: no change (their table privileges say what they may do)
        EXECUTE format('CREATE POLICY staff ON %I FOR ALL TO mailvault_legal, mailvault_ingest, '
                       'mailvault_purge USING (true) WITH CHECK (true)', t);
    END LOOP;
    FOREACH t IN ARRAY ARRAY['message_text', 'address', 'part', 'arrival', 'message_splice',
                             'review_decision', 'verdict', 'part_verdict'] LOOP
        EXECUTE format('CREATE POLICY granted ON %I FOR SELECT TO mailvault_employee, mailvault_auditor '
                       'USING (message_id IN (SELECT mv_visible_ids(current_user)))', t);
    END LOOP;
END;
$$;

CREATE POLICY granted ON message FOR SELECT TO mailvault_employee, mailvault_auditor
    USING (id IN (SELECT mv_visible_ids(current_user)));
CREATE POLICY granted ON blob FOR SELECT TO mailvault_employee, mailvault_auditor
    USING (EXISTS (SELECT 1 FROM message m WHERE m.skeleton_sha256 = blob.sha256)
           OR EXISTS (SELECT 1 FROM message_splice s WHERE s.blob_sha256 = blob.sha256)
           OR EXISTS (SELECT 1 FROM part p WHERE p.blob_sha256 = blob.sha256));
-- An auditor sees the holds granted and what they cover; an employee no hold.
CREATE POLICY granted ON hold FOR SELECT TO mailvault_auditor
    USING (EXISTS (SELECT 1 FROM access_case c WHERE c.hold_id = hold.id AND c.role = current_user));
CREATE POLICY granted ON hold_item FOR SELECT TO mailvault_auditor
    USING (EXISTS (SELECT 1 FROM access_case c WHERE c.hold_id = hold_item.hold_id
                                                 AND c.role = current_user));
-- Each sees their own grants.
CREATE POLICY own ON access_address FOR SELECT TO mailvault_employee, mailvault_auditor
    USING (role = current_user);
CREATE POLICY own ON access_case FOR SELECT TO mailvault_employee, mailvault_auditor
    USING (role = current_user);
-- The auditor checks the whole chain (audit verify); an employee reads
-- only the entries written as their own role.
CREATE POLICY chain ON audit_event FOR SELECT TO mailvault_auditor USING (true);
CREATE POLICY own ON audit_event FOR SELECT TO mailvault_employee
    USING (right(actor, length(current_user) + 17) = ' (database role ' || current_user || ')');
-- tombstone, disposition: no policy for employees and auditors (they see
-- none: a destroyed record has no addresses or holds left to grant by).

-- ---- granting ----

CREATE FUNCTION mv_access_role(p_role text) RETURNS void LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = p_role AND rolcanlogin) THEN
        RAISE EXCEPTION 'no user % (mailvault user list)', p_role USING ERRCODE = 'no_data_found';
    END IF;
END;
$$;

CREATE FUNCTION mv_access_grant_address(p_role text, p_address text, p_actor text) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_n integer;
BEGIN
    PERFORM mv_access_role(p_role);
    IF p_address !~ '^[^@\s]+@[^@\s]+$' THEN
        RAISE EXCEPTION 'address %: not an e-mail address (local@domain)', p_address
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO access_address (role, address, granted_by) VALUES (p_role, lower(p_address), p_actor)
    ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    IF v_n > 0 THEN
        PERFORM mv_audit_append(p_actor, 'access.grant', 'user ' || p_role, 'address=' || lower(p_address));
    END IF;
    RETURN v_n > 0;
END;
$$;

CREATE FUNCTION mv_access_revoke_address(p_role text, p_address text, p_actor text) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_n integer;
BEGIN
    DELETE FROM access_address WHERE role = p_role AND address = lower(p_address);
    GET DIAGNOSTICS v_n = ROW_COUNT;
    IF v_n > 0 THEN
        PERFORM mv_audit_append(p_actor, 'access.revoke', 'user ' || p_role, 'address=' || lower(p_address));
    END IF;
    RETURN v_n > 0;
END;
$$;

CREATE FUNCTION mv_access_grant_case(p_role text, p_hold text, p_actor text) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_hold integer;
    v_n integer;
BEGIN
    PERFORM mv_access_role(p_role);
    SELECT id INTO v_hold FROM hold WHERE name = p_hold;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no hold % (mailvault hold list)', p_hold USING ERRCODE = 'no_data_found';
    END IF;
    INSERT INTO access_case (role, hold_id, granted_by) VALUES (p_role, v_hold, p_actor)
    ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    IF v_n > 0 THEN
        PERFORM mv_audit_append(p_actor, 'access.grant', 'user ' || p_role, 'hold=' || p_hold || ' id=' || v_hold);
    END IF;
    RETURN v_n > 0;
END;
$$;

CREATE FUNCTION mv_access_revoke_case(p_role text, p_hold text, p_actor text) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_n integer;
BEGIN
    DELETE FROM access_case c USING hold h WHERE h.id = c.hold_id AND h.name = p_hold AND c.role = p_role;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    IF v_n > 0 THEN
        PERFORM mv_audit_append(p_actor, 'access.revoke', 'user ' || p_role, 'hold=' || p_hold);
    END IF;
    RETURN v_n > 0;
END;
$$;

-- Whether p_role sees message p_id, and why: the same rules as the
-- policies above.
CREATE FUNCTION mv_access_explain(p_role text, p_id bigint, OUT o_visible boolean, OUT o_reasons text[])
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_groups text[];
    v_super boolean;
    v_owner boolean;
BEGIN
    PERFORM mv_access_role(p_role);
    o_reasons := '{}';
    SELECT r.rolsuper OR r.rolbypassrls, r.oid = (SELECT relowner FROM pg_class WHERE oid = 'message'::regclass)
      INTO v_super, v_owner FROM pg_roles r WHERE r.rolname = p_role;
    SELECT coalesce(array_agg(g ORDER BY g), '{}') INTO v_groups
      FROM unnest(ARRAY['mailvault_legal', 'mailvault_ingest', 'mailvault_purge', 'mailvault_auditor',
                        'mailvault_employee']) g
     WHERE pg_has_role(p_role, g, 'MEMBER');
    IF NOT EXISTS (SELECT 1 FROM message WHERE id = p_id) THEN
        o_visible := false;
        o_reasons := ARRAY['there is no message ' || p_id || ' in the archive'];
        RETURN;
    END IF;
    IF v_super OR v_owner THEN
        o_visible := true;
        o_reasons := ARRAY[p_role || ' owns the archive or is a superuser: row-level security does not bind it'];
        RETURN;
    END IF;
    IF v_groups && ARRAY['mailvault_legal', 'mailvault_ingest', 'mailvault_purge'] THEN
        o_reasons := o_reasons || ARRAY(SELECT p_role || ' is a member of ' || g || ', which sees every message'
                                          FROM unnest(v_groups) g
                                         WHERE g IN ('mailvault_legal', 'mailvault_ingest', 'mailvault_purge'));
    END IF;
    IF v_groups && ARRAY['mailvault_auditor', 'mailvault_employee'] THEN
        o_reasons := o_reasons || ARRAY(
            SELECT 'granted address ' || g.address || ' appears in it as ' ||
                   string_agg(DISTINCT a.role, ', ' ORDER BY a.role)
              FROM access_address g JOIN address a ON lower(a.address) = g.address
             WHERE g.role = p_role AND a.message_id = p_id
             GROUP BY g.address ORDER BY g.address);
        o_reasons := o_reasons || ARRAY(
            SELECT 'it is in hold ' || h.name || ' (case ' || h.case_ref || '), granted to ' || p_role
              FROM access_case c JOIN hold h ON h.id = c.hold_id
              JOIN hold_item i ON i.hold_id = c.hold_id AND i.message_id = p_id
             WHERE c.role = p_role ORDER BY h.name);
    END IF;
    o_visible := cardinality(o_reasons) > 0;
    IF NOT o_visible THEN
        IF NOT v_groups && ARRAY['mailvault_auditor', 'mailvault_employee'] THEN
            o_reasons := ARRAY[p_role || ' is a member of no mailvault role that reads messages'];
        ELSE
            o_reasons := ARRAY[
                'none of the addresses granted to ' || p_role || ' (' ||
                coalesce((SELECT string_agg(address, ', ' ORDER BY address) FROM access_address
                           WHERE role = p_role), 'none') || ') appears in it',
                'it is in none of the holds granted to ' || p_role || ' (' ||
                coalesce((SELECT string_agg(h.name, ', ' ORDER BY h.name) FROM access_case c
                            JOIN hold h ON h.id = c.hold_id WHERE c.role = p_role), 'none') || ')'];
        END IF;
    END IF;
END;
$$;

-- `mailvault user add --role employee` (015's function, with the new role).
CREATE OR REPLACE FUNCTION mv_user_add(p_role text, p_os_user text, p_groups text[], p_actor text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    g text;
    r record;
BEGIN
    IF p_role !~ '^[a-z_][a-z0-9_-]{0,31}$' OR p_role LIKE 'pg\_%' OR p_role LIKE 'mailvault%' THEN
        RAISE EXCEPTION 'user name %: not a name mailvault gives a database role '
                        '(lower-case letters, digits, - and _, at most 32; not pg_*, not mailvault*)', p_role;
    END IF;
    IF coalesce(cardinality(p_groups), 0) = 0 THEN
        RAISE EXCEPTION 'user %: give at least one role', p_role;
    END IF;
    FOREACH g IN ARRAY p_groups LOOP
        IF g NOT IN ('mailvault_ingest', 'mailvault_legal', 'mailvault_auditor', 'mailvault_purge',
                     'mailvault_employee') THEN
            RAISE EXCEPTION 'unknown role %', g;
        END IF;
    END LOOP;
    SELECT rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls INTO r
      FROM pg_roles WHERE rolname = p_role;
    IF FOUND THEN
        IF r.rolsuper OR r.rolcreaterole OR r.rolcreatedb OR r.rolreplication OR r.rolbypassrls THEN
            RAISE EXCEPTION 'database role % exists with administrative rights; it cannot be a person''s role',
                p_role;
        END IF;
        EXECUTE format('ALTER ROLE %I LOGIN', p_role);
    ELSE
        EXECUTE format('CREATE ROLE %I LOGIN', p_role);
    END IF;
    FOREACH g IN ARRAY p_groups LOOP
        EXECUTE format('GRANT %I TO %I', g, p_role);
    END LOOP;
    INSERT INTO peer_user AS p (role, os_user, groups, added_by)
    VALUES (p_role, p_os_user, p_groups, p_actor)
    ON CONFLICT (role) DO UPDATE
       SET os_user = EXCLUDED.os_user,
           groups = ARRAY(SELECT DISTINCT x FROM unnest(
                            CASE WHEN p.removed_at IS NULL THEN p.groups ELSE '{}' END
                            || EXCLUDED.groups) x ORDER BY 1),
           added_by = EXCLUDED.added_by, added_at = now(), removed_at = NULL;
    PERFORM mv_audit_append(p_actor, 'user.add', 'user ' || p_role,
                            'os_user=' || p_os_user || E'\nroles=' || array_to_string(p_groups, ','));
END;
$$;

-- The audit chain: a role bound by row-level security (an employee, an
-- auditor) appends only the entries of its reads.  Entries that the
-- checks replay (ingest.batch and record.* seals, hold items) or that
-- record an administrative act are written by the roles that act, so a
-- reader cannot write a seal that would hide a change to a record.
CREATE OR REPLACE FUNCTION mv_audit_append(p_actor text, p_action text, p_subject text, p_details text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_seq bigint;
    v_prev bytea;
    v_at timestamptz := clock_timestamp();
    v_actor text := p_actor;
BEGIN
    IF session_user <> current_user THEN
        v_actor := p_actor || ' (database role ' || session_user || ')';
        IF p_action NOT IN ('search', 'show', 'get', 'export', 'export.failed', 'restore')
           AND NOT EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = session_user AND r.rolsuper)
           AND NOT (pg_has_role(session_user, 'mailvault_legal', 'MEMBER')
                    OR pg_has_role(session_user, 'mailvault_ingest', 'MEMBER')
                    OR pg_has_role(session_user, 'mailvault_purge', 'MEMBER')) THEN
            RAISE EXCEPTION 'database role % may append only the audit entries of its reads, not %',
                session_user, p_action USING ERRCODE = 'insufficient_privilege';
        END IF;
    END IF;
    PERFORM pg_advisory_xact_lock(7231980413);
    SELECT seq + 1, hash INTO v_seq, v_prev FROM audit_event ORDER BY seq DESC LIMIT 1;
    IF v_seq IS NULL THEN
        v_seq := 1;
        v_prev := decode(repeat('00', 32), 'hex');
    END IF;
    INSERT INTO audit_event (seq, at, actor, action, subject, details, prev_hash, hash, format)
    VALUES (v_seq, v_at, v_actor, p_action, coalesce(p_subject, ''), coalesce(p_details, ''), v_prev,
            sha256(v_prev || convert_to(mv_audit_text_v2(v_seq, v_at, v_actor, p_action,
                                                         coalesce(p_subject, ''),
                                                         coalesce(p_details, '')), 'UTF8')),
            2);
    RETURN v_seq;
END;
$$;

-- ---- privileges ----

DO $$
DECLARE
    s text := current_schema();
    f text;
BEGIN
    FOR f IN SELECT p.oid::regprocedure::text FROM pg_proc p
              WHERE p.pronamespace = current_schema()::regnamespace
                AND p.proname IN ('mv_audit_append', 'mv_visible_to', 'mv_visible', 'mv_visible_ids',
                                  'mv_access_role',
                                  'mv_access_grant_address',
                                  'mv_access_revoke_address', 'mv_access_grant_case',
                                  'mv_access_revoke_case', 'mv_access_explain') LOOP
        EXECUTE format('ALTER FUNCTION %s SECURITY DEFINER SET search_path = %I, pg_temp', f, s);
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
    END LOOP;
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO mailvault_employee', s);
END;
$$;
-- 007 granted the groups SELECT on every table to come; the grants are
-- the legal role's to read.
REVOKE ALL ON access_address, access_case FROM mailvault_ingest, mailvault_purge;
GRANT SELECT ON access_address, access_case TO mailvault_auditor, mailvault_legal;
GRANT SELECT ON message, message_text, address, part, arrival, message_splice, review_decision, blob,
                zstd_dict, tombstone, disposition, hold, hold_item, policy, retention_lock, schema_version,
                audit_event, access_address, access_case, verdict, part_verdict, enc_key
   TO mailvault_employee;
GRANT EXECUTE ON FUNCTION mv_audit_append(text, text, text, text), mv_message_seal(bigint)
   TO mailvault_employee;
GRANT EXECUTE ON FUNCTION mv_visible(text, bigint), mv_visible_ids(text) TO mailvault_employee, mailvault_auditor;
GRANT EXECUTE ON FUNCTION mv_access_grant_address(text, text, text), mv_access_revoke_address(text, text, text),
                          mv_access_grant_case(text, text, text), mv_access_revoke_case(text, text, text),
                          mv_access_explain(text, bigint)
   TO mailvault_legal;

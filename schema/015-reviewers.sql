-- 015-reviewers: reviewers are identities, not names.
--
-- A review decision records who took it as the database knows it: the
-- authenticated role of the session (session_user) and, on the embedded
-- cluster, the operating-system user that peer authentication let in as
-- that role.  A trigger sets them, whatever the client sends; the name
-- given with --by is kept as a label only.  decided_by becomes that role,
-- so "distinct decided_by" (four eyes, purge's selection) counts
-- identities: a second approval of a record, for the same expiry, by the
-- same role is refused.  Decisions taken before this migration keep the
-- name they were given in decided_by, with db_role NULL.
--
-- Policy versions record the loading role and the --by label the same way.
--
-- peer_user mirrors the embedded cluster's map of operating-system users
-- to database roles (pg_ident.conf, written by `mailvault user add`), so
-- that the database can name the person behind a role.

CREATE TABLE peer_user (
    role       text PRIMARY KEY,        -- the database role (LOGIN), named after the OS user
    os_user    text NOT NULL,           -- the operating-system user peer authentication maps to it
    groups     text[] NOT NULL,         -- the mailvault_* group roles granted
    added_by   text NOT NULL,
    added_at   timestamptz NOT NULL DEFAULT now(),
    removed_at timestamptz              -- access taken away (the role stays, NOLOGIN)
);

-- The operating-system user behind this session, as authentication proved
-- it: PostgreSQL 16 and later say so (system_user, "peer:NAME"); before,
-- on a Unix socket of the embedded cluster (peer authentication only),
-- the map peer_user mirrors.  NULL when unknown (the cluster's owner, a
-- TCP or password login).
CREATE FUNCTION mv_session_os_user() RETURNS text LANGUAGE plpgsql STABLE AS $$
DECLARE
    v text;
BEGIN
    IF current_setting('server_version_num')::integer >= 160000 THEN
        EXECUTE 'SELECT system_user' INTO v;
        IF v LIKE 'peer:%' THEN
            RETURN substr(v, 6);
        END IF;
        RETURN NULL;
    END IF;
    IF inet_client_addr() IS NULL THEN
        SELECT p.os_user INTO v FROM peer_user p
         WHERE p.role = session_user AND p.removed_at IS NULL;
    END IF;
    RETURN v;
END;
$$;

ALTER TABLE review_decision
    ADD COLUMN label   text,    -- the name given with --by (a label, not an identity)
    ADD COLUMN db_role text,    -- session_user: the authenticated database role
    ADD COLUMN os_user text;    -- the operating-system user (peer authentication), or NULL

CREATE FUNCTION mv_review_decision_identity() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_expires timestamptz;
BEGIN
    -- A client of before this migration sends the label as decided_by.
    NEW.label := coalesce(NEW.label, nullif(NEW.decided_by, ''));
    NEW.db_role := session_user;
    NEW.decided_by := session_user;
    NEW.os_user := mv_session_os_user();
    NEW.decided_at := now();
    SELECT m.expires_at INTO v_expires FROM message m WHERE m.id = NEW.message_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'review decision: no message %', NEW.message_id;
    END IF;
    IF NEW.expires_at IS DISTINCT FROM v_expires THEN
        RAISE EXCEPTION 'review decision on message %: it expires %, not %', NEW.message_id,
            coalesce(v_expires::text, 'never'), NEW.expires_at;
    END IF;
    IF NEW.decision = 'approve' AND EXISTS (
           SELECT 1 FROM review_decision d
            WHERE d.message_id = NEW.message_id AND d.decision = 'approve'
              AND d.expires_at = NEW.expires_at AND d.decided_by = NEW.decided_by) THEN
        RAISE EXCEPTION 'database role % approved message % already; four eyes needs another person',
            NEW.decided_by, NEW.message_id USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER review_decision_identity BEFORE INSERT ON review_decision
    FOR EACH ROW EXECUTE FUNCTION mv_review_decision_identity();

-- The same, against two sessions of one role racing past the trigger.
CREATE UNIQUE INDEX review_decision_one_approval ON review_decision (message_id, expires_at, decided_by)
    WHERE decision = 'approve' AND db_role IS NOT NULL;

ALTER TABLE policy
    ADD COLUMN label   text,    -- the name given with --by
    ADD COLUMN db_role text;    -- session_user

CREATE FUNCTION mv_policy_identity() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.db_role := session_user;
    RETURN NEW;
END;
$$;
CREATE TRIGGER policy_identity BEFORE INSERT ON policy
    FOR EACH ROW EXECUTE FUNCTION mv_policy_identity();

-- `mailvault user add`: a login role for an operating-system user, granted
-- group roles, recorded in peer_user and in the audit trail.  Run by the
-- cluster's owner (the program writes pg_ident.conf in the same step).
CREATE FUNCTION mv_user_add(p_role text, p_os_user text, p_groups text[], p_actor text)
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
        IF g NOT IN ('mailvault_ingest', 'mailvault_legal', 'mailvault_auditor', 'mailvault_purge') THEN
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

-- `mailvault user remove`: the role can no longer log in and loses its
-- group roles; it stays (decisions name it), and so does its row.
CREATE FUNCTION mv_user_remove(p_role text, p_actor text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    g text;
    v_groups text[];
BEGIN
    SELECT groups INTO v_groups FROM peer_user WHERE role = p_role AND removed_at IS NULL FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no user % (mailvault user list)', p_role USING ERRCODE = 'no_data_found';
    END IF;
    FOREACH g IN ARRAY v_groups LOOP
        EXECUTE format('REVOKE %I FROM %I', g, p_role);
    END LOOP;
    EXECUTE format('ALTER ROLE %I NOLOGIN', p_role);
    UPDATE peer_user SET removed_at = now() WHERE role = p_role;
    PERFORM mv_audit_append(p_actor, 'user.remove', 'user ' || p_role,
                            'roles=' || array_to_string(v_groups, ','));
END;
$$;

REVOKE ALL ON FUNCTION mv_user_add(text, text, text[], text) FROM PUBLIC;
REVOKE ALL ON FUNCTION mv_user_remove(text, text) FROM PUBLIC;
GRANT SELECT ON peer_user TO mailvault_ingest, mailvault_legal, mailvault_auditor, mailvault_purge;

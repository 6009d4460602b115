-- 007-roles: a database that enforces the archive's rules by itself.
--
-- 1. Records are immutable where they must be: triggers refuse any change
--    to a message's content, hashes and identity, to blobs, parts,
--    addresses, arrivals and splices, to tombstones, finished destruction
--    certificates, policy versions and the audit trail, and refuse deleting
--    any of them outside mv_purge_message().  They bind every role, the
--    owner's included (only a superuser can switch triggers off).
-- 2. Four group roles (NOLOGIN) carry the only privileges an application
--    needs; people and services log in as their own roles and are granted
--    one of them (docs/database-roles.md):
--      mailvault_ingest   archive messages (import, smtpd, IMAP), read
--      mailvault_legal    policy, retention apply, holds, review decisions, read
--      mailvault_auditor  read everything; append audit entries (exports)
--      mailvault_purge    destroy expired records through mv_purge_message()
--    No group role may DELETE from or UPDATE a record table directly: the
--    writes that need more than INSERT go through SECURITY DEFINER
--    functions owned by the schema owner, which check the rules.

DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['mailvault_ingest', 'mailvault_legal', 'mailvault_auditor',
                             'mailvault_purge'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            IF NOT (SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user) THEN
                RAISE EXCEPTION 'role % does not exist and % may not create it: create the roles '
                                'mailvault_ingest, mailvault_legal, mailvault_auditor and '
                                'mailvault_purge (NOLOGIN) as an administrator, then migrate again',
                                r, current_user;
            END IF;
            EXECUTE format('CREATE ROLE %I NOLOGIN', r);
        END IF;
    END LOOP;
END;
$$;

-- ---- immutability ----

CREATE FUNCTION mv_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% rows are a record: % is refused', TG_TABLE_NAME, lower(TG_OP);
END;
$$;

-- Rows that belong to one message go only with the message, by purge.
CREATE FUNCTION mv_refuse_change_unless_purging() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND coalesce(current_setting('mailvault.purging', true), '') = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION '% rows are a record: % is refused (records are destroyed only by purge)',
        TG_TABLE_NAME, lower(TG_OP);
END;
$$;

CREATE TRIGGER blob_immutable BEFORE UPDATE ON blob
    FOR EACH ROW EXECUTE FUNCTION mv_refuse_change();
CREATE TRIGGER zstd_dict_immutable BEFORE UPDATE OR DELETE ON zstd_dict
    FOR EACH ROW EXECUTE FUNCTION mv_refuse_change();
CREATE TRIGGER message_splice_immutable BEFORE UPDATE OR DELETE ON message_splice
    FOR EACH ROW EXECUTE FUNCTION mv_refuse_change_unless_purging();
CREATE TRIGGER part_immutable BEFORE UPDATE OR DELETE ON part
    FOR EACH ROW EXECUTE FUNCTION mv_refuse_change_unless_purging();
CREATE TRIGGER address_immutable BEFORE UPDATE OR DELETE ON address
    FOR EACH ROW EXECUTE FUNCTION mv_refuse_change_unless_purging();
CREATE TRIGGER arrival_immutable BEFORE UPDATE OR DELETE ON arrival
    FOR EACH ROW EXECUTE FUNCTION mv_refuse_change_unless_purging();
CREATE TRIGGER hold_item_immutable BEFORE UPDATE OR DELETE ON hold_item
    FOR EACH ROW EXECUTE FUNCTION mv_refuse_change_unless_purging();
CREATE TRIGGER tombstone_immutable BEFORE UPDATE OR DELETE ON tombstone
    FOR EACH ROW EXECUTE FUNCTION mv_refuse_change();
CREATE TRIGGER policy_immutable BEFORE UPDATE OR DELETE ON policy
    FOR EACH ROW EXECUTE FUNCTION mv_refuse_change();
CREATE TRIGGER audit_event_immutable BEFORE UPDATE OR DELETE ON audit_event
    FOR EACH ROW EXECUTE FUNCTION mv_refuse_change();

-- message: only the retention columns may change (retention apply, review
-- extensions); its content, hashes, identity and parse result never.
CREATE FUNCTION mv_message_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.id, NEW.sha256, NEW.size, NEW.skeleton_sha256, NEW.message_id, NEW.date, NEW.date_raw,
        NEW.from_addr, NEW.from_name, NEW.subject, NEW.has_attachment, NEW.parse_status,
        NEW.flags, NEW.archived_at)
       IS DISTINCT FROM
       (OLD.id, OLD.sha256, OLD.size, OLD.skeleton_sha256, OLD.message_id, OLD.date, OLD.date_raw,
        OLD.from_addr, OLD.from_name, OLD.subject, OLD.has_attachment, OLD.parse_status,
        OLD.flags, OLD.archived_at)
       OR (OLD.registration IS NOT NULL AND NEW.registration IS DISTINCT FROM OLD.registration) THEN
        RAISE EXCEPTION 'message %: only its retention may change, never its content, hashes or identity',
            OLD.id;
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER message_immutable BEFORE UPDATE ON message
    FOR EACH ROW EXECUTE FUNCTION mv_message_immutable();

-- message_text: the search vector is filled in after ingest; the text not.
CREATE FUNCTION mv_message_text_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF coalesce(current_setting('mailvault.purging', true), '') = 'on' THEN
            RETURN OLD;
        END IF;
        RAISE EXCEPTION 'message_text rows are a record: delete is refused';
    END IF;
    IF NEW.message_id IS DISTINCT FROM OLD.message_id OR NEW.doc IS DISTINCT FROM OLD.doc THEN
        RAISE EXCEPTION 'message %: its search text may not change', OLD.message_id;
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER message_text_immutable BEFORE UPDATE OR DELETE ON message_text
    FOR EACH ROW EXECUTE FUNCTION mv_message_text_immutable();

-- hold: only its release may be written, once.
CREATE FUNCTION mv_hold_release_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.released_at IS NOT NULL
       OR (NEW.id, NEW.name, NEW.case_ref, NEW.reason, NEW.query, NEW.ongoing, NEW.created_by,
           NEW.created_at)
          IS DISTINCT FROM
          (OLD.id, OLD.name, OLD.case_ref, OLD.reason, OLD.query, OLD.ongoing, OLD.created_by,
           OLD.created_at) THEN
        RAISE EXCEPTION 'hold %: only an active hold''s release may be recorded', OLD.name;
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER hold_release_only BEFORE UPDATE ON hold
    FOR EACH ROW EXECUTE FUNCTION mv_hold_release_only();

-- disposition: a run's row is completed once; a finished certificate stands.
CREATE FUNCTION mv_disposition_finish_once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' OR OLD.finished_at IS NOT NULL
       OR (NEW.id, NEW.started_at, NEW.performed_by, NEW.policy_version)
          IS DISTINCT FROM (OLD.id, OLD.started_at, OLD.performed_by, OLD.policy_version) THEN
        RAISE EXCEPTION 'disposition %: a destruction record cannot be altered or deleted', OLD.id;
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER disposition_finish_once BEFORE UPDATE OR DELETE ON disposition
    FOR EACH ROW EXECUTE FUNCTION mv_disposition_finish_once();

-- ---- privileged entry points ----
-- These run as the schema owner so that the group roles need no write
-- privilege on the tables they fill; each checks its own rules.  The
-- search_path is pinned so that a caller cannot substitute objects.
-- The actor an application names is its own claim; when it logs in as a
-- role of its own, that role is added to the entry, so the trail says which
-- database account acted.
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
    END IF;
    PERFORM pg_advisory_xact_lock(7231980413);
    SELECT seq + 1, hash INTO v_seq, v_prev FROM audit_event ORDER BY seq DESC LIMIT 1;
    IF v_seq IS NULL THEN
        v_seq := 1;
        v_prev := decode(repeat('00', 32), 'hex');
    END IF;
    INSERT INTO audit_event (seq, at, actor, action, subject, details, prev_hash, hash)
    VALUES (v_seq, v_at, v_actor, p_action, coalesce(p_subject, ''), coalesce(p_details, ''), v_prev,
            sha256(v_prev || convert_to(mv_audit_text(v_seq, v_at, v_actor, p_action,
                                                      coalesce(p_subject, ''),
                                                      coalesce(p_details, '')), 'UTF8')));
    RETURN v_seq;
END;
$$;

DO $$
DECLARE
    f text;
BEGIN
    FOR f IN SELECT p.oid::regprocedure::text FROM pg_proc p
              WHERE p.pronamespace = current_schema()::regnamespace
                AND p.proname IN ('mv_ingest_message', 'mv_index_pending', 'mv_next_registration',
                                  'mv_audit_append', 'mv_purge_message') LOOP
        EXECUTE format('ALTER FUNCTION %s SECURITY DEFINER SET search_path = %I, pg_temp',
                       f, current_schema());
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
    END LOOP;
END;
$$;

-- ---- grants ----
DO $$
DECLARE
    s text := current_schema();
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['mailvault_ingest', 'mailvault_legal', 'mailvault_auditor',
                             'mailvault_purge'] LOOP
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', s, r);
        EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO %I', s, r);
        EXECUTE format('GRANT EXECUTE ON FUNCTION mv_audit_append(text,text,text,text) TO %I', r);
        EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT ON TABLES TO %I', s, r);
    END LOOP;
    -- ingest: messages and their rows through mv_ingest_message.
    -- Blobs and dictionaries are inserted directly (content addressed:
    -- inserting cannot alter anything); ongoing holds take new messages.
    EXECUTE 'GRANT EXECUTE ON FUNCTION mv_ingest_message TO mailvault_ingest';
    EXECUTE format('GRANT INSERT ON blob, zstd_dict, hold_item TO mailvault_ingest');
    EXECUTE format('GRANT UPDATE (tsv) ON message_text TO mailvault_ingest');
    EXECUTE 'GRANT EXECUTE ON FUNCTION mv_index_pending(integer) TO mailvault_ingest';
    -- legal: policy versions, retention of messages, holds, review.
    EXECUTE 'GRANT INSERT ON policy, hold, hold_item, review_decision TO mailvault_legal';
    EXECUTE 'GRANT UPDATE (retention_class, expires_at, deciding_rule, policy_version, tags, direction) '
            'ON message TO mailvault_legal';
    EXECUTE 'GRANT UPDATE (released_by, released_at, release_reason) ON hold TO mailvault_legal';
    -- purge: its run records, and destruction through the checked function.
    EXECUTE 'GRANT INSERT ON disposition TO mailvault_purge';
    EXECUTE 'GRANT UPDATE (finished_at, destroyed, certificate, certificate_sha256) ON disposition '
            'TO mailvault_purge';
    EXECUTE 'GRANT EXECUTE ON FUNCTION mv_purge_message(bigint,bigint) TO mailvault_purge';
END;
$$;

-- 013-record-guards: the database itself keeps the rules on the records,
-- for every role including the schema owner, and seals every message into
-- the audit chain so that `mailvault verify` names a record edited or
-- removed behind the database's back (a superuser who turns triggers off
-- with session_replication_role = replica).
--
--  1. Audit entries, format 2: the hashed text encodes each field with its
--     length, so no text can move from one field into another and keep
--     the hash.  Entries written before keep format 1 and its rule.
--  2. A message's seal: the SHA-256 of its metadata in one canonical
--     encoding (the message row, its addresses, arrivals and parts).  Every
--     ingest transaction's audit entry names each message's id and seal;
--     every later change writes the new seal from a trigger; this migration
--     writes a baseline entry with the seal of every message already here.
--  3. Locked classes, derived inside the database from each policy loaded:
--     a message's expiry never moves earlier than the latest expiry a
--     locked class gave it (its retention floor), nor while it is held.
--  4. Only a message's retention (class, expiry, rule, policy version,
--     tags, direction) may change; changes to it and to holds write their
--     audit entries from triggers, whoever makes them.  (A held message
--     cannot be deleted: message_guard, 005-purge.sql, already refuses it
--     for everyone.)

-- ---- 1. audit format 2 ----

ALTER TABLE audit_event ADD COLUMN format smallint NOT NULL DEFAULT 1 CHECK (format IN (1, 2));

-- A field as "LENGTH:BYTES," (LENGTH in bytes, UTF-8), "~," for NULL.
CREATE FUNCTION mv_field(p text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN p IS NULL THEN '~,' ELSE octet_length(p)::text || ':' || p || ',' END
$$;

-- hash = sha256(prev_hash || UTF-8 of this text)
CREATE FUNCTION mv_audit_text_v2(p_seq bigint, p_at timestamptz, p_actor text, p_action text,
                                 p_subject text, p_details text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT 'mailvault-audit-2:' || mv_field(p_seq::text) ||
           mv_field(to_char(p_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')) ||
           mv_field(p_actor) || mv_field(p_action) || mv_field(p_subject) || mv_field(p_details)
$$;

-- The hashed text of an entry in either format.
CREATE FUNCTION mv_audit_entry_text(p_format smallint, p_seq bigint, p_at timestamptz, p_actor text,
                                    p_action text, p_subject text, p_details text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE p_format WHEN 1 THEN mv_audit_text(p_seq, p_at, p_actor, p_action, p_subject, p_details)
                         ELSE mv_audit_text_v2(p_seq, p_at, p_actor, p_action, p_subject, p_details) END
$$;

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
    INSERT INTO audit_event (seq, at, actor, action, subject, details, prev_hash, hash, format)
    VALUES (v_seq, v_at, v_actor, p_action, coalesce(p_subject, ''), coalesce(p_details, ''), v_prev,
            sha256(v_prev || convert_to(mv_audit_text_v2(v_seq, v_at, v_actor, p_action,
                                                         coalesce(p_subject, ''),
                                                         coalesce(p_details, '')), 'UTF8')),
            2);
    RETURN v_seq;
END;
$$;

-- Who acts, for entries a trigger writes: the program's actor when it said
-- (SET LOCAL mailvault.actor), else the database role.
CREATE FUNCTION mv_trigger_actor() RETURNS text LANGUAGE sql STABLE AS $$
    SELECT coalesce(nullif(current_setting('mailvault.actor', true), ''), session_user::text)
$$;

-- ---- 2. seals ----

ALTER TABLE message ADD COLUMN retention_floor timestamptz;

CREATE FUNCTION mv_ts(p timestamptz) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT to_char(p AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;

CREATE FUNCTION mv_message_seal(p_id bigint) RETURNS bytea LANGUAGE sql STABLE AS $$
    SELECT sha256(convert_to(
        'mailvault-seal-1:' ||
        mv_field(m.id::text) || mv_field(encode(m.sha256, 'hex')) || mv_field(m.size::text) ||
        mv_field(encode(m.skeleton_sha256, 'hex')) || mv_field(m.message_id) ||
        mv_field(mv_ts(m.date)) || mv_field(m.date_raw) || mv_field(m.from_addr) ||
        mv_field(m.from_name) || mv_field(m.subject) || mv_field(m.has_attachment::text) ||
        mv_field(m.parse_status) || mv_field(array_to_string(ARRAY(SELECT mv_field(f) FROM unnest(m.flags) f), '')) ||
        mv_field(mv_ts(m.archived_at)) || mv_field(m.registration) ||
        mv_field(m.retention_class) || mv_field(mv_ts(m.expires_at)) || mv_field(m.deciding_rule) ||
        mv_field(m.policy_version::text) ||
        mv_field(array_to_string(ARRAY(SELECT mv_field(t) FROM unnest(m.tags) t), '')) ||
        mv_field(m.direction) || mv_field(mv_ts(m.retention_floor)) ||
        mv_field((SELECT string_agg(mv_field(a.role) || mv_field(a.address) || mv_field(a.name), ''
                                    ORDER BY a.role, a.address, a.name)
                    FROM address a WHERE a.message_id = m.id)) ||
        mv_field((SELECT string_agg(mv_field(r.id::text) || mv_field(r.source) || mv_field(r.source_ref) ||
                                    mv_field(mv_ts(r.received_at)) || mv_field(r.envelope_from) ||
                                    mv_field(array_to_string(ARRAY(SELECT mv_field(t) FROM unnest(r.envelope_to) t), '')) ||
                                    mv_field(array_to_string(ARRAY(SELECT mv_field(t) FROM unnest(r.envelope_bcc) t), '')) ||
                                    mv_field(host(r.client_addr)) || mv_field(r.helo) || mv_field(r.tls) ||
                                    mv_field(r.protocol) || mv_field(r.imap_mailbox) ||
                                    mv_field(r.imap_uidvalidity::text) || mv_field(r.imap_uid::text) ||
                                    mv_field(mv_ts(r.imap_internaldate)) ||
                                    mv_field(encode(r.journal_report_sha256, 'hex')) ||
                                    mv_field(encode(r.journal_original_sha256, 'hex')) ||
                                    mv_field(r.journal_problem), '' ORDER BY r.id)
                    FROM arrival r WHERE r.message_id = m.id)) ||
        mv_field((SELECT string_agg(mv_field(p.path) || mv_field(p.declared_type) || mv_field(p.detected_type) ||
                                    mv_field(p.filename) || mv_field(p.size::text) ||
                                    mv_field(encode(p.blob_sha256, 'hex')), '' ORDER BY p.path)
                    FROM part p WHERE p.message_id = m.id)),
        'UTF8'))
      FROM message m WHERE m.id = p_id
$$;

-- The audit entry of an ingest transaction: every message with its
-- SHA-256, source, id and seal, in the order given.
CREATE FUNCTION mv_audit_ingest(p_actor text, p_shas bytea[], p_sources text[]) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_details text;
BEGIN
    SELECT 'messages=' || cardinality(p_shas) ||
           coalesce(string_agg(E'\nsha256=' || encode(x.sha, 'hex') || ' source=' || coalesce(x.src, '-') ||
                               ' id=' || m.id || ' seal=' || encode(mv_message_seal(m.id), 'hex'),
                               '' ORDER BY x.k), '')
      INTO v_details
      FROM unnest(p_shas, p_sources) WITH ORDINALITY AS x(sha, src, k)
      JOIN message m ON m.sha256 = x.sha;
    RETURN mv_audit_append(p_actor, 'ingest.batch', '', v_details);
END;
$$;

-- ---- 3. locked classes ----

-- Every class any loaded policy ever declared locked: a lock is never
-- lifted (the policy successor check refuses it; this table keeps it so
-- that the database can refuse it too).
CREATE TABLE retention_lock (
    class          text PRIMARY KEY,
    policy_version integer NOT NULL REFERENCES policy (version),
    locked_at      timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION mv_policy_locks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO retention_lock (class, policy_version)
    SELECT (xpath('/class/@name', c))[1]::text, NEW.version
      FROM unnest(xpath('/policy/classes/class[@locked="true" or @locked="1"]',
                        xmlparse(DOCUMENT NEW.xml))) AS c
    ON CONFLICT (class) DO NOTHING;
    RETURN NEW;
END;
$$;
CREATE TRIGGER policy_locks AFTER INSERT ON policy FOR EACH ROW EXECUTE FUNCTION mv_policy_locks();
CREATE TRIGGER retention_lock_immutable BEFORE UPDATE OR DELETE ON retention_lock
    FOR EACH ROW EXECUTE FUNCTION mv_refuse_change();

-- Policies loaded before this migration.
INSERT INTO retention_lock (class, policy_version)
SELECT (xpath('/class/@name', c))[1]::text, min(p.version)
  FROM policy p, unnest(xpath('/policy/classes/class[@locked="true" or @locked="1"]',
                              xmlparse(DOCUMENT p.xml))) AS c
 GROUP BY 1
ON CONFLICT (class) DO NOTHING;

-- The floor of messages already in a locked class.
ALTER TABLE message DISABLE TRIGGER USER;
UPDATE message m SET retention_floor = coalesce(m.expires_at, 'infinity')
 WHERE m.retention_class IN (SELECT class FROM retention_lock);
ALTER TABLE message ENABLE TRIGGER USER;

-- ---- 4. guards and trigger-written audit entries ----

CREATE FUNCTION mv_message_record_guard() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_old_exp timestamptz := coalesce(OLD.expires_at, 'infinity');
    v_new_exp timestamptz := coalesce(NEW.expires_at, 'infinity');
BEGIN
    IF (NEW.id, NEW.sha256, NEW.size, NEW.skeleton_sha256, NEW.message_id, NEW.date, NEW.date_raw,
        NEW.from_addr, NEW.from_name, NEW.subject, NEW.has_attachment, NEW.parse_status, NEW.flags,
        NEW.archived_at, NEW.registration)
       IS DISTINCT FROM
       (OLD.id, OLD.sha256, OLD.size, OLD.skeleton_sha256, OLD.message_id, OLD.date, OLD.date_raw,
        OLD.from_addr, OLD.from_name, OLD.subject, OLD.has_attachment, OLD.parse_status, OLD.flags,
        OLD.archived_at, OLD.registration) THEN
        RAISE EXCEPTION 'message %: a record''s content and metadata cannot change, only its retention', OLD.id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    -- The floor only rises: the latest expiry a locked class gave.
    NEW.retention_floor := OLD.retention_floor;
    IF EXISTS (SELECT 1 FROM retention_lock l WHERE l.class = OLD.retention_class) THEN
        NEW.retention_floor := greatest(coalesce(OLD.retention_floor, '-infinity'), v_old_exp);
    END IF;
    IF EXISTS (SELECT 1 FROM retention_lock l WHERE l.class = NEW.retention_class) THEN
        NEW.retention_floor := greatest(coalesce(NEW.retention_floor, '-infinity'), v_new_exp);
    END IF;
    IF v_new_exp < v_old_exp THEN
        IF v_new_exp < coalesce(NEW.retention_floor, '-infinity') THEN
            RAISE EXCEPTION 'message %: a locked class keeps it until %; its expiry cannot move earlier',
                OLD.id, coalesce(mv_ts(NEW.retention_floor), 'forever')
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        IF EXISTS (SELECT 1 FROM hold_item i JOIN hold h ON h.id = i.hold_id
                    WHERE i.message_id = OLD.id AND h.released_at IS NULL) THEN
            RAISE EXCEPTION 'message % is under a legal hold: its expiry cannot move earlier', OLD.id
                USING ERRCODE = 'insufficient_privilege';
        END IF;
    END IF;
    RETURN NEW;
END;
$$;
-- Named to fire after message_review_extension_floor (BEFORE triggers fire
-- in name order), so that it judges the expiry that floor leaves.
CREATE TRIGGER record_guard BEFORE UPDATE ON message
    FOR EACH ROW EXECUTE FUNCTION mv_message_record_guard();

-- One audit entry per statement that changed the retention of messages:
-- each message's id, class and expiry before and after, and its new seal.
CREATE FUNCTION mv_message_changes_audit() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_n bigint;
    v_details text;
BEGIN
    SELECT count(*),
           string_agg(E'\nid=' || n.id || ' seal=' || encode(mv_message_seal(n.id), 'hex') ||
                      ' class=' || coalesce(o.retention_class, '-') || '->' || coalesce(n.retention_class, '-') ||
                      ' expires=' || coalesce(mv_ts(o.expires_at), 'never') || '->' ||
                      coalesce(mv_ts(n.expires_at), 'never'), '' ORDER BY n.id)
      INTO v_n, v_details
      FROM new_rows n JOIN old_rows o ON o.id = n.id
     WHERE (n.retention_class, n.expires_at, n.deciding_rule, n.policy_version, n.tags, n.direction,
            n.retention_floor)
           IS DISTINCT FROM
           (o.retention_class, o.expires_at, o.deciding_rule, o.policy_version, o.tags, o.direction,
            o.retention_floor);
    IF v_n > 0 THEN
        PERFORM mv_audit_append(mv_trigger_actor(), 'record.retention', v_n || ' messages',
                                'messages=' || v_n || v_details);
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER message_changes_audit AFTER UPDATE ON message
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION mv_message_changes_audit();

-- Holds: every creation and release, and every change to what a hold
-- covers, is an audit entry written here.
CREATE FUNCTION mv_hold_audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM mv_audit_append(mv_trigger_actor(), 'record.hold', 'hold ' || NEW.name,
                                'created id=' || NEW.id || ' case=' || NEW.case_ref ||
                                ' ongoing=' || NEW.ongoing || E'\nquery=' || NEW.query);
    ELSIF NEW.released_at IS DISTINCT FROM OLD.released_at THEN
        PERFORM mv_audit_append(mv_trigger_actor(), 'record.hold', 'hold ' || NEW.name,
                                'released id=' || NEW.id || ' by=' || coalesce(NEW.released_by, '-') ||
                                E'\nreason=' || coalesce(NEW.release_reason, ''));
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER hold_audit AFTER INSERT OR UPDATE ON hold
    FOR EACH ROW EXECUTE FUNCTION mv_hold_audit();

CREATE FUNCTION mv_hold_items_audit() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_details text;
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT string_agg(format(E'hold=%s added=%s pending=%s ids=%s', x.hold_id, x.n,
                                 CASE WHEN x.pending THEN 'yes' ELSE 'no' END, x.ids), E'\n'
                          ORDER BY x.hold_id, x.pending)
          INTO v_details
          FROM (SELECT hold_id, pending, count(*) AS n, string_agg(message_id::text, ',' ORDER BY message_id) AS ids
                  FROM new_rows GROUP BY hold_id, pending) x;
    ELSIF TG_OP = 'UPDATE' THEN
        SELECT string_agg(format(E'hold=%s settled=%s ids=%s', x.hold_id, x.n, x.ids), E'\n' ORDER BY x.hold_id)
          INTO v_details
          FROM (SELECT hold_id, count(*) AS n, string_agg(message_id::text, ',' ORDER BY message_id) AS ids
                  FROM new_rows GROUP BY hold_id) x;
    ELSE
        SELECT string_agg(format(E'hold=%s removed=%s ids=%s', x.hold_id, x.n, x.ids), E'\n' ORDER BY x.hold_id)
          INTO v_details
          FROM (SELECT hold_id, count(*) AS n, string_agg(message_id::text, ',' ORDER BY message_id) AS ids
                  FROM old_rows GROUP BY hold_id) x;
    END IF;
    IF v_details IS NOT NULL THEN
        PERFORM mv_audit_append(mv_trigger_actor(), 'record.hold-items', lower(TG_OP), v_details);
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER hold_items_audit_insert AFTER INSERT ON hold_item
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION mv_hold_items_audit();
CREATE TRIGGER hold_items_audit_update AFTER UPDATE ON hold_item
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION mv_hold_items_audit();
CREATE TRIGGER hold_items_audit_delete AFTER DELETE ON hold_item
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION mv_hold_items_audit();

-- ---- privileges ----

DO $$
DECLARE
    f text;
BEGIN
    FOR f IN SELECT p.oid::regprocedure::text FROM pg_proc p
              WHERE p.pronamespace = current_schema()::regnamespace
                AND p.proname IN ('mv_audit_append', 'mv_audit_ingest', 'mv_message_record_guard',
                                  'mv_message_changes_audit', 'mv_hold_audit', 'mv_hold_items_audit',
                                  'mv_policy_locks') LOOP
        EXECUTE format('ALTER FUNCTION %s SECURITY DEFINER SET search_path = %I, pg_temp',
                       f, current_schema());
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
    END LOOP;
END;
$$;
GRANT EXECUTE ON FUNCTION mv_audit_ingest(text, bytea[], text[]) TO mailvault_ingest;
GRANT EXECUTE ON FUNCTION mv_message_seal(bigint) TO mailvault_ingest, mailvault_legal,
    mailvault_auditor, mailvault_purge;

-- The baseline: the seal of every message archived before seals existed.
DO $$
DECLARE
    v_n bigint;
    v_details text;
BEGIN
    SELECT count(*), string_agg(E'\nid=' || m.id || ' seal=' || encode(mv_message_seal(m.id), 'hex'), ''
                                ORDER BY m.id)
      INTO v_n, v_details
      FROM message m;
    IF v_n > 0 THEN
        PERFORM mv_audit_append('mailvault migration', 'record.seal-baseline', v_n || ' messages',
                                'messages=' || v_n || v_details);
    END IF;
END;
$$;

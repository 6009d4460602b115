-- 025-erasure: erasure requests (GDPR Art. 17, where no retention
-- obligation applies).  A member of mailvault_legal proposes to destroy
-- single records outside their schedule; a second, different database role
-- of mailvault_legal approves; only then are they destroyed, the way purge
-- destroys (tombstone, a numbered disposition run with its certificate).
-- The database keeps every rule itself, whoever calls:
--
--   * two people: the approver's session_user must differ from the
--     proposer's (mv_erase_approve compares them; no client can lie about
--     session_user, which authentication set);
--   * never a held record, nor one a locked class keeps (its class is
--     locked, or its retention floor lies ahead): refused at proposal, and
--     judged again at approval after the message row is locked, so a hold
--     placed in between wins;
--   * the message guard (005) lets an unexpired message be deleted only
--     when an erasure request for it was approved, and still refuses a held
--     or locked one;
--   * every step is an audit entry: erase.propose, erase.refuse,
--     erase.approve, erase.reject (and the run's own purge entry).
--
-- Destruction itself is purge's: mv_destroy_messages() is the body that
-- mv_purge_messages() (008) had, now shared by both.

CREATE TABLE erasure_request (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id    bigint NOT NULL,          -- no foreign key: the message goes, the request stays
    reason        text NOT NULL CHECK (btrim(reason) <> '' AND length(reason) <= 2000),
    proposed_role text NOT NULL,            -- session_user of the proposer
    proposed_by   text NOT NULL,            -- the name the program gave
    proposed_at   timestamptz NOT NULL DEFAULT now(),
    state         text NOT NULL DEFAULT 'proposed'
                  CHECK (state IN ('proposed', 'erased', 'rejected', 'refused')),
    decided_role  text,
    decided_by    text,
    decided_at    timestamptz,
    note          text,                     -- why it was refused or rejected
    disposition_id bigint REFERENCES disposition (id)
);
CREATE UNIQUE INDEX erasure_request_open_idx ON erasure_request (message_id) WHERE state = 'proposed';
CREATE INDEX erasure_request_disposition_idx ON erasure_request (disposition_id, message_id)
    WHERE disposition_id IS NOT NULL;

-- A decided request never changes; none is deleted.
CREATE FUNCTION mv_erasure_request_frozen() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' OR OLD.state <> 'proposed'
       OR (NEW.id, NEW.message_id, NEW.reason, NEW.proposed_role, NEW.proposed_by, NEW.proposed_at)
          IS DISTINCT FROM (OLD.id, OLD.message_id, OLD.reason, OLD.proposed_role, OLD.proposed_by,
                            OLD.proposed_at) THEN
        RAISE EXCEPTION 'erasure request %: a decided request cannot be altered or deleted', OLD.id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER erasure_request_frozen BEFORE UPDATE OR DELETE ON erasure_request
    FOR EACH ROW EXECUTE FUNCTION mv_erasure_request_frozen();

-- Why message p_id may not be erased, or NULL when it may: it does not
-- exist, a hold covers it, its class is locked, or a locked class keeps it.
CREATE FUNCTION mv_erase_obstacle(p_id bigint) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN m.id IS NULL THEN 'there is no message ' || p_id || ' in the archive'
        WHEN EXISTS (SELECT 1 FROM hold_item i JOIN hold h ON h.id = i.hold_id
                      WHERE i.message_id = m.id AND h.released_at IS NULL)
            THEN 'message ' || m.id || ' is under legal hold ' ||
                 (SELECT string_agg(h.name, ', ' ORDER BY h.name) FROM hold_item i JOIN hold h ON h.id = i.hold_id
                   WHERE i.message_id = m.id AND h.released_at IS NULL)
        WHEN EXISTS (SELECT 1 FROM retention_lock l WHERE l.class = m.retention_class)
            THEN 'message ' || m.id || ' is in locked class ' || m.retention_class ||
                 ': a retention obligation applies'
        WHEN m.retention_floor > now()
            THEN 'message ' || m.id || ' is kept by a locked class until ' || mv_ts(m.retention_floor)
        END
      FROM (SELECT p_id) x LEFT JOIN message m ON m.id = p_id
$$;

CREATE FUNCTION mv_erase_check_role() RETURNS void LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF NOT pg_has_role(session_user, 'mailvault_legal', 'MEMBER') THEN
        RAISE EXCEPTION 'database role % may not propose or decide erasures (mailvault_legal may)',
            session_user USING ERRCODE = 'insufficient_privilege';
    END IF;
END;
$$;

-- Propose to erase messages p_ids: one request each, 'proposed', or
-- 'refused' at once (with the reason) for one that may not be erased.
CREATE FUNCTION mv_erase_propose(p_ids bigint[], p_reason text, p_actor text)
RETURNS TABLE (o_request bigint, o_message bigint, o_state text, o_note text)
LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
    v_why text;
    v_req bigint;
BEGIN
    PERFORM mv_erase_check_role();
    IF p_reason IS NULL OR btrim(p_reason) = '' THEN
        RAISE EXCEPTION 'an erasure needs a reason' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF coalesce(cardinality(p_ids), 0) = 0 OR cardinality(p_ids) > 1000 THEN
        RAISE EXCEPTION 'propose the erasure of 1 to 1000 messages at a time'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    FOREACH v_id IN ARRAY ARRAY(SELECT DISTINCT x FROM unnest(p_ids) x ORDER BY 1) LOOP
        PERFORM 1 FROM message WHERE id = v_id FOR UPDATE;
        v_why := mv_erase_obstacle(v_id);
        IF v_why IS NULL AND EXISTS (SELECT 1 FROM erasure_request r
                                      WHERE r.message_id = v_id AND r.state = 'proposed') THEN
            v_why := 'message ' || v_id || ' has an open erasure request already (' ||
                     (SELECT r.id FROM erasure_request r WHERE r.message_id = v_id AND r.state = 'proposed') || ')';
        END IF;
        INSERT INTO erasure_request (message_id, reason, proposed_role, proposed_by, state, decided_role,
                                     decided_by, decided_at, note)
        VALUES (v_id, p_reason, session_user, p_actor,
                CASE WHEN v_why IS NULL THEN 'proposed' ELSE 'refused' END,
                CASE WHEN v_why IS NOT NULL THEN session_user END,
                CASE WHEN v_why IS NOT NULL THEN p_actor END,
                CASE WHEN v_why IS NOT NULL THEN now() END, v_why)
        RETURNING id INTO v_req;
        PERFORM mv_audit_append(p_actor, CASE WHEN v_why IS NULL THEN 'erase.propose' ELSE 'erase.refuse' END,
                                'erasure request ' || v_req,
                                'message=' || v_id || E'\nrole=' || session_user ||
                                CASE WHEN v_why IS NULL THEN '' ELSE E'\nrefused=' || v_why END ||
                                E'\nreason=' || p_reason);
        o_request := v_req;
        o_message := v_id;
        o_state := CASE WHEN v_why IS NULL THEN 'proposed' ELSE 'refused' END;
        o_note := v_why;
        RETURN NEXT;
    END LOOP;
END;
$$;

-- Destroy messages p_ids for run p_disposition: tombstones, then the
-- records and the blobs no other message uses.  The callers decide what
-- may go (mv_purge_messages: expired and unheld; mv_erase_approve: an
-- approved erasure); the message guard (below) judges each row again.
CREATE FUNCTION mv_destroy_messages(v_ids bigint[], p_disposition bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_blobs bytea[];
BEGIN
    INSERT INTO tombstone (message_id, sha256, size, registration, message_id_hdr, date, from_addr,
                           retention_class, expires_at, deciding_rule, policy_version, archived_at,
                           disposition_id)
    SELECT m.id, m.sha256, m.size, m.registration, m.message_id, m.date, m.from_addr,
           m.retention_class, m.expires_at, m.deciding_rule, m.policy_version, m.archived_at,
           p_disposition
      FROM message m WHERE m.id = ANY (v_ids);
    v_blobs := ARRAY(SELECT blob_sha256 FROM message_splice WHERE message_id = ANY (v_ids)
                     UNION SELECT blob_sha256 FROM part
                            WHERE message_id = ANY (v_ids) AND blob_sha256 IS NOT NULL
                     UNION SELECT skeleton_sha256 FROM message WHERE id = ANY (v_ids));
    PERFORM set_config('mailvault.purging', 'on', true);
    DELETE FROM hold_item WHERE message_id = ANY (v_ids);  -- released holds only (checked by the guard)
    DELETE FROM message_text WHERE message_id = ANY (v_ids);
    DELETE FROM address WHERE message_id = ANY (v_ids);
    DELETE FROM arrival WHERE message_id = ANY (v_ids);
    DELETE FROM part WHERE message_id = ANY (v_ids);
    DELETE FROM message_splice WHERE message_id = ANY (v_ids);
    DELETE FROM message WHERE id = ANY (v_ids);
    PERFORM set_config('mailvault.purging', 'off', true);
    -- Lock the blobs (in one order): a concurrent ingest referencing one
    -- either committed already (then it is referenced) or waits for us.
    PERFORM 1 FROM blob WHERE sha256 = ANY (v_blobs) ORDER BY sha256 FOR UPDATE;
    DELETE FROM blob b
     WHERE b.sha256 = ANY (v_blobs)
       AND NOT EXISTS (SELECT 1 FROM message m WHERE m.skeleton_sha256 = b.sha256)
       AND NOT EXISTS (SELECT 1 FROM message_splice s WHERE s.blob_sha256 = b.sha256)
       AND NOT EXISTS (SELECT 1 FROM part p WHERE p.blob_sha256 = b.sha256);
END;
$$;

CREATE OR REPLACE FUNCTION mv_purge_messages(p_ids bigint[], p_disposition bigint) RETURNS SETOF bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_ids bigint[];
BEGIN
    PERFORM 1 FROM message WHERE id = ANY (p_ids) ORDER BY id FOR UPDATE;
    SELECT array_agg(m.id ORDER BY m.id) INTO v_ids FROM message m
     WHERE m.id = ANY (p_ids) AND m.expires_at IS NOT NULL AND m.expires_at <= now()
       AND NOT EXISTS (SELECT 1 FROM hold_item i JOIN hold h ON h.id = i.hold_id
                        WHERE i.message_id = m.id AND h.released_at IS NULL);
    IF v_ids IS NULL THEN
        RETURN;
    END IF;
    PERFORM mv_destroy_messages(v_ids, p_disposition);
    RETURN QUERY SELECT unnest(v_ids);
END;
$$;

-- The guard of every DELETE of a message (005), for every role: only
-- through destruction (mailvault.purging), never a held record; an
-- unexpired one only when its erasure was approved, and never one a
-- locked class keeps.
CREATE OR REPLACE FUNCTION mv_message_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(current_setting('mailvault.purging', true), '') <> 'on' THEN
        RAISE EXCEPTION 'message % can only be destroyed by purge (mv_purge_message)', OLD.id;
    END IF;
    IF OLD.expires_at IS NULL OR OLD.expires_at > now() THEN
        IF NOT EXISTS (SELECT 1 FROM erasure_request r WHERE r.message_id = OLD.id AND r.state = 'erased') THEN
            RAISE EXCEPTION 'message % has not expired', OLD.id;
        END IF;
        IF EXISTS (SELECT 1 FROM retention_lock l WHERE l.class = OLD.retention_class)
           OR OLD.retention_floor > now() THEN
            RAISE EXCEPTION 'message % is kept by a locked class: it cannot be erased', OLD.id;
        END IF;
    END IF;
    IF EXISTS (SELECT 1 FROM hold_item i JOIN hold h ON h.id = i.hold_id
                WHERE i.message_id = OLD.id AND h.released_at IS NULL) THEN
        RAISE EXCEPTION 'message % is under a legal hold', OLD.id;
    END IF;
    RETURN OLD;
END;
$$;

-- Approve request p_request: a second, different database role of
-- mailvault_legal.  The message is locked, then judged again (a hold or a
-- lock that came meanwhile refuses it, recorded as 'refused'); if it may
-- go, a disposition run is opened and the message destroyed in it.  The
-- caller completes the run (certificate, retention/mv-erase.c) holding
-- the purge lock.  o_state: erased, refused, or proposed when the same
-- role tried to approve its own proposal (refused, audited, unchanged).
CREATE FUNCTION mv_erase_approve(p_request bigint, p_actor text,
                                 OUT o_state text, OUT o_note text, OUT o_disposition bigint,
                                 OUT o_run integer, OUT o_message bigint)
LANGUAGE plpgsql AS $$
DECLARE
    r erasure_request%ROWTYPE;
    v_why text;
BEGIN
    PERFORM mv_erase_check_role();
    SELECT * INTO r FROM erasure_request WHERE id = p_request FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no erasure request % (mailvault erase list)', p_request USING ERRCODE = 'no_data_found';
    END IF;
    o_message := r.message_id;
    IF r.state <> 'proposed' THEN
        RAISE EXCEPTION 'erasure request % is % already', p_request, r.state
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF r.proposed_role = session_user THEN
        o_state := 'proposed';
        o_note := 'database role ' || session_user || ' proposed erasure request ' || p_request ||
                  ' and may not approve it too: a second person must';
        PERFORM mv_audit_append(p_actor, 'erase.refuse', 'erasure request ' || p_request,
                                'message=' || r.message_id || E'\nrole=' || session_user ||
                                E'\nrefused=' || o_note);
        RETURN;
    END IF;
    PERFORM 1 FROM message WHERE id = r.message_id FOR UPDATE;
    v_why := mv_erase_obstacle(r.message_id);
    IF v_why IS NOT NULL THEN
        UPDATE erasure_request SET state = 'refused', decided_role = session_user, decided_by = p_actor,
                                   decided_at = now(), note = v_why
         WHERE id = p_request;
        PERFORM mv_audit_append(p_actor, 'erase.refuse', 'erasure request ' || p_request,
                                'message=' || r.message_id || E'\nrole=' || session_user ||
                                E'\nrefused=' || v_why);
        o_state := 'refused';
        o_note := v_why;
        RETURN;
    END IF;
    INSERT INTO disposition (performed_by) VALUES (p_actor || ' (database role ' || session_user || ')')
    RETURNING id, run INTO o_disposition, o_run;
    UPDATE erasure_request SET state = 'erased', decided_role = session_user, decided_by = p_actor,
                               decided_at = now(), disposition_id = o_disposition
     WHERE id = p_request;
    PERFORM mv_audit_append(p_actor, 'erase.approve', 'erasure request ' || p_request,
                            'message=' || r.message_id || E'\nproposed_role=' || r.proposed_role ||
                            E'\nrole=' || session_user || E'\nrun=' || o_run ||
                            E'\ndisposition=' || o_disposition ||
                            E'\nsha256=' || (SELECT encode(sha256, 'hex') FROM message WHERE id = r.message_id) ||
                            E'\nseal=' || encode(mv_message_seal(r.message_id), 'hex'));
    PERFORM mv_destroy_messages(ARRAY[r.message_id], o_disposition);
    o_state := 'erased';
END;
$$;

-- Reject request p_request (any member of mailvault_legal, the proposer
-- too: withdrawing needs no second person).
CREATE FUNCTION mv_erase_reject(p_request bigint, p_note text, p_actor text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    r erasure_request%ROWTYPE;
BEGIN
    PERFORM mv_erase_check_role();
    SELECT * INTO r FROM erasure_request WHERE id = p_request FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no erasure request % (mailvault erase list)', p_request USING ERRCODE = 'no_data_found';
    END IF;
    IF r.state <> 'proposed' THEN
        RAISE EXCEPTION 'erasure request % is % already', p_request, r.state
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    UPDATE erasure_request SET state = 'rejected', decided_role = session_user, decided_by = p_actor,
                               decided_at = now(), note = p_note
     WHERE id = p_request;
    PERFORM mv_audit_append(p_actor, 'erase.reject', 'erasure request ' || p_request,
                            'message=' || r.message_id || E'\nrole=' || session_user ||
                            E'\nreason=' || coalesce(p_note, ''));
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
                AND p.proname IN ('mv_erase_obstacle', 'mv_erase_check_role', 'mv_erase_propose',
                                  'mv_destroy_messages', 'mv_purge_messages', 'mv_erase_approve',
                                  'mv_erase_reject', 'mv_erasure_request_frozen') LOOP
        EXECUTE format('ALTER FUNCTION %s SECURITY DEFINER SET search_path = %I, pg_temp', f, s);
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
    END LOOP;
END;
$$;
GRANT EXECUTE ON FUNCTION mv_purge_messages(bigint[], bigint) TO mailvault_purge;
GRANT EXECUTE ON FUNCTION mv_erase_propose(bigint[], text, text), mv_erase_approve(bigint, text),
                          mv_erase_reject(bigint, text, text)
   TO mailvault_legal;
-- The legal role completes the run its approval opened (certificate).
GRANT UPDATE (finished_at, destroyed, certificate_sha256, state) ON disposition TO mailvault_legal;
-- Requests name messages and people: the staff roles, which see every
-- message, read them (a certificate and a tombstone name the erasure's
-- proposer and approver); employees and auditors see none.
REVOKE ALL ON erasure_request FROM mailvault_auditor;
GRANT SELECT ON erasure_request TO mailvault_legal, mailvault_ingest, mailvault_purge;
ALTER TABLE erasure_request ENABLE ROW LEVEL SECURITY;
CREATE POLICY staff ON erasure_request FOR ALL TO mailvault_legal, mailvault_ingest, mailvault_purge
    USING (true) WITH CHECK (true);

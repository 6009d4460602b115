-- 005-purge: disposal of expired records.  A message is destroyed only by
-- mv_purge_message(), which checks expiry and holds itself; a trigger
-- refuses any other DELETE of a message.  What is destroyed leaves a
-- tombstone (metadata and hashes, no content) and each run a disposition
-- row holding its destruction certificate.

CREATE TABLE disposition (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    started_at         timestamptz NOT NULL DEFAULT now(),
    finished_at        timestamptz,
    performed_by       text NOT NULL,
    policy_version     integer REFERENCES policy (version),
    destroyed          integer NOT NULL DEFAULT 0,
    certificate        text,
    certificate_sha256 bytea
);

CREATE TABLE tombstone (
    message_id      bigint PRIMARY KEY,
    sha256          bytea NOT NULL,
    size            bigint NOT NULL,
    registration    text,
    message_id_hdr  text,
    date            timestamptz,
    from_addr       text,
    retention_class text,
    expires_at      timestamptz,
    deciding_rule   text,
    policy_version  integer,
    archived_at     timestamptz NOT NULL,
    destroyed_at    timestamptz NOT NULL DEFAULT now(),
    disposition_id  bigint NOT NULL REFERENCES disposition (id)
);
CREATE INDEX tombstone_sha256_idx ON tombstone (sha256);

CREATE FUNCTION mv_message_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(current_setting('mailvault.purging', true), '') <> 'on' THEN
        RAISE EXCEPTION 'message % can only be destroyed by purge (mv_purge_message)', OLD.id;
    END IF;
    IF OLD.expires_at IS NULL OR OLD.expires_at > now() THEN
        RAISE EXCEPTION 'message % has not expired', OLD.id;
    END IF;
    IF EXISTS (SELECT 1 FROM hold_item i JOIN hold h ON h.id = i.hold_id
                WHERE i.message_id = OLD.id AND h.released_at IS NULL) THEN
        RAISE EXCEPTION 'message % is under a legal hold', OLD.id;
    END IF;
    RETURN OLD;
END;
$$;
CREATE TRIGGER message_guard BEFORE DELETE ON message FOR EACH ROW EXECUTE FUNCTION mv_message_guard();

-- Destroy one expired, unheld message: returns false (and changes nothing)
-- when it is not expired, is held, or is gone already.  Blobs no other
-- message references are deleted with it.
CREATE FUNCTION mv_purge_message(p_id bigint, p_disposition bigint) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    m message%ROWTYPE;
    b bytea;
    v_blobs bytea[];
BEGIN
    SELECT * INTO m FROM message WHERE id = p_id FOR UPDATE;
    IF NOT FOUND OR m.expires_at IS NULL OR m.expires_at > now() THEN
        RETURN false;
    END IF;
    IF EXISTS (SELECT 1 FROM hold_item i JOIN hold h ON h.id = i.hold_id
                WHERE i.message_id = p_id AND h.released_at IS NULL) THEN
        RETURN false;
    END IF;
    INSERT INTO tombstone (message_id, sha256, size, registration, message_id_hdr, date, from_addr,
                           retention_class, expires_at, deciding_rule, policy_version, archived_at,
                           disposition_id)
    VALUES (m.id, m.sha256, m.size, m.registration, m.message_id, m.date, m.from_addr,
            m.retention_class, m.expires_at, m.deciding_rule, m.policy_version, m.archived_at,
            p_disposition);
    PERFORM set_config('mailvault.purging', 'on', true);
    DELETE FROM hold_item WHERE message_id = p_id;  -- released holds only (checked above)
    DELETE FROM message_text WHERE message_id = p_id;
    DELETE FROM address WHERE message_id = p_id;
    DELETE FROM arrival WHERE message_id = p_id;
    v_blobs := ARRAY(SELECT blob_sha256 FROM message_splice WHERE message_id = p_id
                     UNION SELECT blob_sha256 FROM part WHERE message_id = p_id AND blob_sha256 IS NOT NULL
                     UNION SELECT m.skeleton_sha256);
    DELETE FROM part WHERE message_id = p_id;
    DELETE FROM message_splice WHERE message_id = p_id;
    DELETE FROM message WHERE id = p_id;
    PERFORM set_config('mailvault.purging', 'off', true);
    FOREACH b IN ARRAY v_blobs LOOP
        -- Lock the blob row: a concurrent ingest referencing it either
        -- committed already (then it is referenced) or waits for us.
        PERFORM 1 FROM blob WHERE sha256 = b FOR UPDATE;
        IF NOT EXISTS (SELECT 1 FROM message WHERE skeleton_sha256 = b)
           AND NOT EXISTS (SELECT 1 FROM message_splice WHERE blob_sha256 = b)
           AND NOT EXISTS (SELECT 1 FROM part WHERE blob_sha256 = b) THEN
            DELETE FROM blob WHERE sha256 = b;
        END IF;
    END LOOP;
    RETURN true;
END;
$$;

-- 008-purge-batch: destroy a batch of messages in one call, set-based:
-- the same checks and effects as mv_purge_message() (005-purge), for many
-- messages per statement.  The messages are locked first; expiry and holds
-- are checked after the lock (a new snapshot), so a hold committed meanwhile
-- is seen.  Returns the ids destroyed.
CREATE FUNCTION mv_purge_messages(p_ids bigint[], p_disposition bigint) RETURNS SETOF bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_ids bigint[];
    v_blobs bytea[];
BEGIN
    PERFORM 1 FROM message WHERE id = ANY (p_ids) ORDER BY id FOR UPDATE;
    SELECT array_agg(m.id ORDER BY m.id) INTO v_ids FROM message m
     WHERE m.id = ANY (p_ids) AND m.expires_at IS NOT NULL AND m.expires_at <= now()
       AND NOT EXISTS (SELECT 1 FROM hold_item i JOIN hold h ON h.id = i.hold_id
                        WHERE i.message_id = m.id AND h.released_at IS NULL);
    IF v_ids IS NULL THEN
        RETURN;
    END IF;
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
    DELETE FROM hold_item WHERE message_id = ANY (v_ids);  -- released holds only (checked above)
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
    RETURN QUERY SELECT unnest(v_ids);
END;
$$;

DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION mv_purge_messages(bigint[], bigint) SECURITY DEFINER '
                   'SET search_path = %I, pg_temp', current_schema());
END;
$$;
REVOKE ALL ON FUNCTION mv_purge_messages(bigint[], bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mv_purge_messages(bigint[], bigint) TO mailvault_purge;

-- A certificate is rendered from the tombstones of its run (see
-- mv_purge_certificate); its SHA-256 is what the run stored.  Runs from
-- before this migration kept their text in disposition.certificate.
CREATE INDEX tombstone_disposition_idx ON tombstone (disposition_id, message_id);

-- Destroying a blob checks that no message still uses it as its skeleton
-- (the foreign key, and mv_purge_message's own test): without this index
-- each check scanned the whole message table.
CREATE INDEX message_skeleton_idx ON message (skeleton_sha256);

-- 034-purge-blob-list: purge's cost no longer grows with the archive
-- (issue 12, growth benchmark).
--
-- Measured (tests/bench/growth-bench.sh, docs/scaling.md "Growth"): purge
-- of 2,000 due messages ran at 1,761 messages/s in an empty archive, 1,056
-- at 100,000 messages, 546 at 300,000.  auto_explain of one 500-message
-- batch at 300,000 messages: mv_destroy_messages listed the batch's blobs
-- with "SELECT blob_sha256 FROM part WHERE message_id = ANY (v_ids) AND
-- blob_sha256 IS NOT NULL", which the planner answered with a BitmapAnd of
-- part_pkey (1,876 entries) and part_blob_idx, whose "IS NOT NULL" scan
-- read 222,348 entries: every part with a blob in the archive, in every
-- batch (57 ms of the batch at 300,000 messages, linear in the archive:
-- about 2 s a batch at ten million).  The NULLs (multipart containers) are
-- now dropped from the list afterwards (array_remove), so the only
-- condition on part is its key: an index scan of part_pkey (17 ms for the
-- whole list at 300,000 messages, as in an empty archive).  Nothing else
-- changes: the same rows are destroyed, tombstoned and freed
-- (tests/integration/test-purge.sh, test-erase.sh).
--
-- Restated whole from 025-erasure.sql, with its SECURITY DEFINER and
-- search_path (CREATE OR REPLACE resets them).

CREATE OR REPLACE FUNCTION mv_destroy_messages(v_ids bigint[], p_disposition bigint) RETURNS void
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
    -- No condition on part but its key (see the head of this file).
    v_blobs := array_remove(ARRAY(SELECT blob_sha256 FROM message_splice WHERE message_id = ANY (v_ids)
                                  UNION SELECT blob_sha256 FROM part WHERE message_id = ANY (v_ids)
                                  UNION SELECT skeleton_sha256 FROM message WHERE id = ANY (v_ids)),
                            NULL);
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

DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION mv_destroy_messages(bigint[], bigint) SECURITY DEFINER SET search_path = %I, pg_temp',
                   current_schema());
END;
$$;
REVOKE ALL ON FUNCTION mv_destroy_messages(bigint[], bigint) FROM PUBLIC;

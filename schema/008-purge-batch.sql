-- 008-purge-batch: destroy a batch of messages in one call (one round
-- trip per batch instead of one per message); each goes through
-- mv_purge_message(), which checks expiry and holds.  Returns the ids
-- destroyed, in the order given.
CREATE FUNCTION mv_purge_messages(p_ids bigint[], p_disposition bigint) RETURNS SETOF bigint
LANGUAGE plpgsql AS $$
DECLARE
    v bigint;
BEGIN
    FOREACH v IN ARRAY p_ids LOOP
        IF mv_purge_message(v, p_disposition) THEN
            RETURN NEXT v;
        END IF;
    END LOOP;
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

-- 009-ingest-source: where each pulled source (an IMAP journal mailbox) has
-- got to.  A source's cursor is its mailbox's UIDVALIDITY and the highest
-- UID archived; it advances only through mv_ingest_cursor_advance(), called
-- inside the transaction that stores the messages it covers, so a crash
-- can neither skip a message nor archive one twice.

CREATE TABLE ingest_cursor (
    source       text PRIMARY KEY,          -- "imap:NAME"
    url          text NOT NULL,             -- without credentials
    username     text NOT NULL,
    uidvalidity  bigint,                    -- NULL until the first SELECT
    last_uid     bigint NOT NULL DEFAULT 0, -- every UID <= this is archived
    last_success timestamptz,
    last_error   text,
    updated      timestamptz NOT NULL DEFAULT now(),
    CHECK (last_uid >= 0)
);

-- Move a cursor from (uidvalidity, from_uid) to to_uid, or fail: a cursor
-- that is not where the caller read it means another ingester of the same
-- source committed in between, and the caller's batch must roll back.
CREATE FUNCTION mv_ingest_cursor_advance(p_source text, p_uidvalidity bigint,
                                         p_from_uid bigint, p_to_uid bigint)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    UPDATE ingest_cursor
       SET last_uid = p_to_uid, last_success = now(), last_error = NULL, updated = now()
     WHERE source = p_source AND uidvalidity = p_uidvalidity AND last_uid = p_from_uid
       AND p_to_uid >= p_from_uid;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'ingest cursor of % is not at UIDVALIDITY % UID %: another ingester of this source committed first',
            p_source, p_uidvalidity, p_from_uid
            USING ERRCODE = '40001';
    END IF;
END;
$$;

-- The ingest role (007-roles) keeps the cursors of the sources it pulls.
GRANT INSERT, UPDATE ON ingest_cursor TO mailvault_ingest;

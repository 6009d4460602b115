-- 003-audit: the tamper-evident audit trail.  Each entry holds the SHA-256
-- of the entry before it; entries are numbered 1, 2, 3, ... without gaps.
-- The hash covers the entry's canonical text:
--   seq LF at LF actor LF action LF subject LF details
-- (at as YYYY-MM-DDTHH:MM:SS.ffffffZ in UTC), prefixed by prev_hash:
--   hash = sha256(prev_hash || convert_to(text, 'UTF8'))
-- `mailvault audit verify` recomputes every hash outside the database.

CREATE TABLE audit_event (
    seq       bigint PRIMARY KEY CHECK (seq > 0),
    at        timestamptz NOT NULL,
    actor     text NOT NULL,
    action    text NOT NULL,
    subject   text NOT NULL DEFAULT '',
    details   text NOT NULL DEFAULT '',
    prev_hash bytea NOT NULL CHECK (octet_length(prev_hash) = 32),
    hash      bytea NOT NULL CHECK (octet_length(hash) = 32)
);
CREATE INDEX audit_event_at_idx ON audit_event (at);

CREATE FUNCTION mv_audit_text(p_seq bigint, p_at timestamptz, p_actor text, p_action text,
                              p_subject text, p_details text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT p_seq::text || E'\n' ||
           to_char(p_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') || E'\n' ||
           p_actor || E'\n' || p_action || E'\n' || p_subject || E'\n' || p_details
$$;

-- Append one entry.  Appends are serialised (an advisory lock held to the
-- end of the caller's transaction), so the chain never forks; call it last
-- in a transaction to hold the lock briefly.
CREATE FUNCTION mv_audit_append(p_actor text, p_action text, p_subject text, p_details text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_seq bigint;
    v_prev bytea;
    v_at timestamptz := clock_timestamp();
BEGIN
    PERFORM pg_advisory_xact_lock(7231980413);
    SELECT seq + 1, hash INTO v_seq, v_prev FROM audit_event ORDER BY seq DESC LIMIT 1;
    IF v_seq IS NULL THEN
        v_seq := 1;
        v_prev := decode(repeat('00', 32), 'hex');
    END IF;
    INSERT INTO audit_event (seq, at, actor, action, subject, details, prev_hash, hash)
    VALUES (v_seq, v_at, p_actor, p_action, coalesce(p_subject, ''), coalesce(p_details, ''), v_prev,
            sha256(v_prev || convert_to(mv_audit_text(v_seq, v_at, p_actor, p_action,
                                                      coalesce(p_subject, ''),
                                                      coalesce(p_details, '')), 'UTF8')));
    RETURN v_seq;
END;
$$;

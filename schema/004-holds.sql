-- 004-holds: legal holds.  A hold is placed by query; the messages it
-- covers are listed in hold_item.  An ongoing hold also takes new messages
-- that match, inside their ingest transaction.  Holds are released, never
-- deleted.

CREATE TABLE hold (
    id             integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name           text NOT NULL UNIQUE,
    case_ref       text NOT NULL,
    reason         text NOT NULL,
    query          text NOT NULL,
    ongoing        boolean NOT NULL DEFAULT false,
    created_by     text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    released_by    text,
    released_at    timestamptz,
    release_reason text,
    CHECK ((released_at IS NULL) = (released_by IS NULL))
);

CREATE TABLE hold_item (
    hold_id    integer NOT NULL REFERENCES hold (id),
    message_id bigint NOT NULL REFERENCES message (id),
    added_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (hold_id, message_id)
);
CREATE INDEX hold_item_message_idx ON hold_item (message_id);

-- A hold is never deleted; a released one stays as the record of it.
CREATE FUNCTION mv_hold_no_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'holds are released, never deleted (hold %)', OLD.name;
END;
$$;
CREATE TRIGGER hold_no_delete BEFORE DELETE ON hold FOR EACH ROW EXECUTE FUNCTION mv_hold_no_delete();

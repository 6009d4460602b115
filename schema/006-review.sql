-- 006-review: review before destruction.  Classes whose disposition is
-- "review" are not purged when they expire: their messages wait in a
-- review queue until someone approves destruction (two different people
-- for a four-eyes class) or extends the retention.  Every decision is kept
-- here, also after the message is destroyed (no foreign key: the tombstone
-- keeps the message id), and in the audit trail.
CREATE TABLE review_decision (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id      bigint NOT NULL,
    decision        text NOT NULL CHECK (decision IN ('approve', 'extend')),
    decided_by      text NOT NULL,          -- the reviewer named with --by
    actor           text NOT NULL,          -- who ran the command
    -- the expiry the decision was about: an approval counts only while the
    -- message still has that expiry (a later extension or policy change
    -- voids it)
    expires_at      timestamptz NOT NULL,
    extended_until  timestamptz,
    reason          text,
    decided_at      timestamptz NOT NULL DEFAULT now(),
    CHECK ((decision = 'extend') = (extended_until IS NOT NULL))
);
CREATE INDEX review_decision_message_idx ON review_decision (message_id, expires_at);

CREATE FUNCTION mv_review_decision_frozen() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'review decisions are a record: they cannot be changed or deleted';
END;
$$;
CREATE TRIGGER review_decision_frozen BEFORE UPDATE OR DELETE ON review_decision
    FOR EACH ROW EXECUTE FUNCTION mv_review_decision_frozen();

-- An extension granted in review is a floor for the message's expiry: a
-- later policy (retention apply) cannot bring the date back before it.
CREATE FUNCTION mv_review_extension_floor() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_floor timestamptz;
BEGIN
    IF NEW.expires_at IS DISTINCT FROM OLD.expires_at THEN
        SELECT max(extended_until) INTO v_floor FROM review_decision
         WHERE message_id = NEW.id AND decision = 'extend';
        IF v_floor IS NOT NULL AND (NEW.expires_at IS NULL OR NEW.expires_at < v_floor) THEN
            NEW.expires_at := v_floor;
        END IF;
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER message_review_extension_floor BEFORE UPDATE OF expires_at ON message
    FOR EACH ROW EXECUTE FUNCTION mv_review_extension_floor();

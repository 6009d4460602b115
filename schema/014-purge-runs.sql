-- 014-purge-runs: purge as a cron job.  Every purge run, also one that
-- found nothing due or was refused because another run held the purge
-- lock, is a disposition row with a run number: 1, 2, 3, ... without gaps
-- (the row's id is an identity and skips a value on every rollback), a
-- state, and, once it has the lock, a destruction certificate.
--
--   state         the run ...
--   running       holds the purge lock now, or was cut short (interrupted)
--                 and waits for the next run to complete it
--   complete      destroyed records and finished normally
--   nothing-due   found nothing to destroy
--   interrupted   was cut short and completed (certificate, audit entry) by
--                 a later run
--   failed        stopped on an error; what it destroyed is certified
--   refused-busy  did not start: another run held the purge lock
--
-- certificate_format says how the certificate text is rendered from the
-- tombstones (retention/mv-purge.c): 1 for runs before this migration, 2
-- (run number, state, start time and the approvers of each record) after.

ALTER TABLE disposition
    ADD COLUMN run integer,
    ADD COLUMN state text NOT NULL DEFAULT 'running'
        CHECK (state IN ('running', 'complete', 'nothing-due', 'interrupted', 'failed',
                         'refused-busy')),
    ADD COLUMN certificate_format smallint NOT NULL DEFAULT 1 CHECK (certificate_format IN (1, 2));
ALTER TABLE disposition ALTER COLUMN certificate_format SET DEFAULT 2;

-- Runs from before: numbered in the order they started.  A finished row is
-- frozen by its trigger, which is off for this one backfill.
ALTER TABLE disposition DISABLE TRIGGER disposition_finish_once;
UPDATE disposition d
   SET run = o.n,
       state = CASE WHEN d.finished_at IS NULL THEN 'running'
                    WHEN d.destroyed > 0 THEN 'complete' ELSE 'nothing-due' END
  FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM disposition) o
 WHERE o.id = d.id;
ALTER TABLE disposition ENABLE TRIGGER disposition_finish_once;
ALTER TABLE disposition ALTER COLUMN run SET NOT NULL,
    ADD CONSTRAINT disposition_run_key UNIQUE (run);

-- The run number is taken by the inserting transaction under a lock held
-- until it ends, so a number is used only by a row that commits: dense.
-- Whatever the client sends for run is overwritten.
CREATE FUNCTION mv_disposition_number() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(7231980415);
    NEW.run := coalesce((SELECT max(run) FROM disposition), 0) + 1;
    RETURN NEW;
END;
$$;
CREATE TRIGGER disposition_number BEFORE INSERT ON disposition
    FOR EACH ROW EXECUTE FUNCTION mv_disposition_number();

-- A run's row is completed once; its number, start, performer, policy and
-- certificate format never change (007-roles.sql, with the new columns).
CREATE OR REPLACE FUNCTION mv_disposition_finish_once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' OR OLD.finished_at IS NOT NULL
       OR (NEW.id, NEW.run, NEW.started_at, NEW.performed_by, NEW.policy_version,
           NEW.certificate_format)
          IS DISTINCT FROM (OLD.id, OLD.run, OLD.started_at, OLD.performed_by, OLD.policy_version,
                            OLD.certificate_format) THEN
        RAISE EXCEPTION 'disposition %: a destruction record cannot be altered or deleted', OLD.id;
    END IF;
    RETURN NEW;
END;
$$;

-- Wait up to p_timeout_ms milliseconds for the session advisory lock
-- p_key (purge --wait): true once held, false when the time ran out.
CREATE FUNCTION mv_advisory_lock_wait(p_key bigint, p_timeout_ms integer) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('lock_timeout', greatest(p_timeout_ms, 1)::text, true);
    PERFORM pg_advisory_lock(p_key);
    RETURN true;
EXCEPTION WHEN lock_not_available THEN
    RETURN false;
END;
$$;

-- show / get / search find a destroyed record by its registration number.
CREATE INDEX tombstone_registration_idx ON tombstone (registration);

GRANT UPDATE (state) ON disposition TO mailvault_purge;

-- 037-stats-counters: the totals `mailvault stats` prints, kept by the
-- writing transactions, so that stats reads a few rows instead of counting
-- and summing whole tables (issue 12: 25 ms at 5,000 messages, most of it
-- that one statement, and linear in the archive: seconds at a million).
--
-- Where they live: stats_delta.  Row xid 0 is the base (the totals folded
-- so far); every other row is what one committed (or running) transaction
-- added, keyed by its transaction id.  A total is the sum of its column
-- over the table.  Columns: messages, raw_bytes (sum of message.size),
-- flagged (parse_status <> 'ok'), arrivals, blobs, stored_bytes (blob plus
-- pack_frame stored_size), pending_index (message_text rows with tsv
-- NULL), virus_settled / spam_settled (verdict rows whose virus is clean
-- or infected / whose spam is yes or no: one verdict row per message, so
-- the backlogs stats prints are messages minus these), virus_infected.
--
-- No contention: a transaction only ever writes its own row (INSERT ... ON
-- CONFLICT (xid) on the primary key: no other transaction can hold that
-- key), so 200 smtpd sessions committing at once never wait on a counter;
-- no hot row, no shard to collide on (031's traffic rollups shard by
-- pg_backend_pid() % 8 and two sessions with the same shard and bucket do
-- wait for each other; a per-transaction key has no such case).  A rolled
-- back transaction (or savepoint) takes its row (or its update) with it,
-- so the totals stay exact without the writer doing anything.
--
-- Triggers (per statement; a blob's INSERT per row, see below), not
-- explicit writes in mv_ingest_batch / mv_destroy_messages:
-- these numbers change in many places (ingest, the blob store's puts from
-- C, purge, erasure, compact and pack sweeps in mv-pack.c, the indexer,
-- `mailvault scan`, review), and a counter that one writer forgot is wrong
-- for ever; a statement trigger with transition tables (the 022/031
-- pattern) sees every row change whoever makes it, one aggregate per
-- statement, not per row, and FK cascades (verdict goes with its message)
-- are statements too.
--
-- The fold (mv_stats_fold) adds the committed rows into the base and
-- deletes them, keeping the table short so stats reads a bounded number
-- of rows.  It is run (1) by a writing transaction whose id is a multiple
-- of 128, once, from the first statement trigger (not the blob put's row
-- trigger) it fires: the primary folds by itself with or without
-- readers, about once per 128 write transactions; (2) by stats
-- when it finds more than 512 rows (a burst between folds).  It never
-- waits: pg_try_advisory_xact_lock, else it returns; and it runs only in
-- a READ COMMITTED read-write transaction on the primary (a REPEATABLE
-- READ writer's snapshot could hold rows another fold has deleted).  So
-- stats reads at most some hundreds of rows whatever the archive's size.
--
-- Access: stats_delta holds whole-archive totals, which stats shows only
-- to roles that see the whole archive (mv_sees_all, 019).  SELECT is
-- granted to the staff roles only; mv_stats() reads it only for a role
-- that sees all and may read it, and recounts under row-level security
-- (as before) for an employee or an auditor.  Nobody but the owner writes
-- it: the trigger functions and the fold are SECURITY DEFINER.
--
-- mv_stats_recount() is the old statement (every table counted);
-- `mailvault stats --recount` compares the two and says which total
-- differs; `stats --rebuild` (mv_stats_rebuild) sets them right.
-- tests/integration/test-stats-counters.sh checks them equal after
-- ingest, duplicate ingest, this migration on a filled archive, verdict
-- writes, rolled back transactions, hold, purge, erasure, compact, an
-- import killed mid-run, concurrent imports, folds and a rebuild.

CREATE TABLE stats_delta (
    xid            xid8 PRIMARY KEY,
    messages       bigint NOT NULL DEFAULT 0,
    raw_bytes      bigint NOT NULL DEFAULT 0,
    flagged        bigint NOT NULL DEFAULT 0,
    arrivals       bigint NOT NULL DEFAULT 0,
    blobs          bigint NOT NULL DEFAULT 0,
    stored_bytes   bigint NOT NULL DEFAULT 0,
    pending_index  bigint NOT NULL DEFAULT 0,
    virus_settled  bigint NOT NULL DEFAULT 0,
    virus_infected bigint NOT NULL DEFAULT 0,
    spam_settled   bigint NOT NULL DEFAULT 0
);

-- Fold the committed deltas into the base row; the number of rows folded
-- (0 when another fold runs, on a standby, in a read-only or a
-- REPEATABLE READ / SERIALIZABLE transaction).
CREATE FUNCTION mv_stats_fold() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    IF pg_is_in_recovery() OR current_setting('transaction_read_only') = 'on'
       OR current_setting('transaction_isolation') <> 'read committed'
       OR NOT pg_try_advisory_xact_lock(7231980437) THEN
        RETURN 0;
    END IF;
    -- A new snapshot (READ COMMITTED): a fold that held the lock before
    -- committed before releasing it, so its deletions are seen here.  The
    -- rows of others only: a writer folding keeps its own row, which its
    -- later statements add to (else each would make a new row and fold
    -- again).
    WITH d AS (DELETE FROM stats_delta
                WHERE xid <> '0'::xid8 AND xid IS DISTINCT FROM pg_current_xact_id_if_assigned()
               RETURNING *),
    s AS (SELECT count(*) AS n, sum(messages) AS messages, sum(raw_bytes) AS raw_bytes,
                 sum(flagged) AS flagged, sum(arrivals) AS arrivals, sum(blobs) AS blobs,
                 sum(stored_bytes) AS stored_bytes, sum(pending_index) AS pending_index,
                 sum(virus_settled) AS virus_settled, sum(virus_infected) AS virus_infected,
                 sum(spam_settled) AS spam_settled
            FROM d)
    UPDATE stats_delta t
       SET messages = t.messages + s.messages, raw_bytes = t.raw_bytes + s.raw_bytes,
           flagged = t.flagged + s.flagged, arrivals = t.arrivals + s.arrivals,
           blobs = t.blobs + s.blobs, stored_bytes = t.stored_bytes + s.stored_bytes,
           pending_index = t.pending_index + s.pending_index,
           virus_settled = t.virus_settled + s.virus_settled,
           virus_infected = t.virus_infected + s.virus_infected,
           spam_settled = t.spam_settled + s.spam_settled
      FROM s
     WHERE t.xid = '0'::xid8 AND s.n > 0
    RETURNING s.n INTO n;
    RETURN coalesce(n, 0);
END;
$$;

-- Add to this transaction's row (created on first use).  Called by the
-- trigger functions only.
CREATE FUNCTION mv_stats_add(p_messages bigint, p_raw_bytes bigint, p_flagged bigint,
                             p_arrivals bigint, p_blobs bigint, p_stored_bytes bigint,
                             p_pending_index bigint, p_virus_settled bigint,
                             p_virus_infected bigint, p_spam_settled bigint)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_xid xid8 := pg_current_xact_id();
BEGIN
    IF p_messages = 0 AND p_raw_bytes = 0 AND p_flagged = 0 AND p_arrivals = 0 AND p_blobs = 0
       AND p_stored_bytes = 0 AND p_pending_index = 0 AND p_virus_settled = 0
       AND p_virus_infected = 0 AND p_spam_settled = 0 THEN
        RETURN;
    END IF;
    INSERT INTO stats_delta AS d (xid, messages, raw_bytes, flagged, arrivals, blobs,
                                  stored_bytes, pending_index, virus_settled, virus_infected,
                                  spam_settled)
    VALUES (v_xid, p_messages, p_raw_bytes, p_flagged, p_arrivals, p_blobs, p_stored_bytes,
            p_pending_index, p_virus_settled, p_virus_infected, p_spam_settled)
    ON CONFLICT (xid) DO UPDATE
       SET messages = d.messages + excluded.messages, raw_bytes = d.raw_bytes + excluded.raw_bytes,
           flagged = d.flagged + excluded.flagged, arrivals = d.arrivals + excluded.arrivals,
           blobs = d.blobs + excluded.blobs, stored_bytes = d.stored_bytes + excluded.stored_bytes,
           pending_index = d.pending_index + excluded.pending_index,
           virus_settled = d.virus_settled + excluded.virus_settled,
           virus_infected = d.virus_infected + excluded.virus_infected,
           spam_settled = d.spam_settled + excluded.spam_settled;
    -- The writers' share of the folding (see the head of this file), once
    -- per transaction (the setting only says whether this one did: a role
    -- that sets it folds less, or more, and counts the same).
    IF (v_xid::text::bigint % 128) = 0
       AND current_setting('mailvault.stats_folded', true) IS DISTINCT FROM v_xid::text THEN
        PERFORM set_config('mailvault.stats_folded', v_xid::text, true);
        PERFORM mv_stats_fold();
    END IF;
END;
$$;

-- One trigger function per table, for its INSERT, DELETE and UPDATE
-- statement triggers (a trigger with transition tables has one event;
-- PL/pgSQL plans each branch on first use, per trigger, so a branch that
-- names a transition table the trigger lacks is never planned).

CREATE FUNCTION mv_stats_message() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    n bigint := 0; sz bigint := 0; fl bigint := 0;
    n0 bigint := 0; sz0 bigint := 0; fl0 bigint := 0;
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        SELECT count(*), coalesce(sum(size), 0), count(*) FILTER (WHERE parse_status <> 'ok')
          INTO n, sz, fl FROM new_rows;
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        SELECT count(*), coalesce(sum(size), 0), count(*) FILTER (WHERE parse_status <> 'ok')
          INTO n0, sz0, fl0 FROM old_rows;
    END IF;
    PERFORM mv_stats_add(n - n0, sz - sz0, fl - fl0, 0, 0, 0, 0, 0, 0, 0);
    RETURN NULL;
END;
$$;

CREATE FUNCTION mv_stats_arrival() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT count(*) INTO n FROM new_rows;
    ELSE
        SELECT -count(*) INTO n FROM old_rows;
    END IF;
    PERFORM mv_stats_add(0, 0, 0, n, 0, 0, 0, 0, 0, 0);
    RETURN NULL;
END;
$$;

CREATE FUNCTION mv_stats_blob() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    n bigint := 0; sz bigint := 0; n0 bigint := 0; sz0 bigint := 0;
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        SELECT count(*), coalesce(sum(stored_size), 0) INTO n, sz FROM new_rows;
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        SELECT count(*), coalesce(sum(stored_size), 0) INTO n0, sz0 FROM old_rows;
    END IF;
    PERFORM mv_stats_add(0, 0, 0, 0, n - n0, sz - sz0, 0, 0, 0, 0);
    RETURN NULL;
END;
$$;

CREATE FUNCTION mv_stats_pack_frame() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    sz bigint := 0; sz0 bigint := 0;
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        SELECT coalesce(sum(stored_size), 0) INTO sz FROM new_rows;
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        SELECT coalesce(sum(stored_size), 0) INTO sz0 FROM old_rows;
    END IF;
    PERFORM mv_stats_add(0, 0, 0, 0, 0, sz - sz0, 0, 0, 0, 0);
    RETURN NULL;
END;
$$;

CREATE FUNCTION mv_stats_message_text() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    p bigint := 0; p0 bigint := 0;
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        SELECT count(*) FILTER (WHERE tsv IS NULL) INTO p FROM new_rows;
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        SELECT count(*) FILTER (WHERE tsv IS NULL) INTO p0 FROM old_rows;
    END IF;
    PERFORM mv_stats_add(0, 0, 0, 0, 0, 0, p - p0, 0, 0, 0);
    RETURN NULL;
END;
$$;

CREATE FUNCTION mv_stats_verdict() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    vs bigint := 0; vi bigint := 0; ss bigint := 0;
    vs0 bigint := 0; vi0 bigint := 0; ss0 bigint := 0;
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        SELECT count(*) FILTER (WHERE virus IN ('clean', 'infected')),
               count(*) FILTER (WHERE virus = 'infected'), count(*) FILTER (WHERE spam IN ('yes', 'no'))
          INTO vs, vi, ss FROM new_rows;
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        SELECT count(*) FILTER (WHERE virus IN ('clean', 'infected')),
               count(*) FILTER (WHERE virus = 'infected'), count(*) FILTER (WHERE spam IN ('yes', 'no'))
          INTO vs0, vi0, ss0 FROM old_rows;
    END IF;
    PERFORM mv_stats_add(0, 0, 0, 0, 0, 0, 0, vs - vs0, vi - vi0, ss - ss0);
    RETURN NULL;
END;
$$;

-- A blob put is one row in a statement of its own (mv-blobstore-pg.c
-- puts each blob with its own INSERT, pipelined: thousands a minute), so
-- its INSERT trigger is per row, the upsert inline: no transition table,
-- no count over it, no second call, and nothing at all for a put that
-- finds the blob there (ON CONFLICT DO NOTHING inserts no row).  Measured
-- (2,000 single-row INSERTs a transaction, best of eight): 15 µs a put
-- against 43 for the statement trigger.  Deletes and updates of blobs
-- (purge, compact) come in large statements: per statement, as the rest.
CREATE FUNCTION mv_stats_blob_ins() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO stats_delta AS d (xid, blobs, stored_bytes)
    VALUES (pg_current_xact_id(), 1, NEW.stored_size)
    ON CONFLICT (xid) DO UPDATE
       SET blobs = d.blobs + 1, stored_bytes = d.stored_bytes + excluded.stored_bytes;
    RETURN NULL;
END;
$$;

DO $$
DECLARE
    t text;
BEGIN
    CREATE TRIGGER stats_blob_ins AFTER INSERT ON blob
        FOR EACH ROW EXECUTE FUNCTION mv_stats_blob_ins();
    FOREACH t IN ARRAY ARRAY['message', 'arrival', 'blob', 'pack_frame', 'message_text', 'verdict'] LOOP
        IF t <> 'blob' THEN
            EXECUTE format('CREATE TRIGGER stats_%1$s_ins AFTER INSERT ON %1$I REFERENCING NEW TABLE AS new_rows '
                           'FOR EACH STATEMENT EXECUTE FUNCTION mv_stats_%1$s()', t);
        END IF;
        EXECUTE format('CREATE TRIGGER stats_%1$s_del AFTER DELETE ON %1$I REFERENCING OLD TABLE AS old_rows '
                       'FOR EACH STATEMENT EXECUTE FUNCTION mv_stats_%1$s()', t);
        -- (an arrival is immutable: no count of it changes on UPDATE)
        IF t <> 'arrival' THEN
            EXECUTE format('CREATE TRIGGER stats_%1$s_upd AFTER UPDATE ON %1$I '
                           'REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows '
                           'FOR EACH STATEMENT EXECUTE FUNCTION mv_stats_%1$s()', t);
        END IF;
    END LOOP;
END;
$$;

-- The totals recounted from the tables: the statement stats ran before
-- this migration, under the caller's row-level security.
CREATE FUNCTION mv_stats_recount(
    OUT messages bigint, OUT arrivals bigint, OUT raw_bytes bigint, OUT stored_bytes bigint,
    OUT blobs bigint, OUT flagged bigint, OUT pending_index bigint, OUT virus_unscanned bigint,
    OUT virus_infected bigint, OUT spam_unscanned bigint)
LANGUAGE sql STABLE AS $$
    SELECT (SELECT count(*) FROM message), (SELECT count(*) FROM arrival),
           (SELECT coalesce(sum(size), 0) FROM message)::bigint,
           ((SELECT coalesce(sum(stored_size), 0) FROM blob)
            + (SELECT coalesce(sum(stored_size), 0) FROM pack_frame))::bigint,
           (SELECT count(*) FROM blob),
           (SELECT count(*) FROM message WHERE parse_status <> 'ok'),
           (SELECT count(*) FROM message_text WHERE tsv IS NULL),
           (SELECT count(*) FROM message m WHERE NOT EXISTS (SELECT 1 FROM verdict v
              WHERE v.message_id = m.id AND v.virus IN ('clean', 'infected'))),
           (SELECT count(*) FROM verdict WHERE virus = 'infected'),
           (SELECT count(*) FROM message m WHERE NOT EXISTS (SELECT 1 FROM verdict v
              WHERE v.message_id = m.id AND v.spam IN ('yes', 'no')))
$$;

-- What stats prints: the counters for a role that sees the whole archive,
-- else the recount of what this role sees (restricted); deltas: the
-- counter rows read (0 when recounted).  Not SECURITY DEFINER: the
-- caller's rights decide which.  More than 512 rows: fold them (on the
-- primary, not waiting; the fold is SECURITY DEFINER).
CREATE FUNCTION mv_stats(
    OUT messages bigint, OUT arrivals bigint, OUT raw_bytes bigint, OUT stored_bytes bigint,
    OUT blobs bigint, OUT flagged bigint, OUT pending_index bigint, OUT virus_unscanned bigint,
    OUT virus_infected bigint, OUT spam_unscanned bigint, OUT restricted boolean,
    OUT deltas bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_all boolean := mv_sees_all();
BEGIN
    IF v_all AND has_table_privilege('stats_delta', 'SELECT') THEN
        SELECT sum(d.messages), sum(d.arrivals), sum(d.raw_bytes), sum(d.stored_bytes),
               sum(d.blobs), sum(d.flagged), sum(d.pending_index),
               sum(d.messages) - sum(d.virus_settled), sum(d.virus_infected),
               sum(d.messages) - sum(d.spam_settled), false, count(*) - 1
          INTO messages, arrivals, raw_bytes, stored_bytes, blobs, flagged, pending_index,
               virus_unscanned, virus_infected, spam_unscanned, restricted, deltas
          FROM stats_delta d;
        IF deltas > 512 AND has_function_privilege('mv_stats_fold()', 'EXECUTE') THEN
            PERFORM mv_stats_fold();
        END IF;
    ELSE
        -- (a role that sees all without the grant, BYPASSRLS: the
        -- recount, of the whole archive)
        SELECT r.*, NOT v_all, 0 INTO messages, arrivals, raw_bytes, stored_bytes, blobs, flagged,
               pending_index, virus_unscanned, virus_infected, spam_unscanned, restricted, deltas
          FROM mv_stats_recount() r;
    END IF;
END;
$$;

DO $$
DECLARE
    f text;
BEGIN
    FOREACH f IN ARRAY ARRAY['mv_stats_fold()',
                             'mv_stats_add(bigint, bigint, bigint, bigint, bigint, bigint, bigint, bigint, bigint, bigint)',
                             'mv_stats_message()', 'mv_stats_arrival()', 'mv_stats_blob()',
                             'mv_stats_blob_ins()',
                             'mv_stats_pack_frame()', 'mv_stats_message_text()',
                             'mv_stats_verdict()'] LOOP
        EXECUTE format('ALTER FUNCTION %s SECURITY DEFINER SET search_path = %I, pg_temp',
                       f, current_schema());
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
    END LOOP;
END;
$$;
GRANT EXECUTE ON FUNCTION mv_stats_fold() TO mailvault_legal, mailvault_ingest, mailvault_purge;

GRANT SELECT ON stats_delta TO mailvault_legal, mailvault_ingest, mailvault_purge;
ALTER TABLE stats_delta ENABLE ROW LEVEL SECURITY;
CREATE POLICY staff ON stats_delta FOR SELECT TO mailvault_legal, mailvault_ingest, mailvault_purge
    USING (true);

-- Rebuild: the base becomes the tables' counts minus the other rows, all
-- read in one snapshot, so base plus rows is the recount at that snapshot
-- plus what committed after it: exact, without blocking a writer (a
-- transaction running at the snapshot has neither its table rows nor its
-- counter row in it, and adds the latter when it commits).  The fold's
-- lock, taken waiting, keeps a fold from moving rows between the two
-- reads.  For an operator whose --recount found a difference (a counter
-- bypassed: a trigger disabled by hand) and for this migration.
CREATE FUNCTION mv_stats_rebuild() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(7231980437);
    INSERT INTO stats_delta (xid) VALUES ('0'::xid8) ON CONFLICT (xid) DO NOTHING;
    -- (a new snapshot, taken after the lock: READ COMMITTED)
    UPDATE stats_delta t
       SET messages = c.messages - d.messages, raw_bytes = c.raw_bytes - d.raw_bytes,
           flagged = c.flagged - d.flagged, arrivals = c.arrivals - d.arrivals,
           blobs = c.blobs - d.blobs, stored_bytes = c.stored_bytes - d.stored_bytes,
           pending_index = c.pending_index - d.pending_index,
           virus_settled = c.virus_settled - d.virus_settled,
           virus_infected = c.virus_infected - d.virus_infected,
           spam_settled = c.spam_settled - d.spam_settled
      FROM (SELECT (SELECT count(*) FROM message) AS messages,
                   (SELECT coalesce(sum(size), 0) FROM message) AS raw_bytes,
                   (SELECT count(*) FROM message WHERE parse_status <> 'ok') AS flagged,
                   (SELECT count(*) FROM arrival) AS arrivals, (SELECT count(*) FROM blob) AS blobs,
                   (SELECT coalesce(sum(stored_size), 0) FROM blob)
                     + (SELECT coalesce(sum(stored_size), 0) FROM pack_frame) AS stored_bytes,
                   (SELECT count(*) FROM message_text WHERE tsv IS NULL) AS pending_index,
                   (SELECT count(*) FROM verdict WHERE virus IN ('clean', 'infected')) AS virus_settled,
                   (SELECT count(*) FROM verdict WHERE virus = 'infected') AS virus_infected,
                   (SELECT count(*) FROM verdict WHERE spam IN ('yes', 'no')) AS spam_settled) c,
           (SELECT coalesce(sum(messages), 0) AS messages, coalesce(sum(raw_bytes), 0) AS raw_bytes,
                   coalesce(sum(flagged), 0) AS flagged, coalesce(sum(arrivals), 0) AS arrivals,
                   coalesce(sum(blobs), 0) AS blobs, coalesce(sum(stored_bytes), 0) AS stored_bytes,
                   coalesce(sum(pending_index), 0) AS pending_index,
                   coalesce(sum(virus_settled), 0) AS virus_settled,
                   coalesce(sum(virus_infected), 0) AS virus_infected,
                   coalesce(sum(spam_settled), 0) AS spam_settled
              FROM stats_delta WHERE xid <> '0'::xid8) d
     WHERE t.xid = '0'::xid8;
END;
$$;
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION mv_stats_rebuild() SECURITY DEFINER SET search_path = %I, pg_temp',
                   current_schema());
END;
$$;
REVOKE ALL ON FUNCTION mv_stats_rebuild() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mv_stats_rebuild() TO mailvault_legal;

-- The base: the archive as it is now (the triggers above are in place in
-- this transaction, which holds locks on the tables, so no writer commits
-- between the count and the triggers taking over).  An existing archive
-- shows the same numbers before and after.
SELECT mv_stats_rebuild();

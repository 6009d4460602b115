-- 038-traffic-delete: the traffic rollups' DELETE triggers (and the
-- UPDATE one, below) written as 031 wrote the INSERT ones: one set-based upsert per statement, instead of a
-- jsonb document built per statement and read back (022's
-- mv_traffic_add), and for the recipients one aggregate instead of a
-- NOT EXISTS probe per (message, key) pair, twice.  Measured at 300,000
-- messages (docs/scaling.md, growth): the DELETE triggers were 325 ms of
-- a purge batch of about 900.
--
-- What they add is 022's, row for row: purge's deletes go to shard 8
-- (address rows first, then message rows: the other order than ingest's,
-- so shard 8 keeps ingest and purge from locking one counter row each in
-- an order that deadlocks); keys are upserted in order.
-- test-traffic.sh checks the rollups against `stats traffic --rebuild`
-- after purge and under concurrent writers.

-- The 'm' (per hour) and 's' (sender, per day) rows of the messages a
-- statement deleted, subtracted.
CREATE OR REPLACE FUNCTION mv_traffic_message_del() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO traffic_rollup AS t (bucket, direction, kind, domain, usr, shard, messages, bytes)
    SELECT CASE WHEN k.kind = 'm' THEN mv_traffic_bucket(o.date, o.archived_at)
                ELSE mv_traffic_day(o.date, o.archived_at) END,
           coalesce(o.direction, 'unknown'), k.kind,
           CASE WHEN k.kind = 's' THEN mv_traffic_domain(o.from_addr) ELSE '' END,
           CASE WHEN k.kind = 's' THEN mv_traffic_user(o.from_addr) ELSE '' END,
           8::smallint, -count(*), -sum(o.size)
      FROM old_rows o
     CROSS JOIN (VALUES ('m'::"char"), ('s'::"char")) AS k(kind)
     GROUP BY 1, 2, 3, 4, 5
     ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT (bucket, direction, kind, domain, usr, shard)
    DO UPDATE SET messages = t.messages + excluded.messages, bytes = t.bytes + excluded.bytes;
    RETURN NULL;
END;
$$;

-- The 'r' (recipient user) and 'R' (recipient domain) rows of the
-- (message, key) pairs no recipient row holds any more, subtracted.  One
-- aggregate over the statement's recipient rows (gone = 1) and the
-- recipient rows their messages still have (gone = 0): a key is gone when
-- every row it had is among the statement's.  The message must still
-- exist (purge deletes its address rows first); a pair whose message is
-- gone in the same statement is not subtracted here, as in 022.
CREATE OR REPLACE FUNCTION mv_traffic_address_del() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO traffic_rollup AS t (bucket, direction, kind, domain, usr, shard, messages, bytes)
    SELECT mv_traffic_day(m.date, m.archived_at), coalesce(m.direction, 'unknown'), p.kind,
           CASE WHEN p.kind = 'r' THEN mv_traffic_domain(p.key) ELSE p.key END,
           CASE WHEN p.kind = 'r' THEN p.key ELSE '' END,
           8::smallint, -count(*), -sum(m.size)
      FROM (SELECT r.message_id, k.kind,
                   CASE WHEN k.kind = 'r' THEN mv_traffic_user(r.address)
                        ELSE mv_traffic_domain(r.address) END AS key
              FROM (SELECT o.message_id, o.address, 1 AS gone FROM old_rows o
                     WHERE mv_traffic_recipient_role(o.role)
                    UNION ALL
                    SELECT a.message_id, a.address, 0 FROM address a
                     WHERE a.message_id = ANY (ARRAY(SELECT DISTINCT o.message_id FROM old_rows o
                                                      WHERE mv_traffic_recipient_role(o.role)))
                       AND mv_traffic_recipient_role(a.role)) r
             CROSS JOIN (VALUES ('r'::"char"), ('R'::"char")) AS k(kind)
             GROUP BY 1, 2, 3
            HAVING sum(r.gone) = count(*)) p
      JOIN message m ON m.id = p.message_id
     GROUP BY 1, 2, 3, 4, 5
     ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT (bucket, direction, kind, domain, usr, shard)
    DO UPDATE SET messages = t.messages + excluded.messages, bytes = t.bytes + excluded.bytes;
    RETURN NULL;
END;
$$;

-- retention apply may change a message's direction: its rows move, from
-- the old direction to the new one, in shard 9 (as in 022).  One upsert
-- for the statement, instead of 022's jsonb documents per old direction:
-- measured on 21,023 linux-mips messages whose direction a policy
-- changed, 022's trigger was 10.0 s of the 20.5 s retention apply took.
CREATE OR REPLACE FUNCTION mv_traffic_message_upd() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WITH moved AS MATERIALIZED (
        SELECT n.id, n.date, n.archived_at, n.from_addr, n.size,
               o.date AS o_date, o.archived_at AS o_archived_at, o.from_addr AS o_from_addr,
               o.size AS o_size,
               coalesce(o.direction, 'unknown') AS old_dir, coalesce(n.direction, 'unknown') AS new_dir
          FROM old_rows o JOIN new_rows n ON n.id = o.id
         WHERE n.direction IS DISTINCT FROM o.direction),
    delta AS (
        -- the 'm' and 's' rows: the old row's subtracted, the new row's added
        SELECT CASE WHEN k.kind = 'm' THEN mv_traffic_bucket(v.date, v.archived_at)
                    ELSE mv_traffic_day(v.date, v.archived_at) END AS bucket,
               v.dir AS direction, k.kind,
               CASE WHEN k.kind = 's' THEN mv_traffic_domain(v.from_addr) ELSE '' END AS domain,
               CASE WHEN k.kind = 's' THEN mv_traffic_user(v.from_addr) ELSE '' END AS usr,
               v.sign AS messages, v.sign * v.size AS bytes
          FROM (SELECT o_date AS date, o_archived_at AS archived_at, o_from_addr AS from_addr,
                       o_size AS size, old_dir AS dir, -1 AS sign FROM moved
                UNION ALL
                SELECT date, archived_at, from_addr, size, new_dir, 1 FROM moved) v
         CROSS JOIN (VALUES ('m'::"char"), ('s'::"char")) AS k(kind)
        UNION ALL
        -- the 'r' and 'R' rows of each (message, key) pair its recipient
        -- rows hold now: out of the old direction, into the new one
        SELECT mv_traffic_day(mv.date, mv.archived_at), d.dir, p.kind,
               CASE WHEN p.kind = 'r' THEN mv_traffic_domain(p.key) ELSE p.key END,
               CASE WHEN p.kind = 'r' THEN p.key ELSE '' END,
               d.sign, d.sign * mv.size
          FROM (SELECT DISTINCT a.message_id, k.kind,
                       CASE WHEN k.kind = 'r' THEN mv_traffic_user(a.address)
                            ELSE mv_traffic_domain(a.address) END AS key
                  FROM address a
                 CROSS JOIN (VALUES ('r'::"char"), ('R'::"char")) AS k(kind)
                 WHERE a.message_id = ANY (ARRAY(SELECT id FROM moved))
                   AND mv_traffic_recipient_role(a.role)) p
          JOIN moved mv ON mv.id = p.message_id
         CROSS JOIN LATERAL (VALUES (mv.old_dir, -1), (mv.new_dir, 1)) AS d(dir, sign))
    INSERT INTO traffic_rollup AS t (bucket, direction, kind, domain, usr, shard, messages, bytes)
    SELECT bucket, direction, kind, domain, usr, 9::smallint, sum(messages), sum(bytes)
      FROM delta
     GROUP BY 1, 2, 3, 4, 5
    HAVING sum(messages) <> 0 OR sum(bytes) <> 0
     ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT (bucket, direction, kind, domain, usr, shard)
    DO UPDATE SET messages = t.messages + excluded.messages, bytes = t.bytes + excluded.bytes;
    RETURN NULL;
END;
$$;

-- As in 022 and 031: the triggers fire under the role that deletes
-- (purge, erasure) or applies retention, which may not write the rollups; they run as the
-- owner with a fixed search_path (CREATE OR REPLACE reset both).
DO $$
DECLARE
    f text;
    s text := current_schema();
BEGIN
    FOREACH f IN ARRAY ARRAY['mv_traffic_message_del()', 'mv_traffic_address_del()',
                             'mv_traffic_message_upd()'] LOOP
        EXECUTE format('ALTER FUNCTION %s SECURITY DEFINER SET search_path = %I, pg_temp', f, s);
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
    END LOOP;
END;
$$;

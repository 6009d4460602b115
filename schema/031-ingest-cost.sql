-- 031-ingest-cost: the traffic counters and the seals of ingest at a
-- fraction of their cost (issue 12).  Part 1: the traffic counters.  Part
-- 2 (at the end): the message seal.
--
-- Measured (pg_stat_statements and pg_stat_user_functions during
-- `smtp-bench --sessions 50`, 2,000 messages in 81 transactions): the
-- INSERT triggers of 022 took 525 ms of mv_ingest_batch's 905 ms.  Not the
-- counting itself (the existence checks took 71 ms) but how it was said:
-- per statement, each trigger built a jsonb document of rows
-- (mv_traffic_message_rows, mv_traffic_key_rows: SQL functions run as the
-- owner with their own search_path, so never inlined and planned again on
-- every call), then parsed it back (mv_traffic_add); and mv_traffic_bucket
-- and mv_traffic_day, declared IMMUTABLE around date_trunc(..., 'UTC'),
-- which is STABLE, were never inlined either: 10,000 and 11,000 calls of a
-- SQL function for 2,000 messages.
--
-- Here:
-- - mv_traffic_bucket and mv_traffic_day are STABLE (what their body is),
--   so the planner inlines them into every query that uses them (the
--   triggers, the rebuild, the purge and direction paths);
-- - the INSERT triggers on message and address each make one INSERT ...
--   SELECT ... ON CONFLICT straight from the transition table, with the
--   same definitions as 022 (a recipient pair counts when every recipient
--   row of the message that holds its key is new in the statement), the
--   same shard (pg_backend_pid() % 8) and the same key order.
-- Still triggers, not a function the writer calls after mv_ingest_batch:
-- only the statement knows which address rows it added, so the recipient
-- a later arrival of a stored message brings is counted exactly, without
-- the writer knowing which rows were there before (and mv_ingest_batch is
-- not redefined here).  The DELETE and UPDATE triggers (purge, erasure,
-- retention apply) and the rebuild are unchanged.  The counts are the same: test-traffic.sh
-- compares the rollups with the records after concurrent imports,
-- retention apply, purge and --rebuild.

ALTER FUNCTION mv_traffic_bucket(timestamptz, timestamptz) STABLE;
ALTER FUNCTION mv_traffic_day(timestamptz, timestamptz) STABLE;

-- The same for the seals (013): mv_audit_ingest seals every message of a
-- batch with mv_message_seal, which formats its timestamps with mv_ts,
-- declared IMMUTABLE around to_char (STABLE): never inlined, and so the
-- mv_field around each of them was not inlined either (an argument that
-- calls a function is too costly to repeat).  Measured: 12 mv_field and 6
-- mv_ts calls per message, the seals 0.9 of mv_audit_ingest's time, which
-- was more than mv_ingest_batch's.  STABLE is what the body is; the seal's
-- text, and so every seal, is the same.
ALTER FUNCTION mv_ts(timestamptz) STABLE;

-- The 'm' (per hour) and 's' (sender, per day) rows of the messages a
-- statement inserted (ingest: only those mv_ingest_batch won the insert
-- for, so a duplicate adds nothing).
CREATE OR REPLACE FUNCTION mv_traffic_message_ins() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO traffic_rollup AS t (bucket, direction, kind, domain, usr, shard, messages, bytes)
    SELECT CASE WHEN k.kind = 'm' THEN mv_traffic_bucket(n.date, n.archived_at)
                ELSE mv_traffic_day(n.date, n.archived_at) END,
           coalesce(n.direction, 'unknown'), k.kind,
           CASE WHEN k.kind = 's' THEN mv_traffic_domain(n.from_addr) ELSE '' END,
           CASE WHEN k.kind = 's' THEN mv_traffic_user(n.from_addr) ELSE '' END,
           (pg_backend_pid() % 8)::smallint, count(*), sum(n.size)
      FROM new_rows n
     CROSS JOIN (VALUES ('m'::"char"), ('s'::"char")) AS k(kind)
     GROUP BY 1, 2, 3, 4, 5
     ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT (bucket, direction, kind, domain, usr, shard)
    DO UPDATE SET messages = t.messages + excluded.messages, bytes = t.bytes + excluded.bytes;
    RETURN NULL;
END;
$$;

-- The 'r' (recipient user) and 'R' (recipient domain) rows of the
-- (message, key) pairs a statement made present: pairs whose every
-- recipient row is among the statement's rows were absent before (so a
-- later arrival's envelope recipient adds only what is new).  One pass
-- over the statement's rows and the address rows of their messages (one
-- index scan), not a probe per pair.
CREATE OR REPLACE FUNCTION mv_traffic_address_ins() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- One aggregate over the statement's recipient rows (n = 1) and all
    -- the recipient rows of their messages now (n = 0, the new ones
    -- included): a key is new when it has as many rows in the statement
    -- as in the table.  No join of two sets whose sizes the planner cannot
    -- know (a transition table has no statistics: a join of them was a
    -- nested loop, quadratic in the batch).
    INSERT INTO traffic_rollup AS t (bucket, direction, kind, domain, usr, shard, messages, bytes)
    SELECT mv_traffic_day(m.date, m.archived_at), coalesce(m.direction, 'unknown'), p.kind,
           CASE WHEN p.kind = 'r' THEN mv_traffic_domain(p.key) ELSE p.key END,
           CASE WHEN p.kind = 'r' THEN p.key ELSE '' END,
           (pg_backend_pid() % 8)::smallint, count(*), sum(m.size)
      FROM (SELECT r.message_id, k.kind,
                   CASE WHEN k.kind = 'r' THEN mv_traffic_user(r.address)
                        ELSE mv_traffic_domain(r.address) END AS key
              FROM (SELECT n.message_id, n.address, 1 AS fresh FROM new_rows n
                     WHERE mv_traffic_recipient_role(n.role)
                    UNION ALL
                    SELECT a.message_id, a.address, 0 FROM address a
                     WHERE a.message_id = ANY (ARRAY(SELECT DISTINCT n.message_id FROM new_rows n
                                                      WHERE mv_traffic_recipient_role(n.role)))
                       AND mv_traffic_recipient_role(a.role)) r
             CROSS JOIN (VALUES ('r'::"char"), ('R'::"char")) AS k(kind)
             GROUP BY 1, 2, 3
            HAVING sum(r.fresh) > 0 AND 2 * sum(r.fresh) = count(*)) p
      JOIN message m ON m.id = p.message_id
     GROUP BY 1, 2, 3, 4, 5
     ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT (bucket, direction, kind, domain, usr, shard)
    DO UPDATE SET messages = t.messages + excluded.messages, bytes = t.bytes + excluded.bytes;
    RETURN NULL;
END;
$$;

-- As in 022: the triggers fire under the ingest role, which may not write
-- the rollups; they run as the owner with a fixed search_path.
DO $$
DECLARE
    f text;
    s text := current_schema();
BEGIN
    FOREACH f IN ARRAY ARRAY['mv_traffic_message_ins()', 'mv_traffic_address_ins()'] LOOP
        EXECUTE format('ALTER FUNCTION %s SECURITY DEFINER SET search_path = %I, pg_temp', f, s);
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
    END LOOP;
END;
$$;

-- ---- 2. the message seal ----
--
-- Measured the same way: mv_audit_ingest cost more than mv_ingest_batch,
-- nine tenths of it in mv_message_seal, once per message: a SQL function
-- that is not inlined (it reads tables) is planned again at every call
-- (0.28 ms of planning per message), and so is each mv_field whose
-- argument is a subquery (seven per message).  The same seal in PL/pgSQL:
-- its statements are planned once per connection, the three lists and
-- the two arrays are read into variables first (an arrival's two
-- envelope lists into a lateral row), so every mv_field has a plain
-- argument and is inlined.  The text hashed is the same, field for
-- field, in the same order, with the same NULLs: every seal already in
-- the audit chain still matches (test-record-guards.sh compares this
-- function with 013's definition on every message it holds).
-- Not SECURITY DEFINER, as before: the caller's row-level security
-- applies to what it reads.
CREATE OR REPLACE FUNCTION mv_message_seal(p_id bigint) RETURNS bytea LANGUAGE plpgsql STABLE AS $$
DECLARE
    m message;
    v_flags text;
    v_tags text;
    v_addresses text;
    v_arrivals text;
    v_parts text;
BEGIN
    SELECT * INTO m FROM message WHERE id = p_id;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    v_flags := array_to_string(ARRAY(SELECT mv_field(f) FROM unnest(m.flags) f), '');
    v_tags := array_to_string(ARRAY(SELECT mv_field(t) FROM unnest(m.tags) t), '');
    SELECT string_agg(mv_field(a.role) || mv_field(a.address) || mv_field(a.name), ''
                      ORDER BY a.role, a.address, a.name)
      INTO v_addresses
      FROM address a WHERE a.message_id = m.id;
    SELECT string_agg(mv_field(r.id::text) || mv_field(r.source) || mv_field(r.source_ref) ||
                      mv_field(mv_ts(r.received_at)) || mv_field(r.envelope_from) ||
                      mv_field(e.envelope_to) || mv_field(e.envelope_bcc) ||
                      mv_field(host(r.client_addr)) || mv_field(r.helo) || mv_field(r.tls) ||
                      mv_field(r.protocol) || mv_field(r.imap_mailbox) ||
                      mv_field(r.imap_uidvalidity::text) || mv_field(r.imap_uid::text) ||
                      mv_field(mv_ts(r.imap_internaldate)) ||
                      mv_field(encode(r.journal_report_sha256, 'hex')) ||
                      mv_field(encode(r.journal_original_sha256, 'hex')) ||
                      mv_field(r.journal_problem), '' ORDER BY r.id)
      INTO v_arrivals
      FROM arrival r
     CROSS JOIN LATERAL (
           -- the two lists as plain values (OFFSET 0: not pulled up into
           -- mv_field's argument, which would stop its inlining)
           SELECT array_to_string(ARRAY(SELECT mv_field(t) FROM unnest(r.envelope_to) t), '')
                      AS envelope_to,
                  array_to_string(ARRAY(SELECT mv_field(t) FROM unnest(r.envelope_bcc) t), '')
                      AS envelope_bcc
           OFFSET 0) e
     WHERE r.message_id = m.id;
    SELECT string_agg(mv_field(p.path) || mv_field(p.declared_type) || mv_field(p.detected_type) ||
                      mv_field(p.filename) || mv_field(p.size::text) ||
                      mv_field(encode(p.blob_sha256, 'hex')), '' ORDER BY p.path)
      INTO v_parts
      FROM part p WHERE p.message_id = m.id;
    RETURN sha256(convert_to(
        'mailvault-seal-1:' ||
        mv_field(m.id::text) || mv_field(encode(m.sha256, 'hex')) || mv_field(m.size::text) ||
        mv_field(encode(m.skeleton_sha256, 'hex')) || mv_field(m.message_id) ||
        mv_field(mv_ts(m.date)) || mv_field(m.date_raw) || mv_field(m.from_addr) ||
        mv_field(m.from_name) || mv_field(m.subject) || mv_field(m.has_attachment::text) ||
        mv_field(m.parse_status) || mv_field(v_flags) ||
        mv_field(mv_ts(m.archived_at)) || mv_field(m.registration) ||
        mv_field(m.retention_class) || mv_field(mv_ts(m.expires_at)) || mv_field(m.deciding_rule) ||
        mv_field(m.policy_version::text) ||
        mv_field(v_tags) ||
        mv_field(m.direction) || mv_field(mv_ts(m.retention_floor)) ||
        mv_field(v_addresses) || mv_field(v_arrivals) || mv_field(v_parts),
        'UTF8'));
END;
$$;

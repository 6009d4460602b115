-- 022-traffic: traffic rollups (`mailvault stats traffic`, `report`).
--
-- traffic_rollup holds additive counters per (hour, direction, kind,
-- domain, user).  They are a function of the records and nothing else:
--
--   kind 'm'  one per stored message: messages and raw bytes (per hour)
--   kind 's'  its sender (message.from_addr): user and domain (per day)
--   kind 'r'  each distinct recipient address the archive holds for it
--             (To, Cc, Bcc, and the envelope recipients of any arrival)
--   kind 'R'  each distinct recipient domain
--
-- 'm' rows are per UTC hour (charts by hour and weekday); 's', 'r' and 'R'
-- rows per UTC day (domains and users: one row per hour would be about one
-- row per message).
--
-- A message counts once (not once per arrival: a duplicate adds no 'm'
-- row), in the UTC hour of its Date header, or of its archiving when it
-- has no Date or one more than a day after it was archived.  direction is
-- message.direction as the classify stage set it from the policy's
-- internal domains ('unknown' when no policy classified the message).
--
-- Triggers keep them true, in the transaction that changes the records:
-- INSERT and DELETE on message (ingest's mv_ingest_batch, purge),
-- INSERT and DELETE on address (ingest, a later arrival's envelope
-- recipients, purge), UPDATE of message.direction (retention apply).
-- Writers commit concurrently (smtpd --writers N, purge): each backend
-- adds into its own shard (pg_backend_pid() % 8; purge 8, direction
-- changes 9) with INSERT ... ON CONFLICT DO UPDATE, keys in one order, so
-- no single row is hot and two writers cannot deadlock on it.  Readers sum
-- the shards.
-- mv_traffic_rebuild_* recompute it from the records (stats traffic
-- --rebuild).
CREATE TABLE traffic_rollup (
    bucket    timestamptz NOT NULL,   -- an hour, UTC
    direction text NOT NULL,
    kind      "char" NOT NULL CHECK (kind IN ('m', 's', 'r', 'R')),
    domain    text NOT NULL DEFAULT '',
    usr       text NOT NULL DEFAULT '',
    shard     smallint NOT NULL DEFAULT 0,
    messages  bigint NOT NULL DEFAULT 0,
    bytes     bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (bucket, direction, kind, domain, usr, shard)
);
CREATE INDEX traffic_rollup_kind_idx ON traffic_rollup (kind, bucket);

-- The hour a message counts in.
CREATE FUNCTION mv_traffic_bucket(p_date timestamptz, p_archived timestamptz) RETURNS timestamptz
LANGUAGE sql IMMUTABLE AS $$
    SELECT date_trunc('hour', CASE WHEN p_date IS NULL OR p_date > p_archived + interval '1 day'
                                   THEN p_archived ELSE p_date END, 'UTC')
$$;

-- The UTC day a message's sender and recipients count in ('s', 'r', 'R'
-- rows): per hour, addresses would make nearly one row per message.
CREATE FUNCTION mv_traffic_day(p_date timestamptz, p_archived timestamptz) RETURNS timestamptz
LANGUAGE sql IMMUTABLE AS $$
    SELECT date_trunc('day', mv_traffic_bucket(p_date, p_archived), 'UTC')
$$;

-- Keys are bounded (an address can be long; a btree key cannot).
CREATE FUNCTION mv_traffic_user(p_addr text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT left(lower(coalesce(p_addr, '')), 320)
$$;
CREATE FUNCTION mv_traffic_domain(p_addr text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT left(split_part(lower(coalesce(p_addr, '')), '@', 2), 255)
$$;
CREATE FUNCTION mv_traffic_recipient_role(p_role text) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
    SELECT p_role IN ('to', 'cc', 'bcc', 'envelope-rcpt')
$$;

-- Add rows (bucket, direction, kind, domain, usr, messages, bytes) to a
-- shard, one statement, keys in order: p_shard, else this backend's
-- (pg_backend_pid() % 8).  Writers that insert (ingest: message rows, then
-- address rows) use 0..7; purge's deletes (address rows, then message
-- rows: the other order) use 8 and direction changes 9, so that an ingest
-- and a purge never lock one counter row each in an order that deadlocks.
CREATE FUNCTION mv_traffic_add(p_rows jsonb, p_shard smallint DEFAULT NULL) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO traffic_rollup AS t (bucket, direction, kind, domain, usr, shard, messages, bytes)
    SELECT x.bucket, x.direction, x.kind, x.domain, x.usr,
           coalesce(p_shard, (pg_backend_pid() % 8)::smallint),
           sum(x.messages), sum(x.bytes)
      FROM jsonb_to_recordset(p_rows) AS x(bucket timestamptz, direction text, kind "char",
                                           domain text, usr text, messages bigint, bytes bigint)
     GROUP BY 1, 2, 3, 4, 5
    HAVING sum(x.messages) <> 0 OR sum(x.bytes) <> 0
     ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT (bucket, direction, kind, domain, usr, shard)
    DO UPDATE SET messages = t.messages + excluded.messages, bytes = t.bytes + excluded.bytes;
END;
$$;

-- The 'm' and 's' rows of message rows (p_sign 1 or -1).
CREATE FUNCTION mv_traffic_message_rows(p_msgs message[], p_sign integer) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT coalesce(jsonb_agg(r), '[]')
      FROM (SELECT CASE WHEN k.kind = 'm' THEN mv_traffic_bucket(m.date, m.archived_at)
                        ELSE mv_traffic_day(m.date, m.archived_at) END AS bucket,
                   coalesce(m.direction, 'unknown') AS direction, k.kind,
                   CASE WHEN k.kind = 's' THEN mv_traffic_domain(m.from_addr) ELSE '' END AS domain,
                   CASE WHEN k.kind = 's' THEN mv_traffic_user(m.from_addr) ELSE '' END AS usr,
                   p_sign AS messages, p_sign * m.size AS bytes
              FROM unnest(p_msgs) AS m
             CROSS JOIN (VALUES ('m'::"char"), ('s'::"char")) AS k(kind)) r
$$;

-- The 'r' rows (p_kind 'r', p_keys users) or 'R' rows (p_kind 'R', p_keys
-- domains) of (message id, key) pairs whose presence among the message's
-- recipients changed: p_sign 1 for pairs that became present, -1 for pairs
-- that are gone; the direction is p_dir when given, else the message's.
CREATE FUNCTION mv_traffic_key_rows(p_ids bigint[], p_keys text[], p_kind "char", p_sign integer,
                                    p_dir text DEFAULT NULL) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT coalesce(jsonb_agg(r), '[]')
      FROM (SELECT mv_traffic_day(m.date, m.archived_at) AS bucket,
                   coalesce(p_dir, m.direction, 'unknown') AS direction, p_kind AS kind,
                   CASE WHEN p_kind = 'r' THEN mv_traffic_domain(x.k) ELSE x.k END AS domain,
                   CASE WHEN p_kind = 'r' THEN x.k ELSE '' END AS usr,
                   p_sign AS messages, p_sign * m.size AS bytes
              FROM unnest(p_ids, p_keys) AS x(id, k) JOIN message m ON m.id = x.id) r
$$;

-- A recipient (message, user) pair counts while at least one recipient
-- row of the message holds the address; a (message, domain) pair while
-- one holds an address of the domain.  The address triggers compare the
-- rows a statement changed with what the table holds now, so a later
-- arrival's envelope recipient adds only what is new, and purge removes
-- what is gone.
CREATE FUNCTION mv_traffic_address_ins() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_ids bigint[];
    v_keys text[];
BEGIN
    -- Pairs whose every recipient row is new were absent before.
    SELECT array_agg(n.message_id), array_agg(n.k) INTO v_ids, v_keys
      FROM (SELECT message_id, mv_traffic_user(address) AS k, count(*) AS c
              FROM new_rows WHERE mv_traffic_recipient_role(role) GROUP BY 1, 2) n
     WHERE n.c = (SELECT count(*) FROM address a
                   WHERE a.message_id = n.message_id AND mv_traffic_recipient_role(a.role)
                     AND mv_traffic_user(a.address) = n.k);
    IF v_ids IS NOT NULL THEN
        PERFORM mv_traffic_add(mv_traffic_key_rows(v_ids, v_keys, 'r', 1));
    END IF;
    SELECT array_agg(n.message_id), array_agg(n.k) INTO v_ids, v_keys
      FROM (SELECT message_id, mv_traffic_domain(address) AS k, count(*) AS c
              FROM new_rows WHERE mv_traffic_recipient_role(role) GROUP BY 1, 2) n
     WHERE n.c = (SELECT count(*) FROM address a
                   WHERE a.message_id = n.message_id AND mv_traffic_recipient_role(a.role)
                     AND mv_traffic_domain(a.address) = n.k);
    IF v_ids IS NOT NULL THEN
        PERFORM mv_traffic_add(mv_traffic_key_rows(v_ids, v_keys, 'R', 1));
    END IF;
    RETURN NULL;
END;
$$;

CREATE FUNCTION mv_traffic_address_del() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_ids bigint[];
    v_keys text[];
BEGIN
    -- Pairs no recipient row holds any more.
    SELECT array_agg(o.message_id), array_agg(o.k) INTO v_ids, v_keys
      FROM (SELECT DISTINCT message_id, mv_traffic_user(address) AS k
              FROM old_rows WHERE mv_traffic_recipient_role(role)) o
     WHERE NOT EXISTS (SELECT 1 FROM address a
                        WHERE a.message_id = o.message_id AND mv_traffic_recipient_role(a.role)
                          AND mv_traffic_user(a.address) = o.k);
    IF v_ids IS NOT NULL THEN
        PERFORM mv_traffic_add(mv_traffic_key_rows(v_ids, v_keys, 'r', -1), 8::smallint);
    END IF;
    SELECT array_agg(o.message_id), array_agg(o.k) INTO v_ids, v_keys
      FROM (SELECT DISTINCT message_id, mv_traffic_domain(address) AS k
              FROM old_rows WHERE mv_traffic_recipient_role(role)) o
     WHERE NOT EXISTS (SELECT 1 FROM address a
                        WHERE a.message_id = o.message_id AND mv_traffic_recipient_role(a.role)
                          AND mv_traffic_domain(a.address) = o.k);
    IF v_ids IS NOT NULL THEN
        PERFORM mv_traffic_add(mv_traffic_key_rows(v_ids, v_keys, 'R', -1), 8::smallint);
    END IF;
    RETURN NULL;
END;
$$;

CREATE FUNCTION mv_traffic_message_ins() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM mv_traffic_add(mv_traffic_message_rows(ARRAY(SELECT n::message FROM new_rows n), 1));
    RETURN NULL;
END;
$$;

CREATE FUNCTION mv_traffic_message_del() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM mv_traffic_add(mv_traffic_message_rows(ARRAY(SELECT o::message FROM old_rows o), -1), 8::smallint);
    RETURN NULL;
END;
$$;

-- retention apply may change a message's direction: its rows move.
CREATE FUNCTION mv_traffic_message_upd() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_old message[];
    v_new message[];
    r record;
BEGIN
    SELECT array_agg(o::message), array_agg(n::message) INTO v_old, v_new
      FROM old_rows o JOIN new_rows n ON n.id = o.id
     WHERE n.direction IS DISTINCT FROM o.direction;
    IF v_old IS NULL THEN
        RETURN NULL;
    END IF;
    PERFORM mv_traffic_add(mv_traffic_message_rows(v_old, -1), 9::smallint);
    PERFORM mv_traffic_add(mv_traffic_message_rows(v_new, 1), 9::smallint);
    -- The recipients, per old direction (the new one is the message's now).
    FOR r IN SELECT coalesce(o.direction, 'unknown') AS dir, array_agg(o.id) AS ids
               FROM unnest(v_old) AS o GROUP BY 1 LOOP
        PERFORM mv_traffic_add(mv_traffic_key_rows(u.ids, u.keys, 'r', -1, r.dir)
                               || mv_traffic_key_rows(u.ids, u.keys, 'r', 1), 9::smallint)
           FROM (SELECT array_agg(message_id) AS ids, array_agg(k) AS keys
                   FROM (SELECT DISTINCT message_id, mv_traffic_user(address) AS k FROM address
                          WHERE message_id = ANY (r.ids) AND mv_traffic_recipient_role(role)) p) u
          WHERE u.ids IS NOT NULL;
        PERFORM mv_traffic_add(mv_traffic_key_rows(u.ids, u.keys, 'R', -1, r.dir)
                               || mv_traffic_key_rows(u.ids, u.keys, 'R', 1), 9::smallint)
           FROM (SELECT array_agg(message_id) AS ids, array_agg(k) AS keys
                   FROM (SELECT DISTINCT message_id, mv_traffic_domain(address) AS k FROM address
                          WHERE message_id = ANY (r.ids) AND mv_traffic_recipient_role(role)) p) u
          WHERE u.ids IS NOT NULL;
    END LOOP;
    RETURN NULL;
END;
$$;

CREATE TRIGGER traffic_message_ins AFTER INSERT ON message REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION mv_traffic_message_ins();
CREATE TRIGGER traffic_message_del AFTER DELETE ON message REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION mv_traffic_message_del();
CREATE TRIGGER traffic_message_upd AFTER UPDATE ON message
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION mv_traffic_message_upd();
CREATE TRIGGER traffic_address_ins AFTER INSERT ON address REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION mv_traffic_address_ins();
CREATE TRIGGER traffic_address_del AFTER DELETE ON address REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION mv_traffic_address_del();

-- Rebuild (stats traffic --rebuild): begin empties the table under an
-- EXCLUSIVE lock held to COMMIT (every writer's trigger waits, so no
-- message is counted twice or missed), then batch adds the messages with
-- p_after < id <= p_upto.  The caller runs them in one transaction.
CREATE FUNCTION mv_traffic_rebuild_begin() RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
    LOCK TABLE traffic_rollup IN EXCLUSIVE MODE;
    DELETE FROM traffic_rollup;
    RETURN (SELECT coalesce(max(id), 0) FROM message);
END;
$$;

CREATE FUNCTION mv_traffic_rebuild_batch(p_after bigint, p_upto bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_ids bigint[];
    v_keys text[];
BEGIN
    PERFORM mv_traffic_add(mv_traffic_message_rows(
        ARRAY(SELECT m FROM message m WHERE m.id > p_after AND m.id <= p_upto), 1));
    SELECT array_agg(message_id), array_agg(k) INTO v_ids, v_keys
      FROM (SELECT DISTINCT message_id, mv_traffic_user(address) AS k FROM address
             WHERE message_id > p_after AND message_id <= p_upto
               AND mv_traffic_recipient_role(role)) p;
    IF v_ids IS NOT NULL THEN
        PERFORM mv_traffic_add(mv_traffic_key_rows(v_ids, v_keys, 'r', 1));
    END IF;
    SELECT array_agg(message_id), array_agg(k) INTO v_ids, v_keys
      FROM (SELECT DISTINCT message_id, mv_traffic_domain(address) AS k FROM address
             WHERE message_id > p_after AND message_id <= p_upto
               AND mv_traffic_recipient_role(role)) p;
    IF v_ids IS NOT NULL THEN
        PERFORM mv_traffic_add(mv_traffic_key_rows(v_ids, v_keys, 'R', 1));
    END IF;
    RETURN (SELECT count(*) FROM message WHERE id > p_after AND id <= p_upto);
END;
$$;

-- Every function runs as the owner: the triggers fire under ingest, purge
-- and legal, none of which may write the rollups directly.
DO $$
DECLARE
    f text;
    s text := current_schema();
BEGIN
    FOREACH f IN ARRAY ARRAY['mv_traffic_add(jsonb, smallint)', 'mv_traffic_message_rows(message[], integer)',
                             'mv_traffic_key_rows(bigint[], text[], "char", integer, text)',
                             'mv_traffic_address_ins()', 'mv_traffic_address_del()',
                             'mv_traffic_message_ins()', 'mv_traffic_message_del()',
                             'mv_traffic_message_upd()', 'mv_traffic_rebuild_begin()',
                             'mv_traffic_rebuild_batch(bigint, bigint)'] LOOP
        EXECUTE format('ALTER FUNCTION %s SECURITY DEFINER SET search_path = %I, pg_temp', f, s);
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
    END LOOP;
END;
$$;

-- The rollups reveal who writes to whom and how much: the staff roles
-- that see the whole archive read them (legal, and the owner); an
-- employee or an auditor, bound to what they were granted, does not
-- (`stats traffic` says so).  Rebuild is legal's (and the owner's).
REVOKE ALL ON traffic_rollup FROM PUBLIC;
GRANT SELECT ON traffic_rollup TO mailvault_legal;
GRANT EXECUTE ON FUNCTION mv_traffic_rebuild_begin(), mv_traffic_rebuild_batch(bigint, bigint)
    TO mailvault_legal;

-- Count what the archive already holds, 20,000 messages at a time.
DO $$
DECLARE
    v_upto bigint := mv_traffic_rebuild_begin();
    v_after bigint := 0;
BEGIN
    WHILE v_after < v_upto LOOP
        PERFORM mv_traffic_rebuild_batch(v_after, least(v_after + 20000, v_upto));
        v_after := v_after + 20000;
    END LOOP;
END;
$$;

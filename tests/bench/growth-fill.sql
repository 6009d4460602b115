-- growth-fill.sql: set-based bulk fill for tests/bench/growth-bench.sh.
--
-- Defines two session functions (pg_temp: nothing is added to the schema)
-- for the archive's owner in a private benchmark cluster:
--
--   pg_temp.growth_seed(max_id)      remembers the messages with an id up to
--                                    max_id (NULL: all) as the seed (table
--                                    growth_seed, session-local): those the
--                                    benchmark stored by real ingest
--   pg_temp.growth_copy(n, round, expired)
--                                    adds n messages, copies of the seed in
--                                    turn, round r shifted r days later
--
-- A copy is every row real ingest writes for a message, copied column by
-- column from the seed message's rows (the column lists are read from the
-- catalog, so a column a later migration adds is copied too):
--   message           new id (the identity sequence), new SHA-256, new
--                     Message-ID, registration from mv_next_registration,
--                     date, expiry and retention floor `round` days later,
--                     archived now; with expired: class 'short', expired a
--                     day ago (purge probes)
--   blob              its own skeleton blob (the seed's skeleton bytes under
--                     a new SHA-256: skeletons are per message in real mail);
--                     attachments are shared with the seed (message_splice,
--                     part and splice_recipe point at the seed's blobs:
--                     attachment reuse)
--   address, arrival (new id, received `round` days later, source_ref
--                     marked '#copy'), message_splice, splice_recipe, part,
--                     part_text, message_text (the seed's vector, language
--                     and zstd ztext), text_extraction, verdict, part_verdict
-- The inserts run with every trigger and foreign key on: the traffic
-- rollups of 031 are counted by their own triggers, as for real ingest.
-- What a copy is not: its bytes do not hash to its SHA-256 (the skeleton
-- is the seed's), so `get` of a copy would fail its check; benchmarks get
-- only seed messages.  ztext is not sealed per message: the benchmark
-- archive is not encrypted (docs/scaling.md).

CREATE FUNCTION pg_temp.growth_seed(p_max_id bigint) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
    DROP TABLE IF EXISTS growth_seed;
    CREATE TEMP TABLE growth_seed AS
        SELECT id, (row_number() OVER (ORDER BY id) - 1)::bigint AS rn FROM message
         WHERE p_max_id IS NULL OR id <= p_max_id;
    CREATE UNIQUE INDEX ON growth_seed (rn);
    ANALYZE growth_seed;
    RETURN (SELECT count(*) FROM growth_seed);
END;
$$;

-- "INSERT INTO tbl (cols) SELECT exprs FROM <from>": every column of tbl,
-- t.col unless over names an expression for it (a JSON null leaves the
-- column to its default).  from defaults to the rows of the seed messages
-- being copied: "tbl t JOIN growth_map g ON g.old_id = t.message_id".
CREATE FUNCTION pg_temp.growth_insert(p_table text, p_over jsonb, p_from text DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    cols text := '';
    exprs text := '';
    c record;
    n bigint;
BEGIN
    FOR c IN SELECT a.attname FROM pg_attribute a
              WHERE a.attrelid = p_table::regclass AND a.attnum > 0 AND NOT a.attisdropped
                AND a.attgenerated = '' ORDER BY a.attnum LOOP
        IF p_over ? c.attname AND jsonb_typeof(p_over -> c.attname) = 'null' THEN
            CONTINUE;
        END IF;
        cols := cols || CASE WHEN cols = '' THEN '' ELSE ', ' END || quote_ident(c.attname);
        exprs := exprs || CASE WHEN exprs = '' THEN '' ELSE ', ' END
                 || coalesce(p_over ->> c.attname, 't.' || quote_ident(c.attname));
    END LOOP;
    EXECUTE format('INSERT INTO %I (%s) %s SELECT %s FROM %s', p_table, cols,
                   CASE WHEN p_table = 'message' THEN 'OVERRIDING SYSTEM VALUE' ELSE '' END,
                   exprs,
                   coalesce(p_from, format('%I t JOIN growth_map g ON g.old_id = t.message_id', p_table)));
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END;
$$;

-- p_count copies of the seed messages in turn (the seed's first message
-- first), the i-th (from 0) in round p_round + i / seed size; returns the
-- number of messages added.
CREATE FUNCTION pg_temp.growth_copy(p_count bigint, p_round bigint, p_expired boolean)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    s bigint := (SELECT count(*) FROM growth_seed);
    yr integer := extract(year FROM now())::integer;
    n bigint;
    t text;
    shift constant text := ' + make_interval(days => g.k::integer)';
BEGIN
    DROP TABLE IF EXISTS growth_map;
    CREATE TEMP TABLE growth_map AS
        SELECT s0.id AS old_id, nextval(pg_get_serial_sequence('message', 'id')) AS new_id,
               p_round + (g - 1) / s AS k
          FROM generate_series(1, p_count) g
          JOIN growth_seed s0 ON s0.rn = (g - 1) % s
         ORDER BY g;
    CREATE INDEX ON growth_map (old_id);
    ANALYZE growth_map;

    -- each copy's own skeleton blob (before message: foreign key)
    PERFORM pg_temp.growth_insert('blob',
        jsonb_build_object('sha256', 'sha256(t.sha256 || int8send(g.new_id))', 'created_at', 'now()'),
        'blob t JOIN message m ON m.skeleton_sha256 = t.sha256 JOIN growth_map g ON g.old_id = m.id');
    n := pg_temp.growth_insert('message',
        jsonb_build_object(
            'id', 'g.new_id',
            'sha256', 'sha256(t.sha256 || int8send(g.new_id))',
            'skeleton_sha256', 'sha256(t.skeleton_sha256 || int8send(g.new_id))',
            'message_id', $q$regexp_replace(t.message_id, '@', '.g' || g.new_id || '@')$q$,
            'date', 't.date' || shift,
            'archived_at', 'now()',
            'registration', format('mv_next_registration(%s)', yr),
            'retention_class', CASE WHEN p_expired THEN $q$'short'$q$ ELSE 't.retention_class' END,
            'expires_at', CASE WHEN p_expired THEN $q$now() - interval '1 day'$q$
                               ELSE 't.expires_at' || shift END,
            'retention_floor', 't.retention_floor' || shift),
        'message t JOIN growth_map g ON g.old_id = t.id ORDER BY g.new_id');
    PERFORM pg_temp.growth_insert('address', '{"message_id": "g.new_id"}');
    PERFORM pg_temp.growth_insert('arrival',
        jsonb_build_object('id', NULL, 'message_id', 'g.new_id', 'received_at', 't.received_at' || shift,
                           'source_ref', $q$t.source_ref || '#copy'$q$));
    FOREACH t IN ARRAY ARRAY['message_splice', 'splice_recipe', 'part', 'part_text', 'message_text',
                             'text_extraction', 'verdict', 'part_verdict'] LOOP
        PERFORM pg_temp.growth_insert(t, '{"message_id": "g.new_id"}');
    END LOOP;
    DROP TABLE growth_map;
    RETURN n;
END;
$$;

-- 032-blind-index: the keyed blind index of the search vectors, when
-- encryption at rest is on (docs/encryption.md "Blind search index",
-- archiver/mv-blind.c).
--
--  * With encryption on, every lexeme of message_text.tsv and
--    part_text.tsv is a keyed hash: HMAC-SHA-256 with an index key that
--    only the client holds (derived from the data key of the version in
--    search_index_key), its first 60 bits in base32, upper case: 12
--    characters of [A-Z2-7], which no clear lexeme spells (PostgreSQL's
--    parsers lower-case every word).  Positions and weights are kept.
--    The server still computes the clear vector and query (mv_search_vector,
--    mv_search_query) from a text or query passed as a parameter, and
--    stores nothing of them: the client hashes the lexemes and sends the
--    blind vector.
--  * search_index_key: the key version whose data key the index key is
--    derived from; recorded by the first key version (key init), or here
--    for archives already encrypted.  Its row never changes: key rotate
--    makes new data keys for blobs and texts, the index keeps its key
--    (versions are never deleted), and key rewrap re-wraps that data key
--    with the others.  Its presence is what "the index is blind" means.
--  * No server path computes a vector while the index is blind:
--    mv_ingest_batch refuses a message without a blind vector,
--    mv_index_pending does nothing, mv_reindex_texts/mv_reindex_part_texts
--    refuse; mv_reseal_texts/mv_reseal_part_texts (key rotate, key init,
--    index --rebuild) swap the sealed text and take the client's blind
--    vector, or keep the vector.
--  * mv_tsv_blind(v): whether every lexeme of v is shaped as a blind one;
--    mv_tsv_text_blind(t): the same of a vector's text, in one scan (what
--    ingest checks); mv_blind_vectors(): how many vectors are still in
--    clear (key status).
--
-- Row-level security: search_index_key holds a version number, nothing of
-- any message; the functions that read the texts are SECURITY DEFINER and
-- only count or write.

CREATE TABLE search_index_key (
    version    integer PRIMARY KEY REFERENCES enc_key (version),
    created_at timestamptz NOT NULL DEFAULT now(),
    one        boolean NOT NULL DEFAULT true UNIQUE CHECK (one)
);

CREATE OR REPLACE FUNCTION mv_search_index_key_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'search_index_key: the index key version never changes';
END;
$$;
CREATE TRIGGER search_index_key_guard BEFORE UPDATE OR DELETE ON search_index_key
    FOR EACH ROW EXECUTE FUNCTION mv_search_index_key_guard();

-- The first key version (key init) is the index's.
CREATE OR REPLACE FUNCTION mv_search_index_key_record() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO search_index_key (version) VALUES (NEW.version) ON CONFLICT DO NOTHING;
    RETURN NULL;
END;
$$;
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION mv_search_index_key_record() SECURITY DEFINER '
                   'SET search_path = %I, pg_temp', current_schema());
END;
$$;
REVOKE ALL ON FUNCTION mv_search_index_key_record() FROM PUBLIC;
CREATE TRIGGER enc_key_search_index AFTER INSERT ON enc_key
    FOR EACH ROW EXECUTE FUNCTION mv_search_index_key_record();

-- An archive already encrypted: its first version.
INSERT INTO search_index_key (version) SELECT min(version) FROM enc_key HAVING count(*) > 0;

GRANT SELECT ON search_index_key TO mailvault_ingest, mailvault_legal, mailvault_auditor,
                                    mailvault_purge, mailvault_employee;

-- The index key's version, NULL while the index is in clear (no
-- encryption).
CREATE OR REPLACE FUNCTION mv_search_blind() RETURNS integer
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT version FROM search_index_key
$$;

-- Whether every lexeme of v is shaped as a blind one (an empty vector is).
CREATE OR REPLACE FUNCTION mv_tsv_blind(v tsvector) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT NOT EXISTS (SELECT 1 FROM unnest(tsvector_to_array(v)) AS l(x)
                        WHERE l.x COLLATE "C" !~ '^[A-Z2-7]{12}$')
$$;

-- Whether a vector's text (as the client sends it) is blind: made of
-- blind lexemes, positions and weights only (no quote, no lower-case or
-- other letter than a base32 one).  One scan of the text: the check
-- ingest makes of every vector.
CREATE OR REPLACE FUNCTION mv_tsv_text_blind(t text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT t COLLATE "C" !~ '[^A-Z0-9:, ]'
$$;

-- A vector the client sends for a sealed text while the index is blind:
-- refused unless blind.
CREATE OR REPLACE FUNCTION mv_blind_tsv(t text) RETURNS tsvector
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    IF t IS NULL OR NOT mv_tsv_text_blind(t) THEN
        RAISE EXCEPTION 'the search index is blind (encryption is on): a vector in clear is refused';
    END IF;
    RETURN t::tsvector;
END;
$$;

-- How many vectors are still in clear (and how many texts in clear wait
-- for one) while the index is blind: index --rebuild converts them.
CREATE OR REPLACE FUNCTION mv_blind_vectors(OUT clear_messages bigint, OUT clear_parts bigint,
                                            OUT pending bigint)
LANGUAGE sql STABLE AS $$
    SELECT (SELECT count(*) FROM message_text WHERE tsv IS NOT NULL AND NOT mv_tsv_blind(tsv)),
           (SELECT count(*) FROM part_text WHERE tsv IS NOT NULL AND NOT mv_tsv_blind(tsv)),
           (SELECT count(*) FROM message_text WHERE tsv IS NULL)
         + (SELECT count(*) FROM part_text WHERE tsv IS NULL)
$$;

-- key rotate, key init, index --rebuild: a message text sealed again
-- (p_ztexts, NULL: keep) and its blind vector (p_tsvs, NULL: keep the
-- vector), and its language when p_langs names one.  At most 10,000 a
-- call.
CREATE OR REPLACE FUNCTION mv_reseal_texts(p_ids bigint[], p_langs text[], p_ztexts bytea[],
                                           p_tsvs text[])
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE n integer;
BEGIN
    IF coalesce(array_length(p_ids, 1), 0) > 10000 THEN
        RAISE EXCEPTION 'mv_reseal_texts: at most 10000 messages a call, not %', array_length(p_ids, 1);
    END IF;
    PERFORM set_config('mailvault.text_encoding', 'on', true);
    UPDATE message_text t
       SET lang = coalesce(u.lang, t.lang),
           tsv = CASE WHEN u.tsv IS NULL THEN t.tsv ELSE mv_blind_tsv(u.tsv) END,
           ztext = coalesce(u.z, t.ztext),
           doc = CASE WHEN u.z IS NOT NULL THEN NULL ELSE t.doc END
      FROM unnest(p_ids, p_langs, p_ztexts, p_tsvs) AS u(id, lang, z, tsv)
     WHERE t.message_id = u.id AND (u.z IS NOT NULL OR u.tsv IS NOT NULL OR u.lang IS NOT NULL);
    GET DIAGNOSTICS n = ROW_COUNT;
    PERFORM set_config('mailvault.text_encoding', 'off', true);
    RETURN n;
END;
$$;

-- The same for attachment texts.
CREATE OR REPLACE FUNCTION mv_reseal_part_texts(p_ids bigint[], p_paths text[], p_ztexts bytea[],
                                                p_tsvs text[])
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE n integer;
BEGIN
    IF coalesce(array_length(p_ids, 1), 0) > 10000 THEN
        RAISE EXCEPTION 'mv_reseal_part_texts: at most 10000 texts a call, not %', array_length(p_ids, 1);
    END IF;
    UPDATE part_text t
       SET tsv = CASE WHEN u.tsv IS NULL THEN t.tsv ELSE mv_blind_tsv(u.tsv) END,
           ztext = coalesce(u.z, t.ztext),
           doc = CASE WHEN u.z IS NOT NULL THEN NULL ELSE t.doc END
      FROM unnest(p_ids, p_paths, p_ztexts, p_tsvs) AS u(id, path, z, tsv)
     WHERE t.message_id = u.id AND t.path = u.path AND (u.z IS NOT NULL OR u.tsv IS NOT NULL);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END;
$$;

DO $$
DECLARE
    f text;
BEGIN
    FOREACH f IN ARRAY ARRAY['mv_reseal_texts(bigint[],text[],bytea[],text[])',
                             'mv_reseal_part_texts(bigint[],text[],bytea[],text[])',
                             'mv_blind_vectors()'] LOOP
        EXECUTE format('ALTER FUNCTION %s SECURITY DEFINER SET search_path = %I, pg_temp',
                       f, current_schema());
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
    END LOOP;
END;
$$;
GRANT EXECUTE ON FUNCTION mv_reseal_texts(bigint[], text[], bytea[], text[]),
                          mv_reseal_part_texts(bigint[], text[], bytea[], text[])
    TO mailvault_ingest;
-- (mv_blind_vectors: the owner's, for key status.)

-- ---- restated from 029, refusing to compute a vector while the index
-- is blind ----

CREATE OR REPLACE FUNCTION mv_reindex_texts(p_ids bigint[], p_langs text[], p_docs text[], p_ztexts bytea[])
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE n integer;
BEGIN
    IF mv_search_blind() IS NOT NULL THEN
        RAISE EXCEPTION 'the search index is blind (encryption is on): vectors come from the client (mv_reseal_texts)';
    END IF;
    IF coalesce(array_length(p_ids, 1), 0) > 10000 THEN
        RAISE EXCEPTION 'mv_reindex_texts: at most 10000 messages a call, not %', array_length(p_ids, 1);
    END IF;
    PERFORM set_config('mailvault.text_encoding', 'on', true);
    UPDATE message_text t
       SET lang = coalesce(u.lang, t.lang),
           tsv = mv_search_vector(u.doc, coalesce(u.lang, t.lang)),
           ztext = coalesce(u.z, t.ztext),
           doc = CASE WHEN u.z IS NOT NULL THEN NULL ELSE t.doc END
      FROM unnest(p_ids, p_langs, p_docs, p_ztexts) AS u(id, lang, doc, z)
     WHERE t.message_id = u.id AND u.doc IS NOT NULL;
    GET DIAGNOSTICS n = ROW_COUNT;
    PERFORM set_config('mailvault.text_encoding', 'off', true);
    RETURN n;
END;
$$;

-- index --rebuild: attachment texts still in clear, or sealed with an
-- older key or none, get the encoding the client made of them.
CREATE OR REPLACE FUNCTION mv_reindex_part_texts(p_ids bigint[], p_paths text[], p_docs text[],
                                      p_ztexts bytea[])
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE n integer;
BEGIN
    IF mv_search_blind() IS NOT NULL THEN
        RAISE EXCEPTION 'the search index is blind (encryption is on): vectors come from the client (mv_reseal_texts)';
    END IF;
    IF coalesce(array_length(p_ids, 1), 0) > 10000 THEN
        RAISE EXCEPTION 'mv_reindex_part_texts: at most 10000 texts a call, not %', array_length(p_ids, 1);
    END IF;
    UPDATE part_text t
       SET tsv = mv_search_vector(u.doc, t.lang), ztext = u.z, doc = NULL
      FROM unnest(p_ids, p_paths, p_docs, p_ztexts) AS u(id, path, doc, z)
     WHERE t.message_id = u.id AND t.path = u.path AND u.z IS NOT NULL AND u.doc IS NOT NULL;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END;
$$;

-- (CREATE OR REPLACE resets what 029 altered: restated.)
DO $$
DECLARE
    f text;
BEGIN
    FOREACH f IN ARRAY ARRAY['mv_reindex_texts(bigint[],text[],text[],bytea[])',
                             'mv_reindex_part_texts(bigint[],text[],text[],bytea[])'] LOOP
        EXECUTE format('ALTER FUNCTION %s SECURITY DEFINER SET search_path = %I, pg_temp',
                       f, current_schema());
    END LOOP;
END;
$$;

CREATE OR REPLACE FUNCTION mv_index_pending(p_limit integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    n integer;
    m integer := 0;
    r record;
BEGIN
    -- The blind index (032): the server computes no vector (it would be
    -- in clear); the rows it would index (texts in clear from before 029)
    -- are matched on the fly by search until index --rebuild, key init or
    -- key rotate give them a blind vector.
    IF mv_search_blind() IS NOT NULL THEN
        RETURN 0;
    END IF;
    WITH todo AS (
        SELECT message_id FROM message_text WHERE tsv IS NULL AND doc IS NOT NULL
         ORDER BY message_id LIMIT p_limit FOR UPDATE SKIP LOCKED)
    UPDATE message_text t SET tsv = mv_search_vector(t.doc, t.lang)
      FROM todo WHERE t.message_id = todo.message_id;
    GET DIAGNOSTICS n = ROW_COUNT;
    BEGIN
        WITH todo AS (
            SELECT message_id, path FROM part_text WHERE tsv IS NULL AND doc IS NOT NULL
             ORDER BY message_id, path LIMIT p_limit FOR UPDATE SKIP LOCKED)
        UPDATE part_text t SET tsv = mv_search_vector(t.doc, t.lang)
          FROM todo WHERE t.message_id = todo.message_id AND t.path = todo.path;
        GET DIAGNOSTICS m = ROW_COUNT;
    EXCEPTION WHEN program_limit_exceeded THEN
        m := 0;
        FOR r IN SELECT message_id, path FROM part_text WHERE tsv IS NULL AND doc IS NOT NULL
                  ORDER BY message_id, path LIMIT p_limit FOR UPDATE SKIP LOCKED LOOP
            BEGIN
                UPDATE part_text SET tsv = mv_search_vector(doc, lang)
                 WHERE message_id = r.message_id AND path = r.path;
            EXCEPTION WHEN program_limit_exceeded THEN
                UPDATE part_text SET tsv = mv_search_vector(left(doc, length(doc) / 4), lang)
                 WHERE message_id = r.message_id AND path = r.path;
            END;
            m := m + 1;
        END LOOP;
    END;
    RETURN n + m;
END;
$$;

DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION mv_index_pending(integer) SECURITY DEFINER SET search_path = %I, pg_temp',
                   current_schema());
END;
$$;
REVOKE ALL ON FUNCTION mv_index_pending(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mv_index_pending(integer) TO mailvault_ingest;

-- ---- mv_ingest_batch, restated from 029 (the blind index's check
-- first) ----

CREATE OR REPLACE FUNCTION mv_ingest_batch(
    p_sha256 bytea[], p_size bigint[], p_skeleton bytea[],
    p_message_id text[], p_date timestamptz[], p_date_raw text[],
    p_from_addr text[], p_from_name text[], p_subject text[],
    p_has_attachment boolean[], p_parse_status text[], p_doc text[],
    p_class text[], p_expires timestamptz[], p_rule text[], p_policy_version integer[],
    p_direction text[], p_archived_at timestamptz[],
    p_source text[], p_source_ref text[], p_envelope_from text[],
    p_client_addr inet[], p_helo text[], p_tls text[], p_protocol text[],
    p_imap_mailbox text[], p_imap_uidvalidity bigint[], p_imap_uid bigint[],
    p_imap_internaldate timestamptz[],
    p_journal_report bytea[], p_journal_original bytea[], p_journal_problem text[],
    p_source_sha256 bytea[], p_folder_path text[], p_item_id text[], p_entry_id bytea[],
    p_reconstructed boolean[],
    p_flag_msg integer[], p_flags text[],
    p_tag_msg integer[], p_tags text[],
    p_splice_msg integer[], p_splice_offsets bigint[], p_splice_blobs bytea[],
    p_addr_msg integer[], p_addr_roles text[], p_addrs text[], p_addr_names text[],
    p_part_msg integer[], p_part_paths text[], p_part_declared text[], p_part_detected text[],
    p_part_filenames text[], p_part_sizes bigint[], p_part_blobs bytea[],
    p_rcpt_msg integer[], p_rcpts text[],
    p_bcc_msg integer[], p_bccs text[], p_lang text[], p_ztext bytea[], p_tsv text[])
RETURNS TABLE (o_pos integer, o_id bigint, o_new boolean, o_registration text)
LANGUAGE plpgsql AS $$
DECLARE
    n       integer := coalesce(array_length(p_sha256, 1), 0);
    v_ids   bigint[];
    v_new   boolean[];
    v_reg   text[];
    v_fresh bigint[];
BEGIN
    IF n = 0 THEN
        RETURN;
    END IF;

    -- The blind index (032): every message brings its vector, blind; the
    -- server computes none (it would be in clear).
    IF mv_search_blind() IS NOT NULL AND EXISTS (
           SELECT 1 FROM unnest(p_tsv) AS d(tsv)
            WHERE d.tsv IS NULL OR NOT mv_tsv_text_blind(d.tsv)) THEN
        RAISE EXCEPTION 'mv_ingest_batch: the search index is blind (encryption is on): '
                        'every message must bring its blind vector';
    END IF;

    WITH m AS (
        SELECT * FROM unnest(p_sha256, p_size, p_skeleton, p_message_id, p_date, p_date_raw,
                             p_from_addr, p_from_name, p_subject, p_has_attachment,
                             p_parse_status, p_class, p_expires, p_rule, p_policy_version,
                             p_direction, p_archived_at)
               WITH ORDINALITY AS u(sha, size, skel, mid, date, date_raw, from_addr, from_name,
                                    subject, has_att, status, class, expires, rule, version,
                                    direction, archived_at, pos)),
    fl AS (
        SELECT f.pos, array_agg(f.flag ORDER BY f.k) AS flags
          FROM unnest(p_flag_msg, p_flags) WITH ORDINALITY AS f(pos, flag, k) GROUP BY f.pos),
    tg AS (
        SELECT t.pos, array_agg(t.tag ORDER BY t.k) AS tags
          FROM unnest(p_tag_msg, p_tags) WITH ORDINALITY AS t(pos, tag, k) GROUP BY t.pos),
    ins AS (
        INSERT INTO message (sha256, size, skeleton_sha256, message_id, date, date_raw,
                             from_addr, from_name, subject, has_attachment, parse_status, flags,
                             retention_class, expires_at, deciding_rule, policy_version, tags,
                             direction, registration, archived_at)
        SELECT m.sha, m.size, m.skel, m.mid, m.date, m.date_raw, m.from_addr, m.from_name,
               m.subject, m.has_att, m.status, coalesce(fl.flags, '{}'), m.class, m.expires,
               m.rule, m.version, coalesce(tg.tags, '{}'), m.direction,
               mv_next_registration(extract(year FROM coalesce(m.archived_at, now()))::integer),
               coalesce(m.archived_at, now())
          FROM m LEFT JOIN fl ON fl.pos = m.pos LEFT JOIN tg ON tg.pos = m.pos
         ORDER BY m.pos
        ON CONFLICT (sha256) DO NOTHING
        RETURNING id)
    SELECT array_agg(id) INTO v_fresh FROM ins;

    -- Every position's message, stored now or before; a position stored
    -- the message when its row is fresh and it is the first position with
    -- those bytes (LATERAL ... LIMIT 1: index probes, see 010).
    SELECT array_agg(msg.id ORDER BY u.pos),
           array_agg(msg.id = ANY (coalesce(v_fresh, '{}')) AND u.first ORDER BY u.pos),
           array_agg(msg.registration ORDER BY u.pos)
      INTO v_ids, v_new, v_reg
      FROM (SELECT s.sha, s.pos,
                   row_number() OVER (PARTITION BY s.sha ORDER BY s.pos) = 1 AS first
              FROM unnest(p_sha256) WITH ORDINALITY AS s(sha, pos)) u
      CROSS JOIN LATERAL (SELECT m.id, m.registration FROM message m
                           WHERE m.sha256 = u.sha LIMIT 1) msg;
    IF coalesce(array_length(v_ids, 1), 0) <> n THEN
        RAISE EXCEPTION 'mv_ingest_batch: % of % messages found after insert',
            coalesce(array_length(v_ids, 1), 0), n;
    END IF;

    INSERT INTO message_splice (message_id, seq, "offset", blob_sha256)
    SELECT v_ids[s.pos], (row_number() OVER (PARTITION BY s.pos ORDER BY s.k))::integer,
           s.off, s.blob
      FROM unnest(p_splice_msg, p_splice_offsets, p_splice_blobs)
           WITH ORDINALITY AS s(pos, off, blob, k)
     WHERE v_new[s.pos];

    -- The search text: its vector as the client's parse thread had it
    -- computed (p_tsv), else computed here from the text (p_doc), the
    -- text itself stored only as the client encoded it (ztext: zstd,
    -- sealed when the archive is encrypted); a position without ztext
    -- (an older client) keeps its text in clear, as before.
    -- (One unnest of the four arrays: a subscript of a large array
    -- parameter per row costs a walk of the array each time.)
    INSERT INTO message_text (message_id, doc, ztext, lang, tsv)
    SELECT v_ids[d.pos], CASE WHEN d.z IS NULL THEN coalesce(d.doc, '') END, d.z, d.lang,
           coalesce(d.tsv::tsvector, mv_search_vector(d.doc, d.lang))
      FROM unnest(p_doc, p_lang, p_ztext, p_tsv) WITH ORDINALITY AS d(doc, lang, z, tsv, pos)
     WHERE v_new[d.pos];

    INSERT INTO address (message_id, role, address, name)
    SELECT v_ids[a.pos], a.role, a.addr, a.name
      FROM unnest(p_addr_msg, p_addr_roles, p_addrs, p_addr_names)
           WITH ORDINALITY AS a(pos, role, addr, name, k)
     WHERE v_new[a.pos]
     ORDER BY a.k;

    INSERT INTO part (message_id, path, declared_type, detected_type, filename, size, blob_sha256)
    SELECT v_ids[p.pos], p.path, p.decl, p.det, p.fn, p.sz, p.blob
      FROM unnest(p_part_msg, p_part_paths, p_part_declared, p_part_detected, p_part_filenames,
                  p_part_sizes, p_part_blobs) AS p(pos, path, decl, det, fn, sz, blob)
     WHERE v_new[p.pos];

    INSERT INTO arrival (message_id, source, source_ref, envelope_from, envelope_to,
                         client_addr, helo, tls, protocol, imap_mailbox, imap_uidvalidity,
                         imap_uid, imap_internaldate, envelope_bcc, journal_report_sha256,
                         journal_original_sha256, journal_problem, source_sha256, folder_path,
                         item_id, entry_id, reconstructed)
    SELECT v_ids[a.pos], a.source, a.ref, a.env_from, coalesce(r.rcpts, '{}'),
           a.client, a.helo, a.tls, a.proto, a.mailbox, a.uidvalidity, a.uid, a.internaldate,
           coalesce(b.bccs, '{}'), a.jreport, a.joriginal, a.jproblem, a.src_sha, a.folder,
           a.item, a.entry, coalesce(a.recon, false)
      FROM unnest(p_source, p_source_ref, p_envelope_from, p_client_addr, p_helo, p_tls,
                  p_protocol, p_imap_mailbox, p_imap_uidvalidity, p_imap_uid,
                  p_imap_internaldate, p_journal_report, p_journal_original, p_journal_problem,
                  p_source_sha256, p_folder_path, p_item_id, p_entry_id, p_reconstructed)
           WITH ORDINALITY AS a(source, ref, env_from, client, helo, tls, proto, mailbox,
                                uidvalidity, uid, internaldate, jreport, joriginal, jproblem,
                                src_sha, folder, item, entry, recon, pos)
      LEFT JOIN (SELECT x.pos, array_agg(x.rcpt ORDER BY x.k) AS rcpts
                   FROM unnest(p_rcpt_msg, p_rcpts) WITH ORDINALITY AS x(pos, rcpt, k)
                  GROUP BY x.pos) r ON r.pos = a.pos
      LEFT JOIN (SELECT y.pos, array_agg(y.bcc ORDER BY y.k) AS bccs
                   FROM unnest(p_bcc_msg, p_bccs) WITH ORDINALITY AS y(pos, bcc, k)
                  GROUP BY y.pos) b ON b.pos = a.pos
     ORDER BY a.pos;

    -- Envelope addresses: once per message, however many arrivals bring
    -- them (see 010).
    INSERT INTO address (message_id, role, address, name)
    SELECT DISTINCT e.id, e.role, e.addr, NULL::text
      FROM (SELECT v_ids[x.pos] AS id, v_new[x.pos] AS fresh, 'envelope-rcpt' AS role,
                   lower(x.rcpt) AS addr
              FROM unnest(p_rcpt_msg, p_rcpts) AS x(pos, rcpt)
            UNION ALL
            SELECT v_ids[f.pos], v_new[f.pos], 'envelope-from', lower(f.env_from)
              FROM unnest(p_envelope_from) WITH ORDINALITY AS f(env_from, pos)
             WHERE f.env_from IS NOT NULL AND f.env_from <> '') e
      LEFT JOIN LATERAL (SELECT 1 AS hit FROM address x
                          WHERE NOT e.fresh AND x.message_id = e.id AND x.role = e.role
                            AND x.address = e.addr
                          LIMIT 1) known ON true
     WHERE known.hit IS NULL;

    RETURN QUERY SELECT g.pos::integer, v_ids[g.pos], v_new[g.pos], v_reg[g.pos]
                   FROM generate_series(1, n) AS g(pos);
END;
$$;

DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION mv_ingest_batch SECURITY DEFINER SET search_path = %I, pg_temp',
                   current_schema());
END;
$$;
REVOKE ALL ON FUNCTION mv_ingest_batch FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mv_ingest_batch TO mailvault_ingest;

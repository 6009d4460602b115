-- 021-search-languages: full-text search in every language the archive
-- holds, without the user naming the language.
--
--  * message_text.lang: the language the parser detected (CLD2, ISO 639-1
--    code, NULL when it could not tell); mv_ingest_batch takes it as its
--    last parameter (p_lang).
--  * mv_search_vector(doc, lang): the one function that turns search text
--    into a tsvector (message bodies here; attachment text uses it too).
--    It holds three parts, concatenated:
--      1. the words stemmed by the language's configuration (english when
--         the language is unknown or PostgreSQL ships no stemmer for it),
--         with weight A: a query's stems in languages other than English
--         match only these (mv_tsquery_stems), so that a stem that spells
--         another word ('note' is 'not' in French) does not match that
--         word's exact form;
--      2. the words unstemmed ('simple'), so that a word is found in any
--         language by its exact form;
--      3. Chinese, Japanese and Korean: overlapping character bigrams of
--         every run of CJK characters, and the last character of each run,
--         so that a word is found in the middle of a sentence written
--         without spaces.
--    The result stays under PostgreSQL's 1 MB tsvector limit: a text of
--    up to 16,384 characters (<= 64 KiB) cannot reach it (each part is at
--    most ~5 bytes per input byte, bigrams 14 bytes per character); a
--    longer text that would is indexed by its first 16,384 characters
--    rather than failing.
--  * mv_search_query(q, phrase): the one function that turns a bare word
--    or a quoted phrase into a tsquery.  A word matches when any
--    configuration's stem of it, or its exact form, or (CJK) its bigram
--    chain is in the vector: "Vertrag" finds "Verträgen" (german stems
--    both to 'vertrag'), "contrat" finds "contrats".  A word that English
--    treats as a stop word is dropped, as before.  A phrase is the OR over
--    the configurations of that configuration's phrase query, and the
--    bigram chain of its CJK characters.
--  * mv_index_pending() and the search's on-the-fly fallback use them.
--  * mv_reindex(ids, langs): recomputes tsv of stored messages in
--    bounded batches (mailvault index --rebuild), for rows indexed before
--    this change; the language of old rows comes from the client (the
--    detector is C).
--
-- Row-level security: lang is a column of message_text, whose row
-- policies (019) cover it; the search functions read no table.

-- Search lists hits newest first (ORDER BY date DESC NULLS LAST, id DESC
-- LIMIT n): in this order an index lets a query with many hits stop at
-- the first n instead of sorting them all (has:attachment on 100,000
-- messages: see docs/search.md).
CREATE INDEX message_search_order_idx ON message (date DESC NULLS LAST, id DESC);

ALTER TABLE message_text ADD COLUMN IF NOT EXISTS lang text
    CHECK (lang IS NULL OR lang ~ '^[a-zA-Z]{2,3}(-[A-Za-z]{2,8})?$');
CREATE INDEX message_text_lang_idx ON message_text (lower(lang) text_pattern_ops);

-- The PostgreSQL configuration that stems a language (mv_lang_ts_config in
-- archiver/mv-lang.cc holds the same table), english when none.
CREATE OR REPLACE FUNCTION mv_lang_config(p_lang text) RETURNS regconfig
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (CASE lower(split_part(coalesce(p_lang, ''), '-', 1))
        WHEN 'ar' THEN 'pg_catalog.arabic'     WHEN 'hy' THEN 'pg_catalog.armenian'
        WHEN 'eu' THEN 'pg_catalog.basque'     WHEN 'ca' THEN 'pg_catalog.catalan'
        WHEN 'da' THEN 'pg_catalog.danish'     WHEN 'nl' THEN 'pg_catalog.dutch'
        WHEN 'en' THEN 'pg_catalog.english'    WHEN 'fi' THEN 'pg_catalog.finnish'
        WHEN 'fr' THEN 'pg_catalog.french'     WHEN 'de' THEN 'pg_catalog.german'
        WHEN 'el' THEN 'pg_catalog.greek'      WHEN 'hi' THEN 'pg_catalog.hindi'
        WHEN 'hu' THEN 'pg_catalog.hungarian'  WHEN 'id' THEN 'pg_catalog.indonesian'
        WHEN 'ga' THEN 'pg_catalog.irish'      WHEN 'it' THEN 'pg_catalog.italian'
        WHEN 'lt' THEN 'pg_catalog.lithuanian' WHEN 'ne' THEN 'pg_catalog.nepali'
        WHEN 'no' THEN 'pg_catalog.norwegian'  WHEN 'nb' THEN 'pg_catalog.norwegian'
        WHEN 'pt' THEN 'pg_catalog.portuguese' WHEN 'ro' THEN 'pg_catalog.romanian'
        WHEN 'ru' THEN 'pg_catalog.russian'    WHEN 'sr' THEN 'pg_catalog.serbian'
        WHEN 'es' THEN 'pg_catalog.spanish'    WHEN 'sv' THEN 'pg_catalog.swedish'
        WHEN 'ta' THEN 'pg_catalog.tamil'      WHEN 'tr' THEN 'pg_catalog.turkish'
        WHEN 'yi' THEN 'pg_catalog.yiddish'
        ELSE 'pg_catalog.english' END)::regconfig
$$;

-- The characters written without spaces between words: CJK radicals,
-- Hiragana, Katakana, Bopomofo, Hangul, CJK ideographs (and extension A,
-- compatibility ideographs), half-width Katakana.
CREATE OR REPLACE FUNCTION mv_cjk_class() RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT '[\u2E80-\u2FDF\u3041-\u30FF\u3105-\u312F\u3131-\u318E\u31A0-\u31FF\u3400-\u4DBF'
           '\u4E00-\u9FFF\uA960-\uA97F\uAC00-\uD7AF\uF900-\uFAFF\uFF66-\uFF9F]'
$$;

-- Bigram text of the CJK runs of t: "ABCD" -> "AB BC CD D" (the last
-- character alone, so that a one-character query finds it by prefix), runs
-- apart by a space; '' when t has none.
CREATE OR REPLACE FUNCTION mv_cjk_bigrams(t text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(string_agg(substr(r.m[1], g.i, 2), ' ' ORDER BY r.k, g.i), '')
      FROM regexp_matches(t, mv_cjk_class() || '+', 'g') WITH ORDINALITY AS r(m, k),
           LATERAL generate_series(1, length(r.m[1])) AS g(i)
$$;

-- The three parts of a vector (see the top); d must be short enough (the
-- caller, mv_search_vector, sees to it).  CJK runs are left out of parts
-- 1 and 2, where each would be one useless lexeme the length of a
-- sentence; part 3 covers the first 16,384 characters.
CREATE OR REPLACE FUNCTION mv_search_vector_of(d text, cfg regconfig) RETURNS tsvector
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    latin text := d;
    cjk tsvector := ''::tsvector;
BEGIN
    IF d ~ mv_cjk_class() THEN
        latin := regexp_replace(d, mv_cjk_class() || '+', ' ', 'g');
        cjk := to_tsvector('pg_catalog.simple', mv_cjk_bigrams(left(d, 16384)));
    END IF;
    -- The stems carry weight A, the exact forms none (D): a query's stems
    -- in other languages match only stems (mv_search_query), never an
    -- exact word that happens to spell one ('note' stems to 'not' in
    -- French; an English text's "not" must not match it).
    RETURN setweight(to_tsvector(cfg, latin), 'A') || to_tsvector('pg_catalog.simple', latin) || cjk;
END;
$$;

CREATE OR REPLACE FUNCTION mv_search_vector(doc text, lang text) RETURNS tsvector
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    cfg regconfig := mv_lang_config(lang);
    d text := coalesce(doc, '');
BEGIN
    IF octet_length(d) > 65536 THEN
        BEGIN
            RETURN mv_search_vector_of(d, cfg);
        EXCEPTION WHEN program_limit_exceeded THEN
            -- string is too long for tsvector: index the beginning
            d := left(d, 16384);
        END;
    END IF;
    RETURN mv_search_vector_of(d, cfg);
END;
$$;

-- A chain of the CJK bigrams of t's runs: "ABC" -> 'AB' <-> 'BC'; a run
-- of one character matches as a prefix ('A':*); runs ANDed; NULL when t
-- has none.
CREATE OR REPLACE FUNCTION mv_cjk_query(t text) RETURNS tsquery
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    run text;
    chain tsquery;
    res tsquery;
BEGIN
    FOR run IN SELECT r.m[1] FROM regexp_matches(t, mv_cjk_class() || '+', 'g') AS r(m) LOOP
        IF length(run) = 1 THEN
            chain := to_tsquery('pg_catalog.simple', run || ':*');
        ELSE
            chain := NULL;
            FOR i IN 1 .. length(run) - 1 LOOP
                chain := CASE WHEN chain IS NULL
                              THEN to_tsquery('pg_catalog.simple', substr(run, i, 2))
                              ELSE tsquery_phrase(chain, to_tsquery('pg_catalog.simple',
                                                                    substr(run, i, 2))) END;
            END LOOP;
        END IF;
        res := CASE WHEN res IS NULL THEN chain ELSE res && chain END;
    END LOOP;
    RETURN res;
END;
$$;

-- A query's lexemes restricted to the stems of a vector (weight A).
CREATE OR REPLACE FUNCTION mv_tsquery_stems(q tsquery) RETURNS tsquery
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT regexp_replace(q::text, '''(?:[^'']|'''')*''', '\&:A', 'g')::tsquery
$$;

-- Every configuration a query tries: each stemmer PostgreSQL ships, and
-- 'simple' (the exact form).
CREATE OR REPLACE FUNCTION mv_search_configs() RETURNS regconfig[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ARRAY['pg_catalog.simple', 'pg_catalog.english', 'pg_catalog.german',
                 'pg_catalog.french', 'pg_catalog.spanish', 'pg_catalog.italian',
                 'pg_catalog.dutch', 'pg_catalog.portuguese', 'pg_catalog.russian',
                 'pg_catalog.swedish', 'pg_catalog.danish', 'pg_catalog.norwegian',
                 'pg_catalog.finnish', 'pg_catalog.hungarian', 'pg_catalog.romanian',
                 'pg_catalog.turkish', 'pg_catalog.arabic', 'pg_catalog.armenian',
                 'pg_catalog.basque', 'pg_catalog.catalan', 'pg_catalog.greek',
                 'pg_catalog.hindi', 'pg_catalog.indonesian', 'pg_catalog.irish',
                 'pg_catalog.lithuanian', 'pg_catalog.nepali', 'pg_catalog.serbian',
                 'pg_catalog.tamil', 'pg_catalog.yiddish']::regconfig[]
$$;

CREATE OR REPLACE FUNCTION mv_search_query(q text, phrase boolean) RETURNS tsquery
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    cfg regconfig;
    w text;
    part tsquery;
    grp tsquery;
    seen text[];
    res tsquery;
BEGIN
    q := coalesce(q, '');
    IF phrase THEN
        seen := '{}';
        FOREACH cfg IN ARRAY mv_search_configs() LOOP
            part := phraseto_tsquery(cfg, q);
            -- Stems of languages other than English (English: as vectors
            -- before 021 hold them) match only the vector's stems.
            IF numnode(part) > 0 AND cfg NOT IN ('pg_catalog.simple'::regconfig,
                                                 'pg_catalog.english'::regconfig) THEN
                part := mv_tsquery_stems(part);
            END IF;
            IF numnode(part) > 0 AND NOT part::text = ANY (seen) THEN
                seen := seen || part::text;
                res := CASE WHEN res IS NULL THEN part ELSE res || part END;
            END IF;
        END LOOP;
        part := mv_cjk_query(q);
        IF part IS NOT NULL THEN
            res := CASE WHEN res IS NULL THEN part ELSE res || part END;
        END IF;
        RETURN coalesce(res, ''::tsquery);
    END IF;
    FOREACH w IN ARRAY regexp_split_to_array(q, '\s+') LOOP
        CONTINUE WHEN w = '';
        part := mv_cjk_query(w);
        -- an English stop word (or no word at all) is dropped, as before
        CONTINUE WHEN part IS NULL AND numnode(plainto_tsquery('pg_catalog.english', w)) = 0;
        grp := part;
        seen := '{}';
        FOREACH cfg IN ARRAY mv_search_configs() LOOP
            part := plainto_tsquery(cfg, w);
            IF numnode(part) > 0 AND cfg NOT IN ('pg_catalog.simple'::regconfig,
                                                 'pg_catalog.english'::regconfig) THEN
                part := mv_tsquery_stems(part);
            END IF;
            IF numnode(part) > 0 AND NOT part::text = ANY (seen) THEN
                seen := seen || part::text;
                grp := CASE WHEN grp IS NULL THEN part ELSE grp || part END;
            END IF;
        END LOOP;
        IF grp IS NOT NULL THEN
            res := CASE WHEN res IS NULL THEN grp ELSE res && grp END;
        END IF;
    END LOOP;
    RETURN coalesce(res, ''::tsquery);
END;
$$;

-- Vectors are computed with the language's configuration from now on:
-- the message texts, then the attachment texts (part_text, 020), as 020
-- did (a part text whose vector would pass the 1 MB limit is indexed by
-- its first quarter, so indexing never stops on one row).
CREATE OR REPLACE FUNCTION mv_index_pending(p_limit integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    n integer;
    m integer := 0;
    r record;
BEGIN
    WITH todo AS (
        SELECT message_id FROM message_text WHERE tsv IS NULL
         ORDER BY message_id LIMIT p_limit FOR UPDATE SKIP LOCKED)
    UPDATE message_text t SET tsv = mv_search_vector(t.doc, t.lang)
      FROM todo WHERE t.message_id = todo.message_id;
    GET DIAGNOSTICS n = ROW_COUNT;
    BEGIN
        WITH todo AS (
            SELECT message_id, path FROM part_text WHERE tsv IS NULL
             ORDER BY message_id, path LIMIT p_limit FOR UPDATE SKIP LOCKED)
        UPDATE part_text t SET tsv = mv_search_vector(t.doc, t.lang)
          FROM todo WHERE t.message_id = todo.message_id AND t.path = todo.path;
        GET DIAGNOSTICS m = ROW_COUNT;
    EXCEPTION WHEN program_limit_exceeded THEN
        m := 0;
        FOR r IN SELECT message_id, path FROM part_text WHERE tsv IS NULL
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

-- Recompute the vectors of the messages p_ids (at most 10,000 a call),
-- setting the language of those whose p_langs entry is not NULL (the
-- client detected it: rows stored before this change have none).  For
-- mailvault index --rebuild, which walks the archive in id order, one
-- short transaction per batch.
CREATE FUNCTION mv_reindex(p_ids bigint[], p_langs text[]) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE n integer;
BEGIN
    IF coalesce(array_length(p_ids, 1), 0) > 10000 THEN
        RAISE EXCEPTION 'mv_reindex: at most 10000 messages a call, not %', array_length(p_ids, 1);
    END IF;
    UPDATE message_text t SET lang = coalesce(u.lang, t.lang),
                              tsv = mv_search_vector(t.doc, coalesce(u.lang, t.lang))
      FROM unnest(p_ids, p_langs) AS u(id, lang) WHERE t.message_id = u.id;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END;
$$;

DO $$
DECLARE
    f text;
BEGIN
    FOREACH f IN ARRAY ARRAY['mv_index_pending(integer)', 'mv_reindex(bigint[],text[])'] LOOP
        EXECUTE format('ALTER FUNCTION %s SECURITY DEFINER SET search_path = %I, pg_temp',
                       f, current_schema());
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
    END LOOP;
END;
$$;
GRANT EXECUTE ON FUNCTION mv_index_pending(integer), mv_reindex(bigint[], text[]) TO mailvault_ingest;

-- ---- ingest: the language travels with the text (p_lang, last) ----
DROP FUNCTION mv_ingest_batch(bytea[], bigint[], bytea[], text[], timestamptz[], text[], text[], text[], text[], boolean[], text[], text[], text[], timestamptz[], text[], integer[], text[], timestamptz[], text[], text[], text[], inet[], text[], text[], text[], text[], bigint[], bigint[], timestamptz[], bytea[], bytea[], text[], integer[], text[], integer[], text[], integer[], bigint[], bytea[], integer[], text[], text[], text[], integer[], text[], text[], text[], text[], bigint[], bytea[], integer[], text[], integer[], text[]);

CREATE FUNCTION mv_ingest_batch(
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
    p_flag_msg integer[], p_flags text[],
    p_tag_msg integer[], p_tags text[],
    p_splice_msg integer[], p_splice_offsets bigint[], p_splice_blobs bytea[],
    p_addr_msg integer[], p_addr_roles text[], p_addrs text[], p_addr_names text[],
    p_part_msg integer[], p_part_paths text[], p_part_declared text[], p_part_detected text[],
    p_part_filenames text[], p_part_sizes bigint[], p_part_blobs bytea[],
    p_rcpt_msg integer[], p_rcpts text[],
    p_bcc_msg integer[], p_bccs text[], p_lang text[])
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

    INSERT INTO message_text (message_id, doc, lang)
    SELECT v_ids[d.pos], coalesce(d.doc, ''), (p_lang)[d.pos]
      FROM unnest(p_doc) WITH ORDINALITY AS d(doc, pos)
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
                         journal_original_sha256, journal_problem)
    SELECT v_ids[a.pos], a.source, a.ref, a.env_from, coalesce(r.rcpts, '{}'),
           a.client, a.helo, a.tls, a.proto, a.mailbox, a.uidvalidity, a.uid, a.internaldate,
           coalesce(b.bccs, '{}'), a.jreport, a.joriginal, a.jproblem
      FROM unnest(p_source, p_source_ref, p_envelope_from, p_client_addr, p_helo, p_tls,
                  p_protocol, p_imap_mailbox, p_imap_uidvalidity, p_imap_uid,
                  p_imap_internaldate, p_journal_report, p_journal_original, p_journal_problem)
           WITH ORDINALITY AS a(source, ref, env_from, client, helo, tls, proto, mailbox,
                                uidvalidity, uid, internaldate, jreport, joriginal, jproblem,
                                pos)
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

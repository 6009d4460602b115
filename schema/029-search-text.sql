-- 029-search-text: the search text stored once, and sealed when the
-- archive is encrypted (docs/search.md "How the text is stored",
-- docs/encryption.md).
--
--  * message_text.ztext and part_text.ztext: the text as the client
--    encoded it (mv_blobstore_pg_text_encode, archiver/mv-blobstore-pg.c):
--    a 10-byte header (format 1, codec, key version, text length), then
--    the text compressed with zstd and, when the archive is encrypted,
--    sealed with AES-256-GCM by the same function that seals blobs, bound
--    to its message's SHA-256 and part path.  The server never holds the
--    text in clear: the vector is computed in the ingest transaction from
--    the text passed as a parameter (mv_ingest_batch, part_text inserts),
--    so no clear text reaches a table, the WAL or a backup.
--  * doc stays for rows stored before this migration (NULL from now on):
--    they stay readable as they are, and `mailvault index --rebuild`
--    moves them to ztext (mv_reindex_texts, mv_reindex_part_texts), the
--    only change of a message's search text the record guard allows.
--  * Nothing reads ztext on the server: snippets (ts_headline over the
--    text sent back as a parameter), export and index --rebuild decode it
--    in the client.
--  * mv_index_pending (restated from 021) indexes only rows whose text
--    the server has: those stored in clear before this migration whose
--    vector is pending; new rows are indexed as they are stored.

ALTER TABLE message_text ALTER COLUMN doc DROP NOT NULL,
                         ADD COLUMN ztext bytea;
ALTER TABLE part_text ALTER COLUMN doc DROP NOT NULL,
                      ADD COLUMN ztext bytea;
-- Already compressed (and sealed): not worth PostgreSQL's compression.
ALTER TABLE message_text ALTER COLUMN ztext SET STORAGE EXTERNAL;
ALTER TABLE part_text ALTER COLUMN ztext SET STORAGE EXTERNAL;

-- The search text of a message is part of its record (007): it may not
-- change, except from doc to ztext, or to a ztext sealed with a newer key,
-- by mv_reindex_texts (index --rebuild: the client decoded the text and
-- encoded it again).
CREATE OR REPLACE FUNCTION mv_message_text_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF coalesce(current_setting('mailvault.purging', true), '') = 'on' THEN
            RETURN OLD;
        END IF;
        RAISE EXCEPTION 'message_text rows are a record: delete is refused';
    END IF;
    IF NEW.message_id IS DISTINCT FROM OLD.message_id THEN
        RAISE EXCEPTION 'message %: its search text may not change', OLD.message_id;
    END IF;
    IF NEW.doc IS DISTINCT FROM OLD.doc OR NEW.ztext IS DISTINCT FROM OLD.ztext THEN
        IF NOT (coalesce(current_setting('mailvault.text_encoding', true), '') = 'on'
                AND NEW.doc IS NULL AND NEW.ztext IS NOT NULL) THEN
            RAISE EXCEPTION 'message %: its search text may not change', OLD.message_id;
        END IF;
    END IF;
    RETURN NEW;
END;
$$;

-- index --rebuild: recompute the vectors (and the language where p_langs
-- names one) of the messages p_ids from their texts p_docs, decoded by
-- the client; a row with a p_ztexts entry (its text was in clear, or
-- sealed with an older key or none) gets that encoding and loses its
-- clear text.  At most 10,000 messages a call.  Replaces 021's
-- mv_reindex, which read doc on the server.
DROP FUNCTION mv_reindex(bigint[], text[]);
CREATE FUNCTION mv_reindex_texts(p_ids bigint[], p_langs text[], p_docs text[], p_ztexts bytea[])
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE n integer;
BEGIN
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
CREATE FUNCTION mv_reindex_part_texts(p_ids bigint[], p_paths text[], p_docs text[],
                                      p_ztexts bytea[])
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE n integer;
BEGIN
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

DO $$
DECLARE
    f text;
BEGIN
    FOREACH f IN ARRAY ARRAY['mv_reindex_texts(bigint[],text[],text[],bytea[])',
                             'mv_reindex_part_texts(bigint[],text[],text[],bytea[])'] LOOP
        EXECUTE format('ALTER FUNCTION %s SECURITY DEFINER SET search_path = %I, pg_temp',
                       f, current_schema());
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
    END LOOP;
END;
$$;
GRANT EXECUTE ON FUNCTION mv_reindex_texts(bigint[], text[], text[], bytea[]),
                          mv_reindex_part_texts(bigint[], text[], text[], bytea[])
    TO mailvault_ingest;


-- The rows stored in clear before this migration whose vector is pending
-- (as 021, restated whole): a row stored encoded is indexed when it is
-- stored, the server cannot read its text.
CREATE OR REPLACE FUNCTION mv_index_pending(p_limit integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    n integer;
    m integer := 0;
    r record;
BEGIN
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


-- ---- ingest: the vector arrives computed (p_tsv, last), or the text
-- as a parameter (p_doc) to be indexed here; the text is stored only as
-- p_ztext ----
DROP FUNCTION mv_ingest_batch(bytea[], bigint[], bytea[], text[], timestamptz[], text[], text[],
    text[], text[], boolean[], text[], text[], text[], timestamptz[], text[], integer[], text[],
    timestamptz[], text[], text[], text[], inet[], text[], text[], text[], text[], bigint[],
    bigint[], timestamptz[], bytea[], bytea[], text[], bytea[], text[], text[], bytea[],
    boolean[], integer[], text[], integer[], text[], integer[], bigint[], bytea[], integer[],
    text[], text[], text[], integer[], text[], text[], text[], text[], bigint[], bytea[],
    integer[], text[], integer[], text[], text[]);

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

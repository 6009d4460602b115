-- 024-import-facts: what an import from an Outlook file (PST / OST, MSG)
-- knows about each copy, as arrival columns beside the SMTP and IMAP facts
-- of 011:
--
--  * source_sha256: SHA-256 of the whole source file the copy was read
--    from (the PST, the MSG), so an auditor can tie a record to the exact
--    file it came from;
--  * folder_path: the folder it was filed in, segments joined by '/'
--    ("Inbox/Projects"), a '/' inside a folder name written as '%2F' and
--    '%' as '%25'; the query language's folder: term matches it;
--  * item_id: the item's identifier in the file ("nid=0x200024" for a PST
--    node, "msg" for a stand-alone MSG file);
--  * entry_id: the item's MAPI entry identifier when the file gives one;
--  * reconstructed: the bytes were rebuilt from MAPI properties (a PST or
--    MSG keeps no MIME), not received as they are (docs/import.md).
--
-- mv_ingest_batch keeps 021's p_lang (the detected language of the
-- search text), as its last parameter.
--
-- Import progress (for resuming an interrupted import) is kept in
-- import_resume: one row per source file identity, the position up to
-- which everything is committed.

ALTER TABLE arrival
    ADD COLUMN source_sha256 bytea CHECK (octet_length(source_sha256) = 32),
    ADD COLUMN folder_path   text,
    ADD COLUMN item_id       text,
    ADD COLUMN entry_id      bytea CHECK (octet_length(entry_id) <= 1024),
    ADD COLUMN reconstructed boolean NOT NULL DEFAULT false;

CREATE INDEX arrival_folder_path ON arrival (lower(folder_path) text_pattern_ops)
    WHERE folder_path IS NOT NULL;

CREATE TABLE import_resume (
    identity    text PRIMARY KEY CHECK (length(identity) <= 4096),
    path        text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('mbox', 'pst', 'zip')),
    position    bigint NOT NULL CHECK (position >= 0),
    items       bigint NOT NULL DEFAULT 0 CHECK (items >= 0),
    done        boolean NOT NULL DEFAULT false,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
GRANT SELECT, INSERT, UPDATE, DELETE ON import_resume TO mailvault_ingest;

DROP FUNCTION mv_ingest_batch(bytea[], bigint[], bytea[], text[], timestamptz[], text[], text[],
    text[], text[], boolean[], text[], text[], text[], timestamptz[], text[], integer[], text[],
    timestamptz[], text[], text[], text[], inet[], text[], text[], text[], text[], bigint[],
    bigint[], timestamptz[], bytea[], bytea[], text[], integer[], text[], integer[], text[],
    integer[], bigint[], bytea[], integer[], text[], text[], text[], integer[], text[], text[],
    text[], text[], bigint[], bytea[], integer[], text[], integer[], text[], text[]);

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

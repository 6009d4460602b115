-- 002-retention: the retention schedule (policy versions), each message's
-- class, expiry, deciding rule, tags, direction and registration number,
-- all set inside the ingest transaction.

CREATE TABLE policy (
    version     integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text,
    xml         text NOT NULL,
    sha256      bytea NOT NULL CHECK (octet_length(sha256) = 32),
    source_file text,
    loaded_by   text NOT NULL,
    loaded_at   timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE message
    ADD COLUMN retention_class text,
    ADD COLUMN expires_at      timestamptz,
    ADD COLUMN deciding_rule   text,
    ADD COLUMN policy_version  integer REFERENCES policy (version),
    ADD COLUMN tags            text[] NOT NULL DEFAULT '{}',
    ADD COLUMN direction       text CHECK (direction IN ('inbound', 'outbound', 'internal', 'external')),
    ADD COLUMN registration    text UNIQUE;
CREATE INDEX message_class_idx ON message (retention_class);
CREATE INDEX message_expires_idx ON message (expires_at);
CREATE INDEX message_tags_idx ON message USING gin (tags);

-- Registration numbers: a sequence per archive year, "2026-0000123".
-- Sequences never block concurrent writers; a number taken by a
-- transaction that rolls back is not reused (numbers may have gaps, never
-- duplicates).
CREATE FUNCTION mv_next_registration(p_year integer) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    seq text := 'mv_registration_' || p_year;
BEGIN
    IF to_regclass(seq) IS NULL THEN
        BEGIN
            EXECUTE format('CREATE SEQUENCE IF NOT EXISTS %I', seq);
        EXCEPTION WHEN unique_violation OR duplicate_table THEN
            NULL; -- created concurrently
        END;
    END IF;
    RETURN p_year || '-' || lpad(nextval(seq)::text, 7, '0');
END;
$$;

-- Messages archived before this migration get their numbers now, in
-- archive order.
UPDATE message m SET registration = mv_next_registration(extract(year FROM m.archived_at)::integer)
  FROM (SELECT id FROM message ORDER BY archived_at, id) o WHERE o.id = m.id;

DROP FUNCTION mv_ingest_message(bytea, bigint, bytea, bigint[], bytea[], text, timestamptz, text,
    text, text, text, boolean, text, text[], text, text[], text[], text[], text[], text[], text[],
    text[], bigint[], bytea[], text, text, text, text[], text);

CREATE FUNCTION mv_ingest_message(
    p_sha256 bytea, p_size bigint, p_skeleton bytea,
    p_splice_offsets bigint[], p_splice_blobs bytea[],
    p_message_id text, p_date timestamptz, p_date_raw text,
    p_from_addr text, p_from_name text, p_subject text,
    p_has_attachment boolean, p_parse_status text, p_flags text[],
    p_doc text,
    p_addr_roles text[], p_addrs text[], p_addr_names text[],
    p_part_paths text[], p_part_declared text[], p_part_detected text[],
    p_part_filenames text[], p_part_sizes bigint[], p_part_blobs bytea[],
    p_source text, p_source_ref text, p_envelope_from text, p_envelope_to text[],
    p_details text,
    p_class text, p_expires timestamptz, p_rule text, p_policy_version integer,
    p_tags text[], p_direction text, p_archived_at timestamptz,
    OUT o_id bigint, OUT o_new boolean, OUT o_registration text)
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO message (sha256, size, skeleton_sha256, message_id, date, date_raw,
                         from_addr, from_name, subject, has_attachment, parse_status, flags,
                         retention_class, expires_at, deciding_rule, policy_version, tags,
                         direction, registration, archived_at)
    VALUES (p_sha256, p_size, p_skeleton, p_message_id, p_date, p_date_raw,
            p_from_addr, p_from_name, p_subject, p_has_attachment, p_parse_status,
            coalesce(p_flags, '{}'), p_class, p_expires, p_rule, p_policy_version,
            coalesce(p_tags, '{}'), p_direction,
            mv_next_registration(extract(year FROM coalesce(p_archived_at, now()))::integer),
            coalesce(p_archived_at, now()))
    ON CONFLICT (sha256) DO NOTHING
    RETURNING id, registration INTO o_id, o_registration;

    o_new := o_id IS NOT NULL;
    IF o_new THEN
        INSERT INTO message_splice (message_id, seq, "offset", blob_sha256)
        SELECT o_id, s.seq::integer, s.off, s.blob
          FROM unnest(p_splice_offsets, p_splice_blobs) WITH ORDINALITY AS s(off, blob, seq);
        INSERT INTO message_text (message_id, doc) VALUES (o_id, coalesce(p_doc, ''));
        INSERT INTO address (message_id, role, address, name)
        SELECT o_id, a.role, a.addr, a.name
          FROM unnest(p_addr_roles, p_addrs, p_addr_names) AS a(role, addr, name);
        INSERT INTO part (message_id, path, declared_type, detected_type, filename, size, blob_sha256)
        SELECT o_id, p.path, p.decl, p.det, p.fn, p.sz, p.blob
          FROM unnest(p_part_paths, p_part_declared, p_part_detected, p_part_filenames,
                      p_part_sizes, p_part_blobs) AS p(path, decl, det, fn, sz, blob);
    ELSE
        SELECT id, registration INTO STRICT o_id, o_registration FROM message WHERE sha256 = p_sha256;
    END IF;

    INSERT INTO arrival (message_id, source, source_ref, envelope_from, envelope_to, details)
    VALUES (o_id, p_source, p_source_ref, p_envelope_from, coalesce(p_envelope_to, '{}'), p_details);
    INSERT INTO address (message_id, role, address, name)
    SELECT o_id, 'envelope-rcpt', lower(r), NULL FROM unnest(p_envelope_to) AS r
     WHERE NOT EXISTS (SELECT 1 FROM address x WHERE x.message_id = o_id
                          AND x.role = 'envelope-rcpt' AND x.address = lower(r));
    IF p_envelope_from IS NOT NULL AND p_envelope_from <> '' AND NOT EXISTS (
           SELECT 1 FROM address x WHERE x.message_id = o_id
              AND x.role = 'envelope-from' AND x.address = lower(p_envelope_from)) THEN
        INSERT INTO address (message_id, role, address, name)
        VALUES (o_id, 'envelope-from', lower(p_envelope_from), NULL);
    END IF;
END;
$$;

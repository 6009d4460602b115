-- 001-core: the core archive.
-- Blobs are content-addressed and compressed by mailvault (zstd), so
-- PostgreSQL's own TOAST compression is switched off for their data.
-- Every large table carries message_id (or sha256 for blob) as its
-- distribution key, so a sharded PostgreSQL can co-locate a message's rows.

CREATE TABLE zstd_dict (
    id          integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sha256      bytea NOT NULL UNIQUE CHECK (octet_length(sha256) = 32),
    data        bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE blob (
    sha256      bytea PRIMARY KEY CHECK (octet_length(sha256) = 32),
    raw_size    bigint NOT NULL CHECK (raw_size >= 0),
    stored_size bigint NOT NULL CHECK (stored_size >= 0),
    -- 0 = stored as is, 1 = zstd, 2 = zstd with the trained dictionary dict_id
    codec       smallint NOT NULL CHECK (codec IN (0, 1, 2)),
    dict_id     integer REFERENCES zstd_dict (id),
    data        bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK ((codec = 2) = (dict_id IS NOT NULL))
);
ALTER TABLE blob ALTER COLUMN data SET STORAGE EXTERNAL;

CREATE TABLE message (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sha256          bytea NOT NULL UNIQUE CHECK (octet_length(sha256) = 32),
    size            bigint NOT NULL CHECK (size >= 0),
    -- The message's bytes are the skeleton blob with each splice's blob
    -- inserted at its offset (see message_splice).
    skeleton_sha256 bytea NOT NULL REFERENCES blob (sha256),
    message_id      text,
    date            timestamptz,
    date_raw        text,
    from_addr       text,
    from_name       text,
    subject         text,
    has_attachment  boolean NOT NULL DEFAULT false,
    -- ok | partial | unparsable
    parse_status    text NOT NULL CHECK (parse_status IN ('ok', 'partial', 'unparsable')),
    flags           text[] NOT NULL DEFAULT '{}',
    archived_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX message_date_idx ON message (date);
CREATE INDEX message_message_id_idx ON message (message_id);
CREATE INDEX message_archived_at_idx ON message (archived_at);

CREATE TABLE message_splice (
    message_id  bigint NOT NULL REFERENCES message (id),
    seq         integer NOT NULL,
    "offset"    bigint NOT NULL CHECK ("offset" >= 0),
    blob_sha256 bytea NOT NULL REFERENCES blob (sha256),
    PRIMARY KEY (message_id, seq)
);
CREATE INDEX message_splice_blob_idx ON message_splice (blob_sha256);

-- Search text, kept apart from message so the hot table stays narrow.
-- tsv is filled in by mv_index_pending() after the ingest transaction
-- commits; until then search falls back to computing it on the fly.
CREATE TABLE message_text (
    message_id  bigint PRIMARY KEY REFERENCES message (id),
    doc         text NOT NULL,
    tsv         tsvector
);
-- lz4 compresses search text about as well as PostgreSQL's default pglz at
-- a fraction of the CPU (pglz was 6% of ingest CPU).
ALTER TABLE message_text ALTER COLUMN doc SET COMPRESSION lz4,
                         ALTER COLUMN tsv SET COMPRESSION lz4;
CREATE INDEX message_text_tsv_idx ON message_text USING gin (tsv);
CREATE INDEX message_text_pending_idx ON message_text (message_id) WHERE tsv IS NULL;

CREATE TABLE address (
    message_id  bigint NOT NULL REFERENCES message (id),
    role        text NOT NULL CHECK (role IN ('from', 'sender', 'reply-to', 'to', 'cc', 'bcc',
                                              'envelope-from', 'envelope-rcpt')),
    address     text NOT NULL,
    name        text
);
CREATE INDEX address_message_idx ON address (message_id);
CREATE INDEX address_address_idx ON address (address, role);
CREATE INDEX address_domain_idx ON address ((split_part(address, '@', 2)), role);

CREATE TABLE part (
    message_id    bigint NOT NULL REFERENCES message (id),
    path          text NOT NULL,
    declared_type text,
    detected_type text,
    filename      text,
    size          bigint NOT NULL,
    blob_sha256   bytea REFERENCES blob (sha256),
    PRIMARY KEY (message_id, path)
);
CREATE INDEX part_blob_idx ON part (blob_sha256);

CREATE TABLE arrival (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id    bigint NOT NULL REFERENCES message (id),
    source        text NOT NULL,
    source_ref    text,
    received_at   timestamptz NOT NULL DEFAULT now(),
    envelope_from text,
    envelope_to   text[] NOT NULL DEFAULT '{}',
    details       text
);
CREATE INDEX arrival_message_idx ON arrival (message_id);

-- Store one received message and its arrival, race-free under concurrent
-- writers: the message and its rows are inserted only by the transaction
-- that wins the insert on message.sha256; every caller adds an arrival.
-- Blobs must have been inserted (ON CONFLICT DO NOTHING) before the call.
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
    OUT o_id bigint, OUT o_new boolean)
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO message (sha256, size, skeleton_sha256, message_id, date, date_raw,
                         from_addr, from_name, subject, has_attachment, parse_status, flags)
    VALUES (p_sha256, p_size, p_skeleton, p_message_id, p_date, p_date_raw,
            p_from_addr, p_from_name, p_subject, p_has_attachment, p_parse_status,
            coalesce(p_flags, '{}'))
    ON CONFLICT (sha256) DO NOTHING
    RETURNING id INTO o_id;

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
        SELECT id INTO STRICT o_id FROM message WHERE sha256 = p_sha256;
    END IF;

    INSERT INTO arrival (message_id, source, source_ref, envelope_from, envelope_to, details)
    VALUES (o_id, p_source, p_source_ref, p_envelope_from, coalesce(p_envelope_to, '{}'), p_details);
    INSERT INTO address (message_id, role, address, name)
    SELECT o_id, 'envelope-rcpt', r, NULL FROM unnest(p_envelope_to) AS r
     WHERE NOT EXISTS (SELECT 1 FROM address x WHERE x.message_id = o_id
                          AND x.role = 'envelope-rcpt' AND x.address = r);
    IF p_envelope_from IS NOT NULL AND NOT EXISTS (
           SELECT 1 FROM address x WHERE x.message_id = o_id
              AND x.role = 'envelope-from' AND x.address = p_envelope_from) THEN
        INSERT INTO address (message_id, role, address, name)
        VALUES (o_id, 'envelope-from', p_envelope_from, NULL);
    END IF;
END;
$$;

-- Compute the search vectors of up to p_limit messages that have none yet.
-- Safe to run from several sessions at once (SKIP LOCKED).
CREATE FUNCTION mv_index_pending(p_limit integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE n integer;
BEGIN
    WITH todo AS (
        SELECT message_id FROM message_text WHERE tsv IS NULL
         ORDER BY message_id LIMIT p_limit FOR UPDATE SKIP LOCKED)
    UPDATE message_text t SET tsv = to_tsvector('english', t.doc)
      FROM todo WHERE t.message_id = todo.message_id;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END;
$$;

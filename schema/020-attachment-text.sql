-- 020-attachment-text: the text inside attachments (PDF, Office Open XML,
-- OpenDocument, RTF, text, attached messages), one row per part, filled by
-- the ingest stage "extract" (archiver/mv-extract.c) in the ingest
-- transaction, or later by `mailvault index --reextract`.
--
-- The text is derived from the stored bytes, not part of the record: it
-- may be recomputed (re-extraction deletes and inserts a message's rows)
-- and it goes with the message when the message is purged (ON DELETE
-- CASCADE).  Its bound (docs/architecture.md, "Attachment text"): at most
-- 256 KiB per part and 1 MiB per message, so a part's tsvector stays under
-- PostgreSQL's 1 MB.

-- How a search text becomes a tsvector, and a query a tsquery: one place
-- for message_text and part_text.  English for now; lang (NULL: unknown)
-- lets a later migration choose the configuration per text.
CREATE OR REPLACE FUNCTION mv_search_vector(doc text, lang text) RETURNS tsvector
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT to_tsvector('english'::regconfig, coalesce(doc, ''))
$$;

CREATE OR REPLACE FUNCTION mv_search_query(q text, phrase boolean) RETURNS tsquery
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN phrase THEN phraseto_tsquery('english'::regconfig, q)
                ELSE plainto_tsquery('english'::regconfig, q) END
$$;

CREATE TABLE part_text (
    message_id bigint NOT NULL REFERENCES message (id) ON DELETE CASCADE,
    path       text NOT NULL,          -- part.path ("" for a single-part message)
    doc        text NOT NULL,          -- UTF-8, at most 256 KiB
    problem    text,                   -- why extraction failed or was cut, or NULL
    tsv        tsvector,               -- filled by mv_index_pending
    lang       text,                   -- language of doc (NULL: not detected)
    PRIMARY KEY (message_id, path)
);
ALTER TABLE part_text ALTER COLUMN doc SET COMPRESSION lz4,
                      ALTER COLUMN tsv SET COMPRESSION lz4;
CREATE INDEX part_text_tsv_idx ON part_text USING gin (tsv);
CREATE INDEX part_text_pending_idx ON part_text (message_id) WHERE tsv IS NULL;

-- Which messages had their attachments read, by which extractor version:
-- `index --reextract` takes the others (stored before extraction existed,
-- with it off, or by an older extractor).
CREATE TABLE text_extraction (
    message_id   bigint PRIMARY KEY REFERENCES message (id) ON DELETE CASCADE,
    version      integer NOT NULL,
    extracted_at timestamptz NOT NULL DEFAULT now()
);

-- Search vectors of the message texts and then of the part texts.  A part
-- text whose vector would pass PostgreSQL's 1 MB limit (impossible within
-- the 256 KiB bound, but the bound is the application's) is indexed by
-- its first quarter, so indexing never stops on one row.
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
    UPDATE message_text t SET tsv = mv_search_vector(t.doc, NULL)
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
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION mv_index_pending(integer) SECURITY DEFINER SET search_path = %I, pg_temp',
                   current_schema());
END;
$$;
REVOKE ALL ON FUNCTION mv_index_pending(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mv_index_pending(integer) TO mailvault_ingest;

-- ingest writes the rows (in the ingest transaction, and re-extraction
-- replaces them); the other groups read them (007's default privileges);
-- employees and auditors see the rows of the messages they may see
-- (019's policies).
GRANT SELECT, INSERT, DELETE ON part_text, text_extraction TO mailvault_ingest;
GRANT UPDATE (tsv, lang) ON part_text TO mailvault_ingest;
GRANT UPDATE (version, extracted_at) ON text_extraction TO mailvault_ingest;
GRANT SELECT ON part_text, text_extraction TO mailvault_employee;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['part_text', 'text_extraction'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY staff ON %I FOR ALL TO mailvault_legal, mailvault_ingest, '
                       'mailvault_purge USING (true) WITH CHECK (true)', t);
        EXECUTE format('CREATE POLICY granted ON %I FOR SELECT TO mailvault_employee, mailvault_auditor '
                       'USING (message_id IN (SELECT mv_visible_ids(current_user)))', t);
    END LOOP;
END;
$$;

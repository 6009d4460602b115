-- 028-decoded-splices: attachments stored once by their decoded content.
--
-- A spliced part (message_splice) used to be stored by its encoded bytes,
-- so one PDF sent by two mail clients (base64 at 76 or 72 columns, CRLF or
-- LF, quoted-printable) was stored once per encoding.  A splice may now
-- point at the blob of the part's decoded content, with a recipe here
-- saying how to encode it back to the exact bytes of this message: the
-- transfer encoding, the line length, the line ends and the bytes after the
-- encoded data (archiver/mv-recipe.h).  Ingest keeps a recipe only after
-- rebuilding the part from it and finding every byte equal; a splice
-- without a recipe (every splice stored before this migration, and every
-- part a recipe cannot rebuild) is stored encoded as before.  A message is
-- still checked against its SHA-256 whenever it is rebuilt.
--
-- The ingest transaction writes these rows after mv_ingest_batch (by
-- message SHA-256 and splice number); purge and erasure delete a message's
-- splices, and its recipes go with them (ON DELETE CASCADE).  Blobs are
-- referenced by message_splice alone, so the purge's reference counting
-- (mv_destroy_messages) is unchanged: a decoded blob shared by several
-- messages stays while one splice names it.

CREATE TABLE splice_recipe (
    message_id  bigint NOT NULL,
    seq         integer NOT NULL,
    encoding    text NOT NULL CHECK (encoding IN ('base64', 'quoted-printable')),
    -- base64: characters per line (0: one line); quoted-printable: the
    -- longest line
    line_len    integer NOT NULL CHECK (line_len >= 0 AND (encoding = 'base64' OR line_len >= 4)),
    crlf        boolean NOT NULL,
    tail        bytea NOT NULL DEFAULT '' CHECK (length(tail) <= 256),
    -- the part's encoded bytes in this message (what `stats storage`
    -- counts per reference, docs/traffic.md)
    encoded_size bigint NOT NULL CHECK (encoded_size >= 0),
    PRIMARY KEY (message_id, seq),
    FOREIGN KEY (message_id, seq) REFERENCES message_splice (message_id, seq) ON DELETE CASCADE
);

-- A record: changed never, deleted only with its message by a purge.
CREATE TRIGGER splice_recipe_immutable BEFORE UPDATE OR DELETE ON splice_recipe
    FOR EACH ROW EXECUTE FUNCTION mv_refuse_change_unless_purging();

-- Ingest writes the rows; the other groups read them (007's default
-- privileges); employees and auditors see the rows of the messages they
-- may see (019's policies), as for message_splice.
GRANT SELECT, INSERT ON splice_recipe TO mailvault_ingest;
GRANT SELECT ON splice_recipe TO mailvault_employee;
ALTER TABLE splice_recipe ENABLE ROW LEVEL SECURITY;
CREATE POLICY staff ON splice_recipe FOR ALL TO mailvault_legal, mailvault_ingest, mailvault_purge
    USING (true) WITH CHECK (true);
CREATE POLICY granted ON splice_recipe FOR SELECT TO mailvault_employee, mailvault_auditor
    USING (message_id IN (SELECT mv_visible_ids(current_user)));

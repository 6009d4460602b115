-- 018-encryption: encryption at rest (docs/encryption.md).
-- enc_key holds one data key per key version, wrapped (AES-256-GCM) by the
-- master key in the key file; the master key is never in the database.
-- A blob with key_version NULL is stored in clear (written before
-- encryption was turned on); otherwise its data is AES-256-GCM ciphertext
-- of the compressed bytes under that version's data key, with its nonce
-- and tag beside it.
CREATE TABLE enc_key (
    version      integer PRIMARY KEY CHECK (version > 0),
    wrapped      bytea NOT NULL CHECK (octet_length(wrapped) = 60),
    created_at   timestamptz NOT NULL DEFAULT now(),
    -- set when every blob was re-encrypted to this version (key init,
    -- key rotate); NULL while a rotation to it is owed
    completed_at timestamptz
);
CREATE TRIGGER enc_key_no_delete BEFORE DELETE ON enc_key
    FOR EACH ROW EXECUTE FUNCTION mv_refuse_change();

ALTER TABLE blob
    ADD COLUMN key_version integer REFERENCES enc_key (version),
    ADD COLUMN enc_nonce   bytea CHECK (octet_length(enc_nonce) = 12),
    ADD COLUMN enc_tag     bytea CHECK (octet_length(enc_tag) = 16),
    ADD CHECK ((key_version IS NULL) = (enc_nonce IS NULL) AND (key_version IS NULL) = (enc_tag IS NULL));
CREATE INDEX blob_key_version_idx ON blob (key_version);

-- A trained zstd dictionary is made of message text: with encryption on it
-- is sealed too (bound to its sha256 and key version), and stays under the
-- version it was made with (versions are never deleted).
ALTER TABLE zstd_dict
    ADD COLUMN key_version integer REFERENCES enc_key (version),
    ADD COLUMN enc_nonce   bytea CHECK (octet_length(enc_nonce) = 12),
    ADD COLUMN enc_tag     bytea CHECK (octet_length(enc_tag) = 16),
    ADD CHECK ((key_version IS NULL) = (enc_nonce IS NULL) AND (key_version IS NULL) = (enc_tag IS NULL));

-- Blobs stay immutable, except that key init / key rotate may re-encrypt
-- one (transaction setting mailvault.rekeying = on): its identity
-- (sha256, raw size, codec, dictionary, creation) never changes, and it
-- may only move to an equal or newer key version, never back to clear.
-- Every read still checks the plaintext against sha256.
CREATE OR REPLACE FUNCTION mv_blob_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(current_setting('mailvault.rekeying', true), '') = 'on'
       AND NEW.sha256 = OLD.sha256 AND NEW.raw_size = OLD.raw_size
       AND NEW.codec = OLD.codec AND NEW.dict_id IS NOT DISTINCT FROM OLD.dict_id
       AND NEW.created_at = OLD.created_at AND NEW.key_version IS NOT NULL
       AND (OLD.key_version IS NULL OR NEW.key_version >= OLD.key_version) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'blob rows are a record: update is refused';
END;
$$;
DROP TRIGGER blob_immutable ON blob;
CREATE TRIGGER blob_immutable BEFORE UPDATE ON blob
    FOR EACH ROW EXECUTE FUNCTION mv_blob_guard();

DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['mailvault_ingest', 'mailvault_legal', 'mailvault_auditor',
                             'mailvault_purge'] LOOP
        EXECUTE format('GRANT SELECT ON enc_key TO %I', r);
    END LOOP;
END;
$$;

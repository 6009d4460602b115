-- 030-key-rotation: master-key rotation and the nonce budget of each data
-- key version (docs/encryption.md).
--
-- master_fpr: a fingerprint of the master key that wraps this version's
-- data key (SHA-256 of a label and the key: it reveals nothing of the key;
-- NULL for versions wrapped before 030 until a key command records it).
-- nonces_reserved: how many AES-256-GCM seals (each a fresh random 96-bit
-- nonce) writers have reserved with this data key.  Writers reserve in
-- blocks, committed before they seal, so a crash can only over-count.  A
-- version whose budget is spent is never sealed with again: the writer
-- makes the next version (made_by 'nonce-limit').
ALTER TABLE enc_key
    ADD COLUMN master_fpr      bytea CHECK (octet_length(master_fpr) = 32),
    ADD COLUMN nonces_reserved bigint NOT NULL DEFAULT 0 CHECK (nonces_reserved >= 0),
    ADD COLUMN made_by         text NOT NULL DEFAULT 'operator'
                               CHECK (made_by IN ('operator', 'nonce-limit'));

-- What existing versions have sealed so far, as far as rows tell: every
-- blob and dictionary under a version or moved on from it was sealed with
-- it once (rolled-back seals are not counted; the limit keeps a margin).
UPDATE enc_key k SET nonces_reserved =
    (SELECT count(*) FROM blob b WHERE b.key_version >= k.version)
  + (SELECT count(*) FROM zstd_dict d WHERE d.key_version >= k.version);

-- A data key's wrapping changes only by key rewrap (transaction setting
-- mailvault.rewrapping on), which also records the new master key's
-- fingerprint; its version, creation and completion never change that way,
-- and the budget only grows.
CREATE OR REPLACE FUNCTION mv_enc_key_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.version <> OLD.version OR NEW.created_at <> OLD.created_at
       OR NEW.made_by <> OLD.made_by OR NEW.nonces_reserved < OLD.nonces_reserved THEN
        RAISE EXCEPTION 'enc_key: only the wrapping, completion and nonce budget change';
    END IF;
    IF (NEW.wrapped <> OLD.wrapped OR NEW.master_fpr IS DISTINCT FROM OLD.master_fpr)
       AND coalesce(current_setting('mailvault.rewrapping', true), '') <> 'on'
       AND NOT (OLD.master_fpr IS NULL AND NEW.wrapped = OLD.wrapped) THEN
        RAISE EXCEPTION 'enc_key: a data key is re-wrapped only by mailvault key rewrap';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER enc_key_guard BEFORE UPDATE ON enc_key
    FOR EACH ROW EXECUTE FUNCTION mv_enc_key_guard();

-- Reserve up to p_count seals with data key version p_version, never past
-- p_limit (at most 2^32, NIST SP 800-38D's bound for random 96-bit
-- nonces).  Returns how many were granted: 0 when the version is spent.
-- The caller commits it before sealing (autocommit on a connection of its
-- own).
CREATE FUNCTION mv_enc_reserve(p_version integer, p_count bigint, p_limit bigint)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_used bigint;
    v_grant bigint;
BEGIN
    SELECT nonces_reserved INTO v_used FROM enc_key WHERE version = p_version FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'key version % does not exist', p_version;
    END IF;
    v_grant := greatest(0, least(p_count, least(p_limit, 4294967296) - v_used));
    IF v_grant > 0 THEN
        UPDATE enc_key SET nonces_reserved = nonces_reserved + v_grant WHERE version = p_version;
    END IF;
    RETURN v_grant;
END;
$$;

-- A writer whose version p_from is spent adds the next version (its data
-- key wrapped by the master key whose fingerprint is p_fpr), unless a newer
-- version exists already: returns the newest version either way.  The
-- master key must be the one that wraps the newest version, so a writer
-- with a stale key file can never add a version nobody else can open.
CREATE FUNCTION mv_enc_next_version(p_from integer, p_wrapped bytea, p_fpr bytea)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    v_latest integer;
    v_fpr bytea;
BEGIN
    LOCK TABLE enc_key IN SHARE ROW EXCLUSIVE MODE;
    SELECT version, master_fpr INTO v_latest, v_fpr FROM enc_key ORDER BY version DESC LIMIT 1;
    IF v_latest IS NULL THEN
        RAISE EXCEPTION 'encryption is not on';
    END IF;
    IF v_latest > p_from THEN
        RETURN v_latest;
    END IF;
    IF v_fpr IS NOT NULL AND v_fpr <> p_fpr THEN
        RAISE EXCEPTION 'the key file is not the master key that wraps key version % (was it rewrapped?)', v_latest
            USING ERRCODE = '28000';
    END IF;
    INSERT INTO enc_key (version, wrapped, master_fpr, made_by, completed_at)
    VALUES (v_latest + 1, p_wrapped, p_fpr, 'nonce-limit', now());
    PERFORM mv_audit_append(current_user, 'key.rotate', 'encryption at rest',
                            format('version=%s reason=nonce-limit from=%s', v_latest + 1, v_latest));
    RETURN v_latest + 1;
END;
$$;

DO $$
DECLARE
    f text;
BEGIN
    FOR f IN SELECT p.oid::regprocedure::text FROM pg_proc p
              WHERE p.pronamespace = current_schema()::regnamespace
                AND p.proname IN ('mv_enc_reserve', 'mv_enc_next_version') LOOP
        EXECUTE format('ALTER FUNCTION %s SECURITY DEFINER SET search_path = %I, pg_temp',
                       f, current_schema());
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO mailvault_ingest, mailvault_legal, '
                       'mailvault_purge', f);
    END LOOP;
END;
$$;

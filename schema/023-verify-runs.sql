-- 023-verify-runs: each `mailvault verify` run's result, for the report
-- ("last verify") and for anyone asking when the archive was last checked.
-- Not evidence (the audit chain is): a summary of what verify printed.
-- scope: 'archive' when the session saw the whole archive, 'visible' when
-- row-level security bound it to what it was granted (docs/access.md).
CREATE TABLE verify_run (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    finished_at   timestamptz NOT NULL DEFAULT now(),
    actor         text NOT NULL,
    scope         text NOT NULL CHECK (scope IN ('archive', 'visible')),
    sample        bigint,                 -- --sample N, else NULL (every message)
    checked       bigint NOT NULL,        -- messages read back and hashed
    damaged       bigint NOT NULL,        -- of those, not byte-exact
    audit_intact  boolean NOT NULL,
    audit_entries bigint NOT NULL,
    records       bigint NOT NULL,        -- records checked against their seals
    findings      bigint NOT NULL,        -- records not as sealed
    ok            boolean GENERATED ALWAYS AS (damaged = 0 AND audit_intact AND findings = 0) STORED
);

-- Any role that may run verify records its run; the scope is the
-- session's, not the caller's to choose.
CREATE FUNCTION mv_verify_record(p_actor text, p_sample bigint, p_checked bigint, p_damaged bigint,
                                 p_audit_intact boolean, p_audit_entries bigint, p_records bigint,
                                 p_findings bigint) RETURNS bigint LANGUAGE sql AS $$
    INSERT INTO verify_run (actor, scope, sample, checked, damaged, audit_intact, audit_entries,
                            records, findings)
    VALUES (left(p_actor, 200),
            CASE WHEN pg_has_role(session_user, (SELECT relowner FROM pg_class
                                                  WHERE oid = 'message'::regclass), 'MEMBER')
                      OR pg_has_role(session_user, 'mailvault_legal', 'MEMBER')
                      OR pg_has_role(session_user, 'mailvault_ingest', 'MEMBER')
                      OR pg_has_role(session_user, 'mailvault_purge', 'MEMBER')
                 THEN 'archive' ELSE 'visible' END,
            p_sample, p_checked, p_damaged, p_audit_intact, p_audit_entries, p_records, p_findings)
    RETURNING id
$$;
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION mv_verify_record(text, bigint, bigint, bigint, boolean, bigint, bigint, bigint) '
                   'SECURITY DEFINER SET search_path = %I, pg_temp', current_schema());
END;
$$;
REVOKE ALL ON FUNCTION mv_verify_record(text, bigint, bigint, bigint, boolean, bigint, bigint, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mv_verify_record(text, bigint, bigint, bigint, boolean, bigint, bigint, bigint)
   TO mailvault_legal, mailvault_ingest, mailvault_purge, mailvault_auditor, mailvault_employee;
-- What the archive as a whole was found to be: the staff's to read.
REVOKE ALL ON verify_run FROM PUBLIC;
GRANT SELECT ON verify_run TO mailvault_legal;

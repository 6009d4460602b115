-- 027-rls-plan: the visible set drives an employee's or auditor's plan.
--
-- 019's policies ask "id IN (SELECT mv_visible_ids(current_user))": one
-- hashed set per statement, but only a filter.  PostgreSQL applies security
-- quals before the query's own conditions and uses no index through a
-- condition that is not leakproof (tsv @@ query is not), so every search by
-- an employee or an auditor read all of message (and, for full text, all
-- of message_text): linear in the archive (tests/bench/rls-bench.sh,
-- docs/access.md).
--
-- Here the policy of message, the table every search goes through,
-- compares with an array computed once per statement (an InitPlan):
-- "id = ANY ((SELECT mv_visible_id_array(current_user))::bigint[])", which
-- the planner uses as an index condition on message's primary key, so the
-- plan starts from the messages the role may see and reaches the other
-- tables through their message_id indexes: the work is proportional to
-- what the role may see.  The other tables keep the hashed set: the
-- planner guesses an array of unknown length at 10 elements, and with that
-- guess on both sides of a join it would pick a nested loop over two
-- materialised sets (quadratic; measured).  The rows and the answers are
-- the same; only the plans change.

CREATE FUNCTION mv_visible_id_array(p_role text) RETURNS bigint[] LANGUAGE sql STABLE AS $$
    SELECT coalesce(array_agg(x ORDER BY x), '{}') FROM (SELECT DISTINCT x FROM mv_visible_ids(p_role) x) d
$$;

DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION mv_visible_id_array(text) SECURITY DEFINER SET search_path = %I, pg_temp',
                   current_schema());
END;
$$;
REVOKE ALL ON FUNCTION mv_visible_id_array(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mv_visible_id_array(text) TO mailvault_employee, mailvault_auditor;
DROP POLICY granted ON message;
CREATE POLICY granted ON message FOR SELECT TO mailvault_employee, mailvault_auditor
    USING (id = ANY ((SELECT mv_visible_id_array(current_user))::bigint[]));

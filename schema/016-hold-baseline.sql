-- 016-hold-baseline: what each hold covered before the audit chain recorded
-- every change to it (013-record-guards writes record.hold and
-- record.hold-items entries from triggers since).  One entry per hold that
-- has items, in the same form as the trigger's, so that `mailvault verify`
-- can replay the chain and compare what every hold covers now.
DO $$
DECLARE
    v_details text;
BEGIN
    SELECT string_agg(format(E'hold=%s added=%s pending=%s ids=%s', x.hold_id, x.n,
                             CASE WHEN x.pending THEN 'yes' ELSE 'no' END, x.ids), E'\n'
                      ORDER BY x.hold_id, x.pending)
      INTO v_details
      FROM (SELECT hold_id, pending, count(*) AS n, string_agg(message_id::text, ',' ORDER BY message_id) AS ids
              FROM hold_item GROUP BY hold_id, pending) x;
    IF v_details IS NOT NULL THEN
        PERFORM mv_audit_append('mailvault migration', 'record.hold-items', 'baseline', v_details);
    END IF;
    -- Every hold, and the release of those released before, as entries too.
    PERFORM mv_audit_append('mailvault migration', 'record.hold', 'hold ' || h.name,
                            'created id=' || h.id || ' case=' || h.case_ref || ' ongoing=' || h.ongoing ||
                            E'\nquery=' || h.query)
       FROM hold h ORDER BY h.id;
    PERFORM mv_audit_append('mailvault migration', 'record.hold', 'hold ' || h.name,
                            'released id=' || h.id || ' by=' || coalesce(h.released_by, '-') ||
                            E'\nreason=' || coalesce(h.release_reason, ''))
       FROM hold h WHERE h.released_at IS NOT NULL;
END;
$$;

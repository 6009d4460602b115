-- Ongoing holds that ran out of time in an ingest transaction.
--
-- An ongoing hold's query runs in every ingest transaction under a
-- statement timeout (retention/mv-hold.c).  When it runs out, the pipeline
-- retries the transaction with the evaluation deferred: every new message
-- is put into every active ongoing hold as a *pending* item, so ingest goes
-- on and the message is protected as if held (the purge checks and the
-- delete guard look at hold_item and see it).  Pending items are settled
-- later, outside any ingest transaction (mv_hold_settle_pending, run by the
-- indexer and by `mailvault index`): the ones the hold's query matches
-- become ordinary items, the others are removed.  Readers of a hold's
-- contents (hold: queries, exports, counts) skip pending items.
ALTER TABLE hold_item ADD COLUMN pending boolean NOT NULL DEFAULT false;
CREATE INDEX hold_item_pending_idx ON hold_item (hold_id) WHERE pending;

-- hold_item stays a record: only purge deletes an item, and a pending item
-- may be settled once (pending true -> false, nothing else changed) or
-- removed.
CREATE FUNCTION mv_hold_item_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND (OLD.pending OR coalesce(current_setting('mailvault.purging', true), '') = 'on') THEN
        RETURN OLD;
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.pending AND NOT NEW.pending
       AND NEW.hold_id = OLD.hold_id AND NEW.message_id = OLD.message_id THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION '% rows are a record: % is refused (records are destroyed only by purge)',
        TG_TABLE_NAME, lower(TG_OP);
END;
$$;
DROP TRIGGER hold_item_immutable ON hold_item;
CREATE TRIGGER hold_item_immutable BEFORE UPDATE OR DELETE ON hold_item
    FOR EACH ROW EXECUTE FUNCTION mv_hold_item_guard();

GRANT UPDATE (pending), DELETE ON hold_item TO mailvault_ingest, mailvault_legal;

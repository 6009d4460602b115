-- 039-arrival-first: a message's first arrival through one index.
--
-- The first arrival (its source, envelope and archive date: what the rules
-- classify, `retention explain` and `apply`, the export's envelope
-- sender) is read as "WHERE message_id = $1 ORDER BY id LIMIT 1".  With an
-- index on message_id alone the planner could also walk arrival_pkey in id
-- order and filter on the message, and it did after a bulk import (its
-- statistics not yet renewed): every lookup read the arrivals of all the
-- messages before it, so `retention apply` over 21,023 linux-mips
-- messages spent 18.4 of its 32.7 s there, a page of 200 taking 207 ms
-- and growing with the archive.  An index on (message_id, id) answers the
-- query itself, in any statistics; it serves every lookup by message_id
-- too, so it replaces 001's arrival_message_idx.
CREATE INDEX arrival_message_first_idx ON arrival (message_id, id);
DROP INDEX arrival_message_idx;

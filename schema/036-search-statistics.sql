-- 036-search-statistics: finer statistics of the search vectors, so that
-- the planner sees a rare word as rare (issue 16).
--
-- A text term is one EXISTS over message_text and part_text
-- (archiver/mv-query.c): for a common word the planner walks the messages
-- newest first and stops at the page's last hit; for a rare one it reads
-- the GIN indexes and sorts the few hits.  It chooses by the estimated
-- number of hits, and a word missing from the vectors' most common
-- elements is estimated at half the least common one's frequency: with
-- the default statistics target that was about 3% of the messages for a
-- word found in none, and a search for it walked every message (measured
-- on 506,000 generated messages: 3.6 s; 24.9 s on a million).  Statistics
-- ten times finer keep ten times as many elements (the least common about
-- ten times rarer): the same search takes 2.6 ms from the GIN indexes,
-- while a common word ("invoice") still walks (6.8 ms).  ANALYZE reads
-- 300,000 sampled rows per table instead of 30,000 (6 and 14 s on that
-- archive); it runs here once, then as autovacuum decides.
ALTER TABLE message_text ALTER COLUMN tsv SET STATISTICS 1000;
ALTER TABLE part_text ALTER COLUMN tsv SET STATISTICS 1000;
ANALYZE message_text;
ANALYZE part_text;

-- 032: placeholder for the migration number another branch of this wave owns
-- (the lead drops this file when merging that branch).
SELECT 1;

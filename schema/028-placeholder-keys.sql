-- Placeholder on branch keys only, so that 031 builds before the other
-- branches of this wave (which own 028) are merged: drop it on merge.
SELECT 1;

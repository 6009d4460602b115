-- Placeholder on branch attdedup only, so that 029 builds before branch pack
-- (which owns 028) is merged: drop it on merge.
SELECT 1;

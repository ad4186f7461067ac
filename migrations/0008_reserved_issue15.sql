-- Placeholder for 0008, which issue 15 (reconciliation) owns: the runner refuses gaps, and this
-- branch's 0009 needs a 0008 to run. The lead drops this file when merging issue 15's 0008.
SELECT 1;

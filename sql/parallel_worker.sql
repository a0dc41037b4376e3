-- A parallel worker copies the session's settings, loyalty.test_now among
-- them, and its check hook parses the timestamp before the worker has its
-- time zone abbreviations back.  0.9 before this fix crashed the worker
-- (SIGSEGV in DecodeTimezoneAbbrev) and with it the whole server: the "T"
-- and "Z" of an ISO 8601 moment were looked up as abbreviations.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS loyalty CASCADE;
CREATE EXTENSION loyalty;
RESET client_min_messages;

SET loyalty.test_now = '2026-12-01T12:00:00+00:00';
SELECT loyalty.register('+79120000401') > 0 AS registered;

-- every query below runs in a parallel worker
SET max_parallel_workers_per_gather = 2;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET force_parallel_mode = on;
SELECT count(*) AS in_a_worker FROM generate_series(1, 10);
SET loyalty.test_now = '2026-12-01T12:00:00Z';
SELECT count(*) AS in_a_worker FROM generate_series(1, 10);
SET loyalty.test_now = '2026-12-01t12:00:00z';
SELECT count(*) AS in_a_worker FROM generate_series(1, 10);
RESET force_parallel_mode;

-- the forms an "at" may take are still accepted
SET loyalty.test_now = '2026-12-01 15:00:00+03';
SHOW loyalty.test_now;
SET loyalty.test_now = '2026-12-01T12:00Z';
SHOW loyalty.test_now;
-- still refused: a moment without an offset, a zone name
SET loyalty.test_now = '2026-12-01T12:00:00';
SET loyalty.test_now = '2026-12-01T12:00:00 MSK';
RESET loyalty.test_now;

-- bench/gen/customers.sql: customers lo .. hi, in chunks.
--
--   psql -v lo=1 -v hi=1500000 -f bench/gen/customers.sql
--
-- A bulk INSERT into loyalty.customer is what loyalty.register does for a
-- new phone: the customer_issue_virtual_card trigger issues every customer a
-- virtual card.  Nothing is disabled.  bench/generate runs one of these per
-- CPU over disjoint id ranges; customer i has phone +7 (900 000 0000 + i).
-- The tier column is seeded 70/20/10 (standard/silver/gold), as a customer
-- base migrated from another system arrives with its tiers; the first
-- run_maintenance recomputes every tier from the purchases.
\set ON_ERROR_STOP 1
\set QUIET 1
SET client_min_messages = notice;
SELECT set_config('bench.lo', :'lo', false) AS lo, set_config('bench.hi', :'hi', false) AS hi \gset

DO $$
DECLARE
    t timestamptz := clock_timestamp();
    first bigint := current_setting('bench.lo')::bigint;
    last bigint := current_setting('bench.hi')::bigint;
    chunk bigint := 100000;
    lo bigint := first;
    hi bigint;
BEGIN
    WHILE lo <= last LOOP
        hi := least(last, lo + chunk - 1);
        INSERT INTO loyalty.customer (id, phone, email, name, birth_date, tier, created_at)
        SELECT i, bench.phone(i), 'c' || i || '@example.ru', 'Customer ' || i,
               date '1950-01-01' + (i * 7 % 20000)::int,
               CASE WHEN i % 10 = 0 THEN 'gold' WHEN i % 10 IN (1, 2) THEN 'silver' ELSE 'standard' END,
               now() - (i % 1500) * interval '1 day'
          FROM generate_series(lo, hi) AS i;
        COMMIT;
        -- a progress line every 500,000 rows and at the end
        IF (hi - first + 1) % 500000 = 0 OR hi = last THEN
            PERFORM bench.step(format('customers %s..%s', first, hi), hi - first + 1, t);
        END IF;
        lo := hi + 1;
    END LOOP;
END
$$;

--
-- backtest: loyalty.backtest (SPEC section 16, issue 19).  A small fixed
-- history of purchases is replayed with the configuration now and with a
-- candidate promotion; the differences below are computed by hand.
--
-- History (Moscow time; 2026-12-01 is a Tuesday):
--   b1  Tue 12-01 10:00 MSK  anonymous   C1 x1 (1000.00), F1 x1 (500.00)
--   b2  Tue 12-01 11:00 SPB  customer 1  C2 x3 (333.33)
--   b3  Wed 12-02 10:00 MSK  anonymous   C1 x2
-- Today's configuration: FOOD10, 10% off food: b1 gets 50.00, nothing else.
-- Candidate TUE15: 15% off cosmetics on Tuesdays:
--   b1  C1 1000.00 * 15% = 150.00
--   b2  999.99 * 15% = 149.9985 -> 150.00
--   b3  a Wednesday: nothing
-- so 300.00 more, 150.00 in each store, all of it on 12-01.  Customer 1
-- earns 10% of what is paid: 99.99 before, 84.99 after (849.99 paid).
--
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS loyalty CASCADE;
CREATE EXTENSION loyalty;
RESET client_min_messages;
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';

-- SQLSTATE, message and detail of a call, or "ok"
CREATE FUNCTION pg_temp.try(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    detail text;
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
    RETURN SQLSTATE || ': ' || SQLERRM || coalesce(' / ' || nullif(detail, ''), '');
END
$$;

INSERT INTO loyalty.setting (key, value) VALUES ('timezone', 'Europe/Moscow'), ('accrual_percent', '10');
INSERT INTO loyalty.store (code, name, region, timezone, channel) VALUES
    ('MSK', 'Moscow', 'center', 'Europe/Moscow', 'pos'),
    ('SPB', 'St Petersburg', 'north', 'Europe/Moscow', 'pos');
INSERT INTO loyalty.category (code, parent, name) VALUES
    ('all', NULL, 'Everything'), ('cosmetics', 'all', 'Cosmetics'), ('food', 'all', 'Food');
INSERT INTO loyalty.product (sku, name, category, price) VALUES
    ('C1', 'Cream', 'cosmetics', 1000.00), ('C2', 'Soap', 'cosmetics', 333.33),
    ('F1', 'Bread', 'food', 500.00);
INSERT INTO loyalty.account_type (code, name, redeem_share, lifetime, activation_delay) VALUES
    ('main', 'Bonus points', 1, '1 year', '1 day');
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
    ('FOOD10', '10% off food', 'percent_off', '{"products": {"categories": ["food"]}, "percent": 10}');
SELECT loyalty.register('+79120000001') AS anna;

SET loyalty.test_now = '2026-12-01T20:00:00+03:00';
SELECT (loyalty.purchase('{"operation_id": "b1", "store": "MSK", "at": "2026-12-01T10:00:00+03:00",
    "lines": [{"sku": "C1", "qty": 1}, {"sku": "F1", "qty": 1}]}') -> 'totals' ->> 'discount') AS b1;
SELECT (loyalty.purchase('{"operation_id": "b2", "customer": 1, "store": "SPB", "at": "2026-12-01T11:00:00+03:00",
    "lines": [{"sku": "C2", "qty": 3}]}') -> 'totals' ->> 'discount') AS b2;
SET loyalty.test_now = '2026-12-02T20:00:00+03:00';
SELECT (loyalty.purchase('{"operation_id": "b3", "store": "MSK", "at": "2026-12-02T10:00:00+03:00",
    "lines": [{"sku": "C1", "qty": 2}]}') -> 'totals' ->> 'discount') AS b3;

-- the candidate over the two days: 300.00 more, as computed above
SELECT jsonb_pretty(loyalty.backtest('{"from": "2026-12-01T00:00:00+03:00", "to": "2026-12-03T00:00:00+03:00",
    "promotions": [{"code": "TUE15", "name": "-15% on cosmetics on Tuesdays", "mechanic": "percent_off",
                    "rule": {"products": {"categories": ["cosmetics"]}, "percent": 15},
                    "schedule": {"weekdays": [2]}}]}'));

-- one store, and disabling FOOD10 alone: 50.00 less, in MSK
SELECT r -> 'checks' AS checks, r -> 'changed' AS changed, r -> 'discount' AS discount,
       r -> 'by_promotion' AS by_promotion
  FROM loyalty.backtest('{"from": "2026-12-01T00:00:00+03:00", "to": "2026-12-03T00:00:00+03:00",
                          "stores": ["MSK"], "disable": ["FOOD10"]}') r;

-- a candidate with an existing code replaces that promotion: 20% off food
-- gives b1 100.00 instead of 50.00
SELECT r -> 'discount' AS discount FROM loyalty.backtest('{"from": "2026-12-01T00:00:00+03:00",
    "to": "2026-12-03T00:00:00+03:00", "promotions": [{"code": "FOOD10", "name": "20% off food",
    "mechanic": "percent_off", "rule": {"products": {"categories": ["food"]}, "percent": 20}}]}') r;

-- nothing was written, and the promotion table is as it was
SELECT count(*) AS operations FROM loyalty.operation;
SELECT code FROM loyalty.promotion ORDER BY code;

-- errors: a bad candidate is LY006 naming the field, as an insert would be
SELECT pg_temp.try($$SELECT loyalty.backtest('{"from": "2026-12-01T00:00:00+03:00", "to": "2026-12-03T00:00:00+03:00",
    "promotions": [{"code": "X", "name": "x", "mechanic": "percent_off", "rule": {"products": {"all": true}, "percnet": 5}}]}')$$) AS rule_typo;
SELECT pg_temp.try($$SELECT loyalty.backtest('{"from": "2026-12-01T00:00:00+03:00", "to": "2026-12-03T00:00:00+03:00",
    "promotions": [{"code": "X", "mechanic": "percent_off", "rule": {"products": {"all": true}, "percent": 5}}]}')$$) AS no_name;
SELECT pg_temp.try($$SELECT loyalty.backtest('{"from": "2026-12-01T00:00:00+03:00", "to": "2026-12-03T00:00:00+03:00",
    "promotions": [{"code": "X", "name": "x", "mechanic": "percent_off", "rule": {"products": {"all": true}, "percent": 5},
                    "channels": ["fax"]}]}')$$) AS bad_channel;
SELECT pg_temp.try($$SELECT loyalty.backtest('{"from": "2026-12-01T00:00:00+03:00", "to": "2026-12-03T00:00:00+03:00",
    "promotions": [{"code": "X", "name": "x", "mechanic": "discount_all"}]}')$$) AS bad_mechanic;
SELECT pg_temp.try($$SELECT loyalty.backtest('{"from": "2026-12-01T00:00:00+03:00", "to": "2026-12-03T00:00:00+03:00",
    "promotions": [{"code": "X", "name": "x", "mechanic": "percent_off", "rule": {"products": {"all": true}, "percent": 5},
                    "usage_limit": 0}]}')$$) AS bad_limit;
SELECT pg_temp.try($$SELECT loyalty.backtest('{"from": "2026-12-01T00:00:00+03:00", "to": "2026-12-03T00:00:00+03:00",
    "promotions": [{"code": "X", "name": "x", "mechanic": "percent_off", "rule": {"products": {"all": true}, "percent": 5},
                    "colour": "red"}]}')$$) AS unknown_column;
-- a malformed request is 22023 naming the field
SELECT pg_temp.try($$SELECT loyalty.backtest('{"from": "2026-12-01T00:00:00+03:00"}')$$) AS no_to;
SELECT pg_temp.try($$SELECT loyalty.backtest('{"from": "2026-12-03T00:00:00+03:00", "to": "2026-12-01T00:00:00+03:00"}')$$) AS backwards;
SELECT pg_temp.try($$SELECT loyalty.backtest('{"from": "2026-12-01T00:00:00+03:00", "to": "2026-12-03T00:00:00+03:00", "sample": 2}')$$) AS sample;
SELECT pg_temp.try($$SELECT loyalty.backtest('{"from": "2026-12-01T00:00:00+03:00", "to": "2026-12-03T00:00:00+03:00", "promotions": {}}')$$) AS not_array;
SELECT pg_temp.try($$SELECT loyalty.backtest('[]')$$) AS not_object;

-- privileges: the marketer and the admin may, the cashier may not
SET ROLE loyalty_marketer;
SELECT loyalty.backtest('{"from": "2026-12-01T00:00:00+03:00", "to": "2026-12-03T00:00:00+03:00"}') -> 'checks' AS marketer;
RESET ROLE;
SET ROLE loyalty_admin;
SELECT loyalty.backtest('{"from": "2026-12-01T00:00:00+03:00", "to": "2026-12-03T00:00:00+03:00"}') -> 'checks' AS admin;
RESET ROLE;
SET ROLE loyalty_cashier;
SELECT pg_temp.try($$SELECT loyalty.backtest('{"from": "2026-12-01T00:00:00+03:00", "to": "2026-12-03T00:00:00+03:00"}')$$) AS cashier;
RESET ROLE;

-- Exact money at scale: 400 purchases over two days, several lines each,
-- with a check-level promotion after FOOD10 so that order matters.  A
-- candidate equal to FOOD10 under another code, FOOD10 disabled, changes
-- nothing: difference exactly 0.00, no check changed.  And "before" is
-- what the purchases themselves got (no coupons, no limits here).
INSERT INTO loyalty.promotion (code, name, mechanic, rule, priority) VALUES
    ('BIG5', '5% from 2000', 'check_discount', '{"steps": [{"min_total": 2000, "percent": 5}]}', 200);
SET loyalty.test_now = '2026-12-04T12:00:00+03:00';
DO $$
BEGIN
    FOR i IN 1..400 LOOP
        PERFORM loyalty.purchase(jsonb_build_object(
            'operation_id', 'z' || i,
            'customer', CASE WHEN i % 3 = 0 THEN 1 END,
            'store', CASE WHEN i % 2 = 0 THEN 'MSK' ELSE 'SPB' END,
            'at', (timestamptz '2026-12-02T00:00:00+03:00' + (i * 397) * interval '1 second')::text,
            'lines', jsonb_build_array(
                jsonb_build_object('sku', 'F1', 'qty', 1 + i % 4),
                jsonb_build_object('sku', 'C2', 'qty', 1 + i % 5),
                jsonb_build_object('sku', 'C1', 'qty', 1 + i % 2, 'price', 100 + (i * 37) % 900 + 0.01 * (i % 100)))));
    END LOOP;
END
$$;
WITH b AS (
    SELECT loyalty.backtest(jsonb_build_object(
        'from', '2026-12-02T00:00:00+03:00', 'to', '2026-12-05T00:00:00+03:00',
        'promotions', jsonb_build_array((to_jsonb(p) - 'code') || '{"code": "FOOD10_COPY"}'),
        'disable', '["FOOD10"]'::jsonb)) AS r
      FROM loyalty.promotion p WHERE p.code = 'FOOD10'
)
SELECT r -> 'checks' AS checks, r -> 'changed' AS changed,
       r -> 'discount' ->> 'difference' AS difference,
       r -> 'points' ->> 'difference' AS points_difference,
       -- b3 (2000.00) now gets BIG5's 5%, 100.00, that it did not get when sold
       (r -> 'discount' ->> 'before')::numeric - 100.00 =
           (SELECT sum(discount) FROM loyalty.purchase WHERE at >= '2026-12-02T00:00:00+03:00') AS before_is_history,
       r -> 'by_promotion' AS by_promotion
  FROM b;

-- The parallel replay ("parallel": "on": loyalty.backtest_check under a
-- GROUP BY, PostgreSQL's parallel query) gives every figure of the serial
-- replay ("parallel": "off"): the whole results are equal, on the three
-- purchases of the fixed history and on the 400 above.  Parallel costs at
-- zero so that the planner uses workers even on these few rows, and the
-- leader not taking part, so that workers price the checks (each building
-- the candidate configuration itself).
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET parallel_leader_participation = off;
SET max_parallel_workers_per_gather = 2;
CREATE FUNCTION pg_temp.both_ways(req jsonb) RETURNS TABLE (checks jsonb, changed jsonb, difference jsonb, same boolean)
LANGUAGE sql AS $$
    SELECT s -> 'checks', s -> 'changed', s -> 'discount' -> 'difference', s = p
      FROM (SELECT loyalty.backtest(req || '{"parallel": "off"}') AS s,
                   loyalty.backtest(req || '{"parallel": "on"}') AS p) x
$$;
SELECT * FROM pg_temp.both_ways('{"from": "2026-12-01T00:00:00+03:00", "to": "2026-12-03T00:00:00+03:00",
    "promotions": [{"code": "TUE15", "name": "-15% on cosmetics on Tuesdays", "mechanic": "percent_off",
                    "rule": {"products": {"categories": ["cosmetics"]}, "percent": 15},
                    "schedule": {"weekdays": [2]}}]}');
SELECT * FROM pg_temp.both_ways('{"from": "2026-12-01T00:00:00+03:00", "to": "2026-12-03T00:00:00+03:00",
    "stores": ["MSK"], "disable": ["FOOD10"]}');
SELECT * FROM pg_temp.both_ways('{"from": "2026-12-01T00:00:00+03:00", "to": "2026-12-05T00:00:00+03:00",
    "promotions": [{"code": "FOOD10", "name": "20% off food", "mechanic": "percent_off",
                    "rule": {"products": {"categories": ["food"]}, "percent": 20}},
                   {"code": "TUE15", "name": "-15% on cosmetics on Tuesdays", "mechanic": "percent_off",
                    "rule": {"products": {"categories": ["cosmetics"]}, "percent": 15},
                    "schedule": {"weekdays": [3]}}],
    "disable": ["BIG5"]}');
SELECT * FROM pg_temp.both_ways('{"from": "2026-12-01T00:00:00+03:00", "to": "2026-12-05T00:00:00+03:00",
    "sample": 0.5, "disable": ["FOOD10"]}');
-- the plan of the parallel replay: workers under a Gather, each adding up
-- its share of the purchases (a partial aggregate over a parallel scan)
SET min_parallel_table_scan_size = 0;
EXPLAIN (COSTS OFF)
SELECT r.kind, r.key, sum(r.checks)
  FROM loyalty.purchase p JOIN loyalty.operation o USING (operation_id),
       LATERAL loyalty.backtest_check(o.request, p.at, p.store, '[]', '{}', 1, 10000, 0) r
 WHERE p.at >= '2026-12-01' GROUP BY r.kind, r.key;
RESET min_parallel_table_scan_size;
-- "parallel" is auto, on or off
SELECT pg_temp.try($$SELECT loyalty.backtest('{"from": "2026-12-01T00:00:00+03:00", "to": "2026-12-03T00:00:00+03:00", "parallel": "yes"}')$$) AS parallel_word;
-- the internal function is nobody's to call
SET ROLE loyalty_marketer;
SELECT pg_temp.try($$SELECT * FROM loyalty.backtest_check('{}', now(), NULL, '[]', '{}', 1, 1, 1)$$) AS marketer_check;
RESET ROLE;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET parallel_leader_participation;
RESET max_parallel_workers_per_gather;

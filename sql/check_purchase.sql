--
-- check_purchase: purchase = calculate + commit (SPEC section 7): the same
-- response, facts written, points spent and earned through the ledger,
-- idempotency by operation_id (LY003 on a different request), LY004 when
-- the points asked for cannot be spent, usage limits.
--
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS loyalty CASCADE;
CREATE EXTENSION loyalty;
RESET client_min_messages;
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';

CREATE FUNCTION pg_temp.err(call text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE st text; msg text; det text;
BEGIN
    EXECUTE call;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;
    RETURN st || ': ' || msg || coalesce(' / ' || nullif(det, ''), '');
END
$$;

INSERT INTO loyalty.store (code, name, region, timezone, channel) VALUES
    ('S1', 'Store one', 'north', 'Europe/Moscow', 'pos');
INSERT INTO loyalty.category (code, parent, name) VALUES ('all', NULL, 'Everything');
INSERT INTO loyalty.product (sku, name, category, price) VALUES
    ('A', 'Cream', 'all', 199.90), ('B', 'Soap', 'all', 100.00);
INSERT INTO loyalty.account_type (code, name, redeem_share, lifetime, activation_delay) VALUES
    ('main', 'Bonus points', 0.9, '1 year', '0');
INSERT INTO loyalty.tier (code, name, rank, threshold, accrual_percent) VALUES ('base', 'Base', 1, 0, 10);
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
    ('A30', '30% off A', 'percent_off', '{"products": {"skus": ["A"]}, "percent": 30}');
SELECT loyalty.register('+79120000001') AS anna;
SELECT loyalty.adjust('{"operation_id": "welcome-1", "customer": "id:1", "account": "main", "points": 100, "reason": "welcome"}') ->> 'points' AS granted;

-- purchase returns what calculate returned for the same request and state,
-- plus the operation_id ("at" is left out: points are granted now, and each
-- statement here is its own transaction, so "at" differs by a moment)
CREATE TEMP TABLE req AS SELECT '{"operation_id": "S1-0001", "customer": "+79120000001", "store": "S1",
    "redeem": 50, "lines": [{"sku": "A", "qty": 2}, {"sku": "B", "qty": 1}]}'::jsonb AS req;
CREATE TEMP TABLE calculated AS SELECT loyalty.calculate(req - 'operation_id') AS r FROM req;
CREATE TEMP TABLE purchased AS SELECT loyalty.purchase(req) AS r FROM req;
SELECT (p.r - 'operation_id' - 'at') = (c.r - 'at') AS same_as_calculate, p.r ->> 'operation_id' AS operation_id
  FROM purchased p, calculated c;
SELECT r -> 'totals' AS totals, r -> 'redeem' AS redeem FROM purchased;

-- the facts
SELECT operation_id, customer_id, store, channel, amount, discount, redeemed, total,
       points_earned, points_spent, lines, promotions, refunded
  FROM loyalty.purchase;
SELECT operation_id, line_index, sku, qty, price, amount, discount, redeemed, total, promotions
  FROM loyalty.purchase_line ORDER BY line_index;
SELECT * FROM loyalty.purchase_line_points ORDER BY line_index, account;
-- the ledger: 100 granted, 50 spent, 32 earned (10% of the 329.86 paid in money)
SELECT account, available, pending FROM loyalty.balance('id:1');
SELECT count(*) AS problems FROM loyalty.verify_ledger();

-- the same request again: the stored response, nothing new
SELECT loyalty.purchase(req) -> 'totals' AS replayed FROM req;
SELECT count(*) AS purchases FROM loyalty.purchase;
-- the same operation_id with another request: LY003
SELECT pg_temp.err($$SELECT loyalty.purchase('{"operation_id": "S1-0001", "lines": [{"sku": "B", "qty": 1}]}')$$);
-- a purchase needs an operation_id
SELECT pg_temp.err($$SELECT loyalty.purchase('{"lines": [{"sku": "B", "qty": 1}]}')$$);

-- more points than may be spent: LY004 and nothing changes ("max" never fails)
SELECT pg_temp.err($$SELECT loyalty.purchase('{"operation_id": "S1-0002", "customer": 1,
    "redeem": 500, "lines": [{"sku": "B", "qty": 1}]}')$$);
SELECT count(*) AS operations FROM loyalty.operation WHERE operation_id = 'S1-0002';
SELECT loyalty.purchase('{"operation_id": "S1-0003", "customer": 1,
                          "redeem": "max", "lines": [{"sku": "B", "qty": 1}]}') -> 'redeem' AS redeem;
-- an anonymous check cannot spend points
SELECT pg_temp.err($$SELECT loyalty.purchase('{"operation_id": "S1-0004", "redeem": 1, "lines": [{"sku": "B", "qty": 1}]}')$$);
-- an anonymous purchase
SELECT loyalty.purchase('{"operation_id": "S1-0005", "store": "S1", "lines": [{"sku": "A", "qty": 1}]}') -> 'customer' AS customer;
-- the operation row is written once, with its customer and response (no
-- update); no advisory lock of class 19545 holds its id (0.8 held one until
-- the transaction ended): a retry sent meanwhile waits on the customer's row
BEGIN;
CREATE TEMP TABLE op_stats AS
    SELECT n_tup_ins, n_tup_upd FROM pg_stat_xact_user_tables WHERE relid = 'loyalty.operation'::regclass;
SELECT loyalty.purchase('{"operation_id": "S1-0006", "customer": 1, "lines": [{"sku": "B", "qty": 1}]}') -> 'totals' ->> 'total' AS total;
SELECT x.n_tup_ins - s.n_tup_ins AS operation_rows_inserted, x.n_tup_upd - s.n_tup_upd AS operation_rows_updated
  FROM pg_stat_xact_user_tables x, op_stats s WHERE x.relid = 'loyalty.operation'::regclass;
SELECT customer_id, response ->> 'operation_id' AS response_of FROM loyalty.operation WHERE operation_id = 'S1-0006';
SELECT count(*) AS operation_locks FROM pg_locks
 WHERE locktype = 'advisory' AND objsubid = 19545 AND pid = pg_backend_pid() AND granted;
COMMIT;
SELECT count(*) AS operation_locks_after FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 19545;
SELECT operation_id, customer_id, total FROM loyalty.purchase ORDER BY operation_id;

-- usage limits: the promotion applies to its first two purchases only
INSERT INTO loyalty.promotion (code, name, mechanic, rule, usage_limit) VALUES
    ('FIRST2', 'First two checks: 10.00 off', 'amount_off',
     '{"products": {"skus": ["B"]}, "amount": 10, "per": "line"}', 2);
SELECT n, loyalty.purchase(jsonb_build_object('operation_id', 'LIM-' || n,
           'lines', '[{"sku": "B", "qty": 1}]'::jsonb)) -> 'totals' ->> 'discount' AS discount
  FROM generate_series(1, 3) AS n;
SELECT * FROM loyalty.promotion_usage;
-- calculate sees the limit too
SELECT loyalty.calculate('{"lines": [{"sku": "B", "qty": 1}]}') -> 'totals' ->> 'discount' AS discount;
-- per customer: once per customer, identified customers only
INSERT INTO loyalty.promotion (code, name, mechanic, rule, per_customer_limit) VALUES
    ('ONCE', 'Once per customer: 5.00 off', 'amount_off',
     '{"products": {"skus": ["B"]}, "amount": 5, "per": "line"}', 1);
SELECT loyalty.register('+79120000002') AS boris;
SELECT n, loyalty.purchase(jsonb_build_object('operation_id', 'ONCE-' || n, 'customer', 2,
           'lines', '[{"sku": "B", "qty": 1}]'::jsonb)) -> 'promotions' AS promotions
  FROM generate_series(1, 2) AS n;
SELECT * FROM loyalty.promotion_customer_usage;
-- the counters follow a promotion's rename, and go with its deletion
UPDATE loyalty.promotion SET code = 'ONCE-RENAMED' WHERE code = 'ONCE';
SELECT * FROM loyalty.promotion_customer_usage;
SELECT loyalty.purchase(jsonb_build_object('operation_id', 'ONCE-3', 'customer', 2,
           'lines', '[{"sku": "B", "qty": 1}]'::jsonb)) -> 'promotions' AS still_used_up;
UPDATE loyalty.promotion SET code = 'ONCE' WHERE code = 'ONCE-RENAMED';
BEGIN;
DELETE FROM loyalty.promotion WHERE code = 'ONCE';
SELECT count(*) AS counters_left FROM loyalty.promotion_customer_usage WHERE promotion = 'ONCE';
ROLLBACK;

--
-- orders_budget: issue 17/18, an online order's hold that takes money from
-- a campaign budget (promotion.budget) gives it back when the order is
-- cancelled or expires, and its capture does not take it twice (the hold's
-- claim is released, the purchase claims under the capture's id).
--
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS loyalty CASCADE;
CREATE EXTENSION loyalty;
RESET client_min_messages;
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';
SET loyalty.test_now = '2026-12-01T12:00:00+00:00';

CREATE FUNCTION pg_temp.budget()
RETURNS TABLE (given numeric, claims text)
LANGUAGE sql AS $$
    SELECT (SELECT given FROM loyalty.promotion_usage WHERE promotion = 'B20'),
           (SELECT coalesce(string_agg(operation_id || ':' || given, ', ' ORDER BY operation_id), '-')
              FROM loyalty.promotion_budget_claim)
$$;

INSERT INTO loyalty.category (code, parent, name) VALUES ('all', NULL, 'Everything');
INSERT INTO loyalty.product (sku, name, category, price) VALUES ('A', 'Serum', 'all', 500.00);
INSERT INTO loyalty.account_type (code, name) VALUES ('main', 'Bonus points');
INSERT INTO loyalty.promotion (code, name, mechanic, rule, budget) VALUES
    ('B20', '20% while 300.00 last', 'percent_off', '{"products": {"all": true}, "percent": 20}', 300);
SELECT loyalty.register('+79120000001') AS anna;

-- a hold of one A takes 20% of 500.00 = 100.00 from the budget
SELECT loyalty.order_hold('{"operation_id": "H-1", "order_id": "W-1", "customer": "id:1", "channel": "web", "lines": [{"sku": "A", "qty": 1}]}') -> 'totals' ->> 'discount' AS held_discount;
SELECT * FROM pg_temp.budget();
-- cancelled: the 100.00 come back, the claim is gone
SELECT loyalty.order_cancel('{"operation_id": "C-1", "order_id": "W-1"}') ->> 'state' AS cancelled;
SELECT * FROM pg_temp.budget();

-- a hold, then its capture: 100.00 taken once, under the capture's id
SELECT loyalty.order_hold('{"operation_id": "H-2", "order_id": "W-2", "customer": "id:1", "channel": "web", "lines": [{"sku": "A", "qty": 1}]}') -> 'totals' ->> 'discount' AS held_discount;
SELECT * FROM pg_temp.budget();
SELECT loyalty.order_capture('{"operation_id": "K-2", "order_id": "W-2"}') -> 'totals' ->> 'discount' AS captured_discount;
SELECT * FROM pg_temp.budget();

-- a hold of two A (200.00: exactly what is left), expired by maintenance
-- after the hold time (72 hours): the 200.00 come back
SELECT loyalty.order_hold('{"operation_id": "H-3", "order_id": "W-3", "customer": "id:1", "channel": "web", "lines": [{"sku": "A", "qty": 2}]}') -> 'totals' ->> 'discount' AS held_discount;
SELECT * FROM pg_temp.budget();
-- while it is held nothing is left for a check
SELECT loyalty.calculate('{"lines": [{"sku": "A", "qty": 1}]}') -> 'totals' ->> 'discount' AS while_held;
SELECT loyalty.expire_orders('2026-12-05T00:00:00Z', 100) AS expired;
SELECT * FROM pg_temp.budget();
SELECT loyalty.calculate('{"lines": [{"sku": "A", "qty": 1}]}') -> 'totals' ->> 'discount' AS after_expiry;

-- the full refund of the captured purchase gives its 100.00 back
SELECT loyalty.refund('{"operation_id": "R-2", "purchase": "K-2", "lines": [{"index": 0, "qty": 1}]}') IS NOT NULL AS refunded;
SELECT * FROM pg_temp.budget();

-- A capture takes from a budget no more than its hold took (a hold capped
-- by a nearly spent budget stays capped when another order's release
-- refills it).  A fresh budget of 150.00 makes the numbers plain.
UPDATE loyalty.promotion SET budget = 150 WHERE code = 'B20';
UPDATE loyalty.promotion_usage SET given = 0 WHERE promotion = 'B20';
-- W-4 holds one A: 20% of 500.00 = 100.00 taken, 50.00 left
SELECT loyalty.order_hold('{"operation_id": "H-4", "order_id": "W-4", "customer": "id:1", "channel": "web", "lines": [{"sku": "A", "qty": 1}]}') -> 'totals' ->> 'discount' AS held_discount;
-- W-5 holds one A: only 50.00 left, so its discount is capped at 50.00
SELECT loyalty.order_hold('{"operation_id": "H-5", "order_id": "W-5", "customer": "id:1", "channel": "web", "lines": [{"sku": "A", "qty": 1}]}') -> 'totals' ->> 'discount' AS held_discount_capped;
SELECT * FROM pg_temp.budget();
-- W-4 is cancelled: 100.00 back, 100.00 left in the budget
SELECT loyalty.order_cancel('{"operation_id": "C-4", "order_id": "W-4"}') ->> 'state' AS cancelled;
-- W-5's capture prices what was held: 50.00 off (total 450.00), not the
-- 100.00 the budget would now allow (which failed with LY007 before)
SELECT loyalty.order_capture('{"operation_id": "K-5", "order_id": "W-5"}') -> 'totals' ->> 'total' AS captured_total;
SELECT * FROM pg_temp.budget();
SELECT count(*) AS ledger_problems FROM loyalty.verify_ledger();

--
-- check_refund: refunds (SPEC section 7): proportional to the refunded
-- quantity, the last refund takes the remainder so a full refund returns
-- exactly; earned points reversed, spent points returned; idempotent;
-- LY002 for an unknown purchase, LY005 beyond what is left.
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

INSERT INTO loyalty.category (code, parent, name) VALUES ('all', NULL, 'Everything');
INSERT INTO loyalty.product (sku, name, category, price) VALUES
    ('A', 'Cream', 'all', 100.00), ('B', 'Soap', 'all', 33.33);
INSERT INTO loyalty.account_type (code, name, redeem_share, lifetime) VALUES ('main', 'Bonus points', 1, '1 year');
INSERT INTO loyalty.tier (code, name, rank, threshold, accrual_percent) VALUES ('base', 'Base', 1, 0, 10);
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
    ('CHECK10', '10.00 off the check', 'check_discount', '{"steps": [{"min_total": 0, "amount": 10}]}');
SELECT loyalty.register('+79120000001') AS anna;
SELECT loyalty.adjust('{"operation_id": "welcome-1", "customer": "id:1", "account": "main", "points": 20, "reason": "welcome"}') ->> 'points' AS granted;

-- three soaps and a cream, 20 points spent, 18 earned
SELECT r -> 'totals' AS totals
  FROM loyalty.purchase('{"operation_id": "P-1", "customer": 1, "redeem": 20,
                          "lines": [{"sku": "B", "qty": 3}, {"sku": "A", "qty": 1}]}') r;
SELECT line_index, sku, qty, total FROM loyalty.purchase_line ORDER BY line_index;
SELECT line_index, account, earned, spent FROM loyalty.purchase_line_points ORDER BY line_index;
SELECT available FROM loyalty.balance('id:1') WHERE account = 'main';

-- one soap, then another: proportional amounts
SELECT r -> 'lines' AS lines, r -> 'totals' AS totals, r -> 'points' AS points, r -> 'full' AS full
  FROM loyalty.refund('{"operation_id": "R-1", "purchase": "P-1", "lines": [{"index": 0, "qty": 1}]}') r;
SELECT r -> 'lines' AS lines, r -> 'points' AS points
  FROM loyalty.refund('{"operation_id": "R-2", "purchase": "P-1", "lines": [{"index": 0, "qty": 1}]}') r;
-- a replay changes nothing
SELECT r -> 'totals' AS totals
  FROM loyalty.refund('{"operation_id": "R-1", "purchase": "P-1", "lines": [{"index": 0, "qty": 1}]}') r;
-- more than is left: LY005; an unknown line: 22023; an unknown purchase: LY002
SELECT pg_temp.err($$SELECT loyalty.refund('{"operation_id": "R-3", "purchase": "P-1", "lines": [{"index": 0, "qty": 2}]}')$$);
SELECT pg_temp.err($$SELECT loyalty.refund('{"operation_id": "R-3", "purchase": "P-1", "lines": [{"index": 7, "qty": 1}]}')$$);
SELECT pg_temp.err($$SELECT loyalty.refund('{"operation_id": "R-3", "purchase": "NOPE"}')$$);
-- the rest: no lines means everything that is left
SELECT r -> 'lines' AS lines, r -> 'totals' AS totals, r -> 'points' AS points, r -> 'full' AS full
  FROM loyalty.refund('{"operation_id": "R-3", "purchase": "P-1"}') r;
-- the refunds add up to the purchase exactly, points included
SELECT p.total, p.refunded, (SELECT sum(amount) FROM loyalty.refund r WHERE r.purchase = p.operation_id) AS sum_of_refunds
  FROM loyalty.purchase p;
SELECT line_index, qty, refunded_qty, total, refunded_total FROM loyalty.purchase_line ORDER BY line_index;
SELECT line_index, earned, earned_refunded, spent, spent_refunded FROM loyalty.purchase_line_points ORDER BY line_index;
SELECT available FROM loyalty.balance('id:1') WHERE account = 'main';
SELECT count(*) AS problems FROM loyalty.verify_ledger();
-- nothing is left
SELECT pg_temp.err($$SELECT loyalty.refund('{"operation_id": "R-4", "purchase": "P-1"}')$$);

-- a refund that takes back points already spent leaves a debt, which the
-- next purchase's points pay first; that purchase's events keep their
-- order: the coupon it issues, then the points it earned
SELECT loyalty.register('+79120000002') AS boris;
SELECT r #>> '{totals,accrual,main}' AS earned
  FROM loyalty.purchase('{"operation_id": "D-1", "customer": 2, "lines": [{"sku": "A", "qty": 2}]}') r;
SELECT r #>> '{totals,redeemed}' AS redeemed
  FROM loyalty.purchase('{"operation_id": "D-2", "customer": 2, "redeem": "max", "lines": [{"sku": "A", "qty": 1}]}') r;
SELECT loyalty.refund('{"operation_id": "D-R", "purchase": "D-1"}') -> 'points' AS points;
SELECT available FROM loyalty.balance('id:2') WHERE account = 'main';
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
    ('BACK5', 'A 5% coupon for the next purchase', 'coupon_issue',
     '{"steps": [{"min_total": 1, "percent": 5}], "valid": "30 days"}');
SELECT max(id) AS before FROM loyalty.event \gset
SELECT r #>> '{totals,accrual,main}' AS earned
  FROM loyalty.purchase('{"operation_id": "D-3", "customer": 2, "lines": [{"sku": "A", "qty": 3}]}') r;
SELECT kind, payload ->> 'points' AS points, payload ->> 'percent' AS percent FROM loyalty.event
 WHERE customer_id = 2 AND id > :before ORDER BY id;
SELECT available FROM loyalty.balance('id:2') WHERE account = 'main';
SELECT count(*) AS problems FROM loyalty.verify_ledger();

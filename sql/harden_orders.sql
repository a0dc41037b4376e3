--
-- harden_orders: online orders (SPEC section 15, issue 17): order_hold
-- prices like calculate and holds points (on their lots), a single-use
-- coupon and a promotion's limited use so that no other check can take
-- them; order_cancel and the expiry in run_maintenance give everything
-- back; order_capture commits the held order exactly as purchase would
-- have committed it (same response), refundable with refund.  Every
-- number below is computed by hand in the comments.
--
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS loyalty CASCADE;
CREATE EXTENSION loyalty;
RESET client_min_messages;
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';
SET loyalty.test_now = '2026-12-01T12:00:00+00:00';

-- the state an order touches: anna's points, the held entries, FIRST1's
-- uses, the coupon
CREATE FUNCTION pg_temp.state()
RETURNS TABLE (available numeric, held numeric, first1_uses bigint, coupon text, orders text)
LANGUAGE sql AS $$
    SELECT (SELECT available FROM loyalty.balance('id:1', '2026-12-01T12:00:00Z') WHERE account = 'main'),
           (SELECT held FROM loyalty.balance('id:1', '2026-12-01T12:00:00Z') WHERE account = 'main'),
           (SELECT coalesce(sum(uses), 0)::bigint FROM loyalty.promotion_usage WHERE promotion = 'FIRST1'),
           (SELECT status || '/' || uses FROM loyalty.coupon WHERE promotion = 'WELCOME'),
           (SELECT string_agg(order_id || ':' || state, ', ' ORDER BY order_id) FROM loyalty."order")
$$;
-- what a check got
CREATE FUNCTION pg_temp.got(r jsonb)
RETURNS TABLE (amount text, discount text, redeemed text, total text, accrual text, coupons text, order_state text)
LANGUAGE sql AS $$
    SELECT r -> 'totals' ->> 'amount', r -> 'totals' ->> 'discount', r -> 'totals' ->> 'redeemed',
           r -> 'totals' ->> 'total', r -> 'totals' ->> 'accrual',
           (SELECT coalesce(string_agg(c ->> 'status', ','), '-') FROM jsonb_array_elements(r -> 'coupons') c),
           r ->> 'state'
$$;

INSERT INTO loyalty.category (code, parent, name) VALUES ('all', NULL, 'Everything');
INSERT INTO loyalty.product (sku, name, category, price) VALUES
    ('A', 'Cream', 'all', 100.00), ('B', 'Soap', 'all', 50.00);
INSERT INTO loyalty.account_type (code, name, redeem_share, min_check, lifetime, activation_delay, redeem_order) VALUES
    ('main', 'Bonus points', 0.5, 0, '1 year', '0', 100);
INSERT INTO loyalty.tier (code, name, rank, threshold, accrual_percent) VALUES
    ('standard', 'Standard', 1, 0, 5);
INSERT INTO loyalty.promotion (code, name, mechanic, rule, usage_limit, requires_coupon) VALUES
    ('FIRST1', 'The first buyer: 10.00 off a soap', 'amount_off',
     '{"products": {"skus": ["B"]}, "amount": 10, "per": "line"}', 1, false),
    ('WELCOME', 'Welcome code: 20.00 off a cream', 'amount_off',
     '{"products": {"skus": ["A"]}, "amount": 20, "per": "line"}', NULL, true);
SELECT loyalty.register('+79120000001') AS anna;
SELECT loyalty.register('+79120000002') AS boris;
SELECT code AS welcome FROM loyalty.issue_coupons('WELCOME', 1) AS code \gset
UPDATE loyalty.coupon SET valid_from = '2026-01-01' WHERE code = :'welcome';
-- anna: 100 points in two lots, 30 expiring first
SELECT loyalty.adjust('{"operation_id": "g1", "customer": "id:1", "account": "main", "points": 30, "expires_at": "2026-12-20T00:00:00Z", "reason": "gift"}') ->> 'points' AS g1,
       loyalty.adjust('{"operation_id": "g2", "customer": "id:1", "account": "main", "points": 70, "reason": "gift"}') ->> 'points' AS g2;

\set VERBOSITY sqlstate
\set order '{"operation_id": "H-1", "order_id": "W-1", "customer": "id:1", "channel": "web", "lines": [{"sku": "A", "qty": 1}, {"sku": "B", "qty": 1}], "redeem": 40}'

-- ---------------------------------------------------------------------------
-- hold: A 100 - 20 (WELCOME) = 80, B 50 - 10 (FIRST1) = 40; 120 before
-- points; 40 points redeemed (at most 50% of each line: 60) -> 80.00
-- ---------------------------------------------------------------------------
-- LY007: the customer saw 85.00; nothing is held
SELECT loyalty.order_hold((:'order')::jsonb || jsonb_build_object('coupons', jsonb_build_array(:'welcome'), 'expect_total', 85));
SELECT * FROM pg_temp.state();
SELECT * FROM pg_temp.got(loyalty.order_hold((:'order')::jsonb || jsonb_build_object('coupons', jsonb_build_array(:'welcome'), 'expect_total', 80)));
-- held: 100 - 40 = 60 available, 40 held (30 from the lot expiring first,
-- then 10), FIRST1 used once, the coupon used
SELECT * FROM pg_temp.state();
SELECT lot_id, points FROM loyalty.ledger_entry WHERE kind = 'hold' ORDER BY lot_id;
SELECT state, hold_until FROM loyalty."order" WHERE order_id = 'W-1';
-- the same call again: the stored response, nothing new
SELECT * FROM pg_temp.got(loyalty.order_hold((:'order')::jsonb || jsonb_build_object('coupons', jsonb_build_array(:'welcome'), 'expect_total', 80)));
SELECT * FROM pg_temp.state();
-- no other check can take what is held: boris does not get FIRST1 (its
-- one use is held), the coupon is rejected, anna cannot spend 61 points
SELECT * FROM pg_temp.got(loyalty.calculate(jsonb_build_object('customer', 2,
    'lines', '[{"sku": "A", "qty": 1}, {"sku": "B", "qty": 1}]'::jsonb, 'coupons', jsonb_build_array(:'welcome'))));
SELECT loyalty.purchase('{"operation_id": "P-0", "customer": "id:1", "lines": [{"sku": "A", "qty": 2}], "redeem": 61}');
SELECT * FROM loyalty.verify_ledger();

-- ---------------------------------------------------------------------------
-- cancel: everything back where it came from
-- ---------------------------------------------------------------------------
SELECT loyalty.order_cancel('{"operation_id": "C-1", "order_id": "W-1"}');
SELECT * FROM pg_temp.state();
-- the points are back on their own lots (30 on the first, 70 on the second)
SELECT id, remaining, expires_at FROM loyalty.lot WHERE customer_id = 1 ORDER BY id;
-- the same cancel again: the stored response; another cancel or a capture: LY008
SELECT loyalty.order_cancel('{"operation_id": "C-1", "order_id": "W-1"}');
SELECT loyalty.order_cancel('{"operation_id": "C-2", "order_id": "W-1"}');
SELECT loyalty.order_capture('{"operation_id": "K-1", "order_id": "W-1"}');
-- a held again of a cancelled order: LY008
SELECT loyalty.order_hold((:'order')::jsonb || '{"operation_id": "H-1b"}');
-- unknown order: LY002; malformed: 22023
SELECT loyalty.order_cancel('{"operation_id": "C-3", "order_id": "W-404"}');
SELECT loyalty.order_cancel('{"operation_id": "C-3"}');
SELECT loyalty.order_cancel('{"operation_id": "C-3", "order_id": "W-1", "why": 1}');
SELECT loyalty.order_hold('{"operation_id": "H-9", "order_id": 7, "customer": "id:1", "lines": [{"sku": "A", "qty": 1}]}');
SELECT loyalty.order_hold('{"operation_id": "H-9", "order_id": "W-9", "hold_until": "2026-11-01T00:00:00Z", "customer": "id:1", "lines": [{"sku": "A", "qty": 1}]}');
SELECT * FROM pg_temp.state();

-- ---------------------------------------------------------------------------
-- capture: exactly the purchase of the same request at hold time.  The
-- purchase itself, rolled back, gives the response to compare with.
-- ---------------------------------------------------------------------------
\set order2 '{"operation_id": "H-2", "order_id": "W-2", "customer": "id:1", "channel": "web", "lines": [{"sku": "A", "qty": 1}, {"sku": "B", "qty": 1}], "redeem": 40}'
BEGIN;
SELECT loyalty.purchase((:'order2')::jsonb - 'order_id' || jsonb_build_object('operation_id', 'K-2',
    'at', '2026-12-01T12:00:00+00:00', 'coupons', jsonb_build_array(:'welcome')))::text AS direct \gset
ROLLBACK;
SELECT * FROM pg_temp.got(loyalty.order_hold((:'order2')::jsonb || jsonb_build_object('coupons', jsonb_build_array(:'welcome'))));
SELECT * FROM pg_temp.state();
-- captured: 40 points spent, 5% of 80.00 = 4 earned: 100 - 40 + 4 = 64;
-- the hold released; FIRST1 and the coupon used by the purchase
SELECT loyalty.order_capture('{"operation_id": "K-2", "order_id": "W-2"}') = (:'direct')::jsonb AS same_as_purchase;
SELECT * FROM pg_temp.state();
SELECT operation_id, customer_id, total FROM loyalty.purchase ORDER BY operation_id;
-- the same capture again: the same response; a cancel now: LY008
SELECT loyalty.order_capture('{"operation_id": "K-2", "order_id": "W-2"}') = (:'direct')::jsonb AS replay;
SELECT loyalty.order_capture('{"operation_id": "K-2", "order_id": "W-2", "store": "X"}');
SELECT loyalty.order_cancel('{"operation_id": "C-4", "order_id": "W-2"}');
-- refunded like any purchase: back to 100 points, FIRST1 and the coupon free
SELECT loyalty.refund('{"operation_id": "R-2", "purchase": "K-2"}') ->> 'full' AS full_refund;
SELECT * FROM pg_temp.state();
SELECT * FROM loyalty.verify_ledger();

-- ---------------------------------------------------------------------------
-- a held order held again (release and hold in one step), then expired by
-- run_maintenance past hold_until
-- ---------------------------------------------------------------------------
SELECT * FROM pg_temp.got(loyalty.order_hold('{"operation_id": "H-3", "order_id": "W-3", "customer": "id:1", "lines": [{"sku": "A", "qty": 1}, {"sku": "B", "qty": 1}], "redeem": 40, "hold_until": "2026-12-02T00:00:00Z"}'));
SELECT * FROM pg_temp.state();
-- the customer drops the soap: B's FIRST1 use and 30 of the points come back
-- (A 100 at most 50 redeemed; 10 asked)
SELECT * FROM pg_temp.got(loyalty.order_hold('{"operation_id": "H-3b", "order_id": "W-3", "customer": "id:1", "lines": [{"sku": "A", "qty": 1}], "redeem": 10, "hold_until": "2026-12-02T00:00:00Z"}'));
SELECT * FROM pg_temp.state();
-- and takes the soap back: FIRST1's last use is its own again (released and
-- claimed in one step), 40 points held
SELECT * FROM pg_temp.got(loyalty.order_hold('{"operation_id": "H-3c", "order_id": "W-3", "customer": "id:1", "lines": [{"sku": "A", "qty": 1}, {"sku": "B", "qty": 1}], "redeem": 40, "hold_until": "2026-12-02T00:00:00Z"}'));
SELECT * FROM pg_temp.state();
-- not yet due: nothing; past hold_until: expired, everything back
SELECT loyalty.run_maintenance('2026-12-01T18:00:00Z') ? 'expired_orders' AS expired_some;
SELECT loyalty.run_maintenance('2026-12-02T00:00:00Z') -> 'expired_orders' AS expired_orders;
SELECT * FROM pg_temp.state();
SELECT loyalty.order_capture('{"operation_id": "K-3", "order_id": "W-3"}');
SELECT * FROM loyalty.verify_ledger();
-- history shows the holds and the releases
SELECT kind, points, operation_id, ref_operation_id, lot_expires_at FROM loyalty.history('id:1')
 WHERE kind IN ('hold', 'release') ORDER BY id;

-- ---------------------------------------------------------------------------
-- partial capture: held on the web, one of the two creams picked up in a
-- store, the rest (the other cream, the soap) released.  The captured part
-- keeps the held prices exactly: the held purchase is committed and the
-- rest refunded at once, as refund does it (proportional, exact).
-- ---------------------------------------------------------------------------
SELECT r -> 'totals' AS held_totals, r -> 'redeem' -> 'applied' AS held_points
  FROM loyalty.order_hold('{"operation_id": "H-4", "order_id": "W-4", "customer": "id:1", "channel": "web", "lines": [{"sku": "A", "qty": 2}, {"sku": "B", "qty": 1}], "redeem": 40}') r;
SELECT l ->> 'index' AS i, l ->> 'qty' AS qty, l ->> 'total' AS total, l ->> 'redeemed' AS redeemed, l -> 'accrual' AS accrual
  FROM loyalty."order" o, jsonb_array_elements(o.response -> 'lines') l WHERE o.order_id = 'W-4';
SELECT * FROM pg_temp.state();
-- malformed lines: 22023 naming the field; nothing changes
SELECT loyalty.order_capture('{"operation_id": "K-4", "order_id": "W-4", "lines": [{"index": 2, "qty": 1}]}');
SELECT loyalty.order_capture('{"operation_id": "K-4", "order_id": "W-4", "lines": [{"index": 0, "qty": 3}]}');
SELECT loyalty.order_capture('{"operation_id": "K-4", "order_id": "W-4", "lines": [{"index": 0}]}');
SELECT * FROM pg_temp.state();
SELECT r -> 'totals' AS purchase_totals, r -> 'uncaptured' -> 'totals' AS uncaptured,
       r -> 'uncaptured' -> 'points' AS uncaptured_points
  FROM loyalty.order_capture('{"operation_id": "K-4", "order_id": "W-4", "lines": [{"index": 0, "qty": 1}]}') r;
SELECT * FROM pg_temp.state();
-- the purchase stands for what was captured
SELECT p.operation_id, p.total, r.operation_id AS refund, r.amount AS refunded
  FROM loyalty.purchase p LEFT JOIN loyalty.refund r ON r.purchase = p.operation_id
 WHERE p.operation_id = 'K-4';
-- the same capture again: the stored response
SELECT loyalty.order_capture('{"operation_id": "K-4", "order_id": "W-4", "lines": [{"index": 0, "qty": 1}]}') -> 'uncaptured' ->> 'operation_id' AS replay;
SELECT * FROM loyalty.verify_ledger();

-- privileges (SPEC section 13): the cashier runs the order API, the
-- analyst never reads the stored requests (they name the customer)
SELECT f, has_function_privilege('loyalty_cashier', f, 'EXECUTE') AS cashier,
       has_function_privilege('loyalty_analyst', f, 'EXECUTE') AS analyst,
       has_function_privilege('loyalty_marketer', f, 'EXECUTE') AS marketer
  FROM unnest(ARRAY['loyalty.order_hold(jsonb)', 'loyalty.order_capture(jsonb)',
                    'loyalty.order_cancel(jsonb)', 'loyalty.expire_orders(timestamptz, integer)']) f;
SELECT r, has_table_privilege(r, 'loyalty."order"', 'SELECT') AS reads_orders
  FROM unnest(ARRAY['loyalty_cashier', 'loyalty_analyst', 'loyalty_marketer', 'loyalty_admin']) r;

-- ---------------------------------------------------------------------------
-- a lot that expires during the hold: the held points were the customer's
-- at checkout, so the capture still spends them (judged at the hold's
-- time); a cancel would return them to the lot, already expired
-- ---------------------------------------------------------------------------
SELECT id, remaining, expires_at FROM loyalty.lot WHERE customer_id = 1 AND remaining > 0 ORDER BY id;
SELECT r -> 'redeem' -> 'applied' AS held_points
  FROM loyalty.order_hold('{"operation_id": "H-5", "order_id": "W-5", "customer": "id:1", "lines": [{"sku": "A", "qty": 1}], "redeem": 50, "hold_until": "2026-12-31T00:00:00Z"}') r;
SELECT lot_id, points FROM loyalty.ledger_entry WHERE operation_id = 'H-5' ORDER BY lot_id;
SET loyalty.test_now = '2026-12-21T12:00:00+00:00';
SELECT r -> 'totals' ->> 'redeemed' AS redeemed, r -> 'totals' ->> 'total' AS total
  FROM loyalty.order_capture('{"operation_id": "K-5", "order_id": "W-5"}') r;
SELECT lot_id, kind, points FROM loyalty.ledger_entry WHERE operation_id IN ('K-5', '~order-release:K-5') ORDER BY id;
SELECT * FROM loyalty.verify_ledger();
RESET loyalty.test_now;

-- test/pgtap/order_invariants.sql: online orders (SPEC §15, issue 17) keep
-- the ledger, the lots, the usage counts and the coupons consistent whatever
-- mix of calls reaches them.  One seeded random scenario of 600 steps over
-- 12 customers and two weeks: holds (some re-holds of a held order), whole
-- and partial captures, cancels, expiries in batches, POS purchases that
-- compete for the same points and limited uses, and point expiry (lots
-- expire while orders hold points on them).  Afterwards:
--   - every lot's remaining equals its entries, and verify_ledger() is empty;
--   - per customer and account: free points (lots) + held points (balance)
--     equal every entry that is not a hold or a release;
--   - the points held are exactly the current holds of the orders still
--     held: every other hold was released to the point;
--   - no order is in a state its rows contradict (captured: its purchase
--     exists; cancelled/expired: no purchase, and nothing left held;
--     held: not closed);
--   - usage counts equal the committed uses plus those held orders claim,
--     globally and per customer; no promotion used past its limit;
--   - each coupon's use count equals its uses minus what was given back.
BEGIN;
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS loyalty CASCADE;
CREATE EXTENSION loyalty;
RESET client_min_messages;
SET timezone = 'UTC';
SELECT setseed(0.17);
SET loyalty.test_now = '2026-12-01T12:00:00+00:00';

SELECT plan(19);

INSERT INTO loyalty.category (code, parent, name) VALUES ('all', NULL, 'Everything');
INSERT INTO loyalty.product (sku, name, category, price) VALUES
    ('A', 'Cream', 'all', 100.00), ('B', 'Soap', 'all', 50.00), ('C', 'Brush', 'all', 30.00);
INSERT INTO loyalty.account_type (code, name, redeem_share, min_check, lifetime, activation_delay, redeem_order) VALUES
    ('main', 'Bonus points', 0.5, 0, '1 year', '0', 100);
INSERT INTO loyalty.tier (code, name, rank, threshold, accrual_percent) VALUES
    ('standard', 'Standard', 1, 0, 5);
INSERT INTO loyalty.promotion (code, name, mechanic, rule, usage_limit, per_customer_limit, requires_coupon) VALUES
    ('LIM', '10.00 off a soap, 40 uses', 'amount_off',
     '{"products": {"skus": ["B"]}, "amount": 10, "per": "line"}', 40, NULL, false),
    ('PCL', '5 % off a brush, twice per customer', 'percent_off',
     '{"products": {"skus": ["C"]}, "percent": 5}', NULL, 2, false),
    ('WELCOME', 'Welcome code: 20.00 off a cream', 'amount_off',
     '{"products": {"skus": ["A"]}, "amount": 20, "per": "line"}', NULL, NULL, true);
SELECT count(loyalty.register('+7912' || lpad(i::text, 7, '0'))) FROM generate_series(1, 12) AS i;
-- 60 single-use codes, valid from before the scenario
CREATE TEMP TABLE codes AS SELECT code FROM loyalty.issue_coupons('WELCOME', 60) AS code;
UPDATE loyalty.coupon SET valid_from = '2026-01-01' WHERE promotion = 'WELCOME';
-- each customer: four lots, one expiring within the two weeks
SELECT count(loyalty.adjust(jsonb_build_object(
           'operation_id', 'g' || c || '-' || k, 'customer', 'id:' || c, 'account', 'main',
           'points', 20 + (c * 7 + k * 13) % 60, 'reason', 'gift',
           'expires_at', timestamptz '2026-12-02' + ((c + k * 5) % 30) * interval '1 day')))
  FROM generate_series(1, 12) c, generate_series(1, 4) k;

CREATE TEMP TABLE tally (what text, n int);
DO $$
DECLARE
    now_ts timestamptz := '2026-12-01T12:00:00+00:00';
    r float8;
    o record;
    n_orders int := 0;
    lines jsonb;
    req jsonb;
    cnt jsonb := '{}';
    what text;
BEGIN
    FOR step IN 1..600 LOOP
        r := random();
        what := NULL;
        BEGIN
            IF r < 0.40 THEN
                -- a new order (or, one time in eight, a re-hold of a held one,
                -- with or without a coupon, the order's own or another)
                SELECT order_id INTO o FROM loyalty."order"
                 WHERE state = 'held' ORDER BY random() LIMIT 1;
                lines := jsonb_build_array(
                    jsonb_build_object('sku', 'A', 'qty', 1 + floor(random() * 2)::int),
                    jsonb_build_object('sku', 'B', 'qty', 1 + floor(random() * 3)::int),
                    jsonb_build_object('sku', 'C', 'qty', 1 + floor(random() * 2)::int));
                req := jsonb_build_object(
                    'operation_id', 'H-' || step, 'channel', 'web',
                    'customer', 'id:' || (1 + floor(random() * 12)::int),
                    'lines', lines, 'redeem', floor(random() * 80)::int,
                    'hold_until', now_ts + (1 + floor(random() * 72)::int) * interval '1 hour');
                IF random() < 0.3 THEN
                    req := req || jsonb_build_object('coupons',
                        jsonb_build_array((SELECT code FROM codes ORDER BY random() LIMIT 1)));
                END IF;
                IF o.order_id IS NOT NULL AND step % 8 = 0 THEN
                    -- a re-hold keeps the order's customer
                    req := req || jsonb_build_object('order_id', o.order_id, 'customer',
                        (SELECT 'id:' || customer_id FROM loyalty."order" WHERE order_id = o.order_id));
                    what := 'rehold';
                ELSE
                    n_orders := n_orders + 1;
                    req := req || jsonb_build_object('order_id', 'W-' || n_orders);
                    what := 'hold';
                END IF;
                PERFORM loyalty.order_hold(req);
            ELSIF r < 0.55 THEN
                -- capture whole
                SELECT order_id INTO o FROM loyalty."order" WHERE state = 'held' ORDER BY random() LIMIT 1;
                IF o.order_id IS NOT NULL THEN
                    what := 'capture';
                    PERFORM loyalty.order_capture(jsonb_build_object('operation_id', 'K-' || step, 'order_id', o.order_id));
                END IF;
            ELSIF r < 0.68 THEN
                -- capture part: one or two lines, some units
                SELECT order_id INTO o FROM loyalty."order" WHERE state = 'held' ORDER BY random() LIMIT 1;
                IF o.order_id IS NOT NULL THEN
                    what := 'capture_part';
                    PERFORM loyalty.order_capture(jsonb_build_object('operation_id', 'K-' || step, 'order_id', o.order_id,
                        'lines', (SELECT jsonb_agg(jsonb_build_object('index', i, 'qty', 1))
                                    FROM generate_series(0, 2) i WHERE i = step % 3 OR random() < 0.4)));
                END IF;
            ELSIF r < 0.78 THEN
                SELECT order_id INTO o FROM loyalty."order" WHERE state = 'held' ORDER BY random() LIMIT 1;
                IF o.order_id IS NOT NULL THEN
                    what := 'cancel';
                    PERFORM loyalty.order_cancel(jsonb_build_object('operation_id', 'X-' || step, 'order_id', o.order_id));
                END IF;
            ELSIF r < 0.90 THEN
                -- a POS purchase competing for the points and LIM's uses
                what := 'purchase';
                PERFORM loyalty.purchase(jsonb_build_object(
                    'operation_id', 'P-' || step, 'customer', 'id:' || (1 + floor(random() * 12)::int),
                    'lines', jsonb_build_array(jsonb_build_object('sku', 'B', 'qty', 1),
                                               jsonb_build_object('sku', 'C', 'qty', 1)),
                    'redeem', floor(random() * 40)::int));
            ELSIF r < 0.95 THEN
                -- time passes: up to 9 hours, orders past hold_until expire in batches of 3
                now_ts := now_ts + (1 + floor(random() * 9)::int) * interval '1 hour';
                PERFORM set_config('loyalty.test_now', to_json(now_ts) #>> '{}', false);
                what := 'expire';
                PERFORM loyalty.expire_orders(now_ts, 3);
            ELSE
                -- lots due by now expire (some hold points of held orders)
                what := 'expire_points';
                PERFORM loyalty.expire_points(now_ts);
            END IF;
        EXCEPTION WHEN SQLSTATE 'LY004' OR SQLSTATE 'LY008' OR SQLSTATE 'LY003' OR SQLSTATE 'LY005' THEN
            what := what || '_refused';
        WHEN SQLSTATE 'LY007' THEN
            -- the configuration never changes here: a capture must always
            -- come out at the held prices (counted, asserted below)
            what := what || '_price_changed';
        END;
        IF what IS NOT NULL THEN
            cnt := jsonb_set(cnt, ARRAY[what], to_jsonb(coalesce((cnt ->> what)::int, 0) + 1));
        END IF;
    END LOOP;
    -- the rest of the orders fall due, some still left held
    now_ts := now_ts + interval '30 hours';
    PERFORM set_config('loyalty.test_now', to_json(now_ts) #>> '{}', false);
    PERFORM loyalty.expire_orders(now_ts, 2147483647);
    INSERT INTO tally SELECT key, value::int FROM jsonb_each_text(cnt);
END
$$;

-- the scenario did what it says (counts vary with the seed, not to zero)
SELECT ok((SELECT count(*) FROM tally WHERE what IN ('hold', 'rehold', 'capture', 'capture_part', 'cancel', 'purchase', 'expire')
             AND n > 0) = 7, 'every kind of call ran');
SELECT is((SELECT coalesce(sum(n), 0)::int FROM tally WHERE what LIKE '%_price_changed'), 0,
          'no capture was refused for a price change (nothing changed the configuration)');
SELECT ok((SELECT count(DISTINCT state) FROM loyalty."order") = 4
          OR (SELECT count(DISTINCT state) FROM loyalty."order" WHERE state <> 'held') = 3,
          'orders ended captured, cancelled and expired (and some held)');
-- (a partial capture commits the order whole and refunds the units not
-- captured at once, "<capture>/uncaptured")
SELECT ok((SELECT count(*) FROM loyalty."order" o
              JOIN loyalty.purchase p ON p.operation_id = o.final_operation_id
             WHERE o.capture_request ? 'lines' AND p.refunded > 0) > 0,
          'some captures took part of an order');

-- the ledger
SELECT is_empty('SELECT * FROM loyalty.verify_ledger()', 'verify_ledger() is empty');
SELECT is_empty($$
    SELECT l.id FROM loyalty.lot l LEFT JOIN loyalty.ledger_entry e ON e.lot_id = l.id
     GROUP BY l.id, l.remaining HAVING l.remaining <> coalesce(sum(e.points), 0)
    UNION ALL SELECT id FROM loyalty.lot WHERE remaining < 0 OR remaining > amount$$,
    'every lot''s remaining equals its entries, between 0 and its amount');
SELECT is_empty($$
    SELECT c.id, b.account
      FROM loyalty.customer c, loyalty.balance('id:' || c.id) b
     WHERE (SELECT coalesce(sum(remaining), 0) FROM loyalty.lot
             WHERE customer_id = c.id AND account = b.account) + b.held
        <> (SELECT coalesce(sum(points), 0) FROM loyalty.ledger_entry
             WHERE customer_id = c.id AND account = b.account AND kind NOT IN ('hold', 'release'))$$,
    'free points + held points = the ledger without holds and releases, per customer and account');
-- a hold operation's net: its hold entries plus the releases that name it
CREATE TEMP VIEW hold_net AS
    SELECT h.operation_id, h.customer_id,
           sum(h.points) + coalesce((SELECT sum(r.points) FROM loyalty.ledger_entry r
                                      WHERE r.kind = 'release' AND r.ref_operation_id = h.operation_id), 0) AS net
      FROM loyalty.ledger_entry h WHERE h.kind = 'hold' GROUP BY h.operation_id, h.customer_id;
SELECT is_empty($$
    SELECT operation_id FROM hold_net
     WHERE net <> 0 AND operation_id NOT IN (SELECT hold_operation_id FROM loyalty."order" WHERE state = 'held')
    UNION ALL
    SELECT h.operation_id FROM hold_net h JOIN loyalty."order" o ON o.hold_operation_id = h.operation_id
     WHERE o.state = 'held' AND EXISTS (SELECT 1 FROM loyalty.ledger_entry r
                                         WHERE r.kind = 'release' AND r.ref_operation_id = h.operation_id)$$,
    'only the current holds of held orders hold points, and nothing of them was released');
SELECT is((SELECT sum(held) FROM loyalty.customer c, loyalty.balance('id:' || c.id)),
          (SELECT coalesce(-sum(net), 0) FROM hold_net), 'the points balance() reports held are the holds not released');
SELECT cmp_ok((SELECT count(*) FROM loyalty.ledger_entry WHERE kind = 'release'), '>', 0::bigint,
              'some holds were released');

-- the orders' states
SELECT is_empty($$
    SELECT order_id, state FROM loyalty."order" o
     WHERE (state = 'captured') <> EXISTS (SELECT 1 FROM loyalty.purchase p WHERE p.operation_id = o.final_operation_id)
        OR (state = 'held') <> (closed_at IS NULL AND final_operation_id IS NULL)
        OR (state = 'captured') <> (captured_at IS NOT NULL)
        OR (state = 'held' AND hold_until <= current_setting('loyalty.test_now')::timestamptz)$$,
    'no order is in a state its rows contradict');

-- usage counts: committed purchases (captures are purchases) + held orders
SELECT is_empty($$
    SELECT p.code, u.uses,
           (SELECT count(*) FROM loyalty.purchase WHERE p.code = ANY (usage_counted))
         + (SELECT count(*) FROM loyalty."order" WHERE state = 'held' AND p.code = ANY (usage_counted))
      FROM loyalty.promotion p LEFT JOIN loyalty.promotion_usage u ON u.promotion = p.code
     WHERE p.usage_limit IS NOT NULL
       AND coalesce(u.uses, 0) <> (SELECT count(*) FROM loyalty.purchase WHERE p.code = ANY (usage_counted))
                                + (SELECT count(*) FROM loyalty."order" WHERE state = 'held' AND p.code = ANY (usage_counted))$$,
    'promotion_usage.uses = committed uses + uses held orders claim');
SELECT is_empty($$
    SELECT u.promotion, u.customer_id FROM loyalty.promotion_customer_usage u
     WHERE u.uses <> (SELECT count(*) FROM loyalty.purchase
                       WHERE customer_id = u.customer_id AND u.promotion = ANY (customer_usage_counted))
                   + (SELECT count(*) FROM loyalty."order"
                       WHERE state = 'held' AND customer_id = u.customer_id AND u.promotion = ANY (customer_usage_counted))
    UNION ALL
    SELECT 'PCL', p.customer_id FROM loyalty.purchase p
     WHERE 'PCL' = ANY (p.customer_usage_counted)
       AND NOT EXISTS (SELECT 1 FROM loyalty.promotion_customer_usage u
                        WHERE u.promotion = 'PCL' AND u.customer_id = p.customer_id)$$,
    'per-customer uses = committed + held, per customer');
SELECT cmp_ok((SELECT uses FROM loyalty.promotion_usage WHERE promotion = 'LIM'), '<=', 40::bigint,
              'LIM never used past its limit');
SELECT is_empty($$
    SELECT customer_id FROM loyalty.promotion_customer_usage WHERE promotion = 'PCL' AND uses > 2$$,
    'PCL never used past its per-customer limit');
SELECT cmp_ok((SELECT count(*) FROM loyalty.purchase WHERE 'LIM' = ANY (usage_counted)), '>', 0::bigint,
              'LIM was used by committed purchases');

-- coupons: uses = uses by purchases and holds - uses given back
SELECT is_empty($$
    SELECT c.code, c.uses, c.status FROM loyalty.coupon c
     WHERE c.uses <> (SELECT count(*) FILTER (WHERE o.kind IN ('purchase', 'order_hold', 'order_capture'))
                           - count(*) FILTER (WHERE o.kind NOT IN ('purchase', 'order_hold', 'order_capture'))
                        FROM loyalty.coupon_use u JOIN loyalty.operation o USING (operation_id)
                       WHERE u.code = c.code)
        OR (c.status = 'used') <> (c.uses >= c.max_uses)$$,
    'each coupon''s uses = its uses minus those given back, and its status agrees');

-- A re-hold releases the old hold's coupons under "~order-release:<id>";
-- it used to log the give-back under the re-hold's own operation_id, and
-- releasing that hold later (cancel, expiry, capture) gave the old coupon
-- back a second time.  W-A held code C, re-held without it; W-B then
-- holds C; cancelling W-A must leave C used once (by W-B).
SELECT code AS c FROM codes WHERE code NOT IN (SELECT code FROM loyalty.coupon_use) LIMIT 1 \gset
SELECT lives_ok(format($$
    SELECT loyalty.order_hold('{"operation_id": "T-1", "order_id": "T-A", "customer": "id:1", "lines": [{"sku": "A", "qty": 1}], "coupons": ["%1$s"]}');
    SELECT loyalty.order_hold('{"operation_id": "T-2", "order_id": "T-A", "customer": "id:1", "lines": [{"sku": "A", "qty": 1}]}');
    SELECT loyalty.order_hold('{"operation_id": "T-3", "order_id": "T-B", "customer": "id:2", "lines": [{"sku": "A", "qty": 1}], "coupons": ["%1$s"]}');
    SELECT loyalty.order_cancel('{"operation_id": "T-4", "order_id": "T-A"}');$$, :'c'),
    'hold with a coupon, re-hold without it, another order holds it, the first is cancelled');
SELECT is((SELECT uses FROM loyalty.coupon WHERE code = :'c'), 1,
          'the coupon another order holds stays used once after the re-held order is cancelled');

SELECT * FROM finish();
ROLLBACK;

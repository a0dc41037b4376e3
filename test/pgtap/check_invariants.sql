--
-- check_invariants: the check engine's money invariants over thousands of
-- random checks (SPEC sections 2 and 7), and a fuzz of the request parser.
--
-- For every random check priced by loyalty.calculate:
--   line amount = round(price * qty, 2); Σ line amounts = check amount;
--   line total = amount - discount - redeemed; Σ line totals = check total;
--   Σ line discounts = check discount; Σ line redeemed = check redeemed;
--   Σ of a line's promotions = its discount; parts multiply out to the total;
--   no line below zero, none discounted below its floor, no discount on
--   no_discount products; accrual per account adds up; redeem applied <= max;
--   the same request gives the same response.
-- Random purchases refunded in random pieces give back exactly what they
-- took, and the ledger stays consistent; promotion usage counters always
-- equal the number of standing purchases that applied the promotion.
-- Malformed requests of every kind fail with 22023 or LY001, never worse.
--
BEGIN;
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS loyalty CASCADE;
CREATE EXTENSION loyalty;
RESET client_min_messages;
-- the checks are dated 2026: the server's time is their "at" (issue 14 item 4)
SET LOCAL loyalty.test_now = 'at';
SELECT setseed(0.4242);

SELECT plan(30);

-- ---------------------------------------------------------------------------
-- A program: categories, 300 products, accounts, tiers, a promotion of every
-- mechanic (several of some), customers with points
-- ---------------------------------------------------------------------------
INSERT INTO loyalty.store (code, name, region, timezone, channel) VALUES
    ('S1', 'Store one', 'north', 'Europe/Moscow', 'pos'),
    ('S2', 'Store two', 'east', 'Asia/Vladivostok', 'pos'),
    ('WEB', 'Web', NULL, NULL, 'web');
INSERT INTO loyalty.category (code, parent, name) VALUES
    ('all', NULL, 'All'), ('c1', 'all', 'C1'), ('c2', 'all', 'C2'), ('c11', 'c1', 'C11'), ('c3', 'all', 'C3');
INSERT INTO loyalty.product (sku, name, category, brand, tags, price, min_price, no_discount, no_points, no_redeem)
SELECT 'P' || i, 'Product ' || i,
       (ARRAY['c1', 'c2', 'c11', 'c3', 'all'])[1 + i % 5],
       (ARRAY['b1', 'b2', 'b3', NULL])[1 + i % 4],
       CASE WHEN i % 7 = 0 THEN ARRAY['t1'] ELSE '{}' END,
       p, CASE WHEN i % 11 = 0 THEN round(p * 0.8, 2) END,
       i % 13 = 0, i % 17 = 0, i % 19 = 0
  FROM (SELECT i, round((0.01 + random() * 3000)::numeric, 2) AS p FROM generate_series(1, 300) i) s;
INSERT INTO loyalty.account_type (code, name, redeem_share, min_check, lifetime, redeem_order) VALUES
    ('main', 'Main', 0.9, 0, '1 year', 100), ('promo', 'Promo', 0.3, 500, NULL, 10);
INSERT INTO loyalty.tier (code, name, rank, threshold, accrual_percent, discount_percent) VALUES
    ('t1', 'Base', 1, 0, 3.5, 1), ('t2', 'Gold', 2, 10000, 7, 5.5);
INSERT INTO loyalty.promotion (code, name, mechanic, rule, priority, grp, exclusive) VALUES
    ('PCT1', 'pct', 'percent_off', '{"products": {"categories": ["c1"]}, "percent": 12.5}', 10, NULL, false),
    ('PCT2', 'pct', 'percent_off', '{"products": {"all": true, "exclude": {"tags": ["t1"]}}, "percent": 7}', 40, NULL, false),
    ('AMT1', 'amt', 'amount_off', '{"products": {"brands": ["b1"]}, "amount": 13.37}', 20, NULL, false),
    ('AMT2', 'amt', 'amount_off', '{"products": {"categories": ["c2"]}, "amount": 150, "per": "line"}', 25, NULL, true),
    ('CHK1', 'chk', 'check_discount', '{"steps": [{"min_total": 500, "amount": 33.33}, {"min_total": 3000, "percent": 3}]}', 60, NULL, false),
    ('CHK2', 'chk', 'check_discount', '{"steps": [{"min_total": 1000, "amount": 99.99}]}', 70, 'g', false),
    ('NTH1', 'nth', 'nth_item', '{"products": {"categories": ["c3"]}, "n": 3, "price": 1.00}', 30, NULL, false),
    ('NTH2', 'nth', 'nth_item', '{"products": {"brands": ["b2"]}, "n": 2, "percent": 50}', 35, 'g', false),
    ('BND1', 'bnd', 'bundle', '{"trigger": {"categories": ["c1"]}, "trigger_qty": 2, "target": {"categories": ["c2"]}, "percent": 30, "per_trigger": 2}', 45, NULL, false),
    ('GFT1', 'gft', 'gift', '{"trigger": {"brands": ["b3"]}, "trigger_qty": 2, "gift": "P5", "gift_qty": 1}', 50, NULL, false),
    ('TIER', 'tier', 'tier_discount', '{}', 55, NULL, false),
    ('PTS1', 'pts', 'points_percent', '{"products": {"categories": ["c2"]}, "percent": 5, "account": "promo"}', 80, NULL, false),
    ('PTS2', 'pts', 'points_percent', '{"products": {"brands": ["b1"]}, "multiplier": 2.5}', 80, NULL, false),
    ('FIX1', 'fix', 'points_fixed', '{"min_total": 2000, "points": 100, "account": "promo", "expires": "30 days"}', 90, NULL, false),
    ('CPN1', 'cpn', 'coupon_issue', '{"steps": [{"min_total": 1000, "percent": 10}], "valid": "end_of_month"}', 95, NULL, false),
    ('CRT1', 'crt', 'certificate_per_amount', '{"step": 500, "value": 150, "valid": "30 days"}', 96, NULL, false);
INSERT INTO loyalty.customer (id, phone, tier)
SELECT i, ('+7912000' || lpad(i::text, 4, '0'))::loyalty.phone, CASE WHEN i % 3 = 0 THEN 't2' END
  FROM generate_series(1, 20) i;
SELECT count(loyalty.adjust(jsonb_build_object('operation_id', 'grant-' || i || '-' || a, 'customer', 'id:' || i,
                                               'account', a, 'points', 50 + i * 37, 'reason', 'test')))
  FROM generate_series(1, 20) i, unnest(ARRAY['main', 'promo']) a;

-- ---------------------------------------------------------------------------
-- 3000 random checks: 1 to 10 lines, whole and weighed quantities, unknown
-- SKUs, anonymous and identified customers, redeem none/max/a number
-- ---------------------------------------------------------------------------
CREATE TEMP TABLE req AS
SELECT n, jsonb_strip_nulls(jsonb_build_object(
           'store', (ARRAY['S1', 'S2', 'WEB', NULL])[1 + (random() * 3.99)::int],
           'customer', CASE WHEN random() < 0.6 THEN 1 + (random() * 19)::int END,
           'redeem', CASE WHEN random() < 0.3 THEN to_jsonb('max'::text)
                          WHEN random() < 0.3 THEN to_jsonb((random() * 20)::int) END,
           'lines', (SELECT jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
                        'sku', CASE WHEN random() < 0.05 THEN 'UNKNOWN-' || k ELSE 'P' || (1 + (random() * 299)::int) END,
                        'qty', CASE WHEN random() < 0.2 THEN round((0.001 + random() * 3)::numeric, 3)
                                    ELSE (1 + (random() * 6)::int)::numeric END,
                        'price', CASE WHEN random() < 0.3 THEN round((random() * 2000)::numeric, 2) END)))
                       FROM generate_series(1, 1 + (n * 7919) % 10) k))) AS req
  FROM generate_series(1, 3000) n;
-- unknown SKUs need a price
UPDATE req SET req = jsonb_set(req, '{lines}', (
    SELECT jsonb_agg(CASE WHEN l ->> 'sku' LIKE 'UNKNOWN%' AND NOT l ? 'price'
                          THEN l || '{"price": 12.34}' ELSE l END)
      FROM jsonb_array_elements(req -> 'lines') l));

CREATE TEMP TABLE res AS SELECT n, req, loyalty.calculate(req) AS r FROM req;
CREATE TEMP TABLE line AS
SELECT n, (l ->> 'index')::int AS i, l ->> 'sku' AS sku, (l ->> 'qty')::numeric AS qty,
       (l ->> 'price')::numeric AS price, (l ->> 'amount')::numeric AS amount,
       (l ->> 'discount')::numeric AS discount, (l ->> 'redeemed')::numeric AS redeemed,
       (l ->> 'total')::numeric AS total, l
  FROM res, jsonb_array_elements(r -> 'lines') l;
CREATE TEMP TABLE sums AS
SELECT n, sum(amount) AS amount, sum(discount) AS discount, sum(redeemed) AS redeemed, sum(total) AS total
  FROM line GROUP BY n;
CREATE TEMP TABLE line_accrual AS
SELECT n, a.key AS account, sum(a.value::numeric) AS points
  FROM line, jsonb_each(l -> 'accrual') a GROUP BY n, a.key;

SELECT is((SELECT count(*) FROM res), 3000::bigint, 'every random check was priced');
SELECT is((SELECT count(*) FROM line), (SELECT sum(jsonb_array_length(req -> 'lines')) FROM req),
          'every line comes back');
SELECT is((SELECT count(*) FROM line WHERE amount <> round(price * qty, 2)), 0::bigint,
          'line amount = round(price * qty, 2)');
SELECT is((SELECT count(*) FROM res JOIN sums USING (n) WHERE (r -> 'totals' ->> 'amount')::numeric <> sums.amount), 0::bigint,
          'check amount = sum of line amounts');
SELECT is((SELECT count(*) FROM line WHERE total <> amount - discount - redeemed), 0::bigint,
          'line total = amount - discount - redeemed');
SELECT is((SELECT count(*) FROM res JOIN sums USING (n) WHERE (r -> 'totals' ->> 'total')::numeric <> sums.total), 0::bigint,
          'check total = sum of line totals');
SELECT is((SELECT count(*) FROM res JOIN sums USING (n) WHERE (r -> 'totals' ->> 'discount')::numeric <> sums.discount), 0::bigint,
          'check discount = sum of line discounts');
SELECT is((SELECT count(*) FROM res JOIN sums USING (n) WHERE (r -> 'totals' ->> 'redeemed')::numeric <> sums.redeemed), 0::bigint,
          'check redeemed = sum of line redeemed');
SELECT is((SELECT count(*) FROM line WHERE discount <> coalesce(
              (SELECT sum((p ->> 'discount')::numeric) FROM jsonb_array_elements(l -> 'promotions') p), 0)),
          0::bigint, 'a line''s promotions add up to its discount');
SELECT is((SELECT count(*) FROM line WHERE total <> (
              SELECT sum(round((p ->> 'qty')::numeric * (p ->> 'price')::numeric, 2))
                FROM jsonb_array_elements(l -> 'parts') p)), 0::bigint,
          'fiscal parts multiply out to the line total');
SELECT is((SELECT count(*) FROM line WHERE (SELECT sum((p ->> 'qty')::numeric) FROM jsonb_array_elements(l -> 'parts') p) <> qty),
          0::bigint, 'fiscal parts cover the line quantity');
SELECT is((SELECT count(*) FROM line WHERE total < 0 OR discount < 0 OR redeemed < 0), 0::bigint,
          'no line below zero');
SELECT is((SELECT count(*) FROM line JOIN loyalty.product p USING (sku)
            WHERE p.min_price IS NOT NULL
              AND amount - discount < least(round(p.min_price * qty, 2), amount)), 0::bigint,
          'no line discounted below min_price * qty');
SELECT is((SELECT count(*) FROM line JOIN loyalty.product p USING (sku) WHERE p.no_discount AND discount > 0),
          0::bigint, 'no_discount products are never discounted');
SELECT is((SELECT count(*) FROM line JOIN loyalty.product p USING (sku) WHERE p.no_redeem AND redeemed > 0),
          0::bigint, 'no_redeem products are never paid with points');
SELECT is((SELECT count(*) FROM res CROSS JOIN LATERAL jsonb_each(r -> 'totals' -> 'accrual') a
             FULL JOIN line_accrual la ON la.n = res.n AND la.account = a.key
            WHERE a.value::numeric IS DISTINCT FROM la.points), 0::bigint,
          'accrual per account = sum of line accruals');
SELECT is((SELECT count(*) FROM res WHERE (r -> 'redeem' ->> 'applied')::numeric > (r -> 'redeem' ->> 'max')::numeric),
          0::bigint, 'points applied never exceed the maximum');
SELECT is((SELECT count(*) FROM res WHERE loyalty.calculate(req) - 'at' <> r - 'at'), 0::bigint,
          'the same request gives the same response');

-- ---------------------------------------------------------------------------
-- 300 random purchases, each refunded in random pieces: money and points
-- come back exactly, the ledger stays consistent
-- ---------------------------------------------------------------------------
-- two promotions get limits that bind: usage counters are checked below
UPDATE loyalty.promotion SET usage_limit = 150 WHERE code = 'PCT2';
UPDATE loyalty.promotion SET usage_limit = 100000, per_customer_limit = 3 WHERE code = 'CHK1';
CREATE FUNCTION pg_temp.usage_off() RETURNS bigint LANGUAGE sql AS $$
    -- counters that differ from the standing purchases that applied the
    -- promotion (globally, and per customer), or exceed the limit
    SELECT count(*) FROM (
        SELECT p.code, NULL::bigint AS customer_id, coalesce(u.uses, 0) AS uses, p.usage_limit AS lim,
               (SELECT count(*) FROM loyalty.purchase x
                 WHERE p.code = ANY (x.promotions)
                   AND NOT EXISTS (SELECT 1 FROM loyalty.refund f
                                    WHERE f.purchase = x.operation_id AND f.full_refund)) AS standing
          FROM loyalty.promotion p LEFT JOIN loyalty.promotion_usage u ON u.promotion = p.code
         WHERE p.usage_limit IS NOT NULL
        UNION ALL
        SELECT p.code, c.id, coalesce(u.uses, 0), p.per_customer_limit,
               (SELECT count(*) FROM loyalty.purchase x
                 WHERE p.code = ANY (x.promotions) AND x.customer_id = c.id
                   AND NOT EXISTS (SELECT 1 FROM loyalty.refund f
                                    WHERE f.purchase = x.operation_id AND f.full_refund))
          FROM loyalty.promotion p CROSS JOIN loyalty.customer c
          LEFT JOIN loyalty.promotion_customer_usage u ON u.promotion = p.code AND u.customer_id = c.id
         WHERE p.per_customer_limit IS NOT NULL) s
     WHERE uses <> standing OR uses > lim
$$;
-- (a purchase asking for more points than it may spend fails: ask for "max")
SELECT count(loyalty.purchase(req || jsonb_build_object('operation_id', 'P-' || n) ||
                              CASE WHEN req ? 'redeem' THEN '{"redeem": "max"}'::jsonb ELSE '{}'::jsonb END))
  FROM req WHERE n <= 300;
-- a purchase writes its events from C in one statement: each must be, to
-- the character, the row SQL would render from its lot or coupon
SELECT ok((SELECT count(*) FROM loyalty.event WHERE kind = 'points_earned') > 100
          AND (SELECT count(*) FROM loyalty.event WHERE kind = 'coupon_issued') > 0,
          'purchases earned points and issued coupons');
SELECT bag_eq(
    $$SELECT customer_id, payload::text FROM loyalty.event
       WHERE kind = 'points_earned' AND payload ->> 'operation_id' LIKE 'P-%'$$,
    $$SELECT customer_id, jsonb_build_object('account', account, 'points', amount,
                 'operation_id', operation_id, 'available_at', available_at, 'expires_at', expires_at)::text
        FROM loyalty.lot WHERE operation_id LIKE 'P-%'$$,
    'every points_earned event of a purchase renders its lot');
SELECT bag_eq(
    $$SELECT customer_id, payload::text FROM loyalty.event WHERE kind = 'coupon_issued'$$,
    $$SELECT customer_id, jsonb_build_object('code', code, 'kind', kind, 'promotion', promotion,
                 'percent', percent, 'value', value, 'valid_until', valid_until)::text
        FROM loyalty.coupon WHERE issued_by LIKE 'P-%' AND customer_id IS NOT NULL$$,
    'every coupon_issued event of a purchase renders its coupon');
SELECT is(pg_temp.usage_off(), 0::bigint,
          'usage counters equal the purchases that applied the promotion, within its limits');
SELECT count(loyalty.refund(jsonb_build_object('operation_id', 'R1-' || p.operation_id, 'purchase', p.operation_id,
                  'lines', jsonb_build_array(jsonb_build_object('index', 0,
                           'qty', CASE WHEN l.qty >= 2 THEN floor(l.qty / 2) ELSE l.qty END)))))
  FROM loyalty.purchase p JOIN loyalty.purchase_line l ON l.operation_id = p.operation_id AND l.line_index = 0
 WHERE random() < 0.7;
SELECT is(pg_temp.usage_off(), 0::bigint,
          'after partial refunds usage counters equal the standing purchases that applied the promotion');
SELECT count(loyalty.refund(jsonb_build_object('operation_id', 'R2-' || p.operation_id, 'purchase', p.operation_id)))
  FROM loyalty.purchase p WHERE p.refunded < p.total OR EXISTS (
      SELECT 1 FROM loyalty.purchase_line l WHERE l.operation_id = p.operation_id AND l.refunded_qty < l.qty);
SELECT is((SELECT count(*) FROM loyalty.purchase p WHERE p.refunded <> p.total
              OR p.refunded <> (SELECT coalesce(sum(r.amount), 0) FROM loyalty.refund r WHERE r.purchase = p.operation_id)),
          0::bigint, 'refunds give back exactly the purchase total');
SELECT is((SELECT coalesce(sum(uses), 0) FROM loyalty.promotion_usage)
          + (SELECT coalesce(sum(uses), 0) FROM loyalty.promotion_customer_usage), 0::numeric,
          'after full refunds no promotion use is counted');
SELECT is((SELECT count(*) FROM loyalty.purchase_line_points
            WHERE earned_refunded <> earned OR spent_refunded <> spent), 0::bigint,
          'refunds reverse exactly the points earned and return exactly the points spent');
-- every purchase is refunded in full: each balance is back to its grant
SELECT is((SELECT count(*) FROM (
              SELECT c.id, a.code, 50 + c.id * 37 AS granted,
                     (SELECT coalesce(sum(l.remaining), 0) FROM loyalty.lot l
                       WHERE l.customer_id = c.id AND l.account = a.code) AS held
                FROM loyalty.customer c, loyalty.account_type a) s
            WHERE granted <> held), 0::bigint,
          'after full refunds every balance is back to what was granted');
-- (refunding a purchase whose points a later purchase spent leaves a debt;
-- refunding the later one returns points, which settle that debt at once)
SELECT is_empty($$SELECT * FROM loyalty.verify_ledger()$$,
                'the ledger is consistent after purchases and refunds');

-- ---------------------------------------------------------------------------
-- Fuzz: malformed requests of every kind fail with 22023 or LY001
-- ---------------------------------------------------------------------------
CREATE FUNCTION pg_temp.outcome(request jsonb) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    PERFORM loyalty.calculate(request);
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE;
END
$$;
CREATE TEMP TABLE junk AS
SELECT v FROM unnest(ARRAY[
    'null', 'true', 'false', '0', '-1', '1.5', '1e300', '-1e-300', '123456789012345678901234567890',
    '0.001', '0.0001', '""', '" "', '"x"', '"max"', '"NaN"', '"Infinity"', '"-Infinity"', '"1e10"',
    '[]', '[1]', '[null]', '{}', '{"a": 1}', '[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]',
    '"2026-02-30T10:00:00Z"', '"2026-11-22T25:00:00+03:00"', '"infinity"', '"epoch"', '"now"',
    '"id:"', '"id:99999999999999999999"', '"+"', '"00"', '"8 (000) 000-00-00"', '"\u00e9\u20ac"'
]::jsonb[]) AS v
UNION ALL SELECT to_jsonb(repeat('x', 100000))
UNION ALL SELECT (repeat('[', 2000) || repeat(']', 2000))::jsonb
UNION ALL SELECT (SELECT jsonb_agg(jsonb_build_object('sku', 'P1', 'qty', 1)) FROM generate_series(1, 1001));
CREATE TEMP TABLE fuzz AS
SELECT pg_temp.outcome(x) AS outcome, x
  FROM (
    -- every top-level field and every line field replaced by every junk value
    SELECT jsonb_set('{"store": "S1", "customer": 1, "redeem": "max", "at": "2026-11-22T10:00:00+03:00",
                       "coupons": ["A"], "lines": [{"sku": "P1", "qty": 1, "price": 10}]}'::jsonb,
                     ARRAY[k], v) AS x
      FROM junk, unnest(ARRAY['store', 'customer', 'redeem', 'at', 'coupons', 'lines', 'channel',
                              'operation_id', 'bogus']) k
    UNION ALL
    SELECT jsonb_set('{"lines": [{"sku": "P1", "qty": 1, "price": 10}]}'::jsonb, ARRAY['lines', '0', k], v)
      FROM junk, unnest(ARRAY['sku', 'qty', 'price', 'extra']) k
    UNION ALL
    SELECT jsonb_set('{"coupons": ["A"], "lines": [{"sku": "P1", "qty": 1}]}'::jsonb, ARRAY['coupons', '0'], v)
      FROM junk
    UNION ALL
    SELECT v FROM junk
    UNION ALL
    -- random byte soup that happens to be JSON
    SELECT jsonb_build_object('lines', jsonb_build_array(jsonb_build_object(
               'sku', md5(i::text), 'qty', (random() * 1e6 - 5e5)::numeric(20, 4),
               'price', (random() * 1e10 - 1e9)::numeric(30, 3))))
      FROM generate_series(1, 500) i
  ) s;
SELECT is((SELECT count(*) FROM fuzz WHERE outcome NOT IN ('ok', '22023', 'LY001')), 0::bigint,
          'every malformed request fails with 22023 or LY001 (or is fine)');
SELECT cmp_ok((SELECT count(*) FROM fuzz WHERE outcome = '22023'), '>', 400::bigint,
          'most of the fuzzed requests are refused as malformed');

SELECT * FROM finish();
ROLLBACK;

-- demo/checks.sql: a day of checks for the demo program.
--
-- Forty more customers join (each with the welcome points, some in the
-- gold tier); then 400 checks of the last 14 hours, across the five stores and
-- their time zones, are priced and committed with loyalty.purchase in the
-- order they happened (registers that were offline send their checks late:
-- inside the max_backdate window of 72 hours).  Two receipts are printed in full, then the day's summary, and
-- one check is partly refunded.  Run after demo/program.sql and
-- demo/identity.sql (scripts/demo.sh does).
\pset footer off
SELECT setseed(0.2026) AS seeded \gset

\echo
\echo '--- forty more customers; welcome bonuses; some are gold ---'
-- welcome points: 300 main points for every customer registered from now on
-- (loyalty.points_event; registration grants them, once)
INSERT INTO loyalty.points_event (event, points, account) VALUES ('welcome', 300, 'main')
    ON CONFLICT (event) DO UPDATE SET points = excluded.points, account = excluded.account, enabled = true;
SELECT count(loyalty.register('+7912' || lpad((1000000 + i)::text, 7, '0'))) AS registered
  FROM generate_series(1, 40) AS i;
SELECT count(*) AS welcome_bonuses FROM loyalty.event WHERE kind = 'welcome_points';
UPDATE loyalty.customer SET tier = 'gold' WHERE id % 5 = 0 AND status = 'active';

-- ---------------------------------------------------------------------------
-- The day: 400 checks of the last 14 hours, sent late by offline registers
-- ---------------------------------------------------------------------------
CREATE TEMP TABLE day AS
WITH store AS (
    SELECT code, coalesce(timezone, loyalty.setting_value('timezone')) AS tz,
           row_number() OVER (ORDER BY code) - 1 AS k
      FROM loyalty.store
), checks AS (
    SELECT n, s.code AS store, s.tz,
           date_trunc('second', now() - interval '14 hours'
             + (random() * 14 * 3600) * interval '1 second') AS at,
           random() AS who, random() AS pay
      FROM generate_series(1, 400) AS n
      JOIN store s ON s.k = (n * 7) % 5
), members AS (
    SELECT array_agg(c.id ORDER BY c.id) AS ids FROM loyalty.customer c WHERE c.status = 'active'
)
SELECT c.n, c.at, c.store,
       jsonb_strip_nulls(jsonb_build_object(
           'operation_id', format('%s-%s', c.store, lpad(c.n::text, 5, '0')),
           'store', c.store,
           'at', to_char(c.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
           -- two checks in three come with a card or a phone
           'customer', CASE WHEN c.who < 0.67 THEN
                           'id:' || m.ids[1 + (c.who * 1000)::int % array_length(m.ids, 1)] END,
           'redeem', CASE WHEN c.who < 0.67 AND c.pay < 0.25 THEN 'max' END,
           'lines', (SELECT jsonb_agg(jsonb_build_object('sku', p.sku, 'qty', q.qty))
                       FROM (SELECT DISTINCT ON (sku) sku, qty FROM (
                               SELECT (ARRAY['A1', 'A1', 'A2', 'MASK1', 'SH1', 'SH1', 'DET1', 'DET1',
                                             'AV1', 'LZ1', 'LZ1', 'CARD1', 'CIG1', 'BAG', 'BAG'])
                                          [1 + (random() * 14)::int] AS sku,
                                      CASE WHEN random() < 0.15 THEN 3 + (random() * 4)::int
                                           ELSE 1 + (random() * 1.4)::int END AS qty
                                 FROM generate_series(1, 1 + (c.n * 31) % 6) AS i
                                WHERE c.n > 0) AS r) AS q
                       JOIN loyalty.product p ON p.sku = q.sku)
       )) AS req
  FROM checks c, members m;

\echo
\echo '--- the day: 400 checks priced and committed in the order they happen ---'
SELECT clock_timestamp() AS started \gset
SELECT count(loyalty.purchase(req)) AS committed FROM (SELECT req FROM day ORDER BY at) AS d;
SELECT count(*) AS checks,
       round(count(*) / extract(epoch FROM clock_timestamp() - :'started'::timestamptz)) AS checks_per_second
  FROM loyalty.purchase;

-- ---------------------------------------------------------------------------
-- Two receipts in full
-- ---------------------------------------------------------------------------
CREATE TEMP TABLE receipt_of AS
SELECT o.operation_id, o.response AS r
  FROM loyalty.operation o WHERE o.kind = 'purchase';

CREATE FUNCTION pg_temp.receipt(r jsonb) RETURNS SETOF text LANGUAGE sql AS $$
    SELECT format('%-44s %s', 'Check ' || (r ->> 'operation_id'), r ->> 'at')
    UNION ALL
    SELECT format('Customer %s, tier %s', r -> 'customer' ->> 'id', r -> 'customer' ->> 'tier')
     WHERE r -> 'customer' <> 'null'
    UNION ALL
    SELECT line FROM (
        SELECT (l ->> 'index')::int AS i, 0 AS k,
               format('%-28s %6s x %9s = %9s', coalesce(l ->> 'name', l ->> 'sku'),
                      l ->> 'qty', l ->> 'price', l ->> 'amount') AS line
          FROM jsonb_array_elements(r -> 'lines') l
        UNION ALL
        SELECT (l ->> 'index')::int, 1, format('    %-40s %9s', p ->> 'code', '-' || (p ->> 'discount'))
          FROM jsonb_array_elements(r -> 'lines') l, jsonb_array_elements(l -> 'promotions') p
        UNION ALL
        SELECT (l ->> 'index')::int, 2, format('    %-40s %9s', 'paid with points', '-' || (l ->> 'redeemed'))
          FROM jsonb_array_elements(r -> 'lines') l WHERE (l ->> 'redeemed')::numeric > 0
        UNION ALL
        SELECT (l ->> 'index')::int, 3, format('    fiscal: %s', string_agg(
                   format('%s x %s', p ->> 'qty', p ->> 'price'), ' + '))
          FROM jsonb_array_elements(r -> 'lines') l, jsonb_array_elements(l -> 'parts') p
         GROUP BY l
        ORDER BY 1, 2) AS lines
    UNION ALL
    SELECT format('%-44s %9s', 'Amount', r -> 'totals' ->> 'amount')
    UNION ALL
    SELECT format('%-44s %9s', 'Discount', '-' || (r -> 'totals' ->> 'discount'))
    UNION ALL
    SELECT format('%-44s %9s', 'Paid with a gift certificate', '-' || (r -> 'totals' ->> 'certificate'))
     WHERE (r -> 'totals' ->> 'certificate')::numeric > 0
    UNION ALL
    SELECT format('%-44s %9s', 'Paid with points', '-' || (r -> 'totals' ->> 'redeemed'))
     WHERE (r -> 'totals' ->> 'redeemed')::numeric > 0
    UNION ALL
    SELECT format('Code %s: %s', c ->> 'code', coalesce(c ->> 'reason', c ->> 'status')
                  || coalesce(', left on it ' || (c ->> 'balance'), ''))
      FROM jsonb_array_elements(r -> 'coupons') c
    UNION ALL
    SELECT format('%-44s %9s', 'TOTAL', r -> 'totals' ->> 'total')
    UNION ALL
    SELECT format('Points earned: %s (%s)', a.value, a.key) FROM jsonb_each(r -> 'totals' -> 'accrual') a
    UNION ALL
    SELECT CASE WHEN i ->> 'kind' = 'certificate'
                THEN format('Gift certificate to hand over: %s, %s (%s)', c.code, i ->> 'value',
                            coalesce('valid until ' || (i ->> 'valid_until'), 'no expiry'))
                ELSE format('Coupon to print: %s, %s%% off from %s, valid until %s',
                            c.code, i ->> 'percent', i ->> 'min_total_to_use', i ->> 'valid_until') END
      FROM jsonb_array_elements(r -> 'issued') i
      CROSS JOIN LATERAL jsonb_array_elements_text(coalesce(i -> 'codes', '[null]')) c(code)
    UNION ALL
    SELECT '>> ' || m FROM jsonb_array_elements_text(r -> 'messages') m
$$;

\echo
\echo '--- receipt: the check with the most promotions ---'
SELECT pg_temp.receipt(r) AS receipt
  FROM (SELECT r FROM receipt_of
         ORDER BY jsonb_array_length(r -> 'promotions') DESC, (r -> 'totals' ->> 'discount')::numeric DESC,
                  operation_id LIMIT 1) AS t;

\echo
\echo '--- receipt: a member paying with points ---'
SELECT pg_temp.receipt(r) AS receipt
  FROM (SELECT r FROM receipt_of WHERE (r -> 'totals' ->> 'redeemed')::numeric > 0
         ORDER BY jsonb_array_length(r -> 'lines') DESC, operation_id LIMIT 1) AS t;

-- ---------------------------------------------------------------------------
-- The day's summary
-- ---------------------------------------------------------------------------
\echo
\echo '--- the day by store (local time) ---'
SELECT p.store, count(*) AS checks,
       round(100.0 * count(p.customer_id) / count(*)) AS identified_pct,
       sum(p.amount) AS amount, sum(p.discount) AS discount, sum(p.redeemed) AS redeemed,
       sum(p.total) AS revenue, round(avg(p.total), 2) AS average_check
  FROM loyalty.purchase p GROUP BY ROLLUP (p.store) ORDER BY p.store NULLS LAST;

\echo
\echo '--- average check: members and anonymous buyers ---'
SELECT CASE WHEN customer_id IS NULL THEN 'anonymous' ELSE 'member' END AS buyer,
       count(*) AS checks, round(avg(total), 2) AS average_check
  FROM loyalty.purchase GROUP BY 1 ORDER BY 1;

\echo
\echo '--- what each promotion gave ---'
SELECT p ->> 'code' AS promotion, count(DISTINCT l.operation_id) AS checks,
       sum((p ->> 'discount')::numeric) AS discount
  FROM loyalty.purchase_line l, jsonb_array_elements(l.promotions) p
 GROUP BY 1 ORDER BY 3 DESC;

\echo
\echo '--- points: earned and spent per account ---'
SELECT account, sum(earned) AS earned, sum(spent) AS spent
  FROM loyalty.purchase_line_points GROUP BY account ORDER BY account;

\echo
\echo '--- a customer brings back one item of a check: a partial refund ---'
SELECT r -> 'lines' AS refunded_lines, r -> 'totals' ->> 'amount' AS money_back,
       r -> 'points' AS points, r ->> 'full' AS full
  FROM (SELECT loyalty.refund(jsonb_build_object('operation_id', 'R-' || p.operation_id,
                  'purchase', p.operation_id,
                  'lines', jsonb_build_array(jsonb_build_object('index', 0, 'qty', 1)))) AS r
          FROM loyalty.purchase p
         WHERE p.customer_id IS NOT NULL AND p.points_earned > 0
         ORDER BY p.total DESC, p.operation_id LIMIT 1) AS t;
SELECT count(*) AS ledger_problems FROM loyalty.verify_ledger();

-- ---------------------------------------------------------------------------
-- Tiers, coupons and certificates
-- ---------------------------------------------------------------------------
SELECT to_char((now() - interval '5 minutes') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS late \gset
\echo
\echo '--- Boris crosses into Gold: this check earns at his old tier, the next ones at Gold ---'
SELECT c.tier AS tier_before FROM loyalty.customer c WHERE c.id = 2;
SELECT pg_temp.receipt(r) AS receipt
  FROM loyalty.purchase(jsonb_build_object('operation_id', 'S042-GOLD', 'customer', 'id:2',
       'store', 'S042', 'at', :'late',
       'lines', jsonb_build_array(jsonb_build_object('sku', 'AV1', 'qty', 30)))) AS r;
SELECT c.tier AS tier_after FROM loyalty.customer c WHERE c.id = 2;

\echo
\echo '--- the coupon printed on that receipt, on his next purchase ---'
SELECT response #>> '{issued,0,codes,0}' AS bounce FROM loyalty.operation WHERE operation_id = 'S042-GOLD' \gset
SELECT pg_temp.receipt(r) AS receipt
  FROM loyalty.purchase(jsonb_build_object('operation_id', 'S042-NEXT', 'customer', 'id:2',
       'store', 'S042', 'at', :'late', 'coupons', jsonb_build_array(:'bounce'),
       'lines', jsonb_build_array(jsonb_build_object('sku', 'SH1', 'qty', 6)))) AS r;

\echo
\echo '--- a gift certificate of 1000 is sold at a register (a purchase line: the money is recorded) ---'
INSERT INTO loyalty.product (sku, name, price, gift_certificate)
VALUES ('GIFT1000', 'Gift certificate 1000', 1000.00, true);
SELECT pg_temp.receipt(r) AS receipt
  FROM loyalty.purchase(jsonb_build_object('operation_id', 'S017-GIFT', 'store', 'S017',
       'lines', jsonb_build_array(jsonb_build_object('sku', 'GIFT1000', 'qty', 1)))) AS r;
SELECT response #>> '{issued,0,codes,0}' AS cert FROM loyalty.operation WHERE operation_id = 'S017-GIFT' \gset

\echo
\echo '--- the certificate pays part of a web check; the rest stays on it ---'
SELECT pg_temp.receipt(r) AS receipt
  FROM loyalty.purchase(jsonb_build_object('operation_id', 'WEB-CERT', 'store', 'WEB',
       'coupons', jsonb_build_array(:'cert'),
       'lines', jsonb_build_array(jsonb_build_object('sku', 'A2', 'qty', 1)))) AS r;

\echo
\echo '--- what the customers are told (ICU messages, Russian plurals) ---'
SELECT kind, message FROM loyalty.take_events(1000)
 WHERE customer_id = 2 AND kind IN ('points_earned', 'tier_changed', 'coupon_issued')
 ORDER BY id DESC LIMIT 6;

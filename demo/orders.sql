-- demo/orders.sql: an online order (SPEC section 15).
--
-- A member checks out on the web: the order is priced and its benefits held
-- (points on their lots, promotion uses); the balance shows the points
-- held.  Later she picks up half of it in the store on Pushkinskaya street:
-- the half she takes becomes a purchase at the held prices, the rest is
-- released.  Both are printed as receipts.  Run after demo/program.sql
-- (scripts/demo.sh does).
\pset footer off

CREATE FUNCTION pg_temp.receipt(title text, r jsonb) RETURNS SETOF text LANGUAGE sql AS $$
    SELECT format('%-44s %s', title, coalesce(r ->> 'operation_id', ''))
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
    SELECT format('%-44s %9s', 'Paid with points', '-' || (r -> 'totals' ->> 'redeemed'))
     WHERE (r -> 'totals' ->> 'redeemed')::numeric > 0
    UNION ALL
    SELECT format('%-44s %9s', 'TOTAL', r -> 'totals' ->> 'total')
    UNION ALL
    SELECT format('Points earned: %s (%s)', a.value, a.key) FROM jsonb_each(r -> 'totals' -> 'accrual') a
$$;

SELECT loyalty.register('+79120555000') AS customer \gset
SELECT loyalty.adjust(jsonb_build_object('operation_id', 'order-demo-bonus', 'customer', 'id:' || :customer,
       'account', 'main', 'points', 500, 'reason', 'welcome bonus')) ->> 'points' AS bonus;

\echo
\echo '--- checkout on the web: priced, the points held (the shop showed the total) ---'
SELECT loyalty.calculate(jsonb_build_object('customer', :customer, 'store', 'WEB',
       'lines', '[{"sku": "A1", "qty": 2}, {"sku": "MASK1", "qty": 2}]'::jsonb, 'redeem', 'max'))
       -> 'totals' ->> 'total' AS shown \gset
SELECT pg_temp.receipt('Order WEB-1001, held', loyalty.order_hold(jsonb_build_object(
       'operation_id', 'WEB-1001-hold', 'order_id', 'WEB-1001', 'customer', :customer, 'store', 'WEB',
       'lines', '[{"sku": "A1", "qty": 2}, {"sku": "MASK1", "qty": 2}]'::jsonb, 'redeem', 'max',
       'expect_total', (:'shown')::numeric))) AS receipt;
SELECT account, available, held FROM loyalty.balance('id:' || :customer);

\echo
\echo '--- picked up in S017: one cream and one mask; the rest is released ---'
SELECT loyalty.order_capture('{"operation_id": "S017-7-000042", "order_id": "WEB-1001",
       "store": "S017", "lines": [{"index": 0, "qty": 1}, {"index": 1, "qty": 1}]}') AS captured \gset
-- what she took: each held line less what the capture released of it
SELECT format('%-44s %s', 'Picked up in S017', (:'captured')::jsonb ->> 'operation_id') AS receipt
UNION ALL
SELECT * FROM (
    SELECT format('%-28s %6s        paid %9s', l ->> 'name',
                  (l ->> 'qty')::numeric - coalesce((u ->> 'qty')::numeric, 0),
                  (l ->> 'total')::numeric - coalesce((u ->> 'amount')::numeric, 0))
      FROM jsonb_array_elements((:'captured')::jsonb -> 'lines') l
      LEFT JOIN jsonb_array_elements((:'captured')::jsonb -> 'uncaptured' -> 'lines') u
        ON (u ->> 'index') = (l ->> 'index')
     ORDER BY (l ->> 'index')::int) AS picked
UNION ALL
SELECT format('%-44s %9s', 'TOTAL',
              ((:'captured')::jsonb -> 'totals' ->> 'total')::numeric
              - ((:'captured')::jsonb -> 'uncaptured' -> 'totals' ->> 'amount')::numeric);
SELECT format('%-44s %9s', 'Released (not picked up): money', (:'captured')::jsonb -> 'uncaptured' -> 'totals' ->> 'amount')
       AS receipt
UNION ALL
SELECT format('Points given back: %s, earned points taken back: %s',
              (:'captured')::jsonb -> 'uncaptured' -> 'points' -> 'returned',
              (:'captured')::jsonb -> 'uncaptured' -> 'points' -> 'reversed');
SELECT order_id, state FROM loyalty."order" WHERE order_id = 'WEB-1001';
SELECT account, available, held FROM loyalty.balance('id:' || :customer);
SELECT count(*) AS ledger_problems FROM loyalty.verify_ledger();

-- floor_write: the floor of a purchase's writes (issue 21): ONE hand-written
-- statement writing the rows a purchase writes, into the scratch copies of
-- its tables (floor_write.setup.sql: same columns, indexes, constraints,
-- triggers): the operation with its request and response, the purchase and
-- its 10 lines, the earned lot, one point spent from an open lot (updated),
-- the two ledger entries, the bounce-back coupon the bench's purchases
-- issue (callgrind: every purchase of the workload writes one) and
-- the points_earned and coupon_issued events.  The target is
-- purchase <= calculate + this.
\set c random(1, :customers)
\set op random(1, 1000000000000000)
-- (parameters: pgbench -M prepared sends them untyped, hence the casts)
WITH o AS (
    INSERT INTO floor.operation (operation_id, kind, customer_id, request, response)
    SELECT 'floor-' || CAST(:tag AS text) || '-' || CAST(:client_id AS text) || '-' || CAST(:op AS text), 'purchase', CAST(:c AS bigint), s.request, s.response
      FROM floor.sample s
    RETURNING operation_id),
p AS (
    INSERT INTO floor.purchase (operation_id, customer_id, store, channel, at, amount, discount,
                                redeemed, total, points_earned, points_spent, lines, promotions)
    SELECT o.operation_id, CAST(:c AS bigint), 'S1', 'pos', now(), 1000.00, 100.00, 1.00, 899.00, 89.9, 1, 10,
           '{}'::text[]
      FROM o),
l AS (
    INSERT INTO floor.purchase_line (operation_id, line_index, sku, qty, price, amount, discount,
                                     certificate, redeemed, total, promotions, points)
    SELECT o.operation_id, g, 'P' || g, 1, 100.00, 100.00, 10.00, 0, 0.10, 89.90,
           '[]'::jsonb, '{"main": {"earned": 8.99, "spent": 0.1}}'::jsonb
      FROM o, generate_series(0, 9) AS g),
n AS (
    INSERT INTO floor.lot (customer_id, account, amount, remaining, earned_at, available_at,
                           expires_at, operation_id)
    SELECT CAST(:c AS bigint), 'main', 89.9, 89.9, now(), now(), now() + interval '1 year', o.operation_id
      FROM o
    RETURNING id, operation_id),
s AS (
    UPDATE floor.lot x SET remaining = x.remaining - 1
     WHERE x.id = (SELECT min(y.id) FROM floor.lot y
                    WHERE y.customer_id = CAST(:c AS bigint) AND y.account = 'main' AND y.remaining >= 1)
    RETURNING x.id),
k AS (
    INSERT INTO floor.coupon (code, promotion, customer_id, kind, value, min_total, valid_from,
                              valid_until, max_uses, issued_by)
    SELECT upper(CAST(:tag AS text)) || '-' || CAST(:client_id AS text) || '-' || CAST(:op AS text),
           s.coupon_promotion, CAST(:c AS bigint), 'personal', 100.00, 1000.00, now(),
           now() + interval '30 days', 1, o.operation_id
      FROM o, floor.sample s
    RETURNING code),
e AS (
    INSERT INTO floor.ledger_entry (customer_id, account, lot_id, operation_id, kind, points, at)
    SELECT CAST(:c AS bigint), 'main', n.id, n.operation_id, 'earn', 89.9, now() FROM n
    UNION ALL
    SELECT CAST(:c AS bigint), 'main', s.id, o.operation_id, 'spend', -1, now() FROM s, o)
INSERT INTO floor.event (customer_id, kind, payload)
SELECT CAST(:c AS bigint), 'points_earned', jsonb_build_object('operation_id', o.operation_id, 'points', 89.9)
  FROM o
UNION ALL
SELECT CAST(:c AS bigint), 'coupon_issued', jsonb_build_object('code', k.code, 'kind', 'personal',
       'promotion', s.coupon_promotion, 'percent', NULL, 'value', 100.00,
       'valid_until', now() + interval '30 days')
  FROM k, floor.sample s;

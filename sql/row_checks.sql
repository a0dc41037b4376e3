--
-- row_checks: the row checks of the tables a purchase writes are
-- loyalty.row_checks triggers, compiled once per session, no longer CHECK
-- constraints that PostgreSQL prepares again for every statement (issue 21).
-- Every check still refuses its bad row, on INSERT and on UPDATE, with the
-- SQLSTATE (23514), message and constraint name the CHECK constraint gave.
--
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS loyalty CASCADE;
CREATE EXTENSION loyalty;
RESET client_min_messages;
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';

-- st: the SQLSTATE, the message and the constraint named in the error
CREATE FUNCTION pg_temp.st(call text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE st text; msg text; con text; tab text;
BEGIN
    EXECUTE call;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
        con = CONSTRAINT_NAME, tab = TABLE_NAME;
    RETURN st || ': ' || msg || ' [' || coalesce(tab, '-') || '.' || coalesce(con, '-') || ']';
END
$$;

-- the tables a purchase writes hold no CHECK constraint any more
SELECT c.conrelid::regclass AS table_with_checks, count(*)
  FROM pg_constraint c
 WHERE c.contype = 'c'
   AND c.conrelid IN ('loyalty.operation'::regclass, 'loyalty.lot'::regclass,
                      'loyalty.ledger_entry'::regclass, 'loyalty.purchase'::regclass,
                      'loyalty.purchase_line'::regclass, 'loyalty.coupon'::regclass)
 GROUP BY 1 ORDER BY 1;

INSERT INTO loyalty.category (code, parent, name) VALUES ('all', NULL, 'Everything');
INSERT INTO loyalty.product (sku, name, category, price) VALUES ('A', 'Cream', 'all', 100.00);
INSERT INTO loyalty.account_type (code, name, redeem_share, lifetime) VALUES ('main', 'Bonus points', 1, '1 year');
INSERT INTO loyalty.tier (code, name, rank, threshold, accrual_percent) VALUES ('base', 'Base', 1, 0, 10);
SELECT loyalty.register('+79120000001') AS anna;

-- operation: operation_id_format, operation_internal_namespace
SELECT pg_temp.st($$INSERT INTO loyalty.operation (operation_id, kind, request) VALUES ('', 'purchase', '{}')$$);
SELECT pg_temp.st($$INSERT INTO loyalty.operation (operation_id, kind, request) VALUES (repeat('x', 201), 'purchase', '{}')$$);
SELECT pg_temp.st($$INSERT INTO loyalty.operation (operation_id, kind, request) VALUES ('~P', 'purchase', '{}')$$);
SELECT pg_temp.st($$INSERT INTO loyalty.operation (operation_id, kind, request) VALUES ('m-1', 'merge', '{}')$$);
INSERT INTO loyalty.operation (operation_id, kind, request) VALUES ('P-1', 'purchase', '{}');
SELECT pg_temp.st($$UPDATE loyalty.operation SET operation_id = '' WHERE operation_id = 'P-1'$$);
SELECT pg_temp.st($$UPDATE loyalty.operation SET kind = 'merge' WHERE operation_id = 'P-1'$$);
-- a good update passes
SELECT pg_temp.st($$UPDATE loyalty.operation SET response = '{}' WHERE operation_id = 'P-1'$$);

-- lot: four checks (a lot of 10 points earned at 2026-01-01)
CREATE FUNCTION pg_temp.lot(amount numeric, remaining numeric, expires timestamptz) RETURNS text
LANGUAGE sql AS $$
    SELECT pg_temp.st(format('INSERT INTO loyalty.lot (customer_id, account, amount, remaining, earned_at, available_at, expires_at, operation_id)'
                             ' VALUES (1, %L, %s, %s, %L, %L, %L, %L)', 'main', amount, remaining,
                             '2026-01-01', '2026-01-01', expires, 'P-1'))
$$;
SELECT pg_temp.lot(-10, -10, '2027-01-01') AS debt_expires;
SELECT pg_temp.lot(10, 10, '2025-01-01') AS expires_before_earned;
SELECT pg_temp.lot(10.001, 10, '2027-01-01') AS three_decimals;
SELECT pg_temp.lot(10, 10.005, '2027-01-01') AS remaining_three_decimals;
SELECT pg_temp.lot(10, 11, '2027-01-01') AS remaining_over_amount;
SELECT pg_temp.lot(10, -1, '2027-01-01') AS remaining_negative;
SELECT pg_temp.lot(-10, -11, NULL) AS debt_over_amount;
SELECT pg_temp.lot(10, 10, NULL) AS good_lot;
-- an update is checked as well (as the CHECK constraints were)
SELECT pg_temp.st($$UPDATE loyalty.lot SET remaining = 11 WHERE operation_id = 'P-1'$$) AS update_over_amount;
SELECT pg_temp.st($$UPDATE loyalty.lot SET remaining = 4.5 WHERE operation_id = 'P-1'$$) AS good_update;
SELECT amount, remaining FROM loyalty.lot WHERE operation_id = 'P-1';

-- ledger_entry: ledger_entry_points_nonzero
SELECT pg_temp.st($$INSERT INTO loyalty.ledger_entry (customer_id, account, lot_id, operation_id, kind, points, at)
                    SELECT 1, 'main', id, 'P-1', 'earn', 0, '2026-01-01' FROM loyalty.lot$$) AS zero_points;

-- purchase: purchase_total_adds_up, purchase_refunded_within_total
CREATE FUNCTION pg_temp.purchase(total numeric, refunded numeric) RETURNS text
LANGUAGE sql AS $$
    SELECT pg_temp.st(format('INSERT INTO loyalty.purchase (operation_id, channel, at, amount, discount, redeemed, total, lines, refunded)'
                             ' VALUES (%L, %L, %L, 100, 10, 0, %s, 1, %s)', 'P-1', 'pos', '2026-01-01', total, refunded))
$$;
SELECT pg_temp.purchase(80, 0) AS total_off;
SELECT pg_temp.purchase(90, -1) AS refunded_negative;
SELECT pg_temp.purchase(90, 91) AS refunded_over_total;
SELECT pg_temp.purchase(90, 0) AS good_purchase;
SELECT pg_temp.st($$UPDATE loyalty.purchase SET refunded = 95 WHERE operation_id = 'P-1'$$) AS update_refund_over;

-- purchase_line: purchase_line_refund_within
SELECT pg_temp.st($$INSERT INTO loyalty.purchase_line (operation_id, line_index, sku, qty, price, amount, discount, redeemed, total, refunded_qty)
                    VALUES ('P-1', 0, 'A', 1, 100, 100, 10, 0, 90, 2)$$) AS refunded_qty_over;
INSERT INTO loyalty.purchase_line (operation_id, line_index, sku, qty, price, amount, discount, redeemed, total)
    VALUES ('P-1', 0, 'A', 1, 100, 100, 10, 0, 90);
SELECT pg_temp.st($$UPDATE loyalty.purchase_line SET refunded_total = 91 WHERE operation_id = 'P-1'$$) AS refunded_total_over;

-- coupon: eight checks
CREATE FUNCTION pg_temp.coupon(cols text, vals text) RETURNS text
LANGUAGE sql AS $$
    SELECT pg_temp.st(format('INSERT INTO loyalty.coupon (code, %s) VALUES (%s)', cols, vals))
$$;
SELECT pg_temp.coupon('kind, value, balance', $$'CERT-1', 'certificate', 100, 150$$) AS certificate_has_value;
SELECT pg_temp.coupon('kind, percent', $$'bad code', 'promo', 10$$) AS code_format;
SELECT pg_temp.coupon('kind, percent, value', $$'NOTHING', 'promo', 0, 0$$) AS does_something;
SELECT pg_temp.coupon('kind, percent, max_uses', $$'MAXUSES', 'promo', 10, 0$$) AS max_uses_positive;
SELECT pg_temp.coupon('kind, percent', $$'PERSONAL', 'personal', 10$$) AS personal_has_customer;
SELECT pg_temp.coupon('kind, percent, sold_line', $$'SOLD', 'promo', 10, 0$$) AS sold_line_of_purchase;
SELECT pg_temp.coupon('kind, percent, uses', $$'USES', 'promo', 10, 2$$) AS uses_within_max;
SELECT pg_temp.coupon('kind, percent, valid_from, valid_until', $$'PERIOD', 'promo', 10, '2026-02-01', '2026-01-01'$$) AS valid_period;
SELECT pg_temp.coupon('kind, percent', $$'GOOD', 'promo', 10$$) AS good_coupon;
SELECT pg_temp.st($$UPDATE loyalty.coupon SET uses = 2 WHERE code = 'GOOD'$$) AS update_uses_over;

-- NULL passes, as with CHECK: a lot without expiry, a coupon without valid_until
SELECT count(*) AS lots_without_expiry FROM loyalty.lot WHERE expires_at IS NULL;

-- a session's search_path does not change what the checks call
CREATE SCHEMA evil;
CREATE FUNCTION evil.round(numeric, integer) RETURNS numeric LANGUAGE sql AS 'SELECT $1';
SET search_path = evil, pg_catalog;
-- the table changes: the session compiles its checks again, under this path
ALTER TABLE loyalty.lot SET (fillfactor = 100);
SELECT pg_temp.lot(10.001, 10, NULL) AS three_decimals_under_evil_path;
SELECT pg_temp.lot(10, 10.5, NULL) AS over_amount_under_evil_path;
RESET search_path;
ALTER TABLE loyalty.lot RESET (fillfactor);
DROP SCHEMA evil CASCADE;

-- a purchase writes through them: its rows pass
SELECT loyalty.purchase('{"operation_id": "S-1", "customer": 1, "lines": [{"sku": "A", "qty": 2}]}') -> 'totals' ->> 'total' AS total;
SELECT total, lines FROM loyalty.purchase WHERE operation_id = 'S-1';

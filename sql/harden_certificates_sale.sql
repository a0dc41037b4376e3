--
-- Issue 14 item 3: money minted by a cashier.  A gift certificate is sold
-- as a line of a purchase (a product with gift_certificate), so the money
-- is recorded; issue_certificate is for the marketer and the admin, up to
-- setting certificate_max_value; a refund of the line voids its unused
-- certificates.  Codes are random: the test passes them with \gset and
-- prints only facts about them.
--
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS loyalty CASCADE;
CREATE EXTENSION loyalty;
RESET client_min_messages;
SET timezone = 'Europe/Moscow';
SET datestyle = 'ISO, YMD';

-- an error as SQLSTATE: message / detail
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

INSERT INTO loyalty.store (code, name, timezone, channel) VALUES ('S1', 'Store', 'Europe/Moscow', 'pos');
INSERT INTO loyalty.category (code, name) VALUES ('all', 'All');
INSERT INTO loyalty.product (sku, name, category, price) VALUES ('CREAM', 'Cream', 'all', 400.00);
-- a certificate product with a fixed value, and one whose value the cashier types
INSERT INTO loyalty.product (sku, name, category, price, gift_certificate) VALUES
    ('GIFT1000', 'Gift certificate 1000', 'all', 1000.00, true),
    ('GIFT', 'Gift certificate', 'all', NULL, true);
INSERT INTO loyalty.account_type (code, name, redeem_share, lifetime) VALUES ('main', 'Bonus', 0.9, '1 year');
INSERT INTO loyalty.setting VALUES ('accrual_percent', '5');
-- promotions on everything: none of them may touch the certificate line
INSERT INTO loyalty.promotion (code, name, mechanic, rule, priority) VALUES
    ('ALL10', '10% off everything', 'percent_off', '{"products": {"all": true}, "percent": 10}', 10),
    ('CERT500', 'Every 500: 150', 'certificate_per_amount', '{"step": 500, "value": 150}', 200);
SELECT loyalty.register('+79123456789') AS anna;
SELECT loyalty.adjust('{"operation_id": "g1", "customer": "id:1", "account": "main", "points": 1000, "reason": "gift"}') ->> 'points' AS granted;

-- a certificate product must have no floor and a positive price
SELECT pg_temp.err($$INSERT INTO loyalty.product (sku, name, price, min_price, gift_certificate) VALUES ('BAD', 'Bad', 100, 50, true)$$);
SELECT pg_temp.err($$INSERT INTO loyalty.product (sku, name, price, gift_certificate) VALUES ('BAD', 'Bad', 0, true)$$);

-- the check as a POS sees it, codes left out
CREATE FUNCTION pg_temp.lines(response jsonb) RETURNS TABLE (sku text, amount numeric, discount numeric,
        certificate numeric, redeemed numeric, total numeric, accrual jsonb) LANGUAGE sql AS $$
    SELECT l ->> 'sku', (l ->> 'amount')::numeric, (l ->> 'discount')::numeric,
           coalesce((l ->> 'certificate')::numeric, 0), (l ->> 'redeemed')::numeric,
           (l ->> 'total')::numeric, l -> 'accrual'
      FROM jsonb_array_elements(response -> 'lines') l
$$;
CREATE FUNCTION pg_temp.issued(response jsonb) RETURNS TABLE (kind text, promotion text, line int,
        value numeric, count int, valid_until text, codes int) LANGUAGE sql AS $$
    SELECT i ->> 'kind', i ->> 'promotion', (i ->> 'line')::int, (i ->> 'value')::numeric,
           (i ->> 'count')::int, i ->> 'valid_until', jsonb_array_length(i -> 'codes')
      FROM jsonb_array_elements(response -> 'issued') i
$$;

-- calculate: a 1000.00 certificate next to a cream, 10% off and points to spend.
-- The certificate line takes no discount, no points spent, earns nothing, and
-- does not count for CERT500 (400 - 40 = 360 < 500: no certificate printed).
\set sale '{"customer": "+79123456789", "store": "S1", "lines": [{"sku": "GIFT1000", "qty": 1}, {"sku": "CREAM", "qty": 1}], "redeem": "max"}'
SELECT * FROM pg_temp.lines(loyalty.calculate(:'sale'));
SELECT loyalty.calculate(:'sale') -> 'totals' AS totals, loyalty.calculate(:'sale') -> 'redeem' AS redeem;
SELECT * FROM pg_temp.issued(loyalty.calculate(:'sale'));

-- purchase: the same, plus the code; the money is a purchase line
SELECT loyalty.purchase(jsonb_set(:'sale', '{operation_id}', '"P1"')) AS p1 \gset
SELECT * FROM pg_temp.issued(:'p1');
SELECT :'p1'::jsonb #>> '{issued,0,codes,0}' AS cert \gset
SELECT amount, discount, redeemed, certificate, total FROM loyalty.purchase WHERE operation_id = 'P1';
SELECT line_index, sku, qty, amount, discount, redeemed, total, points
  FROM loyalty.purchase_line WHERE operation_id = 'P1' ORDER BY line_index;
SELECT kind, value, balance, customer_id, promotion, issued_by, sold_line, status,
       valid_from = (SELECT at FROM loyalty.purchase WHERE operation_id = 'P1') AS valid_from_sale,
       valid_until
  FROM loyalty.coupon WHERE code = :'cert';
-- a sold certificate is handed over on the receipt, no coupon_issued event
SELECT count(*) AS coupon_events FROM loyalty.event WHERE kind = 'coupon_issued';

-- the sold certificate pays a later check of someone else: 3 creams, 1080.00 after 10%
SELECT * FROM pg_temp.lines(loyalty.purchase(jsonb_build_object(
    'operation_id', 'P2', 'store', 'S1', 'lines', jsonb_build_array(jsonb_build_object('sku', 'CREAM', 'qty', 3)),
    'coupons', jsonb_build_array(:'cert'))));
SELECT value, balance, status FROM loyalty.coupon WHERE code = :'cert';

-- a certificate is never paid with a certificate
SELECT loyalty.issue_certificate(100) AS cert2 \gset
SELECT * FROM pg_temp.lines(loyalty.calculate(jsonb_build_object(
    'store', 'S1', 'lines', jsonb_build_array(jsonb_build_object('sku', 'GIFT1000', 'qty', 1),
                               jsonb_build_object('sku', 'CREAM', 'qty', 0.1)),
    'coupons', jsonb_build_array(:'cert2'))));

-- the maximum: 50000.00 by default, for a line and for issue_certificate
SELECT pg_temp.err($$SELECT loyalty.calculate('{"store": "S1", "lines": [{"sku": "GIFT", "qty": 1, "price": 50000.01}]}')$$);
SELECT pg_temp.err($$SELECT loyalty.purchase('{"operation_id": "P9", "store": "S1", "lines": [{"sku": "GIFT", "qty": 1, "price": 60000.00}]}')$$);
SELECT pg_temp.err($$SELECT loyalty.calculate('{"store": "S1", "lines": [{"sku": "GIFT1000", "qty": 1.5}]}')$$);
SELECT pg_temp.err($$SELECT loyalty.calculate('{"store": "S1", "lines": [{"sku": "GIFT1000", "qty": 1001}]}')$$);
SELECT pg_temp.err($$SELECT loyalty.issue_certificate(1000000000)$$);
SELECT pg_temp.err($$SELECT loyalty.issue_certificate(50000.01)$$);
SELECT pg_temp.err($$INSERT INTO loyalty.setting VALUES ('certificate_max_value', 'lots')$$);
SELECT count(*) AS nothing_written FROM loyalty.operation WHERE operation_id = 'P9';
SELECT (loyalty.calculate('{"store": "S1", "lines": [{"sku": "GIFT", "qty": 1, "price": 50000.00}]}')
        #>> '{issued,0,value}') AS at_the_maximum;
INSERT INTO loyalty.setting VALUES ('certificate_max_value', '100000');
SELECT loyalty.coupon_code(loyalty.issue_certificate(60000)) IS NOT NULL AS raised_maximum_ok;

-- the cashier sells, the marketer issues
SET ROLE loyalty_cashier;
SELECT pg_temp.err($$SELECT loyalty.issue_certificate(100)$$);
SELECT pg_temp.err($$SELECT * FROM loyalty.coupon$$);
RESET ROLE;
SET ROLE loyalty_marketer;
SELECT loyalty.coupon_code(loyalty.issue_certificate(100)) IS NOT NULL AS marketer_issues;
SELECT code ~ '^\*\*\*\*-\*\*\*\*-[0-9A-Z]{4}$' AS masked, value, sold_line
  FROM loyalty.coupon_masked WHERE issued_by = 'P1';
RESET ROLE;

-- refunds: two certificates sold, one partly spent
SELECT loyalty.purchase('{"operation_id": "P3", "store": "S1", "lines": [{"sku": "CREAM", "qty": 1}, {"sku": "GIFT", "qty": 2, "price": 500.00}]}') AS p3 \gset
SELECT * FROM pg_temp.issued(:'p3');
SELECT :'p3'::jsonb #>> '{issued,0,codes,0}' AS c1, :'p3'::jsonb #>> '{issued,0,codes,1}' AS c2 \gset
SELECT (loyalty.purchase(jsonb_build_object(
    'operation_id', 'P4', 'store', 'S1', 'lines', jsonb_build_array(jsonb_build_object('sku', 'CREAM', 'qty', 0.5)),
    'coupons', jsonb_build_array(:'c2'))) #>> '{totals,certificate}') AS spent_of_c2;
-- both units: one certificate was spent, so nothing is refunded
SELECT pg_temp.err($$SELECT loyalty.refund('{"operation_id": "R1", "purchase": "P3", "lines": [{"index": 1, "qty": 2}]}')$$);
SELECT pg_temp.err($$SELECT loyalty.refund('{"operation_id": "R1", "purchase": "P3"}')$$);
SELECT pg_temp.err($$SELECT loyalty.refund('{"operation_id": "R1", "purchase": "P3", "lines": [{"index": 1, "qty": 0.5}]}')$$);
SELECT count(*) AS nothing_written FROM loyalty.refund WHERE purchase = 'P3';
-- one unit: the unused certificate is voided and its money goes back
SELECT loyalty.refund('{"operation_id": "R2", "purchase": "P3", "lines": [{"index": 1, "qty": 1}]}') AS r2 \gset
SELECT :'r2'::jsonb -> 'lines' AS lines, :'r2'::jsonb -> 'totals' AS totals,
       :'r2'::jsonb -> 'certificates_voided' = jsonb_build_array(:'c1') AS voided_c1;
SELECT code = :'c1' AS is_c1, status, balance FROM loyalty.coupon WHERE issued_by = 'P3' ORDER BY code = :'c1' DESC;
SELECT amount, total, refunded FROM loyalty.purchase WHERE operation_id = 'P3';
-- the voided certificate pays nothing any more
SELECT loyalty.calculate(jsonb_build_object('store', 'S1', 'lines', '[{"sku": "CREAM", "qty": 1}]'::jsonb,
    'coupons', jsonb_build_array(:'c1'))) -> 'coupons' -> 0 ->> 'reason' AS c1_now;
-- the cream refunds as ever
SELECT loyalty.refund('{"operation_id": "R3", "purchase": "P3", "lines": [{"index": 0, "qty": 1}]}') -> 'totals' AS cream_back;

-- a full refund of a purchase whose certificate is unused voids it
SELECT loyalty.purchase('{"operation_id": "P5", "store": "S1", "lines": [{"sku": "GIFT1000", "qty": 1}]}') #>> '{issued,0,codes,0}' AS c5 \gset
SELECT r -> 'totals' AS totals, r -> 'full' AS full, jsonb_array_length(r -> 'certificates_voided') AS voided
  FROM loyalty.refund('{"operation_id": "R5", "purchase": "P5"}') AS r;
SELECT status FROM loyalty.coupon WHERE code = :'c5';
-- P1's certificate paid P2 in full: refunding P1 is refused
SELECT pg_temp.err($$SELECT loyalty.refund('{"operation_id": "R6", "purchase": "P1"}')$$);

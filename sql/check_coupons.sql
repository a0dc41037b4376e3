--
-- Coupons, gift certificates, bounce-back coupons and tier upgrades in
-- checks (issue 5).  Codes are random: the test passes them along with
-- \gset and never prints them.
--
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS loyalty CASCADE;
CREATE EXTENSION loyalty;
RESET client_min_messages;
SET timezone = 'Europe/Moscow';
SET datestyle = 'ISO, YMD';
-- the checks' dates are the server's time (loyalty.test_now, issue 14 item 4)
SET loyalty.test_now = 'at';

INSERT INTO loyalty.store (code, name, timezone, channel) VALUES
    ('S1', 'Store', 'Europe/Moscow', 'pos'), ('WEB', 'Online', NULL, 'web');
INSERT INTO loyalty.category (code, name) VALUES ('all', 'All');
INSERT INTO loyalty.product (sku, name, category, price) VALUES
    ('GUM', 'Chewing gum', 'all', 5.75), ('CREAM', 'Cream', 'all', 400.00),
    ('DRUG', 'Drug', 'all', 1000.00);
INSERT INTO loyalty.account_type (code, name, redeem_share, lifetime) VALUES ('main', 'Bonus', 0.9, '1 year');
INSERT INTO loyalty.tier (code, name, rank, threshold, accrual_percent) VALUES
    ('standard', 'Standart', 1, 0, 5), ('gold', 'Gold', 2, 15000, 10), ('platinum', 'Platinum', 3, 50000, 15);
SELECT loyalty.register('+79123456789') AS anna, loyalty.register('+79221234567') AS boris;

-- the check as a POS sees it: totals, coupons, certificate balance
CREATE FUNCTION pg_temp.show(response jsonb) RETURNS TABLE (total numeric, discount numeric,
        certificate numeric, coupons text) LANGUAGE sql AS $$
    SELECT (response #>> '{totals,total}')::numeric, (response #>> '{totals,discount}')::numeric,
           coalesce((response #>> '{totals,certificate}')::numeric, 0),
           (SELECT string_agg(c ->> 'status' || coalesce(' (' || (c ->> 'reason') || ')', '')
                              || coalesce(' amount ' || (c ->> 'amount'), '')
                              || coalesce(' balance ' || (c ->> 'balance'), ''), '; ')
              FROM jsonb_array_elements(response -> 'coupons') c)
$$;

-- a gift certificate of 100 pays a 5.75 basket and keeps 94.25
SELECT loyalty.issue_certificate(100) AS cert \gset
-- (issued now; the checks below are dated 2026-11-20, so start its validity earlier)
UPDATE loyalty.coupon SET valid_from = '2026-01-01' WHERE code = :'cert';
SELECT * FROM pg_temp.show(loyalty.calculate(jsonb_build_object(
    'store', 'S1', 'at', '2026-11-20T12:00:00+03:00',
    'lines', jsonb_build_array(jsonb_build_object('sku', 'GUM', 'qty', 1)),
    'coupons', jsonb_build_array(:'cert'))));
SELECT * FROM pg_temp.show(loyalty.purchase(jsonb_build_object(
    'operation_id', 'C1', 'store', 'S1', 'at', '2026-11-20T12:00:00+03:00',
    'lines', jsonb_build_array(jsonb_build_object('sku', 'GUM', 'qty', 1)),
    'coupons', jsonb_build_array(lower(replace(:'cert', '-', ''))))));
SELECT value, balance, uses, status FROM loyalty.coupon WHERE code = :'cert';
-- spent partially again, online this time, next to money
SELECT * FROM pg_temp.show(loyalty.purchase(jsonb_build_object(
    'operation_id', 'C2', 'store', 'WEB', 'at', '2026-11-20T12:05:00+03:00',
    'lines', jsonb_build_array(jsonb_build_object('sku', 'CREAM', 'qty', 1)),
    'coupons', jsonb_build_array(:'cert'))));
SELECT balance, status FROM loyalty.coupon WHERE code = :'cert';
SELECT certificate, total FROM loyalty.purchase WHERE operation_id = 'C2';

-- codes that cannot be used are reported, never an error
SELECT * FROM pg_temp.show(loyalty.calculate(jsonb_build_object(
    'at', '2026-11-20T12:00:00+03:00',
    'lines', jsonb_build_array(jsonb_build_object('sku', 'GUM', 'qty', 1)),
    'coupons', jsonb_build_array('NO-SUCH-CODE', :'cert', :'cert'))));

-- a promo code unlocks a requires_coupon promotion; single use
INSERT INTO loyalty.promotion (code, name, mechanic, rule, requires_coupon)
VALUES ('SPRING', 'Spring code: 10% off', 'percent_off', '{"products": {"all": true}, "percent": 10}', true);
SELECT code AS spring FROM loyalty.issue_coupons('SPRING', 1) AS code \gset
UPDATE loyalty.coupon SET valid_from = '2026-01-01' WHERE code = :'spring';
SELECT * FROM pg_temp.show(loyalty.calculate(jsonb_build_object(
    'at', '2026-11-20T12:00:00+03:00',
    'lines', jsonb_build_array(jsonb_build_object('sku', 'CREAM', 'qty', 1)))));
SELECT * FROM pg_temp.show(loyalty.purchase(jsonb_build_object(
    'operation_id', 'C3', 'at', '2026-11-20T12:00:00+03:00',
    'lines', jsonb_build_array(jsonb_build_object('sku', 'CREAM', 'qty', 1)),
    'coupons', jsonb_build_array(:'spring'))));
SELECT * FROM pg_temp.show(loyalty.calculate(jsonb_build_object(
    'at', '2026-11-20T12:10:00+03:00',
    'lines', jsonb_build_array(jsonb_build_object('sku', 'CREAM', 'qty', 1)),
    'coupons', jsonb_build_array(:'spring'))));
-- a full refund gives the coupon back
SELECT loyalty.refund('{"operation_id": "R3", "purchase": "C3"}') ->> 'full' AS full_refund;
SELECT uses, status FROM loyalty.coupon WHERE code = :'spring';

-- a personal coupon is for its customer only
SELECT code AS personal FROM loyalty.issue_coupons('SPRING', 1, 1, NULL, '+79123456789') AS code \gset
UPDATE loyalty.coupon SET valid_from = '2026-01-01' WHERE code = :'personal';
SELECT who, (SELECT coupons FROM pg_temp.show(loyalty.calculate(jsonb_build_object(
           'customer', who, 'at', '2026-11-20T12:00:00+03:00',
           'lines', jsonb_build_array(jsonb_build_object('sku', 'CREAM', 'qty', 1)),
           'coupons', jsonb_build_array(:'personal'))))) AS coupon
  FROM unnest(ARRAY['+79123456789', '+79221234567', NULL]) AS who;
-- validity windows
UPDATE loyalty.coupon SET valid_from = '2026-12-01 00:00+03' WHERE code = :'personal';
SELECT coupons FROM pg_temp.show(loyalty.calculate(jsonb_build_object(
    'customer', '+79123456789', 'at', '2026-11-20T12:00:00+03:00',
    'lines', jsonb_build_array(jsonb_build_object('sku', 'CREAM', 'qty', 1)),
    'coupons', jsonb_build_array(:'personal'))));
UPDATE loyalty.coupon SET valid_from = '2026-01-01 00:00+03', valid_until = '2026-11-01 00:00+03'
 WHERE code = :'personal';
SELECT coupons FROM pg_temp.show(loyalty.calculate(jsonb_build_object(
    'customer', '+79123456789', 'at', '2026-11-20T12:00:00+03:00',
    'lines', jsonb_build_array(jsonb_build_object('sku', 'CREAM', 'qty', 1)),
    'coupons', jsonb_build_array(:'personal'))));

-- "skidochek": from 1000 a 10% coupon, from 1500 15%, from 2000 20%, for the
-- next purchase from 1000 until the end of the month
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES ('BOUNCE', 'Skidochek', 'coupon_issue',
    '{"steps": [{"min_total": 1000, "percent": 10}, {"min_total": 1500, "percent": 15},
                {"min_total": 2000, "percent": 20}], "min_total_to_use": 1000, "valid": "end_of_month"}');
SELECT loyalty.purchase(jsonb_build_object(
    'operation_id', 'B1', 'customer', '+79123456789', 'store', 'S1', 'at', '2026-11-20T12:00:00+03:00',
    'lines', jsonb_build_array(jsonb_build_object('sku', 'CREAM', 'qty', 4)))) #> '{issued,0}' AS issued \gset
SELECT (:'issued'::jsonb) - 'codes' AS issued, jsonb_array_length((:'issued'::jsonb) -> 'codes') AS codes;
SELECT (:'issued'::jsonb) #>> '{codes,0}' AS bounce \gset
SELECT kind, percent, min_total, valid_until, customer_id, issued_by FROM loyalty.coupon WHERE code = :'bounce';
-- too small a check, then a check from 1000: 15% off
SELECT * FROM pg_temp.show(loyalty.calculate(jsonb_build_object(
    'customer', '+79123456789', 'at', '2026-11-25T12:00:00+03:00',
    'lines', jsonb_build_array(jsonb_build_object('sku', 'CREAM', 'qty', 2)),
    'coupons', jsonb_build_array(:'bounce'))));
SELECT * FROM pg_temp.show(loyalty.purchase(jsonb_build_object(
    'operation_id', 'B2', 'customer', '+79123456789', 'at', '2026-11-25T12:00:00+03:00',
    'lines', jsonb_build_array(jsonb_build_object('sku', 'CREAM', 'qty', 3)),
    'coupons', jsonb_build_array(:'bounce'))));
SELECT uses, status FROM loyalty.coupon WHERE code = :'bounce';
-- a coupon's percent is of what it may discount: never of no_discount items
INSERT INTO loyalty.product (sku, name, category, price, no_discount) VALUES ('PATCH', 'Patches', 'all', 500.00, true);
INSERT INTO loyalty.coupon (code, promotion, customer_id, kind, percent, valid_from)
VALUES ('TEN-PERCENT', 'BOUNCE', 1, 'personal', 10, '2026-01-01');
SELECT * FROM pg_temp.show(loyalty.calculate(jsonb_build_object(
    'customer', '+79123456789', 'at', '2026-11-25T12:00:00+03:00',
    'lines', jsonb_build_array(jsonb_build_object('sku', 'CREAM', 'qty', 1),
                               jsonb_build_object('sku', 'PATCH', 'qty', 1)),
    'coupons', jsonb_build_array('TEN-PERCENT'))));
-- in December it would have expired
SELECT coupons FROM pg_temp.show(loyalty.calculate(jsonb_build_object(
    'customer', '+79123456789', 'at', '2026-12-01T00:00:00+03:00',
    'lines', jsonb_build_array(jsonb_build_object('sku', 'CREAM', 'qty', 3)),
    'coupons', jsonb_build_array(:'bounce'))));

-- an issued code that collides with an existing coupon's is replaced: the
-- coupon, its event, the response, the stored response and a replay all
-- carry the new code.  (The developer option loyalty.debug_coupon_codes
-- hands out the taken code first; random codes collide once in 2^55.)
SELECT loyalty.new_coupon_code() AS taken, loyalty.new_coupon_code() AS fresh \gset
INSERT INTO loyalty.coupon (code, promotion, customer_id, kind, percent, valid_from)
VALUES (:'taken', 'BOUNCE', 1, 'personal', 5, '2026-01-01');
SET loyalty.debug_coupon_codes = :'taken', :'fresh';
SELECT r #>> '{issued,0,codes,0}' = :'fresh' AS response_has_new_code,
       jsonb_array_length(r #> '{issued,0,codes}') AS codes
  FROM loyalty.purchase(jsonb_build_object(
    'operation_id', 'B3', 'customer', '+79123456789', 'at', '2026-11-26T12:00:00+03:00',
    'lines', jsonb_build_array(jsonb_build_object('sku', 'CREAM', 'qty', 4)))) AS r;
RESET loyalty.debug_coupon_codes;
SELECT code = :'fresh' AS coupon_has_new_code, kind, percent FROM loyalty.coupon WHERE issued_by = 'B3';
SELECT percent, issued_by FROM loyalty.coupon WHERE code = :'taken';
SELECT response #>> '{issued,0,codes,0}' = :'fresh' AS stored_response_has_new_code
  FROM loyalty.operation WHERE operation_id = 'B3';
SELECT payload ->> 'code' = :'fresh' AS event_has_new_code
  FROM loyalty.event WHERE kind = 'coupon_issued' AND payload ->> 'code' IN (:'taken', :'fresh');
SELECT r #>> '{issued,0,codes,0}' = :'fresh' AS replay_has_new_code
  FROM loyalty.purchase(jsonb_build_object(
    'operation_id', 'B3', 'customer', '+79123456789', 'at', '2026-11-26T12:00:00+03:00',
    'lines', jsonb_build_array(jsonb_build_object('sku', 'CREAM', 'qty', 4)))) AS r;
-- a purchase gives up after eight colliding codes in a row, writing nothing
SELECT string_agg(:'taken', ',') AS taken8 FROM generate_series(1, 8) \gset
SET loyalty.debug_coupon_codes = :'taken8';
SELECT loyalty.purchase(jsonb_build_object(
    'operation_id', 'B4', 'customer', '+79123456789', 'at', '2026-11-26T13:00:00+03:00',
    'lines', jsonb_build_array(jsonb_build_object('sku', 'CREAM', 'qty', 4))));
RESET loyalty.debug_coupon_codes;
SELECT count(*) AS b4_rows FROM loyalty.operation WHERE operation_id = 'B4';
-- the option takes well-formed codes only
SET loyalty.debug_coupon_codes = 'K7QX-9M2P-4RTA';

-- every 500 spent: a 150 certificate for the next purchase
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
    ('CERT500', 'Every 500: 150', 'certificate_per_amount', '{"step": 500, "value": 150, "valid": "30 days"}');
UPDATE loyalty.promotion SET enabled = false WHERE code = 'BOUNCE';
SELECT (r #> '{issued,0}') - 'codes' AS issued, jsonb_array_length(r #> '{issued,0,codes}') AS codes
  FROM loyalty.purchase(jsonb_build_object(
    'operation_id', 'P1', 'customer', '+79221234567', 'at', '2026-11-20T12:00:00+03:00',
    'lines', jsonb_build_array(jsonb_build_object('sku', 'DRUG', 'qty', 1),
                               jsonb_build_object('sku', 'CREAM', 'qty', 1)))) AS r;
SELECT kind, value, balance, valid_until FROM loyalty.coupon WHERE issued_by = 'P1';
-- a full refund voids what the purchase issued and nobody used
SELECT loyalty.refund('{"operation_id": "R1", "purchase": "P1"}') ->> 'full' AS full_refund;
SELECT status, count(*) FROM loyalty.coupon WHERE issued_by = 'P1' GROUP BY 1;

-- a customer moves up a tier with the purchase that reaches it: this check
-- earns at the old tier, the next at the new one
UPDATE loyalty.promotion SET enabled = false WHERE code = 'CERT500';
SELECT tier FROM loyalty.customer WHERE id = 2;
SELECT r #>> '{totals,accrual,main}' AS earned, r #>> '{customer,tier}' AS tier_during
  FROM loyalty.purchase(jsonb_build_object('operation_id', 'T1', 'customer', '+79221234567',
        'at', '2026-11-21T12:00:00+03:00',
        'lines', jsonb_build_array(jsonb_build_object('sku', 'DRUG', 'qty', 16)))) AS r;
SELECT tier FROM loyalty.customer WHERE id = 2;
SELECT r #>> '{totals,accrual,main}' AS earned, r #>> '{customer,tier}' AS tier_during
  FROM loyalty.calculate(jsonb_build_object('customer', '+79221234567',
        'at', '2026-11-21T13:00:00+03:00',
        'lines', jsonb_build_array(jsonb_build_object('sku', 'DRUG', 'qty', 1)))) AS r;
SELECT kind, regexp_replace(message, '[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}', 'XXXX-XXXX-XXXX') AS message
  FROM loyalty.take_events(100) WHERE kind IN ('tier_changed', 'coupon_issued') ORDER BY id;

SELECT count(*) AS ledger_problems FROM loyalty.verify_ledger();

-- 90-day subscriptions to chronic-disease drugs at a reduced price: buying
-- the plan's SKU starts (or extends) the subscription, during which the
-- plan's products cost 20% less
INSERT INTO loyalty.category (code, name) VALUES ('cardio', 'Cardiology');
INSERT INTO loyalty.product (sku, name, category, price) VALUES
    ('BISO', 'Bisoprolol N30', 'cardio', 287.40), ('SUB-CARDIO', 'Cardio subscription, 90 days', 'all', 99.00);
INSERT INTO loyalty.subscription_plan VALUES ('CARDIO', 'Cardio, 90 days', 'SUB-CARDIO', '{"categories": ["cardio"]}', '90 days');
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
    ('CARDIO20', 'Cardio subscription price', 'subscription_price', '{"plan": "CARDIO", "percent": 20}');
SELECT r #>> '{totals,total}' AS total FROM loyalty.calculate(jsonb_build_object(
    'customer', '+79123456789', 'at', '2026-11-20T12:00:00+03:00',
    'lines', jsonb_build_array(jsonb_build_object('sku', 'BISO', 'qty', 1)))) AS r;
SELECT r #>> '{totals,total}' AS total FROM loyalty.purchase(jsonb_build_object(
    'operation_id', 'SUB1', 'customer', '+79123456789', 'at', '2026-11-20T12:00:00+03:00',
    'lines', jsonb_build_array(jsonb_build_object('sku', 'SUB-CARDIO', 'qty', 1)))) AS r;
SELECT plan, starts_at, ends_at FROM loyalty.subscription;
SELECT r #>> '{totals,total}' AS total, r #>> '{lines,0,promotions,0,code}' AS promotion
  FROM loyalty.calculate(jsonb_build_object(
    'customer', '+79123456789', 'at', '2026-11-21T12:00:00+03:00',
    'lines', jsonb_build_array(jsonb_build_object('sku', 'BISO', 'qty', 1)))) AS r;
-- a second purchase of the plan extends it by another 90 days
SELECT r #>> '{totals,total}' AS total FROM loyalty.purchase(jsonb_build_object(
    'operation_id', 'SUB2', 'customer', '+79123456789', 'at', '2026-12-01T12:00:00+03:00',
    'lines', jsonb_build_array(jsonb_build_object('sku', 'SUB-CARDIO', 'qty', 1)))) AS r;
SELECT plan, starts_at, ends_at FROM loyalty.subscription;
-- after it ends, the full price again
SELECT r #>> '{totals,total}' AS total FROM loyalty.calculate(jsonb_build_object(
    'customer', '+79123456789', 'at', '2027-06-01T12:00:00+03:00',
    'lines', jsonb_build_array(jsonb_build_object('sku', 'BISO', 'qty', 1)))) AS r;
SELECT count(*) AS ledger_problems FROM loyalty.verify_ledger();

--
-- harden_certificates: certificate_per_amount issues at most "max_per_check"
-- certificates per check (issue 14 item 2).  In 0.8 a check earning many
-- certificates ran a quadratic loop that no cancel, terminate or
-- statement_timeout could stop (90,000 certificates took 9 s, a price of
-- 600,000,000 ran for over 11 minutes).  Now a check earning more than the
-- cap gets exactly the cap (default 10, at most 1000), the issued item says
-- "capped", and a rule asking for more than 1000 is refused with LY006.
-- Codes are random: the test counts them and never prints them.
--
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS loyalty CASCADE;
CREATE EXTENSION loyalty;
RESET client_min_messages;
\set VERBOSITY default
SET timezone = 'Europe/Moscow';
SET datestyle = 'ISO, YMD';
-- the checks' dates are the server's time (loyalty.test_now, issue 14 item 4)
SET loyalty.test_now = 'at';

INSERT INTO loyalty.store (code, name, timezone, channel) VALUES ('S1', 'Store', 'Europe/Moscow', 'pos');
INSERT INTO loyalty.category (code, name) VALUES ('all', 'All');
INSERT INTO loyalty.product (sku, name, category, price) VALUES ('DRUG', 'Drug', 'all', 1000.00);
INSERT INTO loyalty.account_type (code, name, redeem_share, lifetime) VALUES ('main', 'Bonus', 0.9, '1 year');
SELECT loyalty.register('+79123456789') AS anna;

-- the SPEC's rule: every 500 spent gives a 150 certificate; no max_per_check
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
    ('CERT500', 'Every 500: 150', 'certificate_per_amount', '{"step": 500, "value": 150, "valid": "30 days"}');

-- a purchase of 8 x 1000 earns 16 certificates: it gets the default cap, 10
CREATE FUNCTION pg_temp.buy(op text, qty int) RETURNS jsonb LANGUAGE sql AS $$
    SELECT loyalty.purchase(jsonb_build_object(
        'operation_id', op, 'customer', '+79123456789', 'store', 'S1',
        'at', '2026-11-20T12:00:00+03:00',
        'lines', jsonb_build_array(jsonb_build_object('sku', 'DRUG', 'qty', qty))))
$$;
SELECT (r #> '{issued,0}') - 'codes' AS issued,
       jsonb_array_length(r #> '{issued,0,codes}') AS codes,
       r -> 'messages' AS messages
  FROM pg_temp.buy('P1', 8) AS r;
SELECT count(*) AS certificates, count(DISTINCT code) AS distinct_codes, sum(value) AS face_value
  FROM loyalty.coupon WHERE issued_by = 'P1';
SELECT count(*) AS coupon_issued_events
  FROM loyalty.event WHERE kind = 'coupon_issued' AND payload ->> 'promotion' = 'CERT500';

-- a check earning fewer than the cap is not marked "capped"
SELECT (r #> '{issued,0}') - 'codes' AS issued, jsonb_array_length(r #> '{issued,0,codes}') AS codes
  FROM pg_temp.buy('P2', 2) AS r;

-- a huge check (40,000 certificates earned; 0.8 spent seconds here, and
-- 11 minutes on a larger one) gets exactly the cap, well within a timeout
-- that keeps a regression from hanging the suite
SET statement_timeout = '20s';
SELECT r #>> '{issued,0,count}' AS count, r #>> '{issued,0,capped}' AS capped,
       jsonb_array_length(r #> '{issued,0,codes}') AS codes
  FROM pg_temp.buy('P3', 20000) AS r;
SELECT count(*) AS certificates FROM loyalty.coupon WHERE issued_by = 'P3';
-- nearly the largest check a request may carry (99,999 x 99,999.99, just
-- under 10^10): 19,999,800 certificates earned, 10 issued
UPDATE loyalty.product SET price = 99999.99 WHERE sku = 'DRUG';
SELECT r #>> '{issued,0,count}' AS count, jsonb_array_length(r #> '{issued,0,codes}') AS codes
  FROM pg_temp.buy('P4', 99999) AS r;
SELECT count(*) AS certificates FROM loyalty.coupon WHERE issued_by = 'P4';
RESET statement_timeout;
UPDATE loyalty.product SET price = 1000.00 WHERE sku = 'DRUG';

-- calculate says the same, without codes
SELECT (r #> '{issued,0}') AS issued
  FROM loyalty.calculate(jsonb_build_object('customer', '+79123456789', 'store', 'S1',
        'at', '2026-11-20T12:00:00+03:00',
        'lines', jsonb_build_array(jsonb_build_object('sku', 'DRUG', 'qty', 100)))) AS r;

-- a rule may set its own cap, from 1 to 1000
UPDATE loyalty.promotion SET rule = rule || '{"max_per_check": 1000}' WHERE code = 'CERT500';
SELECT r #>> '{issued,0,count}' AS count, r #>> '{issued,0,capped}' AS capped,
       jsonb_array_length(r #> '{issued,0,codes}') AS codes
  FROM pg_temp.buy('P5', 600) AS r;
SELECT r #>> '{issued,0,count}' AS count, r #>> '{issued,0,capped}' AS capped,
       jsonb_array_length(r #> '{issued,0,codes}') AS codes
  FROM pg_temp.buy('P6', 499) AS r;
SELECT count(*) AS certificates, count(DISTINCT code) AS distinct_codes
  FROM loyalty.coupon WHERE issued_by IN ('P5', 'P6');
UPDATE loyalty.promotion SET rule = rule || '{"max_per_check": 1}' WHERE code = 'CERT500';
SELECT r #>> '{issued,0,count}' AS count, r -> 'messages' AS messages
  FROM pg_temp.buy('P7', 3) AS r;
-- a full refund voids every certificate the capped purchase issued
SELECT loyalty.refund('{"operation_id": "R3", "purchase": "P3"}') ->> 'full' AS full_refund;
SELECT status, count(*) FROM loyalty.coupon WHERE issued_by = 'P3' GROUP BY 1;

-- beyond the hard maximum, or not a whole positive number: LY006 naming the field
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
    ('BAD1', 'too many', 'certificate_per_amount', '{"step": 500, "value": 150, "max_per_check": 1001}');
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
    ('BAD1', 'none', 'certificate_per_amount', '{"step": 500, "value": 150, "max_per_check": 0}');
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
    ('BAD1', 'half', 'certificate_per_amount', '{"step": 500, "value": 150, "max_per_check": 2.5}');
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
    ('BAD1', 'text', 'certificate_per_amount', '{"step": 500, "value": 150, "max_per_check": "10"}');
UPDATE loyalty.promotion SET rule = rule || '{"max_per_check": 1000000}' WHERE code = 'CERT500';
DO $$
DECLARE
    detail text;
BEGIN
    UPDATE loyalty.promotion SET rule = rule || '{"max_per_check": 5000}' WHERE code = 'CERT500';
EXCEPTION WHEN SQLSTATE 'LY006' THEN
    GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
    RAISE NOTICE 'caught % (%): %', SQLSTATE, SQLERRM, detail;
END $$;
-- the field is certificate_per_amount's only
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
    ('BAD1', 'bounce', 'coupon_issue', '{"steps": [{"min_total": 1000, "percent": 10}], "max_per_check": 5}');
SELECT code, rule FROM loyalty.promotion ORDER BY code;

SELECT count(*) AS ledger_problems FROM loyalty.verify_ledger();

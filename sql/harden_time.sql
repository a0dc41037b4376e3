--
-- harden_time: time travel through "at" (issue 14 item 4).  A request's
-- "at" may lie at most max_backdate (72 hours) before the server's time and
-- at most max_clock_skew (5 minutes) after it, else 22023 naming "at".
-- Promotions are judged at "at"; spending, pending points and coupon
-- validity at the server's time; periods a check starts (activation delay,
-- lifetime, validity of what it issues) run from the earlier of the two.
--
-- The server's time is fixed with loyalty.test_now: Monday 2026-12-07
-- 12:00 in Moscow (09:00 UTC), so that the test means the same in any year.
--
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS loyalty CASCADE;
CREATE EXTENSION loyalty;
RESET client_min_messages;
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';
SET loyalty.test_now = '2026-12-07T12:00:00+03:00';

-- SQLSTATE, message and detail of a call, or "ok"
CREATE FUNCTION pg_temp.try(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    detail text;
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
    RETURN SQLSTATE || ': ' || SQLERRM || coalesce(' / ' || nullif(detail, ''), '');
END
$$;
-- a check request for customer 1 with one line of A, dated at, redeeming redeem
CREATE FUNCTION pg_temp.req(op text, at text, redeem jsonb DEFAULT NULL,
                            coupons jsonb DEFAULT NULL) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_strip_nulls(jsonb_build_object(
        'operation_id', op, 'customer', 1, 'store', 'MSK', 'at', at, 'redeem', redeem,
        'coupons', coupons, 'lines', '[{"sku": "A", "qty": 1}]'::jsonb))
$$;
-- the main account as balance() shows it at the server's time
CREATE FUNCTION pg_temp.main() RETURNS TABLE (available numeric, pending numeric)
LANGUAGE sql AS $$
    SELECT available, pending FROM loyalty.balance('+79120000001', '2026-12-07T12:00:00+03:00')
     WHERE account = 'main'
$$;

INSERT INTO loyalty.setting (key, value) VALUES ('timezone', 'Europe/Moscow'), ('accrual_percent', '10');
INSERT INTO loyalty.store (code, name, region, timezone, channel) VALUES
    ('MSK', 'Moscow', 'center', 'Europe/Moscow', 'pos');
INSERT INTO loyalty.category (code, parent, name) VALUES ('all', NULL, 'Everything');
INSERT INTO loyalty.product (sku, name, category, price) VALUES ('A', 'Thing', 'all', 1000.00);
INSERT INTO loyalty.account_type (code, name, redeem_share, lifetime, activation_delay) VALUES
    ('main', 'Bonus points', 1, '1 year', '1 day');
SELECT loyalty.register('+79120000001') AS anna;

-- the settings, their defaults and their validation (LY006)
SELECT key, value, is_set FROM loyalty.settings WHERE key IN ('max_backdate', 'max_clock_skew') ORDER BY key;
SELECT pg_temp.try($$INSERT INTO loyalty.setting VALUES ('max_backdate', 'forever')$$) AS word;
SELECT pg_temp.try($$INSERT INTO loyalty.setting VALUES ('max_clock_skew', '-5 minutes')$$) AS negative;
SELECT pg_temp.try($$INSERT INTO loyalty.setting VALUES ('max_backdate', '11 years')$$) AS too_long;

-- 100 points available, 167 pending until tomorrow (adjust follows the
-- server's time too)
SELECT loyalty.adjust('{"operation_id": "G1", "customer": 1, "account": "main", "points": 100, "reason": "gift"}')
       -> 'balance' AS balance;
SELECT loyalty.adjust('{"operation_id": "G2", "customer": 1, "account": "main", "points": 167,
                        "available_at": "2026-12-08T12:00:00+03:00", "reason": "welcome"}') -> 'balance' AS balance;
SELECT * FROM pg_temp.main();

-- exploit 1: a purchase dated two days ahead spent the 167 pending points.
-- Now "at" is refused beyond max_clock_skew, and nothing is written
SELECT pg_temp.try(format('SELECT loyalty.purchase(%L)',
       pg_temp.req('F1', '2026-12-09T12:00:00+03:00', '"max"'))) AS two_days_ahead;
SELECT count(*) AS purchases FROM loyalty.purchase;
-- the window's upper edge: server time + 5 minutes is accepted, one second
-- more is not
SELECT pg_temp.try(format('SELECT loyalty.calculate(%L)',
       pg_temp.req(NULL, '2026-12-07T12:05:01+03:00'))) AS skew_plus_1s;
-- just inside, pending points stay pending: "max" spends the 100 available,
-- and the new lot's periods run from the server's time, not from "at"
SELECT r #> '{totals,redeemed}' AS redeemed, r -> 'balance' AS balance_before
  FROM loyalty.purchase(pg_temp.req('F2', '2026-12-07T12:05:00+03:00', '"max"')) r;
SELECT * FROM pg_temp.main();
SELECT amount, earned_at, available_at, expires_at FROM loyalty.lot
 WHERE operation_id = 'F2';
-- and a number of points beyond what is available is LY004
SELECT pg_temp.try(format('SELECT loyalty.purchase(%L)',
       pg_temp.req('F3', '2026-12-07T12:05:00+03:00', '167'))) AS pending_points;

-- exploit 2: a coupon past its validity applied when "at" fell inside it.
-- Gift certificates of 100: EXPIRED ran out on Sunday 00:00, and a check
-- dated Saturday 20:00 (inside the window) no longer brings it back: a
-- coupon must be valid at the server's time as well as at "at".  Validity
-- ends exclusively (ATNOON ends at the server's time), and a coupon issued
-- after the check's moment (FRESH) was not valid when the customer paid
INSERT INTO loyalty.coupon (code, kind, value, balance, valid_from, valid_until, max_uses) VALUES
    ('EXPIRED', 'certificate', 100, 100, '2026-11-01 00:00+03', '2026-12-06 00:00+03', 1000000),
    ('LASTSECOND', 'certificate', 100, 100, '2026-11-01 00:00+03', '2026-12-07 12:00:01+03', 1000000),
    ('ATNOON', 'certificate', 100, 100, '2026-11-01 00:00+03', '2026-12-07 12:00:00+03', 1000000),
    ('FRESH', 'certificate', 100, 100, '2026-12-07 11:00+03', NULL, 1000000);
SELECT c ->> 'code' AS code, c ->> 'status' AS status, c ->> 'reason' AS reason,
       r #> '{totals,certificate}' AS certificate
  FROM unnest(ARRAY['EXPIRED', 'LASTSECOND', 'ATNOON', 'FRESH']) AS code,
       loyalty.calculate(pg_temp.req(NULL, '2026-12-05T20:00:00+03:00', NULL, jsonb_build_array(code))) r,
       jsonb_array_elements(r -> 'coupons') c;

-- exploit 3: the Tuesday-only discount applied on a Monday with "at" last
-- Tuesday.  Last Tuesday is six days back: outside the window
INSERT INTO loyalty.promotion (code, name, mechanic, rule, schedule) VALUES
    ('TUESDAY', 'Tuesdays', 'percent_off', '{"products": {"all": true}, "percent": 10}', '{"weekdays": [2]}'),
    ('WEEKEND', 'Weekends', 'percent_off', '{"products": {"all": true}, "percent": 5}', '{"weekdays": [6, 7]}');
SELECT pg_temp.try(format('SELECT loyalty.calculate(%L)',
       pg_temp.req(NULL, '2026-12-01T12:00:00+03:00'))) AS last_tuesday;
-- the lower edge: exactly 72 hours back is accepted, one second more is not
SELECT pg_temp.try(format('SELECT loyalty.calculate(%L)',
       pg_temp.req(NULL, '2026-12-04T11:59:59+03:00'))) AS backdate_plus_1s;
-- within the window promotions are judged at "at": a check from a register
-- that was offline on Saturday gets the weekend discount, today's does not
SELECT at, (SELECT string_agg(p ->> 'code', ', ') FROM jsonb_array_elements(r -> 'promotions') p) AS promotions
  FROM unnest(ARRAY['2026-12-04T12:00:00+03:00', '2026-12-05T20:00:00+03:00', '2026-12-07T12:00:00+03:00']) AS at,
       loyalty.calculate(pg_temp.req(NULL, at)) r;
-- an operator who allows a week gets last Tuesday's price
INSERT INTO loyalty.setting VALUES ('max_backdate', '7 days');
SELECT (SELECT string_agg(p ->> 'code', ', ') FROM jsonb_array_elements(r -> 'promotions') p) AS promotions
  FROM loyalty.calculate(pg_temp.req(NULL, '2026-12-01T12:00:00+03:00')) r;
DELETE FROM loyalty.setting WHERE key = 'max_backdate';
DELETE FROM loyalty.promotion;

-- exploit 4: "at" in 2199 created a lot available in 2200
SELECT pg_temp.try(format('SELECT loyalty.purchase(%L)',
       pg_temp.req('F4', '2199-06-01T12:00:00+03:00'))) AS year_2199;
SELECT count(*) AS lots_after_2100 FROM loyalty.lot WHERE available_at > '2100-01-01';

-- a backdated check cannot spend points that expired since: 50 points
-- expiring at 13:00, a check dated 12:30 sent at 14:00
SELECT loyalty.adjust('{"operation_id": "G3", "customer": 1, "account": "main", "points": 50,
                        "expires_at": "2026-12-07T13:00:00+03:00", "reason": "short"}') -> 'balance' AS balance;
SET loyalty.test_now = '2026-12-07T14:00:00+03:00';
SELECT r #> '{totals,redeemed}' AS redeemed, r -> 'balance' AS balance
  FROM loyalty.calculate(pg_temp.req(NULL, '2026-12-07T12:30:00+03:00', '"max"')) r;
SELECT pg_temp.try(format('SELECT loyalty.purchase(%L)',
       pg_temp.req('F5', '2026-12-07T12:30:00+03:00', '50'))) AS expired_points;

-- refunds and catalog_prices check "at" the same way
SELECT pg_temp.try($$SELECT loyalty.refund('{"operation_id": "R1", "purchase": "F2", "at": "2026-12-01T12:00:00+03:00"}')$$)
       AS refund_last_week;
SELECT pg_temp.try($$SELECT * FROM loyalty.catalog_prices('+79120000001', 'MSK', NULL, ARRAY['A'], '2026-12-08 12:00+03')$$)
       AS prices_tomorrow;
SELECT sku, price, personal_price FROM loyalty.catalog_prices('+79120000001', 'MSK', NULL, ARRAY['A'], '2026-12-07 13:00+03');

-- a purchase sent again after its window has passed still returns what was
-- stored (idempotency comes before the window)
SET loyalty.test_now = '2026-12-14T12:00:00+03:00';
SELECT r #> '{totals,redeemed}' AS redeemed
  FROM loyalty.purchase(pg_temp.req('F2', '2026-12-07T12:05:00+03:00', '"max"')) r;

-- loyalty.test_now: 'at' takes each request's "at" as the server's time
-- (tests and replays); a malformed value is refused; only a superuser sets it
SET loyalty.test_now = 'at';
SELECT r #> '{totals,total}' AS total FROM loyalty.calculate(pg_temp.req(NULL, '2030-01-01T00:00:00Z')) r;
SELECT pg_temp.try($$SET loyalty.test_now = 'tomorrow'$$) AS malformed;
SELECT pg_temp.try($$SET loyalty.test_now = '2026-12-07 12:00'$$) AS no_offset;
RESET loyalty.test_now;
CREATE ROLE harden_time_cashier;
SET ROLE harden_time_cashier;
SELECT pg_temp.try($$SET loyalty.test_now = 'at'$$) AS as_cashier;
RESET ROLE;
DROP ROLE harden_time_cashier;
-- without it, the window follows the real clock: a check dated now is
-- accepted, one a day old too, one a year old is not
SELECT pg_temp.try(format('SELECT loyalty.calculate(%L)', pg_temp.req(NULL,
           to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')))) AS now,
       pg_temp.try(format('SELECT loyalty.calculate(%L)', pg_temp.req(NULL,
           to_char((now() - interval '1 day') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')))) AS day_ago,
       left(pg_temp.try(format('SELECT loyalty.calculate(%L)', pg_temp.req(NULL,
           to_char((now() - interval '1 year') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')))), 24) AS year_ago;

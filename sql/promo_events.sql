--
-- promo_events: issue 18, the points budget (promotion.points_budget) and
-- event points (loyalty.points_event: welcome, first_purchase, birthday).
-- Every figure below is computed by hand in the comment above its query.
--
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS loyalty CASCADE;
CREATE EXTENSION loyalty;
RESET client_min_messages;
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';
\set VERBOSITY default

INSERT INTO loyalty.category (code, parent, name) VALUES ('all', NULL, 'Everything');
INSERT INTO loyalty.product (sku, name, category, price) VALUES
    ('A', 'Serum', 'all', 500.00),
    ('C', 'Day cream', 'all', 199.90);
INSERT INTO loyalty.account_type (code, name, redeem_share, min_check, lifetime, activation_delay, redeem_order) VALUES
    ('main', 'Bonus points', 0.9, 0, '1 year', '0', 100),
    ('promo', 'Promo points', 0.3, 0, NULL, '0', 10),
    ('gift', 'Birthday points', 1, 0, '7 days', '0', 5);
SET loyalty.test_now = '2026-06-10 12:00:00+00';

--
-- points budget: points_fixed, 100 points a check, 250 points in all
--
SELECT loyalty.register('+79120000001') AS anna;
INSERT INTO loyalty.promotion (code, name, mechanic, rule, points_budget) VALUES
    ('PB', '100 promo points while 250 last', 'points_fixed',
     '{"points": 100, "account": "promo"}', 250);
-- 100, then 100: 200 given, 50 left
SELECT loyalty.purchase('{"operation_id": "P-1", "customer": 1, "lines": [{"sku": "A", "qty": 1}]}') -> 'totals' -> 'accrual' ->> 'promo' AS p1,
       loyalty.purchase('{"operation_id": "P-2", "customer": 1, "lines": [{"sku": "A", "qty": 1}]}') -> 'totals' -> 'accrual' ->> 'promo' AS p2;
SELECT promotion, given, points_given FROM loyalty.promotion_usage;
-- the last check takes only the 50 left.  The grant of 100 is spread over
-- the lines by their paid money 500.00 : 199.90 -> 71.47 / 28.53 -> 71 / 29
-- (the larger remainder, C, takes the point left over); the 50 over the
-- budget come off in proportion to those points, 71 : 29 -> 35.5 / 14.5,
-- the tie to the lower index: A gives 36, C 14 -> A 35, C 15
SELECT r -> 'totals' -> 'accrual' ->> 'promo' AS promo,
       (SELECT string_agg(l -> 'accrual' ->> 'promo', ' / ') FROM jsonb_array_elements(r -> 'lines') l) AS per_line,
       (SELECT p ->> 'points' FROM jsonb_array_elements(r -> 'promotions') p WHERE p ->> 'code' = 'PB') AS credited
  FROM loyalty.purchase('{"operation_id": "P-3", "customer": 1, "lines": [{"sku": "A", "qty": 1}, {"sku": "C", "qty": 1}]}') r;
SELECT promotion, given, points_given FROM loyalty.promotion_usage;
SELECT operation_id, promotion, given, points FROM loyalty.promotion_budget_claim ORDER BY 1;
-- the ledger holds 100 + 100 + 50 promo points
SELECT sum(points) AS promo_in_ledger FROM loyalty.ledger_entry WHERE account = 'promo';
-- used up: the promotion gives nothing and is not listed
SELECT r -> 'totals' -> 'accrual' ->> 'promo' AS used_up,
       jsonb_array_length(r -> 'promotions') AS promotions
  FROM loyalty.calculate('{"customer": 1, "lines": [{"sku": "A", "qty": 1}]}') r;
-- the full refund of P-1 gives its 100 back: 150 given, 100 left
SELECT loyalty.refund('{"operation_id": "R-1", "purchase": "P-1", "lines": [{"index": 0, "qty": 1}]}') IS NOT NULL AS refunded;
SELECT promotion, given, points_given FROM loyalty.promotion_usage;
SELECT loyalty.calculate('{"customer": 1, "lines": [{"sku": "A", "qty": 1}]}') -> 'totals' -> 'accrual' ->> 'promo' AS after_refund;
DELETE FROM loyalty.promotion;
DELETE FROM loyalty.promotion_usage;

-- points_percent: 10% of the paid money in promo points, 30 points in all.
-- A at 500.00: 50 points > 30 left: capped at 30
INSERT INTO loyalty.promotion (code, name, mechanic, rule, points_budget) VALUES
    ('PP', '10% in points while 30 last', 'points_percent',
     '{"products": {"all": true}, "percent": 10, "account": "promo"}', 30);
SELECT r -> 'totals' -> 'accrual' ->> 'promo' AS capped,
       (SELECT p ->> 'points' FROM jsonb_array_elements(r -> 'promotions') p WHERE p ->> 'code' = 'PP') AS credited
  FROM loyalty.purchase('{"operation_id": "P-4", "customer": 1, "lines": [{"sku": "A", "qty": 1}]}') r;
-- C at 199.90 earns 19 (19.99 rounded down), but nothing is left
SELECT loyalty.calculate('{"customer": 1, "lines": [{"sku": "C", "qty": 1}]}') -> 'totals' -> 'accrual' ->> 'promo' AS nothing_left;
SELECT promotion, given, points_given FROM loyalty.promotion_usage;
-- validated on write: a points budget must be positive (23514)
\set VERBOSITY terse
UPDATE loyalty.promotion SET points_budget = 0;
\set VERBOSITY default
DELETE FROM loyalty.promotion;

--
-- event points: configuration validated on write (LY006 naming the field)
--
INSERT INTO loyalty.points_event (event, points) VALUES ('anniversary', 10);
INSERT INTO loyalty.points_event (event, points) VALUES ('welcome', 0);
INSERT INTO loyalty.points_event (event, points) VALUES ('welcome', 10.5);
INSERT INTO loyalty.points_event (event, points, account) VALUES ('welcome', 10, 'nope');
INSERT INTO loyalty.points_event (event, points, lifetime) VALUES ('welcome', 10, '-1 day');
INSERT INTO loyalty.points_event (event, points, account) VALUES
    ('welcome', 300, 'main'),
    ('first_purchase', 200, 'promo'),
    ('birthday', 500, 'gift');
SELECT * FROM loyalty.points_event ORDER BY event;

--
-- welcome: on registration, once
--
SELECT loyalty.register('+79120000002') AS boris;
SELECT loyalty.register('+79120000002') AS boris_again;
-- 300 main points, expiring after main's lifetime (1 year)
SELECT customer_id, account, kind, points, operation_id FROM loyalty.ledger_entry WHERE customer_id = 2 ORDER BY id;
SELECT account, amount, available_at, expires_at FROM loyalty.lot WHERE customer_id = 2;
SELECT kind, payload ->> 'points' AS points, loyalty.event_message(kind, payload, 'en') AS en,
       loyalty.event_message(kind, payload, 'ru') AS ru
  FROM loyalty.event WHERE customer_id = 2 ORDER BY id;
-- a customer registered before the configuration got nothing (anna, 1)
SELECT count(*) AS anna_welcome FROM loyalty.ledger_entry WHERE operation_id = '~welcome:1';

--
-- first purchase: 200 promo points with the customer's first purchase only
--
SELECT loyalty.purchase('{"operation_id": "F-1", "customer": 2, "lines": [{"sku": "C", "qty": 1}]}') IS NOT NULL AS first;
SELECT loyalty.purchase('{"operation_id": "F-2", "customer": 2, "lines": [{"sku": "C", "qty": 1}]}') IS NOT NULL AS second;
-- replaying F-1 changes nothing
SELECT loyalty.purchase('{"operation_id": "F-1", "customer": 2, "lines": [{"sku": "C", "qty": 1}]}') IS NOT NULL AS replay;
SELECT account, kind, points, operation_id FROM loyalty.ledger_entry
 WHERE customer_id = 2 AND operation_id LIKE '~first%' ORDER BY id;
SELECT kind, payload ->> 'points' AS points, loyalty.event_message(kind, payload, 'en') AS en
  FROM loyalty.event WHERE customer_id = 2 AND kind = 'first_purchase_points';
-- anna (1) bought before: her next purchase is not a first one
SELECT loyalty.purchase('{"operation_id": "F-3", "customer": 1, "lines": [{"sku": "C", "qty": 1}]}') IS NOT NULL AS anna;
SELECT count(*) AS anna_first FROM loyalty.ledger_entry WHERE operation_id LIKE '~first_purchase:%' AND customer_id = 1;
-- the full refund of the first purchase takes the 200 back (promo 200 -> 0)
-- and no later purchase is a first one again
SELECT loyalty.refund('{"operation_id": "FR-1", "purchase": "F-1", "lines": [{"index": 0, "qty": 1}]}') IS NOT NULL AS refunded;
SELECT account, kind, points, operation_id, ref_operation_id FROM loyalty.ledger_entry
 WHERE customer_id = 2 AND account = 'promo' ORDER BY id;
SELECT sum(remaining) AS promo_after_refund FROM loyalty.lot WHERE customer_id = 2 AND account = 'promo';
SELECT loyalty.purchase('{"operation_id": "F-4", "customer": 2, "lines": [{"sku": "C", "qty": 1}]}') IS NOT NULL AS later;
SELECT count(*) AS first_grants FROM loyalty.ledger_entry WHERE operation_id LIKE '~first_purchase:%' AND kind = 'adjust';

--
-- birthday: maintenance on the birthday in the program's time zone
-- (Europe/Moscow, UTC+3), once a year, into "gift" (7 days)
--
UPDATE loyalty.customer SET birth_date = '1990-06-11' WHERE id = 2;
SELECT loyalty.register('+79120000003', '{"birth_date": "2000-02-29"}') AS vera;
-- 2026-06-10 20:00 UTC is 23:00 on the 10th in Moscow: not yet
SELECT loyalty.grant_birthday_points('2026-06-10 20:00:00+00') AS on_the_10th;
-- 2026-06-10 21:30 UTC is 00:30 on the 11th in Moscow: boris's birthday
SELECT loyalty.grant_birthday_points('2026-06-10 21:30:00+00') AS on_the_11th;
-- twice the same day: nothing more
SELECT loyalty.grant_birthday_points('2026-06-11 08:00:00+00') AS again;
SELECT account, kind, points, operation_id, at FROM loyalty.ledger_entry WHERE account = 'gift' ORDER BY id;
SELECT amount, expires_at FROM loyalty.lot WHERE account = 'gift' ORDER BY id;
SELECT loyalty.event_message(kind, payload, 'en') AS en, loyalty.event_message(kind, payload, 'ru') AS ru
  FROM loyalty.event WHERE kind = 'birthday_points';
-- through run_maintenance: the next year, once
SELECT loyalty.run_maintenance('2027-06-11 09:00:00+00') ->> 'birthday_points' AS maintenance_2027;
SELECT loyalty.run_maintenance('2027-06-11 10:00:00+00') ->> 'birthday_points' AS maintenance_again;
-- born on 29 February: on 28 February in 2027 (no 29th), not on 1 March
SELECT loyalty.grant_birthday_points('2027-02-28 09:00:00+00') AS feb_28;
SELECT loyalty.grant_birthday_points('2027-03-01 09:00:00+00') AS mar_1;
SELECT customer_id, operation_id, points FROM loyalty.ledger_entry WHERE account = 'gift' AND kind = 'adjust' ORDER BY id;
-- a blocked customer gets none; a disabled event grants nothing
UPDATE loyalty.customer SET status = 'blocked' WHERE id = 2;
SELECT loyalty.grant_birthday_points('2028-06-11 09:00:00+00') AS blocked;
UPDATE loyalty.customer SET status = 'active' WHERE id = 2;
UPDATE loyalty.points_event SET enabled = false;
SELECT loyalty.grant_birthday_points('2028-06-11 09:00:00+00') AS disabled;
SELECT loyalty.register('+79120000004') AS gleb;
SELECT count(*) AS gleb_entries FROM loyalty.ledger_entry WHERE customer_id = 4;
SELECT count(*) AS ledger_problems FROM loyalty.verify_ledger();

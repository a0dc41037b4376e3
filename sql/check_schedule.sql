--
-- check_schedule: when and where a promotion applies (SPEC section 5):
-- period (start inclusive, end exclusive), weekday/date/day-of-month/hour
-- schedules in the store's local time zone, channel, store, region, tier,
-- segment, identified customers only.
--
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS loyalty CASCADE;
CREATE EXTENSION loyalty;
RESET client_min_messages;
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';
-- the checks' dates are the server's time (loyalty.test_now, issue 14 item 4)
SET loyalty.test_now = 'at';

-- which promotions applied to a one-line check, given the request's extras
CREATE FUNCTION pg_temp.applied(extra jsonb)
RETURNS text LANGUAGE sql AS $$
    SELECT coalesce(string_agg(p ->> 'code', ', ' ORDER BY p ->> 'code'), '-')
      FROM jsonb_array_elements(loyalty.calculate(
               '{"lines": [{"sku": "A", "qty": 1, "price": 100}]}'::jsonb || extra) -> 'promotions') p
$$;

INSERT INTO loyalty.setting (key, value) VALUES ('timezone', 'Europe/Moscow');
INSERT INTO loyalty.store (code, name, region, timezone, channel) VALUES
    ('MSK', 'Moscow', 'center', 'Europe/Moscow', 'pos'),
    ('VLAD', 'Vladivostok', 'east', 'Asia/Vladivostok', 'pos'),
    ('WEB', 'Online store', NULL, NULL, 'web');
INSERT INTO loyalty.category (code, parent, name) VALUES ('all', NULL, 'Everything');
INSERT INTO loyalty.product (sku, name, category, price) VALUES ('A', 'Thing', 'all', 100.00);

-- a Tuesday-only promotion follows the store's time zone: Monday 2026-11-23
-- 20:00 UTC is Monday 23:00 in Moscow but already Tuesday 03:00 in Vladivostok
INSERT INTO loyalty.promotion (code, name, mechanic, rule, schedule) VALUES
    ('TUESDAY', 'Tuesdays', 'percent_off', '{"products": {"all": true}, "percent": 10}', '{"weekdays": [2]}');
SELECT store, pg_temp.applied(jsonb_build_object('store', store, 'at', '2026-11-23T20:00:00Z')) AS applied
  FROM unnest(ARRAY['MSK', 'VLAD', 'WEB']) AS store;
-- without a store, the program time zone (Moscow)
SELECT pg_temp.applied('{"at": "2026-11-23T20:59:59Z"}') AS monday, pg_temp.applied('{"at": "2026-11-23T21:00:00Z"}') AS tuesday;
DELETE FROM loyalty.promotion;

-- hours [from, to) in local time, dates, days of the month
INSERT INTO loyalty.promotion (code, name, mechanic, rule, schedule) VALUES
    ('HAPPY', 'Happy hours', 'percent_off', '{"products": {"all": true}, "percent": 5}', '{"hours": ["10:00", "14:00"]}'),
    ('BLACKFRIDAY', 'Black Friday', 'percent_off', '{"products": {"all": true}, "percent": 5}', '{"dates": ["2026-11-27"]}'),
    ('PAYDAY', 'Paydays', 'percent_off', '{"products": {"all": true}, "percent": 5}', '{"days_of_month": [1, 15]}');
SELECT at, pg_temp.applied(jsonb_build_object('store', 'MSK', 'at', at)) AS applied
  FROM unnest(ARRAY['2026-11-27T09:59:59+03:00', '2026-11-27T10:00:00+03:00', '2026-11-27T13:59:59+03:00',
                    '2026-11-27T14:00:00+03:00', '2026-11-26T23:59:59+03:00', '2026-12-01T12:00:00+03:00',
                    '2026-12-15T00:00:00+03:00']) AS at;
DELETE FROM loyalty.promotion;

-- period: starts_at inclusive, ends_at exclusive
INSERT INTO loyalty.promotion (code, name, mechanic, rule, starts_at, ends_at) VALUES
    ('NOVEMBER', 'November', 'percent_off', '{"products": {"all": true}, "percent": 5}',
     '2026-11-01 00:00+03', '2026-12-01 00:00+03');
SELECT at, pg_temp.applied(jsonb_build_object('at', at)) AS applied
  FROM unnest(ARRAY['2026-10-31T23:59:59+03:00', '2026-11-01T00:00:00+03:00',
                    '2026-11-30T23:59:59+03:00', '2026-12-01T00:00:00+03:00']) AS at;
DELETE FROM loyalty.promotion;

-- channel, store, region
INSERT INTO loyalty.promotion (code, name, mechanic, rule, channels, stores, regions) VALUES
    ('ONLINE', 'Online only', 'percent_off', '{"products": {"all": true}, "percent": 5}', '{web,app}', NULL, NULL),
    ('VLADONLY', 'One store', 'percent_off', '{"products": {"all": true}, "percent": 5}', NULL, '{VLAD}', NULL),
    ('CENTER', 'One region', 'percent_off', '{"products": {"all": true}, "percent": 5}', NULL, NULL, '{center}');
SELECT req, pg_temp.applied(req::jsonb) AS applied
  FROM unnest(ARRAY['{}', '{"store": "MSK"}', '{"store": "VLAD"}', '{"store": "WEB"}',
                    '{"store": "MSK", "channel": "app"}', '{"channel": "web"}']) AS req;
DELETE FROM loyalty.promotion;

-- identified customers, tiers, segments
INSERT INTO loyalty.tier (code, name, rank, threshold) VALUES ('silver', 'Silver', 1, 0), ('gold', 'Gold', 2, 15000);
INSERT INTO loyalty.segment (code, name) VALUES ('active', 'Active buyers');
SELECT loyalty.register('+79120000001') AS plain, loyalty.register('+79120000002') AS gold_active;
UPDATE loyalty.customer SET tier = 'gold' WHERE id = 2;
INSERT INTO loyalty.segment_member (segment, customer_id) VALUES ('active', 2);
INSERT INTO loyalty.promotion (code, name, mechanic, rule, identified_only, tiers, segments) VALUES
    ('MEMBERS', 'Members', 'percent_off', '{"products": {"all": true}, "percent": 5}', true, NULL, NULL),
    ('GOLD', 'Gold tier', 'percent_off', '{"products": {"all": true}, "percent": 5}', false, '{gold}', NULL),
    ('ACTIVE', 'Active segment', 'percent_off', '{"products": {"all": true}, "percent": 5}', false, NULL, '{active}');
SELECT req, pg_temp.applied(req::jsonb) AS applied
  FROM unnest(ARRAY['{}', '{"customer": "8 912 000-00-01"}', '{"customer": "id:2"}']) AS req;
-- a customer with no tier counts as the lowest tier (silver): GOLD does not apply
SELECT loyalty.calculate('{"customer": 1, "lines": [{"sku": "A", "qty": 1}]}') -> 'customer' AS customer;
-- a merged customer resolves to the survivor
SELECT loyalty.register('+79120000003') AS absorbed;
SELECT loyalty.merge_customers(2, 3) ->> 'keep' AS keep;
SELECT loyalty.calculate('{"customer": 3, "lines": [{"sku": "A", "qty": 1}]}') -> 'customer' AS customer;

--
-- promotion: rows of loyalty.promotion are parsed on write (SPEC section 5).
-- A malformed mechanic, rule or schedule is refused with SQLSTATE LY006 and
-- an errdetail naming the JSON path of the field; column checks give 23514.
--
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS loyalty CASCADE;
CREATE EXTENSION loyalty;
RESET client_min_messages;
\set VERBOSITY default

--
-- One valid promotion of every mechanic.
--

-- percent_off: 30% on all cosmetics
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
  ('COSM30', '30% on cosmetics', 'percent_off',
   '{"products": {"categories": ["cosmetics"]}, "percent": 30}');
-- percent_off on everything but prescription drugs, 12.5%
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
  ('SPRING', 'Spring sale', 'percent_off',
   '{"products": {"all": true, "exclude": {"tags": ["rx"]}}, "percent": 12.5}');
-- amount_off: 50.00 off every unit of a brand ("per" defaults to "unit")
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
  ('NIVEA50', '50 off Nivea', 'amount_off',
   '{"products": {"brands": ["Nivea"]}, "amount": 50}'),
  ('LINE100', '100 off a line of vitamins', 'amount_off',
   '{"products": {"categories": ["vitamins"], "skus": ["A1", "B2"]}, "amount": 100.00, "per": "line"}');
-- check_discount: the best step reached (steps may be written in any order)
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
  ('CHECK10', 'Check discount', 'check_discount',
   '{"steps": [{"min_total": 2000, "amount": 300}, {"min_total": 1000, "percent": 10}]}');
-- nth_item: the third pack for 1.00; the second pack at half price
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
  ('THIRD1', 'Third pack for 1 rub', 'nth_item',
   '{"products": {"categories": ["diapers"]}, "n": 3, "price": 1.00}'),
  ('SECOND50', 'Second pack -50%', 'nth_item', '{"n": 2, "percent": 50}');
-- bundle: 30% off lozenges bought with an antiviral
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
  ('LOZENGE', 'Lozenges with an antiviral', 'bundle',
   '{"trigger": {"tags": ["antiviral"]}, "trigger_qty": 1,
     "target": {"categories": ["lozenges"]}, "percent": 30, "per_trigger": 1}');
-- gift: two facial-care items bring a mask
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
  ('MASKGIFT', 'A mask as a gift', 'gift',
   '{"trigger": {"categories": ["facial-care"]}, "trigger_qty": 2, "gift": "MASK-01", "gift_qty": 1}');
-- tier_discount: the tier's discount_percent, on everything by default
INSERT INTO loyalty.promotion (code, name, mechanic, rule, priority) VALUES
  ('TIER', 'Tier discount', 'tier_discount', '{}', 10),
  ('TIERNORX', 'Tier discount, no prescriptions', 'tier_discount',
   '{"products": {"all": true, "exclude": {"tags": ["rx"]}}}', 11);
-- points_percent: extra 5% in points, or double points on a brand
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
  ('VIT5', '5% points on vitamins', 'points_percent',
   '{"products": {"categories": ["vitamins"]}, "percent": 5, "account": "main"}'),
  ('LRPX2', 'Double points on La Roche-Posay', 'points_percent',
   '{"products": {"brands": ["La Roche-Posay"]}, "multiplier": 2}');
-- points_fixed: 1000 points for a check from 2000, valid to the end of the month
INSERT INTO loyalty.promotion (code, name, mechanic, rule, segments, per_customer_limit) VALUES
  ('BONUS1000', '1000 points from 2000', 'points_fixed',
   '{"min_total": 2000, "points": 1000, "account": "promo", "expires": "end_of_month"}',
   NULL, 1),
  ('ACTIVE200', '200 points for the active segment', 'points_fixed',
   '{"min_total": 1500, "points": 200, "account": "promo", "expires": "30 days"}',
   '{active}', 1);
-- coupon_issue: a bounce-back coupon for the next purchase
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
  ('BOUNCE', 'Bounce-back coupon', 'coupon_issue',
   '{"steps": [{"min_total": 1000, "percent": 10}, {"min_total": 1500, "percent": 15},
               {"min_total": 2000, "percent": 20}],
     "min_total_to_use": 1000, "valid": "end_of_month"}');
-- certificate_per_amount: every 500 spent gives a 150 certificate
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
  ('CERT500', '150 for every 500', 'certificate_per_amount',
   '{"step": 500, "value": 150, "valid": "30 days"}');
-- subscription_price: 20% off the CARDIO plan's products
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
  ('CARDIO', 'Cardio subscription', 'subscription_price',
   '{"plan": "CARDIO", "percent": 20}');

-- schedules: Tuesdays and Thursdays 10:00-14:00; two windows on the 1st and 15th;
-- a calendar date
INSERT INTO loyalty.promotion (code, name, mechanic, rule, schedule, channels) VALUES
  ('TUETHU', 'Tuesday and Thursday mornings', 'percent_off',
   '{"products": {"categories": ["cosmetics"]}, "percent": 15}',
   '{"weekdays": [2, 4], "hours": ["10:00", "14:00"]}', '{pos}'),
  ('PAYDAY', 'Payday evenings', 'percent_off',
   '{"products": {"all": true}, "percent": 5}',
   '{"days_of_month": [1, 15], "hours": [["08:00", "10:00"], ["18:00", "24:00"]]}', '{pos,web,app}'),
  ('BLACKFRI', 'Black Friday', 'check_discount',
   '{"steps": [{"min_total": 0, "percent": 7}]}',
   '{"dates": ["2026-11-27", "2026-11-28"]}', NULL);

SELECT code, mechanic, priority FROM loyalty.promotion ORDER BY priority, code;

--
-- Refused rows: each shows the promotion, the field and what is wrong.
--

-- unknown mechanic; the hint lists the known ones
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
  ('BAD1', 'typo', 'percent_of', '{"products": {"all": true}, "percent": 10}');
-- percent out of range
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
  ('BAD2', 'too much', 'percent_off', '{"products": {"all": true}, "percent": 150}');
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
  ('BAD2', 'nothing', 'percent_off', '{"products": {"all": true}, "percent": 0}');
-- too many decimals: percent and money take at most two
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
  ('BAD3', 'decimals', 'percent_off', '{"products": {"all": true}, "percent": 12.345}');
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
  ('BAD3', 'decimals', 'amount_off', '{"products": {"all": true}, "amount": 9.999}');
-- percent_off needs a product selector (a discount on everything is {"all": true})
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
  ('BAD4', 'no products', 'percent_off', '{"percent": 10}');
-- an empty selector selects nothing
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
  ('BAD5', 'empty selector', 'percent_off', '{"products": {}, "percent": 10}');
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
  ('BAD5', 'empty lists', 'percent_off', '{"products": {"skus": [], "brands": []}, "percent": 10}');
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
  ('BAD5', 'all and a list', 'percent_off',
   '{"products": {"all": true, "brands": ["Nivea"]}, "percent": 10}');
-- a list element of the wrong type is named by its index
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
  ('BAD5', 'bad category', 'percent_off',
   '{"products": {"categories": ["cosmetics", "hair", 17]}, "percent": 10}');
-- unknown keys (typos) are errors; the hint lists the known fields
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
  ('BAD6', 'typo', 'percent_off', '{"products": {"all": true}, "percnet": 10}');
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
  ('BAD6', 'typo in exclude', 'percent_off',
   '{"products": {"all": true, "exclude": {"brand": ["X"]}}, "percent": 10}');
-- wrong JSON types
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
  ('BAD6', 'string percent', 'percent_off', '{"products": {"all": true}, "percent": "10"}');
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
  ('BAD6', 'not an object', 'percent_off', '[10]');
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
  ('BAD6', 'per', 'amount_off', '{"products": {"all": true}, "amount": 50, "per": "check"}');
-- schedule: weekday, hours, dates
INSERT INTO loyalty.promotion (code, name, mechanic, rule, schedule) VALUES
  ('BAD7', 'weekday 8', 'percent_off', '{"products": {"all": true}, "percent": 10}',
   '{"weekdays": [1, 8]}');
INSERT INTO loyalty.promotion (code, name, mechanic, rule, schedule) VALUES
  ('BAD8', 'hour 25', 'percent_off', '{"products": {"all": true}, "percent": 10}',
   '{"hours": ["10:00", "25:00"]}');
INSERT INTO loyalty.promotion (code, name, mechanic, rule, schedule) VALUES
  ('BAD8', 'empty window', 'percent_off', '{"products": {"all": true}, "percent": 10}',
   '{"hours": [["08:00", "10:00"], ["22:00", "02:00"]]}');
INSERT INTO loyalty.promotion (code, name, mechanic, rule, schedule) VALUES
  ('BAD9', 'no such date', 'percent_off', '{"products": {"all": true}, "percent": 10}',
   '{"dates": ["2026-02-28", "2026-02-30"]}');
INSERT INTO loyalty.promotion (code, name, mechanic, rule, schedule) VALUES
  ('BAD9', 'schedule typo', 'percent_off', '{"products": {"all": true}, "percent": 10}',
   '{"weekday": [1]}');
-- steps: exactly one of percent and amount, distinct min_total
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
  ('BAD10', 'no discount', 'check_discount',
   '{"steps": [{"min_total": 1000, "percent": 10}, {"min_total": 2000}]}');
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
  ('BAD10', 'both', 'coupon_issue',
   '{"steps": [{"min_total": 1000, "percent": 10, "amount": 100}]}');
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
  ('BAD10', 'percent 0 to 100', 'check_discount',
   '{"steps": [{"min_total": 1000, "percent": 10}, {"min_total": 2000, "percent": 101}]}');
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
  ('BAD10', 'same threshold', 'check_discount',
   '{"steps": [{"min_total": 1000, "percent": 10}, {"min_total": 1000.00, "amount": 150}]}');
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
  ('BAD10', 'no steps', 'check_discount', '{"steps": []}');
-- other mechanics: n >= 2, one of price/percent/amount, validity, required fields
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
  ('BAD11', 'every item', 'nth_item', '{"n": 1, "price": 1}');
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
  ('BAD11', 'what discount', 'nth_item', '{"n": 3}');
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
  ('BAD11', 'half a pack', 'nth_item', '{"n": 2.5, "percent": 50}');
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
  ('BAD11', 'seconds', 'points_fixed', '{"points": 100, "expires": "30"}');
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
  ('BAD11', 'negative', 'certificate_per_amount', '{"step": 500, "value": 150, "valid": "-30 days"}');
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
  ('BAD11', 'no gift', 'gift', '{"trigger": {"skus": ["A1"]}, "gift": ""}');
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
  ('BAD11', 'both', 'points_percent', '{"percent": 5, "multiplier": 2}');
INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
  ('BAD11', 'no plan', 'subscription_price', '{"percent": 20}');

-- the SQLSTATE is LY006, so a client can tell a configuration error apart
DO $$
DECLARE
    detail text;
BEGIN
    INSERT INTO loyalty.promotion (code, name, mechanic, rule) VALUES
      ('BAD12', 'caught', 'bundle', '{"trigger": {"all": true}, "target": {"all": true}, "percent": 150}');
EXCEPTION WHEN SQLSTATE 'LY006' THEN
    GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
    RAISE NOTICE 'caught % (%): %', SQLSTATE, SQLERRM, detail;
END
$$;

-- an UPDATE is checked as well: the row stays as it was
UPDATE loyalty.promotion SET rule = jsonb_set(rule, '{percent}', '300') WHERE code = 'COSM30';
UPDATE loyalty.promotion SET mechanic = 'amount_off' WHERE code = 'COSM30';
UPDATE loyalty.promotion SET schedule = '{"hours": ["9:00", "18:00"]}' WHERE code = 'COSM30';
SELECT code, mechanic, rule, schedule FROM loyalty.promotion WHERE code = 'COSM30';
-- a valid change goes through
UPDATE loyalty.promotion SET rule = jsonb_set(rule, '{percent}', '35') WHERE code = 'COSM30';
SELECT code, rule->'percent' AS percent FROM loyalty.promotion WHERE code = 'COSM30';

-- column checks are table constraints: SQLSTATE 23514 (check_violation), not LY006
DO $$
DECLARE
    constraint_name text;
BEGIN
    INSERT INTO loyalty.promotion (code, name, mechanic, rule, channels) VALUES
      ('TV', 'TV shop', 'percent_off', '{"products": {"all": true}, "percent": 10}', '{pos,tv}');
EXCEPTION WHEN check_violation THEN
    GET STACKED DIAGNOSTICS constraint_name = CONSTRAINT_NAME;
    RAISE NOTICE 'caught % on constraint %', SQLSTATE, constraint_name;
END
$$;

SELECT count(*) AS promotions FROM loyalty.promotion;

--
-- Tiers, coupons, gift certificates and subscription plans.
--
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS loyalty CASCADE;
CREATE EXTENSION loyalty;
RESET client_min_messages;
SET timezone = 'Europe/Moscow';
SET datestyle = 'ISO, YMD';

-- three tiers by yearly spend: Standart 5%, Gold 10% from 15000, Platinum 15% from 50000
INSERT INTO loyalty.tier (code, name, rank, threshold, accrual_percent) VALUES
    ('standard', 'Standart', 1, 0, 5), ('gold', 'Gold', 2, 15000, 10), ('platinum', 'Platinum', 3, 50000, 15);
-- a new customer starts in the lowest tier
SELECT loyalty.register('+79123456789') AS anna, loyalty.register('+79221234567') AS boris,
       loyalty.register('+79031112233') AS vera;
SELECT id, tier FROM loyalty.customer ORDER BY id;

-- purchase facts (written by loyalty.purchase; here directly) and a refund
INSERT INTO loyalty.purchase (operation_id, customer_id, store, channel, at, amount, discount, redeemed, total, lines, refunded)
VALUES ('P1', 1, 'S1', 'pos', '2026-03-01 12:00+03', 16000, 0, 0, 16000, 1, 0),
       ('P2', 2, 'S1', 'pos', '2026-06-01 12:00+03', 60000, 0, 0, 60000, 1, 20000),
       ('P3', 3, 'S1', 'pos', '2025-01-10 12:00+03', 90000, 0, 0, 90000, 1, 0);
-- spend in the last 365 days, net of refunds: Anna 16000 (gold), Boris 40000 (gold), Vera nothing
SELECT loyalty.recalculate_tiers('2026-11-22 12:00+03') AS moved;
SELECT id, tier FROM loyalty.customer ORDER BY id;
SELECT customer_id, payload->>'old_tier' AS old, payload->>'tier' AS new, payload->>'direction' AS direction
  FROM loyalty.event WHERE kind = 'tier_changed' ORDER BY id;
SELECT loyalty.recalculate_tiers('2026-11-22 12:00+03') AS moved_again;
-- a year later everybody is back in the lowest tier
SELECT loyalty.recalculate_tiers('2027-11-22 12:00+03') AS moved;
SELECT id, tier FROM loyalty.customer ORDER BY id;
SELECT kind, message FROM loyalty.take_events(10) WHERE kind = 'tier_changed' ORDER BY id;

-- the older scheme: last month's spend sets this month's discount
UPDATE loyalty.tier SET threshold = 1500, discount_percent = 15 WHERE code = 'gold';
UPDATE loyalty.tier SET discount_percent = 3 WHERE code = 'standard';
DELETE FROM loyalty.tier WHERE code = 'platinum';
INSERT INTO loyalty.setting VALUES ('tier_window', 'previous_month');
SELECT loyalty.tier_window('2026-11-22 12:00+03') AS window;
INSERT INTO loyalty.purchase (operation_id, customer_id, store, channel, at, amount, discount, redeemed, total, lines)
VALUES ('P4', 3, 'S1', 'pos', '2026-10-31 23:30+03', 1600, 0, 0, 1600, 1),
       ('P5', 2, 'S1', 'pos', '2026-11-01 00:10+03', 5000, 0, 0, 5000, 1);
SELECT loyalty.recalculate_tiers('2026-11-22 12:00+03') AS moved;
SELECT c.id, c.tier, t.discount_percent FROM loyalty.customer c JOIN loyalty.tier t ON t.code = c.tier ORDER BY c.id;

-- coupons: codes from a strong random source, 12 symbols, a check symbol
INSERT INTO loyalty.promotion (code, name, mechanic, rule, requires_coupon)
VALUES ('SPRING', 'Spring code: 10% off', 'percent_off', '{"products": {"all": true}, "percent": 10}', true);
SELECT count(*) AS issued, count(DISTINCT c) AS distinct_codes,
       bool_and(c ~ '^[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$') AS well_formed,
       bool_and(loyalty.coupon_code(c) = c) AS check_symbols_ok
  FROM loyalty.issue_coupons('SPRING', 1000) AS c;
SELECT kind, max_uses, uses, status, count(*) FROM loyalty.coupon GROUP BY 1, 2, 3, 4;
-- typed by a person: any case, without dashes, O for 0, I or L for 1
CREATE TEMP TABLE one AS SELECT code FROM loyalty.coupon LIMIT 1;
SELECT loyalty.coupon_code(lower(replace(code, '-', ''))) = code AS lowercase_no_dashes,
       loyalty.coupon_code(replace(replace(code, '0', 'O'), '1', 'I')) = code AS look_alikes
  FROM one;
-- every single mistyped symbol is caught
DO $$
DECLARE
    good text := (SELECT code FROM one);
    tried int := 0;
    caught int := 0;
    typo text;
BEGIN
    FOR p IN 1..14 LOOP
        CONTINUE WHEN p IN (5, 10);
        FOREACH typo IN ARRAY string_to_array('0123456789ABCDEFGHJKMNPQRSTVWXYZ', NULL) LOOP
            CONTINUE WHEN substr(good, p, 1) = typo;
            tried := tried + 1;
            BEGIN
                PERFORM loyalty.coupon_code(overlay(good PLACING typo FROM p FOR 1));
            EXCEPTION WHEN invalid_text_representation THEN
                caught := caught + 1;
            END;
        END LOOP;
    END LOOP;
    RAISE NOTICE 'single-symbol typos: % tried, % caught', tried, caught;
END
$$;
SELECT loyalty.coupon_code('K7QX-9M2P');
SELECT loyalty.coupon_code('K7QX-9M2P-4RT!');
-- personal coupons and mass codes with several uses
SELECT count(*) FROM loyalty.issue_coupons('SPRING', 2, 1, now() + interval '30 days', '+79123456789');
SELECT count(*) FROM loyalty.issue_coupons('SPRING', 1, 500);
SELECT kind, customer_id, max_uses, valid_until > now() AS has_expiry, count(*)
  FROM loyalty.coupon GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3;
SELECT loyalty.issue_coupons('NOPE', 1);
SELECT loyalty.issue_coupons('SPRING', 0);
SELECT loyalty.issue_coupons('SPRING', 1, 1, now() - interval '1 day');
SELECT loyalty.issue_coupons('SPRING', 1, 1, NULL, '+79990000000');

-- gift certificates: a balance spent partially
SELECT loyalty.coupon_code(loyalty.issue_certificate(100)) IS NOT NULL AS certificate_code_ok;
SELECT kind, value, balance, max_uses FROM loyalty.coupon WHERE kind = 'certificate';
SELECT loyalty.issue_certificate(0);
SELECT loyalty.issue_certificate(10.005);

-- subscription plans: the product selector is checked like a promotion's
INSERT INTO loyalty.subscription_plan (code, name, sku, products, duration)
VALUES ('CARDIO', 'Cardiology, 90 days', 'SUB-CARDIO', '{"categories": ["cardio"]}', '90 days');
INSERT INTO loyalty.subscription_plan (code, name, sku, products, duration)
VALUES ('BAD', 'Typo', 'SUB-BAD', '{"categries": ["cardio"]}', '90 days');
INSERT INTO loyalty.subscription_plan (code, name, sku, products, duration)
VALUES ('BAD', 'Empty', 'SUB-BAD', '{}', '90 days');

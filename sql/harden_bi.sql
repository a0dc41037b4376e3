--
-- harden_bi: experiments, KPIs and points liability (SPEC section 10,
-- issue 16 part 5) on a small fixed history written into the fact tables.
-- Every figure is computed by hand in the comments.
--
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS loyalty CASCADE;
CREATE EXTENSION loyalty;
RESET client_min_messages;
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';
INSERT INTO loyalty.setting (key, value) VALUES ('timezone', 'UTC');
INSERT INTO loyalty.account_type (code, name) VALUES ('main', 'Points');
SELECT count(loyalty.register('+791200000' || lpad(i::text, 2, '0'))) AS customers FROM generate_series(1, 20) i;
UPDATE loyalty.customer SET created_at = '2026-01-01';

-- ---------------------------------------------------------------------------
-- ab_group: the documented hash, reproduced in plain SQL
-- ---------------------------------------------------------------------------
SELECT count(*) AS differ
  FROM generate_series(1, 1000) id
 WHERE loyalty.ab_group(id, 'exp', 3)
       <> ((((hashtextextended('exp' || ':' || id, 0) % 10000) + 10000) % 10000) * 3 / 10000)::int;
SELECT id, loyalty.ab_bucket(id, 'exp') AS bucket, loyalty.ab_group(id, 'exp') AS g2,
       loyalty.ab_group(id, 'exp', 10) AS g10
  FROM generate_series(1, 5) id;
SELECT loyalty.ab_group(1, 'exp', 0) AS no_groups;

-- ---------------------------------------------------------------------------
-- The statistics, on the seed's figures: 4.3 % of 10,000 vs 4.6 % of 10,000
--   p0 = 0.043, p1 = 0.046, pooled p = 890 / 20000 = 0.0445
--   z = 0.003 / sqrt(0.0445 * 0.9555 * (2 / 10000)) = 0.003 / 0.0029162 = 1.0288
--   confidence = 2 * Phi(1.0288) - 1 = 0.6964: not 95 %, not significant
--   uplift = 0.046 / 0.043 - 1 = 0.0698
--   needed per arm = 7.848879 * (0.043 * 0.957 + 0.046 * 0.954) / 0.003^2
--                  = 7.848879 * 0.085035 / 0.000009 = 74158.9 -> 74159
-- and a clear win: 100 of 1000 vs 150 of 1000:
--   pooled 0.125, z = 0.05 / sqrt(0.125 * 0.875 * 0.002) = 0.05 / 0.0147902 = 3.3806
--   confidence 0.9993, uplift 0.5, needed = 7.848879 * (0.09 + 0.1275) / 0.0025 = 682.9 -> 683
-- ---------------------------------------------------------------------------
SELECT * FROM loyalty.proportion_test(430, 10000, 460, 10000);
SELECT * FROM loyalty.proportion_test(100, 1000, 150, 1000);
-- nothing to compare with: no z, no confidence
SELECT * FROM loyalty.proportion_test(0, 0, 1, 10);
SELECT round(loyalty.normal_cdf(1.96)::numeric, 4) AS phi_196, round(loyalty.normal_cdf(0)::numeric, 4) AS phi_0;

-- experiments are validated on write
INSERT INTO loyalty.experiment (code, name, variants, starts_at, ends_at)
VALUES ('bad', 'Bad', '[{"code": "a", "weight": 50}, {"code": "a", "weight": 50}]', '2026-03-01', '2026-03-03');
INSERT INTO loyalty.experiment (code, name, variants, starts_at, ends_at)
VALUES ('bad', 'Bad', '[{"code": "a", "weight": 0}]', '2026-03-01', '2026-03-03');
INSERT INTO loyalty.experiment (code, name, variants, starts_at, ends_at)
VALUES ('bad', 'Bad', '[{"code": "a", "weight": 1, "share": 2}]', '2026-03-01', '2026-03-03');
INSERT INTO loyalty.experiment (code, name, variants, holdout_percent, starts_at, ends_at)
VALUES ('pvd', 'Points vs discount', '[{"code": "points", "weight": 50}, {"code": "discount", "weight": 50}]',
        20, '2026-03-01', '2026-03-03');

-- ---------------------------------------------------------------------------
-- Facts (UTC is the program's time zone here)
--   03-01: 1 pays 100 (S1), 2 pays 200 (S1), anonymous 50 (S1) and 150 (web)
--   03-02: 1 pays 300 (S1) and 100 (S2, 40 refunded), 3 pays 200 (web),
--          anonymous 100 (S2)
-- ---------------------------------------------------------------------------
CREATE FUNCTION pg_temp.buy(op text, cust bigint, at timestamptz, store text, channel text,
                            money numeric, back numeric DEFAULT 0)
RETURNS void LANGUAGE sql AS $$
    INSERT INTO loyalty.purchase (operation_id, customer_id, store, channel, at, amount, discount,
                                  redeemed, total, lines, refunded)
    VALUES (op, cust, store, channel, at, money, 0, 0, money, 1, back)
$$;
INSERT INTO loyalty.store (code, name) VALUES ('S1', 'One'), ('S2', 'Two');
SELECT pg_temp.buy('P1a', 1, '2026-03-01 10:00+00', 'S1', 'pos', 100),
       pg_temp.buy('P1b', 2, '2026-03-01 11:00+00', 'S1', 'pos', 200),
       pg_temp.buy('P1c', NULL, '2026-03-01 12:00+00', 'S1', 'pos', 50),
       pg_temp.buy('P1d', NULL, '2026-03-01 13:00+00', NULL, 'web', 150),
       pg_temp.buy('P2a', 1, '2026-03-02 10:00+00', 'S1', 'pos', 300),
       pg_temp.buy('P2b', 1, '2026-03-02 11:00+00', 'S2', 'pos', 100, 40),
       pg_temp.buy('P2c', 3, '2026-03-02 12:00+00', NULL, 'web', 200),
       pg_temp.buy('P2d', NULL, '2026-03-02 13:00+00', 'S2', 'pos', 100);

-- Lots and their ledger entries (points):
--   1: customer 1, earned 30 on P2a 03-02 10:00, spent 10 then; expires 04-15
--   2: customer 2, earned 50 on P1b 03-01, available 03-10, expires 05-01
--   3: customer 3, 5 adjusted in on 02-01, expired 03-02 12:00
--   4: customer 1, a debt of 8 on 03-02 10:00, no expiry
--   5: customer 1, earned 4 on P2b 03-02 11:00, reversed by its refund R2b
--   6: customer 2, 20 adjusted in on 02-10, 5 spent 02-15, 15 expired 03-01
INSERT INTO loyalty.lot (id, customer_id, account, amount, remaining, earned_at, available_at, expires_at, operation_id) VALUES
    (1, 1, 'main', 30, 20, '2026-03-02 10:00+00', '2026-03-02 10:00+00', '2026-04-15 00:00+00', 'P2a'),
    (2, 2, 'main', 50, 50, '2026-03-01 11:00+00', '2026-03-10 00:00+00', '2026-05-01 00:00+00', 'P1b'),
    (3, 3, 'main', 5, 0, '2026-02-01 00:00+00', '2026-02-01 00:00+00', '2026-03-02 12:00+00', 'A3'),
    (4, 1, 'main', -8, -8, '2026-03-02 10:00+00', '2026-03-02 10:00+00', NULL, 'P2a'),
    (5, 1, 'main', 4, 0, '2026-03-02 11:00+00', '2026-03-02 11:00+00', '2026-06-01 00:00+00', 'P2b'),
    (6, 2, 'main', 20, 0, '2026-02-10 00:00+00', '2026-02-10 00:00+00', '2026-03-01 00:00+00', 'A6');
INSERT INTO loyalty.ledger_entry (customer_id, account, lot_id, operation_id, ref_operation_id, kind, points, at) VALUES
    (1, 'main', 1, 'P2a', NULL, 'earn', 30, '2026-03-02 10:00+00'),
    (1, 'main', 1, 'P2a', NULL, 'spend', -10, '2026-03-02 10:00+00'),
    (2, 'main', 2, 'P1b', NULL, 'earn', 50, '2026-03-01 11:00+00'),
    (3, 'main', 3, 'A3', NULL, 'adjust', 5, '2026-02-01 00:00+00'),
    (3, 'main', 3, '~expire-1', NULL, 'expire', -5, '2026-03-02 12:00+00'),
    (1, 'main', 4, 'P2a', NULL, 'debt', -8, '2026-03-02 10:00+00'),
    (1, 'main', 5, 'P2b', NULL, 'earn', 4, '2026-03-02 11:00+00'),
    (1, 'main', 5, 'R2b', 'P2b', 'reverse', -4, '2026-03-02 15:00+00'),
    (2, 'main', 6, 'A6', NULL, 'adjust', 20, '2026-02-10 00:00+00'),
    (2, 'main', 6, 'P0', NULL, 'spend', -5, '2026-02-15 00:00+00'),
    (2, 'main', 6, '~expire-0', NULL, 'expire', -15, '2026-03-01 00:00+00');

-- ---------------------------------------------------------------------------
-- KPIs by day.
--   03-01: 4 checks, 2 identified (0.5), revenue 500, members 300 (0.6),
--          average check member 150, anonymous 100; customers 2, none
--          bought twice (0); no purchase the day before: retention NULL;
--          points: earned 50 (lot 2), expired 15 (lot 6)
--   03-02: 4 checks, 3 identified (0.75), revenue 300 + 60 + 200 + 100 = 660,
--          members 560 (560 / 660 = 0.8485), average member 560 / 3 = 186.67,
--          anonymous 100; customers 1 and 3 (2), 1 bought twice (0.5);
--          of 03-01's customers 1 and 2, 1 came back (0.5);
--          points: earned 30 + 4 = 34, spent 10, expired 5, reversed 4,
--          redemption 10 / 34 = 0.2941
-- ---------------------------------------------------------------------------
SELECT * FROM loyalty.kpi('2026-03-01', '2026-03-03', 'day');
-- one day alone still sees the day before for retention
SELECT period, checks, retention FROM loyalty.kpi('2026-03-02', '2026-03-03');
-- by store, 03-02 against 03-01 for retention:
--   S1: 1 check (300); of S1's customers the day before (1, 2) 1 is back: 0.5;
--       points earned 30, spent 10 (P2a)
--   S2: 2 checks, 1 identified, 160; nobody bought at S2 before: NULL;
--       points earned 4 and reversed 4 (P2b and its refund)
--   "-" (no store: the web check, and the expiry that has no purchase): 200, expired 5
SELECT period, checks, identified_checks, revenue, retention, points_earned, points_spent,
       points_expired, points_reversed
  FROM loyalty.kpi('2026-03-02', '2026-03-03', 'store');
-- by channel over both days: pos 100 + 200 + 50 + 300 + 60 + 100 = 810 in 6
-- checks, web 150 + 200 = 350 in 2; "-" holds the expiries (no purchase)
SELECT period, checks, revenue FROM loyalty.kpi('2026-03-01', '2026-03-03', 'channel');
SELECT period, checks, revenue FROM loyalty.kpi_daily;
SELECT * FROM loyalty.kpi('2026-03-01', '2026-03-03', 'year');
SELECT * FROM loyalty.kpi('2026-03-03', '2026-03-01');

-- ---------------------------------------------------------------------------
-- Liability, as of two moments (from the entries up to each)
--   03-05: lot 1: 20 available, expires 2026-04; lot 2: 50 pending (from
--          03-10), 2026-05; lot 4: a debt of 8, no expiry; lots 3, 6 have
--          expired, lot 5 was reversed
--   03-02 06:00: lot 3: 5 available (expires 03-02 12:00), 2026-03; lot 2:
--          50 pending; lots 1, 4, 5 did not exist yet
-- ---------------------------------------------------------------------------
SELECT * FROM loyalty.points_liability('2026-03-05');
SELECT * FROM loyalty.points_liability('2026-03-02 06:00+00');

-- ---------------------------------------------------------------------------
-- Breakage per earn month whose lots have all ended (every one has expired
-- by now):
--   2026-02: lots 3 and 6: issued 25, redeemed 5, expired 5 + 15 = 20,
--            reversed 0: 20 / 25 = 0.8
--   2026-03: lots 1, 2, 5: issued 84, redeemed 10, expired 0 (no expiry run
--            yet), reversed 4: 0 / 80 = 0
-- ---------------------------------------------------------------------------
SELECT * FROM loyalty.breakage ORDER BY earn_month;

-- ---------------------------------------------------------------------------
-- The experiment's report: holdout first (20 % of buckets), then the
-- variants; buyers in [03-01, 03-03) are customers 1, 2 and 3.  The report
-- must agree with an independent count by experiment_variant and with
-- proportion_test against the holdout.  With the assignment below (holdout
-- 6 customers with 1 and 2 buying, points 8 with 3, discount 6 with none):
--   holdout: 2 / 6 = 0.3333, (460 + 200) / 6 = 110.00 per customer
--   points: 1 / 8 = 0.125, 200 / 8 = 25.00; uplift 0.125 / 0.3333 - 1 = -0.625;
--     pooled 3 / 14, z = -0.20833 / sqrt(0.21429 * 0.78571 * (1/6 + 1/8))
--     = -0.20833 / 0.22160 = -0.9401, confidence 0.6528;
--     needed 7.848879 * (0.22222 + 0.10938) / 0.20833^2 = 59.97 -> 60
--   discount: 0 / 6; pooled 2 / 12, z = -0.33333 / sqrt(0.16667 * 0.83333 * (1/6 + 1/6))
--     = -0.33333 / 0.21517 = -1.5492, confidence 0.8787;
--     needed 7.848879 * 0.22222 / 0.11111 = 15.70 -> 16
-- ---------------------------------------------------------------------------
SELECT variant, count(*) AS assigned, count(*) FILTER (WHERE id <= 3) AS buyers,
       sum(CASE id WHEN 1 THEN 460 WHEN 2 THEN 200 WHEN 3 THEN 200 ELSE 0 END) AS paid
  FROM (SELECT id, loyalty.experiment_variant('pvd', id) AS variant FROM loyalty.customer) v
 GROUP BY variant ORDER BY variant;
SELECT * FROM loyalty.experiment_report('pvd');
SELECT count(*) AS disagreements
  FROM loyalty.experiment_report('pvd') r,
       loyalty.experiment_report('pvd') h,
       LATERAL loyalty.proportion_test(h.buyers, h.assigned, r.buyers, r.assigned) t
 WHERE h.variant = 'holdout' AND r.variant <> 'holdout'
   AND (r.z IS DISTINCT FROM t.z OR r.needed_per_arm IS DISTINCT FROM t.needed_per_arm);

-- ---------------------------------------------------------------------------
-- An experiment's promotions at the till: POINTS goes to the "points"
-- variant, DISC to "discount", ALL to both; the holdout gets none, nor does
-- an anonymous check.  From the assignment above: 3 is in points, 1 and 2
-- in the holdout, 10 is the first of the discount variant.
-- ---------------------------------------------------------------------------
INSERT INTO loyalty.category (code, parent, name) VALUES ('all', NULL, 'All');
INSERT INTO loyalty.product (sku, name, category, price) VALUES ('A', 'Cream', 'all', 100.00);
INSERT INTO loyalty.promotion (code, name, mechanic, rule, experiment, variant) VALUES
    ('POINTS', 'Variant points', 'percent_off', '{"products": {"all": true}, "percent": 1}', 'pvd', 'points'),
    ('DISC', 'Variant discount', 'percent_off', '{"products": {"all": true}, "percent": 2}', 'pvd', 'discount'),
    ('ALL', 'Every variant', 'percent_off', '{"products": {"all": true}, "percent": 3}', 'pvd', NULL);
\set VERBOSITY terse
INSERT INTO loyalty.promotion (code, name, mechanic, rule, variant) VALUES
    ('BAD', 'Variant without experiment', 'percent_off', '{"products": {"all": true}, "percent": 1}', 'points');
\set VERBOSITY default
SET loyalty.test_now = '2026-03-02 12:00+00';
SELECT who, loyalty.experiment_variant('pvd', (who ->> 'customer')::bigint) AS variant,
       (SELECT coalesce(string_agg(p ->> 'code', ',' ORDER BY p ->> 'code'), '-')
          FROM jsonb_array_elements(loyalty.calculate(jsonb_build_object(
                   'lines', '[{"sku": "A", "qty": 1}]'::jsonb) || who) -> 'lines' -> 0 -> 'promotions') p) AS promotions
  FROM unnest(ARRAY['{}', '{"customer": 1}', '{"customer": 3}',
                    jsonb_build_object('customer', (SELECT min(id) FROM loyalty.customer
                                                     WHERE loyalty.experiment_variant('pvd', id) = 'discount'))]) AS who;
-- the engine (C) and experiment_variant (SQL) agree for every customer
SELECT count(*) AS disagree
  FROM loyalty.customer c
 WHERE (SELECT coalesce(string_agg(p ->> 'code', ',' ORDER BY p ->> 'code'), '-')
          FROM jsonb_array_elements(loyalty.calculate(jsonb_build_object(
                   'customer', c.id, 'lines', '[{"sku": "A", "qty": 1}]'::jsonb)) -> 'lines' -> 0 -> 'promotions') p)
       <> CASE loyalty.experiment_variant('pvd', c.id)
               WHEN 'holdout' THEN '-' WHEN 'points' THEN 'ALL,POINTS' ELSE 'ALL,DISC' END;

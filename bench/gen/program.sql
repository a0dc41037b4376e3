-- bench/gen/program.sql: the program's configuration at a chosen scale.
--
--   psql -v stores=1000 -v skus=30000 -v promotions=200 -f bench/gen/program.sql
--
-- Plain INSERTs into the configuration tables with every constraint and
-- trigger on, as a marketer would write them (every promotion is parsed by
-- the engine's C validator on insert).  Also creates schema "bench" with the
-- harness's own helpers and tables.  Run by bench/generate.
\set ON_ERROR_STOP 1
\set QUIET 1
SET client_min_messages = notice;

-- the numbers, readable from DO blocks
SELECT set_config('bench.stores', :'stores', false) AS stores,
       set_config('bench.skus', :'skus', false) AS skus,
       set_config('bench.promotions', :'promotions', false) AS promotions \gset

CREATE SCHEMA IF NOT EXISTS bench;
-- step(name, rows, since): one progress line
CREATE OR REPLACE FUNCTION bench.step(what text, n bigint, since timestamptz) RETURNS void
    LANGUAGE plpgsql AS $$
BEGIN
    RAISE NOTICE '%', format('%-32s %10s rows %7s s', what, n,
        round(extract(epoch FROM clock_timestamp() - since)::numeric, 1));
END
$$;
-- the phone number of generated customer i, as the workloads spell it
CREATE OR REPLACE FUNCTION bench.phone(i bigint) RETURNS text
    LANGUAGE sql IMMUTABLE AS $$ SELECT '+7' || (9000000000 + i) $$;

-- ---------------------------------------------------------------------------
-- settings, stores (10 regions across Russia's time zones), categories
-- ---------------------------------------------------------------------------
DO $$
DECLARE
    t timestamptz := clock_timestamp();
    n int := current_setting('bench.stores')::int;
BEGIN
    INSERT INTO loyalty.setting (key, value) VALUES
        ('currency', 'RUB'), ('timezone', 'Europe/Moscow'), ('points_precision', '0');

    -- region r lives in zone r; stores are spread over the regions round-robin
    INSERT INTO loyalty.store (code, name, region, timezone, channel)
    SELECT 'S' || i, format('Store %s, %s', i, z.city), 'R' || z.r, z.tz, 'pos'
      FROM generate_series(1, n) AS i
      JOIN (VALUES (1, 'Europe/Kaliningrad', 'Kaliningrad'), (2, 'Europe/Moscow', 'Moscow'),
                   (3, 'Europe/Samara', 'Izhevsk'), (4, 'Asia/Yekaterinburg', 'Yekaterinburg'),
                   (5, 'Asia/Omsk', 'Omsk'), (6, 'Asia/Novosibirsk', 'Novosibirsk'),
                   (7, 'Asia/Krasnoyarsk', 'Krasnoyarsk'), (8, 'Asia/Irkutsk', 'Irkutsk'),
                   (9, 'Asia/Vladivostok', 'Vladivostok'), (10, 'Asia/Kamchatka', 'Petropavlovsk'))
           AS z(r, tz, city) ON z.r = (i - 1) % 10 + 1;
    INSERT INTO loyalty.store (code, name, region, timezone, channel) VALUES
        ('WEB', 'Online store', NULL, NULL, 'web'),
        ('APP', 'Mobile app', NULL, NULL, 'app');
    PERFORM bench.step('stores', n + 2, t);

    -- 10 departments x 10 groups x 5 leaves
    t := clock_timestamp();
    INSERT INTO loyalty.category (code, parent, name) VALUES ('all', NULL, 'Everything');
    INSERT INTO loyalty.category (code, parent, name)
    SELECT 'd' || d, 'all', 'Department ' || d FROM generate_series(1, 10) d;
    INSERT INTO loyalty.category (code, parent, name)
    SELECT format('d%s-%s', d, g), 'd' || d, format('Group %s.%s', d, g)
      FROM generate_series(1, 10) d, generate_series(1, 10) g;
    INSERT INTO loyalty.category (code, parent, name)
    SELECT format('d%s-%s-%s', d, g, l), format('d%s-%s', d, g), format('Shelf %s.%s.%s', d, g, l)
      FROM generate_series(1, 10) d, generate_series(1, 10) g, generate_series(1, 5) l;
    PERFORM bench.step('categories', 611, t);
END
$$;

-- ---------------------------------------------------------------------------
-- products: consecutive SKUs share a shelf (a catalog page is a shelf)
-- ---------------------------------------------------------------------------
DO $$
DECLARE
    t timestamptz := clock_timestamp();
    n int := current_setting('bench.skus')::int;
    per_leaf int := greatest(1, ceil(n / 500.0)::int);
    brands int := greatest(20, n / 100);
BEGIN
    INSERT INTO loyalty.product (sku, name, category, brand, tags, price, min_price,
                                 no_discount, no_points, no_redeem)
    SELECT 'P' || i, 'Product ' || i,
           format('d%s-%s-%s', leaf / 50 + 1, leaf / 5 % 10 + 1, leaf % 5 + 1),
           'Brand' || ((i * 7919) % brands + 1),
           CASE WHEN i % 10 = 0 THEN '{rx}'::text[]
                WHEN i % 10 IN (1, 2) THEN '{otc}'
                WHEN i % 20 = 3 THEN '{new}'
                WHEN i % 20 = 13 THEN '{eco,pack}'
                ELSE '{}' END,
           price,
           CASE WHEN i % 20 = 5 THEN round(price * 0.8, 2) END,
           i % 100 = 7, i % 100 = 7, i % 100 IN (7, 8)
      FROM generate_series(1, n) AS i,
           LATERAL (SELECT ((i - 1) / per_leaf) % 500 AS leaf,
                           round(29 + (i * 7907) % 1970 + (i % 100) / 100.0, 2) AS price) x;
    PERFORM bench.step('products', n, t);
END
$$;

-- ---------------------------------------------------------------------------
-- point accounts and tiers
-- ---------------------------------------------------------------------------
INSERT INTO loyalty.account_type (code, name, redeem_share, min_check, lifetime, activation_delay, redeem_order) VALUES
    ('main',  'Bonus points', 0.9, 0,    interval '1 year', interval '24 hours', 100),
    ('promo', 'Promo points', 0.3, 2000, NULL,              interval '0',        10);
INSERT INTO loyalty.tier (code, name, rank, threshold, accrual_percent, discount_percent) VALUES
    ('standard', 'Standard', 1, 0,     5,  0),
    ('silver',   'Silver',   2, 15000, 7,  3),
    ('gold',     'Gold',     3, 50000, 10, 5);

-- ---------------------------------------------------------------------------
-- promotions: every mechanic of SPEC section 5, in turn, over the generated
-- catalog; all enabled and inside their period (a few with a schedule that
-- always matches, some limited to a region, a channel or tiers)
-- ---------------------------------------------------------------------------
DO $$
DECLARE
    t timestamptz := clock_timestamp();
    n int := current_setting('bench.promotions')::int;
    skus int := current_setting('bench.skus')::int;
    brands int := greatest(20, skus / 100);
BEGIN
    INSERT INTO loyalty.promotion (code, name, mechanic, rule, priority, grp, exclusive,
                                   starts_at, ends_at, schedule, channels, regions, tiers,
                                   per_customer_limit)
    SELECT format('PR%s', k), format('%s #%s', m.mechanic, k), m.mechanic,
           CASE m.mechanic
           WHEN 'percent_off' THEN jsonb_build_object(
                'products', jsonb_build_object('categories', jsonb_build_array(grp_cat)),
                'percent', 5 + k % 26)
           WHEN 'amount_off' THEN jsonb_build_object(
                'products', jsonb_build_object('brands', jsonb_build_array(brand)),
                'amount', 5 + k % 20, 'per', CASE WHEN k % 2 = 0 THEN 'unit' ELSE 'line' END)
           WHEN 'check_discount' THEN jsonb_build_object('steps', jsonb_build_array(
                jsonb_build_object('min_total', 3000 + 100 * (k % 10), 'percent', 3),
                jsonb_build_object('min_total', 10000, 'amount', 500)))
           WHEN 'nth_item' THEN jsonb_build_object(
                'products', jsonb_build_object('categories', jsonb_build_array(leaf_cat)),
                'n', 3, 'price', 1.00)
           WHEN 'bundle' THEN jsonb_build_object(
                'trigger', jsonb_build_object('categories', jsonb_build_array(leaf_cat)),
                'trigger_qty', 1,
                'target', jsonb_build_object('categories', jsonb_build_array(leaf_cat2)),
                'percent', 30, 'per_trigger', 1)
           WHEN 'gift' THEN jsonb_build_object(
                'trigger', jsonb_build_object('brands', jsonb_build_array(brand)),
                'trigger_qty', 2, 'gift', 'P' || (k * 131 % skus + 1), 'gift_qty', 1)
           WHEN 'tier_discount' THEN jsonb_build_object(
                'products', jsonb_build_object('all', true,
                                               'exclude', jsonb_build_object('tags', '["rx"]'::jsonb)))
           WHEN 'points_percent' THEN CASE WHEN k % 2 = 0
                THEN jsonb_build_object('products', jsonb_build_object('brands', jsonb_build_array(brand)),
                                        'percent', 5, 'account', 'main')
                ELSE jsonb_build_object('products', jsonb_build_object('categories', jsonb_build_array(grp_cat)),
                                        'multiplier', 2) END
           WHEN 'points_fixed' THEN jsonb_build_object(
                'min_total', 2000 + 500 * (k % 4), 'points', 100, 'account', 'promo',
                'expires', CASE WHEN k % 2 = 0 THEN '30 days' ELSE 'end_of_month' END)
           WHEN 'coupon_issue' THEN jsonb_build_object('steps', jsonb_build_array(
                jsonb_build_object('min_total', 1000, 'percent', 10),
                jsonb_build_object('min_total', 1500, 'percent', 15),
                jsonb_build_object('min_total', 2000, 'percent', 20)),
                'min_total_to_use', 1000, 'valid', 'end_of_month')
           WHEN 'certificate_per_amount' THEN jsonb_build_object(
                'step', 5000, 'value', 150, 'valid', '30 days')
           WHEN 'subscription_price' THEN jsonb_build_object('plan', 'PLAN' || (k % 5 + 1), 'percent', 20)
           END,
           10 + (k % 20) * 5,
           -- competing members: check-level discounts, tier discounts, coupons, certificates
           CASE WHEN m.mechanic IN ('check_discount', 'tier_discount', 'coupon_issue',
                                    'certificate_per_amount') THEN m.mechanic END,
           k % 50 = 1,
           now() - interval '30 days', now() + interval '90 days',
           CASE WHEN k % 10 = 4 THEN '{"weekdays": [1, 2, 3, 4, 5, 6, 7]}'::jsonb END,
           CASE WHEN k % 10 = 6 THEN '{pos}'::text[] END,
           CASE WHEN k % 4 = 3 THEN ARRAY['R' || (k % 10 + 1)] END,
           CASE WHEN k % 25 = 9 THEN '{silver,gold}'::text[] END,
           CASE WHEN m.mechanic = 'points_fixed' THEN 1 END
      FROM generate_series(1, n) AS k,
           LATERAL (SELECT (ARRAY['percent_off', 'amount_off', 'check_discount', 'nth_item',
                                  'bundle', 'gift', 'tier_discount', 'points_percent',
                                  'points_fixed', 'coupon_issue', 'certificate_per_amount',
                                  'subscription_price'])[(k - 1) % 12 + 1] AS mechanic) m,
           LATERAL (SELECT format('d%s-%s', k % 10 + 1, k / 10 % 10 + 1) AS grp_cat,
                           format('d%s-%s-%s', k % 10 + 1, k / 10 % 10 + 1, k % 5 + 1) AS leaf_cat,
                           format('d%s-%s-%s', k % 10 + 1, k / 10 % 10 + 1, (k + 1) % 5 + 1) AS leaf_cat2,
                           'Brand' || (k * 37 % brands + 1) AS brand) s;
    PERFORM bench.step('promotions', n, t);
END
$$;

-- ---------------------------------------------------------------------------
-- tables of the harness itself
-- ---------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS bench.ceiling (
    id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client int NOT NULL,
    v      bigint NOT NULL,
    at     timestamptz NOT NULL DEFAULT now()
);
-- bench/run's memory probe: the backend's memory contexts and private RSS
CREATE TABLE IF NOT EXISTS bench.memory_sample (
    calls         bigint NOT NULL,
    context_bytes bigint NOT NULL,
    rss_anon_kb   bigint,
    taken_at      timestamptz NOT NULL DEFAULT clock_timestamp()
);

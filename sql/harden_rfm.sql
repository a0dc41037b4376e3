--
-- harden_rfm: RFM exactly as SPEC section 10 (issue 16 part 1).  Scores by
-- stored thresholds (percentile_disc quantiles, never NTILE: equal values
-- get equal scores), the shipped named boxes plus prospect, refunds net
-- out, fixed thresholds written by a marketer, the daily refresh by
-- maintenance.  Every number below is computed by hand in the comments.
--
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS loyalty CASCADE;
CREATE EXTENSION loyalty;
RESET client_min_messages;
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';

SELECT loyalty.register('+7912000000' || i) FROM generate_series(1, 8) i;

-- A fixed history as of 2026-06-01 00:00 UTC (window 365 days), built in
-- the fact tables directly: (customer, days before, total)
CREATE FUNCTION pg_temp.buy(op text, cust bigint, days_before int, total numeric, refunded numeric DEFAULT 0)
RETURNS void LANGUAGE sql AS $$
    INSERT INTO loyalty.purchase (operation_id, customer_id, channel, at, amount, discount,
                                  redeemed, total, lines, refunded)
    VALUES (op, cust, 'pos', timestamptz '2026-06-01 00:00+00' - days_before * interval '1 day',
            total, 0, 0, total, 1, refunded)
$$;
CREATE FUNCTION pg_temp.back(op text, of_purchase text, days_before int, money_back numeric, ends boolean)
RETURNS void LANGUAGE sql AS $$
    INSERT INTO loyalty.refund (operation_id, purchase, customer_id, at, amount, lines, full_refund)
    SELECT op, of_purchase, p.customer_id,
           timestamptz '2026-06-01 00:00+00' - days_before * interval '1 day', money_back, '[]', ends
      FROM loyalty.purchase p WHERE p.operation_id = of_purchase
$$;
SELECT pg_temp.buy('c1a', 1, 1, 100), pg_temp.buy('c1b', 1, 10, 200), pg_temp.buy('c1c', 1, 20, 300);
SELECT pg_temp.buy('c2a', 2, 5, 50), pg_temp.buy('c2b', 2, 40, 50);
SELECT pg_temp.buy('c3a', 3, 30, 1000);
SELECT pg_temp.buy('c4a', 4, 100, 80), pg_temp.buy('c4b', 4, 200, 80),
       pg_temp.buy('c4c', 4, 300, 80), pg_temp.buy('c4d', 4, 350, 80);
-- customer 5: the purchase of 2 days ago was refunded in full yesterday: it
-- is no purchase (recency 200, frequency 1, monetary 500)
SELECT pg_temp.buy('c5a', 5, 200, 500), pg_temp.buy('c5b', 5, 2, 400, 400);
SELECT pg_temp.back('r5b', 'c5b', 1, 400, true);
-- customer 6 bought only before the window: lost; customer 7 never: prospect
SELECT pg_temp.buy('c6a', 6, 400, 100);
-- customer 8: 100 five days ago, 40 refunded 3 days ago and 10 more a day
-- after the moment (not yet refunded as of it): monetary 60
SELECT pg_temp.buy('c8a', 8, 5, 100, 50);
SELECT pg_temp.back('r8a', 'c8a', 3, 40, false), pg_temp.back('r8b', 'c8a', -1, 10, false);

SELECT loyalty.refresh_rfm('2026-06-01 00:00+00') AS scored;

-- Quantiles over the six customers with a purchase in the window (1..5, 8).
-- percentile_disc(p) is the first value whose cumulative share >= p; with
-- six values the 2nd, 3rd, 4th and 5th are the 0.2/0.4/0.6/0.8 quantiles.
--   recency 1,5,5,30,100,200   -> 5, 5, 30, 100 (score 5 for <= 5 days)
--   frequency 1,1,1,2,3,4      -> 1, 1, 2, 3
--   monetary 60,100,320,500,600,1000 -> 100, 320, 500, 600
SELECT dimension, score, lower, upper, computed_at
  FROM loyalty.rfm_threshold ORDER BY dimension, score;

-- By hand:
--   1: r 1 day -> 5, f 3 -> 4, m 600 -> 4: champions
--   2: r 5 -> 5, f 2 -> 3, m 100 -> 1: loyal (r 3-5, f 3-5)
--   3: r 30 -> 3, f 1 -> 1, m 1000 -> 5: promising (r 3-4, f 1)
--   4: r 100 -> 2, f 4 -> 5, m 320 -> 2: at_risk (m too low for cant_lose)
--   5: r 200 -> 1, f 1 -> 1, m 500 -> 3: lost
--   6: no purchase in the window, recency 400: lost, no scores
--   7: never bought: prospect
--   8: r 5 -> 5 (equal to customer 2's), f 1 -> 1, m 60 -> 1: new
SELECT customer_id, recency_days, frequency, monetary, r, f, m, segment
  FROM loyalty.rfm ORDER BY customer_id;
SELECT segment, count(*) FROM loyalty.rfm GROUP BY segment ORDER BY segment;

-- the boxes shipped: ten, ranks 1..10
SELECT code, r_min, r_max, f_min, f_max, m_min, m_max, rank FROM loyalty.rfm_segment ORDER BY rank;

-- mode fixed: the marketer's thresholds stay; monetary above 550 scores 5,
-- the rest 1 (customer 1: m 5, champions still; customer 3: m 5; customer 5: m 1)
INSERT INTO loyalty.setting (key, value) VALUES ('rfm_mode', 'fixed');
DELETE FROM loyalty.rfm_threshold WHERE dimension = 'm';
INSERT INTO loyalty.rfm_threshold (dimension, score, lower, upper) VALUES
    ('m', 1, NULL, 550), ('m', 5, 550, NULL);
SELECT loyalty.refresh_rfm('2026-06-01 00:00+00') AS scored;
SELECT dimension, score, lower, upper FROM loyalty.rfm_threshold WHERE dimension = 'm' ORDER BY score;
SELECT customer_id, m, segment FROM loyalty.rfm WHERE frequency > 0 ORDER BY customer_id;
-- a malformed mode is refused
INSERT INTO loyalty.setting (key, value) VALUES ('rfm_window', 'forever');
UPDATE loyalty.setting SET value = 'ntile' WHERE key = 'rfm_mode';
DELETE FROM loyalty.setting WHERE key = 'rfm_mode';

-- maintenance recomputes once a program day (Europe/Moscow): the first run
-- of 2026-06-02 scores the eight customers, the second that day does not;
-- a day later every recency has grown by one (customer 1: 2 days), and the
-- refund of 10 made 2026-06-02 00:00 UTC now counts (customer 8: 50.00)
DELETE FROM loyalty.rfm;
SELECT loyalty.run_maintenance('2026-06-02 09:00+03') IS NOT NULL AS first_run;
SELECT count(*) AS scored, min(computed_at) AS computed_at FROM loyalty.rfm;
SELECT loyalty.run_maintenance('2026-06-02 18:00+03') IS NOT NULL AS same_day;
SELECT count(*) AS scored, min(computed_at) AS computed_at FROM loyalty.rfm;
SELECT customer_id, recency_days, monetary, r, f, m, segment FROM loyalty.rfm ORDER BY customer_id;
SELECT count(*) AS thresholds, min(computed_at) AS computed_at FROM loyalty.rfm_threshold;

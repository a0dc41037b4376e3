--
-- scale_reports: reports across shards from additive parts (issue 20 item
-- 9).  Two disjoint sets of customers (A: Anna, Boris and one anonymous
-- check; B: Vera, Gleb and another) play two shards: each set's history is
-- written in a transaction, its parts taken into a psql variable and the
-- transaction rolled back; then both histories are written together and the
-- single-node reports are compared with the parts merged.  KPIs by day,
-- store and channel, points liability, and RFM thresholds (percentile_disc)
-- from the merged value counts, written back with rfm_set_thresholds.
--
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS loyalty CASCADE;
CREATE EXTENSION loyalty;
RESET client_min_messages;
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';

INSERT INTO loyalty.setting (key, value) VALUES ('timezone', 'UTC'), ('accrual_percent', '10');
INSERT INTO loyalty.store (code, name, region, timezone, channel) VALUES
    ('S1', 'Store one', 'north', 'UTC', 'pos'), ('W1', 'Web shop', 'north', 'UTC', 'web');
INSERT INTO loyalty.category (code, parent, name) VALUES ('all', NULL, 'Everything');
INSERT INTO loyalty.product (sku, name, category, price) VALUES ('A1', 'Thing', 'all', 100.00);
INSERT INTO loyalty.account_type (code, name, redeem_share, lifetime, activation_delay) VALUES
    ('main', 'Points', 0.5, interval '60 days', interval '0');
SELECT loyalty.register(p) FROM unnest(ARRAY['+79120000001', '+79120000002', '+79120000003', '+79120000004']) p;

-- buy: a check at noon of a June 2026 day, as the customer (NULL:
-- anonymous), with qty things of 100.00 and some points redeemed
CREATE FUNCTION pg_temp.buy(op text, phone text, day int, qty int, store text DEFAULT 'S1', redeem int DEFAULT 0)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('loyalty.test_now', format('2026-06-%s 12:00+00', lpad(day::text, 2, '0')), false);
    PERFORM loyalty.purchase(jsonb_strip_nulls(jsonb_build_object(
        'operation_id', op, 'customer', phone, 'store', store, 'redeem', nullif(redeem, 0),
        'lines', jsonb_build_array(jsonb_build_object('sku', 'A1', 'qty', qty)))));
END
$$;
-- set A: Anna buys on days 1, 2 and 3 (then redeems 20 points), Boris on 2
-- on the web, an anonymous check on day 3; a refund of Anna's first
CREATE FUNCTION pg_temp.set_a() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_temp.buy('A1', '+79120000001', 1, 3);
    PERFORM pg_temp.buy('A2', '+79120000001', 2, 1);
    PERFORM pg_temp.buy('A3', '+79120000001', 3, 2, 'S1', 20);
    PERFORM pg_temp.buy('A4', '+79120000002', 2, 5, 'W1');
    PERFORM pg_temp.buy('A5', NULL, 3, 1);
    PERFORM loyalty.refund('{"operation_id": "AR1", "purchase": "A1", "lines": [{"index": 0, "qty": 1}]}');
END
$$;
-- set B: Vera buys on days 1 and 3, Gleb on day 3 (twice), an anonymous
-- check on day 1 on the web
CREATE FUNCTION pg_temp.set_b() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_temp.buy('B1', '+79120000003', 1, 7);
    PERFORM pg_temp.buy('B2', '+79120000003', 3, 1);
    PERFORM pg_temp.buy('B3', '+79120000004', 3, 4);
    PERFORM pg_temp.buy('B4', '+79120000004', 3, 2, 'W1');
    PERFORM pg_temp.buy('B5', NULL, 1, 9, 'W1');
END
$$;

-- the parts of "shard" A, then of "shard" B
BEGIN;
SELECT pg_temp.set_a();
SELECT array_agg(p)::text AS kpi_day_a FROM loyalty.kpi_parts('2026-06-02', '2026-06-04', 'day') p \gset
SELECT array_agg(p)::text AS kpi_store_a FROM loyalty.kpi_parts('2026-06-01', '2026-06-04', 'store') p \gset
SELECT array_agg(p)::text AS kpi_channel_a FROM loyalty.kpi_parts('2026-06-01', '2026-06-04', 'channel') p \gset
SELECT array_agg(row(account, expiry_month, available, pending, negative, points)::loyalty.liability_part)::text AS liab_a
  FROM loyalty.points_liability('2026-06-04') \gset
SELECT jsonb_agg(p)::text AS rfm_a FROM loyalty.rfm_parts('2026-06-04') p \gset
ROLLBACK;
BEGIN;
SELECT pg_temp.set_b();
SELECT array_agg(p)::text AS kpi_day_b FROM loyalty.kpi_parts('2026-06-02', '2026-06-04', 'day') p \gset
SELECT array_agg(p)::text AS kpi_store_b FROM loyalty.kpi_parts('2026-06-01', '2026-06-04', 'store') p \gset
SELECT array_agg(p)::text AS kpi_channel_b FROM loyalty.kpi_parts('2026-06-01', '2026-06-04', 'channel') p \gset
SELECT array_agg(row(account, expiry_month, available, pending, negative, points)::loyalty.liability_part)::text AS liab_b
  FROM loyalty.points_liability('2026-06-04') \gset
SELECT jsonb_agg(p)::text AS rfm_b FROM loyalty.rfm_parts('2026-06-04') p \gset
ROLLBACK;

-- one node with everything
SELECT pg_temp.set_a();
SELECT pg_temp.set_b();

-- KPIs by day: days 2 and 3 (day 1 is the previous period for retention).
-- Day 3: checks A3 A5 B2 B3 B4 = 5, identified 4, customers Anna, Vera,
-- Gleb = 3, Gleb bought twice (repeat 1/3); of day 2's buyers (Anna,
-- Boris) Anna came back (retention 0.5)
SELECT * FROM loyalty.kpi('2026-06-02', '2026-06-04', 'day');
SELECT (SELECT array_agg(k ORDER BY k.period) FROM loyalty.kpi('2026-06-02', '2026-06-04', 'day') k)::text
     = (SELECT array_agg(k ORDER BY k.period)
          FROM loyalty.kpi_merge(:'kpi_day_a'::loyalty.kpi_part[] || :'kpi_day_b'::loyalty.kpi_part[]) k)::text
       AS kpi_by_day_equal;
SELECT (SELECT array_agg(k ORDER BY k.period) FROM loyalty.kpi('2026-06-01', '2026-06-04', 'store') k)::text
     = (SELECT array_agg(k ORDER BY k.period)
          FROM loyalty.kpi_merge(:'kpi_store_a'::loyalty.kpi_part[] || :'kpi_store_b'::loyalty.kpi_part[]) k)::text
       AS kpi_by_store_equal;
SELECT (SELECT array_agg(k ORDER BY k.period) FROM loyalty.kpi('2026-06-01', '2026-06-04', 'channel') k)::text
     = (SELECT array_agg(k ORDER BY k.period)
          FROM loyalty.kpi_merge(:'kpi_channel_a'::loyalty.kpi_part[] || :'kpi_channel_b'::loyalty.kpi_part[]) k)::text
       AS kpi_by_channel_equal;
-- the ratios are not the sums of the shards' ratios: day 3's repeat rate
-- is 0 on A (Anna once) and 1/2 on B (Gleb twice of Vera, Gleb), 1/3 merged
SELECT k.period, k.repeat_rate FROM loyalty.kpi_merge(:'kpi_day_a'::loyalty.kpi_part[]) k WHERE k.period = '2026-06-03'
UNION ALL
SELECT k.period, k.repeat_rate FROM loyalty.kpi_merge(:'kpi_day_b'::loyalty.kpi_part[]) k WHERE k.period = '2026-06-03';
-- day 2's retention counts day 1's buyers on both nodes (Anna on A, Vera
-- on B), though B sold nothing on day 2: 1 of 2 came back, 0.5
SELECT k.period, k.retention
  FROM loyalty.kpi_merge(:'kpi_day_a'::loyalty.kpi_part[] || :'kpi_day_b'::loyalty.kpi_part[]) k;
-- one node's parts give exactly its own KPIs
SELECT (SELECT array_agg(k ORDER BY k.period) FROM loyalty.kpi('2026-06-01', '2026-06-04', 'week') k)::text
     = (SELECT array_agg(k ORDER BY k.period)
          FROM loyalty.kpi_merge((SELECT array_agg(p) FROM loyalty.kpi_parts('2026-06-01', '2026-06-04', 'week') p)) k)::text
       AS own_parts_equal;

-- points liability
SELECT * FROM loyalty.points_liability('2026-06-04');
SELECT (SELECT array_agg(l) FROM loyalty.points_liability('2026-06-04') l)::text
     = (SELECT array_agg(l) FROM loyalty.points_liability_merge(
            :'liab_a'::loyalty.liability_part[] || :'liab_b'::loyalty.liability_part[],
            loyalty.setting_value('point_value')::numeric) l)::text AS liability_equal;

-- RFM: the thresholds one node computes (quantile mode) ...
SELECT loyalty.refresh_rfm('2026-06-04') AS scored;
CREATE TEMP TABLE one_node AS SELECT dimension, score, lower, upper FROM loyalty.rfm_threshold;
SELECT * FROM one_node ORDER BY dimension, score;
-- ... equal those merged from the two sets' value counts
SELECT (SELECT array_agg(t ORDER BY t.dimension, t.score) FROM one_node t)::text
     = (SELECT array_agg(t ORDER BY t.dimension, t.score)
          FROM loyalty.rfm_thresholds_merge(:'rfm_a'::jsonb || :'rfm_b'::jsonb) t)::text AS rfm_thresholds_equal;
-- and one set alone does not give them (the single-shard quantiles differ)
SELECT (SELECT array_agg(t ORDER BY t.dimension, t.score) FROM one_node t)::text
     = (SELECT array_agg(t ORDER BY t.dimension, t.score)
          FROM loyalty.rfm_thresholds_merge(:'rfm_a'::jsonb) t)::text AS set_a_alone_equal;
-- written back on a node in fixed mode, refresh_rfm scores by them
INSERT INTO loyalty.setting (key, value) VALUES ('rfm_mode', 'fixed');
SELECT loyalty.rfm_set_thresholds(
    (SELECT jsonb_agg(t) FROM loyalty.rfm_thresholds_merge(:'rfm_a'::jsonb || :'rfm_b'::jsonb) t),
    '2026-06-04') AS written;
SELECT loyalty.refresh_rfm('2026-06-04') AS scored;
SELECT (SELECT array_agg(t ORDER BY t.dimension, t.score) FROM one_node t)::text
     = (SELECT array_agg(row(dimension, score, lower, upper) ORDER BY dimension, score)
          FROM loyalty.rfm_threshold)::text AS thresholds_written;
SELECT loyalty.rfm_set_thresholds('{}');

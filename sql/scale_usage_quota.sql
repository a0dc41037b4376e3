--
-- scale_usage_quota: a promotion-wide usage_limit split into per-shard
-- quotas (issue 20 item 5).  This node is one of two shards of a promotion
-- limited to 10 uses: with a quota of 3 it gives the promotion three times,
-- then refuses, though the promotion's own limit is far; a NULL quota (the
-- default) is the whole limit as on one node; usage_quotas splits what is
-- left between the nodes.
--
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS loyalty CASCADE;
CREATE EXTENSION loyalty;
RESET client_min_messages;
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';

INSERT INTO loyalty.store (code, name, region, timezone, channel) VALUES ('S1', 'Store one', 'north', 'UTC', 'pos');
INSERT INTO loyalty.category (code, parent, name) VALUES ('all', NULL, 'Everything');
INSERT INTO loyalty.product (sku, name, category, price) VALUES ('A1', 'Thing', 'all', 100.00);
INSERT INTO loyalty.promotion (code, name, mechanic, rule, usage_limit) VALUES
    ('TEN', '10% off, ten times', 'percent_off', '{"products": {"all": true}, "percent": 10}', 10);

-- buy: a check of one thing; the discount it got (10.00 while TEN applies)
CREATE FUNCTION pg_temp.buy(op text) RETURNS numeric LANGUAGE sql AS $$
    SELECT (loyalty.purchase(jsonb_build_object('operation_id', op, 'store', 'S1',
            'lines', '[{"sku": "A1", "qty": 1}]'::jsonb)) -> 'totals' ->> 'discount')::numeric
$$;

-- this shard's share: 3 of the 10 (no uses yet)
SELECT loyalty.set_usage_quota('TEN', 3) AS used_so_far;
SELECT u.promotion, u.uses, q.quota FROM loyalty.promotion_usage u LEFT JOIN loyalty.promotion_quota q USING (promotion);
-- three checks get 10.00 off, the fourth nothing (calculate says so too)
SELECT op, pg_temp.buy(op) AS discount FROM unnest(ARRAY['P1', 'P2', 'P3', 'P4']) op;
SELECT loyalty.calculate('{"store": "S1", "lines": [{"sku": "A1", "qty": 1}]}') -> 'totals' ->> 'discount' AS calculated;
SELECT u.promotion, u.uses, q.quota FROM loyalty.promotion_usage u LEFT JOIN loyalty.promotion_quota q USING (promotion);
-- a refund of a check that used it gives the use back to this shard
SELECT loyalty.refund('{"operation_id": "R1", "purchase": "P1", "lines": [{"index": 0, "qty": 1}]}') IS NOT NULL AS refunded;
SELECT uses FROM loyalty.promotion_usage;
SELECT pg_temp.buy('P5') AS discount, pg_temp.buy('P6') AS then;

-- rebalancing from the central count: this node used 3, the other 5 of
-- 10: 2 left, one each -> quotas 4 and 6
SELECT loyalty.usage_quotas(10, ARRAY[3, 5]::bigint[]) AS quotas;
SELECT loyalty.set_usage_quota('TEN', (loyalty.usage_quotas(10, ARRAY[3, 5]::bigint[]))[1]) AS used_so_far;
SELECT pg_temp.buy('P7') AS discount, pg_temp.buy('P8') AS then;
-- other splits: nothing used (4 + 3 + 3), all used (each keeps its uses),
-- over the limit from before the split (no more anywhere), one node
SELECT loyalty.usage_quotas(10, ARRAY[0, 0, 0]::bigint[]) AS fresh,
       loyalty.usage_quotas(10, ARRAY[6, 4]::bigint[]) AS full,
       loyalty.usage_quotas(10, ARRAY[9, 4]::bigint[]) AS over,
       loyalty.usage_quotas(10, ARRAY[2]::bigint[]) AS one_node;
-- NULL: back to the whole limit on this node (4 used of 10)
SELECT loyalty.set_usage_quota('TEN', NULL) AS used_so_far;
SELECT pg_temp.buy('P9') AS discount;
-- a quota above the limit does not raise the limit
SELECT loyalty.set_usage_quota('TEN', 50) AS used_so_far;
SELECT op, pg_temp.buy(op) AS discount FROM unnest(ARRAY['Q1', 'Q2', 'Q3', 'Q4', 'Q5', 'Q6']) op;
SELECT u.uses, q.quota FROM loyalty.promotion_usage u LEFT JOIN loyalty.promotion_quota q USING (promotion);
-- errors
\set VERBOSITY default
SELECT loyalty.set_usage_quota('NOPE', 1);
SELECT loyalty.set_usage_quota('TEN', -1);

--
-- harden_bulk: bulk work in one transaction (issue 14 item 5).  A
-- marketer's SELECT loyalty.adjust(...) FROM a segment, or a migration
-- script, runs many operations in one statement.  0.8 held an advisory
-- lock per operation_id until commit: with the default lock settings such
-- a statement failed with 53200 (out of shared memory) after some 8,000
-- (max_connections = 50) to 12,800 (100) operations, and slowed down
-- superlinearly before that.  An operation now leaves nothing in the
-- shared lock table.  (bench/bulk times 100,000 adjusts and 20,000
-- purchases in one statement; here 8,000 of each in one statement, more
-- than the lock table of a default server holds.)
--
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS loyalty CASCADE;
CREATE EXTENSION loyalty;
RESET client_min_messages;
SET timezone = 'UTC';

INSERT INTO loyalty.account_type (code, name, redeem_share, lifetime, activation_delay) VALUES
    ('main', 'Bonus points', 0.5, '1 year', '0');
INSERT INTO loyalty.tier (code, name, rank, threshold, accrual_percent) VALUES ('base', 'Base', 1, 0, 5);
INSERT INTO loyalty.store (code, name, region, timezone, channel) VALUES
    ('S1', 'Store one', 'north', 'Europe/Moscow', 'pos');
INSERT INTO loyalty.category (code, parent, name) VALUES ('all', NULL, 'Everything');
INSERT INTO loyalty.product (sku, name, category, price) VALUES ('A', 'Cream', 'all', 200.00);
SELECT count(loyalty.register('+7912' || lpad(i::text, 7, '0'))) AS customers
  FROM generate_series(1, 200) AS i;

-- the lock table of a server with default settings (64 locks per
-- connection, 100 connections) holds fewer locks than the 16,000
-- operations of the statement below
SELECT 64 * 100 < 16000 AS more_operations_than_default_lock_slots;

-- one statement, 8,000 grants of 10 points over 200 customers and 8,000
-- purchases: every second one of a customer, who spends a point and earns
-- 5% of what they pay, the others anonymous
SELECT count(*) AS rows,
       count(*) FILTER (WHERE a ? 'balance') AS adjusts,
       count(*) FILTER (WHERE p ->> 'operation_id' = 'bulk-p-' || i) AS purchases
  FROM (SELECT i,
               loyalty.adjust(jsonb_build_object(
                   'operation_id', 'bulk-a-' || i, 'customer', 1 + i % 200, 'account', 'main',
                   'points', 10, 'reason', 'bulk grant')) AS a,
               loyalty.purchase(
                   CASE WHEN i % 2 = 0 THEN jsonb_build_object('customer', 1 + (i / 2) % 200, 'redeem', 1)
                        ELSE '{}' END
                   || jsonb_build_object('operation_id', 'bulk-p-' || i, 'store', 'S1',
                                         'lines', jsonb_build_array(jsonb_build_object('sku', 'A', 'qty', 1)))) AS p
          FROM generate_series(1, 8000) AS i) AS s;
SELECT count(*) AS lots, sum(amount) AS points, count(DISTINCT customer_id) AS customers
  FROM loyalty.lot WHERE operation_id LIKE 'bulk-a-%';
SELECT count(*) AS purchases, count(customer_id) AS identified, sum(points_spent) AS spent,
       sum(points_earned) AS earned, sum(total) AS paid
  FROM loyalty.purchase;
SELECT kind, count(*) AS operations, count(response) AS responses
  FROM loyalty.operation GROUP BY kind ORDER BY kind;
-- every customer: 400 granted, then 20 purchases, each spending a point
-- and earning 5% of what was paid
SELECT min(available) AS least, max(available) AS most
  FROM loyalty.customer c, loyalty.balance('id:' || c.id) AS b;
SELECT count(*) AS problems FROM loyalty.verify_ledger();

-- sent again in bulk, the same requests replay: the stored responses, no
-- new effect
SELECT count(*) AS replays,
       count(*) FILTER (WHERE r = o.response) AS same_response
  FROM (SELECT 'bulk-a-' || i AS id, loyalty.adjust(jsonb_build_object(
               'operation_id', 'bulk-a-' || i, 'customer', 1 + i % 200, 'account', 'main',
               'points', 10, 'reason', 'bulk grant')) AS r
          FROM generate_series(1, 8000, 5) AS i) AS s
  JOIN loyalty.operation o ON o.operation_id = s.id;
SELECT count(*) AS lots FROM loyalty.lot WHERE operation_id LIKE 'bulk-a-%';

-- the locks a transaction holds do not grow with its operations: none in
-- the advisory class (0.8 held one per operation_id)
BEGIN;
SELECT count(loyalty.adjust(jsonb_build_object(
           'operation_id', 'lock-a-' || i, 'customer', 1 + i % 200, 'account', 'main',
           'points', 1, 'reason', 'lock count'))) AS adjusts,
       count(loyalty.purchase(jsonb_build_object(
           'operation_id', 'lock-p-' || i, 'customer', 1 + i % 200, 'store', 'S1',
           'lines', jsonb_build_array(jsonb_build_object('sku', 'A', 'qty', 1))))) AS purchases
  FROM generate_series(1, 300) AS i;
SELECT count(*) FILTER (WHERE locktype = 'advisory') AS advisory_locks,
       count(*) < 100 AS few_locks
  FROM pg_locks WHERE pid = pg_backend_pid();
COMMIT;
SELECT count(*) AS problems FROM loyalty.verify_ledger();

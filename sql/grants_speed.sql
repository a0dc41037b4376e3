--
-- grants_speed: loyalty.grant_points at scale reads each customer once
-- (issue 16).  The grant used to compute its customers twice (to lock
-- them, then to grant), each time probing customer by key for every
-- member; it now locks them once and grants to the ids it locked.  Beyond
-- the foreign-key check of each new lot (one probe of customer by key per
-- lot), a grant to N members probes customer about N times (the lock, by
-- key; once when it reads customer in one pass, as at chain scale), not
-- 3N.  A member merged into another customer is granted to its survivor,
-- once.  The event payload, the same for every customer, is one value.
--
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS loyalty CASCADE;
CREATE EXTENSION loyalty;
RESET client_min_messages;
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';
SET loyalty.test_now = '2026-06-01 10:00+00';
INSERT INTO loyalty.account_type (code, name, lifetime) VALUES ('main', 'Points', '365 days')
    ON CONFLICT DO NOTHING;
ALTER TABLE loyalty.customer DISABLE TRIGGER USER;
INSERT INTO loyalty.customer (id, phone, created_at)
SELECT i, ('+79' || lpad(i::text, 9, '0'))::loyalty.phone, '2025-01-01' FROM generate_series(1, 3000) i;
ALTER TABLE loyalty.customer ENABLE TRIGGER USER;
-- 3000 merged into 1; the segment holds 1..2000 and 3000 (2001 rows)
SELECT loyalty.merge_customers(1, 3000) ->> 'keep' AS keep;
INSERT INTO loyalty.segment (code, name) VALUES ('many', 'Many');
INSERT INTO loyalty.segment_member (segment, customer_id)
SELECT 'many', i FROM generate_series(1, 2000) i UNION ALL SELECT 'many', 3000;
ANALYZE;

BEGIN;
SELECT loyalty.grant_points('{"operation_id": "S1", "segment": "many", "account": "main", "points": 10, "reason": "scale"}') ->> 'customers' AS customers;
SELECT count(*) AS lots, count(DISTINCT customer_id) AS customers, min(customer_id), max(customer_id)
  FROM loyalty.lot WHERE operation_id = 'S1';
SELECT count(*) AS entries FROM loyalty.ledger_entry WHERE operation_id = 'S1';
SELECT count(*) AS events, count(DISTINCT customer_id) AS customers, count(DISTINCT payload) AS payloads
  FROM loyalty.event WHERE kind = 'points_earned' AND payload ->> 'operation_id' = 'S1';
-- probes of customer by key beyond the lots' foreign-key checks: fewer
-- than two per member (the lock's; before: three per member, 6,014)
SELECT t.idx_scan - (SELECT count(*) FROM loyalty.lot WHERE operation_id = 'S1')
       < 2 * (SELECT count(*) FROM loyalty.segment_member WHERE segment = 'many') AS customer_read_once
  FROM pg_stat_xact_user_tables t
 WHERE t.schemaname = 'loyalty' AND t.relname = 'customer';
COMMIT;
SELECT * FROM loyalty.verify_ledger();

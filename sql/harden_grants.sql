--
-- harden_grants: loyalty.grant_points (SPEC section 10, issue 16 part 4):
-- one set-based, idempotent grant to every member of a segment or to a
-- list; a customer's debt on the account is paid first; a replay changes
-- nothing; a failed call (malformed, unknown customer) changes nothing.
--
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS loyalty CASCADE;
CREATE EXTENSION loyalty;
RESET client_min_messages;
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';
SET loyalty.test_now = '2026-06-01 10:00+00';

INSERT INTO loyalty.account_type (code, name, lifetime) VALUES ('bonus', 'Bonus points', '90 days');
SELECT loyalty.register('+7912000000' || i) FROM generate_series(1, 4) i;
INSERT INTO loyalty.segment (code, name) VALUES ('active', 'Active'), ('empty', 'Nobody');
INSERT INTO loyalty.segment_member (segment, customer_id) VALUES ('active', 1), ('active', 2), ('active', 3);
-- customer 2 owes 300 points on the bonus account (a debt lot)
SELECT loyalty.adjust('{"operation_id": "g-debt", "customer": 2, "account": "bonus", "points": 500, "reason": "setup"}') IS NOT NULL AS granted;
INSERT INTO loyalty.lot (customer_id, account, amount, remaining, earned_at, available_at, operation_id)
VALUES (2, 'bonus', -300, -300, '2026-05-01', '2026-05-01', 'g-debt');
INSERT INTO loyalty.ledger_entry (customer_id, account, lot_id, operation_id, kind, points, at)
VALUES (2, 'bonus', currval('loyalty.lot_id_seq'), 'g-debt', 'debt', -300, '2026-05-01');

-- malformed requests: 22023 naming the field; nothing written
\set VERBOSITY default
SELECT loyalty.grant_points('{"operation_id": "G1", "account": "bonus", "points": 1000, "reason": "x"}');
SELECT loyalty.grant_points('{"operation_id": "G1", "segment": "active", "customers": [1], "account": "bonus", "points": 1000, "reason": "x"}');
SELECT loyalty.grant_points('{"operation_id": "G1", "segment": "active", "account": "bonus", "points": 0, "reason": "x"}');
SELECT loyalty.grant_points('{"operation_id": "G1", "segment": "active", "account": "bonus", "points": 10.5, "reason": "x"}');
SELECT loyalty.grant_points('{"operation_id": "G1", "segment": "active", "account": "bonus", "points": 10, "lifetime": "soon", "reason": "x"}');
SELECT loyalty.grant_points('{"operation_id": "G1", "customers": [1, "x"], "account": "bonus", "points": 10, "reason": "x"}');
SELECT loyalty.grant_points('{"operation_id": "G1", "segment": "nope", "account": "bonus", "points": 10, "reason": "x"}');
SELECT loyalty.grant_points('{"operation_id": "G1", "segment": "active", "account": "nope", "points": 10, "reason": "x"}');
SELECT loyalty.grant_points('{"operation_id": "G1", "segment": "active", "acount": "bonus", "points": 10, "reason": "x"}');
-- an unknown customer in the list: LY001, nobody gets anything
SELECT loyalty.grant_points('{"operation_id": "G1", "customers": [1, 99], "account": "bonus", "points": 10, "reason": "x"}');
SELECT count(*) AS operations FROM loyalty.operation WHERE operation_id = 'G1';
SELECT count(*) AS lots FROM loyalty.lot WHERE operation_id = 'G1';
\set VERBOSITY terse

-- 1000 points to the active segment, expiring in 30 days:
--   1 and 3: a lot of 1000 each; 2: 300 repay its debt, a lot of 700
SELECT loyalty.grant_points('{"operation_id": "G1", "segment": "active", "account": "bonus", "points": 1000, "lifetime": "30 days", "reason": "Summer campaign"}');
SELECT customer_id, amount, remaining, expires_at FROM loyalty.lot WHERE operation_id = 'G1' ORDER BY customer_id;
SELECT customer_id, kind, points FROM loyalty.ledger_entry WHERE operation_id = 'G1' ORDER BY customer_id, kind;
SELECT customer_id, amount, remaining FROM loyalty.lot WHERE amount < 0;
SELECT customer_id, payload ->> 'points' AS points, payload ->> 'reason' AS reason
  FROM loyalty.event WHERE payload ->> 'operation_id' = 'G1' ORDER BY customer_id;
-- the balances: 1 and 3: 1000; 2: 500 + 700 = 1200 available; 4: none
SELECT i AS customer, b.available
  FROM generate_series(1, 4) i, loyalty.balance('id:' || i, '2026-06-01 10:00+00') b WHERE b.account = 'bonus' ORDER BY i;

-- a replay returns the same response and writes nothing, even after the
-- segment changed; the same id with another request is LY003
INSERT INTO loyalty.segment_member (segment, customer_id) VALUES ('active', 4);
SELECT loyalty.grant_points('{"operation_id": "G1", "segment": "active", "account": "bonus", "points": 1000, "lifetime": "30 days", "reason": "Summer campaign"}');
SELECT count(*) AS lots FROM loyalty.lot WHERE operation_id = 'G1';
SELECT loyalty.grant_points('{"operation_id": "G1", "segment": "active", "account": "bonus", "points": 5, "reason": "Summer campaign"}');

-- a list, with a merged customer: the survivor gets it once
SELECT loyalty.merge_customers(1, 4) ->> 'keep' AS keep;
SELECT loyalty.grant_points('{"operation_id": "G2", "customers": [1, 4, 3], "account": "bonus", "points": 5, "expires_at": "2026-12-31T00:00:00+00:00", "reason": "Sorry"}');
SELECT customer_id, amount, expires_at FROM loyalty.lot WHERE operation_id = 'G2' ORDER BY customer_id;
-- an empty segment grants nothing, and says so
SELECT loyalty.grant_points('{"operation_id": "G3", "segment": "empty", "account": "bonus", "points": 5, "reason": "none"}') ->> 'customers' AS customers;
SELECT * FROM loyalty.verify_ledger();

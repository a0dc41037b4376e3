--
-- Upgrades: an installation of the first release, with data, updated to the
-- current version has exactly the objects of a fresh install, and keeps its
-- data.
--
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS loyalty CASCADE;
CREATE EXTENSION loyalty;
RESET client_min_messages;

CREATE TEMP TABLE fresh AS
    SELECT pg_describe_object(classid, objid, 0) AS object
      FROM pg_depend
     WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
       AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'loyalty');
CREATE TEMP TABLE fresh_version AS SELECT extversion FROM pg_extension WHERE extname = 'loyalty';
DROP EXTENSION loyalty CASCADE;

-- the first release, in use
CREATE EXTENSION loyalty VERSION '0.1';
INSERT INTO loyalty.store (code, name) VALUES ('S1', 'Store');
SELECT loyalty.register('+79123456789', '{"name": "Anna"}');

ALTER EXTENSION loyalty UPDATE;
SELECT extversion = (SELECT extversion FROM fresh_version) AS at_current_version
  FROM pg_extension WHERE extname = 'loyalty';

-- the same objects as a fresh install: nothing missing, nothing extra
CREATE TEMP TABLE updated AS
    SELECT pg_describe_object(classid, objid, 0) AS object
      FROM pg_depend
     WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
       AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'loyalty');
SELECT 'missing after update' AS problem, object FROM (SELECT object FROM fresh EXCEPT SELECT object FROM updated) m
UNION ALL
SELECT 'extra after update', object FROM (SELECT object FROM updated EXCEPT SELECT object FROM fresh) e
ORDER BY 1, 2;
SELECT count(*) > 50 AS objects_compared FROM updated;

-- the data survived, and the new features work on it
SELECT c.name, k.kind FROM loyalty.customer c JOIN loyalty.card k ON k.customer_id = c.id;
INSERT INTO loyalty.account_type (code, name, redeem_share) VALUES ('main', 'Bonus', 0.9);
SELECT loyalty.adjust('{"operation_id": "U1", "customer": "+79123456789", "account": "main",
                        "points": 10, "reason": "after upgrade"}') -> 'balance' AS balance;
SELECT count(*) AS problems FROM loyalty.verify_ledger();

-- 0.7 moved a line's points from purchase_line_points rows into
-- purchase_line.points; purchase_line_points is now a view of them.  A
-- 0.6 installation with a partly refunded two-account purchase keeps every
-- number, refunds go on from them, and the dump configuration names only
-- tables that exist.
SET client_min_messages = warning;
DROP EXTENSION loyalty CASCADE;
CREATE EXTENSION loyalty VERSION '0.6';
RESET client_min_messages;
INSERT INTO loyalty.store (code, name) VALUES ('S1', 'Store');
INSERT INTO loyalty.purchase (operation_id, store, channel, at, amount, discount, redeemed,
                              total, lines, refunded)
VALUES ('P6', 'S1', 'pos', '2026-10-01 12:00+00', 300, 0, 0, 300, 2, 100);
INSERT INTO loyalty.purchase_line (operation_id, line_index, sku, qty, price, amount, discount,
                                   redeemed, total, refunded_qty, refunded_total)
VALUES ('P6', 0, 'A', 2, 100, 200, 0, 0, 200, 1, 100),
       ('P6', 1, 'B', 1, 100, 100, 0, 0, 100, 0, 0);
INSERT INTO loyalty.purchase_line_points (operation_id, line_index, account, earned, spent,
                                          earned_refunded, spent_refunded)
VALUES ('P6', 0, 'main', 20, 10.5, 10, 5.25),
       ('P6', 0, 'promo', 4, 0, 2, 0),
       ('P6', 1, 'main', 10, 0, 0, 0);
CREATE TEMP TABLE points_before AS SELECT * FROM loyalty.purchase_line_points;
ALTER EXTENSION loyalty UPDATE;
SELECT line_index, points FROM loyalty.purchase_line ORDER BY line_index;
(SELECT * FROM points_before EXCEPT SELECT * FROM loyalty.purchase_line_points)
UNION ALL
(SELECT * FROM loyalty.purchase_line_points EXCEPT SELECT * FROM points_before);
SELECT count(*) AS view_rows FROM loyalty.purchase_line_points;
SELECT c::regclass AS config_table_missing
  FROM pg_extension e, unnest(e.extconfig) AS c
 WHERE e.extname = 'loyalty' AND NOT EXISTS (SELECT FROM pg_class WHERE oid = c);
SELECT has_table_privilege('loyalty_analyst', 'loyalty.purchase_line_points', 'SELECT') AS analyst_reads;
INSERT INTO loyalty.account_type (code, name, redeem_share) VALUES ('main', 'Bonus', 0.9), ('promo', 'Promo', 0.3);
SELECT loyalty.refund('{"operation_id": "R6", "purchase": "P6", "lines": [{"index": 0, "qty": 1}]}')
       -> 'totals' AS refunded;
SELECT line_index, account, earned, spent, earned_refunded, spent_refunded
  FROM loyalty.purchase_line_points ORDER BY line_index, account;

-- 0.8 made the kinds and statuses a purchase writes domains (prepared once
-- per session), put identifiers in the C collation (rebuilding their
-- indexes, the view purchase_line_points created again) and stopped
-- account-type renames from following into lots.  A 0.7 installation with
-- entries, events, an operation and a coupon keeps them, and the rules
-- still hold.
SET client_min_messages = warning;
DROP EXTENSION loyalty CASCADE;
CREATE EXTENSION loyalty VERSION '0.7';
RESET client_min_messages;
INSERT INTO loyalty.account_type (code, name, redeem_share) VALUES ('main', 'Bonus', 0.9);
SELECT loyalty.register('+79123456789', '{"name": "Anna"}');
SELECT loyalty.adjust('{"operation_id": "U7", "customer": "+79123456789", "account": "main",
                        "points": 25, "reason": "before 0.8"}') -> 'balance' AS balance;
INSERT INTO loyalty.coupon (code, kind, percent) VALUES ('SPRING-7', 'promo', 10);
INSERT INTO loyalty.event (customer_id, kind) VALUES (1, 'tier_changed');
ALTER EXTENSION loyalty UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'loyalty';
SELECT (SELECT kind FROM loyalty.ledger_entry) AS entry, (SELECT kind FROM loyalty.operation) AS operation,
       (SELECT kind || '/' || status FROM loyalty.coupon) AS coupon,
       (SELECT string_agg(kind, ',' ORDER BY id) FROM loyalty.event) AS events;
SELECT format_type(atttypid, NULL) AS type, count(*) AS columns
  FROM pg_attribute WHERE attrelid IN ('loyalty.ledger_entry'::regclass, 'loyalty.event'::regclass,
                                       'loyalty.operation'::regclass, 'loyalty.coupon'::regclass)
   AND atttypid IN (SELECT oid FROM pg_type WHERE typtype = 'd' AND typnamespace = 'loyalty'::regnamespace)
 GROUP BY 1 ORDER BY 1;
SELECT count(*) AS columns_in_c FROM pg_attribute
 WHERE attrelid IN ('loyalty.operation'::regclass, 'loyalty.ledger_entry'::regclass, 'loyalty.coupon'::regclass)
   AND attcollation = 'pg_catalog."C"'::regcollation;
SELECT operation_id FROM loyalty.operation WHERE operation_id = 'U7';
SELECT has_table_privilege('loyalty_analyst', 'loyalty.purchase_line_points', 'SELECT') AS analyst_reads_view;
UPDATE loyalty.coupon SET status = 'gone';
UPDATE loyalty.account_type SET code = 'bonus' WHERE code = 'main';
SELECT kind, points FROM loyalty.history('+79123456789');
SELECT count(*) AS problems FROM loyalty.verify_ledger();

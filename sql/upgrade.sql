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

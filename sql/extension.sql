--
-- The extension's object set, roles and privileges at a glance.
--
-- This list is the upgrade baseline: an install by upgrade scripts must end
-- with exactly the same objects as a fresh install of the current version.
--
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS loyalty CASCADE;
CREATE EXTENSION loyalty;
RESET client_min_messages;
SET datestyle = 'ISO, YMD';

SELECT extversion, extrelocatable, extnamespace::regnamespace AS schema
  FROM pg_extension WHERE extname = 'loyalty';

-- every member object, by kind
SELECT pg_describe_object(classid, objid, 0) AS object
  FROM pg_depend
 WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
   AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'loyalty')
 ORDER BY 1;

-- the four roles exist and cannot log in
SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname LIKE 'loyalty\_%' ORDER BY 1;

-- identifiers compare by bytes whatever the database's collation: operation
-- ids, account type, coupon and promotion codes (with the columns that
-- refer to them) and card numbers; every other text column keeps the
-- database's collation
SELECT c.relname AS "table", string_agg(a.attname, ', ' ORDER BY a.attnum) AS collate_c
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
 WHERE c.relnamespace = 'loyalty'::regnamespace AND c.relkind = 'r'
   AND a.attnum > 0 AND NOT a.attisdropped AND a.attcollation = 'pg_catalog."C"'::regcollation
 GROUP BY 1 ORDER BY 1;

-- every function and table is commented
SELECT p.oid::regprocedure AS function_without_comment
  FROM pg_proc p WHERE p.pronamespace = 'loyalty'::regnamespace
   AND obj_description(p.oid, 'pg_proc') IS NULL
 ORDER BY p.oid::regprocedure::text;
SELECT c.oid::regclass AS relation_without_comment
  FROM pg_class c WHERE c.relnamespace = 'loyalty'::regnamespace
   AND c.relkind IN ('r', 'v', 'm', 'S') AND obj_description(c.oid, 'pg_class') IS NULL
 ORDER BY c.oid::regclass::text;

-- every SECURITY DEFINER function pins search_path
SELECT p.oid::regprocedure AS definer_function, p.proconfig
  FROM pg_proc p WHERE p.pronamespace = 'loyalty'::regnamespace AND p.prosecdef
 ORDER BY p.oid::regprocedure::text;

-- nothing is executable by PUBLIC but the phone type's machinery and pure helpers
SELECT p.oid::regprocedure AS public_function
  FROM pg_proc p WHERE p.pronamespace = 'loyalty'::regnamespace
   AND has_function_privilege('public', p.oid, 'EXECUTE')
 ORDER BY p.oid::regprocedure::text;

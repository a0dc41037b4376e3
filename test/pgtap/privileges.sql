-- test/pgtap/privileges.sql: who may do what (SPEC §13).
--
-- Runs in a transaction that is rolled back; pg_prove reports each assertion.
BEGIN;
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS loyalty CASCADE;
CREATE EXTENSION loyalty;
RESET client_min_messages;

SELECT plan(48);

-- the roles
SELECT has_role('loyalty_cashier');
SELECT has_role('loyalty_marketer');
SELECT has_role('loyalty_analyst');
SELECT has_role('loyalty_admin');

-- a login role with none of them
CREATE ROLE tap_nobody LOGIN;
CREATE ROLE tap_cashier LOGIN IN ROLE loyalty_cashier;
CREATE ROLE tap_marketer LOGIN IN ROLE loyalty_marketer;
CREATE ROLE tap_analyst LOGIN IN ROLE loyalty_analyst;
CREATE ROLE tap_admin LOGIN IN ROLE loyalty_admin;

INSERT INTO loyalty.store (code, name) VALUES ('S1', 'Store');
SELECT loyalty.register('+79123456789', '{"name": "Anna", "email": "anna@example.ru"}');

-- bearer codes (issue 14 item 3): a certificate, a coupon_use and a
-- coupon_issued event carrying its code
CREATE TEMP TABLE tap_code AS SELECT loyalty.issue_certificate(100, NULL, '+79123456789') AS code;
GRANT SELECT ON tap_code TO PUBLIC;
INSERT INTO loyalty.event (customer_id, kind, payload, message)
SELECT 1, 'coupon_issued', jsonb_build_object('code', code, 'kind', 'certificate'),
       'Gift certificate ' || code || ' worth 100' FROM tap_code;

-- PUBLIC is refused
SET ROLE tap_nobody;
SELECT throws_ok($$SELECT loyalty.register('+79000000001')$$, '42501', NULL,
                 'a role without a grant cannot register customers');
SELECT throws_ok($$SELECT loyalty.find_customer('+79123456789')$$, '42501', NULL,
                 'a role without a grant cannot look customers up');
SELECT throws_ok($$SELECT * FROM loyalty.customer$$, '42501', NULL,
                 'a role without a grant cannot read customers');
SELECT throws_ok($$INSERT INTO loyalty.store (code, name) VALUES ('S9', 'x')$$, '42501', NULL,
                 'a role without a grant cannot change configuration');
SELECT throws_ok($$SELECT '+79123456789'::loyalty.phone$$, '42501', NULL,
                 'a role without a grant cannot even use the schema');
RESET ROLE;

-- the cashier: lookup and registration through the API, no raw tables
SET ROLE tap_cashier;
SELECT is(loyalty.find_customer('8 912 345 67 89'), 1::bigint, 'a cashier finds a customer');
SELECT ok('+79123456789'::loyalty.phone OPERATOR(loyalty.=) '89123456789'::loyalty.phone,
          'a role with schema usage can use the phone type and its operators');
SELECT isnt(loyalty.register('+79000000002'), NULL, 'a cashier registers a customer');
SELECT throws_ok($$SELECT phone FROM loyalty.customer$$, '42501', NULL,
                 'a cashier cannot read the customer table');
SELECT throws_ok($$UPDATE loyalty.promotion SET enabled = false$$, '42501', NULL,
                 'a cashier cannot change promotions');
SELECT throws_ok($$SELECT loyalty.merge_customers(1, 2)$$, '42501', NULL,
                 'a cashier cannot merge customers');
SELECT throws_ok($$SELECT loyalty.issue_certificate(1000000000)$$, '42501', NULL,
                 'a cashier cannot mint a certificate (it sells one as a purchase line)');
SELECT throws_ok($$SELECT code FROM loyalty.coupon$$, '42501', NULL,
                 'a cashier cannot read coupon codes');
SELECT throws_ok($$SELECT code FROM loyalty.coupon_masked$$, '42501', NULL,
                 'a cashier reads no coupon table at all: codes come in API responses');
RESET ROLE;

-- the marketer: configuration, not customers
SET ROLE tap_marketer;
SELECT lives_ok($$INSERT INTO loyalty.category (code, name) VALUES ('all', 'All')$$,
                'a marketer adds a category');
SELECT lives_ok($$INSERT INTO loyalty.store (code, name, timezone) VALUES ('S2', 'Two', 'Asia/Yekaterinburg')$$,
                'a marketer adds a store (the time zone check runs as the marketer)');
SELECT lives_ok($$INSERT INTO loyalty.setting VALUES ('timezone', 'Europe/Samara')$$,
                'a marketer changes a setting');
SELECT lives_ok($$UPDATE loyalty.category SET name = 'Everything' WHERE code = 'all'$$,
                'a marketer edits the category tree');
SELECT throws_ok($$SELECT * FROM loyalty.customer$$, '42501', NULL,
                 'a marketer cannot read customers');
SELECT throws_ok($$SELECT loyalty.register('+79000000003')$$, '42501', NULL,
                 'a marketer cannot register customers');
SELECT lives_ok($$SELECT loyalty.issue_certificate(100)$$, 'a marketer issues a certificate');
SELECT throws_ok($$SELECT code FROM loyalty.coupon$$, '42501', NULL,
                 'a marketer cannot read codes in clear after issuing them');
SELECT is((SELECT count(*) FROM loyalty.coupon_masked WHERE code ~ '^\*{4}-\*{4}-[0-9A-Z]{4}$'), 2::bigint,
          'a marketer reads coupons with masked codes');
RESET ROLE;

-- the analyst: reads configuration and masked customers only
SET ROLE tap_analyst;
SELECT is((SELECT phone FROM loyalty.customer_masked WHERE id = 1), '+7912***6789',
          'an analyst sees a masked phone');
SELECT is((SELECT email FROM loyalty.customer_masked WHERE id = 1), 'a***@example.ru',
          'an analyst sees a masked e-mail');
SELECT throws_ok($$SELECT phone FROM loyalty.customer$$, '42501', NULL,
                 'an analyst cannot read raw phones');
SELECT throws_ok($$SELECT * FROM loyalty.card$$, '42501', NULL,
                 'an analyst cannot read card numbers');
SELECT lives_ok($$SELECT count(*) FROM loyalty.store$$, 'an analyst reads configuration');
SELECT throws_ok($$DELETE FROM loyalty.store$$, '42501', NULL,
                 'an analyst cannot change configuration');
SELECT throws_ok($$SELECT code FROM loyalty.coupon$$, '42501', NULL,
                 'an analyst cannot read coupon codes');
SELECT throws_ok($$SELECT code FROM loyalty.coupon_use$$, '42501', NULL,
                 'an analyst cannot read codes of coupon uses');
SELECT throws_ok($$SELECT payload FROM loyalty.event$$, '42501', NULL,
                 'an analyst cannot read raw events (they carry codes)');
SELECT is((SELECT code FROM loyalty.coupon_masked WHERE customer_id = 1),
          '****-****-' || right((SELECT code FROM tap_code), 4),
          'an analyst sees the last 4 characters of a code');
SELECT lives_ok($$SELECT code, amount FROM loyalty.coupon_use_masked$$,
                'an analyst reads coupon uses with masked codes');
SELECT is((SELECT count(*) FROM loyalty.event_masked
            WHERE position((SELECT code FROM tap_code) IN payload::text || message) > 0), 0::bigint,
          'an analyst never sees a raw code in an event');
SELECT is((SELECT message FROM loyalty.event_masked WHERE kind = 'coupon_issued'),
          'Gift certificate ****-****-' || right((SELECT code FROM tap_code), 4) || ' worth 100',
          'an event message keeps its text with the code masked');
RESET ROLE;

-- the admin: everything
SET ROLE tap_admin;
SELECT lives_ok($$SELECT phone FROM loyalty.customer$$, 'an admin reads customers');
SELECT lives_ok($$SELECT loyalty.merge_customers(1, 2)$$, 'an admin merges customers');
SELECT lives_ok($$UPDATE loyalty.setting SET value = 'Europe/Moscow' WHERE key = 'timezone'$$,
                'an admin changes settings');
SELECT is((SELECT count(*) FROM loyalty.coupon c JOIN tap_code t USING (code)), 1::bigint,
          'an admin reads codes in clear');
RESET ROLE;

-- the matrix: only the admin reads bearer codes in clear
SELECT is(ARRAY(SELECT r FROM unnest(ARRAY['loyalty_cashier', 'loyalty_marketer', 'loyalty_analyst',
                                           'loyalty_admin']) r
                 WHERE has_table_privilege(r, 'loyalty.coupon', 'SELECT')
                    OR has_table_privilege(r, 'loyalty.coupon_use', 'SELECT')
                    OR has_table_privilege(r, 'loyalty.event', 'SELECT')),
          ARRAY['loyalty_admin'], 'only the admin may select tables holding codes in clear');
SELECT is(ARRAY(SELECT r FROM unnest(ARRAY['loyalty_cashier', 'loyalty_marketer', 'loyalty_analyst',
                                           'loyalty_admin']) r
                 WHERE has_function_privilege(r, 'loyalty.issue_certificate(numeric, timestamptz, text)',
                                              'EXECUTE')),
          ARRAY['loyalty_marketer', 'loyalty_admin'], 'only the marketer and the admin issue certificates');

-- SECURITY DEFINER functions pin search_path
SELECT is_empty($$SELECT p.oid::regprocedure FROM pg_proc p
                  WHERE p.pronamespace = 'loyalty'::regnamespace AND p.prosecdef
                    AND NOT coalesce(p.proconfig @> '{"search_path=pg_catalog, pg_temp"}', false)$$,
                'every SECURITY DEFINER function runs with search_path = pg_catalog, pg_temp');

-- the phone type's operator classes are valid
SELECT ok(bool_and(amvalidate(oid)), 'phone operator classes pass amvalidate')
  FROM pg_opclass WHERE opcname IN ('phone_ops', 'phone_hash_ops');

SELECT * FROM finish();
ROLLBACK;

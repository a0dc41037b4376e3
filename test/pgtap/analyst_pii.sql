-- test/pgtap/analyst_pii.sql: the analyst reads segments, RFM and the facts
-- but no PII anywhere (SPEC §10, issue 16 item 8).  Every relation the role
-- can read is enumerated from the catalog and scanned, as the analyst, for
-- the raw phone, e-mail, card number and bearer code of a customer whose
-- purchase, grant, segment entry and events exist.
--
-- Runs in a transaction that is rolled back.
BEGIN;
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS loyalty CASCADE;
CREATE EXTENSION loyalty;
RESET client_min_messages;

SELECT plan(9);

CREATE ROLE tap_pii_analyst LOGIN IN ROLE loyalty_analyst;

-- a customer who left traces everywhere
INSERT INTO loyalty.category (code, parent, name) VALUES ('all', NULL, 'All');
INSERT INTO loyalty.product (sku, name, category, price) VALUES ('A', 'Cream', 'all', 100.00);
INSERT INTO loyalty.account_type (code, name) VALUES ('bonus', 'Bonus');
SELECT loyalty.register('+79123456789', '{"name": "Anna Petrova", "email": "anna.petrova@example.ru"}');
SELECT loyalty.purchase('{"operation_id": "P1", "customer": "+79123456789", "lines": [{"sku": "A", "qty": 1}]}');
INSERT INTO loyalty.segment (code, name, rule) VALUES ('buyers', 'Buyers', '{"active_within": "30 days"}');
-- (one transaction: now() is the purchase's moment, which [t - window, t) excludes)
SELECT loyalty.refresh_segments(true, now() + interval '1 minute');
SELECT loyalty.refresh_rfm(now() + interval '1 minute');
SELECT loyalty.grant_points('{"operation_id": "G1", "segment": "buyers", "account": "bonus", "points": 10, "reason": "Thanks"}');
CREATE TEMP TABLE tap_secret AS
SELECT s FROM (VALUES ('9123456789'), ('anna.petrova@'), ('Petrova')) v(s)
UNION ALL SELECT number FROM loyalty.card
UNION ALL SELECT loyalty.issue_certificate(100, NULL, '+79123456789');
GRANT SELECT ON tap_secret TO PUBLIC;

-- what the analyst may read: every relation of the schema with SELECT on
-- it or on any column
CREATE FUNCTION pg_temp.analyst_readable() RETURNS SETOF regclass LANGUAGE sql AS $$
    SELECT c.oid::regclass FROM pg_class c
     WHERE c.relnamespace = 'loyalty'::regnamespace AND c.relkind IN ('r', 'v', 'm', 'p')
       AND (has_table_privilege('loyalty_analyst', c.oid, 'SELECT')
            OR has_any_column_privilege('loyalty_analyst', c.oid, 'SELECT'))
     ORDER BY 1::text
$$;
-- the rows of readable relations that contain a secret, counted as the
-- caller
CREATE FUNCTION pg_temp.secret_hits() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    r regclass;
    n bigint;
    total bigint := 0;
BEGIN
    FOR r IN SELECT * FROM pg_temp.analyst_readable() LOOP
        EXECUTE format('SELECT count(*) FROM %s t, tap_secret s WHERE position(s.s IN t::text) > 0', r) INTO n;
        IF n > 0 THEN
            RAISE NOTICE '% rows of % show a secret', n, r;
        END IF;
        total := total + n;
    END LOOP;
    RETURN total;
END
$$;

-- the secrets are there, in relations the analyst cannot read
SELECT ok((SELECT count(*) FROM loyalty.operation o, tap_secret s
            WHERE position(s.s IN o.request::text) > 0) > 0,
          'stored requests carry the phone (so the scan below means something)');

-- no raw PII relation is readable
SELECT is(ARRAY(SELECT r::text FROM pg_temp.analyst_readable() r
                 WHERE r::text IN ('loyalty.customer', 'loyalty.card', 'loyalty.operation',
                                   'loyalty.coupon', 'loyalty.coupon_use', 'loyalty.event')),
          ARRAY[]::text[], 'the analyst reads no customer, card, operation, coupon or raw event');
-- no readable column is a raw phone, or a request or response
SELECT is(ARRAY(SELECT a.attrelid::regclass::text || '.' || a.attname
                  FROM pg_attribute a
                 WHERE a.attrelid IN (SELECT * FROM pg_temp.analyst_readable())
                   AND a.attnum > 0 AND NOT a.attisdropped
                   AND (a.atttypid = 'loyalty.phone'::regtype OR a.attname IN ('request', 'response'))),
          ARRAY[]::text[], 'no readable column holds a raw phone, a request or a response');

-- what issue 16 added is readable
SELECT ok(ARRAY['loyalty.rfm', 'loyalty.rfm_segment', 'loyalty.rfm_threshold', 'loyalty.segment',
                'loyalty.segment_member', 'loyalty.segment_state', 'loyalty.customer_masked',
                'loyalty.purchase', 'loyalty.event_masked']
          <@ ARRAY(SELECT r::text FROM pg_temp.analyst_readable() r),
          'the analyst reads RFM, segments, members, masked customers, facts and masked events');

SET ROLE tap_pii_analyst;
SELECT is((SELECT segment FROM loyalty.rfm WHERE customer_id = 1), 'new',
          'the analyst reads a customer''s RFM segment');
SELECT is((SELECT count(*) FROM loyalty.segment_member WHERE segment = 'buyers'), 1::bigint,
          'the analyst reads segment members');
SELECT is((SELECT count(*) FROM loyalty.event_masked WHERE kind IN ('segment_changed', 'points_earned')), 2::bigint,
          'the analyst reads the segment and grant events');
SELECT is(pg_temp.secret_hits(), 0::bigint,
          'no row the analyst can read shows a raw phone, e-mail, name, card number or code');
SELECT throws_ok($$SELECT request FROM loyalty.operation$$, '42501', NULL,
                 'the analyst cannot read stored requests');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;

/*
 * loyalty--0.8--0.9.sql: hardening (issue 14).
 *
 * Each section below is one defect found by an attack on 0.8, with what
 * changed in the schema to close it.  Behaviour that needs no schema
 * change lives in the C library only; the README's changelog lists both.
 */
\echo Use "ALTER EXTENSION loyalty UPDATE TO '0.9'" to load this file. \quit

-- ---------------------------------------------------------------------------
-- Issue 14 item 4: time travel through "at"
--
-- 0.8 trusted a request's "at" for everything: a purchase dated two days
-- ahead spent points still pending, a coupon past its validity applied when
-- "at" fell inside it, "at" in 2199 created a lot available in 2200.  Now a
-- writing or pricing call refuses (22023 naming "at") an "at" earlier than
-- the server's time minus max_backdate (an offline register's checks arrive
-- late) or later than the server's time plus max_clock_skew (a register's
-- clock runs a little fast).  Promotions are judged at "at"; what may be
-- spent, pending points and coupon validity at the server's time (C only).
-- The superuser GUC loyalty.test_now stands in for the server's clock in
-- tests and replays.
-- ---------------------------------------------------------------------------
INSERT INTO loyalty.setting_definition VALUES
    ('max_backdate',   '72 hours',  'How late a check may be sent: "at" no earlier than the server''s time minus this'),
    ('max_clock_skew', '5 minutes', 'How far a register''s clock may run ahead: "at" no later than the server''s time plus this');

CREATE FUNCTION loyalty.setting_validate_time_window() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    v interval;
BEGIN
    IF NEW.key NOT IN ('max_backdate', 'max_clock_skew') THEN
        RETURN NEW;
    END IF;
    BEGIN
        v := NEW.value::interval;
    EXCEPTION WHEN invalid_datetime_format OR datetime_field_overflow
                   OR interval_field_overflow THEN
        v := NULL;
    END;
    IF v IS NULL OR v < interval '0' OR v > interval '10 years' THEN
        RAISE EXCEPTION 'invalid value for setting "%": "%"', NEW.key, NEW.value
            USING ERRCODE = 'LY006',
                  DETAIL = format('Field "value" of setting "%s" must be %s.', NEW.key,
                                  'an interval from 0 to 10 years such as 72 hours');
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION loyalty.setting_validate_time_window() IS
    'Refuses a malformed max_backdate or max_clock_skew (LY006)';
REVOKE ALL ON FUNCTION loyalty.setting_validate_time_window() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.setting_validate_time_window() TO loyalty_admin;

CREATE TRIGGER setting_validate_time_window BEFORE INSERT OR UPDATE ON loyalty.setting
    FOR EACH ROW EXECUTE FUNCTION loyalty.setting_validate_time_window();

-- Issue 14 item 8: a full refund gives the purchase's promotion uses back
--
-- usage_limit and per_customer_limit count only purchases that stand (SPEC
-- section 7): 0.8 kept the use of a refunded purchase, so the customer's
-- next check did not get a once-per-customer promotion and the single-use
-- coupon the refund restored was then rejected.  A purchase now records
-- which usage counters it incremented (promotion codes as they were then;
-- only promotions with a limit are counted, and per-customer ones only for
-- an identified customer), and the refund that leaves nothing of it takes
-- exactly those uses back; a partial refund keeps them.  Purchases
-- committed before 0.9 have empty lists: their refunds give nothing back,
-- as before, rather than a use they may never have counted.
-- ---------------------------------------------------------------------------
ALTER TABLE loyalty.purchase
    ADD COLUMN usage_counted text[] NOT NULL DEFAULT '{}',
    ADD COLUMN customer_usage_counted text[] NOT NULL DEFAULT '{}';
COMMENT ON COLUMN loyalty.purchase.usage_counted IS
    'Promotions whose promotion_usage counter this purchase incremented; its full refund decrements them';
COMMENT ON COLUMN loyalty.purchase.customer_usage_counted IS
    'Promotions whose promotion_customer_usage counter (of customer_id) this purchase incremented; its full refund decrements them';

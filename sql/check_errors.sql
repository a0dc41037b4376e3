--
-- check_errors: strict request parsing (SPEC section 12): every malformed
-- field is SQLSTATE 22023 with an errdetail naming its JSON path; unknown
-- customers are LY001.  A failed call changes nothing.
--
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS loyalty CASCADE;
CREATE EXTENSION loyalty;
RESET client_min_messages;
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';
-- the checks' dates are the server's time (loyalty.test_now, issue 14 item 4)
SET loyalty.test_now = 'at';

CREATE FUNCTION pg_temp.err(req text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE st text; msg text; det text; hint text;
BEGIN
    PERFORM loyalty.calculate(req::jsonb);
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
                            det = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
    RETURN st || ': ' || msg || coalesce(' / ' || nullif(det, ''), '') || coalesce(' / ' || nullif(hint, ''), '');
END
$$;

INSERT INTO loyalty.store (code, name, timezone, channel) VALUES ('S1', 'Store one', 'Europe/Moscow', 'pos');
INSERT INTO loyalty.category (code, parent, name) VALUES ('all', NULL, 'Everything');
INSERT INTO loyalty.product (sku, name, category, price) VALUES ('A', 'Cream', 'all', 100.00), ('NOPRICE', 'No price', 'all', NULL);
SELECT loyalty.register('+79120000001') AS anna;

SELECT req, pg_temp.err(req) AS result FROM unnest(ARRAY[
    -- the request itself
    '[]', '"check"', '{}', '{"lines": []}', '{"lines": {}}', '{"lines": [1]}',
    '{"lines": [{"sku": "A", "qty": 1}], "linez": []}',
    -- lines
    '{"lines": [{"qty": 1}]}',
    '{"lines": [{"sku": "", "qty": 1}]}',
    '{"lines": [{"sku": 5, "qty": 1}]}',
    '{"lines": [{"sku": "A", "qty": 1}, {"sku": "A", "qty": 1, "price": 1.999}]}',
    '{"lines": [{"sku": "A", "qty": 1}, {"sku": "A", "qty": 1}, {"sku": "A", "qty": 1, "price": -1}]}',
    '{"lines": [{"sku": "A", "qty": 1, "price": "100"}]}',
    '{"lines": [{"sku": "A", "qty": 1, "price": 1e12}]}',
    '{"lines": [{"sku": "A", "qty": 0}]}',
    '{"lines": [{"sku": "A", "qty": -2}]}',
    '{"lines": [{"sku": "A", "qty": 1.0005}]}',
    '{"lines": [{"sku": "A", "qty": 1000000}]}',
    '{"lines": [{"sku": "A", "qty": 1, "discount": 5}]}',
    '{"lines": [{"sku": "NOPRICE", "qty": 1}]}',
    '{"lines": [{"sku": "UNKNOWN", "qty": 1}]}',
    '{"lines": [{"sku": "A", "qty": 99999, "price": 999999999}]}',
    -- store, channel, at, customer, coupons, redeem
    '{"store": "S9", "lines": [{"sku": "A", "qty": 1}]}',
    '{"store": 17, "lines": [{"sku": "A", "qty": 1}]}',
    '{"channel": "phone", "lines": [{"sku": "A", "qty": 1}]}',
    '{"at": "2026-11-22 10:00", "lines": [{"sku": "A", "qty": 1}]}',
    '{"at": "2026-11-22T10:00:00 Europe/Moscow", "lines": [{"sku": "A", "qty": 1}]}',
    '{"at": "yesterday", "lines": [{"sku": "A", "qty": 1}]}',
    '{"at": "2026-13-01T10:00:00Z", "lines": [{"sku": "A", "qty": 1}]}',
    '{"at": 1700000000, "lines": [{"sku": "A", "qty": 1}]}',
    '{"customer": true, "lines": [{"sku": "A", "qty": 1}]}',
    '{"customer": 1.5, "lines": [{"sku": "A", "qty": 1}]}',
    '{"customer": "+79990000000", "lines": [{"sku": "A", "qty": 1}]}',
    '{"customer": 42, "lines": [{"sku": "A", "qty": 1}]}',
    '{"customer": "id:42", "lines": [{"sku": "A", "qty": 1}]}',
    '{"customer": "not a phone", "lines": [{"sku": "A", "qty": 1}]}',
    '{"coupons": "K7QX", "lines": [{"sku": "A", "qty": 1}]}',
    '{"coupons": [1], "lines": [{"sku": "A", "qty": 1}]}',
    '{"redeem": "all", "lines": [{"sku": "A", "qty": 1}]}',
    '{"redeem": -5, "lines": [{"sku": "A", "qty": 1}]}',
    '{"redeem": 1.5, "lines": [{"sku": "A", "qty": 1}]}',
    '{"redeem": [], "lines": [{"sku": "A", "qty": 1}]}',
    -- and some that are fine
    '{"customer": null, "store": null, "coupons": null, "redeem": null, "lines": [{"sku": "A", "qty": 1}]}',
    '{"customer": "8 (912) 000-00-01", "at": "2026-11-22T10:00:00Z", "lines": [{"sku": "A", "qty": 0.001, "price": 0}]}'
]) AS req;

-- coupon codes are reported, not errors (the coupon table arrives later)
SELECT loyalty.calculate('{"coupons": ["K7QX-9M2P"], "lines": [{"sku": "A", "qty": 1}]}') -> 'coupons' AS coupons;
-- NULL in, NULL out
SELECT loyalty.calculate(NULL) IS NULL AS is_null;

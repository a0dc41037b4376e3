--
-- response_json: loyalty.calculate_json (issue 21) answers what calculate
-- answers, as json text written directly (no binary jsonb built and
-- printed): equal as jsonb for every kind of check, spaced as jsonb_out
-- spaces it, with the same errors and the same grants.
--
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS loyalty CASCADE;
CREATE EXTENSION loyalty;
RESET client_min_messages;
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';
SET loyalty.test_now = '2026-11-24T10:00:00+03:00';

CREATE FUNCTION pg_temp.err(call text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE st text; msg text; det text;
BEGIN
    EXECUTE call;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;
    RETURN st || ': ' || msg || coalesce(' / ' || nullif(det, ''), '');
END
$$;

INSERT INTO loyalty.store (code, name, timezone, channel) VALUES ('S1', 'Store "one"', 'Europe/Moscow', 'pos');
INSERT INTO loyalty.category (code, parent, name) VALUES ('all', NULL, 'Everything');
INSERT INTO loyalty.product (sku, name, category, price) VALUES
    ('A', 'Cream "Nivea" 50 ml', 'all', 100.00), ('B', 'Мыло\детское', 'all', 33.33),
    ('KG', 'Cheese by weight', 'all', 12.34);
-- two accounts whose codes are not in jsonb's key order ("zz" after "a")
INSERT INTO loyalty.account_type (code, name, redeem_share, lifetime) VALUES
    ('zz', 'Bonus points', 1, '1 year'), ('a', 'Extra points', 1, '1 year');
INSERT INTO loyalty.tier (code, name, rank, threshold, accrual_percent) VALUES ('base', 'Base', 1, 0, 10);
INSERT INTO loyalty.promotion (code, name, mechanic, rule, priority) VALUES
    ('P10', '-10% on everything', 'percent_off', '{"products": {"all": true}, "percent": 10}', 1),
    ('CHECK5', '5.00 off the check', 'check_discount', '{"steps": [{"min_total": 0, "amount": 5}]}', 2);
SELECT loyalty.register('+79120000001') AS anna;
SELECT loyalty.adjust('{"operation_id": "welcome-1", "customer": "id:1", "account": "zz", "points": 20, "reason": "welcome"}') ->> 'points' AS granted;
SELECT loyalty.adjust('{"operation_id": "welcome-2", "customer": "id:1", "account": "a", "points": 7, "reason": "welcome"}') ->> 'points' AS granted;

-- equal as jsonb, and (one account, keys added in jsonb's order) equal as
-- text to calculate's printed response
SELECT pg_typeof(loyalty.calculate_json('{"lines": [{"sku": "A", "qty": 1}]}')) AS type;
SELECT req, loyalty.calculate_json(req)::jsonb = loyalty.calculate(req) AS same
  FROM unnest(ARRAY[
    '{"lines": [{"sku": "A", "qty": 1}]}',
    '{"store": "S1", "at": "2026-11-24T09:00:00+03:00", "customer": 1, "redeem": "max",
      "lines": [{"sku": "A", "qty": 2, "price": 199.90}, {"sku": "B", "qty": 3}, {"sku": "KG", "qty": 0.755}]}',
    '{"customer": "+79120000001", "redeem": 5, "coupons": ["NOPE-1"],
      "lines": [{"sku": "NEW-1", "qty": 1, "price": 0.01}, {"sku": "A", "qty": 1, "price": 0}]}',
    '{"lines": [{"sku": "A", "qty": 99999, "price": 99999.99}]}'
  ]::jsonb[]) AS req;
-- as text, an anonymous check (no account codes among the keys) prints
-- exactly as calculate's response does
SELECT loyalty.calculate_json(req)::text = loyalty.calculate(req)::text AS same_text
  FROM (VALUES ('{"store": "S1", "lines": [{"sku": "A", "qty": 2, "price": 199.90}, {"sku": "B", "qty": 0.5}]}'::jsonb)) v(req);
-- an object keyed by account codes: in the program's order (by code) in
-- the text, in jsonb's key order (shorter first) in jsonb; "a" 7 points,
-- "zz" 20

SELECT loyalty.calculate_json(req) -> 'balance' AS as_json, loyalty.calculate(req) -> 'balance' AS as_jsonb
  FROM (VALUES ('{"customer": 1, "lines": [{"sku": "A", "qty": 1}]}'::jsonb)) v(req);
-- the text itself: strings escaped, money with two decimals, quantities trimmed
-- (names with a quote and a backslash; 1.5 x 33.33 = 49.995 -> 50.00)
SELECT loyalty.calculate_json('{"store": "S1", "lines": [{"sku": "B", "qty": 1.5}, {"sku": "A", "qty": 1}]}') AS response;

-- calculate's jsonb is written in jsonb's binary form by the extension
-- (jsonb_builder.c): the same bytes' worth as PostgreSQL's own conversion
-- of its text, and every element found where jsonb looks for it, beyond
-- the 32 entries after which a container stores offsets (a 40-line check)
SELECT pg_column_size(r) = pg_column_size(r::text::jsonb) AS same_size, r = r::text::jsonb AS same_value,
       r #>> '{lines,39,sku}' AS sku_39, r #>> '{lines,33,price}' AS price_33,
       jsonb_array_length(r -> 'lines') AS nlines,
       (SELECT count(*) FROM jsonb_array_elements(r -> 'lines') l WHERE (l ->> 'index')::int BETWEEN 0 AND 39) AS indexed
  FROM loyalty.calculate((SELECT jsonb_build_object('customer', 1, 'lines',
          jsonb_agg(jsonb_build_object('sku', CASE WHEN i = 39 THEN 'B' ELSE 'A' END, 'qty', 1, 'price', i)))
          FROM generate_series(0, 39) i)) r;

-- the same errors
SELECT pg_temp.err($$SELECT loyalty.calculate_json('{"lines": [{"sku": "A", "qty": 1.0005}]}')$$) AS malformed;
SELECT pg_temp.err($$SELECT loyalty.calculate_json('{"customer": "+79990000000", "lines": [{"sku": "A", "qty": 1}]}')$$) AS unknown;
SELECT loyalty.calculate_json(NULL) IS NULL AS is_null;

-- who may call it: whoever may calculate
SELECT r AS role, has_function_privilege(r, 'loyalty.calculate_json(jsonb)', 'EXECUTE') AS may_call,
       has_function_privilege(r, 'loyalty.calculate(jsonb)', 'EXECUTE') AS may_calculate
  FROM unnest(ARRAY['loyalty_cashier', 'loyalty_marketer', 'loyalty_admin', 'loyalty_analyst', 'public']) AS r;

--
-- request_numbers: a number in a check or refund request may also be a
-- decimal string ("199.90"), as a Python POS sends a Decimal (issue 21):
-- read exactly, under the same precision and range rules and with the
-- same errors as the number it writes; a string that is no decimal is
-- refused with 22023 naming its path.
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
DECLARE st text; msg text; det text; hint text;
BEGIN
    EXECUTE call;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
                            det = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
    RETURN st || ': ' || msg || coalesce(' / ' || nullif(det, ''), '') || coalesce(' / ' || nullif(hint, ''), '');
END
$$;
-- calc(request) is the error (or 'ok') of a calculate
CREATE FUNCTION pg_temp.calc(req text) RETURNS text LANGUAGE sql
    AS $$ SELECT pg_temp.err(format('SELECT loyalty.calculate(%L::jsonb)', req)) $$;

INSERT INTO loyalty.category (code, parent, name) VALUES ('all', NULL, 'Everything');
INSERT INTO loyalty.product (sku, name, category, price) VALUES
    ('A', 'Cream', 'all', 100.00), ('KG', 'Cheese by weight', 'all', 12.34);
INSERT INTO loyalty.account_type (code, name, redeem_share, lifetime) VALUES ('main', 'Bonus points', 1, '1 year');
INSERT INTO loyalty.tier (code, name, rank, threshold, accrual_percent) VALUES ('base', 'Base', 1, 0, 10);
SELECT loyalty.register('+79120000001') AS anna;

-- the same check written with numbers and with strings gives the same
-- response, to the byte:
--   A: 2 x 199.90 = 399.80; KG: 0.750 x 12.34 = 9.255, half up 9.26;
--   total 409.06, 10% accrual: 40.906 -> 40 points (points_precision 0)
SELECT loyalty.calculate('{"customer": 1, "redeem": 0, "lines": [
          {"sku": "A", "qty": 2, "price": 199.90}, {"sku": "KG", "qty": 0.750}]}')
     = loyalty.calculate('{"customer": 1, "redeem": "0", "lines": [
          {"sku": "A", "qty": "2", "price": "199.90"}, {"sku": "KG", "qty": "0.750"}]}') AS same_response;
SELECT r -> 'totals' AS totals,
       jsonb_path_query_array(r, '$.lines[*].amount') AS amounts,
       jsonb_path_query_array(r, '$.lines[*].qty') AS qtys
  FROM loyalty.calculate('{"customer": 1, "lines": [
          {"sku": "A", "qty": "2", "price": "199.90"}, {"sku": "KG", "qty": "0.750"}]}') r;
-- trailing zeros do not count ("1.2300" is 1.23), a minus zero is zero,
-- leading zeros are read as written digits
SELECT r #> '{lines,0,price}' AS price, r #> '{lines,1,price}' AS zero, r #> '{lines,2,qty}' AS qty
  FROM loyalty.calculate('{"lines": [{"sku": "A", "qty": 1, "price": "1.2300"},
                                     {"sku": "A", "qty": 1, "price": "-0.00"},
                                     {"sku": "A", "qty": "007", "price": 1}]}') r;
-- the largest price and quantity the rules allow, as strings
SELECT r #> '{lines,0,price}' AS price, r #> '{lines,0,qty}' AS qty
  FROM loyalty.calculate('{"lines": [{"sku": "A", "qty": "0.001", "price": "999999999.99"}]}') r;
-- redeem as a string: requested 150 points (the customer has none: 0 applied)
SELECT loyalty.calculate('{"customer": 1, "redeem": "150", "lines": [{"sku": "A", "qty": 1}]}') -> 'redeem' AS redeem;

-- a string breaking a rule fails exactly as the number it writes
SELECT s AS string, pg_temp.calc(format('{"lines": [{"sku": "A", "qty": 1, "price": "%s"}]}', s)) AS as_string,
       pg_temp.calc(format('{"lines": [{"sku": "A", "qty": 1, "price": "%s"}]}', s))
     = pg_temp.calc(format('{"lines": [{"sku": "A", "qty": 1, "price": %s}]}', s)) AS same_as_number
  FROM unnest(ARRAY['12.345', '12.3400001', '-1', '-0.01', '1000000000', '999999999.999',
                    '99999999999999999999999999', '0.0000000000001']) AS s;
SELECT s AS string, pg_temp.calc(format('{"lines": [{"sku": "A", "qty": "%s"}]}', s)) AS as_string,
       pg_temp.calc(format('{"lines": [{"sku": "A", "qty": "%s"}]}', s))
     = pg_temp.calc(format('{"lines": [{"sku": "A", "qty": %s}]}', s)) AS same_as_number
  FROM unnest(ARRAY['0', '1.0005', '100000', '-2']) AS s;
SELECT s AS string, pg_temp.calc(format('{"customer": 1, "redeem": "%s", "lines": [{"sku": "A", "qty": 1}]}', s)) AS as_string,
       pg_temp.calc(format('{"customer": 1, "redeem": "%s", "lines": [{"sku": "A", "qty": 1}]}', s))
     = pg_temp.calc(format('{"customer": 1, "redeem": %s, "lines": [{"sku": "A", "qty": 1}]}', s)) AS same_as_number
  FROM unnest(ARRAY['1.5', '-5', '1000000000000']) AS s;

-- strings that are no decimal: 22023 naming the path, with a hint
SELECT s AS string, pg_temp.calc(format('{"lines": [{"sku": "A", "qty": 1}, {"sku": "A", "qty": 1, "price": %s}]}', to_jsonb(s))) AS result
  FROM unnest(ARRAY['', ' 12', '12 ', '12,34', '1e2', '1.', '.5', '+1', '-', '0x10',
                    'NaN', 'Infinity', '12.3.4', '١٢', 'abc']) AS s;
SELECT pg_temp.calc('{"lines": [{"sku": "A", "qty": "two"}]}') AS qty;
-- "redeem" keeps its word: "max" or a number; another word is refused as before
SELECT pg_temp.calc('{"redeem": "all", "lines": [{"sku": "A", "qty": 1}]}') AS redeem_word;
SELECT loyalty.calculate('{"customer": 1, "redeem": "max", "lines": [{"sku": "A", "qty": 1}]}') #> '{redeem,requested}' AS max;
-- "customer" as a string stays a phone or card number, never an id
SELECT pg_temp.calc('{"customer": "1", "lines": [{"sku": "A", "qty": 1}]}') AS customer_string;

-- purchase and refund take strings too: the refund's index and qty
SELECT r -> 'totals' AS totals
  FROM loyalty.purchase('{"operation_id": "P-1", "customer": 1,
                          "lines": [{"sku": "A", "qty": "3", "price": "33.33"}]}') r;
SELECT r -> 'lines' AS lines
  FROM loyalty.refund('{"operation_id": "R-1", "purchase": "P-1", "lines": [{"index": "0", "qty": "1"}]}') r;
SELECT pg_temp.err($$SELECT loyalty.refund('{"operation_id": "R-2", "purchase": "P-1", "lines": [{"index": "0.5", "qty": 1}]}')$$) AS half_index;
SELECT pg_temp.err($$SELECT loyalty.refund('{"operation_id": "R-2", "purchase": "P-1", "lines": [{"index": "zero", "qty": 1}]}')$$) AS word_index;

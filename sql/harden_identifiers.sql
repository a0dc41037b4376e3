--
-- Issue 15 item 4: one rule for customer identifiers.  find_customer (SQL)
-- and the check API (calculate, purchase, catalog_prices) read identifiers
-- with the same code now (src/customers.c).  Before 0.9 each had its own
-- copy, and they disagreed at the edges: the check API took only spaces
-- after "id:" and catalog_prices did not ignore blanks around the
-- identifier, so the same identifier found a customer in one and LY001 in
-- the other.  Every identifier below resolves alike everywhere.
--
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS loyalty CASCADE;
CREATE EXTENSION loyalty;
RESET client_min_messages;
SET timezone = 'UTC';
SET loyalty.test_now = 'at';

INSERT INTO loyalty.category (code, parent, name) VALUES ('all', NULL, 'Everything');
INSERT INTO loyalty.product (sku, name, category, price) VALUES ('A', 'Cream', 'all', 100.00);
SELECT loyalty.register('+79120000001') AS anna;
SELECT loyalty.register('+79120000002') AS boris;
SELECT number AS boris_card FROM loyalty.card WHERE customer_id = 2 \gset

-- the customer calculate resolves an identifier to (NULL: LY001)
CREATE FUNCTION pg_temp.calc(ident text) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
    RETURN (loyalty.calculate(jsonb_build_object('customer', ident,
            'lines', jsonb_build_array(jsonb_build_object('sku', 'A', 'qty', 1))))
            -> 'customer' ->> 'id')::bigint;
EXCEPTION WHEN SQLSTATE 'LY001' THEN
    RETURN NULL;
END
$$;
-- whether catalog_prices found a customer for it
CREATE FUNCTION pg_temp.prices(ident text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    PERFORM loyalty.catalog_prices(ident, NULL, NULL, ARRAY['A']);
    RETURN 'found';
EXCEPTION WHEN SQLSTATE 'LY001' THEN
    RETURN 'LY001';
END
$$;

SELECT ident, loyalty.find_customer(ident) AS find_customer,
       pg_temp.calc(ident) AS calculate, pg_temp.prices(ident) AS catalog_prices,
       loyalty.find_customer(ident) IS NOT DISTINCT FROM pg_temp.calc(ident) AS agree
  FROM unnest(ARRAY[
    'id:1', 'ID: 2', 'id:' || chr(9) || '1', 'id:  1', ' id:1 ', 'id:', 'id:x1', 'id:99',
    '+79120000001', '8 912 000-00-02', '  +7 (912) 000 00 01  ', '00 7 912 000 00 01',
    '+7 912 000 00 0', '12-34', :'boris_card', ' ' || :'boris_card' || ' ', 'nobody'
  ]) AS ident;

-- a merged customer resolves to the survivor, alike everywhere
SELECT (loyalty.merge_customers(2, 1)) ->> 'already_merged' AS merged_before;
SELECT ident, loyalty.find_customer(ident) AS find_customer, pg_temp.calc(ident) AS calculate
  FROM unnest(ARRAY['id:1', '+79120000001', 'id:2']) AS ident;

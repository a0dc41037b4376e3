--
-- Issue 20 item 3: a refund may name the customer whose purchase it is
-- ("customer": phone, card, "id:N" or an id), so that a sharded chain's
-- router sends it to the customer's partition; the purchase's response
-- names the customer id, which carries that partition.  A purchase of
-- someone else is LY002 (as if it were not there), an unknown customer
-- LY001.
--
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS loyalty CASCADE;
CREATE EXTENSION loyalty;
RESET client_min_messages;
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';

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

-- a node of a chain with P = 2
INSERT INTO loyalty.partitioning (partitions) VALUES (2);
INSERT INTO loyalty.category (code, parent, name) VALUES ('all', NULL, 'Everything');
INSERT INTO loyalty.product (sku, name, category, price) VALUES ('A', 'Cream', 'all', 100.00);
INSERT INTO loyalty.account_type (code, name, redeem_share, lifetime) VALUES ('main', 'Bonus points', 1, '1 year');
INSERT INTO loyalty.tier (code, name, rank, threshold, accrual_percent) VALUES ('base', 'Base', 1, 0, 10);
SELECT loyalty.register('+79120000001') AS anna, loyalty.register('+79120000002') AS boris,
       loyalty.register('+79120000003') AS vera;
-- ids are seq * 2 + partition (hashtext of the phone & 1): Anna 1*2+0 = 2,
-- Boris 2*2+1 = 5, Vera 3*2+0 = 6
SELECT id, id & 1 = loyalty.partition_of(phone) AS carries_partition FROM loyalty.customer ORDER BY id;

-- Anna's purchase: the response names her id, whose low bit is her partition
SELECT (r -> 'customer' ->> 'id')::bigint = loyalty.find_customer('+79120000001') AS names_anna,
       (r -> 'customer' ->> 'id')::bigint & 1 = loyalty.partition_of('+79120000001') AS routes,
       r -> 'totals' ->> 'total' AS total
  FROM loyalty.purchase('{"operation_id": "P-1", "customer": "+79120000001", "lines": [{"sku": "A", "qty": 3}]}') r;
SELECT r -> 'totals' ->> 'total' AS total
  FROM loyalty.purchase('{"operation_id": "P-2", "lines": [{"sku": "A", "qty": 1}]}') r;

-- refunds naming the customer in every form: phone spelling, card, "id:N", id
SELECT r -> 'totals' ->> 'amount' AS amount,
       (r ->> 'customer')::bigint = loyalty.find_customer('+79120000001') AS anna
  FROM loyalty.refund('{"operation_id": "R-1", "purchase": "P-1", "customer": "8 912 000 00 01",
                        "lines": [{"index": 0, "qty": 1}]}') r;
SELECT r -> 'totals' ->> 'amount' AS amount
  FROM loyalty.refund(jsonb_build_object('operation_id', 'R-2', 'purchase', 'P-1',
         'customer', (SELECT number FROM loyalty.card WHERE customer_id = loyalty.find_customer('+79120000001')),
         'lines', '[{"index": 0, "qty": 1}]'::jsonb)) r;
SELECT r -> 'totals' ->> 'amount' AS amount
  FROM loyalty.refund(jsonb_build_object('operation_id', 'R-3', 'purchase', 'P-1',
         'customer', 'id:' || loyalty.find_customer('+79120000001'),
         'lines', '[{"index": 0, "qty": 0.5}]'::jsonb)) r;
-- a replay with the same customer returns the stored response
SELECT r -> 'totals' ->> 'amount' AS replayed
  FROM loyalty.refund('{"operation_id": "R-1", "purchase": "P-1", "customer": "8 912 000 00 01",
                        "lines": [{"index": 0, "qty": 1}]}') r;

-- someone else's purchase: LY002, nothing refunded
SELECT pg_temp.err($$SELECT loyalty.refund('{"operation_id": "R-4", "purchase": "P-1", "customer": "+79120000002"}')$$);
SELECT pg_temp.err(format($$SELECT loyalty.refund('{"operation_id": "R-4", "purchase": "P-1", "customer": %s}')$$,
                          loyalty.find_customer('+79120000003')));
-- an anonymous purchase has no customer to name
SELECT pg_temp.err($$SELECT loyalty.refund('{"operation_id": "R-4", "purchase": "P-2", "customer": "+79120000001"}')$$);
-- an unknown customer: LY001; a customer that is not a string or number: 22023
SELECT pg_temp.err($$SELECT loyalty.refund('{"operation_id": "R-4", "purchase": "P-1", "customer": "+79990000000"}')$$);
SELECT pg_temp.err($$SELECT loyalty.refund('{"operation_id": "R-4", "purchase": "P-1", "customer": 999999}')$$);
SELECT pg_temp.err($$SELECT loyalty.refund('{"operation_id": "R-4", "purchase": "P-1", "customer": true}')$$);
SELECT refunded FROM loyalty.purchase WHERE operation_id = 'P-1';
SELECT count(*) AS refunds FROM loyalty.refund;

-- Anna merged into Boris: her purchase is now the survivor's
SELECT loyalty.merge_customers(loyalty.find_customer('+79120000002'), loyalty.find_customer('+79120000001')) ->> 'already_merged' AS merged_before;
SELECT r -> 'totals' ->> 'amount' AS amount, r ->> 'full' AS full
  FROM loyalty.refund('{"operation_id": "R-5", "purchase": "P-1", "customer": "+79120000002"}') r;
-- without "customer" a refund works as before
SELECT r -> 'totals' ->> 'amount' AS amount FROM loyalty.refund('{"operation_id": "R-6", "purchase": "P-2"}') r;
SELECT count(*) AS problems FROM loyalty.verify_ledger();

--
-- harden_operations: one rule for operation ids and timestamps in every API
-- (issue 14 items 6 and 7).
--
-- An operation_id is 1 to 200 characters, neither beginning nor ending with
-- white space, without control characters, and not beginning with "~",
-- which marks the extension's own operations (merges, expiry): purchase,
-- refund and adjust apply the same rule, refusing with 22023 and naming the
-- field.  Every timestamp of a request is ISO 8601 with an explicit UTC
-- offset, whatever the session's TimeZone.  Merges and expiry file their
-- ledger entries under internal ids no client can send.
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

INSERT INTO loyalty.category (code, parent, name) VALUES ('all', NULL, 'Everything');
INSERT INTO loyalty.product (sku, name, category, price) VALUES ('A', 'Cream', 'all', 100.00);
INSERT INTO loyalty.account_type (code, name, redeem_share, lifetime) VALUES ('main', 'Bonus points', 1, '1 year');
INSERT INTO loyalty.tier (code, name, rank, threshold, accrual_percent) VALUES ('base', 'Base', 1, 0, 10);
SELECT loyalty.register('+79120000001') AS anna;
SELECT loyalty.register('+79120000002') AS boris;
SELECT loyalty.register('+79120000003') AS carl;
SELECT loyalty.register('+79120000004') AS dora;

-- the three APIs, each called with the operation id (and purchase) given
CREATE FUNCTION pg_temp.buy(op text) RETURNS text LANGUAGE sql AS $$
    SELECT pg_temp.err(format('SELECT loyalty.purchase(%L)',
        jsonb_build_object('operation_id', op, 'customer', 1,
                           'lines', jsonb_build_array(jsonb_build_object('sku', 'A', 'qty', 1)))))
$$;
CREATE FUNCTION pg_temp.give(op text) RETURNS text LANGUAGE sql AS $$
    SELECT pg_temp.err(format('SELECT loyalty.adjust(%L)',
        jsonb_build_object('operation_id', op, 'customer', 1, 'account', 'main',
                           'points', 1, 'reason', 'test')))
$$;
CREATE FUNCTION pg_temp.back(op text, purchase text) RETURNS text LANGUAGE sql AS $$
    SELECT pg_temp.err(format('SELECT loyalty.refund(%L)',
        jsonb_build_object('operation_id', op, 'purchase', purchase)))
$$;

-- surrounding white space is refused by every API alike: " P7 " is not
-- silently "P7", and " A7 " is not an operation apart from "A7"
SELECT pg_temp.buy(' P7 ') AS purchase_padded;
SELECT pg_temp.buy('P7') AS purchase_plain;
SELECT pg_temp.give(' A7 ') AS adjust_padded;
SELECT pg_temp.give('A7') AS adjust_plain;
SELECT pg_temp.back(' R7 ', 'P7') AS refund_padded;
SELECT pg_temp.back('R7', ' P7 ') AS refund_of_padded_purchase;
SELECT operation_id, kind FROM loyalty.operation ORDER BY operation_id;

-- blank, empty, control characters: 22023 everywhere
SELECT pg_temp.buy('   ') AS purchase_blank, pg_temp.give('   ') AS adjust_blank,
       pg_temp.back('   ', 'P7') AS refund_blank;
SELECT pg_temp.buy('') AS purchase_empty, pg_temp.give('') AS adjust_empty;
SELECT pg_temp.buy(E'P\t8') AS purchase_tab, pg_temp.give(E'A\n8') AS adjust_newline,
       pg_temp.back(E'R\u00018', 'P7') AS refund_control;
SELECT pg_temp.buy(E'\u00a0P9') AS purchase_nbsp;

-- one length limit, 200 characters, for every API: 22023 beyond, not 23514
SELECT pg_temp.buy(repeat('p', 200)) AS purchase_200, pg_temp.give(repeat('a', 200)) AS adjust_200;
SELECT pg_temp.back(repeat('r', 200), 'P7') AS refund_200;
SELECT pg_temp.buy(repeat('p', 201)) AS purchase_201;
SELECT pg_temp.give(repeat('a', 201)) AS adjust_201;
SELECT pg_temp.back(repeat('r', 201), 'P7') AS refund_201;
SELECT pg_temp.back('R8', repeat('p', 201)) AS refund_of_201;
SELECT pg_temp.give(repeat('й', 200)) AS adjust_200_letters, pg_temp.give(repeat('й', 201)) AS adjust_201_letters;

-- the internal namespace: no client writes an id beginning with "~"
SELECT pg_temp.buy('~merge-1-2') AS purchase_internal;
SELECT pg_temp.give('~expire-1') AS adjust_internal;
SELECT pg_temp.back('~R', 'P7') AS refund_internal;
SELECT pg_temp.back('R9', '~merge-1-2') AS refund_of_internal;

-- adjust's timestamps follow the check API's rule: ISO 8601 with a UTC
-- offset, never the session's TimeZone, never a word
CREATE FUNCTION pg_temp.expiring(ts text) RETURNS text LANGUAGE sql AS $$
    SELECT pg_temp.err(format('SELECT loyalty.adjust(%L)',
        jsonb_build_object('operation_id', 'E-' || md5(ts), 'customer', 1, 'account', 'main',
                           'points', 1, 'reason', 'test', 'expires_at', ts)))
$$;
CREATE FUNCTION pg_temp.available(ts text) RETURNS text LANGUAGE sql AS $$
    SELECT pg_temp.err(format('SELECT loyalty.adjust(%L)',
        jsonb_build_object('operation_id', 'V-' || md5(ts), 'customer', 1, 'account', 'main',
                           'points', 1, 'reason', 'test', 'available_at', ts)))
$$;
SELECT pg_temp.expiring('tomorrow') AS tomorrow;
SELECT pg_temp.expiring('2099-01-01 00:00 MSK') AS msk;
SELECT pg_temp.expiring('2099-01-01T00:00:00') AS no_offset;
SELECT pg_temp.expiring('2099-01-01T00:00:00 Europe/Moscow') AS zone_name;
SELECT pg_temp.expiring('infinity') AS infinity;
SELECT pg_temp.expiring('2300-01-01T00:00:00Z') AS year_2300;
SELECT pg_temp.available('tomorrow') AS available_tomorrow;
-- the check API refuses the same strings
SELECT pg_temp.err(format('SELECT loyalty.calculate(%L)',
    jsonb_build_object('at', x, 'lines', jsonb_build_array(jsonb_build_object('sku', 'A', 'qty', 1)))))
       AS check_api
  FROM unnest(ARRAY['tomorrow', '2099-01-01 00:00 MSK', '2099-01-01T00:00:00']) x;
-- an explicit offset means the same moment in any session TimeZone
SET timezone = 'Asia/Tokyo';
SELECT pg_temp.expiring('2099-01-01T00:00:00+03:00') AS with_offset;
SELECT pg_temp.expiring('2099-01-01T00:00:00Z') AS with_z;
RESET timezone;
SET timezone = 'UTC';
SELECT o.operation_id, l.expires_at
  FROM loyalty.operation o JOIN loyalty.lot l USING (operation_id)
 WHERE o.operation_id IN ('E-' || md5('2099-01-01T00:00:00+03:00'), 'E-' || md5('2099-01-01T00:00:00Z'))
 ORDER BY l.expires_at;

-- a purchase named like a former internal id, then that merge: the merge
-- files its entries under its own operation, the purchase keeps its own
SELECT loyalty.adjust('{"operation_id": "G3", "customer": 3, "account": "main", "points": 50, "reason": "gift"}')
       -> 'balance' AS carl_balance;
SELECT loyalty.adjust('{"operation_id": "G4", "customer": 4, "account": "main", "points": 70, "reason": "gift"}')
       -> 'balance' AS dora_balance;
SELECT loyalty.purchase('{"operation_id": "merge-3-4", "customer": 3, "lines": [{"sku": "A", "qty": 1}]}')
       -> 'totals' ->> 'total' AS purchase_merge_3_4;
SELECT loyalty.merge_customers(3, 4) - 'already_merged' AS merged;
SELECT operation_id, kind, customer_id FROM loyalty.operation
 WHERE operation_id LIKE '%merge-3-4' ORDER BY operation_id;
SELECT e.operation_id, o.kind AS operation_kind, e.kind, e.customer_id, e.points
  FROM loyalty.ledger_entry e JOIN loyalty.operation o USING (operation_id)
 WHERE e.customer_id IN (3, 4) ORDER BY e.id;
SELECT operation_id, customer_id, amount FROM loyalty.lot WHERE customer_id IN (3, 4) ORDER BY id;
-- the purchase still refunds as itself
SELECT loyalty.refund('{"operation_id": "R-merge", "purchase": "merge-3-4"}') ->> 'operation_id' AS refunded;
SELECT count(*) AS problems FROM loyalty.verify_ledger();

-- an expiry files its entries under an internal "~expire-" operation
SELECT loyalty.expire_points(now() + interval '2 years') > 0 AS expired_something;
SELECT DISTINCT o.kind, o.operation_id ~ '^~expire-[0-9]+$' AS internal
  FROM loyalty.ledger_entry e JOIN loyalty.operation o USING (operation_id)
 WHERE e.kind = 'expire';
SELECT count(*) AS problems FROM loyalty.verify_ledger();

-- internal operations are the only ones in the "~" namespace
SELECT kind, count(*) FILTER (WHERE operation_id LIKE '~%') AS internal,
       count(*) FILTER (WHERE operation_id NOT LIKE '~%') AS client
  FROM loyalty.operation GROUP BY kind ORDER BY kind;

-- the table refuses a client operation in the namespace, whatever writes it
SELECT split_part(pg_temp.err($$INSERT INTO loyalty.operation (operation_id, kind, request)
                                VALUES ('~P', 'purchase', '{}')$$), ' / ', 1) AS client_kind_internal_id;
SELECT split_part(pg_temp.err($$INSERT INTO loyalty.operation (operation_id, kind, request)
                                VALUES ('merge-8-9', 'merge', '{}')$$), ' / ', 1) AS internal_kind_client_id;

-- the 0.9 upgrade moves what 0.8 stored into the namespace, in every table
-- that names operations: a merge and an expiry under their old names, and a
-- merge and an expiry that had filed under a client's operation of their name
SET client_min_messages = warning;
DROP EXTENSION loyalty CASCADE;
CREATE EXTENSION loyalty VERSION '0.8';
RESET client_min_messages;
INSERT INTO loyalty.category (code, parent, name) VALUES ('all', NULL, 'Everything');
INSERT INTO loyalty.product (sku, name, category, price) VALUES ('A', 'Cream', 'all', 100.00);
INSERT INTO loyalty.account_type (code, name, redeem_share) VALUES ('main', 'Bonus points', 1);
INSERT INTO loyalty.tier (code, name, rank, threshold, accrual_percent) VALUES ('base', 'Base', 1, 0, 10);
SELECT count(loyalty.register('+7912000000' || n)) AS registered FROM generate_series(1, 6) n;
SELECT count(loyalty.adjust(jsonb_build_object('operation_id', 'G' || n, 'customer', n,
                                               'account', 'main', 'points', 10 * n, 'reason', 'gift')))
       AS granted FROM generate_series(1, 6) n;
-- 0.8's merge, under its own name and under a client's operation of that
-- name (an adjust: the 0.9 library prices a purchase only on a 0.9 schema)
SELECT loyalty.merge_customers(1, 2) ->> 'lots' AS plain_merge_lots;
SELECT loyalty.adjust('{"operation_id": "merge-3-4", "customer": 3, "account": "main", "points": 10, "reason": "x"}')
       ->> 'operation_id' AS adjust_merge_3_4;
SELECT loyalty.merge_customers(3, 4) ->> 'lots' AS collided_merge_lots;
-- 0.8's expiry, under its own name and under an adjust of that name
INSERT INTO loyalty.operation (operation_id, kind, request, response)
VALUES ('expire-77', 'expire', '{"as_of": "2030-01-01T00:00:00+00:00"}', '{}');
SELECT loyalty.adjust('{"operation_id": "expire-78", "customer": 6, "account": "main", "points": 1, "reason": "x"}')
       ->> 'operation_id' AS adjust_expire_78;
WITH x AS (UPDATE loyalty.lot SET remaining = 0
            WHERE operation_id IN ('G5', 'G6') RETURNING id, customer_id, account, amount, operation_id)
INSERT INTO loyalty.ledger_entry (customer_id, account, lot_id, operation_id, kind, points, at)
SELECT customer_id, account, id, CASE operation_id WHEN 'G5' THEN 'expire-77' ELSE 'expire-78' END,
       'expire', -amount, '2030-01-01T00:00:00+00:00'
  FROM x;
SELECT count(*) AS problems_before FROM loyalty.verify_ledger();

ALTER EXTENSION loyalty UPDATE TO '0.9';
SELECT operation_id, kind, customer_id, request FROM loyalty.operation
 WHERE kind IN ('merge', 'expire') OR operation_id ~ '^(merge|expire)-' ORDER BY operation_id;
SELECT e.customer_id, e.kind, e.points, e.operation_id, o.kind AS operation_kind
  FROM loyalty.ledger_entry e JOIN loyalty.operation o USING (operation_id)
 WHERE e.kind <> 'adjust' OR e.operation_id = 'merge-3-4' ORDER BY e.id;
SELECT l.customer_id, l.amount, l.remaining, l.operation_id
  FROM loyalty.lot l WHERE l.customer_id IN (1, 3) ORDER BY l.id;
SELECT count(*) AS problems_after FROM loyalty.verify_ledger();
-- the namespace holds: every operation on the right side of it
SELECT count(*) AS misplaced FROM loyalty.operation
 WHERE (kind IN ('merge', 'expire')) <> (operation_id LIKE '~%');
-- and merges go on under the new names
SELECT loyalty.merge_customers(3, 1) ->> 'lots' AS merge_after_upgrade;
SELECT operation_id, count(*) AS entries FROM loyalty.ledger_entry
 WHERE customer_id IN (1, 3) AND kind = 'merge' GROUP BY operation_id ORDER BY operation_id;
SELECT count(*) AS problems FROM loyalty.verify_ledger();

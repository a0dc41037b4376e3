--
-- Issue 20 item 4 (shard side): a code that is not a customer's (a gift
-- certificate, a mass coupon code) lives on its home partition
-- hashtext(code) & (P - 1); a check of a customer on another node holds it
-- there, uses a guest copy, and the use is confirmed at home (or the hold
-- released).  Two databases of one cluster play the two nodes, P = 2:
-- this one is the code's home ("home"), "shop" (through dblink) holds the
-- customer.
--
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS loyalty CASCADE;
CREATE EXTENSION loyalty;
CREATE EXTENSION IF NOT EXISTS dblink;
DROP DATABASE IF EXISTS loyalty_code_shop;
RESET client_min_messages;
CREATE DATABASE loyalty_code_shop;
SELECT dblink_connect('shop', format('dbname=loyalty_code_shop host=%s port=%s',
                                     split_part(current_setting('unix_socket_directories'), ',', 1),
                                     current_setting('port'))) AS connected;
CREATE FUNCTION pg_temp.err(call text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE st text; msg text;
BEGIN
    EXECUTE call;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
    RETURN st || ': ' || msg;
END
$$;
CREATE FUNCTION pg_temp.on_shop(q text) RETURNS text
LANGUAGE sql AS $$ SELECT r FROM dblink('shop', q) AS t(r text) $$;

CREATE TEMP TABLE setup (q text);
INSERT INTO setup VALUES ($$
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS loyalty;
INSERT INTO loyalty.partitioning (partitions) VALUES (2);
INSERT INTO loyalty.category (code, parent, name) VALUES ('all', NULL, 'Everything');
INSERT INTO loyalty.product (sku, name, category, price) VALUES ('A', 'Cream', 'all', 100.00);
INSERT INTO loyalty.account_type (code, name, redeem_share, lifetime) VALUES ('main', 'Bonus points', 1, '1 year');
$$);
SELECT dblink_exec('shop', q) AS shop_setup FROM setup;
DO $$ BEGIN EXECUTE (SELECT q FROM setup); END $$;
RESET client_min_messages;
-- no fixed clock: the certificate is valid from the moment it is issued

-- the codes live here: a certificate of 500, a mass code good for two
-- uses (10% off), a personal coupon of a customer of this node
-- (a certificate as issue_certificate writes it, with a fixed code so the
-- masked codes in the messages below stay the same)
SELECT 'GIFT-0500' AS cert \gset
INSERT INTO loyalty.coupon (code, kind, value, balance, max_uses) VALUES (:'cert', 'certificate', 500, 500, 1000000);
INSERT INTO loyalty.coupon (code, kind, percent, max_uses) VALUES ('TEN-OFF', 'promo', 10, 2);
SELECT loyalty.register('+79120000009') AS gleb \gset
INSERT INTO loyalty.coupon (code, kind, percent, customer_id) VALUES ('GLEB-10', 'personal', 10, :gleb);
-- the home partition is the code's own hash (typed in lower case: the same)
SELECT loyalty.code_home('gift-0500') = hashtext('GIFT-0500') & 1 AS cert_home,
       loyalty.code_home('ten-off') = hashtext('TEN-OFF') & 1 AS mass_home;

-- check H1 of a customer on partition 1 holds the certificate: one use
-- held, the document shows the balance; a second check H2 cannot hold it
-- meanwhile (one open hold per certificate: what a check takes is not
-- known yet); H1 again is the same hold
SELECT loyalty.code_hold(:'cert', 'H1', 1) AS doc \gset
SELECT (:'doc')::jsonb - 'code' - 'valid_from' - 'valid_until' AS h1;
SELECT (loyalty.code_hold(:'cert', 'H2', 1)) ->> 'held' AS h2_held,
       (loyalty.code_hold(:'cert', 'H2', 1)) ->> 'status' AS h2_status;
SELECT (loyalty.code_hold(:'cert', 'H1', 1)) ->> 'held' AS h1_again;
SELECT pg_temp.err($$SELECT loyalty.code_hold('$$ || :'cert' || $$', 'H1', 0)$$) AS h1_other_partition;
SELECT hold_id, state FROM loyalty.code_hold ORDER BY 1;

-- on the shop: the guest copy, then Boris's purchase of 2 x 100 with the
-- certificate: it pays all 200 (total 0.00), 300 stay on it
SELECT pg_temp.on_shop(format('SELECT loyalty.code_guest(%L)', :'doc')) AS guest;
SELECT pg_temp.on_shop($$SELECT loyalty.register('+79120000002')::text$$) IS NOT NULL AS boris;
SELECT pg_temp.on_shop(format($q$SELECT r -> 'totals' ->> 'total' || ' ' || (r -> 'coupons' -> 0 ->> 'status')
    FROM loyalty.purchase('{"operation_id": "H1", "customer": "+79120000002", "coupons": ["%s"],
                            "lines": [{"sku": "A", "qty": 2}]}') r$q$, :'cert')) AS total_and_coupon;
SELECT pg_temp.on_shop(format($q$SELECT loyalty.code_guest_settle(%L, 'H1')::text$q$, :'cert')) AS settle;

-- back home: confirm 1 use of 200: 300 left, still active; confirming
-- again is the same, with another amount LY003; a confirmed hold is not
-- released (55000)
SELECT loyalty.code_confirm(:'cert', 'H1', 1, 200) - 'code' AS confirmed;
SELECT loyalty.code_confirm(:'cert', 'H1', 1, 200) - 'code' AS confirmed_again;
SELECT pg_temp.err($$SELECT loyalty.code_confirm('$$ || :'cert' || $$', 'H1', 1, 100)$$) AS other_amount;
SELECT pg_temp.err($$SELECT loyalty.code_release('$$ || :'cert' || $$', 'H1')$$) AS release_confirmed;
SELECT balance, uses, status FROM loyalty.coupon WHERE code = :'cert';

-- now H2 can hold it (balance 300); a check that does not use it
-- releases: true once, then false; a never-held or released hold cannot
-- be confirmed (55000); more than the balance is refused (22023)
SELECT (loyalty.code_hold(:'cert', 'H2', 1)) ->> 'balance' AS h2_balance;
SELECT pg_temp.err($$SELECT loyalty.code_confirm('$$ || :'cert' || $$', 'H2', 1, 301)$$) AS above_balance;
SELECT loyalty.code_release(:'cert', 'H2') AS released, loyalty.code_release(:'cert', 'H2') AS again;
SELECT pg_temp.err($$SELECT loyalty.code_confirm('$$ || :'cert' || $$', 'H2', 1, 10)$$) AS confirm_released,
       pg_temp.err($$SELECT loyalty.code_confirm('$$ || :'cert' || $$', 'H9', 1, 10)$$) AS confirm_unheld;

-- a mass code good for 2 uses: two checks hold one use each, a third
-- cannot until one releases
SELECT (loyalty.code_hold('ten-off', 'M1', 1)) ->> 'held' AS m1,
       (loyalty.code_hold('TEN-OFF', 'M2', 1)) ->> 'held' AS m2,
       (loyalty.code_hold('TEN-OFF', 'M3', 1)) ->> 'held' AS m3;
SELECT loyalty.code_release('TEN-OFF', 'M1') AS m1_released,
       (loyalty.code_hold('TEN-OFF', 'M3', 1)) ->> 'held' AS m3_now;
-- M2's check used it: 1 use; a use of a mass code has no amount (22023)
SELECT pg_temp.err($$SELECT loyalty.code_confirm('TEN-OFF', 'M2', 1, 5)$$) AS mass_amount;
SELECT loyalty.code_confirm('TEN-OFF', 'M2', 1, 0) ->> 'uses' AS mass_uses;

-- a personal coupon lives with its customer (22023); an unknown code is
-- NULL (the customer's check reports it unknown, as on one node); on the
-- code's own node a guest copy does nothing
SELECT pg_temp.err($$SELECT loyalty.code_hold('GLEB-10', 'P1', 1)$$) AS personal;
SELECT loyalty.code_hold('NO-SUCH', 'P1', 1) IS NULL AS unknown;
SELECT loyalty.code_guest(:'doc') AS on_home;
-- the shop's guest copy follows the next hold's document (balance 300)
SELECT pg_temp.on_shop(format('SELECT loyalty.code_guest(%L)', loyalty.code_hold(:'cert', 'H3', 1))) AS guest_again;
SELECT pg_temp.on_shop(format('SELECT balance::text FROM loyalty.coupon WHERE code = %L', :'cert')) AS guest_balance;
-- both nodes' ledgers are sound
SELECT count(*) AS home_problems FROM loyalty.verify_ledger();
SELECT pg_temp.on_shop('SELECT count(*)::text FROM loyalty.verify_ledger()') AS shop_problems;

SELECT dblink_disconnect('shop');
DROP DATABASE loyalty_code_shop;

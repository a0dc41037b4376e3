--
-- Issue 20 items 10 and 7: moving a customer between nodes loses nothing,
-- and an operation_id claimed on its own hash partition is not committed
-- twice by two nodes.  Two databases of one cluster play the two nodes of
-- a chain with P = 2 (this one, "source", and "target" through dblink).
--
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS loyalty CASCADE;
CREATE EXTENSION loyalty;
CREATE EXTENSION IF NOT EXISTS dblink;
DROP DATABASE IF EXISTS loyalty_move_target;
RESET client_min_messages;
CREATE DATABASE loyalty_move_target;
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';
SELECT dblink_connect('target', format('dbname=loyalty_move_target host=%s port=%s',
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
-- one statement on the target, its one jsonb/text result
CREATE FUNCTION pg_temp.on_target(q text) RETURNS text
LANGUAGE sql AS $$ SELECT r FROM dblink('target', q) AS t(r text) $$;

-- the same configuration on both nodes
CREATE TEMP TABLE setup (q text);
INSERT INTO setup VALUES ($$
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS loyalty;
INSERT INTO loyalty.partitioning (partitions) VALUES (2);
INSERT INTO loyalty.category (code, parent, name) VALUES ('all', NULL, 'Everything');
INSERT INTO loyalty.product (sku, name, category, price) VALUES ('A', 'Cream', 'all', 100.00), ('B', 'Soap', 'all', 33.33);
INSERT INTO loyalty.account_type (code, name, redeem_share, lifetime) VALUES ('main', 'Bonus points', 1, '1 year');
INSERT INTO loyalty.tier (code, name, rank, threshold, accrual_percent) VALUES ('base', 'Base', 1, 0, 10);
INSERT INTO loyalty.segment (code, name) VALUES ('vip', 'VIP');
$$);
SELECT dblink_exec('target', q) AS target_setup FROM setup;
SELECT dblink_exec('target', $$SET loyalty.test_now = '2026-03-01 10:00:00+00'$$) AS target_clock;
DO $$ BEGIN EXECUTE (SELECT q FROM setup); END $$;
RESET client_min_messages;

-- Anna's life on the source: a welcome grant, two checks (one spending
-- points), a partial refund, a second customer merged into her, a segment
SET loyalty.test_now = '2026-03-01 10:00:00+00';
SELECT loyalty.register('+79120000001', '{"name": "Anna"}') AS anna,
       loyalty.register('+79120000007') AS anna_old_card,
       loyalty.register('+79120000002') AS boris;
SELECT loyalty.adjust('{"operation_id": "W-1", "customer": "+79120000001", "account": "main", "points": 50, "reason": "welcome"}') ->> 'points' AS welcome;
SELECT loyalty.adjust('{"operation_id": "W-2", "customer": "+79120000007", "account": "main", "points": 7, "reason": "welcome"}') ->> 'points' AS welcome_old;
SELECT r -> 'totals' ->> 'total' AS total
  FROM loyalty.purchase('{"operation_id": "P-1", "customer": "+79120000001", "at": "2026-03-01T10:00:00Z",
                          "lines": [{"sku": "A", "qty": 2}, {"sku": "B", "qty": 3}]}') r;
SELECT r -> 'totals' ->> 'total' AS total
  FROM loyalty.purchase('{"operation_id": "P-2", "customer": "+79120000001", "at": "2026-03-01T10:00:00Z",
                          "redeem": 30, "lines": [{"sku": "A", "qty": 1}]}') r;
SELECT r -> 'totals' ->> 'amount' AS refunded
  FROM loyalty.refund('{"operation_id": "R-1", "purchase": "P-1", "customer": "+79120000001",
                        "at": "2026-03-01T10:00:00Z", "lines": [{"index": 0, "qty": 1}]}') r;
SELECT loyalty.merge_customers(loyalty.find_customer('+79120000001'), loyalty.find_customer('+79120000007')) ->> 'lots' AS lots_merged;
INSERT INTO loyalty.segment_member (segment, customer_id) VALUES ('vip', loyalty.find_customer('+79120000001'));
SELECT r -> 'totals' ->> 'total' AS boris_total
  FROM loyalty.purchase('{"operation_id": "P-3", "customer": "+79120000002", "at": "2026-03-01T10:00:00Z",
                          "lines": [{"sku": "B", "qty": 1}]}') r;

-- before: Anna's balance is 53 = 50 welcome + 7 of the merged customer
-- + 29 earned on P-1 (10% of 299.99) - 30 spent on P-2 + 7 earned on it
-- (10% of 70.00) - 10 reversed by the refund of one cream (its line of
-- 200.00 earned 20); her history has 8 entries, her summary 5 lots
CREATE TEMP TABLE before AS
SELECT (SELECT jsonb_agg(to_jsonb(b) ORDER BY b.account) FROM loyalty.balance('+79120000001') b) AS balance,
       (SELECT jsonb_agg(jsonb_build_array(h.at, h.kind, h.account, h.points, h.operation_id, h.ref_operation_id, h.lot_expires_at)
                         ORDER BY h.id) FROM loyalty.history('+79120000001') h) AS history,
       loyalty.customer_summary(loyalty.find_customer('+79120000001')) AS summary;
SELECT balance FROM before;
SELECT jsonb_array_length(history) AS history_rows FROM before;
SELECT summary - 'customer' AS summary FROM before;
SELECT count(*) AS ledger_problems FROM loyalty.verify_ledger();

-- the move: export on the source, import on the target (which checks the
-- summary), remove from the source (which checks it again)
CREATE TEMP TABLE doc AS SELECT loyalty.export_customer(loyalty.find_customer('+79120000001')) AS d;
SELECT jsonb_array_length(d -> 'customers') AS customers, jsonb_array_length(d -> 'cards') AS cards,
       jsonb_array_length(d -> 'lots') AS lots, jsonb_array_length(d -> 'ledger_entries') AS entries,
       jsonb_array_length(d -> 'operations') AS operations, jsonb_array_length(d -> 'purchases') AS purchases,
       jsonb_array_length(d -> 'refunds') AS refunds, jsonb_array_length(d -> 'segment_members') AS segments
  FROM doc;
SELECT pg_temp.on_target(format('SELECT loyalty.import_customer(%L) ->> ''imported''', d)) AS imported FROM doc;
-- a re-run of the import (the source failed to commit) changes nothing
SELECT pg_temp.on_target(format('SELECT loyalty.import_customer(%L) ->> ''imported''', d)) AS imported_again FROM doc;
SELECT loyalty.remove_customer((d ->> 'customer')::bigint, d -> 'summary', loyalty.partition_of('+79120000001')) ->> 'removed' AS removed FROM doc;

-- after: the target has her balance, history and summary; the source has
-- nothing of her and Boris untouched; both ledgers verify
SELECT pg_temp.on_target($$SELECT jsonb_agg(to_jsonb(b) ORDER BY b.account) FROM loyalty.balance('+79120000001') b$$)::jsonb
       = (SELECT balance FROM before) AS same_balance;
SELECT pg_temp.on_target($$SELECT jsonb_agg(jsonb_build_array(h.at, h.kind, h.account, h.points, h.operation_id, h.ref_operation_id, h.lot_expires_at)
                                              ORDER BY h.id) FROM loyalty.history('+79120000001') h$$)::jsonb
       = (SELECT history FROM before) AS same_history;
SELECT pg_temp.on_target($$SELECT loyalty.customer_summary(loyalty.find_customer('+79120000001'))$$)::jsonb
       = (SELECT summary FROM before) AS same_summary;
SELECT pg_temp.on_target($$SELECT count(*) FROM loyalty.verify_ledger()$$) AS target_problems,
       (SELECT count(*) FROM loyalty.verify_ledger()) AS source_problems;
-- the merged customer's phone and card still find her on the target
SELECT pg_temp.on_target($$SELECT loyalty.find_customer('+79120000007') = loyalty.find_customer('+79120000001')$$) AS merged_follows;
SELECT loyalty.find_customer('+79120000001') AS anna_on_source, loyalty.find_customer('+79120000007') AS old_on_source;
SELECT count(*) AS source_rows FROM loyalty.ledger_entry e JOIN loyalty.customer c ON c.id = e.customer_id;
SELECT (SELECT count(*) FROM loyalty.purchase) AS source_purchases, (SELECT count(*) FROM loyalty.operation) AS source_operations;
SELECT available FROM loyalty.balance('+79120000002');

-- the source remembers where her keys went (phone in any spelling, the
-- merged customer's phone, her cards, id:N); other keys are not its to say
SELECT loyalty.moved_home('8 912 000 00 01') AS by_phone, loyalty.moved_home('+79120000007') AS by_old_phone,
       loyalty.moved_home('id:' || (d ->> 'customer')) AS by_id,
       loyalty.moved_home(d -> 'cards' -> 0 ->> 'number') AS by_card,
       loyalty.moved_home('+79120000002') AS boris, loyalty.moved_home('not a key') AS nothing
  FROM doc;

-- a merge across nodes: Gleb (on the source) is merged into Anna (on the
-- target): move Gleb to Anna's partition, then merge there
SELECT loyalty.register('+79120000005') IS NOT NULL AS gleb;
SELECT loyalty.adjust('{"operation_id": "W-5", "customer": "+79120000005", "account": "main", "points": 5, "reason": "welcome"}') ->> 'points' AS gleb_points;
CREATE TEMP TABLE doc_gleb AS SELECT loyalty.export_customer(loyalty.find_customer('+79120000005')) AS d;
SELECT pg_temp.on_target(format('SELECT loyalty.import_customer(%L) ->> ''imported''', d)) AS imported FROM doc_gleb;
SELECT loyalty.remove_customer((d ->> 'customer')::bigint, d -> 'summary', loyalty.partition_of('+79120000001')) ->> 'removed' AS removed
  FROM doc_gleb;
SELECT pg_temp.on_target($$SELECT loyalty.merge_customers(loyalty.find_customer('+79120000001'), loyalty.find_customer('+79120000005')) ->> 'lots'$$) AS lots_merged;
-- Anna's 53 + 5; Gleb's phone finds her on the target and is forwarded from the source
SELECT pg_temp.on_target($$SELECT available FROM loyalty.balance('+79120000005')$$) AS anna_with_gleb,
       loyalty.moved_home('+79120000005') AS gleb_home;
SELECT pg_temp.on_target($$SELECT count(*) FROM loyalty.verify_ledger()$$) AS target_problems,
       (SELECT count(*) FROM loyalty.verify_ledger()) AS source_problems;

-- she goes on living on the target: a refund of a moved purchase, a new check
SELECT pg_temp.on_target($$SELECT loyalty.refund('{"operation_id": "R-2", "purchase": "P-1", "customer": "+79120000001", "at": "2026-03-01T10:00:00Z"}') ->> 'full'$$) AS full_refund;
SELECT pg_temp.on_target($$SELECT loyalty.purchase('{"operation_id": "P-4", "customer": "+79120000001", "at": "2026-03-01T10:00:00Z", "lines": [{"sku": "B", "qty": 1}]}') -> 'totals' ->> 'total'$$) AS total;
SELECT pg_temp.on_target($$SELECT count(*) FROM loyalty.verify_ledger()$$) AS target_problems;
-- a customer registered on the target later never takes a moved id or card
SELECT pg_temp.on_target($$SELECT loyalty.register('+79120000009') > max(id) FILTER (WHERE phone::text <> '+79120000009') FROM loyalty.customer$$) AS fresh_id;
SELECT pg_temp.on_target($$SELECT count(*) = count(DISTINCT number) FROM loyalty.card$$) AS cards_unique;

-- a customer who changed after the export is not removed (55000), and an
-- import over a customer with the same id but other rows is refused (23505)
CREATE TEMP TABLE doc_boris AS SELECT loyalty.export_customer(loyalty.find_customer('+79120000002')) AS d;
SELECT loyalty.adjust('{"operation_id": "W-3", "customer": "+79120000002", "account": "main", "points": 1, "reason": "late"}') ->> 'points' AS late;
SELECT pg_temp.err(format('SELECT loyalty.remove_customer(%s, %L, 1)', d ->> 'customer', d -> 'summary')) FROM doc_boris;
SELECT loyalty.find_customer('+79120000002') IS NOT NULL AS boris_still_here;
SELECT pg_temp.err(format('SELECT loyalty.import_customer(%L)', d)) FROM doc_boris;
SELECT pg_temp.err($$SELECT loyalty.export_customer(loyalty.find_customer('+79120000002') + 1000)$$);

--
-- Item 7: the router claims an operation_id on the node of its hash
-- partition before the call.  After the move partition 0 (Anna's) is the
-- target's, partition 1 (Boris's) the source's; route() plays the router.
-- The same id for Boris after Anna used it is LY003 and the source
-- commits nothing (without the claim the source would commit it: its own
-- operation table has never seen the id).
--
CREATE FUNCTION pg_temp.route(op text, phone text, body text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    home int := pg_catalog.hashtext(phone::loyalty.phone::text) & 1;
    oph  int := pg_catalog.hashtext(op) & 1;
    call text := format('SELECT loyalty.purchase(%L) -> ''totals'' ->> ''total''',
                        format('{"operation_id": "%s", "customer": "%s", %s}', op, phone, body));
BEGIN
    IF oph = 1 THEN
        PERFORM loyalty.claim_operation(op, home);
    ELSE
        PERFORM pg_temp.on_target(format('SELECT loyalty.claim_operation(%L, %s)', op, home));
    END IF;
    IF home = 1 THEN
        EXECUTE call INTO call;
        RETURN call;
    END IF;
    RETURN pg_temp.on_target(call);
END
$$;
SELECT loyalty.partition_of('+79120000001') AS anna_partition, loyalty.partition_of('+79120000002') AS boris_partition,
       pg_catalog.hashtext('S9-1') & 1 AS operation_partition;
SELECT pg_temp.route('S9-1', '+79120000001', '"at": "2026-03-01T10:00:00Z", "lines": [{"sku": "A", "qty": 1}]') AS anna_total;
SELECT pg_temp.route('S9-1', '+79120000001', '"at": "2026-03-01T10:00:00Z", "lines": [{"sku": "A", "qty": 1}]') AS replayed;
SELECT pg_temp.err($$SELECT pg_temp.route('S9-1', '+79120000002', '"at": "2026-03-01T10:00:00Z", "lines": [{"sku": "B", "qty": 1}]')$$) AS boris;
SELECT count(*) AS source_has_s9 FROM loyalty.purchase WHERE operation_id = 'S9-1';
SELECT pg_temp.on_target($$SELECT count(*) FROM loyalty.purchase WHERE operation_id = 'S9-1'$$) AS target_has_s9;

SELECT dblink_disconnect('target') AS disconnected;
DROP DATABASE loyalty_move_target;

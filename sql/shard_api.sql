--
-- shard_api: loyalty.api(method, args), the API by name for a PL/Proxy
-- router (issue 20 item 8, SPEC section 14).  A call's result comes back
-- as {"result": ...}; an error as {"error": {sqlstate, message, detail,
-- hint}} with the call's own effects rolled back and the caller's
-- transaction going on (PL/Proxy drops its connection to a shard after a
-- remote error, so the shard must not raise).  It runs as the caller: a
-- role gets through it exactly what it may call directly.
--
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS loyalty CASCADE;
CREATE EXTENSION loyalty;
RESET client_min_messages;
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';
SET loyalty.test_now = '2026-06-01 12:00:00+03';
INSERT INTO loyalty.store (code, name, timezone, channel) VALUES ('S017', 'Izhevsk', 'Europe/Samara', 'pos');
INSERT INTO loyalty.category (code, parent, name) VALUES ('all', NULL, 'Everything');
INSERT INTO loyalty.product (sku, name, category, price) VALUES
    ('A1', 'Cream', 'all', 100.00), ('A2', 'Soap', 'all', 250.00);
INSERT INTO loyalty.account_type (code, name, redeem_share, lifetime) VALUES ('main', 'Bonus points', 1, '1 year');
INSERT INTO loyalty.tier (code, name, rank, threshold, accrual_percent) VALUES ('base', 'Base', 1, 0, 10);

-- register and find_customer: the bigint result as a JSON number
SELECT loyalty.api('register', '{"phone": "8 912 000 00 01"}');
SELECT loyalty.api('register', '{"phone": "+7 912 000-00-02", "profile": {"name": "Ann"}}');
SELECT loyalty.api('find_customer', '{"identifier": "79120000001"}');
-- nobody: JSON null, as find_customer's NULL
SELECT loyalty.api('find_customer', '{"identifier": "+79990000000"}');

-- adjust: the function's own response inside "result"
SELECT loyalty.api('adjust', '{"request": {"operation_id": "A1", "customer": "9120000001",
    "account": "main", "points": 300, "reason": "welcome"}}') -> 'result' -> 'balance';

-- balance and history: their rows as JSON arrays, "at" passed through
SELECT jsonb_array_length(r -> 'result') AS accounts,
       r -> 'result' -> 0 ->> 'account' AS first, r -> 'result' -> 0 ->> 'available' AS available
  FROM loyalty.api('balance', '{"customer": "+79120000001", "at": "2026-06-02T00:00:00+03:00"}') AS r;
SELECT r -> 'result' -> 0 ->> 'kind' AS kind, r -> 'result' -> 0 ->> 'points' AS points
  FROM loyalty.api('history', '{"customer": "+79120000001", "lim": 1}') AS r;

-- calculate and purchase: what the functions return, unchanged
SELECT loyalty.api('calculate', '{"request": {"customer": "+79120000001", "store": "S017",
          "lines": [{"sku": "A1", "qty": 1}]}}') -> 'result'
     = loyalty.calculate('{"customer": "+79120000001", "store": "S017", "lines": [{"sku": "A1", "qty": 1}]}')
       AS same_as_calculate;

-- errors come back as JSON: SQLSTATE, message, detail (hint when there is one)
SELECT loyalty.api('calculate', '{"request": {"customer": "+79990000000", "store": "S017",
          "lines": [{"sku": "A1", "qty": 1}]}}');
SELECT loyalty.api('calculate', '{"request": {"store": "S017", "lines": []}}');
SELECT loyalty.api('balance', '{"customer": "nobody"}');
SELECT loyalty.api('frobnicate', '{}');

-- a failed call's own writes are rolled back: the purchase P1 redeems 100
-- of the 300 points and earns 10% of the 150 paid (15, available at once);
-- a trigger then fails operation BOOM when it writes its ledger entry, so
-- the adjust BOOM fails after writing: nothing of it stays
SELECT loyalty.api('purchase', '{"request": {"operation_id": "P1", "customer": "+79120000001",
          "store": "S017", "redeem": 100, "lines": [{"sku": "A2", "qty": 1}]}}') -> 'result' -> 'redeem' ->> 'applied' AS redeemed;
CREATE FUNCTION public.boom() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'boom' USING ERRCODE = 'P0001', HINT = 'A test trigger.';
END $$;
CREATE TRIGGER boom AFTER INSERT ON loyalty.ledger_entry
    FOR EACH ROW WHEN (NEW.operation_id = 'BOOM') EXECUTE FUNCTION public.boom();
SELECT loyalty.api('adjust', '{"request": {"operation_id": "BOOM", "customer": "+79120000001",
          "account": "main", "points": -50, "reason": "fails after writing"}}');
DROP TRIGGER boom ON loyalty.ledger_entry;
-- an operation_id reused for another request is LY003; a debit beyond the
-- balance is LY004
SELECT loyalty.api('purchase', '{"request": {"operation_id": "P1", "customer": "+79120000001",
          "store": "S017", "lines": [{"sku": "A1", "qty": 1}]}}') -> 'error' ->> 'sqlstate' AS reused_id;
SELECT loyalty.api('adjust', '{"request": {"operation_id": "A2", "customer": "+79120000001",
          "account": "main", "points": -1000, "reason": "too much"}}');
-- 300 - 100 redeemed + 15 earned = 215 (BOOM's -50 is not there); no operation BOOM or A2, no entry of them; P1 once
SELECT available FROM loyalty.balance('+79120000001', '2026-06-02 00:00+03') WHERE account = 'main';
SELECT count(*) FILTER (WHERE operation_id IN ('BOOM', 'A2')) AS failed, count(*) FILTER (WHERE operation_id = 'P1') AS p1
  FROM loyalty.operation;
SELECT count(*) AS failed_entries FROM loyalty.ledger_entry WHERE operation_id IN ('BOOM', 'A2');

-- the caller's transaction goes on after an error returned as JSON: a
-- registration that fails (malformed profile) leaves no customer, the
-- next one in the same transaction commits
BEGIN;
SELECT loyalty.api('register', '{"phone": "+79120000003", "profile": []}') -> 'error' ->> 'sqlstate' AS bad_profile;
SELECT loyalty.api('register', '{"phone": "+79120000004"}') ? 'result' AS registered;
COMMIT;
SELECT phone FROM loyalty.customer ORDER BY id;

-- it runs as the caller: the marketer may not adjust through it (42501),
-- the cashier may price a check
SET ROLE loyalty_marketer;
SELECT loyalty.api('adjust', '{"request": {"operation_id": "A3", "customer": "+79120000001",
          "account": "main", "points": 5, "reason": "x"}}') -> 'error' ->> 'sqlstate' AS marketer_adjust;
RESET ROLE;
SET ROLE loyalty_cashier;
SELECT loyalty.api('calculate', '{"request": {"customer": "+79120000001", "store": "S017",
          "lines": [{"sku": "A1", "qty": 1}]}}') ? 'result' AS cashier_calculates;
RESET ROLE;

-- "claim": the operation id's claim made in the call's own subtransaction
-- (the router's strict idempotency in one round trip).  P = 1 here, so the
-- only partition is 0.  A call that succeeds leaves the claim; one that
-- fails (LY004: -1000 of 215) leaves none; a claim for another partition
-- (1 does not exist: 22023) fails before the call and the call does nothing
SELECT loyalty.api('adjust', '{"claim": 0, "request": {"operation_id": "C1", "customer": "+79120000001",
          "account": "main", "points": 5, "reason": "claimed"}}') ? 'result' AS claimed_adjust;
SELECT loyalty.api('adjust', '{"claim": 0, "request": {"operation_id": "C2", "customer": "+79120000001",
          "account": "main", "points": -1000, "reason": "too much"}}') -> 'error' ->> 'sqlstate' AS failed_adjust;
SELECT loyalty.api('adjust', '{"claim": 1, "request": {"operation_id": "C3", "customer": "+79120000001",
          "account": "main", "points": 5, "reason": "x"}}') -> 'error' ->> 'sqlstate' AS bad_claim;
SELECT operation_id, home FROM loyalty.operation_home WHERE operation_id LIKE 'C_' ORDER BY 1;
-- 215 + 5 = 220: C1 only
SELECT available FROM loyalty.balance('+79120000001', '2026-06-02 00:00+03') WHERE account = 'main';
-- the calls the router makes for plastic cards and moved customers
SELECT loyalty.api('card_directory_put', '{"number": "PLC-1", "home": 0}') AS put,
       loyalty.api('attach_card', '{"customer": "+79120000001", "number": "PLC-1"}') ->> 'result'
           = loyalty.find_customer('+79120000001')::text AS attached,
       loyalty.api('moved_home', '{"identifier": "PLC-1"}') AS moved;

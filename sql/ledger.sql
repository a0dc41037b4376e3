--
-- The points ledger: lots, balances, FEFO spending, expiry, idempotency.
--
-- Points live in lots (amount, remaining, earned_at, available_at,
-- expires_at); every movement is an append-only ledger entry.  Manual
-- grants and debits go through loyalty.adjust; purchases and refunds use
-- the same primitives (see check_purchase and check_refund).
--
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS loyalty CASCADE;
CREATE EXTENSION loyalty;
RESET client_min_messages;
SET datestyle = 'ISO, YMD';
SET intervalstyle = postgres;
SET timezone = 'UTC';

INSERT INTO loyalty.account_type (code, name, redeem_share, min_check, lifetime, activation_delay, redeem_order) VALUES
    ('main',  'Bonus points', 0.9, 0,    '1 year', '24 hours', 100),
    ('promo', 'Promo points', 0.3, 2000, NULL,     '0',        10);
SELECT loyalty.register('+79123456789', '{"name": "Anna"}') AS anna;
SELECT loyalty.register('+79221234567', '{"name": "Boris"}') AS boris;

-- a grant: available at once, expiring after the account's lifetime
SELECT loyalty.adjust('{"operation_id": "A-1", "customer": "+79123456789", "account": "main",
                        "points": 500, "reason": "welcome bonus"}');
-- a grant with its own expiry, and one without expiry on an account without lifetime
SELECT loyalty.adjust(jsonb_build_object('operation_id', 'A-2', 'customer', 1, 'account', 'main',
                      'points', 300, 'expires_at', now() + interval '10 days', 'reason', 'birthday'));
SELECT loyalty.adjust('{"operation_id": "A-3", "customer": "id:1", "account": "promo",
                        "points": 1000, "reason": "campaign"}');
SELECT account, amount, remaining, expires_at - earned_at AS lives, available_at = earned_at AS at_once
  FROM loyalty.lot ORDER BY id;
SELECT account, available, pending, expiring, next_expiry - now() < interval '10 days 1 minute' AS next_in_10_days
  FROM loyalty.balance('+79123456789') ORDER BY account;

-- spending takes the first-expiring lot first (the birthday lot), then the older one
SELECT loyalty.adjust('{"operation_id": "D-1", "customer": "+79123456789", "account": "main",
                        "points": -350, "reason": "manual correction"}') -> 'balance' AS balance_after;
SELECT id, account, amount, remaining FROM loyalty.lot ORDER BY id;

-- asking for more than the account holds is LY004 and changes nothing
SELECT loyalty.adjust('{"operation_id": "D-2", "customer": "+79123456789", "account": "main",
                        "points": -451, "reason": "too much"}');
SELECT sum(remaining) AS main_still FROM loyalty.lot WHERE account = 'main';
SELECT count(*) AS no_operation_left_behind FROM loyalty.operation WHERE operation_id = 'D-2';

-- the same operation again: the stored response, nothing new
SELECT loyalty.adjust('{"operation_id": "D-1", "customer": "+79123456789", "account": "main",
                        "points": -350, "reason": "manual correction"}') -> 'balance' AS replayed;
SELECT count(*) AS entries FROM loyalty.ledger_entry;
-- the same operation_id with another request: LY003
SELECT loyalty.adjust('{"operation_id": "D-1", "customer": "+79123456789", "account": "main",
                        "points": -10, "reason": "manual correction"}');
DO $$
BEGIN
    PERFORM loyalty.adjust('{"operation_id": "D-1", "customer": "1", "account": "main",
                             "points": -10, "reason": "x"}');
EXCEPTION WHEN SQLSTATE 'LY003' THEN
    RAISE NOTICE 'LY003: %', SQLERRM;
END
$$;

-- pending points: a grant available from tomorrow counts as pending until then
SELECT loyalty.adjust(jsonb_build_object('operation_id', 'A-4', 'customer', '+79221234567',
                      'account', 'main', 'points', 40, 'available_at', now() + interval '1 day',
                      'reason', 'delayed'));
SELECT account, available, pending FROM loyalty.balance('+79221234567') WHERE account = 'main';
SELECT account, available, pending
  FROM loyalty.balance('+79221234567', now() + interval '25 hours') WHERE account = 'main';
-- pending points cannot be spent yet
SELECT loyalty.adjust('{"operation_id": "D-3", "customer": "+79221234567", "account": "main",
                        "points": -1, "reason": "too early"}');

-- a balance in the future leaves out what will have expired, whether or not expiry ran
SELECT loyalty.adjust(jsonb_build_object('operation_id', 'A-7', 'customer', 1, 'account', 'main',
                      'points', 100, 'expires_at', now() + interval '10 days', 'reason', 'short-lived'))
       -> 'balance' AS balance;
SELECT account, available, expiring FROM loyalty.balance('+79123456789') WHERE account = 'main';
SELECT account, available FROM loyalty.balance('+79123456789', now() + interval '11 days')
 WHERE account = 'main';

-- expiry: the short-lived lot expires after 10 days
SELECT loyalty.expire_points(now() + interval '11 days') AS expired_points;
SELECT loyalty.expire_points(now() + interval '11 days') AS expired_again;
-- (a run that found nothing due leaves no operation behind)
SELECT count(*) AS expiry_operations FROM loyalty.operation WHERE kind = 'expire';
SELECT id, account, remaining FROM loyalty.lot ORDER BY id;
SELECT kind, payload - 'at' AS payload FROM loyalty.event WHERE kind = 'points_expired';

-- malformed requests: 22023 naming the field; unknown customers: LY001
SELECT loyalty.adjust('{"customer": "1", "account": "main", "points": 1, "reason": "x"}');
SELECT loyalty.adjust('{"operation_id": "X", "customer": 1, "account": "main", "points": 1.5, "reason": "x"}');
SELECT loyalty.adjust('{"operation_id": "X", "customer": 1, "account": "gold", "points": 1, "reason": "x"}');
SELECT loyalty.adjust('{"operation_id": "X", "customer": 1, "account": "main", "points": 0, "reason": "x"}');
SELECT loyalty.adjust('{"operation_id": "X", "customer": "1", "account": "main", "points": "5", "reason": "x"}');
SELECT loyalty.adjust('{"operation_id": "X", "customer": "1", "account": "main", "points": 5, "reason": "x", "note": 1}');
SELECT loyalty.adjust('{"operation_id": "X", "customer": 1, "account": "main", "points": 5, "reason": "x", "expires_at": "soon"}');
SELECT loyalty.adjust('{"operation_id": "X", "customer": "+79990000000", "account": "main", "points": 5, "reason": "x"}');
SELECT loyalty.adjust('{"operation_id": "X", "customer": "1", "account": "main", "points": 5, "reason": "x"}');
SELECT loyalty.adjust('{"operation_id": "X", "customer": 1.5, "account": "main", "points": 5, "reason": "x"}');
SELECT loyalty.adjust('[1, 2]');
SELECT * FROM loyalty.balance('nobody');

-- points with hundredths when the program counts them so
INSERT INTO loyalty.setting VALUES ('points_precision', '2');
SELECT loyalty.adjust('{"operation_id": "A-5", "customer": "+79221234567", "account": "promo",
                        "points": 12.34, "reason": "cents"}') -> 'points' AS granted;
SELECT loyalty.adjust('{"operation_id": "A-6", "customer": "+79221234567", "account": "promo",
                        "points": 0.005, "reason": "too fine"}');

-- the ledger is append-only, enforced by the database
UPDATE loyalty.ledger_entry SET points = 1000 WHERE id = 1;
DELETE FROM loyalty.ledger_entry;
TRUNCATE loyalty.ledger_entry;

-- kinds and statuses are domains (checked with rules prepared once per
-- session, not per statement): an unknown one is refused, naming the rule
INSERT INTO loyalty.ledger_entry (customer_id, account, lot_id, operation_id, kind, points, at)
SELECT customer_id, account, lot_id, operation_id, 'gift', 1, now()
  FROM loyalty.ledger_entry ORDER BY id LIMIT 1;
INSERT INTO loyalty.event (customer_id, kind) VALUES (1, 'points_gifted');
UPDATE loyalty.operation SET kind = 'gift' WHERE operation_id = 'A-1';
INSERT INTO loyalty.coupon (code, kind, percent) VALUES ('ABCD', 'bogus', 10);
INSERT INTO loyalty.coupon (code, kind, percent, status) VALUES ('ABCD', 'promo', 10, 'lost');
SELECT c.relname AS "table", a.attname AS "column", format_type(a.atttypid, NULL) AS type,
       k.conname AS rule
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
  JOIN pg_constraint k ON k.contypid = a.atttypid
 WHERE c.relnamespace = 'loyalty'::regnamespace AND c.relkind = 'r'
   AND a.atttypid IN ('loyalty.entry_kind'::regtype, 'loyalty.event_kind'::regtype,
                      'loyalty.operation_kind'::regtype, 'loyalty.coupon_kind'::regtype,
                      'loyalty.coupon_status'::regtype)
 ORDER BY 1, 2;

-- an account's code names it in the ledger, purchases and events: it cannot
-- change while lots hold it (its display name can); an unused one can
UPDATE loyalty.account_type SET code = 'bonus' WHERE code = 'main';
UPDATE loyalty.account_type SET name = 'Bonus points' WHERE code = 'main';
BEGIN;
INSERT INTO loyalty.account_type (code, name, redeem_share) VALUES ('spare', 'Spare', 0.5);
UPDATE loyalty.account_type SET code = 'reserve' WHERE code = 'spare';
SELECT code, name FROM loyalty.account_type ORDER BY code;
ROLLBACK;
SELECT count(*) AS problems FROM loyalty.verify_ledger();

-- history, newest first
-- (an expiry's operation id names its transaction: shown as ~expire-<n>)
SELECT kind, account, points, regexp_replace(operation_id, '^~expire-[0-9]+$', '~expire-<n>') AS operation_id
  FROM loyalty.history('+79123456789') ORDER BY id;

-- merging moves open lots with their expiry
SELECT loyalty.merge_customers(1, 2);
SELECT customer_id, account, amount, remaining, available_at > now() AS pending
  FROM loyalty.lot WHERE remaining <> 0 ORDER BY id;
SELECT account, available, pending FROM loyalty.balance('+79221234567') ORDER BY account;

-- maintenance: availability announcements and expiry reminders, once each
SELECT loyalty.run_maintenance(now() + interval '2 days') - 'as_of';
SELECT loyalty.run_maintenance(now() + interval '2 days') - 'as_of';
SELECT loyalty.run_maintenance(now() + interval '360 days') - 'as_of';
SELECT customer_id, kind, payload - 'available_at' - 'expires_at' - 'at' - 'operation_id' AS payload
  FROM loyalty.event ORDER BY id;

-- events are handed over once
SELECT count(*) AS taken FROM loyalty.take_events(3);
SELECT count(*) AS taken FROM loyalty.take_events(100);
SELECT count(*) AS taken FROM loyalty.take_events(100);

-- every balance equals its entries
SELECT * FROM loyalty.verify_ledger();

-- the ledger's references are checked by verify_ledger (entries carry no
-- foreign keys: they are written only with their lot and operation; lots
-- none to their operation)
BEGIN;
INSERT INTO loyalty.ledger_entry (customer_id, account, lot_id, operation_id, kind, points, at)
SELECT customer_id, account, 999999, operation_id, 'adjust', 1, now()
  FROM loyalty.ledger_entry ORDER BY id LIMIT 1;
INSERT INTO loyalty.ledger_entry (customer_id, account, lot_id, operation_id, kind, points, at)
SELECT customer_id, account, lot_id, 'no-such-operation', 'adjust', 1, now()
  FROM loyalty.ledger_entry ORDER BY id LIMIT 1;
UPDATE loyalty.lot SET operation_id = 'no-such-lot-operation'
 WHERE id = (SELECT min(id) FROM loyalty.lot);
SELECT account, lot_id, regexp_replace(problem, 'entry [0-9]+', 'entry N') AS problem
  FROM loyalty.verify_ledger() ORDER BY problem;
ROLLBACK;
SELECT count(*) AS problems FROM loyalty.verify_ledger();

-- expiry walks due lots in (expires_at, id) order, a batch of 5,000 at a
-- time: 25,000 lots sharing one expiry moment (a promotion's end) are
-- each read by one batch, not by every batch until theirs (which the
-- index on expires_at alone did: every batch sorted all the tied lots
-- still due)
BEGIN;
INSERT INTO loyalty.lot (customer_id, account, amount, remaining, earned_at, available_at,
                         expires_at, operation_id)
SELECT (SELECT min(id) FROM loyalty.customer), 'main', 1, 1, '2030-01-01', '2030-01-01',
       '2030-02-01', 'promo-grant'
  FROM generate_series(1, 25000);
-- (the counters are read before and after: PostgreSQL 15 may still hold
-- earlier transactions' counts, not yet flushed, in the "xact" view)
SELECT idx_tup_fetch AS fetched_before FROM pg_stat_xact_user_tables
 WHERE relid = 'loyalty.lot'::regclass \gset
SELECT loyalty.expire_points('2030-03-01') >= 25000 AS expired_them;
-- (a lot is fetched through an index twice: by its batch, then by its
-- update; with the index on expires_at alone it was four times here)
SELECT idx_tup_fetch - :fetched_before < 3 * 25000 AS each_fetched_once
  FROM pg_stat_xact_user_tables WHERE relid = 'loyalty.lot'::regclass;
ROLLBACK;

-- a batch reads its own lots only, with the lot table analyzed: the
-- batch that joined its locked lots back to the table was planned for a
-- guessed 10% of the due lots and chose a merge join over the whole
-- primary key, so every batch of a chain's expiry read all 3 million lots
-- (1M due lots took 190 s; 27 s since the batch empties its lots by id)
BEGIN;
INSERT INTO loyalty.lot (customer_id, account, amount, remaining, earned_at, available_at,
                         expires_at, operation_id)
SELECT (SELECT min(id) FROM loyalty.customer), 'main', 1, 1, '2030-01-01', '2030-01-01',
       '2030-02-01'::timestamptz + g * interval '1 second', 'promo-grant'
  FROM generate_series(1, 50000) g;
ANALYZE loyalty.lot;
SELECT idx_tup_fetch + seq_tup_read AS read_before FROM pg_stat_xact_user_tables
 WHERE relid = 'loyalty.lot'::regclass \gset
SELECT lots_seen FROM loyalty.expire_batch('2030-03-01', 100);
SELECT idx_tup_fetch + seq_tup_read - :read_before < 3 * 100 AS batch_reads_its_lots_only
  FROM pg_stat_xact_user_tables WHERE relid = 'loyalty.lot'::regclass;
ROLLBACK;

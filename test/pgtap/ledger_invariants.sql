-- test/pgtap/ledger_invariants.sql: the ledger stays consistent whatever
-- happens to it.  Random scenarios (seeded, so reproducible) of grants,
-- debits (some refused), expiry, merges and replays; after each one every
-- lot equals its entries (verify_ledger), balances equal entries per
-- account, and nothing is negative.
BEGIN;
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS loyalty CASCADE;
CREATE EXTENSION loyalty;
RESET client_min_messages;
SELECT setseed(0.42);

SELECT plan(17);

INSERT INTO loyalty.account_type (code, name, redeem_share, lifetime, redeem_order) VALUES
    ('main', 'Bonus', 0.9, '1 year', 100), ('promo', 'Promo', 0.3, NULL, 10);
SELECT count(loyalty.register('+7912' || lpad(i::text, 7, '0'))) FROM generate_series(1, 20) AS i;

-- balance per customer and account from lots, and from entries
CREATE TEMP VIEW lot_sums AS
    SELECT customer_id, account, sum(remaining) AS points FROM loyalty.lot GROUP BY 1, 2;
CREATE TEMP VIEW entry_sums AS
    SELECT customer_id, account, sum(points) AS points FROM loyalty.ledger_entry GROUP BY 1, 2;

-- scenario 1: a thousand grants with random expiry
DO $$
BEGIN
    FOR i IN 1..1000 LOOP
        PERFORM loyalty.adjust(jsonb_build_object(
            'operation_id', 'g' || i,
            'customer', 1 + floor(random() * 20)::int,
            'account', (ARRAY['main', 'promo'])[1 + floor(random() * 2)::int],
            'points', 1 + floor(random() * 1000)::int,
            'expires_at', now() + (1 + floor(random() * 90)::int) * interval '1 day',
            'reason', 'tap'));
    END LOOP;
END
$$;
SELECT is((SELECT count(*) FROM loyalty.lot), 1000::bigint, 'grants: one lot each');
SELECT is_empty('SELECT * FROM loyalty.verify_ledger()', 'grants: every lot equals its entries');
SELECT set_eq('SELECT * FROM lot_sums', 'SELECT * FROM entry_sums', 'grants: balances equal entries');

-- scenario 2: a thousand debits, some asking for more than there is (refused whole)
CREATE TEMP TABLE refused (n int);
DO $$
DECLARE
    refused_count int := 0;
BEGIN
    FOR i IN 1..1000 LOOP
        BEGIN
            PERFORM loyalty.adjust(jsonb_build_object(
                'operation_id', 'd' || i,
                'customer', 1 + floor(random() * 20)::int,
                'account', (ARRAY['main', 'promo'])[1 + floor(random() * 2)::int],
                'points', -(1 + floor(random() * 3000)::int),
                'reason', 'tap'));
        EXCEPTION WHEN SQLSTATE 'LY004' THEN
            refused_count := refused_count + 1;
        END;
    END LOOP;
    INSERT INTO refused VALUES (refused_count);
END
$$;
SELECT cmp_ok((SELECT n FROM refused), '>', 0, 'debits: some were refused for lack of points');
SELECT cmp_ok((SELECT count(DISTINCT operation_id) FROM loyalty.ledger_entry WHERE kind = 'adjust' AND points < 0),
              '=', 1000 - (SELECT n FROM refused)::bigint, 'debits: a refused debit left no entry');
SELECT is_empty('SELECT * FROM loyalty.verify_ledger()', 'debits: every lot equals its entries');
SELECT set_eq('SELECT * FROM lot_sums', 'SELECT * FROM entry_sums', 'debits: balances equal entries');
SELECT is_empty('SELECT * FROM loyalty.lot WHERE remaining < 0', 'debits: no lot below zero');

-- FEFO: no debit left untouched a lot that expired earlier than the latest
-- lot it took from and still held points at that moment (its entries before
-- the debit's first entry add up to more than zero)
SELECT is_empty($$
    WITH debit AS (
        SELECT e.operation_id, e.customer_id, e.account, min(e.id) AS first_entry,
               max(l.expires_at) AS latest
          FROM loyalty.ledger_entry e JOIN loyalty.lot l ON l.id = e.lot_id
         WHERE e.kind = 'adjust' AND e.points < 0
         GROUP BY 1, 2, 3)
    SELECT d.operation_id, o.id AS skipped_lot
      FROM debit d
      JOIN loyalty.lot o ON o.customer_id = d.customer_id AND o.account = d.account
                        AND o.expires_at < d.latest
     WHERE NOT EXISTS (SELECT 1 FROM loyalty.ledger_entry x
                        WHERE x.operation_id = d.operation_id AND x.lot_id = o.id)
       AND (SELECT coalesce(sum(x.points), 0) FROM loyalty.ledger_entry x
             WHERE x.lot_id = o.id AND x.id < d.first_entry) > 0
$$, 'debits: spent first-expiring first');
SELECT cmp_ok((SELECT count(*) FROM (SELECT operation_id FROM loyalty.ledger_entry
                                      WHERE kind = 'adjust' AND points < 0
                                      GROUP BY 1 HAVING count(*) > 1) AS multi),
              '>', 0::bigint, 'debits: some debits took from several lots');

-- scenario 3: more grants, then expiry in 45 days
DO $$
BEGIN
    FOR i IN 1..200 LOOP
        PERFORM loyalty.adjust(jsonb_build_object(
            'operation_id', 'h' || i, 'customer', 1 + floor(random() * 20)::int,
            'account', 'main', 'points', 1 + floor(random() * 100)::int,
            'expires_at', now() + (1 + floor(random() * 90)::int) * interval '1 day',
            'reason', 'tap'));
    END LOOP;
END
$$;
SELECT cmp_ok(loyalty.expire_points(now() + interval '45 days'), '>', 0::bigint, 'expiry: points expired');
SELECT is_empty($$SELECT * FROM loyalty.lot WHERE remaining > 0 AND expires_at <= now() + interval '45 days'$$,
                'expiry: nothing due is left');
SELECT is_empty('SELECT * FROM loyalty.verify_ledger()', 'expiry: every lot equals its entries');
SELECT set_eq('SELECT * FROM lot_sums', 'SELECT * FROM entry_sums', 'expiry: balances equal entries');

-- scenario 4: merges move balances without changing the total
CREATE TEMP TABLE before_merge AS SELECT account, sum(remaining) AS points FROM loyalty.lot GROUP BY 1;
SELECT count(loyalty.merge_customers(i, i + 10)) FROM generate_series(1, 5) AS i;
SELECT set_eq('SELECT account, sum(remaining) FROM loyalty.lot GROUP BY 1', 'SELECT * FROM before_merge',
              'merges: the total per account is unchanged');
SELECT is_empty('SELECT * FROM loyalty.verify_ledger()', 'merges: every lot equals its entries');

-- scenario 5: replaying every request changes nothing
CREATE TEMP TABLE before_replay AS SELECT count(*) AS n FROM loyalty.ledger_entry;
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT request FROM loyalty.operation WHERE kind = 'adjust' LOOP
        PERFORM loyalty.adjust(r.request);
    END LOOP;
END
$$;
SELECT is((SELECT count(*) FROM loyalty.ledger_entry), (SELECT n FROM before_replay),
          'replays: no new entries');

SELECT * FROM finish();
ROLLBACK;

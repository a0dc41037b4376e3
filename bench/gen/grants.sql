-- bench/gen/grants.sql: point grants lo .. hi, in chunks.
--
--   psql -v lo=1 -v hi=1500000 -v customers=3000000 -v due_lots=1000000 -f bench/gen/grants.sql
--
-- A bulk path equal to loyalty.adjust grants (src/ledger_api.c,
-- ledger_accrue_kind): per grant one 'adjust' operation holding the request
-- and the response adjust would store, one lot available at once, one
-- 'adjust' ledger entry and one points_earned event.  Grant i goes to
-- customer (i - 1) % customers + 1 and its points depend on the customer
-- only, so the balance adjust reports is points x the customer's grants so
-- far.  Grants 1 .. due_lots expire within 30 days (the expire_points
-- benchmark expires them at as_of = now + 31 days); later ones in 2 to 12
-- months.
\set ON_ERROR_STOP 1
\set QUIET 1
SET client_min_messages = notice;
SELECT set_config('bench.lo', :'lo', false) AS lo, set_config('bench.hi', :'hi', false) AS hi,
       set_config('bench.customers', :'customers', false) AS customers,
       set_config('bench.due_lots', :'due_lots', false) AS due_lots \gset

DO $$
DECLARE
    t timestamptz := clock_timestamp();
    ncust bigint := current_setting('bench.customers')::bigint;
    due bigint := current_setting('bench.due_lots')::bigint;
    first bigint := current_setting('bench.lo')::bigint;
    last bigint := current_setting('bench.hi')::bigint;
    chunk bigint := 100000;
    lo bigint := first;
    hi bigint;
BEGIN
    WHILE lo <= last LOOP
        hi := least(last, lo + chunk - 1);
        WITH g AS (
            SELECT i, c.cid, 100 + c.cid * 37 % 900 AS points, (i - 1) / ncust + 1 AS nth,
                   now() + CASE WHEN i <= due
                                THEN interval '1 day' + (i % 29) * interval '1 day'
                                     + (i % 86400) * interval '1 second'
                                ELSE interval '60 days' + (i % 300) * interval '1 day' END AS expires_at,
                   'gen-grant-' || i AS op
              FROM generate_series(lo, hi) AS i,
                   LATERAL (SELECT (i - 1) % ncust + 1 AS cid) c
        ), ops AS (
            INSERT INTO loyalty.operation (operation_id, kind, customer_id, request, response)
            SELECT g.op, 'adjust', g.cid,
                   jsonb_build_object('operation_id', g.op, 'customer', g.cid, 'account', 'main',
                                      'points', g.points, 'expires_at', to_json(g.expires_at),
                                      'reason', 'bench: generated balance'),
                   jsonb_build_object('operation_id', g.op, 'customer', g.cid, 'account', 'main',
                                      'points', g.points, 'reason', 'bench: generated balance',
                                      'balance', jsonb_build_object('available', g.points * g.nth,
                                                                    'pending', 0))
              FROM g
        ), lots AS (
            INSERT INTO loyalty.lot (customer_id, account, amount, remaining, earned_at,
                                     available_at, expires_at, operation_id, announced_at)
            SELECT g.cid, 'main', g.points, g.points, now(), now(), g.expires_at, g.op, now()
              FROM g
            RETURNING id, customer_id, amount, expires_at, operation_id
        ), entries AS (
            INSERT INTO loyalty.ledger_entry (customer_id, account, lot_id, operation_id, kind, points, at)
            SELECT l.customer_id, 'main', l.id, l.operation_id, 'adjust', l.amount, now()
              FROM lots l
        )
        INSERT INTO loyalty.event (customer_id, kind, payload)
        SELECT l.customer_id, 'points_earned',
               jsonb_build_object('account', 'main', 'points', l.amount, 'operation_id', l.operation_id,
                                  'available_at', now(), 'expires_at', l.expires_at)
          FROM lots l;
        COMMIT;
        -- a progress line every 500,000 rows and at the end
        IF (hi - first + 1) % 500000 = 0 OR hi = last THEN
            PERFORM bench.step(format('point grants %s..%s', first, hi), hi - first + 1, t);
        END IF;
        lo := hi + 1;
    END LOOP;
END
$$;

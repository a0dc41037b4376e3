/*
 * loyalty--0.1--0.2.sql: the points ledger.
 *
 * Operations (idempotency by operation_id), point lots and the append-only
 * ledger, balances, manual adjustments, history, expiry, maintenance and its
 * pg_cron registration.
 */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION loyalty UPDATE TO '0.2'" to load this file. \quit

-- ---------------------------------------------------------------------------
-- Operations: every writing call, with its request and response, so that a
-- replay returns the stored response and support can answer "what happened
-- to this check".
-- ---------------------------------------------------------------------------
CREATE TABLE loyalty.operation (
    operation_id text PRIMARY KEY
                 CONSTRAINT operation_id_format CHECK (operation_id <> '' AND length(operation_id) <= 200),
    kind         text NOT NULL
                 CONSTRAINT operation_kind_known
                 CHECK (kind IN ('purchase', 'refund', 'adjust', 'expire', 'merge')),
    customer_id  bigint REFERENCES loyalty.customer (id),
    request      jsonb NOT NULL,
    response     jsonb,
    created_at   timestamptz NOT NULL DEFAULT pg_catalog.now()
);
CREATE INDEX operation_customer_idx ON loyalty.operation (customer_id, created_at);
COMMENT ON TABLE loyalty.operation IS
    'Every writing call by operation_id: its request and response (replays return the response)';

-- ---------------------------------------------------------------------------
-- Lots and ledger entries (SPEC §8).  A lot holds points of one account of
-- one customer; a debt lot (negative amount) holds what a refund could not
-- take back, paid off first by later accruals.  Every change of a lot's
-- remaining is an entry, so remaining = sum of the lot's entries.
-- ---------------------------------------------------------------------------
CREATE SEQUENCE loyalty.lot_id_seq;
COMMENT ON SEQUENCE loyalty.lot_id_seq IS 'Lot ids';

CREATE TABLE loyalty.lot (
    id           bigint PRIMARY KEY DEFAULT pg_catalog.nextval('loyalty.lot_id_seq'),
    customer_id  bigint NOT NULL REFERENCES loyalty.customer (id),
    account      text NOT NULL REFERENCES loyalty.account_type (code) ON UPDATE CASCADE,
    amount       numeric NOT NULL,
    remaining    numeric NOT NULL,
    earned_at    timestamptz NOT NULL,
    available_at timestamptz NOT NULL,
    expires_at   timestamptz,
    operation_id text NOT NULL REFERENCES loyalty.operation (operation_id),
    announced_at timestamptz,
    reminded_at  timestamptz,
    CONSTRAINT lot_remaining_within_amount CHECK (
        amount > 0 AND remaining >= 0 AND remaining <= amount
        OR amount < 0 AND remaining <= 0 AND remaining >= amount),
    CONSTRAINT lot_points_two_decimals CHECK (amount = pg_catalog.round(amount, 2)
                                              AND remaining = pg_catalog.round(remaining, 2)),
    CONSTRAINT lot_expires_after_earned CHECK (expires_at > earned_at),
    CONSTRAINT lot_debt_never_expires CHECK (amount > 0 OR expires_at IS NULL)
);
ALTER SEQUENCE loyalty.lot_id_seq OWNED BY loyalty.lot.id;
CREATE INDEX lot_customer_open_idx ON loyalty.lot (customer_id, account) WHERE remaining <> 0;
CREATE INDEX lot_due_idx ON loyalty.lot (expires_at) WHERE remaining > 0;
CREATE INDEX lot_operation_idx ON loyalty.lot (operation_id);
CREATE INDEX lot_unannounced_idx ON loyalty.lot (available_at)
    WHERE announced_at IS NULL AND amount > 0;
COMMENT ON COLUMN loyalty.lot.announced_at IS
    'When the points_available event was written (set at once for lots available immediately)';
COMMENT ON COLUMN loyalty.lot.reminded_at IS
    'When the points_expiring reminder was written';
COMMENT ON TABLE loyalty.lot IS
    'Points of one account of one customer: earned, available from, expiring at, still remaining';

CREATE SEQUENCE loyalty.ledger_entry_id_seq;
COMMENT ON SEQUENCE loyalty.ledger_entry_id_seq IS 'Ledger entry ids';

CREATE TABLE loyalty.ledger_entry (
    id               bigint PRIMARY KEY DEFAULT pg_catalog.nextval('loyalty.ledger_entry_id_seq'),
    customer_id      bigint NOT NULL,
    account          text NOT NULL,
    lot_id           bigint NOT NULL REFERENCES loyalty.lot (id),
    operation_id     text NOT NULL REFERENCES loyalty.operation (operation_id),
    ref_operation_id text REFERENCES loyalty.operation (operation_id),
    kind             text NOT NULL
                     CONSTRAINT ledger_entry_kind_known
                     CHECK (kind IN ('earn', 'spend', 'expire', 'reverse', 'return', 'debt', 'repay', 'adjust', 'merge')),
    points           numeric NOT NULL
                     CONSTRAINT ledger_entry_points_nonzero CHECK (points <> 0),
    at               timestamptz NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT pg_catalog.now()
);
ALTER SEQUENCE loyalty.ledger_entry_id_seq OWNED BY loyalty.ledger_entry.id;
CREATE INDEX ledger_entry_customer_idx ON loyalty.ledger_entry (customer_id, id);
CREATE INDEX ledger_entry_lot_idx ON loyalty.ledger_entry (lot_id);
CREATE INDEX ledger_entry_ref_idx ON loyalty.ledger_entry (ref_operation_id, account)
    WHERE ref_operation_id IS NOT NULL;
CREATE INDEX ledger_entry_operation_idx ON loyalty.ledger_entry (operation_id, account);
COMMENT ON TABLE loyalty.ledger_entry IS
    'Append-only: every movement of points (earn, spend, expire, reverse, return, debt, repay, adjust)';
COMMENT ON COLUMN loyalty.ledger_entry.ref_operation_id IS
    'For a refund''s entries: the purchase whose points are reversed or returned';

CREATE FUNCTION loyalty.ledger_entry_append_only() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    RAISE EXCEPTION 'ledger entries are append-only'
        USING ERRCODE = 'object_not_in_prerequisite_state',
              DETAIL = format('%s on loyalty.ledger_entry is refused.', TG_OP),
              HINT = 'Correct a balance with loyalty.adjust, which appends an entry.';
END
$$;
COMMENT ON FUNCTION loyalty.ledger_entry_append_only() IS
    'Refuses UPDATE, DELETE and TRUNCATE of ledger entries';

CREATE TRIGGER ledger_entry_append_only BEFORE UPDATE OR DELETE ON loyalty.ledger_entry
    FOR EACH ROW EXECUTE FUNCTION loyalty.ledger_entry_append_only();
CREATE TRIGGER ledger_entry_no_truncate BEFORE TRUNCATE ON loyalty.ledger_entry
    FOR EACH STATEMENT EXECUTE FUNCTION loyalty.ledger_entry_append_only();

-- ---------------------------------------------------------------------------
-- Events (SPEC §11): an outbox the messaging side takes batches from.
-- ---------------------------------------------------------------------------
CREATE SEQUENCE loyalty.event_id_seq;
COMMENT ON SEQUENCE loyalty.event_id_seq IS 'Event ids';

CREATE TABLE loyalty.event (
    id          bigint PRIMARY KEY DEFAULT pg_catalog.nextval('loyalty.event_id_seq'),
    customer_id bigint NOT NULL REFERENCES loyalty.customer (id),
    kind        text NOT NULL
                CONSTRAINT event_kind_known CHECK (kind IN (
                    'points_earned', 'points_available', 'points_expiring', 'points_expired',
                    'tier_changed', 'coupon_issued')),
    payload     jsonb NOT NULL DEFAULT '{}',
    message     text,
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    taken_at    timestamptz
);
ALTER SEQUENCE loyalty.event_id_seq OWNED BY loyalty.event.id;
CREATE INDEX event_untaken_idx ON loyalty.event (id) WHERE taken_at IS NULL;
COMMENT ON TABLE loyalty.event IS
    'Outbox of customer events (points earned, available, expiring, expired; tier changed; coupon issued)';

-- ---------------------------------------------------------------------------
-- The C primitives' SQL faces
-- ---------------------------------------------------------------------------
CREATE FUNCTION loyalty.adjust(request jsonb) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'loyalty_adjust'
    LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION loyalty.adjust(jsonb) IS
    'Manual grant (points > 0) or debit (points < 0) of a customer''s account; idempotent by operation_id';

CREATE FUNCTION loyalty.expire_batch(
        as_of timestamptz, max_lots int,
        after_expires_at timestamptz DEFAULT NULL, after_id bigint DEFAULT NULL,
        OUT lots_seen int, OUT points bigint,
        OUT last_expires_at timestamptz, OUT last_id bigint)
    AS 'MODULE_PATHNAME', 'loyalty_expire_batch'
    LANGUAGE C VOLATILE PARALLEL UNSAFE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION loyalty.expire_batch(timestamptz, int, timestamptz, bigint) IS
    'One expiry batch after the keyset (after_expires_at, after_id): points in hundredths; lots a check is spending from are left for the next run';

CREATE FUNCTION loyalty.expire_points(as_of timestamptz DEFAULT pg_catalog.now()) RETURNS bigint
    LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    b     record;
    after_at timestamptz;
    after_id bigint;
    total bigint := 0;
BEGIN
    LOOP
        SELECT * INTO b FROM loyalty.expire_batch(as_of, 5000, after_at, after_id);
        EXIT WHEN b.lots_seen = 0;
        total := total + b.points;
        after_at := b.last_expires_at;
        after_id := b.last_id;
    END LOOP;
    RETURN total / 100;
END
$$;
COMMENT ON FUNCTION loyalty.expire_points(timestamptz) IS
    'Expires every lot due at as_of in one transaction (lots a check is spending from are left, never waited for); returns whole points expired';

-- balance as of a moment: lots count while available_at <= at < expires_at
CREATE FUNCTION loyalty.balance(customer text, at timestamptz DEFAULT pg_catalog.now())
    RETURNS TABLE (account text, available numeric, pending numeric, expiring numeric,
                   next_expiry timestamptz)
    LANGUAGE plpgsql STABLE STRICT PARALLEL UNSAFE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    cid bigint := loyalty.find_customer(customer);
BEGIN
    IF cid IS NULL THEN
        RAISE EXCEPTION 'customer "%" not found', customer USING ERRCODE = 'LY001';
    END IF;
    RETURN QUERY
    SELECT t.code,
           coalesce(sum(l.remaining) FILTER (
               WHERE l.available_at <= at AND (l.expires_at IS NULL OR l.expires_at > at)), 0),
           coalesce(sum(l.remaining) FILTER (WHERE l.available_at > at AND l.remaining > 0), 0),
           coalesce(sum(l.remaining) FILTER (
               WHERE l.remaining > 0 AND l.available_at <= at
                 AND l.expires_at > at AND l.expires_at <= at + interval '30 days'), 0),
           min(l.expires_at) FILTER (
               WHERE l.remaining > 0 AND l.available_at <= at AND l.expires_at > at)
      FROM loyalty.account_type t
      LEFT JOIN loyalty.lot l
        ON l.account = t.code AND l.customer_id = cid AND l.remaining <> 0
     GROUP BY t.code, t.redeem_order
     ORDER BY t.redeem_order, t.code;
END
$$;
COMMENT ON FUNCTION loyalty.balance(text, timestamptz) IS
    'Per account: points available at "at", pending (not yet available), expiring within 30 days, next expiry';

CREATE FUNCTION loyalty.verify_ledger()
    RETURNS TABLE (customer_id bigint, account text, lot_id bigint, problem text)
    LANGUAGE sql STABLE PARALLEL SAFE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
    -- every lot's remaining equals the sum of its entries
    SELECT l.customer_id, l.account, l.id,
           format('remaining %s but entries add up to %s', l.remaining, coalesce(e.total, 0))
      FROM loyalty.lot l
      LEFT JOIN (SELECT e.lot_id, sum(e.points) AS total
                   FROM loyalty.ledger_entry e GROUP BY e.lot_id) e ON e.lot_id = l.id
     WHERE l.remaining IS DISTINCT FROM coalesce(e.total, 0)
    UNION ALL
    -- entries belong to their lot's customer and account
    SELECT e.customer_id, e.account, e.lot_id,
           format('entry %s names customer %s account %s, its lot belongs to customer %s account %s',
                  e.id, e.customer_id, e.account, l.customer_id, l.account)
      FROM loyalty.ledger_entry e JOIN loyalty.lot l ON l.id = e.lot_id
     WHERE e.customer_id <> l.customer_id OR e.account <> l.account
    UNION ALL
    -- a debt is only owed while nothing positive is held
    SELECT d.customer_id, d.account, d.id, 'debt held next to positive lots'
      FROM loyalty.lot d
     WHERE d.remaining < 0
       AND EXISTS (SELECT 1 FROM loyalty.lot p
                    WHERE p.customer_id = d.customer_id AND p.account = d.account
                      AND p.remaining > 0)
$$;
COMMENT ON FUNCTION loyalty.verify_ledger() IS
    'Rows only where the ledger is inconsistent: empty when every balance equals its entries';

-- ---------------------------------------------------------------------------
-- Maintenance (SPEC §9)
-- ---------------------------------------------------------------------------
CREATE FUNCTION loyalty.announce_lots(as_of timestamptz) RETURNS jsonb
    LANGUAGE sql VOLATILE STRICT PARALLEL UNSAFE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
    WITH available AS (
        -- delayed points that became available
        UPDATE loyalty.lot l SET announced_at = as_of
         WHERE l.announced_at IS NULL AND l.amount > 0 AND l.available_at <= as_of
        RETURNING l.customer_id, l.account, l.remaining, l.available_at
    ), available_events AS (
        INSERT INTO loyalty.event (customer_id, kind, payload)
        SELECT a.customer_id, 'points_available',
               jsonb_build_object('account', a.account, 'points', sum(a.remaining),
                                  'available_at', max(a.available_at))
          FROM available a WHERE a.remaining > 0
         GROUP BY a.customer_id, a.account
        RETURNING 1
    ), expiring AS (
        -- a reminder 7 days before points expire
        UPDATE loyalty.lot l SET reminded_at = as_of
         WHERE l.remaining > 0 AND l.reminded_at IS NULL
           AND l.expires_at > as_of AND l.expires_at <= as_of + interval '7 days'
           AND l.available_at <= as_of
        RETURNING l.customer_id, l.account, l.remaining, l.expires_at
    ), expiring_events AS (
        INSERT INTO loyalty.event (customer_id, kind, payload)
        SELECT e.customer_id, 'points_expiring',
               jsonb_build_object('account', e.account, 'points', sum(e.remaining),
                                  'expires_at', min(e.expires_at))
          FROM expiring e
         GROUP BY e.customer_id, e.account
        RETURNING 1
    )
    SELECT jsonb_build_object(
        'available_events', (SELECT count(*) FROM available_events),
        'expiring_reminders', (SELECT count(*) FROM expiring_events))
$$;
COMMENT ON FUNCTION loyalty.announce_lots(timestamptz) IS
    'Writes points_available events for delayed lots now available and points_expiring reminders 7 days ahead';

CREATE FUNCTION loyalty.run_maintenance(as_of timestamptz DEFAULT pg_catalog.now()) RETURNS jsonb
    LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    expired bigint;
BEGIN
    IF pg_is_in_recovery() THEN
        RETURN jsonb_build_object('skipped', 'standby');
    END IF;
    -- the same key as run_maintenance_proc: one run at a time
    IF NOT pg_try_advisory_xact_lock(19545, 1) THEN
        RETURN jsonb_build_object('skipped', 'another maintenance run is in progress');
    END IF;
    expired := loyalty.expire_points(as_of);
    RETURN jsonb_build_object('as_of', as_of, 'expired_points', expired)
           || loyalty.announce_lots(as_of);
END
$$;
COMMENT ON FUNCTION loyalty.run_maintenance(timestamptz) IS
    'Expiry, availability events and expiry reminders in one transaction; one run at a time; nothing on a standby';

CREATE PROCEDURE loyalty.run_maintenance_proc(as_of timestamptz DEFAULT NULL, batch_lots int DEFAULT 5000)
    LANGUAGE plpgsql
    AS $$
DECLARE
    t        timestamptz := coalesce(as_of, pg_catalog.now());
    b        record;
    after_at timestamptz;
    after_id bigint;
    expired  bigint := 0;
    summary  jsonb;
BEGIN
    IF pg_catalog.pg_is_in_recovery() THEN
        RAISE NOTICE 'loyalty maintenance: standby, nothing to do';
        RETURN;
    END IF;
    IF NOT pg_catalog.pg_try_advisory_lock(19545, 1) THEN
        RAISE NOTICE 'loyalty maintenance: another run is in progress';
        RETURN;
    END IF;
    -- expiry in batches, each committed, so that no check waits for more than one batch
    LOOP
        SELECT * INTO b FROM loyalty.expire_batch(t, batch_lots, after_at, after_id);
        EXIT WHEN b.lots_seen = 0;
        expired := expired + b.points;
        after_at := b.last_expires_at;
        after_id := b.last_id;
        COMMIT;
    END LOOP;
    summary := loyalty.announce_lots(t);
    COMMIT;
    PERFORM pg_catalog.pg_advisory_unlock(19545, 1);
    RAISE NOTICE 'loyalty maintenance: expired % points, %', expired / 100, summary;
END
$$;
COMMENT ON PROCEDURE loyalty.run_maintenance_proc(timestamptz, int) IS
    'run_maintenance for pg_cron at scale: commits after every expiry batch (CALL loyalty.run_maintenance_proc())';

CREATE FUNCTION loyalty.schedule_maintenance(schedule text DEFAULT '*/15 * * * *') RETURNS bigint
    LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    cron_db text := current_setting('cron.database_name', true);
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_cron') THEN
        RAISE EXCEPTION 'pg_cron is not installed in database "%"', current_database()
            USING ERRCODE = 'feature_not_supported',
                  DETAIL = CASE WHEN cron_db IS NULL
                                THEN 'pg_cron is not loaded: it needs shared_preload_libraries = ''pg_cron''.'
                                ELSE format('pg_cron runs in database "%s".', cron_db) END,
                  HINT = CASE WHEN cron_db IS NOT NULL AND cron_db <> current_database()
                              THEN format('In database "%s" run: SELECT cron.schedule_in_database(''loyalty-maintenance'', %L, ''CALL loyalty.run_maintenance_proc()'', %L);',
                                          cron_db, schedule, current_database())
                              ELSE 'Run CREATE EXTENSION pg_cron first.' END;
    END IF;
    -- cron.schedule with a job name replaces that job: calling again is idempotent
    RETURN cron.schedule('loyalty-maintenance', schedule, 'CALL loyalty.run_maintenance_proc()');
END
$$;
COMMENT ON FUNCTION loyalty.schedule_maintenance(text) IS
    'Registers (idempotently) the pg_cron job loyalty-maintenance running CALL loyalty.run_maintenance_proc()';

-- ---------------------------------------------------------------------------
-- Events: the messaging side takes each event once, even with several takers
-- ---------------------------------------------------------------------------
CREATE FUNCTION loyalty.take_events(max int) RETURNS SETOF loyalty.event
    LANGUAGE sql VOLATILE STRICT PARALLEL UNSAFE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
    UPDATE loyalty.event e SET taken_at = now()
     WHERE e.id IN (SELECT t.id FROM loyalty.event t WHERE t.taken_at IS NULL
                     ORDER BY t.id LIMIT max FOR UPDATE SKIP LOCKED)
    RETURNING e.*
$$;
COMMENT ON FUNCTION loyalty.take_events(int) IS
    'Hands over up to max untaken events, oldest first, each exactly once (SKIP LOCKED)';

-- ---------------------------------------------------------------------------
-- Merging now moves balances: open lots of the absorbed customer are
-- transferred (same earned/available/expiry) through 'merge' entries, so the
-- ledger stays append-only; a debt is paid from the survivor's lots.
-- ---------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION loyalty.merge_customers(keep bigint, absorb bigint) RETURNS jsonb
    LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    k      loyalty.customer;
    a      loyalty.customer;
    moved  int;
    lots   int := 0;
    op     text := format('merge-%s-%s', keep, absorb);
    l      record;
    p      record;
    owed   numeric;
    x      numeric;
    nl     bigint;
BEGIN
    IF keep = absorb THEN
        RAISE EXCEPTION 'cannot merge customer % into itself', keep
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- lock both in id order so that concurrent merges cannot deadlock
    PERFORM 1 FROM loyalty.customer c WHERE c.id IN (keep, absorb) ORDER BY c.id FOR UPDATE;
    SELECT * INTO k FROM loyalty.customer c WHERE c.id = keep;
    SELECT * INTO a FROM loyalty.customer c WHERE c.id = absorb;
    IF k.id IS NULL OR a.id IS NULL THEN
        RAISE EXCEPTION 'customer % not found', CASE WHEN k.id IS NULL THEN keep ELSE absorb END
            USING ERRCODE = 'LY001';
    END IF;
    IF k.status = 'merged' THEN
        RAISE EXCEPTION 'customer % was merged into customer %', keep, k.merged_into
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = format('Merge into customer %s instead.', k.merged_into);
    END IF;
    IF a.status = 'merged' THEN
        IF a.merged_into = keep THEN    -- done before: nothing to do
            RETURN jsonb_build_object('keep', keep, 'absorb', absorb, 'cards', 0, 'lots', 0,
                                      'already_merged', true);
        END IF;
        RAISE EXCEPTION 'customer % was merged into customer %', absorb, a.merged_into
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    UPDATE loyalty.card c SET customer_id = keep WHERE c.customer_id = absorb;
    GET DIAGNOSTICS moved = ROW_COUNT;

    -- balances: every open lot moves as a new lot of the survivor
    INSERT INTO loyalty.operation (operation_id, kind, customer_id, request, response)
    VALUES (op, 'merge', keep, jsonb_build_object('keep', keep, 'absorb', absorb), '{}')
    ON CONFLICT (operation_id) DO NOTHING;
    -- locked: the expiry job does not lock customers, only the lots it expires
    FOR l IN SELECT * FROM loyalty.lot WHERE customer_id = absorb AND remaining <> 0 ORDER BY id
             FOR UPDATE LOOP
        UPDATE loyalty.lot SET remaining = 0 WHERE id = l.id;
        INSERT INTO loyalty.ledger_entry (customer_id, account, lot_id, operation_id, kind, points, at)
        VALUES (absorb, l.account, l.id, op, 'merge', -l.remaining, now());
        INSERT INTO loyalty.lot (customer_id, account, amount, remaining, earned_at, available_at,
                                 expires_at, operation_id, announced_at, reminded_at)
        VALUES (keep, l.account, l.remaining, l.remaining, l.earned_at, l.available_at,
                l.expires_at, op, l.announced_at, l.reminded_at)
        RETURNING id INTO nl;
        INSERT INTO loyalty.ledger_entry (customer_id, account, lot_id, operation_id, kind, points, at)
        VALUES (keep, l.account, nl, op, 'merge', l.remaining, now());
        lots := lots + 1;
    END LOOP;
    -- a moved debt is paid at once from the survivor's lots, first expiring first
    FOR l IN SELECT * FROM loyalty.lot WHERE customer_id = keep AND remaining < 0 ORDER BY id LOOP
        owed := -l.remaining;
        FOR p IN SELECT * FROM loyalty.lot WHERE customer_id = keep AND account = l.account
                    AND remaining > 0 ORDER BY expires_at NULLS LAST, earned_at, id LOOP
            EXIT WHEN owed = 0;
            x := least(owed, p.remaining);
            UPDATE loyalty.lot SET remaining = remaining - x WHERE id = p.id;
            INSERT INTO loyalty.ledger_entry (customer_id, account, lot_id, operation_id, kind, points, at)
            VALUES (keep, l.account, p.id, op, 'merge', -x, now());
            UPDATE loyalty.lot SET remaining = remaining + x WHERE id = l.id;
            INSERT INTO loyalty.ledger_entry (customer_id, account, lot_id, operation_id, kind, points, at)
            VALUES (keep, l.account, l.id, op, 'repay', x, now());
            owed := owed - x;
        END LOOP;
    END LOOP;

    -- the survivor takes over what it lacks; the phone moves only if it has none
    UPDATE loyalty.customer c
       SET phone = NULL, status = 'merged', merged_into = keep
     WHERE c.id = absorb;
    UPDATE loyalty.customer c
       SET phone = coalesce(c.phone, a.phone),
           email = coalesce(c.email, a.email),
           name = coalesce(c.name, a.name),
           birth_date = coalesce(c.birth_date, a.birth_date),
           attrs = a.attrs || c.attrs,
           created_at = least(c.created_at, a.created_at)
     WHERE c.id = keep;
    IF k.phone IS NOT NULL AND a.phone IS NOT NULL THEN
        -- both had phones: the absorbed one keeps its own so it can still be found
        UPDATE loyalty.customer c SET phone = a.phone WHERE c.id = absorb;
    END IF;
    -- customers merged into the absorbed one now point straight to the survivor
    UPDATE loyalty.customer c SET merged_into = keep WHERE c.merged_into = absorb;

    RETURN jsonb_build_object('keep', keep, 'absorb', absorb, 'cards', moved, 'lots', lots,
                              'already_merged', false);
END
$$;
COMMENT ON FUNCTION loyalty.merge_customers(bigint, bigint) IS
    'Merges customer absorb into keep: cards, open point lots (with their expiry) and profile gaps move; absorb still resolves to keep';

-- a customer's history includes the entries of customers merged into them
CREATE FUNCTION loyalty.history(customer text, lim int DEFAULT 100)
    RETURNS TABLE (id bigint, at timestamptz, kind text, account text, points numeric,
                   operation_id text, ref_operation_id text, lot_expires_at timestamptz)
    LANGUAGE plpgsql STABLE STRICT PARALLEL UNSAFE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    cid bigint := loyalty.find_customer(customer);
BEGIN
    IF cid IS NULL THEN
        RAISE EXCEPTION 'customer "%" not found', customer USING ERRCODE = 'LY001';
    END IF;
    RETURN QUERY
    SELECT e.id, e.at, e.kind, e.account, e.points, e.operation_id, e.ref_operation_id, l.expires_at
      FROM loyalty.ledger_entry e
      JOIN loyalty.lot l ON l.id = e.lot_id
     WHERE e.customer_id = cid
        OR e.customer_id IN (SELECT c.id FROM loyalty.customer c WHERE c.merged_into = cid)
     ORDER BY e.id DESC
     LIMIT lim;
END
$$;
COMMENT ON FUNCTION loyalty.history(text, int) IS
    'A customer''s latest ledger entries (those of customers merged into them too), newest first';

-- ---------------------------------------------------------------------------
-- pg_dump keeps the ledger
-- ---------------------------------------------------------------------------
SELECT pg_catalog.pg_extension_config_dump('loyalty.operation', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.lot', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.lot_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.ledger_entry', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.ledger_entry_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.event', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.event_id_seq', '');

-- ---------------------------------------------------------------------------
-- Privileges
-- ---------------------------------------------------------------------------
REVOKE ALL ON loyalty.operation, loyalty.lot, loyalty.ledger_entry, loyalty.event FROM PUBLIC;
REVOKE ALL ON FUNCTION
    loyalty.adjust(jsonb), loyalty.expire_batch(timestamptz, int, timestamptz, bigint),
    loyalty.expire_points(timestamptz), loyalty.balance(text, timestamptz),
    loyalty.history(text, int), loyalty.verify_ledger(), loyalty.announce_lots(timestamptz),
    loyalty.run_maintenance(timestamptz), loyalty.schedule_maintenance(text),
    loyalty.take_events(int), loyalty.ledger_entry_append_only()
    FROM PUBLIC;
REVOKE ALL ON PROCEDURE loyalty.run_maintenance_proc(timestamptz, int) FROM PUBLIC;

GRANT EXECUTE ON FUNCTION loyalty.balance(text, timestamptz), loyalty.history(text, int)
    TO loyalty_cashier;
GRANT SELECT ON loyalty.lot, loyalty.ledger_entry, loyalty.event TO loyalty_analyst;
GRANT ALL ON loyalty.operation, loyalty.lot, loyalty.ledger_entry, loyalty.event TO loyalty_admin;
GRANT ALL ON SEQUENCE loyalty.lot_id_seq, loyalty.ledger_entry_id_seq, loyalty.event_id_seq
    TO loyalty_admin;
GRANT EXECUTE ON FUNCTION
    loyalty.adjust(jsonb), loyalty.expire_batch(timestamptz, int, timestamptz, bigint),
    loyalty.expire_points(timestamptz), loyalty.balance(text, timestamptz),
    loyalty.history(text, int), loyalty.verify_ledger(), loyalty.announce_lots(timestamptz),
    loyalty.run_maintenance(timestamptz), loyalty.schedule_maintenance(text),
    loyalty.take_events(int)
    TO loyalty_admin;
GRANT EXECUTE ON PROCEDURE loyalty.run_maintenance_proc(timestamptz, int) TO loyalty_admin;

/*
 * loyalty--0.8--0.9.sql: hardening (issue 14).
 *
 * Each section below is one defect found by an attack on 0.8, with what
 * changed in the schema to close it.  Behaviour that needs no schema
 * change lives in the C library only; the README's changelog lists both.
 */
\echo Use "ALTER EXTENSION loyalty UPDATE TO '0.9'" to load this file. \quit

-- ---------------------------------------------------------------------------
-- Issue 14 items 6 and 7: one rule for operation ids; internal operations in
-- a namespace of their own; a merge locks like a purchase
--
-- Merges and expiry wrote their operations as "merge-<keep>-<absorb>" and
-- "expire-<xid>", ids a client could send too: a purchase sent as
-- "merge-3-4" made the later merge of 3 and 4 file its ledger entries and
-- lots under that purchase (the merge's INSERT ... ON CONFLICT DO NOTHING
-- found the purchase's row).  From 0.9 internal ids begin with "~", which
-- the one operation id rule of every API (src/operation_id.c) refuses from
-- clients: "~merge-3-4", "~expire-<64-bit xid>".
--
-- The migration renames what earlier versions stored, consistently in every
-- table that holds operation ids (ledger_entry.operation_id and
-- ref_operation_id, lot.operation_id, coupon.issued_by; coupon_use and
-- subscription reference operation by foreign key but never an internal
-- one; ledger_entry and lot lost theirs in 0.5 and 0.7).  A merge that filed
-- under a client's operation of its name gets its own operation back: its
-- "merge" entries, the "repay" entries it wrote at the same moment, and the
-- lots it made (whose first entry is a "merge" one).  Likewise an expiry
-- that filed under a client's "expire-<xid>".  The append-only trigger of
-- ledger_entry is set aside for these updates only.
-- ---------------------------------------------------------------------------
ALTER TABLE loyalty.ledger_entry DISABLE TRIGGER ledger_entry_append_only;

-- internal entries filed under a client's operation of the same name
DO $$
DECLARE
    c record;
BEGIN
    FOR c IN
        SELECT o.operation_id,
               CASE WHEN bool_or(e.kind = 'merge') THEN 'merge' ELSE 'expire' END AS kind,
               array_agg(DISTINCT e.at) FILTER (WHERE e.kind = 'merge') AS merge_at,
               min(e.at) AS first_at
          FROM loyalty.operation o
          JOIN loyalty.ledger_entry e ON e.operation_id = o.operation_id
         WHERE o.kind NOT IN ('merge', 'expire')
           AND ((e.kind = 'merge' AND o.operation_id ~ '^merge-[0-9]+-[0-9]+$')
                OR (e.kind = 'expire' AND o.operation_id ~ '^expire-[0-9]+$'))
         GROUP BY o.operation_id
    LOOP
        INSERT INTO loyalty.operation (operation_id, kind, customer_id, request, response, created_at)
        VALUES ('~' || c.operation_id, c.kind,
                CASE WHEN c.kind = 'merge' THEN split_part(c.operation_id, '-', 2)::bigint END,
                CASE WHEN c.kind = 'merge'
                     THEN jsonb_build_object('keep', split_part(c.operation_id, '-', 2)::bigint,
                                             'absorb', split_part(c.operation_id, '-', 3)::bigint)
                     ELSE jsonb_build_object('as_of', c.first_at) END,
                '{}', c.first_at);
        IF c.kind = 'merge' THEN
            UPDATE loyalty.lot l SET operation_id = '~' || l.operation_id
             WHERE l.operation_id = c.operation_id
               AND (SELECT f.kind FROM loyalty.ledger_entry f
                     WHERE f.lot_id = l.id ORDER BY f.id LIMIT 1) = 'merge';
        END IF;
        UPDATE loyalty.ledger_entry e SET operation_id = '~' || e.operation_id
         WHERE e.operation_id = c.operation_id
           AND (e.kind = c.kind
                OR (c.kind = 'merge' AND e.kind = 'repay' AND e.at = ANY (c.merge_at)));
    END LOOP;
END
$$;

-- internal operations stored under their old names
UPDATE loyalty.ledger_entry e SET operation_id = '~' || e.operation_id
  FROM loyalty.operation o
 WHERE o.operation_id = e.operation_id AND o.kind IN ('merge', 'expire')
   AND o.operation_id NOT LIKE '~%';
UPDATE loyalty.ledger_entry e SET ref_operation_id = '~' || e.ref_operation_id
  FROM loyalty.operation o
 WHERE o.operation_id = e.ref_operation_id AND o.kind IN ('merge', 'expire')
   AND o.operation_id NOT LIKE '~%';
UPDATE loyalty.lot l SET operation_id = '~' || l.operation_id
  FROM loyalty.operation o
 WHERE o.operation_id = l.operation_id AND o.kind IN ('merge', 'expire')
   AND o.operation_id NOT LIKE '~%';
UPDATE loyalty.coupon k SET issued_by = '~' || k.issued_by
  FROM loyalty.operation o
 WHERE o.operation_id = k.issued_by AND o.kind IN ('merge', 'expire')
   AND o.operation_id NOT LIKE '~%';
UPDATE loyalty.operation o SET operation_id = '~' || o.operation_id
 WHERE o.kind IN ('merge', 'expire') AND o.operation_id NOT LIKE '~%';

ALTER TABLE loyalty.ledger_entry ENABLE TRIGGER ledger_entry_append_only;

-- Internal operations, and only they, begin with "~".  NOT VALID: an
-- earlier version may have accepted a client id beginning with "~"; such a
-- row stays (a retry of it is now refused with 22023), every new row obeys.
ALTER TABLE loyalty.operation
    ADD CONSTRAINT operation_internal_namespace
    CHECK ((kind IN ('merge', 'expire')) = (operation_id LIKE '~%')) NOT VALID;

-- The merge: its own operation id, no ON CONFLICT (a merge runs once; its id
-- is no client's), and the customers locked FOR NO KEY UPDATE like a
-- purchase locks its customer (FOR UPDATE before).  A purchase of the
-- absorbed customer either commits before the merge, or waits and then
-- prices the survivor under the survivor's lock (src/check_db.c); before,
-- it priced the survivor under the absorbed row's lock and raced the
-- survivor's own purchases into 23505 on promotion_customer_usage or LY004.
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
    op     text := format('~merge-%s-%s', keep, absorb);
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
    -- lock both as a purchase does, in id order so that merges cannot deadlock
    PERFORM 1 FROM loyalty.customer c WHERE c.id IN (keep, absorb) ORDER BY c.id FOR NO KEY UPDATE;
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
    VALUES (op, 'merge', keep, jsonb_build_object('keep', keep, 'absorb', absorb), '{}');
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
    'Merges customer absorb into keep: cards, open point lots (with their expiry) and profile gaps move under operation ~merge-<keep>-<absorb>; absorb still resolves to keep';
REVOKE ALL ON FUNCTION loyalty.merge_customers(bigint, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.merge_customers(bigint, bigint) TO loyalty_admin;


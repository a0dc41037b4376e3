/*
 * loyalty--0.4--0.5.sql: a lighter purchase write path.
 *
 * A purchase writes some forty rows (its lines and their points, ledger
 * entries, events, usage counters).  Every foreign key on those rows ran a
 * query of its own at the end of each statement: about 85 checks, a quarter
 * of a purchase's time, each proving again what the extension's own C code
 * had just written in the same transaction under the customer's row lock.
 * The keys below are those: on append-only or derived rows that only the
 * extension writes and nothing deletes.  Their consistency stays checked,
 * by loyalty.verify_ledger() for the ledger.  Keys that guard what people
 * edit (account types, promotions, tiers, customers of lots, purchases and
 * coupons) stay.
 */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION loyalty UPDATE TO '0.5'" to load this file. \quit

-- ledger entries: append-only, written with their lot and operation
ALTER TABLE loyalty.ledger_entry
    DROP CONSTRAINT ledger_entry_lot_id_fkey,
    DROP CONSTRAINT ledger_entry_operation_id_fkey,
    DROP CONSTRAINT ledger_entry_ref_operation_id_fkey;
-- the event outbox: written for the customer a writer holds locked
ALTER TABLE loyalty.event DROP CONSTRAINT event_customer_id_fkey;
-- a purchase's lines and their points: written in the purchase's own call
ALTER TABLE loyalty.purchase_line DROP CONSTRAINT purchase_line_operation_id_fkey;
ALTER TABLE loyalty.purchase_line_points
    DROP CONSTRAINT purchase_line_points_operation_id_line_index_fkey;
-- per-customer usage counters: written under the customer's row lock, for
-- promotions of the configuration cache; a first use of a promotion by a
-- customer inserts a row, so a purchase inserted about one per limited
-- promotion and checked both keys of each.  A rename or deletion of a
-- promotion still carries over to its counters, by the trigger below.
ALTER TABLE loyalty.promotion_customer_usage
    DROP CONSTRAINT promotion_customer_usage_customer_id_fkey,
    DROP CONSTRAINT promotion_customer_usage_promotion_fkey;

CREATE FUNCTION loyalty.promotion_usage_follow() RETURNS trigger
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        DELETE FROM loyalty.promotion_customer_usage u WHERE u.promotion = OLD.code;
    ELSIF NEW.code IS DISTINCT FROM OLD.code THEN
        UPDATE loyalty.promotion_customer_usage u SET promotion = NEW.code WHERE u.promotion = OLD.code;
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION loyalty.promotion_usage_follow() IS
    'Carries a promotion''s rename or deletion over to its per-customer usage counters';
CREATE TRIGGER promotion_usage_follow AFTER UPDATE OF code OR DELETE ON loyalty.promotion
    FOR EACH ROW EXECUTE FUNCTION loyalty.promotion_usage_follow();
REVOKE ALL ON FUNCTION loyalty.promotion_usage_follow() FROM PUBLIC;

-- indexes no query of the extension uses, paid for by every lot and entry
-- written (and by every lot an expiry or a spend empties: those updates
-- cannot be HOT).  A lot's operation is reached through its entries
-- (ledger_entry_operation_idx), and verify_ledger reads every entry.
DROP INDEX loyalty.lot_operation_idx;
DROP INDEX loyalty.ledger_entry_lot_idx;

-- verify_ledger also reports entries whose lot or operation is missing
CREATE OR REPLACE FUNCTION loyalty.verify_ledger()
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
    -- entries belong to an existing lot of their customer and account
    SELECT e.customer_id, e.account, e.lot_id,
           CASE WHEN l.id IS NULL THEN format('entry %s names lot %s, which does not exist', e.id, e.lot_id)
                ELSE format('entry %s names customer %s account %s, its lot belongs to customer %s account %s',
                            e.id, e.customer_id, e.account, l.customer_id, l.account) END
      FROM loyalty.ledger_entry e LEFT JOIN loyalty.lot l ON l.id = e.lot_id
     WHERE l.id IS NULL OR e.customer_id <> l.customer_id OR e.account <> l.account
    UNION ALL
    -- entries name operations that were recorded
    SELECT e.customer_id, e.account, e.lot_id,
           format('entry %s names operation %s, which was not recorded', e.id,
                  CASE WHEN o.operation_id IS NULL THEN e.operation_id ELSE e.ref_operation_id END)
      FROM loyalty.ledger_entry e
      LEFT JOIN loyalty.operation o ON o.operation_id = e.operation_id
     WHERE o.operation_id IS NULL
        OR (e.ref_operation_id IS NOT NULL
            AND NOT EXISTS (SELECT 1 FROM loyalty.operation r WHERE r.operation_id = e.ref_operation_id))
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
    'Rows only where the ledger is inconsistent: empty when every balance equals its entries, every entry has its lot and operation';

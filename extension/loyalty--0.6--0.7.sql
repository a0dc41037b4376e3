/*
 * loyalty--0.6--0.7.sql: a line's points live in the line.
 *
 * A purchase wrote one purchase_line_points row per line and account with
 * points: fifteen rows and fifteen index entries for a ten-line check in a
 * two-account program, more than all its other facts together.  They are
 * now one jsonb column of the line, written by the same row:
 *
 *   purchase_line.points = {"main": {"earned": 12.5, "spent": 30,
 *                                    "earned_refunded": 2.5, "spent_refunded": 6}}
 *
 * with one key per account that earned or spent on the line (refunded
 * amounts appear once a refund takes some).  loyalty.purchase_line_points
 * stays, as a view with the columns and rows the table had, so reports
 * keep working; it can no longer be written to (only the extension wrote
 * it).
 *
 * Three foreign keys to loyalty.operation go, and the operation's own to
 * its customer: a lot's and an issued coupon's operation, and an
 * operation's customer, are written by the extension's C code in the
 * same call, under the customer's row lock, and nothing deletes
 * operations or customers (0.5 dropped the ledger entries' keys for the
 * same reason).  Each ran a query per row at the end of its statement,
 * four per purchase.  verify_ledger now also reports a lot whose operation
 * was not recorded.  The keys that guard what people edit stay: lots,
 * purchases, refunds and coupons to their customer, lots to their account
 * type, coupons to their promotion.
 *
 * The expiry job walks due lots in (expires_at, id) order, a batch at a
 * time.  lot_due_idx held expires_at alone, so lots sharing one expiry
 * moment (a promotion's end, a campaign's grants) came out of the index
 * unordered and every batch sorted all the tied lots still due: quadratic
 * in the size of the tie.  It now holds (expires_at, id), the batch's
 * order and its keyset.
 *
 * The existing rows are copied into their lines by one rewrite of
 * purchase_line (48 s for 3M lines here), which holds purchases
 * until it commits: on a large history, update in a quiet hour.
 */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION loyalty UPDATE TO '0.7'" to load this file. \quit

-- the lines get their points in one rewrite of the table (ALTER COLUMN
-- TYPE ... USING writes a new copy, with no dead row versions left behind)
CREATE FUNCTION loyalty.upgrade_line_points(operation_id text, line_index int)
    RETURNS jsonb LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT coalesce(jsonb_object_agg(p.account, jsonb_strip_nulls(jsonb_build_object(
               'earned', p.earned, 'spent', p.spent,
               'earned_refunded', NULLIF(p.earned_refunded, 0),
               'spent_refunded', NULLIF(p.spent_refunded, 0)))), '{}')
      FROM loyalty.purchase_line_points p
     WHERE p.operation_id = $1 AND p.line_index = $2
$$;
ALTER TABLE loyalty.purchase_line ADD COLUMN points jsonb;
ALTER TABLE loyalty.purchase_line
    ALTER COLUMN points TYPE jsonb USING loyalty.upgrade_line_points(operation_id, line_index);
ALTER TABLE loyalty.purchase_line
    ALTER COLUMN points SET DEFAULT '{}',
    ALTER COLUMN points SET NOT NULL;
DROP FUNCTION loyalty.upgrade_line_points(text, int);
COMMENT ON COLUMN loyalty.purchase_line.points IS
    'Points the line earned and spent per account, and what refunds took back: {"account": {"earned", "spent", "earned_refunded", "spent_refunded"}}';

ALTER EXTENSION loyalty DROP TABLE loyalty.purchase_line_points;
DROP TABLE loyalty.purchase_line_points;

CREATE VIEW loyalty.purchase_line_points AS
SELECT l.operation_id,
       l.line_index,
       p.key AS account,
       coalesce((p.value -> 'earned')::numeric, 0) AS earned,
       coalesce((p.value -> 'spent')::numeric, 0) AS spent,
       coalesce((p.value -> 'earned_refunded')::numeric, 0) AS earned_refunded,
       coalesce((p.value -> 'spent_refunded')::numeric, 0) AS spent_refunded
  FROM loyalty.purchase_line l
 CROSS JOIN LATERAL pg_catalog.jsonb_each(l.points) AS p;
COMMENT ON VIEW loyalty.purchase_line_points IS
    'Points each line of a purchase earned and spent per account, and how much of them refunds took back (from purchase_line.points)';

REVOKE ALL ON loyalty.purchase_line_points FROM PUBLIC;
GRANT SELECT ON loyalty.purchase_line_points TO loyalty_analyst, loyalty_admin;

-- the expiry's order and keyset
DROP INDEX loyalty.lot_due_idx;
CREATE INDEX lot_due_idx ON loyalty.lot (expires_at, id) WHERE remaining > 0;

-- references to operations that the extension writes in the same call
ALTER TABLE loyalty.lot DROP CONSTRAINT lot_operation_id_fkey;
ALTER TABLE loyalty.coupon DROP CONSTRAINT coupon_issued_by_fkey;
ALTER TABLE loyalty.operation DROP CONSTRAINT operation_customer_id_fkey;

-- verify_ledger also reports lots whose operation is missing
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
    -- lots name operations that were recorded
    SELECT l.customer_id, l.account, l.id,
           format('lot %s names operation %s, which was not recorded', l.id, l.operation_id)
      FROM loyalty.lot l
     WHERE NOT EXISTS (SELECT 1 FROM loyalty.operation o WHERE o.operation_id = l.operation_id)
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
    'Rows only where the ledger is inconsistent: empty when every balance equals its entries, every entry has its lot and operation, every lot its operation';

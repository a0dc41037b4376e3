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

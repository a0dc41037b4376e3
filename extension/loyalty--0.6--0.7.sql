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
 * The existing rows are copied into their lines: one pass over
 * purchase_line, which rewrites it.  On a large history, run the update in
 * a quiet hour.
 */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION loyalty UPDATE TO '0.7'" to load this file. \quit

ALTER TABLE loyalty.purchase_line ADD COLUMN points jsonb NOT NULL DEFAULT '{}';
COMMENT ON COLUMN loyalty.purchase_line.points IS
    'Points the line earned and spent per account, and what refunds took back: {"account": {"earned", "spent", "earned_refunded", "spent_refunded"}}';

UPDATE loyalty.purchase_line l
   SET points = p.points
  FROM (SELECT operation_id, line_index,
               pg_catalog.jsonb_object_agg(account, pg_catalog.jsonb_strip_nulls(
                   pg_catalog.jsonb_build_object(
                       'earned', earned, 'spent', spent,
                       'earned_refunded', NULLIF(earned_refunded, 0),
                       'spent_refunded', NULLIF(spent_refunded, 0)))) AS points
          FROM loyalty.purchase_line_points
         GROUP BY operation_id, line_index) p
 WHERE l.operation_id = p.operation_id AND l.line_index = p.line_index;

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

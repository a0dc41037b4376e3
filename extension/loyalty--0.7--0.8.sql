/*
 * loyalty--0.7--0.8.sql: the kinds and statuses a purchase writes are
 * domains, identifiers compare by bytes, and an account type's code stays
 * what its lots and entries say.
 *
 * PostgreSQL 15 turns a table's CHECK constraints into executable form
 * anew for every statement that writes the table: it reads each one back
 * from its stored node tree and simplifies it before the first row is
 * checked.  A purchase writes nine tables in about fourteen statements,
 * so that was some twenty constraints read and prepared per purchase:
 * checking constraints took 13-19% of the instructions of a bench
 * purchase (callgrind).  The longest of them were the lists of known
 * values: a ledger entry's kind (written twice per purchase), an
 * event's, an operation's, a coupon's kind and status.
 *
 * A domain's constraints are read once per backend and kept, prepared,
 * in the type cache.  So these columns now have domain types over text,
 * with the same rule under the same constraint name (in a C database a
 * bench purchase runs about 5% fewer instructions):
 *
 *   loyalty.ledger_entry.kind  loyalty.entry_kind      ledger_entry_kind_known
 *   loyalty.event.kind         loyalty.event_kind      event_kind_known
 *   loyalty.operation.kind     loyalty.operation_kind  operation_kind_known
 *   loyalty.coupon.kind        loyalty.coupon_kind     coupon_kind_known
 *   loyalty.coupon.status      loyalty.coupon_status   coupon_status_known
 *
 * A wrong value is still refused with SQLSTATE 23514 and the constraint's
 * name; the message now names the domain ("value for domain
 * loyalty.entry_kind violates check constraint ...") instead of the
 * table.  Clients see text: the server describes a domain's column by
 * its base type.  The constraints that tie several columns of a row
 * together stay table constraints.
 *
 * Each column changes type without a rewrite (the domain has no
 * constraint yet, so the stored values are already valid), then the
 * domain's constraint is added, which reads the table once to check the
 * existing rows.  loyalty.history returns kind as text, as it did: a
 * PL/pgSQL RETURN QUERY wants the exact declared types.
 *
 * An account type's code can no longer be changed while lots hold it.
 * The lots' key followed a rename (ON UPDATE CASCADE), but the ledger
 * entries, append-only and without a key, kept the old code: one rename
 * of "main" left verify_ledger reporting every entry of the account
 * (220,000 in the bench program), and balances, history and the lines'
 * points disagreed.  The code names the account in the ledger, the
 * purchases and the events; a new display name goes in account_type.name.
 *
 * Identifiers compare byte by byte.  A ten-line purchase inserts dozens of index
 * entries keyed by text identifiers (operation ids, account, coupon and
 * promotion codes), and each insertion compares keys in the column's
 * collation.  In a database created with glibc's ru_RU.UTF-8, a Russian
 * server's initdb default, every comparison went through strcoll: a
 * bench purchase ran 7.11M instructions in 0.7 and runs 5.85M in 0.8
 * (an ICU ru-RU database: 6.08M against 5.81M).  These
 * columns are now COLLATE "C": operation ids everywhere, account type,
 * coupon and promotion codes with the columns that refer to them, and
 * card numbers.  They sort by bytes; compared with a column or value in
 * the database's default collation they win, so joins with other tables
 * need no COLLATE clause.  A C collation also keeps their indexes valid
 * when an operating system upgrade changes glibc's collation order.  The
 * change rebuilds the indexes on these columns (the tables are not
 * rewritten; 8.7 s for 3.3M ledger entries, operations and lots and
 * 0.9M purchase lines here), and purchases wait for it.  The view
 * purchase_line_points and the trigger promotion_usage_follow are
 * dropped and created again around it.
 */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION loyalty UPDATE TO '0.8'" to load this file. \quit

CREATE DOMAIN loyalty.entry_kind AS text;
COMMENT ON DOMAIN loyalty.entry_kind IS
    'The kind of a ledger entry: earn, spend, expire, reverse, return, debt, repay, adjust or merge';
ALTER TABLE loyalty.ledger_entry
    ALTER COLUMN kind TYPE loyalty.entry_kind,
    DROP CONSTRAINT ledger_entry_kind_known;
ALTER DOMAIN loyalty.entry_kind ADD CONSTRAINT ledger_entry_kind_known
    CHECK (VALUE IN ('earn', 'spend', 'expire', 'reverse', 'return', 'debt', 'repay', 'adjust', 'merge'));

CREATE DOMAIN loyalty.event_kind AS text;
COMMENT ON DOMAIN loyalty.event_kind IS
    'The kind of an event: points_earned, points_available, points_expiring, points_expired, tier_changed or coupon_issued';
ALTER TABLE loyalty.event
    ALTER COLUMN kind TYPE loyalty.event_kind,
    DROP CONSTRAINT event_kind_known;
ALTER DOMAIN loyalty.event_kind ADD CONSTRAINT event_kind_known
    CHECK (VALUE IN ('points_earned', 'points_available', 'points_expiring', 'points_expired',
                     'tier_changed', 'coupon_issued'));

CREATE DOMAIN loyalty.operation_kind AS text;
COMMENT ON DOMAIN loyalty.operation_kind IS
    'The kind of a writing call: purchase, refund, adjust, expire or merge';
ALTER TABLE loyalty.operation
    ALTER COLUMN kind TYPE loyalty.operation_kind,
    DROP CONSTRAINT operation_kind_known;
ALTER DOMAIN loyalty.operation_kind ADD CONSTRAINT operation_kind_known
    CHECK (VALUE IN ('purchase', 'refund', 'adjust', 'expire', 'merge'));

CREATE DOMAIN loyalty.coupon_kind AS text;
COMMENT ON DOMAIN loyalty.coupon_kind IS
    'The kind of a coupon: promo, personal or certificate';
CREATE DOMAIN loyalty.coupon_status AS text;
COMMENT ON DOMAIN loyalty.coupon_status IS
    'The status of a coupon: active, used or void';
ALTER TABLE loyalty.coupon
    ALTER COLUMN kind TYPE loyalty.coupon_kind,
    DROP CONSTRAINT coupon_kind_known,
    ALTER COLUMN status TYPE loyalty.coupon_status,
    DROP CONSTRAINT coupon_status_known;
ALTER DOMAIN loyalty.coupon_kind ADD CONSTRAINT coupon_kind_known
    CHECK (VALUE IN ('promo', 'personal', 'certificate'));
ALTER DOMAIN loyalty.coupon_status ADD CONSTRAINT coupon_status_known
    CHECK (VALUE IN ('active', 'used', 'void'));

-- identifiers in C: their index entries compare by bytes, not by a locale
-- (the lots' key to their account is added again once both sides are in C,
-- so that its rows are checked once)
ALTER EXTENSION loyalty DROP VIEW loyalty.purchase_line_points;
DROP VIEW loyalty.purchase_line_points;
ALTER TABLE loyalty.lot DROP CONSTRAINT lot_account_fkey;

ALTER TABLE loyalty.operation ALTER COLUMN operation_id TYPE text COLLATE "C";
ALTER TABLE loyalty.purchase ALTER COLUMN operation_id TYPE text COLLATE "C";
ALTER TABLE loyalty.purchase_line ALTER COLUMN operation_id TYPE text COLLATE "C";
ALTER TABLE loyalty.refund
    ALTER COLUMN operation_id TYPE text COLLATE "C",
    ALTER COLUMN purchase TYPE text COLLATE "C";
ALTER TABLE loyalty.subscription ALTER COLUMN operation_id TYPE text COLLATE "C";
ALTER TABLE loyalty.account_type ALTER COLUMN code TYPE text COLLATE "C";
-- a lot's account keeps its code: renaming it is refused while lots hold it
-- (no more ON UPDATE CASCADE)
ALTER TABLE loyalty.lot
    ALTER COLUMN operation_id TYPE text COLLATE "C",
    ALTER COLUMN account TYPE text COLLATE "C",
    ADD CONSTRAINT lot_account_fkey FOREIGN KEY (account) REFERENCES loyalty.account_type (code);
ALTER TABLE loyalty.ledger_entry
    ALTER COLUMN operation_id TYPE text COLLATE "C",
    ALTER COLUMN ref_operation_id TYPE text COLLATE "C",
    ALTER COLUMN account TYPE text COLLATE "C";
DROP TRIGGER promotion_usage_follow ON loyalty.promotion;
ALTER TABLE loyalty.promotion ALTER COLUMN code TYPE text COLLATE "C";
CREATE TRIGGER promotion_usage_follow AFTER UPDATE OF code OR DELETE ON loyalty.promotion
    FOR EACH ROW EXECUTE FUNCTION loyalty.promotion_usage_follow();
ALTER TABLE loyalty.promotion_usage ALTER COLUMN promotion TYPE text COLLATE "C";
ALTER TABLE loyalty.promotion_customer_usage ALTER COLUMN promotion TYPE text COLLATE "C";
ALTER TABLE loyalty.coupon
    ALTER COLUMN code TYPE text COLLATE "C",
    ALTER COLUMN promotion TYPE text COLLATE "C",
    ALTER COLUMN issued_by TYPE text COLLATE "C";
ALTER TABLE loyalty.coupon_use
    ALTER COLUMN code TYPE text COLLATE "C",
    ALTER COLUMN operation_id TYPE text COLLATE "C";
ALTER TABLE loyalty.card ALTER COLUMN number TYPE text COLLATE "C";

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

-- RETURN QUERY wants the declared column types exactly: kind is cast back
CREATE OR REPLACE FUNCTION loyalty.history(customer text, lim int DEFAULT 100)
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
    SELECT e.id, e.at, e.kind::text, e.account, e.points, e.operation_id, e.ref_operation_id,
           l.expires_at
      FROM loyalty.ledger_entry e
      JOIN loyalty.lot l ON l.id = e.lot_id
     WHERE e.customer_id = cid
        OR e.customer_id IN (SELECT c.id FROM loyalty.customer c WHERE c.merged_into = cid)
     ORDER BY e.id DESC
     LIMIT lim;
END
$$;

/*
 * loyalty--0.8--0.9.sql: hardening (issue 14).
 *
 * Each section below is one defect found by an attack on 0.8, with what
 * changed in the schema to close it.  Behaviour that needs no schema
 * change lives in the C library only; the README's changelog lists both.
 */
\echo Use "ALTER EXTENSION loyalty UPDATE TO '0.9'" to load this file. \quit

-- ---------------------------------------------------------------------------
-- Issue 14 item 8: a full refund gives the purchase's promotion uses back
--
-- usage_limit and per_customer_limit count only purchases that stand (SPEC
-- section 7): 0.8 kept the use of a refunded purchase, so the customer's
-- next check did not get a once-per-customer promotion and the single-use
-- coupon the refund restored was then rejected.  A purchase now records
-- which usage counters it incremented (promotion codes as they were then;
-- only promotions with a limit are counted, and per-customer ones only for
-- an identified customer), and the refund that leaves nothing of it takes
-- exactly those uses back; a partial refund keeps them.  Purchases
-- committed before 0.9 have empty lists: their refunds give nothing back,
-- as before, rather than a use they may never have counted.
-- ---------------------------------------------------------------------------
ALTER TABLE loyalty.purchase
    ADD COLUMN usage_counted text[] NOT NULL DEFAULT '{}',
    ADD COLUMN customer_usage_counted text[] NOT NULL DEFAULT '{}';
COMMENT ON COLUMN loyalty.purchase.usage_counted IS
    'Promotions whose promotion_usage counter this purchase incremented; its full refund decrements them';
COMMENT ON COLUMN loyalty.purchase.customer_usage_counted IS
    'Promotions whose promotion_customer_usage counter (of customer_id) this purchase incremented; its full refund decrements them';

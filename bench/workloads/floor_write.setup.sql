-- floor_write's scratch schema (bench/instructions runs this once per
-- database before its calls): the tables a purchase writes, copied with
-- their columns, defaults, indexes, CHECK constraints, foreign keys and
-- (non-internal) triggers, so that one hand-written statement writing a
-- purchase's rows pays what the real tables make every writer pay.  The
-- lots are copied too (the statement spends from one), and one purchase's
-- stored request and response (jsonb) are kept to be written again, with
-- the code of a coupon_issue promotion (the bounce-back coupon's).
DROP SCHEMA IF EXISTS floor CASCADE;
CREATE SCHEMA floor;
DO $$
DECLARE
    t text;
    r record;
BEGIN
    FOREACH t IN ARRAY ARRAY['operation', 'purchase', 'purchase_line', 'lot', 'ledger_entry', 'event', 'coupon'] LOOP
        EXECUTE format('CREATE TABLE floor.%I (LIKE loyalty.%I INCLUDING ALL)', t, t);
        FOR r IN SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint
                  WHERE conrelid = format('loyalty.%I', t)::regclass AND contype = 'f' LOOP
            EXECUTE format('ALTER TABLE floor.%I ADD CONSTRAINT %I %s', t, r.conname, r.def);
        END LOOP;
        FOR r IN SELECT pg_get_triggerdef(oid) AS def FROM pg_trigger
                  WHERE tgrelid = format('loyalty.%I', t)::regclass AND NOT tgisinternal LOOP
            EXECUTE replace(r.def, format(' ON loyalty.%s ', t), format(' ON floor.%s ', t));
        END LOOP;
    END LOOP;
END
$$;
INSERT INTO floor.lot SELECT * FROM loyalty.lot;
CREATE TABLE floor.sample AS
    SELECT request, response,
           (SELECT code FROM loyalty.promotion WHERE mechanic = 'coupon_issue'
             ORDER BY code LIMIT 1) AS coupon_promotion
      FROM loyalty.operation
     WHERE kind = 'purchase' AND response IS NOT NULL
     ORDER BY operation_id LIMIT 1;
ANALYZE;

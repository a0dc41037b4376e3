-- bench/gen/verify.sql: after generation, the ledger must add up.
--
-- loyalty.verify_ledger() must be empty, and a generated grant replayed
-- through loyalty.adjust must return the response stored with it (the same
-- request: no LY003, no new lot).  Then the id sequences move past the
-- generated rows.
\set ON_ERROR_STOP 1
\set QUIET 1
SET client_min_messages = notice;

DO $$
DECLARE
    t timestamptz := clock_timestamp();
    bad bigint;
    lots bigint;
    same boolean;
BEGIN
    PERFORM setval('loyalty.customer_id_seq', (SELECT max(id) FROM loyalty.customer));
    SELECT count(*) INTO bad FROM loyalty.verify_ledger();
    IF bad > 0 THEN
        RAISE EXCEPTION 'loyalty.verify_ledger() reports % problems after generation', bad;
    END IF;
    SELECT count(*) INTO lots FROM loyalty.lot;
    SELECT loyalty.adjust(o.request) = o.response INTO same
      FROM loyalty.operation o WHERE o.operation_id = 'gen-grant-1';
    IF same IS DISTINCT FROM true THEN
        RAISE EXCEPTION 'replaying grant gen-grant-1 through loyalty.adjust did not return its stored response';
    END IF;
    IF (SELECT count(*) FROM loyalty.lot) <> lots THEN
        RAISE EXCEPTION 'replaying grant gen-grant-1 through loyalty.adjust created a lot';
    END IF;
    PERFORM bench.step('verify_ledger() empty, replay ok', lots, t);
END
$$;

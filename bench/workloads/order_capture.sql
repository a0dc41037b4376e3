-- loyalty.order_capture: the purchase workload's check held as a web order
-- and then captured whole (the capture commits it as the purchase); one
-- transaction of pgbench is both calls, so its latency is hold + capture.
-- BEGIN ... END makes it one database transaction too: as two, another
-- client's purchase for the same customer could raise the customer's tier
-- between them, and a tier discount then makes the capture refuse with
-- LY007 (the held prices no longer hold), which aborted the run
\set c random(1, :customers)
\set ph 9000000000 + :c
\set s random(1, :stores)
\set q random(1, 3)
\set op random(1, 1000000000000000)
\set k0 random(1, :skus)
\set k1 random(1, :skus)
\set k2 random(1, :skus)
\set k3 random(1, :skus)
\set k4 random(1, :skus)
\set k5 random(1, :skus)
\set k6 random(1, :skus)
\set k7 random(1, :skus)
\set k8 random(1, :skus)
\set k9 random(1, :skus)
BEGIN;
SELECT loyalty.order_hold(('{"operation_id": "bench-ch-' || :tag || '-' || :client_id || '-' || :op
    || '", "order_id": "bench-co-' || :tag || '-' || :client_id || '-' || :op
    || '", "channel": "web", "customer": "+7' || :ph || '", "store": "S' || :s || '", "redeem": "max", "lines": ['
    || '{"sku": "P' || :k0 || '", "qty": ' || :q || '}, {"sku": "P' || :k1 || '", "qty": 1}, '
    || '{"sku": "P' || :k2 || '", "qty": 1}, {"sku": "P' || :k3 || '", "qty": 1}, '
    || '{"sku": "P' || :k4 || '", "qty": 1}, {"sku": "P' || :k5 || '", "qty": 2}, '
    || '{"sku": "P' || :k6 || '", "qty": 1}, {"sku": "P' || :k7 || '", "qty": 1}, '
    || '{"sku": "P' || :k8 || '", "qty": 1}, {"sku": "P' || :k9 || '", "qty": 1}]}')::jsonb);
SELECT loyalty.order_capture(('{"operation_id": "bench-c-' || :tag || '-' || :client_id || '-' || :op
    || '", "order_id": "bench-co-' || :tag || '-' || :client_id || '-' || :op || '"}')::jsonb);
END;

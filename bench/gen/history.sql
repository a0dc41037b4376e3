-- bench/gen/history.sql (pgbench): one purchase of the past year through
-- loyalty.purchase -- a random customer, store and moment, 1 to 5 lines.
-- bench/generate runs it with -t when loyalty.purchase is installed.
\set c random(1, :customers)
\set ph 9000000000 + :c
\set s random(1, :stores)
\set d random(86400, 365 * 86400)
\set op random(1, 1000000000000000)
\set k0 random(1, :skus)
\set k1 random(1, :skus)
\set k2 random(1, :skus)
\set k3 random(1, :skus)
\set k4 random(1, :skus)
\set n random(1, 5)
SELECT loyalty.purchase(('{"operation_id": "hist-' || :client_id || '-' || :op
    || '", "customer": "+7' || :ph || '", "store": "S' || :s
    || '", "at": ' || to_json(now() - make_interval(secs => :d))::text || ', "lines": ['
    || array_to_string((ARRAY['{"sku": "P' || :k0 || '", "qty": 1}', '{"sku": "P' || :k1 || '", "qty": 2}',
                              '{"sku": "P' || :k2 || '", "qty": 1}', '{"sku": "P' || :k3 || '", "qty": 1}',
                              '{"sku": "P' || :k4 || '", "qty": 1}'])[1:(:n)::int], ', ')
    || ']}')::jsonb);

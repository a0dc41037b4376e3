-- loyalty.calculate_json: calculate.sql's checks, the response as json
-- text (issue 21): a 10-line check of a random customer (by phone) in a
-- random store, random SKUs at catalog prices, redeeming as many points as
-- allowed; no side effects
\set c random(1, :customers)
\set ph 9000000000 + :c
\set s random(1, :stores)
\set q random(1, 3)
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
SELECT loyalty.calculate_json(('{"customer": "+7' || :ph || '", "store": "S' || :s || '", "redeem": "max", "lines": ['
    || '{"sku": "P' || :k0 || '", "qty": ' || :q || '}, {"sku": "P' || :k1 || '", "qty": 1}, '
    || '{"sku": "P' || :k2 || '", "qty": 1}, {"sku": "P' || :k3 || '", "qty": 1}, '
    || '{"sku": "P' || :k4 || '", "qty": 1}, {"sku": "P' || :k5 || '", "qty": 2}, '
    || '{"sku": "P' || :k6 || '", "qty": 1}, {"sku": "P' || :k7 || '", "qty": 1}, '
    || '{"sku": "P' || :k8 || '", "qty": 1}, {"sku": "P' || :k9 || '", "qty": 1}]}')::jsonb);

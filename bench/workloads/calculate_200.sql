-- loyalty.calculate on a 200-line check (issue 21: the engine visits for
-- each promotion only the lines it can touch): a random customer (by
-- phone) in a random store, 200 SKUs spread over the catalog from a random
-- start, at catalog prices, redeeming as many points as allowed
\set c random(1, :customers)
\set ph 9000000000 + :c
\set s random(1, :stores)
\set k random(1, :skus)
SELECT loyalty.calculate(jsonb_build_object('customer', '+7' || :ph, 'store', 'S' || :s,
    'redeem', 'max', 'lines',
    (SELECT jsonb_agg(jsonb_build_object('sku', 'P' || ((:k + g * 7919) % :skus + 1), 'qty', 1)
                      ORDER BY g)
       FROM generate_series(1, 200) AS g)));

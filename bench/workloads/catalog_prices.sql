-- loyalty.catalog_prices: personal prices of a 50-SKU catalog page (one
-- shelf's consecutive SKUs) for a random customer in the web store
\set c random(1, :customers)
\set ph 9000000000 + :c
\set k random(1, :skus - 49)
SELECT * FROM loyalty.catalog_prices('+7' || :ph, 'WEB', 'web',
    ARRAY(SELECT 'P' || g FROM generate_series(:k::int, :k::int + 49) AS g));

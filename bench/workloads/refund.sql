-- loyalty.refund: one unit of one line of a random purchase of the refund
-- pool (bench/run commits :pool purchases "bench-rp-N" of 10 lines x 100
-- units before this runs, so partial refunds never run out), committed
\set p random(1, :pool)
\set line random(0, 9)
\set op random(1, 1000000000000000)
SELECT loyalty.refund(('{"operation_id": "bench-r-' || :tag || '-' || :client_id || '-' || :op
    || '", "purchase": "bench-rp-' || :p || '", "lines": [{"index": ' || :line || ', "qty": 1}]}')::jsonb);

-- loyalty.adjust: a manual grant of 10 points to a random customer, committed
-- (a ledger write: operation, lot, entry, event); a new operation_id each time
\set c random(1, :customers)
\set op random(1, 1000000000000000)
SELECT loyalty.adjust(('{"operation_id": "bench-adj-' || :tag || '-' || :client_id || '-' || :op
    || '", "customer": ' || :c || ', "account": "main", "points": 10, "reason": "bench"}')::jsonb);

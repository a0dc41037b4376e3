-- ceiling for writes: a one-row INSERT committed on its own (autocommit), at
-- the same synchronous_commit as the purchase, refund and adjust workloads
\set v random(1, 1000000000)
INSERT INTO bench.ceiling (client, v) VALUES (:client_id, :v);

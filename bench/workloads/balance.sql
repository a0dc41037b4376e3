-- loyalty.balance of a random customer, looked up by phone (as a POS would)
\set c random(1, :customers)
\set ph 9000000000 + :c
SELECT * FROM loyalty.balance('+7' || :ph);

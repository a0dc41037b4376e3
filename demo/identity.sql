-- demo/identity.sql: customers enter the base and are found again.
\pset footer off

\echo
\echo '--- registering customers (idempotent by phone) ---'
SELECT loyalty.register('+7 (912) 345-67-89', '{"name": "Anna", "email": "Anna@Example.ru"}') AS anna;
SELECT loyalty.register('8 912 345 67 89') AS anna_again_same_id;
SELECT loyalty.register('79221234567', '{"name": "Boris", "birth_date": "1985-03-14"}') AS boris;
SELECT loyalty.register('9031112233', '{"attrs": {"source": "web"}}') AS vera;

\echo
\echo '--- every customer got a virtual card (EAN-13, check digit) ---'
SELECT c.id, c.phone, c.name, k.number AS card, k.kind
  FROM loyalty.customer c JOIN loyalty.card k ON k.customer_id = c.id
 ORDER BY c.id;

\echo
\echo '--- looking customers up: any phone spelling, a card number, id:N ---'
SELECT ident, loyalty.find_customer(ident) AS customer_id
  FROM (VALUES ('+79123456789'), ('8(912)345-67-89'), ('id:2'),
               ((SELECT number FROM loyalty.card WHERE customer_id = 3)),
               ('+79990000000')) AS t(ident);

\echo
\echo '--- a customer with two accounts is merged; the old phone still finds her ---'
SELECT loyalty.merge_customers(1, 3);
SELECT loyalty.find_customer('9031112233') AS vera_now;
SELECT id, phone, status, merged_into FROM loyalty.customer ORDER BY id;

\echo
\echo '--- what an analyst sees ---'
SET ROLE loyalty_analyst;
SELECT id, phone, email, tier, status FROM loyalty.customer_masked ORDER BY id;
RESET ROLE;

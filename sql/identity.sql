--
-- Customers, cards and identity: register, find_customer, merge_customers.
--
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS loyalty CASCADE;
CREATE EXTENSION loyalty;
RESET client_min_messages;
SET datestyle = 'ISO, YMD';

-- register is idempotent by phone, whatever the spelling
SELECT loyalty.register('+7 (912) 345-67-89', '{"name": "Anna", "email": "Anna@Example.ru"}') AS anna;
SELECT loyalty.register('8 912 345 67 89') AS same_anna;
SELECT loyalty.register('79123456789', '{"name": "Not Anna"}') AS still_anna;
SELECT id, phone, name, email, status FROM loyalty.customer;

-- a second registration fills in what is missing and never overwrites
SELECT loyalty.register('89123456789', '{"birth_date": "1990-05-01", "attrs": {"source": "app"}}');
SELECT id, name, birth_date, attrs FROM loyalty.customer WHERE id = 1;

SELECT loyalty.register('79221234567', '{"name": "Boris"}') AS boris;
SELECT loyalty.register('9031112233') AS vera;

-- malformed input: a bad phone is 22P02, a bad profile is 22023 naming the field
SELECT loyalty.register('12-34');
SELECT loyalty.register('+7 912 ABC 67 89');
SELECT loyalty.register('79123456789', '{"nick": "A"}');
SELECT loyalty.register('79123456789', '{"birth_date": "01.05.1990"}');
SELECT loyalty.register('79123456789', '{"name": 42}');
SELECT loyalty.register('79123456789', '[]');

-- every customer got a virtual card: 13 digits, EAN-13 check digit
SELECT c.id, k.kind, k.status, length(k.number) AS digits,
       right(k.number, 1)::int = loyalty.card_check_digit(left(k.number, 12)) AS check_digit_ok
  FROM loyalty.customer c JOIN loyalty.card k ON k.customer_id = c.id
 ORDER BY c.id;
SELECT loyalty.card_check_digit('400638133393') AS ean13_check;   -- a real EAN-13: 4006381333931
-- a virtual card with a wrong check digit is refused
INSERT INTO loyalty.card (number, customer_id, kind, issued_at) VALUES ('2700000000010', 1, 'virtual', '2026-01-01 00:00+00');
-- a plastic card can carry the retailer's own numbering
INSERT INTO loyalty.card (number, customer_id, kind) VALUES ('OPT-000123', 2, 'plastic');

-- find_customer: a phone in any spelling, a card number, or id:N
SELECT ident, loyalty.find_customer(ident) AS customer_id
  FROM (VALUES ('+79123456789'), ('8 (912) 345-67-89'), ('9123456789'),
               ('id:2'), ('ID: 3'), ('OPT-000123'),
               ((SELECT number FROM loyalty.card WHERE customer_id = 3 AND kind = 'virtual')),
               ('+79990000000'), ('id:999'), ('nonsense'), ('12-34'), ('')) AS t(ident);

-- merge: Vera (3) turns out to be Anna (1)
SELECT loyalty.merge_customers(1, 3);
SELECT id, phone, status, merged_into FROM loyalty.customer ORDER BY id;
SELECT customer_id, count(*) AS cards FROM loyalty.card GROUP BY 1 ORDER BY 1;
-- the absorbed customer is still found, and resolves to the survivor
SELECT loyalty.find_customer('9031112233') AS by_phone, loyalty.find_customer('id:3') AS by_id;
-- merging again is a no-op; merging into a merged customer or into itself is refused
SELECT loyalty.merge_customers(1, 3);
SELECT loyalty.merge_customers(3, 2);
SELECT loyalty.merge_customers(2, 2);
SELECT loyalty.merge_customers(1, 999);
-- a chain of merges stays one hop deep
SELECT loyalty.merge_customers(2, 1);
SELECT id, status, merged_into FROM loyalty.customer ORDER BY id;
SELECT loyalty.find_customer('+79123456789') AS anna_now_boris, loyalty.find_customer('9031112233') AS vera_now_boris;

-- analysts see masked contacts only
SELECT id, phone, email, birth_year, status FROM loyalty.customer_masked ORDER BY id;

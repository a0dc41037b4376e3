--
-- Issue 20: logical partitions (SPEC §14).  Customer ids and virtual card
-- numbers carry the customer's partition (hashtext of the canonical phone
-- & (P - 1)); plastic cards route through a directory on their own hash
-- partition; operation ids are claimed for one partition.
--
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS loyalty CASCADE;
CREATE EXTENSION loyalty;
RESET client_min_messages;
SET datestyle = 'ISO, YMD';

-- P = 1 (no row): ids and card numbers as ever (1, 2700000000015)
SELECT loyalty.partitions() AS p;
SELECT loyalty.register('+79123456789') AS first_id;
SELECT number FROM loyalty.card WHERE customer_id = 1;

-- P cannot change once there are customers
INSERT INTO loyalty.partitioning (partitions) VALUES (4);
-- ... nor be anything but a power of two from 1 to 1024
INSERT INTO loyalty.partitioning (partitions) VALUES (3);
INSERT INTO loyalty.partitioning (partitions) VALUES (2048);
-- P = 1 written explicitly is no change
INSERT INTO loyalty.partitioning (partitions) VALUES (1);
DELETE FROM loyalty.partitioning;

-- a fresh node of a chain with P = 4
SET client_min_messages = warning;
DROP EXTENSION loyalty CASCADE;
CREATE EXTENSION loyalty;
RESET client_min_messages;
INSERT INTO loyalty.partitioning (partitions) VALUES (4);
SELECT loyalty.partitions() AS p;

-- the partition is hashtext of the canonical phone & 3, whatever the spelling
SELECT s AS spelling, loyalty.partition_of(s::loyalty.phone) AS partition,
       pg_catalog.hashtext(s::loyalty.phone::text) & 3 AS by_hand
  FROM unnest(ARRAY['+7 (912) 345-67-89', '89123456789', '+79123456789',
                    '+79221234567', '+79031112233', '+79160000004']) AS s;

-- ids are seq * 4 + partition: sequence values 1..4 give 4..7 plus the
-- partition, and the virtual card's 10-digit middle is card seq * 4 + the
-- same partition (the phones' partitions per the query above: 0, 2, 2, 2,
-- so ids 1*4+0 = 4, 2*4+2 = 10, 3*4+2 = 14, 4*4+2 = 18 and card middles
-- 4, 10, 14, 18)
SELECT loyalty.register('+7 (912) 345-67-89') AS anna,
       loyalty.register('89123456789') AS anna_again,
       loyalty.register('+79221234567') AS boris,
       loyalty.register('+79031112233') AS vera,
       loyalty.register('+79160000004') AS gleb;
SELECT c.id, c.id / 4 AS seq, c.id & 3 AS id_partition, loyalty.partition_of(c.phone) AS phone_partition,
       k.number, substr(k.number, 3, 10)::bigint & 3 AS card_partition,
       loyalty.card_home(k.number) AS card_home
  FROM loyalty.customer c JOIN loyalty.card k ON k.customer_id = c.id
 ORDER BY c.id;
-- every id and card carries its phone's partition
SELECT count(*) AS misplaced
  FROM loyalty.customer c JOIN loyalty.card k ON k.customer_id = c.id
 WHERE c.id & 3 <> loyalty.partition_of(c.phone)
    OR loyalty.card_home(k.number) <> loyalty.partition_of(c.phone);
-- the ids and cards resolve as before
SELECT loyalty.find_customer('id:' || min(id)) = min(id) AS by_id FROM loyalty.customer;
SELECT bool_and(loyalty.find_customer(k.number) = k.customer_id) AS by_card FROM loyalty.card k;

-- a customer without a phone lands in partition 0; an explicit id is kept
INSERT INTO loyalty.customer (name) VALUES ('no phone') RETURNING id & 3 AS partition;
INSERT INTO loyalty.customer (id, phone) VALUES (1001, '+79995550000') RETURNING id;

-- missing cards are issued in the customer's partition too
DELETE FROM loyalty.card WHERE customer_id = 1001;
SELECT loyalty.issue_missing_cards() AS issued;
SELECT substr(number, 3, 10)::bigint & 3 AS card_partition, 1001 & 3 AS id_partition
  FROM loyalty.card WHERE customer_id = 1001;

-- and P is fixed now: never smaller, larger only if every id and card
-- already carries it (here customer 1001, partition 1001 & 7 = 1, has a
-- phone of partition hashtext & 7 shown below)
SELECT pg_catalog.hashtext('+79995550000') & 7 AS phone_partition_under_8, 1001 & 7 AS id_partition_under_8;
UPDATE loyalty.partitioning SET partitions = 8;
TRUNCATE loyalty.partitioning;

-- a restore writes the customers before the partitioning row: the P their
-- ids and cards carry is accepted then (the row is taken away here the way
-- pg_restore --disable-triggers could)
SET session_replication_role = replica;
DELETE FROM loyalty.partitioning;
RESET session_replication_role;
SELECT loyalty.partitions() AS p_before_restore;
-- customer 1001, whose id was given by hand, does not carry its phone's
-- partition (1001 & 3 = 1, the phone's is 4 & 3 = 0): refused
INSERT INTO loyalty.partitioning (partitions) VALUES (4);
-- without it every id and card carries P = 4: accepted
DELETE FROM loyalty.card WHERE customer_id = 1001;
DELETE FROM loyalty.customer WHERE id = 1001;
INSERT INTO loyalty.partitioning (partitions) VALUES (4);
SELECT loyalty.partitions() AS p_restored;

--
-- Plastic cards issued outside: step 1 on the card's hash partition (the
-- directory), step 2 on the customer's partition (the card row); the
-- router reads card_home on the card's hash partition
--
SELECT pg_catalog.hashtext('PL-0001') & 3 AS card_hash_partition;
SELECT loyalty.card_home('PL-0001') AS unknown_yet;
SELECT loyalty.card_directory_put('PL-0001', 2) AS written;
SELECT loyalty.card_directory_put(' PL-0001 ', 2) AS written_again;
SELECT loyalty.card_home('PL-0001') AS home;
-- another partition cannot take it (23505) until it is dropped
SELECT loyalty.card_directory_put('PL-0001', 3);
SELECT loyalty.card_directory_put('PL-0001', 4);
-- a number of the virtual form is never a plastic card
SELECT loyalty.card_directory_put('2700000000014', 1);
SELECT loyalty.card_directory_drop('PL-0001') AS dropped;
SELECT loyalty.card_home('PL-0001') AS home_after_drop;
SELECT loyalty.card_directory_drop('PL-0001') AS dropped_again;

-- the two steps for Boris (id 10, partition 2): directory, then card row
SELECT loyalty.card_directory_put('PL-0001', loyalty.find_customer('+79221234567')::int & 3) AS step1;

SELECT loyalty.attach_card('+79221234567', 'PL-0001') = loyalty.find_customer('+79221234567') AS attached;
SELECT loyalty.attach_card('+79221234567', 'PL-0001') = loyalty.find_customer('+79221234567') AS again;
SELECT kind, customer_id = loyalty.find_customer('+79221234567') AS boris
  FROM loyalty.card WHERE number = 'PL-0001';
SELECT loyalty.find_customer('PL-0001') = loyalty.find_customer('+79221234567') AS found_by_card;
SELECT loyalty.attach_card('+79031112233', 'PL-0001');
SELECT loyalty.attach_card('+79990000000', 'PL-0002');
SELECT loyalty.attach_card('+79031112233', '2700000000014');

--
-- Operation ids across partitions: the first call claims its id for its
-- partition; a retry from the same partition passes; another partition's
-- call with the same id is LY003, as one node would say
--
SELECT loyalty.claim_operation('S017-3-000123', 1) AS claimed;
SELECT loyalty.claim_operation('S017-3-000123', 1) AS retried;
SELECT loyalty.claim_operation('S017-3-000123', 2);
SELECT loyalty.claim_operation('S017-3-000123', 4);
SELECT loyalty.claim_operation('~merge-1-2', 0);
SELECT operation_id, home FROM loyalty.operation_home;

-- the cashier may call the router's shard functions; the analyst reads no directory
SET ROLE loyalty_cashier;
SELECT loyalty.card_home('PL-0001') AS home, loyalty.card_home('2700000000106') AS virtual_home,
       loyalty.partitions() AS p;
RESET ROLE;
SET ROLE loyalty_analyst;
SELECT * FROM loyalty.card_directory;
SELECT loyalty.card_home('PL-0001');
RESET ROLE;

SET client_min_messages = warning;
DROP EXTENSION IF EXISTS loyalty CASCADE;
CREATE EXTENSION loyalty;
RESET client_min_messages;

--
-- loyalty.phone: a phone number normalized to E.164, printed as '+' and
-- the digits.  The comparison operators live in schema loyalty.
--
SET search_path = public, loyalty;

-- Every usual spelling of the same Russian mobile number is the same value.
-- Spaces, hyphens, dots and parentheses are ignored; "00" is the
-- international prefix; a national number gets loyalty.default_country (7).
SELECT spelling, spelling::loyalty.phone AS phone,
       spelling::loyalty.phone = '+79123456789' AS same
FROM (VALUES ('+7 (912) 345-67-89'),
             ('8 912 345 67 89'),
             ('79123456789'),
             ('9123456789'),
             ('+7-912-345-67-89'),
             ('8(912)3456789'),
             ('00 7 912 345 67 89'),
             ('  +7 912 345.67.89  '),
             ('(8 912) 345 67 89)')) AS v(spelling);

-- text converts to phone (explicitly, and on assignment)
SELECT '8 912 345 67 89'::text::loyalty.phone;
CREATE TEMP TABLE phone_from_text (p loyalty.phone);
INSERT INTO phone_from_text SELECT '8 (912) 345-67-89'::text;
SELECT p FROM phone_from_text;

-- Russian toll-free numbers: 8 is the trunk prefix only in an 11-digit number
SELECT '8 800 123 45 67'::loyalty.phone, '800 123 45 67'::loyalty.phone;

-- other countries, written internationally
SELECT '+44 20 7946 0958'::loyalty.phone, '0044 20 7946 0958'::loyalty.phone,
       '+1 212 555 1234'::loyalty.phone, '+380 67 123 45 67'::loyalty.phone;

-- Another default country: the trunk prefix is then 0.
SET loyalty.default_country = 380;
SELECT '067 123 45 67'::loyalty.phone;
SELECT '67 123 45 67'::loyalty.phone, '380 67 123 45 67'::loyalty.phone,
       '+7 912 345 67 89'::loyalty.phone;
RESET loyalty.default_country;

-- invalid input: the message quotes the text and says why
SELECT ''::loyalty.phone;
SELECT '  '::loyalty.phone;
SELECT '+'::loyalty.phone;
SELECT '12345'::loyalty.phone;
SELECT '7 912 345 67 89 0'::loyalty.phone;
SELECT '+7 912 345 67 8'::loyalty.phone;
SELECT '+1234567'::loyalty.phone;
SELECT '+1234567890123456'::loyalty.phone;
SELECT '12345678901234567890123456789012345'::loyalty.phone;
SELECT '8 912 +345 67 89'::loyalty.phone;
SELECT '++79123456789'::loyalty.phone;
SELECT '8 912 CALL NOW'::loyalty.phone;
SELECT '8 912 345 67 89 ext. 12'::loyalty.phone;
SELECT '+0 912 345 67 89'::loyalty.phone;
SELECT '000 912 345 67 89'::loyalty.phone;
SELECT '00'::loyalty.phone;

-- the SQLSTATE of bad input is 22P02 (invalid_text_representation)
DO $$
BEGIN
    PERFORM '12345'::loyalty.phone;
EXCEPTION WHEN invalid_text_representation THEN
    RAISE NOTICE 'SQLSTATE %: %', SQLSTATE, SQLERRM;
END
$$;

-- comparison and ordering are numeric on the E.164 digits
SELECT '+79123456789'::loyalty.phone <  '+79123456790',
       '+79123456789'::loyalty.phone <= '+79123456789',
       '+79123456789'::loyalty.phone >  '+442079460958',
       '+79123456789'::loyalty.phone >= '+79123456790',
       '+79123456789'::loyalty.phone <> '8 912 345 67 89',
       phone_cmp('+79123456789', '+79123456790'),
       phone_cmp('+79123456789', '+79123456789'),
       phone_cmp('+79123456790', '+79123456789');

CREATE TEMP TABLE phone_book (p loyalty.phone, name text);
INSERT INTO phone_book VALUES
    ('+7 (912) 345-67-89', 'Ivan'),
    ('8 800 123 45 67',    'Hotline'),
    ('+44 20 7946 0958',   'London'),
    ('+1 212 555 1234',    'New York'),
    ('+380 67 123 45 67',  'Kyiv'),
    ('+7 701 123 45 67',   'Almaty'),
    ('+12345678',          'Short');
SELECT p, name FROM phone_book ORDER BY p;
SELECT p, name FROM phone_book ORDER BY p DESC LIMIT 2;

-- a btree index serves equality and range lookups
CREATE INDEX phone_book_btree ON phone_book USING btree (p);
SET enable_seqscan = off;
SET enable_bitmapscan = off;
EXPLAIN (COSTS OFF) SELECT name FROM phone_book WHERE p = '8 912 345 67 89';
SELECT name FROM phone_book WHERE p = '8 912 345 67 89';
SELECT name FROM phone_book WHERE p > '+77000000000' ORDER BY p;
SELECT name FROM phone_book WHERE p BETWEEN '+70000000000' AND '+79999999999' ORDER BY p;
DROP INDEX phone_book_btree;

-- so does a hash index, for equality
CREATE INDEX phone_book_hash ON phone_book USING hash (p);
EXPLAIN (COSTS OFF) SELECT name FROM phone_book WHERE p = '8 912 345 67 89';
SELECT name FROM phone_book WHERE p = '8 912 345 67 89';
SELECT name FROM phone_book WHERE p = '+7 912 000 00 00';
RESET enable_seqscan;
RESET enable_bitmapscan;

-- hashing matches int8 hashing; hash_extended with seed 0 agrees with hash
SELECT p, phone_hash(p) = hashint8(ltrim(p::text, '+')::bigint) AS hash_ok,
       phone_hash_extended(p, 42) = hashint8extended(ltrim(p::text, '+')::bigint, 42) AS ext_ok,
       (phone_hash_extended(p, 0) & 4294967295) = (phone_hash(p)::bigint & 4294967295) AS seed0_ok
FROM phone_book ORDER BY p;

-- binary format: version byte 1, then the digits as a big-endian int8
SELECT phone_send('+79123456789'), phone_send('+123456789012345');

-- masking for analysts: '+', the first 4 and the last 4 digits; at least
-- 3 digits are hidden, so short numbers keep less
SELECT p, phone_masked(p) FROM phone_book ORDER BY p;

-- both operator classes are complete
SELECT opcname, amvalidate(oid) FROM pg_opclass
WHERE opcname IN ('phone_ops', 'phone_hash_ops') ORDER BY opcname;

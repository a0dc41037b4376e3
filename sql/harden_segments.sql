--
-- harden_segments: rule segments (SPEC section 10, issue 16 part 2): the
-- rule validated on write (LY006, the JSON path named, the known keys in
-- the hint), members computed in full for a new or changed segment and
-- incrementally by maintenance (the customers with new purchases and those
-- who crossed a time boundary, nobody else), segment_member.since, and a
-- segment_changed event on entering and leaving.  Expected members are
-- worked out by hand in the comments.
--
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS loyalty CASCADE;
CREATE EXTENSION loyalty;
RESET client_min_messages;
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';

-- ---------------------------------------------------------------------------
-- Validation on write
-- ---------------------------------------------------------------------------
\set VERBOSITY default
INSERT INTO loyalty.segment (code, name, rule) VALUES ('x', 'X', '{"inactive": "90 days"}');
INSERT INTO loyalty.segment (code, name, rule) VALUES ('x', 'X', '{"any_of": [{"rfm": ["lost"]}, {"inactive_for": "soon"}]}');
INSERT INTO loyalty.segment (code, name, rule) VALUES ('x', 'X', '{"within": "30 days"}');
INSERT INTO loyalty.segment (code, name, rule) VALUES ('x', 'X', '{"purchases": {"min": 3, "max": 2}}');
INSERT INTO loyalty.segment (code, name, rule) VALUES ('x', 'X', '{"spend": {"min": 1.005}}');
INSERT INTO loyalty.segment (code, name, rule) VALUES ('x', 'X', '{"bought": {"colour": "red"}}');
INSERT INTO loyalty.segment (code, name, rule) VALUES ('x', 'X', '{"not": {"tiers": []}}');
INSERT INTO loyalty.segment (code, name, rule) VALUES ('x', 'X', '{"used_promotion": 5}');
UPDATE loyalty.segment SET rule = '{"rfm": "lost"}';   -- no row: nothing to refuse
SELECT count(*) AS segments FROM loyalty.segment;

-- ---------------------------------------------------------------------------
-- A small history as of T0 = 2026-06-01 00:00 UTC, in the fact tables
-- ---------------------------------------------------------------------------
INSERT INTO loyalty.category (code, parent, name) VALUES
    ('care', NULL, 'Denture care'), ('fixatives', 'care', 'Fixatives'), ('cleaners', 'care', 'Cleaners');
INSERT INTO loyalty.product (sku, name, category, price) VALUES
    ('F1', 'Corega fixative', 'fixatives', 100.00), ('C1', 'Corega tablets', 'cleaners', 100.00);
SELECT loyalty.register('+7912000000' || i) FROM generate_series(1, 4) i;
CREATE FUNCTION pg_temp.buy(op text, cust bigint, days_after int, item text, money numeric)
RETURNS void LANGUAGE sql AS $$
    INSERT INTO loyalty.purchase (operation_id, customer_id, channel, at, amount, discount,
                                  redeemed, total, lines)
    VALUES (op, cust, 'pos', timestamptz '2026-06-01 00:00+00' + days_after * interval '1 day',
            money, 0, 0, money, 1);
    INSERT INTO loyalty.purchase_line (operation_id, line_index, sku, qty, price, amount,
                                       discount, redeemed, total)
    VALUES (op, 0, item, 1, money, money, 0, 0, money);
$$;
-- 1: fixative 10 and 40 days ago (600.00)
-- 2: fixative 100 days ago, cleaner 50 days ago (200.00)
-- 3: cleaner 95 days ago (700.00)
-- 4: nothing yet
SELECT pg_temp.buy('a1', 1, -10, 'F1', 300), pg_temp.buy('a2', 1, -40, 'F1', 300),
       pg_temp.buy('b1', 2, -100, 'F1', 100), pg_temp.buy('b2', 2, -50, 'C1', 100),
       pg_temp.buy('c1', 3, -95, 'C1', 700);

INSERT INTO loyalty.segment (code, name, rule) VALUES
    ('sleepers', 'Bought before, nothing for 90 days', '{"inactive_for": "90 days"}'),
    ('fixative_only', 'Fixatives but never a cleaner this year',
     '{"bought": {"categories": ["fixatives"]}, "not_bought": {"categories": ["cleaners"]}, "within": "365 days"}'),
    ('frequent', 'Two purchases in 90 days', '{"purchases": {"min": 2, "within": "90 days"}}'),
    ('big', 'Spent 500 or more', '{"spend": {"min": 500}}'),
    ('not_big_active', 'Active in 60 days but not big',
     '{"active_within": "60 days", "not": {"any_of": [{"spend": {"min": 500}}, {"used_promotion": "NONE"}]}}');

-- first refresh at T0: every segment is new, so each is computed in full
--   sleepers: 3 (last purchase 95 days ago); not 2 (50 days ago)
--   fixative_only: 1 (2 bought a cleaner)
--   frequent: 1 (10 and 40 days ago)
--   big: 1 (600.00), 3 (700.00)
--   not_big_active: 2 (active 50 days ago, 200.00)
SELECT loyalty.refresh_segments(as_of => '2026-06-01 00:00+00');
CREATE FUNCTION pg_temp.members()
RETURNS TABLE (segment text, customers text) LANGUAGE sql AS $$
    SELECT g.code, coalesce(string_agg(m.customer_id::text || '@' || to_char(m.since, 'MM-DD'), ', '
                                       ORDER BY m.customer_id), '-')
      FROM loyalty.segment g LEFT JOIN loyalty.segment_member m ON m.segment = g.code
     GROUP BY g.code ORDER BY g.code
$$;
SELECT * FROM pg_temp.members();

-- ---------------------------------------------------------------------------
-- T1 = T0 + 51 days, by maintenance (incremental)
-- ---------------------------------------------------------------------------
-- 4 buys a fixative for 500.00 at T0 + 40 days: enters fixative_only, big
-- and not_big_active?  No: big (500 >= 500), so not not_big_active.
SELECT pg_temp.buy('d1', 4, 40, 'F1', 500);
-- to prove that only candidates are looked at, drop 3 from sleepers by
-- hand: 3 neither bought nor crossed a boundary, so the incremental run
-- leaves that alone (a full refresh puts 3 back)
DELETE FROM loyalty.segment_member WHERE segment = 'sleepers' AND customer_id = 3;
-- crossings between T0 and T1:
--   2's purchase of T0 - 50 days is now 101 days old: 2 enters sleepers,
--     and is no longer active within 60 days: leaves not_big_active
--   1's purchase of T0 - 40 days is now 91 days old: 1 leaves frequent
SELECT loyalty.run_maintenance('2026-07-22 00:00+00') IS NOT NULL AS ran;
SELECT * FROM pg_temp.members();
SELECT payload ->> 'segment' AS segment, customer_id, payload ->> 'change' AS change, payload ->> 'at' AS at
  FROM loyalty.event WHERE kind = 'segment_changed'
 -- (one event per segment, customer and refresh; the order of one
 -- statement's rows is the plan's)
 ORDER BY payload ->> 'at', payload ->> 'segment', customer_id;

-- a full refresh restores 3 (entered again: one more event)
SELECT loyalty.refresh_segments(full => true, as_of => '2026-07-22 00:00+00');
SELECT * FROM pg_temp.members() WHERE segment = 'sleepers';

-- a marketer changes a rule: the next maintenance run refreshes that
-- segment in full, with no manual step: big now needs 650.00, so 1 (600.00)
-- and 4 (500.00) leave, 3 (700.00) stays
UPDATE loyalty.segment SET rule = '{"spend": {"min": 650}}' WHERE code = 'big';
SELECT loyalty.run_maintenance('2026-07-22 01:00+00') IS NOT NULL AS ran;
SELECT * FROM pg_temp.members() WHERE segment = 'big';
SELECT payload ->> 'segment' AS segment, payload ->> 'change' AS change, count(*)
  FROM loyalty.event WHERE kind = 'segment_changed'
 GROUP BY 1, 2 ORDER BY 1, 2;
-- the refresh messages are the customers' events (no template: no text)
SELECT count(*) AS segment_events_with_message
  FROM loyalty.event WHERE kind = 'segment_changed' AND message IS NOT NULL;

-- ---------------------------------------------------------------------------
-- Targeting: promotion.segments (member of any) and segments_exclude
-- (member of none).  Members now: fixative_only 1, 4; sleepers 2, 3.
-- NEXT goes to fixative buyers who have not been sent it yet (members of
-- "sent"); SLEEPERS to sleepers; NOTSLEEP to everyone but sleepers,
-- anonymous checks included.
-- ---------------------------------------------------------------------------
INSERT INTO loyalty.segment (code, name) VALUES ('sent', 'Already sent the offer');
INSERT INTO loyalty.segment_member (segment, customer_id) VALUES ('sent', 4);
INSERT INTO loyalty.promotion (code, name, mechanic, rule, segments, segments_exclude) VALUES
    ('NEXT', 'The next send', 'percent_off', '{"products": {"all": true}, "percent": 5}', '{fixative_only}', '{sent}'),
    ('SLEEPERS', 'Wake up', 'percent_off', '{"products": {"all": true}, "percent": 5}', '{sleepers}', NULL),
    ('NOTSLEEP', 'All but sleepers', 'percent_off', '{"products": {"all": true}, "percent": 5}', NULL, '{sleepers, sent}');
SET loyalty.test_now = '2026-07-22 12:00+00';
SELECT who, (SELECT coalesce(string_agg(p ->> 'code', ',' ORDER BY p ->> 'code'), '-')
               FROM jsonb_array_elements(loyalty.calculate(jsonb_build_object(
                        'lines', '[{"sku": "F1", "qty": 1}]'::jsonb) || who) -> 'lines' -> 0 -> 'promotions') p) AS promotions
  FROM unnest(ARRAY['{}', '{"customer": 1}', '{"customer": 2}', '{"customer": 4}']::jsonb[]) AS who;
-- 1: NEXT, NOTSLEEP; 2: SLEEPERS; 4: nothing (sent, so neither NEXT nor NOTSLEEP)

-- ---------------------------------------------------------------------------
-- A merge ends the absorbed customer's memberships at once, with their
-- segment_changed events (before: they stayed until a full refresh, counted
-- in the segment and granted to).  Customer 3 (a sleeper) is merged into 2
-- (a sleeper too): 3 leaves big and sleepers; 2's memberships are unchanged.
-- ---------------------------------------------------------------------------
SELECT segment, customer_id FROM loyalty.segment_member WHERE customer_id IN (2, 3) ORDER BY 1, 2;
SELECT loyalty.merge_customers(2, 3) ->> 'keep' AS keep;
SELECT segment, customer_id FROM loyalty.segment_member WHERE customer_id IN (2, 3) ORDER BY 1, 2;
-- (3 never left a segment before: these two are the merge's)
SELECT customer_id, payload ->> 'segment' AS segment, payload ->> 'change' AS change
  FROM loyalty.event WHERE kind = 'segment_changed' AND customer_id = 3
   AND payload ->> 'change' = 'left'
 ORDER BY 2;

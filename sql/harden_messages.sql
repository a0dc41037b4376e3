--
-- Issue 14 item 1: nothing reaches ICU unchecked.  0.8 crashed the server
-- (SIGSEGV) on each of the statements marked "crashed": ICU's recursion on
-- deeply nested arguments, and a locale ICU could not parse meeting a date
-- or time argument.  Now they are clean errors, and a bad template stored
-- before the checks existed no longer stops take_events.
--
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS loyalty CASCADE;
CREATE EXTENSION loyalty;
RESET client_min_messages;
SET timezone = 'UTC';
\set VERBOSITY default

-- nesting: 4,000 levels crashed; 16 arguments nested is the most allowed
SELECT loyalty.format_message(repeat('{a, plural, other {', 4000) || '#' || repeat('}}', 4000), 'ru', '{"a": 1}');
SELECT loyalty.format_message(repeat('{a,select,other{', 200) || 'x' || repeat('}}', 200), 'ru', '{"a": 1}');
SELECT loyalty.format_message(repeat('{a, plural, other {', 16) || '#' || repeat('}}', 16), 'ru', '{"a": 21}') AS sixteen_deep;
SELECT loyalty.format_message(repeat('{a, plural, other {', 17) || '#' || repeat('}}', 17), 'ru', '{"a": 21}') AS seventeen_deep;
SELECT loyalty.format_message(repeat('{a, choice, 0#', 17) || 'x' || repeat('}', 17), 'ru', '{"a": 1}') AS choice_deep;
-- quoted braces are text, not nesting
SELECT loyalty.format_message(repeat('''{'' ', 40) || '{a, plural, other {# ''}''}}', 'en', '{"a": 2}') AS quoted;
-- length: at most 4096 bytes
SELECT length(loyalty.format_message(repeat('я', 2048), 'ru', '{}')) AS at_the_limit;
SELECT loyalty.format_message(repeat('я', 2049), 'ru', '{}');

-- locale: a bogus locale with a time argument crashed
SELECT loyalty.format_message('{x, time}', repeat('x', 20), '{"x": 1.5}');
SELECT loyalty.format_message('{x, date}', repeat('x', 12), '{"x": 1.5}');
SELECT loyalty.format_message('{x}', 'zz', '{"x": 1}');
SELECT loyalty.format_message('{x}', 'ru.UTF-8', '{"x": 1}');
SELECT loyalty.format_message('{x}', repeat('ru_', 30), '{"x": 1}');
SELECT loyalty.format_message('{x}', '', '{"x": 1}');
-- locales ICU knows, in ICU's form or as BCP 47 tags, with keywords
SELECT l, loyalty.format_message('{n, plural, one {# one} few {# few} many {# many} other {# other}}', l, '{"n": 21}')
  FROM unnest(ARRAY['ru', 'ru_RU', 'ru-RU', 'en_US', 'en-US-u-ca-buddhist', 'uk@calendar=gregorian', 'pl']) AS l;

-- arguments: a JSON boolean crashed (read as an array or object); found by the fuzz part
SELECT loyalty.format_message('{x} {y} {z}', 'en', '{"x": true, "y": false, "z": [1, {"a": null}]}') AS json_args;

-- stored: the trigger refuses what format_message refuses (LY006, naming the field)
SET ROLE loyalty_marketer;
INSERT INTO loyalty.message_template VALUES
    ('points_earned', 'ru', repeat('{points, plural, other {', 4000) || '#' || repeat('}}', 4000));
INSERT INTO loyalty.message_template VALUES ('points_earned', 'ru', repeat('x', 4097));
INSERT INTO loyalty.message_template VALUES ('points_earned', 'zz', '{points}');
-- (the locale CHECK comes after the trigger, which crashed in ICU first)
INSERT INTO loyalty.message_template VALUES ('points_earned', repeat('x', 20), '{points, time}');
UPDATE loyalty.message_template SET locale = 'xx';
RESET ROLE;

-- a bad row stored before 0.9 checked templates (the trigger off stands in
-- for that) no longer stops the outbox: take_events warns and falls back to
-- the extension's template; a locale ICU does not know falls back to en
ALTER TABLE loyalty.message_template DISABLE TRIGGER message_template_validate;
INSERT INTO loyalty.message_template VALUES
    ('points_earned', 'ru', repeat('{points, plural, other {', 4000) || '#' || repeat('}}', 4000)),
    ('points_expired', 'ru', 'Сгорело {points');
ALTER TABLE loyalty.message_template ENABLE TRIGGER message_template_validate;
INSERT INTO loyalty.account_type (code, name, redeem_share) VALUES ('main', 'Бонусы', 0.9);
SELECT loyalty.register('+79123456789');
SELECT loyalty.adjust('{"operation_id": "A1", "customer": 1, "account": "main", "points": 21, "reason": "gift"}') ? 'balance';
SELECT kind, message FROM loyalty.take_events(10) ORDER BY id;
SELECT loyalty.event_message('points_earned', '{"points": 5, "account": "main"}', repeat('x', 20)) AS bogus_locale;
SELECT loyalty.event_message('points_expired', '{"points": 5, "account": "main"}') AS skipped_own;
INSERT INTO loyalty.setting (key, value) VALUES ('locale', 'zz');
SELECT loyalty.adjust('{"operation_id": "A2", "customer": 1, "account": "main", "points": 2, "reason": "gift"}') ? 'balance';
SELECT kind, message FROM loyalty.take_events(10) ORDER BY id;
-- nothing crashed: the session is the one that started
SELECT count(*) AS events_taken FROM loyalty.event WHERE taken_at IS NOT NULL;

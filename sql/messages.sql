--
-- Customer messages: ICU MessageFormat templates with plurals per locale.
--
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS loyalty CASCADE;
CREATE EXTENSION loyalty;
RESET client_min_messages;
SET timezone = 'UTC';

-- Russian plurals: 1 балл, 2 балла, 5 баллов, 11 баллов, 21 балл, 1.5 балла
SELECT n, loyalty.format_message(
         '{points, plural, one {# балл} few {# балла} many {# баллов} other {# балла}}',
         'ru', jsonb_build_object('points', n)) AS ru
  FROM unnest(ARRAY[0, 1, 2, 4, 5, 11, 12, 21, 22, 25, 101, 111, 1000, 1.5]::numeric[]) AS n;
SELECT loyalty.format_message('{points, plural, one {# point} other {# points}}', 'en',
                              '{"points": 1}') AS one,
       loyalty.format_message('{points, plural, one {# point} other {# points}}', 'en',
                              '{"points": 21}') AS twenty_one;
-- strings and several arguments
SELECT loyalty.format_message('{name}, у вас {points, plural, one {# балл} few {# балла} many {# баллов} other {# балла}}',
                              'ru', '{"name": "Анна", "points": 3}');
SELECT loyalty.format_message('{points', 'ru', '{}');

-- the templates in effect: the defaults, until the operator sets their own
SELECT kind, locale, is_set FROM loyalty.message_templates WHERE locale = 'ru' ORDER BY kind;
SELECT loyalty.event_message('points_expiring',
         '{"points": 21, "account": "main", "expires_at": "2026-12-01T10:00:00+03:00"}') AS ru_default;
SELECT loyalty.event_message('points_expiring',
         '{"points": 21, "account": "main", "expires_at": "2026-12-01T10:00:00+03:00"}', 'en') AS en_default;
INSERT INTO loyalty.message_template VALUES
    ('points_earned', 'ru', '+{points, plural, one {# балл} few {# балла} many {# баллов} other {# балла}} на счёт «{account}»');
INSERT INTO loyalty.account_type (code, name, redeem_share) VALUES ('main', 'Бонусы', 0.9);
SELECT loyalty.event_message('points_earned', '{"points": 2, "account": "main"}') AS ru_own;

-- a template is checked when written: ICU syntax, and only the arguments of its kind
INSERT INTO loyalty.message_template VALUES ('points_earned', 'en', 'You earned {points, plural, one {# point}');
INSERT INTO loyalty.message_template VALUES ('points_earned', 'en', 'You earned {pts} points');
INSERT INTO loyalty.message_template VALUES ('points_lost', 'en', 'Lost {points}');
INSERT INTO loyalty.message_template VALUES ('points_earned', 'english', 'x');

-- events get their message when they are handed over
SELECT loyalty.register('+79123456789');
SELECT loyalty.adjust('{"operation_id": "A1", "customer": 1, "account": "main", "points": 21, "reason": "gift"}') ? 'balance';
SELECT loyalty.adjust('{"operation_id": "A2", "customer": 1, "account": "main", "points": 5, "reason": "gift"}') ? 'balance';
SELECT kind, message FROM loyalty.take_events(10) ORDER BY id;

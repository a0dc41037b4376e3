/*
 * loyalty--0.3--0.4.sql: tiers, coupons, certificates, subscriptions and
 * customer messages.
 */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION loyalty UPDATE TO '0.4'" to load this file. \quit

-- ---------------------------------------------------------------------------
-- Customer messages (SPEC §11): ICU MessageFormat templates per event kind
-- and locale.  The extension's defaults live in message_template_default (not
-- dumped); message_template holds the operator's own (dumped), and
-- message_templates shows what is in effect.
-- ---------------------------------------------------------------------------
CREATE FUNCTION loyalty.format_message(template text, locale text, args jsonb) RETURNS text
    AS 'MODULE_PATHNAME', 'loyalty_format_message'
    LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION loyalty.format_message(text, text, jsonb) IS
    'Formats an ICU MessageFormat template with named arguments (plurals per locale: 1 балл, 2 балла, 5 баллов)';

CREATE FUNCTION loyalty.message_template_validate() RETURNS trigger
    AS 'MODULE_PATHNAME', 'message_template_validate' LANGUAGE C;
COMMENT ON FUNCTION loyalty.message_template_validate() IS
    'Refuses a template ICU cannot parse or one naming an argument its event kind lacks (LY006)';

CREATE TABLE loyalty.message_template_default (
    kind     text NOT NULL,
    locale   text NOT NULL,
    template text NOT NULL,
    PRIMARY KEY (kind, locale)
);
COMMENT ON TABLE loyalty.message_template_default IS
    'Message templates shipped with the extension (read-only; override them in message_template)';
CREATE TRIGGER message_template_default_validate BEFORE INSERT OR UPDATE ON loyalty.message_template_default
    FOR EACH ROW EXECUTE FUNCTION loyalty.message_template_validate();

INSERT INTO loyalty.message_template_default (kind, locale, template) VALUES
    ('points_earned', 'ru', 'Начислено {points, plural, one {# балл} few {# балла} many {# баллов} other {# балла}}'),
    ('points_earned', 'en', 'You earned {points, plural, one {# point} other {# points}}'),
    ('points_available', 'ru', '{points, plural, one {Доступен # балл} few {Доступно # балла} many {Доступно # баллов} other {Доступно # балла}}'),
    ('points_available', 'en', '{points, plural, one {# point is} other {# points are}} now available'),
    ('points_expiring', 'ru', '{date} сгорит {points, plural, one {# балл} few {# балла} many {# баллов} other {# балла}}'),
    ('points_expiring', 'en', '{points, plural, one {# point expires} other {# points expire}} on {date}'),
    ('points_expired', 'ru', 'Сгорело {points, plural, one {# балл} few {# балла} many {# баллов} other {# балла}}'),
    ('points_expired', 'en', '{points, plural, one {# point has} other {# points have}} expired'),
    ('tier_changed', 'ru', 'Ваш уровень теперь: {tier}'),
    ('tier_changed', 'en', 'Your level is now {tier}'),
    ('coupon_issued', 'ru', 'Купон {code} на следующую покупку, действует до {date}'),
    ('coupon_issued', 'en', 'Coupon {code} for your next purchase, valid until {date}');

CREATE TABLE loyalty.message_template (
    kind     text NOT NULL,
    locale   text NOT NULL CONSTRAINT message_template_locale_format
                           CHECK (locale ~ '^[a-z]{2,3}(_[A-Z]{2})?$'),
    template text NOT NULL,
    PRIMARY KEY (kind, locale)
);
COMMENT ON TABLE loyalty.message_template IS
    'The operator''s message templates per event kind and locale (ICU MessageFormat); override the defaults';
CREATE TRIGGER message_template_validate BEFORE INSERT OR UPDATE ON loyalty.message_template
    FOR EACH ROW EXECUTE FUNCTION loyalty.message_template_validate();

CREATE VIEW loyalty.message_templates AS
    SELECT k.kind, k.locale, coalesce(t.template, d.template) AS template, t.template IS NOT NULL AS is_set
      FROM (SELECT kind, locale FROM loyalty.message_template_default
            UNION SELECT kind, locale FROM loyalty.message_template) AS k
      LEFT JOIN loyalty.message_template t USING (kind, locale)
      LEFT JOIN loyalty.message_template_default d USING (kind, locale);
COMMENT ON VIEW loyalty.message_templates IS 'Message templates in effect: the operator''s, else the defaults';

CREATE FUNCTION loyalty.event_message(kind text, payload jsonb, locale text DEFAULT NULL) RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
    WITH s AS (
        SELECT coalesce(event_message.locale, loyalty.setting_value('locale')) AS locale,
               loyalty.setting_value('timezone') AS tz
    ), t AS (
        -- the locale's template, else the language's, else English
        SELECT m.template
          FROM loyalty.message_templates m, s
         WHERE m.kind = event_message.kind
           AND m.locale IN (s.locale, split_part(s.locale, '_', 1), 'en')
         ORDER BY m.locale = s.locale DESC, m.locale = split_part(s.locale, '_', 1) DESC
         LIMIT 1
    )
    SELECT loyalty.format_message(t.template, s.locale, jsonb_strip_nulls(jsonb_build_object(
        'points', payload -> 'points',
        'account', coalesce((SELECT a.name FROM loyalty.account_type a
                              WHERE a.code = payload ->> 'account'), payload ->> 'account'),
        'available_date', to_char((payload ->> 'available_at')::timestamptz AT TIME ZONE s.tz, 'DD.MM.YYYY'),
        'expires_date', to_char((payload ->> 'expires_at')::timestamptz AT TIME ZONE s.tz, 'DD.MM.YYYY'),
        'date', to_char(coalesce(payload ->> 'expires_at', payload ->> 'valid_until')::timestamptz
                        AT TIME ZONE s.tz, 'DD.MM.YYYY'),
        'tier', payload -> 'tier_name',
        'old_tier', payload -> 'old_tier_name',
        'code', payload -> 'code',
        'percent', payload -> 'percent',
        'value', payload -> 'value')))
      FROM s, t
$$;
COMMENT ON FUNCTION loyalty.event_message(text, jsonb, text) IS
    'The customer message of an event, from the template of its kind in the locale (program locale by default)';

-- take_events now renders each message when it hands the event over (off
-- the check's hot path)
CREATE OR REPLACE FUNCTION loyalty.take_events(max int) RETURNS SETOF loyalty.event
    LANGUAGE sql VOLATILE STRICT PARALLEL UNSAFE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
    UPDATE loyalty.event e
       SET taken_at = now(),
           message = coalesce(e.message, loyalty.event_message(e.kind, e.payload))
     WHERE e.id IN (SELECT t.id FROM loyalty.event t WHERE t.taken_at IS NULL
                     ORDER BY t.id LIMIT max FOR UPDATE SKIP LOCKED)
    RETURNING e.*
$$;
COMMENT ON FUNCTION loyalty.take_events(int) IS
    'Hands over up to max untaken events, oldest first, each exactly once (SKIP LOCKED), with the message rendered';

-- NOTIFY loyalty_event once per statement that writes events (setting loyalty.notify)
CREATE FUNCTION loyalty.event_notify() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    PERFORM pg_notify('loyalty_event', '');
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION loyalty.event_notify() IS 'Sends NOTIFY loyalty_event (when loyalty.notify is on)';
CREATE TRIGGER event_notify AFTER INSERT ON loyalty.event
    FOR EACH STATEMENT
    WHEN (pg_catalog.current_setting('loyalty.notify', true) IS DISTINCT FROM 'off')
    EXECUTE FUNCTION loyalty.event_notify();

SELECT pg_catalog.pg_extension_config_dump('loyalty.message_template', '');

REVOKE ALL ON loyalty.message_template, loyalty.message_template_default FROM PUBLIC;
REVOKE ALL ON FUNCTION loyalty.event_message(text, jsonb, text), loyalty.event_notify(),
    loyalty.message_template_validate() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.format_message(text, text, jsonb) TO PUBLIC;
GRANT SELECT, INSERT, UPDATE, DELETE ON loyalty.message_template TO loyalty_marketer;
GRANT SELECT ON loyalty.message_template, loyalty.message_template_default, loyalty.message_templates
    TO loyalty_marketer, loyalty_analyst;
GRANT EXECUTE ON FUNCTION loyalty.event_message(text, jsonb, text) TO loyalty_marketer, loyalty_admin;
GRANT ALL ON loyalty.message_template, loyalty.message_template_default TO loyalty_admin;
GRANT SELECT ON loyalty.message_templates TO loyalty_admin;

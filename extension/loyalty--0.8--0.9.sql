/*
 * loyalty--0.8--0.9.sql: hardening (issue 14).
 *
 * Each section below is one defect found by an attack on 0.8, with what
 * changed in the schema to close it.  Behaviour that needs no schema
 * change lives in the C library only; the README's changelog lists both.
 */
\echo Use "ALTER EXTENSION loyalty UPDATE TO '0.9'" to load this file. \quit

-- ---------------------------------------------------------------------------
-- Issue 14 item 1: format_message crashed the server
--
-- ICU recursed once per nested argument and overflowed the stack (4,000
-- levels), and a locale with a language of 12 letters or more reached a
-- {x, time} argument as a Locale without a name, which ICU dereferenced.
-- The C library now refuses, before ICU sees them, a template over 4 kB or
-- nesting arguments more than 16 deep and a locale ICU has no data for:
-- 22023 from format_message, LY006 (naming the field) from the template
-- trigger.  A template stored before that must not stop the outbox either:
-- event_message (and so take_events) renders with render_message, which
-- tries the operator's template, then the extension's, for the locale, its
-- language, then English, skipping with a WARNING each that cannot be used,
-- and formats in en when the locale itself is unknown.
-- ---------------------------------------------------------------------------
CREATE FUNCTION loyalty.render_message(templates text[], locale text, args jsonb) RETURNS text
    AS 'MODULE_PATHNAME', 'loyalty_render_message'
    LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION loyalty.render_message(text[], text, jsonb) IS
    'The first of the templates that formats for the locale with the arguments (a WARNING for each skipped; en for an unknown locale)';
REVOKE ALL ON FUNCTION loyalty.render_message(text[], text, jsonb) FROM PUBLIC;

CREATE OR REPLACE FUNCTION loyalty.event_message(kind text, payload jsonb, locale text DEFAULT NULL) RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
    WITH s AS (
        SELECT coalesce(event_message.locale, loyalty.setting_value('locale')) AS locale,
               loyalty.setting_value('timezone') AS tz
    ), t AS (
        -- the locale's templates, else the language's, else English; the
        -- operator's before the extension's
        SELECT pg_catalog.array_agg(c.template ORDER BY c.rank) AS templates
          FROM s, LATERAL (
                SELECT m.template, 0 AS own, m.locale FROM loyalty.message_template m
                 WHERE m.kind = event_message.kind
                UNION ALL
                SELECT d.template, 1, d.locale FROM loyalty.message_template_default d
                 WHERE d.kind = event_message.kind) AS c0,
               LATERAL (SELECT c0.template,
                               CASE c0.locale WHEN s.locale THEN 0
                                              WHEN split_part(s.locale, '_', 1) THEN 2
                                              ELSE 4 END + c0.own AS rank) AS c
         WHERE c0.locale IN (s.locale, split_part(s.locale, '_', 1), 'en')
    )
    SELECT loyalty.render_message(t.templates, s.locale, jsonb_strip_nulls(jsonb_build_object(
        'points', payload -> 'points',
        'account', coalesce((SELECT a.name FROM loyalty.account_type a
                              WHERE a.code = payload ->> 'account'), payload ->> 'account'),
        'available_date', to_char((payload ->> 'available_at')::timestamptz AT TIME ZONE s.tz, 'DD.MM.YYYY'),
        'expires_date', to_char((payload ->> 'expires_at')::timestamptz AT TIME ZONE s.tz, 'DD.MM.YYYY'),
        'date', coalesce(to_char(coalesce(payload ->> 'expires_at', payload ->> 'valid_until')::timestamptz
                                 AT TIME ZONE s.tz, 'DD.MM.YYYY'), 'none'),
        'tier', payload -> 'tier_name',
        'old_tier', payload -> 'old_tier_name',
        'code', payload -> 'code',
        'kind', payload -> 'kind',
        'percent', payload -> 'percent',
        'value', payload -> 'value')))
      FROM s, t
$$;

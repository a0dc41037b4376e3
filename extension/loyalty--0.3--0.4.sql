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
    ('coupon_issued', 'ru', '{kind, select, certificate {Сертификат {code} на {value, number} ₽} other {Купон {code} на следующую покупку}}{date, select, none {} other {, действует до {date}}}'),
    ('coupon_issued', 'en', '{kind, select, certificate {Gift certificate {code} worth {value, number}} other {Coupon {code} for your next purchase}}{date, select, none {} other {, valid until {date}}}');

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

-- ---------------------------------------------------------------------------
-- Coupons and gift certificates (SPEC §6).  Generated codes are 12 symbols
-- of an unambiguous alphabet with a check symbol (src/coupon_code.c); a
-- marketer may also load codes of their own (upper case).
-- ---------------------------------------------------------------------------
CREATE FUNCTION loyalty.new_coupon_code() RETURNS text
    AS 'MODULE_PATHNAME', 'loyalty_new_coupon_code'
    LANGUAGE C VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION loyalty.new_coupon_code() IS
    'A new random code XXXX-XXXX-XXXX: 55 random bits from a strong source and a check symbol';

CREATE FUNCTION loyalty.coupon_code(code text) RETURNS text
    AS 'MODULE_PATHNAME', 'loyalty_coupon_code'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION loyalty.coupon_code(text) IS
    'Canonical form of a generated code typed any way (case, dashes, I/L/O look-alikes); 22P02 on a typo';

CREATE TABLE loyalty.coupon (
    code        text PRIMARY KEY
                CONSTRAINT coupon_code_format CHECK (code ~ '^[0-9A-Z][0-9A-Z-]{2,38}[0-9A-Z]$'),
    promotion   text REFERENCES loyalty.promotion (code) ON UPDATE CASCADE,
    customer_id bigint REFERENCES loyalty.customer (id),
    kind        text NOT NULL
                CONSTRAINT coupon_kind_known CHECK (kind IN ('promo', 'personal', 'certificate')),
    value       loyalty.amount,
    balance     loyalty.amount,
    percent     loyalty.percent,
    min_total   loyalty.amount NOT NULL DEFAULT 0,
    valid_from  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    valid_until timestamptz,
    max_uses    int NOT NULL DEFAULT 1 CONSTRAINT coupon_max_uses_positive CHECK (max_uses > 0),
    uses        int NOT NULL DEFAULT 0,
    status      text NOT NULL DEFAULT 'active'
                CONSTRAINT coupon_status_known CHECK (status IN ('active', 'used', 'void')),
    issued_by   text REFERENCES loyalty.operation (operation_id),
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CONSTRAINT coupon_uses_within_max CHECK (uses >= 0 AND uses <= max_uses),
    CONSTRAINT coupon_valid_period CHECK (valid_until > valid_from),
    CONSTRAINT coupon_certificate_has_value CHECK (
        kind <> 'certificate' OR (value > 0 AND balance IS NOT NULL AND balance <= value)),
    CONSTRAINT coupon_personal_has_customer CHECK (kind <> 'personal' OR customer_id IS NOT NULL),
    CONSTRAINT coupon_does_something CHECK (
        kind = 'certificate' OR promotion IS NOT NULL OR percent > 0 OR value > 0)
);
CREATE INDEX coupon_customer_idx ON loyalty.coupon (customer_id) WHERE customer_id IS NOT NULL;
CREATE INDEX coupon_issued_by_idx ON loyalty.coupon (issued_by) WHERE issued_by IS NOT NULL;
COMMENT ON TABLE loyalty.coupon IS
    'Coupons (promo: mass codes of a promotion; personal: bound to a customer) and gift certificates (balance spent partially)';
COMMENT ON COLUMN loyalty.coupon.percent IS
    'A coupon that is itself a discount (a bounce-back coupon): percent off the check';
COMMENT ON COLUMN loyalty.coupon.min_total IS 'The check total a purchase needs to use the coupon';
COMMENT ON COLUMN loyalty.coupon.issued_by IS
    'The purchase that issued it (bounce-back, certificate per amount): voided if that purchase is fully refunded unused';

CREATE TABLE loyalty.coupon_use (
    code         text NOT NULL REFERENCES loyalty.coupon (code) ON UPDATE CASCADE,
    operation_id text NOT NULL REFERENCES loyalty.operation (operation_id),
    customer_id  bigint REFERENCES loyalty.customer (id),
    amount       numeric(14,2) NOT NULL DEFAULT 0,
    at           timestamptz NOT NULL,
    PRIMARY KEY (code, operation_id)
);
CREATE INDEX coupon_use_customer_idx ON loyalty.coupon_use (customer_id, code);
COMMENT ON TABLE loyalty.coupon_use IS
    'Every use of a coupon or certificate by a purchase (amount: certificate money spent); a refund that restores it writes a negative amount';

CREATE FUNCTION loyalty.issue_coupons(promotion text, count int, max_uses int DEFAULT 1,
                                      valid_until timestamptz DEFAULT NULL,
                                      customer text DEFAULT NULL)
    RETURNS SETOF text
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    cid bigint;
    made int := 0;
    batch int;
    c text;
BEGIN
    IF promotion IS NULL OR count IS NULL OR max_uses IS NULL THEN
        RAISE EXCEPTION 'promotion, count and max_uses are required' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM loyalty.promotion p WHERE p.code = issue_coupons.promotion) THEN
        RAISE EXCEPTION 'promotion "%" not found', promotion
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'Coupons unlock a promotion; create it first (usually with requires_coupon).';
    END IF;
    IF count < 1 OR count > 1000000 THEN
        RAISE EXCEPTION 'count must be between 1 and 1000000, not %', count
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF max_uses < 1 THEN
        RAISE EXCEPTION 'max_uses must be positive, not %', max_uses
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF valid_until IS NOT NULL AND valid_until <= now() THEN
        RAISE EXCEPTION 'valid_until must be in the future' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF customer IS NOT NULL THEN
        cid := loyalty.find_customer(customer);
        IF cid IS NULL THEN
            RAISE EXCEPTION 'customer "%" not found', customer USING ERRCODE = 'LY001';
        END IF;
    END IF;
    -- 55 random bits a code: a collision is vanishingly rare, and simply retried
    WHILE made < count LOOP
        batch := 0;
        FOR c IN
            INSERT INTO loyalty.coupon AS k (code, promotion, customer_id, kind, valid_until, max_uses)
            SELECT loyalty.new_coupon_code(), issue_coupons.promotion, cid,
                   CASE WHEN cid IS NULL THEN 'promo' ELSE 'personal' END,
                   issue_coupons.valid_until, issue_coupons.max_uses
              FROM generate_series(1, count - made)
            ON CONFLICT ON CONSTRAINT coupon_pkey DO NOTHING
            RETURNING k.code
        LOOP
            batch := batch + 1;
            RETURN NEXT c;
        END LOOP;
        made := made + batch;
    END LOOP;
END
$$;
COMMENT ON FUNCTION loyalty.issue_coupons(text, int, int, timestamptz, text) IS
    'Issues count coupon codes unlocking a promotion (mass codes with max_uses; personal when customer is given)';

CREATE FUNCTION loyalty.issue_certificate(value numeric, valid_until timestamptz DEFAULT NULL,
                                          customer text DEFAULT NULL)
    RETURNS text
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    cid bigint;
    new_code text;
BEGIN
    IF value IS NULL OR value <= 0 OR value <> round(value, 2) OR value >= 1000000000000 THEN
        RAISE EXCEPTION 'invalid certificate value: %', value
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'A certificate is worth a positive amount with at most 2 decimals.';
    END IF;
    IF valid_until IS NOT NULL AND valid_until <= now() THEN
        RAISE EXCEPTION 'valid_until must be in the future' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF customer IS NOT NULL THEN
        cid := loyalty.find_customer(customer);
        IF cid IS NULL THEN
            RAISE EXCEPTION 'customer "%" not found', customer USING ERRCODE = 'LY001';
        END IF;
    END IF;
    LOOP
        INSERT INTO loyalty.coupon AS k (code, customer_id, kind, value, balance, valid_until, max_uses)
        VALUES (loyalty.new_coupon_code(), cid, 'certificate', round(value, 2), round(value, 2),
                valid_until, 1000000)
        ON CONFLICT ON CONSTRAINT coupon_pkey DO NOTHING
        RETURNING k.code INTO new_code;
        EXIT WHEN new_code IS NOT NULL;
    END LOOP;
    RETURN new_code;
END
$$;
COMMENT ON FUNCTION loyalty.issue_certificate(numeric, timestamptz, text) IS
    'Issues a gift certificate: usable in any channel, spent partially, the balance kept';

-- ---------------------------------------------------------------------------
-- Subscriptions (SPEC §6): buying a plan's SKU starts or extends it
-- ---------------------------------------------------------------------------
CREATE TABLE loyalty.subscription_plan (
    code     text PRIMARY KEY CHECK (code <> ''),
    name     text NOT NULL,
    sku      text NOT NULL,
    products jsonb NOT NULL,
    duration interval NOT NULL CONSTRAINT subscription_plan_duration_positive CHECK (duration > interval '0')
);
COMMENT ON TABLE loyalty.subscription_plan IS
    'Subscription plans: buying sku starts or extends a subscription of duration on the products (a selector)';

CREATE FUNCTION loyalty.subscription_plan_validate() RETURNS trigger
    AS 'MODULE_PATHNAME', 'subscription_plan_validate' LANGUAGE C;
COMMENT ON FUNCTION loyalty.subscription_plan_validate() IS
    'Parses a plan''s product selector with the promotion parser (LY006)';
CREATE TRIGGER subscription_plan_validate BEFORE INSERT OR UPDATE ON loyalty.subscription_plan
    FOR EACH ROW EXECUTE FUNCTION loyalty.subscription_plan_validate();

CREATE TABLE loyalty.subscription (
    customer_id  bigint NOT NULL REFERENCES loyalty.customer (id),
    plan         text NOT NULL REFERENCES loyalty.subscription_plan (code) ON UPDATE CASCADE,
    starts_at    timestamptz NOT NULL,
    ends_at      timestamptz NOT NULL,
    operation_id text REFERENCES loyalty.operation (operation_id),
    PRIMARY KEY (customer_id, plan),
    CONSTRAINT subscription_period CHECK (ends_at > starts_at)
);
COMMENT ON TABLE loyalty.subscription IS
    'Customers'' subscriptions: subscription_price promotions apply while starts_at <= at < ends_at';

-- ---------------------------------------------------------------------------
-- Tiers (SPEC §3): the highest tier whose threshold the spend in tier_window
-- (money paid, net of refunds) reaches; the lowest rank otherwise.
-- ---------------------------------------------------------------------------
CREATE FUNCTION loyalty.tier_window(as_of timestamptz) RETURNS tstzrange
    LANGUAGE sql STABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT CASE WHEN w = 'previous_month' THEN
               tstzrange((date_trunc('month', as_of AT TIME ZONE tz) - interval '1 month') AT TIME ZONE tz,
                         date_trunc('month', as_of AT TIME ZONE tz) AT TIME ZONE tz, '[)')
           ELSE tstzrange(as_of - w::interval, as_of, '(]') END
      FROM (SELECT loyalty.setting_value('tier_window') AS w, loyalty.setting_value('timezone') AS tz) s
$$;
COMMENT ON FUNCTION loyalty.tier_window(timestamptz) IS
    'The spend window tiers are computed over at a moment: the last tier_window, or the previous calendar month';

CREATE FUNCTION loyalty.recalculate_tiers(as_of timestamptz DEFAULT pg_catalog.now(),
                                          only_customer bigint DEFAULT NULL) RETURNS int
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    moved int;
    w tstzrange := loyalty.tier_window(coalesce(as_of, now()));
BEGIN
    WITH spend AS (
        SELECT p.customer_id, sum(p.total - p.refunded) AS spend
          FROM loyalty.purchase p
         WHERE p.at <@ w AND p.customer_id IS NOT NULL
           AND (only_customer IS NULL OR p.customer_id = only_customer)
         GROUP BY p.customer_id
    ), target AS (
        SELECT c.id, c.tier AS old_tier,
               coalesce((SELECT t.code FROM loyalty.tier t
                          WHERE t.threshold <= coalesce(s.spend, 0)
                          ORDER BY t.rank DESC LIMIT 1),
                        (SELECT t.code FROM loyalty.tier t ORDER BY t.rank LIMIT 1)) AS new_tier
          FROM loyalty.customer c
          LEFT JOIN spend s ON s.customer_id = c.id
         WHERE c.status = 'active'
           AND (only_customer IS NULL OR c.id = only_customer)
    ), changed AS (
        UPDATE loyalty.customer c SET tier = t.new_tier
          FROM target t
         WHERE c.id = t.id AND c.tier IS DISTINCT FROM t.new_tier
        RETURNING c.id, t.old_tier, t.new_tier
    ), events AS (
        INSERT INTO loyalty.event (customer_id, kind, payload)
        SELECT ch.id, 'tier_changed', jsonb_build_object(
                   'tier', ch.new_tier, 'tier_name', nt.name,
                   'old_tier', ch.old_tier, 'old_tier_name', ot.name,
                   'direction', CASE WHEN ot.rank IS NULL OR nt.rank > ot.rank THEN 'up' ELSE 'down' END,
                   'as_of', coalesce(as_of, now()))
          FROM changed ch
          JOIN loyalty.tier nt ON nt.code = ch.new_tier
          LEFT JOIN loyalty.tier ot ON ot.code = ch.old_tier
         WHERE ch.old_tier IS NOT NULL
        RETURNING 1
    )
    SELECT count(*) INTO moved FROM changed;
    RETURN moved;
END
$$;
COMMENT ON FUNCTION loyalty.recalculate_tiers(timestamptz, bigint) IS
    'Moves customers (all, or one) to the tier their spend in tier_window reaches, up or down; a tier_changed event each; returns how many moved';

-- a customer enters the base in the lowest tier
CREATE FUNCTION loyalty.customer_initial_tier() RETURNS trigger
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF NEW.tier IS NULL THEN
        NEW.tier := (SELECT t.code FROM loyalty.tier t ORDER BY t.rank LIMIT 1);
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION loyalty.customer_initial_tier() IS 'Puts a new customer in the lowest tier';
CREATE TRIGGER customer_initial_tier BEFORE INSERT ON loyalty.customer
    FOR EACH ROW EXECUTE FUNCTION loyalty.customer_initial_tier();

-- maintenance now recalculates tiers too
CREATE OR REPLACE FUNCTION loyalty.run_maintenance(as_of timestamptz DEFAULT pg_catalog.now()) RETURNS jsonb
    LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    expired bigint;
BEGIN
    IF pg_is_in_recovery() THEN
        RETURN jsonb_build_object('skipped', 'standby');
    END IF;
    -- the same key as run_maintenance_proc: one run at a time
    IF NOT pg_try_advisory_xact_lock(19545, 1) THEN
        RETURN jsonb_build_object('skipped', 'another maintenance run is in progress');
    END IF;
    expired := loyalty.expire_points(as_of);
    RETURN jsonb_build_object('as_of', as_of, 'expired_points', expired,
                              'tier_changes', loyalty.recalculate_tiers(as_of))
           || loyalty.announce_lots(as_of);
END
$$;

CREATE OR REPLACE PROCEDURE loyalty.run_maintenance_proc(as_of timestamptz DEFAULT NULL, batch_lots int DEFAULT 5000)
    LANGUAGE plpgsql
    AS $$
DECLARE
    t        timestamptz := coalesce(as_of, pg_catalog.now());
    b        record;
    after_at timestamptz;
    after_id bigint;
    expired  bigint := 0;
    tiers    int;
    summary  jsonb;
BEGIN
    IF pg_catalog.pg_is_in_recovery() THEN
        RAISE NOTICE 'loyalty maintenance: standby, nothing to do';
        RETURN;
    END IF;
    IF NOT pg_catalog.pg_try_advisory_lock(19545, 1) THEN
        RAISE NOTICE 'loyalty maintenance: another run is in progress';
        RETURN;
    END IF;
    -- expiry in batches, each committed, so that no check waits for more than one batch
    LOOP
        SELECT * INTO b FROM loyalty.expire_batch(t, batch_lots, after_at, after_id);
        EXIT WHEN b.lots_seen = 0;
        expired := expired + b.points;
        after_at := b.last_expires_at;
        after_id := b.last_id;
        COMMIT;
    END LOOP;
    tiers := loyalty.recalculate_tiers(t);
    COMMIT;
    summary := loyalty.announce_lots(t);
    COMMIT;
    PERFORM pg_catalog.pg_advisory_unlock(19545, 1);
    RAISE NOTICE 'loyalty maintenance: expired % points, % tier changes, %', expired / 100, tiers, summary;
END
$$;

SELECT pg_catalog.pg_extension_config_dump('loyalty.coupon', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.coupon_use', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.subscription_plan', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.subscription', '');

REVOKE ALL ON loyalty.coupon, loyalty.coupon_use, loyalty.subscription_plan, loyalty.subscription FROM PUBLIC;
REVOKE ALL ON FUNCTION loyalty.new_coupon_code(), loyalty.coupon_code(text),
    loyalty.issue_coupons(text, int, int, timestamptz, text),
    loyalty.issue_certificate(numeric, timestamptz, text),
    loyalty.subscription_plan_validate(), loyalty.tier_window(timestamptz),
    loyalty.recalculate_tiers(timestamptz, bigint), loyalty.customer_initial_tier()
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.coupon_code(text) TO loyalty_cashier, loyalty_marketer, loyalty_admin;
GRANT EXECUTE ON FUNCTION loyalty.issue_coupons(text, int, int, timestamptz, text),
    loyalty.issue_certificate(numeric, timestamptz, text), loyalty.new_coupon_code()
    TO loyalty_marketer, loyalty_admin;
GRANT EXECUTE ON FUNCTION loyalty.issue_certificate(numeric, timestamptz, text) TO loyalty_cashier;
GRANT SELECT, INSERT, UPDATE, DELETE ON loyalty.subscription_plan TO loyalty_marketer;
GRANT SELECT ON loyalty.coupon, loyalty.subscription_plan TO loyalty_marketer;
GRANT SELECT ON loyalty.coupon_use, loyalty.subscription_plan, loyalty.subscription TO loyalty_analyst;
GRANT EXECUTE ON FUNCTION loyalty.tier_window(timestamptz), loyalty.recalculate_tiers(timestamptz, bigint)
    TO loyalty_admin;
GRANT ALL ON loyalty.coupon, loyalty.coupon_use, loyalty.subscription_plan, loyalty.subscription
    TO loyalty_admin;

-- ---------------------------------------------------------------------------
-- Virtual cards on restore.  A restore (or a migration) loads customers with
-- their historic created_at and brings their cards along: issuing a card
-- then would give every restored customer a second one.  A customer gets a
-- card automatically when created_at is the current transaction's time,
-- which is the column's default; issue_missing_cards covers the rest.
-- ---------------------------------------------------------------------------
DROP TRIGGER customer_issue_virtual_card ON loyalty.customer;
CREATE TRIGGER customer_issue_virtual_card AFTER INSERT ON loyalty.customer
    FOR EACH ROW WHEN (NEW.status <> 'merged' AND NEW.created_at = pg_catalog.now())
    EXECUTE FUNCTION loyalty.customer_issue_virtual_card();

CREATE FUNCTION loyalty.issue_missing_cards() RETURNS bigint
    LANGUAGE sql VOLATILE PARALLEL UNSAFE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
    WITH issued AS (
        INSERT INTO loyalty.card (number, customer_id, kind, issued_at)
        SELECT loyalty.next_card_number(), c.id, 'virtual', now()
          FROM loyalty.customer c
         WHERE c.status <> 'merged'
           AND NOT EXISTS (SELECT 1 FROM loyalty.card k WHERE k.customer_id = c.id)
         ORDER BY c.id
        RETURNING 1
    )
    SELECT count(*) FROM issued
$$;
COMMENT ON FUNCTION loyalty.issue_missing_cards() IS
    'Issues a virtual card to every customer without any card (after a migration that loaded customers with their own created_at); returns how many';
REVOKE ALL ON FUNCTION loyalty.issue_missing_cards() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.issue_missing_cards() TO loyalty_admin;

-- ---------------------------------------------------------------------------
-- Stored requests and responses compress with lz4, several times faster than
-- pglz for the few kilobytes of a check's response (a server built without
-- lz4 keeps pglz).
-- ---------------------------------------------------------------------------
DO $$
BEGIN
    ALTER TABLE loyalty.operation ALTER COLUMN request SET COMPRESSION lz4,
                                  ALTER COLUMN response SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    NULL;
END
$$;

-- the engine caches subscription plans with the rest of the configuration
CREATE TRIGGER config_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON loyalty.subscription_plan
    FOR EACH STATEMENT EXECUTE FUNCTION loyalty.config_changed();

-- time zone names are checked by PostgreSQL's zone loader (microseconds)
-- instead of a scan of pg_timezone_names (tens of milliseconds per row)
CREATE OR REPLACE FUNCTION loyalty.is_valid_timezone(tz text) RETURNS boolean
    AS 'MODULE_PATHNAME', 'loyalty_is_valid_timezone'
    LANGUAGE C STABLE STRICT PARALLEL SAFE;

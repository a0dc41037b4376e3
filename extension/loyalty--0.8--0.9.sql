/*
 * loyalty--0.8--0.9.sql: hardening (issue 14).
 *
 * Each section below is one defect found by an attack on 0.8, with what
 * changed in the schema to close it.  Behaviour that needs no schema
 * change lives in the C library only; the README's changelog lists both.
 */
\echo Use "ALTER EXTENSION loyalty UPDATE TO '0.9'" to load this file. \quit

-- ---------------------------------------------------------------------------
-- Issue 14 item 4: time travel through "at"
--
-- 0.8 trusted a request's "at" for everything: a purchase dated two days
-- ahead spent points still pending, a coupon past its validity applied when
-- "at" fell inside it, "at" in 2199 created a lot available in 2200.  Now a
-- writing or pricing call refuses (22023 naming "at") an "at" earlier than
-- the server's time minus max_backdate (an offline register's checks arrive
-- late) or later than the server's time plus max_clock_skew (a register's
-- clock runs a little fast).  Promotions are judged at "at"; what may be
-- spent, pending points and coupon validity at the server's time (C only).
-- The superuser GUC loyalty.test_now stands in for the server's clock in
-- tests and replays.
-- ---------------------------------------------------------------------------
INSERT INTO loyalty.setting_definition VALUES
    ('max_backdate',   '72 hours',  'How late a check may be sent: "at" no earlier than the server''s time minus this'),
    ('max_clock_skew', '5 minutes', 'How far a register''s clock may run ahead: "at" no later than the server''s time plus this');

CREATE FUNCTION loyalty.setting_validate_time_window() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    v interval;
BEGIN
    IF NEW.key NOT IN ('max_backdate', 'max_clock_skew') THEN
        RETURN NEW;
    END IF;
    BEGIN
        v := NEW.value::interval;
    EXCEPTION WHEN invalid_datetime_format OR datetime_field_overflow
                   OR interval_field_overflow THEN
        v := NULL;
    END;
    IF v IS NULL OR v < interval '0' OR v > interval '10 years' THEN
        RAISE EXCEPTION 'invalid value for setting "%": "%"', NEW.key, NEW.value
            USING ERRCODE = 'LY006',
                  DETAIL = format('Field "value" of setting "%s" must be %s.', NEW.key,
                                  'an interval from 0 to 10 years such as 72 hours');
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION loyalty.setting_validate_time_window() IS
    'Refuses a malformed max_backdate or max_clock_skew (LY006)';
REVOKE ALL ON FUNCTION loyalty.setting_validate_time_window() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.setting_validate_time_window() TO loyalty_admin;

CREATE TRIGGER setting_validate_time_window BEFORE INSERT OR UPDATE ON loyalty.setting
    FOR EACH ROW EXECUTE FUNCTION loyalty.setting_validate_time_window();

-- ---------------------------------------------------------------------------
-- Issue 14 item 8: a full refund gives the purchase's promotion uses back
--
-- usage_limit and per_customer_limit count only purchases that stand (SPEC
-- section 7): 0.8 kept the use of a refunded purchase, so the customer's
-- next check did not get a once-per-customer promotion and the single-use
-- coupon the refund restored was then rejected.  A purchase now records
-- which usage counters it incremented (promotion codes as they were then;
-- only promotions with a limit are counted, and per-customer ones only for
-- an identified customer), and the refund that leaves nothing of it takes
-- exactly those uses back; a partial refund keeps them.  Purchases
-- committed before 0.9 have empty lists: their refunds give nothing back,
-- as before, rather than a use they may never have counted.
-- ---------------------------------------------------------------------------
ALTER TABLE loyalty.purchase
    ADD COLUMN usage_counted text[] NOT NULL DEFAULT '{}',
    ADD COLUMN customer_usage_counted text[] NOT NULL DEFAULT '{}';
COMMENT ON COLUMN loyalty.purchase.usage_counted IS
    'Promotions whose promotion_usage counter this purchase incremented; its full refund decrements them';
COMMENT ON COLUMN loyalty.purchase.customer_usage_counted IS
    'Promotions whose promotion_customer_usage counter (of customer_id) this purchase incremented; its full refund decrements them';

-- ---------------------------------------------------------------------------
-- Issue 14 item 3: money minted by a cashier.
--
-- In 0.8 loyalty_cashier could call issue_certificate with any value up to
-- 10^12: a cashier printed a 1,000,000,000 certificate, and a 50,000 one
-- paid a 49,999.99 check, with no money recorded anywhere.  Selling a gift
-- certificate is a sale, so it becomes a line of a purchase:
--   - a product flagged gift_certificate sells one certificate per whole
--     unit, worth the line's unit price; the money is a normal purchase
--     line (revenue, refunds), the codes come back in the purchase's
--     "issued", and a refund of the line voids its unused certificates;
--   - issue_certificate is for the marketer and the admin only (grants,
--     campaigns, compensation), no longer for the cashier;
--   - setting certificate_max_value (50000.00) caps the value of one
--     certificate, from issue_certificate and from a certificate line.
-- A bearer code is cash (SPEC section 13): only the admin (and the API's
-- own SECURITY DEFINER functions, which print and accept codes) reads
-- loyalty.coupon and loyalty.coupon_use in clear.  Everyone else reads
-- coupon_masked / coupon_use_masked / event_masked, where a code keeps its
-- last characters only (loyalty.code_masked).  The cashier gets codes only
-- in the responses of the calls that issue them; the marketer gets them
-- when issue_coupons / issue_certificate returns them, the moment they
-- are printed.
-- ---------------------------------------------------------------------------
INSERT INTO loyalty.setting_definition VALUES
    ('certificate_max_value', '50000.00',
     'The largest value of one gift certificate (issue_certificate and certificate products)');

CREATE FUNCTION loyalty.certificate_max_value_validate() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF NOT (NEW.value ~ '^[0-9]{1,9}(\.[0-9]{1,2})?$' AND NEW.value::numeric > 0) THEN
        RAISE EXCEPTION 'invalid value for setting "%": "%"', NEW.key, NEW.value
            USING ERRCODE = 'LY006',
                  DETAIL = format('Field "value" of setting "%s" must be a positive amount below 1000000000 with at most 2 decimals.', NEW.key);
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION loyalty.certificate_max_value_validate() IS
    'Refuses a malformed certificate_max_value setting (LY006)';
CREATE TRIGGER setting_validate_certificate_max_value BEFORE INSERT OR UPDATE ON loyalty.setting
    FOR EACH ROW WHEN (NEW.key = 'certificate_max_value')
    EXECUTE FUNCTION loyalty.certificate_max_value_validate();

-- a certificate product: no floor (it takes no discount anyway), a positive
-- price when it has one; the engine treats it as no_discount, no_points,
-- no_redeem whatever those flags say
ALTER TABLE loyalty.product
    ADD COLUMN gift_certificate boolean NOT NULL DEFAULT false,
    ADD CONSTRAINT product_gift_certificate_plain
        CHECK (NOT gift_certificate OR (min_price IS NULL AND (price IS NULL OR price > 0)));
COMMENT ON COLUMN loyalty.product.gift_certificate IS
    'A gift certificate for sale: each whole unit of a line issues a certificate worth the unit price; no discount, no points, not paid with points or certificates';

ALTER TABLE loyalty.coupon
    ADD COLUMN sold_line int,
    ADD CONSTRAINT coupon_sold_line_of_purchase
        CHECK (sold_line IS NULL OR (sold_line >= 0 AND issued_by IS NOT NULL AND kind = 'certificate'));
COMMENT ON COLUMN loyalty.coupon.sold_line IS
    'The line of purchase issued_by that sold this certificate (a certificate product); NULL when a promotion or issue_certificate issued it';

CREATE OR REPLACE FUNCTION loyalty.issue_certificate(value numeric, valid_until timestamptz DEFAULT NULL,
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
    -- (the line numbers of the RAISEs above are those of 0.4: tests show them)
    IF value > loyalty.setting_value('certificate_max_value')::numeric THEN
        RAISE EXCEPTION 'certificate value % is above the maximum %', value,
                        loyalty.setting_value('certificate_max_value')
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('Setting certificate_max_value allows at most %s for one certificate.',
                                  loyalty.setting_value('certificate_max_value')),
                  HINT = 'Issue several certificates, or raise the setting.';
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
    'Issues a gift certificate (marketer, admin) up to setting certificate_max_value: usable in any channel, spent partially, the balance kept; a cashier sells one as a purchase line instead';
REVOKE EXECUTE ON FUNCTION loyalty.issue_certificate(numeric, timestamptz, text) FROM loyalty_cashier;

-- masking bearer codes
CREATE FUNCTION loyalty.code_masked(code text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$
    SELECT pg_catalog.regexp_replace(pg_catalog.left(code, -k), '[^-]', '*', 'g')
           || pg_catalog.right(code, k)
      FROM (SELECT least(4, pg_catalog.length(code) / 3) AS k) AS shown
$$;
COMMENT ON FUNCTION loyalty.code_masked(text) IS
    'A coupon or certificate code as roles that may not read it see it: the last 4 characters (a third of a short code), the rest as *';

CREATE VIEW loyalty.coupon_masked AS
    SELECT loyalty.code_masked(c.code) AS code, c.promotion, c.customer_id, c.kind, c.value,
           c.balance, c.percent, c.min_total, c.valid_from, c.valid_until, c.max_uses, c.uses,
           c.status, c.issued_by, c.sold_line, c.created_at
      FROM loyalty.coupon c;
COMMENT ON VIEW loyalty.coupon_masked IS
    'Coupons and certificates with masked codes, for every role that must not read a bearer code in clear';

CREATE VIEW loyalty.coupon_use_masked AS
    SELECT loyalty.code_masked(u.code) AS code, u.operation_id, u.customer_id, u.amount, u.at
      FROM loyalty.coupon_use u;
COMMENT ON VIEW loyalty.coupon_use_masked IS
    'Uses of coupons and certificates with masked codes (amount: certificate money spent)';

CREATE VIEW loyalty.event_masked AS
    SELECT e.id, e.customer_id, e.kind,
           CASE WHEN e.payload ? 'code'
                THEN pg_catalog.jsonb_set(e.payload, '{code}',
                                          pg_catalog.to_jsonb(loyalty.code_masked(e.payload ->> 'code')))
                ELSE e.payload END AS payload,
           CASE WHEN e.payload ? 'code'
                THEN pg_catalog.replace(e.message, e.payload ->> 'code',
                                        loyalty.code_masked(e.payload ->> 'code'))
                ELSE e.message END AS message,
           e.created_at, e.taken_at
      FROM loyalty.event e;
COMMENT ON VIEW loyalty.event_masked IS
    'The event outbox with coupon codes masked in payload and message, for analysts';

REVOKE ALL ON FUNCTION loyalty.certificate_max_value_validate(), loyalty.code_masked(text) FROM PUBLIC;
REVOKE ALL ON loyalty.coupon_masked, loyalty.coupon_use_masked, loyalty.event_masked FROM PUBLIC;
REVOKE SELECT ON loyalty.coupon FROM loyalty_marketer;
REVOKE SELECT ON loyalty.coupon_use, loyalty.event FROM loyalty_analyst;
GRANT EXECUTE ON FUNCTION loyalty.code_masked(text) TO loyalty_marketer, loyalty_analyst, loyalty_admin;
GRANT SELECT ON loyalty.coupon_masked, loyalty.coupon_use_masked
    TO loyalty_marketer, loyalty_analyst, loyalty_admin;
GRANT SELECT ON loyalty.event_masked TO loyalty_analyst, loyalty_admin;
GRANT EXECUTE ON FUNCTION loyalty.certificate_max_value_validate() TO loyalty_admin;

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

-- ---------------------------------------------------------------------------
-- Issue 14 items 6 and 7: one rule for operation ids; internal operations in
-- a namespace of their own; a merge locks like a purchase
--
-- Merges and expiry wrote their operations as "merge-<keep>-<absorb>" and
-- "expire-<xid>", ids a client could send too: a purchase sent as
-- "merge-3-4" made the later merge of 3 and 4 file its ledger entries and
-- lots under that purchase (the merge's INSERT ... ON CONFLICT DO NOTHING
-- found the purchase's row).  From 0.9 internal ids begin with "~", which
-- the one operation id rule of every API (src/operation_id.c) refuses from
-- clients: "~merge-3-4", "~expire-<64-bit xid>".
--
-- The migration renames what earlier versions stored, consistently in every
-- table that holds operation ids (ledger_entry.operation_id and
-- ref_operation_id, lot.operation_id, coupon.issued_by; coupon_use and
-- subscription reference operation by foreign key but never an internal
-- one; ledger_entry and lot lost theirs in 0.5 and 0.7).  A merge that filed
-- under a client's operation of its name gets its own operation back: its
-- "merge" entries, the "repay" entries it wrote at the same moment, and the
-- lots it made (whose first entry is a "merge" one).  Likewise an expiry
-- that filed under a client's "expire-<xid>".  The append-only trigger of
-- ledger_entry is set aside for these updates only.
-- ---------------------------------------------------------------------------
ALTER TABLE loyalty.ledger_entry DISABLE TRIGGER ledger_entry_append_only;

-- internal entries filed under a client's operation of the same name
DO $$
DECLARE
    c record;
BEGIN
    FOR c IN
        SELECT o.operation_id,
               CASE WHEN bool_or(e.kind = 'merge') THEN 'merge' ELSE 'expire' END AS kind,
               array_agg(DISTINCT e.at) FILTER (WHERE e.kind = 'merge') AS merge_at,
               min(e.at) AS first_at
          FROM loyalty.operation o
          JOIN loyalty.ledger_entry e ON e.operation_id = o.operation_id
         WHERE o.kind NOT IN ('merge', 'expire')
           AND ((e.kind = 'merge' AND o.operation_id ~ '^merge-[0-9]+-[0-9]+$')
                OR (e.kind = 'expire' AND o.operation_id ~ '^expire-[0-9]+$'))
         GROUP BY o.operation_id
    LOOP
        INSERT INTO loyalty.operation (operation_id, kind, customer_id, request, response, created_at)
        VALUES ('~' || c.operation_id, c.kind,
                CASE WHEN c.kind = 'merge' THEN split_part(c.operation_id, '-', 2)::bigint END,
                CASE WHEN c.kind = 'merge'
                     THEN jsonb_build_object('keep', split_part(c.operation_id, '-', 2)::bigint,
                                             'absorb', split_part(c.operation_id, '-', 3)::bigint)
                     ELSE jsonb_build_object('as_of', c.first_at) END,
                '{}', c.first_at);
        IF c.kind = 'merge' THEN
            UPDATE loyalty.lot l SET operation_id = '~' || l.operation_id
             WHERE l.operation_id = c.operation_id
               AND (SELECT f.kind FROM loyalty.ledger_entry f
                     WHERE f.lot_id = l.id ORDER BY f.id LIMIT 1) = 'merge';
        END IF;
        UPDATE loyalty.ledger_entry e SET operation_id = '~' || e.operation_id
         WHERE e.operation_id = c.operation_id
           AND (e.kind = c.kind
                OR (c.kind = 'merge' AND e.kind = 'repay' AND e.at = ANY (c.merge_at)));
    END LOOP;
END
$$;

-- internal operations stored under their old names
UPDATE loyalty.ledger_entry e SET operation_id = '~' || e.operation_id
  FROM loyalty.operation o
 WHERE o.operation_id = e.operation_id AND o.kind IN ('merge', 'expire')
   AND o.operation_id NOT LIKE '~%';
UPDATE loyalty.ledger_entry e SET ref_operation_id = '~' || e.ref_operation_id
  FROM loyalty.operation o
 WHERE o.operation_id = e.ref_operation_id AND o.kind IN ('merge', 'expire')
   AND o.operation_id NOT LIKE '~%';
UPDATE loyalty.lot l SET operation_id = '~' || l.operation_id
  FROM loyalty.operation o
 WHERE o.operation_id = l.operation_id AND o.kind IN ('merge', 'expire')
   AND o.operation_id NOT LIKE '~%';
UPDATE loyalty.coupon k SET issued_by = '~' || k.issued_by
  FROM loyalty.operation o
 WHERE o.operation_id = k.issued_by AND o.kind IN ('merge', 'expire')
   AND o.operation_id NOT LIKE '~%';
UPDATE loyalty.operation o SET operation_id = '~' || o.operation_id
 WHERE o.kind IN ('merge', 'expire') AND o.operation_id NOT LIKE '~%';

ALTER TABLE loyalty.ledger_entry ENABLE TRIGGER ledger_entry_append_only;

-- Internal operations, and only they, begin with "~".  NOT VALID: an
-- earlier version may have accepted a client id beginning with "~"; such a
-- row stays (a retry of it is now refused with 22023), every new row obeys.
ALTER TABLE loyalty.operation
    ADD CONSTRAINT operation_internal_namespace
    CHECK ((kind IN ('merge', 'expire')) = (operation_id LIKE '~%')) NOT VALID;

-- The merge: its own operation id, no ON CONFLICT (a merge runs once; its id
-- is no client's), and the customers locked FOR NO KEY UPDATE like a
-- purchase locks its customer (FOR UPDATE before).  A purchase of the
-- absorbed customer either commits before the merge, or waits and then
-- prices the survivor under the survivor's lock (src/check_db.c); before,
-- it priced the survivor under the absorbed row's lock and raced the
-- survivor's own purchases into 23505 on promotion_customer_usage or LY004.
CREATE OR REPLACE FUNCTION loyalty.merge_customers(keep bigint, absorb bigint) RETURNS jsonb
    LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    k      loyalty.customer;
    a      loyalty.customer;
    moved  int;
    lots   int := 0;
    op     text := format('~merge-%s-%s', keep, absorb);
    l      record;
    p      record;
    owed   numeric;
    x      numeric;
    nl     bigint;
BEGIN
    IF keep = absorb THEN
        RAISE EXCEPTION 'cannot merge customer % into itself', keep
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- lock both as a purchase does, in id order so that merges cannot deadlock
    PERFORM 1 FROM loyalty.customer c WHERE c.id IN (keep, absorb) ORDER BY c.id FOR NO KEY UPDATE;
    SELECT * INTO k FROM loyalty.customer c WHERE c.id = keep;
    SELECT * INTO a FROM loyalty.customer c WHERE c.id = absorb;
    IF k.id IS NULL OR a.id IS NULL THEN
        RAISE EXCEPTION 'customer % not found', CASE WHEN k.id IS NULL THEN keep ELSE absorb END
            USING ERRCODE = 'LY001';
    END IF;
    IF k.status = 'merged' THEN
        RAISE EXCEPTION 'customer % was merged into customer %', keep, k.merged_into
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = format('Merge into customer %s instead.', k.merged_into);
    END IF;
    IF a.status = 'merged' THEN
        IF a.merged_into = keep THEN    -- done before: nothing to do
            RETURN jsonb_build_object('keep', keep, 'absorb', absorb, 'cards', 0, 'lots', 0,
                                      'already_merged', true);
        END IF;
        RAISE EXCEPTION 'customer % was merged into customer %', absorb, a.merged_into
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    UPDATE loyalty.card c SET customer_id = keep WHERE c.customer_id = absorb;
    GET DIAGNOSTICS moved = ROW_COUNT;

    -- balances: every open lot moves as a new lot of the survivor
    INSERT INTO loyalty.operation (operation_id, kind, customer_id, request, response)
    VALUES (op, 'merge', keep, jsonb_build_object('keep', keep, 'absorb', absorb), '{}');
    -- locked: the expiry job does not lock customers, only the lots it expires
    FOR l IN SELECT * FROM loyalty.lot WHERE customer_id = absorb AND remaining <> 0 ORDER BY id
             FOR UPDATE LOOP
        UPDATE loyalty.lot SET remaining = 0 WHERE id = l.id;
        INSERT INTO loyalty.ledger_entry (customer_id, account, lot_id, operation_id, kind, points, at)
        VALUES (absorb, l.account, l.id, op, 'merge', -l.remaining, now());
        INSERT INTO loyalty.lot (customer_id, account, amount, remaining, earned_at, available_at,
                                 expires_at, operation_id, announced_at, reminded_at)
        VALUES (keep, l.account, l.remaining, l.remaining, l.earned_at, l.available_at,
                l.expires_at, op, l.announced_at, l.reminded_at)
        RETURNING id INTO nl;
        INSERT INTO loyalty.ledger_entry (customer_id, account, lot_id, operation_id, kind, points, at)
        VALUES (keep, l.account, nl, op, 'merge', l.remaining, now());
        lots := lots + 1;
    END LOOP;
    -- a moved debt is paid at once from the survivor's lots, first expiring first
    FOR l IN SELECT * FROM loyalty.lot WHERE customer_id = keep AND remaining < 0 ORDER BY id LOOP
        owed := -l.remaining;
        FOR p IN SELECT * FROM loyalty.lot WHERE customer_id = keep AND account = l.account
                    AND remaining > 0 ORDER BY expires_at NULLS LAST, earned_at, id LOOP
            EXIT WHEN owed = 0;
            x := least(owed, p.remaining);
            UPDATE loyalty.lot SET remaining = remaining - x WHERE id = p.id;
            INSERT INTO loyalty.ledger_entry (customer_id, account, lot_id, operation_id, kind, points, at)
            VALUES (keep, l.account, p.id, op, 'merge', -x, now());
            UPDATE loyalty.lot SET remaining = remaining + x WHERE id = l.id;
            INSERT INTO loyalty.ledger_entry (customer_id, account, lot_id, operation_id, kind, points, at)
            VALUES (keep, l.account, l.id, op, 'repay', x, now());
            owed := owed - x;
        END LOOP;
    END LOOP;

    -- the survivor takes over what it lacks; the phone moves only if it has none
    UPDATE loyalty.customer c
       SET phone = NULL, status = 'merged', merged_into = keep
     WHERE c.id = absorb;
    UPDATE loyalty.customer c
       SET phone = coalesce(c.phone, a.phone),
           email = coalesce(c.email, a.email),
           name = coalesce(c.name, a.name),
           birth_date = coalesce(c.birth_date, a.birth_date),
           attrs = a.attrs || c.attrs,
           created_at = least(c.created_at, a.created_at)
     WHERE c.id = keep;
    IF k.phone IS NOT NULL AND a.phone IS NOT NULL THEN
        -- both had phones: the absorbed one keeps its own so it can still be found
        UPDATE loyalty.customer c SET phone = a.phone WHERE c.id = absorb;
    END IF;
    -- customers merged into the absorbed one now point straight to the survivor
    UPDATE loyalty.customer c SET merged_into = keep WHERE c.merged_into = absorb;

    RETURN jsonb_build_object('keep', keep, 'absorb', absorb, 'cards', moved, 'lots', lots,
                              'already_merged', false);
END
$$;
COMMENT ON FUNCTION loyalty.merge_customers(bigint, bigint) IS
    'Merges customer absorb into keep: cards, open point lots (with their expiry) and profile gaps move under operation ~merge-<keep>-<absorb>; absorb still resolves to keep';
REVOKE ALL ON FUNCTION loyalty.merge_customers(bigint, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.merge_customers(bigint, bigint) TO loyalty_admin;


-- ---------------------------------------------------------------------------
-- Issue 15 item 4: one place per rule.  Customer identifiers were read by
-- find_customer (PL/pgSQL) and again by the check API (C); a tier change
-- and its tier_changed event were written by recalculate_tiers (PL/pgSQL)
-- and again by the purchase (C).  Both functions are now C: find_customer
-- reads identifiers with the check API's own code (src/customers.c), and
-- recalculate_tiers writes through the purchase's own statement
-- (src/tiers.c).  Same signatures, marks, results and event payloads.
-- ---------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION loyalty.find_customer(identifier text) RETURNS bigint
    AS 'MODULE_PATHNAME', 'loyalty_find_customer'
    LANGUAGE C STABLE STRICT PARALLEL UNSAFE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION loyalty.find_customer(text) IS
    'Customer id by phone (any spelling), card number or id:N; the survivor for a merged one; NULL when nobody matches';
REVOKE ALL ON FUNCTION loyalty.find_customer(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.find_customer(text) TO loyalty_cashier;

CREATE OR REPLACE FUNCTION loyalty.recalculate_tiers(as_of timestamptz DEFAULT pg_catalog.now(),
                                                     only_customer bigint DEFAULT NULL) RETURNS int
    AS 'MODULE_PATHNAME', 'loyalty_recalculate_tiers'
    LANGUAGE C VOLATILE PARALLEL UNSAFE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION loyalty.recalculate_tiers(timestamptz, bigint) IS
    'Moves customers (all, or one) to the tier their spend in tier_window reaches, up or down; a tier_changed event each; returns how many moved';
REVOKE ALL ON FUNCTION loyalty.recalculate_tiers(timestamptz, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.recalculate_tiers(timestamptz, bigint) TO loyalty_admin;

-- ---------------------------------------------------------------------------
-- Issue 19: promotion backtest (SPEC section 16).  loyalty.backtest replays
-- the stored requests of the committed purchases of a period through the
-- pure engine twice, with the configuration as it is now and with candidate
-- promotions (validated as inserts into loyalty.promotion would be, LY006),
-- and reports the difference.  It writes nothing.  SECURITY DEFINER: it
-- reads loyalty.operation's stored requests, which the marketer may not
-- read; only aggregates leave the function.
-- ---------------------------------------------------------------------------
CREATE FUNCTION loyalty.backtest(request jsonb) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'loyalty_backtest'
    LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION loyalty.backtest(jsonb) IS
    'What candidate promotions would have cost on the purchases of a period: checks replayed and changed, discount and points before and after, by promotion, store, day and product; writes nothing';
REVOKE ALL ON FUNCTION loyalty.backtest(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.backtest(jsonb) TO loyalty_marketer, loyalty_admin;

-- Issue 19 (continued): the parallel replay.
-- loyalty.backtest_check: one stored check priced now and with the
-- candidates, as rows that loyalty.backtest adds up under a GROUP BY; PARALLEL
-- SAFE (read-only), so that PostgreSQL's parallel query spreads a large
-- history over its workers.  Internal: no role may call it (backtest calls
-- it as definer).
CREATE FUNCTION loyalty.backtest_check(request jsonb, at timestamptz, store text,
                                       candidates jsonb, disable text[], run bigint,
                                       progress_every bigint, total bigint)
    RETURNS TABLE (kind text, key text, checks bigint, changed bigint,
                   discount_before bigint, discount_after bigint,
                   points_before bigint, points_after bigint)
    AS 'MODULE_PATHNAME', 'loyalty_backtest_check'
    LANGUAGE C STABLE PARALLEL SAFE COST 10000 ROWS 6;
COMMENT ON FUNCTION loyalty.backtest_check(jsonb, timestamptz, text, jsonb, text[], bigint, bigint, bigint) IS
    'Internal to loyalty.backtest: one stored check priced with the configuration now and with the candidates, as rows to add up (parallel safe)';
REVOKE ALL ON FUNCTION loyalty.backtest_check(jsonb, timestamptz, text, jsonb, text[], bigint, bigint, bigint) FROM PUBLIC;

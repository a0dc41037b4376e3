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
    -- the absorbed customer is nobody's member any more: its memberships end
    -- now, with their segment_changed events, not at the next full refresh
    -- (an incremental one looks only at customers who may have changed);
    -- the survivor's are the refresh's to change (waits for a refresh
    -- running, which holds the members against other writers)
    WITH gone AS (
        DELETE FROM loyalty.segment_member m WHERE m.customer_id = absorb
        RETURNING m.segment)
    INSERT INTO loyalty.event (customer_id, kind, payload)
    SELECT absorb, 'segment_changed', jsonb_build_object('segment', g.segment, 'change', 'left', 'at', now())
      FROM gone g;

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

-- Issue 17: online orders (SPEC §15).  A web or app order is priced and its
-- benefits held at checkout (order_hold: points on hold on their lots,
-- coupons and certificate amounts used, promotion uses counted), then
-- captured as the purchase it was priced as (order_capture), cancelled
-- (order_cancel) or expired by run_maintenance past hold_until; a release
-- gives everything back where it came from.  New: the table loyalty."order",
-- ledger entry kinds hold and release, operation kinds order_hold and
-- order_cancel, the setting order_hold_time (72 hours).
-- ---------------------------------------------------------------------------
ALTER DOMAIN loyalty.operation_kind DROP CONSTRAINT operation_kind_known;
ALTER DOMAIN loyalty.operation_kind ADD CONSTRAINT operation_kind_known
    CHECK (VALUE IN ('purchase', 'refund', 'adjust', 'expire', 'merge', 'order_hold', 'order_cancel', 'order_release'));
COMMENT ON DOMAIN loyalty.operation_kind IS
    'The kind of a writing call: purchase, refund, adjust, expire, merge, order_hold, order_cancel or order_release';
-- a capture releases its hold under the internal operation "~order-release:<capture>"
ALTER TABLE loyalty.operation DROP CONSTRAINT operation_internal_namespace;
ALTER TABLE loyalty.operation
    ADD CONSTRAINT operation_internal_namespace
    CHECK ((kind IN ('merge', 'expire', 'order_release')) = (operation_id LIKE '~%')) NOT VALID;
ALTER DOMAIN loyalty.entry_kind DROP CONSTRAINT ledger_entry_kind_known;
ALTER DOMAIN loyalty.entry_kind ADD CONSTRAINT ledger_entry_kind_known
    CHECK (VALUE IN ('earn', 'spend', 'expire', 'reverse', 'return', 'debt', 'repay', 'adjust', 'merge', 'hold', 'release'));
COMMENT ON DOMAIN loyalty.entry_kind IS
    'The kind of a ledger entry: earn, spend, expire, reverse, return, debt, repay, adjust, merge, hold or release';
INSERT INTO loyalty.setting_definition (key, default_value, description) VALUES
    ('order_hold_time', '72 hours',
     'How long an online order holds its benefits when the request names no hold_until');

CREATE TABLE loyalty."order" (
    order_id text NOT NULL COLLATE pg_catalog."C",
    customer_id bigint,
    store text,
    channel text NOT NULL,
    state text NOT NULL,
    held_at timestamp with time zone NOT NULL,
    hold_until timestamp with time zone NOT NULL,
    captured_at timestamp with time zone,
    closed_at timestamp with time zone,
    request jsonb NOT NULL,
    response jsonb NOT NULL,
    hold_operation_id text NOT NULL COLLATE pg_catalog."C",
    final_operation_id text COLLATE pg_catalog."C",
    usage_counted text[] DEFAULT '{}'::text[] NOT NULL,
    customer_usage_counted text[] DEFAULT '{}'::text[] NOT NULL,
    capture_request jsonb,
    CONSTRAINT order_pkey PRIMARY KEY (order_id),
    CONSTRAINT order_id_format CHECK ((order_id <> '') AND (length(order_id) <= 200)),
    CONSTRAINT order_state_known CHECK (state IN ('held', 'captured', 'cancelled', 'expired')),
    CONSTRAINT order_customer_id_fkey FOREIGN KEY (customer_id) REFERENCES loyalty.customer(id)
);
CREATE INDEX order_held_idx ON loyalty."order" (hold_until) WHERE (state = 'held');
CREATE INDEX order_customer_idx ON loyalty."order" (customer_id);
COMMENT ON TABLE loyalty."order" IS
    'Online orders (SPEC §15): held at checkout, then captured (a purchase), cancelled or expired';
COMMENT ON COLUMN loyalty."order".request IS
    'The check request as held, dated at the hold''s "at" (what a capture commits as a purchase)';
COMMENT ON COLUMN loyalty."order".response IS
    'The hold''s response; after a capture, the purchase''s';
COMMENT ON COLUMN loyalty."order".hold_operation_id IS
    'The order_hold call that holds the benefits: its "hold" ledger entries and coupon uses';
COMMENT ON COLUMN loyalty."order".final_operation_id IS
    'The call that captured, cancelled or expired the order (a capture''s is the purchase''s operation_id)';
SELECT pg_catalog.pg_extension_config_dump('loyalty."order"', '');

CREATE FUNCTION loyalty.order_hold(request jsonb) RETURNS jsonb
    LANGUAGE c STRICT SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_order_hold';
COMMENT ON FUNCTION loyalty.order_hold(request jsonb) IS
    'Prices an online order like calculate and holds its points, coupons, certificate amounts and promotion uses; again on a held order: holds anew; idempotent by operation_id';

CREATE FUNCTION loyalty.order_capture(request jsonb) RETURNS jsonb
    LANGUAGE c STRICT SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_order_capture';
COMMENT ON FUNCTION loyalty.order_capture(request jsonb) IS
    'Commits a held order as the purchase it was priced as (the capture''s operation_id), at the held prices; idempotent by operation_id';

CREATE FUNCTION loyalty.order_cancel(request jsonb) RETURNS jsonb
    LANGUAGE c STRICT SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_order_cancel';
COMMENT ON FUNCTION loyalty.order_cancel(request jsonb) IS
    'Releases everything a held order holds; the order becomes cancelled; idempotent by operation_id';

CREATE FUNCTION loyalty.expire_orders(as_of timestamptz DEFAULT pg_catalog.now(),
                                      max_orders integer DEFAULT 1000) RETURNS bigint
    LANGUAGE c STRICT SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_expire_orders';
COMMENT ON FUNCTION loyalty.expire_orders(timestamptz, integer) IS
    'Releases up to max_orders held orders past hold_until (they become expired), skipping what a check holds locked; returns how many';

REVOKE ALL ON FUNCTION loyalty.order_hold(jsonb), loyalty.order_capture(jsonb),
    loyalty.order_cancel(jsonb), loyalty.expire_orders(timestamptz, integer) FROM PUBLIC;
REVOKE ALL ON loyalty."order" FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.order_hold(jsonb), loyalty.order_capture(jsonb),
    loyalty.order_cancel(jsonb)
    TO loyalty_cashier, loyalty_admin;
GRANT EXECUTE ON FUNCTION loyalty.expire_orders(timestamptz, integer) TO loyalty_admin;
GRANT ALL ON loyalty."order" TO loyalty_admin;

-- run_maintenance and run_maintenance_proc in their final form: besides the
-- held orders past hold_until, maintenance computes the day's RFM and
-- refreshes the segments (Issue 16) and run_maintenance grants the day's
-- birthday points (Issue 18, event points).
CREATE OR REPLACE FUNCTION loyalty.run_maintenance(as_of timestamptz DEFAULT now()) RETURNS jsonb
    LANGUAGE plpgsql STRICT SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    expired bigint;
    orders bigint;
    birthdays bigint;
BEGIN
    IF pg_is_in_recovery() THEN
        RETURN jsonb_build_object('skipped', 'standby');
    END IF;
    -- the same key as run_maintenance_proc: one run at a time
    IF NOT pg_try_advisory_xact_lock(19545, 1) THEN
        RETURN jsonb_build_object('skipped', 'another maintenance run is in progress');
    END IF;
    -- held orders first: points they held on lots due now expire below
    orders := loyalty.expire_orders(as_of, 2147483647);
    expired := loyalty.expire_points(as_of);
    -- the day's RFM (once a program day; see maintain_rfm)
    PERFORM loyalty.maintain_rfm(as_of);
    -- segment members that may have changed since the last run
    PERFORM loyalty.refresh_segments(false, as_of);
    -- the day's birthday points (points_event), once a year per customer
    birthdays := loyalty.grant_birthday_points(as_of);
    RETURN jsonb_build_object('as_of', as_of, 'expired_points', expired,
                              'tier_changes', loyalty.recalculate_tiers(as_of))
           || loyalty.announce_lots(as_of)
           || CASE WHEN orders > 0 THEN jsonb_build_object('expired_orders', orders)
                   ELSE '{}'::jsonb END
           || CASE WHEN birthdays > 0 THEN jsonb_build_object('birthday_points', birthdays)
                   ELSE '{}'::jsonb END;
END
$$;
COMMENT ON FUNCTION loyalty.run_maintenance(as_of timestamp with time zone) IS
    'Expiry, availability events, expiry reminders, the day''s RFM and birthday points in one transaction; one run at a time; nothing on a standby';

CREATE OR REPLACE PROCEDURE loyalty.run_maintenance_proc(
        IN as_of timestamptz DEFAULT NULL,
        IN batch_lots integer DEFAULT 5000)
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
    -- held orders past hold_until, in batches, each committed
    LOOP
        EXIT WHEN loyalty.expire_orders(t, batch_lots) = 0;
        COMMIT;
    END LOOP;
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
    PERFORM loyalty.maintain_rfm(t);
    COMMIT;
    PERFORM loyalty.refresh_segments(false, t);
    COMMIT;
    summary := loyalty.announce_lots(t);
    COMMIT;
    PERFORM pg_catalog.pg_advisory_unlock(19545, 1);
    RAISE NOTICE 'loyalty maintenance: expired % points, % tier changes, %', expired / 100, tiers, summary;
END
$$;

-- balance() reports the points held by online orders (a new last column,
-- held; available excludes them): the row type changes, so it is made anew
DROP FUNCTION loyalty.balance(text, timestamptz);
CREATE FUNCTION loyalty.balance(
        customer text,
        at timestamptz DEFAULT now())
    RETURNS TABLE (
        account text,
        available numeric,
        pending numeric,
        expiring numeric,
        next_expiry timestamptz,
        held numeric)
    LANGUAGE plpgsql STABLE STRICT SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    cid bigint := loyalty.find_customer(customer);
BEGIN
    IF cid IS NULL THEN
        RAISE EXCEPTION 'customer "%" not found', customer USING ERRCODE = 'LY001';
    END IF;
    RETURN QUERY
    SELECT t.code,
           coalesce(sum(l.remaining) FILTER (
               WHERE l.available_at <= at AND (l.expires_at IS NULL OR l.expires_at > at)), 0),
           coalesce(sum(l.remaining) FILTER (WHERE l.available_at > at AND l.remaining > 0), 0),
           coalesce(sum(l.remaining) FILTER (
               WHERE l.remaining > 0 AND l.available_at <= at
                 AND l.expires_at > at AND l.expires_at <= at + interval '30 days'), 0),
           min(l.expires_at) FILTER (
               WHERE l.remaining > 0 AND l.available_at <= at AND l.expires_at > at),
           -- held by online orders still held (not in available)
           coalesce((SELECT -sum(e.points) FROM loyalty.ledger_entry e
                      WHERE e.customer_id = cid AND e.account = t.code
                        AND e.kind IN ('hold', 'release')), 0)
      FROM loyalty.account_type t
      LEFT JOIN loyalty.lot l
        ON l.account = t.code AND l.customer_id = cid AND l.remaining <> 0
     GROUP BY t.code, t.redeem_order
     ORDER BY t.redeem_order, t.code;
END
$$;
COMMENT ON FUNCTION loyalty.balance(customer text, at timestamp with time zone) IS
    'Per account: points available at "at", pending (not yet available), expiring within 30 days, next expiry, held by online orders';
REVOKE ALL ON FUNCTION loyalty.balance(text, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.balance(text, timestamptz) TO loyalty_cashier, loyalty_admin;

-- ---------------------------------------------------------------------------
-- Issue 18: campaign budget.  promotion.budget caps the money a promotion
-- gives across all committed purchases: promotion_usage.given counts what it
-- gave (claimed by the purchase like a use, under the counter's row lock,
-- so two purchases racing for the last 100.00 cannot both take it; the last
-- check takes only what is left), and promotion_budget_claim records what
-- each purchase took, so that its full refund gives exactly that back.
-- ---------------------------------------------------------------------------
ALTER TABLE loyalty.promotion ADD COLUMN budget numeric(14,2);
ALTER TABLE loyalty.promotion
    ADD CONSTRAINT promotion_budget_positive CHECK (budget > 0);
COMMENT ON COLUMN loyalty.promotion.budget IS
    'Money the promotion may give across all committed purchases; NULL = no budget';
ALTER TABLE loyalty.promotion_usage ADD COLUMN given numeric(14,2) DEFAULT 0 NOT NULL;
ALTER TABLE loyalty.promotion_usage
    ADD CONSTRAINT promotion_usage_given_check CHECK (given >= 0);
COMMENT ON COLUMN loyalty.promotion_usage.given IS
    'Money the promotion gave on committed purchases (counted against promotion.budget)';

CREATE TABLE loyalty.promotion_budget_claim (
    operation_id text NOT NULL COLLATE pg_catalog."C",
    promotion text NOT NULL COLLATE pg_catalog."C",
    given numeric(14,2) NOT NULL,
    CONSTRAINT promotion_budget_claim_given_check CHECK (given > 0),
    CONSTRAINT promotion_budget_claim_pkey PRIMARY KEY (operation_id, promotion),
    CONSTRAINT promotion_budget_claim_promotion_fkey FOREIGN KEY (promotion) REFERENCES loyalty.promotion(code) ON UPDATE CASCADE ON DELETE CASCADE
);
COMMENT ON TABLE loyalty.promotion_budget_claim IS
    'What each purchase took from the budget of a promotion; its full refund gives it back';
SELECT pg_catalog.pg_extension_config_dump('loyalty.promotion_budget_claim', '');
GRANT SELECT ON loyalty.promotion_budget_claim TO loyalty_marketer, loyalty_analyst;
GRANT ALL ON loyalty.promotion_budget_claim TO loyalty_admin;


-- ---------------------------------------------------------------------------
-- Issue 16: Segments, RFM (SPEC §10).  Part 1: RFM scores by stored
-- thresholds (never NTILE: equal values, equal scores), recomputed once a
-- program day by maintenance in quantile mode or written by the marketer in
-- fixed mode; the named boxes shipped; refunds net out.
-- ---------------------------------------------------------------------------
INSERT INTO loyalty.setting_definition (key, default_value, description) VALUES
    ('rfm_window', '365 days',
     'RFM window: frequency and monetary count the purchases of this long before the moment'),
    ('rfm_mode', 'quantile',
     'RFM thresholds: quantile (maintenance recomputes loyalty.rfm_threshold) or fixed (the marketer writes them)');

CREATE FUNCTION loyalty.rfm_setting_validate() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $_$
BEGIN
    IF NEW.key = 'rfm_window' AND NOT (NEW.value ~ '^[0-9]{1,5} (day|days|month|months|year|years)$'
                                       AND NEW.value::interval > interval '0') THEN
        RAISE EXCEPTION 'invalid value for setting "%": "%"', NEW.key, NEW.value
            USING ERRCODE = 'LY006',
                  DETAIL = 'Field "value" of setting "rfm_window" must be a positive interval such as 365 days.';
    END IF;
    IF NEW.key = 'rfm_mode' AND NEW.value NOT IN ('quantile', 'fixed') THEN
        RAISE EXCEPTION 'invalid value for setting "%": "%"', NEW.key, NEW.value
            USING ERRCODE = 'LY006',
                  DETAIL = 'Field "value" of setting "rfm_mode" must be quantile or fixed.';
    END IF;
    RETURN NEW;
END
$_$;
COMMENT ON FUNCTION loyalty.rfm_setting_validate() IS
    'Refuses a malformed rfm_window or rfm_mode setting (LY006)';
CREATE TRIGGER setting_validate_rfm BEFORE INSERT OR UPDATE ON loyalty.setting
    FOR EACH ROW WHEN (new.key IN ('rfm_window', 'rfm_mode')) EXECUTE FUNCTION loyalty.rfm_setting_validate();

-- ---------------------------------------------------------------------------
-- RFM (SPEC §10).  Scores 1..5 come from stored thresholds, never NTILE, so
-- equal values get equal scores.  A threshold row (dimension, score) holds
-- the values lower < v <= upper (NULL: unbounded); the recency dimension
-- holds whole days, and the fewest days score 5.  Mode quantile (setting
-- rfm_mode) recomputes them from the 0.2/0.4/0.6/0.8 quantiles
-- (percentile_disc) over the customers with a purchase in the window; mode
-- fixed leaves the marketer's rows alone.  Money is paid total net of the
-- refunds made before the moment; a purchase a full refund ended before the
-- moment is no purchase at all.  Named boxes: the first by rank wins.
-- ---------------------------------------------------------------------------
CREATE TABLE loyalty.rfm_threshold (
    dimension text NOT NULL,
    score integer NOT NULL,
    lower numeric,
    upper numeric,
    computed_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT rfm_threshold_dimension_check CHECK (dimension IN ('r', 'f', 'm')),
    CONSTRAINT rfm_threshold_score_check CHECK (score BETWEEN 1 AND 5),
    CONSTRAINT rfm_threshold_bounds CHECK (lower IS NULL OR upper IS NULL OR lower <= upper),
    CONSTRAINT rfm_threshold_pkey PRIMARY KEY (dimension, score)
);
COMMENT ON TABLE loyalty.rfm_threshold IS
    'RFM score thresholds: a value v scores "score" when lower < v <= upper (NULL unbounded); r in whole days (fewest days score 5)';

CREATE TABLE loyalty.rfm_segment (
    code text NOT NULL,
    name text NOT NULL,
    r_min integer DEFAULT 1 NOT NULL,
    r_max integer DEFAULT 5 NOT NULL,
    f_min integer DEFAULT 1 NOT NULL,
    f_max integer DEFAULT 5 NOT NULL,
    m_min integer DEFAULT 1 NOT NULL,
    m_max integer DEFAULT 5 NOT NULL,
    rank integer NOT NULL,
    CONSTRAINT rfm_segment_code_check CHECK (code <> '' AND code <> 'prospect'),
    CONSTRAINT rfm_segment_scores CHECK (1 <= r_min AND r_min <= r_max AND r_max <= 5
                                         AND 1 <= f_min AND f_min <= f_max AND f_max <= 5
                                         AND 1 <= m_min AND m_min <= m_max AND m_max <= 5),
    CONSTRAINT rfm_segment_pkey PRIMARY KEY (code),
    CONSTRAINT rfm_segment_rank_key UNIQUE (rank)
);
COMMENT ON TABLE loyalty.rfm_segment IS
    'Named RFM boxes (scores from min to max inclusive); a customer falls into the first box by rank';

INSERT INTO loyalty.rfm_segment (code, name, r_min, r_max, f_min, f_max, m_min, m_max, rank) VALUES
    ('champions',          'Champions',           4, 5, 4, 5, 4, 5, 1),
    ('cant_lose',          'Can''t lose them',    1, 2, 4, 5, 4, 5, 2),
    ('at_risk',            'At risk',             1, 2, 3, 5, 1, 5, 3),
    ('loyal',              'Loyal',               3, 5, 3, 5, 1, 5, 4),
    ('new',                'New customers',       5, 5, 1, 1, 1, 5, 5),
    ('potential_loyalist', 'Potential loyalists', 4, 5, 2, 3, 1, 5, 6),
    ('promising',          'Promising',           3, 4, 1, 1, 1, 5, 7),
    ('need_attention',     'Need attention',      3, 3, 2, 3, 1, 5, 8),
    ('about_to_sleep',     'About to sleep',      2, 3, 1, 2, 1, 5, 9),
    ('lost',               'Lost',                1, 5, 1, 5, 1, 5, 10);

CREATE TABLE loyalty.rfm (
    customer_id bigint NOT NULL,
    recency_days integer,
    frequency integer NOT NULL,
    monetary numeric(14,2) NOT NULL,
    r integer,
    f integer,
    m integer,
    segment text NOT NULL,
    computed_at timestamp with time zone NOT NULL,
    CONSTRAINT rfm_pkey PRIMARY KEY (customer_id)
);
-- (no index on segment: eleven values over every customer, which nothing
-- here reads by; refresh_rfm rewrites every row daily, and the index cost
-- it 2.6 of 20 s at chain scale)
COMMENT ON TABLE loyalty.rfm IS
    'RFM of every customer as of computed_at: recency in whole days since the last purchase, frequency and monetary in the window, scores, segment (prospect: never bought)';

-- At chain scale (3M customers; every result unchanged): the scores' and
-- named boxes' thresholds are written into the statement as constants
-- (correlated subqueries per customer were evaluated several times
-- over); the refunds are summed per purchase once; only the few merged
-- customers are mapped (customer_merged_into_idx), not every purchase
-- joined to a hash of all customers; the temporary facts, only read
-- whole, have no primary key; r and f compare integers (no numeric cast);
-- rfm is analyzed afterwards for the segment refresh that reads it next;
-- work_mem 256MB, no JIT.
CREATE FUNCTION loyalty.refresh_rfm(as_of timestamptz DEFAULT now()) RETURNS bigint
    LANGUAGE plpgsql STRICT SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET jit = off
    SET work_mem = '256MB'
    AS $$
DECLARE
    win  interval := loyalty.setting_value('rfm_window')::interval;
    n    bigint;
    rx   text;
    fx   text;
    mx   text;
    boxes text;
    hashjoin text;
BEGIN
    -- (no key: it is read whole, by hash joins and sorts)
    CREATE TEMPORARY TABLE IF NOT EXISTS loyalty_rfm_facts (
        customer_id bigint, last_at timestamptz,
        frequency integer, monetary numeric(14,2)) ON COMMIT DROP;
    TRUNCATE loyalty_rfm_facts;
    -- one pass over the purchases of identified customers before the moment,
    -- the refunds before it summed per purchase once (a hash join, not a
    -- probe per purchase); a purchase of a merged customer counts for the
    -- one it was merged into (only the merged ones are joined, through
    -- customer_merged_into_idx: not a hash of every customer)
    INSERT INTO loyalty_rfm_facts
    SELECT coalesce(c.merged_into, p.customer_id),
           max(p.at) FILTER (WHERE NOT coalesce(x.ended, false)),
           count(*) FILTER (WHERE p.at >= as_of - win AND NOT coalesce(x.ended, false)),
           coalesce(sum(p.total - coalesce(x.back, 0)) FILTER (WHERE p.at >= as_of - win), 0)
      FROM loyalty.purchase p
      LEFT JOIN (SELECT k.id, k.merged_into FROM loyalty.customer k
                  WHERE k.merged_into IS NOT NULL) c ON c.id = p.customer_id
      LEFT JOIN (SELECT r.purchase, sum(r.amount) AS back, bool_or(r.full_refund) AS ended
                   FROM loyalty.refund r
                  WHERE r.at < as_of
                  GROUP BY r.purchase) x ON x.purchase = p.operation_id
     WHERE p.at < as_of AND p.customer_id IS NOT NULL
     GROUP BY 1
     ORDER BY 1;
    ANALYZE loyalty_rfm_facts;

    IF loyalty.setting_value('rfm_mode') = 'quantile' THEN
        DELETE FROM loyalty.rfm_threshold;
        INSERT INTO loyalty.rfm_threshold (dimension, score, lower, upper, computed_at)
        SELECT d.dimension, s.score,
               CASE WHEN s.k > 1 THEN q.qs[s.k - 1] END,
               CASE WHEN s.k < 5 THEN q.qs[s.k] END,
               as_of
          FROM (SELECT 'r' AS dimension,
                       percentile_disc(ARRAY[0.2, 0.4, 0.6, 0.8]) WITHIN GROUP
                           (ORDER BY floor(extract(epoch FROM as_of - last_at) / 86400)::numeric) AS qs
                  FROM loyalty_rfm_facts WHERE frequency > 0
                UNION ALL
                SELECT 'f', percentile_disc(ARRAY[0.2, 0.4, 0.6, 0.8]) WITHIN GROUP (ORDER BY frequency::numeric)
                  FROM loyalty_rfm_facts WHERE frequency > 0
                UNION ALL
                SELECT 'm', percentile_disc(ARRAY[0.2, 0.4, 0.6, 0.8]) WITHIN GROUP (ORDER BY monetary)
                  FROM loyalty_rfm_facts WHERE frequency > 0) q
          CROSS JOIN LATERAL (SELECT q.dimension) d
          CROSS JOIN LATERAL (SELECT k, CASE WHEN q.dimension = 'r' THEN 6 - k ELSE k END AS score
                                FROM generate_series(1, 5) k) s
         WHERE q.qs IS NOT NULL;
    END IF;

    -- The thresholds and the named boxes are a few rows: written into the
    -- statement as constants (a score is the highest whose bounds hold, 1 if
    -- none does; a box the first by rank), so that scoring a customer is
    -- expression evaluation, not subqueries per customer.
    -- (a bound of r or f that is a whole number is written as an integer:
    -- days and counts are integers, compared without a cast to numeric; an
    -- absent bound is no comparison at all)
    SELECT coalesce(string_agg(format('CASE WHEN %s THEN %s END', t.cond, t.score), ', ') FILTER (WHERE t.dimension = 'r'), 'NULL::integer'),
           coalesce(string_agg(format('CASE WHEN %s THEN %s END', t.cond, t.score), ', ') FILTER (WHERE t.dimension = 'f'), 'NULL::integer'),
           coalesce(string_agg(format('CASE WHEN %s THEN %s END', t.cond, t.score), ', ') FILTER (WHERE t.dimension = 'm'), 'NULL::integer')
      INTO rx, fx, mx
      FROM (SELECT h.dimension, h.score,
                   coalesce(nullif(concat_ws(' AND ', '%1$s > ' || b.lo, '%1$s <= ' || b.hi), ''), 'true') AS cond
              FROM loyalty.rfm_threshold h
             CROSS JOIN LATERAL (
                   SELECT CASE WHEN h.lower IS NULL THEN NULL
                               WHEN h.dimension <> 'm' AND h.lower = trunc(h.lower) AND abs(h.lower) < 1000000000
                               THEN h.lower::bigint::text ELSE format('%L::numeric', h.lower) END AS lo,
                          CASE WHEN h.upper IS NULL THEN NULL
                               WHEN h.dimension <> 'm' AND h.upper = trunc(h.upper) AND abs(h.upper) < 1000000000
                               THEN h.upper::bigint::text ELSE format('%L::numeric', h.upper) END AS hi) b) t;
    SELECT string_agg(format('WHEN s.r BETWEEN %s AND %s AND s.f BETWEEN %s AND %s AND s.m BETWEEN %s AND %s THEN %L',
                             b.r_min, b.r_max, b.f_min, b.f_max, b.m_min, b.m_max, b.code), ' ' ORDER BY b.rank)
      INTO boxes
      FROM loyalty.rfm_segment b;

    DELETE FROM loyalty.rfm;
    -- every customer joined to the facts, both in the order of the key (the
    -- customers by customer_pkey, the facts as written): a merge join, where
    -- a hash join probed a 1.2M-row hash 3M times in random memory order
    -- (3.5 s instead of 1.1 at chain scale; the planner prices the two
    -- alike)
    hashjoin := current_setting('enable_hashjoin');
    PERFORM set_config('enable_hashjoin', 'off', true);
    EXECUTE format($q$
    INSERT INTO loyalty.rfm (customer_id, recency_days, frequency, monetary, r, f, m, segment, computed_at)
    SELECT s.id, s.recency, coalesce(s.frequency, 0), coalesce(s.monetary, 0), s.r, s.f, s.m,
           CASE WHEN s.last_at IS NULL THEN 'prospect'
                WHEN s.frequency = 0 THEN 'lost'
                ELSE %s END,
           $1
      FROM (SELECT c.id, x.last_at, x.frequency, x.monetary, v.recency,
                   CASE WHEN x.frequency > 0 THEN coalesce(greatest(%s), 1) END AS r,
                   CASE WHEN x.frequency > 0 THEN coalesce(greatest(%s), 1) END AS f,
                   CASE WHEN x.frequency > 0 THEN coalesce(greatest(%s), 1) END AS m
              FROM loyalty.customer c
              LEFT JOIN loyalty_rfm_facts x ON x.customer_id = c.id
              CROSS JOIN LATERAL (SELECT floor(extract(epoch FROM $1 - x.last_at) / 86400)::integer AS recency) v
             WHERE c.merged_into IS NULL
            OFFSET 0) s
    $q$,
        coalesce('CASE ' || boxes || ' ELSE ''lost'' END', '''lost'''),
        format(rx, 'v.recency'), format(fx, 'x.frequency'), format(mx, 'x.monetary'))
    USING as_of;
    GET DIAGNOSTICS n = ROW_COUNT;
    PERFORM set_config('enable_hashjoin', hashjoin, true);
    DROP TABLE loyalty_rfm_facts;
    -- every row was rewritten: fresh statistics for the segment refresh
    -- that reads it next (the plans of its rfm rules and candidates)
    ANALYZE loyalty.rfm;
    RETURN n;
END
$$;
COMMENT ON FUNCTION loyalty.refresh_rfm(as_of timestamp with time zone) IS
    'Recomputes loyalty.rfm as of a moment (and, in quantile mode, loyalty.rfm_threshold); returns the customers scored';

CREATE FUNCTION loyalty.maintain_rfm(as_of timestamptz) RETURNS bigint
    LANGUAGE plpgsql STRICT SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    tz   text := loyalty.setting_value('timezone');
    last timestamptz;
BEGIN
    -- recency counts whole days: once per program day is enough
    SELECT computed_at INTO last FROM loyalty.rfm LIMIT 1;
    IF last IS NOT NULL AND (last AT TIME ZONE tz)::date = (as_of AT TIME ZONE tz)::date
       AND last <= as_of THEN
        RETURN NULL;
    END IF;
    RETURN loyalty.refresh_rfm(as_of);
END
$$;
COMMENT ON FUNCTION loyalty.maintain_rfm(as_of timestamp with time zone) IS
    'refresh_rfm for run_maintenance: at most once per program day (NULL when it was already computed that day)';

-- (run_maintenance and run_maintenance_proc call maintain_rfm: their
-- final definitions are in the Issue 17 section above)

SELECT pg_catalog.pg_extension_config_dump('loyalty.rfm_threshold', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.rfm', '');

REVOKE ALL ON loyalty.rfm_threshold, loyalty.rfm_segment, loyalty.rfm FROM PUBLIC;
REVOKE ALL ON FUNCTION loyalty.refresh_rfm(timestamptz), loyalty.maintain_rfm(timestamptz),
    loyalty.rfm_setting_validate() FROM PUBLIC;

-- Issue 16: RFM.  The marketer writes thresholds (fixed mode) and boxes and
-- may recompute; the analyst reads them; no PII in any of them.
GRANT SELECT, INSERT, UPDATE, DELETE ON loyalty.rfm_threshold, loyalty.rfm_segment TO loyalty_marketer;
GRANT SELECT ON loyalty.rfm TO loyalty_marketer;
GRANT EXECUTE ON FUNCTION loyalty.refresh_rfm(timestamptz) TO loyalty_marketer;
GRANT SELECT ON loyalty.rfm_threshold, loyalty.rfm_segment, loyalty.rfm TO loyalty_analyst;
GRANT ALL ON loyalty.rfm_threshold, loyalty.rfm_segment, loyalty.rfm TO loyalty_admin;
GRANT EXECUTE ON FUNCTION loyalty.refresh_rfm(timestamptz), loyalty.maintain_rfm(timestamptz),
    loyalty.rfm_setting_validate() TO loyalty_admin;

-- ---------------------------------------------------------------------------
-- Issue 16: Segments (SPEC §10).  Part 2: rule segments validated on write
-- (LY006 naming the JSON path), refreshed by maintenance incrementally (only
-- the customers who may have changed, found through indexes) or in full
-- (refresh_segments(full => true), and any segment new or changed since its
-- last refresh), segment_changed events on entering and leaving.
-- ---------------------------------------------------------------------------
ALTER DOMAIN loyalty.event_kind DROP CONSTRAINT event_kind_known;
ALTER DOMAIN loyalty.event_kind ADD CONSTRAINT event_kind_known
    CHECK (VALUE IN ('points_earned', 'points_available', 'points_expiring', 'points_expired',
                     'tier_changed', 'coupon_issued', 'segment_changed'));
COMMENT ON DOMAIN loyalty.event_kind IS
    'The kind of an event: points_earned, points_available, points_expiring, points_expired, tier_changed, coupon_issued or segment_changed';

-- ---------------------------------------------------------------------------
-- Rule segments (SPEC §10).  loyalty.segment.rule is validated on write by
-- segment_validate (C, LY006 naming the JSON path).  loyalty.refresh_segments
-- computes the members: a segment whose rule is new or changed since its
-- last refresh (loyalty.segment_state) is computed over every customer; the
-- others only over the customers who may have changed since the last run:
-- those with a purchase or a refund since then (purchase_at_idx,
-- refund_at_idx, max_backdate early to catch late checks), those whose
-- purchases crossed one of the rules' time boundaries (inactive_for,
-- active_within, within) since then, those whose tier changed (tier_changed
-- events) and, when a rule reads RFM, those RFM rescored since then.
-- Entering and leaving write segment_changed events.
-- ---------------------------------------------------------------------------
CREATE FUNCTION loyalty.segment_validate() RETURNS trigger
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'segment_validate';
COMMENT ON FUNCTION loyalty.segment_validate() IS
    'Refuses a segment whose rule is malformed (LY006; errdetail names the JSON path)';
CREATE TRIGGER segment_validate BEFORE INSERT OR UPDATE ON loyalty.segment
    FOR EACH ROW EXECUTE FUNCTION loyalty.segment_validate();

CREATE TABLE loyalty.segment_state (
    segment text NOT NULL,
    rule jsonb NOT NULL,
    refreshed_at timestamp with time zone NOT NULL,
    seen_before xid8,
    seen_system bigint,
    CONSTRAINT segment_state_pkey PRIMARY KEY (segment),
    CONSTRAINT segment_state_segment_fkey FOREIGN KEY (segment) REFERENCES loyalty.segment(code) ON UPDATE CASCADE ON DELETE CASCADE
);
COMMENT ON TABLE loyalty.segment_state IS
    'The rule each segment was last refreshed with, and when: a segment added or changed since is refreshed in full';
COMMENT ON COLUMN loyalty.segment_state.seen_before IS
    'The oldest transaction still running when the last refresh began (its snapshot''s xmin): a purchase or refund written by an older one was seen by it';
COMMENT ON COLUMN loyalty.segment_state.seen_system IS
    'The cluster (pg_control_system().system_identifier) seen_before belongs to: after a restore into another cluster it means nothing';

CREATE FUNCTION loyalty.product_matches(sel jsonb, product_sku text) RETURNS boolean
    LANGUAGE plpgsql STABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF sel ? 'exclude' AND loyalty.product_matches(sel -> 'exclude', product_sku) THEN
        RETURN false;
    END IF;
    RETURN coalesce((sel ->> 'all')::boolean, false)
        OR product_sku IN (SELECT jsonb_array_elements_text(coalesce(sel -> 'skus', '[]')))
        OR EXISTS (
            SELECT 1 FROM loyalty.product pr
             WHERE pr.sku = product_sku
               AND (pr.brand IN (SELECT jsonb_array_elements_text(coalesce(sel -> 'brands', '[]')))
                    OR pr.tags && ARRAY(SELECT jsonb_array_elements_text(coalesce(sel -> 'tags', '[]')))
                    OR EXISTS (
                        WITH RECURSIVE up(code) AS (
                            SELECT pr.category
                            UNION
                            SELECT k.parent FROM loyalty.category k JOIN up ON k.code = up.code
                             WHERE k.parent IS NOT NULL)
                        SELECT 1 FROM up
                         WHERE up.code IN (SELECT jsonb_array_elements_text(coalesce(sel -> 'categories', '[]'))))));
END
$$;
COMMENT ON FUNCTION loyalty.product_matches(sel jsonb, product_sku text) IS
    'Does the product match the product selector (SEL: all, categories with their subcategories, brands, skus, tags, exclude)?';

-- whole (a full refresh): the condition written for every customer at once
-- (set-based); a rule with a purchases or spend minimum above 0 looks only
-- at the customers with a purchase in the window (one grouped pass), not
-- at a count per customer (3M index probes at chain scale).
CREATE FUNCTION loyalty.segment_condition(rule jsonb, as_of timestamptz, whole boolean DEFAULT false) RETURNS text
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    t     text := format('%L::timestamptz', as_of);
    parts text[] := ARRAY['true'];
    lines text;
    w     text;
    r     jsonb;
    alts  text[];
    m     record;
BEGIN
    IF rule ? 'rfm' THEN
        parts := parts || format('EXISTS (SELECT 1 FROM loyalty.rfm x WHERE x.customer_id = c.id AND x.segment = ANY (%L::text[]))',
                                 ARRAY(SELECT jsonb_array_elements_text(rule -> 'rfm')));
    END IF;
    IF rule ? 'tiers' THEN
        parts := parts || format('c.tier = ANY (%L::text[])', ARRAY(SELECT jsonb_array_elements_text(rule -> 'tiers')));
    END IF;
    IF rule ? 'inactive_for' THEN
        parts := parts || format('EXISTS (SELECT 1 FROM loyalty.purchase p WHERE p.customer_id = c.id AND p.at < %1$s - %2$L::interval)'
                                 ' AND NOT EXISTS (SELECT 1 FROM loyalty.purchase p WHERE p.customer_id = c.id'
                                 ' AND p.at >= %1$s - %2$L::interval AND p.at < %1$s)', t, rule ->> 'inactive_for');
    END IF;
    IF rule ? 'active_within' THEN
        parts := parts || format('EXISTS (SELECT 1 FROM loyalty.purchase p WHERE p.customer_id = c.id'
                                 ' AND p.at >= %1$s - %2$L::interval AND p.at < %1$s)', t, rule ->> 'active_within');
    END IF;
    lines := format('SELECT 1 FROM loyalty.purchase p JOIN loyalty.purchase_line l ON l.operation_id = p.operation_id'
                    ' WHERE p.customer_id = c.id AND p.at < %1$s AND l.refunded_qty < l.qty%2$s',
                    t, CASE WHEN rule ? 'within' THEN format(' AND p.at >= %s - %L::interval', t, rule ->> 'within') ELSE '' END);
    IF rule ? 'bought' THEN
        parts := parts || format('EXISTS (%s AND loyalty.product_matches(%L::jsonb, l.sku))', lines, rule -> 'bought');
    END IF;
    IF rule ? 'not_bought' THEN
        parts := parts || format('NOT EXISTS (%s AND loyalty.product_matches(%L::jsonb, l.sku))', lines, rule -> 'not_bought');
    END IF;
    -- purchases and spend: the count or sum compared inside the aggregate
    -- query (a BETWEEN of a subquery evaluates it twice).  Over every
    -- customer (whole) with a minimum above 0, the customers whose count or
    -- sum is in range are one grouped pass over the window's purchases,
    -- not a count per customer (3M index probes at chain scale); over a few
    -- candidates, each one's count by key.
    FOR m IN SELECT * FROM (VALUES
                 ('purchases', ' AND NOT (p.refunded = p.total AND p.total > 0)', 'count(*)', 'count(*)', '2147483647'),
                 ('spend', '', 'sum(p.total - p.refunded)', 'coalesce(sum(p.total - p.refunded), 0)', '1e15'))
               AS v(k, kept, agg, agg_or_0, top) LOOP
        CONTINUE WHEN NOT rule ? m.k;
        w := CASE WHEN rule -> m.k ? 'within'
                  THEN format(' AND p.at >= %s - %L::interval', t, rule -> m.k ->> 'within') ELSE '' END;
        IF whole AND coalesce((rule -> m.k ->> 'min')::numeric, 0) > 0 THEN
            parts := parts || format('c.id IN (SELECT p.customer_id FROM loyalty.purchase p'
                                     ' WHERE p.customer_id IS NOT NULL AND p.at < %1$s%2$s%5$s'
                                     ' GROUP BY p.customer_id HAVING %6$s BETWEEN %3$L::numeric AND %4$L::numeric)',
                                     t, w, rule -> m.k ->> 'min', coalesce(rule -> m.k ->> 'max', m.top), m.kept, m.agg);
        ELSE
            parts := parts || format('(SELECT %6$s BETWEEN %3$L::numeric AND %4$L::numeric FROM loyalty.purchase p'
                                     ' WHERE p.customer_id = c.id AND p.at < %1$s%2$s%5$s)',
                                     t, w, coalesce(rule -> m.k ->> 'min', '0'), coalesce(rule -> m.k ->> 'max', m.top),
                                     m.kept, m.agg_or_0);
        END IF;
    END LOOP;
    IF rule ? 'used_promotion' THEN
        parts := parts || format('EXISTS (SELECT 1 FROM loyalty.purchase p WHERE p.customer_id = c.id AND p.at < %s'
                                 ' AND %L = ANY (p.promotions) AND NOT (p.refunded = p.total AND p.total > 0))', t, rule ->> 'used_promotion');
    END IF;
    IF rule ? 'not_used_promotion' THEN
        parts := parts || format('NOT EXISTS (SELECT 1 FROM loyalty.purchase p WHERE p.customer_id = c.id AND p.at < %s'
                                 ' AND %L = ANY (p.promotions) AND NOT (p.refunded = p.total AND p.total > 0))', t, rule ->> 'not_used_promotion');
    END IF;
    IF rule ? 'any_of' THEN
        alts := ARRAY[]::text[];
        FOR r IN SELECT jsonb_array_elements(rule -> 'any_of') LOOP
            alts := alts || ('(' || loyalty.segment_condition(r, as_of, whole) || ')');
        END LOOP;
        parts := parts || ('(' || array_to_string(alts, ' OR ') || ')');
    END IF;
    IF rule ? 'not' THEN
        parts := parts || ('NOT (' || loyalty.segment_condition(rule -> 'not', as_of, whole) || ')');
    END IF;
    RETURN array_to_string(parts, ' AND ');
END
$$;
COMMENT ON FUNCTION loyalty.segment_condition(rule jsonb, as_of timestamp with time zone, whole boolean) IS
    'The SQL condition on customer c of a (validated) segment rule as of a moment; whole: written for every customer at once (set-based), else for a few candidates probed by key';

-- ROWS 3: a rule has a few time boundaries; the default estimate (1,000
-- rows) misled the plan of the segment refresh's candidates.
CREATE FUNCTION loyalty.segment_intervals(rule jsonb) RETURNS SETOF interval
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE ROWS 3
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT (q.j #>> '{}')::interval FROM jsonb_path_query(rule, 'lax $.**.inactive_for') AS q(j)
    UNION
    SELECT (q.j #>> '{}')::interval FROM jsonb_path_query(rule, 'lax $.**.active_within') AS q(j)
    UNION
    SELECT (q.j #>> '{}')::interval FROM jsonb_path_query(rule, 'lax $.**.within') AS q(j)
$$;
COMMENT ON FUNCTION loyalty.segment_intervals(rule jsonb) IS
    'The time boundaries (inactive_for, active_within, within) anywhere in a segment rule';

-- At chain scale (3M customers; every result unchanged): the candidates
-- are looked up by key, not found by joining all customers and all
-- members, and those with a purchase or a refund are read once per
-- refresh moment, not once per segment; the members are written by a
-- plain insert of those not there under a table lock (no ON CONFLICT);
-- segment_member is analyzed after a pass in full (else the next
-- incremental refresh planned its deletes on a table it believed empty:
-- 12 s a segment); work_mem 256MB (hash aggregates no longer spill), no
-- JIT (its compilation cost more than the statements).
CREATE FUNCTION loyalty.refresh_segments(full boolean DEFAULT false, as_of timestamptz DEFAULT now()) RETURNS jsonb
    LANGUAGE plpgsql STRICT SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET jit = off
    SET work_mem = '256MB'
    AS $$
DECLARE
    s        record;
    last     timestamptz;
    len      interval;
    late     interval := loyalty.setting_value('max_backdate')::interval;
    cond     text;
    entered  bigint;
    left_    bigint;
    total_in bigint := 0;
    total_out bigint := 0;
    gone_ids bigint[];
    base_last timestamptz := NULL;
    base_seen xid8 := NULL;
    -- what this refresh has seen: every transaction older than the oldest
    -- one running as it begins had ended (a subtransaction's id is newer
    -- than its parent's, so this holds for rows written in one too)
    seen_now xid8 := pg_snapshot_xmin(pg_current_snapshot());
    ref      bigint := pg_snapshot_xmax(pg_current_snapshot())::text::bigint;
    sysid    bigint := (SELECT x.system_identifier FROM pg_control_system() x);
    seen     xid8;
    in_full  boolean := false;
    seg_full boolean;
    by_purchase boolean;
    left_doc jsonb;
    came_doc jsonb;
BEGIN
    -- one refresh at a time (maintenance holds this lock already)
    PERFORM pg_advisory_xact_lock(19545, 2);
    -- no other writer of the members until this one commits: the members
    -- are written without ON CONFLICT (a plain insert of those not there),
    -- and a customer's delete, which deletes its memberships, waits for
    -- this commit (segment_member_check)
    LOCK TABLE loyalty.segment_member IN SHARE ROW EXCLUSIVE MODE;
    CREATE TEMPORARY TABLE loyalty_seg_cand (customer_id bigint PRIMARY KEY) ON COMMIT DROP;
    CREATE TEMPORARY TABLE loyalty_seg_base (customer_id bigint PRIMARY KEY) ON COMMIT DROP;
    CREATE TEMPORARY TABLE loyalty_seg_want (customer_id bigint PRIMARY KEY) ON COMMIT DROP;
    FOR s IN SELECT g.code, g.rule, st.rule AS old_rule, st.refreshed_at, st.seen_before, st.seen_system
               FROM loyalty.segment g LEFT JOIN loyalty.segment_state st ON st.segment = g.code
              ORDER BY g.code LOOP
        TRUNCATE loyalty_seg_want;
        -- one payload per segment and change, built once (not once a row)
        left_doc := jsonb_build_object('segment', s.code, 'change', 'left', 'at', as_of);
        came_doc := jsonb_build_object('segment', s.code, 'change', 'entered', 'at', as_of);
        seg_full := refresh_segments.full OR s.old_rule IS DISTINCT FROM s.rule OR s.refreshed_at > as_of;
        IF seg_full THEN
            in_full := true;
            cond := loyalty.segment_condition(s.rule, as_of, true);
            EXECUTE 'INSERT INTO loyalty_seg_want SELECT c.id FROM loyalty.customer c WHERE c.merged_into IS NULL AND ' || cond;
            WITH gone AS (
                DELETE FROM loyalty.segment_member m
                 WHERE m.segment = s.code
                   AND NOT EXISTS (SELECT 1 FROM loyalty_seg_want w WHERE w.customer_id = m.customer_id)
                RETURNING m.customer_id)
            INSERT INTO loyalty.event (customer_id, kind, payload)
            SELECT customer_id, 'segment_changed',
                   left_doc FROM gone;
            GET DIAGNOSTICS left_ = ROW_COUNT;
        ELSE
            cond := loyalty.segment_condition(s.rule, as_of);
            last := s.refreshed_at;
            -- a rule on RFM and tiers alone changes only for the customers
            -- rescored or whose tier changed: purchases and refunds are no
            -- reason to look at a customer again (a key of the rule quoted
            -- in the rule's text: a name that happens to be quoted too only
            -- costs the look)
            by_purchase := s.rule::text ~ '"(inactive_for|active_within|bought|not_bought|within|purchases|spend|used_promotion|not_used_promotion)"';
            -- the customers with a purchase or a refund since the last
            -- refresh are the same for every segment refreshed at the same
            -- moment: read once per distinct moment.  Since: dated at or
            -- after the last refresh's moment, or up to max_backdate before
            -- it and written by a transaction the last refresh did not see
            -- (a late check); the row's xmin made a full transaction id next
            -- to the current one (an id above the current one's low half is
            -- of the epoch before; a frozen row's old id reads as newer,
            -- which only looks at it again).  Without that mark (a first
            -- refresh, or a restore into another cluster), all of them.
            seen := CASE WHEN s.seen_system = sysid THEN s.seen_before END;
            IF by_purchase AND (base_last IS DISTINCT FROM last OR base_seen IS DISTINCT FROM seen) THEN
                TRUNCATE loyalty_seg_base;
                INSERT INTO loyalty_seg_base
                SELECT DISTINCT x.customer_id
                  FROM (SELECT p.customer_id, p.at, p.xmin::text::bigint AS xid FROM loyalty.purchase p
                         WHERE p.at >= last - late AND p.customer_id IS NOT NULL
                        UNION ALL
                        SELECT r.customer_id, r.at, r.xmin::text::bigint FROM loyalty.refund r
                         WHERE r.at >= last - late AND r.customer_id IS NOT NULL) x
                 WHERE x.at >= last OR seen IS NULL
                    OR (((ref >> 32) - (x.xid > (ref & 4294967295))::int) << 32 | x.xid)::text::xid8 >= seen;
                base_last := last;
                base_seen := seen;
            END IF;
            -- this segment's own candidates (time boundaries, tiers, RFM),
            -- beside the shared ones: not a copy of those per segment.  A
            -- purchase crosses a boundary of length len when the moment
            -- passes at + len: at in [last - len, as_of - len).  No
            -- max_backdate here: a purchase written since the last refresh
            -- is at most max_backdate old, so it is a shared candidate
            -- already, and one written before it was seen by it (at chain
            -- scale a day's refresh looks at one day of purchases per
            -- boundary, not four)
            TRUNCATE loyalty_seg_cand;
            -- one statement per boundary, its window known to the planner
            -- (joined to segment_intervals, the window was a parameter the
            -- planner guessed a third of the purchases for, and it read a
            -- whole index for each boundary)
            FOR len IN SELECT loyalty.segment_intervals(s.rule) LOOP
                INSERT INTO loyalty_seg_cand
                SELECT p.customer_id FROM loyalty.purchase p
                 WHERE p.at >= last - len AND p.at < as_of - len AND p.customer_id IS NOT NULL
                ON CONFLICT DO NOTHING;
            END LOOP;
            INSERT INTO loyalty_seg_cand
            SELECT e.customer_id FROM loyalty.event e
             WHERE e.kind = 'tier_changed' AND e.created_at >= last AND s.rule::text LIKE '%"tiers"%'
            UNION ALL
            -- refresh_rfm writes every row with one computed_at: when the
            -- first row is not newer, none is (no scan of all of them; the
            -- first by key, not the first in the heap, which after a
            -- refresh is preceded by the dead rows of the previous one)
            SELECT x.customer_id FROM loyalty.rfm x
             WHERE x.computed_at > last AND s.rule::text LIKE '%"rfm"%'
               AND (SELECT y.computed_at FROM loyalty.rfm y ORDER BY y.customer_id LIMIT 1) > last
            ON CONFLICT DO NOTHING;
            -- the candidates are looked up by key (= ANY of an array: index
            -- probes whatever the planner thinks of the temporary tables;
            -- a key in both is one probe)
            EXECUTE 'INSERT INTO loyalty_seg_want SELECT c.id FROM loyalty.customer c'
                    ' WHERE c.id = ANY (ARRAY(SELECT k.customer_id FROM loyalty_seg_cand k'
                    || CASE WHEN by_purchase THEN ' UNION ALL SELECT b.customer_id FROM loyalty_seg_base b' ELSE '' END
                    || ')) AND c.merged_into IS NULL AND ' || cond;
            -- the candidates not wanted, passed to EXECUTE as a constant:
            -- whether the planner probes the key or filters the segment's
            -- rows (stale statistics right after a first full refresh), the
            -- test is an index condition or a hashed lookup, never a linear
            -- search of the array for each member (12 s a segment at chain
            -- scale)
            gone_ids := ARRAY(SELECT k.customer_id
                                FROM (SELECT b.customer_id FROM loyalty_seg_base b WHERE by_purchase
                                      UNION SELECT c.customer_id FROM loyalty_seg_cand c) k
                               WHERE NOT EXISTS (SELECT 1 FROM loyalty_seg_want w
                                                  WHERE w.customer_id = k.customer_id));
            EXECUTE 'WITH gone AS (
                         DELETE FROM loyalty.segment_member m
                          WHERE m.segment = $1 AND m.customer_id = ANY ($2)
                         RETURNING m.customer_id)
                     INSERT INTO loyalty.event (customer_id, kind, payload)
                     SELECT customer_id, ''segment_changed'',
                            $3 FROM gone'
              USING s.code, gone_ids, left_doc;
            GET DIAGNOSTICS left_ = ROW_COUNT;
        END IF;
        IF seg_full THEN
            -- the members not there (this refresh is the only writer): a
            -- plain insert, not ON CONFLICT's speculative one per row; a set
            -- difference (never a nested loop, whatever the statistics say
            -- of a table this refresh is filling), in the order of the key:
            -- in a random order the two indexes cost more than the rows
            WITH came AS (
                INSERT INTO loyalty.segment_member (segment, customer_id, since)
                SELECT s.code, x.customer_id, as_of
                  FROM (SELECT w.customer_id FROM loyalty_seg_want w
                        EXCEPT
                        SELECT m.customer_id FROM loyalty.segment_member m WHERE m.segment = s.code) x
                 ORDER BY x.customer_id
                RETURNING customer_id)
            INSERT INTO loyalty.event (customer_id, kind, payload)
            SELECT customer_id, 'segment_changed',
                   came_doc FROM came;
        ELSE
            -- a few candidates: each probed by key (an anti-join might read
            -- all the segment's members)
            WITH came AS (
                INSERT INTO loyalty.segment_member (segment, customer_id, since)
                SELECT s.code, w.customer_id, as_of FROM loyalty_seg_want w
                ON CONFLICT (segment, customer_id) DO NOTHING
                RETURNING customer_id)
            INSERT INTO loyalty.event (customer_id, kind, payload)
            SELECT customer_id, 'segment_changed',
                   came_doc FROM came;
        END IF;
        GET DIAGNOSTICS entered = ROW_COUNT;
        total_in := total_in + entered;
        total_out := total_out + left_;
        INSERT INTO loyalty.segment_state (segment, rule, refreshed_at, seen_before, seen_system)
        VALUES (s.code, s.rule, as_of, seen_now, sysid)
        ON CONFLICT (segment) DO UPDATE SET rule = EXCLUDED.rule, refreshed_at = EXCLUDED.refreshed_at,
                                            seen_before = EXCLUDED.seen_before, seen_system = EXCLUDED.seen_system;
    END LOOP;
    DROP TABLE loyalty_seg_cand;
    DROP TABLE loyalty_seg_base;
    DROP TABLE loyalty_seg_want;
    -- a segment computed in full may have written most of its members:
    -- fresh statistics, or the next incremental refresh plans its deletes
    -- on a table it believes empty (a filter over every member of the
    -- segment instead of a probe per candidate)
    IF in_full THEN
        ANALYZE loyalty.segment_member;
    END IF;
    RETURN jsonb_build_object('segments_entered', total_in, 'segments_left', total_out);
END
$$;
COMMENT ON FUNCTION loyalty.refresh_segments(full boolean, as_of timestamp with time zone) IS
    'Refreshes segment members as of a moment: in full (full => true, or a segment new or changed since its last refresh) or only for the customers who may have changed since; segment_changed events; returns the entries and exits';

-- (run_maintenance and run_maintenance_proc refresh the segments: their
-- final definitions are in the Issue 17 section above)

SELECT pg_catalog.pg_extension_config_dump('loyalty.segment_state', '');

REVOKE ALL ON loyalty.segment_state FROM PUBLIC;
REVOKE ALL ON FUNCTION loyalty.segment_validate(), loyalty.refresh_segments(boolean, timestamptz),
    loyalty.product_matches(jsonb, text), loyalty.segment_condition(jsonb, timestamptz, boolean),
    loyalty.segment_intervals(jsonb) FROM PUBLIC;

-- Issue 16: rule segments.  The marketer refreshes them; the analyst reads
-- when each was refreshed.
GRANT SELECT ON loyalty.segment_state TO loyalty_marketer, loyalty_analyst;
GRANT EXECUTE ON FUNCTION loyalty.refresh_segments(boolean, timestamptz) TO loyalty_marketer;
GRANT ALL ON loyalty.segment_state TO loyalty_admin;
GRANT EXECUTE ON FUNCTION loyalty.refresh_segments(boolean, timestamptz),
    loyalty.product_matches(jsonb, text), loyalty.segment_condition(jsonb, timestamptz, boolean),
    loyalty.segment_intervals(jsonb) TO loyalty_admin;

-- ---------------------------------------------------------------------------
-- Issue 16: Segments (SPEC §10).  Part 3: promotion.segments_exclude, the
-- segments whose members never get a promotion (the next send of a campaign
-- excludes those who already used it).  The check reads the customer's
-- segments once, with the customer (one indexed read of segment_member);
-- the engine tests both lists from memory.
-- ---------------------------------------------------------------------------
ALTER TABLE loyalty.promotion ADD COLUMN segments_exclude text[];
COMMENT ON COLUMN loyalty.promotion.segments_exclude IS
    'Segments whose members never get the promotion (members of none of them may); read with the customer, once per check';

-- ---------------------------------------------------------------------------
-- Issue 16: Segments (SPEC §10).  Part 4: loyalty.grant_points, the
-- set-based campaign grant ("1000 points to the active segment"): one
-- statement for every member, debts paid first, idempotent by operation_id
-- (operation kind grant).
-- ---------------------------------------------------------------------------
ALTER DOMAIN loyalty.operation_kind DROP CONSTRAINT operation_kind_known;
ALTER DOMAIN loyalty.operation_kind ADD CONSTRAINT operation_kind_known
    CHECK (VALUE IN ('purchase', 'refund', 'adjust', 'expire', 'merge', 'order_hold', 'order_cancel', 'order_release', 'grant'));
COMMENT ON DOMAIN loyalty.operation_kind IS
    'The kind of a writing call: purchase, refund, adjust, expire, merge, order_hold, order_cancel, order_release or grant';

CREATE FUNCTION loyalty.grant_points(request jsonb) RETURNS jsonb
    LANGUAGE c STRICT SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_grant_points';
COMMENT ON FUNCTION loyalty.grant_points(request jsonb) IS
    'Campaign grant: the same points to every member of a segment or every listed customer in one set-based statement; idempotent by operation_id';
REVOKE ALL ON FUNCTION loyalty.grant_points(jsonb) FROM PUBLIC;

-- Issue 16: campaign grants are the marketer's
GRANT EXECUTE ON FUNCTION loyalty.grant_points(jsonb) TO loyalty_marketer, loyalty_admin;

-- ---------------------------------------------------------------------------
-- Issue 16: Experiments, KPIs and liability (SPEC §10).  Part 5: ab_group
-- (a documented hash an analyst reproduces in SQL), experiments with a
-- holdout and experiment_report (two-proportion z-test), kpi / kpi_daily,
-- points_liability as of any moment (from the ledger entries), breakage.
-- ---------------------------------------------------------------------------
-- ---------------------------------------------------------------------------
-- A/B experiments (SPEC §10).  ab_group hashes experiment || ':' ||
-- customer_id with hashtextextended (seed 0, the 64-bit hash PostgreSQL's
-- hash partitioning uses) into 10,000 buckets: bucket = hash mod 10000
-- (taken non-negative), group = bucket * groups / 10000.  An experiment's
-- holdout takes the first holdout_percent * 100 buckets, its variants the
-- rest in proportion to their weights, in the order written.
-- ---------------------------------------------------------------------------
CREATE FUNCTION loyalty.ab_bucket(customer_id bigint, experiment text) RETURNS integer
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$
    SELECT (((pg_catalog.hashtextextended(experiment || ':' || customer_id::text, 0) % 10000) + 10000) % 10000)::integer
$$;
COMMENT ON FUNCTION loyalty.ab_bucket(customer_id bigint, experiment text) IS
    'The bucket (0..9999) of a customer in an experiment: hashtextextended(experiment || '':'' || customer_id, 0) mod 10000, non-negative';

CREATE FUNCTION loyalty.ab_group(customer_id bigint, experiment text, groups integer DEFAULT 2) RETURNS integer
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$
    SELECT CASE WHEN groups BETWEEN 1 AND 10000
                THEN loyalty.ab_bucket(customer_id, experiment) * groups / 10000 END
$$;
COMMENT ON FUNCTION loyalty.ab_group(customer_id bigint, experiment text, groups integer) IS
    'Deterministic A/B group 0..groups-1 of a customer: ab_bucket * groups / 10000 (NULL unless 1 <= groups <= 10000)';

CREATE TABLE loyalty.experiment (
    code text NOT NULL,
    name text NOT NULL,
    variants jsonb NOT NULL,
    holdout_percent numeric(5,2) DEFAULT 0 NOT NULL,
    starts_at timestamp with time zone NOT NULL,
    ends_at timestamp with time zone NOT NULL,
    CONSTRAINT experiment_code_check CHECK (code <> '' AND position(':' IN code) = 0),
    CONSTRAINT experiment_holdout_range CHECK (holdout_percent >= 0 AND holdout_percent < 100),
    CONSTRAINT experiment_period_not_empty CHECK (starts_at < ends_at),
    CONSTRAINT experiment_pkey PRIMARY KEY (code)
);
COMMENT ON TABLE loyalty.experiment IS
    'A/B experiments: variants [{"code", "weight"}], a holdout share that gets none of the experiment''s promotions, a period';

CREATE FUNCTION loyalty.experiment_validate() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    v    jsonb;
    i    integer := 0;
    path text;
    why  text;
    seen text[] := '{}';
BEGIN
    IF jsonb_typeof(NEW.variants) <> 'array' OR jsonb_array_length(NEW.variants) = 0 THEN
        path := 'variants';
        why := 'must be a non-empty array of {"code", "weight"}';
    ELSE
        FOR v IN SELECT jsonb_array_elements(NEW.variants) LOOP
            path := format('variants[%s]', i);
            IF jsonb_typeof(v) <> 'object' THEN
                why := 'must be an object {"code", "weight"}';
            ELSIF EXISTS (SELECT 1 FROM jsonb_object_keys(v) k WHERE k NOT IN ('code', 'weight')) THEN
                path := path || '.' || (SELECT k FROM jsonb_object_keys(v) k WHERE k NOT IN ('code', 'weight') LIMIT 1);
                why := 'is not a known field (known: code, weight)';
            ELSIF jsonb_typeof(v -> 'code') IS DISTINCT FROM 'string' OR v ->> 'code' IN ('', 'holdout') THEN
                path := path || '.code';
                why := 'must be a non-empty string other than holdout';
            ELSIF (v ->> 'code') = ANY (seen) THEN
                path := path || '.code';
                why := 'repeats another variant''s code';
            ELSIF jsonb_typeof(v -> 'weight') IS DISTINCT FROM 'number'
                  OR (v ->> 'weight') !~ '^[0-9]{1,4}$' OR (v ->> 'weight')::int < 1 THEN
                path := path || '.weight';
                why := 'must be a whole number from 1 to 9999';
            END IF;
            EXIT WHEN why IS NOT NULL;
            seen := seen || (v ->> 'code');
            i := i + 1;
        END LOOP;
    END IF;
    IF why IS NOT NULL THEN
        RAISE EXCEPTION 'invalid experiment "%"', NEW.code
            USING ERRCODE = 'LY006', DETAIL = format('Field "%s" %s.', path, why);
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION loyalty.experiment_validate() IS 'Refuses an experiment whose variants are malformed (LY006, the JSON path named)';
CREATE TRIGGER experiment_validate BEFORE INSERT OR UPDATE ON loyalty.experiment
    FOR EACH ROW EXECUTE FUNCTION loyalty.experiment_validate();

CREATE FUNCTION loyalty.experiment_variant(experiment text, customer_id bigint) RETURNS text
    LANGUAGE sql STABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
    WITH e AS (SELECT x.holdout_percent, x.variants FROM loyalty.experiment x WHERE x.code = experiment),
         b AS (SELECT loyalty.ab_bucket(customer_id, experiment) AS bucket),
         v AS (SELECT o.value ->> 'code' AS code, o.ordinality AS n,
                      sum((o.value ->> 'weight')::numeric) OVER (ORDER BY o.ordinality) AS upto,
                      sum((o.value ->> 'weight')::numeric) OVER () AS total
                 FROM e, jsonb_array_elements(e.variants) WITH ORDINALITY o)
    SELECT CASE WHEN b.bucket < e.holdout_percent * 100 THEN 'holdout'
                ELSE (SELECT v.code FROM v
                       WHERE b.bucket - e.holdout_percent * 100 < v.upto * (10000 - e.holdout_percent * 100) / v.total
                       ORDER BY v.n LIMIT 1) END
      FROM e, b
$$;
COMMENT ON FUNCTION loyalty.experiment_variant(experiment text, customer_id bigint) IS
    'The variant (or holdout) of a customer in an experiment: the first holdout_percent*100 buckets are the holdout, the rest split by weight';

CREATE FUNCTION loyalty.normal_cdf(x double precision) RETURNS double precision
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$
    -- Abramowitz and Stegun 7.1.26 (absolute error below 1.5e-7)
    SELECT CASE WHEN x < 0 THEN 1 - loyalty.normal_cdf(-x)
                ELSE 1 - 0.5 * t.poly * exp(-(x * x) / 2) END
      FROM (SELECT k * (0.254829592 + k * (-0.284496736 + k * (1.421413741
                   + k * (-1.453152027 + k * 1.061405429)))) AS poly
              FROM (SELECT 1 / (1 + 0.3275911 * x / sqrt(2)) AS k) s) t
$$;
COMMENT ON FUNCTION loyalty.normal_cdf(x double precision) IS
    'The standard normal distribution function (Abramowitz-Stegun 7.1.26; error below 1.5e-7)';

CREATE FUNCTION loyalty.proportion_test(
        base_buyers bigint, base_assigned bigint, buyers bigint, assigned bigint,
        OUT uplift numeric, OUT z numeric, OUT confidence numeric,
        OUT significant boolean, OUT needed_per_arm bigint)
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$
    SELECT CASE WHEN p0 > 0 THEN round((p1 / p0 - 1)::numeric, 4) END,
           round(zz::numeric, 4),
           round((2 * loyalty.normal_cdf(abs(zz)) - 1)::numeric, 4),
           abs(zz) >= 1.96,
           CASE WHEN p1 <> p0 THEN
               ceil(7.848879 * (p0 * (1 - p0) + p1 * (1 - p1)) / ((p1 - p0) ^ 2))::bigint END
      FROM (SELECT p0, p1,
                   CASE WHEN n0 > 0 AND n1 > 0 AND pooled * (1 - pooled) > 0
                        THEN (p1 - p0) / sqrt(pooled * (1 - pooled) * (1.0 / n0 + 1.0 / n1)) END AS zz
              FROM (SELECT base_buyers::float8 / nullif(base_assigned, 0) AS p0,
                           buyers::float8 / nullif(assigned, 0) AS p1,
                           (base_buyers + buyers)::float8 / nullif(base_assigned + assigned, 0) AS pooled,
                           base_assigned::float8 AS n0, assigned::float8 AS n1) r) s
$$;
COMMENT ON FUNCTION loyalty.proportion_test(base_buyers bigint, base_assigned bigint, buyers bigint, assigned bigint) IS
    'Two-proportion z-test of buyers/assigned against a base: relative uplift, z (pooled), two-sided confidence, |z| >= 1.96, customers per arm for 95 % / 80 % power ((1.959964 + 0.841621)^2 = 7.848879)';

CREATE FUNCTION loyalty.experiment_report(code text)
    RETURNS TABLE (variant text, assigned bigint, buyers bigint, conversion numeric,
                   revenue_per_customer numeric, uplift numeric, z numeric, confidence numeric,
                   significant boolean, needed_per_arm bigint)
    LANGUAGE sql STABLE STRICT SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
    WITH e AS (SELECT x.* FROM loyalty.experiment x WHERE x.code = experiment_report.code),
         arms AS (SELECT 'holdout' AS variant, 0 AS n FROM e WHERE e.holdout_percent > 0
                  UNION ALL
                  SELECT o.value ->> 'code', o.ordinality FROM e, jsonb_array_elements(e.variants) WITH ORDINALITY o),
         who AS (SELECT c.id, loyalty.experiment_variant(e.code, c.id) AS variant
                   FROM e, loyalty.customer c
                  WHERE c.merged_into IS NULL AND c.created_at < e.ends_at),
         spend AS (SELECT p.customer_id, sum(p.total - p.refunded) AS paid
                     FROM e, loyalty.purchase p
                    WHERE p.at >= e.starts_at AND p.at < e.ends_at AND p.customer_id IS NOT NULL
                    GROUP BY p.customer_id),
         agg AS (SELECT a.variant, a.n, count(w.id) AS assigned, count(s.customer_id) AS buyers,
                        coalesce(sum(s.paid), 0) AS paid
                   FROM arms a LEFT JOIN who w ON w.variant = a.variant
                   LEFT JOIN spend s ON s.customer_id = w.id
                  GROUP BY a.variant, a.n),
         base AS (SELECT * FROM agg ORDER BY n LIMIT 1)
    SELECT g.variant, g.assigned, g.buyers,
           round(g.buyers::numeric / nullif(g.assigned, 0), 4),
           round(g.paid / nullif(g.assigned, 0), 2),
           t.uplift, t.z, t.confidence, t.significant, t.needed_per_arm
      FROM agg g CROSS JOIN base b
      LEFT JOIN LATERAL (SELECT * FROM loyalty.proportion_test(b.buyers, b.assigned, g.buyers, g.assigned)
                          WHERE g.n <> b.n) t ON true
     ORDER BY g.n
$$;
COMMENT ON FUNCTION loyalty.experiment_report(code text) IS
    'Per variant of an experiment (holdout first when there is one): assigned customers, buyers in the period, conversion, revenue per customer, and against the holdout (or the first variant) uplift, z, confidence, significance and customers needed per arm';

-- ---------------------------------------------------------------------------
-- KPIs and points liability (SPEC §10).  Money is paid total net of
-- refunds; periods are program-time-zone days, weeks, months.
-- ---------------------------------------------------------------------------
-- (Folded: kpi is the merge of this node's own additive parts, kpi_parts,
-- with kpi_merge, as a sharded chain merges every node's; the two had
-- restated one statement.)
CREATE FUNCTION loyalty.kpi("from" timestamptz, "to" timestamptz, by text DEFAULT 'day')
    RETURNS TABLE (period text, checks bigint, identified_checks bigint, identified_share numeric,
                   revenue numeric, member_revenue_share numeric, avg_check_member numeric,
                   avg_check_anonymous numeric, customers bigint, repeat_rate numeric,
                   retention numeric, points_earned numeric, points_spent numeric,
                   points_expired numeric, points_reversed numeric, redemption_rate numeric)
    LANGUAGE plpgsql STABLE STRICT SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET jit = off
    AS $$
#variable_conflict use_column
-- The arguments are checked here, so that an error names loyalty.kpi; the
-- KPIs themselves are the merge of this node's additive parts (kpi_parts,
-- kpi_merge: what a sharded chain merges every node's parts with).
BEGIN
    IF by NOT IN ('day', 'week', 'month', 'store', 'channel') THEN
        RAISE EXCEPTION 'invalid kpi grouping "%"', by
            USING ERRCODE = '22023', DETAIL = 'Argument "by" must be day, week, month, store or channel.';
    END IF;
    IF "from" >= "to" THEN
        RAISE EXCEPTION 'empty kpi period'
            USING ERRCODE = '22023', DETAIL = 'Argument "from" must be earlier than "to".';
    END IF;
    RETURN QUERY
    SELECT * FROM loyalty.kpi_merge(ARRAY(SELECT x FROM loyalty.kpi_parts("from", "to", by) x));
END
$$;
COMMENT ON FUNCTION loyalty.kpi("from" timestamp with time zone, "to" timestamp with time zone, by text) IS
    'Program KPIs of [from, to) by day, week, month (program time zone), store or channel: checks, identified share, revenue, member share, average checks, customers, repeat rate, retention, points earned/spent/expired/reversed, redemption rate';

CREATE VIEW loyalty.kpi_daily AS
    SELECT k.*
      FROM (SELECT min(at) AS first, max(at) AS last FROM loyalty.purchase) b
     CROSS JOIN LATERAL loyalty.kpi(b.first, b.last + interval '1 microsecond', 'day') k
     WHERE b.first IS NOT NULL;
COMMENT ON VIEW loyalty.kpi_daily IS 'loyalty.kpi by program day over the whole history';

-- (Folded, chain scale: 2.7M lots, a grant's 1.18M entries after the
-- moment.)  One pass over the lots (before: two, and a semi-join of every
-- entry after the moment with every lot counted); the entries after the
-- moment are only those of lots up to the last one earned by the moment, so
-- a later grant's entries are skipped unread; the settings are read once,
-- not once a lot.  sql/kpi_liability_speed.sql compares it with the sum of
-- the entries up to each of twelve moments.
CREATE FUNCTION loyalty.points_liability(as_of timestamptz DEFAULT now())
    RETURNS TABLE (account text, expiry_month text, available numeric, pending numeric,
                   negative numeric, points numeric, money numeric)
    LANGUAGE sql STABLE STRICT SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET jit = off
    AS $$
    WITH later AS (
        -- a lot's remaining is the sum of its entries (verify_ledger): as of
        -- the moment it is its remaining less the entries after the moment,
        -- found through ledger_entry_at_idx (few unless the moment is old).
        -- Only the entries of lots counted below matter, and those lots' ids
        -- are at most the last lot earned by the moment's (found from the
        -- newest lot back): the entries of lots added since, such as a later
        -- grant's, are skipped without being grouped or joined.
        SELECT y.lot_id, sum(y.points) AS points
          FROM loyalty.ledger_entry y
         WHERE y.at > as_of
           AND y.lot_id <= (SELECT x.id FROM loyalty.lot x WHERE x.earned_at <= as_of
                             ORDER BY x.id DESC LIMIT 1)
         GROUP BY y.lot_id
    ), l AS (
        -- one pass over the lots; OFFSET 0 computes each lot's remaining as
        -- of the moment once, not once for every sum below (and computes
        -- nothing for a lot without entries after the moment)
        SELECT x.account, x.available_at, x.expires_at,
               CASE WHEN a.points IS NULL THEN x.remaining ELSE x.remaining - a.points END AS remaining
          FROM loyalty.lot x LEFT JOIN later a ON a.lot_id = x.id
         WHERE x.earned_at <= as_of AND (x.expires_at IS NULL OR x.expires_at > as_of OR x.amount < 0)
        OFFSET 0
    ), g AS (
        -- grouped by the expiry's month first, the month's text once a group;
        -- the settings read once (an InitPlan), not once a lot
        SELECT l.account, date_trunc('month', l.expires_at AT TIME ZONE (SELECT loyalty.setting_value('timezone'))) AS month,
               sum(l.remaining) FILTER (WHERE l.remaining > 0 AND l.available_at <= as_of) AS available,
               sum(l.remaining) FILTER (WHERE l.remaining > 0 AND l.available_at > as_of) AS pending,
               sum(l.remaining) FILTER (WHERE l.remaining < 0) AS negative,
               sum(l.remaining) AS points
          FROM l
         WHERE l.remaining <> 0
         GROUP BY 1, 2
    )
    SELECT g.account, to_char(g.month, 'YYYY-MM'), g.available, g.pending, g.negative, g.points,
           round(g.points * (SELECT loyalty.setting_value('point_value')::numeric), 2)
      FROM g
     ORDER BY 1, 2 NULLS LAST
$$;
COMMENT ON FUNCTION loyalty.points_liability(as_of timestamp with time zone) IS
    'Points owed as of a moment (from the ledger entries up to it) by account and expiry month (program time zone; NULL: no expiry): available, pending, debt, points and their money value';

CREATE VIEW loyalty.breakage AS
    SELECT to_char(x.earned_at AT TIME ZONE loyalty.setting_value('timezone'), 'YYYY-MM') AS earn_month,
           x.account,
           sum(x.amount) AS issued,
           -coalesce(sum(e.spent), 0) AS redeemed,
           -coalesce(sum(e.expired), 0) AS expired,
           -coalesce(sum(e.reversed), 0) AS reversed,
           round(-coalesce(sum(e.expired), 0) / nullif(sum(x.amount) + coalesce(sum(e.reversed), 0), 0), 4) AS breakage_rate
      FROM loyalty.lot x
      LEFT JOIN (
          SELECT le.lot_id,
                 sum(le.points) FILTER (WHERE le.kind IN ('spend', 'return')) AS spent,
                 sum(le.points) FILTER (WHERE le.kind = 'expire') AS expired,
                 sum(le.points) FILTER (WHERE le.kind = 'reverse') AS reversed
            FROM loyalty.ledger_entry le GROUP BY le.lot_id) e ON e.lot_id = x.id
     WHERE x.amount > 0
     GROUP BY 1, 2
    HAVING bool_and(coalesce(x.remaining = 0 OR x.expires_at <= now(), false));
COMMENT ON VIEW loyalty.breakage IS
    'Per earn month (program time zone) and account whose lots have all ended: issued, redeemed, expired, reversed, breakage rate = expired / (issued - reversed)';

SELECT pg_catalog.pg_extension_config_dump('loyalty.experiment', '');

REVOKE ALL ON loyalty.experiment, loyalty.kpi_daily, loyalty.breakage FROM PUBLIC;
REVOKE ALL ON FUNCTION
    loyalty.ab_bucket(bigint, text), loyalty.ab_group(bigint, text, integer),
    loyalty.experiment_variant(text, bigint), loyalty.normal_cdf(double precision),
    loyalty.proportion_test(bigint, bigint, bigint, bigint), loyalty.experiment_report(text),
    loyalty.kpi(timestamptz, timestamptz, text), loyalty.points_liability(timestamptz),
    loyalty.experiment_validate()
    FROM PUBLIC;

-- Issue 16: experiments, KPIs and liability are the analyst's and the
-- marketer's (the marketer also writes experiments)
GRANT SELECT, INSERT, UPDATE, DELETE ON loyalty.experiment TO loyalty_marketer;
GRANT SELECT ON loyalty.experiment, loyalty.kpi_daily, loyalty.breakage TO loyalty_analyst;
GRANT SELECT ON loyalty.kpi_daily, loyalty.breakage TO loyalty_marketer, loyalty_admin;
GRANT ALL ON loyalty.experiment TO loyalty_admin;
GRANT EXECUTE ON FUNCTION
    loyalty.ab_bucket(bigint, text), loyalty.ab_group(bigint, text, integer),
    loyalty.experiment_variant(text, bigint), loyalty.normal_cdf(double precision),
    loyalty.proportion_test(bigint, bigint, bigint, bigint), loyalty.experiment_report(text),
    loyalty.kpi(timestamptz, timestamptz, text), loyalty.points_liability(timestamptz)
    TO loyalty_analyst, loyalty_marketer, loyalty_admin;
GRANT EXECUTE ON FUNCTION loyalty.experiment_validate() TO loyalty_admin;

-- ---------------------------------------------------------------------------
-- Issue 16: promotion.experiment / variant (SPEC §10): an experiment's
-- promotion goes only to the customers of its variant (any variant when
-- NULL), never to the holdout; the engine assigns with the hash of
-- loyalty.ab_bucket, from the experiments the configuration cache holds.
-- ---------------------------------------------------------------------------
ALTER TABLE loyalty.promotion ADD COLUMN experiment text, ADD COLUMN variant text,
    ADD CONSTRAINT promotion_variant_needs_experiment CHECK (variant IS NULL OR experiment IS NOT NULL);
COMMENT ON COLUMN loyalty.promotion.experiment IS
    'The A/B experiment the promotion belongs to: only that experiment''s customers of "variant" (NULL: of any variant) get it, the holdout never';
CREATE TRIGGER config_changed AFTER INSERT OR DELETE OR UPDATE OR TRUNCATE ON loyalty.experiment
    FOR EACH STATEMENT EXECUTE FUNCTION loyalty.config_changed();

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

-- ---------------------------------------------------------------------------
-- Issue 17: a full refund (coupons_refund) and an order's release read the
-- coupon uses of one operation; coupon_use's key leads with the code, so
-- each read scanned the whole table.  An index by operation.
-- ---------------------------------------------------------------------------
CREATE INDEX coupon_use_operation_idx ON loyalty.coupon_use (operation_id);

-- ---------------------------------------------------------------------------
-- Issue 20 (item 6): configuration replicated from one configuration master
-- to every shard by logical replication (SPEC §14).  loyalty.config_tables()
-- lists what the publication carries.  A logical replication apply worker
-- runs with session_replication_role = replica and fires only row triggers
-- enabled REPLICA or ALWAYS, never statement triggers: so the statement
-- trigger config_changed is enabled ALWAYS (it still fires for a replicated
-- TRUNCATE and the initial COPY) and a row trigger config_changed_replica,
-- enabled REPLICA only (no per-row cost on the master), invalidates the
-- shards' caches for replicated INSERT, UPDATE and DELETE.  Foreign key
-- actions do not run on a subscriber either (internal triggers): when the
-- master renames or deletes a key that shard rows reference (a tier, a
-- promotion, an account type, a subscription plan, a segment),
-- config_replica_follow, enabled REPLICA, does on the shard what the
-- foreign key does on one node (cascade, set null) or refuses the change
-- (LY006) where the key may not go.  promotion_usage_follow (per-customer
-- counters, no foreign key) is enabled ALWAYS for the same reason.
-- loyalty.config_digest() is a digest of everything that prices a check, so
-- that a DBA sees every node price with the same rules.
-- ---------------------------------------------------------------------------
CREATE FUNCTION loyalty.config_tables() RETURNS SETOF regclass
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT t::regclass
      FROM unnest(ARRAY['loyalty.setting', 'loyalty.store', 'loyalty.category', 'loyalty.product',
                        'loyalty.account_type', 'loyalty.tier', 'loyalty.experiment',
                        'loyalty.promotion', 'loyalty.subscription_plan', 'loyalty.segment',
                        'loyalty.rfm_segment', 'loyalty.message_template']) WITH ORDINALITY AS u(t, i)
     ORDER BY i
$$;
COMMENT ON FUNCTION loyalty.config_tables() IS
    'The configuration tables a configuration master publishes to every shard (in the order of their references)';

CREATE TRIGGER config_changed_replica AFTER INSERT OR DELETE OR UPDATE ON loyalty.setting
    FOR EACH ROW EXECUTE FUNCTION loyalty.config_changed();
CREATE TRIGGER config_changed_replica AFTER INSERT OR DELETE OR UPDATE ON loyalty.store
    FOR EACH ROW EXECUTE FUNCTION loyalty.config_changed();
CREATE TRIGGER config_changed_replica AFTER INSERT OR DELETE OR UPDATE ON loyalty.category
    FOR EACH ROW EXECUTE FUNCTION loyalty.config_changed();
CREATE TRIGGER config_changed_replica AFTER INSERT OR DELETE OR UPDATE ON loyalty.product
    FOR EACH ROW EXECUTE FUNCTION loyalty.config_changed();
CREATE TRIGGER config_changed_replica AFTER INSERT OR DELETE OR UPDATE ON loyalty.account_type
    FOR EACH ROW EXECUTE FUNCTION loyalty.config_changed();
CREATE TRIGGER config_changed_replica AFTER INSERT OR DELETE OR UPDATE ON loyalty.tier
    FOR EACH ROW EXECUTE FUNCTION loyalty.config_changed();
CREATE TRIGGER config_changed_replica AFTER INSERT OR DELETE OR UPDATE ON loyalty.experiment
    FOR EACH ROW EXECUTE FUNCTION loyalty.config_changed();
CREATE TRIGGER config_changed_replica AFTER INSERT OR DELETE OR UPDATE ON loyalty.promotion
    FOR EACH ROW EXECUTE FUNCTION loyalty.config_changed();
CREATE TRIGGER config_changed_replica AFTER INSERT OR DELETE OR UPDATE ON loyalty.subscription_plan
    FOR EACH ROW EXECUTE FUNCTION loyalty.config_changed();
ALTER TABLE loyalty.setting ENABLE ALWAYS TRIGGER config_changed, ENABLE REPLICA TRIGGER config_changed_replica;
ALTER TABLE loyalty.store ENABLE ALWAYS TRIGGER config_changed, ENABLE REPLICA TRIGGER config_changed_replica;
ALTER TABLE loyalty.category ENABLE ALWAYS TRIGGER config_changed, ENABLE REPLICA TRIGGER config_changed_replica;
ALTER TABLE loyalty.product ENABLE ALWAYS TRIGGER config_changed, ENABLE REPLICA TRIGGER config_changed_replica;
ALTER TABLE loyalty.account_type ENABLE ALWAYS TRIGGER config_changed, ENABLE REPLICA TRIGGER config_changed_replica;
ALTER TABLE loyalty.tier ENABLE ALWAYS TRIGGER config_changed, ENABLE REPLICA TRIGGER config_changed_replica;
ALTER TABLE loyalty.experiment ENABLE ALWAYS TRIGGER config_changed, ENABLE REPLICA TRIGGER config_changed_replica;
ALTER TABLE loyalty.promotion ENABLE ALWAYS TRIGGER config_changed, ENABLE REPLICA TRIGGER config_changed_replica,
    ENABLE ALWAYS TRIGGER promotion_usage_follow;
ALTER TABLE loyalty.subscription_plan ENABLE ALWAYS TRIGGER config_changed,
    ENABLE REPLICA TRIGGER config_changed_replica;

CREATE FUNCTION loyalty.config_replica_follow() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    fk record;
    old_key text;
    new_key text;
    referenced boolean;
BEGIN
    -- every foreign key from a table that is not replicated to this one
    FOR fk IN
        SELECT c.conrelid::regclass::text AS tab, a.attname AS col, r.attname AS refcol,
               CASE WHEN TG_OP = 'UPDATE' THEN c.confupdtype ELSE c.confdeltype END AS act
          FROM pg_constraint c
          JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
          JOIN pg_attribute r ON r.attrelid = c.confrelid AND r.attnum = c.confkey[1]
         WHERE c.contype = 'f' AND c.confrelid = TG_RELID AND cardinality(c.conkey) = 1
           AND c.conrelid NOT IN (SELECT t FROM loyalty.config_tables() t)
         ORDER BY 1, 2
    LOOP
        old_key := to_jsonb(OLD) ->> fk.refcol;
        IF TG_OP = 'UPDATE' THEN
            new_key := to_jsonb(NEW) ->> fk.refcol;
            CONTINUE WHEN new_key IS NOT DISTINCT FROM old_key;
        END IF;
        IF fk.act = 'c' AND TG_OP = 'UPDATE' THEN
            EXECUTE format('UPDATE %s SET %I = $1 WHERE %I = $2', fk.tab, fk.col, fk.col) USING new_key, old_key;
        ELSIF fk.act = 'c' THEN
            EXECUTE format('DELETE FROM %s WHERE %I = $1', fk.tab, fk.col) USING old_key;
        ELSIF fk.act = 'n' THEN
            EXECUTE format('UPDATE %s SET %I = NULL WHERE %I = $1', fk.tab, fk.col, fk.col) USING old_key;
        ELSE
            EXECUTE format('SELECT EXISTS (SELECT FROM %s WHERE %I = $1)', fk.tab, fk.col)
               INTO referenced USING old_key;
            IF referenced THEN
                RAISE EXCEPTION 'replicated % of % "%" refused: % still references it',
                                lower(TG_OP), TG_TABLE_NAME, old_key, fk.tab
                    USING ERRCODE = 'LY006',
                          DETAIL = format('The configuration master changed a key that rows of %s on this node reference (column %s).', fk.tab, fk.col),
                          HINT = 'Reassign or remove those rows on this node and the subscription applies the change; or skip it with ALTER SUBSCRIPTION ... SKIP.';
            END IF;
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION loyalty.config_replica_follow() IS
    'On a shard, for a replicated rename or deletion of a configuration key: does what the foreign keys of the shard''s own rows do on one node (cascade, set null), or refuses (LY006)';

CREATE TRIGGER config_replica_follow AFTER DELETE OR UPDATE ON loyalty.account_type
    FOR EACH ROW EXECUTE FUNCTION loyalty.config_replica_follow();
CREATE TRIGGER config_replica_follow AFTER DELETE OR UPDATE ON loyalty.tier
    FOR EACH ROW EXECUTE FUNCTION loyalty.config_replica_follow();
CREATE TRIGGER config_replica_follow AFTER DELETE OR UPDATE ON loyalty.promotion
    FOR EACH ROW EXECUTE FUNCTION loyalty.config_replica_follow();
CREATE TRIGGER config_replica_follow AFTER DELETE OR UPDATE ON loyalty.subscription_plan
    FOR EACH ROW EXECUTE FUNCTION loyalty.config_replica_follow();
CREATE TRIGGER config_replica_follow AFTER DELETE OR UPDATE ON loyalty.segment
    FOR EACH ROW EXECUTE FUNCTION loyalty.config_replica_follow();
ALTER TABLE loyalty.account_type ENABLE REPLICA TRIGGER config_replica_follow;
ALTER TABLE loyalty.tier ENABLE REPLICA TRIGGER config_replica_follow;
ALTER TABLE loyalty.promotion ENABLE REPLICA TRIGGER config_replica_follow;
ALTER TABLE loyalty.subscription_plan ENABLE REPLICA TRIGGER config_replica_follow;
ALTER TABLE loyalty.segment ENABLE REPLICA TRIGGER config_replica_follow;

CREATE FUNCTION loyalty.config_digest_parts()
    RETURNS TABLE (part text, rows bigint, digest text)
    LANGUAGE plpgsql STABLE PARALLEL RESTRICTED SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET "TimeZone" = 'UTC' SET "DateStyle" = 'ISO, YMD' SET "IntervalStyle" = 'postgres'
    SET extra_float_digits = 1
    AS $$
DECLARE
    t text;
BEGIN
    -- what the configuration cache reads, and the segment rules and RFM
    -- boxes that target promotions; rows as text in a fixed time zone and
    -- styles, sorted bytewise, so that every node spells them alike
    FOREACH t IN ARRAY ARRAY['account_type', 'category', 'experiment', 'product', 'promotion',
                             'rfm_segment', 'segment', 'settings', 'store', 'subscription_plan', 'tier'] LOOP
        part := t;
        EXECUTE format('SELECT count(*), md5(coalesce(string_agg(x::text, E''\n'' ORDER BY x::text COLLATE "C"), ''''))
                          FROM %s x',
                       CASE WHEN t = 'settings' THEN '(SELECT key, value FROM loyalty.settings) '
                            ELSE 'loyalty.' || quote_ident(t) END)
           INTO rows, digest;
        RETURN NEXT;
    END LOOP;
END
$$;
COMMENT ON FUNCTION loyalty.config_digest_parts() IS
    'Per configuration table that prices checks: its rows and an md5 of their text (fixed time zone and styles, bytewise order); compare across nodes';

CREATE FUNCTION loyalty.config_digest() RETURNS text
    LANGUAGE sql STABLE PARALLEL RESTRICTED SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT md5(string_agg(p.part || ' ' || p.rows || ' ' || p.digest, E'\n' ORDER BY p.part COLLATE "C"))
      FROM loyalty.config_digest_parts() p
$$;
COMMENT ON FUNCTION loyalty.config_digest() IS
    'A digest of everything that prices a check (loyalty.config_digest_parts): equal on two nodes = same pricing rules';

REVOKE ALL ON FUNCTION loyalty.config_tables(), loyalty.config_replica_follow(),
    loyalty.config_digest_parts(), loyalty.config_digest() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.config_tables(), loyalty.config_digest_parts(), loyalty.config_digest()
    TO loyalty_marketer, loyalty_analyst, loyalty_admin;
GRANT EXECUTE ON FUNCTION loyalty.config_replica_follow() TO loyalty_admin;

-- ---------------------------------------------------------------------------
-- Issue 20 (item 9): reports across shards.  Sums and counts add up over
-- shards, ratios do not; and since every customer lives on one shard,
-- per-customer counts (distinct customers, repeaters, retained customers)
-- add up too.  loyalty.kpi_parts returns kpi's additive parts per group,
-- loyalty.kpi_merge makes kpi's rows from the parts of any number of nodes
-- (one node's parts give exactly its kpi).  points_liability's rows are
-- additive but for the money column, which points_liability_merge
-- recomputes from the summed points.  RFM thresholds in two steps:
-- rfm_parts gives each node's count of customers per distinct value of
-- each dimension (customers with a purchase in the window), and
-- rfm_thresholds_merge turns the summed counts into exactly the
-- percentile_disc thresholds one node with every customer computes;
-- rfm_set_thresholds writes them on every node (rfm_mode fixed there).
-- ---------------------------------------------------------------------------
CREATE TYPE loyalty.kpi_part AS (
    period text, checks bigint, identified_checks bigint, revenue numeric,
    member_revenue numeric, anonymous_revenue numeric, customers bigint, repeaters bigint,
    retained_before bigint, retained_again bigint, points_earned numeric, points_spent numeric,
    points_expired numeric, points_reversed numeric, listed boolean);
COMMENT ON TYPE loyalty.kpi_part IS
    'One node''s additive KPI parts of a group (loyalty.kpi_parts; listed: the node''s kpi has the group, else only its retention counts); loyalty.kpi_merge adds them up';

-- (Folded, chain scale: 3M purchases.)  The money of the period is summed
-- per group, and only small counters are kept per group and customer, in
-- one grouping that gives customers, repeaters and retention together
-- (before: a sort for count(DISTINCT), and three groupings of the
-- materialized purchases); an entry's purchase is found in a hash of the
-- period's purchases, and only an entry of an older purchase probes it by
-- key (before: a subquery per entry); by store or channel without parallel
-- workers (they reduce nothing there).  sql/kpi_liability_speed.sql
-- compares it with the straightforward statement.
CREATE FUNCTION loyalty.kpi_parts("from" timestamptz, "to" timestamptz, by text DEFAULT 'day')
    RETURNS SETOF loyalty.kpi_part
    LANGUAGE plpgsql STABLE STRICT SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET jit = off
    AS $$
#variable_conflict use_column
DECLARE
    tz   text := loyalty.setting_value('timezone');
    unit text;
    workers text := current_setting('max_parallel_workers_per_gather');
BEGIN
    IF by NOT IN ('day', 'week', 'month', 'store', 'channel') THEN
        RAISE EXCEPTION 'invalid kpi grouping "%"', by
            USING ERRCODE = '22023', DETAIL = 'Argument "by" must be day, week, month, store or channel.';
    END IF;
    IF "from" >= "to" THEN
        RAISE EXCEPTION 'empty kpi period'
            USING ERRCODE = '22023', DETAIL = 'Argument "from" must be earlier than "to".';
    END IF;
    unit := CASE WHEN by IN ('day', 'week', 'month') THEN by END;
    IF unit IS NULL THEN
        -- by store or channel the (group, customer) pairs below are about as
        -- many as the checks: a parallel partial aggregation reduces nothing
        -- and its leader aggregates every pair again (a month by store at
        -- chain scale: 0.93 s with two workers, 0.73 s without); by day,
        -- week or month the parallel scans pay (a year by day: 11.7 s with,
        -- 15.7 s without).  Set for this statement only, restored after it.
        PERFORM set_config('max_parallel_workers_per_gather', '0', true);
    END IF;
    RETURN QUERY
    WITH p AS NOT MATERIALIZED (
        -- the purchases of the period and of the period before it (retention),
        -- only the columns read below; read once per use below rather than
        -- materialized (by store or channel: twice, both through purchase_at_idx)
        SELECT x.customer_id, x.total - x.refunded AS paid,
               CASE WHEN unit IS NOT NULL
                    THEN to_char(date_trunc(unit, x.at AT TIME ZONE tz), 'YYYY-MM-DD')
                    WHEN by = 'store' THEN coalesce(x.store, '-') ELSE x.channel END AS grp,
               CASE WHEN unit IS NOT NULL
                    THEN to_char(date_trunc(unit, (x.at AT TIME ZONE tz) + ('1 ' || unit)::interval), 'YYYY-MM-DD')
                    WHEN by = 'store' THEN coalesce(x.store, '-') ELSE x.channel END AS next_grp,
               x.at >= "from" AS current
          FROM loyalty.purchase x
         WHERE x.at < "to"
           AND x.at >= CASE WHEN unit IS NULL THEN "from" - ("to" - "from")
                            ELSE (date_trunc(unit, "from" AT TIME ZONE tz) - ('1 ' || unit)::interval) AT TIME ZONE tz END
    ), money AS (
        -- the money of the period's checks per group
        SELECT p.grp, count(*) AS checks, count(p.customer_id) AS identified,
               sum(p.paid) AS revenue,
               coalesce(sum(p.paid) FILTER (WHERE p.customer_id IS NOT NULL), 0) AS member_revenue,
               coalesce(sum(p.paid) FILTER (WHERE p.customer_id IS NULL), 0) AS anonymous_revenue
          FROM p
         WHERE p.current
         GROUP BY p.grp
    ), k AS (
        -- per identified check: the group it is in if it is of the period
        -- (mine), and the group whose previous period it is in (before; every
        -- period of [from, to), bought in here or not: another node may have
        -- that period's buyers).  By store or channel both are the check's
        -- own group, so a check is one row; by day, week or month, two.
        SELECT p.grp, p.customer_id, p.current AS mine, unit IS NULL AND NOT p.current AS before
          FROM p
         WHERE p.customer_id IS NOT NULL AND (p.current OR unit IS NULL)
        UNION ALL
        SELECT p.next_grp, p.customer_id, false, true
          FROM p
         WHERE unit IS NOT NULL AND p.customer_id IS NOT NULL
           AND p.next_grp BETWEEN to_char(date_trunc(unit, "from" AT TIME ZONE tz), 'YYYY-MM-DD')
                              AND to_char(date_trunc(unit, ("to" AT TIME ZONE tz) - interval '1 microsecond'), 'YYYY-MM-DD')
    ), customers AS (
        -- one grouping by group and customer (only small counters kept per
        -- customer: the money is summed per group above): per group its
        -- customers, those with two checks or more, the customers of the
        -- previous period and how many of them bought again in this one
        SELECT c.grp, count(*) FILTER (WHERE c.n > 0) AS customers,
               count(*) FILTER (WHERE c.n >= 2) AS repeaters,
               count(*) FILTER (WHERE c.before) AS before,
               count(*) FILTER (WHERE c.before AND c.n > 0) AS again
          FROM (SELECT k.grp, k.customer_id, count(*) FILTER (WHERE k.mine) AS n, bool_or(k.before) AS before
                  FROM k GROUP BY k.grp, k.customer_id) c
         GROUP BY c.grp
    ), points AS (
        -- the entries of the period (ledger_entry_at_idx); by store or channel
        -- each entry's purchase: the period's purchases are hashed once (an
        -- entry of the period is mostly a purchase of the period: its earn or
        -- spend), and only an entry without one there (a refund of an older
        -- purchase) probes purchase by its key, through a join LATERAL with
        -- LIMIT (a subquery per entry costs twice the probe)
        SELECT CASE WHEN unit IS NOT NULL
                    THEN to_char(date_trunc(unit, e.at AT TIME ZONE tz), 'YYYY-MM-DD')
                    WHEN by = 'store' THEN coalesce(CASE WHEN c.operation_id IS NULL THEN pu.store ELSE c.store END, '-')
                    ELSE coalesce(CASE WHEN c.operation_id IS NULL THEN pu.channel ELSE c.channel END, '-') END AS grp,
               coalesce(sum(e.points) FILTER (WHERE e.kind = 'earn'), 0) AS earned,
               -coalesce(sum(e.points) FILTER (WHERE e.kind IN ('spend', 'return')), 0) AS spent,
               -coalesce(sum(e.points) FILTER (WHERE e.kind = 'expire'), 0) AS expired,
               -coalesce(sum(e.points) FILTER (WHERE e.kind = 'reverse'), 0) AS reversed
          FROM loyalty.ledger_entry e
          LEFT JOIN loyalty.purchase c
            ON unit IS NULL AND c.at >= "from" AND c.at < "to"
           AND c.operation_id = coalesce(e.ref_operation_id, e.operation_id)
          LEFT JOIN LATERAL (SELECT pu.store, pu.channel FROM loyalty.purchase pu
                              WHERE unit IS NULL AND c.operation_id IS NULL
                                AND pu.operation_id = coalesce(e.ref_operation_id, e.operation_id)
                              LIMIT 1) pu ON true
         WHERE e.at >= "from" AND e.at < "to"
         GROUP BY 1
    )
    SELECT g.grp, coalesce(m.checks, 0), coalesce(m.identified, 0),
           coalesce(m.revenue, 0), coalesce(m.member_revenue, 0), coalesce(m.anonymous_revenue, 0),
           coalesce(c.customers, 0), coalesce(c.repeaters, 0),
           coalesce(c.before, 0), coalesce(c.again, 0),
           coalesce(pt.earned, 0), coalesce(pt.spent, 0), coalesce(pt.expired, 0), coalesce(pt.reversed, 0),
           m.grp IS NOT NULL OR pt.grp IS NOT NULL
      FROM (SELECT grp FROM money UNION SELECT grp FROM points UNION SELECT grp FROM customers) g
      LEFT JOIN money m ON m.grp = g.grp
      LEFT JOIN customers c ON c.grp = g.grp
      LEFT JOIN points pt ON pt.grp = g.grp
     ORDER BY g.grp;
    IF unit IS NULL THEN
        PERFORM set_config('max_parallel_workers_per_gather', workers, true);
    END IF;
END
$$;
COMMENT ON FUNCTION loyalty.kpi_parts("from" timestamp with time zone, "to" timestamp with time zone, by text) IS
    'The additive parts of loyalty.kpi on this node (sums and counts per group); loyalty.kpi_merge combines the parts of every shard';

CREATE FUNCTION loyalty.kpi_merge(parts loyalty.kpi_part[])
    RETURNS TABLE (period text, checks bigint, identified_checks bigint, identified_share numeric,
                   revenue numeric, member_revenue_share numeric, avg_check_member numeric,
                   avg_check_anonymous numeric, customers bigint, repeat_rate numeric,
                   retention numeric, points_earned numeric, points_spent numeric,
                   points_expired numeric, points_reversed numeric, redemption_rate numeric)
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT p.period, sum(p.checks)::bigint, sum(p.identified_checks)::bigint,
           round(sum(p.identified_checks)::numeric / nullif(sum(p.checks), 0), 4),
           sum(p.revenue),
           round(sum(p.member_revenue) / nullif(sum(p.revenue), 0), 4),
           round(sum(p.member_revenue) / nullif(sum(p.identified_checks), 0), 2),
           round(sum(p.anonymous_revenue) / nullif(sum(p.checks) - sum(p.identified_checks), 0), 2),
           sum(p.customers)::bigint,
           round(sum(p.repeaters)::numeric / nullif(sum(p.customers), 0), 4),
           round(sum(p.retained_again)::numeric / nullif(sum(p.retained_before), 0), 4),
           sum(p.points_earned), sum(p.points_spent), sum(p.points_expired), sum(p.points_reversed),
           round(sum(p.points_spent) / nullif(sum(p.points_earned), 0), 4)
      FROM unnest(parts) p
     GROUP BY p.period
    HAVING bool_or(p.listed)
     ORDER BY p.period
$$;
COMMENT ON FUNCTION loyalty.kpi_merge(loyalty.kpi_part[]) IS
    'loyalty.kpi''s rows from the kpi_parts of every shard (sums and counts added, then the ratios)';

CREATE TYPE loyalty.liability_part AS (
    account text, expiry_month text, available numeric, pending numeric, negative numeric, points numeric);
COMMENT ON TYPE loyalty.liability_part IS
    'One node''s row of loyalty.points_liability without its money (all additive)';

CREATE FUNCTION loyalty.points_liability_merge(parts loyalty.liability_part[], point_value numeric)
    RETURNS TABLE (account text, expiry_month text, available numeric, pending numeric,
                   negative numeric, points numeric, money numeric)
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT p.account, p.expiry_month, sum(p.available), sum(p.pending), sum(p.negative),
           sum(p.points), round(sum(p.points) * point_value, 2)
      FROM unnest(parts) p
     GROUP BY 1, 2
     ORDER BY 1, 2 NULLS LAST
$$;
COMMENT ON FUNCTION loyalty.points_liability_merge(loyalty.liability_part[], numeric) IS
    'loyalty.points_liability of every shard together: the points added up, their money computed once (setting point_value)';

CREATE FUNCTION loyalty.rfm_parts(as_of timestamptz DEFAULT now())
    RETURNS TABLE (dimension text, value numeric, customers bigint)
    LANGUAGE plpgsql STABLE STRICT SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
#variable_conflict use_column
DECLARE
    win interval := loyalty.setting_value('rfm_window')::interval;
BEGIN
    -- the facts exactly as refresh_rfm computes them
    RETURN QUERY
    WITH x AS (
        SELECT coalesce(c.merged_into, c.id) AS customer_id,
               max(p.at) FILTER (WHERE NOT coalesce(r.ended, false)) AS last_at,
               count(*) FILTER (WHERE p.at >= as_of - win AND NOT coalesce(r.ended, false)) AS frequency,
               coalesce(sum(p.total - coalesce(r.back, 0)) FILTER (WHERE p.at >= as_of - win), 0)::numeric(14,2) AS monetary
          FROM loyalty.purchase p
          JOIN loyalty.customer c ON c.id = p.customer_id
          LEFT JOIN LATERAL (SELECT sum(f.amount) AS back, bool_or(f.full_refund) AS ended
                               FROM loyalty.refund f
                              WHERE f.purchase = p.operation_id AND f.at < as_of) r ON true
         WHERE p.at < as_of
         GROUP BY 1
    ), v AS (
        SELECT 'r' AS d, floor(extract(epoch FROM as_of - x.last_at) / 86400)::numeric AS val
          FROM x WHERE x.frequency > 0
        UNION ALL
        SELECT 'f', x.frequency::numeric FROM x WHERE x.frequency > 0
        UNION ALL
        SELECT 'm', x.monetary FROM x WHERE x.frequency > 0
    )
    SELECT v.d, v.val, count(*) FROM v GROUP BY 1, 2 ORDER BY 1, 2;
END
$$;
COMMENT ON FUNCTION loyalty.rfm_parts(as_of timestamp with time zone) IS
    'This node''s RFM values as of a moment: customers per distinct recency, frequency and monetary (customers with a purchase in the window); rfm_thresholds_merge adds the shards'' up';

CREATE FUNCTION loyalty.rfm_thresholds_merge(parts jsonb)
    RETURNS TABLE (dimension text, score integer, lower numeric, upper numeric)
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
    -- percentile_disc(q) over N values is the value at position
    -- max(ceil(q * N), 1) in order: the first value whose running count
    -- reaches it
    WITH h AS (
        SELECT e ->> 'dimension' AS d, (e ->> 'value')::numeric AS val, sum((e ->> 'customers')::bigint) AS n
          FROM jsonb_array_elements(parts) e GROUP BY 1, 2
    ), c AS (
        SELECT h.d, h.val, sum(h.n) OVER (PARTITION BY h.d ORDER BY h.val) AS upto,
               sum(h.n) OVER (PARTITION BY h.d) AS total
          FROM h
    ), q AS (
        SELECT c.d, k, (SELECT min(c2.val) FROM c c2
                         WHERE c2.d = c.d AND c2.upto >= greatest(ceil(k * 0.2 * c.total), 1)) AS qv
          FROM (SELECT DISTINCT d, total FROM c) c CROSS JOIN generate_series(1, 4) k
    ), qs AS (
        SELECT q.d, array_agg(q.qv ORDER BY q.k) AS qs FROM q GROUP BY q.d
    )
    SELECT qs.d, CASE WHEN qs.d = 'r' THEN 6 - s.k ELSE s.k END,
           CASE WHEN s.k > 1 THEN qs.qs[s.k - 1] END,
           CASE WHEN s.k < 5 THEN qs.qs[s.k] END
      FROM qs CROSS JOIN generate_series(1, 5) s(k)
     ORDER BY 1, 2
$$;
COMMENT ON FUNCTION loyalty.rfm_thresholds_merge(jsonb) IS
    'RFM thresholds (0.2/0.4/0.6/0.8 percentile_disc) from the rfm_parts rows of every shard as one jsonb array: exactly those of one node holding every customer';

CREATE FUNCTION loyalty.rfm_set_thresholds(thresholds jsonb, computed_at timestamptz DEFAULT now())
    RETURNS bigint
    LANGUAGE plpgsql STRICT SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    n bigint;
BEGIN
    IF jsonb_typeof(thresholds) IS DISTINCT FROM 'array' THEN
        RAISE EXCEPTION 'invalid RFM thresholds'
            USING ERRCODE = '22023', DETAIL = 'Argument "thresholds" must be a JSON array of rows of rfm_thresholds_merge.';
    END IF;
    DELETE FROM loyalty.rfm_threshold;
    INSERT INTO loyalty.rfm_threshold (dimension, score, lower, upper, computed_at)
    SELECT e ->> 'dimension', (e ->> 'score')::int, (e ->> 'lower')::numeric, (e ->> 'upper')::numeric,
           rfm_set_thresholds.computed_at
      FROM jsonb_array_elements(thresholds) e;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
COMMENT ON FUNCTION loyalty.rfm_set_thresholds(jsonb, timestamp with time zone) IS
    'Replaces loyalty.rfm_threshold with globally computed thresholds (rows of rfm_thresholds_merge as a jsonb array); with rfm_mode fixed, refresh_rfm scores by them';

REVOKE ALL ON FUNCTION loyalty.kpi_parts(timestamptz, timestamptz, text), loyalty.kpi_merge(loyalty.kpi_part[]),
    loyalty.points_liability_merge(loyalty.liability_part[], numeric), loyalty.rfm_parts(timestamptz),
    loyalty.rfm_thresholds_merge(jsonb), loyalty.rfm_set_thresholds(jsonb, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.kpi_parts(timestamptz, timestamptz, text), loyalty.kpi_merge(loyalty.kpi_part[]),
    loyalty.points_liability_merge(loyalty.liability_part[], numeric), loyalty.rfm_parts(timestamptz),
    loyalty.rfm_thresholds_merge(jsonb)
    TO loyalty_analyst, loyalty_marketer, loyalty_admin;
GRANT EXECUTE ON FUNCTION loyalty.rfm_set_thresholds(jsonb, timestamptz) TO loyalty_marketer, loyalty_admin;

-- ---------------------------------------------------------------------------
-- Issue 20 (item 5): a promotion-wide usage_limit over shards.  Each shard
-- counts the uses of its own customers (promotion_usage); split into
-- quotas, the limit holds across shards: loyalty.promotion_quota is this
-- node's share (no row, the default: the whole limit, as on one node), the
-- claim refuses past it, and a rebalancing job (docs/scale-out.md) reads
-- every shard's uses and gives each a new quota by loyalty.usage_quotas,
-- whose sum never exceeds the limit.
-- ---------------------------------------------------------------------------
CREATE TABLE loyalty.promotion_quota (
    promotion text NOT NULL COLLATE pg_catalog."C",
    quota integer NOT NULL,
    CONSTRAINT promotion_quota_quota_check CHECK (quota >= 0),
    CONSTRAINT promotion_quota_pkey PRIMARY KEY (promotion),
    CONSTRAINT promotion_quota_promotion_fkey FOREIGN KEY (promotion) REFERENCES loyalty.promotion(code) ON UPDATE CASCADE ON DELETE CASCADE
);
COMMENT ON TABLE loyalty.promotion_quota IS
    'This node''s share of a promotion''s usage_limit when customers are sharded (no row: the whole limit); not replicated';
REVOKE ALL ON loyalty.promotion_quota FROM PUBLIC;
GRANT SELECT ON loyalty.promotion_quota TO loyalty_marketer, loyalty_analyst;
GRANT ALL ON loyalty.promotion_quota TO loyalty_admin;
SELECT pg_catalog.pg_extension_config_dump('loyalty.promotion_quota', '');

CREATE FUNCTION loyalty.set_usage_quota(promotion text, quota integer) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
#variable_conflict use_variable
DECLARE
    used bigint;
BEGIN
    IF promotion IS NULL OR NOT EXISTS (SELECT FROM loyalty.promotion p WHERE p.code = promotion) THEN
        RAISE EXCEPTION 'promotion "%" not found', promotion
            USING ERRCODE = 'LY006', DETAIL = 'Argument "promotion" must name a promotion.';
    END IF;
    IF quota < 0 THEN
        RAISE EXCEPTION 'invalid usage quota %', quota
            USING ERRCODE = '22023', DETAIL = 'Argument "quota" must be 0 or more, or NULL for the whole limit.';
    END IF;
    IF quota IS NULL THEN
        DELETE FROM loyalty.promotion_quota q WHERE q.promotion = set_usage_quota.promotion;
    ELSE
        INSERT INTO loyalty.promotion_quota AS q (promotion, quota) VALUES (promotion, quota)
            ON CONFLICT ON CONSTRAINT promotion_quota_pkey DO UPDATE SET quota = EXCLUDED.quota;
    END IF;
    -- the counter row, so that the claim (an update of it) sees the quota
    INSERT INTO loyalty.promotion_usage AS u (promotion) VALUES (promotion)
        ON CONFLICT ON CONSTRAINT promotion_usage_pkey DO NOTHING;
    SELECT u.uses INTO used FROM loyalty.promotion_usage u WHERE u.promotion = set_usage_quota.promotion;
    RETURN used;
END
$$;
COMMENT ON FUNCTION loyalty.set_usage_quota(text, integer) IS
    'Sets this node''s share of a promotion''s usage_limit (NULL: the whole limit); returns the uses counted here so far';

CREATE FUNCTION loyalty.usage_quotas(usage_limit integer, uses bigint[]) RETURNS integer[]
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
    -- what is left of the limit, split evenly (the first nodes one more);
    -- each node keeps what it has used
    SELECT array_agg((u.n + CASE WHEN left_over > 0
                                 THEN left_over / n_nodes + CASE WHEN u.i <= left_over % n_nodes THEN 1 ELSE 0 END
                                 ELSE 0 END)::integer ORDER BY u.i)
      FROM unnest(uses) WITH ORDINALITY AS u(n, i),
           LATERAL (SELECT greatest(usage_limit - (SELECT sum(x) FROM unnest(uses) x), 0)::bigint AS left_over,
                           cardinality(uses)::bigint AS n_nodes) k
$$;
COMMENT ON FUNCTION loyalty.usage_quotas(integer, bigint[]) IS
    'New quotas of a sharded usage_limit from every node''s uses (same order): each keeps its uses plus an even share of what is left; they add up to at most the limit';

REVOKE ALL ON FUNCTION loyalty.set_usage_quota(text, integer), loyalty.usage_quotas(integer, bigint[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.set_usage_quota(text, integer), loyalty.usage_quotas(integer, bigint[])
    TO loyalty_marketer, loyalty_admin;
-- ---------------------------------------------------------------------------
-- Issue 18 (continued): points budget.  promotion.points_budget caps the
-- points a promotion (points_percent, points_fixed) gives across all
-- committed purchases, as promotion.budget caps money: counted on the
-- promotion's usage counter (promotion_usage.points_given) under its row
-- lock, each purchase's take recorded in promotion_budget_claim.points, so
-- two purchases racing for the last points cannot both take them and the
-- full refund of a purchase gives its points back.
-- ---------------------------------------------------------------------------
ALTER TABLE loyalty.promotion ADD COLUMN points_budget numeric(14,2);
ALTER TABLE loyalty.promotion
    ADD CONSTRAINT promotion_points_budget_positive CHECK (points_budget > 0);
COMMENT ON COLUMN loyalty.promotion.points_budget IS
    'Points the promotion may give across all committed purchases; NULL = no points budget';
ALTER TABLE loyalty.promotion_usage ADD COLUMN points_given numeric(14,2) DEFAULT 0 NOT NULL;
ALTER TABLE loyalty.promotion_usage
    ADD CONSTRAINT promotion_usage_points_given_check CHECK (points_given >= 0);
COMMENT ON COLUMN loyalty.promotion_usage.points_given IS
    'Points the promotion gave on committed purchases (counted against promotion.points_budget)';
ALTER TABLE loyalty.promotion_budget_claim DROP CONSTRAINT promotion_budget_claim_given_check;
ALTER TABLE loyalty.promotion_budget_claim
    ADD CONSTRAINT promotion_budget_claim_given_check CHECK (given >= 0);
ALTER TABLE loyalty.promotion_budget_claim ADD COLUMN points numeric(14,2) DEFAULT 0 NOT NULL;
ALTER TABLE loyalty.promotion_budget_claim
    ADD CONSTRAINT promotion_budget_claim_points_check CHECK (points >= 0);
ALTER TABLE loyalty.promotion_budget_claim
    ADD CONSTRAINT promotion_budget_claim_not_empty CHECK (given > 0 OR points > 0);
COMMENT ON COLUMN loyalty.promotion_budget_claim.points IS
    'Points the purchase took from the promotion''s points_budget';

-- ---------------------------------------------------------------------------
-- Issue 18 (continued): event points.  loyalty.points_event configures the
-- points a customer gets for an event of their own: "welcome" on
-- registration, "first_purchase" with their first purchase (taken back by
-- that purchase's full refund), "birthday" from maintenance on their
-- birthday in the program's time zone, once a year.  Each goes through the
-- ledger (a lot and an "adjust" entry under its own operation id, which
-- makes it idempotent) with an event of its own kind and message templates.
-- ---------------------------------------------------------------------------
-- event grants are internal operations of their own kind ("~welcome:1", ...)
ALTER DOMAIN loyalty.operation_kind DROP CONSTRAINT operation_kind_known;
ALTER DOMAIN loyalty.operation_kind ADD CONSTRAINT operation_kind_known
    CHECK (VALUE IN ('purchase', 'refund', 'adjust', 'expire', 'merge', 'order_hold', 'order_cancel', 'order_release', 'grant', 'event_points'));
COMMENT ON DOMAIN loyalty.operation_kind IS
    'The kind of a writing call: purchase, refund, adjust, expire, merge, order_hold, order_cancel, order_release, grant or event_points';
ALTER TABLE loyalty.operation DROP CONSTRAINT operation_internal_namespace;
ALTER TABLE loyalty.operation
    ADD CONSTRAINT operation_internal_namespace
    CHECK ((kind IN ('merge', 'expire', 'order_release', 'event_points')) = (operation_id LIKE '~%')) NOT VALID;
ALTER DOMAIN loyalty.event_kind DROP CONSTRAINT event_kind_known;
ALTER DOMAIN loyalty.event_kind ADD CONSTRAINT event_kind_known
    CHECK (VALUE IN ('points_earned', 'points_available', 'points_expiring', 'points_expired',
                     'tier_changed', 'coupon_issued', 'segment_changed',
                     'welcome_points', 'first_purchase_points', 'birthday_points'));
COMMENT ON DOMAIN loyalty.event_kind IS
    'The kind of an event: points_earned, points_available, points_expiring, points_expired, tier_changed, coupon_issued, segment_changed, welcome_points, first_purchase_points or birthday_points';

CREATE TABLE loyalty.points_event (
    event text NOT NULL COLLATE pg_catalog."C",
    points numeric(14,2) NOT NULL,
    account text DEFAULT 'main' NOT NULL COLLATE pg_catalog."C",
    lifetime interval,
    enabled boolean DEFAULT true NOT NULL,
    CONSTRAINT points_event_pkey PRIMARY KEY (event)
);
COMMENT ON TABLE loyalty.points_event IS
    'Points for a customer''s own events: welcome (registration), first_purchase, birthday (maintenance, once a year)';
COMMENT ON COLUMN loyalty.points_event.lifetime IS
    'How long the points live; NULL = the account type''s lifetime (NULL there too: they never expire)';

CREATE FUNCTION loyalty.points_event_validate() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $_$
DECLARE
    precision int := loyalty.setting_value('points_precision')::int;
BEGIN
    IF NEW.event IS NULL OR NEW.event NOT IN ('welcome', 'first_purchase', 'birthday') THEN
        RAISE EXCEPTION 'invalid points event "%"', NEW.event
            USING ERRCODE = 'LY006',
                  DETAIL = 'Field "event" must be one of "welcome", "first_purchase", "birthday".';
    END IF;
    IF NEW.points IS NULL OR NEW.points <= 0 THEN
        RAISE EXCEPTION 'invalid points event "%"', NEW.event
            USING ERRCODE = 'LY006',
                  DETAIL = 'Field "points" must be greater than 0.';
    END IF;
    IF precision = 0 AND NEW.points <> trunc(NEW.points) THEN
        RAISE EXCEPTION 'invalid points event "%"', NEW.event
            USING ERRCODE = 'LY006',
                  DETAIL = 'Field "points" must be a whole number of points (points_precision is 0).';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM loyalty.account_type a WHERE a.code = NEW.account) THEN
        RAISE EXCEPTION 'invalid points event "%"', NEW.event
            USING ERRCODE = 'LY006',
                  DETAIL = format('Field "account" names no account type: "%s".', NEW.account);
    END IF;
    IF NEW.lifetime IS NOT NULL AND NEW.lifetime <= interval '0' THEN
        RAISE EXCEPTION 'invalid points event "%"', NEW.event
            USING ERRCODE = 'LY006',
                  DETAIL = 'Field "lifetime" must be a positive interval such as 7 days.';
    END IF;
    RETURN NEW;
END
$_$;
COMMENT ON FUNCTION loyalty.points_event_validate() IS
    'Refuses a malformed points event (LY006 naming the field)';
REVOKE ALL ON FUNCTION loyalty.points_event_validate() FROM PUBLIC;
CREATE TRIGGER points_event_validate BEFORE INSERT OR UPDATE ON loyalty.points_event
    FOR EACH ROW EXECUTE FUNCTION loyalty.points_event_validate();
CREATE TRIGGER config_changed AFTER INSERT OR DELETE OR UPDATE OR TRUNCATE ON loyalty.points_event
    FOR EACH STATEMENT EXECUTE FUNCTION loyalty.config_changed();
SELECT pg_catalog.pg_extension_config_dump('loyalty.points_event', '');

INSERT INTO loyalty.message_template_default (kind, locale, template) VALUES
    ('welcome_points', 'en',
     'Welcome! You got {points, plural, one {# point} other {# points}}'),
    ('welcome_points', 'ru',
     'Добро пожаловать! Вам начислено {points, plural, one {# балл} few {# балла} many {# баллов} other {# балла}}'),
    ('first_purchase_points', 'en',
     'Thank you for your first purchase: {points, plural, one {# point} other {# points}}'),
    ('first_purchase_points', 'ru',
     'Спасибо за первую покупку: {points, plural, one {# балл} few {# балла} many {# баллов} other {# балла}}'),
    ('birthday_points', 'en',
     'Happy birthday! {points, plural, one {# point} other {# points}}{date, select, none {} other { until {date}}}'),
    ('birthday_points', 'ru',
     'С днём рождения! {points, plural, one {# балл} few {# балла} many {# баллов} other {# балла}}{date, select, none {} other { до {date}}}');

-- the grant itself: internal, called by register, run_maintenance and (in C)
-- the purchase
CREATE FUNCTION loyalty.grant_event_points(customer_id bigint, event text,
                                           operation_id text, at timestamptz)
    RETURNS numeric
    LANGUAGE c SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_grant_event_points';
COMMENT ON FUNCTION loyalty.grant_event_points(bigint, text, text, timestamptz) IS
    'Internal: grants the points of a points_event to a customer under operation_id, once (0 when not configured or already granted); at NULL = now';
REVOKE ALL ON FUNCTION loyalty.grant_event_points(bigint, text, text, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.grant_event_points(bigint, text, text, timestamptz) TO loyalty_admin;

CREATE FUNCTION loyalty.grant_birthday_points(as_of timestamptz) RETURNS bigint
    LANGUAGE plpgsql STRICT SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $_$
DECLARE
    d   date := (as_of AT TIME ZONE loyalty.setting_value('timezone'))::date;
    c   record;
    n   bigint := 0;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM loyalty.points_event e WHERE e.event = 'birthday' AND e.enabled) THEN
        RETURN 0;
    END IF;
    -- born on 29 February: on 28 February in a year without one
    FOR c IN SELECT cu.id FROM loyalty.customer cu
              WHERE cu.status = 'active' AND cu.birth_date IS NOT NULL
                AND (to_char(cu.birth_date, 'MM-DD') = to_char(d, 'MM-DD')
                     OR to_char(cu.birth_date, 'MM-DD') = '02-29' AND to_char(d, 'MM-DD') = '02-28'
                        AND to_char(d + 1, 'MM-DD') = '03-01')
              ORDER BY cu.id
    LOOP
        IF loyalty.grant_event_points(c.id, 'birthday',
                                      format('~birthday:%s:%s', c.id, to_char(d, 'YYYY')),
                                      as_of) > 0 THEN
            n := n + 1;
        END IF;
    END LOOP;
    RETURN n;
END
$_$;
COMMENT ON FUNCTION loyalty.grant_birthday_points(as_of timestamptz) IS
    'Birthday points (points_event "birthday") to every active customer whose birthday is as_of''s date in the program''s time zone, once a year; returns the customers granted';
REVOKE ALL ON FUNCTION loyalty.grant_birthday_points(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.grant_birthday_points(timestamptz) TO loyalty_admin;
GRANT SELECT, INSERT, UPDATE, DELETE ON loyalty.points_event TO loyalty_marketer;
GRANT SELECT ON loyalty.points_event TO loyalty_analyst;
GRANT ALL ON loyalty.points_event TO loyalty_admin;

-- registration grants the welcome points; maintenance the birthday points
CREATE OR REPLACE FUNCTION loyalty.register(phone text, profile jsonb DEFAULT '{}'::jsonb) RETURNS bigint
    LANGUAGE plpgsql STRICT SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $_$
DECLARE
    p       loyalty.phone := register.phone::loyalty.phone;
    k       text;
    v_email text;
    v_name  text;
    v_birth date;
    v_attrs jsonb := '{}';
    cid     bigint;
BEGIN
    IF jsonb_typeof(profile) <> 'object' THEN
        RAISE EXCEPTION 'malformed profile'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'Field "profile" must be a JSON object.';
    END IF;
    FOR k IN SELECT jsonb_object_keys(profile) LOOP
        IF k NOT IN ('email', 'name', 'birth_date', 'attrs') THEN
            RAISE EXCEPTION 'malformed profile'
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = format('Field "profile.%s" is not known.', k),
                      HINT = 'Known fields are email, name, birth_date and attrs; put anything else under attrs.';
        END IF;
        IF k = 'attrs' AND jsonb_typeof(profile -> k) <> 'object'
           OR k <> 'attrs' AND jsonb_typeof(profile -> k) NOT IN ('string', 'null') THEN
            RAISE EXCEPTION 'malformed profile'
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = format('Field "profile.%s" must be %s.', k,
                                      CASE k WHEN 'attrs' THEN 'a JSON object' ELSE 'a string' END);
        END IF;
    END LOOP;
    v_email := nullif(btrim(profile ->> 'email'), '');
    v_name := nullif(btrim(profile ->> 'name'), '');
    v_attrs := coalesce(profile -> 'attrs', '{}');
    IF profile ->> 'birth_date' IS NOT NULL THEN
        IF profile ->> 'birth_date' !~ '^\d{4}-\d{2}-\d{2}$' THEN
            RAISE EXCEPTION 'malformed profile'
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = 'Field "profile.birth_date" must be a date written YYYY-MM-DD.';
        END IF;
        v_birth := (profile ->> 'birth_date')::date;
    END IF;

    -- look first, so that repeated registrations do not burn ids
    SELECT coalesce(c.merged_into, c.id) INTO cid
      FROM loyalty.customer c WHERE c.phone OPERATOR(loyalty.=) p;
    IF cid IS NULL THEN
        INSERT INTO loyalty.customer AS c (phone, email, name, birth_date, attrs)
        VALUES (p, lower(v_email), v_name, v_birth, v_attrs)
        ON CONFLICT ON CONSTRAINT customer_phone_key DO NOTHING
        RETURNING c.id INTO cid;
        IF cid IS NOT NULL THEN
            -- a new customer: the welcome points (points_event), once
            PERFORM loyalty.grant_event_points(cid, 'welcome', '~welcome:' || cid, NULL);
            RETURN cid;
        END IF;
        -- a concurrent registration of the same phone won the race
        SELECT coalesce(c.merged_into, c.id) INTO cid
          FROM loyalty.customer c WHERE c.phone OPERATOR(loyalty.=) p;
    END IF;

    -- already known: fill in what is missing, never overwrite
    IF cid IS NOT NULL THEN
        UPDATE loyalty.customer c
           SET email = coalesce(c.email, lower(v_email)),
               name = coalesce(c.name, v_name),
               birth_date = coalesce(c.birth_date, v_birth),
               attrs = v_attrs || c.attrs
         WHERE c.id = cid
           AND (c.email IS NULL AND v_email IS NOT NULL
                OR c.name IS NULL AND v_name IS NOT NULL
                OR c.birth_date IS NULL AND v_birth IS NOT NULL
                OR NOT c.attrs @> v_attrs);
    END IF;
    RETURN cid;
END
$_$;

-- (run_maintenance grants the day's birthday points: its final definition
-- is in the Issue 17 section above)

-- Issue 21: no CHECK constraint preparation on a purchase's statements.
-- PostgreSQL prepares a table's CHECK constraints again for every statement
-- that writes it (parsed back from text, planned, compiled), saved plan or
-- not: a fifth of a purchase's instructions.  The checks of the tables a
-- purchase writes move, unchanged, into loyalty.row_checks triggers, which
-- compile them once per session and raise what the constraints raised
-- (23514, the same message, the constraint named).  BEFORE INSERT and AFTER
-- UPDATE (a BEFORE UPDATE row trigger locks each row once more).
-- ---------------------------------------------------------------------------
CREATE FUNCTION loyalty.row_checks() RETURNS trigger
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'loyalty_row_checks';
COMMENT ON FUNCTION loyalty.row_checks() IS
    'Trigger: the row checks of the tables a purchase writes, as CHECK constraints (23514) compiled once per session; arguments are pairs of a check''s name and expression';
REVOKE ALL ON FUNCTION loyalty.row_checks() FROM PUBLIC;
ALTER TABLE loyalty.operation
    DROP CONSTRAINT operation_id_format,
    DROP CONSTRAINT operation_internal_namespace;
CREATE TRIGGER operation_checks BEFORE INSERT ON loyalty.operation
    FOR EACH ROW EXECUTE FUNCTION loyalty.row_checks(
        'operation_id_format', '(operation_id <> '''') AND (length(operation_id) <= 200)',
        'operation_internal_namespace', '(kind IN (''merge'', ''expire'', ''order_release'', ''event_points'')) = (operation_id LIKE ''~%'')');
CREATE TRIGGER operation_checks_update AFTER UPDATE ON loyalty.operation
    FOR EACH ROW EXECUTE FUNCTION loyalty.row_checks(
        'operation_id_format', '(operation_id <> '''') AND (length(operation_id) <= 200)',
        'operation_internal_namespace', '(kind IN (''merge'', ''expire'', ''order_release'', ''event_points'')) = (operation_id LIKE ''~%'')');
ALTER TABLE loyalty.lot
    DROP CONSTRAINT lot_debt_never_expires,
    DROP CONSTRAINT lot_expires_after_earned,
    DROP CONSTRAINT lot_points_two_decimals,
    DROP CONSTRAINT lot_remaining_within_amount;
CREATE TRIGGER lot_checks BEFORE INSERT ON loyalty.lot
    FOR EACH ROW EXECUTE FUNCTION loyalty.row_checks(
        'lot_debt_never_expires', '(amount > 0) OR (expires_at IS NULL)',
        'lot_expires_after_earned', 'expires_at > earned_at',
        'lot_points_two_decimals', '(amount = round(amount, 2)) AND (remaining = round(remaining, 2))',
        'lot_remaining_within_amount', '((amount > 0) AND (remaining >= 0) AND (remaining <= amount)) OR ((amount < 0) AND (remaining <= 0) AND (remaining >= amount))');
CREATE TRIGGER lot_checks_update AFTER UPDATE ON loyalty.lot
    FOR EACH ROW EXECUTE FUNCTION loyalty.row_checks(
        'lot_debt_never_expires', '(amount > 0) OR (expires_at IS NULL)',
        'lot_expires_after_earned', 'expires_at > earned_at',
        'lot_points_two_decimals', '(amount = round(amount, 2)) AND (remaining = round(remaining, 2))',
        'lot_remaining_within_amount', '((amount > 0) AND (remaining >= 0) AND (remaining <= amount)) OR ((amount < 0) AND (remaining <= 0) AND (remaining >= amount))');
ALTER TABLE loyalty.ledger_entry
    DROP CONSTRAINT ledger_entry_points_nonzero;
CREATE TRIGGER ledger_entry_checks BEFORE INSERT ON loyalty.ledger_entry
    FOR EACH ROW EXECUTE FUNCTION loyalty.row_checks(
        'ledger_entry_points_nonzero', 'points <> 0');
CREATE TRIGGER ledger_entry_checks_update AFTER UPDATE ON loyalty.ledger_entry
    FOR EACH ROW EXECUTE FUNCTION loyalty.row_checks(
        'ledger_entry_points_nonzero', 'points <> 0');
ALTER TABLE loyalty.purchase
    DROP CONSTRAINT purchase_refunded_within_total,
    DROP CONSTRAINT purchase_total_adds_up;
CREATE TRIGGER purchase_checks BEFORE INSERT ON loyalty.purchase
    FOR EACH ROW EXECUTE FUNCTION loyalty.row_checks(
        'purchase_refunded_within_total', '(refunded >= 0) AND (refunded <= total)',
        'purchase_total_adds_up', 'total = (((amount - discount) - certificate) - redeemed)');
CREATE TRIGGER purchase_checks_update AFTER UPDATE ON loyalty.purchase
    FOR EACH ROW EXECUTE FUNCTION loyalty.row_checks(
        'purchase_refunded_within_total', '(refunded >= 0) AND (refunded <= total)',
        'purchase_total_adds_up', 'total = (((amount - discount) - certificate) - redeemed)');
ALTER TABLE loyalty.purchase_line
    DROP CONSTRAINT purchase_line_refund_within;
CREATE TRIGGER purchase_line_checks BEFORE INSERT ON loyalty.purchase_line
    FOR EACH ROW EXECUTE FUNCTION loyalty.row_checks(
        'purchase_line_refund_within', '(refunded_qty <= qty) AND (refunded_total <= total)');
CREATE TRIGGER purchase_line_checks_update AFTER UPDATE ON loyalty.purchase_line
    FOR EACH ROW EXECUTE FUNCTION loyalty.row_checks(
        'purchase_line_refund_within', '(refunded_qty <= qty) AND (refunded_total <= total)');
ALTER TABLE loyalty.coupon
    DROP CONSTRAINT coupon_certificate_has_value,
    DROP CONSTRAINT coupon_code_format,
    DROP CONSTRAINT coupon_does_something,
    DROP CONSTRAINT coupon_max_uses_positive,
    DROP CONSTRAINT coupon_personal_has_customer,
    DROP CONSTRAINT coupon_sold_line_of_purchase,
    DROP CONSTRAINT coupon_uses_within_max,
    DROP CONSTRAINT coupon_valid_period;
CREATE TRIGGER coupon_checks BEFORE INSERT ON loyalty.coupon
    FOR EACH ROW EXECUTE FUNCTION loyalty.row_checks(
        'coupon_certificate_has_value', '((kind)::text <> ''certificate'') OR (((value)::numeric > 0) AND (balance IS NOT NULL) AND ((balance)::numeric <= (value)::numeric))',
        'coupon_code_format', 'code ~ ''^[0-9A-Z][0-9A-Z-]{2,38}[0-9A-Z]$''',
        'coupon_does_something', '((kind)::text = ''certificate'') OR (promotion IS NOT NULL) OR ((percent)::numeric > 0) OR ((value)::numeric > 0)',
        'coupon_max_uses_positive', 'max_uses > 0',
        'coupon_personal_has_customer', '((kind)::text <> ''personal'') OR (customer_id IS NOT NULL)',
        'coupon_sold_line_of_purchase', '(sold_line IS NULL) OR ((sold_line >= 0) AND (issued_by IS NOT NULL) AND ((kind)::text = ''certificate''))',
        'coupon_uses_within_max', '(uses >= 0) AND (uses <= max_uses)',
        'coupon_valid_period', 'valid_until > valid_from');
CREATE TRIGGER coupon_checks_update AFTER UPDATE ON loyalty.coupon
    FOR EACH ROW EXECUTE FUNCTION loyalty.row_checks(
        'coupon_certificate_has_value', '((kind)::text <> ''certificate'') OR (((value)::numeric > 0) AND (balance IS NOT NULL) AND ((balance)::numeric <= (value)::numeric))',
        'coupon_code_format', 'code ~ ''^[0-9A-Z][0-9A-Z-]{2,38}[0-9A-Z]$''',
        'coupon_does_something', '((kind)::text = ''certificate'') OR (promotion IS NOT NULL) OR ((percent)::numeric > 0) OR ((value)::numeric > 0)',
        'coupon_max_uses_positive', 'max_uses > 0',
        'coupon_personal_has_customer', '((kind)::text <> ''personal'') OR (customer_id IS NOT NULL)',
        'coupon_sold_line_of_purchase', '(sold_line IS NULL) OR ((sold_line >= 0) AND (issued_by IS NOT NULL) AND ((kind)::text = ''certificate''))',
        'coupon_uses_within_max', '(uses >= 0) AND (uses <= max_uses)',
        'coupon_valid_period', 'valid_until > valid_from');

-- ---------------------------------------------------------------------------
-- Issue 20: partitions (SPEC §14).  Past one machine customers are sharded
-- over P logical partitions (a power of two, fixed at install) by the hash
-- of the canonical phone; a customer id is seq * P + partition and a
-- virtual card's 10-digit middle is too, so any id or card routes without a
-- directory.  P = 1 (no row) gives exactly the ids and numbers of before.
-- ---------------------------------------------------------------------------
CREATE TABLE loyalty.partitioning (
    partitions integer DEFAULT 1 NOT NULL,
    single boolean DEFAULT true NOT NULL,
    CONSTRAINT partitioning_one_row CHECK (single),
    CONSTRAINT partitioning_pkey PRIMARY KEY (single)
);
COMMENT ON TABLE loyalty.partitioning IS
    'The number of logical partitions P of a sharded installation (one row; no row: 1); changes only while there are no customers';

CREATE FUNCTION loyalty.partitions() RETURNS integer
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT coalesce((SELECT p.partitions FROM loyalty.partitioning p), 1)
$$;
COMMENT ON FUNCTION loyalty.partitions() IS
    'The number of logical partitions P (1 when loyalty.partitioning has no row)';

CREATE FUNCTION loyalty.partitioning_validate() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    now_p int := loyalty.partitions();
    new_p int := 1;
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        new_p := NEW.partitions;
        IF new_p IS NULL OR new_p < 1 OR new_p > 1024 OR new_p & (new_p - 1) <> 0 THEN
            RAISE EXCEPTION 'invalid partitioning'
                USING ERRCODE = 'LY006',
                      DETAIL = format('Field "partitions" must be a power of two from 1 to 1024, not %s.', new_p);
        END IF;
    END IF;
    -- with customers, only a larger P that every id and virtual card
    -- already carries (a restore writes the customers first)
    IF new_p <> now_p AND EXISTS (SELECT 1 FROM loyalty.customer)
       AND (new_p < now_p
            OR EXISTS (SELECT 1 FROM loyalty.customer c
                        WHERE c.phone IS NOT NULL
                          AND c.id & (new_p - 1) <> pg_catalog.hashtext(c.phone::text) & (new_p - 1))
            OR EXISTS (SELECT 1 FROM loyalty.card k
                        WHERE k.kind = 'virtual'
                          AND substr(k.number, 3, 10)::bigint & (new_p - 1) <> k.customer_id & (new_p - 1))) THEN
        RAISE EXCEPTION 'the number of partitions cannot change while there are customers'
            USING ERRCODE = 'LY006',
                  DETAIL = CASE WHEN new_p < now_p
                                THEN format('Field "partitions" would shrink from %s to %s; new customer ids would meet existing ones.',
                                            now_p, new_p)
                                ELSE format('Field "partitions" would change from %s to %s; the existing customer ids and card numbers do not carry their partition under %s.',
                                            now_p, new_p, new_p) END,
                  HINT = 'Set the number of partitions right after CREATE EXTENSION, before the first customer.';
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END
$$;
COMMENT ON FUNCTION loyalty.partitioning_validate() IS
    'Keeps loyalty.partitioning a power of two from 1 to 1024 that changes only while there are no customers (or to a larger P every id and card already carries, as in a restore)';

CREATE TRIGGER partitioning_validate BEFORE INSERT OR DELETE OR UPDATE ON loyalty.partitioning
    FOR EACH ROW EXECUTE FUNCTION loyalty.partitioning_validate();
CREATE TRIGGER partitioning_validate_truncate BEFORE TRUNCATE ON loyalty.partitioning
    FOR EACH STATEMENT EXECUTE FUNCTION loyalty.partitioning_validate();

CREATE FUNCTION loyalty.partition_of(phone loyalty.phone) RETURNS integer
    LANGUAGE sql STABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT pg_catalog.hashtext(phone::text) & (loyalty.partitions() - 1)
$$;
COMMENT ON FUNCTION loyalty.partition_of(phone loyalty.phone) IS
    'The logical partition of a customer: hashtext of the canonical phone (+79123456789) & (P - 1), as the router computes it';

CREATE FUNCTION loyalty.customer_assign_id() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    p int;
BEGIN
    -- the column default is minus the next serial number: place it in the
    -- customer's partition (an id given explicitly is kept as it is)
    IF NEW.id < 0 THEN
        p := loyalty.partitions();
        NEW.id := -NEW.id * p + coalesce(loyalty.partition_of(NEW.phone), 0);
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION loyalty.customer_assign_id() IS
    'Gives a new customer the id seq * P + partition (its phone''s partition; 0 without a phone)';

-- the column default gives minus the serial number; customer_assign_id
-- (before customer_initial_tier, by name) places it in the partition
ALTER TABLE loyalty.customer ALTER COLUMN id SET DEFAULT (- nextval('loyalty.customer_id_seq'::regclass));
CREATE TRIGGER customer_assign_id BEFORE INSERT ON loyalty.customer
    FOR EACH ROW EXECUTE FUNCTION loyalty.customer_assign_id();

-- a virtual card's number carries its customer's partition
DROP FUNCTION loyalty.next_card_number();
CREATE FUNCTION loyalty.next_card_number(customer_id bigint) RETURNS text
    LANGUAGE sql STRICT
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT s || loyalty.card_check_digit(s)
      FROM (SELECT '27' || lpad((nextval('loyalty.card_number_seq') * q.p + (customer_id & (q.p - 1)))::text,
                                10, '0') AS s
              FROM (SELECT loyalty.partitions() AS p) AS q) AS n
$$;
COMMENT ON FUNCTION loyalty.next_card_number(customer_id bigint) IS
    'A new virtual card number of a customer: 13 digits, in-store EAN-13 range 27, a 10-digit middle seq * P + the customer''s partition, last digit a check digit';

CREATE OR REPLACE FUNCTION loyalty.customer_issue_virtual_card() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    INSERT INTO loyalty.card (number, customer_id, kind, issued_at)
    VALUES (loyalty.next_card_number(NEW.id), NEW.id, 'virtual', NEW.created_at);
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION loyalty.issue_missing_cards() RETURNS bigint
    LANGUAGE sql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
    WITH issued AS (
        INSERT INTO loyalty.card (number, customer_id, kind, issued_at)
        SELECT loyalty.next_card_number(c.id), c.id, 'virtual', now()
          FROM loyalty.customer c
         WHERE c.status <> 'merged'
           AND NOT EXISTS (SELECT 1 FROM loyalty.card k WHERE k.customer_id = c.id)
         ORDER BY c.id
        RETURNING 1
    )
    SELECT count(*) FROM issued
$$;

-- the admin kept EXECUTE on the card number function
GRANT EXECUTE ON FUNCTION loyalty.next_card_number(bigint) TO loyalty_admin;

-- ---------------------------------------------------------------------------
-- Issue 20: cards that do not carry a partition, and operation ids across
-- partitions (SPEC §14).  A plastic card issued outside the program is
-- attached in two steps by the router: a directory row on the card's own
-- hash partition (hashtext(number) & (P - 1)) names the customer's
-- partition (card_directory_put), then the card row is written on the
-- customer's partition (attach_card).  The router finds such a card in two
-- hops: card_home on the card's hash partition, then the call on the
-- partition it names.  A client's operation_id is claimed for one
-- partition on its own hash partition (claim_operation) before a writing
-- call: the same operation_id for customers on two partitions is LY003, as
-- on one node.
-- ---------------------------------------------------------------------------
CREATE TABLE loyalty.card_directory (
    number text NOT NULL COLLATE pg_catalog."C",
    home integer NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT card_directory_home_range CHECK (home >= 0 AND home < 1024),
    CONSTRAINT card_directory_number_format CHECK (number ~ '^[0-9A-Za-z-]{4,32}$'),
    CONSTRAINT card_directory_pkey PRIMARY KEY (number)
);
COMMENT ON TABLE loyalty.card_directory IS
    'Plastic cards whose hash partition is this node''s: the partition of the customer holding each (the router''s first hop)';

CREATE TABLE loyalty.operation_home (
    operation_id text NOT NULL COLLATE pg_catalog."C",
    home integer NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT operation_home_range CHECK (home >= 0 AND home < 1024),
    CONSTRAINT operation_home_id_format CHECK ((operation_id <> '') AND (length(operation_id) <= 200)),
    CONSTRAINT operation_home_pkey PRIMARY KEY (operation_id)
);
CREATE INDEX operation_home_created_idx ON loyalty.operation_home (created_at);
COMMENT ON TABLE loyalty.operation_home IS
    'Client operation ids whose hash partition is this node''s, each claimed by the partition of the call that first used it';

CREATE FUNCTION loyalty.looks_virtual(number text) RETURNS boolean
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT number ~ '^27[0-9]{11}$'
           AND right(number, 1)::int = loyalty.card_check_digit(left(number, 12))
$$;
COMMENT ON FUNCTION loyalty.looks_virtual(number text) IS
    'Whether a card number has the virtual form (range 27, 13 digits, valid check digit), whose middle carries the partition';

CREATE FUNCTION loyalty.card_home(number text) RETURNS integer
    LANGUAGE sql STABLE STRICT SECURITY DEFINER PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT CASE WHEN loyalty.looks_virtual(btrim(number))
                THEN (substr(btrim(number), 3, 10)::bigint & (loyalty.partitions() - 1))::int
                ELSE (SELECT d.home FROM loyalty.card_directory d WHERE d.number = btrim(card_home.number)) END
$$;
COMMENT ON FUNCTION loyalty.card_home(number text) IS
    'The partition of the customer holding a card: from a virtual card''s number, or from this node''s card directory (NULL when unknown)';

CREATE FUNCTION loyalty.card_directory_put(number text, home integer) RETURNS boolean
    LANGUAGE plpgsql STRICT SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    n    text := btrim(card_directory_put.number);
    h    int;
BEGIN
    IF home < 0 OR home >= loyalty.partitions() THEN
        RAISE EXCEPTION 'partition % does not exist', home
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('Argument "home" must be a partition from 0 to %s.', loyalty.partitions() - 1);
    END IF;
    IF n !~ '^[0-9A-Za-z-]{4,32}$' OR loyalty.looks_virtual(n) THEN
        RAISE EXCEPTION 'invalid card number "%"', n
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'A plastic card number has 4 to 32 letters, digits or dashes and is not of the virtual form (27, 13 digits, valid check digit).';
    END IF;
    INSERT INTO loyalty.card_directory AS d (number, home) VALUES (n, home)
        ON CONFLICT ON CONSTRAINT card_directory_pkey DO NOTHING;
    IF FOUND THEN
        RETURN true;
    END IF;
    SELECT d.home INTO h FROM loyalty.card_directory d WHERE d.number = n;
    IF h <> home THEN
        RAISE EXCEPTION 'card "%" is attached on partition %', n, h
            USING ERRCODE = 'unique_violation',
                  DETAIL = format('The card directory names partition %s, not %s.', h, home),
                  HINT = 'Detach the card there first (loyalty.card_directory_drop after deleting its card row).';
    END IF;
    RETURN false;
END
$$;
COMMENT ON FUNCTION loyalty.card_directory_put(number text, home integer) IS
    'Step 1 of attaching a plastic card (on the card''s hash partition): names the partition of its customer; true when written, false when already so; 23505 when another partition holds it';

CREATE FUNCTION loyalty.card_directory_drop(number text) RETURNS boolean
    LANGUAGE sql STRICT SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
    WITH gone AS (DELETE FROM loyalty.card_directory d WHERE d.number = btrim(card_directory_drop.number) RETURNING 1)
    SELECT count(*) > 0 FROM gone
$$;
COMMENT ON FUNCTION loyalty.card_directory_drop(number text) IS
    'Removes a plastic card from this node''s card directory (after its card row was deleted on its customer''s partition); whether it was there';

CREATE FUNCTION loyalty.attach_card(customer text, number text) RETURNS bigint
    LANGUAGE plpgsql STRICT SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    n     text := btrim(attach_card.number);
    cid   bigint := loyalty.find_customer(customer);
    owner bigint;
BEGIN
    IF cid IS NULL THEN
        RAISE EXCEPTION 'customer "%" not found', customer
            USING ERRCODE = 'LY001';
    END IF;
    IF n !~ '^[0-9A-Za-z-]{4,32}$' OR loyalty.looks_virtual(n) THEN
        RAISE EXCEPTION 'invalid card number "%"', n
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'A plastic card number has 4 to 32 letters, digits or dashes and is not of the virtual form (27, 13 digits, valid check digit).';
    END IF;
    PERFORM 1 FROM loyalty.customer c WHERE c.id = cid FOR NO KEY UPDATE;
    SELECT k.customer_id INTO owner FROM loyalty.card k WHERE k.number = n;
    IF owner = cid THEN
        RETURN cid;
    ELSIF owner IS NOT NULL THEN
        RAISE EXCEPTION 'card "%" belongs to another customer', n
            USING ERRCODE = 'unique_violation',
                  DETAIL = 'A card identifies one customer.';
    END IF;
    INSERT INTO loyalty.card (number, customer_id, kind) VALUES (n, cid, 'plastic');
    RETURN cid;
END
$$;
COMMENT ON FUNCTION loyalty.attach_card(customer text, number text) IS
    'Step 2 of attaching a plastic card (on the customer''s partition): the card now identifies the customer; idempotent; returns the customer id';

CREATE FUNCTION loyalty.claim_operation(operation_id text, home integer) RETURNS integer
    LANGUAGE plpgsql STRICT SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    h int;
BEGIN
    IF home < 0 OR home >= loyalty.partitions() THEN
        RAISE EXCEPTION 'partition % does not exist', home
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('Argument "home" must be a partition from 0 to %s.', loyalty.partitions() - 1);
    END IF;
    IF operation_id = '' OR length(operation_id) > 200 OR operation_id LIKE '~%' THEN
        RAISE EXCEPTION 'malformed request'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'Field "operation_id" must be 1 to 200 characters and must not begin with "~".';
    END IF;
    INSERT INTO loyalty.operation_home AS o (operation_id, home)
    VALUES (claim_operation.operation_id, claim_operation.home)
        ON CONFLICT ON CONSTRAINT operation_home_pkey DO NOTHING;
    IF FOUND THEN
        RETURN home;
    END IF;
    SELECT o.home INTO h FROM loyalty.operation_home o WHERE o.operation_id = claim_operation.operation_id;
    IF h <> home THEN
        RAISE EXCEPTION 'operation_id "%" reused with a different request', operation_id
            USING ERRCODE = 'LY003',
                  DETAIL = format('It was first used for a customer on partition %s, not %s.', h, home),
                  HINT = 'Every call needs an operation_id of its own.';
    END IF;
    RETURN h;
END
$$;
COMMENT ON FUNCTION loyalty.claim_operation(operation_id text, home integer) IS
    'On an operation id''s hash partition, before a writing call: binds the id to the partition of the call; LY003 when another partition claimed it first';

-- the partitioning and the directories are dumped (a restore writes the
-- customers first; their ids carry the P it then writes)
SELECT pg_catalog.pg_extension_config_dump('loyalty.partitioning', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.card_directory', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.operation_home', '');

-- Issue 20: the router calls card_home, the directory functions and
-- claim_operation as a cashier; P is the admin's (others may read it)
REVOKE ALL ON loyalty.partitioning, loyalty.card_directory, loyalty.operation_home FROM PUBLIC;
REVOKE ALL ON FUNCTION
    loyalty.partitions(), loyalty.partitioning_validate(), loyalty.partition_of(loyalty.phone),
    loyalty.customer_assign_id(), loyalty.next_card_number(bigint),
    loyalty.looks_virtual(text), loyalty.card_home(text),
    loyalty.card_directory_put(text, integer), loyalty.card_directory_drop(text),
    loyalty.attach_card(text, text), loyalty.claim_operation(text, integer)
    FROM PUBLIC;
GRANT SELECT ON loyalty.partitioning TO loyalty_cashier, loyalty_marketer, loyalty_analyst;
GRANT ALL ON loyalty.partitioning, loyalty.card_directory, loyalty.operation_home TO loyalty_admin;
GRANT EXECUTE ON FUNCTION loyalty.partitions()
    TO loyalty_cashier, loyalty_marketer, loyalty_analyst, loyalty_admin;
GRANT EXECUTE ON FUNCTION
    loyalty.partition_of(loyalty.phone), loyalty.looks_virtual(text), loyalty.card_home(text),
    loyalty.card_directory_put(text, integer), loyalty.card_directory_drop(text),
    loyalty.attach_card(text, text), loyalty.claim_operation(text, integer)
    TO loyalty_cashier, loyalty_admin;
GRANT EXECUTE ON FUNCTION loyalty.next_card_number(bigint) TO loyalty_admin;

-- ---------------------------------------------------------------------------
-- Issue 20: moving a customer between nodes (SPEC §14), for rebalancing and
-- for merges across shards.  export_customer on the source gives the
-- customer (with the customers merged into it) as one document: every row
-- of theirs, the operations their points name and the shared codes their
-- uses name, and a summary (balances, entries, purchases, ledger problems).
-- import_customer on the target writes the rows (lots, entries and events
-- get the target's ids), recomputes the summary and fails unless it equals
-- the exported one; remove_customer on the source checks the summary again
-- (nothing happened since the export) and deletes the rows.  A failed step
-- changes nothing; docs/scale-out.md gives the recipe.
-- ---------------------------------------------------------------------------
-- the ledger lets remove_customer, and only it, delete a moved customer's entries
CREATE OR REPLACE FUNCTION loyalty.ledger_entry_append_only() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF (TG_OP, TG_LEVEL, current_setting('loyalty_move.removing', true)) IS DISTINCT FROM ('DELETE', 'ROW', 'on') THEN RAISE EXCEPTION 'ledger entries are append-only'
        USING ERRCODE = 'object_not_in_prerequisite_state',
              DETAIL = format('%s on loyalty.ledger_entry is refused.', TG_OP),
              HINT = 'Correct a balance with loyalty.adjust, which appends an entry.';
    END IF;
    -- only loyalty.remove_customer, which sets loyalty_move.removing, deletes
    -- a moved customer's entries (issue 20)
    RETURN OLD;
END
$$;

-- Where moved customers went: remove_customer leaves their keys (id:N,
-- phones, card numbers) with the partition that holds them now, so that a
-- router that met LY001 on the key's own partition (a customer merged into
-- one on another partition) asks moved_home there and tries again.
CREATE TABLE loyalty.moved_key (
    key text NOT NULL COLLATE pg_catalog."C",
    customer_id bigint NOT NULL,
    home integer NOT NULL,
    moved_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT moved_key_home_range CHECK (home >= 0 AND home < 1024),
    CONSTRAINT moved_key_pkey PRIMARY KEY (key)
);
COMMENT ON TABLE loyalty.moved_key IS
    'Keys (id:N, phone, card number) of customers moved to another node, with the partition that holds them now';

CREATE FUNCTION loyalty.moved_home(identifier text) RETURNS integer
    LANGUAGE plpgsql STABLE STRICT SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    k text := btrim(identifier);
    h int;
BEGIN
    SELECT m.home INTO h FROM loyalty.moved_key m WHERE m.key = k;
    IF FOUND THEN
        RETURN h;
    END IF;
    IF k ~* '^id:\s*[0-9]{1,18}$' THEN
        k := 'id:' || regexp_replace(k, '^id:\s*', '', 'i')::bigint;
    ELSE
        BEGIN
            k := k::loyalty.phone::text;
        EXCEPTION WHEN invalid_text_representation THEN
            RETURN NULL;
        END;
    END IF;
    SELECT m.home INTO h FROM loyalty.moved_key m WHERE m.key = k;
    RETURN h;
END
$$;
COMMENT ON FUNCTION loyalty.moved_home(identifier text) IS
    'The partition that now holds a customer moved away from this node (phone in any spelling, card number or id:N); NULL when none was';

CREATE FUNCTION loyalty.customer_summary(customer bigint) RETURNS jsonb
    LANGUAGE sql STABLE STRICT SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
    WITH ids AS (SELECT c.id FROM loyalty.customer c
                  WHERE c.id = customer_summary.customer OR c.merged_into = customer_summary.customer),
         lots AS (SELECT l.* FROM loyalty.lot l WHERE l.customer_id IN (SELECT id FROM ids)),
         entries AS (SELECT e.* FROM loyalty.ledger_entry e WHERE e.customer_id IN (SELECT id FROM ids)),
         buys AS (SELECT p.* FROM loyalty.purchase p WHERE p.customer_id IN (SELECT id FROM ids))
    SELECT jsonb_build_object(
        'customer', customer_summary.customer,
        'customers', (SELECT count(*) FROM ids),
        'cards', (SELECT count(*) FROM loyalty.card k WHERE k.customer_id IN (SELECT id FROM ids)),
        'balance', (SELECT coalesce(jsonb_object_agg(b.account, b.points ORDER BY b.account), '{}')
                      FROM (SELECT l.account, sum(l.remaining) AS points FROM lots l GROUP BY l.account) b),
        'lots', (SELECT count(*) FROM lots),
        'entries', (SELECT count(*) FROM entries),
        'entry_points', (SELECT coalesce(sum(e.points), 0) FROM entries e),
        'purchases', (SELECT count(*) FROM buys),
        'purchase_total', (SELECT coalesce(sum(p.total), 0) FROM buys p),
        'refunded', (SELECT coalesce(sum(p.refunded), 0) FROM buys p),
        'operations', (SELECT count(*) FROM loyalty.operation o WHERE o.customer_id IN (SELECT id FROM ids)),
        'coupons', (SELECT count(*) FROM loyalty.coupon k WHERE k.customer_id IN (SELECT id FROM ids)),
        'orders', (SELECT count(*) FROM loyalty."order" o WHERE o.customer_id IN (SELECT id FROM ids)),
        -- verify_ledger's rules, for these customers' lots and entries only
        'ledger_problems',
            (SELECT count(*) FROM lots l
              WHERE l.remaining IS DISTINCT FROM
                    (SELECT coalesce(sum(e.points), 0) FROM loyalty.ledger_entry e WHERE e.lot_id = l.id))
          + (SELECT count(*) FROM entries e LEFT JOIN loyalty.lot l ON l.id = e.lot_id
              WHERE l.id IS NULL OR e.customer_id <> l.customer_id OR e.account <> l.account)
          + (SELECT count(*) FROM entries e
              WHERE NOT EXISTS (SELECT 1 FROM loyalty.operation o WHERE o.operation_id = e.operation_id)
                 OR (e.ref_operation_id IS NOT NULL
                     AND NOT EXISTS (SELECT 1 FROM loyalty.operation o WHERE o.operation_id = e.ref_operation_id)))
          + (SELECT count(*) FROM lots l
              WHERE NOT EXISTS (SELECT 1 FROM loyalty.operation o WHERE o.operation_id = l.operation_id))
          + (SELECT count(*) FROM lots d
              WHERE d.remaining < 0
                AND EXISTS (SELECT 1 FROM lots p WHERE p.customer_id = d.customer_id
                                                   AND p.account = d.account AND p.remaining > 0)))
$$;
COMMENT ON FUNCTION loyalty.customer_summary(customer bigint) IS
    'What a move must keep of a customer (with those merged into it): balances, lots, entries, purchases, operations, coupons, orders, and verify_ledger''s problems for its rows';

CREATE FUNCTION loyalty.export_customer(customer bigint) RETURNS jsonb
    LANGUAGE plpgsql STRICT SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    c     loyalty.customer;
    ids   bigint[];
    ops   text[];
    doc   jsonb;
BEGIN
    SELECT * INTO c FROM loyalty.customer k WHERE k.id = customer FOR UPDATE;
    IF c.id IS NULL THEN
        RAISE EXCEPTION 'customer % not found', customer USING ERRCODE = 'LY001';
    END IF;
    IF c.status = 'merged' THEN
        RAISE EXCEPTION 'customer % was merged into customer %', customer, c.merged_into
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = format('Move customer %s, which carries it.', c.merged_into);
    END IF;
    -- the customers merged into it go with it (locked as merge_customers does)
    SELECT array_agg(k.id ORDER BY k.id) INTO ids
      FROM (SELECT k.id FROM loyalty.customer k
             WHERE k.id = customer OR k.merged_into = customer ORDER BY k.id FOR UPDATE) k;
    SELECT coalesce(array_agg(o.operation_id), '{}') INTO ops
      FROM loyalty.operation o WHERE o.customer_id = ANY (ids);

    doc := jsonb_build_object(
        'format', 'loyalty-customer-1',
        'customer', customer,
        'partitions', loyalty.partitions(),
        'summary', loyalty.customer_summary(customer),
        'customers', (SELECT coalesce(jsonb_agg(to_jsonb(k) ORDER BY k.merged_into NULLS FIRST, k.id), '[]')
                        FROM loyalty.customer k WHERE k.id = ANY (ids)),
        'cards', (SELECT coalesce(jsonb_agg(to_jsonb(k) ORDER BY k.number), '[]')
                    FROM loyalty.card k WHERE k.customer_id = ANY (ids)),
        'operations', (SELECT coalesce(jsonb_agg(to_jsonb(o) ORDER BY o.created_at, o.operation_id), '[]')
                         FROM loyalty.operation o WHERE o.operation_id = ANY (ops)),
        -- operations of several customers (grants, expiry) that their points name
        'shared_operations',
            (SELECT coalesce(jsonb_agg(to_jsonb(o) ORDER BY o.operation_id), '[]')
               FROM loyalty.operation o
              WHERE o.operation_id <> ALL (ops)
                AND o.operation_id IN (SELECT e.operation_id FROM loyalty.ledger_entry e WHERE e.customer_id = ANY (ids)
                                       UNION SELECT e.ref_operation_id FROM loyalty.ledger_entry e WHERE e.customer_id = ANY (ids)
                                       UNION SELECT l.operation_id FROM loyalty.lot l WHERE l.customer_id = ANY (ids))),
        'lots', (SELECT coalesce(jsonb_agg(to_jsonb(l) ORDER BY l.id), '[]')
                   FROM loyalty.lot l WHERE l.customer_id = ANY (ids)),
        'ledger_entries', (SELECT coalesce(jsonb_agg(to_jsonb(e) ORDER BY e.id), '[]')
                             FROM loyalty.ledger_entry e WHERE e.customer_id = ANY (ids)),
        'purchases', (SELECT coalesce(jsonb_agg(to_jsonb(p) ORDER BY p.at, p.operation_id), '[]')
                        FROM loyalty.purchase p WHERE p.customer_id = ANY (ids)),
        'purchase_lines', (SELECT coalesce(jsonb_agg(to_jsonb(l) ORDER BY l.operation_id, l.line_index), '[]')
                             FROM loyalty.purchase_line l
                            WHERE l.operation_id IN (SELECT p.operation_id FROM loyalty.purchase p
                                                      WHERE p.customer_id = ANY (ids))),
        'refunds', (SELECT coalesce(jsonb_agg(to_jsonb(r) ORDER BY r.at, r.operation_id), '[]')
                      FROM loyalty.refund r
                     WHERE r.purchase IN (SELECT p.operation_id FROM loyalty.purchase p WHERE p.customer_id = ANY (ids))),
        'coupons', (SELECT coalesce(jsonb_agg(to_jsonb(k) ORDER BY k.code), '[]')
                      FROM loyalty.coupon k WHERE k.customer_id = ANY (ids)),
        -- codes not theirs (mass codes, certificates) that their uses name:
        -- the target gets a void copy, so the use keeps its code; the code
        -- itself lives on where it is
        'shared_coupons',
            (SELECT coalesce(jsonb_agg(to_jsonb(k) ORDER BY k.code), '[]')
               FROM loyalty.coupon k
              WHERE (k.customer_id IS NULL OR k.customer_id <> ALL (ids))
                AND k.code IN (SELECT u.code FROM loyalty.coupon_use u
                                WHERE u.customer_id = ANY (ids) OR u.operation_id = ANY (ops))),
        'coupon_uses', (SELECT coalesce(jsonb_agg(to_jsonb(u) ORDER BY u.at, u.code, u.operation_id), '[]')
                          FROM loyalty.coupon_use u WHERE u.customer_id = ANY (ids) OR u.operation_id = ANY (ops)),
        'promotion_customer_usage', (SELECT coalesce(jsonb_agg(to_jsonb(u) ORDER BY u.promotion, u.customer_id), '[]')
                                       FROM loyalty.promotion_customer_usage u WHERE u.customer_id = ANY (ids)),
        'promotion_budget_claims', (SELECT coalesce(jsonb_agg(to_jsonb(b) ORDER BY b.operation_id, b.promotion), '[]')
                                      FROM loyalty.promotion_budget_claim b WHERE b.operation_id = ANY (ops)),
        'orders', (SELECT coalesce(jsonb_agg(to_jsonb(o) ORDER BY o.order_id), '[]')
                     FROM loyalty."order" o WHERE o.customer_id = ANY (ids)),
        'subscriptions', (SELECT coalesce(jsonb_agg(to_jsonb(s) ORDER BY s.customer_id, s.plan), '[]')
                            FROM loyalty.subscription s WHERE s.customer_id = ANY (ids)),
        'segment_members', (SELECT coalesce(jsonb_agg(to_jsonb(m) ORDER BY m.segment, m.customer_id), '[]')
                              FROM loyalty.segment_member m WHERE m.customer_id = ANY (ids)),
        'rfm', (SELECT coalesce(jsonb_agg(to_jsonb(r) ORDER BY r.customer_id), '[]')
                  FROM loyalty.rfm r WHERE r.customer_id = ANY (ids)),
        'events', (SELECT coalesce(jsonb_agg(to_jsonb(e) ORDER BY e.id), '[]')
                     FROM loyalty.event e WHERE e.customer_id = ANY (ids)));
    RETURN doc;
END
$$;
COMMENT ON FUNCTION loyalty.export_customer(customer bigint) IS
    'Step 1 of moving a customer (on the source): the customer, those merged into it and every row of theirs as one document with its summary; locks them until commit';

CREATE FUNCTION loyalty.import_customer(doc jsonb) RETURNS jsonb
    LANGUAGE plpgsql STRICT SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    cid     bigint := (doc ->> 'customer')::bigint;
    p       int := loyalty.partitions();
    lot_map jsonb;
    got     jsonb;
BEGIN
    IF doc ->> 'format' IS DISTINCT FROM 'loyalty-customer-1' OR cid IS NULL THEN
        RAISE EXCEPTION 'malformed customer document'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'The document must come from loyalty.export_customer (format loyalty-customer-1).';
    END IF;
    IF (doc ->> 'partitions')::int IS DISTINCT FROM p THEN
        RAISE EXCEPTION 'the customer comes from a node with % partitions, this one has %', doc ->> 'partitions', p
            USING ERRCODE = 'LY006',
                  DETAIL = 'Every node of a chain has the same number of partitions.';
    END IF;
    IF EXISTS (SELECT 1 FROM loyalty.customer c WHERE c.id = cid) THEN
        -- imported before (a move re-run after the source failed to commit)
        IF loyalty.customer_summary(cid) = doc -> 'summary' THEN
            RETURN jsonb_build_object('customer', cid, 'imported', false, 'summary', doc -> 'summary');
        END IF;
        RAISE EXCEPTION 'customer % already exists here', cid
            USING ERRCODE = 'unique_violation',
                  DETAIL = 'Its rows differ from the document''s.';
    END IF;

    INSERT INTO loyalty.customer
    SELECT * FROM jsonb_populate_recordset(NULL::loyalty.customer, doc -> 'customers');
    -- a customer coming back is no longer away
    DELETE FROM loyalty.moved_key m WHERE m.customer_id = cid;
    INSERT INTO loyalty.card
    SELECT * FROM jsonb_populate_recordset(NULL::loyalty.card, doc -> 'cards');
    INSERT INTO loyalty.operation
    SELECT * FROM jsonb_populate_recordset(NULL::loyalty.operation, doc -> 'operations');
    INSERT INTO loyalty.operation
    SELECT * FROM jsonb_populate_recordset(NULL::loyalty.operation, doc -> 'shared_operations')
        ON CONFLICT ON CONSTRAINT operation_pkey DO NOTHING;

    -- lots and entries get this node's ids, in their order
    SELECT coalesce(jsonb_object_agg(x.old, x.new), '{}') INTO lot_map
      FROM (SELECT l.old, nextval('loyalty.lot_id_seq') AS new
              FROM (SELECT x ->> 'id' AS old FROM jsonb_array_elements(doc -> 'lots') x
                     ORDER BY (x ->> 'id')::bigint) l) x;
    INSERT INTO loyalty.lot
    SELECT * FROM jsonb_populate_recordset(NULL::loyalty.lot,
        (SELECT coalesce(jsonb_agg(x || jsonb_build_object('id', lot_map -> (x ->> 'id'))), '[]')
           FROM jsonb_array_elements(doc -> 'lots') x));
    INSERT INTO loyalty.ledger_entry
    SELECT * FROM jsonb_populate_recordset(NULL::loyalty.ledger_entry,
        (SELECT coalesce(jsonb_agg(x.e || jsonb_build_object('id', nextval('loyalty.ledger_entry_id_seq'),
                                                             'lot_id', lot_map -> (x.e ->> 'lot_id'))
                                   ORDER BY x.n), '[]')
           FROM (SELECT e, row_number() OVER (ORDER BY (e ->> 'id')::bigint) AS n
                   FROM jsonb_array_elements(doc -> 'ledger_entries') e) x));

    INSERT INTO loyalty.purchase
    SELECT * FROM jsonb_populate_recordset(NULL::loyalty.purchase, doc -> 'purchases');
    INSERT INTO loyalty.purchase_line
    SELECT * FROM jsonb_populate_recordset(NULL::loyalty.purchase_line, doc -> 'purchase_lines');
    INSERT INTO loyalty.refund
    SELECT * FROM jsonb_populate_recordset(NULL::loyalty.refund, doc -> 'refunds');
    INSERT INTO loyalty.coupon
    SELECT * FROM jsonb_populate_recordset(NULL::loyalty.coupon, doc -> 'coupons');
    INSERT INTO loyalty.coupon
    SELECT * FROM jsonb_populate_recordset(NULL::loyalty.coupon,
        (SELECT coalesce(jsonb_agg(x || '{"status": "void"}'), '[]') FROM jsonb_array_elements(doc -> 'shared_coupons') x))
        ON CONFLICT ON CONSTRAINT coupon_pkey DO NOTHING;
    INSERT INTO loyalty.coupon_use
    SELECT * FROM jsonb_populate_recordset(NULL::loyalty.coupon_use, doc -> 'coupon_uses');
    INSERT INTO loyalty.promotion_customer_usage
    SELECT * FROM jsonb_populate_recordset(NULL::loyalty.promotion_customer_usage, doc -> 'promotion_customer_usage');
    INSERT INTO loyalty.promotion_budget_claim
    SELECT * FROM jsonb_populate_recordset(NULL::loyalty.promotion_budget_claim, doc -> 'promotion_budget_claims');
    INSERT INTO loyalty."order"
    SELECT * FROM jsonb_populate_recordset(NULL::loyalty."order", doc -> 'orders');
    INSERT INTO loyalty.subscription
    SELECT * FROM jsonb_populate_recordset(NULL::loyalty.subscription, doc -> 'subscriptions');
    INSERT INTO loyalty.segment_member
    SELECT * FROM jsonb_populate_recordset(NULL::loyalty.segment_member, doc -> 'segment_members');
    INSERT INTO loyalty.rfm
    SELECT * FROM jsonb_populate_recordset(NULL::loyalty.rfm, doc -> 'rfm');
    INSERT INTO loyalty.event
    SELECT * FROM jsonb_populate_recordset(NULL::loyalty.event,
        (SELECT coalesce(jsonb_agg(x.e || jsonb_build_object('id', nextval('loyalty.event_id_seq')) ORDER BY x.n), '[]')
           FROM (SELECT e, row_number() OVER (ORDER BY (e ->> 'id')::bigint) AS n
                   FROM jsonb_array_elements(doc -> 'events') e) x));

    -- ids and virtual cards made here later must not meet the moved ones
    PERFORM setval('loyalty.customer_id_seq',
                   greatest((SELECT max(c.id) / p FROM loyalty.customer c WHERE c.id = ANY (
                                 SELECT (x ->> 'id')::bigint FROM jsonb_array_elements(doc -> 'customers') x)),
                            (SELECT s.last_value FROM loyalty.customer_id_seq s)));
    PERFORM setval('loyalty.card_number_seq',
                   greatest(coalesce((SELECT max(substr(k.number, 3, 10)::bigint / p) FROM loyalty.card k
                                       WHERE k.kind = 'virtual' AND k.customer_id = ANY (
                                             SELECT (x ->> 'id')::bigint FROM jsonb_array_elements(doc -> 'customers') x)), 0),
                            (SELECT s.last_value FROM loyalty.card_number_seq s)));

    got := loyalty.customer_summary(cid);
    IF got IS DISTINCT FROM doc -> 'summary' THEN
        RAISE EXCEPTION 'the imported customer % differs from the exported one', cid
            USING ERRCODE = 'data_corrupted',
                  DETAIL = format('Exported %s, imported %s.', doc -> 'summary', got);
    END IF;
    RETURN jsonb_build_object('customer', cid, 'imported', true, 'summary', got);
END
$$;
COMMENT ON FUNCTION loyalty.import_customer(doc jsonb) IS
    'Step 2 of moving a customer (on the target): writes an export_customer document and fails unless the summary is the exported one; idempotent';

CREATE FUNCTION loyalty.remove_customer(customer bigint, summary jsonb, home integer) RETURNS jsonb
    LANGUAGE plpgsql STRICT SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    ids bigint[];
    ops text[];
    buys text[];
    now_summary jsonb;
BEGIN
    IF home < 0 OR home >= loyalty.partitions() THEN
        RAISE EXCEPTION 'partition % does not exist', home
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('Argument "home" must be a partition from 0 to %s.', loyalty.partitions() - 1);
    END IF;
    PERFORM 1 FROM loyalty.customer c WHERE c.id = customer OR c.merged_into = customer ORDER BY c.id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'customer % not found', customer USING ERRCODE = 'LY001';
    END IF;
    now_summary := loyalty.customer_summary(customer);
    IF now_summary IS DISTINCT FROM summary THEN
        RAISE EXCEPTION 'customer % changed since it was exported', customer
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = format('Exported %s, now %s.', summary, now_summary),
                  HINT = 'Export and import it again; the target''s copy must be removed first.';
    END IF;
    SELECT array_agg(c.id) INTO ids FROM loyalty.customer c WHERE c.id = customer OR c.merged_into = customer;
    SELECT coalesce(array_agg(o.operation_id), '{}') INTO ops FROM loyalty.operation o WHERE o.customer_id = ANY (ids);
    SELECT coalesce(array_agg(p.operation_id), '{}') INTO buys FROM loyalty.purchase p WHERE p.customer_id = ANY (ids);

    -- the keys that found them here now name where they live
    INSERT INTO loyalty.moved_key AS m (key, customer_id, home)
    SELECT k.key, customer, remove_customer.home
      FROM (SELECT 'id:' || c.id AS key FROM loyalty.customer c WHERE c.id = ANY (ids)
            UNION SELECT c.phone::text FROM loyalty.customer c WHERE c.id = ANY (ids) AND c.phone IS NOT NULL
            UNION SELECT k.number FROM loyalty.card k WHERE k.customer_id = ANY (ids)) k
        ON CONFLICT ON CONSTRAINT moved_key_pkey
        DO UPDATE SET customer_id = EXCLUDED.customer_id, home = EXCLUDED.home, moved_at = EXCLUDED.moved_at;
    DELETE FROM loyalty.coupon_use u WHERE u.customer_id = ANY (ids) OR u.operation_id = ANY (ops);
    DELETE FROM loyalty.subscription s WHERE s.customer_id = ANY (ids);
    DELETE FROM loyalty.segment_member m WHERE m.customer_id = ANY (ids);
    DELETE FROM loyalty.rfm r WHERE r.customer_id = ANY (ids);
    DELETE FROM loyalty.event e WHERE e.customer_id = ANY (ids);
    DELETE FROM loyalty.promotion_customer_usage u WHERE u.customer_id = ANY (ids);
    DELETE FROM loyalty.promotion_budget_claim b WHERE b.operation_id = ANY (ops);
    DELETE FROM loyalty."order" o WHERE o.customer_id = ANY (ids);
    DELETE FROM loyalty.refund r WHERE r.purchase = ANY (buys);
    DELETE FROM loyalty.purchase_line l WHERE l.operation_id = ANY (buys);
    DELETE FROM loyalty.purchase p WHERE p.operation_id = ANY (buys);
    PERFORM set_config('loyalty_move.removing', 'on', true);
    DELETE FROM loyalty.ledger_entry e WHERE e.customer_id = ANY (ids);
    PERFORM set_config('loyalty_move.removing', '', true);
    DELETE FROM loyalty.lot l WHERE l.customer_id = ANY (ids);
    DELETE FROM loyalty.coupon k WHERE k.customer_id = ANY (ids);
    DELETE FROM loyalty.card k WHERE k.customer_id = ANY (ids);
    DELETE FROM loyalty.operation o WHERE o.operation_id = ANY (ops);
    DELETE FROM loyalty.customer c WHERE c.id = ANY (ids) AND c.merged_into IS NOT NULL;
    DELETE FROM loyalty.customer c WHERE c.id = customer;
    RETURN jsonb_build_object('customer', customer, 'removed', true, 'summary', now_summary);
END
$$;
COMMENT ON FUNCTION loyalty.remove_customer(customer bigint, summary jsonb, home integer) IS
    'Step 3 of moving a customer (on the source, once the target committed the import): fails unless the summary is still the exported one, then deletes every row of the customer and those merged into it and records their keys as moved to partition home';

SELECT pg_catalog.pg_extension_config_dump('loyalty.moved_key', '');
REVOKE ALL ON loyalty.moved_key FROM PUBLIC;
GRANT ALL ON loyalty.moved_key TO loyalty_admin;
REVOKE ALL ON FUNCTION loyalty.customer_summary(bigint), loyalty.export_customer(bigint),
    loyalty.import_customer(jsonb), loyalty.remove_customer(bigint, jsonb, integer),
    loyalty.moved_home(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.customer_summary(bigint), loyalty.export_customer(bigint),
    loyalty.import_customer(jsonb), loyalty.remove_customer(bigint, jsonb, integer) TO loyalty_admin;
GRANT EXECUTE ON FUNCTION loyalty.moved_home(text) TO loyalty_cashier, loyalty_admin;

-- ---------------------------------------------------------------------------
-- Issue 21: calculate's response as json text.  A client that only prints
-- the response (or passes it on) paid for building binary jsonb and for
-- printing it again; calculate_json writes the same document as text
-- directly.  Whoever may calculate may call it.
-- ---------------------------------------------------------------------------
CREATE FUNCTION loyalty.calculate_json(request jsonb) RETURNS json
    LANGUAGE c STABLE STRICT SECURITY DEFINER PARALLEL RESTRICTED
    SET search_path = pg_catalog, pg_temp
    AS 'MODULE_PATHNAME', 'loyalty_calculate_json';
COMMENT ON FUNCTION loyalty.calculate_json(request jsonb) IS
    'calculate with the response as json text, for clients that only print or pass it on; no side effects';
REVOKE ALL ON FUNCTION loyalty.calculate_json(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.calculate_json(jsonb)
    TO loyalty_cashier, loyalty_marketer, loyalty_admin;

-- ---------------------------------------------------------------------------
-- Issue 20 item 8: errors as JSON for a PL/Proxy router.  PL/Proxy drops its
-- connection to a shard after a remote error, so an unknown customer cost a
-- reconnect (14.5 ms instead of 0.5 ms).  loyalty.api runs one call by name
-- in a subtransaction and returns the error as JSON, the call's effects
-- rolled back; the router (router/, loyalty_router) raises it again with the
-- same SQLSTATE, message, detail and hint.  It runs as the caller, so every
-- call keeps its own privileges.
-- ---------------------------------------------------------------------------
CREATE FUNCTION loyalty.api(method text, args jsonb) RETURNS jsonb
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    r    jsonb;
    f    jsonb;
    snap jsonb;
    k    text;
    op   text := args -> 'request' ->> 'operation_id';
    st   text;
    msg  text;
    det  text;
    hnt  text;
BEGIN
    -- issue 20 item 4: a check whose codes are neither this node's own nor
    -- customers' here is sent back, unrun, with their home partitions; the
    -- router holds them there and calls again with "guests" (their
    -- documents, the guest copies made in this call's subtransaction)
    IF method IN ('calculate', 'purchase') AND NOT args ? 'guests'
       AND jsonb_typeof(args -> 'request' -> 'coupons') = 'array' AND loyalty.partitions() > 1 THEN
        SELECT jsonb_agg(DISTINCT jsonb_build_object('code', x.k, 'home', loyalty.code_home(x.k))) INTO f
          FROM (SELECT loyalty.code_key(c) AS k
                  FROM jsonb_array_elements(args -> 'request' -> 'coupons') AS e(c0),
                       LATERAL (SELECT e.c0 #>> '{}' AS c) AS y
                 WHERE jsonb_typeof(e.c0) = 'string') AS x
         WHERE NOT EXISTS (SELECT 1 FROM loyalty.coupon p WHERE p.code = x.k)
            OR EXISTS (SELECT 1 FROM loyalty.code_guest g WHERE g.code = x.k);
        IF f IS NOT NULL THEN
            RETURN jsonb_build_object('foreign', f);
        END IF;
    END IF;
    -- strict idempotency in one round trip: when the operation id's own hash
    -- partition lives on this node, the router asks for the claim here, in
    -- the call's subtransaction (a failed call leaves no claim)
    IF args ? 'claim' THEN
        PERFORM loyalty.claim_operation(op, (args ->> 'claim')::integer);
    END IF;
    IF jsonb_typeof(args -> 'guests') = 'array' AND method <> 'calculate' THEN
        PERFORM loyalty.code_guest(d) FROM jsonb_array_elements(args -> 'guests') AS d;
    END IF;
    -- a refund: the guest codes the purchase used or issued, as they were
    IF method = 'refund' THEN
        SELECT jsonb_object_agg(c.code, jsonb_build_array(c.uses, c.balance, c.status)) INTO snap
          FROM loyalty.code_guest g JOIN loyalty.coupon c ON c.code = g.code
         WHERE c.issued_by = args -> 'request' ->> 'purchase'
            OR c.code IN (SELECT u.code FROM loyalty.coupon_use u
                           WHERE u.operation_id = args -> 'request' ->> 'purchase');
    END IF;
    CASE method
    WHEN 'calculate' THEN
        IF jsonb_typeof(args -> 'guests') = 'array' THEN
            -- priced with the guest copies, which are rolled back: a
            -- calculate writes nothing
            BEGIN
                PERFORM loyalty.code_guest(d) FROM jsonb_array_elements(args -> 'guests') AS d;
                r := loyalty.calculate(args -> 'request');
                RAISE SQLSTATE 'LYR00';
            EXCEPTION WHEN SQLSTATE 'LYR00' THEN
                NULL;
            END;
        ELSE
            r := loyalty.calculate(args -> 'request');
        END IF;
    WHEN 'purchase' THEN r := loyalty.purchase(args -> 'request');
    WHEN 'refund' THEN r := loyalty.refund(args -> 'request');
    WHEN 'adjust' THEN r := loyalty.adjust(args -> 'request');
    WHEN 'grant_points' THEN r := loyalty.grant_points(args -> 'request');
    WHEN 'order_hold' THEN r := loyalty.order_hold(args -> 'request');
    WHEN 'order_capture' THEN r := loyalty.order_capture(args -> 'request');
    WHEN 'order_cancel' THEN r := loyalty.order_cancel(args -> 'request');
    WHEN 'register' THEN
        r := to_jsonb(loyalty.register(args ->> 'phone', coalesce(args -> 'profile', '{}')));
    WHEN 'find_customer' THEN r := to_jsonb(loyalty.find_customer(args ->> 'identifier'));
    WHEN 'balance' THEN
        SELECT coalesce(jsonb_agg(to_jsonb(b)), '[]') INTO r
          FROM loyalty.balance(args ->> 'customer', coalesce((args ->> 'at')::timestamptz, now())) AS b;
    WHEN 'history' THEN
        SELECT coalesce(jsonb_agg(to_jsonb(h)), '[]') INTO r
          FROM loyalty.history(args ->> 'customer', coalesce((args ->> 'lim')::integer, 100)) AS h;
    -- the router's first hop of a writing call (issue 20 item 7)
    WHEN 'claim_operation' THEN
        r := to_jsonb(loyalty.claim_operation(args ->> 'operation_id', (args ->> 'home')::integer));
    -- plastic cards and moved customers (issue 20 items 2 and 10)
    WHEN 'card_directory_put' THEN
        r := to_jsonb(loyalty.card_directory_put(args ->> 'number', (args ->> 'home')::integer));
    WHEN 'attach_card' THEN r := to_jsonb(loyalty.attach_card(args ->> 'customer', args ->> 'number'));
    WHEN 'moved_home' THEN r := to_jsonb(loyalty.moved_home(args ->> 'identifier'));
    -- codes on their home partition (issue 20 item 4): a hold, or a look
    -- (peek: the hold rolled back), confirm, release, a refund's give-back
    WHEN 'code_hold' THEN
        IF (args ->> 'peek')::boolean THEN
            BEGIN
                r := loyalty.code_hold(args ->> 'code', args ->> 'hold_id', (args ->> 'home')::integer);
                RAISE SQLSTATE 'LYR00';
            EXCEPTION WHEN SQLSTATE 'LYR00' THEN
                NULL;
            END;
        ELSE
            r := loyalty.code_hold(args ->> 'code', args ->> 'hold_id', (args ->> 'home')::integer);
        END IF;
    WHEN 'code_confirm' THEN
        r := loyalty.code_confirm(args ->> 'code', args ->> 'hold_id', (args ->> 'uses')::integer,
                                  (args ->> 'amount')::numeric);
    WHEN 'code_release' THEN r := to_jsonb(loyalty.code_release(args ->> 'code', args ->> 'hold_id'));
    WHEN 'code_return' THEN
        -- as a local refund gives a use back (coupons.c), or voids an
        -- unused issued code
        UPDATE loyalty.coupon c
           SET uses = CASE WHEN (args ->> 'uses')::integer > 0 THEN c.uses - 1 ELSE c.uses END,
               balance = CASE WHEN c.kind = 'certificate' THEN c.balance + (args ->> 'amount')::numeric
                              ELSE c.balance END,
               status = CASE WHEN (args ->> 'void')::boolean THEN
                                  CASE WHEN c.uses = 0 AND c.status = 'active' THEN 'void' ELSE c.status END
                             WHEN (args ->> 'uses')::integer > 0 AND c.status <> 'void' THEN 'active'
                             ELSE c.status END
         WHERE c.code = loyalty.code_key(args ->> 'code')
           AND NOT EXISTS (SELECT 1 FROM loyalty.code_guest g WHERE g.code = c.code)
        RETURNING jsonb_build_object('code', c.code, 'uses', c.uses, 'balance', c.balance, 'status', c.status)
          INTO r;
    -- a new code that is nobody's, issued on another node than its home:
    -- exported there (the row stays as a guest copy), adopted at home
    WHEN 'code_export' THEN
        k := loyalty.code_key(args ->> 'code');
        SELECT jsonb_build_object(
                   'format', 'loyalty-code-1', 'code', c.code, 'hold_id', '', 'held', false,
                   'promotion', c.promotion, 'kind', c.kind, 'value', c.value, 'balance', c.balance,
                   'percent', c.percent, 'min_total', c.min_total, 'valid_from', c.valid_from,
                   'valid_until', c.valid_until, 'max_uses', c.max_uses, 'uses', c.uses, 'status', c.status)
          INTO r
          FROM loyalty.coupon c WHERE c.code = k AND c.customer_id IS NULL;
        IF r IS NOT NULL THEN
            INSERT INTO loyalty.code_guest (code, hold_id, doc) VALUES (k, '', r)
                ON CONFLICT ON CONSTRAINT code_guest_pkey DO NOTHING;
        END IF;
    WHEN 'code_adopt' THEN
        k := args -> 'doc' ->> 'code';
        IF NOT EXISTS (SELECT 1 FROM loyalty.coupon c WHERE c.code = k) THEN
            PERFORM loyalty.code_guest(args -> 'doc');
            DELETE FROM loyalty.code_guest g WHERE g.code = k;
        END IF;
        r := to_jsonb(k);
    ELSE
        RAISE EXCEPTION 'unknown API method "%"', method
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'loyalty.api runs calculate, purchase, refund, adjust, grant_points, order_hold, order_capture, order_cancel, register, find_customer, balance, history, claim_operation, card_directory_put, attach_card, moved_home, code_hold, code_confirm, code_release, code_return, code_export and code_adopt.';
    END CASE;
    -- a purchase with guests: what it took of each, for code_confirm at home
    IF method = 'purchase' AND jsonb_typeof(args -> 'guests') = 'array' THEN
        SELECT jsonb_object_agg(d ->> 'code', loyalty.code_guest_settle(d ->> 'code', d ->> 'hold_id')) INTO f
          FROM jsonb_array_elements(args -> 'guests') AS d;
        r := jsonb_build_object('result', r, 'settle', coalesce(f, '{}'));
    ELSIF method = 'refund' AND snap IS NOT NULL THEN
        SELECT jsonb_agg(jsonb_build_object('code', c.code, 'home', loyalty.code_home(c.code),
                   'uses', (snap -> c.code ->> 0)::integer - c.uses,
                   'amount', c.balance - (snap -> c.code ->> 1)::numeric,
                   'void', c.status = 'void' AND snap -> c.code ->> 2 <> 'void')) INTO f
          FROM loyalty.coupon c
         WHERE snap ? c.code
           AND (c.uses, c.balance, c.status::text) IS DISTINCT FROM
               ((snap -> c.code ->> 0)::integer, (snap -> c.code ->> 1)::numeric, snap -> c.code ->> 2);
        r := CASE WHEN f IS NULL THEN jsonb_build_object('result', r)
                  ELSE jsonb_build_object('result', r, 'returns', f) END;
    ELSIF method = 'purchase' AND op IS NOT NULL AND NOT args -> 'request' ? 'customer'
          AND loyalty.partitions() > 1 THEN
        -- new codes that are nobody's: their home partitions, for the router
        SELECT jsonb_agg(jsonb_build_object('code', c.code, 'home', loyalty.code_home(c.code))) INTO f
          FROM loyalty.coupon c
         WHERE c.issued_by = op AND c.customer_id IS NULL
           AND NOT EXISTS (SELECT 1 FROM loyalty.code_guest g WHERE g.code = c.code);
        r := CASE WHEN f IS NULL THEN jsonb_build_object('result', r)
                  ELSE jsonb_build_object('result', r, 'issued_codes', f) END;
    ELSE
        r := jsonb_build_object('result', r);
    END IF;
    RETURN r;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
                            det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
    RETURN jsonb_build_object('error', jsonb_strip_nulls(jsonb_build_object(
        'sqlstate', st, 'message', msg, 'detail', nullif(det, ''), 'hint', nullif(hnt, ''))));
END
$$;
COMMENT ON FUNCTION loyalty.api(text, jsonb) IS
    'One API call by name, args named like its parameters (plus "claim": the operation id''s claim made here first; "guests": held codes of other nodes): {"result": ...}, or {"error": {sqlstate, message, detail, hint}} with the call''s effects rolled back (for a PL/Proxy router)';
REVOKE ALL ON FUNCTION loyalty.api(text, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.api(text, jsonb)
    TO loyalty_cashier, loyalty_marketer, loyalty_admin;

-- ---------------------------------------------------------------------------
-- Issue 16 (continued): speed of the segment refresh, RFM, kpi and liability
-- at chain scale, every result unchanged (the functions' final definitions
-- are in Issue 16 parts 1, 2 and 5 and Issue 20 item 9, folded there).  kpi
-- and points_liability read the ledger entries of a period, or after a
-- moment, through this index; points_liability starts from lot.remaining
-- (the sum of the lot's entries, which verify_ledger checks) less the
-- entries after the moment.
-- ---------------------------------------------------------------------------
CREATE INDEX ledger_entry_at_idx ON loyalty.ledger_entry (at);


-- Issue 20 round 2: the router's strict idempotency in one round trip, and
-- the calls it routes for plastic cards, moved customers and campaign
-- grants.  loyalty.api takes an optional "claim" (the operation id's claim
-- made on this node inside the call's subtransaction, when the id's hash
-- partition lives here: one round trip instead of two) and runs
-- grant_points, card_directory_put, attach_card and moved_home, so the
-- router meets their errors as JSON too (PL/Proxy drops its connection
-- after a remote error).
-- (loyalty.api's definition is in the "Issue 20 item 8" section above: the
-- three versions of this unreleased script are folded into one there)

-- Issue 20 item 4 (shard side): codes that are not a customer's on a home
-- partition of their own.  A gift certificate or a mass coupon code lives
-- on hashtext(code) & (P - 1) (loyalty.code_home); a check of a customer
-- on another node holds it there (loyalty.code_hold: the code's state as a
-- document, capacity reserved), the customer's node takes the document as
-- a guest copy (loyalty.code_guest) and prices and commits the check with
-- it as with any local code, the use is read back
-- (loyalty.code_guest_settle) and confirmed at home (loyalty.code_confirm),
-- or the hold is released (loyalty.code_release) — the online-order hold
-- protocol.  A code bound to a customer (personal coupons, certificates
-- issued to someone) lives with that customer and is not held.
CREATE TABLE loyalty.code_hold (
    hold_id text NOT NULL COLLATE pg_catalog."C",
    code text NOT NULL COLLATE pg_catalog."C",
    home integer NOT NULL,
    state text DEFAULT 'held' NOT NULL,
    uses integer DEFAULT 0 NOT NULL,
    amount numeric(14,2) DEFAULT 0 NOT NULL,
    held_at timestamp with time zone DEFAULT now() NOT NULL,
    settled_at timestamp with time zone,
    CONSTRAINT code_hold_pkey PRIMARY KEY (hold_id, code),
    CONSTRAINT code_hold_code_fkey FOREIGN KEY (code) REFERENCES loyalty.coupon(code) ON UPDATE CASCADE,
    CONSTRAINT code_hold_state CHECK (state IN ('held', 'confirmed', 'released')),
    CONSTRAINT code_hold_home_range CHECK (home >= 0 AND home < 1024),
    CONSTRAINT code_hold_settled CHECK ((state = 'held') = (settled_at IS NULL)),
    CONSTRAINT code_hold_use CHECK (uses IN (0, 1) AND amount >= 0)
);
CREATE INDEX code_hold_open_idx ON loyalty.code_hold (code) WHERE state = 'held';
COMMENT ON TABLE loyalty.code_hold IS
    'On a code''s home partition: holds of the code by checks on other nodes (hold_id: the check''s operation_id; home: its partition), confirmed with the use or released';

CREATE TABLE loyalty.code_guest (
    code text NOT NULL COLLATE pg_catalog."C",
    hold_id text NOT NULL COLLATE pg_catalog."C",
    doc jsonb NOT NULL,
    CONSTRAINT code_guest_pkey PRIMARY KEY (code),
    CONSTRAINT code_guest_code_fkey FOREIGN KEY (code) REFERENCES loyalty.coupon(code) ON UPDATE CASCADE
);
COMMENT ON TABLE loyalty.code_guest IS
    'On a customer''s node: coupon rows that are guest copies of codes held on their home partition, with the document of the last hold';

CREATE FUNCTION loyalty.code_key(code text) RETURNS text
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    RETURN loyalty.coupon_code(code);
EXCEPTION WHEN invalid_text_representation THEN
    RETURN upper(btrim(code));
END
$$;
COMMENT ON FUNCTION loyalty.code_key(text) IS
    'A code as stored (a generated code''s canonical form, else upper case): what its home partition is hashed from';

CREATE FUNCTION loyalty.code_home(code text) RETURNS integer
    LANGUAGE sql STABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$ SELECT hashtext(loyalty.code_key(code)) & (loyalty.partitions() - 1) $$;
COMMENT ON FUNCTION loyalty.code_home(text) IS
    'The home partition of a code that is not a customer''s: hashtext(code as stored) & (P - 1)';

CREATE FUNCTION loyalty.code_hold(code text, hold_id text, home integer) RETURNS jsonb
    LANGUAGE plpgsql STRICT SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    k      text := loyalty.code_key(code);
    c      loyalty.coupon;
    h      loyalty.code_hold;
    others integer;
    free   boolean;
BEGIN
    IF home < 0 OR home >= loyalty.partitions() THEN
        RAISE EXCEPTION 'partition % does not exist', home
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('Argument "home" must be a partition from 0 to %s.', loyalty.partitions() - 1);
    END IF;
    SELECT * INTO c FROM loyalty.coupon x WHERE x.code = k FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;                -- unknown here: the check says so itself
    END IF;
    IF c.customer_id IS NOT NULL THEN
        RAISE EXCEPTION 'code "%" belongs to a customer', loyalty.code_masked(k)
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'A personal coupon or a certificate issued to a customer lives on that customer''s partition.';
    END IF;
    SELECT * INTO h FROM loyalty.code_hold x WHERE x.hold_id = code_hold.hold_id AND x.code = k;
    IF FOUND AND h.home <> code_hold.home THEN
        RAISE EXCEPTION 'hold "%" of code "%" was made for partition %', hold_id, loyalty.code_masked(k), h.home
            USING ERRCODE = 'LY003';
    END IF;
    SELECT count(*) INTO others FROM loyalty.code_hold x
     WHERE x.code = k AND x.state = 'held' AND x.hold_id <> code_hold.hold_id;
    -- capacity: uses left after the other open holds; a certificate has
    -- one open hold at a time (the amount a check takes is not known yet)
    free := coalesce(h.state = 'held', false)
            OR (h.hold_id IS NULL AND c.status = 'active' AND c.uses + others < c.max_uses
                AND (c.kind <> 'certificate' OR (c.balance > 0 AND others = 0)));
    IF free AND h.hold_id IS NULL THEN
        INSERT INTO loyalty.code_hold (hold_id, code, home) VALUES (code_hold.hold_id, k, code_hold.home);
    END IF;
    RETURN jsonb_build_object(
        'format', 'loyalty-code-1', 'code', k, 'hold_id', hold_id, 'held', free,
        'promotion', c.promotion, 'kind', c.kind, 'value', c.value, 'balance', c.balance,
        'percent', c.percent, 'min_total', c.min_total, 'valid_from', c.valid_from,
        'valid_until', c.valid_until, 'max_uses', c.max_uses,
        -- what the guest copy shows: used up unless this hold holds a use
        'uses', CASE WHEN free THEN c.max_uses - 1 ELSE c.max_uses END,
        'status', CASE WHEN free THEN 'active' ELSE 'used' END);
END
$$;
COMMENT ON FUNCTION loyalty.code_hold(text, text, integer) IS
    'On a code''s home partition, before a check on another node uses it: the code as a document for loyalty.code_guest, one use held for hold_id (idempotent); held false when none is free; NULL when unknown';

CREATE FUNCTION loyalty.code_confirm(code text, hold_id text, uses integer, amount numeric) RETURNS jsonb
    LANGUAGE plpgsql STRICT SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    k text := loyalty.code_key(code);
    h loyalty.code_hold;
    c loyalty.coupon;
BEGIN
    SELECT * INTO c FROM loyalty.coupon x WHERE x.code = k FOR NO KEY UPDATE;
    SELECT * INTO h FROM loyalty.code_hold x WHERE x.hold_id = code_confirm.hold_id AND x.code = k FOR UPDATE;
    IF NOT FOUND OR h.state = 'released' THEN
        RAISE EXCEPTION 'code "%" is not held by "%"', loyalty.code_masked(k), hold_id
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'A use is confirmed only under a hold that was neither released nor never made.';
    END IF;
    IF h.state = 'confirmed' THEN
        IF h.uses <> code_confirm.uses OR h.amount <> code_confirm.amount THEN
            RAISE EXCEPTION 'hold "%" was confirmed with another use', hold_id
                USING ERRCODE = 'LY003',
                      DETAIL = format('It was confirmed with %s use(s) and amount %s.', h.uses, h.amount);
        END IF;
        RETURN jsonb_build_object('code', k, 'uses', c.uses, 'balance', c.balance, 'status', c.status);
    END IF;
    IF uses NOT IN (0, 1) OR amount < 0 OR (uses = 0 AND amount > 0)
       OR (c.kind = 'certificate' AND amount > c.balance) OR (c.kind <> 'certificate' AND amount > 0) THEN
        RAISE EXCEPTION 'invalid use of code "%"', loyalty.code_masked(k)
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'A hold confirms 0 or 1 use, and an amount only for a certificate, at most its balance.';
    END IF;
    UPDATE loyalty.coupon x
       SET uses = x.uses + code_confirm.uses,
           balance = CASE WHEN x.kind = 'certificate' THEN x.balance - code_confirm.amount ELSE x.balance END,
           -- as a local purchase does (coupons.c)
           status = CASE WHEN code_confirm.uses = 0 THEN x.status
                         WHEN x.kind = 'certificate' AND x.balance - code_confirm.amount <= 0
                           OR x.kind <> 'certificate' AND x.uses + 1 >= x.max_uses
                         THEN 'used' ELSE x.status END
     WHERE x.code = k
     RETURNING * INTO c;
    UPDATE loyalty.code_hold x SET state = 'confirmed', uses = code_confirm.uses, amount = code_confirm.amount,
                                   settled_at = now()
     WHERE x.hold_id = code_confirm.hold_id AND x.code = k;
    RETURN jsonb_build_object('code', k, 'uses', c.uses, 'balance', c.balance, 'status', c.status);
END
$$;
COMMENT ON FUNCTION loyalty.code_confirm(text, text, integer, numeric) IS
    'On a code''s home partition, after the check on another node committed: its use (0 or 1, and a certificate''s amount) written to the code; idempotent';

CREATE FUNCTION loyalty.code_release(code text, hold_id text) RETURNS boolean
    LANGUAGE plpgsql STRICT SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    k text := loyalty.code_key(code);
    s text;
BEGIN
    SELECT x.state INTO s FROM loyalty.code_hold x
     WHERE x.hold_id = code_release.hold_id AND x.code = k FOR UPDATE;
    IF s = 'confirmed' THEN
        RAISE EXCEPTION 'hold "%" of code "%" was confirmed', hold_id, loyalty.code_masked(k)
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'A confirmed use comes back only with a refund.';
    END IF;
    UPDATE loyalty.code_hold x SET state = 'released', settled_at = now()
     WHERE x.hold_id = code_release.hold_id AND x.code = k AND x.state = 'held';
    RETURN FOUND;
END
$$;
COMMENT ON FUNCTION loyalty.code_release(text, text) IS
    'On a code''s home partition, when the check on another node failed or did not use the code: the held use is free again; true when it was held';

CREATE FUNCTION loyalty.code_guest(doc jsonb) RETURNS text
    LANGUAGE plpgsql STRICT SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    k text := doc ->> 'code';
BEGIN
    IF doc ->> 'format' IS DISTINCT FROM 'loyalty-code-1' OR k IS NULL THEN
        RAISE EXCEPTION 'malformed code document'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'The document must come from loyalty.code_hold (format loyalty-code-1).';
    END IF;
    IF EXISTS (SELECT 1 FROM loyalty.coupon c WHERE c.code = k)
       AND NOT EXISTS (SELECT 1 FROM loyalty.code_guest g WHERE g.code = k) THEN
        RETURN 'home';              -- the code lives here: nothing to copy
    END IF;
    INSERT INTO loyalty.coupon AS c (code, promotion, kind, value, balance, percent, min_total,
                                     valid_from, valid_until, max_uses, uses, status)
    VALUES (k, doc ->> 'promotion', doc ->> 'kind', (doc ->> 'value')::numeric, (doc ->> 'balance')::numeric,
            (doc ->> 'percent')::numeric, coalesce((doc ->> 'min_total')::numeric, 0),
            (doc ->> 'valid_from')::timestamptz, (doc ->> 'valid_until')::timestamptz,
            (doc ->> 'max_uses')::integer, (doc ->> 'uses')::integer, doc ->> 'status')
        ON CONFLICT ON CONSTRAINT coupon_pkey DO UPDATE
        SET promotion = EXCLUDED.promotion, value = EXCLUDED.value, balance = EXCLUDED.balance,
            percent = EXCLUDED.percent, min_total = EXCLUDED.min_total,
            valid_from = EXCLUDED.valid_from, valid_until = EXCLUDED.valid_until,
            max_uses = EXCLUDED.max_uses, uses = EXCLUDED.uses, status = EXCLUDED.status;
    INSERT INTO loyalty.code_guest AS g (code, hold_id, doc) VALUES (k, doc ->> 'hold_id', doc)
        ON CONFLICT ON CONSTRAINT code_guest_pkey DO UPDATE SET hold_id = EXCLUDED.hold_id, doc = EXCLUDED.doc;
    RETURN 'guest';
END
$$;
COMMENT ON FUNCTION loyalty.code_guest(jsonb) IS
    'On a customer''s node, before the check: the held code''s document as a guest coupon row the check uses like a local code; ''home'' (nothing done) when the code lives here';

-- code_guest_settle: only a certificate's use is an amount taken from the
-- code.  A coupon's (or mass code's) use records its discount in
-- coupon_use.amount and code_confirm takes an amount only for a
-- certificate: summing every kind, such a use by a customer of another node
-- failed to confirm, left its hold open and the code unused at home.
CREATE FUNCTION loyalty.code_guest_settle(code text, hold_id text) RETURNS jsonb
    LANGUAGE sql STABLE STRICT SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
    -- a coupon's use records its discount: only a certificate's is an
    -- amount taken from the code (code_confirm refuses any other)
    SELECT jsonb_build_object(
               'uses', count(u.operation_id),
               'amount', coalesce(sum(u.amount) FILTER (WHERE c.kind = 'certificate'), 0))
      FROM loyalty.code_guest g
      JOIN loyalty.coupon c ON c.code = g.code
      JOIN loyalty.coupon_use u ON u.code = g.code AND u.operation_id = code_guest_settle.hold_id
     WHERE g.code = loyalty.code_key(code_guest_settle.code)
$$;
COMMENT ON FUNCTION loyalty.code_guest_settle(text, text) IS
    'On a customer''s node, after the check hold_id: what it took of a guest code (uses 0 or 1, a certificate''s amount), for loyalty.code_confirm at home';

SELECT pg_catalog.pg_extension_config_dump('loyalty.code_hold', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.code_guest', '');

REVOKE ALL ON loyalty.code_hold, loyalty.code_guest FROM PUBLIC;
GRANT ALL ON loyalty.code_hold, loyalty.code_guest TO loyalty_admin;
REVOKE ALL ON FUNCTION
    loyalty.code_key(text), loyalty.code_home(text), loyalty.code_hold(text, text, integer),
    loyalty.code_confirm(text, text, integer, numeric), loyalty.code_release(text, text),
    loyalty.code_guest(jsonb), loyalty.code_guest_settle(text, text)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION loyalty.code_key(text), loyalty.code_home(text)
    TO loyalty_cashier, loyalty_marketer, loyalty_admin;
GRANT EXECUTE ON FUNCTION
    loyalty.code_hold(text, text, integer), loyalty.code_confirm(text, text, integer, numeric),
    loyalty.code_release(text, text), loyalty.code_guest(jsonb), loyalty.code_guest_settle(text, text)
    TO loyalty_cashier, loyalty_admin;

-- Issue 20 item 4 (router side): the router orchestrates the code hold.
-- loyalty.api sends a check whose codes live on other nodes back unrun
-- ("foreign": their home partitions), takes "guests" (held codes'
-- documents, copied in the call's own subtransaction: a failed call leaves
-- no copy; a calculate's are rolled back), returns a purchase's "settle"
-- (what it took of each guest code), a refund's "returns" (what it gave
-- back to guest codes, for their home) and an anonymous purchase's
-- "issued_codes" (new codes of nobody, for their home), and runs the home
-- side: code_hold (or a peek), code_confirm, code_release, code_return,
-- code_export and code_adopt.
-- (loyalty.api's definition is in the "Issue 20 item 8" section above: the
-- three versions of this unreleased script are folded into one there)

-- ---------------------------------------------------------------------------
-- Issue 16: the first full segment refresh at chain scale (2.2M members)
-- spent most of its time writing members: two foreign-key checks per row
-- (each a query of its own and a lock on the customer row), ON CONFLICT's
-- speculative insertion, and the purchases/spend rules counting for every
-- customer (twice for those within the minimum: a BETWEEN of a subquery).
-- segment_member is derived data: its references are now kept by
-- statement-level triggers that check a statement's rows at once, with the
-- foreign keys' errors and cascades; refresh_segments holds the table
-- against other writers and inserts the members not there, and the rules
-- with a minimum above 0 look only at customers with a purchase in the
-- window (both in the definitions of refresh_segments and segment_condition
-- in part 2).
-- ---------------------------------------------------------------------------
ALTER TABLE loyalty.segment_member DROP CONSTRAINT segment_member_customer_id_fkey,
    DROP CONSTRAINT segment_member_segment_fkey;

-- segment_member is derived data that refresh_segments rewrites by the
-- million (a first full refresh at chain scale writes 2.2M members).  Its
-- references to customer and segment are kept by triggers, not foreign
-- keys: a foreign key checks each new row with a query of its own and
-- locks the customer row (9.4 µs a row, 40 % of writing a member), where
-- segment_member_check checks a statement's rows at once.  What a user sees
-- is what the foreign keys did: a member of an unknown customer or segment
-- is refused with the same error (23503, the same constraint names); a
-- segment renamed or deleted takes its members along (segment_member_
-- follow, which also fires on a configuration subscriber, where the
-- foreign key's cascade did not); and a customer deleted takes its
-- memberships along (the foreign key refused the delete instead;
-- remove_customer deletes them first anyway).  A writer that holds the
-- table in SHARE ROW EXCLUSIVE mode (refresh_segments) needs no lock on the
-- customers it names: a customer's delete must delete its memberships, and
-- waits for that writer's commit.
CREATE FUNCTION loyalty.segment_member_check() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    bad_segment text;
    bad_customer bigint;
BEGIN
    SELECT n.segment INTO bad_segment FROM new_members n
     WHERE NOT EXISTS (SELECT 1 FROM loyalty.segment g WHERE g.code = n.segment) LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'insert or update on table "segment_member" violates foreign key constraint "segment_member_segment_fkey"'
            USING ERRCODE = 'foreign_key_violation', SCHEMA = 'loyalty', TABLE = 'segment_member',
                  CONSTRAINT = 'segment_member_segment_fkey',
                  DETAIL = format('Key (segment)=(%s) is not present in table "segment".', bad_segment);
    END IF;
    -- as a foreign key does, the customers named may not be deleted until
    -- this transaction ends: locked, unless this transaction holds the
    -- table against every other writer (a delete waits for it)
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_locks l
                    WHERE l.locktype = 'relation' AND l.pid = pg_catalog.pg_backend_pid()
                      AND l.relation = 'loyalty.segment_member'::regclass AND l.granted
                      AND l.mode IN ('ShareRowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock')) THEN
        PERFORM 1 FROM loyalty.customer c WHERE c.id IN (SELECT n.customer_id FROM new_members n)
            FOR KEY SHARE OF c;
    END IF;
    SELECT n.customer_id INTO bad_customer FROM new_members n
     WHERE NOT EXISTS (SELECT 1 FROM loyalty.customer c WHERE c.id = n.customer_id) LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'insert or update on table "segment_member" violates foreign key constraint "segment_member_customer_id_fkey"'
            USING ERRCODE = 'foreign_key_violation', SCHEMA = 'loyalty', TABLE = 'segment_member',
                  CONSTRAINT = 'segment_member_customer_id_fkey',
                  DETAIL = format('Key (customer_id)=(%s) is not present in table "customer".', bad_customer);
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION loyalty.segment_member_check() IS
    'Refuses segment members of an unknown segment or customer (23503, as the foreign keys it replaces), checking a statement''s rows at once';
CREATE TRIGGER segment_member_check_insert AFTER INSERT ON loyalty.segment_member
    REFERENCING NEW TABLE AS new_members
    FOR EACH STATEMENT EXECUTE FUNCTION loyalty.segment_member_check();
CREATE TRIGGER segment_member_check_update AFTER UPDATE ON loyalty.segment_member
    REFERENCING NEW TABLE AS new_members
    FOR EACH STATEMENT EXECUTE FUNCTION loyalty.segment_member_check();

CREATE FUNCTION loyalty.segment_member_follow() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF TG_TABLE_NAME = 'segment' THEN
        IF TG_OP = 'DELETE' THEN
            DELETE FROM loyalty.segment_member m WHERE m.segment = OLD.code;
        ELSIF NEW.code IS DISTINCT FROM OLD.code THEN
            UPDATE loyalty.segment_member m SET segment = NEW.code WHERE m.segment = OLD.code;
        END IF;
    ELSIF TG_OP = 'DELETE' THEN
        DELETE FROM loyalty.segment_member m WHERE m.customer_id = OLD.id;
    ELSIF NEW.id IS DISTINCT FROM OLD.id THEN
        UPDATE loyalty.segment_member m SET customer_id = NEW.id WHERE m.customer_id = OLD.id;
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION loyalty.segment_member_follow() IS
    'Carries a segment''s or a customer''s rename or deletion over to segment_member (the cascade of the foreign keys it replaces)';
CREATE TRIGGER segment_member_follow AFTER DELETE OR UPDATE OF code ON loyalty.segment
    FOR EACH ROW EXECUTE FUNCTION loyalty.segment_member_follow();
-- also on a configuration subscriber (config_replica_follow cascades only
-- along foreign keys)
ALTER TABLE loyalty.segment ENABLE ALWAYS TRIGGER segment_member_follow;
CREATE TRIGGER segment_member_follow AFTER DELETE OR UPDATE OF id ON loyalty.customer
    FOR EACH ROW EXECUTE FUNCTION loyalty.segment_member_follow();

REVOKE ALL ON FUNCTION loyalty.segment_member_check(), loyalty.segment_member_follow() FROM PUBLIC;

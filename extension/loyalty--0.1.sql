/*
 * loyalty--0.1.sql: the foundation of the loyalty extension.
 *
 * Roles, the phone type, program configuration (settings, stores, the
 * category tree, products, account types, tiers, promotions), customers and
 * their cards, identity functions, privileges.  Released scripts are frozen:
 * every later change goes into loyalty--0.1--X.sql.
 */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION loyalty" to load this file. \quit

-- ---------------------------------------------------------------------------
-- Roles (SPEC §13).  Roles are cluster-wide: created when missing, never
-- dropped with the extension.
-- ---------------------------------------------------------------------------
DO $roles$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['loyalty_cashier', 'loyalty_marketer',
                             'loyalty_analyst', 'loyalty_admin']
    LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', r);
        END IF;
    END LOOP;
END
$roles$;

-- ---------------------------------------------------------------------------
-- loyalty.phone: a normalized E.164 phone number (src/phone.c)
-- ---------------------------------------------------------------------------
CREATE TYPE loyalty.phone;

CREATE FUNCTION loyalty.phone_in(cstring) RETURNS loyalty.phone
    AS 'MODULE_PATHNAME', 'phone_in' LANGUAGE C STABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.phone_out(loyalty.phone) RETURNS cstring
    AS 'MODULE_PATHNAME', 'phone_out' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.phone_recv(internal) RETURNS loyalty.phone
    AS 'MODULE_PATHNAME', 'phone_recv' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION loyalty.phone_send(loyalty.phone) RETURNS bytea
    AS 'MODULE_PATHNAME', 'phone_send' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE TYPE loyalty.phone (
    INPUT = loyalty.phone_in,
    OUTPUT = loyalty.phone_out,
    RECEIVE = loyalty.phone_recv,
    SEND = loyalty.phone_send,
    INTERNALLENGTH = 8,
    PASSEDBYVALUE,
    ALIGNMENT = double,
    STORAGE = plain
);
COMMENT ON TYPE loyalty.phone IS
    'Phone number normalized to E.164 (+79123456789); accepts the usual spellings';

CREATE FUNCTION loyalty.phone_eq(loyalty.phone, loyalty.phone) RETURNS bool
    AS 'MODULE_PATHNAME', 'phone_eq' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION loyalty.phone_ne(loyalty.phone, loyalty.phone) RETURNS bool
    AS 'MODULE_PATHNAME', 'phone_ne' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION loyalty.phone_lt(loyalty.phone, loyalty.phone) RETURNS bool
    AS 'MODULE_PATHNAME', 'phone_lt' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION loyalty.phone_le(loyalty.phone, loyalty.phone) RETURNS bool
    AS 'MODULE_PATHNAME', 'phone_le' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION loyalty.phone_gt(loyalty.phone, loyalty.phone) RETURNS bool
    AS 'MODULE_PATHNAME', 'phone_gt' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION loyalty.phone_ge(loyalty.phone, loyalty.phone) RETURNS bool
    AS 'MODULE_PATHNAME', 'phone_ge' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION loyalty.phone_cmp(loyalty.phone, loyalty.phone) RETURNS int4
    AS 'MODULE_PATHNAME', 'phone_cmp' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION loyalty.phone_hash(loyalty.phone) RETURNS int4
    AS 'MODULE_PATHNAME', 'phone_hash' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;
CREATE FUNCTION loyalty.phone_hash_extended(loyalty.phone, int8) RETURNS int8
    AS 'MODULE_PATHNAME', 'phone_hash_extended' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE LEAKPROOF;

COMMENT ON FUNCTION loyalty.phone_in(cstring) IS 'Parses a phone number in any usual spelling (22P02 when malformed)';
COMMENT ON FUNCTION loyalty.phone_out(loyalty.phone) IS 'Prints a phone number as +<digits>';
COMMENT ON FUNCTION loyalty.phone_recv(internal) IS 'Binary input: a version byte, then the number as int8';
COMMENT ON FUNCTION loyalty.phone_send(loyalty.phone) IS 'Binary output: a version byte, then the number as int8';
COMMENT ON FUNCTION loyalty.phone_eq(loyalty.phone, loyalty.phone) IS 'Implements = for phone numbers';
COMMENT ON FUNCTION loyalty.phone_ne(loyalty.phone, loyalty.phone) IS 'Implements <> for phone numbers';
COMMENT ON FUNCTION loyalty.phone_lt(loyalty.phone, loyalty.phone) IS 'Implements < for phone numbers';
COMMENT ON FUNCTION loyalty.phone_le(loyalty.phone, loyalty.phone) IS 'Implements <= for phone numbers';
COMMENT ON FUNCTION loyalty.phone_gt(loyalty.phone, loyalty.phone) IS 'Implements > for phone numbers';
COMMENT ON FUNCTION loyalty.phone_ge(loyalty.phone, loyalty.phone) IS 'Implements >= for phone numbers';
COMMENT ON FUNCTION loyalty.phone_cmp(loyalty.phone, loyalty.phone) IS 'Btree support: -1, 0 or 1';
COMMENT ON FUNCTION loyalty.phone_hash(loyalty.phone) IS 'Hash support: 32-bit hash';
COMMENT ON FUNCTION loyalty.phone_hash_extended(loyalty.phone, int8) IS 'Hash support: 64-bit seeded hash';

CREATE OPERATOR loyalty.= (
    LEFTARG = loyalty.phone, RIGHTARG = loyalty.phone, PROCEDURE = loyalty.phone_eq,
    COMMUTATOR = OPERATOR(loyalty.=), NEGATOR = OPERATOR(loyalty.<>),
    RESTRICT = eqsel, JOIN = eqjoinsel, HASHES, MERGES);
CREATE OPERATOR loyalty.<> (
    LEFTARG = loyalty.phone, RIGHTARG = loyalty.phone, PROCEDURE = loyalty.phone_ne,
    COMMUTATOR = OPERATOR(loyalty.<>), NEGATOR = OPERATOR(loyalty.=),
    RESTRICT = neqsel, JOIN = neqjoinsel);
CREATE OPERATOR loyalty.< (
    LEFTARG = loyalty.phone, RIGHTARG = loyalty.phone, PROCEDURE = loyalty.phone_lt,
    COMMUTATOR = OPERATOR(loyalty.>), NEGATOR = OPERATOR(loyalty.>=),
    RESTRICT = scalarltsel, JOIN = scalarltjoinsel);
CREATE OPERATOR loyalty.<= (
    LEFTARG = loyalty.phone, RIGHTARG = loyalty.phone, PROCEDURE = loyalty.phone_le,
    COMMUTATOR = OPERATOR(loyalty.>=), NEGATOR = OPERATOR(loyalty.>),
    RESTRICT = scalarlesel, JOIN = scalarlejoinsel);
CREATE OPERATOR loyalty.> (
    LEFTARG = loyalty.phone, RIGHTARG = loyalty.phone, PROCEDURE = loyalty.phone_gt,
    COMMUTATOR = OPERATOR(loyalty.<), NEGATOR = OPERATOR(loyalty.<=),
    RESTRICT = scalargtsel, JOIN = scalargtjoinsel);
CREATE OPERATOR loyalty.>= (
    LEFTARG = loyalty.phone, RIGHTARG = loyalty.phone, PROCEDURE = loyalty.phone_ge,
    COMMUTATOR = OPERATOR(loyalty.<=), NEGATOR = OPERATOR(loyalty.<),
    RESTRICT = scalargesel, JOIN = scalargejoinsel);

CREATE OPERATOR CLASS loyalty.phone_ops DEFAULT FOR TYPE loyalty.phone USING btree AS
    OPERATOR 1 loyalty.<,
    OPERATOR 2 loyalty.<=,
    OPERATOR 3 loyalty.=,
    OPERATOR 4 loyalty.>=,
    OPERATOR 5 loyalty.>,
    FUNCTION 1 loyalty.phone_cmp(loyalty.phone, loyalty.phone);
CREATE OPERATOR CLASS loyalty.phone_hash_ops DEFAULT FOR TYPE loyalty.phone USING hash AS
    OPERATOR 1 loyalty.=,
    FUNCTION 1 loyalty.phone_hash(loyalty.phone),
    FUNCTION 2 loyalty.phone_hash_extended(loyalty.phone, int8);

-- text -> phone in assignments (INSERT ... SELECT text_column) and casts
CREATE CAST (text AS loyalty.phone) WITH INOUT AS ASSIGNMENT;

CREATE FUNCTION loyalty.phone_masked(loyalty.phone) RETURNS text
    AS 'MODULE_PATHNAME', 'phone_masked' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION loyalty.phone_masked(loyalty.phone) IS
    'The number with its middle digits hidden (+7912***6789), for analysts';

-- ---------------------------------------------------------------------------
-- Domains for money, quantities and percents at the SQL surface (SPEC §2).
-- An input with more decimals than allowed is an error, never rounded.
-- ---------------------------------------------------------------------------
CREATE DOMAIN loyalty.amount AS numeric
    CONSTRAINT amount_at_most_2_decimals CHECK (VALUE = pg_catalog.round(VALUE, 2))
    CONSTRAINT amount_not_negative CHECK (VALUE >= 0)
    CONSTRAINT amount_below_10e12 CHECK (VALUE < 1000000000000);
COMMENT ON DOMAIN loyalty.amount IS
    'Money: non-negative, at most 2 decimals (kopecks), below 10^12';

CREATE DOMAIN loyalty.percent AS numeric
    CONSTRAINT percent_at_most_2_decimals CHECK (VALUE = pg_catalog.round(VALUE, 2))
    CONSTRAINT percent_0_to_100 CHECK (VALUE >= 0 AND VALUE <= 100);
COMMENT ON DOMAIN loyalty.percent IS 'A percentage from 0 to 100 with at most 2 decimals';

-- ---------------------------------------------------------------------------
-- Small validators used by constraints and triggers
-- ---------------------------------------------------------------------------
CREATE FUNCTION loyalty.is_valid_timezone(tz text) RETURNS boolean
    LANGUAGE sql STABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$ SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_timezone_names WHERE name = tz) $$;
COMMENT ON FUNCTION loyalty.is_valid_timezone(text) IS
    'True when the text names a time zone of the server''s tz database (Europe/Moscow)';

-- ---------------------------------------------------------------------------
-- Program settings (SPEC §3).  loyalty.setting holds what the operator set;
-- loyalty.setting_definition (owned by the extension, not dumped) holds the
-- known keys with their defaults, so that a restored dump never collides with
-- rows the install script created.  loyalty.settings shows effective values.
-- ---------------------------------------------------------------------------
CREATE TABLE loyalty.setting_definition (
    key           text PRIMARY KEY,
    default_value text NOT NULL,
    description   text NOT NULL
);
COMMENT ON TABLE loyalty.setting_definition IS
    'Known program settings with their defaults (part of the extension, read-only)';

INSERT INTO loyalty.setting_definition VALUES
    ('currency',         'RUB',           'ISO 4217 code of the program''s money'),
    ('timezone',         'Europe/Moscow', 'Program time zone, used for stores without their own'),
    ('points_precision', '0',             'Decimals of points: 0 (whole points) or 2 (hundredths)'),
    ('point_value',      '1.00',          'Money one point pays'),
    ('accrual_percent',  '0',             'Base accrual percent when the program has no tiers'),
    ('tier_window',      '365 days',      'Spend window for tiers: an interval or previous_month'),
    ('locale',           'ru',            'Default locale of customer messages');

CREATE TABLE loyalty.setting (
    key   text PRIMARY KEY REFERENCES loyalty.setting_definition (key),
    value text NOT NULL
);
COMMENT ON TABLE loyalty.setting IS
    'Program settings set by the operator; see loyalty.settings for effective values';

CREATE FUNCTION loyalty.setting_validate() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    ok boolean;
    why text;
BEGIN
    CASE NEW.key
    WHEN 'currency' THEN
        ok := NEW.value ~ '^[A-Z]{3}$';
        why := 'an ISO 4217 code of three capital letters';
    WHEN 'timezone' THEN
        ok := loyalty.is_valid_timezone(NEW.value);
        why := 'a time zone name such as Europe/Moscow';
    WHEN 'points_precision' THEN
        ok := NEW.value IN ('0', '2');
        why := '0 or 2';
    WHEN 'point_value' THEN
        ok := NEW.value ~ '^[0-9]{1,9}(\.[0-9]{1,2})?$' AND NEW.value::numeric > 0;
        why := 'a positive amount with at most 2 decimals';
    WHEN 'accrual_percent' THEN
        ok := NEW.value ~ '^[0-9]{1,3}(\.[0-9]{1,2})?$' AND NEW.value::numeric <= 100;
        why := 'a percent from 0 to 100 with at most 2 decimals';
    WHEN 'tier_window' THEN
        ok := NEW.value = 'previous_month'
              OR (NEW.value ~ '^[0-9]+ (day|days|month|months|year|years)$'
                  AND NEW.value::interval > interval '0');
        why := 'previous_month or a positive interval such as 365 days';
    WHEN 'locale' THEN
        ok := NEW.value ~ '^[a-z]{2,3}(_[A-Z]{2})?$';
        why := 'a locale such as ru or en_US';
    ELSE
        ok := true;             -- the foreign key refuses unknown keys
    END CASE;
    IF NOT ok THEN
        RAISE EXCEPTION 'invalid value for setting "%": "%"', NEW.key, NEW.value
            USING ERRCODE = 'LY006',
                  DETAIL = format('Field "value" of setting "%s" must be %s.', NEW.key, why);
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION loyalty.setting_validate() IS 'Refuses a malformed program setting (LY006)';

CREATE TRIGGER setting_validate BEFORE INSERT OR UPDATE ON loyalty.setting
    FOR EACH ROW EXECUTE FUNCTION loyalty.setting_validate();

CREATE VIEW loyalty.settings AS
    SELECT d.key, coalesce(s.value, d.default_value) AS value,
           d.default_value, s.value IS NOT NULL AS is_set, d.description
      FROM loyalty.setting_definition d
      LEFT JOIN loyalty.setting s USING (key);
COMMENT ON VIEW loyalty.settings IS 'Effective program settings: set values, else defaults';

CREATE FUNCTION loyalty.setting_value(setting_key text) RETURNS text
    LANGUAGE sql STABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT coalesce(s.value, d.default_value)
      FROM loyalty.setting_definition d
      LEFT JOIN loyalty.setting s USING (key)
     WHERE d.key = setting_key
$$;
COMMENT ON FUNCTION loyalty.setting_value(text) IS
    'Effective value of a program setting (NULL for an unknown key)';

-- ---------------------------------------------------------------------------
-- Stores, categories, products (SPEC §3)
-- ---------------------------------------------------------------------------
CREATE TABLE loyalty.store (
    code     text PRIMARY KEY CHECK (code <> ''),
    name     text NOT NULL,
    region   text,
    timezone text CONSTRAINT store_timezone_known CHECK (loyalty.is_valid_timezone(timezone)),
    channel  text NOT NULL DEFAULT 'pos' CHECK (channel IN ('pos', 'web', 'app'))
);
COMMENT ON TABLE loyalty.store IS
    'Stores and online storefronts; schedules run in the store''s time zone (program zone when null)';

CREATE TABLE loyalty.category (
    code   text PRIMARY KEY CHECK (code <> ''),
    parent text REFERENCES loyalty.category (code) ON UPDATE CASCADE,
    name   text NOT NULL,
    CHECK (parent <> code)
);
COMMENT ON TABLE loyalty.category IS
    'Category tree; a product in a category is also in every ancestor';

CREATE FUNCTION loyalty.category_no_cycle() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF NEW.parent IS NOT NULL AND EXISTS (
        WITH RECURSIVE up(code, parent) AS (
            SELECT c.code, c.parent FROM loyalty.category c WHERE c.code = NEW.parent
            UNION
            SELECT c.code, c.parent FROM loyalty.category c JOIN up ON c.code = up.parent
        )
        SELECT 1 FROM up WHERE up.code = NEW.code)
    THEN
        RAISE EXCEPTION 'category "%" cannot be placed under "%"', NEW.code, NEW.parent
            USING ERRCODE = 'LY006',
                  DETAIL = 'Field "parent" would make the category its own ancestor.';
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION loyalty.category_no_cycle() IS 'Refuses a parent that would close a cycle (LY006)';

CREATE TRIGGER category_no_cycle BEFORE INSERT OR UPDATE OF parent, code ON loyalty.category
    FOR EACH ROW EXECUTE FUNCTION loyalty.category_no_cycle();

CREATE TABLE loyalty.product (
    sku         text PRIMARY KEY CHECK (sku <> ''),
    name        text NOT NULL,
    category    text REFERENCES loyalty.category (code) ON UPDATE CASCADE,
    brand       text,
    tags        text[] NOT NULL DEFAULT '{}',
    price       loyalty.amount,
    min_price   loyalty.amount,
    no_discount boolean NOT NULL DEFAULT false,
    no_points   boolean NOT NULL DEFAULT false,
    no_redeem   boolean NOT NULL DEFAULT false,
    CONSTRAINT product_min_price_le_price CHECK (min_price <= price)
);
COMMENT ON TABLE loyalty.product IS
    'Catalog: category, brand and tags for selectors; floors and flags for the engine';
CREATE INDEX product_category_idx ON loyalty.product (category);

-- ---------------------------------------------------------------------------
-- Point accounts and tiers (SPEC §3)
-- ---------------------------------------------------------------------------
CREATE TABLE loyalty.account_type (
    code             text PRIMARY KEY CHECK (code <> ''),
    name             text NOT NULL,
    redeem_share     numeric NOT NULL DEFAULT 1
                     CONSTRAINT account_type_redeem_share_0_to_1
                     CHECK (redeem_share >= 0 AND redeem_share <= 1),
    min_check        loyalty.amount NOT NULL DEFAULT 0,
    lifetime         interval CONSTRAINT account_type_lifetime_positive
                     CHECK (lifetime > interval '0'),
    activation_delay interval NOT NULL DEFAULT interval '0'
                     CONSTRAINT account_type_activation_delay_not_negative
                     CHECK (activation_delay >= interval '0'),
    redeem_order     int NOT NULL DEFAULT 100
);
COMMENT ON TABLE loyalty.account_type IS
    'Point accounts every customer has (main, promo): share of a line points may pay, lifetime, delay';

CREATE TABLE loyalty.tier (
    code             text PRIMARY KEY CHECK (code <> ''),
    name             text NOT NULL,
    rank             int NOT NULL UNIQUE,
    threshold        loyalty.amount NOT NULL DEFAULT 0,
    accrual_percent  loyalty.percent NOT NULL DEFAULT 0,
    discount_percent loyalty.percent NOT NULL DEFAULT 0
);
COMMENT ON TABLE loyalty.tier IS
    'Tiers: the highest whose threshold the spend in tier_window reaches; lowest rank with no purchases';

-- ---------------------------------------------------------------------------
-- Promotions (SPEC §5).  Column checks are constraints (23514); the mechanic,
-- rule and schedule are parsed by the same C code the engine uses (LY006).
-- ---------------------------------------------------------------------------
CREATE TABLE loyalty.promotion (
    code               text PRIMARY KEY CHECK (code <> ''),
    name               text NOT NULL,
    mechanic           text NOT NULL,
    rule               jsonb NOT NULL DEFAULT '{}',
    priority           int NOT NULL DEFAULT 100,
    grp                text,
    exclusive          boolean NOT NULL DEFAULT false,
    starts_at          timestamptz,
    ends_at            timestamptz,
    schedule           jsonb,
    channels           text[],
    stores             text[],
    regions            text[],
    tiers              text[],
    segments           text[],
    identified_only    boolean NOT NULL DEFAULT false,
    requires_coupon    boolean NOT NULL DEFAULT false,
    usage_limit        int,
    per_customer_limit int,
    enabled            boolean NOT NULL DEFAULT true,
    CONSTRAINT promotion_period_not_empty CHECK (starts_at < ends_at),
    CONSTRAINT promotion_usage_limit_positive CHECK (usage_limit > 0),
    CONSTRAINT promotion_per_customer_limit_positive CHECK (per_customer_limit > 0),
    CONSTRAINT promotion_channels_known CHECK (channels <@ ARRAY['pos', 'web', 'app'])
);
COMMENT ON TABLE loyalty.promotion IS
    'Promotions: a mechanic with its rule, order (priority, code), scope and limits';

CREATE FUNCTION loyalty.promotion_validate() RETURNS trigger
    AS 'MODULE_PATHNAME', 'promotion_validate' LANGUAGE C;
COMMENT ON FUNCTION loyalty.promotion_validate() IS
    'Parses a promotion''s mechanic, rule and schedule; refuses a malformed one (LY006)';

CREATE TRIGGER promotion_validate BEFORE INSERT OR UPDATE ON loyalty.promotion
    FOR EACH ROW EXECUTE FUNCTION loyalty.promotion_validate();

-- ---------------------------------------------------------------------------
-- Customers and cards (SPEC §4)
-- ---------------------------------------------------------------------------
CREATE SEQUENCE loyalty.customer_id_seq;
COMMENT ON SEQUENCE loyalty.customer_id_seq IS 'Customer ids';

CREATE TABLE loyalty.customer (
    id          bigint PRIMARY KEY DEFAULT pg_catalog.nextval('loyalty.customer_id_seq'),
    phone       loyalty.phone UNIQUE,
    email       text CONSTRAINT customer_email_format CHECK (email ~ '^[^@\s]+@[^@\s]+$'),
    name        text,
    birth_date  date CONSTRAINT customer_birth_date_plausible CHECK (birth_date > date '1900-01-01'),
    tier        text REFERENCES loyalty.tier (code) ON UPDATE CASCADE ON DELETE SET NULL,
    status      text NOT NULL DEFAULT 'active'
                CONSTRAINT customer_status_known CHECK (status IN ('active', 'blocked', 'merged')),
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    attrs       jsonb NOT NULL DEFAULT '{}'
                CONSTRAINT customer_attrs_object CHECK (pg_catalog.jsonb_typeof(attrs) = 'object'),
    merged_into bigint REFERENCES loyalty.customer (id),
    CONSTRAINT customer_merged_has_survivor CHECK ((status = 'merged') = (merged_into IS NOT NULL)),
    CONSTRAINT customer_not_merged_into_self CHECK (merged_into <> id)
);
ALTER SEQUENCE loyalty.customer_id_seq OWNED BY loyalty.customer.id;
CREATE INDEX customer_merged_into_idx ON loyalty.customer (merged_into) WHERE merged_into IS NOT NULL;
COMMENT ON TABLE loyalty.customer IS
    'Program members; a merged customer keeps its row and points to the survivor (merged_into)';

CREATE SEQUENCE loyalty.card_number_seq;
COMMENT ON SEQUENCE loyalty.card_number_seq IS 'Serial part of virtual card numbers';

CREATE FUNCTION loyalty.card_check_digit(digits text) RETURNS int
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT (10 - sum(substr(digits, i, 1)::int
                     * CASE WHEN (length(digits) - i) % 2 = 0 THEN 3 ELSE 1 END)::int % 10) % 10
      FROM generate_series(1, length(digits)) AS i
     WHERE digits ~ '^[0-9]+$'
    HAVING count(*) > 0
$$;
COMMENT ON FUNCTION loyalty.card_check_digit(text) IS
    'EAN-13 style check digit of a digit string (NULL when it is not all digits)';

CREATE FUNCTION loyalty.next_card_number() RETURNS text
    LANGUAGE sql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT s || loyalty.card_check_digit(s)
      FROM (SELECT '27' || lpad(nextval('loyalty.card_number_seq')::text, 10, '0') AS s) AS n
$$;
COMMENT ON FUNCTION loyalty.next_card_number() IS
    'A new virtual card number: 13 digits, in-store EAN-13 range 27, last digit a check digit';

CREATE TABLE loyalty.card (
    number      text PRIMARY KEY
                CONSTRAINT card_number_format CHECK (number ~ '^[0-9A-Za-z-]{4,32}$'),
    customer_id bigint NOT NULL REFERENCES loyalty.customer (id),
    kind        text NOT NULL DEFAULT 'virtual'
                CONSTRAINT card_kind_known CHECK (kind IN ('virtual', 'plastic')),
    issued_at   timestamptz NOT NULL DEFAULT pg_catalog.now(),
    status      text NOT NULL DEFAULT 'active'
                CONSTRAINT card_status_known CHECK (status IN ('active', 'blocked')),
    CONSTRAINT card_virtual_check_digit CHECK (kind <> 'virtual' OR (
        number ~ '^[0-9]{13}$'
        AND right(number, 1)::int = loyalty.card_check_digit(left(number, 12))))
);
CREATE INDEX card_customer_idx ON loyalty.card (customer_id);
COMMENT ON TABLE loyalty.card IS
    'Cards identifying customers; every customer gets a virtual card when entering the base';

CREATE FUNCTION loyalty.customer_issue_virtual_card() RETURNS trigger
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    INSERT INTO loyalty.card (number, customer_id, kind, issued_at)
    VALUES (loyalty.next_card_number(), NEW.id, 'virtual', NEW.created_at);
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION loyalty.customer_issue_virtual_card() IS
    'Issues the virtual card of a customer who enters the base';

CREATE TRIGGER customer_issue_virtual_card AFTER INSERT ON loyalty.customer
    FOR EACH ROW WHEN (NEW.status <> 'merged')
    EXECUTE FUNCTION loyalty.customer_issue_virtual_card();

-- ---------------------------------------------------------------------------
-- Identity (SPEC §4)
-- ---------------------------------------------------------------------------
CREATE FUNCTION loyalty.find_customer(identifier text) RETURNS bigint
    LANGUAGE plpgsql STABLE STRICT PARALLEL UNSAFE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    s     text := btrim(identifier);
    cid   bigint;
    p     loyalty.phone;
BEGIN
    IF s ~* '^id:\s*[0-9]{1,18}$' THEN
        cid := substring(s FROM '[0-9]+')::bigint;
    ELSE
        SELECT c.customer_id INTO cid FROM loyalty.card c WHERE c.number = s;
        IF cid IS NULL AND s ~ '^(\+|00)?[0-9 ()\-.]{5,30}$' THEN
            BEGIN
                p := s::loyalty.phone;
            EXCEPTION WHEN invalid_text_representation THEN
                RETURN NULL;
            END;
            SELECT c.id INTO cid FROM loyalty.customer c WHERE c.phone OPERATOR(loyalty.=) p;
        END IF;
    END IF;
    -- a merged customer points to the survivor (merges keep this one hop)
    SELECT coalesce(c.merged_into, c.id) INTO cid FROM loyalty.customer c WHERE c.id = cid;
    RETURN cid;
END
$$;
COMMENT ON FUNCTION loyalty.find_customer(text) IS
    'Customer id by phone (any spelling), card number or id:N; the survivor for a merged one; NULL when nobody matches';

CREATE FUNCTION loyalty.register(phone text, profile jsonb DEFAULT '{}') RETURNS bigint
    LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
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
$$;
COMMENT ON FUNCTION loyalty.register(text, jsonb) IS
    'Registers a customer by phone (idempotent: the existing id, with missing profile fields filled in)';

CREATE FUNCTION loyalty.merge_customers(keep bigint, absorb bigint) RETURNS jsonb
    LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    k      loyalty.customer;
    a      loyalty.customer;
    moved  int;
BEGIN
    IF keep = absorb THEN
        RAISE EXCEPTION 'cannot merge customer % into itself', keep
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- lock both in id order so that concurrent merges cannot deadlock
    PERFORM 1 FROM loyalty.customer c WHERE c.id IN (keep, absorb) ORDER BY c.id FOR UPDATE;
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
            RETURN jsonb_build_object('keep', keep, 'absorb', absorb, 'cards', 0,
                                      'already_merged', true);
        END IF;
        RAISE EXCEPTION 'customer % was merged into customer %', absorb, a.merged_into
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    UPDATE loyalty.card c SET customer_id = keep WHERE c.customer_id = absorb;
    GET DIAGNOSTICS moved = ROW_COUNT;

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

    RETURN jsonb_build_object('keep', keep, 'absorb', absorb, 'cards', moved,
                              'already_merged', false);
END
$$;
COMMENT ON FUNCTION loyalty.merge_customers(bigint, bigint) IS
    'Merges customer absorb into keep: cards, profile gaps and (later) balances move; absorb still resolves to keep';

CREATE VIEW loyalty.customer_masked AS
    SELECT c.id, loyalty.phone_masked(c.phone) AS phone,
           regexp_replace(c.email, '^(.).*(@.*)$', '\1***\2') AS email,
           date_part('year', c.birth_date)::int AS birth_year,
           c.tier, c.status, c.created_at, c.merged_into
      FROM loyalty.customer c;
COMMENT ON VIEW loyalty.customer_masked IS
    'Customers for analysts: phone and e-mail masked, birth year only, no name';

-- ---------------------------------------------------------------------------
-- pg_dump keeps configuration and data (SPEC §3)
-- ---------------------------------------------------------------------------
SELECT pg_catalog.pg_extension_config_dump('loyalty.setting', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.store', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.category', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.product', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.account_type', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.tier', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.promotion', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.customer', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.customer_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.card', '');
SELECT pg_catalog.pg_extension_config_dump('loyalty.card_number_seq', '');

-- ---------------------------------------------------------------------------
-- Privileges (SPEC §13).  Nothing for PUBLIC but the type machinery.
-- ---------------------------------------------------------------------------
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA loyalty FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA loyalty FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA loyalty FROM PUBLIC;

-- the phone type's support functions and pure helpers work for everybody,
-- as operators and constraints call them as the current user
GRANT EXECUTE ON FUNCTION
    loyalty.phone_in(cstring), loyalty.phone_out(loyalty.phone),
    loyalty.phone_recv(internal), loyalty.phone_send(loyalty.phone),
    loyalty.phone_eq(loyalty.phone, loyalty.phone), loyalty.phone_ne(loyalty.phone, loyalty.phone),
    loyalty.phone_lt(loyalty.phone, loyalty.phone), loyalty.phone_le(loyalty.phone, loyalty.phone),
    loyalty.phone_gt(loyalty.phone, loyalty.phone), loyalty.phone_ge(loyalty.phone, loyalty.phone),
    loyalty.phone_cmp(loyalty.phone, loyalty.phone), loyalty.phone_hash(loyalty.phone),
    loyalty.phone_hash_extended(loyalty.phone, int8), loyalty.phone_masked(loyalty.phone),
    loyalty.is_valid_timezone(text), loyalty.card_check_digit(text)
    TO PUBLIC;

GRANT USAGE ON SCHEMA loyalty
    TO loyalty_cashier, loyalty_marketer, loyalty_analyst, loyalty_admin;

-- cashier: the check API and customer lookup (functions run as definer)
GRANT EXECUTE ON FUNCTION loyalty.find_customer(text), loyalty.register(text, jsonb)
    TO loyalty_cashier;

-- marketer: the program's configuration
GRANT SELECT, INSERT, UPDATE, DELETE ON
    loyalty.setting, loyalty.store, loyalty.category, loyalty.product,
    loyalty.account_type, loyalty.tier, loyalty.promotion
    TO loyalty_marketer;
GRANT SELECT ON loyalty.setting_definition, loyalty.settings TO loyalty_marketer;
GRANT EXECUTE ON FUNCTION loyalty.setting_value(text) TO loyalty_marketer;

-- analyst: configuration and masked customers, never raw phones or e-mails
GRANT SELECT ON
    loyalty.setting, loyalty.setting_definition, loyalty.settings, loyalty.store,
    loyalty.category, loyalty.product, loyalty.account_type, loyalty.tier,
    loyalty.promotion, loyalty.customer_masked
    TO loyalty_analyst;
GRANT EXECUTE ON FUNCTION loyalty.setting_value(text) TO loyalty_analyst;

-- admin: everything
GRANT ALL ON ALL TABLES IN SCHEMA loyalty TO loyalty_admin;
GRANT ALL ON ALL SEQUENCES IN SCHEMA loyalty TO loyalty_admin;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA loyalty TO loyalty_admin;

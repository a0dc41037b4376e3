/*
 * loyalty_router 0.9: the router database of a sharded loyalty program
 * (SPEC section 14, docs/scale-out.md).  It holds no loyalty table: the
 * functions in schema "loyalty" have the API's names and signatures and
 * run each call on the shard that owns its customer, through PL/Proxy's
 * cluster "loyalty" (P logical partitions mapped onto nodes, set up by
 * loyalty_router.setup).  A shard answers through loyalty.api(method,
 * args), which returns its errors as JSON; loyalty_router.unwrap raises
 * them here with the shard's SQLSTATE, message, detail and hint, so
 * PL/Proxy never drops its connection over an error.
 */
\echo Use "CREATE EXTENSION loyalty_router" to load this file. \quit

DO $$
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
$$;

CREATE SCHEMA loyalty_router;
COMMENT ON SCHEMA loyalty_router IS 'The router''s configuration and routing functions';
CREATE SCHEMA loyalty;
COMMENT ON SCHEMA loyalty IS 'The loyalty API, each call routed to the shard that owns its customer';
GRANT USAGE ON SCHEMA loyalty TO loyalty_cashier, loyalty_marketer, loyalty_analyst, loyalty_admin;

-- the router's fixed configuration: one row, written once by setup
CREATE TABLE loyalty_router.config (
    only_row boolean DEFAULT true NOT NULL,
    country integer NOT NULL,
    partitions integer NOT NULL,
    CONSTRAINT config_pkey PRIMARY KEY (only_row),
    CONSTRAINT config_one_row CHECK (only_row),
    CONSTRAINT config_country_range CHECK (country BETWEEN 1 AND 999),
    CONSTRAINT config_partitions_power_of_two
        CHECK (partitions BETWEEN 1 AND 1024 AND (partitions & (partitions - 1)) = 0)
);
COMMENT ON TABLE loyalty_router.config IS
    'The country national phone numbers are completed with and the number of logical partitions; fixed once set';
SELECT pg_catalog.pg_extension_config_dump('loyalty_router.config', '');

CREATE FUNCTION loyalty_router.config_fixed() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF TG_OP = 'DELETE' OR NEW.country <> OLD.country OR NEW.partitions <> OLD.partitions THEN
        RAISE EXCEPTION 'the router''s country and partitions cannot change'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'Every customer key and partition was computed with them.',
                  HINT = 'Set up a new router database to change them.';
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION loyalty_router.config_fixed() IS
    'Refuses to change the router''s country or number of partitions once set';
CREATE TRIGGER config_fixed BEFORE UPDATE OR DELETE ON loyalty_router.config
    FOR EACH ROW EXECUTE FUNCTION loyalty_router.config_fixed();

-- keys and routing values (loyalty_router.c)
CREATE FUNCTION loyalty_router.phone_key(phone text, country integer) RETURNS text
    AS 'MODULE_PATHNAME', 'loyalty_router_phone_key'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION loyalty_router.phone_key(text, integer) IS
    'E.164 text of a phone in any spelling, national numbers completed with the given country (as loyalty.phone does)';

CREATE FUNCTION loyalty_router.customer_key(phone text) RETURNS text
    AS 'MODULE_PATHNAME', 'loyalty_router_customer_key'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION loyalty_router.customer_key(text) IS
    'The canonical customer key: E.164 text of a phone in any spelling with the router''s fixed country';

CREATE FUNCTION loyalty_router.route_key(identifier text) RETURNS integer
    AS 'MODULE_PATHNAME', 'loyalty_router_route_key'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION loyalty_router.route_key(text) IS
    'Routing value of a phone (hashtext of its key), id:N (N) or virtual card (its middle); NULL for another card';

CREATE FUNCTION loyalty_router.unwrap(response jsonb) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'loyalty_router_unwrap'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION loyalty_router.unwrap(jsonb) IS
    'The result of loyalty.api''s response, or its error raised with the shard''s SQLSTATE, message, detail and hint';

-- the proxy functions (PL/Proxy cluster "loyalty"; RUN ON masks with P - 1)
CREATE FUNCTION loyalty_router.call(route integer, method text, args jsonb) RETURNS jsonb
    LANGUAGE plproxy
    AS $$
    CLUSTER 'loyalty';
    RUN ON route;
    SELECT loyalty.api(method, args);
$$;
COMMENT ON FUNCTION loyalty_router.call(integer, text, jsonb) IS
    'Runs loyalty.api(method, args) on the partition route & (P - 1)';

CREATE FUNCTION loyalty_router.card_home_on(route integer, number text) RETURNS integer
    LANGUAGE plproxy
    AS $$
    CLUSTER 'loyalty';
    RUN ON route;
    SELECT loyalty.card_home(number);
$$;
COMMENT ON FUNCTION loyalty_router.card_home_on(integer, text) IS
    'The partition of a plastic card''s customer, from the directory row on the card''s own hash partition';

CREATE FUNCTION loyalty_router.purchase_routes(operation_id text) RETURNS SETOF integer
    LANGUAGE plproxy
    AS $$
    CLUSTER 'loyalty';
    RUN ON ALL;
    SELECT coalesce(pg_catalog.hashtext(c.phone::text), pg_catalog.hashtext(p.operation_id))
      FROM loyalty.purchase p LEFT JOIN loyalty.customer c ON c.id = p.customer_id
     WHERE p.operation_id = operation_id;
$$;
COMMENT ON FUNCTION loyalty_router.purchase_routes(text) IS
    'Routing value of a purchase''s customer, searched on every partition (a refund that names neither customer nor routable purchase id)';

CREATE FUNCTION loyalty_router.order_routes(order_id text) RETURNS SETOF integer
    LANGUAGE plproxy
    AS $$
    CLUSTER 'loyalty';
    RUN ON ALL;
    SELECT coalesce(pg_catalog.hashtext(c.phone::text), pg_catalog.hashtext(o.order_id))
      FROM loyalty."order" o LEFT JOIN loyalty.customer c ON c.id = o.customer_id
     WHERE o.order_id = order_id;
$$;
COMMENT ON FUNCTION loyalty_router.order_routes(text) IS
    'Routing value of an online order''s customer, searched on every partition (a capture or cancel that names no customer)';

-- partition_of: the routing value of every kind of identifier
CREATE FUNCTION loyalty_router.partition_of(identifier text) RETURNS integer
    LANGUAGE sql STRICT
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT coalesce(loyalty_router.route_key(identifier),
                    loyalty_router.card_home_on(hashtext(btrim(identifier, ' ')), btrim(identifier, ' ')),
                    hashtext(btrim(identifier, ' ')))
$$;
COMMENT ON FUNCTION loyalty_router.partition_of(text) IS
    'Routing value of a customer identifier: phone, id:N, virtual card, or a plastic card through loyalty.card_home';

CREATE FUNCTION loyalty_router.partition_of(customer_id bigint) RETURNS integer
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$ SELECT (customer_id & 2147483647)::integer $$;
COMMENT ON FUNCTION loyalty_router.partition_of(bigint) IS
    'Routing value of a customer id (seq * P + partition)';

CREATE FUNCTION loyalty_router.partition_of(request jsonb) RETURNS integer
    LANGUAGE sql STRICT
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT CASE jsonb_typeof(request -> 'customer')
               WHEN 'string' THEN loyalty_router.partition_of(request ->> 'customer')
               WHEN 'number' THEN loyalty_router.partition_of((request ->> 'customer')::numeric::bigint)
               -- anonymous: by the operation, so that a retry finds its first try
               ELSE hashtext(coalesce(request ->> 'operation_id', request::text))
           END
$$;
COMMENT ON FUNCTION loyalty_router.partition_of(jsonb) IS
    'Routing value of a request: its customer (identifier or id), else its operation_id (anonymous check)';

-- refunds and orders: by the customer when given, else by a routable id,
-- else (an operation id) by searching every partition once
CREATE FUNCTION loyalty_router.refund_route(request jsonb) RETURNS integer
    LANGUAGE sql STRICT
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT CASE
           WHEN jsonb_typeof(request -> 'customer') IN ('string', 'number')
               THEN loyalty_router.partition_of(request)
           WHEN jsonb_typeof(request -> 'purchase') = 'number'
               THEN loyalty_router.partition_of((request ->> 'purchase')::numeric::bigint)
           ELSE coalesce((SELECT r FROM loyalty_router.purchase_routes(request ->> 'purchase') AS r LIMIT 1),
                         hashtext(coalesce(request ->> 'purchase', '')))
           END
$$;
COMMENT ON FUNCTION loyalty_router.refund_route(jsonb) IS
    'Routing value of a refund: its customer, else a numeric purchase id, else the purchase searched on every partition';

CREATE FUNCTION loyalty_router.order_route(request jsonb) RETURNS integer
    LANGUAGE sql STRICT
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT CASE
           WHEN jsonb_typeof(request -> 'customer') IN ('string', 'number')
               THEN loyalty_router.partition_of(request)
           ELSE coalesce((SELECT r FROM loyalty_router.order_routes(request ->> 'order_id') AS r LIMIT 1),
                         hashtext(coalesce(request ->> 'order_id', '')))
           END
$$;
COMMENT ON FUNCTION loyalty_router.order_route(jsonb) IS
    'Routing value of an order capture or cancel: its customer, else the order searched on every partition';

-- the cluster: P partitions p0 .. p(P-1), partition i on nodes[i % N + 1]
CREATE FUNCTION loyalty_router.setup(country integer, partitions integer, nodes text[]) RETURNS text
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    n    integer := coalesce(array_length(nodes, 1), 0);
    opts text := '';
    i    integer;
BEGIN
    IF n = 0 OR n > partitions THEN
        RAISE EXCEPTION 'loyalty_router.setup needs 1 to % nodes, got %', partitions, n
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'Every node holds at least one logical partition.';
    END IF;
    INSERT INTO loyalty_router.config (country, partitions) VALUES (setup.country, setup.partitions)
        ON CONFLICT (only_row) DO UPDATE SET country = EXCLUDED.country, partitions = EXCLUDED.partitions;
    FOR i IN 0 .. partitions - 1 LOOP
        opts := opts || format(', p%s %L', i, nodes[i % n + 1]);
    END LOOP;
    DROP SERVER IF EXISTS loyalty CASCADE;
    EXECUTE 'CREATE SERVER loyalty FOREIGN DATA WRAPPER plproxy OPTIONS (connection_lifetime ''1800'''
            || opts || ')';
    CREATE USER MAPPING FOR PUBLIC SERVER loyalty;
    RETURN format('cluster loyalty: %s partitions on %s nodes, country %s', partitions, n, country);
END
$$;
COMMENT ON FUNCTION loyalty_router.setup(integer, integer, text[]) IS
    'Fixes the country and the number of partitions and (re)defines the PL/Proxy cluster: partition i on nodes[i % N + 1]';
REVOKE ALL ON FUNCTION loyalty_router.setup(integer, integer, text[]) FROM PUBLIC;

CREATE FUNCTION loyalty_router.move_partition(part integer, node text) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF part < 0 OR part >= (SELECT partitions FROM loyalty_router.config) THEN
        RAISE EXCEPTION 'partition % does not exist', part USING ERRCODE = 'invalid_parameter_value';
    END IF;
    EXECUTE format('ALTER SERVER loyalty OPTIONS (SET p%s %L)', part, node);
END
$$;
COMMENT ON FUNCTION loyalty_router.move_partition(integer, text) IS
    'Points one logical partition at another node (after its rows were copied there; docs/scale-out.md)';
REVOKE ALL ON FUNCTION loyalty_router.move_partition(integer, text) FROM PUBLIC;

-- a writing call: its operation_id is first claimed for the call's
-- partition on the id's own hash partition (loyalty.claim_operation on the
-- shards), so the same id used for customers on two partitions is LY003 as
-- on one node; then the call runs on its partition
CREATE FUNCTION loyalty_router.write_call(method text, route integer, request jsonb) RETURNS jsonb
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    p  integer := (SELECT c.partitions FROM loyalty_router.config c);
    op text := request ->> 'operation_id';
BEGIN
    IF p > 1 AND op IS NOT NULL THEN
        PERFORM loyalty_router.unwrap(loyalty_router.call(hashtext(op), 'claim_operation',
                    jsonb_build_object('operation_id', op, 'home', route & (p - 1))));
    END IF;
    RETURN loyalty_router.unwrap(loyalty_router.call(route, method, jsonb_build_object('request', request)));
END
$$;
COMMENT ON FUNCTION loyalty_router.write_call(text, integer, jsonb) IS
    'A writing call on partition route & (P - 1), its operation_id claimed for that partition first';

-- the API, with the names and signatures of the loyalty extension's
CREATE FUNCTION loyalty.calculate(request jsonb) RETURNS jsonb
    LANGUAGE sql STRICT
    AS $$ SELECT loyalty_router.unwrap(loyalty_router.call(loyalty_router.partition_of(request),
                     'calculate', jsonb_build_object('request', request))) $$;
COMMENT ON FUNCTION loyalty.calculate(jsonb) IS 'loyalty.calculate on the customer''s shard';

CREATE FUNCTION loyalty.purchase(request jsonb) RETURNS jsonb
    LANGUAGE sql STRICT
    AS $$ SELECT loyalty_router.write_call('purchase', loyalty_router.partition_of(request), request) $$;
COMMENT ON FUNCTION loyalty.purchase(jsonb) IS 'loyalty.purchase on the customer''s shard';

CREATE FUNCTION loyalty.refund(request jsonb) RETURNS jsonb
    LANGUAGE sql STRICT
    AS $$ SELECT loyalty_router.write_call('refund', loyalty_router.refund_route(request), request) $$;
COMMENT ON FUNCTION loyalty.refund(jsonb) IS 'loyalty.refund on the shard of the purchase''s customer';

CREATE FUNCTION loyalty.adjust(request jsonb) RETURNS jsonb
    LANGUAGE sql STRICT
    AS $$ SELECT loyalty_router.write_call('adjust', loyalty_router.partition_of(request), request) $$;
COMMENT ON FUNCTION loyalty.adjust(jsonb) IS 'loyalty.adjust on the customer''s shard';

CREATE FUNCTION loyalty.order_hold(request jsonb) RETURNS jsonb
    LANGUAGE sql STRICT
    AS $$ SELECT loyalty_router.write_call('order_hold', loyalty_router.partition_of(request), request) $$;
COMMENT ON FUNCTION loyalty.order_hold(jsonb) IS 'loyalty.order_hold on the customer''s shard';

CREATE FUNCTION loyalty.order_capture(request jsonb) RETURNS jsonb
    LANGUAGE sql STRICT
    AS $$ SELECT loyalty_router.write_call('order_capture', loyalty_router.order_route(request), request) $$;
COMMENT ON FUNCTION loyalty.order_capture(jsonb) IS 'loyalty.order_capture on the shard of the order''s customer';

CREATE FUNCTION loyalty.order_cancel(request jsonb) RETURNS jsonb
    LANGUAGE sql STRICT
    AS $$ SELECT loyalty_router.write_call('order_cancel', loyalty_router.order_route(request), request) $$;
COMMENT ON FUNCTION loyalty.order_cancel(jsonb) IS 'loyalty.order_cancel on the shard of the order''s customer';

CREATE FUNCTION loyalty.register(phone text, profile jsonb DEFAULT '{}'::jsonb) RETURNS bigint
    LANGUAGE sql STRICT
    AS $$ SELECT (loyalty_router.unwrap(loyalty_router.call(
                     hashtext(loyalty_router.customer_key(phone)), 'register',
                     jsonb_build_object('phone', phone, 'profile', profile))) #>> '{}')::bigint $$;
COMMENT ON FUNCTION loyalty.register(text, jsonb) IS 'loyalty.register on the shard of the phone''s key';

CREATE FUNCTION loyalty.find_customer(identifier text) RETURNS bigint
    LANGUAGE sql STRICT
    AS $$ SELECT (loyalty_router.unwrap(loyalty_router.call(loyalty_router.partition_of(identifier),
                     'find_customer', jsonb_build_object('identifier', identifier))) #>> '{}')::bigint $$;
COMMENT ON FUNCTION loyalty.find_customer(text) IS 'loyalty.find_customer on the identifier''s shard';

CREATE FUNCTION loyalty.balance(customer text, at timestamptz DEFAULT now())
    RETURNS TABLE (account text, available numeric, pending numeric, expiring numeric,
                   next_expiry timestamptz, held numeric)
    LANGUAGE sql STRICT
    AS $$ SELECT * FROM jsonb_to_recordset(loyalty_router.unwrap(loyalty_router.call(
                     loyalty_router.partition_of(customer), 'balance',
                     jsonb_build_object('customer', customer, 'at', at))))
                 AS b(account text, available numeric, pending numeric, expiring numeric,
                      next_expiry timestamptz, held numeric) $$;
COMMENT ON FUNCTION loyalty.balance(text, timestamptz) IS 'loyalty.balance on the customer''s shard';

CREATE FUNCTION loyalty.history(customer text, lim integer DEFAULT 100)
    RETURNS TABLE (id bigint, at timestamptz, kind text, account text, points numeric,
                   operation_id text, ref_operation_id text, lot_expires_at timestamptz)
    LANGUAGE sql STRICT
    AS $$ SELECT * FROM jsonb_to_recordset(loyalty_router.unwrap(loyalty_router.call(
                     loyalty_router.partition_of(customer), 'history',
                     jsonb_build_object('customer', customer, 'lim', lim))))
                 AS h(id bigint, at timestamptz, kind text, account text, points numeric,
                      operation_id text, ref_operation_id text, lot_expires_at timestamptz) $$;
COMMENT ON FUNCTION loyalty.history(text, integer) IS 'loyalty.history on the customer''s shard';

-- privileges as on a shard (SPEC section 13)
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA loyalty FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA loyalty_router FROM PUBLIC;
GRANT USAGE ON SCHEMA loyalty_router TO loyalty_cashier, loyalty_marketer, loyalty_admin;
GRANT EXECUTE ON FUNCTION
    loyalty.calculate(jsonb), loyalty.purchase(jsonb), loyalty.refund(jsonb),
    loyalty.order_hold(jsonb), loyalty.order_capture(jsonb), loyalty.order_cancel(jsonb),
    loyalty.register(text, jsonb), loyalty.find_customer(text),
    loyalty.balance(text, timestamptz), loyalty.history(text, integer)
    TO loyalty_cashier, loyalty_admin;
GRANT EXECUTE ON FUNCTION loyalty.adjust(jsonb) TO loyalty_admin;
GRANT EXECUTE ON FUNCTION
    loyalty_router.phone_key(text, integer), loyalty_router.customer_key(text),
    loyalty_router.route_key(text), loyalty_router.unwrap(jsonb),
    loyalty_router.call(integer, text, jsonb), loyalty_router.card_home_on(integer, text),
    loyalty_router.purchase_routes(text), loyalty_router.order_routes(text),
    loyalty_router.partition_of(text), loyalty_router.partition_of(bigint),
    loyalty_router.partition_of(jsonb), loyalty_router.refund_route(jsonb),
    loyalty_router.order_route(jsonb), loyalty_router.write_call(text, integer, jsonb)
    TO loyalty_cashier, loyalty_marketer, loyalty_admin;
GRANT SELECT ON loyalty_router.config TO loyalty_cashier, loyalty_marketer, loyalty_admin;

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
 *
 * Round 2: writing calls claim their operation id per the idempotency mode
 * (strict: chain-wide, inside the call when the id's partition is on the
 * call's node; customer: no claim), calls follow a moved customer
 * (loyalty.moved_home after LY001), plastic cards are attached in two
 * steps, campaign grants run on every node that holds a part, the KPI is
 * merged from every node's parts, config digests are compared, and a
 * customer moves between nodes (export, import, remove).
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
    idempotency text DEFAULT 'strict' NOT NULL,
    nodes text[] DEFAULT '{}' NOT NULL,
    CONSTRAINT config_pkey PRIMARY KEY (only_row),
    CONSTRAINT config_one_row CHECK (only_row),
    CONSTRAINT config_country_range CHECK (country BETWEEN 1 AND 999),
    CONSTRAINT config_partitions_power_of_two
        CHECK (partitions BETWEEN 1 AND 1024 AND (partitions & (partitions - 1)) = 0),
    CONSTRAINT config_idempotency CHECK (idempotency IN ('strict', 'customer'))
);
COMMENT ON TABLE loyalty_router.config IS
    'The country national phone numbers are completed with and the number of logical partitions (fixed once set), the idempotency mode (strict: operation ids claimed chain-wide; customer: per customer, one round trip) and the node (connection string) of each partition';
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
CREATE FUNCTION loyalty_router.setup(country integer, partitions integer, nodes text[],
                                     idempotency text DEFAULT 'strict') RETURNS text
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    n    integer := coalesce(array_length(nodes, 1), 0);
    opts text := '';
    map  text[] := '{}';
    i    integer;
BEGIN
    IF n = 0 OR n > partitions THEN
        RAISE EXCEPTION 'loyalty_router.setup needs 1 to % nodes, got %', partitions, n
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'Every node holds at least one logical partition.';
    END IF;
    FOR i IN 0 .. partitions - 1 LOOP
        opts := opts || format(', p%s %L', i, nodes[i % n + 1]);
        map := map || nodes[i % n + 1];
    END LOOP;
    INSERT INTO loyalty_router.config (country, partitions, idempotency, nodes)
    VALUES (setup.country, setup.partitions, setup.idempotency, map)
        ON CONFLICT (only_row) DO UPDATE
        SET country = EXCLUDED.country, partitions = EXCLUDED.partitions,
            idempotency = EXCLUDED.idempotency, nodes = EXCLUDED.nodes;
    DROP SERVER IF EXISTS loyalty CASCADE;
    EXECUTE 'CREATE SERVER loyalty FOREIGN DATA WRAPPER plproxy OPTIONS (connection_lifetime ''1800'''
            || opts || ')';
    CREATE USER MAPPING FOR PUBLIC SERVER loyalty;
    RETURN format('cluster loyalty: %s partitions on %s nodes, country %s, %s idempotency',
                  partitions, n, country, idempotency);
END
$$;
COMMENT ON FUNCTION loyalty_router.setup(integer, integer, text[], text) IS
    'Fixes the country and the number of partitions, sets the idempotency mode (strict or customer) and (re)defines the PL/Proxy cluster: partition i on nodes[i % N + 1]';
REVOKE ALL ON FUNCTION loyalty_router.setup(integer, integer, text[], text) FROM PUBLIC;

CREATE FUNCTION loyalty_router.move_partition(part integer, node text) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF part < 0 OR part >= (SELECT partitions FROM loyalty_router.config) THEN
        RAISE EXCEPTION 'partition % does not exist', part USING ERRCODE = 'invalid_parameter_value';
    END IF;
    EXECUTE format('ALTER SERVER loyalty OPTIONS (SET p%s %L)', part, node);
    UPDATE loyalty_router.config SET nodes[part + 1] = node;
END
$$;
COMMENT ON FUNCTION loyalty_router.move_partition(integer, text) IS
    'Points one logical partition at another node (after its rows were copied there; docs/scale-out.md)';
REVOKE ALL ON FUNCTION loyalty_router.move_partition(integer, text) FROM PUBLIC;

-- moved customers (loyalty.export_customer / import_customer /
-- remove_customer on the shards): a key's own partition keeps where the
-- customer went (loyalty.moved_home); a call that meets LY001 asks there
-- and runs once more on the answer
CREATE FUNCTION loyalty_router.ident(request jsonb) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT CASE jsonb_typeof(request -> 'customer')
               WHEN 'string' THEN request ->> 'customer'
               WHEN 'number' THEN 'id:' || (request ->> 'customer')::numeric::bigint
           END
$$;
COMMENT ON FUNCTION loyalty_router.ident(jsonb) IS
    'The customer identifier of a request as loyalty.moved_home reads it (a number as id:N); NULL when anonymous';

CREATE FUNCTION loyalty_router.moved_home(route integer, identifier text) RETURNS integer
    LANGUAGE sql STRICT
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT (loyalty_router.unwrap(loyalty_router.call(route, 'moved_home',
                jsonb_build_object('identifier', identifier))) #>> '{}')::integer
$$;
COMMENT ON FUNCTION loyalty_router.moved_home(integer, text) IS
    'The partition a customer was moved to, asked on the partition route (its key''s own); NULL when it was not moved';

CREATE FUNCTION loyalty_router.checked(target integer, method text, args jsonb) RETURNS jsonb
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    r jsonb := loyalty_router.call(target, method, args);
BEGIN
    IF r ? 'foreign' THEN
        r := loyalty_router.code_call(target, method, args, r -> 'foreign');
    END IF;
    RETURN loyalty_router.code_after(target, r);
END
$$;
COMMENT ON FUNCTION loyalty_router.checked(integer, text, jsonb) IS
    'loyalty_router.call, with the code protocol when the check''s codes live on other nodes and the follow-up of refunds and new codes';

CREATE FUNCTION loyalty_router.routed(route integer, method text, args jsonb, identifier text) RETURNS jsonb
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    r jsonb := loyalty_router.checked(route, method, args);
    h integer;
BEGIN
    IF identifier IS NOT NULL
       AND (r -> 'error' ->> 'sqlstate' = 'LY001'
            OR (method = 'find_customer' AND r -> 'result' = 'null'::jsonb)) THEN
        h := loyalty_router.moved_home(route, identifier);
        IF h IS NOT NULL THEN
            r := loyalty_router.checked(h, method, args);
        END IF;
    END IF;
    RETURN loyalty_router.unwrap(r);
END
$$;
COMMENT ON FUNCTION loyalty_router.routed(integer, text, jsonb, text) IS
    'A reading call on partition route & (P - 1); after LY001 (find_customer: NULL) once more on the partition a moved customer went to';

-- codes that live on another node (issue 20 item 4): the customer's node
-- sends the check back unrun with their home partitions ("foreign"); each
-- is held on its home (a calculate only looks: a peek), the call runs again
-- with the documents as guest copies in its own transaction, and the use
-- is confirmed at home (or the hold released when the call failed or did
-- not use the code).  Round trips: 1 (the bounce) + 1 per code + 1 (the
-- call) + 1 per held code (confirm or release)
CREATE FUNCTION loyalty_router.code_call(target integer, method text, args jsonb, fcodes jsonb)
    RETURNS jsonb
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    c    loyalty_router.config;
    tp   integer;
    hid  text := coalesce(args -> 'request' ->> 'operation_id', 'calculate');
    g    jsonb := '[]';
    held jsonb := '[]';
    x    jsonb;
    d    jsonb;
    s    jsonb;
    r    jsonb;
BEGIN
    SELECT * INTO c FROM loyalty_router.config;
    tp := target & (c.partitions - 1);
    FOR x IN SELECT * FROM jsonb_array_elements(fcodes) LOOP
        -- a code whose home is the customer's node is unknown: no guest
        CONTINUE WHEN c.nodes[(x ->> 'home')::integer + 1] = c.nodes[tp + 1];
        d := loyalty_router.call((x ->> 'home')::integer, 'code_hold',
                 jsonb_build_object('code', x ->> 'code', 'hold_id', hid, 'home', tp,
                                    'peek', method = 'calculate'));
        -- unknown at home (null) or a customer's code (an error): no guest,
        -- the check rejects it as one node does
        IF jsonb_typeof(d -> 'result') = 'object' THEN
            g := g || jsonb_build_array(d -> 'result');
            IF method <> 'calculate' AND (d -> 'result' ->> 'held')::boolean THEN
                held := held || jsonb_build_array(x);
            END IF;
        END IF;
    END LOOP;
    r := loyalty_router.call(target, method, args || jsonb_build_object('guests', g));
    FOR x IN SELECT * FROM jsonb_array_elements(held) LOOP
        s := r -> 'settle' -> (x ->> 'code');
        IF r ? 'error' OR s IS NULL OR (s ->> 'uses')::integer = 0 THEN
            d := loyalty_router.call((x ->> 'home')::integer, 'code_release',
                     jsonb_build_object('code', x ->> 'code', 'hold_id', hid));
        ELSE
            d := loyalty_router.call((x ->> 'home')::integer, 'code_confirm',
                     jsonb_build_object('code', x ->> 'code', 'hold_id', hid,
                                        'uses', s -> 'uses', 'amount', s -> 'amount'));
        END IF;
        IF d ? 'error' THEN
            -- the check stands; the hold stays open: docs/scale-out.md, open holds
            RAISE WARNING 'code hold "%" on partition % not settled: %', hid, x ->> 'home', d -> 'error' ->> 'message';
        END IF;
    END LOOP;
    RETURN r - 'settle';
END
$$;
COMMENT ON FUNCTION loyalty_router.code_call(integer, text, jsonb, jsonb) IS
    'A check whose codes live on other nodes: each held (calculate: looked at) on its home, the call again with the guest copies, then confirmed or released at home';

-- after a call: a refund's give-back to codes of other homes, an anonymous
-- purchase's new codes moved to their homes (export, adopt)
CREATE FUNCTION loyalty_router.code_after(target integer, r jsonb) RETURNS jsonb
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    c loyalty_router.config;
    x jsonb;
    d jsonb;
BEGIN
    IF NOT (r ? 'returns' OR r ? 'issued_codes') THEN
        RETURN r;
    END IF;
    SELECT * INTO c FROM loyalty_router.config;
    FOR x IN SELECT * FROM jsonb_array_elements(coalesce(r -> 'returns', '[]')) LOOP
        d := loyalty_router.call((x ->> 'home')::integer, 'code_return', x);
        IF d ? 'error' THEN
            RAISE WARNING 'code give-back on partition % failed: %', x ->> 'home', d -> 'error' ->> 'message';
        END IF;
    END LOOP;
    FOR x IN SELECT * FROM jsonb_array_elements(coalesce(r -> 'issued_codes', '[]')) LOOP
        CONTINUE WHEN c.nodes[(x ->> 'home')::integer + 1] = c.nodes[(target & (c.partitions - 1)) + 1];
        d := loyalty_router.call(target, 'code_export', jsonb_build_object('code', x ->> 'code'));
        IF jsonb_typeof(d -> 'result') = 'object' THEN
            d := loyalty_router.call((x ->> 'home')::integer, 'code_adopt', jsonb_build_object('doc', d -> 'result'));
        END IF;
        IF d ? 'error' THEN
            RAISE WARNING 'new code not moved to partition %: %', x ->> 'home', d -> 'error' ->> 'message';
        END IF;
    END LOOP;
    RETURN r - 'returns' - 'issued_codes';
END
$$;
COMMENT ON FUNCTION loyalty_router.code_after(integer, jsonb) IS
    'After a call: a refund''s give-back to guest codes sent to their homes (code_return), an anonymous purchase''s new codes moved to their homes (code_export, code_adopt)';

-- a writing call.  Strict idempotency (the default): its operation_id is
-- claimed for the call's partition on the id's own hash partition
-- (loyalty.claim_operation), so the same id used for customers on two
-- partitions is LY003 as on one node; when that partition lives on the
-- call's node, the claim is made there inside the call (one round trip),
-- else first, on its node (two).  Customer idempotency: no claim, one round
-- trip; each shard keeps its own operation ids (docs/scale-out.md)
CREATE FUNCTION loyalty_router.write_on(target integer, home integer, method text, request jsonb)
    RETURNS jsonb
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    c   loyalty_router.config;
    op  text := request ->> 'operation_id';
    idp integer;
    r   jsonb;
BEGIN
    SELECT * INTO c FROM loyalty_router.config;
    IF c.idempotency = 'strict' AND c.partitions > 1 AND op IS NOT NULL THEN
        idp := hashtext(op) & (c.partitions - 1);
        IF c.nodes[idp + 1] = c.nodes[(target & (c.partitions - 1)) + 1] THEN
            RETURN loyalty_router.checked(target, method,
                       jsonb_build_object('request', request, 'claim', home & (c.partitions - 1)));
        END IF;
        r := loyalty_router.call(idp, 'claim_operation',
                 jsonb_build_object('operation_id', op, 'home', home & (c.partitions - 1)));
        IF r ? 'error' THEN
            RETURN r;
        END IF;
    END IF;
    RETURN loyalty_router.checked(target, method, jsonb_build_object('request', request));
END
$$;
COMMENT ON FUNCTION loyalty_router.write_on(integer, integer, text, jsonb) IS
    'Runs a writing call on partition target, its operation_id claimed for partition home per the idempotency mode; the response as loyalty.api returns it';

CREATE FUNCTION loyalty_router.write_call(method text, route integer, request jsonb) RETURNS jsonb
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    r  jsonb := loyalty_router.write_on(route, route, method, request);
    id text;
    h  integer;
BEGIN
    -- LY001, or for a refund naming its customer LY002 (the purchase moved
    -- with the customer): ask the key's partition where it went
    IF r -> 'error' ->> 'sqlstate' = 'LY001'
       OR (method = 'refund' AND r -> 'error' ->> 'sqlstate' = 'LY002') THEN
        id := loyalty_router.ident(request);
        IF id IS NOT NULL THEN
            h := loyalty_router.moved_home(route, id);
            IF h IS NOT NULL THEN
                -- claimed for the key's partition, as a retry of the call will be
                r := loyalty_router.write_on(h, route, method, request);
            END IF;
        END IF;
    END IF;
    RETURN loyalty_router.unwrap(r);
END
$$;
COMMENT ON FUNCTION loyalty_router.write_call(text, integer, jsonb) IS
    'A writing call on partition route & (P - 1) (its operation_id claimed per the idempotency mode); after LY001 (a refund: LY002) on the partition a moved customer went to';

-- one partition of each node (RUN ON ALL would run once per partition)
CREATE FUNCTION loyalty_router.node_routes() RETURNS SETOF integer
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT min(i - 1) FROM loyalty_router.config c, unnest(c.nodes) WITH ORDINALITY AS n(node, i)
     GROUP BY n.node ORDER BY 1
$$;
COMMENT ON FUNCTION loyalty_router.node_routes() IS
    'The lowest partition of every node: a call on each runs once on every node';

-- campaign grants: each node grants to its own customers under the same
-- operation_id (no chain-wide claim: every node holds a part of the grant);
-- a segment on every node, listed ids on the nodes of their partitions
CREATE FUNCTION loyalty_router.grant_points(request jsonb) RETURNS jsonb
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    c   loyalty_router.config;
    g   record;
    r   jsonb;
    sum_customers bigint := 0;
    sum_points    numeric := 0;
    first jsonb;
BEGIN
    SELECT * INTO c FROM loyalty_router.config;
    FOR g IN
        SELECT min(p) AS route, jsonb_agg(x ORDER BY o) AS ids
          FROM jsonb_array_elements(CASE WHEN jsonb_typeof(request -> 'customers') = 'array'
                                         THEN request -> 'customers' END) WITH ORDINALITY AS e(x, o),
               LATERAL (SELECT CASE WHEN jsonb_typeof(x) = 'number'
                                    THEN ((x #>> '{}')::numeric::bigint & (c.partitions - 1))::integer
                                    ELSE 0 END AS p) q
         GROUP BY c.nodes[q.p + 1]
        UNION ALL
        SELECT n, NULL FROM loyalty_router.node_routes() AS n
         WHERE jsonb_typeof(request -> 'customers') IS DISTINCT FROM 'array'
        ORDER BY 1
    LOOP
        r := loyalty_router.unwrap(loyalty_router.call(g.route, 'grant_points', jsonb_build_object('request',
                 CASE WHEN g.ids IS NULL THEN request ELSE request || jsonb_build_object('customers', g.ids) END)));
        first := coalesce(first, r);
        sum_customers := sum_customers + coalesce((r ->> 'customers')::bigint, 0);
        sum_points := sum_points + coalesce((r ->> 'total_points')::numeric, 0);
    END LOOP;
    IF first IS NULL THEN
        RETURN loyalty_router.unwrap(loyalty_router.call(0, 'grant_points', jsonb_build_object('request', request)));
    END IF;
    RETURN first || jsonb_build_object('customers', sum_customers, 'total_points', sum_points);
END
$$;
COMMENT ON FUNCTION loyalty_router.grant_points(jsonb) IS
    'loyalty.grant_points on every node (a segment) or on the nodes of the listed ids, with the customers and total_points of the nodes summed';

-- reports: each node's additive KPI parts, merged by loyalty.kpi_merge on
-- one of them (the router holds no loyalty type)
CREATE FUNCTION loyalty_router.kpi_parts_on(route integer, f timestamptz, t timestamptz, g text)
    RETURNS SETOF jsonb
    LANGUAGE plproxy
    AS $$
    CLUSTER 'loyalty';
    RUN ON route;
    SELECT to_jsonb(k) FROM loyalty.kpi_parts(f, t, g) AS k;
$$;
COMMENT ON FUNCTION loyalty_router.kpi_parts_on(integer, timestamptz, timestamptz, text) IS
    'loyalty.kpi_parts of the node of partition route, one JSON object per group';

CREATE FUNCTION loyalty_router.kpi_merge_on(route integer, parts jsonb) RETURNS SETOF jsonb
    LANGUAGE plproxy
    AS $$
    CLUSTER 'loyalty';
    RUN ON route;
    SELECT to_jsonb(m) FROM loyalty.kpi_merge(ARRAY(
        SELECT jsonb_populate_record(NULL::loyalty.kpi_part, x) FROM jsonb_array_elements(parts) AS x)) AS m;
$$;
COMMENT ON FUNCTION loyalty_router.kpi_merge_on(integer, jsonb) IS
    'loyalty.kpi_merge of the given parts, computed on the node of partition route';

CREATE FUNCTION loyalty_router.config_digest_on(route integer) RETURNS text
    LANGUAGE plproxy
    AS $$
    CLUSTER 'loyalty';
    RUN ON route;
    SELECT loyalty.config_digest();
$$;
COMMENT ON FUNCTION loyalty_router.config_digest_on(integer) IS
    'loyalty.config_digest() of the node of partition route';

CREATE FUNCTION loyalty_router.config_digests() RETURNS TABLE (node text, partitions integer[], digest text)
    LANGUAGE sql
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT n.node, n.parts, loyalty_router.config_digest_on(n.parts[1])
      FROM (SELECT x.node, array_agg((x.i - 1)::integer ORDER BY x.i) AS parts
              FROM loyalty_router.config c, unnest(c.nodes) WITH ORDINALITY AS x(node, i)
             GROUP BY x.node) n
     ORDER BY n.parts[1]
$$;
COMMENT ON FUNCTION loyalty_router.config_digests() IS
    'loyalty.config_digest() of every node with its partitions: one distinct digest = every node prices with the same rules';

-- moving a customer to a partition on another node: export on its node,
-- import on the target's, remove on the source (which records where its
-- keys went: moved_home).  Three transactions; each step changes nothing
-- when it fails, import is idempotent, remove refuses (55000) if the
-- customer changed since the export (docs/scale-out.md: what to do then)
CREATE FUNCTION loyalty_router.export_on(route integer, customer bigint) RETURNS jsonb
    LANGUAGE plproxy
    AS $$
    CLUSTER 'loyalty';
    RUN ON route;
    SELECT loyalty.export_customer(customer);
$$;
COMMENT ON FUNCTION loyalty_router.export_on(integer, bigint) IS
    'loyalty.export_customer on the node of partition route';

CREATE FUNCTION loyalty_router.import_on(route integer, doc jsonb) RETURNS jsonb
    LANGUAGE plproxy
    AS $$
    CLUSTER 'loyalty';
    RUN ON route;
    SELECT loyalty.import_customer(doc);
$$;
COMMENT ON FUNCTION loyalty_router.import_on(integer, jsonb) IS
    'loyalty.import_customer on the node of partition route';

CREATE FUNCTION loyalty_router.remove_on(route integer, customer bigint, summary jsonb, home integer)
    RETURNS jsonb
    LANGUAGE plproxy
    AS $$
    CLUSTER 'loyalty';
    RUN ON route;
    SELECT loyalty.remove_customer(customer, summary, home);
$$;
COMMENT ON FUNCTION loyalty_router.remove_on(integer, bigint, jsonb, integer) IS
    'loyalty.remove_customer on the node of partition route';

CREATE FUNCTION loyalty_router.move_customer(customer text, target integer) RETURNS jsonb
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    c    loyalty_router.config;
    src  integer;
    h    integer;
    cid  bigint;
    doc  jsonb;
BEGIN
    SELECT * INTO c FROM loyalty_router.config;
    IF target < 0 OR target >= c.partitions THEN
        RAISE EXCEPTION 'partition % does not exist', target
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('Argument "target" must be a partition from 0 to %s.', c.partitions - 1);
    END IF;
    src := loyalty_router.partition_of(customer) & (c.partitions - 1);
    h := loyalty_router.moved_home(src, customer);
    src := coalesce(h, src);
    cid := (loyalty_router.unwrap(loyalty_router.call(src, 'find_customer',
                jsonb_build_object('identifier', customer))) #>> '{}')::bigint;
    IF cid IS NULL THEN
        RAISE EXCEPTION 'customer not found'
            USING ERRCODE = 'LY001',
                  DETAIL = format('No customer has the phone, card or id "%s".', customer);
    END IF;
    IF c.nodes[src + 1] = c.nodes[target + 1] THEN
        RAISE EXCEPTION 'customer % is already on the node of partition %', cid, target
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('Partitions %s and %s live on the same node.', src, target),
                  HINT = 'Move a customer to a partition on another node.';
    END IF;
    doc := loyalty_router.export_on(src, cid);
    PERFORM loyalty_router.import_on(target, doc);
    PERFORM loyalty_router.remove_on(src, cid, doc -> 'summary', target);
    RETURN jsonb_build_object('customer', cid, 'from', src, 'to', target, 'summary', doc -> 'summary');
END
$$;
COMMENT ON FUNCTION loyalty_router.move_customer(text, integer) IS
    'Moves a customer (with those merged into it) to partition target on another node: export_customer, import_customer, remove_customer';

-- the API, with the names and signatures of the loyalty extension's
CREATE FUNCTION loyalty.calculate(request jsonb) RETURNS jsonb
    LANGUAGE sql STRICT
    AS $$ SELECT loyalty_router.routed(loyalty_router.partition_of(request), 'calculate',
                     jsonb_build_object('request', request), loyalty_router.ident(request)) $$;
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
                     coalesce(loyalty_router.moved_home(r.route, phone), r.route), 'register',
                     jsonb_build_object('phone', phone, 'profile', profile))) #>> '{}')::bigint
            FROM (SELECT hashtext(loyalty_router.customer_key(phone)) AS route) r $$;
COMMENT ON FUNCTION loyalty.register(text, jsonb) IS
    'loyalty.register on the shard of the phone''s key, or where its customer was moved';

CREATE FUNCTION loyalty.find_customer(identifier text) RETURNS bigint
    LANGUAGE sql STRICT
    AS $$ SELECT (loyalty_router.routed(loyalty_router.partition_of(identifier), 'find_customer',
                     jsonb_build_object('identifier', identifier), identifier) #>> '{}')::bigint $$;
COMMENT ON FUNCTION loyalty.find_customer(text) IS 'loyalty.find_customer on the identifier''s shard';

CREATE FUNCTION loyalty.balance(customer text, at timestamptz DEFAULT now())
    RETURNS TABLE (account text, available numeric, pending numeric, expiring numeric,
                   next_expiry timestamptz, held numeric)
    LANGUAGE sql STRICT
    AS $$ SELECT * FROM jsonb_to_recordset(loyalty_router.routed(
                     loyalty_router.partition_of(customer), 'balance',
                     jsonb_build_object('customer', customer, 'at', at), customer))
                 AS b(account text, available numeric, pending numeric, expiring numeric,
                      next_expiry timestamptz, held numeric) $$;
COMMENT ON FUNCTION loyalty.balance(text, timestamptz) IS 'loyalty.balance on the customer''s shard';

CREATE FUNCTION loyalty.history(customer text, lim integer DEFAULT 100)
    RETURNS TABLE (id bigint, at timestamptz, kind text, account text, points numeric,
                   operation_id text, ref_operation_id text, lot_expires_at timestamptz)
    LANGUAGE sql STRICT
    AS $$ SELECT * FROM jsonb_to_recordset(loyalty_router.routed(
                     loyalty_router.partition_of(customer), 'history',
                     jsonb_build_object('customer', customer, 'lim', lim), customer))
                 AS h(id bigint, at timestamptz, kind text, account text, points numeric,
                      operation_id text, ref_operation_id text, lot_expires_at timestamptz) $$;
COMMENT ON FUNCTION loyalty.history(text, integer) IS 'loyalty.history on the customer''s shard';

CREATE FUNCTION loyalty.grant_points(request jsonb) RETURNS jsonb
    LANGUAGE sql STRICT
    AS $$ SELECT loyalty_router.grant_points(request) $$;
COMMENT ON FUNCTION loyalty.grant_points(jsonb) IS
    'loyalty.grant_points on every shard (a segment) or the shards of the listed ids; customers and total_points summed';

-- a plastic card issued outside: the directory row on the card's own hash
-- partition names the customer's partition, then the card row is written
-- on the customer's (both idempotent: after a failure, call again)
CREATE FUNCTION loyalty.attach_card(customer text, number text) RETURNS bigint
    LANGUAGE plpgsql STRICT
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    p    integer := (SELECT c.partitions FROM loyalty_router.config c);
    home integer := loyalty_router.partition_of(customer) & (p - 1);
BEGIN
    home := coalesce(loyalty_router.moved_home(home, customer), home);
    PERFORM loyalty_router.unwrap(loyalty_router.call(hashtext(btrim(number)), 'card_directory_put',
                jsonb_build_object('number', number, 'home', home)));
    RETURN (loyalty_router.unwrap(loyalty_router.call(home, 'attach_card',
                jsonb_build_object('customer', customer, 'number', number))) #>> '{}')::bigint;
END
$$;
COMMENT ON FUNCTION loyalty.attach_card(text, text) IS
    'Attaches a plastic card: loyalty.card_directory_put on the card''s hash partition, loyalty.attach_card on the customer''s; returns the customer id';

CREATE FUNCTION loyalty.kpi("from" timestamptz, "to" timestamptz, by text DEFAULT 'day')
    RETURNS TABLE (period text, checks bigint, identified_checks bigint, identified_share numeric,
                   revenue numeric, member_revenue_share numeric, avg_check_member numeric,
                   avg_check_anonymous numeric, customers bigint, repeat_rate numeric,
                   retention numeric, points_earned numeric, points_spent numeric,
                   points_expired numeric, points_reversed numeric, redemption_rate numeric)
    LANGUAGE sql STRICT
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT k.*
      FROM loyalty_router.kpi_merge_on(0, (SELECT coalesce(jsonb_agg(x), '[]')
                                             FROM loyalty_router.node_routes() AS n,
                                                  loyalty_router.kpi_parts_on(n, $1, $2, $3) AS x)) AS m,
           jsonb_to_record(m) AS k(period text, checks bigint, identified_checks bigint, identified_share numeric,
                   revenue numeric, member_revenue_share numeric, avg_check_member numeric,
                   avg_check_anonymous numeric, customers bigint, repeat_rate numeric,
                   retention numeric, points_earned numeric, points_spent numeric,
                   points_expired numeric, points_reversed numeric, redemption_rate numeric)
$$;
COMMENT ON FUNCTION loyalty.kpi(timestamptz, timestamptz, text) IS
    'loyalty.kpi over every shard: loyalty.kpi_parts on each node, loyalty.kpi_merge of them all';

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
GRANT EXECUTE ON FUNCTION loyalty.attach_card(text, text) TO loyalty_cashier, loyalty_admin;
GRANT EXECUTE ON FUNCTION loyalty.grant_points(jsonb), loyalty_router.grant_points(jsonb)
    TO loyalty_marketer, loyalty_admin;
GRANT EXECUTE ON FUNCTION loyalty.kpi(timestamptz, timestamptz, text)
    TO loyalty_analyst, loyalty_marketer, loyalty_admin;
GRANT USAGE ON SCHEMA loyalty_router TO loyalty_analyst;
GRANT EXECUTE ON FUNCTION
    loyalty_router.kpi_parts_on(integer, timestamptz, timestamptz, text),
    loyalty_router.kpi_merge_on(integer, jsonb), loyalty_router.node_routes(),
    loyalty_router.config_digest_on(integer), loyalty_router.config_digests()
    TO loyalty_analyst, loyalty_marketer, loyalty_admin;
GRANT SELECT ON loyalty_router.config TO loyalty_analyst;
GRANT EXECUTE ON FUNCTION
    loyalty_router.move_customer(text, integer), loyalty_router.export_on(integer, bigint),
    loyalty_router.import_on(integer, jsonb), loyalty_router.remove_on(integer, bigint, jsonb, integer)
    TO loyalty_admin;
GRANT EXECUTE ON FUNCTION
    loyalty_router.phone_key(text, integer), loyalty_router.customer_key(text),
    loyalty_router.route_key(text), loyalty_router.unwrap(jsonb),
    loyalty_router.call(integer, text, jsonb), loyalty_router.card_home_on(integer, text),
    loyalty_router.purchase_routes(text), loyalty_router.order_routes(text),
    loyalty_router.partition_of(text), loyalty_router.partition_of(bigint),
    loyalty_router.partition_of(jsonb), loyalty_router.refund_route(jsonb),
    loyalty_router.order_route(jsonb), loyalty_router.write_call(text, integer, jsonb),
    loyalty_router.write_on(integer, integer, text, jsonb), loyalty_router.ident(jsonb),
    loyalty_router.moved_home(integer, text), loyalty_router.routed(integer, text, jsonb, text),
    loyalty_router.checked(integer, text, jsonb), loyalty_router.code_call(integer, text, jsonb, jsonb),
    loyalty_router.code_after(integer, jsonb)
    TO loyalty_cashier, loyalty_marketer, loyalty_admin;
GRANT SELECT ON loyalty_router.config TO loyalty_cashier, loyalty_marketer, loyalty_admin;

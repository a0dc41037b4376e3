# scripts/test_shard.sh: the "shard" part of scripts/test.sh (issue 20, SPEC
# section 14, docs/scale-out.md), sourced by it.
#
# Starts a router cluster (plproxy + loyalty_router) over two shard clusters
# and a single node, all with the same program (demo/program.sql) and clock
# (loyalty.test_now), replays one generated request stream through the
# router and on the single node, and asserts: the same responses line by
# line (customer ids, card numbers and issued codes masked), the same
# balances for every customer, the same KPI sums (shards added up), an empty
# verify_ledger() on every shard, customers spread over both shards, each
# phone spelling registered once, and an unknown customer raised by the
# router with the shard's SQLSTATE, message and detail.
#
# P logical partitions: 8 when the shards have loyalty.partitioning
# (ids and cards carry the partition), else 2 (one per node: phones route
# by hash, ids and cards are not routable yet and the stream uses phones).

# shard_stream SEED prints the request stream: one SQL statement a line,
# each wrapped by the caller's t(); "$q$" quotes the statement.
shard_stream() {
    awk -v seed="$1" '
    function phone(i, s,   n) {
        n = sprintf("%07d", 1000000 + i)
        s = s % 4
        if (s == 0) return "+7 912 " substr(n, 1, 3) "-" substr(n, 4, 2) "-" substr(n, 6, 2)
        if (s == 1) return "8 (912) " n
        if (s == 2) return "7912" n
        return "912" n
    }
    function lines(   k, i, out, sku) {
        k = 1 + int(rand() * 4); out = ""
        for (i = 0; i < k; i++) {
            sku = skus[int(rand() * nsku)]
            out = out (i ? ", " : "") "{\"sku\": \"" sku "\", \"qty\": " (1 + int(rand() * 3)) "}"
        }
        return out
    }
    function q(s) { print "$q$" s "$q$" }
    BEGIN {
        srand(seed); nsku = split("A1 A2 MASK1 SH1 DET1 AV1 LZ1 BAG", a, " ")
        for (i = 1; i <= nsku; i++) skus[i - 1] = a[i]
        ncust = 60; nbuy = 0
        for (i = 1; i <= ncust; i++)
            q("SELECT loyalty.register(\x27" phone(i, i) "\x27)")
        # second spellings find the same customer (one row each, not two)
        for (i = 1; i <= ncust; i += 3)
            q("SELECT loyalty.register(\x27" phone(i, i + 1) "\x27)")
        for (i = 1; i <= ncust; i += 2)
            q("SELECT loyalty.adjust(\x27{\"operation_id\": \"G" i "\", \"customer\": \"" phone(i, i + 2) \
              "\", \"account\": \"main\", \"points\": " (100 * (1 + i % 5)) ", \"reason\": \"welcome\"}\x27)")
        for (n = 1; n <= 300; n++) {
            c = 1 + int(rand() * (ncust + 6))
            cust = (c > ncust) ? "" : ", \"customer\": \"" phone(c, n) "\""
            store = (rand() < 0.5) ? "S017" : "S042"
            red = (rand() < 0.3) ? ", \"redeem\": \"max\"" : ""
            req = "\"store\": \"" store "\"" cust red ", \"lines\": [" lines() "]"
            if (rand() < 0.25)
                q("SELECT loyalty.calculate(\x27{" req "}\x27) - \x27at\x27")
            else {
                nbuy++; bought[nbuy] = "P" n; buyer[nbuy] = (c > ncust) ? 0 : c
                q("SELECT loyalty.purchase(\x27{\"operation_id\": \"P" n "\", " req "}\x27) - \x27at\x27")
            }
        }
        # refunds; every third naming the customer of the purchase (round 2)
        for (n = 1; n <= nbuy; n += 7)
            q("SELECT loyalty.refund(\x27{\"operation_id\": \"R" n "\", \"purchase\": \"" bought[n] "\"" \
              ((buyer[n] && n % 3 == 0) ? ", \"customer\": \"" phone(buyer[n], n + 2) "\"" : "") \
              ((n % 2) ? ", \"lines\": [{\"index\": 0, \"qty\": 1}]" : "") "}\x27)")
        # a purchase of another customer named with a customer: LY002
        if (buyer[1] != 9 && buyer[1])
            q("SELECT loyalty.refund(\x27{\"operation_id\": \"R-other\", \"purchase\": \"" bought[1] "\", \"customer\": \"" phone(9, 0) "\"}\x27)")
        # codes that are of no customer (issue 20 item 4): a certificate of 500 and
        # a mass code good for 3 uses live on their home shard; customers of
        # both shards spend them (held at home, guest copies, confirmed), a
        # refund gives a use back home, an unknown customer holds nothing
        for (i = 1; i <= 6; i++)
            q("SELECT loyalty.purchase(\x27{\"operation_id\": \"PG" i "\", \"store\": \"S017\", \"customer\": \"" phone(i, i) "\", \"coupons\": [\"" ((i % 2) ? "gift-0500" : "TEN-OFF") "\"], \"lines\": [{\"sku\": \"A1\", \"qty\": 1}, {\"sku\": \"SH1\", \"qty\": 1}]}\x27) - \x27at\x27")
        q("SELECT loyalty.calculate(\x27{\"store\": \"S017\", \"customer\": \"" phone(8, 0) "\", \"coupons\": [\"GIFT-0500\"], \"lines\": [{\"sku\": \"A2\", \"qty\": 1}]}\x27) - \x27at\x27")
        q("SELECT loyalty.refund(\x27{\"operation_id\": \"RG1\", \"purchase\": \"PG1\", \"customer\": \"" phone(1, 0) "\"}\x27)")
        q("SELECT loyalty.refund(\x27{\"operation_id\": \"RG2\", \"purchase\": \"PG2\", \"customer\": \"" phone(2, 0) "\"}\x27)")
        q("SELECT loyalty.purchase(\x27{\"operation_id\": \"PG9\", \"store\": \"S017\", \"customer\": \"+79990000000\", \"coupons\": [\"GIFT-0500\", \"TEN-OFF\"], \"lines\": [{\"sku\": \"A1\", \"qty\": 1}]}\x27)")
        q("SELECT loyalty.purchase(\x27{\"operation_id\": \"PG10\", \"store\": \"S042\", \"customer\": \"" phone(10, 0) "\", \"coupons\": [\"GIFT-0500\", \"NO-SUCH\"], \"lines\": [{\"sku\": \"LZ1\", \"qty\": 2}]}\x27) - \x27at\x27")
        # bounce-back coupons (BOUNCE, 10% from 1000) of anonymous checks of
        # 1224.00: the router moves each new code to its home partition; part
        # 2 uses the first one that was moved (@BB@); sixteen, so that one
        # lands on the other node but once in 32,768 runs (codes are random)
        for (i = 1; i <= 16; i++)
            q("SELECT loyalty.purchase(\x27{\"operation_id\": \"PB" i "\", \"store\": \"S042\", \"lines\": [{\"sku\": \"AV1\", \"qty\": 2}]}\x27) - \x27at\x27")
        # a plastic card attached through the router (directory on the
        # hash partition of the card, card row on the partition of the customer) and used
        q("SELECT loyalty.attach_card(\x27" phone(7, 2) "\x27, \x27PLC-0007\x27)")
        q("SELECT loyalty.attach_card(\x27" phone(7, 1) "\x27, \x27PLC-0007\x27)")
        q("SELECT loyalty.purchase(\x27{\"operation_id\": \"PC1\", \"store\": \"S017\", \"customer\": \"PLC-0007\", \"lines\": [{\"sku\": \"A1\", \"qty\": 2}, {\"sku\": \"SH1\", \"qty\": 1}]}\x27) - \x27at\x27")
        q("SELECT loyalty.purchase(\x27{\"operation_id\": \"PC2\", \"store\": \"S042\", \"customer\": \"" phone(7, 3) "\", \"lines\": [{\"sku\": \"LZ1\", \"qty\": 1}, {\"sku\": \"BAG\", \"qty\": 1}]}\x27) - \x27at\x27")
        # a campaign grant to ten listed customers (ids looked up where the
        # call runs): on every shard that holds some, customers summed; replayed
        for (k = 1; k <= 2; k++)
            q("SELECT loyalty.grant_points(jsonb_build_object(\x27operation_id\x27, \x27GP1\x27, \x27customers\x27, (SELECT jsonb_agg(loyalty.find_customer(\x27+7912\x27 || (1000000 + i)) ORDER BY i) FROM generate_series(1, 10) AS i), \x27account\x27, \x27main\x27, \x27points\x27, 25, \x27reason\x27, \x27campaign\x27))")
        # the router moves customer 7 to the other shard here (not on the single node)
        print "MOVE"
        # part 2 knows customers of each shard: @CA@ and @CA2@ on shard 0,
        # @CB@ and @CB2@ on shard 1 (the script fills them in)
        # a purchase with a code of another node that fails (LY004, far more
        # points than the customer has) leaves the code unused, its hold released
        q("SELECT loyalty.purchase(\x27{\"operation_id\": \"PF1\", \"store\": \"S042\", \"customer\": \"@CA@\", \"redeem\": 1000000, \"coupons\": [\"MASS-10\"], \"lines\": [{\"sku\": \"LZ1\", \"qty\": 1}]}\x27) - \x27at\x27")
        q("SELECT loyalty.purchase(\x27{\"operation_id\": \"PF2\", \"store\": \"S042\", \"customer\": \"@CB@\", \"redeem\": 1000000, \"coupons\": [\"MASS-10\"], \"lines\": [{\"sku\": \"LZ1\", \"qty\": 1}]}\x27) - \x27at\x27")
        # the mass code MASS-10 (3 uses, promotion MASS10: 10% off) by customers
        # of both shards: 154.00 - 15.40 = 138.60 three times, the fourth refused
        n = split("@CA@ @CB@ @CA2@ @CB2@", mc, " ")
        for (i = 1; i <= n; i++)
            q("SELECT loyalty.purchase(\x27{\"operation_id\": \"PMU" i "\", \"store\": \"S042\", \"customer\": \"" mc[i] "\", \"coupons\": [\"mass-10\"], \"lines\": [{\"sku\": \"LZ1\", \"qty\": 1}]}\x27) - \x27at\x27")
        # the bounce-back coupon (single use, 10% from 1000) of an anonymous
        # check by customers of both shards: 1224.00 - 122.40 = 1101.60 for
        # the first, the other refused; a refund gives the use back at home,
        # the other uses it, the first is refused, a refund again, a last use
        n = split("@CA@ ok PBU1;@CB@ no PBU2;R @CA@ PBU1;@CB@ ok PBU3;@CA@ no PBU4;R @CB@ PBU3;@CA2@ ok PBU5", bs, ";")
        for (i = 1; i <= n; i++) {
            split(bs[i], f, " ")
            if (f[1] == "R")
                q("SELECT loyalty.refund(\x27{\"operation_id\": \"R" f[3] "\", \"purchase\": \"" f[3] "\", \"customer\": \"" f[2] "\"}\x27)")
            else
                q("SELECT loyalty.purchase(\x27{\"operation_id\": \"" f[3] "\", \"store\": \"S017\", \"customer\": \"" f[1] "\", \"coupons\": [\"@BB@\"], \"lines\": [{\"sku\": \"AV1\", \"qty\": 2}]}\x27) - \x27at\x27")
        }
        q("SELECT loyalty.calculate(\x27{\"store\": \"S017\", \"customer\": \"" phone(7, 0) "\", \"redeem\": \"max\", \"lines\": [{\"sku\": \"A2\", \"qty\": 1}]}\x27) - \x27at\x27")
        q("SELECT loyalty.purchase(\x27{\"operation_id\": \"PM1\", \"store\": \"S017\", \"customer\": \"" phone(7, 1) "\", \"redeem\": 10, \"lines\": [{\"sku\": \"A2\", \"qty\": 1}, {\"sku\": \"DET1\", \"qty\": 2}]}\x27) - \x27at\x27")
        q("SELECT loyalty.purchase(\x27{\"operation_id\": \"PM2\", \"store\": \"S042\", \"customer\": \"PLC-0007\", \"lines\": [{\"sku\": \"MASK1\", \"qty\": 1}]}\x27) - \x27at\x27")
        q("SELECT loyalty.purchase(\x27{\"operation_id\": \"PM1\", \"store\": \"S017\", \"customer\": \"" phone(7, 2) "\", \"redeem\": 10, \"lines\": [{\"sku\": \"A2\", \"qty\": 1}, {\"sku\": \"DET1\", \"qty\": 2}]}\x27) - \x27at\x27")
        q("SELECT loyalty.refund(\x27{\"operation_id\": \"RM1\", \"purchase\": \"PC1\", \"customer\": \"" phone(7, 2) "\", \"lines\": [{\"index\": 0, \"qty\": 1}]}\x27)")
        q("SELECT loyalty.refund(\x27{\"operation_id\": \"RM2\", \"purchase\": \"PM1\", \"customer\": \"PLC-0007\"}\x27)")
        q("SELECT loyalty.adjust(\x27{\"operation_id\": \"AM1\", \"customer\": \"" phone(7, 3) "\", \"account\": \"main\", \"points\": 15, \"reason\": \"moved\"}\x27)")
        q("SELECT loyalty.register(\x27" phone(7, 2) "\x27) = loyalty.find_customer(\x27PLC-0007\x27)")
        # errors: unknown customer, insufficient points, a refund of nothing
        q("SELECT loyalty.calculate(\x27{\"store\": \"S017\", \"customer\": \"+79990000000\", \"lines\": [{\"sku\": \"A1\", \"qty\": 1}]}\x27)")
        q("SELECT loyalty.adjust(\x27{\"operation_id\": \"X1\", \"customer\": \"" phone(2, 0) "\", \"account\": \"main\", \"points\": -1000000, \"reason\": \"too much\"}\x27)")
        q("SELECT loyalty.refund(\x27{\"operation_id\": \"X2\", \"purchase\": \"no-such-purchase\"}\x27)")
        q("SELECT loyalty.find_customer(\x27+79990000000\x27)")
        # an online order held and captured
        q("SELECT loyalty.order_hold(\x27{\"operation_id\": \"H1\", \"order_id\": \"O1\", \"channel\": \"web\", \"store\": \"WEB\", \"customer\": \"" phone(5, 1) "\", \"redeem\": \"max\", \"lines\": [{\"sku\": \"A2\", \"qty\": 2}]}\x27) - \x27at\x27")
        q("SELECT loyalty.order_capture(\x27{\"operation_id\": \"C1\", \"order_id\": \"O1\"}\x27) - \x27at\x27")
        # every customer: balance and history, in another spelling
        for (i = 1; i <= ncust; i++) {
            q("SELECT string_agg(format(\x27%s %s %s %s\x27, account, available, pending, held), \x27; \x27) FROM loyalty.balance(\x27" phone(i, i + 3) "\x27, \x272026-06-02 00:00+03\x27)")
            q("SELECT string_agg(format(\x27%s %s %s %s\x27, kind, account, points, operation_id), \x27; \x27) FROM loyalty.history(\x27" phone(i, i + 1) "\x27)")
        }
    }'
}

# shard_t_sql: the function that runs one stream statement and prints its
# first column, or its error as "error SQLSTATE: message | detail | hint"
shard_t_sql() {
    cat <<'SQL'
CREATE FUNCTION public.t(q text) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE r text; st text; m text; d text; h text;
BEGIN
    EXECUTE q INTO r;
    RETURN 'ok ' || coalesce(r, 'NULL');
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
    RETURN format('error %s: %s | %s | %s', st, m, d, h);
END $f$;
SQL
}

# shard_mask: ids, card numbers and issued codes out of a response stream
shard_mask() {
    sed -E -e 's/"(customer|customer_id|id|purchase_id|order_ref)": [0-9]+/"\1": N/g' \
           -e 's/\b27[0-9]{11}\b/CARD/g' \
           -e 's/"codes": \[[^]]*\]/"codes": CODES/g' \
           -e 's/^ok [0-9]+$/ok ID/'
}

# run_shard is the part itself.
run_shard() {
    say "sharding: a PL/Proxy router over two shards against one node (scripts/test_shard.sh)"
    PART_FAILED=
    local q=(psql -X -q -A -t -v ON_ERROR_STOP=1) dirs=() d i p nodes stream a b out
    local now="ALTER DATABASE loyalty SET loyalty.test_now = '2026-06-01 12:00:00+03'"
    # three loyalty clusters: shard 0, shard 1, the single node
    for i in 0 1 2; do
        cluster_start loyalty
        dirs+=("$CLUSTER_DIR")
        createdb loyalty
        "${q[@]}" -d loyalty -c 'CREATE EXTENSION loyalty' -f demo/program.sql -c "$now" >/dev/null
        shard_t_sql | "${q[@]}" -d loyalty >/dev/null
        # the mass code's promotion: configuration, on every node
        "${q[@]}" -d loyalty -c "INSERT INTO loyalty.promotion (code, name, mechanic, rule, priority, requires_coupon)
            VALUES ('MASS10', 'Mass code: 10% off', 'percent_off', '{\"products\": {\"categories\": [\"all\"]}, \"percent\": 10}', 80, true)" >/dev/null
    done
    p=2
    if [ "$("${q[@]}" -d loyalty -c "SELECT to_regclass('loyalty.partitioning') IS NOT NULL")" = t ]; then
        p=8
        for d in "${dirs[@]}"; do
            "${q[@]}" -h "$d" -d loyalty -c "INSERT INTO loyalty.partitioning (partitions) VALUES ($p)" >/dev/null
        done
    fi
    # the router
    cluster_start router
    local router=$CLUSTER_DIR
    createdb router
    nodes="ARRAY['host=${dirs[0]} port=5432 dbname=loyalty user=postgres', 'host=${dirs[1]} port=5432 dbname=loyalty user=postgres']"
    "${q[@]}" -d router -c 'CREATE EXTENSION loyalty_router CASCADE' \
        -c "SELECT loyalty_router.setup(7, $p, $nodes)" >/dev/null
    shard_t_sql | "${q[@]}" -d router >/dev/null
    echo "P = $p logical partitions on 2 nodes"

    # the router's key and partition agree with the shard's own for every spelling
    a=$("${q[@]}" -h "$router" -d router -c "
        SELECT string_agg(loyalty_router.customer_key(s) || ' ' || (hashtext(loyalty_router.customer_key(s)) & ($p - 1))
                          || ' ' || (loyalty_router.route_key(s) & ($p - 1)), ',' ORDER BY s)
          FROM unnest(ARRAY['+7 912 100-00-01', '8 (912) 1000001', '79121000001', '9121000001',
                            '+7 912 100-00-07', '89121000007', ' 9121000007 ', '+44 20 7946 0958']) AS s")
    b=$("${q[@]}" -h "${dirs[0]}" -d loyalty -c "
        SELECT string_agg(s::loyalty.phone::text || ' ' || (hashtext(s::loyalty.phone::text) & ($p - 1))
                          || ' ' || (hashtext(s::loyalty.phone::text) & ($p - 1)), ',' ORDER BY s)
          FROM unnest(ARRAY['+7 912 100-00-01', '8 (912) 1000001', '79121000001', '9121000001',
                            '+7 912 100-00-07', '89121000007', ' 9121000007 ', '+44 20 7946 0958']) AS s")
    check "router key and partition equal the shard's for 8 spellings" [ -n "$a" -a "$a" = "$b" ]
    check "customer_key is immutable and national numbers take the configured country" \
        [ "$("${q[@]}" -h "$router" -d router -c "SELECT provolatile::text || ' ' || loyalty_router.customer_key('8 912 100 00 01') FROM pg_proc WHERE oid = 'loyalty_router.customer_key'::regproc")" = "i +79121000001" ]
    out=$("${q[@]}" -h "$router" -d router -c "UPDATE loyalty_router.config SET country = 44" 2>&1 || true)
    check "the router's country cannot change once set" grep -q "cannot change" <<<"$out"

    # the codes that are nobody's, on their home shard and on the single node
    local code codes="GIFT-0500 TEN-OFF MASS-10" chome
    for code in $codes; do
        chome=$("${q[@]}" -h "${dirs[0]}" -d loyalty -c "SELECT loyalty.code_home('$code') % 2")
        for d in "${dirs[$chome]}" "${dirs[2]}"; do
            "${q[@]}" -h "$d" -d loyalty -c "INSERT INTO loyalty.coupon (code, kind, value, balance, percent, max_uses, valid_from)
                SELECT '$code', k, v, v, pc, m, '2026-01-01' FROM (VALUES ('GIFT-0500', 'certificate'::loyalty.coupon_kind, 500, NULL::numeric, 1000000),
                                                            ('TEN-OFF', 'promo', NULL, 10, 3)) x(c, k, v, pc, m) WHERE c = '$code'" >/dev/null
            "${q[@]}" -h "$d" -d loyalty -c "INSERT INTO loyalty.coupon (code, promotion, kind, max_uses, valid_from)
                SELECT '$code', 'MASS10', 'promo', 3, '2026-01-01' WHERE '$code' = 'MASS-10'" >/dev/null
        done
    done
    # one stream, through the router and on the single node
    stream=$CLUSTER_DIR/stream.sql
    shard_stream 20 | sed '/^MOVE$/!{s/^/SELECT t(/; s/$/);/}' >"$stream"
    echo "stream: $(grep -vc '^MOVE$' "$stream") calls"
    sed '/^MOVE$/,$d' "$stream" >"$stream.1"
    sed '1,/^MOVE$/d' "$stream" >"$stream.2"
    "${q[@]}" -h "$router" -d router -f "$stream.1" >"$router/via_router.out"
    "${q[@]}" -h "${dirs[2]}" -d loyalty -f "$stream.1" >"$router/single.out"
    # part 2's customers of each shard (not customer 7, who moves) and the
    # bounce-back coupon: the first anonymous PBk whose code the router moved
    # home (exported: a guest copy on the issuing node); the same PBk's code
    # on the single node
    local ca cb bk rb sb
    ca=$("${q[@]}" -h "${dirs[0]}" -d loyalty -c "SELECT string_agg(phone::text, ' ' ORDER BY phone::text) FROM (SELECT phone FROM loyalty.customer
            WHERE phone::text BETWEEN '+79121000011' AND '+79121000040' ORDER BY phone::text LIMIT 2) x")
    cb=$("${q[@]}" -h "${dirs[1]}" -d loyalty -c "SELECT string_agg(phone::text, ' ' ORDER BY phone::text) FROM (SELECT phone FROM loyalty.customer
            WHERE phone::text BETWEEN '+79121000011' AND '+79121000040' ORDER BY phone::text LIMIT 2) x")
    read -r bk rb < <( { "${q[@]}" -h "${dirs[0]}" -d loyalty -F ' ' -c "SELECT substr(c.issued_by, 3), c.code FROM loyalty.coupon c JOIN loyalty.code_guest g USING (code) WHERE c.issued_by ~ '^PB[0-9]+$'"
                          "${q[@]}" -h "${dirs[1]}" -d loyalty -F ' ' -c "SELECT substr(c.issued_by, 3), c.code FROM loyalty.coupon c JOIN loyalty.code_guest g USING (code) WHERE c.issued_by ~ '^PB[0-9]+$'"; } | sort -n | head -n 1) || true
    sb=$("${q[@]}" -h "${dirs[2]}" -d loyalty -c "SELECT code FROM loyalty.coupon WHERE issued_by = 'PB${bk:-0}'")
    echo "shard 0: $ca; shard 1: $cb; bounce-back coupon of PB${bk:-?} moved home"
    check "customers of both shards for part 2 and a bounce-back coupon of an anonymous check moved home (PB${bk:-?} of PB1..PB16)" \
        [ "$(wc -w <<<"$ca $cb")" = 4 -a -n "$rb" -a -n "$sb" ]
    set -- $ca $cb
    sed -i -e "s/@CA@/$1/g; s/@CA2@/$2/g; s/@CB@/$3/g; s/@CB2@/$4/g" "$stream.2"
    sed -e "s/@BB@/$sb/g" "$stream.2" >"$stream.2s"
    sed -i -e "s/@BB@/$rb/g" "$stream.2"
    # customer 7 (a plastic card, purchases, refunds) moves to a partition
    # of the other shard through the router: export, import, remove
    local moved_from moved_to
    moved_from=$("${q[@]}" -h "$router" -d router -c "SELECT loyalty_router.partition_of('+79121000007') & ($p - 1)")
    moved_to=$(( (moved_from + 1) % p ))
    a=$("${q[@]}" -h "$router" -d router -c "SELECT (loyalty_router.move_customer('8 912 100-00-07', $moved_to)) - 'summary'")
    echo "moved: $a"
    check "customer 7 moved from partition $moved_from to $moved_to (the other shard) through the router" \
        [ "$(echo "$a" | grep -c "\"to\": $moved_to")" = 1 ]
    "${q[@]}" -h "$router" -d router -f "$stream.2" >>"$router/via_router.out"
    "${q[@]}" -h "${dirs[2]}" -d loyalty -f "$stream.2s" >>"$router/single.out"
    a=$(shard_mask <"$router/via_router.out" | sed "s/\"${rb:-@BB@}\"/\"BB\"/g")
    b=$(shard_mask <"$router/single.out" | sed "s/\"${sb:-@BB@}\"/\"BB\"/g")
    check "$(grep -c '^ok' "$router/single.out") answers and $(grep -c '^error' "$router/single.out") errors equal through the router and on one node" \
        [ -n "$a" -a "$a" = "$b" ]
    [ "$a" = "$b" ] || diff <(echo "$b") <(echo "$a") | head -n 20 || true
    check "the unknown customer is LY001 through the router, message and all" \
        grep -qF 'error LY001: customer not found | No customer has the phone, card or id "+79990000000".' "$router/via_router.out"

    # an operation_id reused for other customers (on other partitions too)
    # is LY003 through the router as on one node (the id's claim, s8e);
    # needs the shards' partitions
    if [ "$p" -gt 2 ]; then
        a=$("${q[@]}" -h "$router" -d router -c "
            SELECT string_agg(DISTINCT t(format(\$q\$SELECT loyalty.adjust('{\"operation_id\": \"G1\", \"customer\": \"+7912%s\",
                   \"account\": \"main\", \"points\": 7, \"reason\": \"again\"}')\$q\$, 1000000 + i)), ',')
              FROM generate_series(2, 9) AS i" | cut -c1-12)
        check "operation_id G1 reused for 8 other customers: LY003 through the router ($a)" [ "$a" = "error LY003:" ]
        # ids and virtual cards carry the partition: they route without a directory
        a=$("${q[@]}" -h "$router" -d router -c "
            SELECT count(*) FILTER (WHERE loyalty.find_customer('id:' || id) = id) || ' of ' || count(*)
              FROM (SELECT loyalty.find_customer('+7912' || (1000000 + i)) AS id FROM generate_series(1, 60) AS i) x")
        check "id:N finds each of the 60 customers through the router ($a)" [ "$a" = "60 of 60" ]
        b=$( { "${q[@]}" -h "${dirs[0]}" -d loyalty -c "SELECT number || ' ' || customer_id FROM loyalty.card WHERE kind = 'virtual'"
               "${q[@]}" -h "${dirs[1]}" -d loyalty -c "SELECT number || ' ' || customer_id FROM loyalty.card WHERE kind = 'virtual'"; } |
             while read -r card id; do
                 [ "$("${q[@]}" -h "$router" -d router -c "SELECT loyalty.find_customer('$card')")" = "$id" ] && echo ok
             done | wc -l)
        check "each virtual card finds its customer through the router ($b of 60)" [ "$b" = 60 ]
    fi

    # both shards hold customers; together exactly the single node's
    a=$("${q[@]}" -h "${dirs[0]}" -d loyalty -c "SELECT count(*) FROM loyalty.customer")
    b=$("${q[@]}" -h "${dirs[1]}" -d loyalty -c "SELECT count(*) FROM loyalty.customer")
    check "customers on both shards ($a + $b = 60, no duplicate spelling)" [ "$a" -gt 0 -a "$b" -gt 0 -a $((a + b)) = 60 ]
    check "the single node has 60 customers too" \
        [ "$("${q[@]}" -h "${dirs[2]}" -d loyalty -c "SELECT count(*) FROM loyalty.customer")" = 60 ]

    # KPI sums: the additive columns of both shards add up to the single node's
    local kpi="SELECT sum(checks), sum(identified_checks), sum(revenue), sum(customers), sum(points_earned),
                      sum(points_spent), sum(points_reversed)
                 FROM loyalty.kpi('2026-01-01', '2027-01-01', 'store')"
    a=$( { "${q[@]}" -h "${dirs[0]}" -d loyalty -F ' ' -c "$kpi"; "${q[@]}" -h "${dirs[1]}" -d loyalty -F ' ' -c "$kpi"; } |
         awk '{ for (i = 1; i <= NF; i++) s[i] += $i } END { for (i = 1; i <= 7; i++) printf "%s ", s[i] }')
    b=$("${q[@]}" -h "${dirs[2]}" -d loyalty -F ' ' -c "$kpi" | awk '{ for (i = 1; i <= NF; i++) printf "%s ", $i + 0 }')
    check "KPI sums of the shards equal the single node's ($b)" [ -n "$b" -a "$a" = "$b" ]
    # the KPI through the router (kpi_parts on every shard, kpi_merge) is
    # the single node's kpi, ratios and all
    for by in day store; do
        a=$("${q[@]}" -h "$router" -d router -c "SELECT * FROM loyalty.kpi('2026-01-01', '2027-01-01', '$by') ORDER BY 1")
        b=$("${q[@]}" -h "${dirs[2]}" -d loyalty -c "SELECT * FROM loyalty.kpi('2026-01-01', '2027-01-01', '$by') ORDER BY 1")
        check "kpi by $by through the router equals the single node's ($(echo "$b" | wc -l) rows)" [ -n "$b" -a "$a" = "$b" ]
    done
    # every shard prices with the same rules as the single node
    a=$("${q[@]}" -h "$router" -d router -c "SELECT count(DISTINCT digest) || ' ' || min(digest) || ' ' || count(*) FROM loyalty_router.config_digests()")
    b=$("${q[@]}" -h "${dirs[2]}" -d loyalty -c "SELECT '1 ' || loyalty.config_digest() || ' 2'")
    check "config_digest() is one value on both shards and the single node's" [ -n "$b" -a "$a" = "$b" ]
    # the moved customer is on the other shard only; its old node answers moved_home
    a=$("${q[@]}" -h "${dirs[$((moved_from % 2))]}" -d loyalty -c "SELECT count(*) FROM loyalty.customer WHERE phone::text = '+79121000007'")
    b=$("${q[@]}" -h "${dirs[$((moved_to % 2))]}" -d loyalty -c "SELECT count(*) FROM loyalty.customer WHERE phone::text = '+79121000007'")
    check "customer 7 lives on the target shard only ($a on the source, $b on the target)" [ "$a" = 0 -a "$b" = 1 ]

    # customer idempotency (one round trip, no claim): the same operation_id
    # for customers on the two shards commits on each (documented)
    "${q[@]}" -h "$router" -d router -c "UPDATE loyalty_router.config SET idempotency = 'customer'" >/dev/null
    a=$("${q[@]}" -h "$router" -d router -c "
        SELECT count(*) FILTER (WHERE x LIKE 'ok %') || ' ok, ' || count(*) FILTER (WHERE x LIKE 'error LY003:%') || ' LY003'
          FROM (SELECT t(format(\$q\$SELECT loyalty.adjust('{\"operation_id\": \"CUST-1\", \"customer\": \"+7912%s\",
                       \"account\": \"main\", \"points\": 1, \"reason\": \"mode\"}')\$q\$, 1000000 + i)) AS x
                  FROM generate_series(1, 8) AS i) s")
    "${q[@]}" -h "$router" -d router -c "UPDATE loyalty_router.config SET idempotency = 'strict'" >/dev/null
    check "customer idempotency: CUST-1 for 8 customers commits once on each shard, LY003 for the rest ($a)" \
        [ "$a" = "2 ok, 6 LY003" ]

    # the codes at home equal the single node's; no hold left open
    if [ "$p" -gt 2 ]; then
        local cq="SELECT string_agg(code || ' ' || uses || ' ' || coalesce(balance::text, '-') || ' ' || status, ', ' ORDER BY code)
                    FROM loyalty.coupon WHERE code IN ('GIFT-0500', 'TEN-OFF', 'MASS-10') AND code NOT IN (SELECT code FROM loyalty.code_guest)"
        a=$( { "${q[@]}" -h "${dirs[0]}" -d loyalty -c "$cq"; "${q[@]}" -h "${dirs[1]}" -d loyalty -c "$cq"; } | grep . | sort | paste -sd ';')
        b=$("${q[@]}" -h "${dirs[2]}" -d loyalty -c "$cq")
        check "codes of other nodes: uses and balances at home equal the single node's ($b)" [ -n "$b" -a "$(tr ';' ',' <<<"$a" | tr -d ' ')" = "$(tr -d ' ' <<<"$b")" ]
        a=$( { "${q[@]}" -h "${dirs[0]}" -d loyalty -c "SELECT count(*) FROM loyalty.code_hold WHERE state = 'held'"
               "${q[@]}" -h "${dirs[1]}" -d loyalty -c "SELECT count(*) FROM loyalty.code_hold WHERE state = 'held'"; } | awk '{ s += $1 } END { print s + 0 }')
        b=$( { "${q[@]}" -h "${dirs[0]}" -d loyalty -c "SELECT count(*) FROM loyalty.code_hold"
               "${q[@]}" -h "${dirs[1]}" -d loyalty -c "SELECT count(*) FROM loyalty.code_hold"; } | awk '{ s += $1 } END { print s + 0 }')
        check "no code hold left open, $b holds made" [ "$a" = 0 -a "$b" -gt 0 ]
        # the failed purchases (LY004) with MASS-10: through the router as on
        # one node, the holds made for them released, the code's 3 uses are
        # PMU1..PMU3's
        a=$(grep -c '^error LY004: ' "$router/via_router.out"); b=$(grep -c '^error LY004: ' "$router/single.out")
        local hq="SELECT string_agg(hold_id || ' ' || state || ' ' || uses, ', ' ORDER BY hold_id) FROM loyalty.code_hold WHERE hold_id IN ('PF1', 'PF2')"
        local h0 h1
        h0=$("${q[@]}" -h "${dirs[0]}" -d loyalty -c "$hq"); h1=$("${q[@]}" -h "${dirs[1]}" -d loyalty -c "$hq")
        check "a failed purchase with a code of another node (LY004, $a of $b) leaves its hold released and the code unused ($h0$h1)" \
            [ "$a" = "$b" -a "$a" -ge 2 -a "$h0$h1" = "PF1 released 0" -o "$a" = "$b" -a "$a" -ge 2 -a "$h0$h1" = "PF2 released 0" ]
        b=$("${q[@]}" -h "${dirs[2]}" -d loyalty -c "SELECT string_agg(operation_id, ' ' ORDER BY operation_id) FROM loyalty.coupon_use WHERE code = 'MASS-10'" 2>&1)
        check "MASS-10 used by PMU1..PMU3 on the single node, PMU4 refused ($b)" [ "$b" = "PMU1 PMU2 PMU3" ]
        # the bounce-back coupon at home (not the guest copy on the issuing
        # node) equals the single node's: one use left after two refunds
        local bq="SELECT uses || ' ' || max_uses || ' ' || status FROM loyalty.coupon WHERE code = '%s' AND code NOT IN (SELECT code FROM loyalty.code_guest)"
        a=$( { "${q[@]}" -h "${dirs[0]}" -d loyalty -c "$(printf "$bq" "$rb")"; "${q[@]}" -h "${dirs[1]}" -d loyalty -c "$(printf "$bq" "$rb")"; } | grep .)
        b=$("${q[@]}" -h "${dirs[2]}" -d loyalty -c "$(printf "$bq" "$sb")")
        check "the bounce-back coupon at home: uses and status equal the single node's ($b)" [ -n "$b" -a "$a" = "$b" -a "$b" = "1 1 used" ]
        a=$(grep -c 'PBU[1-5]' "$stream.2")
        check "the bounce-back coupon: 5 purchases and 2 refunds by customers of both shards ($a calls)" [ "$a" = 7 ]
    fi
    for i in 0 1 2; do
        check "verify_ledger() is empty on $( [ $i = 2 ] && echo 'the single node' || echo "shard $i")" \
            [ "$("${q[@]}" -h "${dirs[$i]}" -d loyalty -c 'SELECT count(*) FROM loyalty.verify_ledger()')" = 0 ]
    done

    [ -z "$PART_FAILED" ] || { BROKEN+=(shard); for d in "${dirs[@]}" "$router"; do CLUSTER_DIR=$d cluster_log_tail; done; }
    [ -z "${SHARD_KEEP:-}" ] || cp "$router"/*.out "$stream" "$SHARD_KEEP"/
    for d in "${dirs[@]}" "$router"; do CLUSTER_DIR=$d; cluster_stop; done
}

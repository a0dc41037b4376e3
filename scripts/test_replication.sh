# scripts/test_replication.sh: the "replication" part of scripts/test.sh
# (sourced by it; uses scripts/lib.sh's clusters and test.sh's check).
#
# Issue 20, item 6: a configuration master (wal_level = logical) publishes
# loyalty.config_tables(); a shard subscribes, exactly as docs/scale-out.md
# says.  Asserted: the initial copy gives both nodes the same
# config_digest(); a promotion changed on the master changes what an
# already-running shard session prices (its configuration cache is
# invalidated by the apply worker) within a bounded wait; a tier's accrual
# changed and the tier renamed on the master reach the shard's customers
# (the rename follows to customer.tier, which ON UPDATE CASCADE does not do
# on a subscriber); at the end the digests are equal again and the shard
# prices an anonymous check exactly as the master.

# repl_wait SECONDS SQL: polls SQL on the shard until it returns t.
repl_wait() {
    local limit=$1 sql=$2 i
    for i in $(seq 1 $((limit * 10))); do
        [ "$("${SHARD_Q[@]}" -c "$sql")" = t ] && return 0
        sleep 0.1
    done
    return 1
}

run_replication() {
    say "configuration replication: a configuration master and a subscribed shard"
    PART_FAILED=
    local q=(psql -X -q -A -t -v ON_ERROR_STOP=1) master conn pub a b d0 out
    local anon='{"store": "S017", "lines": [{"sku": "A1", "qty": 2}]}'
    local anna='{"customer": "+79120000001", "store": "S017", "lines": [{"sku": "A1", "qty": 2}]}'

    cluster_start loyalty_master "wal_level = logical" "max_wal_senders = 10" "max_replication_slots = 10"
    master=$CLUSTER_DIR
    local M=("${q[@]}" -h "$master" -d loyalty_master)
    createdb loyalty_master
    "${M[@]}" -c 'CREATE EXTENSION loyalty' -f demo/program.sql >/dev/null
    # the publication: every configuration table (docs/scale-out.md)
    pub=$("${M[@]}" -c "SELECT format('CREATE PUBLICATION loyalty_config FOR TABLE %s',
                                      string_agg(t::text, ', '))
                          FROM loyalty.config_tables() t")
    "${M[@]}" -c "$pub"

    CLUSTER_DIR=
    cluster_start loyalty_shard "max_logical_replication_workers = 8" "max_worker_processes = 16"
    SHARD_Q=("${q[@]}" -h "$CLUSTER_DIR" -d loyalty_shard)
    createdb -h "$CLUSTER_DIR" loyalty_shard
    conn="host=$master port=5432 dbname=loyalty_master user=postgres"
    # a fresh shard: its configuration tables must be empty for the initial
    # copy (only the shipped RFM boxes are there; the master's come over)
    "${SHARD_Q[@]}" -c 'CREATE EXTENSION loyalty' -c 'CREATE EXTENSION dblink' \
        -c 'DELETE FROM loyalty.rfm_segment' \
        -c "CREATE SUBSCRIPTION loyalty_config CONNECTION '$conn' PUBLICATION loyalty_config" 2>&1 |
        grep -v 'created replication slot' || true
    d0=$("${M[@]}" -c 'SELECT loyalty.config_digest()')
    check "initial copy: the shard's config_digest() equals the master's within 30 s" \
        repl_wait 30 "SELECT loyalty.config_digest() = '$d0'"
    a=$("${M[@]}" -c "SELECT loyalty.calculate('$anon') -> 'totals'")
    b=$("${SHARD_Q[@]}" -c "SELECT loyalty.calculate('$anon') -> 'totals'")
    check "the shard prices a check as the master ($b)" [ -n "$a" -a "$a" = "$b" ]
    "${SHARD_Q[@]}" -c "SELECT loyalty.register('+79120000001')" \
        -c "UPDATE loyalty.customer SET tier = 'gold'" >/dev/null

    # one shard session prices (its cache is built), the master changes
    # COSM30 from 30 % to 40 % (through dblink, from this same session),
    # and the session prices again after each commit until the price moves:
    # 2 x 199.90 = 399.80, 30 % off 119.94 -> 279.86; 40 % off 159.92 -> 239.88
    "${SHARD_Q[@]}" >/dev/null -c "CREATE TABLE repl_result (what text, before text, after text, ms numeric)" -c "
        DO \$\$
        DECLARE
            before text;
            after text;
            t0 timestamptz;
        BEGIN
            before := loyalty.calculate('$anon') -> 'totals' ->> 'total';
            COMMIT;
            PERFORM dblink_exec('$conn', \$q\$UPDATE loyalty.promotion
                SET rule = jsonb_set(rule, '{percent}', '40') WHERE code = 'COSM30'\$q\$);
            t0 := clock_timestamp();
            FOR i IN 1..300 LOOP
                COMMIT;
                after := loyalty.calculate('$anon') -> 'totals' ->> 'total';
                EXIT WHEN after <> before;
                PERFORM pg_sleep(0.05);
            END LOOP;
            INSERT INTO repl_result VALUES ('promotion', before, after,
                round(extract(epoch FROM clock_timestamp() - t0) * 1000));
            COMMIT;
            -- the same for the customer's tier: gold accrues 10 %, then 12 %
            before := loyalty.calculate('$anna') -> 'totals' -> 'accrual' ->> 'main';
            COMMIT;
            PERFORM dblink_exec('$conn', \$q\$UPDATE loyalty.tier SET accrual_percent = 12
                                              WHERE code = 'gold'\$q\$);
            t0 := clock_timestamp();
            FOR i IN 1..300 LOOP
                COMMIT;
                after := loyalty.calculate('$anna') -> 'totals' -> 'accrual' ->> 'main';
                EXIT WHEN after IS DISTINCT FROM before;
                PERFORM pg_sleep(0.05);
            END LOOP;
            INSERT INTO repl_result VALUES ('tier', before, after,
                round(extract(epoch FROM clock_timestamp() - t0) * 1000));
        END
        \$\$"
    out=$("${SHARD_Q[@]}" -F ' ' -c "SELECT what, before, after, ms FROM repl_result ORDER BY what")
    sed 's/^/    /' <<<"$out"
    check "a running shard session prices the master's promotion change (279.86 -> 239.88) within 15 s" \
        grep -qx 'promotion 279.86 239.88 [0-9]*' <<<"$out"
    a=$("${SHARD_Q[@]}" -c "SELECT after FROM repl_result WHERE what = 'tier'")
    b=$("${SHARD_Q[@]}" -c "SELECT before FROM repl_result WHERE what = 'tier'")
    # 239.88 at 10 % = 23.988 -> 23 points; at 12 % = 28.7856 -> 28 (whole points, rounded down)
    check "and the master's tier change ($b -> $a points) within 15 s" [ "$b" = 23 -a "$a" = 28 ]

    # a renamed tier: the shard's customer follows (no cascade on a
    # subscriber; config_replica_follow does it) and keeps the 12 %
    "${M[@]}" -c "UPDATE loyalty.tier SET code = 'gold_plus' WHERE code = 'gold'"
    check "a tier renamed on the master renames the shard customer's tier" \
        repl_wait 15 "SELECT tier = 'gold_plus' FROM loyalty.customer"
    b=$("${SHARD_Q[@]}" -c "SELECT loyalty.calculate('$anna') -> 'totals' -> 'accrual' ->> 'main'")
    check "and the customer accrues as before the rename ($b)" [ -n "$b" -a "$a" = "$b" ]

    a=$("${M[@]}" -c 'SELECT loyalty.config_digest()')
    check "config_digest() changed on the master" [ "$a" != "$d0" ]
    check "and the shard's equals it again" repl_wait 15 "SELECT loyalty.config_digest() = '$a'"
    a=$("${M[@]}" -c "SELECT loyalty.calculate('$anon') -> 'totals'")
    b=$("${SHARD_Q[@]}" -c "SELECT loyalty.calculate('$anon') -> 'totals'")
    check "a new shard session prices a check as the master" [ -n "$a" -a "$a" = "$b" ]

    "${SHARD_Q[@]}" -c 'DROP SUBSCRIPTION loyalty_config' >/dev/null 2>&1 || true
    [ -z "$PART_FAILED" ] || { BROKEN+=(replication); cluster_log_tail; tail -n 20 "$master/server.log"; }
    cluster_stop
    CLUSTER_DIR=$master
    cluster_stop
}

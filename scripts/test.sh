#!/usr/bin/env bash
# scripts/test.sh: the whole test suite, each part on a fresh throwaway cluster:
# pg_regress, pgTAP, isolation specs, a pg_dump/pg_restore round trip, the
# full install script against the update chain, a streaming standby, and a
# smoke run of the benchmark harness.
#
#   sudo scripts/test.sh            everything: pg_regress, pgTAP, isolation
#   sudo scripts/test.sh regress    only pg_regress (also: includes, tap, isolation, dump, schema, standby, fuzz, bench)
#   REGRESS="ledger phone" sudo -E scripts/test.sh regress   only those files
#   sudo scripts/test.sh valgrind   pg_regress of the check API and ledger with
#                                   the server under valgrind (memcheck); not
#                                   part of "all": run it when memory handling
#                                   changes (REGRESS= picks other files)
#
# Installs what it needs, builds with -Werror, prints the regression diffs and
# the server log tail of a failing part, leaves no server running.
# FUZZ_SEED=N picks the fuzz part's seed (a failing run prints its own).
# .ci/run calls exactly this.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/test_replication.sh"
source "$(dirname "${BASH_SOURCE[0]}")/test_shard.sh"
need_root "$@"
PARTS=${1:-all}
START=$(date +%s)

ensure_packages
build_install
cd "$ROOT"

PASSED=0
FAILED=0
BROKEN=()

# run_regress runs every sql/*.sql against expected/*.out.
run_regress() {
    say "pg_regress (sql/, expected/)"
    cluster_start contrib_regression
    local out rc=0
    out=$(mktemp)
    # REGRESS="a b" runs only those files (a developer's shortcut)
    local only=()
    [ -n "${REGRESS:-}" ] && only=("REGRESS=$REGRESS")
    make -s PG_CONFIG="$PG_CONFIG" installcheck "${only[@]}" 2>&1 | tee "$out" || rc=$?
    PASSED=$((PASSED + $(grep -cE '\.\.\. ok' "$out" || true)))
    FAILED=$((FAILED + $(grep -cE '\.\.\. FAILED' "$out" || true)))
    if [ $rc -ne 0 ]; then
        BROKEN+=(pg_regress)
        [ -f regression.diffs ] && { echo "---- regression.diffs ----"; head -n 400 regression.diffs; }
        cluster_log_tail
    fi
    rm -f "$out"
    cluster_stop
}

# run_tap runs every test/pgtap/*.sql with pg_prove in a database with pgTAP.
run_tap() {
    local files=(test/pgtap/*.sql)
    [ -e "${files[0]}" ] || return 0
    say "pgTAP (test/pgtap/)"
    cluster_start loyalty_tap
    createdb loyalty_tap
    psql -X -q -d loyalty_tap -c 'CREATE EXTENSION pgtap'
    local out rc=0 tests failed
    out=$(mktemp)
    pg_prove -d loyalty_tap --ext .sql -v "${files[@]}" >"$out" 2>&1 || rc=$?
    grep -vE '^ok ' "$out" | grep -vE '^#? *$' || true
    tests=$(grep -oE 'Tests=[0-9]+' "$out" | tail -n 1 | cut -d= -f2)
    # a "not ok ... # TODO" is a known bug pg_prove expects to fail, not a failure
    failed=$(grep -E '^not ok ' "$out" | grep -vc '# TODO' || true)
    PASSED=$((PASSED + ${tests:-0} - failed))
    FAILED=$((FAILED + failed))
    if [ $rc -ne 0 ]; then
        BROKEN+=(pgTAP)
        [ "${tests:-0}" -gt 0 ] || FAILED=$((FAILED + 1))
        cluster_log_tail
    fi
    rm -f "$out"
    cluster_stop
}

# run_isolation runs every test/isolation/specs/*.spec.
run_isolation() {
    local files=(test/isolation/specs/*.spec)
    [ -e "${files[0]}" ] || return 0
    say "isolation (test/isolation/)"
    cluster_start isolation_regression
    local out rc=0
    out=$(mktemp)
    make -s PG_CONFIG="$PG_CONFIG" isolationcheck 2>&1 | tee "$out" || rc=$?
    PASSED=$((PASSED + $(grep -cE '\.\.\. ok' "$out" || true)))
    FAILED=$((FAILED + $(grep -cE '\.\.\. FAILED' "$out" || true)))
    if [ $rc -ne 0 ]; then
        BROKEN+=(isolation)
        local d=test/isolation/results/regression.diffs
        [ -f $d ] && { echo "---- $d ----"; head -n 400 $d; }
        cluster_log_tail
    fi
    rm -f "$out"
    cluster_stop
}

# check NAME CMD... runs a command as one test and counts it.
check() {
    local name=$1; shift
    if "$@"; then
        echo "ok - $name"; PASSED=$((PASSED + 1))
    else
        echo "not ok - $name"; FAILED=$((FAILED + 1)); PART_FAILED=1
    fi
}

# run_includes checks the layout of src/: no two modules (foo.c with foo.h)
# include each other, even through others (scripts/include_graph.sh), and
# the engine's files (the pipeline, the check core, the coupon stage, the
# mechanics) neither run SQL nor raise request errors (their objects, built
# by build_install, reference no SPI_ function and no request_error).
run_includes() {
    say "include graph of src/"
    PART_FAILED=
    check "no include cycle in src/" "$ROOT/scripts/include_graph.sh" --quiet
    check "engine_run runs no SQL and raises no request error" \
        bash -c '! nm -u src/engine.o src/check.o src/coupons_apply.o src/mechanics/*.o |
                 grep -E " (SPI_[a-z_]+|request_error)$"'
    [ -z "$PART_FAILED" ] || BROKEN+=(includes)
}

# run_dump dumps a program in use with pg_dump and restores it into a new
# database: every table and sequence the extension registers must come back
# row for row, and the restored program must go on working.
run_dump() {
    say "pg_dump and restore"
    cluster_start loyalty_src
    PART_FAILED=
    local q=(psql -X -q -A -t -v ON_ERROR_STOP=1) t a b
    createdb loyalty_src
    "${q[@]}" -d loyalty_src -c 'CREATE EXTENSION loyalty' -f demo/program.sql -f test/dump/data.sql >/dev/null
    # pg_dump warns about self-referencing tables (categories, merged
    # customers): that concerns data-only dumps, not this one
    check "pg_dump succeeds" pg_dump -Fc -d loyalty_src -f "$CLUSTER_DIR/loyalty.dump" 2>"$CLUSTER_DIR/pg_dump.log" ||
        cat "$CLUSTER_DIR/pg_dump.log"
    createdb loyalty_dst
    check "pg_restore succeeds" pg_restore --exit-on-error -d loyalty_dst "$CLUSTER_DIR/loyalty.dump"
    for t in $("${q[@]}" -d loyalty_src -c "
            SELECT c.oid::regclass::text || ':' || c.relkind::text
              FROM pg_extension e, unnest(e.extconfig) AS cfg(oid)
              JOIN pg_class c ON c.oid = cfg.oid
             WHERE e.extname = 'loyalty' ORDER BY 1"); do
        local rel=${t%:*} kind=${t##*:} sql
        if [ "$kind" = S ]; then
            sql="SELECT last_value FROM $rel"
        else
            sql="SELECT count(*) || ' ' || coalesce(md5(string_agg(x::text, ',' ORDER BY x::text)), '') FROM $rel x"
        fi
        a=$("${q[@]}" -d loyalty_src -c "$sql")
        b=$("${q[@]}" -d loyalty_dst -c "$sql")
        check "$rel restored as dumped ($a)" [ "$a" = "$b" ]
    done
    check "restored ledger verifies" [ "$("${q[@]}" -d loyalty_dst -c 'SELECT count(*) FROM loyalty.verify_ledger()')" = 0 ]
    # the sequences go on where they were, and a new customer gets one card
    a=$("${q[@]}" -d loyalty_dst -c "SELECT max(id) + 1 FROM loyalty.customer")
    b=$("${q[@]}" -d loyalty_dst -c "SELECT loyalty.register('+79129999999')")
    check "restored program registers the next customer ($b)" [ "$a" = "$b" ]
    check "the new customer has one card" [ "$("${q[@]}" -d loyalty_dst -c \
        "SELECT count(*) FROM loyalty.card WHERE customer_id = $b")" = 1 ]
    [ -z "$PART_FAILED" ] || { BROKEN+=(dump); cluster_log_tail; }
    cluster_stop
}

# schema_snapshot DB DIR: the loyalty schema of database DB as one file per
# pg_dump entry in DIR (sorted, so that only real differences show), plus
# what pg_dump cannot show of an extension: its version, member objects,
# pg_dump configuration and initial privileges.  Detaches the extension's
# objects in DB to dump them: use a throwaway database.
schema_snapshot() {
    local db=$1 dir=$2 q=(psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$1")
    mkdir -p "$dir"
    "${q[@]}" >"$dir/0-extension" -c "
        SELECT 'version ' || extversion FROM pg_extension WHERE extname = 'loyalty';
        SELECT 'member ' || pg_describe_object(classid, objid, objsubid)
          FROM pg_depend
         WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
           AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'loyalty')
         ORDER BY 1;
        SELECT format('config %s %s %L', i, c::regclass, e.extcondition[i])
          FROM pg_extension e, unnest(e.extconfig) WITH ORDINALITY AS u(c, i)
         WHERE e.extname = 'loyalty' ORDER BY i;
        SELECT format('initprivs %s %s %s', pg_describe_object(p.classoid, p.objoid, p.objsubid),
                      p.privtype, a.a)
          FROM pg_init_privs p, unnest(p.initprivs) AS a(a)
         WHERE p.privtype = 'e' ORDER BY 1;"
    # the members become ordinary objects, which pg_dump shows
    "${q[@]}" -c "
        DELETE FROM pg_init_privs WHERE privtype = 'e';
        DELETE FROM pg_depend
         WHERE (refclassid = 'pg_extension'::regclass OR classid = 'pg_extension'::regclass)
           AND (SELECT oid FROM pg_extension WHERE extname = 'loyalty') IN (refobjid, objid);
        DELETE FROM pg_extension WHERE extname = 'loyalty';"
    "$(dirname "$PG_CONFIG")/pg_dump" -d "$db" -n loyalty | awk -v dir="$dir" '
        /^\\(un)?restrict / { next }
        /^-- (Data for )?Name: / && prev == "--" {
            if (out != "") close(out)
            name = $0; gsub(/[^A-Za-z0-9_.,()=<>-]+/, "_", name)
            out = dir "/" substr(name, 4, 200)
            sorted = ($0 ~ /; Type: (ACL|TABLE DATA);/)
            print $0 > out; close(out)
            if (sorted) out = "sort >> \"" out "\""
            prev = $0; next
        }
        { if (out == "") out = dir "/0-preamble"
          if (out ~ /^sort /) print | out; else print >> out
          prev = $0 }'
}

# run_schema installs the current version twice, from its full script
# (extension/loyalty--<default_version>.sql) and as 0.1 updated step by step,
# and diffs pg_dump of the two (schema and the extension's default rows) and
# what pg_dump cannot show (membership, dump configuration, initial
# privileges): any difference is printed and fails the part.
run_schema() {
    say "schema: full install script against 0.1 updated step by step (pg_dump)"
    cluster_start loyalty_fresh
    PART_FAILED=
    local q=(psql -X -q -v ON_ERROR_STOP=1) dir=$CLUSTER_DIR/schema out n
    createdb loyalty_fresh
    createdb loyalty_updated
    "${q[@]}" -d loyalty_fresh -c 'CREATE EXTENSION loyalty'
    "${q[@]}" -d loyalty_updated -c "CREATE EXTENSION loyalty VERSION '0.1'" -c 'ALTER EXTENSION loyalty UPDATE'
    schema_snapshot loyalty_fresh "$dir/fresh"
    schema_snapshot loyalty_updated "$dir/updated"
    n=$(ls "$dir/fresh" | wc -l)
    check "pg_dump shows the extension's objects ($n entries)" [ "$n" -gt 300 ]
    out=$(cd "$dir" && diff -ru fresh updated) || true
    check "a fresh install and 0.1 updated step by step dump the same" [ -z "$out" ]
    if [ -n "$out" ]; then
        echo "---- diff -ru fresh updated (fresh: the full script; updated: the chain) ----"
        head -n 400 <<<"$out"
        BROKEN+=(schema)
    fi
    cluster_stop
}

# run_standby makes a streaming standby of a program in use: maintenance
# does nothing there (the primary's expiry reaches it by replication), the
# reading API answers from it exactly as on the primary, and a writing call
# is refused by the server as read-only.
run_standby() {
    say "a streaming standby"
    cluster_start loyalty_primary
    PART_FAILED=
    local q=(psql -X -q -A -t -v ON_ERROR_STOP=1) bindir sb lsn out a b i
    local calc='{"customer": "+79120000003", "store": "S017", "lines": [{"sku": "A1", "qty": 2}]}'
    createdb loyalty_primary
    "${q[@]}" -d loyalty_primary -c 'CREATE EXTENSION loyalty' -f demo/program.sql >/dev/null
    "${q[@]}" -d loyalty_primary >/dev/null -c "
        SELECT loyalty.register('+7912000000' || i) FROM generate_series(1, 3) AS i;
        SELECT loyalty.adjust(jsonb_build_object('operation_id', 'SB' || i, 'customer', '+79120000003',
                              'account', 'main', 'points', 100 * i, 'reason', 'standby test',
                              'expires_at', now() + i * interval '10 days'))
          FROM generate_series(1, 3) AS i;"
    bindir=$("$PG_CONFIG" --bindir)
    sb=$CLUSTER_DIR/standby
    runuser -u postgres -- "$bindir/pg_basebackup" -h "$CLUSTER_DIR" -p 5432 -U postgres \
        -D "$sb" -R -X stream -c fast
    echo "port = 5433" >> "$sb/postgresql.conf"
    runuser -u postgres -- "$bindir/pg_ctl" -D "$sb" -l "$CLUSTER_DIR/standby.log" -w start >/dev/null
    local s=("${q[@]}" -p 5433 -d loyalty_primary)
    check "the standby is in recovery" [ "$("${s[@]}" -c 'SELECT pg_is_in_recovery()')" = t ]
    a=$("${s[@]}" -c "SELECT loyalty.run_maintenance(now() + interval '15 days')")
    check "run_maintenance does nothing on the standby ($a)" [ "$a" = '{"skipped": "standby"}' ]
    out=$("${s[@]}" -c "CALL loyalty.run_maintenance_proc(now() + interval '15 days')" 2>&1)
    check "run_maintenance_proc does nothing on the standby" grep -q "standby, nothing to do" <<<"$out"
    # (the response's "at" is the moment of pricing)
    a=$("${q[@]}" -d loyalty_primary -c "SELECT loyalty.calculate('$calc') - 'at'")
    b=$("${s[@]}" -c "SELECT loyalty.calculate('$calc') - 'at'")
    check "the standby prices a check as the primary does" [ -n "$a" -a "$a" = "$b" ]
    out=$("${s[@]}" -v VERBOSITY=verbose -c "SELECT loyalty.purchase('{\"operation_id\": \"SB-P\", ${calc:1}')" 2>&1 || true)
    check "a purchase on the standby is refused as read-only (25006)" grep -q 25006 <<<"$out"
    # the primary's maintenance expires the first grant; the standby replays it
    "${q[@]}" -d loyalty_primary -c "SELECT loyalty.run_maintenance(now() + interval '15 days')" >/dev/null
    lsn=$("${q[@]}" -d loyalty_primary -c 'SELECT pg_current_wal_lsn()')
    for i in $(seq 1 100); do
        [ "$("${s[@]}" -c "SELECT pg_last_wal_replay_lsn() >= '$lsn'")" = t ] && break
        sleep 0.1
    done
    a=$("${q[@]}" -d loyalty_primary -c "SELECT available FROM loyalty.balance('+79120000003') WHERE account = 'main'")
    b=$("${s[@]}" -c "SELECT available FROM loyalty.balance('+79120000003') WHERE account = 'main'")
    check "after the primary's expiry the standby shows the same balance ($a = $b)" [ "$a" = 500 -a "$a" = "$b" ]
    a=$("${q[@]}" -d loyalty_primary -c "SELECT string_agg(kind || ' ' || points, ', ' ORDER BY id) FROM loyalty.history('+79120000003')")
    b=$("${s[@]}" -c "SELECT string_agg(kind || ' ' || points, ', ' ORDER BY id) FROM loyalty.history('+79120000003')")
    check "and the same history ($b)" [ "$a" = "$b" ]
    runuser -u postgres -- "$bindir/pg_ctl" -D "$sb" -m fast -w stop >/dev/null 2>&1 || true
    [ -z "$PART_FAILED" ] || { BROKEN+=(standby); cluster_log_tail; tail -n 20 "$CLUSTER_DIR/standby.log"; }
    cluster_stop
}

# run_fuzz sends generated input through the C library, in the server
# (test/fuzz/fuzz.sql, seeded, one subtransaction a call): tens of
# thousands of message patterns and locales through format_message, the
# template trigger and event_message, and of malformed API requests through
# calculate, purchase, refund, adjust, register and find_customer.  Errors
# are outcomes, counted by SQLSTATE; a crash (the server log) or an internal
# error (XX000) fails the part.  Bounded: each batch stops at its deadline.
run_fuzz() {
    say "fuzz (test/fuzz/fuzz.sql)"
    cluster_start loyalty_fuzz
    PART_FAILED=
    local q=(psql -X -q -A -t -v ON_ERROR_STOP=1 -d loyalty_fuzz) seed=${FUZZ_SEED:-14} b fn n
    local start=$SECONDS crashes internal calls
    createdb loyalty_fuzz
    "${q[@]}" -c 'CREATE EXTENSION loyalty' -f demo/program.sql -f test/fuzz/fuzz.sql >/dev/null
    "${q[@]}" -c "SELECT loyalty.register('+7912000000' || i) FROM generate_series(1, 3) AS i" >/dev/null
    # batches in sessions of their own, so that a crash costs one batch and
    # the rest still run; 8 s a batch at most (80,000 inputs take ~25 s on
    # an idle 2-core machine; a loaded one stops batches at their deadline,
    # so the floor below is half of that, enough to show every batch ran)
    for b in 1 2 3 4 5 6 7 8; do
        if [ $((b % 2)) = 1 ]; then fn=messages n=10000; else fn=requests n=10000; fi
        "${q[@]}" -c "SET client_min_messages = error" \
            -c "SELECT fuzz.$fn($n, $seed.$b / 100.0, clock_timestamp() + interval '8 s')" >/dev/null 2>&1 ||
            echo "fuzz batch $b ($fn, seed $seed.$b) broke off"
        for i in $(seq 1 30); do pg_isready -q && break; sleep 1; done
    done
    "${q[@]}" -F ' ' -c "SELECT rpad(area, 17) || sqlstate, n FROM fuzz.result ORDER BY area, sqlstate" |
        sed 's/^/    /'
    calls=$("${q[@]}" -c "SELECT coalesce(sum(n), 0) FROM fuzz.result WHERE area LIKE 'calls:%'")
    internal=$("${q[@]}" -c "SELECT coalesce(sum(n), 0) FROM fuzz.result WHERE sqlstate = 'XX000'")
    crashes=$(grep -cE 'terminated by signal|server process .* (was terminated|exited with exit code)' \
        "$CLUSTER_DIR/server.log" || true)
    echo "fuzz: $calls generated inputs in $((SECONDS - start)) s (seed $seed), $crashes crash(es), $internal internal error(s)"
    check "fuzz: at least 20000 inputs generated ($calls)" [ "$calls" -ge 20000 ]
    check "fuzz: no server crash (terminated by signal)" [ "$crashes" = 0 ]
    check "fuzz: no internal error (XX000)" [ "$internal" = 0 ]
    [ -z "$PART_FAILED" ] || { BROKEN+=(fuzz); cluster_log_tail; }
    cluster_stop
}

# run_bench runs the benchmark harness at its smallest scale: proof that it
# works (figures at this scale mean nothing; see docs/bench.md).
run_bench() {
    say "benchmark harness smoke run (bench/run --scale tiny)"
    if ! env LOYALTY_SKIP_BUILD=1 "$ROOT/bench/run" --scale tiny --duration 3 --no-build; then
        echo "not ok - bench/run --scale tiny"; FAILED=$((FAILED + 1)); BROKEN+=(bench)
    else
        echo "ok - bench/run --scale tiny"; PASSED=$((PASSED + 1))
    fi
}

# run_valgrind runs pg_regress files with the server under valgrind's
# memcheck and fails on any error report whose stack passes through
# loyalty.so (PostgreSQL itself, built without valgrind support, reports a
# few of its own, such as uninitialised padding written to WAL: those are
# listed by count, not failed on).
run_valgrind() {
    local files=${REGRESS:-"check_purchase check_refund check_coupons check_points tiers_coupons ledger messages phone"}
    say "pg_regress under valgrind: $files"
    command -v valgrind >/dev/null || {
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends valgrind
    }
    cluster_start contrib_regression
    local dir=$CLUSTER_DIR bindir out rc=0 ours others
    bindir=$("$PG_CONFIG" --bindir)
    runuser -u postgres -- "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
    runuser -u postgres -- bash -c "exec valgrind --quiet --trace-children=yes \
        --error-markers=VALGRIND-ERROR-BEGIN,VALGRIND-ERROR-END --num-callers=30 \
        --log-file='$dir/valgrind.%p.log' '$bindir/postgres' -D '$dir/data' \
        >>'$dir/server.log' 2>&1 &"
    local i
    for i in $(seq 1 120); do
        "$bindir/pg_isready" -q -h "$dir" && break
        sleep 1
    done
    out=$(mktemp)
    make -s PG_CONFIG="$PG_CONFIG" installcheck REGRESS="$files" 2>&1 | tee "$out" || rc=$?
    PASSED=$((PASSED + $(grep -cE '\.\.\. ok' "$out" || true)))
    FAILED=$((FAILED + $(grep -cE '\.\.\. FAILED' "$out" || true)))
    [ $rc -eq 0 ] || { BROKEN+=(valgrind); [ -f regression.diffs ] && head -n 200 regression.diffs; }
    runuser -u postgres -- "$bindir/pg_ctl" -D "$dir/data" -m fast -w -t 300 stop >/dev/null || true
    # the error blocks that name loyalty.so, and a count of the others
    awk '/VALGRIND-ERROR-BEGIN/ { block = ""; inb = 1 }
         inb { block = block $0 "\n" }
         /VALGRIND-ERROR-END/ { inb = 0; if (block ~ /loyalty\.so/) printf "%s", block }' \
        "$dir"/valgrind.*.log > "$dir/ours.txt" || true
    ours=$(grep -c 'VALGRIND-ERROR-BEGIN' "$dir/ours.txt" || true)
    others=$(cat "$dir"/valgrind.*.log | grep -c 'VALGRIND-ERROR-BEGIN' || true)
    others=$((others - ours))
    echo "valgrind: $ours error report(s) through loyalty.so, $others elsewhere in PostgreSQL"
    if [ "$others" -gt 0 ]; then
        # what the others are: their kind and innermost PostgreSQL frame
        awk '/VALGRIND-ERROR-BEGIN/ { kind = ""; frame = ""; n = 0 }
             /== [A-Z].*(uninitialised|Invalid|Mismatched|overlap)/ && kind == "" { sub(/^==[0-9]+== /, ""); kind = $0 }
             /(at|by) 0x/ && n < 2 { n++; f = $0; sub(/^.*: /, "", f); frame = frame (n > 1 ? " < " : "") f }
             /VALGRIND-ERROR-END/ { print kind " | " frame }' "$dir"/valgrind.*.log |
            sort | uniq -c | sort -rn | head -n 10
    fi
    if [ "$ours" -gt 0 ]; then
        head -n 200 "$dir/ours.txt"
        echo "not ok - valgrind found errors in loyalty.so"; FAILED=$((FAILED + 1)); BROKEN+=(valgrind)
    else
        echo "ok - valgrind: no error through loyalty.so"; PASSED=$((PASSED + 1))
    fi
    rm -f "$out"
    cluster_stop
}

case $PARTS in
    all)       run_includes; run_regress; run_tap; run_isolation; run_dump; run_schema; run_standby; run_replication; run_fuzz; run_shard; run_bench ;;
    regress)   run_regress ;;
    includes)  run_includes ;;
    tap)       run_tap ;;
    isolation) run_isolation ;;
    dump)      run_dump ;;
    schema)    run_schema ;;
    standby)   run_standby ;;
    replication) run_replication ;;
    fuzz)      run_fuzz ;;
    bench)     run_bench ;;
    shard)     run_shard ;;
    valgrind)  run_valgrind ;;
    *) echo "usage: $0 [all|regress|includes|tap|isolation|dump|schema|standby|replication|fuzz|shard|bench|valgrind]" >&2; exit 2 ;;
esac

say "done in $(( $(date +%s) - START )) s"
if [ ${#BROKEN[@]} -gt 0 ]; then
    echo "failing parts: ${BROKEN[*]}"
fi
echo "tests: $PASSED passed, $FAILED failed"
[ ${#BROKEN[@]} -eq 0 ]

#!/usr/bin/env bash
# scripts/test.sh: the whole test suite, each part on a fresh throwaway cluster.
#
#   sudo scripts/test.sh            everything: pg_regress, pgTAP, isolation
#   sudo scripts/test.sh regress    only pg_regress (also: tap, isolation)
#   REGRESS="ledger phone" sudo -E scripts/test.sh regress   only those files
#
# Installs what it needs, builds with -Werror, prints the regression diffs and
# the server log tail of a failing part, leaves no server running.
# .ci/run calls exactly this.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
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
    failed=$(grep -cE '^not ok ' "$out" || true)
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

case $PARTS in
    all)       run_regress; run_tap; run_isolation ;;
    regress)   run_regress ;;
    tap)       run_tap ;;
    isolation) run_isolation ;;
    *) echo "usage: $0 [all|regress|tap|isolation]" >&2; exit 2 ;;
esac

say "done in $(( $(date +%s) - START )) s"
if [ ${#BROKEN[@]} -gt 0 ]; then
    echo "failing parts: ${BROKEN[*]}"
fi
echo "tests: $PASSED passed, $FAILED failed"
[ ${#BROKEN[@]} -eq 0 ]

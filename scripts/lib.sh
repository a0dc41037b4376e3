# scripts/lib.sh: what demo.sh, test.sh and bench/run share.
#
# Installs the Debian packages the project needs, builds and installs the
# extension, and runs throwaway PostgreSQL clusters: owned by the postgres
# user, listening only on a unix socket in their own directory, pg_cron
# preloaded, stopped and removed when the calling script exits.
#
# Source it; it does not run anything by itself.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG_MAJOR=15
# LOYALTY_PG_CONFIG points at another (relocated copy of the) PostgreSQL tree,
# so that several developers on one machine can each install and test their
# own build without replacing each other's loyalty.so
PG_CONFIG=${LOYALTY_PG_CONFIG:-/usr/lib/postgresql/$PG_MAJOR/bin/pg_config}
PACKAGES=(build-essential pkg-config libicu-dev
          postgresql-$PG_MAJOR postgresql-server-dev-$PG_MAJOR
          postgresql-$PG_MAJOR-cron postgresql-$PG_MAJOR-pgtap
          libtap-parser-sourcehandler-pgtap-perl postgresql-$PG_MAJOR-plproxy)

CLUSTERS=()

# say prints a progress line.
say() { printf '\n== %s\n' "$*"; }

# need_root re-runs the calling script as root (through sudo) when it is not:
# packages and `make install` need root; the servers themselves run as postgres.
need_root() {
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || { echo "run this as root (no sudo here)" >&2; exit 1; }
        exec sudo --preserve-env=CI,REGRESS,LOYALTY_PG_CONFIG,LOYALTY_SKIP_BUILD "$0" "$@"
    fi
}

# ensure_packages installs whichever of PACKAGES is missing.
ensure_packages() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    say "installing Debian packages: ${missing[*]}"
    # no system-wide "main" cluster: every run makes its own
    mkdir -p /etc/postgresql-common
    grep -qs '^create_main_cluster' /etc/postgresql-common/createcluster.conf ||
        echo 'create_main_cluster = false' >> /etc/postgresql-common/createcluster.conf
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# build_install compiles with warnings as errors and installs the extension.
# A lock serializes builds of developers sharing one machine.
build_install() {
    # LOYALTY_SKIP_BUILD=1: test what is installed already (the caller built it)
    [ -n "${LOYALTY_SKIP_BUILD:-}" ] && return 0
    say "building and installing the extension"
    # one build at a time; the lock is held only while building, so a
    # long-running bench or demo does not block another run's build
    (
        flock 9
        make -C "$ROOT" -s PG_CONFIG="$PG_CONFIG" WERROR=1 &&
            make -C "$ROOT" -s PG_CONFIG="$PG_CONFIG" install
    ) 9>"/tmp/loyalty-build$(echo "$PG_CONFIG" | tr / _).lock"
}

# cluster_start DB starts a fresh cluster whose pg_cron uses database DB and
# points PGHOST/PGPORT/PGUSER at it.  Extra postgresql.conf lines may follow.
cluster_start() {
    local db=$1; shift
    local bindir dir
    bindir=$("$PG_CONFIG" --bindir)
    dir=$(mktemp -d /tmp/loyalty-pg.XXXXXX)
    chown postgres: "$dir"
    chmod 700 "$dir"
    CLUSTERS+=("$dir")
    runuser -u postgres -- "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust \
        --encoding=UTF8 --locale=C >"$dir/initdb.log" 2>&1 ||
        { cat "$dir/initdb.log" >&2; return 1; }
    {
        echo "listen_addresses = ''"
        echo "unix_socket_directories = '$dir'"
        echo "port = 5432"
        echo "shared_preload_libraries = 'pg_cron'"
        echo "cron.database_name = '$db'"
        echo "cron.host = '$dir'"
        echo "max_connections = 50"
        echo "log_min_messages = warning"
        echo "log_min_error_statement = panic"
        local line
        for line in "$@"; do echo "$line"; done
    } >> "$dir/data/postgresql.conf"
    runuser -u postgres -- "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w start >/dev/null ||
        { tail -n 50 "$dir/server.log" >&2; return 1; }
    export PGHOST=$dir PGPORT=5432 PGUSER=postgres
    CLUSTER_DIR=$dir
}

# cluster_log_tail prints the end of the current cluster's server log.
cluster_log_tail() {
    [ -n "${CLUSTER_DIR:-}" ] && [ -f "$CLUSTER_DIR/server.log" ] || return 0
    # errors the tests provoke on purpose are noise here; crashes are not
    echo "---- server log (last 40 lines other than ERROR reports) ----"
    grep -vE '\] (ERROR|DETAIL|HINT|CONTEXT|STATEMENT|NOTICE):|^\s' "$CLUSTER_DIR/server.log" | tail -n 40
}

# cluster_stop stops and removes the current cluster.
cluster_stop() {
    local dir=${CLUSTER_DIR:-}
    [ -n "$dir" ] || return 0
    runuser -u postgres -- "$("$PG_CONFIG" --bindir)/pg_ctl" -D "$dir/data" -m fast -w stop \
        >/dev/null 2>&1 || true
    rm -rf "$dir"
    CLUSTER_DIR=
}

# stop_all_clusters runs at exit: no server is left behind, whatever failed.
stop_all_clusters() {
    local dir
    for dir in "${CLUSTERS[@]}"; do
        if [ -d "$dir/data" ]; then
            runuser -u postgres -- "$("$PG_CONFIG" --bindir)/pg_ctl" -D "$dir/data" -m immediate -w stop \
                >/dev/null 2>&1 || true
            rm -rf "$dir"
        fi
    done
}
trap stop_all_clusters EXIT

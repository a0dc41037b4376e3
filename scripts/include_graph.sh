#!/usr/bin/env bash
# scripts/include_graph.sh: the include graph of src/ among the project's own
# files, by module (a module is foo.c with foo.h: "engine" stands for
# src/engine.c and src/engine.h).  Prints one edge "a -> b" per line (module a
# includes b's header) and fails, naming the loop, when the modules include
# each other in a cycle: a file's callers may include it, never the other way.
#
#   scripts/include_graph.sh            the edges; exit 1 on a cycle
#   scripts/include_graph.sh --quiet    only the verdict
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../src"

edges=$(
    find . -name '*.c' -o -name '*.h' -o -name '*.cpp' | sed 's|^\./||' | sort |
    while read -r f; do
        dir=$(dirname "$f")
        from=${f%.*}
        sed -n 's/^#include "\(.*\)".*/\1/p' "$f" | while read -r inc; do
            if [ -f "$dir/$inc" ]; then to="$dir/$inc"; elif [ -f "$inc" ]; then to=$inc; else continue; fi
            to=${to#./}
            to=${to%.*}
            [ "$to" = "$from" ] || [ "$to" = loyalty ] || echo "$from -> $to"
        done
    done | sort -u
)
[ "${1:-}" = --quiet ] || echo "$edges"
# tsort names the modules of a loop on stderr when there is one
loops=$(echo "$edges" | awk '{ print $1, $3 }' | tsort 2>&1 >/dev/null || true)
if [ -n "$loops" ]; then
    echo "include cycle among src/ modules:" >&2
    echo "$loops" >&2
    exit 1
fi
echo "no include cycle among $(echo "$edges" | awk '{ print $1; print $3 }' | sort -u | wc -l) src/ modules"

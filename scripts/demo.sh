#!/usr/bin/env bash
# scripts/demo.sh: the main job on a throwaway cluster.
#
#   scripts/demo.sh        (as root, or as a user with sudo)
#
# Installs what it needs, builds and installs the extension, starts a private
# cluster (pg_cron preloaded), loads the demo program (demo/program.sql) and
# shows what the extension does with it, then removes the cluster.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_root "$@"

ensure_packages
build_install
cd "$ROOT"

say "starting a throwaway cluster"
cluster_start loyalty_demo
createdb loyalty_demo
export PGDATABASE=loyalty_demo
PSQL=(psql -X -q -v ON_ERROR_STOP=1 -P pager=off)

"${PSQL[@]}" -c 'CREATE EXTENSION pg_cron' -c 'CREATE EXTENSION loyalty'
"${PSQL[@]}" -c "SELECT extname, extversion FROM pg_extension WHERE extname IN ('loyalty', 'pg_cron') ORDER BY 1"

say "loading the demo program (demo/program.sql)"
"${PSQL[@]}" -f demo/program.sql
"${PSQL[@]}" -c "
SELECT 'stores' AS what, count(*) FROM loyalty.store
UNION ALL SELECT 'categories', count(*) FROM loyalty.category
UNION ALL SELECT 'products', count(*) FROM loyalty.product
UNION ALL SELECT 'account types', count(*) FROM loyalty.account_type
UNION ALL SELECT 'tiers', count(*) FROM loyalty.tier
UNION ALL SELECT 'promotions', count(*) FROM loyalty.promotion"

say "identity"
"${PSQL[@]}" -f demo/identity.sql

say "a marketer's typo is refused with the field named"
"${PSQL[@]}" -v ON_ERROR_STOP=0 -c "INSERT INTO loyalty.promotion (code, name, mechanic, rule)
VALUES ('BAD', 'typo', 'percent_off', '{\"products\": {\"categories\": [\"face\"]}, \"percnet\": 30}')" 2>&1 || true

say "a day of checks: priced, committed, two receipts and the summary (demo/checks.sql)"
"${PSQL[@]}" -f demo/checks.sql

say "an online order: held on the web, half picked up in a store (demo/orders.sql)"
"${PSQL[@]}" -f demo/orders.sql
say "the analyst's view: KPIs, RFM, a segment, an experiment, the liability (demo/analyst.sql)"
"${PSQL[@]}" -f demo/analyst.sql

cluster_stop
say "done: the cluster is stopped and removed"

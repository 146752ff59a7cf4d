#!/usr/bin/env bash
# The stacklift demo: the shop on node1, shoppers with sessions, carts and orders, a client that
# keeps one connection busy the whole time, a migration to node2, and proof that nothing was lost.
set -euo pipefail
cd "$(dirname "$0")/../.."
py=.venv/bin/python
# ENGINE=docker (make demo ENGINE=docker): the shop runs on, and moves between, the hosts' Docker engines.
engine=(-e "stacklift_engine=${ENGINE:-podman}")
play() { .venv/bin/ansible-playbook -i .lab/inventory.yml -i examples/shop/inventory.yml "${engine[@]}" "$@"; }
client() { ip netns exec stacklift-client "$py" examples/shop/shopper.py "$@"; }
work=.lab/demo
rm -rf "$work" && mkdir -p "$work"

echo "== 1. deploy the shop on node1 (PostgreSQL, Redis, the web shop), on ${ENGINE:-podman}"
play examples/shop/reset.yml >/dev/null
play examples/shop/deploy.yml >/dev/null
echo "== 2. shoppers log in, fill carts, place orders"
client drive "$work/shoppers.json"
echo "== 3. a client keeps one connection busy through the migration"
client soak "$work/soak.json" --stop "$work/stop" &
soak=$!
trap 'touch "$work/stop"; wait $soak 2>/dev/null || true' EXIT
sleep 2
# ENCRYPT=1 (make demo ENCRYPT=1): the archives are encrypted at rest with the vaulted shop_archive_key.
encrypt=()
[ "${ENCRYPT:-}" = 1 ] && encrypt=(-e 'stacklift_encryption_key={{ shop_archive_key }}')
echo "== 4. ansible-playbook migrate_stack.yml: node1 -> node2${ENCRYPT:+ (archives encrypted)}"
play migrate_stack.yml "${encrypt[@]}" -e "stacklift_report_dir=$PWD/migration-reports" | tee "$work/migrate.log" | grep -E '^(TASK|PLAY RECAP)|downtime|report:|timeline:' || true
grep -q 'failed=0' "$work/migrate.log"
sleep 1; touch "$work/stop"; wait $soak; trap - EXIT
echo "== 5. what the client saw"
"$py" -c "import json,sys; d=json.load(open(sys.argv[1])); print('%d requests over %d connection(s), %d errors, slowest %.2f s (the pause), cart %s' % (d['requests'], d['connections'], len(d['errors']), d['max_latency_s'], d['cart']))" "$work/soak.json"
echo "== 6. sessions, carts, orders, TTLs, the shop's counters and its database connections, on node2"
client verify "$work/shoppers.json"
echo "== 7. the report"
report=$(grep -o 'report: [^"]*' "$work/migrate.log" | tail -1 | cut -d' ' -f2)
cat "${report%.json}.txt"
echo "report files: $report (+ .txt, .svg)"

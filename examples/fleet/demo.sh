#!/usr/bin/env bash
# The stacklift fleet demo: node1 runs three stacks (two shops on their own networks, a Redis-only
# sessions stack), each with a client; drain_host.yml empties node1, placing each stack on node2 or
# node3 by capacity (the two shops never on one host), all at once; nothing is lost.
set -euo pipefail
cd "$(dirname "$0")/../.."
py=.venv/bin/python
secrets=(-e @examples/shop/group_vars/all/secrets.yml)
play() { .venv/bin/ansible-playbook -i .lab/inventory.yml -i examples/fleet/fleet.stacks.yml "${secrets[@]}" "$@"; }
in_client() { ip netns exec stacklift-client "$@"; }
password() { .venv/bin/ansible -i examples/fleet/fleet.stacks.yml localhost "${secrets[@]}" -m debug -a "msg={{ $1 }}" | sed -n 's/.*"msg": "\(.*\)"/\1/p'; }
work=.lab/demo-fleet
rm -rf "$work" && mkdir -p "$work"

echo "== 1. three stacks on node1: shop, shop2 (PostgreSQL, Redis, the web shop each), sessions (Redis)"
play examples/shop/reset.yml >/dev/null
for s in shop shop2; do
  n=$([ $s = shop ] && echo 10 || echo 11)
  play examples/shop/deploy.yml -e "{\"stacklift_stack\": \"{{ hostvars.stack_$s.stacklift_stack_description }}\"}" \
    -e "{\"shop_addresses\": {\"db\": \"10.89.$n.2\", \"cache\": \"10.89.$n.3\", \"app\": \"10.89.$n.4\"}}" >/dev/null
done
play examples/fleet/sessions.yml >/dev/null
echo "== 2. shoppers on both shops; a client on each stack keeps one connection busy"
for s in shop:10 shop2:11; do
  SHOP_ADDRESS=10.89.${s#*:}.4 in_client "$py" examples/shop/shopper.py drive "$work/${s%:*}-shoppers.json"
  SHOP_ADDRESS=10.89.${s#*:}.4 in_client "$py" examples/shop/shopper.py soak "$work/${s%:*}-soak.json" --stop "$work/stop" &
done
REDIS_PASSWORD=$(password shop_cache_password) in_client "$py" examples/fleet/counter.py 10.89.12.3 "$work/sessions-soak.json" --stop "$work/stop" &
trap 'touch "$work/stop"; wait 2>/dev/null || true' EXIT
sleep 2
echo "== 3. ansible-playbook drain_host.yml -e stacklift_drain_host=node1"
play playbooks/drain_host.yml -e stacklift_drain_host=node1 -e "stacklift_report_dir=$PWD/migration-reports" \
  | tee "$work/drain.log" | grep -E '^PLAY|"[a-z0-9_]+: node[0-9]+ -> node[0-9]+"|fits on no target|fleet migration:|fleet report:|^stack_' || true
sleep 1; touch "$work/stop"; wait; trap - EXIT
echo "== 4. what the clients saw"
for s in shop shop2 sessions; do
  "$py" -c "import json,sys; d=json.load(open(sys.argv[1])); print('%-9s %d requests over %d connection(s), %d errors, slowest %.2f s' % (sys.argv[2], d['requests'], d['connections'], len(d['errors']), d['max_latency_s']))" "$work/$s-soak.json" $s
done
echo "== 5. sessions, carts, orders of both shops, where they are now"
for s in shop:10 shop2:11; do
  SHOP_ADDRESS=10.89.${s#*:}.4 in_client "$py" examples/shop/shopper.py verify "$work/${s%:*}-shoppers.json" | grep -E '"ok"'
done
echo "== 6. the fleet report"
report=$(grep -o 'fleet report: [^"]*' "$work/drain.log" | tail -1 | cut -d' ' -f3)
cat "${report%.json}.txt"
echo "report files: $report (+ .txt, .svg)"
grep -q 'failed=0' "$work/drain.log"

#!/usr/bin/env bash
# Live check of a RabbitMQ CLUSTER_MULTI_AZ broker, built the way the control plane builds
# one: three nodes on one user network (hostname = container name, spec uploaded with the
# archive API between create and start) and a 4th container, from the same image, running
# HAProxy with the control plane's rendered config. See live/README.md.
#
#   live/run-rabbitmq-cluster.sh VERSION BASE
#
# VERSION: 4.3 or 4.0 (berth/rabbitmq:VERSION must exist; its agent is replaced by
# target/release/broker-agent in a thin image rmqclu/rabbitmq:VERSION).
# BASE: host ports 127.0.0.1:BASE+0 amqp, +1 amqps, +2 management (all through the LB),
# +3 LB health (8404), +20..22 the nodes' agents (9180).
# Environment: PYTHON (with pika; default python3), HAPROXY_CFG (a rendered config; default:
# rendered by control-plane/src/domain/haproxy.rs's write_live_config), KEEP=1 (leave
# everything running), RMQCLU (name prefix, default rmqclu).
set -euo pipefail
V=$1 BASE=$2
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
P=${RMQCLU:-rmqclu}
PY=${PYTHON:-python3}
IMAGE=$P/rabbitmq:$V
NET=$P-net
NODES=("$P-n1" "$P-n2" "$P-n3")
LB=$P-lb
TOKEN=$P-token-0123456789abcdef
PW=adm1n-Passw0rd-$P
TD=$REPO/broker-agent/src/testdata
WORK=$(mktemp -d)

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.2f", b-a}'; }
cleanup() {
  if [ "${KEEP:-}" = 1 ]; then
    rm -rf "$WORK"; echo "KEEP=1: left ${NODES[*]} $LB $NET $IMAGE running" >&2; return
  fi
  docker rm -f "${NODES[@]}" "$LB" >/dev/null 2>&1 || true
  for n in "${NODES[@]}"; do docker volume rm "$n-data" >/dev/null 2>&1 || true; done
  docker network rm "$NET" >/dev/null 2>&1 || true
  docker rmi "$IMAGE" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
cleanup_before() { local KEEP=; cleanup; WORK=$(mktemp -d); }
cleanup_before

# Thin image: the engine image with this tree's agent.
mkdir "$WORK/ctx"
cp "$REPO/target/release/broker-agent" "$WORK/ctx/"
printf 'FROM berth/rabbitmq:%s\nCOPY broker-agent /usr/local/bin/broker-agent\n' "$V" >"$WORK/ctx/Dockerfile"
docker build -q -t "$IMAGE" "$WORK/ctx" >/dev/null
docker network create "$NET" >/dev/null

# One spec per node: the same users, cookie and member list; its own hostname and peers.
"$PY" - "$WORK" "$V" "$TOKEN" "$PW" "$TD" "${NODES[@]}" <<'EOF'
import json, sys
work, version, token, pw, td, *nodes = sys.argv[1:]
tls = {k: open(f"{td}/{f}").read() for k, f in
       [("cert_pem", "leaf.pem"), ("key_pem", "leaf.key"), ("ca_pem", "ca.pem")]}
for i, n in enumerate(nodes):
    spec = {
        "broker_id": "b-rmqclu", "engine_version": version,
        "engine": {"kind": "rabbitmq", "erlang_cookie": "RMQCLUCOOKIE0123456789ABCDEF"},
        "node": {"index": i, "count": len(nodes), "peers": [p for p in nodes if p != n],
                 "hostname": n, "topology": "cluster", "zone": "us-east-1" + "abc"[i]},
        "users": [{"username": "admin", "password": pw, "admin": True, "console_access": True},
                  {"username": "app", "password": pw + "-app"}],
        "agent_token": token, "plaintext": True, "tls": tls,
    }
    json.dump(spec, open(f"{work}/{n}.json", "w"))
EOF

upload() { # container dir file-in-dir source mode
  local t; t=$(mktemp -d); mkdir -m 755 "$t/$2"; cp "$4" "$t/$2/$3"; chmod "$5" "$t/$2/$3"
  tar -C "$t" --owner=0 --group=0 -c "$2" | docker cp - "$1:/etc/"; rm -rf "$t"
}
for i in "${!NODES[@]}"; do
  n=${NODES[$i]}
  docker volume create "$n-data" >/dev/null
  docker create --name "$n" --hostname "$n" --network "$NET" --memory 1g --memory-swap 1g \
    -v "$n-data:/var/lib/rabbitmq" -p "127.0.0.1:$((BASE + 20 + i)):9180" "$IMAGE" >/dev/null
  upload "$n" berth spec.json "$WORK/$n.json" 600
done

health() { curl -s -m 1 -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$((BASE + 20 + $1))/health"; }
state_of() { health "$1" | "$PY" -c 'import sys,json; h=json.load(sys.stdin); print(h["state"], len(h.get("cluster_running") or []))' 2>/dev/null || echo "down 0"; }

t0=$(now)
for n in "${NODES[@]}"; do docker start "$n" >/dev/null & done; wait
echo "started 3 nodes in $(since "$t0") s"
declare -A ready_at
formed=""
for _ in $(seq 1 1800); do
  all=1
  for i in "${!NODES[@]}"; do
    read -r st members < <(state_of "$i")
    if [ "$st" = ready ] && [ -z "${ready_at[$i]:-}" ]; then ready_at[$i]=$(since "$t0"); fi
    [ "$st" = ready ] && [ "$members" = 3 ] || all=0
    [ "$st" = failed ] && { echo "${NODES[$i]} failed: $(health "$i")"; exit 1; }
  done
  if [ $all = 1 ]; then formed=$(since "$t0"); break; fi
  sleep 0.1
done
for i in "${!NODES[@]}"; do echo "${NODES[$i]}: ready after ${ready_at[$i]:-never} s"; done
[ -n "$formed" ] || { echo "cluster not formed"; for i in 0 1 2; do health "$i"; echo; done; exit 1; }
echo "all 3 ready and reporting 3 running members after $formed s"
health 0; echo

# The load balancer: same image, haproxy instead of the agent.
cfg=${HAPROXY_CFG:-$WORK/haproxy.cfg}
if [ -z "${HAPROXY_CFG:-}" ]; then
  (cd "$REPO" && BERTH_HAPROXY_BACKENDS=$(IFS=,; echo "${NODES[*]}") \
    BERTH_HAPROXY_PORTS=amqp:5672:5672,amqps:5671:5671,console:15672:15672 BERTH_HAPROXY_OUT=$cfg \
    cargo test -q -p berth-control-plane --lib domain::haproxy::tests::write_live_config -- --ignored --exact >/dev/null)
fi
docker run --rm -v "$cfg:/etc/berth/haproxy.cfg:ro" --entrypoint haproxy "$IMAGE" -c -f /etc/berth/haproxy.cfg
docker create --name "$LB" --network "$NET" --entrypoint haproxy \
  -p "127.0.0.1:$BASE:5672" -p "127.0.0.1:$((BASE + 1)):5671" -p "127.0.0.1:$((BASE + 2)):15672" \
  -p "127.0.0.1:$((BASE + 3)):8404" "$IMAGE" -W -db -f /etc/berth/haproxy.cfg >/dev/null
upload "$LB" berth haproxy.cfg "$cfg" 644
t1=$(now)
docker start "$LB" >/dev/null
for _ in $(seq 1 200); do curl -sf -m 1 "http://127.0.0.1:$((BASE + 3))/healthz" >/dev/null && break; sleep 0.05; done
curl -sf -m 1 "http://127.0.0.1:$((BASE + 3))/healthz" >/dev/null || { docker logs "$LB"; exit 1; }
echo "LB /healthz 200 after $(since "$t1") s"
up() { curl -s -m 1 "http://127.0.0.1:$((BASE + 3))/stats;csv" | awk -F, '$1 ~ /^be_/ && $2 != "BACKEND" && $18 ~ /^UP/' | wc -l; }
for _ in $(seq 1 600); do [ "$(up)" = 9 ] && break; sleep 0.05; done
[ "$(up)" = 9 ] || { curl -s "http://127.0.0.1:$((BASE + 3))/stats;csv"; exit 1; }
echo "LB: all 9 servers UP after $(since "$t1") s"

"$PY" "$HERE/rmq_cluster_check.py" --amqp "$BASE" --amqps "$((BASE + 1))" --mgmt "$((BASE + 2))" \
  --health-base "$((BASE + 20))" --token "$TOKEN" --user admin --password "$PW" --ca "$TD/ca.pem" \
  --nodes "$(IFS=,; echo "${NODES[*]}")" --specs-dir "$WORK" ${CHECK_ARGS:-}
echo "LB log (server state changes):"
docker logs "$LB" 2>&1 | grep -v '^\[NOTICE\].*Loading success' | tail -20
t2=$(now); docker stop "$LB" >/dev/null
echo "LB docker stop: $(since "$t2") s, exit code $(docker inspect -f '{{.State.ExitCode}}' "$LB")"

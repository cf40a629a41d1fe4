#!/usr/bin/env bash
# Live proof of ActiveMQ active/standby (Topology::SharedStorage) with the freshly built
# agent: two containers of one broker on one user network and ONE named volume. See
# live/README.md.
#   live/run-activemq-pair.sh [HOSTPORT_BASE]     (default 49700; node a: BASE+0…8, b: BASE+10…18)
# Needs berth/activemq:5.17 and target/release/broker-agent (cargo build --release -p broker-agent).
# Creates (and removes at the end, unless KEEP=1) amqpair/activemq:test, amqpair-net,
# amqpair-data, amqpair-a, amqpair-b.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BASE=${1:-49700}
IMAGE=amqpair/activemq:test NET=amqpair-net VOL=amqpair-data
A=amqpair-a B=amqpair-b
PY="python3 $HERE/amq_pair.py"
WORK=$(mktemp -d)
TOKEN=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
PW=$(python3 -c 'import secrets; print("Pw-" + secrets.token_hex(8))')
LATE_PW=$(python3 -c 'import secrets; print("Late-" + secrets.token_hex(8))')

cleanup() {
  if [ "${KEEP:-}" = 1 ]; then echo "KEEP=1: left $A $B $VOL $NET $IMAGE ($WORK)"; return; fi
  docker rm -f "$A" "$B" >/dev/null 2>&1 || true
  docker volume rm "$VOL" >/dev/null 2>&1 || true
  docker network rm "$NET" >/dev/null 2>&1 || true
  docker rmi "$IMAGE" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

now() { date +%s.%N; }
api() { case $1 in "$A") echo $((BASE + 8)) ;; *) echo $((BASE + 18)) ;; esac; }
stomp_port() { case $1 in "$A") echo $((BASE + 1)) ;; *) echo $((BASE + 11)) ;; esac; }
state_of() { $PY health "$(api "$1")" "$TOKEN" | python3 -c 'import sys,json; print(json.load(sys.stdin)["state"])'; }
java_pid() { docker exec "$1" pgrep -f activemq.jar | head -1; }
say() { printf '\n== %s\n' "$*"; }

say "image $IMAGE: berth/activemq:5.17 with $(ls -l --time-style=+%H:%M:%S "$ROOT/target/release/broker-agent" | awk '{print $6}') target/release/broker-agent"
mkdir "$WORK/ctx"
cp "$ROOT/target/release/broker-agent" "$WORK/ctx/broker-agent"
printf 'FROM berth/activemq:5.17\nCOPY broker-agent /usr/local/bin/broker-agent\n' >"$WORK/ctx/Dockerfile"
DOCKER_BUILDKIT=0 docker build -q -t "$IMAGE" "$WORK/ctx" >/dev/null
docker network create "$NET" >/dev/null
docker volume create "$VOL" >/dev/null

$PY spec "$WORK/a.json" --index 0 --host "$A" --peer "$B" --token "$TOKEN" --password "$PW"
$PY spec "$WORK/b.json" --index 1 --host "$B" --peer "$A" --token "$TOKEN" --password "$PW"
$PY spec "$WORK/a2.json" --index 0 --host "$A" --peer "$B" --token "$TOKEN" --password "$PW" --extra-user "late:$LATE_PW"

say "start $A, then $B on the same volume"
VOLUME=$VOL "$HERE/run-activemq.sh" "$A" "$IMAGE" "$WORK/a.json" "$BASE" --network "$NET" --hostname "$A"
VOLUME=$VOL "$HERE/run-activemq.sh" "$B" "$IMAGE" "$WORK/b.json" $((BASE + 10)) --network "$NET" --hostname "$B"
[ "$(state_of "$A")" = ready ] && [ "$(state_of "$B")" = standby ] || { echo "FAIL: expected a ready, b standby"; exit 1; }
$PY stomp "$(stomp_port "$A")" admin "$PW"
$PY stomp "$(stomp_port "$B")" admin "$PW" && { echo "FAIL: the standby answered STOMP"; exit 1; } || true
docker logs "$B" 2>&1 | grep -m1 "slave mode" || true

say "docker kill $A (the active)"
t0=$(now); docker kill "$A" >/dev/null
echo "$B ready $($PY wait "$(api "$B")" "$TOKEN" --state ready --since "$t0" --timeout 30) s after docker kill was invoked"
$PY stomp "$(stomp_port "$B")" admin "$PW"

say "docker start $A again"
t0=$(now); docker start "$A" >/dev/null
echo "$A standby $($PY wait "$(api "$A")" "$TOKEN" --state standby --since "$t0" --timeout 60) s after docker start"

say "PUT /spec on the standby $A (adds user 'late')"
$PY put "$(api "$A")" "$TOKEN" "$WORK/a2.json"
[ "$(state_of "$A")" = standby ] || { echo "FAIL: $A is not standby after the PUT"; exit 1; }
docker exec "$A" grep -c '^late=' /etc/activemq/instances-enabled/berth/users.properties

say "hang the active's java: docker exec $B kill -STOP (its agent keeps running)"
before=$(java_pid "$B"); echo "java pid in $B: $before"
t0=$(now); docker exec "$B" kill -STOP "$before"
echo "$B's agent recorded the hang $($PY wait "$(api "$B")" "$TOKEN" --error 'engine hung' --since "$t0" --timeout 30 --show) s after SIGSTOP"
echo "$A ready $($PY wait "$(api "$A")" "$TOKEN" --state ready --since "$t0" --timeout 30) s after SIGSTOP"
$PY stomp "$(stomp_port "$A")" late "$LATE_PW"
echo "$B standby $($PY wait "$(api "$B")" "$TOKEN" --state standby --since "$t0" --timeout 60 --show) s after SIGSTOP"
after=$(java_pid "$B"); echo "java pid in $B now: $after"
[ "$before" != "$after" ] || { echo "FAIL: java was not restarted"; exit 1; }
docker logs "$B" 2>&1 | grep -E "engine hung|killing the engine" | head -3

say "final"
for n in "$A" "$B"; do echo "$n: $($PY health "$(api "$n")" "$TOKEN")"; done
echo "PASS"

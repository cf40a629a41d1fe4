#!/usr/bin/env bash
# Start a Berth ActiveMQ container the way the control plane does (spec uploaded between
# create and start), wait for Ready (or Failed), print timings. See live/README.md.
#   live/run-activemq.sh NAME IMAGE SPEC_JSON HOSTPORT_BASE [extra docker args...]
# Publishes 61616/61613/1883/61618/61617/61614/8883/61619/9180 on 127.0.0.1:BASE+{0..8}.
# VOLUME=name mounts that named volume instead of NAME-data (an active/standby pair shares
# one). Waits for ready, standby or failed.
set -euo pipefail
NAME=$1 IMAGE=$2 SPEC=$3 BASE=$4; shift 4
TOKEN=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["agent_token"])' "$SPEC")
docker rm -f "$NAME" >/dev/null 2>&1 || true
VOLUME=${VOLUME:-$NAME-data}
docker volume create "$VOLUME" >/dev/null
ports=(61616 61613 1883 61618 61617 61614 8883 61619 9180)
pub=()
for i in "${!ports[@]}"; do pub+=(-p "127.0.0.1:$((BASE + i)):${ports[$i]}"); done
t0=$(date +%s.%N)
docker create --name "$NAME" --memory 1g --memory-swap 1g -v "$VOLUME:/var/lib/activemq" "${pub[@]}" "$@" "$IMAGE" >/dev/null
tmp=$(mktemp -d); mkdir -m 700 "$tmp/berth"; cp "$SPEC" "$tmp/berth/spec.json"; chmod 600 "$tmp/berth/spec.json"
tar -C "$tmp" --owner=0 --group=0 -c berth | docker cp - "$NAME:/etc/"
rm -rf "$tmp"
docker start "$NAME" >/dev/null
state=""
for _ in $(seq 1 300); do
  state=$(curl -s -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$((BASE + 8))/health" |
          python3 -c 'import sys,json; print(json.load(sys.stdin)["state"])' 2>/dev/null || true)
  case "$state" in ready|standby|failed) break ;; esac
  sleep 0.05
done
t1=$(date +%s.%N)
echo "$NAME: state=$state $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}') s from docker create to $state"

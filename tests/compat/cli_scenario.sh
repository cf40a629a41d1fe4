#!/usr/bin/env bash
# A whole broker's life through the real aws CLI (awscli v1, tests/compat/requirements.txt)
# against a running Berth: create, wait, describe/list (with the CLI's auto-pagination),
# users (AMQP login with pika once applied), update + reboot, tags, configurations,
# delete. Every reply is parsed by the CLI itself (botocore's rest-json parser).
#
# Needs: BERTH_ENDPOINT (http://127.0.0.1:PORT), AWS_SHARED_CREDENTIALS_FILE and
# AWS_CONFIG_FILE pointing at the files Berth wrote on first start (profile `berth`).
# Uses target/compat-venv (scripts/compat-venv.sh) unless AWS / PYTHON are set.
# Run by tests/tests/api/compat.rs; by hand:
#   BERTH_ENDPOINT=http://127.0.0.1:8080 AWS_SHARED_CREDENTIALS_FILE=.berth/credentials \
#   AWS_CONFIG_FILE=.berth/config tests/compat/cli_scenario.sh
set -euo pipefail

: "${BERTH_ENDPOINT:?set BERTH_ENDPOINT to the Berth API base URL, e.g. http://127.0.0.1:8080}"
: "${AWS_SHARED_CREDENTIALS_FILE:?set AWS_SHARED_CREDENTIALS_FILE to the credentials file Berth wrote}"
: "${AWS_CONFIG_FILE:?set AWS_CONFIG_FILE to the config file Berth wrote}"
root=$(cd "$(dirname "$0")/../.." && pwd)
venv=${BERTH_COMPAT_VENV:-$root/target/compat-venv}
AWS=${AWS:-$venv/bin/aws}
PY=${PYTHON:-$venv/bin/python}
for tool in "$AWS" "$PY"; do
  [ -x "$tool" ] || { echo "$tool is missing: run scripts/compat-venv.sh (make test does)" >&2; exit 1; }
done
# Only the profile and --endpoint-url may steer the CLI.
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_PROFILE AWS_DEFAULT_PROFILE \
  AWS_ENDPOINT_URL AWS_ENDPOINT_URL_MQ AWS_DEFAULT_REGION AWS_REGION
WAIT_SECS=${BERTH_COMPAT_WAIT_SECS:-180}

t0=$(date +%s.%N)
steps=0
skipped=()
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
log() { echo "[cli +$(elapsed "$t0")s] $*"; }
fail() { echo "[cli] FAILED: $*" >&2; exit 1; }
ok() { steps=$((steps + 1)); log "ok: $*"; }

# `mq OP ARGS...`: the CLI as a user would run it; stdout is the JSON reply.
mq() { "$AWS" --profile berth --endpoint-url "$BERTH_ENDPOINT" --output json mq "$@"; }

# `json EXPR` reads JSON on stdin, binds it to `d`, prints EXPR (str as is, else JSON).
json() {
  "$PY" -c '
import json, sys
raw = sys.stdin.read()
d = json.loads(raw) if raw.strip() else {}
v = eval(sys.argv[1], {"d": d, "json": json})
print(v if isinstance(v, str) else json.dumps(v))' "$1"
}

# `expect JSON EXPR WHAT`: fails unless EXPR (with `d` = JSON) holds.
expect() {
  local got
  got=$(printf '%s' "$1" | json "bool($2)") || fail "$3: cannot evaluate $2 on: $1"
  [ "$got" = "true" ] || fail "$3: expected $2, reply was: $1"
  ok "$3"
}

# `mq_err OP ARGS...`: runs a call that must fail; prints the CLI's error text.
mq_err() {
  local out
  if out=$(mq "$@" 2>&1); then fail "aws mq $1 unexpectedly succeeded: $out"; fi
  printf '%s' "$out"
}

# `mq_try VAR OP ARGS...`: like mq, reply into VAR; returns 3 (and records a skip) when
# Berth answers that the operation does not exist (404 NotFoundException on `path`).
mq_try() {
  local _var=$1 _errf _reply _rc=0
  shift
  _errf=$(mktemp)
  _reply=$(mq "$@" 2>"$_errf") || _rc=$?
  if [ "$_rc" -ne 0 ]; then
    if grep -q 'NotFoundException' "$_errf" && grep -qi 'operation does not exist' "$_errf"; then
      rm -f "$_errf"
      skipped+=("$1")
      log "SKIPPED: aws mq $1 -- Berth does not implement this operation yet"
      return 3
    fi
    cat "$_errf" >&2
    rm -f "$_errf"
    fail "aws mq $1 exited $_rc"
  fi
  rm -f "$_errf"
  printf -v "$_var" '%s' "$_reply"
}

# `wait_state ID STATE`: polls describe-broker until BrokerState == STATE.
wait_state() {
  local id=$1 want=$2 start now state deadline
  start=$(date +%s.%N)
  deadline=$(( $(date +%s) + WAIT_SECS ))
  while :; do
    state=$(mq describe-broker --broker-id "$id" | json 'd["BrokerState"]')
    [ "$state" = "$want" ] && break
    [ "$state" = CREATION_FAILED ] && [ "$want" != CREATION_FAILED ] &&
      fail "broker $id is CREATION_FAILED: $(mq describe-broker --broker-id "$id")"
    [ "$(date +%s)" -lt "$deadline" ] || fail "broker $id still $state after ${WAIT_SECS}s (wanted $want)"
    sleep 0.5
  done
  ok "broker $id $want after $(elapsed "$start")s"
}

# `amqp_login URL USER PASSWORD`: exits 0 when pika can log in and round-trip a message.
amqp_login() {
  "$PY" - "$@" <<'PYEOF'
import sys, urllib.parse
import pika
url, user, password = sys.argv[1:4]
u = urllib.parse.urlparse(url)
params = pika.ConnectionParameters(
    host=u.hostname, port=u.port, virtual_host="/",
    credentials=pika.PlainCredentials(user, password),
    connection_attempts=1, socket_timeout=10, blocked_connection_timeout=10)
try:
    conn = pika.BlockingConnection(params)
except (pika.exceptions.ProbableAuthenticationError, pika.exceptions.AuthenticationError) as e:
    print(f"login refused: {e!r}")
    sys.exit(2)
except pika.exceptions.AMQPConnectionError as e:
    if "ACCESS_REFUSED" in repr(e) or "403" in repr(e):
        print(f"login refused: {e!r}")
        sys.exit(2)
    raise
ch = conn.channel()
q = ch.queue_declare(queue="", exclusive=True).method.queue
ch.basic_publish(exchange="", routing_key=q, body=b"hello from " + user.encode())
for _ in range(50):
    method, _, body = ch.basic_get(q, auto_ack=True)
    if method:
        break
    conn.sleep(0.1)
assert body == b"hello from " + user.encode(), body
conn.close()
PYEOF
}

# `wait_user_applied ID USER`: polls describe-user until it has no Pending change.
wait_user_applied() {
  local start deadline reply
  start=$(date +%s.%N)
  deadline=$(( $(date +%s) + WAIT_SECS ))
  while :; do
    reply=$(mq describe-user --broker-id "$1" --username "$2")
    [ "$(printf '%s' "$reply" | json '"Pending" in d')" = "false" ] && break
    [ "$(date +%s)" -lt "$deadline" ] || fail "user $2 still pending after ${WAIT_SECS}s: $reply"
    sleep 0.5
  done
  ok "user $2 change applied after $(elapsed "$start")s"
}

suffix=$(printf '%04x%04x' $RANDOM $RANDOM)
name_a="cli-a-$suffix"
name_b="cli-b-$suffix"
admin=cli-admin
admin_pw="Adm1n-pass-$suffix"
log "$("$AWS" --version 2>&1) against $BERTH_ENDPOINT"

# The config file Berth wrote names the endpoint: the profile alone reaches Berth.
out=$("$AWS" --profile berth --output json mq list-brokers)
expect "$out" '"BrokerSummaries" in d' "list-brokers with only --profile berth (endpoint_url from $AWS_CONFIG_FILE)"

# --- catalogue -----------------------------------------------------------------------
out=$(mq describe-broker-engine-types --engine-type RABBITMQ)
expect "$out" 'any(v["Name"] == "4.0" for e in d["BrokerEngineTypes"] for v in e["EngineVersions"])' \
  "describe-broker-engine-types lists RABBITMQ 4.0"
out=$(mq describe-broker-instance-options --engine-type RABBITMQ)
expect "$out" 'any(o["HostInstanceType"] == "mq.m7g.large" for o in d["BrokerInstanceOptions"])' \
  "describe-broker-instance-options lists mq.m7g.large"

# --- create two brokers ----------------------------------------------------------------
create_start=$(date +%s.%N)
out=$(mq create-broker --broker-name "$name_a" --engine-type RABBITMQ --engine-version 4.0 \
  --deployment-mode SINGLE_INSTANCE --host-instance-type mq.m7g.medium --no-publicly-accessible \
  --auto-minor-version-upgrade --users "Username=$admin,Password=$admin_pw" --tags stage=compat)
expect "$out" 'd["BrokerId"].startswith("b-") and d["BrokerArn"].endswith(":broker:'"$name_a"':" + d["BrokerId"])' \
  "create-broker $name_a (creator request id filled in by the CLI)"
id_a=$(printf '%s' "$out" | json 'd["BrokerId"]')
arn_a=$(printf '%s' "$out" | json 'd["BrokerArn"]')
out=$(mq create-broker --broker-name "$name_b" --engine-type RABBITMQ --deployment-mode SINGLE_INSTANCE \
  --host-instance-type mq.m7g.medium --no-publicly-accessible \
  --users "Username=$admin,Password=$admin_pw")
id_b=$(printf '%s' "$out" | json 'd["BrokerId"]')
ok "create-broker $name_b -> $id_b"
err=$(mq_err create-broker --broker-name "$name_a" --engine-type RABBITMQ --deployment-mode SINGLE_INSTANCE \
  --host-instance-type mq.m7g.medium --no-publicly-accessible --users "Username=$admin,Password=$admin_pw")
[[ "$err" == *ConflictException* ]] || fail "duplicate name: expected ConflictException, got: $err"
ok "create-broker with a taken name -> ConflictException"

# --- describe / list (CLI auto-pagination) --------------------------------------------
out=$(mq describe-broker --broker-id "$id_a")
expect "$out" 'd["BrokerName"] == "'"$name_a"'" and d["EngineType"] == "RABBITMQ" and d["DeploymentMode"] == "SINGLE_INSTANCE" and d["PubliclyAccessible"] is False and d["HostInstanceType"] == "mq.m7g.medium" and [u["Username"] for u in d["Users"]] == ["'"$admin"'"] and d["Tags"] == {"stage": "compat"} and d["BrokerState"] in ("CREATION_IN_PROGRESS", "RUNNING")' \
  "describe-broker shape while creating"
out=$(mq list-brokers --page-size 1)
expect "$out" '{"'"$id_a"'", "'"$id_b"'"} <= {b["BrokerId"] for b in d["BrokerSummaries"]} and "NextToken" not in d' \
  "list-brokers --page-size 1 follows nextToken through every page"
out=$(mq list-brokers --page-size 1 --max-items 1)
expect "$out" 'len(d["BrokerSummaries"]) == 1 and "NextToken" in d' "list-brokers --max-items 1 stops with a NextToken"
token=$(printf '%s' "$out" | json 'd["NextToken"]')
first=$(printf '%s' "$out" | json 'd["BrokerSummaries"][0]["BrokerId"]')
out=$(mq list-brokers --page-size 1 --starting-token "$token")
expect "$out" '"'"$first"'" not in [b["BrokerId"] for b in d["BrokerSummaries"]] and len(d["BrokerSummaries"]) >= 1' \
  "list-brokers --starting-token resumes after the first item"
# Passing the wire parameter (--max-results/--next-token) turns the CLI's paging off.
out=$(mq list-brokers --max-results 1)
expect "$out" 'len(d["BrokerSummaries"]) == 1 and d["NextToken"]' "list-brokers --max-results 1: one page, raw nextToken"
token=$(printf '%s' "$out" | json 'd["NextToken"]')
first=$(printf '%s' "$out" | json 'd["BrokerSummaries"][0]["BrokerId"]')
out=$(mq list-brokers --max-results 1 --next-token "$token")
expect "$out" 'len(d["BrokerSummaries"]) == 1 and d["BrokerSummaries"][0]["BrokerId"] != "'"$first"'"' \
  "list-brokers --next-token: the second page"

# The second broker only served the listing.
out=$(mq delete-broker --broker-id "$id_b")
expect "$out" 'd["BrokerId"] == "'"$id_b"'"' "delete-broker $id_b while it is being created"

wait_state "$id_a" RUNNING
log "create-broker -> RUNNING took $(elapsed "$create_start")s"
out=$(mq describe-broker --broker-id "$id_a")
amqp=$(printf '%s' "$out" | json '[e for e in d["BrokerInstances"][0]["Endpoints"] if e.startswith("amqp://")][0]')
expect "$out" 'd["BrokerInstances"][0]["ConsoleURL"].startswith("http") and d["Created"]' \
  "describe-broker when RUNNING: endpoints $amqp, console URL, created"
amqp_login "$amqp" "$admin" "$admin_pw" || fail "AMQP login as $admin"
ok "AMQP login + round trip as $admin"

# --- users -------------------------------------------------------------------------------
user=cli-app
user_pw="App-pass-1-$suffix"
user_pw2="App-pass-2-$suffix"
out=$(mq create-user --broker-id "$id_a" --username "$user" --password "$user_pw")
ok "create-user $user"
out=$(mq list-users --broker-id "$id_a")
expect "$out" 'd["BrokerId"] == "'"$id_a"'" and {u["Username"] for u in d["Users"]} == {"'"$admin"'", "'"$user"'"}' \
  "list-users shows both users"
out=$(mq describe-user --broker-id "$id_a" --username "$user")
expect "$out" 'd["BrokerId"] == "'"$id_a"'" and d["Username"] == "'"$user"'" and "Password" not in d' \
  "describe-user (no password in the reply)"
wait_user_applied "$id_a" "$user"
amqp_login "$amqp" "$user" "$user_pw" || fail "AMQP login as the created user $user"
ok "AMQP login as the created user $user"
err=$(mq_err create-user --broker-id "$id_a" --username "$user" --password "$user_pw")
[[ "$err" == *ConflictException* ]] || fail "duplicate user: expected ConflictException, got: $err"
ok "create-user of an existing user -> ConflictException"

mq update-user --broker-id "$id_a" --username "$user" --password "$user_pw2" >/dev/null
ok "update-user $user (new password)"
wait_user_applied "$id_a" "$user"
amqp_login "$amqp" "$user" "$user_pw2" || fail "AMQP login with the updated password"
ok "AMQP login with the updated password"
rc=0; amqp_login "$amqp" "$user" "$user_pw" >/dev/null 2>&1 || rc=$?
[ "$rc" -eq 2 ] || fail "the old password still logs in (exit $rc)"
ok "the old password is refused"

mq delete-user --broker-id "$id_a" --username "$user" >/dev/null
ok "delete-user $user"
deadline=$(( $(date +%s) + WAIT_SECS ))
until [ "$(mq list-users --broker-id "$id_a" | json '[u["Username"] for u in d["Users"]]')" = "[\"$admin\"]" ]; do
  [ "$(date +%s)" -lt "$deadline" ] || fail "user $user still listed after ${WAIT_SECS}s"
  sleep 0.5
done
err=$(mq_err describe-user --broker-id "$id_a" --username "$user")
[[ "$err" == *NotFoundException* ]] || fail "describe-user after delete: $err"
rc=0; amqp_login "$amqp" "$user" "$user_pw2" >/dev/null 2>&1 || rc=$?
[ "$rc" -eq 2 ] || fail "the deleted user still logs in (exit $rc)"
ok "deleted user is gone from the API and from RabbitMQ"

# --- update-broker + reboot ---------------------------------------------------------------
out=$(mq update-broker --broker-id "$id_a" --host-instance-type mq.m7g.large)
expect "$out" 'd["BrokerId"] == "'"$id_a"'" and d["HostInstanceType"] == "mq.m7g.large"' \
  "update-broker --host-instance-type mq.m7g.large"
out=$(mq describe-broker --broker-id "$id_a")
expect "$out" 'd["HostInstanceType"] == "mq.m7g.medium" and d["PendingHostInstanceType"] == "mq.m7g.large"' \
  "describe-broker shows the pending instance type"
reboot_start=$(date +%s.%N)
mq reboot-broker --broker-id "$id_a" >/dev/null
ok "reboot-broker"
wait_state "$id_a" RUNNING
log "reboot-broker -> RUNNING took $(elapsed "$reboot_start")s"
out=$(mq describe-broker --broker-id "$id_a")
expect "$out" 'd["HostInstanceType"] == "mq.m7g.large" and "PendingHostInstanceType" not in d' \
  "after the reboot HostInstanceType is mq.m7g.large, nothing pending"
amqp=$(printf '%s' "$out" | json '[e for e in d["BrokerInstances"][0]["Endpoints"] if e.startswith("amqp://")][0]')
amqp_login "$amqp" "$admin" "$admin_pw" || fail "AMQP login after the reboot"
ok "AMQP login after the reboot"

# --- tags ------------------------------------------------------------------------------------
mq create-tags --resource-arn "$arn_a" --tags team=core,env=test >/dev/null
ok "create-tags on $arn_a"
out=$(mq list-tags --resource-arn "$arn_a")
expect "$out" 'd["Tags"] == {"stage": "compat", "team": "core", "env": "test"}' "list-tags"
mq delete-tags --resource-arn "$arn_a" --tag-keys team stage >/dev/null
out=$(mq list-tags --resource-arn "$arn_a")
expect "$out" 'd["Tags"] == {"env": "test"}' "delete-tags team stage"

# --- configurations ---------------------------------------------------------------------------
conf_result="done"
if mq_try out create-configuration --name "cli-conf-$suffix" --engine-type RABBITMQ --engine-version 4.0 \
  --tags purpose=compat; then
  expect "$out" 'd["Id"] and d["Arn"].endswith(":configuration:" + d["Id"]) and d["Name"] == "cli-conf-'"$suffix"'" and d["LatestRevision"]["Revision"] == 1 and d["AuthenticationStrategy"] and d["Created"]' \
    "create-configuration"
  conf_id=$(printf '%s' "$out" | json 'd["Id"]')
  data=$(printf 'consumer_timeout = 1800000\nheartbeat = 30\n' | base64 -w0)
  out=$(mq update-configuration --configuration-id "$conf_id" --data "$data" --description "cli revision 2")
  expect "$out" 'd["Id"] == "'"$conf_id"'" and d["LatestRevision"]["Revision"] == 2 and d["LatestRevision"]["Description"] == "cli revision 2"' \
    "update-configuration with base64 data -> revision 2"
  out=$(mq describe-configuration --configuration-id "$conf_id")
  expect "$out" 'd["Id"] == "'"$conf_id"'" and d["EngineType"] == "RABBITMQ" and d["LatestRevision"]["Revision"] == 2 and d["Tags"] == {"purpose": "compat"}' \
    "describe-configuration"
  out=$(mq list-configurations)
  expect "$out" '"'"$conf_id"'" in [c["Id"] for c in d["Configurations"]]' "list-configurations"
  out=$(mq list-configuration-revisions --configuration-id "$conf_id")
  expect "$out" 'd["ConfigurationId"] == "'"$conf_id"'" and sorted(r["Revision"] for r in d["Revisions"]) == [1, 2]' \
    "list-configuration-revisions"
  out=$(mq describe-configuration-revision --configuration-id "$conf_id" --configuration-revision 2)
  expect "$out" 'd["ConfigurationId"] == "'"$conf_id"'" and d["Description"] == "cli revision 2" and "consumer_timeout = 1800000" in __import__("base64").b64decode(d["Data"]).decode()' \
    "describe-configuration-revision 2 returns the data sent"
  out=$(mq describe-configuration-revision --configuration-id "$conf_id" --configuration-revision 1)
  expect "$out" 'd["Data"] and d["Created"]' "describe-configuration-revision 1 (the engine default)"
  if mq_try out delete-configuration --configuration-id "$conf_id"; then
    expect "$out" 'd["ConfigurationId"] == "'"$conf_id"'"' "delete-configuration"
    err=$(mq_err describe-configuration --configuration-id "$conf_id")
    [[ "$err" == *NotFoundException* ]] || fail "describe-configuration after delete: $err"
    ok "deleted configuration is gone"
  fi
else
  conf_result="SKIPPED (not implemented by this Berth)"
fi

# --- delete ------------------------------------------------------------------------------------
delete_start=$(date +%s.%N)
out=$(mq delete-broker --broker-id "$id_a")
expect "$out" 'd["BrokerId"] == "'"$id_a"'"' "delete-broker $id_a"
for id in "$id_a" "$id_b"; do
  deadline=$(( $(date +%s) + WAIT_SECS ))
  while err=$(mq describe-broker --broker-id "$id" 2>&1); do
    [ "$(date +%s)" -lt "$deadline" ] || fail "broker $id still exists after ${WAIT_SECS}s"
    sleep 0.5
  done
  [[ "$err" == *NotFoundException* ]] || fail "describe-broker $id after delete: $err"
done
ok "both brokers gone (describe-broker -> NotFoundException) after $(elapsed "$delete_start")s"

echo "cli scenario: ${steps} checks passed in $(elapsed "$t0")s; configurations: ${conf_result}${skipped:+; skipped: ${skipped[*]}}"

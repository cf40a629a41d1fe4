#!/usr/bin/env python3
"""Helpers of run-activemq-pair.sh (standard library only). See live/README.md.

  amq_pair.py spec OUT --index I --host NAME --peer NAME --token T --password PW [--extra-user U:PW]
  amq_pair.py wait API_PORT TOKEN (--state S[,S…] | --error TEXT) [--since EPOCH] [--timeout S]
  amq_pair.py health API_PORT TOKEN
  amq_pair.py put API_PORT TOKEN SPEC
  amq_pair.py stomp PORT USER PASSWORD

`wait` polls GET /health every 20 ms and prints the seconds since --since (default: now)
at which the condition held; exit 1 on timeout (with the last report).
"""

import argparse
import json
import socket
import sys
import time
import urllib.error
import urllib.request


def health(port, token, timeout=1.0):
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/health", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.load(r)


def cmd_spec(a):
    users = [
        {"username": "admin", "password": a.password, "admin": True, "console_access": True, "groups": []}
    ]
    for extra in a.extra_user or []:
        name, pw = extra.split(":", 1)
        users.append({"username": name, "password": pw, "admin": False, "console_access": False, "groups": []})
    spec = {
        "broker_id": "b-amqpair",
        "engine_version": "5.17",
        "engine": {"kind": "activemq", "broker_name": "b-amqpair"},
        "node": {
            "index": a.index,
            "count": 2,
            "peers": [a.peer],
            "hostname": a.host,
            "topology": "shared_storage",
            "zone": f"us-east-1{'ab'[a.index]}",
        },
        "users": users,
        "agent_token": a.token,
        "plaintext": True,
    }
    with open(a.out, "w") as f:
        json.dump(spec, f, indent=1)


def cmd_wait(a):
    since = a.since if a.since is not None else time.time()
    states = set(a.state.split(",")) if a.state else None
    deadline = time.time() + a.timeout
    last = None
    while time.time() < deadline:
        try:
            last = health(a.port, a.token)
        except (OSError, ValueError, urllib.error.URLError) as e:
            last = {"error": str(e)}
        else:
            if states and last.get("state") in states:
                break
            if a.error and a.error in (last.get("last_error") or ""):
                break
        time.sleep(0.02)
    else:
        print(f"TIMEOUT after {a.timeout} s; last report: {json.dumps(last)}", file=sys.stderr)
        sys.exit(1)
    print(f"{time.time() - since:.2f}")
    if a.show:
        print(json.dumps(last), file=sys.stderr)


def cmd_health(a):
    print(json.dumps(health(a.port, a.token)))


def cmd_put(a):
    body = open(a.spec, "rb").read()
    req = urllib.request.Request(
        f"http://127.0.0.1:{a.port}/spec",
        data=body,
        method="PUT",
        headers={"Authorization": f"Bearer {a.token}", "Content-Type": "application/json"},
    )
    t0 = time.time()
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            status, text = r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode()
    print(f"PUT /spec -> {status} in {time.time() - t0:.2f} s: {text}")
    sys.exit(0 if status == 200 else 1)


def cmd_stomp(a):
    frame = (
        f"CONNECT\naccept-version:1.2\nhost:localhost\nlogin:{a.user}\npasscode:{a.password}\n"
        "heart-beat:0,0\n\n\0"
    ).encode()
    try:
        with socket.create_connection(("127.0.0.1", a.port), timeout=3) as s:
            s.settimeout(3)
            s.sendall(frame)
            data = s.recv(4096)
    except OSError as e:
        print(f"stomp {a.user}@{a.port}: {e}")
        sys.exit(1)
    first = data.split(b"\n", 1)[0].decode(errors="replace") or "(EOF)"
    print(f"stomp {a.user}@{a.port}: {first}")
    sys.exit(0 if first == "CONNECTED" else 1)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("spec")
    s.add_argument("out")
    s.add_argument("--index", type=int, required=True)
    s.add_argument("--host", required=True)
    s.add_argument("--peer", required=True)
    s.add_argument("--token", required=True)
    s.add_argument("--password", required=True)
    s.add_argument("--extra-user", action="append")
    w = sub.add_parser("wait")
    w.add_argument("port", type=int)
    w.add_argument("token")
    w.add_argument("--state")
    w.add_argument("--error")
    w.add_argument("--since", type=float)
    w.add_argument("--timeout", type=float, default=60)
    w.add_argument("--show", action="store_true")
    h = sub.add_parser("health")
    h.add_argument("port", type=int)
    h.add_argument("token")
    u = sub.add_parser("put")
    u.add_argument("port", type=int)
    u.add_argument("token")
    u.add_argument("spec")
    st = sub.add_parser("stomp")
    st.add_argument("port", type=int)
    st.add_argument("user")
    st.add_argument("password")
    a = p.parse_args()
    {"spec": cmd_spec, "wait": cmd_wait, "health": cmd_health, "put": cmd_put, "stomp": cmd_stomp}[a.cmd](a)


if __name__ == "__main__":
    main()

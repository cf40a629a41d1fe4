#!/usr/bin/env python3
"""Client-side checks of a three-node RabbitMQ cluster behind its HAProxy load balancer.

Started by run-rabbitmq-cluster.sh (see live/README.md); needs pika (1.4.x). Every
connection goes through the load balancer's published ports, never to a node directly.

  queues        a plain queue.declare (durable, no arguments) makes a quorum queue with a
                member on every node; what a non-durable and an exclusive one become
  amqps         an AMQPS login through the LB, verifying the broker certificate (CA file)
  failover      a confirming publisher through the LB; the node serving its connection is
                `docker kill`ed; how long until the publisher is confirming again, the
                longest gap between confirms, whether fresh connections through the LB keep
                working meanwhile; then `docker start` and the time until every agent
                reports all three members running again; finally every confirmed message
                is counted back from the queue (none lost)

Prints one JSON object per check and a summary; exit status 1 if a check failed.
"""

import argparse
import base64
import json
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pika

QUEUE = "rmqclu-qq"


def log(**kw):
    print(json.dumps(kw), flush=True)


class Cluster:
    def __init__(self, a):
        self.a = a
        auth = base64.b64encode(f"{a.user}:{a.password}".encode()).decode()
        self.mgmt_auth = {"Authorization": f"Basic {auth}"}

    def params(self, name, port=None, tls=False, heartbeat=5):
        creds = pika.PlainCredentials(self.a.user, self.a.password)
        p = pika.ConnectionParameters(
            host="127.0.0.1",
            port=port or (self.a.amqps if tls else self.a.amqp),
            credentials=creds,
            heartbeat=heartbeat,
            blocked_connection_timeout=30,
            socket_timeout=5,
            connection_attempts=1,
            client_properties={"connection_name": name},
        )
        if tls:
            ctx = ssl.create_default_context(cafile=self.a.ca)
            p.ssl_options = pika.SSLOptions(ctx, server_hostname="127.0.0.1")
        return p

    def mgmt(self, path):
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.a.mgmt}{path}", headers=self.mgmt_auth
        )
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.load(r)

    def health(self, i):
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.a.health_base + i}/health",
            headers={"Authorization": f"Bearer {self.a.token}"},
        )
        with urllib.request.urlopen(req, timeout=2) as r:
            return json.load(r)

    def all_running(self):
        """True when every agent is ready and reports every member running."""
        want = sorted(f"rabbit@{n}" for n in self.a.nodes)
        for i in range(len(self.a.nodes)):
            try:
                h = self.health(i)
            except Exception:
                return False
            if h.get("state") != "ready" or sorted(h.get("cluster_running") or []) != want:
                return False
        return True


def check_queues(c):
    conn = pika.BlockingConnection(c.params("rmqclu-queues"))
    ch = conn.channel()
    ch.queue_delete(QUEUE)
    ch.queue_declare(QUEUE, durable=True)
    out = {}
    for name, kw in [("rmqclu-transient", {"durable": False})]:
        try:
            ch.queue_declare(name, **kw)
            out[name] = "declared"
        except Exception as e:  # a refused declaration closes the channel
            out[name] = f"refused: {e}"
            ch = conn.channel()
    excl = ch.queue_declare("", exclusive=True).method.queue
    q = c.mgmt(f"/api/queues/%2f/{QUEUE}")
    x = c.mgmt("/api/queues/%2f/" + urllib.request.quote(excl, safe=""))
    transient = None
    if out["rmqclu-transient"] == "declared":
        transient = c.mgmt("/api/queues/%2f/rmqclu-transient").get("type")
        ch.queue_delete("rmqclu-transient")
    vhost = c.mgmt("/api/vhosts/%2f")
    conn.close()
    ok = q.get("type") == "quorum" and len(q.get("members", [])) == len(c.a.nodes)
    log(
        check="queues",
        ok=ok,
        plain_durable_type=q.get("type"),
        members=sorted(q.get("members", [])),
        leader=q.get("leader"),
        transient=out["rmqclu-transient"],
        transient_type=transient,
        exclusive_type=x.get("type"),
        vhost_default_queue_type=vhost.get("default_queue_type")
        or vhost.get("metadata", {}).get("default_queue_type"),
    )
    return ok


def check_amqps(c):
    t0 = time.monotonic()
    try:
        conn = pika.BlockingConnection(c.params("rmqclu-amqps", tls=True))
        props = conn._impl.server_properties
        conn.close()
        ok, detail = True, props.get("cluster_name", b"")
        detail = detail.decode() if isinstance(detail, bytes) else detail
    except Exception as e:
        ok, detail = False, repr(e)
    log(check="amqps", ok=ok, cluster_name=detail, secs=round(time.monotonic() - t0, 3))
    return ok


class Publisher(threading.Thread):
    """Publishes persistent messages with confirms through the LB; reconnects there."""

    def __init__(self, c):
        super().__init__(daemon=True)
        self.c = c
        self.stop = threading.Event()
        self.confirmed = 0
        self.last_confirm = None
        self.max_gap = 0.0
        self.errors = []  # (time, repr)
        self.reconnected = []  # time of each successful reconnect
        self.lock = threading.Lock()

    def run(self):
        seq = 0
        first = True
        while not self.stop.is_set():
            try:
                conn = pika.BlockingConnection(self.c.params("rmqclu-publisher"))
                if not first:
                    self.reconnected.append(time.monotonic())
                first = False
                ch = conn.channel()
                ch.confirm_delivery()
                while not self.stop.is_set():
                    seq += 1
                    ch.basic_publish(
                        "",
                        QUEUE,
                        str(seq).encode(),
                        pika.BasicProperties(delivery_mode=2),
                        mandatory=True,
                    )
                    now = time.monotonic()
                    with self.lock:
                        if self.last_confirm is not None:
                            self.max_gap = max(self.max_gap, now - self.last_confirm)
                        self.last_confirm = now
                        self.confirmed += 1
                conn.close()
            except Exception as e:
                self.errors.append((time.monotonic(), repr(e)[:160]))
                time.sleep(0.05)


def node_of_connection(c, name):
    for conn in c.mgmt("/api/connections?columns=node,client_properties"):
        if conn.get("client_properties", {}).get("connection_name") == name:
            return conn["node"]
    return None


def wait_for(cond, timeout, step=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return False


def check_failover(c):
    pub = Publisher(c)
    pub.start()
    if not wait_for(lambda: pub.confirmed > 200, 30):
        log(check="failover", ok=False, detail="publisher never got going", errors=pub.errors)
        return False
    wait_for(lambda: (node_of_connection(c, "rmqclu-publisher") is not None), 10)
    victim = node_of_connection(c, "rmqclu-publisher")
    container = victim.split("@", 1)[1]
    before = pub.confirmed
    t_kill = time.monotonic()
    subprocess.run(["docker", "kill", container], check=True, capture_output=True)
    # Fresh connections through the LB while the node is gone.
    probes, failures = 0, 0
    probe_latencies, probe_errors = [], []
    while time.monotonic() - t_kill < 12:
        t = time.monotonic()
        try:
            pika.BlockingConnection(c.params("rmqclu-probe", heartbeat=0)).close()
            probe_latencies.append(time.monotonic() - t)
        except Exception as e:
            failures += 1
            probe_errors.append(f"{time.monotonic() - t_kill:.2f}s: {e!r}"[:160])
        probes += 1
        time.sleep(0.2)
    errors_after = [e for e in pub.errors if e[0] >= t_kill]
    first_error = round(errors_after[0][0] - t_kill, 2) if errors_after else None
    resumed = [r for r in pub.reconnected if r >= t_kill]
    resumed_after = round(resumed[0] - t_kill, 2) if resumed else None
    confirmed_during = pub.confirmed - before
    # Restart the node: it rejoins by itself.
    t_start = time.monotonic()
    subprocess.run(["docker", "start", container], check=True, capture_output=True)
    rejoined = wait_for(c.all_running, 120, step=0.2)
    rejoin_secs = round(time.monotonic() - t_start, 2)
    time.sleep(1)
    pub.stop.set()
    pub.join(30)
    # Every confirmed message is in the queue.
    conn = pika.BlockingConnection(c.params("rmqclu-count"))
    depth = conn.channel().queue_declare(QUEUE, passive=True).method.message_count
    conn.close()
    ok = (
        rejoined
        and resumed_after is not None
        and depth >= pub.confirmed
        and failures == 0
    )
    log(
        check="failover",
        ok=ok,
        killed=container,
        publisher_error_after_kill_s=first_error,
        publisher_error=errors_after[0][1] if errors_after else None,
        publisher_reconnected_after_kill_s=resumed_after,
        confirmed_in_12s_after_kill=confirmed_during,
        longest_confirm_gap_s=round(pub.max_gap, 2),
        lb_probe_connections=probes,
        lb_probe_failures=failures,
        lb_probe_errors=probe_errors,
        lb_probe_connect_max_s=round(max(probe_latencies), 3) if probe_latencies else None,
        rejoined=rejoined,
        start_to_all_running_s=rejoin_secs,
        confirmed=pub.confirmed,
        queue_depth=depth,
    )
    return ok


def check_users(c):
    import concurrent.futures

    specs = {n: json.load(open(f"{c.a.specs_dir}/{n}.json")) for n in c.a.nodes}
    new_pw = c.a.password + "-rotated"
    for spec in specs.values():
        spec["users"] = [
            {"username": "admin", "password": new_pw, "admin": True, "console_access": True},
            {"username": "app2", "password": new_pw + "-app2"},
        ]

    def put(i_n):
        i, n = i_n
        req = urllib.request.Request(
            f"http://127.0.0.1:{c.a.health_base + i}/spec",
            data=json.dumps(specs[n]).encode(),
            method="PUT",
            headers={"Authorization": f"Bearer {c.a.token}", "Content-Type": "application/json"},
        )
        t = time.monotonic()
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                return n, r.status, round(time.monotonic() - t, 2), None
        except urllib.error.HTTPError as e:
            return n, e.code, round(time.monotonic() - t, 2), e.read().decode()[:300]

    with concurrent.futures.ThreadPoolExecutor(3) as ex:
        puts = list(ex.map(put, enumerate(c.a.nodes)))
    old = (c.a.password, c.a.user)
    c.a.password = new_pw
    c.mgmt_auth = {
        "Authorization": "Basic " + base64.b64encode(f"admin:{new_pw}".encode()).decode()
    }
    users = sorted(u["name"] for u in c.mgmt("/api/users"))
    want = sorted(
        ["admin", "app2"] + [f"berth-internal-monitor-{n}" for n in c.a.nodes]
    )

    def login(user, pw):
        try:
            creds = pika.PlainCredentials(user, pw)
            p = pika.ConnectionParameters("127.0.0.1", c.a.amqp, credentials=creds)
            pika.BlockingConnection(p).close()
            return True
        except Exception:
            return False

    logins = {
        "admin_new": login("admin", new_pw),
        "admin_old": login("admin", old[0]),
        "app2": login("app2", new_pw + "-app2"),
        "app_removed": login("app", old[0] + "-app"),
    }
    ok = (
        all(p[1] == 200 for p in puts)
        and users == want
        and logins == {"admin_new": True, "admin_old": False, "app2": True, "app_removed": False}
    )
    log(check="users", ok=ok, puts=puts, users=users, logins=logins)
    return ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--amqp", type=int, required=True, help="LB port forwarding 5672")
    ap.add_argument("--amqps", type=int, required=True, help="LB port forwarding 5671")
    ap.add_argument("--mgmt", type=int, required=True, help="LB port forwarding 15672")
    ap.add_argument("--health-base", type=int, required=True, help="agent ports BASE+i")
    ap.add_argument("--token", required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--nodes", required=True, help="container names, comma-separated")
    ap.add_argument("--specs-dir", help="the nodes' spec files (NODE.json): enables 'users'")
    ap.add_argument("--skip-failover", action="store_true")
    a = ap.parse_args()
    a.nodes = a.nodes.split(",")
    c = Cluster(a)
    results = [check_queues(c), check_amqps(c)]
    if not a.skip_failover:
        results.append(check_failover(c))
    if a.specs_dir:
        results.append(check_users(c))
    log(summary="ok" if all(results) else "FAILED")
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()

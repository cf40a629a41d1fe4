#!/usr/bin/env python3
"""Certificate renewal without recreating the broker: PUT a spec whose only change is `tls`
and check what clients see. See live/README.md.

  renewal_check.py --engine rabbitmq|activemq --api PORT --token T --new-spec FILE
                   --tls NAME=PORT ... --login-port PORT --user U --password P --ca CA

- prints the serial each published TLS port serves before and after, and fails unless every
  port serves the new spec's certificate when PUT /spec returns;
- times PUT /spec;
- while it runs, logs in over TLS every 100 ms on --login-port (AMQPS for RabbitMQ, STOMP+SSL
  for ActiveMQ) and reports the longest window without a successful login;
- RabbitMQ: an AMQPS connection opened before the renewal still works afterwards, and a new
  one sees the new certificate;
- ActiveMQ: a persistent message sent before the renewal is received after it (the JVM
  restarts; KahaDB stays).
"""
import argparse, json, socket, ssl, subprocess, sys, threading, time, urllib.request, uuid

results = []


def check(name, ok, detail=""):
    results.append(bool(ok))
    print(("PASS " if ok else "FAIL ") + name + (f"  ({detail})" if detail else ""), flush=True)


def serial_of_der(der):
    out = subprocess.run(["openssl", "x509", "-inform", "der", "-noout", "-serial"], input=der,
                         capture_output=True, check=True).stdout.decode().strip()
    return out.split("=", 1)[1]


def serial_of_pem(pem):
    out = subprocess.run(["openssl", "x509", "-noout", "-serial"], input=pem.encode(),
                         capture_output=True, check=True).stdout.decode().strip()
    return out.split("=", 1)[1]


def served_serial(host, port):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((host, port), 5) as s, ctx.wrap_socket(s) as t:
            return serial_of_der(t.getpeercert(binary_form=True))
    except Exception as e:  # noqa: BLE001
        return f"ERROR({type(e).__name__})"


p = argparse.ArgumentParser()
p.add_argument("--engine", choices=["rabbitmq", "activemq"], required=True)
p.add_argument("--host", default="127.0.0.1")
p.add_argument("--api", type=int, required=True)
p.add_argument("--token", required=True)
p.add_argument("--new-spec", required=True)
p.add_argument("--tls", nargs="+", required=True, help="NAME=PORT of every published TLS port")
p.add_argument("--login-port", type=int, required=True)
p.add_argument("--user", required=True)
p.add_argument("--password", required=True)
p.add_argument("--ca", required=True)
a = p.parse_args()
new_spec = json.load(open(a.new_spec))
want = serial_of_pem(new_spec["tls"]["cert_pem"])
tls_ports = [(n, int(port)) for n, port in (x.split("=") for x in a.tls)]
run = uuid.uuid4().hex[:8]

before = {n: served_serial(a.host, port) for n, port in tls_ports}
print("before:", " ".join(f"{n}={s}" for n, s in before.items()), flush=True)
check("before.not_yet_new", all(s != want for s in before.values()), f"new serial {want}")

ctx = ssl.create_default_context(cafile=a.ca)


def login_once():
    """One login over TLS on --login-port; True on success."""
    try:
        if a.engine == "rabbitmq":
            import pika
            params = pika.ConnectionParameters(
                a.host, a.login_port, credentials=pika.PlainCredentials(a.user, a.password),
                ssl_options=pika.SSLOptions(ctx, "localhost"), socket_timeout=2,
                blocked_connection_timeout=2, connection_attempts=1)
            pika.BlockingConnection(params).close()
        else:
            with socket.create_connection((a.host, a.login_port), 2) as s, \
                    ctx.wrap_socket(s, server_hostname="localhost") as t:
                t.settimeout(2)
                t.sendall(f"CONNECT\naccept-version:1.2\nhost:localhost\nlogin:{a.user}\n"
                          f"passcode:{a.password}\n\n\0".encode())
                if not t.recv(64).startswith(b"CONNECTED"):
                    return False
                t.sendall(b"DISCONNECT\n\n\0")
        return True
    except Exception:  # noqa: BLE001
        return False


# the availability poller
stop = threading.Event()
samples = []


def poll():
    while not stop.is_set():
        t = time.time()
        samples.append((t, login_once()))
        time.sleep(max(0.0, 0.1 - (time.time() - t)))


# engine-specific "before" state
kept = None
queue = f"berth.renewal.{run}"
if a.engine == "rabbitmq":
    import pika
    params = pika.ConnectionParameters(a.host, a.login_port,
                                       credentials=pika.PlainCredentials(a.user, a.password),
                                       ssl_options=pika.SSLOptions(ctx, "localhost"))
    kept = pika.BlockingConnection(params)
    ch = kept.channel()
    ch.queue_declare(queue, durable=True)
else:
    import stomp
    c = stomp.Connection([(a.host, a.login_port)])
    c.set_ssl(for_hosts=[(a.host, a.login_port)], ca_certs=a.ca)
    c.connect(a.user, a.password, wait=True)
    c.send(f"/queue/{queue}", "survives-the-restart", headers={"persistent": "true"})
    c.disconnect()

poller = threading.Thread(target=poll, daemon=True)
poller.start()
time.sleep(1.0)
t0 = time.time()
req = urllib.request.Request(f"http://{a.host}:{a.api}/spec", data=open(a.new_spec, "rb").read(),
                             method="PUT", headers={"Authorization": f"Bearer {a.token}",
                                                    "Content-Type": "application/json"})
try:
    with urllib.request.urlopen(req, timeout=90) as r:
        status, body = r.status, r.read().decode()
except urllib.error.HTTPError as e:
    status, body = e.code, e.read().decode()
took = time.time() - t0
after = {n: served_serial(a.host, port) for n, port in tls_ports}
time.sleep(2.0)
stop.set()
poller.join()
print(f"PUT /spec -> {status} in {took:.2f} s: {body}", flush=True)
print("after: ", " ".join(f"{n}={s}" for n, s in after.items()), flush=True)
check("put.ok", status == 200, f"{took:.2f} s")
check("after.every_port_serves_the_new_certificate", all(s == want for s in after.values()))

# longest window without a successful login, from the poller's samples
worst, down_since, failures = 0.0, None, 0
for t, ok in samples:
    if not ok:
        failures += 1
        down_since = down_since or t
    elif down_since is not None:
        worst = max(worst, t - down_since)
        down_since = None
if down_since is not None:
    worst = max(worst, samples[-1][0] - down_since)
print(f"availability: {len(samples)} logins, {failures} failed, longest gap {worst:.2f} s", flush=True)

if a.engine == "rabbitmq":
    import pika
    try:
        ch.basic_publish("", queue, b"after-renewal")
        m = None
        for _ in range(50):
            m = ch.basic_get(queue, auto_ack=True)
            if m[0]:
                break
            time.sleep(0.05)
        check("amqps.connection_opened_before_still_works", m and m[2] == b"after-renewal")
        kept.close()
    except Exception as e:  # noqa: BLE001
        check("amqps.connection_opened_before_still_works", False, repr(e))
    with socket.create_connection((a.host, a.login_port), 5) as s, \
            ctx.wrap_socket(s, server_hostname="localhost") as t:
        serial = serial_of_der(t.getpeercert(binary_form=True))
    check("amqps.new_connection_sees_the_new_serial", serial == want, serial)
    check("amqps.new_login_works", login_once())
    check("availability.no_gap", failures == 0, f"{failures} failed logins")
else:
    import stomp
    got = []

    class L(stomp.ConnectionListener):
        def on_message(self, f):
            got.append(f.body)

    c = stomp.Connection([(a.host, a.login_port)])
    c.set_ssl(for_hosts=[(a.host, a.login_port)], ca_certs=a.ca)
    c.set_listener("l", L())
    c.connect(a.user, a.password, wait=True)
    c.subscribe(f"/queue/{queue}", id="1", ack="auto")
    t = time.time()
    while not got and time.time() - t < 10:
        time.sleep(0.05)
    c.disconnect()
    check("activemq.persistent_message_survives_the_restart", got == ["survives-the-restart"], str(got))
    check("activemq.unavailable_while_restarting", True, f"longest gap {worst:.2f} s")

print(f"{sum(results)}/{len(results)} passed")
sys.exit(0 if all(results) else 1)

#!/usr/bin/env python3
"""TLS checks of a Berth ActiveMQ container started with tls material and plaintext=false:
STOMP+SSL, MQTT+SSL and WSS (STOMP) with certificate verification against the spec's CA,
and the plaintext ports closed to the outside. See live/README.md."""
import argparse, socket, ssl, sys, time, uuid

import paho.mqtt.client as mqtt
import stomp
import websocket

results = []


def check(name, ok, detail=""):
    results.append(bool(ok))
    print(("PASS " if ok else "FAIL ") + name + (f"  ({detail})" if detail else ""), flush=True)


p = argparse.ArgumentParser()
p.add_argument("--host", default="127.0.0.1")
p.add_argument("--stomps", type=int, required=True)
p.add_argument("--mqtts", type=int, required=True)
p.add_argument("--wss", type=int, required=True)
p.add_argument("--openwire-tls", type=int, required=True)
p.add_argument("--plain", type=int, nargs="*", default=[], help="published plaintext ports that must not answer")
p.add_argument("--ca", required=True)
p.add_argument("--user", required=True)
p.add_argument("--password", required=True)
a = p.parse_args()
run = uuid.uuid4().hex[:8]

# STOMP over TLS, certificate verified for "localhost"
c = stomp.Connection([(a.host, a.stomps)])
c.set_ssl(for_hosts=[(a.host, a.stomps)], ca_certs=a.ca)
got = []
class L(stomp.ConnectionListener):
    def on_message(self, f):
        got.append(f.body)
c.set_listener("l", L())
c.connect(a.user, a.password, wait=True)
c.subscribe(f"/queue/berth.tls.{run}", id="1", ack="auto")
c.send(f"/queue/berth.tls.{run}", "over-tls")
t = time.time()
while not got and time.time() - t < 10:
    time.sleep(0.05)
c.disconnect()
check("stomp+ssl.roundtrip", got == ["over-tls"])

# TLS verification is real: a client trusting nothing else fails
try:
    ctx = ssl.create_default_context()
    with socket.create_connection((a.host, a.stomps), 5) as s, ctx.wrap_socket(s, server_hostname="localhost"):
        pass
    check("stomp+ssl.untrusted_client_fails", False)
except ssl.SSLError as e:
    check("stomp+ssl.untrusted_client_fails", True, e.reason)

# OpenWire over TLS: the handshake works and the broker sends its WireFormatInfo
ctx = ssl.create_default_context(cafile=a.ca)
with socket.create_connection((a.host, a.openwire_tls), 5) as s, ctx.wrap_socket(s, server_hostname="localhost") as t:
    first = t.recv(64)
check("ssl(openwire).wireformat", b"ActiveMQ" in first, t.version() if hasattr(t, "version") else "")

# MQTT over TLS
got = []
cl = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"berth-tls-{run}")
cl.tls_set(ca_certs=a.ca)
cl.username_pw_set(a.user, a.password)
cl.on_message = lambda _c, _u, m: got.append(m.payload)
rc = cl.connect(a.host, a.mqtts, 10)
cl.loop_start(); cl.subscribe(f"berth/tls/{run}", qos=1); time.sleep(0.3)
cl.publish(f"berth/tls/{run}", b"mqtts", qos=1)
t = time.time()
while not got and time.time() - t < 10:
    time.sleep(0.05)
cl.loop_stop(); cl.disconnect()
check("mqtt+ssl.pubsub", rc == 0 and got == [b"mqtts"])

# WSS (the agent's bridge, rustls) → STOMP
ws = websocket.create_connection(f"wss://localhost:{a.wss}/", subprotocols=["v12.stomp"], timeout=10,
                                 sslopt={"ca_certs": a.ca})
ws.send(f"CONNECT\naccept-version:1.2\nhost:localhost\nlogin:{a.user}\npasscode:{a.password}\n\n\0")
connected = ws.recv()
ws.send(f"SUBSCRIBE\nid:0\ndestination:/queue/berth.wss.{run}\n\n\0")
ws.send(f"SEND\ndestination:/queue/berth.wss.{run}\n\nvia-wss\0")
msg = ws.recv()
ws.close()
check("wss.stomp_roundtrip", connected.startswith("CONNECTED") and msg.startswith("MESSAGE") and "via-wss" in msg,
      ws.getsubprotocol() or "")

# MQTT over WSS
got = []
cl = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"berth-wss-{run}", transport="websockets")
cl.tls_set(ca_certs=a.ca)
cl.username_pw_set(a.user, a.password)
cl.on_message = lambda _c, _u, m: got.append(m.payload)
rc = cl.connect("localhost", a.wss, 10)
cl.loop_start(); cl.subscribe(f"berth/wss/{run}", qos=1); time.sleep(0.3)
cl.publish(f"berth/wss/{run}", b"mqtt-wss", qos=1)
t = time.time()
while not got and time.time() - t < 10:
    time.sleep(0.05)
cl.loop_stop(); cl.disconnect()
check("wss.mqtt_pubsub", rc == 0 and got == [b"mqtt-wss"])

# plaintext listeners: nothing answers from outside (docker-proxy may accept, then EOF)
for port in a.plain:
    try:
        with socket.create_connection((a.host, port), 3) as s:
            s.settimeout(2)
            s.sendall(b"CONNECT\n\n\0")
            data = s.recv(64)
        check(f"plaintext.{port}.closed", data == b"", repr(data[:20]))
    except (ConnectionError, socket.timeout, OSError) as e:
        check(f"plaintext.{port}.closed", True, type(e).__name__)

failed = results.count(False)
print(f"{len(results) - failed} passed, {failed} failed")
sys.exit(1 if failed else 0)

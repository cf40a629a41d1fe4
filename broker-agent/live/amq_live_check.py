#!/usr/bin/env python3
"""Live checks of a Berth ActiveMQ container (see live/README.md).

Needs stomp.py, paho-mqtt and websocket-client. Prints PASS/FAIL lines and exits 1 on any
failure. Ports are the host ports published for the container's 61613 (STOMP), 1883 (MQTT),
61618 (ws bridge) and 9180 (agent API).
"""
import argparse, json, sys, time, urllib.request, uuid

import paho.mqtt.client as mqtt
import stomp
import websocket

results = []


def check(name, ok, detail=""):
    results.append(ok)
    print(("PASS " if ok else "FAIL ") + name + (f"  ({detail})" if detail else ""), flush=True)


def stomp_conn(a, user, pw, wait=True):
    c = stomp.Connection([(a.host, a.stomp)], heartbeats=(0, 0))
    c.connect(user, pw, wait=wait)
    return c


def stomp_login_ok(a, user, pw):
    try:
        c = stomp_conn(a, user, pw)
        ok = c.is_connected()
        c.disconnect()
        return ok
    except Exception:
        return False


class Collect(stomp.ConnectionListener):
    def __init__(self):
        self.messages, self.errors = [], []

    def on_message(self, frame):
        self.messages.append(frame)

    def on_error(self, frame):
        self.errors.append(frame)


def wait_for(cond, timeout=10.0):
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def api(a, method, path, body=None):
    req = urllib.request.Request(f"http://{a.host}:{a.api}{path}", method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Authorization": f"Bearer {a.token}",
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.status, json.loads(r.read() or b"null")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--stomp", type=int, required=True)
    p.add_argument("--mqtt", type=int)
    p.add_argument("--ws", type=int)
    p.add_argument("--api", type=int, required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--spec", required=True, help="the spec file the container started with")
    p.add_argument("--user", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--live-users", action="store_true", help="PUT /spec: add a user, change a password")
    p.add_argument("--dlq-queue", help="NACK a message on this queue until it lands in DLQ.<queue>")
    p.add_argument("--authz", nargs=3, metavar=("USER", "PASSWORD", "QUEUE"),
                   help="USER may use QUEUE but not another queue")
    a = p.parse_args()
    run = uuid.uuid4().hex[:8]

    check("stomp.login", stomp_login_ok(a, a.user, a.password), a.user)
    check("stomp.wrong_password_refused", not stomp_login_ok(a, a.user, a.password + "x"))

    # queue round trip (persistent)
    q = f"/queue/berth.live.{run}"
    c = stomp_conn(a, a.user, a.password)
    l = Collect(); c.set_listener("c", l)
    c.subscribe(q, id="1", ack="client-individual")
    body = "hello é " + run
    c.send(q, body, headers={"persistent": "true"})
    got = wait_for(lambda: l.messages)
    check("stomp.queue_roundtrip", got and l.messages[0].body == body, q)
    if got:
        c.ack(l.messages[0].headers["message-id"], "1")
    c.disconnect()

    if a.mqtt:
        got = []
        cl = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"berth-live-{run}")
        cl.username_pw_set(a.user, a.password)
        cl.on_message = lambda _c, _u, m: got.append(m.payload)
        rc = cl.connect(a.host, a.mqtt, 10)
        cl.loop_start()
        cl.subscribe(f"berth/live/{run}", qos=1)
        time.sleep(0.3)
        cl.publish(f"berth/live/{run}", b"mqtt-" + run.encode(), qos=1)
        ok = wait_for(lambda: got)
        cl.loop_stop(); cl.disconnect()
        check("mqtt.qos1_pubsub", rc == 0 and ok and got[0] == b"mqtt-" + run.encode())
        bad = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"berth-live-bad-{run}")
        bad.username_pw_set(a.user, "wrong")
        codes = []
        bad.on_connect = lambda _c, _u, _f, rc, _p: codes.append(rc)
        bad.connect(a.host, a.mqtt, 10); bad.loop_start()
        wait_for(lambda: codes, 10); bad.loop_stop()
        check("mqtt.wrong_password_refused", codes and codes[0].is_failure, str(codes))

    if a.ws:
        ws = websocket.create_connection(f"ws://{a.host}:{a.ws}/", subprotocols=["v12.stomp"], timeout=10)
        proto = ws.getsubprotocol()
        ws.send(f"CONNECT\naccept-version:1.2\nhost:localhost\nlogin:{a.user}\npasscode:{a.password}\n\n\0")
        connected = ws.recv()
        wq = f"/queue/berth.ws.{run}"
        ws.send(f"SUBSCRIBE\nid:0\ndestination:{wq}\nack:auto\n\n\0")
        ws.send(f"SEND\ndestination:{wq}\ncontent-type:text/plain\n\nvia-websocket\0")
        msg = ws.recv()
        ws.send("DISCONNECT\nreceipt:bye\n\n\0")
        receipt = ws.recv()
        ws.close()
        check("ws.stomp_roundtrip",
              proto == "v12.stomp" and connected.startswith("CONNECTED") and msg.startswith("MESSAGE")
              and msg.rstrip("\0\n").endswith("via-websocket") and receipt.startswith("RECEIPT"),
              f"subprotocol={proto}")
        try:
            bad = websocket.create_connection(f"ws://{a.host}:{a.ws}/", subprotocols=["v12.stomp"], timeout=10)
            bad.send(f"CONNECT\naccept-version:1.2\nhost:localhost\nlogin:{a.user}\npasscode:wrong\n\n\0")
            reply = bad.recv()
            bad.close()
            check("ws.wrong_password_refused", reply.startswith("ERROR"), reply.split("\n")[0])
        except Exception as e:
            check("ws.wrong_password_refused", False, repr(e))
        # MQTT over WebSocket with paho
        if a.mqtt:
            got = []
            cl = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"berth-ws-{run}", transport="websockets")
            cl.username_pw_set(a.user, a.password)
            cl.on_message = lambda _c, _u, m: got.append(m.payload)
            rc = cl.connect(a.host, a.ws, 10)
            cl.loop_start(); cl.subscribe(f"berth/ws/{run}", qos=1); time.sleep(0.3)
            cl.publish(f"berth/ws/{run}", b"ws-mqtt", qos=1)
            ok = wait_for(lambda: got)
            cl.loop_stop(); cl.disconnect()
            check("ws.mqtt_pubsub", rc == 0 and ok and got[0] == b"ws-mqtt")

    if a.live_users:
        spec = json.load(open(a.spec))
        newpw = "n3w-User-Passw0rd"
        spec["users"].append({"username": f"new{run}", "password": newpw, "groups": ["apps"]})
        check("live.new_user_refused_before", not stomp_login_ok(a, f"new{run}", newpw))
        t0 = time.time()
        status, report = api(a, "PUT", "/spec", spec)
        check("live.put_spec", status == 200 and report["state"] == "ready", f"{time.time()-t0:.2f} s")
        ok = wait_for(lambda: stomp_login_ok(a, f"new{run}", newpw), 5)
        check("live.new_user_logs_in", ok, f"{time.time()-t0:.2f} s after PUT")
        # change the password of the last original user
        target = spec["users"][-2]
        old = target["password"]
        target["password"] = old + "-changed"
        status, _ = api(a, "PUT", "/spec", spec)
        check("live.password_change_applied",
              status == 200 and wait_for(lambda: stomp_login_ok(a, target["username"], old + "-changed"), 5)
              and not stomp_login_ok(a, target["username"], old), target["username"])
        # remove the new user again
        spec["users"] = [u for u in spec["users"] if u["username"] != f"new{run}"]
        target["password"] = old
        status, _ = api(a, "PUT", "/spec", spec)
        check("live.user_removed", status == 200 and not stomp_login_ok(a, f"new{run}", newpw)
              and stomp_login_ok(a, target["username"], old))

    if a.dlq_queue:
        qn = f"{a.dlq_queue}.{run}"
        c = stomp_conn(a, a.user, a.password)
        l = Collect(); c.set_listener("c", l)
        dl = Collect()
        d = stomp_conn(a, a.user, a.password); d.set_listener("d", dl)
        d.subscribe(f"/queue/DLQ.{qn}", id="d", ack="auto")
        c.subscribe(f"/queue/{qn}", id="1", ack="client-individual")
        c.send(f"/queue/{qn}", "poison", headers={"persistent": "true"})
        deliveries = []
        t0 = time.time()
        while time.time() - t0 < 120 and not dl.messages:
            if l.messages:
                m = l.messages.pop(0)
                deliveries.append(round(time.time() - t0, 2))
                c.nack(m.headers["message-id"], "1")
            time.sleep(0.02)
        c.disconnect(); d.disconnect()
        check("dlq.after_redeliveries", bool(dl.messages) and dl.messages[0].body == "poison",
              f"{len(deliveries)} deliveries at {deliveries}, DLQ.{qn}")

    if a.authz:
        user, pw, queue = a.authz
        c = stomp_conn(a, user, pw)
        l = Collect(); c.set_listener("c", l)
        c.subscribe(f"/queue/{queue}", id="1", ack="auto")
        c.send(f"/queue/{queue}", "allowed")
        ok = wait_for(lambda: l.messages)
        c.disconnect()
        check("authz.allowed_queue", ok, f"{user} on {queue}")
        c = stomp_conn(a, user, pw)
        l = Collect(); c.set_listener("c", l)
        c.send(f"/queue/berth.other.{run}", "denied", headers={"receipt": "r1"})
        denied = wait_for(lambda: l.errors, 5)
        check("authz.other_queue_denied", denied,
              l.errors[0].headers.get("message", "") if l.errors else "no ERROR")
        try:
            c.disconnect()
        except Exception:
            pass

    failed = results.count(False)
    print(f"{len(results) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

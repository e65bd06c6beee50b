#!/usr/bin/python3
"""test_http.py - midge's HTTP server against the real daemon with real
clients: /metrics (checked with promtool), /api/v1/broker, clients with
cursor paging and filters, kick (paho MQTT 5 sees DISCONNECT 0x98,
?session=discard), subscriptions, busiest topics, publish (with the
checks of a client PUBLISH), retained browse/get/delete, reload, errors
(bad JSON, oversized bodies, unknown paths), many concurrent requests, a
slow client, $SYS load topics and the delivery-latency histogram.

Prints "N passed, M failed" last.
"""
import base64
import os
import shutil
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brokerctl  # noqa: E402
import httpctl  # noqa: E402

import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.packettypes import PacketTypes  # noqa: E402
from paho.mqtt.properties import Properties  # noqa: E402

R = brokerctl.Results("http")
brokerctl.deadline(R, 130)
TOKEN = "admin-token-0123456789abcdef"
READER = "read-token-0123456789abcdef"


class Client:
    """A paho client that records disconnects and messages."""

    def __init__(self, port, cid, version=mqtt.MQTTv5, clean=True, expiry=None):
        if version == mqtt.MQTTv5:
            self.c = mqtt.Client(client_id=cid, protocol=version)
        else:
            self.c = mqtt.Client(client_id=cid, clean_session=clean, protocol=version)
        self.disconnects = []
        self.messages = []
        self.connected = threading.Event()
        self.c.on_connect = lambda *a: self.connected.set()
        self.c.on_disconnect = lambda cl, ud, rc, props=None: self.disconnects.append(rc)
        self.c.on_message = lambda cl, ud, m: self.messages.append(m)
        props = None
        if version == mqtt.MQTTv5 and expiry is not None:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = expiry
        if version == mqtt.MQTTv5:
            self.c.connect("127.0.0.1", port, clean_start=clean, properties=props)
        else:
            self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        self.connected.wait(5)

    def stop(self):
        try:
            self.c.disconnect()
        except Exception:
            pass
        self.c.loop_stop()


def wait_for(fn, timeout=5.0):
    end = time.time() + timeout
    while time.time() < end:
        v = fn()
        if v:
            return v
        time.sleep(0.05)
    return fn()


def rc_value(rc):
    return getattr(rc, "value", rc)


def test_metrics(b):
    c = Client(b.port, "metrics-sub")
    c.c.subscribe("m/#", qos=1)
    time.sleep(0.2)
    p = Client(b.port, "metrics-pub")
    for i in range(20):
        p.c.publish("m/%d" % i, b"hello", qos=i % 2)
    wait_for(lambda: len(c.messages) >= 20)
    status, text = httpctl.metrics(b, token=READER)
    R.check("/metrics 200", status == 200)
    if shutil.which("promtool"):
        pr = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                            text=True, timeout=20)
        R.check("promtool check metrics passes", pr.returncode == 0, pr.stdout + pr.stderr)
    else:
        R.check("promtool installed (Debian prometheus)", False)
    for family in ("midge_clients_connected", "midge_publish_received_by_qos_total",
                   "midge_drops_total", "midge_retained_messages", "midge_subscriptions",
                   "midge_delivery_latency_seconds_bucket", "midge_auth_latency_seconds_count",
                   "process_cpu_seconds_total", "process_resident_memory_bytes",
                   "midge_listener_connections", "midge_connects_total",
                   "midge_http_sse_dropped_total", "midge_hooks_dropped_total",
                   "midge_queued_messages", "midge_inflight_messages"):
        R.check("metric %s present" % family, family in text)
    R.check("messages in by QoS counted",
            httpctl.metric_value(text, "midge_publish_received_by_qos_total", {"qos": "1"}) >= 10)
    R.check("clients connected by protocol",
            httpctl.metric_value(text, "midge_clients_connected_by_protocol", {"protocol": "5"}) >= 2)
    lat = httpctl.metric_value(text, "midge_delivery_latency_seconds_count")
    R.check("delivery latency histogram observed the deliveries", lat is not None and lat >= 20,
            lat)
    inf = httpctl.metric_value(text, "midge_delivery_latency_seconds_bucket", {"le": "+Inf"})
    R.check("histogram +Inf bucket equals the count", inf == lat)
    c.stop()
    p.stop()


def test_broker(b):
    st, o = httpctl.get(b, "/api/v1/broker", token=READER)
    R.check("/api/v1/broker", st == 200 and o["name"] == "midge" and o["version"], o)
    R.check("broker lists the MQTT listener",
            any(l["port"] == b.port for l in o.get("listeners", [])))
    R.check("broker shows the effective configuration", o["config"]["max_qos"] == 1 and
            o["config"]["message_size_limit"] == 100, o.get("config"))
    R.check("secrets are redacted",
            o["config"].get("midge_hooks_curve_secret_key") in (None, "(redacted)") and
            TOKEN not in str(o))


def test_clients(b):
    clients = [Client(b.port, "page-%d" % i) for i in range(7)]
    other = Client(b.port, "zz-v4", version=mqtt.MQTTv311)
    seen, cursor, pages = [], None, 0
    while pages < 20:
        q = "/api/v1/clients?clientid=page-&limit=2" + ("&cursor=" + cursor if cursor else "")
        st, o = httpctl.get(b, q, token=READER)
        if st != 200:
            break
        R.check("page of at most 2", len(o["data"]) <= 2 or pages == 0 and len(o["data"]) <= 3)
        seen += [c["clientid"] for c in o["data"]]
        pages += 1
        cursor = o["meta"]["cursor"]
        if not o["meta"]["hasnext"]:
            break
    R.check("cursor paging returns every client once",
            sorted(seen) == sorted("page-%d" % i for i in range(7)), seen)
    st, o = httpctl.get(b, "/api/v1/clients?clientid=zz-", token=READER)
    R.check("clientid prefix filter", st == 200 and [c["clientid"] for c in o["data"]] == ["zz-v4"])
    st, o = httpctl.get(b, "/api/v1/clients/zz-v4", token=READER)
    R.check("client details", st == 200 and o["protocol"] == "3.1.1" and o["connected"] and
            o["peer_addr"] == "127.0.0.1", o)
    st, o = httpctl.get(b, "/api/v1/clients/nobody", token=READER)
    R.check("unknown client 404 with JSON error", st == 404 and o["code"] == "not_found", o)
    st, o = httpctl.get(b, "/api/v1/clients?limit=0", token=READER)
    R.check("limit 0 refused", st == 400 and o["error"])
    st, o = httpctl.get(b, "/api/v1/clients?cursor=zz", token=READER)
    R.check("bad cursor refused", st == 400)
    st, o = httpctl.get(b, "/api/v1/clients?connected=maybe", token=READER)
    R.check("bad boolean refused", st == 400)
    for c in clients + [other]:
        c.stop()


def test_kick(b):
    v5 = Client(b.port, "kick-v5")
    st, _, body = httpctl.request(b, "DELETE", "/api/v1/clients/kick-v5", token=READER)
    R.check("kick needs the admin role (403)", st == 403)
    st, _, body = httpctl.request(b, "DELETE", "/api/v1/clients/kick-v5", token=TOKEN)
    R.check("kick 200", st == 200, body)
    R.check("MQTT-3.14.2-1 paho v5 sees DISCONNECT 0x98",
            wait_for(lambda: v5.disconnects) and rc_value(v5.disconnects[0]) == 0x98,
            v5.disconnects)
    v5.c.loop_stop()
    v4 = Client(b.port, "kick-v4", version=mqtt.MQTTv311)
    st, _, _ = httpctl.request(b, "DELETE", "/api/v1/clients/kick-v4", token=TOKEN)
    R.check("3.1.1 client closed", st == 200 and wait_for(lambda: v4.disconnects))
    v4.c.loop_stop()
    # a persistent session: kick keeps it, ?session=discard removes it
    p = Client(b.port, "kick-persist", clean=False, expiry=600)
    httpctl.request(b, "DELETE", "/api/v1/clients/kick-persist", token=TOKEN)
    wait_for(lambda: p.disconnects)
    p.c.loop_stop()
    time.sleep(0.2)
    st, o = httpctl.get(b, "/api/v1/clients/kick-persist", token=READER)
    R.check("kicked session kept, offline", st == 200 and not o["connected"], o)
    st, _, body = httpctl.request(b, "DELETE", "/api/v1/clients/kick-persist", token=TOKEN)
    R.check("offline client without discard: 409", st == 409, body)
    st, _, body = httpctl.request(b, "DELETE", "/api/v1/clients/kick-persist?session=discard",
                                  token=TOKEN)
    R.check("?session=discard 200", st == 200, body)
    st, o = httpctl.get(b, "/api/v1/clients/kick-persist", token=READER)
    R.check("session gone after discard", st == 404)
    st, _, _ = httpctl.request(b, "DELETE", "/api/v1/clients/nobody", token=TOKEN)
    R.check("kick unknown client 404", st == 404)


def test_subscriptions_topics(b):
    s = Client(b.port, "subs-1")
    s.c.subscribe([("a/+", 1), ("b/#", 0)])
    s2 = Client(b.port, "subs-2")
    s2.c.subscribe("a/+", 2)
    time.sleep(0.3)
    st, o = httpctl.get(b, "/api/v1/subscriptions?clientid=subs-1", token=READER)
    R.check("subscriptions of a client",
            st == 200 and sorted(x["filter"] for x in o["data"]) == ["a/+", "b/#"], o)
    st, o = httpctl.get(b, "/api/v1/subscriptions?filter=a/%2B", token=READER)
    R.check("subscriptions by filter",
            st == 200 and sorted(x["clientid"] for x in o["data"]) == ["subs-1", "subs-2"] and
            {x["qos"] for x in o["data"]} == {1}, o)  # max_qos 1 granted
    st, o = httpctl.get(b, "/api/v1/subscriptions?clientid=nobody", token=READER)
    R.check("subscriptions of an unknown client 404", st == 404)
    p = Client(b.port, "topics-pub")
    # rates are per 5 s window: publish through more than one
    end, i = time.time() + 6, 0
    while time.time() < end:
        for _ in range(200):
            p.c.publish("busy/topic" if i % 3 else "quiet/%d" % i, b"x", qos=0)
            i += 1
        time.sleep(0.05)
    st, o = httpctl.get(b, "/api/v1/topics?limit=5", token=READER)
    R.check("busiest topic first", st == 200 and o["data"] and o["data"][0]["topic"] == "busy/topic",
            o)
    for c in (s, s2, p):
        c.stop()


def test_publish(b):
    s = Client(b.port, "pub-sub")
    s.c.subscribe("api/#", 1)
    time.sleep(0.2)
    body = {"topic": "api/one", "payload": "hello", "qos": 1,
            "properties": {"content_type": "text/plain", "user_properties": [["k", "v"]],
                           "correlation_data": base64.b64encode(b"\x00\x01").decode(),
                           "response_topic": "api/reply", "message_expiry": 60}}
    st, _, out = httpctl.request(b, "POST", "/api/v1/publish", body=body, token=TOKEN)
    R.check("publish 200 with a receiver", st == 200 and httpctl.json_of(out)["receivers"] == 1, out)
    m = wait_for(lambda: s.messages)
    m = s.messages[0] if s.messages else None
    R.check("subscriber got the payload", m is not None and m.payload == b"hello")
    if m is not None:
        pr = m.properties
        R.check("v5 properties carried", getattr(pr, "ContentType", None) == "text/plain" and
                getattr(pr, "UserProperty", None) == [("k", "v")] and
                getattr(pr, "CorrelationData", None) == b"\x00\x01" and
                getattr(pr, "ResponseTopic", None) == "api/reply", pr)
    st, _, out = httpctl.request(b, "POST", "/api/v1/publish", token=TOKEN,
                                 body={"topic": "api/bin", "encoding": "base64",
                                       "payload": base64.b64encode(b"\xff\x00").decode()})
    R.check("base64 payload", st == 200 and wait_for(lambda: len(s.messages) >= 2) and
            s.messages[1].payload == b"\xff\x00")
    st, _, out = httpctl.request(b, "POST", "/api/v1/publish", token=READER,
                                 body={"topic": "api/x"})
    R.check("publish needs admin (403)", st == 403)
    cases = [
        ({"topic": "api/+"}, 400, "MQTT-3.3.2-2 wildcard topic refused"),
        ({"topic": "api/q", "qos": 2}, 422, "QoS above max_qos refused (0x9B)"),
        ({"topic": "api/big", "payload": "x" * 200}, 422, "payload over message_size_limit"),
        ({"topic": "api/pf", "payload": base64.b64encode(b"\xff").decode(), "encoding": "base64",
          "properties": {"payload_format": 1}}, 422, "payload format 1 with non-UTF-8"),
        ({"topic": "api/x", "nope": 1}, 400, "unknown field"),
    ]
    for body, want, what in cases:
        st, _, out = httpctl.request(b, "POST", "/api/v1/publish", body=body, token=TOKEN)
        R.check(what + " (%d)" % want, st == want, (st, out))
    st, _, out = httpctl.request(b, "POST", "/api/v1/publish", body="{not json", token=TOKEN)
    R.check("bad JSON 400 with JSON error", st == 400 and httpctl.json_of(out)["code"] == "bad_request",
            out)
    st, _, out = httpctl.request(b, "POST", "/api/v1/publish", body="x" * 5000, token=TOKEN)
    R.check("oversized body 413", st == 413, out)
    s.stop()


def test_retained(b):
    for i in range(3):
        httpctl.request(b, "POST", "/api/v1/publish", token=TOKEN,
                        body={"topic": "ret/%d" % i, "payload": "v%d" % i, "retain": True})
    st, o = httpctl.get(b, "/api/v1/retained?filter=ret/%23", token=READER)
    R.check("retained browse by filter", st == 200 and o["meta"]["matched"] == 3 and
            sorted(x["topic"] for x in o["data"]) == ["ret/0", "ret/1", "ret/2"], o)
    st, o = httpctl.get(b, "/api/v1/retained/ret/1", token=READER)
    R.check("retained get", st == 200 and base64.b64decode(o["payload"]) == b"v1", o)
    st, _, _ = httpctl.request(b, "DELETE", "/api/v1/retained/ret/1", token=TOKEN)
    R.check("retained delete", st == 200)
    st, o = httpctl.get(b, "/api/v1/retained/ret/1", token=READER)
    R.check("deleted retained message gone", st == 404)
    s = Client(b.port, "ret-sub")
    s.c.subscribe("ret/#")
    wait_for(lambda: len(s.messages) >= 2)
    time.sleep(0.3)
    R.check("a new subscriber gets what is left",
            sorted(m.topic for m in s.messages) == ["ret/0", "ret/2"],
            [m.topic for m in s.messages])
    s.stop()
    st, o = httpctl.get(b, "/api/v1/retained?filter=a/%23/b", token=READER)
    R.check("invalid filter 400", st == 400)


def test_reload(b):
    with open(b.conf_path) as f:
        original = f.read()
    with open(b.conf_path, "w") as f:
        f.write(original.replace("max_qos 1", "max_qos 2"))
    st, _, out = httpctl.request(b, "POST", "/api/v1/reload", token=TOKEN)
    R.check("reload 200", st == 200, out)
    st, o = httpctl.get(b, "/api/v1/broker", token=READER)
    R.check("reload applied (max_qos 2)", o["config"]["max_qos"] == 2)
    with open(b.conf_path, "w") as f:
        f.write(original + "\nmax_qos 7\n")
    st, _, out = httpctl.request(b, "POST", "/api/v1/reload", token=TOKEN)
    err = httpctl.json_of(out) or {}
    R.check("invalid configuration: 422 with file:line",
            st == 422 and "broker.conf:" in err.get("error", ""), out)
    st, o = httpctl.get(b, "/api/v1/broker", token=READER)
    R.check("running configuration kept", o["config"]["max_qos"] == 2)
    with open(b.conf_path, "w") as f:
        f.write(original)
    st, _, _ = httpctl.request(b, "POST", "/api/v1/reload", token=TOKEN)


def test_errors_and_load(b):
    st, _, body = httpctl.request(b, "GET", "/nope", token=READER)
    R.check("unknown path 404 JSON", st == 404 and httpctl.json_of(body)["code"] == "not_found")
    st, _, body = httpctl.request(b, "PUT", "/api/v1/clients", token=READER)
    R.check("wrong method 405", st == 405)
    # a slow client: half a request line, then nothing
    slow = socket.create_connection(("127.0.0.1", b.http_port))
    slow.sendall(b"GET /api/v1/bro")
    results = []

    def worker():
        for _ in range(10):
            try:
                results.append(httpctl.request(b, "GET", "/api/v1/stats", token=READER)[0])
            except Exception as e:
                results.append(repr(e))
    threads = [threading.Thread(target=worker) for _ in range(20)]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    R.check("200 concurrent requests beside a stalled one all answered 200",
            len(results) == 200 and all(r == 200 for r in results),
            [r for r in results if r != 200][:5])
    R.check("...within 20 s", time.time() - t0 < 20)
    slow.close()
    # external-poll mode: no thread of libmicrohttpd's: as many threads as
    # the same broker without the HTTP server (its I/O, password and event
    # threads, whatever their number here)
    tasks = os.listdir("/proc/%d/task" % b.pid)
    plain = brokerctl.start("listener {port} 127.0.0.1\n")
    plain_tasks = os.listdir("/proc/%d/task" % plain.pid)
    plain.stop()
    R.check("the HTTP server has no thread of its own", len(tasks) == len(plain_tasks),
            (tasks, plain_tasks))
    # the broker still serves MQTT
    c = Client(b.port, "after-load")
    R.check("MQTT still served", c.connected.is_set())
    c.stop()


def test_sys_load(b):
    c = Client(b.port, "sys-watch")
    c.c.subscribe("$SYS/broker/load/#")
    wait_for(lambda: {m.topic for m in c.messages} >= {
        "$SYS/broker/load/connections/1min", "$SYS/broker/load/sockets/1min",
        "$SYS/broker/load/publish/dropped/1min", "$SYS/broker/load/messages/received/1min"},
        timeout=4)
    topics = {m.topic for m in c.messages}
    for t in ("connections", "sockets", "publish/dropped", "publish/received", "bytes/sent"):
        R.check("$SYS/broker/load/%s/1min" % t, "$SYS/broker/load/%s/1min" % t in topics)
    c.stop()


def main():
    b = httpctl.start("midge_http_token_file {files}/tokens\nmax_qos 1\nmessage_size_limit 100\n"
                      "midge_http_max_body 1024\nsys_interval 1\n",
                      tokens={TOKEN: "admin", READER: "read"})
    tests = [test_metrics, test_broker, test_clients, test_kick, test_subscriptions_topics,
             test_publish, test_retained, test_reload, test_errors_and_load, test_sys_load]
    for t in tests:
        try:
            t(b)
        except Exception as e:
            import traceback
            traceback.print_exc()
            R.check(t.__name__ + " ran", False, repr(e))
    R.check("broker alive at the end", b.alive(), b.log_text()[-2000:])
    b.stop()


main()
R.finish()

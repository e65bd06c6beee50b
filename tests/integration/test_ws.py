"""MQTT over WebSocket with paho-mqtt (transport="websockets"), MQTT 3.1.1
and 5, over ws and wss (a certtool CA): messages cross between WebSocket
and plain TCP clients both ways at QoS 0, 1 and 2, a multi-megabyte
message both ways, the subscriber on ws and on wss at once; a configured
path (midge_websockets_path) is the only one upgraded; the 101 answer
carries the subprotocol and the right Sec-WebSocket-Accept."""

import base64
import hashlib
import os
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brokerctl  # noqa: E402
import pki as pkitool  # noqa: E402
import paho.mqtt.client as mqtt  # noqa: E402

r = brokerctl.Results("ws")
brokerctl.deadline(r, 150)

b0 = brokerctl.start()  # only for a private directory
d = b0.dir + "-pki"
os.makedirs(d, exist_ok=True)
b0.stop()
pki = pkitool.make(d, "ws")

conf = """listener {port} 127.0.0.1
listener {port2} 127.0.0.1
protocol websockets
listener {port3} 127.0.0.1
protocol websockets
certfile %(server)s
keyfile %(server-key)s
""" % pki
b = brokerctl.start(conf)
PORTS = {"tcp": b.port, "ws": b.ports["port2"], "wss": b.ports["port3"]}


class Peer:
    """A paho client that records what it receives."""

    def __init__(self, name, kind, version, path="/mqtt"):
        self.got = []
        self.cond = threading.Condition()
        proto = mqtt.MQTTv5 if version == 5 else mqtt.MQTTv311
        transport = "tcp" if kind == "tcp" else "websockets"
        self.c = mqtt.Client(client_id=name, protocol=proto, transport=transport)
        if kind != "tcp":
            self.c.ws_set_options(path=path)
        if kind == "wss":
            self.c.tls_set(ca_certs=pki["ca"])
        self.c.on_message = self.on_message
        self.up = threading.Event()
        self.c.on_connect = lambda *a: self.up.set()
        self.c.connect("127.0.0.1", PORTS[kind], keepalive=30)
        self.c.loop_start()

    def on_message(self, c, u, m):
        with self.cond:
            self.got.append((m.topic, m.qos, bytes(m.payload)))
            self.cond.notify_all()

    def subscribe(self, topic):
        res, mid = self.c.subscribe(topic, 2)
        return res == 0

    def wait(self, n, timeout=10):
        end = time.time() + timeout
        with self.cond:
            while len(self.got) < n and time.time() < end:
                self.cond.wait(end - time.time())
            return list(self.got)

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


for version in (4, 5):
    for kind in ("ws", "wss"):
        tag = "%s %s" % (kind, "3.1.1" if version == 4 else "5")
        w = Peer("w-%d-%s" % (version, kind), kind, version)
        t = Peer("t-%d-%s" % (version, kind), "tcp", version)
        w.subscribe("to-ws/%s/#" % kind)
        t.subscribe("to-tcp/%s/#" % kind)
        time.sleep(0.3)
        for qos in (0, 1, 2):
            w.c.publish("to-tcp/%s/q%d" % (kind, qos), b"from-ws-%d" % qos, qos=qos).wait_for_publish()
            t.c.publish("to-ws/%s/q%d" % (kind, qos), b"from-tcp-%d" % qos, qos=qos).wait_for_publish()
        gt, gw = t.wait(3), w.wait(3)
        for qos in (0, 1, 2):
            r.check("%s: WebSocket -> TCP at QoS %d" % (tag, qos),
                    ("to-tcp/%s/q%d" % (kind, qos), qos, b"from-ws-%d" % qos) in gt, repr(gt))
            r.check("%s: TCP -> WebSocket at QoS %d" % (tag, qos),
                    ("to-ws/%s/q%d" % (kind, qos), qos, b"from-tcp-%d" % qos) in gw, repr(gw))
        # A multi-megabyte message both ways: many frames of the TCP and
        # TLS layers, one MQTT packet spanning them.
        big = os.urandom(3 * 1024 * 1024 + 17)
        n_t, n_w = len(gt), len(gw)
        w.c.publish("to-tcp/%s/big" % kind, big, qos=1).wait_for_publish()
        t.c.publish("to-ws/%s/big" % kind, big, qos=1).wait_for_publish()
        gt, gw = t.wait(n_t + 1, 20), w.wait(n_w + 1, 20)
        r.check("%s: 3 MiB WebSocket -> TCP intact" % tag,
                len(gt) > n_t and gt[-1][2] == big, "%d messages" % len(gt))
        r.check("%s: 3 MiB TCP -> WebSocket intact" % tag,
                len(gw) > n_w and gw[-1][2] == big, "%d messages" % len(gw))
        w.close()
        t.close()

# One subscriber on ws and one on wss hear the same TCP publisher.
a, c = Peer("fan-ws", "ws", 4), Peer("fan-wss", "wss", 5)
a.subscribe("fan")
c.subscribe("fan")
time.sleep(0.3)
p = Peer("fan-pub", "tcp", 4)
p.c.publish("fan", b"both", qos=1).wait_for_publish()
r.check("ws and wss subscribers both hear a TCP publisher",
        a.wait(1) == [("fan", 1, b"both")] and c.wait(1) == [("fan", 1, b"both")],
        repr((a.got, c.got)))
for x in (a, c, p):
    x.close()


def raw_upgrade(port, path, protocols="mqtt"):
    """The 101 answer (or error) to a hand-written upgrade request."""
    key = base64.b64encode(os.urandom(16)).decode()
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
               "Sec-WebSocket-Protocol: %s\r\n\r\n" % (path, key, protocols)).encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    s.close()
    want = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")
                                         .encode()).digest()).decode()
    return data.decode(errors="replace"), want


head, want = raw_upgrade(PORTS["ws"], "/anything", "chat, mqtt")
r.check("[MQTT-6.0.0-4] 101 with the subprotocol mqtt",
        head.startswith("HTTP/1.1 101") and "Sec-WebSocket-Protocol: mqtt\r\n" in head, head)
r.check("Sec-WebSocket-Accept is SHA-1 + base64 of the key (RFC 6455 4.2.2)",
        "Sec-WebSocket-Accept: %s\r\n" % want in head, head)
head, _ = raw_upgrade(PORTS["ws"], "/", "mqttv3.1")
r.check("mqttv3.1 is accepted as the subprotocol", "Sec-WebSocket-Protocol: mqttv3.1\r\n" in head, head)
b.stop()

# A configured path is the only one upgraded.
b = brokerctl.start("listener {port} 127.0.0.1\nprotocol websockets\nmidge_websockets_path /mqtt\n")
PORTS["ws"] = b.port
head, _ = raw_upgrade(b.port, "/other")
r.check("midge_websockets_path: another path gets 404", head.startswith("HTTP/1.1 404"), head)
head, _ = raw_upgrade(b.port, "/mqtt")
r.check("midge_websockets_path: the path is upgraded", head.startswith("HTTP/1.1 101"), head)
x = Peer("path-ok", "ws", 4, path="/mqtt")
r.check("paho connects on the configured path", x.up.wait(5) and x.c.is_connected(), "")
x.close()

rc = b.stop()
r.check("SIGTERM stops the broker with status 0", rc == 0, "rc=%s" % rc)
subprocess.run(["rm", "-rf", d])
r.finish()

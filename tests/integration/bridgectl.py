"""bridgectl - helpers of the bridge tests (test_bridge*.py).

    c = bridgectl.Client(port, "name", proto=4)   # paho, records messages
    c.sub("a/#", 1); c.pub("a/b", "x", 1); c.got -> [(topic, payload, qos, retain)]
    bridgectl.wait(lambda: cond, 10)               # polls, bounded
    bridgectl.log_wait(broker, "text", 10)          # until the broker's log says it
"""

import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brokerctl  # noqa: E402
import paho.mqtt.client as mqtt  # noqa: E402


def wait(cond, timeout):
    """Polls cond every 50 ms until it is true or timeout seconds pass."""
    end = time.time() + timeout * brokerctl.TIME_SCALE
    while time.time() < end:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def log_wait(broker, text, timeout=10):
    return wait(lambda: text in broker.log_text(), timeout)


class Client:
    """A paho client in its own network thread recording what it receives."""

    def __init__(self, port, cid, proto=4, clean=True):
        self.got = []
        self.lock = threading.Lock()
        self.connected = threading.Event()
        p = mqtt.MQTTv5 if proto == 5 else mqtt.MQTTv311
        if proto == 5:
            self.c = mqtt.Client(client_id=cid, protocol=p)
        else:
            self.c = mqtt.Client(client_id=cid, clean_session=clean, protocol=p)
        self.c.on_message = self._on_message
        self.c.on_connect = lambda *a: self.connected.set()
        self.c.connect("127.0.0.1", port, 30)
        self.c.loop_start()
        if not self.connected.wait(10):
            raise RuntimeError("client %s did not connect to port %d" % (cid, port))

    def _on_message(self, c, u, m):
        with self.lock:
            self.got.append((m.topic, m.payload.decode(errors="replace"), m.qos, bool(m.retain)))

    def sub(self, topic, qos=0):
        done = threading.Event()
        self.c.on_subscribe = lambda *a: done.set()
        self.c.subscribe(topic, qos)
        done.wait(5)

    def pub(self, topic, payload, qos=0, retain=False):
        info = self.c.publish(topic, payload, qos, retain)
        if qos:
            info.wait_for_publish()
        return info

    def messages(self, topic=None):
        with self.lock:
            return [m for m in self.got if topic is None or m[0] == topic]

    def close(self):
        try:
            self.c.disconnect()
        except Exception:
            pass
        self.c.loop_stop()

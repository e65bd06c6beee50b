"""Replay for new subscribers ($replay/SPEC/FILTER over midge_history logs)
with real clients (paho 3.1.1 and 5, mosquitto_sub): while a publisher
streams numbered messages, a subscriber that joins with $replay/all/...
receives the logged ones and then the live ones with no gap and no
duplicate at the seam; last:N and since:T select from the log; the logs
keep their bounds by count and by age; v5 subscription identifiers and
the granted QoS apply to replayed messages; a malformed SPEC is refused."""

import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brokerctl  # noqa: E402
from persistctl import Client  # noqa: E402

r = brokerctl.Results("replay")
brokerctl.deadline(r, 90)
check = r.check

b = brokerctl.start("listener {port} 127.0.0.1\n"
                    "midge_history r/# 200\n"
                    "midge_history s/# 5\n"
                    "midge_history a/# 100 2\n"
                    "max_queued_messages 100000\n")
PORT = b.port


def contiguous(seq):
    return seq == list(range(seq[0], seq[0] + len(seq))) if seq else False


def seam(version):
    """Joining mid-stream: the log, then live, each message once."""
    tag = "v%d" % version
    pub = Client("rpub%d" % version, version, PORT)
    pub.connect()
    stop = threading.Event()
    sent = []

    def stream():
        i = 0
        while not stop.is_set():
            info = pub.publish("r/%d/x" % version, str(i), 1)
            sent.append(i)
            i += 1
            if i % 50 == 0:
                info.wait_for_publish(2)

    t = threading.Thread(target=stream, daemon=True)
    t.start()
    time.sleep(0.5)
    sub = Client("rsub%d" % version, version, PORT)
    sub.connect()
    sub.subscribe("$replay/all/r/%d/#" % version, 1)
    time.sleep(0.5)
    stop.set()
    t.join(5)
    pub.publish("r/%d/x" % version, "end", 1).wait_for_publish(5)
    end = time.time() + 10
    while time.time() < end:
        got = sub.wait(0, 0)
        if got and got[-1].payload == b"end":
            break
        time.sleep(0.05)
    got = [m.payload.decode() for m in sub.wait(0, 0.3)]
    nums = [int(x) for x in got if x != "end"]
    check("%s seam: replay and live, contiguous (%d messages, from %s)" % (tag, len(nums),
                                                                          nums[0] if nums else None),
          contiguous(nums) and len(nums) > 200, (nums[:5], nums[-5:]))
    check("%s seam: no duplicate" % tag, len(set(nums)) == len(nums))
    check("%s seam: up to the last one sent" % tag, nums and nums[-1] == sent[-1] and got[-1] == "end",
          (nums[-1:], sent[-1:]))
    check("%s seam: the log's 200 first" % tag, nums and nums[0] > 0, nums[:3])
    pub.close()
    sub.close()


def bounds():
    pub = Client("bpub", 5, PORT)
    pub.connect()
    for i in range(8):
        pub.publish("s/1", "s%d" % i, 1).wait_for_publish(5)
    pub.publish("a/1", "old", 1).wait_for_publish(5)
    time.sleep(2.2)
    pub.publish("a/1", "new", 1).wait_for_publish(5)
    c = Client("bsub", 5, PORT)
    c.connect()
    c.subscribe("$replay/all/s/#", 1)
    got = [m.payload.decode() for m in c.wait(5, 2)]
    check("bounds: by count (the last 5 of 8)", got == ["s%d" % i for i in range(3, 8)], got)
    c2 = Client("bsub2", 5, PORT)
    c2.connect()
    c2.subscribe("$replay/all/a/#", 1)
    got = [m.payload.decode() for m in c2.wait(2, 1)]
    check("bounds: by age (older than 2 s gone)", got == ["new"], got)
    c3 = Client("bsub3", 5, PORT)
    c3.connect()
    c3.subscribe("$replay/last:2/s/#", 1, sub_id=42)
    got = c3.wait(2, 2)
    check("last:2", [m.payload for m in got] == [b"s6", b"s7"], [m.payload for m in got])
    check("v5 subscription identifier on replayed messages",
          [getattr(m.properties, "SubscriptionIdentifier", None) for m in got] == [[42], [42]])
    c4 = Client("bsub4", 4, PORT)
    c4.connect()
    c4.subscribe("$replay/since:%d/a/#" % int(time.time() - 1), 0)
    got = c4.wait(1, 2)
    check("since:T, 3.1.1, QoS granted 0", [(m.payload, m.qos) for m in got] == [(b"new", 0)],
          [(m.payload, m.qos) for m in got])
    for x in (pub, c, c2, c3, c4):
        x.close()
    rc, out, err = brokerctl.run(["mosquitto_sub", "-p", str(PORT), "-t", "$replay/last:1/s/#", "-C", "1",
                                  "-W", "3"])
    check("mosquitto_sub with $replay/last:1", rc == 0 and out.strip() == "s7", (rc, out, err))
    rc, out, err = brokerctl.run(["mosquitto_sub", "-p", str(PORT), "-V", "5", "-t",
                                  "$replay/next:1/s/#", "-C", "1", "-W", "2"])
    check("a malformed SPEC is refused", "denied" in err and not out, (rc, out, err))


try:
    seam(4)
    seam(5)
    bounds()
finally:
    brokerctl.stop_all()
r.finish()

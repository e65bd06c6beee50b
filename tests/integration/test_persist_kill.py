"""kill -9 in a loop at random moments while paho clients (MQTT 3.1.1 and
5, QoS 1 and QoS 2) publish as fast as they can to a persistent
subscriber: after every restart the subscriber resumes with session
present 1 and without subscribing again, and in the end it has received
every message whose PUBACK (QoS 1) or PUBCOMP (QoS 2) its publisher saw,
QoS 2 ones exactly once, each topic in order; the retained message set
before the first crash is still there.

MIDGE_KILL_ROUNDS (default 4) sets the crashes per combination; the seed
is printed so that a failure can be replayed (MIDGE_KILL_SEED)."""

import os
import random
import shutil
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brokerctl  # noqa: E402
import persistctl  # noqa: E402
from persistctl import Client, kill9  # noqa: E402

r = brokerctl.Results("persist-kill")
brokerctl.deadline(r, 110)
check = r.check
ROUNDS = int(os.environ.get("MIDGE_KILL_ROUNDS", "4"))
SEED = int(os.environ.get("MIDGE_KILL_SEED", str(int(time.time()))))
print("seed %d, %d rounds" % (SEED, ROUNDS), flush=True)
rnd = random.Random(SEED)
DIRS = []


class Publisher(threading.Thread):
    """Publishes k/<topic> with increasing sequence numbers until stopped or
    the connection breaks; remembers which were acknowledged."""

    def __init__(self, client, topic, qos, start_seq):
        super().__init__(daemon=True)
        self.c = client
        self.topic = topic
        self.qos = qos
        self.seq = start_seq
        self.by_mid = {}
        self.stop_flag = threading.Event()

    def run(self):
        while not self.stop_flag.is_set():
            info = self.c.publish(self.topic, str(self.seq), self.qos)
            if info.rc != 0:
                break
            self.by_mid[info.mid] = self.seq
            self.seq += 1
            if len(self.by_mid) - len(self.c.acked) > 500:
                time.sleep(0.002)  # paho queues without bound otherwise

    def acked(self):
        with self.c.cond:
            return {self.by_mid[m] for m in self.c.acked if m in self.by_mid}


def combo(version, qos):
    tag = "v%d QoS %d" % (version, qos)
    d = tempfile.mkdtemp(prefix="midge-kill-")
    DIRS.append(d)
    port = brokerctl.free_port()
    conf = ("listener %d 127.0.0.1\npersistence true\npersistence_location %s/\n"
            "max_queued_messages 1000000\n" % (port, d))
    acked = set()
    present = []
    seq = 0
    topic = "k/%d/%d" % (version, qos)
    # One subscriber object for the whole test: a client resuming a session
    # keeps its own state too (paho holds QoS 2 messages until PUBREL) and
    # reconnects by itself to the restarted broker.
    sub = Client("ksub-%d-%d" % (version, qos), version, port, clean=False, expiry=3600)
    for rnd_i in range(ROUNDS + 1):
        b = brokerctl.start(conf)
        if rnd_i == 0:
            if not sub.connect():
                check("%s: subscriber connects" % tag, False)
                return
            sub.subscribe("k/#", qos)
            p = Client("kret-%d-%d" % (version, qos), version, port)
            p.connect()
            p.publish("kr/%d/%d" % (version, qos), "kept", 1, retain=True).wait_for_publish(5)
            p.close()
        else:
            if not sub.wait_connects(rnd_i + 1):
                check("%s: subscriber back in round %d" % (tag, rnd_i), False)
                return
            present.append(sub.session_present)
        if rnd_i == ROUNDS:
            # the last round: no crash; everything acknowledged must arrive
            end = time.time() + 15
            while time.time() < end:
                with sub.cond:
                    have = {int(m.payload) for m in sub.msgs if m.topic == topic}
                if acked <= have:
                    break
                time.sleep(0.1)
            time.sleep(0.3)  # a duplicate would come now
            kept = Client("kret2-%d-%d" % (version, qos), version, port)
            kept.connect()
            kept.subscribe("kr/#", 1)
            got = kept.wait(1, 3)
            check("%s: retained message intact" % tag, len(got) == 1 and got[0].payload == b"kept")
            kept.close()
            sub.close()
            b.stop()
            break
        pubc = Client("kpub-%d-%d-%d" % (version, qos, rnd_i), version, port)
        pubc.connect()
        pub = Publisher(pubc, topic, qos, seq)
        pub.start()
        time.sleep(rnd.uniform(0.2, 1.0))
        kill9(b)  # mid-stream, at a random moment
        pub.stop_flag.set()
        pub.join(5)
        seq = pub.seq
        acked |= pub.acked()
        pubc.close(disconnect=False)
    with sub.cond:
        got = [int(m.payload) for m in sub.msgs if m.topic == topic]
    check("%s: %d crashes, %d messages acknowledged (of %d sent)" % (tag, ROUNDS, len(acked), seq),
          len(acked) > 0)
    check("%s: session present 1 after every crash" % tag, present == [1] * ROUNDS, present)
    missing = sorted(acked - set(got))
    check("%s: every acknowledged message delivered" % tag, not missing, missing[:20])
    if qos == 2:
        dups = sorted({x for x in got if got.count(x) > 1})
        check("%s: exactly once" % tag, not dups, dups[:20])
    firsts = []
    seen = set()
    for x in got:
        if x not in seen:
            seen.add(x)
            firsts.append(x)
    check("%s: in order" % tag, firsts == sorted(firsts),
          [(a, b) for a, b in zip(firsts, firsts[1:]) if b < a][:10])


try:
    for version in (4, 5):
        for qos in (1, 2):
            combo(version, qos)
finally:
    brokerctl.stop_all()
    for d in DIRS:
        shutil.rmtree(d, ignore_errors=True)
r.finish()

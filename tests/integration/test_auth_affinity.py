"""MQTT 5 enhanced authentication with several auth workers: every step
of one exchange goes to the worker that started it (its SCRAM state lives
in that process), while exchanges are spread over the workers.
- two examples/auth_worker_scram.py processes at once, 60 SCRAM exchanges
  (12 at a time): all succeed, with the server signature checked, and
  both workers started exchanges;
- re-authentication (AUTH 0x19) on the same connections: all succeed;
- the worker holding an exchange dies between its steps: that exchange is
  refused (CONNACK 0x88 Server unavailable, a log line), the next one
  succeeds on the other worker.
midge only (Mosquitto serves enhanced authentication only by plugin)."""

import json
import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brokerctl  # noqa: E402
from brokerctl import read_packet, spawn  # noqa: E402
import test_auth_enhanced_lib as ax  # noqa: E402
from test_zauth_lib import props_of  # noqa: E402

r = brokerctl.Results("enhanced authentication, several workers")
brokerctl.deadline(r, 100)
PY = "/usr/bin/python3"
HERE = os.path.dirname(os.path.abspath(__file__))
SCRAM = os.path.join(HERE, "..", "..", "examples", "auth_worker_scram.py")

d = brokerctl.scratch_dir("affinity")
users = {"users": {"alice": json.loads(brokerctl.run([PY, SCRAM, "--entry", "wonderland"],
                                                     timeout=30)[1])}}
with open(os.path.join(d, "users.json"), "w") as f:
    json.dump(users, f)

# Each worker is the example itself, its steps counted in a file of its
# own (which worker served what).
WRAP = """
import os, runpy, sys
mod = runpy.run_path(%r, run_name="scram")
count = open(%r + "." + os.environ["MIDGE_W"], "a")
decide = mod["Scram"].decide
def counted(self, req):
    count.write("%%s %%s\\n" %% (req.get("step"), req.get("client_id")))
    count.flush()
    return decide(self, req)
mod["Scram"].decide = counted
sys.exit(mod["main"]([%r] + sys.argv[1:]))
""" % (SCRAM, os.path.join(d, "steps"), SCRAM)


def start_worker(name, endpoint):
    return spawn([PY, "-c", WRAP, endpoint, os.path.join(d, "users.json")],
                 env=dict(os.environ, MIDGE_W=name))


b = brokerctl.start("listener {port} 127.0.0.1\nallow_anonymous false\n"
                    "midge_auth_endpoint ipc://{dir}/auth\nmidge_auth_timeout_ms 3000\n")
endpoint = "ipc://%s/auth" % b.dir
workers = [start_worker("w%d" % i, endpoint) for i in range(2)]
time.sleep(0.8)  # both say ready


def steps_of():
    """{worker file: [(step, client id)]}"""
    out = {}
    for name in os.listdir(d):
        if name.startswith("steps."):
            with open(os.path.join(d, name)) as f:
                out[name] = [tuple(x.split()) for x in f if x.strip()]
    return out


N, PAR = 60, 12
results, socks, lock = {}, {}, threading.Lock()


def one(i):
    cid = "aff-%d" % i
    try:
        rc, props, cl, s, steps = ax.scram_connect(b.port, cid, "alice", "wonderland")
        ok = rc == 0 and len(steps) == 1 and \
            props.get(0x16, b"").decode() == getattr(cl, "want", None)
        with lock:
            results[cid] = ok or (rc, props)
            socks[cid] = s
    except Exception as e:  # noqa: BLE001 - reported as a failed exchange
        with lock:
            results[cid] = repr(e)


t0 = time.monotonic()
for start in range(0, N, PAR):
    ts = [threading.Thread(target=one, args=(i,)) for i in range(start, min(N, start + PAR))]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
took = time.monotonic() - t0
bad = {k: v for k, v in results.items() if v is not True}
r.check("%d SCRAM exchanges, %d at a time, two workers: all succeed (%.1f s)" % (N, PAR, took),
        len(results) == N and not bad, bad)

per = steps_of()
firsts = {k: {c for s, c in v if s == "connect"} for k, v in per.items()}
conts = {k: {c for s, c in v if s == "continue"} for k, v in per.items()}
r.check("both workers started exchanges (the load is shared)",
        len(per) == 2 and all(len(v) > 0 for v in firsts.values()),
        {k: len(v) for k, v in firsts.items()})
r.check("each exchange's second step went to the worker of its first",
        all(conts[k] == firsts[k] for k in per) and sum(len(v) for v in conts.values()) == N,
        {k: (len(firsts[k]), len(conts[k])) for k in per})

# re-authentication on every connection, concurrently
re_ok = {}


def reauth(cid):
    last, cl = ax.reauth(socks[cid], "alice", "wonderland")
    with lock:
        re_ok[cid] = bool(last and last[0] == 0xF0 and last[1] == 0x00 and
                          last[2].get(0x16, b"").decode() == cl.want) or last


ts = [threading.Thread(target=reauth, args=(c,)) for c in list(socks)[:PAR]]
for t in ts:
    t.start()
for t in ts:
    t.join(30)
bad = {k: v for k, v in re_ok.items() if v is not True}
r.check("re-authentication (AUTH 0x19) on %d connections at once: all succeed" % len(ts),
        len(re_ok) == len(ts) and not bad, bad)
for s in socks.values():
    s.close()

# The worker holding an exchange dies between its steps.
held = ax.ScramClient("alice", "wonderland")
s = ax.raw_connect(b.port, "aff-dying", held.first())
p = read_packet(s, 5)
per = steps_of()
holder = [k for k, v in per.items() if ("connect", "aff-dying") in v]
r.check("a first step answered with AUTH 0x18", p and p[0] == 0xF0 and p[1][0] == 0x18 and
        len(holder) == 1, (p, holder))
if holder:
    victim = workers[0] if holder[0].endswith("w0") else workers[1]
    victim.send_signal(signal.SIGKILL)
    victim.wait(5)
    time.sleep(0.3)
    s.sendall(ax.auth_packet(0x18, ax.auth_props(ax.METHOD, held.final(
        props_of(p[1], 1).get(0x16, b"")))))
    rc, got = ax.connack(s, 5)
    r.check("its worker gone: the exchange is refused with CONNACK 0x88", rc == 0x88, (rc, got))
    s.close()
    rc, props, cl, s, steps = ax.scram_connect(b.port, "aff-after", "alice", "wonderland")
    r.check("the next exchange succeeds on the other worker", rc == 0, (rc, props))
    s.close()
    time.sleep(1.2)
    r.check("the refusal is logged", "because their worker went" in b.log_text(),
            b.log_text()[-600:])

for w in workers:
    brokerctl.kill(w)
r.finish()

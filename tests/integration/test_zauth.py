"""Auth workers over ZeroMQ (midge_auth_endpoint), end to end with real
pyzmq workers (examples/auth_worker_json.py and zauth_worker.py):
- allow and deny with the worker's reason code (3.1.1 and 5.0 CONNACK);
- rules from the answer checked locally: publish, subscribe, receive;
- the user name and session expiry cap from the answer;
- a worker that never answers: refused (0x88) within the timeout, or let
  in with midge_auth_on_timeout allow;
- a worker that crashes and a new one that comes: served again;
- two workers share the load; a bad answer refuses and is logged;
- the decision cache: the same credentials reach the worker once;
- CurveZMQ over tcp://: a worker whose key is listed answers, another
  gets nothing;
- start-up refuses plain tcp:// on a non-loopback address with file:line.
midge only (Mosquitto has no auth workers)."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brokerctl  # noqa: E402
from brokerctl import publish_packet, read_packet, kill, subscribe_packet  # noqa: E402
from test_zauth_lib import (PY, WORKER, JSON_WORKER, connect3, connect5,  # noqa: E402
                            json_lines, received_topics, worker_broker)
import test_zauth_lib  # noqa: E402

r = brokerctl.Results("auth workers")
brokerctl.deadline(r, 120)
d = brokerctl.scratch_dir("zauth")
workers = []


def start_worker(cmd):
    return test_zauth_lib.start_worker(workers, cmd)


def broker(extra, timeout_ms=1000):
    return worker_broker("allow_anonymous false\n" + extra, timeout_ms)


# ---- the JSON example: allow, deny, rules, user name, expiry cap --------
def pw_entry(p):
    out = subprocess.run([PY, JSON_WORKER, "--hash", p], capture_output=True, text=True,
                         timeout=30, check=True)
    return out.stdout.strip()


users = {
    "users": {
        "alice": {"password": pw_entry("good"), "session_expiry_max": 60,
                  "acl": [{"permission": "deny", "action": "all", "topic": "alice/secret"},
                          {"permission": "allow", "action": "all", "topic": "alice/#"},
                          {"permission": "allow", "action": "subscribe", "topic": "news/+"}]},
        "dave": {"password": pw_entry("d"),
                 "acl": [{"permission": "allow", "action": "all", "topic": "#"}]},
        "carol": {"password": pw_entry("c"), "username": "carol@corp"},
    },
}
db = os.path.join(d, "users.json")
with open(db, "w") as f:
    json.dump(users, f)

# the request waits in midge until the worker has started and said ready
b = broker("", timeout_ms=15000)
start_worker([PY, JSON_WORKER, b.endpoint, db])
rc, s = connect3(b.port, "a1", "alice", "good")
r.check("3.1.1 good password: CONNACK 0", rc == 0, rc)
s.close()
rc, s = connect3(b.port, "a2", "alice", "bad")
r.check("3.1.1 wrong password: CONNACK 4 (the worker's 0x86)", rc == 4, rc)
rc, props, s = connect5(b.port, "a3", "alice", "bad")
r.check("5.0 wrong password: CONNACK 0x86 [MQTT-3.2.2-6]", rc == 0x86, rc)
rc, props, s = connect5(b.port, "a4")
r.check("5.0 anonymous, no anonymous section: 0x87", rc == 0x87, rc)
rc, props, s = connect5(b.port, "a5", "alice", "good", props=b"\x11" + (3600).to_bytes(4, "big"))
r.check("session expiry 3600 capped at the worker's 60, CONNACK says so",
        rc == 0 and props.get(0x11) == 60, (rc, props))
s.close()
rc, props, s = connect5(b.port, "c1", "carol", "c")
s.close()
time.sleep(0.2)
r.check("the worker's user name is the client's", rc == 0 and "user 'carol@corp'" in b.log_text(),
        rc)

# rules: alice's are local from now on
rc, dv = connect3(b.port, "dave1", "dave", "d")
dv.sendall(subscribe_packet(1, "#", 0))
read_packet(dv)
rc, al = connect3(b.port, "alice1", "alice", "good")
al.sendall(subscribe_packet(2, "other/#", 0))
p = read_packet(al)
r.check("subscribe outside the rules: SUBACK 0x80", p and p[1][2] == 0x80, p)
al.sendall(subscribe_packet(3, "news/+", 0))
p = read_packet(al)
r.check("subscribe rule for news/+: granted", p and p[1][2] == 0x00, p)
al.sendall(subscribe_packet(4, "news/#", 0))
p = read_packet(al)
r.check("news/# is wider than the rule news/+: refused", p and p[1][2] == 0x80, p)
for t in ("other/x", "alice/secret", "alice/x"):
    al.sendall(publish_packet(t, b"m"))
got = received_topics(dv, 3.0)
r.check("publish: only alice/x passes the rules (deny first, then allow)", got == ["alice/x"], got)
dv.sendall(publish_packet("news/1", b"n"))
dv.sendall(publish_packet("alice/secret", b"n"))
topics = received_topics(al, 2.0, 0.5)
r.check("receive: news/1 delivered to alice (her own publish of alice/x too), alice/secret not",
        "news/1" in topics and "alice/secret" not in topics, topics)
# a reload keeps the rules in force (acl stays on without an acl_file)
received_topics(dv, 0.5, 0.5)  # dave's own publishes above
b.signal(signal.SIGHUP)
end = time.time() + 15
while "configuration reloaded" not in b.log_text() and time.time() < end:
    time.sleep(0.05)
al.sendall(publish_packet("other/y", b"m"))
al.sendall(publish_packet("alice/y", b"m"))
got = received_topics(dv, 5.0)
r.check("after SIGHUP the rules still apply: only alice/y passes", got == ["alice/y"], got)
empty_pw = os.path.join(d, "empty.pw")
open(empty_pw, "w").close()
with open(b.conf_path, "a") as f:
    f.write("\npassword_file %s\nmidge_auth_chain passwd\n" % empty_pw)
b.signal(signal.SIGHUP)
end = time.time() + 15
while "reload failed" not in b.log_text() and time.time() < end:
    time.sleep(0.05)
r.check("a reload whose chain leaves the workers out fails, nothing changed",
        "midge_auth_chain does not name zmq, but midge_auth_endpoint is set" in b.log_text())
al.close()
dv.close()
b.stop()

# ---- a worker that never answers --------------------------------------
b = broker("", timeout_ms=300)
start_worker([PY, WORKER, b.endpoint, "--silent"])
t0 = time.time()
rc, props, s = connect5(b.port, "t1", "u", "p")
el = time.time() - t0
r.check("silent worker: CONNACK 0x88 within the timeout (%.2f s)" % el,
        rc == 0x88 and 0.25 <= el < 1.5, (rc, el))
time.sleep(1.2)
r.check("the timeout is logged", "unanswered within midge_auth_timeout_ms 300" in b.log_text())
b.stop()
b = broker("midge_auth_on_timeout allow\n", timeout_ms=300)
start_worker([PY, WORKER, b.endpoint, "--silent"])
rc, props, s = connect5(b.port, "t2", "u", "p")
r.check("silent worker, midge_auth_on_timeout allow: CONNACK 0", rc == 0, rc)
s.close()
b.stop()
rc, props, s = (None, None, None)

# ---- crash and come back; two workers share; bad answers ---------------
b = broker("", timeout_ms=1000)
log1, log2 = os.path.join(d, "w1"), os.path.join(d, "w2")
w1 = start_worker([PY, WORKER, b.endpoint, "--log", log1])
rc, props, s = connect5(b.port, "k1", "u", "p")
r.check("worker up: CONNACK 0", rc == 0, rc)
w1.kill()
w1.wait(5)
rc, props, s = connect5(b.port, "k2", "u", "p")
r.check("worker crashed: CONNACK 0x88", rc == 0x88, rc)
start_worker([PY, WORKER, b.endpoint, "--log", log1, "--delay", "300"])
start_worker([PY, WORKER, b.endpoint, "--log", log2, "--delay", "300"])
rc, props, s = connect5(b.port, "k3", "u", "p")
r.check("a new worker came: CONNACK 0", rc == 0, rc)
res = []


def one(i):
    res.append(connect5(b.port, "par%d" % i, "u", "p")[0])


t0 = time.time()
ths = [threading.Thread(target=one, args=(i,)) for i in range(4)]
for t in ths:
    t.start()
for t in ths:
    t.join(10)
el = time.time() - t0
n1 = sum(1 for x in json_lines(log1) if x["client_id"].startswith("par"))
n2 = sum(1 for x in json_lines(log2) if x["client_id"].startswith("par"))
r.check("two workers share 4 CONNECTs of 300 ms: %.2f s, %d + %d" % (el, n1, n2),
        res == [0] * 4 and n1 >= 1 and n2 >= 1 and el < 2.5, (res, el, n1, n2))
b.stop()
b = broker("", timeout_ms=1000)
start_worker([PY, WORKER, b.endpoint, "--answer", '{"acl": 5}'])
rc, props, s = connect5(b.port, "bad1", "u", "p")
time.sleep(1.2)
r.check("a bad answer: CONNACK 0x88 and a log line",
        rc == 0x88 and "a bad answer (acl: the rules are not a JSON array)" in b.log_text(), rc)
b.stop()

# ---- the decision cache --------------------------------------------------
b = broker("midge_auth_cache_ttl 60\nmidge_auth_cache_size 2\n")
log3 = os.path.join(d, "w3")
start_worker([PY, WORKER, b.endpoint, "--log", log3,
              "--answer", '{"acl": [{"permission": "allow", "action": "all", "topic": "x"}]}'])
for i in range(3):
    rc, s = connect3(b.port, "same", "u", "p")
    s.close()
rc2, s = connect3(b.port, "same", "u", "other")
s.close()
r.check("cache: the same credentials thrice reach the worker once, others again",
        rc == 0 and rc2 == 0 and len(json_lines(log3)) == 2, len(json_lines(log3)))
rc, s = connect3(b.port, "same", "u", "p")
s.sendall(subscribe_packet(1, "y", 0))
p = read_packet(s)
r.check("a cached decision brings its rules: y refused", p and p[1][2] == 0x80, p)
s.close()
for cid in ("c1", "c2", "c3"):
    connect3(b.port, cid, "u", "p")[1].close()
connect3(b.port, "same", "u", "p")[1].close()
r.check("cache bounded (midge_auth_cache_size 2): the oldest was asked again",
        len(json_lines(log3)) == 6, len(json_lines(log3)))
b.stop()

# ---- CurveZMQ over tcp:// -------------------------------------------------
import zmq  # noqa: E402

srv_pub, srv_sec = zmq.curve_keypair()
good_pub, good_sec = zmq.curve_keypair()
bad_pub, bad_sec = zmq.curve_keypair()
with open(os.path.join(d, "server.key"), "w") as f:
    f.write(srv_sec.decode() + "\n")
with open(os.path.join(d, "workers.keys"), "w") as f:
    f.write("# the workers\n" + good_pub.decode() + "\n")
zport = brokerctl.free_port()
b = brokerctl.start("listener {port} 127.0.0.1\nallow_anonymous false\n"
                    "midge_auth_endpoint tcp://127.0.0.1:%d\nmidge_auth_timeout_ms 800\n"
                    "midge_auth_curve_server_key %s/server.key\n"
                    "midge_auth_curve_worker_keys %s/workers.keys\n" % (zport, d, d))
ep = "tcp://127.0.0.1:%d" % zport
start_worker([PY, WORKER, ep, "--curve", srv_pub.decode(), bad_sec.decode()])
rc, props, s = connect5(b.port, "z1", "u", "p")
r.check("CurveZMQ: a worker with an unlisted key gets nothing (0x88)", rc == 0x88, rc)
start_worker([PY, WORKER, ep, "--curve", srv_pub.decode(), good_sec.decode()])
rc, props, s = connect5(b.port, "z2", "u", "p")
r.check("CurveZMQ: a listed worker answers", rc == 0, rc)
b.stop()

# ---- fail closed at start-up ---------------------------------------------
conf = os.path.join(d, "open.conf")
with open(conf, "w") as f:
    f.write("listener %d 127.0.0.1\n\nmidge_auth_endpoint tcp://0.0.0.0:%d\n"
            % (brokerctl.free_port(), zport))
p = subprocess.run([brokerctl.midge_binary(), "-c", conf], capture_output=True, text=True,
                   timeout=10)
r.check("plain tcp:// on 0.0.0.0 refused at start-up with file:line",
        p.returncode != 0 and "open.conf:3: midge_auth_endpoint tcp://0.0.0.0" in p.stderr,
        p.stderr)
with open(conf, "w") as f:
    f.write("listener %d 127.0.0.1\nmidge_auth_endpoint tcp://0.0.0.0:%d\n"
            "midge_auth_curve_server_key %s/server.key\n" % (brokerctl.free_port(), zport, d))
p = subprocess.run([brokerctl.midge_binary(), "-c", conf], capture_output=True, text=True,
                   timeout=10)
r.check("a CurveZMQ server key without worker keys refused", p.returncode != 0 and
        "midge_auth_curve_worker_keys go together" in p.stderr, p.stderr)
secret = os.path.join(d, "hs.secret")
with open(secret, "w") as f:
    f.write("a-secret-of-enough-length-for-hs256\n")
with open(conf, "w") as f:
    f.write("listener %d 127.0.0.1\nmidge_auth_endpoint ipc://%s/w.sock\n"
            "midge_jwt_key_file %s\nmidge_auth_chain jwt\n" % (brokerctl.free_port(), d, secret))
p = subprocess.run([brokerctl.midge_binary(), "-c", conf], capture_output=True, text=True,
                   timeout=10)
r.check("a chain leaving the workers out refused at start-up (they would serve no password)",
        p.returncode != 0 and "open.conf:4: midge_auth_chain does not name zmq" in p.stderr,
        p.stderr)

for w in workers:
    kill(w)
r.finish()

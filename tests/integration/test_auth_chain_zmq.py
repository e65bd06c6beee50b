"""zmq as a link of midge_auth_chain (docs/auth.md, "The chain"), end to
end with real pyzmq workers (zauth_worker.py), a password file made by
mosquitto_passwd, HS256 tokens made by python3-jwt and paho clients:
- passwd,zmq: a user in the file is decided by the file (the worker is
  not asked, a wrong password is final), others by the worker; a session
  the file lets in loses the rules a worker gave it before;
- zmq,passwd: the worker defers and the file decides; the worker's
  cached defer does not hide the file's later answer (a reload changes
  the password: the old one is refused although the defer is cached);
- the example worker (examples/auth_worker_json.py) with "unknown":
  "defer" before a password file;
- jwt,zmq: a token decides (valid or not), a password that is no token
  goes to the worker;
- a worker that never answers, or none at all, inside a chain:
  midge_auth_on_timeout decides (0x88, or allow), the file is not asked;
  a passwd,zmq chain still lets a file user in without workers;
- every source deferring: allow_anonymous decides (Mosquitto's rule);
- the default chain (no midge_auth_chain) is passwd,zmq;
- enhanced authentication goes to the workers in a chain; a defer
  there is 0x8C;
- a TLS identity (use_identity_as_username, a certtool certificate,
  mosquitto_pub): the workers are asked, the file is not;
- start-up refusals with file:line.
midge only (Mosquitto has no auth workers)."""

import atexit
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import jwt as pyjwt
import paho.mqtt.client as mqtt

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brokerctl  # noqa: E402
import pki as pkitool  # noqa: E402
from brokerctl import (connect_packet, kill, read_packet, run, spawn,  # noqa: E402
                       subscribe_packet)
from test_zauth_lib import connect3, connect5, json_lines  # noqa: E402

r = brokerctl.Results("auth chain with workers")
brokerctl.deadline(r, 90)
PY = "/usr/bin/python3"
HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "zauth_worker.py")
d = brokerctl.scratch_dir("chainz")
workers = []


@atexit.register
def _cleanup():
    """Every worker and broker this test started, also when a check
    raised on the way."""
    for w in workers:
        kill(w)
    brokerctl.stop_all()


ALLOW, DEFER = {"result": "allow"}, {"result": "defer"}


def deny(code):
    return {"result": "deny", "reason_code": code}


def passwd_file(name, user, pw):
    path = os.path.join(d, name)
    subprocess.run(["mosquitto_passwd", "-c", "-b", path, user, pw], check=True, timeout=20,
                   capture_output=True)
    os.chmod(path, 0o644)
    return path


PW = passwd_file("passwd", "carol", "cpw")
SECRET = os.path.join(d, "hs.secret")
with open(SECRET, "w") as f:
    f.write("a-secret-of-enough-length-for-hs256\n")


def token(key=b"a-secret-of-enough-length-for-hs256", sub="tok"):
    return pyjwt.encode({"sub": sub, "exp": int(time.time()) + 600}, key, algorithm="HS256")


def broker(extra, timeout_ms=3000):
    b = brokerctl.start("listener {port} 127.0.0.1\nmidge_auth_endpoint ipc://{dir}/auth\n"
                        "midge_auth_timeout_ms %d\n%s" % (timeout_ms, extra))
    b.endpoint = "ipc://%s/auth" % b.dir
    return b


def worker(b, by_user, *more):
    log = os.path.join(d, "w%d.log" % len(workers))
    p = spawn([PY, WORKER, b.endpoint, "--log", log, "--by-user", json.dumps(by_user), *more])
    workers.append(p)
    p.stdout.readline()  # "ready" went out
    return log


def asked(log):
    """The user names of the requests a worker got, in order."""
    return [x.get("username") for x in json_lines(log)]


def v5(b, cid, user=None, pw=None, props=b""):
    rc, _props, s = connect5(b.port, cid, user, pw, props)
    s.close()
    return rc


def paho(b, cid, user, pw, proto=mqtt.MQTTv311):
    """The CONNACK code a paho client gets (None: none came)."""
    c = mqtt.Client(client_id=cid, protocol=proto)
    c.username_pw_set(user, pw)
    got, done = {}, threading.Event()

    def on_connect(cl, ud, flags, rc, props=None):
        got["rc"] = rc.value if hasattr(rc, "value") else rc
        done.set()

    c.on_connect = on_connect
    c.connect("127.0.0.1", b.port, 30)
    c.loop_start()
    done.wait(5)
    c.disconnect()
    c.loop_stop()
    return got.get("rc")


# ---- passwd,zmq -------------------------------------------------------------
b = broker("allow_anonymous false\npassword_file %s\nmidge_auth_chain passwd,zmq\n" % PW)
log = worker(b, {"carol": ALLOW, "dave": ALLOW, "*": deny(0x87),
                 "ruled": {"result": "allow",
                           "acl": [{"permission": "allow", "action": "all", "topic": "r/#"}]}})
r.check("passwd,zmq: a file user, right password (paho 3.1.1): in",
        paho(b, "p1", "carol", "cpw") == 0)
r.check("passwd,zmq: a file user, wrong password: 0x86, final although the worker would allow",
        v5(b, "p2", "carol", "nope") == 0x86)
r.check("passwd,zmq: the worker was not asked about carol", "carol" not in asked(log),
        asked(log))
r.check("passwd,zmq: a user the file does not know: the worker allows (paho 5.0)",
        paho(b, "p3", "dave", "any", mqtt.MQTTv5) == 0)
r.check("passwd,zmq: ... and the worker's deny is the answer (0x87)",
        v5(b, "p4", "mallory", "x") == 0x87)


def suback(user, pw):
    """The SUBACK code of `other/#` for persistent session s1 (3.1.1)."""
    s = socket.create_connection(("127.0.0.1", b.port), timeout=10)
    s.sendall(connect_packet("s1", clean=False, username=user, password=pw))
    p = read_packet(s)
    s.sendall(subscribe_packet(1, "other/#", 0))
    q = read_packet(s)
    s.close()
    return p and p[1][1] == 0 and q and q[1][2]


r.check("passwd,zmq: a session the worker gave rules: other/# refused",
        suback("ruled", "x") == 0x80)
time.sleep(0.2)
r.check("passwd,zmq: the same session let in by the file: the worker's rules are gone",
        suback("carol", "cpw") == 0x00)
req = json_lines(log)[0]
r.check("passwd,zmq: the worker's request carries the CONNECT's fields",
        req["type"] == "connect" and req["username"] == "dave" and req["password"] == "YW55" and
        req["client_id"] == "p3", req)
b.stop()

# ---- zmq,passwd; the cache keeps the worker's answer, not the chain's --------
pw2 = passwd_file("passwd2", "carol", "cpw")
b = broker("allow_anonymous false\npassword_file %s\nmidge_auth_chain zmq,passwd\n"
           "midge_auth_cache_ttl 60\n" % pw2)
log = worker(b, {"carol": DEFER, "dave": DEFER, "wally": ALLOW, "*": deny(0x86)})
r.check("zmq,passwd: the worker defers, the file lets carol in", v5(b, "q1", "carol", "cpw") == 0)
r.check("zmq,passwd: the worker defers, the file refuses a wrong password (0x86)",
        v5(b, "q2", "carol", "nope") == 0x86)
r.check("zmq,passwd: deferred, a user the file does not know: 0x86",
        v5(b, "q3", "dave", "x") == 0x86)
r.check("zmq,passwd: the worker alone lets in a user the file does not know",
        v5(b, "q4", "wally", "w") == 0)
r.check("zmq,passwd: the worker's deny is final (0x86) before the file",
        v5(b, "q5", "eve", "e") == 0x86)
r.check("zmq,passwd: carol again: her cached defer, the file decides (in)",
        v5(b, "q1", "carol", "cpw") == 0)
n_carol = asked(log).count("carol")
r.check("zmq,passwd: the defer was cached (carol/cpw asked once)", n_carol == 2, asked(log))
subprocess.run(["mosquitto_passwd", "-b", pw2, "carol", "newpw"], check=True, timeout=20,
               capture_output=True)
b.signal(signal.SIGHUP)
end = time.time() + 10
while b.log_text().count("configuration reloaded") < 1 and time.time() < end:
    time.sleep(0.05)
r.check("after a reload changing carol's password, her cached defer does not let the old one in",
        v5(b, "q1", "carol", "cpw") == 0x86 and asked(log).count("carol") == n_carol,
        asked(log))
r.check("... and the new one is in", v5(b, "q1", "carol", "newpw") == 0)
b.stop()

# ---- the JSON example worker with "unknown": "defer", before the file ------------
JSON_WORKER = os.path.join(HERE, "..", "..", "examples", "auth_worker_json.py")
entry = subprocess.run([PY, JSON_WORKER, "--hash", "apw"], capture_output=True, text=True,
                       timeout=30, check=True).stdout.strip()
db = os.path.join(d, "users.json")
with open(db, "w") as f:
    json.dump({"users": {"alice": {"password": entry}}, "unknown": "defer"}, f)
b = broker("allow_anonymous false\npassword_file %s\nmidge_auth_chain zmq,passwd\n" % PW)
workers.append(spawn([PY, JSON_WORKER, b.endpoint, db]))
r.check("example worker: its user alice is its own (in; a wrong password 0x86)",
        v5(b, "x1", "alice", "apw") == 0 and v5(b, "x2", "alice", "no") == 0x86)
r.check("example worker: a user it does not have is deferred to the file (carol in)",
        v5(b, "x3", "carol", "cpw") == 0 and v5(b, "x4", "carol", "no") == 0x86)
b.stop()

# ---- jwt,zmq with real tokens -------------------------------------------------
b = broker("allow_anonymous false\nmidge_jwt_key_file %s\nmidge_auth_chain jwt,zmq\n" % SECRET)
log = worker(b, {"*": ALLOW})
r.check("jwt,zmq: a valid token (paho 5.0): in", paho(b, "j1", "x", token(), mqtt.MQTTv5) == 0)
r.check("jwt,zmq: a token signed with another key: 0x86, the worker not asked",
        v5(b, "j2", "x", token(key=b"another-secret-of-enough-length!!")) == 0x86 and
        asked(log) == [], asked(log))
r.check("jwt,zmq: a password that is no token goes to the worker",
        v5(b, "j3", "wally", "plain") == 0 and asked(log) == ["wally"], asked(log))
b.stop()

# ---- a worker that never answers, or none, inside a chain ------------------------
b = broker("allow_anonymous false\npassword_file %s\nmidge_auth_chain zmq,passwd\n" % PW,
           timeout_ms=300)
worker(b, {}, "--silent")
t0 = time.time()
rc = v5(b, "t1", "carol", "cpw")
el = time.time() - t0
r.check("zmq,passwd, silent worker: 0x88 within the timeout (%.2f s), the file not asked" % el,
        rc == 0x88 and el < 1.5, rc)
b.stop()
b = broker("allow_anonymous false\npassword_file %s\nmidge_auth_chain zmq,passwd\n"
           "midge_auth_on_timeout allow\n" % PW, timeout_ms=300)
r.check("zmq,passwd, no worker, midge_auth_on_timeout allow: in (wrong password too)",
        v5(b, "t2", "carol", "nope") == 0)
b.stop()
b = broker("allow_anonymous false\npassword_file %s\nmidge_auth_chain passwd,zmq\n" % PW,
           timeout_ms=300)
r.check("passwd,zmq, no worker: a file user is in without it", v5(b, "t3", "carol", "cpw") == 0)
r.check("passwd,zmq, no worker: another user: 0x88", v5(b, "t4", "dave", "x") == 0x88)
b.stop()

# ---- every source defers: allow_anonymous decides; the default chain -------------
for anon, want in (("true", 0), ("false", 0x87)):
    b = broker("allow_anonymous %s\n" % anon)
    log = worker(b, {"*": DEFER})
    r.check("zmq alone deferring, allow_anonymous %s: anonymous %#x" % (anon, want),
            v5(b, "a1") == want)
    r.check("zmq alone deferring, allow_anonymous %s: a named client %#x" % (anon, want),
            v5(b, "a2", "nobody", "x") == want and asked(log) == [None, "nobody"], asked(log))
    b.stop()
b = broker("allow_anonymous true\npassword_file %s\n" % PW)
log = worker(b, {"*": DEFER, "dave": ALLOW})
time.sleep(0.2)
r.check("no midge_auth_chain: the chain is passwd,zmq (logged)", "chain passwd,zmq" in
        b.log_text(), b.log_text()[-800:])
r.check("default chain: carol by the file", v5(b, "d1", "carol", "cpw") == 0 and
        v5(b, "d2", "carol", "x") == 0x86)
r.check("default chain: dave by the worker", v5(b, "d3", "dave", "x") == 0)
r.check("default chain: all defer, anonymous, allow_anonymous true: in", v5(b, "d4") == 0)
r.check("default chain: all defer, a named client the file does not know: 0x86 "
        "(a password file applies)", v5(b, "d5", "zed", "x") == 0x86)
r.check("the worker was asked about dave, zed and the anonymous one, never carol",
        sorted(x or "" for x in asked(log)) == ["", "dave", "zed"], asked(log))

# ---- enhanced authentication: the workers' alone, in a chain too --------------
METHOD = b"\x15" + len(b"TEST").to_bytes(2, "big") + b"TEST"
rc = v5(b, "e1", props=METHOD)
r.check("an Authentication Method in a chain: the worker defers it: 0x8C", rc == 0x8C, rc)
b.stop()
b = broker("allow_anonymous false\npassword_file %s\n" % PW)
log = worker(b, {"*": ALLOW})
rc = v5(b, "e2", props=METHOD)
last = (json_lines(log) or [{}])[-1]
r.check("an Authentication Method in a chain: an `auth` request, allowed",
        rc == 0 and last.get("type") == "auth" and last.get("method") == "TEST", (rc, last))
rc, s = connect3(b.port, "e3", "carol", "cpw")
s.close()
r.check("... and a 3.1.1 file user beside it", rc == 0, rc)
b.stop()


# ---- a TLS identity in a chain: the workers are asked, the file is not ------------
pki = pkitool.make(d, "cz")
carol_cert = pkitool.client_cert(d, pki, "carol", 'cn = "carol"\n')
b = brokerctl.start("""listener {port} 127.0.0.1
certfile %(server)s
keyfile %(server-key)s
cafile %(ca)s
require_certificate true
use_identity_as_username true
allow_anonymous false
password_file %(pw)s
midge_auth_endpoint ipc://{dir}/auth
midge_auth_chain passwd,zmq
""" % dict(pki, pw=PW))
b.endpoint = "ipc://%s/auth" % b.dir
log = worker(b, {"*": DEFER})


def tls_pub(cid):
    return run(["mosquitto_pub", "-p", str(b.port), "-h", "127.0.0.1", "-t", "t", "-m", "x",
                "-i", cid, "-u", "carol", "-P", "wrong", "--cafile", pki["ca"],
                "--cert", carol_cert[0], "--key", carol_cert[1]], timeout=20)[:2]


rc, out = tls_pub("i1")
reqs = json_lines(log)
r.check("TLS identity, passwd,zmq: the worker asked (with the certificate), the file not "
        "(a wrong password of a file user), the worker's defer lets the identity in",
        rc == 0 and len(reqs) == 1 and reqs[0]["username"] == "carol" and
        reqs[0]["tls_fingerprint"], (rc, out, reqs))
b.stop()

# ---- a certificate a PROXY header vouched for: the workers hear its CN ------------
b = brokerctl.start("listener {port} 127.0.0.1\nenable_proxy_protocol 2\n"
                    "midge_auth_endpoint ipc://{dir}/auth\n")
b.endpoint = "ipc://%s/auth" % b.dir
log = worker(b, {"*": ALLOW})


def proxied(cid, tlvs):
    s = socket.create_connection(("127.0.0.1", b.port), timeout=5)
    s.sendall(brokerctl.proxy_v2_inet("10.1.2.3", 4567, tlvs) + connect_packet(cid))
    p = read_packet(s, 5)
    s.close()
    return p is not None and p[0] == 0x20 and p[1][1] == 0


ok = [proxied("px1", brokerctl.proxy_ssl_tlv("dev,7")),
      proxied("px2", brokerctl.proxy_ssl_tlv("dev-8", verified=False)),
      proxied("px3", brokerctl.proxy_ssl_tlv("dev,7"))]
reqs = json_lines(log)
r.check("PROXY v2 with a verified certificate: the worker gets tls_subject CN=<its CN> "
        "(RFC 4514 escaped) and no fingerprint; an unverified one gives no subject",
        ok == [True, True, True] and len(reqs) == 3 and
        reqs[0].get("tls_subject") == "CN=dev\\,7" and reqs[0].get("tls_fingerprint") is None and
        reqs[1].get("tls_subject") is None and reqs[0].get("peer") == "10.1.2.3", (ok, reqs))
b.stop()

# ---- start-up refusals with file:line ---------------------------------------------
def start_fails(text, says):
    p = os.path.join(d, "bad.conf")
    with open(p, "w") as f:
        f.write(text)
    out = subprocess.run([brokerctl.midge_binary(), "-c", p], capture_output=True, text=True,
                         timeout=10)
    return out.returncode != 0 and says in out.stderr, out.stderr[-600:]


L = "listener %d 127.0.0.1\n" % brokerctl.free_port()
EP = "midge_auth_endpoint ipc://%s/bad.sock\n" % d
r.check("a chain naming zmq without midge_auth_endpoint", *start_fails(
    L + "password_file %s\nmidge_auth_chain passwd,zmq\n" % PW,
    "bad.conf:3: midge_auth_chain names zmq, which is not configured (set midge_auth_endpoint)"))
r.check("a chain leaving configured workers out", *start_fails(
    L + EP + "password_file %s\nmidge_auth_chain passwd\n" % PW,
    "bad.conf:4: midge_auth_chain does not name zmq, but midge_auth_endpoint is set"))
r.check("zmq named twice", *start_fails(L + EP + "midge_auth_chain zmq,passwd,zmq\n",
                                        "bad.conf:3: midge_auth_chain: zmq named twice"))

for w in workers:
    kill(w)
r.finish()

"""Security configuration through the real binary: acl_file decisions the
differential test does not cover (SUBSCRIBE refusals, wills, the
acl.denied event and its $SYS counter), per_listener_settings, fail-closed
start-up errors with file:line, -p as Mosquitto 2 documents it, atomic
SIGHUP reload, use_username_as_clientid, accept_protocol_versions,
clientid_prefixes, bind_interface, include_dir, memory_limit, and log
lines and event JSON with hostile client ids, user names and topics.
Where Mosquitto is the reference (allow_anonymous false with no password
source, -p with a file), the same check also runs against it.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brokerctl  # noqa: E402
from brokerctl import _s, read_packet, run, varint  # noqa: E402

r = brokerctl.Results("test_security")
brokerctl.deadline(r, 150)
midge = brokerctl.midge_binary()
tmp = tempfile.mkdtemp(prefix="midge-sec-")
os.chmod(tmp, 0o755)


def write(name, text, mode=0o644):
    p = os.path.join(tmp, name)
    with open(p, "w") as f:
        f.write(text)
    os.chmod(p, mode)
    return p


def connect(port, cid, user=None, password=None, v5=False, will=None, timeout=5):
    """A raw client: (socket, CONNACK code) - the code is None on no answer."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    flags = 0x02
    payload = _s(cid.encode())
    if will:
        flags |= 0x04
        if v5:
            payload += b"\x00"
        payload += _s(will[0].encode()) + _s(will[1].encode())
    if user is not None:
        flags |= 0x80
        payload += _s(user.encode())
        if password is not None:
            flags |= 0x40
            payload += _s(password.encode())
    vh = _s(b"MQTT") + bytes([5 if v5 else 4, flags, 0, 60]) + (b"\x00" if v5 else b"")
    body = vh + payload
    s.sendall(b"\x10" + varint(len(body)) + body)
    pk = read_packet(s, timeout)
    code = pk[1][1] if pk and pk[0] == 0x20 and len(pk[1]) >= 2 else None
    return s, code


def subscribe(s, flt, v5=False, pid=1):
    body = pid.to_bytes(2, "big") + (b"\x00" if v5 else b"") + _s(flt.encode()) + b"\x01"
    s.sendall(b"\x82" + varint(len(body)) + body)
    pk = read_packet(s)
    if not pk or pk[0] != 0x90:
        return None
    return pk[1][-1]


def publish(s, topic, payload, qos=1, v5=False, pid=1, retain=False):
    """Returns the PUBACK code (3.1.1: 0), or None."""
    body = _s(topic.encode()) + (pid.to_bytes(2, "big") if qos else b"") + \
        (b"\x00" if v5 else b"") + payload.encode()
    s.sendall(bytes([0x30 | (qos << 1) | (1 if retain else 0)]) + varint(len(body)) + body)
    if not qos:
        return 0
    while True:
        pk = read_packet(s)
        if not pk:
            return None
        if pk[0] == 0x40:
            return pk[1][2] if len(pk[1]) > 2 else 0


def received(s, timeout=1.0):
    """Topics of the PUBLISH packets that arrive within timeout."""
    out = []
    end = time.time() + timeout
    while time.time() < end:
        pk = read_packet(s, max(0.05, end - time.time()))
        if not pk:
            break
        if pk[0] & 0xF0 == 0x30:
            tl = int.from_bytes(pk[1][:2], "big")
            out.append(pk[1][2:2 + tl].decode(errors="replace"))
    return out


def start_fails(text, says):
    """Runs midge on text; it must exit non-zero saying `says`."""
    p = write("bad.conf", text)
    rc, out, err = run([midge, "-c", p], timeout=10)
    return rc != 0 and says in err, (rc, err[-600:])


ACL = write("acl", "user alice\ntopic readwrite alice/#\ntopic read shared/#\n"
                   "pattern readwrite dev/%c/#\n")
pw = os.path.join(tmp, "passwd")
subprocess.run(["mosquitto_passwd", "-c", "-b", pw, "alice", "apw"], check=True, timeout=20,
               capture_output=True)
subprocess.run(["mosquitto_passwd", "-b", pw, "bob", "bpw"], check=True, timeout=20,
               capture_output=True)
os.chmod(pw, 0o644)

# ---- SUBSCRIBE, will, acl.denied event and $SYS counter -----------------
b = brokerctl.start("listener {port} 127.0.0.1\nallow_anonymous true\nacl_file %s\n"
                    "password_file %s\nsys_interval 1\nmidge_hooks_endpoint tcp://127.0.0.1:{port2}\n"
                    % (ACL, pw))
P = b.port
zctx = None
try:
    import zmq
    zctx = zmq.Context()
    zs = zctx.socket(zmq.SUB)
    zs.setsockopt(zmq.SUBSCRIBE, b"acl.")
    zs.setsockopt(zmq.RCVTIMEO, 3000)
    zs.connect("tcp://127.0.0.1:%d" % b.ports["port2"])
    time.sleep(0.5)
except ImportError:
    zs = None

s, code = connect(P, "a1", "alice", "apw", v5=True)
r.check("alice connects", code == 0, repr(code))
r.check("SUBSCRIBE to a filter nothing readable matches: v5 0x87", subscribe(s, "bob/#", True) == 0x87)
r.check("SUBSCRIBE to # is granted (checked per message)", subscribe(s, "#", True, 2) == 1)
r.check("SUBSCRIBE to $share/g/alice/# is granted", subscribe(s, "$share/g/alice/#", True, 3) == 1)
s3, code = connect(P, "a3", "alice", "apw")
r.check("3.1.1 SUBSCRIBE refused: 0x80", subscribe(s3, "bob/#") == 0x80)
r.check("a denied v5 PUBLISH gets 0x87", publish(s, "bob/x", "1", v5=True, pid=9) == 0x87)
r.check("a denied 3.1.1 PUBLISH is acknowledged (and dropped)", publish(s3, "bob/x", "1") == 0)
r.check("an allowed PUBLISH is delivered to #", publish(s3, "alice/x", "2", pid=2) == 0 and
        "alice/x" in received(s))
s3.close()
_, code = connect(P, "w1", "alice", "apw", v5=True, will=("bob/will", "x"))
r.check("a will on a denied topic: CONNACK 0x87", code == 0x87, repr(code))
_, code = connect(P, "w2", "alice", "apw", will=("bob/will", "x"))
r.check("3.1.1: CONNACK 5", code == 5, repr(code))
_, code = connect(P, "w3", "alice", "apw", will=("$SYS/will", "x"))
r.check("a will on $SYS: refused", code == 5, repr(code))
if zs is not None:
    events = []
    end = time.time() + 3
    while time.time() < end:
        try:
            parts = zs.recv_multipart()
        except zmq.Again:
            break
        events.append((parts[0].decode(), json.loads(parts[1])))
        if len(events) >= 5:
            break
    names = [(e[1].get("access"), e[1].get("topic")) for e in events]
    r.check("acl.denied events: subscribe, publish, will", ("subscribe", "bob/#") in names and
            ("publish", "bob/x") in names and ("publish", "bob/will") in names, repr(names))
s.close()
b.stop()

# the counter, on a broker whose ACL lets a reader see it
acl2 = write("acl2", "topic read $SYS/broker/midge/#\ntopic write ok/#\n")
b = brokerctl.start("listener {port} 127.0.0.1\nacl_file %s\nsys_interval 1\n" % acl2)
s, _ = connect(b.port, "reader")
subscribe(s, "$SYS/broker/midge/acl/denied")
p, _ = connect(b.port, "writer")
publish(p, "no/x", "1")
publish(p, "no/y", "1", pid=2)
vals = []
end = time.time() + 4
while time.time() < end and "2" not in vals:
    pk = read_packet(s, 1.5)
    if pk and pk[0] & 0xF0 == 0x30:
        tl = int.from_bytes(pk[1][:2], "big")
        vals.append(pk[1][2 + tl:].decode())
r.check("$SYS/broker/midge/acl/denied counts refusals", "2" in vals, repr(vals))
s.close()
p.close()
b.stop()

# ---- Mosquitto's rule: allow_anonymous false and no password source -----
for kind in ("mosquitto", "midge"):
    os.environ["MIDGE_BROKER"] = kind
    b = brokerctl.start("listener {port} 127.0.0.1\nallow_anonymous false\n")
    _, c1 = connect(b.port, "x1")
    _, c2 = connect(b.port, "x2", "anyone", "anything")
    _, c3 = connect(b.port, "x3", "anyone", "anything", v5=True)
    r.check("%s: allow_anonymous false, no password_file: everyone refused (5, 5, 0x87)" % kind,
            (c1, c2, c3) == (5, 5, 0x87), repr((c1, c2, c3)))
    b.stop()
os.environ.pop("MIDGE_BROKER", None)

# ---- per_listener_settings -------------------------------------------
aclA = write("aclA", "topic readwrite a/#\n")
b = brokerctl.start("per_listener_settings true\n"
                    "listener {port} 127.0.0.1\nallow_anonymous true\nacl_file %s\n"
                    "listener {port2} 127.0.0.1\npassword_file %s\n" % (aclA, pw))
_, c1 = connect(b.port, "p1")
s2, c2 = connect(b.ports["port2"], "p2")
s3, c3 = connect(b.ports["port2"], "p3", "bob", "bpw")
r.check("per listener: anonymous in on the first, refused on the second (unset = false)",
        c1 == 0 and c2 == 5, repr((c1, c2)))
r.check("per listener: bob's password checked on the second", c3 == 0, repr(c3))
s1, _ = connect(b.port, "p4")
r.check("per listener: the first listener's acl_file applies there",
        publish(s1, "b/x", "1", v5=False) == 0 and subscribe(s1, "b/#") == 0x80)
r.check("per listener: the second listener has no acl_file", subscribe(s3, "b/#") == 1)
b.stop()

# ---- fail closed at start-up -----------------------------------------
for text, says in [
        ("listener 1883 127.0.0.1\nplugin /usr/lib/x.so\n", "bad.conf:2: 'plugin' refused"),
        ("listener 1883 127.0.0.1\nauth_opt_db x\n", "bad.conf:2: 'auth_opt_db'"),
        ("listener 1883 127.0.0.1\ncafile /x.pem\n", "bad.conf:2: cafile needs TLS"),
        ("listener 1883 127.0.0.1\nrequire_certificate true\n",
         "bad.conf:1: listener on port 1883: require_certificate / use_identity_as_username need "
         "certfile"),
        ("connection b1\naddress 127.0.0.1\n", "bad.conf:1: connection b1 has no topic line"),
        ("connection b1\naddress 127.0.0.1\ntopic a\nbridge_psk 00\n", "bad.conf:4: bridge_psk (TLS-PSK"),
        ("listener 1883 127.0.0.1\nacl_file /nonexistent/acl\n", "acl_file /nonexistent/acl"),
        ("listener 1883 127.0.0.1\nacl_file %s\n" % write("badacl", "topic\n"),
         "badacl:1: empty topic"),
        ("listener 1883 127.0.0.1\nbind_interface nosuchif0\n", "interface nosuchif0"),
]:
    ok, detail = start_fails(text, says)
    r.check("refused at start-up: %s" % says, ok, repr(detail))

# ---- -p as Mosquitto 2 documents it ----------------------------------
port, pport = brokerctl.free_port(), brokerctl.free_port()
conf = write("p.conf", "listener %d 127.0.0.1\nallow_anonymous true\nmidge_hooks_endpoint none\n" % port)
p = subprocess.Popen([midge, "-c", conf, "-p", str(pport)], stdout=subprocess.DEVNULL,
                     stderr=subprocess.PIPE, text=True)
up = brokerctl.wait_port(port, proc=p)
time.sleep(0.3)
try:
    socket.create_connection(("127.0.0.1", pport), timeout=1).close()
    extra = True
except OSError:
    extra = False
p.send_signal(signal.SIGTERM)
_, err = p.communicate(timeout=10)
r.check("-p is ignored when the file defines listeners", up and not extra and "-p ignored" in err,
        repr((up, extra, err[-300:])))
conf = write("p2.conf", "allow_anonymous false\nmidge_hooks_endpoint none\n")
p = subprocess.Popen([midge, "-c", conf, "-p", str(pport)], stdout=subprocess.DEVNULL,
                     stderr=subprocess.PIPE, text=True)
up = brokerctl.wait_port(pport, proc=p)
_, code = connect(pport, "lp") if up else (None, None)
p.send_signal(signal.SIGTERM)
_, err = p.communicate(timeout=10)
r.check("-p with a file without listeners: localhost only, the file's allow_anonymous false kept",
        up and code == 5 and "0.0.0.0" not in err and "listening on 127.0.0.1" in err,
        repr((up, code, err[-400:])))

# ---- SIGHUP: all or nothing ------------------------------------------
acl_r = write("aclr", "topic readwrite one/#\n")
b = brokerctl.start("listener {port} 127.0.0.1\nallow_anonymous true\nacl_file %s\n" % acl_r)
s, _ = connect(b.port, "r1")
r.check("before reload: one/ allowed, two/ denied",
        publish(s, "one/x", "1", v5=False) == 0 and subscribe(s, "two/#") == 0x80)
write("aclr", "topic readwrite two/#\n")
b.signal(signal.SIGHUP)
time.sleep(0.5)
r.check("after reload: the new acl_file applies to a connected client",
        subscribe(s, "two/#", pid=2) == 1 and subscribe(s, "one/#", pid=3) == 0x80)
write("aclr", "topic readwrite three/#\nbogus line\n")
b.signal(signal.SIGHUP)
time.sleep(0.5)
r.check("a broken acl_file: reload refused, the old rules stay",
        "reload failed, nothing changed" in b.log_text() and "aclr:2" in b.log_text() and
        subscribe(s, "two/#", pid=4) == 1, b.log_text()[-500:])
with open(b.conf_path) as f:
    text = f.read()
with open(b.conf_path, "w") as f:
    f.write(text.replace("acl_file", "#acl_file") + "\ncafile /x\n")
b.signal(signal.SIGHUP)
time.sleep(0.5)
r.check("a broken configuration: reload refused as a whole", subscribe(s, "one/#", pid=5) == 0x80,
        b.log_text()[-300:])
with open(b.conf_path, "w") as f:
    f.write(text.replace("acl_file", "#acl_file"))
b.signal(signal.SIGHUP)
time.sleep(0.5)
r.check("removing acl_file on reload: applied, and said (a warning)",
        subscribe(s, "one/#", pid=6) == 1 and "acl_file %s removed" % acl_r in b.log_text(),
        b.log_text()[-300:])
s.close()
b.stop()

# a reload that refuses anonymous clients disconnects the connected ones
b = brokerctl.start("listener {port} 127.0.0.1\nallow_anonymous true\npassword_file %s\n" % pw)
sa, _ = connect(b.port, "anon1", v5=True)
sn, _ = connect(b.port, "named1", "bob", "bpw")
with open(b.conf_path) as f:
    text = f.read()
with open(b.conf_path, "w") as f:
    f.write(text.replace("allow_anonymous true", "allow_anonymous false"))
b.signal(signal.SIGHUP)
pk = read_packet(sa, 3)
sn.settimeout(1)
try:
    named_gone = sn.recv(16) == b""
except socket.timeout:
    named_gone = False
r.check("reload to allow_anonymous false: the anonymous client gets DISCONNECT 0x87, bob stays",
        pk is not None and pk[0] == 0xE0 and pk[1][0] == 0x87 and not named_gone and
        "1 client(s) no longer allowed" in b.log_text(), repr((pk, named_gone, b.log_text()[-300:])))
sa.close()
sn.close()
b.stop()

# ---- listener options ------------------------------------------------
b = brokerctl.start("listener {port} 127.0.0.1\nuse_username_as_clientid true\n"
                    "accept_protocol_versions 4\nbind_interface lo\n")
_, c1 = connect(b.port, "whatever", "u1")
_, c2 = connect(b.port, "whatever")
_, c3 = connect(b.port, "x", "u1", v5=True)
r.check("use_username_as_clientid: no user name refused (5); accept_protocol_versions 4: v5 0x84",
        c1 == 0 and c2 == 5 and c3 == 0x84, repr((c1, c2, c3)))
sa, _ = connect(b.port, "first", "same")
sb, _ = connect(b.port, "second", "same")
sa.settimeout(3)
try:
    gone = sa.recv(16) == b""
except OSError:
    gone = True
r.check("use_username_as_clientid: two clients of one user are one session (take-over)", gone)
sa.close()
sb.close()
b.stop()
b = brokerctl.start("listener {port} 127.0.0.1\nclientid_prefixes ok-\n"
                    "listener {port2} 127.0.0.1\nuse_username_as_clientid true\n")
_, c4 = connect(b.port, "ok-1")
_, c5 = connect(b.port, "no-1")
r.check("clientid_prefixes ok-: others refused (5)", c4 == 0 and c5 == 5, repr((c4, c5)))
# as Mosquitto: the prefix is checked on the id the client sent, before
# use_username_as_clientid replaces it
_, c6 = connect(b.ports["port2"], "ok-2", "someone")
_, c7 = connect(b.ports["port2"], "no-2", "ok-user")
r.check("clientid_prefixes sees the id sent, not the user name that replaces it",
        c6 == 0 and c7 == 5, repr((c6, c7)))
b.stop()

# ---- mount_point: each listener's clients in their own subtree
b = brokerctl.start("listener {port} 127.0.0.1\nmount_point tenant1/\n"
                    "listener {port2} 127.0.0.1\n")
t1, _ = connect(b.port, "t1", v5=True)
root, _ = connect(b.ports["port2"], "root")
subscribe(t1, "#", True)
subscribe(root, "#")
publish(t1, "a/b", "from-t1", v5=True)
got_root = received(root, 1.0)
publish(root, "tenant1/c", "from-root", pid=2)
publish(root, "other/d", "x", pid=3)
got_t1 = received(t1, 1.0)
r.check("mount_point: a client's topics live under it; it sees them without it",
        "tenant1/a/b" in got_root and got_t1 == ["c"], repr((got_root, got_t1)))
t1.close()
root.close()
b.stop()

# ---- include_dir and memory_limit ------------------------------------
inc = os.path.join(tmp, "conf.d")
os.mkdir(inc)
write("conf.d/10-mem.conf", "memory_limit 1\n")
b = brokerctl.start("listener {port} 127.0.0.1\ninclude_dir %s\n" % inc)
s, _ = connect(b.port, "m1", v5=True)
time.sleep(1.5)
rc5 = publish(s, "a/b", "x", v5=True)
s.close()
r.check("memory_limit (from include_dir) reached: QoS 1 PUBLISH gets 0x97",
        rc5 == 0x97 and "memory_limit 1 reached" in b.log_text(), repr((rc5, b.log_text()[-300:])))
b.stop()

# ---- hostile names: log lines and event JSON -------------------------
b = brokerctl.start("listener {port} 127.0.0.1\nacl_file %s\nlog_type all\n"
                    "midge_hooks_endpoint tcp://127.0.0.1:{port2}\n" % write("acl3", "topic read x\n"))
if zctx is not None:
    zs = zctx.socket(zmq.SUB)
    zs.setsockopt(zmq.SUBSCRIBE, b"")
    zs.setsockopt(zmq.RCVTIMEO, 2000)
    zs.connect("tcp://127.0.0.1:%d" % b.ports["port2"])
    time.sleep(0.5)
evil_cid = "evil\n2026-01-01T00:00:00Z client admin connected\x1b[2J"
s, code = connect(b.port, evil_cid, "u\r\nx\x07")
publish(s, "t/\x1b]0;pwned\x07", "x", qos=1)
s.close()
time.sleep(0.5)
log = b.log_text()
forged = [ln for ln in log.splitlines() if ln.startswith("2026-01-01T00:00:00Z")]
r.check("a newline in a client id forges no log line", not forged and "evil\\x0a2026" in log,
        repr(forged[:2]))
r.check("no control character reaches the log",
        not any(ord(c) < 0x20 and c not in "\n" for c in log) and "\\x1b[2J" in log)
r.check("the user name and topic are escaped too", "u\\x0d\\x0ax\\x07" in log and
        "t/\\x1b]0;pwned\\x07" in log, log[-600:])
if zctx is not None:
    raws = []
    while True:
        try:
            raws.append(zs.recv_multipart()[1])
        except zmq.Again:
            break
    bad = [x for x in raws if any(ch < 0x20 for ch in x)]
    ok = any(b"evil\\n2026" in x for x in raws) and any(b"\\u001b]0;pwned\\u0007" in x for x in raws)
    r.check("event JSON: hostile names and topics escaped (%d events)" % len(raws),
            raws and not bad and ok, repr(raws[:3]))
    zctx.destroy(linger=0)
b.stop()

r.finish()

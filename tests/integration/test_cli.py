"""The midge command line and configuration file as a user meets them:
--version, -h, bad options; an unknown or malformed configuration line
stops start-up naming file and line; -p; pid_file; -d; SIGHUP reloads
without dropping connections (and a broken file is refused); password_file
with mosquitto_passwd hashes; Mosquitto 2's allow_anonymous rule."""

import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brokerctl  # noqa: E402
from brokerctl import run, spawn, kill  # noqa: E402

r = brokerctl.Results("cli")
brokerctl.deadline(r, 120)
midge = brokerctl.midge_binary()

rc, out, err = run([midge, "--version"])
r.check("--version", rc == 0 and out.startswith("midge "), repr((rc, out)))
rc, out, err = run([midge, "-h"])
r.check("-h prints usage", rc == 0 and "-c" in out and "-p" in out, repr(out))
rc, out, err = run([midge, "--frobnicate"])
r.check("unknown option exits 1", rc == 1 and "frobnicate" in err, repr((rc, err)))

tmp = os.path.join(brokerctl.builddir(), "tests", "integration", "cli-%d" % os.getpid())
os.makedirs(tmp, exist_ok=True)


def write(name, text):
    p = os.path.join(tmp, name)
    with open(p, "w") as f:
        f.write(text)
    return p


bad = write("bad.conf", "# ok\nport 1\nmax_inflight_messages many\n")
rc, out, err = run([midge, "-c", bad], timeout=5)
r.check("malformed value stops start-up with file:line", rc != 0 and bad + ":3:" in err and
        "max_inflight_messages" in err, repr((rc, err)))
bad = write("bad2.conf", "listener 1\nnot_a_key 3\n")
rc, out, err = run([midge, "-c", bad], timeout=5)
r.check("unknown key stops start-up with file:line", rc != 0 and bad + ":2:" in err and "not_a_key" in err,
        repr((rc, err)))
rc, out, err = run([midge, "-c", os.path.join(tmp, "missing.conf")], timeout=5)
r.check("missing file stops start-up", rc != 0 and "missing.conf" in err, repr((rc, err)))

# -p without a file: localhost only, anonymous allowed.
port = brokerctl.free_port()
p = subprocess.Popen([midge, "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
up = brokerctl.wait_port(port, proc=p)
rc, _, err = run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-t", "x", "-m", "y"])
p.send_signal(signal.SIGINT)
_, err = p.communicate(timeout=10)
r.check("-p PORT serves on localhost; SIGINT exits 0", up and rc == 0 and p.returncode == 0,
        repr((up, rc, p.returncode, err[-500:])))

# A Mosquitto-only key that changes nothing a user relies on is a warning.
b = brokerctl.start("listener {port} 127.0.0.1\nwebsockets_log_level 255\npid_file {dir}/midge.pid\n")
r.check("Mosquitto key midge lacks is a warning",
        "websockets_log_level" in b.log_text() and "warning" in b.log_text(),
        b.log_text()[-800:])
pidf = os.path.join(b.dir, "midge.pid")
for _ in range(50):
    if os.path.exists(pidf) and open(pidf).read().strip():
        break
    time.sleep(0.1)
r.check("pid_file holds the PID", os.path.exists(pidf) and open(pidf).read().strip() == str(b.pid))

# SIGHUP: the subscriber stays connected, and a message_size_limit added
# to the file applies from then on: a 200-byte payload passes before the
# reload and is dropped after it, so the subscriber's two messages are the
# first big one and the small one sent after the dropped one.
s = spawn(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(b.port), "-t", "hup", "-C", "2", "-W", "10"])
time.sleep(0.5)
big = "b" * 200
rc0, _, _ = run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(b.port), "-t", "hup", "-m", big])
with open(b.conf_path, "a") as f:
    f.write("message_size_limit 100\n")
b.signal(signal.SIGHUP)
time.sleep(0.5)
rc1, _, _ = run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(b.port), "-t", "hup", "-m", big])
rc2, _, _ = run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(b.port), "-t", "hup", "-m", "after-hup"])
out, _ = s.communicate(timeout=12)
reloaded = brokerctl.broker_kind() == "mosquitto" or "configuration reloaded" in b.log_text()
r.check("SIGHUP reloads without dropping connections; the new message_size_limit applies",
        (rc0, rc1, rc2) == (0, 0, 0) and out.split("\n") == [big, "after-hup", ""] and reloaded,
        repr((rc0, rc1, rc2, out)) + b.log_text()[-800:])
with open(b.conf_path, "a") as f:
    f.write("bogus_key 1\n")
b.signal(signal.SIGHUP)
time.sleep(0.5)
rc, _, _ = run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(b.port), "-t", "x", "-m", "y"])
r.check("a broken file on SIGHUP is refused, the broker goes on", rc == 0 and b.alive() and
        "reload failed" in b.log_text(), b.log_text()[-800:])
rc = b.stop()
r.check("pid_file removed at exit", rc == 0 and not os.path.exists(pidf), "rc=%s" % rc)

# max_connections per listener: the third socket is closed at once.
b = brokerctl.start("listener {port} 127.0.0.1\nmax_connections 2\n")
import socket  # noqa: E402
time.sleep(0.5)  # brokerctl's readiness probe must be gone first
held = [socket.create_connection(("127.0.0.1", b.port), timeout=5) for _ in range(2)]
for h in held:
    h.sendall(brokerctl.connect_packet("held-%d" % held.index(h)))
    brokerctl.read_packet(h)
third = socket.create_connection(("127.0.0.1", b.port), timeout=5)
third.sendall(brokerctl.connect_packet("third"))
p3 = brokerctl.read_packet(third, 3)
r.check("max_connections 2: a third connection is closed", p3 is None and "max_connections" in b.log_text(),
        repr(p3))
for h in held + [third]:
    h.close()
time.sleep(0.3)
again = socket.create_connection(("127.0.0.1", b.port), timeout=5)
again.sendall(brokerctl.connect_packet("again"))
pa = brokerctl.read_packet(again, 3)
r.check("max_connections: a slot frees when a client leaves", pa is not None and pa[0] == 0x20, repr(pa))
again.close()
b.stop()

# password_file with mosquitto_passwd hashes; anonymous refused.
pw = os.path.join(tmp, "passwd")
subprocess.run(["mosquitto_passwd", "-c", "-b", pw, "alice", "s3cret"], check=True, timeout=10)
b = brokerctl.start("listener {port} 127.0.0.1\nallow_anonymous false\npassword_file %s\n" % pw)
P = str(b.port)
rc1, _, e1 = run(["mosquitto_pub", "-h", "127.0.0.1", "-p", P, "-t", "x", "-m", "y", "-u", "alice",
                  "-P", "s3cret"])
rc2, _, e2 = run(["mosquitto_pub", "-h", "127.0.0.1", "-p", P, "-t", "x", "-m", "y", "-u", "alice",
                  "-P", "wrong"])
rc3, _, e3 = run(["mosquitto_pub", "-h", "127.0.0.1", "-p", P, "-t", "x", "-m", "y"])
rc4, _, e4 = run(["mosquitto_pub", "-h", "127.0.0.1", "-p", P, "-t", "x", "-m", "y", "-u", "alice",
                  "-P", "wrong", "-V", "mqttv5"])
rc5, _, e5 = run(["mosquitto_pub", "-h", "127.0.0.1", "-p", P, "-t", "x", "-m", "y", "-V", "mqttv5"])
# mosquitto_pub exits with the CONNACK return / reason code. A wrong
# password may be answered "bad user name or password" (3.1.1: 4, v5:
# 0x86; midge) or "not authorised" (5, 0x87; Mosquitto): each broker is
# held to its own answer.
if brokerctl.broker_kind() == "mosquitto":
    wrong3, wrong5 = (5, "Connection Refused: not authorised."), (0x87, "Not authorized")
else:
    wrong3, wrong5 = (4, "Connection Refused: bad user name or password."), (0x86, "Bad User Name or Password")
r.check("password_file: right password accepted", rc1 == 0, e1)
r.check("password_file: wrong password refused (3.1.1 CONNACK %d)" % wrong3[0],
        rc2 == wrong3[0] and wrong3[1] in e2, repr((rc2, e2)))
r.check("password_file: wrong password refused (v5 CONNACK 0x%02x)" % wrong5[0],
        rc4 == wrong5[0] and wrong5[1] in e4, repr((rc4, e4)))
r.check("allow_anonymous false: no username refused (3.1.1 CONNACK 5)",
        rc3 == 5 and "Connection Refused: not authorised." in e3, repr((rc3, e3)))
r.check("allow_anonymous false: no username refused (v5 CONNACK 0x87)",
        rc5 == 0x87 and "Not authorized" in e5, repr((rc5, e5)))
b.stop()

# Mosquitto 2: a file with listeners and no allow_anonymous refuses anonymous clients.
b = brokerctl.start("listener {port} 127.0.0.1\n# allow_anonymous unset\n")
# (brokerctl adds allow_anonymous true only when the text never mentions it)
rc, _, err = run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(b.port), "-t", "x", "-m", "y"])
r.check("allow_anonymous unset with listeners: anonymous refused", rc != 0, err)
b.stop()

# -d: the parent returns at once, the daemon writes its pid_file.
port = brokerctl.free_port()
pidf = os.path.join(tmp, "d.pid")
conf = write("d.conf", "listener %d 127.0.0.1\nallow_anonymous true\npid_file %s\n"
             "midge_hooks_endpoint none\nlog_dest file %s/d.log\n" % (port, pidf, tmp))
rc, _, err = run([midge, "-c", conf, "-d"], timeout=10)
up = brokerctl.wait_port(port)
for _ in range(50):
    if os.path.exists(pidf):
        break
    time.sleep(0.1)
dpid = int(open(pidf).read()) if os.path.exists(pidf) else 0
rc2, _, _ = run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-t", "x", "-m", "y"])
r.check("-d daemonizes and serves", rc == 0 and up and dpid > 0 and rc2 == 0, repr((rc, up, dpid, rc2, err)))
if dpid > 0:
    os.kill(dpid, signal.SIGTERM)
    for _ in range(50):
        try:
            os.kill(dpid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    gone = True
    try:
        os.kill(dpid, 0)
        gone = False
        os.kill(dpid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    r.check("daemon stops on SIGTERM", gone)
subprocess.run(["rm", "-rf", tmp])
r.finish()

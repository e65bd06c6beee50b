"""sd_notify as systemd sees it (transport/notify.c), with this test as the
service manager: a datagram socket in NOTIFY_SOCKET. READY=1 (with
MAINPID) comes once the listener accepts connections, and never when a
listener cannot be bound; STATUS= counts connected clients; WATCHDOG=1
keepalives come at half of WATCHDOG_USEC, stop while the process is
stopped, and do not come when WATCHDOG_PID names another process;
RELOADING=1 then READY=1 around SIGHUP (a broken file too); STOPPING=1 on
SIGTERM, exit 0. A midge built without libsystemd (--version says
"libsystemd no") must send nothing and still serve."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brokerctl  # noqa: E402
from brokerctl import run  # noqa: E402

r = brokerctl.Results("notify")
brokerctl.deadline(r, 60)
midge = brokerctl.midge_binary()
if brokerctl.broker_kind() == "mosquitto":
    print("sd_notify is midge's; nothing to compare with Mosquitto 2.0 here")
    r.check("skipped for Mosquitto", True)
    r.finish()

_, version, _ = run([midge, "--version"])
with_systemd = "libsystemd no" not in version

sockdir = tempfile.mkdtemp(prefix="midge-notify-")


class Manager:
    """The receiving end of NOTIFY_SOCKET."""

    def __init__(self, name):
        self.path = os.path.join(sockdir, name)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)

    def recv(self, timeout=5.0):
        """One message as a dict of its lines, {} after timeout."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(4096).decode()
        except OSError:
            return {}
        return dict(line.split("=", 1) for line in data.splitlines() if "=" in line)

    def drain(self, seconds):
        """Every message within seconds."""
        out = []
        end = time.monotonic() + seconds
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return out
            m = self.recv(left)
            if m:
                out.append(m)

    def env(self, **extra):
        e = dict(os.environ, NOTIFY_SOCKET=self.path)
        e.update(extra)
        return e


def connected(port):
    with socket.socket() as c:
        return c.connect_ex(("127.0.0.1", port)) == 0


if not with_systemd:
    mgr = Manager("none")
    b = brokerctl.start(env=mgr.env())
    msgs = mgr.drain(1.5)
    rc, _, _ = run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(b.port), "-t", "x", "-m", "y"])
    r.check("built without libsystemd: nothing sent, broker serves", not msgs and rc == 0, repr(msgs))
    b.stop()
    r.finish()

# READY once listening; STATUS counts clients; RELOADING/READY; STOPPING.
mgr = Manager("main")
b = brokerctl.start(wait_for=None, env=mgr.env())
ready = mgr.recv(10)
r.check("READY=1 with MAINPID once the listener accepts",
        ready.get("READY") == "1" and ready.get("MAINPID") == str(b.pid) and connected(b.port), repr(ready))
r.check("STATUS= says how many clients are connected", ready.get("STATUS", "").startswith("0 clients connected"),
        repr(ready))
sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(b.port), "-t", "t", "-W", "20"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
msgs = mgr.drain(2.5)
r.check("STATUS= follows a client connecting, within the 1 s timer",
        any(m.get("STATUS", "").startswith("1 clients connected") for m in msgs), repr(msgs))
r.check("no WATCHDOG=1 without WATCHDOG_USEC", not any("WATCHDOG" in m for m in msgs), repr(msgs))
b.signal(signal.SIGHUP)
got = [mgr.recv(5), mgr.recv(5)]
r.check("SIGHUP: RELOADING=1 then READY=1", got[0].get("RELOADING") == "1" and got[1].get("READY") == "1",
        repr(got))
with open(b.conf_path, "a") as f:
    f.write("\nnot_a_key 1\n")
b.signal(signal.SIGHUP)
got = [mgr.recv(5), mgr.recv(5)]
r.check("a refused reload still ends in READY=1 (the running configuration stays)",
        got[0].get("RELOADING") == "1" and got[1].get("READY") == "1" and "reload failed" in b.log_text(),
        repr(got))
sub.terminate()
sub.wait(5)
b.signal(signal.SIGTERM)
stopping = {}
for _ in range(5):
    m = mgr.recv(5)
    if not m or m.get("STOPPING") == "1":
        stopping = m
        break
try:
    rc = b.proc.wait(10)
except subprocess.TimeoutExpired:
    rc = None
b.stop()
r.check("SIGTERM: STOPPING=1, exit 0", stopping.get("STOPPING") == "1" and rc == 0, repr((stopping, rc)))

# The watchdog: every WATCHDOG_USEC / 2; silent while the loop cannot run.
mgr = Manager("wd")
b = brokerctl.start(wait_for=None, env=mgr.env(WATCHDOG_USEC="200000"))
mgr.recv(10)
msgs = mgr.drain(1.0)
n = sum(1 for m in msgs if m.get("WATCHDOG") == "1")
r.check("WATCHDOG=1 about every 100 ms with WATCHDOG_USEC=200000 (%d in 1 s)" % n, 6 <= n <= 12, repr(msgs[:3]))
b.signal(signal.SIGSTOP)
mgr.drain(0.15)  # what was already in flight
msgs = mgr.drain(0.6)
b.signal(signal.SIGCONT)
after = mgr.drain(0.5)
r.check("no keepalive while the process is stopped, keepalives again after",
        not msgs and any(m.get("WATCHDOG") == "1" for m in after), repr((msgs, after[:2])))
b.stop()

mgr = Manager("wdpid")
b = brokerctl.start(wait_for=None, env=mgr.env(WATCHDOG_USEC="200000", WATCHDOG_PID="1"))
ready = mgr.recv(10)
msgs = mgr.drain(0.8)
r.check("WATCHDOG_PID naming another process: no keepalives",
        ready.get("READY") == "1" and not any("WATCHDOG" in m for m in msgs), repr(msgs))
b.stop()

# A listener that cannot be bound: start-up fails, and READY never came.
mgr = Manager("fail")
hold = socket.socket()
hold.bind(("127.0.0.1", 0))
hold.listen(1)
busy = hold.getsockname()[1]
b = brokerctl.start("listener %d 127.0.0.1\n" % busy, wait_for=None, env=mgr.env())
try:
    b.proc.wait(10)
except subprocess.TimeoutExpired:
    pass
msgs = mgr.drain(0.5)
r.check("a listener that cannot be bound: exit 1 and no READY=1",
        b.proc.returncode == 1 and not any(m.get("READY") for m in msgs), repr((b.proc.returncode, msgs)))
b.stop()
hold.close()

shutil.rmtree(sockdir, ignore_errors=True)
r.finish()

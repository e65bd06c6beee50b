"""Disk full and I/O errors against the real binary. Disk full is a real
full filesystem (a small tmpfs mounted on a temporary directory) when
this runs as root, else ENOSPC injected on the database's writes by an
LD_PRELOAD library (faultfs.c); I/O errors are always injected.

While the store cannot write: a clear log line, new QoS 1/2 PUBLISH
refused (v5: PUBACK 0x97, and nothing delivered; 3.1.1: no PUBACK, the
connection closed), new persistent sessions refused (CONNACK 0x88),
QoS 0 still delivered, $SYS/broker/midge/store/state "failing"; the
PUBACK of a message accepted just before the failure is held. When space
comes back: that PUBACK goes out, the log says so, QoS 1 is acknowledged
again, and after a restart exactly the accepted messages are there."""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brokerctl  # noqa: E402
import persistctl  # noqa: E402
from persistctl import Client  # noqa: E402

r = brokerctl.Results("persist-disk")
brokerctl.deadline(r, 100)
check = r.check
DIRS = []
MOUNTS = []


def faultlib():
    top = brokerctl.builddir()
    for p in (os.path.join(top, "tests", "integration", ".libs", "libmidge_faultfs.so"),
              os.path.join(top, "tests", "integration", "libmidge_faultfs.so")):
        if os.path.exists(p):
            return p
    return None


def s5(b):
    return len(b).to_bytes(2, "big") + b


def v5_connect(port, cid, clean=True, expiry=0):
    """A raw MQTT 5 connection: (socket, CONNACK reason code)."""
    props = b""
    if expiry:
        props = b"\x11" + expiry.to_bytes(4, "big")
    body = s5(b"MQTT") + bytes([5, 0x02 if clean else 0]) + (30).to_bytes(2, "big") + \
        brokerctl.varint(len(props)) + props + s5(cid.encode())
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"\x10" + brokerctl.varint(len(body)) + body)
    pk = brokerctl.read_packet(s)
    return s, (pk[1][1] if pk and pk[0] == 0x20 else None)


def v5_publish(s, topic, payload, qos, pid):
    body = s5(topic.encode()) + (pid.to_bytes(2, "big") if qos else b"") + b"\x00" + payload
    s.sendall(bytes([0x30 | qos << 1]) + brokerctl.varint(len(body)) + body)


def puback_rc(pk):
    """(packet id, reason code) of a v5 PUBACK."""
    if not pk or pk[0] != 0x40:
        return None
    return int.from_bytes(pk[1][:2], "big"), (pk[1][2] if len(pk[1]) > 2 else 0)


def fill(d):
    """Fills the filesystem of d; returns the filler's path."""
    path = os.path.join(d, "filler")
    with open(path, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    try:
        os.sync()
    except Exception:
        pass
    return path


def wait_log(b, text, timeout=5.0):
    end = time.time() + timeout
    while time.time() < end:
        if text in b.log_text():
            return True
        time.sleep(0.05)
    return False


def scenario(tag, d, make_fault, clear_fault, env=None):
    conf_extra = "sys_interval 1\n"
    b = persistctl.start(d, conf_extra, env=env)
    off = Client("off-" + tag, 5, b.port, clean=False, expiry=600)
    off.connect()
    off.subscribe("f/#", 1)
    off.close()
    live = Client("live-" + tag, 4, b.port)
    live.connect()
    live.subscribe("f/#", 1)
    sysw = Client("sys-" + tag, 4, b.port)
    sysw.connect()
    sysw.subscribe("$SYS/broker/midge/store/state", 0)
    pub, rc = v5_connect(b.port, "pub5-" + tag)
    v5_publish(pub, "f/1", b"before", 1, 1)
    check("%s: accepted while healthy" % tag, puback_rc(brokerctl.read_packet(pub)) == (1, 0))
    make_fault()
    v5_publish(pub, "f/1", b"accepted", 1, 2)  # accepted: its commit will fail
    check("%s: the failure is logged" % tag, wait_log(b, "cannot be written"), b.log_text()[-500:])
    check("%s: its PUBACK is held" % tag, brokerctl.read_packet(pub, 0.5) is None)
    v5_publish(pub, "f/1", b"refused", 1, 3)
    v5_publish(pub, "f/1", b"qos0", 0, 0)
    p3, _ = persistctl.raw_connect(b.port, "pub3-" + tag, clean=True)
    p3.sendall(brokerctl.publish_packet("f/1", b"refused3", 1, 7))
    p3.settimeout(3)
    try:
        first = p3.recv(1)
    except OSError:
        first = None
    check("%s: 3.1.1 QoS 1 publisher closed, unacknowledged" % tag, first == b"", first)
    p3.close()
    s2, rc = v5_connect(b.port, "newpersist-" + tag, clean=False, expiry=600)
    check("%s: a new persistent session refused 0x88" % tag, rc == 0x88, rc)
    s2.close()
    s3, rc = v5_connect(b.port, "clean-" + tag)
    check("%s: a clean session accepted" % tag, rc == 0, rc)
    s3.close()
    got = sysw.wait(100, 1.5)
    check("%s: $SYS store state failing" % tag, any(m.payload == b"failing" for m in got),
          [m.payload for m in got])
    clear_fault()
    acks = []
    end = time.time() + 6
    while time.time() < end and len(acks) < 2:
        pk = brokerctl.read_packet(pub, 0.5)
        if pk:
            acks.append(puback_rc(pk))
    check("%s: space back: the held PUBACK, then the refusal 0x97, in order" % tag,
          acks == [(2, 0), (3, 0x97)], acks)
    check("%s: recovery logged" % tag, wait_log(b, "written again"), b.log_text()[-300:])
    v5_publish(pub, "f/1", b"after", 1, 4)
    check("%s: acknowledged again" % tag, puback_rc(brokerctl.read_packet(pub)) == (4, 0))
    got = [m.payload for m in live.wait(4, 2)]
    check("%s: deliveries: QoS 0 flowed, the refused were not routed" % tag,
          got == [b"before", b"accepted", b"qos0", b"after"], got)
    pub.close()
    for c in (live, sysw):
        c.close()
    b.stop()
    b = persistctl.start(d, conf_extra, env=env)
    off = Client("off-" + tag, 5, b.port, clean=False, expiry=600)
    off.connect()
    got = [m.payload for m in off.wait(3, 2)]
    check("%s: after a restart: exactly the accepted messages" % tag,
          got == [b"before", b"accepted", b"after"], got)
    off.close()
    b.stop()


def tmpfs_dir():
    """A temporary directory with a 4 MiB tmpfs on it, or None."""
    if os.geteuid() != 0 or not shutil.which("mount") or os.environ.get("MIDGE_TEST_NO_TMPFS"):
        return None
    d = tempfile.mkdtemp(prefix="midge-full-")
    DIRS.append(d)
    rc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", d],
                        capture_output=True).returncode
    if rc != 0:
        return None
    MOUNTS.append(d)
    return d


try:
    lib = faultlib()
    d = tmpfs_dir()
    if d:
        filler = []
        scenario("disk full (tmpfs)", d, lambda: filler.append(fill(d)),
                 lambda: os.unlink(filler[0]))
    elif lib:
        print("not root: disk full injected (ENOSPC) instead of a small filesystem", flush=True)
        d = tempfile.mkdtemp(prefix="midge-full-")
        DIRS.append(d)
        ctl = os.path.join(d, "fault")
        env = dict(os.environ, LD_PRELOAD=lib, MIDGE_FAULT_CTL=ctl, MIDGE_FAULT_MATCH="/midge.db")
        scenario("disk full (injected)", d, lambda: open(ctl, "w").write("enospc"),
                 lambda: os.unlink(ctl), env)
    check("fault library built", lib is not None)
    if lib:
        d = tempfile.mkdtemp(prefix="midge-eio-")
        DIRS.append(d)
        ctl = os.path.join(d, "fault")
        env = dict(os.environ, LD_PRELOAD=lib, MIDGE_FAULT_CTL=ctl, MIDGE_FAULT_MATCH="/midge.db")
        scenario("I/O error", d, lambda: open(ctl, "w").write("eio"), lambda: os.unlink(ctl), env)
finally:
    brokerctl.stop_all()
    for m in MOUNTS:
        subprocess.run(["umount", m], capture_output=True)
    for d in DIRS:
        shutil.rmtree(d, ignore_errors=True)
r.finish()

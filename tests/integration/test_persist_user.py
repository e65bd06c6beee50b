"""The database's files against the real binary: created 0600, and, when
midge starts as root with Mosquitto's `user` key, owned by that user
before privileges are dropped (so the store keeps working as that user,
across restarts, and a database an older run left to root is handed
over). A symbolic link in place of the database stops start-up instead of
giving its target away.

Run as root this checks ownership with the user `nobody`; run as another
user (where `user` is ignored), only the modes."""

import os
import pwd
import shutil
import stat
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brokerctl  # noqa: E402
import persistctl  # noqa: E402
from persistctl import Client  # noqa: E402

r = brokerctl.Results("persist-user")
brokerctl.deadline(r, 50)
check = r.check
ROOT = os.getuid() == 0
NOBODY = pwd.getpwnam("nobody")
USER = "user nobody\n" if ROOT else ""
DIRS = []


def newdir():
    d = tempfile.mkdtemp(prefix="midge-user-")
    DIRS.append(d)
    if ROOT:
        os.chown(d, NOBODY.pw_uid, NOBODY.pw_gid)  # persistence_location: the user's
    return d


def files(d):
    """{name: (uid, mode)} of the database's files in d."""
    out = {}
    for n in ("midge.db", "midge.db-wal", "midge.db-shm"):
        try:
            st = os.lstat(os.path.join(d, n))
            out[n] = (st.st_uid, stat.S_IMODE(st.st_mode))
        except FileNotFoundError:
            pass
    return out


def proc_uid(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Uid:"):
                return int(line.split()[2])  # effective
    return None


def store_round(b, tag):
    """A persistent subscriber and a QoS 1 message for it (both wait for
    commits made after privileges were dropped)."""
    sub = Client("sub", 4, b.port, clean=False)
    ok = sub.connect() and sub.subscribe("u/#", 1)
    sub.close()
    pub = Client("pub", 4, b.port)
    ok = ok and pub.connect()
    mid = pub.publish("u/x", tag, 1).mid
    ok = ok and pub.wait_acked([mid], 5)
    pub.close()
    return ok


# 1. a new database
d = newdir()
b = persistctl.start(d, USER)
check("a persistent session and a QoS 1 message are committed", store_round(b, "one"))
if ROOT:  # (it drops them just after binding: asked once a client was served)
    check("root with 'user nobody': the broker runs as nobody", proc_uid(b.pid) == NOBODY.pw_uid)
f = files(d)
want_uid = NOBODY.pw_uid if ROOT else os.getuid()
check("the database, its -wal and -shm are 0600 (%r)" % f,
      set(f) == {"midge.db", "midge.db-wal", "midge.db-shm"} and
      all(m == 0o600 for _, m in f.values()))
check("and owned by %s" % ("nobody" if ROOT else "the user running midge"),
      all(u == want_uid for u, _ in f.values()))
b.stop()
b = persistctl.start(d, USER)
sub = Client("sub", 4, b.port, clean=False)
check("after a restart the session resumes (session present 1)",
      sub.connect() and sub.session_present == 1)
got = sub.wait(1, 5)
check("and the message is delivered", [m.payload for m in got] == [b"one"])
sub.close()
b.stop()

if ROOT:
    # 2. a database an older run left to root is handed over
    d = newdir()
    b = persistctl.start(d)  # no user: root's files
    check("without 'user' the files are root's", store_round(b, "two") and
          all(u == 0 for u, _ in files(d).values()))
    b.stop()
    b = persistctl.start(d, USER)
    check("with 'user nobody' root's database is handed over",
          store_round(b, "three") and files(d) and
          all(u == NOBODY.pw_uid for u, _ in files(d).values()), "%r" % files(d))
    b.stop()

    # 3. a symbolic link in place of the database stops start-up
    d = newdir()
    target = os.path.join(tempfile.mkdtemp(prefix="midge-user-t-"), "precious")
    DIRS.append(os.path.dirname(target))
    with open(target, "w") as fh:
        fh.write("root's\n")
    os.symlink(target, os.path.join(d, "midge.db"))
    b = persistctl.start(d, USER, wait_for=None)
    rc = b.proc.wait(10)
    log = b.log_text()
    b.stop()
    check("a symbolic link as the database stops start-up, saying so",
          rc != 0 and "symbolic link" in log, log[-300:])
    check("and its target stays root's", os.stat(target).st_uid == 0)
else:
    print("note: not root: ownership under 'user' not checked here", flush=True)

for x in DIRS:
    shutil.rmtree(x, ignore_errors=True)
r.finish()

"""Persistence with acl_file and password_file against the real binary:
who a session and a retained message belong to survives a kill -9.

- A persistent subscriber (3.1.1 and 5) allowed to read a topic that
  anonymous clients may not read is offline; messages are queued for it
  before and after a kill -9 and restart. It resumes with session present
  1 and gets every acknowledged message, in order: after the restart its
  queue is checked as its user, not as an anonymous client's.
- A retained message whose publisher loses write access in the acl_file
  over a restart is not delivered (check_retain_source, as without a
  restart); given back by a reload, it is delivered again."""

import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brokerctl  # noqa: E402
import persistctl  # noqa: E402
from persistctl import Client, kill9  # noqa: E402

r = brokerctl.Results("persist_acl")
brokerctl.deadline(r, 80)
check = r.check

ACL = """# anonymous clients
topic read ret/#

user alice
topic read private/#

user bob
topic write private/#
"""
BOB_RETAINS = "topic write ret/#\n"
PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw"}

files = brokerctl.scratch_dir("persist-acl")
dbdir = brokerctl.scratch_dir("persist-acl-db")
pwfile = os.path.join(files, "passwd")
aclfile = os.path.join(files, "acl")


def write_acl(bob_retains):
    with open(aclfile + ".new", "w") as f:
        f.write(ACL + (BOB_RETAINS if bob_retains else ""))
    os.chmod(aclfile + ".new", 0o644)
    os.rename(aclfile + ".new", aclfile)


first = True
for u, pw in PASSWORDS.items():
    subprocess.run(["mosquitto_passwd", "-b"] + (["-c"] if first else []) + [pwfile, u, pw],
                   check=True, timeout=20, capture_output=True)
    first = False
os.chmod(pwfile, 0o644)
write_acl(True)
EXTRA = "allow_anonymous true\npassword_file %s\nacl_file %s\n" % (pwfile, aclfile)


def start():
    return persistctl.start(dbdir, EXTRA)


def bob_publishes(port, prefix, n):
    """bob publishes n QoS 1 messages on private/x; True when all were
    acknowledged (so they must not be lost)."""
    bob = Client("bob-" + prefix, 4, port, auth=("bob", PASSWORDS["bob"]))
    ok = bob.connect()
    mids = [bob.publish("private/x", "%s%d" % (prefix, i), 1).mid for i in range(n)]
    ok = ok and bob.wait_acked(mids, 10)
    bob.close()
    return ok


def retained_seen(port, tag, wait=1.5):
    """What an anonymous subscriber to ret/# is sent."""
    c = Client("anon-" + tag, 4, port)
    if not c.connect() or not c.subscribe("ret/#", 1):
        c.close()
        return None
    got = [(m.topic, m.payload) for m in c.wait(1, wait)]
    c.close()
    return got


N = 20
b = start()
subs = {4: Client("alice4", 4, b.port, clean=False, auth=("alice", PASSWORDS["alice"])),
        5: Client("alice5", 5, b.port, clean=False, expiry=3600,
                  auth=("alice", PASSWORDS["alice"]))}
for v, c in subs.items():
    check("alice (MQTT %d) connects and subscribes to private/#" % v,
          c.connect() and c.subscribe("private/#", 1))
    c.close()
# an anonymous client may not read private/#
anon = Client("anon-private", 4, b.port)
anon.connect()
anon.subscribe("private/#", 1)
check("before the crash: %d messages queued for the offline subscribers, acknowledged" % N,
      bob_publishes(b.port, "a", N))
bob = Client("bob-ret", 4, b.port, auth=("bob", PASSWORDS["bob"]))
bob.connect()
check("bob retains ret/a (acknowledged)", bob.wait_acked([bob.publish("ret/a", "r1", 1, True).mid]))
bob.close()
check("an anonymous subscriber is not sent private/x", anon.wait(1, 0.5) == [])
anon.close()

kill9(b)
b = start()
check("after kill -9 and a restart: %d more messages queued while the subscribers are "
      "offline, acknowledged" % N, bob_publishes(b.port, "b", N))
check("the restored retained message goes to a new subscriber (its publisher may still write)",
      retained_seen(b.port, "1") == [("ret/a", b"r1")])
want = [("a%d" % i).encode() for i in range(N)] + [("b%d" % i).encode() for i in range(N)]
for v, old in subs.items():
    c = Client(old.c._client_id.decode(), v, b.port, clean=False, expiry=3600 if v == 5 else None,
               auth=("alice", PASSWORDS["alice"]))
    check("alice (MQTT %d) resumes with session present 1" % v,
          c.connect() and c.session_present == 1)
    got = [m.payload for m in c.wait(2 * N, 10)]
    check("alice (MQTT %d) gets every acknowledged message, in order (%d of %d)"
          % (v, len(got), 2 * N), got == want, repr(got[:5]) + "..." + repr(got[-3:]))
    c.close()
    subs[v] = c

# bob's write access to ret/# is taken away while the broker is down
kill9(b)
write_acl(False)
b = start()
check("after a restart with bob's write access to ret/# removed, ret/a is not delivered "
      "(check_retain_source, as without a restart)", retained_seen(b.port, "2") == [])
write_acl(True)
b.signal(1)  # SIGHUP: acl_file read again
time.sleep(0.5)
check("given back by a reload, ret/a is delivered again (it was kept, only withheld)",
      retained_seen(b.port, "3", 3) == [("ret/a", b"r1")])
b.stop()
shutil.rmtree(files, ignore_errors=True)
shutil.rmtree(dbdir, ignore_errors=True)
r.finish()

"""Bridges (issue 19) with real peers: midge bridging to Mosquitto and
Mosquitto bridging to midge, both directions at QoS 0/1/2 with prefix
remapping, midge on both ends with `both` and no loops, notifications
(local and on the remote, the will when the bridge dies), TLS with client
certificates (certtool), the queue bound while the remote is away, and
configuration errors stopping start-up with file:line."""

import os
import shutil
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brokerctl  # noqa: E402
import pki  # noqa: E402
from bridgectl import Client, wait, log_wait  # noqa: E402

r = brokerctl.Results("bridge")
brokerctl.deadline(r, 100)
check = r.check


def mosquitto(extra=""):
    return brokerctl.start_reference("listener {port} 127.0.0.1\nallow_anonymous true\n" + extra)


def midge(bridge, extra=""):
    return brokerctl.start("listener {port} 127.0.0.1\n" + extra + bridge)


def payloads(c, topic):
    return [m[1] for m in c.messages(topic)]


# ---- midge -> Mosquitto and back, QoS 0/1/2, prefixes ---------------------
remote = mosquitto()
local = midge("""
connection cloud
address 127.0.0.1:%d
remote_clientid edge1
topic out/# out 2 "" site1/
topic cmd/# in 2 "" site1/
topic both/# both 2 loc/ rem/
""" % remote.port)
check("midge's bridge connects to Mosquitto", log_wait(local, "bridge cloud: connected to"),
      local.log_text()[-800:])
rsub = Client(remote.port, "rsub")
rsub.sub("site1/#", 2)
rsub.sub("rem/#", 2)
lsub = Client(local.port, "lsub")
lsub.sub("cmd/#", 2)
lsub.sub("loc/#", 2)
lpub = Client(local.port, "lpub")
rpub = Client(remote.port, "rpub")
time.sleep(0.3)
for q in (0, 1, 2):
    for i in range(5):
        lpub.pub("out/q%d" % q, "m%d" % i, q)
        rpub.pub("site1/cmd/q%d" % q, "c%d" % i, q)
for q in (0, 1, 2):
    t = "site1/out/q%d" % q
    ok = wait(lambda: len(rsub.messages(t)) >= 5, 10)
    check("midge -> Mosquitto QoS %d: local out/q%d arrives as %s, in order" % (q, q, t),
          ok and payloads(rsub, t) == ["m%d" % i for i in range(5)], rsub.messages(t))
    check("midge -> Mosquitto QoS %d kept (subscriber granted 2)" % q,
          all(m[2] == q for m in rsub.messages(t)), rsub.messages(t))
    t = "cmd/q%d" % q
    ok = wait(lambda: len(lsub.messages(t)) >= 5, 10)
    check("Mosquitto -> midge QoS %d: remote site1/cmd/q%d arrives as %s, in order" % (q, q, t),
          ok and payloads(lsub, t) == ["c%d" % i for i in range(5)], lsub.messages(t))
    check("Mosquitto -> midge QoS %d kept" % q, all(m[2] == q for m in lsub.messages(t)),
          lsub.messages(t))
# both, with two prefixes: loc/both/x <-> rem/both/x, once each way, no echo
lx, rx, ly, ry = "loc/both/x", "rem/both/x", "loc/both/y", "rem/both/y"
lpub.pub(lx, "from-local", 1)
rpub.pub(ry, "from-remote", 1)
check("both: %s goes out as %s" % (lx, rx), wait(lambda: payloads(rsub, rx) == ["from-local"], 10),
      rsub.messages())
check("both: %s comes in as %s" % (ry, ly), wait(lambda: payloads(lsub, ly) == ["from-remote"], 10),
      lsub.messages())
time.sleep(1)
check("both: no loop (each message exactly once on each side)",
      payloads(lsub, lx) == ["from-local"] and payloads(rsub, rx) == ["from-local"] and
      payloads(rsub, ry) == ["from-remote"] and payloads(lsub, ly) == ["from-remote"],
      (lsub.messages(lx), lsub.messages(ly), rsub.messages(rx), rsub.messages(ry)))
check("topics outside the lines do not cross",
      not rsub.messages("cmd/q0") and not lsub.messages("site1/cmd/q0"))
# retained crosses as published
lpub.pub("out/ret", "kept", 1, retain=True)
wait(lambda: rsub.messages("site1/out/ret"), 10)
late = Client(remote.port, "late")
late.sub("site1/out/ret", 1)
check("a retained message crosses retained (try_private: Mosquitto keeps it as published)",
      wait(lambda: late.messages("site1/out/ret") == [("site1/out/ret", "kept", 1, True)], 10),
      late.messages())
late.close()

# ---- notifications ----------------------------------------------------------
note = "$SYS/broker/connection/edge1/state"
lnote = Client(local.port, "lnote")
lnote.sub(note, 1)
rnote = Client(remote.port, "rnote")
rnote.sub(note, 1)
check("notification: the local broker holds state 1 (retained)",
      wait(lambda: lnote.messages(note) == [(note, "1", 1, True)], 10), lnote.messages())
check("notification: the remote holds state 1 (retained)",
      wait(lambda: [m[1] for m in rnote.messages(note)] == ["1"], 10), rnote.messages())
for c in (rsub, rpub, rnote):
    c.close()
remote.stop()
check("notification: state 0 locally once the remote is gone",
      wait(lambda: [m[1] for m in lnote.messages(note)] == ["1", "0"], 10), lnote.messages())
check("the bridge says it will retry", log_wait(local, "will retry", 10))
# while the remote is away, the queue is bounded (max_queued_messages)
for c in (lsub, lpub, lnote):
    c.close()
local.stop()

# ---- the bridge's will on the remote; the queue bound ------------------------
remote = mosquitto()
rnote = Client(remote.port, "rnote2")
rnote.sub("$SYS/broker/connection/#", 1)
local = midge("""
max_queued_messages 5
connection c2
address 127.0.0.1:%d
remote_clientid edge2
restart_timeout 1
topic q/# out 1
""" % remote.port)
n2 = "$SYS/broker/connection/edge2/state"
check("notification: 1 on the remote when the bridge connects",
      wait(lambda: [m[1] for m in rnote.messages(n2)] == ["1"], 10), rnote.messages())
local.signal(signal.SIGKILL)
local.proc.wait(5)
check("notification: the remote publishes the bridge's will, state 0, when midge dies",
      wait(lambda: [m[1] for m in rnote.messages(n2)] == ["1", "0"], 10), rnote.messages())
rnote.close()
remote.stop()
local = midge("""
max_queued_messages 5
log_type all
connection c3
address 127.0.0.1:%d
remote_clientid edge3
restart_timeout 1
cleansession true
topic q/# out 1
""" % brokerctl.free_port())
lpub = Client(local.port, "lpub3")
for i in range(8):
    lpub.pub("q/a", "n%d" % i, 1)
check("the bridge's queue is bounded: what did not fit is dropped with a log line",
      log_wait(local, "bridge queue full", 5), local.log_text()[-600:])
lpub.close()
local.stop()

# ---- midge on both ends, `both`, MQTT 5 (no-local: no loops) -------------------
far = brokerctl.start("listener {port} 127.0.0.1\n")
near = midge("""
connection m2m
address 127.0.0.1:%d
bridge_protocol_version mqttv50
remote_clientid near
topic shared/# both 2
""" % far.port)
check("midge -> midge (MQTT 5) connects", log_wait(near, "bridge m2m: connected to"))
a = Client(near.port, "a", proto=5)
a.sub("shared/#", 2)
b = Client(far.port, "b", proto=5)
b.sub("shared/#", 2)
time.sleep(0.3)
for q in (0, 1, 2):
    a.pub("shared/n%d" % q, "from-near", q)
    b.pub("shared/f%d" % q, "from-far", q)
ok = wait(lambda: len(b.messages()) >= 6 and len(a.messages()) >= 6, 10)
time.sleep(1)
check("midge <-> midge both ways at QoS 0/1/2, each message exactly once on each side",
      ok and sorted(m[0] for m in a.messages()) == sorted(m[0] for m in b.messages()) and
      len(a.messages()) == 6, (a.messages(), b.messages()))
check("midge <-> midge QoS kept", all(m[2] == int(m[0][-1]) for m in a.messages() + b.messages()),
      (a.messages(), b.messages()))
a.close()
b.close()
near.stop()
far.stop()

# ---- Mosquitto bridging into midge -------------------------------------------
target = brokerctl.start("listener {port} 127.0.0.1\n")
mq = brokerctl.start_reference("""listener {port} 127.0.0.1
allow_anonymous true
connection tomidge
address 127.0.0.1:%d
try_private false
bridge_protocol_version mqttv311
topic up/# out 2 "" edge/
topic down/# in 2 "" edge/
""" % target.port)
tsub = Client(target.port, "tsub")
tsub.sub("edge/#", 2)
msub = Client(mq.port, "msub")
msub.sub("down/#", 2)
check("Mosquitto's bridge connects to midge",
      wait(lambda: "connected (protocol 4" in target.log_text().split("tsub")[-1], 10),
      target.log_text()[-600:])
mpub = Client(mq.port, "mpub")
tpub = Client(target.port, "tpub")
time.sleep(1)
for q in (0, 1, 2):
    mpub.pub("up/q%d" % q, "u%d" % q, q)
    tpub.pub("edge/down/q%d" % q, "d%d" % q, q)
check("Mosquitto's bridge -> midge at QoS 0/1/2 with its prefix",
      wait(lambda: sorted(m[0] for m in tsub.messages() if m[0].startswith("edge/up/")) ==
           ["edge/up/q0", "edge/up/q1", "edge/up/q2"], 10), tsub.messages())
check("midge -> Mosquitto's bridge at QoS 0/1/2",
      wait(lambda: sorted(m[0] for m in msub.messages()) == ["down/q0", "down/q1", "down/q2"], 10),
      msub.messages())
for c in (tsub, msub, mpub, tpub):
    c.close()
mq.stop()
target.stop()

# ---- TLS with client certificates ------------------------------------------
d = brokerctl.scratch_dir("bridge-tls")
f = pki.make(d, "br")
other = pki.make(d, "other")
remote = brokerctl.start_reference("""listener {port} 127.0.0.1
allow_anonymous true
cafile %s
certfile %s
keyfile %s
require_certificate true
use_identity_as_username true
""" % (f["ca"], f["server"], f["server-key"]))
local = midge("""
connection secure
address localhost:%d
remote_clientid tls-edge
bridge_cafile %s
bridge_certfile %s
bridge_keyfile %s
topic tls/# out 1
""" % (remote.port, f["ca"], f["client"], f["client-key"]))
check("TLS: the bridge connects with its client certificate",
      log_wait(local, "bridge secure: connected to localhost:", 10), local.log_text()[-800:])
tsub_proc = brokerctl.spawn(["mosquitto_sub", "-p", str(remote.port), "-h", "localhost", "--cafile",
                             f["ca"], "--cert", f["client"], "--key", f["client-key"], "-t", "tls/#",
                             "-C", "1", "-W", "8", "-q", "1", "-v"])
time.sleep(0.8)
lp = Client(local.port, "tlspub")
lp.pub("tls/a", "secret", 1)
wait(lambda: tsub_proc.poll() is not None, 9)
out, err = brokerctl.kill(tsub_proc)
check("TLS: a message crosses the TLS bridge", out.strip() == "tls/a secret", (out, err))
lp.close()
local.stop()
# a remote whose certificate another CA signed: refused, said why
bad = midge("""
connection wrongca
address localhost:%d
bridge_cafile %s
bridge_certfile %s
bridge_keyfile %s
topic tls/# out 1
""" % (remote.port, other["ca"], f["client"], f["client-key"]))
check("TLS: a remote certificate from another CA is refused (logged)",
      log_wait(bad, "bridge wrongca: localhost:%d: TLS" % remote.port, 10), bad.log_text()[-600:])
check("TLS: ... and the bridge is not connected", "bridge wrongca: connected" not in bad.log_text())
bad.stop()
# no client certificate: the remote refuses
nocert = midge("""
connection nocert
address localhost:%d
bridge_cafile %s
topic tls/# out 1
""" % (remote.port, f["ca"]))
check("TLS: without bridge_certfile a remote requiring certificates refuses the bridge",
      log_wait(nocert, "will retry", 10) and "bridge nocert: connected" not in nocert.log_text(),
      nocert.log_text()[-600:])
nocert.stop()
remote.stop()
shutil.rmtree(d, ignore_errors=True)

# ---- configuration: fail closed with file:line --------------------------------
for text, want in (
        ("connection x\naddress 127.0.0.1:1\ntopic a out\nlocal_username u\n", "local_username"),
        ("connection x\ntopic a out\n", "has no address"),
        ("connection x\naddress 127.0.0.1:1\n", "has no topic line"),
        ("connection x\naddress 127.0.0.1:1\ntopic a sideways\n", "direction"),
        ("connection x\naddress 127.0.0.1:1\ntopic a out 1 a/+ b\n", "wildcards"),
        ("connection x\naddress 127.0.0.1:1\ntopic a out\nbridge_certfile c.pem\n"
         "bridge_keyfile k.pem\n", "no bridge_cafile"),
        ("connection x\naddress 127.0.0.1:1\ntopic a\nbridge_tls_version tlsv1.2\n", "bridge_tls_version"),
        ("topic a out\n", "after a connection line"),
        ("connection x\naddress 127.0.0.1:1\ntopic a\nbridge_cafile /nonexistent/ca.pem\n",
         "/nonexistent/ca.pem")):
    p = brokerctl.scratch_dir("bridge-conf")
    path = os.path.join(p, "m.conf")
    with open(path, "w") as fh:
        fh.write("listener %d 127.0.0.1\nallow_anonymous true\nmidge_hooks_endpoint none\n" %
                 brokerctl.free_port() + text)
    rc, out, err = brokerctl.run([brokerctl.midge_binary(), "-c", path], timeout=10)
    check("refused at start-up: %s" % want, rc != 0 and want in out + err and
          ("m.conf:" in out + err or "/nonexistent" in want), (rc, out + err))
    shutil.rmtree(p, ignore_errors=True)

r.finish()

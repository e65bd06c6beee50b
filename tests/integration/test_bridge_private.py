"""A Mosquitto bridge INTO midge (issue 19): with try_private true (its
default) Mosquitto connects with protocol level 0x84 (0x83 for mqttv31),
the bridge bit. midge accepts it and treats the client as Mosquitto does a
bridge: its own messages are not echoed back to it (no-local) and what it
receives keeps its retain flag (retain as published)."""

import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brokerctl  # noqa: E402
from bridgectl import Client, wait  # noqa: E402

r = brokerctl.Results("bridge_private")
brokerctl.deadline(r, 50)
check = r.check

local = brokerctl.start("listener {port} 127.0.0.1\n")


def raw_connack(level, name):
    """The CONNACK return code midge answers a CONNECT with this level."""
    s = socket.create_connection(("127.0.0.1", local.port), 5)
    cid = b"raw%x" % level
    body = (len(name).to_bytes(2, "big") + name + bytes([level, 0x02]) + (30).to_bytes(2, "big")
            + len(cid).to_bytes(2, "big") + cid)
    s.sendall(bytes([0x10]) + brokerctl.varint(len(body)) + body)
    got = brokerctl.read_packet(s)
    s.close()
    return got if got else (None, b"\0\xff")


for level, name in ((0x84, b"MQTT"), (0x83, b"MQIsdp")):
    try:
        first, rest = raw_connack(level, name)
        ok = first == 0x20 and rest[1] == 0
    except Exception as ex:  # noqa: BLE001
        first, rest, ok = None, repr(ex), False
    check("a CONNECT with level 0x%02x (%s and the bridge bit) is accepted" % (level, name.decode()),
          ok, "%r %r" % (first, rest))
first, rest = raw_connack(0x85, b"MQTT")
check("0x85 (MQTT 5 has no bridge bit) is refused [MQTT-3.1.2-2]", first == 0x20 and rest[1] == 1,
      "%r %r" % (first, rest))

# a real Mosquitto bridging into midge, both ways, with try_private's default
remote = brokerctl.start_reference("""listener {port} 127.0.0.1
connection into-midge
address 127.0.0.1:%d
remote_clientid mosq-bridge
cleansession true
restart_timeout 1
notifications false
topic t/# both 1
""" % local.port)
msub = Client(local.port, "msub")
msub.sub("t/#", 1)
rsub = Client(remote.port, "rsub")
rsub.sub("t/#", 1)
# the bridge is up once a message crosses
up = False
probe = Client(remote.port, "probe")
for i in range(40):
    probe.pub("t/probe", "p%d" % i, 1)
    if wait(lambda: any(m[0] == "t/probe" for m in msub.messages()), 0.5):
        up = True
        break
check("Mosquitto's bridge connected to midge and a message crossed in", up,
      remote.log_text()[-600:])
log = remote.log_text()
check("Mosquitto kept the bridge bit (no fall-back to a plain client)",
      "try_private" not in log.lower() and "protocol" not in log.lower() and up, log[-600:])

# no echo: a message from Mosquitto's side reaches midge's subscriber, and
# Mosquitto's subscriber once (midge does not send it back over the bridge)
rpub = Client(remote.port, "rpub")
rpub.pub("t/a", "from-mosquitto", 1)
wait(lambda: any(m[1] == "from-mosquitto" for m in msub.messages()), 5)
time.sleep(1.0)  # time for an echo to come back
check("the message reached midge", any(m[1] == "from-mosquitto" for m in msub.messages()))
n = len([m for m in rsub.messages() if m[1] == "from-mosquitto"])
check("midge did not echo the bridge's own message back to it (no-local)", n == 1,
      "Mosquitto's subscriber got it %d times" % n)

# outwards: midge's client publishes retained; the bridge gets it retained
# (retain as published), so Mosquitto keeps it for a late subscriber
lpub = Client(local.port, "lpub")
lpub.pub("t/r", "kept", 1, retain=True)
wait(lambda: any(m[1] == "kept" for m in rsub.messages()), 5)
check("midge's message crossed to Mosquitto", any(m[1] == "kept" for m in rsub.messages()))
late = Client(remote.port, "late")
late.sub("t/r", 1)
wait(lambda: late.messages(), 5)
check("it crossed with its retain flag (retain as published): Mosquitto retained it",
      [m for m in late.messages() if m[1] == "kept" and m[3]], "late got %r" % late.messages())
n = len([m for m in msub.messages() if m[1] == "kept"])
check("and came back to midge's subscriber only once", n == 1, "got it %d times" % n)

# a plain 3.1.1 client still gets live messages without the retain flag
plain = Client(local.port, "plain")
plain.sub("t/#", 1)
lpub.pub("t/r2", "live", 1, retain=True)
wait(lambda: plain.messages("t/r2"), 5)
check("a plain client gets a live retained message with retain 0 [MQTT-3.3.1-9]",
      plain.messages("t/r2") and not plain.messages("t/r2")[0][3], "%r" % plain.messages("t/r2"))

for c in (msub, rsub, rpub, lpub, late, plain, probe):
    c.close()
remote.stop()
local.stop()
r.finish()

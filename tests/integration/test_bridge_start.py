"""Bridge start types, address lists and packet size (issue 19), each
against real Mosquitto remotes: `start_type lazy` (connects at `threshold`
queued messages, leaves after `idle_timeout`), `start_type once` (never
reconnects), two addresses with fail-over when the first dies,
`round_robin true` (a dropped link goes on to the next address) against
`round_robin false` (back to the first), and `bridge_max_packet_size`
(a larger message is not sent and does not block the ones behind it)."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brokerctl  # noqa: E402
from bridgectl import Client, wait, log_wait  # noqa: E402

r = brokerctl.Results("bridge_start")
brokerctl.deadline(r, 55)
check = r.check


def mosquitto(port=None):
    """A Mosquitto remote (on a given port: a restart)."""
    if port is None:
        return brokerctl.start_reference("listener {port} 127.0.0.1\n")
    return brokerctl.start_reference("listener %d 127.0.0.1\n" % port)


def connections(remote, cid):
    """How many times cid connected to remote (its log)."""
    return remote.log_text().count(" as %s " % cid)


def bridge(body):
    return brokerctl.start("listener {port} 127.0.0.1\nconnection b\nrestart_timeout 1 1\n"
                           "notifications false\n" + body)


# ---- start_type lazy, threshold, idle_timeout ------------------------------
ra = mosquitto()
rsub = Client(ra.port, "rsub-lazy")
rsub.sub("lazy/#", 1)
local = bridge("address 127.0.0.1:%d\nremote_clientid edge-lazy\nstart_type lazy\n"
               "threshold 3\nidle_timeout 2\ntopic lazy/# out 1\n" % ra.port)
lpub = Client(local.port, "lpub-lazy")
lpub.pub("lazy/1", "a", 1)
lpub.pub("lazy/2", "b", 1)
time.sleep(1.5)
check("lazy: below the threshold, no connection to the remote",
      connections(ra, "edge-lazy") == 0 and not rsub.messages(), ra.log_text()[-300:])
lpub.pub("lazy/3", "c", 1)
wait(lambda: len(rsub.messages()) >= 3, 8)
check("lazy: at the threshold (3 queued) it connects and the queue goes, in order",
      [m[1] for m in rsub.messages()] == ["a", "b", "c"] and connections(ra, "edge-lazy") == 1,
      "%r" % rsub.messages())
check("lazy: it leaves after idle_timeout with nothing to carry",
      log_wait(local, "idle for 2 s (idle_timeout): disconnecting", 8)
      and wait(lambda: "edge-lazy disconnected" in ra.log_text()
               or "Client edge-lazy" in ra.log_text(), 3), local.log_text()[-400:])
time.sleep(1.5)
check("lazy: and stays away below the threshold", connections(ra, "edge-lazy") == 1)
lpub.close()
rsub.close()
local.stop()
ra.stop()

# ---- start_type once -------------------------------------------------------
ra = mosquitto()
port_a = ra.port
local = bridge("address 127.0.0.1:%d\nremote_clientid edge-once\nstart_type once\n"
               "topic once/# out 1\n" % port_a)
check("once: connects at start", log_wait(local, "bridge b: connected", 8), local.log_text()[-300:])
ra.stop()
check("once: the remote gone, it does not reconnect",
      log_wait(local, "start_type once: not reconnecting", 5), local.log_text()[-300:])
ra = mosquitto(port_a)
time.sleep(2.5)  # more than two restart_timeouts
check("once: a remote back on the same port is not connected again",
      connections(ra, "edge-once") == 0, ra.log_text()[-300:])
local.stop()
ra.stop()

# ---- two addresses: fail-over, round_robin ---------------------------------
ra, rb = mosquitto(), mosquitto()
port_a, port_b = ra.port, rb.port


def connected_to(broker, port, before):
    """Waits until broker's log says the bridge connected to port after
    the first `before` characters of its log."""
    text = "connected to 127.0.0.1:%d" % port
    return wait(lambda: text in broker.log_text()[before:], 10)


for rr in ("false", "true"):
    local = bridge("address 127.0.0.1:%d 127.0.0.1:%d\nremote_clientid edge-rr\nround_robin %s\n"
                   "topic rr/# out 1\n" % (port_a, port_b, rr))
    check("round_robin %s: connects to the first address" % rr, connected_to(local, port_a, 0),
          local.log_text()[-300:])
    # the first remote drops the link (a client takes the bridge's client id over)
    at = len(local.log_text())
    thief = Client(port_a, "edge-rr")
    thief.close()
    if rr == "true":
        check("round_robin true: a dropped link goes on to the next address",
              connected_to(local, port_b, at), local.log_text()[at:])
    else:
        check("round_robin false: a dropped link comes back to the first address",
              connected_to(local, port_a, at) and "127.0.0.1:%d" % port_b not in local.log_text()[at:],
              local.log_text()[at:])
    if rr == "false":
        # fail-over: the first address dies, the second takes over
        at = len(local.log_text())
        ra.stop()
        check("fail-over: the first remote dead, it connects to the second",
              connected_to(local, port_b, at), local.log_text()[at:])
        rsub = Client(port_b, "rsub-rr")
        rsub.sub("rr/#", 1)
        lpub = Client(local.port, "lpub-rr")
        lpub.pub("rr/x", "via-b", 1)
        check("fail-over: messages go through the second",
              wait(lambda: rsub.messages(), 5), "%r" % rsub.messages())
        lpub.close()
        rsub.close()
        # fail-back: the first is back; once the link is re-made it goes there
        ra = mosquitto(port_a)
        at = len(local.log_text())
        rb.stop()
        check("fail-back (round_robin false): the link re-made goes to the first address again",
              connected_to(local, port_a, at), local.log_text()[at:])
        rb = mosquitto(port_b)
    local.stop()
ra.stop()
rb.stop()

# ---- bridge_max_packet_size ------------------------------------------------
ra = mosquitto()
rsub = Client(ra.port, "rsub-size")
rsub.sub("size/#", 1)
local = bridge("address 127.0.0.1:%d\nremote_clientid edge-size\nbridge_max_packet_size 100\n"
               "topic size/# out 1\n" % ra.port)
log_wait(local, "bridge b: connected", 8)
lpub = Client(local.port, "lpub-size")
lpub.pub("size/big", "x" * 200, 1)
lpub.pub("size/small", "y" * 50, 1)
wait(lambda: rsub.messages("size/small"), 5)
check("bridge_max_packet_size: a message within it crosses",
      [m[1] for m in rsub.messages("size/small")] == ["y" * 50], "%r" % rsub.messages())
check("bridge_max_packet_size: a larger one is not sent, with a log line",
      not rsub.messages("size/big") and "exceeds bridge_max_packet_size: not sent" in local.log_text(),
      local.log_text()[-300:])
lpub.close()
rsub.close()
local.stop()
ra.stop()
r.finish()

"""Bridges and durability, inwards (issue 19): a QoS 1 message that midge
acknowledged to the remote broker over a bridge is committed first. The
remote is a real Mosquitto; between the two a proxy watches the bridge's
bytes and kills midge (SIGKILL) as soon as midge's first PUBACK went to
the remote. After a restart every message the remote got a PUBACK for is
replayed to the local persistent subscriber. The commit is slowed
(midge_persist_commit_delay_ms) so that an acknowledgement sent before
the commit would be caught."""

import os
import shutil
import signal
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brokerctl  # noqa: E402
from bridgectl import Client, wait, log_wait  # noqa: E402

r = brokerctl.Results("bridge_durable")
brokerctl.deadline(r, 50)
check = r.check

N = 30


class Proxy:
    """Forwards 127.0.0.1:port to the remote, parsing MQTT both ways: the
    PUBLISHes the remote sends (packet id -> payload) and the PUBACKs midge
    answers. on_puback(pids) runs once, after the first chunk holding a
    PUBACK was forwarded to the remote."""

    def __init__(self, rport):
        self.rport = rport
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(4)
        self.port = self.lsock.getsockname()[1]
        self.payloads = {}   # packet id -> payload, from the remote
        self.acked = []      # payloads whose PUBACK reached the remote
        self.on_puback = None
        self.fired = False
        self.stopping = False
        self.socks = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            u = socket.create_connection(("127.0.0.1", self.rport), 5)
            self.socks += [c, u]
            threading.Thread(target=self._pump, args=(u, c, self._from_remote), daemon=True).start()
            threading.Thread(target=self._pump, args=(c, u, self._from_midge), daemon=True).start()

    def _pump(self, src, dst, watch):
        buf = b""
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                for s in (src, dst):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                return
            buf += data
            packets = brokerctl.split_packets(buf)
            used = sum(1 + len(brokerctl.varint(len(b))) + len(b) for _, b in packets)
            buf = buf[used:]
            fire = watch(packets)
            try:
                dst.sendall(data)
            except OSError:
                return
            if fire and not self.fired and self.on_puback:
                self.fired = True
                self.on_puback()

    def _from_remote(self, packets):
        for first, body in packets:
            if first >> 4 == 3 and (first >> 1) & 3:
                tl = int.from_bytes(body[0:2], "big")
                pid = int.from_bytes(body[2 + tl:4 + tl], "big")
                self.payloads[pid] = body[4 + tl:].decode(errors="replace")
        return False

    def _from_midge(self, packets):
        fire = False
        for first, body in packets:
            if first >> 4 == 4 and not self.fired:  # PUBACK
                pid = int.from_bytes(body[0:2], "big")
                self.acked.append(self.payloads.get(pid, "?%d" % pid))
                fire = True
        return fire

    def close(self):
        self.stopping = True
        for s in [self.lsock] + self.socks:
            try:
                s.close()
            except OSError:
                pass


remote = brokerctl.start_reference("listener {port} 127.0.0.1\nmax_inflight_messages 100\n")
proxy = Proxy(remote.port)
ldir = brokerctl.scratch_dir("bridge-durable")
local_conf = """listener {port} 127.0.0.1
persistence true
persistence_location %s
midge_persist_commit_delay_ms 400
connection cloud
address 127.0.0.1:%d
remote_clientid edge-durable
cleansession false
restart_timeout 1 1
topic in/# in 1
""" % (ldir, proxy.port)

local = brokerctl.start(local_conf)
check("the bridge connects to Mosquitto", log_wait(local, "bridge cloud: connected"),
      local.log_text()[-500:])
# the local subscriber: a persistent session, away while the messages come
lsub = Client(local.port, "lsub-durable", clean=False)
lsub.sub("in/#", 1)
lsub.close()
time.sleep(0.3)  # the remote's SUBACK for the bridge


def kill_midge():
    local.signal(signal.SIGKILL)


proxy.on_puback = kill_midge
rpub = Client(remote.port, "rpub-durable")
for i in range(N):
    rpub.c.publish("in/x", "m%d" % i, 1)
killed = wait(lambda: local.proc.poll() is not None, 10)
check("midge was killed right after its first PUBACK to the remote", killed and proxy.acked,
      "acked=%r" % proxy.acked)
acked = list(proxy.acked)
print("note: %d of %d messages acknowledged to the remote before the kill" % (len(acked), N), flush=True)
rpub.close()

local = brokerctl.start(local_conf)
lsub = Client(local.port, "lsub-durable", clean=False)
got = lambda: [m[1] for m in lsub.messages("in/x")]  # noqa: E731
wait(lambda: set(acked) <= set(got()), 10)
check("every message the remote got a PUBACK for is replayed after the restart [MQTT-4.3.2-2]",
      set(acked) <= set(got()), "acked=%r got=%r" % (acked, got()))
# and the rest: the remote sends again what it heard no PUBACK for
wait(lambda: len(set(got())) >= N, 15)
check("the messages not acknowledged come again from the remote (cleansession false)",
      set(got()) >= {"m%d" % i for i in range(N)}, "got=%r" % sorted(set(got())))
lsub.close()

local.stop()
remote.stop()
proxy.close()
brokerctl.stop_all()
shutil.rmtree(ldir, ignore_errors=True)
r.finish()

"""examples/embed (libmidge in a C program): starts a broker on a free
port; real clients connect; the program's callbacks see them; a message to
ping/x is answered on pong/x by midge_publish from a callback; a retained
message published before midge_run() is there; publishing to embed/stop
ends the program with status 0."""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brokerctl  # noqa: E402
from brokerctl import run, spawn  # noqa: E402

r = brokerctl.Results("embed")
brokerctl.deadline(r, 60)
port = brokerctl.free_port()
exe = os.path.join(brokerctl.builddir(), "examples", "embed")
log_path = os.path.join(brokerctl.builddir(), "tests", "integration", "embed-%d.out" % port)
os.makedirs(os.path.dirname(log_path), exist_ok=True)
out = open(log_path, "w")
proc = subprocess.Popen([exe, str(port)], stdout=out, stderr=subprocess.STDOUT)
out.close()
P = str(port)
up = brokerctl.wait_port(port, proc=proc)
r.check("embedded broker listens", up)

rc, got, _ = run(["mosquitto_sub", "-h", "127.0.0.1", "-p", P, "-t", "embed/hello", "-C", "1", "-W", "5"])
r.check("retained message published before midge_run", got.strip() == "retained at start", repr(got))

s = spawn(["mosquitto_sub", "-h", "127.0.0.1", "-p", P, "-t", "pong/#", "-C", "1", "-W", "8", "-v",
           "-i", "ponger"])
time.sleep(0.5)
rc, _, err = run(["mosquitto_pub", "-h", "127.0.0.1", "-p", P, "-t", "ping/x", "-m", "hi", "-i", "pinger"])
got, _ = s.communicate(timeout=10)
r.check("callback answers ping/x on pong/x", rc == 0 and got.strip() == "pong/x hi", repr((got, err)))

rc, _, _ = run(["mosquitto_pub", "-h", "127.0.0.1", "-p", P, "-t", "embed/stop", "-m", "bye"])
try:
    status = proc.wait(10)
except subprocess.TimeoutExpired:
    proc.kill()
    status = proc.wait(5)
text = open(log_path).read()
r.check("midge_stop from a callback ends midge_run with 0", status == 0, "status %s" % status)
r.check("on_connect saw the clients", "connect pinger from 127.0.0.1" in text and "connect ponger" in text,
        text[-1500:])
r.check("on_publish saw the message", "publish ping/x hi" in text, text[-1500:])
r.check("on_disconnect saw a client leave", "disconnect pinger" in text, text[-1500:])
r.check("program printed its stop", "stopped: 0" in text, text[-500:])
os.unlink(log_path)
r.finish()

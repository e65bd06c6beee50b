"""TLS with mosquitto_pub / mosquitto_sub: a self-signed CA and server
certificate made with certtool during the test; a listener that requires
client certificates (with use_identity_as_username) accepts a client with
one and refuses clients without one or with a certificate from another CA;
TLS older than 1.2 is refused; plain and TLS listeners share one broker."""

import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brokerctl  # noqa: E402
import pki as pkitool  # noqa: E402
from brokerctl import run, spawn  # noqa: E402

r = brokerctl.Results("tls")
brokerctl.deadline(r, 150)



b0 = brokerctl.start()  # only for its private directory
d = b0.dir + "-pki"
os.makedirs(d, exist_ok=True)
b0.stop()
pki = pkitool.make(d, "good")
other = pkitool.make(d, "evil")

conf = """listener {port} 127.0.0.1
certfile %(server)s
keyfile %(server-key)s

listener {port2} 127.0.0.1
certfile %(server)s
keyfile %(server-key)s
cafile %(ca)s
require_certificate true
use_identity_as_username true

listener {port3} 127.0.0.1
""" % pki
b = brokerctl.start(conf)
P, P2, P3 = str(b.port), str(b.ports["port2"]), str(b.ports["port3"])
tls = ["--cafile", pki["ca"], "-h", "127.0.0.1"]
cli = ["--cert", pki["client"], "--key", pki["client-key"]]

for ver in ("mqttv311", "mqttv5"):
    s = spawn(["mosquitto_sub", "-p", P, "-t", "tls/" + ver, "-C", "1", "-W", "8", "-V", ver] + tls)
    time.sleep(0.5)
    rc, _, err = run(["mosquitto_pub", "-p", P, "-t", "tls/" + ver, "-m", "secret", "-q", "1",
                      "-V", ver] + tls)
    out, e2 = s.communicate(timeout=10)
    r.check("TLS %s round trip" % ver, rc == 0 and out.strip() == "secret", repr((rc, out, err, e2)))

# A TLS subscriber hears a plain publisher (one broker behind all listeners).
s = spawn(["mosquitto_sub", "-p", P, "-t", "mixed", "-C", "1", "-W", "8"] + tls)
time.sleep(0.5)
run(["mosquitto_pub", "-p", P3, "-h", "127.0.0.1", "-t", "mixed", "-m", "from-plain"])
out, _ = s.communicate(timeout=10)
r.check("plain publisher reaches TLS subscriber", out.strip() == "from-plain", repr(out))

# A large message through TLS (many records).
big = os.path.join(d, "big.bin")
with open(big, "wb") as f:
    f.write(os.urandom(300000))
s = subprocess.Popen(["mosquitto_sub", "-p", P, "-t", "tbig", "-C", "1", "-W", "10", "-N"] + tls,
                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
time.sleep(0.5)
run(["mosquitto_pub", "-p", P, "-t", "tbig", "-f", big, "-q", "1"] + tls)
out, _ = s.communicate(timeout=15)
r.check("300 kB payload over TLS arrives intact", out == open(big, "rb").read(), "%d bytes" % len(out))

# Client certificates.
s = spawn(["mosquitto_sub", "-p", P2, "-t", "cert", "-C", "1", "-W", "8"] + tls + cli)
time.sleep(0.5)
rc, _, err = run(["mosquitto_pub", "-p", P2, "-t", "cert", "-m", "with-cert"] + tls + cli)
out, _ = s.communicate(timeout=10)
r.check("client with a certificate from the CA is accepted", rc == 0 and out.strip() == "with-cert",
        repr((rc, out, err)))
rc, _, err = run(["mosquitto_pub", "-p", P2, "-t", "cert", "-m", "no-cert"] + tls, timeout=10)
r.check("client without a certificate is refused", rc != 0, repr((rc, err)))
rc, _, err = run(["mosquitto_pub", "-p", P2, "-t", "cert", "-m", "evil"] + tls +
                 ["--cert", other["client"], "--key", other["client-key"]], timeout=10)
r.check("client with a certificate from another CA is refused", rc != 0, repr((rc, err)))
rc, _, err = run(["mosquitto_pub", "-p", P, "-t", "x", "-m", "x", "--cafile", other["ca"], "-h",
                  "127.0.0.1"], timeout=10)
r.check("client that does not trust the server's CA fails", rc != 0, repr((rc, err)))
def gnutls_cli(prio, port=P):
    p = subprocess.run(["gnutls-cli", "--priority", prio, "--x509cafile", pki["ca"], "-p", str(port),
                        "127.0.0.1"], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=20)
    return p.returncode, p.stdout + p.stderr


def gnutls_serv_handshake(prio):
    """gnutls-cli's output against a local gnutls-serv that offers only
    prio, with the broker's certificate: proves the client side can speak
    the versions in prio, so a refusal by the broker is the broker's."""
    port = brokerctl.free_port()
    serv = subprocess.Popen(["gnutls-serv", "--priority", prio, "--x509certfile", pki["server"],
                             "--x509keyfile", pki["server-key"], "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if not brokerctl.wait_port(port, proc=serv):
            return "gnutls-serv did not start"
        return gnutls_cli(prio, port)[1]
    finally:
        serv.kill()
        serv.wait(5)


# TLS older than 1.2 is refused. The peer is
# gnutls-cli, first shown to complete each old version with gnutls-serv.
for name in ("TLS1.0", "TLS1.1"):
    prio = "NORMAL:-VERS-ALL:+VERS-%s" % name
    ref = gnutls_serv_handshake(prio)
    r.check("gnutls-cli speaks %s (against a local gnutls-serv)" % name,
            "Handshake was completed" in ref and "Description: (%s-" % name in ref, ref[-500:])
    rc, out = gnutls_cli(prio)
    r.check("%s is refused" % name, rc != 0 and "Handshake was completed" not in out, out[-500:])
rc, out = gnutls_cli("NORMAL:-VERS-ALL:+VERS-TLS1.2")
r.check("TLS 1.2 is accepted", "Handshake was completed" in out, out[-500:])
rc, out = gnutls_cli("NORMAL:-VERS-ALL:+VERS-TLS1.3")
r.check("TLS 1.3 is accepted", "Handshake was completed" in out, out[-500:])

# Plain MQTT sent to a TLS port is not understood, and the broker goes on.
rc, _, err = run(["mosquitto_pub", "-p", P, "-h", "127.0.0.1", "-t", "x", "-m", "plain"], timeout=10)
r.check("plain client on a TLS port fails", rc != 0, repr((rc, err)))
if brokerctl.broker_kind() == "midge":
    log = b.log_text()
    r.check("identity from the certificate is the username", "good-client" in log, log[-2000:])

s = spawn(["mosquitto_sub", "-p", P, "-t", "after", "-C", "1", "-W", "8"] + tls)
time.sleep(0.5)
run(["mosquitto_pub", "-p", P, "-t", "after", "-m", "still"] + tls)
out, _ = s.communicate(timeout=10)
r.check("broker serves TLS after the refusals", out.strip() == "still", repr(out))

# SIGHUP swaps the certificates: an open TLS connection stays, new
# clients get the new certificate (midge; Mosquitto 2.0 keeps the old one).
if brokerctl.broker_kind() == "midge":
    keep = spawn(["mosquitto_sub", "-p", P, "-t", "hup", "-C", "1", "-W", "15"] + tls)
    time.sleep(0.5)
    with open(b.conf_path) as f:
        text = f.read()
    with open(b.conf_path, "w") as f:
        f.write(text.replace(pki["server"], other["server"]).replace(pki["server-key"], other["server-key"]))
    b.signal(signal.SIGHUP)
    time.sleep(0.5)
    rc1, _, e1 = run(["mosquitto_pub", "-p", P, "-t", "x", "-m", "x", "--cafile", other["ca"], "-h",
                      "127.0.0.1"], timeout=10)
    rc2, _, e2 = run(["mosquitto_pub", "-p", P, "-t", "x", "-m", "x"] + tls, timeout=10)
    r.check("after SIGHUP new clients get the new certificate", rc1 == 0 and rc2 != 0, repr((e1, e2)))
    run(["mosquitto_pub", "-p", P3, "-h", "127.0.0.1", "-t", "hup", "-m", "kept"])
    out, _ = keep.communicate(timeout=15)
    r.check("the TLS connection opened before SIGHUP stays up", out.strip() == "kept", repr(out))

rc = b.stop()
r.check("SIGTERM stops the broker with status 0", rc == 0, "rc=%s" % rc)
subprocess.run(["rm", "-rf", d])
r.finish()

"""The NATS connection's security keys, against a real nats-server that
requires TLS with client certificates (made with certtool) and a user
name and password: nodes with the right CA, certificate and password join
and carry messages between them; a wrong CA, a wrong password, no TLS
keys, or a key file that cannot be read stop start-up with a clear
message (fail closed; the last one with the configuration's file:line)."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brokerctl  # noqa: E402
import clusterctl  # noqa: E402
import pki  # noqa: E402
from persistctl import Client  # noqa: E402

r = brokerctl.Results("cluster-secure")
brokerctl.deadline(r, 50)
check = r.check

d = brokerctl.scratch_dir("cluster-secure")
good = pki.make(d, "good")
bad = pki.make(d, "bad")  # another CA: the NATS server's certificate is not from it

nats = clusterctl.Nats(config="""
tls {
  cert_file: "%s"
  key_file: "%s"
  ca_file: "%s"
  verify: true
}
authorization {
  user: node
  password: "s3cret pass"
}
""" % (good["server"], good["server-key"], good["ca"]))

SECURE = ("midge_cluster_cafile %s\nmidge_cluster_certfile %s\nmidge_cluster_keyfile %s\n"
          % (good["ca"], good["client"], good["client-key"]))
AUTH = "midge_cluster_username node\nmidge_cluster_password s3cret pass\n"


def refused(what, extra, want):
    """A node started with extra must not start; its log must say want."""
    try:
        b = clusterctl.start_node(nats, "x%d" % abs(hash(what)), extra=extra)
        check(what + ": start-up stops", False, "it started")
        b.stop()
    except RuntimeError as e:
        text = str(e)
        check(what + ": start-up stops", True)
        check(what + ": the log says " + repr(want), want in text, text[-600:])


nodes = []
try:
    # ---- TLS with a client certificate, user and password: two nodes join -------
    for i in range(2):
        nodes.append(clusterctl.start_node(nats, "s%d" % i, extra=SECURE + AUTH))
    A, B = nodes
    check("both nodes joined over TLS with a password",
          all("joined cluster t" in n.log_text() for n in nodes))
    s = Client("sub", 5, B.port)
    check("subscriber on s1 connects", s.connect())
    s.subscribe("sec/#", 1)
    time.sleep(0.3)  # the NATS subscription is made on the cluster thread
    p = Client("pub", 4, A.port)
    p.connect()
    mids = [p.publish("sec/%d" % i, "m%d" % i, 1).mid for i in range(20)]
    check("QoS 1 publishes on s0 acknowledged (NATS confirmed them)", p.wait_acked(mids))
    got = s.wait(20, 5)
    check("the subscriber on s1 got all 20 through the TLS NATS connection",
          sorted(m.payload.decode() for m in got) == sorted("m%d" % i for i in range(20)),
          "got %d" % len(got))
    p.close()
    s.close()

    # ---- what cannot be honoured stops start-up ----------------------------------
    refused("a wrong CA", SECURE.replace(good["ca"], bad["ca"]) + AUTH,
            "cannot connect to midge_cluster's NATS servers")
    refused("a wrong CA (why)", SECURE.replace(good["ca"], bad["ca"]) + AUTH, "SSL")
    refused("a wrong password", SECURE + AUTH.replace("s3cret pass", "wrong"),
            "Authorization Violation")
    refused("no TLS keys for a TLS server", AUTH, "cannot connect to midge_cluster's NATS servers")
    refused("no password for a server that wants one", SECURE, "Authorization Violation")
    refused("a CA file that does not exist",
            SECURE.replace(good["ca"], os.path.join(d, "missing.pem")) + AUTH,
            "broker.conf:6: midge_cluster_cafile %s cannot be read" % os.path.join(d, "missing.pem"))
    refused("a credentials file that does not exist",
            SECURE + "midge_cluster_credentials %s\n" % os.path.join(d, "none.creds"),
            "midge_cluster_credentials %s cannot be read" % os.path.join(d, "none.creds"))
    refused("a certificate without its key", SECURE.replace("midge_cluster_keyfile", "#") + AUTH,
            "needs midge_cluster_certfile and midge_cluster_keyfile together")
    refused("a password and a token", SECURE + AUTH + "midge_cluster_token t\n",
            "more than one way to authenticate to NATS")
    junk = os.path.join(d, "junk.pem")
    with open(junk, "w") as f:
        f.write("not a certificate\n")
    os.chmod(junk, 0o644)
    refused("a CA file that is not PEM", SECURE.replace(good["ca"], junk) + AUTH,
            "midge_cluster_cafile %s" % junk)
    try:
        b = brokerctl.start("listener {port} 127.0.0.1\n" + SECURE)
        check("TLS keys without midge_cluster: start-up stops", False, "it started")
        b.stop()
    except RuntimeError as e:
        check("TLS keys without midge_cluster: start-up stops, saying so",
              "broker.conf:2: midge_cluster_cafile is a cluster key, but midge_cluster is not set" in str(e), str(e)[-400:])
finally:
    clusterctl.stop(nodes, nats)
r.finish()

"""Auth workers see the client's TLS certificate: `connect` and `auth`
requests carry tls_subject (the subject DN as use_subject_as_username
writes it) and tls_fingerprint (SHA-256 of the certificate's DER, hex),
with certificates made by certtool and real clients (mosquitto_pub with
--cert/--key, and a raw MQTT 5 client over Python's ssl for an `auth`
request). The worker (pyzmq, below) allows only when the fields are the
ones this test computes itself (openssl's RFC 2253 subject, hashlib's
SHA-256 of the DER):
- a verified certificate: allowed, the request's fields exact;
- another certificate with the same client id, user name and password:
  the worker is asked again (the decision cache keys on the fingerprint)
  and denies;
- the first certificate again: a cache hit, the worker not asked;
- a plain TCP listener of the same broker: both fields null;
- an `auth` request (MQTT 5 enhanced authentication) over TLS carries
  them too.
midge only (Mosquitto has no auth workers)."""

import hashlib
import json
import os
import socket
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brokerctl  # noqa: E402
import pki as pkitool  # noqa: E402
from brokerctl import _s, read_packet, run, spawn, varint  # noqa: E402

r = brokerctl.Results("auth workers and TLS certificates")
brokerctl.deadline(r, 120)
PY = "/usr/bin/python3"

d = brokerctl.scratch_dir("zauthtls")
pki = pkitool.make(d, "zt")
dev = pkitool.client_cert(d, pki, "dev", 'cn = "dev-7"\norganization = "Acme, Inc"\ncountry = "GB"\n')
other = pkitool.client_cert(d, pki, "other", 'cn = "dev-7"\norganization = "Acme, Inc"\n'
                                             'country = "GB"\n')


def fingerprint(pem):
    with open(pem) as f:
        return hashlib.sha256(ssl.PEM_cert_to_DER_cert(f.read())).hexdigest()


def subject(pem):
    out = subprocess.run(["openssl", "x509", "-in", pem, "-noout", "-subject", "-nameopt",
                          "RFC2253"], capture_output=True, text=True, timeout=20).stdout
    return out.strip().split("=", 1)[1] if out.startswith("subject=") else out.strip()


want = {"dev": (subject(dev[0]), fingerprint(dev[0])),
        "other": (subject(other[0]), fingerprint(other[0]))}
r.check("the two certificates share a subject, not a fingerprint",
        want["dev"][0] == want["other"][0] == "CN=dev-7,O=Acme\\, Inc,C=GB" and
        want["dev"][1] != want["other"][1], want)

# The worker: allows a TLS client only when both fields are what the test
# computed for the `dev` certificate, a plain client only when both are
# null; logs every request.
log = os.path.join(d, "requests.log")
worker_py = os.path.join(d, "worker.py")
with open(worker_py, "w") as f:
    f.write('''
import json, sys, zmq
endpoint, subj, fp, log = sys.argv[1:5]
s = zmq.Context().socket(zmq.REQ)
s.connect(endpoint)
s.send_json({"version": 1, "type": "ready"})
print("ready", flush=True)
while True:
    req = json.loads(s.recv())
    with open(log, "a") as f:
        f.write(json.dumps(req) + "\\n")
    if req["tls"]:
        ok = req["tls_subject"] == subj and req["tls_fingerprint"] == fp
    else:
        ok = req["tls_subject"] is None and req["tls_fingerprint"] is None
    if req["type"] == "auth":
        s.send_json({"version": 1, "id": req["id"], "result": "deny", "reason_code": 0x8C})
    else:
        s.send_json({"version": 1, "id": req["id"], "result": "allow" if ok else "deny",
                     "reason_code": 0x87})
''')

b = brokerctl.start("""listener {port} 127.0.0.1
certfile %(server)s
keyfile %(server-key)s
cafile %(ca)s
require_certificate true

listener {port2} 127.0.0.1
allow_anonymous false
midge_auth_endpoint ipc://{dir}/auth
midge_auth_cache_ttl 60
""" % pki)
w = spawn([PY, worker_py, "ipc://%s/auth" % b.dir, want["dev"][0], want["dev"][1], log])
w.stdout.readline()
time.sleep(0.3)


def requests():
    try:
        with open(log) as f:
            return [json.loads(x) for x in f if x.strip()]
    except FileNotFoundError:
        return []


def pub(port, cert=None, cid="dev-7"):
    cmd = ["mosquitto_pub", "-p", str(port), "-h", "127.0.0.1", "-t", "t", "-m", "x",
           "-V", "mqttv5", "-i", cid, "-u", "u", "-P", "p"]
    if cert:
        cmd += ["--cafile", pki["ca"], "--cert", cert[0], "--key", cert[1]]
    return run(cmd, timeout=20)


rc, out = pub(b.port, dev)[:2]
reqs = requests()
r.check("a verified certificate: the worker allows (its fields matched)", rc == 0, out)
r.check("the connect request carries tls_subject and tls_fingerprint",
        len(reqs) == 1 and reqs[0]["type"] == "connect" and reqs[0]["tls"] is True and
        reqs[0]["tls_subject"] == want["dev"][0] and reqs[0]["tls_fingerprint"] == want["dev"][1],
        reqs)

rc, out = pub(b.port, other)[:2]
reqs = requests()
r.check("another certificate, same client id, user name and password: asked again, denied",
        rc != 0 and len(reqs) == 2 and reqs[1]["tls_fingerprint"] == want["other"][1], (rc, reqs))

rc, out = pub(b.port, dev)[:2]
r.check("the first certificate again: allowed from the cache, the worker not asked",
        rc == 0 and len(requests()) == 2, (rc, out, len(requests())))

rc, out = pub(b.ports["port2"], None, cid="plain-1")[:2]
reqs = requests()
r.check("plain TCP: tls false, both fields null (the worker allows only that)",
        rc == 0 and reqs[-1]["tls"] is False and reqs[-1]["client_id"] == "plain-1", (rc, reqs[-1:]))

# An `auth` request over TLS (raw MQTT 5 CONNECT with a method).
ctx = ssl.create_default_context(cafile=pki["ca"])
ctx.load_cert_chain(dev[0], dev[1])
raw = socket.create_connection(("127.0.0.1", b.port), timeout=10)
s = ctx.wrap_socket(raw, server_hostname="localhost")
props = bytes([0x15]) + _s(b"X-TEST") + bytes([0x16]) + _s(b"hello")
body = _s(b"MQTT") + bytes([5, 0x02]) + (60).to_bytes(2, "big") + varint(len(props)) + props
body += _s(b"dev-8")
s.sendall(bytes([0x10]) + varint(len(body)) + body)
p = read_packet(s, 5)
reqs = requests()
r.check("an auth request over TLS carries both fields (the worker's 0x8C comes back)",
        p and p[0] == 0x20 and p[1][1] == 0x8C and reqs[-1]["type"] == "auth" and
        reqs[-1]["tls_subject"] == want["dev"][0] and
        reqs[-1]["tls_fingerprint"] == want["dev"][1], (p, reqs[-1:]))
s.close()

brokerctl.kill(w)
r.finish()

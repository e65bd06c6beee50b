"""TLS identities, with certificates and keys made by certtool and real
clients (mosquitto_pub with --cert/--key and --psk, gnutls-cli):
- use_identity_as_username requests and requires a client certificate
  (also without require_certificate); its CN is the user name, and with a
  password file the CONNECT's password is not looked at (as in Mosquitto);
  a certificate without a CN, or no certificate, is refused;
- use_subject_as_username: the subject DN is the user name, the same string
  Mosquitto makes of it (checked against Mosquitto 2.0 on the same
  certificates: escapes, UTF-8, leading '#' and blanks, OpenSSL's names);
- crlfile: a revoked certificate is refused, another one accepted; and
  SIGHUP reads a new CRL;
- TLS-PSK (psk_hint, psk_file as identity:hexkey): the right key connects
  (TLS 1.2 and 1.3), a wrong key or unknown identity does not; with
  use_identity_as_username the PSK identity is the user name; without it
  the password file applies;
- settings that cannot be honoured stop start-up with file:line... and a
  reason: an identity or crlfile without a CA to verify with, crlfile
  without client certificates, psk_hint without psk_file."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import zmq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brokerctl  # noqa: E402
import pki as pkitool  # noqa: E402
from brokerctl import run  # noqa: E402

r = brokerctl.Results("tls identity")
brokerctl.deadline(r, 170)
midge = brokerctl.midge_binary()

d = brokerctl.scratch_dir("tlsid")
pki = pkitool.make(d, "id")
certs = {}
for name, subject in (
        ("alice", None),
        ("bob", None),
        ("revoked", None),
        ("nocn", 'organization = "No CN Inc"\n'),
        ("subj", 'cn = "Client, Inc+\\"x\\" <tag>"\nou = "Unit"\nou = "Second Unit"\n'
                 'organization = "Org \u00e9"\nlocality = "Town"\nstate = "State"\ncountry = "GB"\n'
                 'uid = "u1"\ndc = "example"\ndc = "com"\n'),
        ("blanks", 'cn = "  #lead and trail "\ndn_oid = 1.2.840.113549.1.9.1 mail@example.com\n'
                   'dn_oid = 2.5.4.5 SN123\norganization = "a;b=c"\n'),
        ("hash", 'cn = "#"\n')):
    certs[name] = pkitool.client_cert(d, pki, name, subject)
crl = pkitool.revoke(d, pki, [certs["revoked"][0]])
empty_crl = pkitool.revoke(d, pki, [], name="crl-empty")
pw = os.path.join(d, "pw")
subprocess.run([midge, "passwd", "-c", "-H", "sha512", "-b", pw, "alice", "alice-pw"],
               check=True, timeout=30)
subprocess.run([midge, "passwd", "-H", "sha512", "-b", pw, "carol", "carol-pw"], check=True,
               timeout=30)
psk = os.path.join(d, "psk")
with open(psk, "w") as f:
    f.write("# identities\ndev1:00112233445566778899aabbccddeeff\ncarol:c0ffee\n")
for p in (pw, psk):
    os.chmod(p, 0o644)
ca = ["--cafile", pki["ca"], "-h", "127.0.0.1"]


def pub(port, cert=None, user=None, password=None, extra=(), version="mqttv311"):
    cmd = ["mosquitto_pub", "-p", str(port), "-t", "id/t", "-m", "x", "-V", version]
    if cert:
        cmd += ca + ["--cert", certs[cert][0], "--key", certs[cert][1]]
    elif "--psk" not in extra:
        cmd += ca
    else:
        cmd += ["-h", "127.0.0.1"]
    if user is not None:
        cmd += ["-u", user]
    if password is not None:
        cmd += ["-P", password]
    return run(cmd + list(extra), timeout=20)


class Users:
    """The user names of client.connected events (midge's event socket)."""

    def __init__(self, endpoint):
        self.sock = zmq.Context.instance().socket(zmq.SUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SUBSCRIBE, b"client.connected")
        self.sock.connect(endpoint)
        time.sleep(0.3)

    def next(self, timeout=5.0):
        if not self.sock.poll(int(timeout * 1000)):
            return "(no event)"
        frames = self.sock.recv_multipart()
        return json.loads(frames[1]).get("username")


LISTENERS = """listener {port} 127.0.0.1
certfile %(server)s
keyfile %(server-key)s
cafile %(ca)s
require_certificate true
use_identity_as_username true

listener {port2} 127.0.0.1
certfile %(server)s
keyfile %(server-key)s
cafile %(ca)s
use_subject_as_username true

listener {port3} 127.0.0.1
certfile %(server)s
keyfile %(server-key)s
cafile %(ca)s
require_certificate true
crlfile %(crl)s
""" % dict(pki, crl=crl)
b = brokerctl.start(LISTENERS + "allow_anonymous false\npassword_file %s\n"
                    "midge_hooks_endpoint ipc://{dir}/events\n" % pw)
ev = Users("ipc://%s/events" % b.dir)
P1, P2, P3 = b.port, b.ports["port2"], b.ports["port3"]

# use_identity_as_username (+ require_certificate), password file present
rc, _, err = pub(P1, "alice")
r.check("identity: certificate CN=alice, no password: accepted", rc == 0, err)
r.check("identity: the user is the CN", ev.next() == "alice")
rc, _, err = pub(P1, "alice", user="carol", password="wrong")
r.check("identity: CONNECT user and wrong password ignored: accepted as alice",
        rc == 0 and ev.next() == "alice", err)
rc, _, err = pub(P1, "bob", version="mqttv5")
r.check("identity: bob (not in the password file) accepted by certificate, v5", rc == 0, err)
r.check("identity: the user is bob", ev.next() == "bob")
rc, _, err = pub(P1, "nocn")
r.check("identity: certificate without CN refused", rc != 0, err)
rc, _, err = pub(P1, None, user="alice", password="alice-pw")
r.check("identity: no certificate refused (even with a right password)", rc != 0, err)
g = subprocess.run(["gnutls-cli", "--x509cafile", pki["ca"], "--x509certfile", certs["alice"][0],
                    "--x509keyfile", certs["alice"][1], "-p", str(P1), "127.0.0.1"],
                   stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=20)
r.check("identity: gnutls-cli with alice's certificate completes the handshake",
        "Handshake was completed" in g.stdout + g.stderr, (g.stdout + g.stderr)[-400:])
g = subprocess.run(["gnutls-cli", "--x509cafile", pki["ca"], "-p", str(P1), "127.0.0.1"],
                   stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=20)
# (in TLS 1.3 the client finishes before the server has checked it: the
# server's answer is to close)
out = g.stdout + g.stderr
r.check("identity: gnutls-cli without a certificate is refused",
        "Handshake was completed" not in out or "Peer has closed the GnuTLS connection" in out,
        out[-400:])

# use_subject_as_username without require_certificate: a certificate is
# still requested and required
midge_subjects = {}
for name in ("subj", "blanks", "hash", "alice"):
    rc, _, err = pub(P2, name)
    midge_subjects[name] = ev.next() if rc == 0 else None
    r.check("subject: %s accepted" % name, rc == 0, err)
rc, _, err = pub(P2, None, user="alice", password="alice-pw")
r.check("subject: no certificate refused (requested although require_certificate is unset)",
        rc != 0, err)

# crlfile
rc, _, err = pub(P3, "alice", user="alice", password="alice-pw")
r.check("crlfile: a certificate it does not list accepted", rc == 0, err)
ev.next()
rc, _, err = pub(P3, "revoked", user="alice", password="alice-pw")
r.check("crlfile: the revoked certificate refused", rc != 0, err)
log = b.log_text()
r.check("crlfile: the refusal is logged", "revoked" in log.lower() or "TLS handshake failed" in log,
        log[-800:])
# a new CRL on SIGHUP (new connections)
with open(b.conf_path) as f:
    text = f.read()
with open(b.conf_path, "w") as f:
    f.write(text.replace(crl, empty_crl))
b.signal(signal.SIGHUP)
time.sleep(1.0)
rc, _, err = pub(P3, "revoked", user="alice", password="alice-pw")
r.check("crlfile: after SIGHUP with a CRL that lists nothing, accepted", rc == 0, err)
ev.next()
b.stop()

# The subjects against Mosquitto's on the same certificates.
if os.path.exists("/usr/sbin/mosquitto"):
    m = brokerctl.start_reference("""listener {port} 127.0.0.1
certfile %(server)s
keyfile %(server-key)s
cafile %(ca)s
require_certificate true
use_subject_as_username true
allow_anonymous false
log_type all
""" % pki)
    mosq = {}
    for name in midge_subjects:
        rc, _, err = pub(m.port, name)
        time.sleep(0.3)
        found = re.findall(r"as \S+ \(p\d, c\d, k\d+, u'(.*)'\)\.$", m.log_text(), re.M)
        mosq[name] = found[-1] if rc == 0 and found else None
    m.stop()
    for name, s in midge_subjects.items():
        r.check("subject of %s as Mosquitto writes it: %r" % (name, s),
                s is not None and s == mosq[name], "Mosquitto: %r" % mosq[name])

# TLS-PSK
b = brokerctl.start("""listener {port} 127.0.0.1
psk_hint midge-hint
use_identity_as_username true

listener {port2} 127.0.0.1
psk_hint other-hint

psk_file %s
allow_anonymous false
password_file %s
midge_hooks_endpoint ipc://{dir}/events
""" % (psk, pw))
ev = Users("ipc://%s/events" % b.dir)
P1, P2 = b.port, b.ports["port2"]
KEY = "00112233445566778899aabbccddeeff"
for tls in ("tlsv1.3", "tlsv1.2"):
    rc, _, err = pub(P1, extra=["--psk", KEY, "--psk-identity", "dev1", "--tls-version", tls])
    r.check("PSK %s: right key accepted without user or password" % tls, rc == 0, err)
    r.check("PSK %s: the user is the PSK identity" % tls, ev.next() == "dev1")
rc, _, err = pub(P1, extra=["--psk", KEY[:-1] + "0", "--psk-identity", "dev1"])
r.check("PSK: wrong key refused", rc != 0, err)
rc, _, err = pub(P1, extra=["--psk", KEY, "--psk-identity", "nobody"])
r.check("PSK: unknown identity refused", rc != 0, err)
g = subprocess.run(["gnutls-cli", "--pskusername", "dev1", "--pskkey", KEY, "--priority",
                    "NORMAL:+ECDHE-PSK:+DHE-PSK:+PSK", "-p", str(P1), "127.0.0.1"],
                   stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=20)
r.check("PSK: gnutls-cli completes the handshake", "Handshake was completed" in g.stdout + g.stderr,
        (g.stdout + g.stderr)[-400:])
# a PSK listener without identities: the password file decides
rc, _, err = pub(P2, user="carol", password="carol-pw",
                 extra=["--psk", "c0ffee", "--psk-identity", "carol"])
r.check("PSK without use_identity_as_username: user and password checked, accepted",
        rc == 0 and ev.next() == "carol", err)
rc, _, err = pub(P2, user="carol", password="wrong", extra=["--psk", "c0ffee", "--psk-identity",
                                                            "carol"])
r.check("PSK without use_identity_as_username: wrong password refused (4)", rc == 4, err)
b.stop()

# What cannot be honoured stops start-up, saying why.
for conf, why in (
        ("listener {port} 127.0.0.1\ncertfile %(server)s\nkeyfile %(server-key)s\n"
         "use_identity_as_username true\n" % pki, "needs cafile or capath"),
        ("listener {port} 127.0.0.1\ncertfile %(server)s\nkeyfile %(server-key)s\n"
         "cafile %(ca)s\ncrlfile %(ca)s\n" % pki, "add require_certificate true"),
        ("listener {port} 127.0.0.1\npsk_hint h\n", "needs psk_file"),
        ("listener {port} 127.0.0.1\npsk_hint h\nuse_subject_as_username true\npsk_file %s\n" % psk,
         "need certificates")):
    p = brokerctl.start(conf, wait_for=None)
    try:
        p.proc.wait(15)
    except subprocess.TimeoutExpired:
        pass
    log = p.log_text()
    r.check("start-up refused: %s" % why, p.proc.returncode not in (None, 0) and why in log,
            log[-600:])
    p.stop()

subprocess.run(["rm", "-rf", d])
r.finish()

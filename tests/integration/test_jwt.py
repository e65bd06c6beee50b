"""JWT authentication through the real binary (docs/auth.md): tokens made
by python3-jwt with keys made by certtool (RSA 2048, ECDSA P-256) and an
HS256 secret; valid tokens with paho 3.1.1 and 5.0; expired, not yet
valid, wrong audience, wrong issuer, wrong key, alg=none and RS->HS
confusion tokens refused; a JWKS with two kids; the key file changed
on disk and on SIGHUP; the acl claim allowing and denying publish and
subscribe with %c/%u; expiry disconnecting a v5 client with 0xA0; the
chain (passwd then jwt, a user the password file does not know going on
to the token); start-up refusals with file:line.
"""
import base64
import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

import jwt as pyjwt
import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives import serialization

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brokerctl  # noqa: E402
from brokerctl import run  # noqa: E402

r = brokerctl.Results("test_jwt")
brokerctl.deadline(r, 100)
midge = brokerctl.midge_binary()
tmp = tempfile.mkdtemp(prefix="midge-jwt-")
os.chmod(tmp, 0o755)


def path(name):
    return os.path.join(tmp, name)


def write(name, text):
    with open(path(name), "w") as f:
        f.write(text)
    return path(name)


def certtool(*args):
    subprocess.run(["certtool", *args], check=True, timeout=60, capture_output=True)


# ---- keys: certtool, RSA and ECDSA P-256; an HS secret -------------------
certtool("--generate-privkey", "--key-type", "rsa", "--bits", "2048", "--no-text",
         "--outfile", path("rsa.key"))
certtool("--load-privkey", path("rsa.key"), "--pubkey-info", "--outfile", path("rsa.pub"))
certtool("--generate-privkey", "--key-type", "rsa", "--bits", "2048", "--no-text",
         "--outfile", path("rsa2.key"))
certtool("--load-privkey", path("rsa2.key"), "--pubkey-info", "--outfile", path("rsa2.pub"))
certtool("--generate-privkey", "--key-type", "ecdsa", "--curve", "secp256r1", "--no-text",
         "--outfile", path("ec.key"))
certtool("--load-privkey", path("ec.key"), "--pubkey-info", "--outfile", path("ec.pub"))
RSA = open(path("rsa.key")).read()
RSA2 = open(path("rsa2.key")).read()
EC = open(path("ec.key")).read()
SECRET = "a-shared-secret-of-at-least-32-bytes!!"
write("hs.secret", SECRET + "\n")


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def jwk_of(private_pem, kid):
    pub = serialization.load_pem_private_key(private_pem.encode(), None).public_key()
    nums = pub.public_numbers()
    if hasattr(nums, "n"):
        ln = (nums.n.bit_length() + 7) // 8
        return {"kty": "RSA", "kid": kid, "use": "sig", "n": b64u(nums.n.to_bytes(ln, "big")),
                "e": b64u(nums.e.to_bytes(3, "big"))}
    return {"kty": "EC", "kid": kid, "crv": "P-256", "x": b64u(nums.x.to_bytes(32, "big")),
            "y": b64u(nums.y.to_bytes(32, "big"))}


def claims(sub="alice", life=300, **kw):
    now = int(time.time())
    c = {"sub": sub, "iat": now, "exp": now + life, "iss": "https://idp.test",
         "aud": "midge"}
    c.update(kw)
    return {k: v for k, v in c.items() if v is not None}


def token(key=RSA, alg="RS256", kid=None, **kw):
    return pyjwt.encode(claims(**kw), key, algorithm=alg,
                        headers={"kid": kid} if kid else None)


def hs_forged(secret_bytes, alg="HS256", **kw):
    """An HMAC token signed with arbitrary bytes (python-jwt refuses to use
    a PEM public key as an HMAC secret: that is the attack)."""
    h = b64u(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    p = b64u(json.dumps(claims(**kw)).encode())
    mac = hmac.new(secret_bytes, (h + "." + p).encode(), hashlib.sha256).digest()
    return h + "." + p + "." + b64u(mac)


def connect(port, tok, v5=False, user="ignored", cid="c1", from_username=False):
    """(client, reason code): paho 3.1.1 or 5.0; code 0 when accepted."""
    proto = mqtt.MQTTv5 if v5 else mqtt.MQTTv311
    c = mqtt.Client(client_id=cid, protocol=proto)
    if from_username:
        c.username_pw_set(tok, None)
    elif tok is not None:
        c.username_pw_set(user, tok)
    got = {}
    done = threading.Event()

    def on_connect(cl, ud, flags, rc, props=None):
        got["rc"] = rc.value if hasattr(rc, "value") else rc
        done.set()

    def on_disconnect(cl, ud, rc, props=None):
        got.setdefault("disc", rc.value if hasattr(rc, "value") else rc)
        got["disc_at"] = time.time()
        done.set()

    c.on_connect = on_connect
    c.on_disconnect = on_disconnect
    c.user_data_set(got)
    try:
        c.connect("127.0.0.1", port, 30)
    except Exception as e:  # noqa: BLE001
        return None, "connect error %s" % e
    c.loop_start()
    done.wait(5)
    c._got = got  # noqa: SLF001
    if got.get("rc") != 0:
        c.loop_stop()
        c.disconnect()
    return c, got.get("rc")


def stop(c):
    if c:
        c.disconnect()
        c.loop_stop()


def accepted(port, tok, **kw):
    c, rc = connect(port, tok, **kw)
    stop(c)
    return rc == 0, rc


def refused(port, tok, **kw):
    c, rc = connect(port, tok, **kw)
    stop(c)
    return rc not in (0, None), rc


BASE = ("listener {port} 127.0.0.1\nallow_anonymous false\n"
        "midge_jwt_issuer https://idp.test\nmidge_jwt_audience midge\n")

# ---- RS256 from a key file --------------------------------------------------
b = brokerctl.start(BASE + "midge_jwt_key_file %s\n" % path("rsa.pub"))
p = b.port
r.check("RS256 valid token, paho 3.1.1", *accepted(p, token()))
r.check("RS256 valid token, paho 5.0", *accepted(p, token(), v5=True))
r.check("expired token refused", *refused(p, token(life=-120)))
r.check("not-yet-valid token (nbf) refused", *refused(p, token(nbf=int(time.time()) + 600)))
r.check("token issued in the future (iat) refused",
        *refused(p, token(iat=int(time.time()) + 600)))
r.check("wrong audience refused", *refused(p, token(aud="someone-else")))
r.check("audience in a list accepted", *accepted(p, token(aud=["x", "midge"])))
r.check("wrong issuer refused", *refused(p, token(iss="https://evil.test")))
r.check("token signed by another key refused", *refused(p, token(key=RSA2)))
none_tok = pyjwt.encode(claims(), None, algorithm="none")
r.check("alg=none refused", *refused(p, none_tok))
pub_text = open(path("rsa.pub")).read()
pub_pem = pub_text[pub_text.index("-----BEGIN"):]
r.check("RS->HS confusion (the key file as HMAC secret) refused",
        *refused(p, hs_forged(pub_text.encode())))
r.check("RS->HS confusion (the PEM block as HMAC secret) refused",
        *refused(p, hs_forged(pub_pem.encode())))
r.check("token without the sub claim refused", *refused(p, token(sub=None)))
r.check("no token, allow_anonymous false: refused", *refused(p, None))
r.check("a password that is no token, allow_anonymous false: refused", *refused(p, "hunter2"))
log = b.log_text()
r.check("the log says why a token was refused", "token expired" in log and
        "token alg none is not accepted" in log and "algorithm confusion" in log, log[-1500:])
b.stop()

# ---- ES256, HS256, midge_jwt_algorithms, midge_jwt_from username ----------
b = brokerctl.start(BASE + "midge_jwt_key_file %s\n" % path("ec.pub"))
r.check("ES256 (P-256 from certtool) valid token", *accepted(b.port, token(key=EC, alg="ES256")))
r.check("ES256 key refuses an RS256 token", *refused(b.port, token()))
b.stop()
b = brokerctl.start(BASE + "midge_jwt_key_file %s\nmidge_jwt_algorithms HS512\n"
                    % path("hs.secret"))
r.check("HS512 with the secret file accepted",
        *accepted(b.port, token(key=SECRET, alg="HS512")))
r.check("HS256 refused when midge_jwt_algorithms says HS512",
        *refused(b.port, token(key=SECRET, alg="HS256")))
b.stop()
b = brokerctl.start(BASE + "midge_jwt_key_file %s\nmidge_jwt_from username\n" % path("hs.secret"))
r.check("midge_jwt_from username: token in the user name",
        *accepted(b.port, token(key=SECRET, alg="HS256"), from_username=True))
b.stop()

# ---- a JWKS with two kids; the file changed; SIGHUP --------------------------
jwks = {"keys": [jwk_of(RSA, "k-rsa"), jwk_of(EC, "k-ec")]}
write("jwks.json", json.dumps(jwks))
b = brokerctl.start(BASE + "midge_jwt_jwks_file %s\n" % path("jwks.json"))
p = b.port
r.check("JWKS: RSA key by kid", *accepted(p, token(kid="k-rsa")))
r.check("JWKS: EC key by kid", *accepted(p, token(key=EC, alg="ES256", kid="k-ec")))
r.check("JWKS: unknown kid refused", *refused(p, token(kid="k-nope")))
r.check("JWKS: RS token naming the EC kid refused", *refused(p, token(kid="k-ec")))
# rotate: k-rsa2 replaces k-rsa, picked up from the file without a signal
write("jwks.json", json.dumps({"keys": [jwk_of(RSA2, "k-rsa2"), jwk_of(EC, "k-ec")]}))
ok = False
for _ in range(40):
    time.sleep(0.1)
    if accepted(p, token(key=RSA2, kid="k-rsa2"))[0]:
        ok = True
        break
r.check("JWKS file changed: the new kid is accepted without a signal", ok, b.log_text()[-500:])
r.check("JWKS file changed: the removed kid is refused", *refused(p, token(kid="k-rsa")))
b.stop()

keyf = write("key.pem", open(path("rsa.pub")).read())
conf = write("sighup.conf", "listener %d 127.0.0.1\nallow_anonymous false\n"
             "midge_hooks_endpoint none\nmidge_jwt_key_file %s\n"
             % (brokerctl.free_port(), keyf))
port = int(open(conf).read().split()[1])
proc = subprocess.Popen([midge, "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
try:
    brokerctl.wait_port(port, proc=proc)
    r.check("before SIGHUP: the first key's tokens", *accepted(port, token()))
    # a key that the watcher cannot tell apart by size and time alone is
    # still picked up by the reload
    with open(keyf, "w") as f:
        f.write(open(path("rsa2.pub")).read())
    proc.send_signal(signal.SIGHUP)
    ok = False
    for _ in range(30):
        time.sleep(0.1)
        if accepted(port, token(key=RSA2))[0]:
            ok = True
            break
    r.check("after SIGHUP: the new key's tokens", ok)
    r.check("after SIGHUP: the old key's tokens refused", *refused(port, token()))
finally:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)

# ---- the acl claim ------------------------------------------------------------
b = brokerctl.start(BASE + "midge_jwt_key_file %s\n" % path("rsa.pub"))
p = b.port
acl = [
    {"permission": "deny", "action": "publish", "topic": "dev/%c/secret"},
    {"permission": "allow", "action": "all", "topic": "dev/%c/#"},
    {"permission": "allow", "action": "subscribe", "topic": "news/+"},
    {"permission": "allow", "action": "publish", "topic": "users/%u"},
]
c, rc = connect(p, token(acl=acl), v5=True, cid="dev1")
r.check("acl claim: connected", rc == 0, rc)
got = []
ev = threading.Event()


def on_message(cl, ud, msg):
    got.append(msg.topic)
    ev.set()


subs = {}
c.on_message = on_message
c.on_subscribe = lambda cl, ud, mid, rcs, props=None: subs.__setitem__(
    mid, [x.value if hasattr(x, "value") else x for x in rcs])
pubs = {}
c.on_publish = lambda cl, ud, mid: pubs.__setitem__(mid, True)


def sub(flt):
    res, mid = c.subscribe(flt, 1)
    for _ in range(50):
        if mid in subs:
            return subs[mid][0]
        time.sleep(0.05)
    return None


r.check("acl claim: subscribe dev/%c/# allowed", (sub("dev/dev1/#") or 0) < 0x80, subs)
r.check("acl claim: subscribe news/+ allowed", (sub("news/+") or 0) < 0x80, subs)
r.check("acl claim: subscribe news/# denied (wider than the rule)", sub("news/#") == 0x87, subs)
r.check("acl claim: subscribe other/x denied (nothing matches)", sub("other/x") == 0x87, subs)
r.check("acl claim: subscribe dev/dev2/# denied (another client's %c)",
        sub("dev/dev2/#") == 0x87, subs)

# publishes: watched by an anonymous-free observer with its own token
o, orc = connect(p, token(sub="observer", acl=[{"permission": "allow", "action": "all",
                                                 "topic": "#"}]), v5=True, cid="obs")
seen = []
o.on_message = lambda cl, ud, msg: seen.append(msg.topic)
o.subscribe("#", 0)
time.sleep(0.3)
for t in ("dev/dev1/a", "dev/dev1/secret", "users/alice", "users/bob", "news/x"):
    c.publish(t, b"x", qos=1)
time.sleep(0.8)
r.check("acl claim: publish dev/%c/a allowed", "dev/dev1/a" in seen, seen)
r.check("acl claim: publish dev/%c/secret denied (first match: deny)",
        "dev/dev1/secret" not in seen, seen)
r.check("acl claim: publish users/%u allowed", "users/alice" in seen, seen)
r.check("acl claim: publish users/bob denied", "users/bob" not in seen, seen)
r.check("acl claim: publish news/x denied (subscribe-only rule)", "news/x" not in seen, seen)
stop(c)
stop(o)
# EMQX's qos and retain conditions in a claim: QoS 2 and retained
# publishes on q/# refused, QoS 0 and 1 ones allowed
qr = [{"permission": "deny", "action": "publish", "topic": "q/#", "qos": 2},
      {"permission": "deny", "action": "publish", "topic": "q/#", "retain": True},
      {"permission": "allow", "action": "all", "topic": "q/#", "qos": [0, 1, 2]}]
c, rc = connect(p, token(acl=qr), v5=True, cid="qr1")
seen = []
o, orc = connect(p, token(sub="observer", acl=[{"permission": "allow", "action": "all",
                                                 "topic": "#"}]), v5=True, cid="obs2")
o.on_message = lambda cl, ud, msg: seen.append(msg.payload.decode())
o.subscribe("q/#", 2)
time.sleep(0.3)
for pl, q, rt in (("q0", 0, False), ("q2", 2, False), ("q1r", 1, True), ("q1", 1, False)):
    c.publish("q/t", pl.encode(), qos=q, retain=rt)
time.sleep(0.8)
r.check("acl claim with qos/retain conditions: QoS 0 and 1 delivered, QoS 2 and retained not",
        sorted(seen) == ["q0", "q1"], seen)
stop(c)
stop(o)
bad = [{"permission": "allow", "action": "publish", "topic": "a/#", "clientid": "x"}]
r.check("acl claim with a key midge does not apply (clientid): refused",
        *refused(p, token(acl=bad), v5=True))
bad = [{"permission": "allow", "action": "publish", "topic": "a/#", "qos": [3]}]
r.check("acl claim with a qos that is no QoS: refused", *refused(p, token(acl=bad), v5=True))
r.check("acl claim that is not a list: refused",
        *refused(p, token(acl={"pub": ["a"]}), v5=True))
b.stop()

# use_username_as_clientid: the token's user name becomes the client id;
# its rules must still apply (kept under that id)
b = brokerctl.start("listener {port} 127.0.0.1\nallow_anonymous false\n"
                    "use_username_as_clientid true\nmidge_jwt_key_file %s\n" % path("rsa.pub"))
c, rc = connect(b.port, token(sub="zed", iss=None, aud=None,
                              acl=[{"permission": "allow", "action": "all", "topic": "z/%u/#"}]),
                v5=True, cid="whatever")
subs.clear()
r.check("use_username_as_clientid: connected with the token's name", rc == 0, rc)
c.on_subscribe = lambda cl, ud, mid, rcs, props=None: subs.__setitem__(
    mid, [x.value if hasattr(x, "value") else x for x in rcs])
r.check("use_username_as_clientid: the acl claim still applies (allowed)",
        (sub("z/zed/#") or 0) < 0x80, subs)
r.check("use_username_as_clientid: the acl claim still applies (denied)",
        sub("other/#") == 0x87, subs)
stop(c)
b.stop()

# ---- expiry -----------------------------------------------------------------------
b = brokerctl.start(BASE + "midge_jwt_key_file %s\n" % path("rsa.pub"))
c, rc = connect(b.port, token(life=3), v5=True, cid="short")
t0 = time.time()
for _ in range(80):
    if "disc" in c._got:  # noqa: SLF001
        break
    time.sleep(0.1)
d = c._got.get("disc")  # noqa: SLF001
r.check("v5: token expiry disconnects with 0xA0 (Maximum connect time)", rc == 0 and d == 0xA0,
        (rc, d))
r.check("... about when exp comes", 1.0 < c._got.get("disc_at", 0) - t0 + 0.5 < 5.5,  # noqa: SLF001
        c._got.get("disc_at", 0) - t0)  # noqa: SLF001
stop(c)
c, rc = connect(b.port, token(life=2), v5=False, cid="short311")
for _ in range(60):
    if "disc" in c._got:  # noqa: SLF001
        break
    time.sleep(0.1)
r.check("3.1.1: token expiry closes the connection", rc == 0 and "disc" in c._got,  # noqa: SLF001
        c._got)  # noqa: SLF001
stop(c)
b.stop()
b = brokerctl.start(BASE + "midge_jwt_key_file %s\nmidge_jwt_disconnect_on_expiry false\n"
                    % path("rsa.pub"))
c, rc = connect(b.port, token(life=2), v5=True, cid="stays")
time.sleep(3.5)
r.check("midge_jwt_disconnect_on_expiry false: the client stays", rc == 0 and
        "disc" not in c._got, c._got)  # noqa: SLF001
stop(c)
b.stop()

# ---- the chain ---------------------------------------------------------------------
pw = path("passwd")
subprocess.run(["mosquitto_passwd", "-c", "-b", pw, "carol", "cpw"], check=True, timeout=20,
               capture_output=True)
os.chmod(pw, 0o644)
b = brokerctl.start(BASE + "password_file %s\nmidge_jwt_key_file %s\n"
                    "midge_auth_chain passwd,jwt\n" % (pw, path("rsa.pub")))
r.check("chain: a password-file user with the right password", *accepted(b.port, "cpw",
                                                                          user="carol"))
r.check("chain: a password-file user with a wrong password refused (definite)",
        *refused(b.port, "nope", user="carol"))
r.check("chain: a user the file does not know goes on to the token",
        *accepted(b.port, token(), user="dave"))
r.check("chain: a user the file knows with a token: the file answers first",
        *refused(b.port, token(), user="carol"))
r.check("chain: unknown user, no token: refused", *refused(b.port, "cpw", user="dave"))
b.stop()


def start_fails(text, says):
    p = write("bad.conf", text)
    rc, out, err = run([midge, "-c", p], timeout=10)
    return rc != 0 and says in err, (rc, err[-600:])


r.check("chain naming an unknown source stops start-up with file:line",
        *start_fails("listener 1883\nmidge_auth_chain passwd,ldap\n", "bad.conf:2:"))
r.check("chain naming jwt without a key stops start-up",
        *start_fails("listener 1883\npassword_file %s\nmidge_auth_chain jwt,passwd\n" % pw,
                     "bad.conf:3: midge_auth_chain names jwt, which is not configured"))
r.check("chain naming zmq without midge_auth_endpoint stops start-up",
        *start_fails("listener 1883\nmidge_auth_chain zmq\n", "zmq, which is not configured"))
r.check("midge_jwt_algorithms none stops start-up",
        *start_fails("listener 1883\nmidge_jwt_key_file %s\nmidge_jwt_algorithms none\n"
                     % path("rsa.pub"), "bad.conf:3: midge_jwt_algorithms: refused algorithm"))
r.check("JWT options without a key stop start-up",
        *start_fails("listener 1883\nmidge_jwt_audience midge\n", "bad.conf:2: midge_jwt_"))
r.check("an unreadable key file stops start-up",
        *start_fails("listener 1883\nmidge_jwt_key_file %s\n" % path("missing.pem"),
                     "missing.pem"))
r.check("a JWKS without usable keys stops start-up",
        *start_fails("listener 1883\nmidge_jwt_jwks_file %s\n" % write("empty.json", '{"keys":[]}'),
                     "no usable signature key"))

r.finish()

#!/usr/bin/python3
"""test_http_auth.py - who may use midge's HTTP server: HTTP Basic against a
mosquitto_passwd file (admins named by midge_http_admin), bearer tokens with
roles read and admin, 401 with a challenge, rate-limited failures (429),
start-up refusing what it cannot honour (file:line), and https with a
certificate made by certtool.

Prints "N passed, M failed" last.
"""
import os
import ssl
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brokerctl  # noqa: E402
import httpctl  # noqa: E402

R = brokerctl.Results("http auth")
brokerctl.deadline(R, 100)
ADMIN_TOKEN = "admin-token-aaaaaaaaaaaaaaaa"
READ_TOKEN = "read-token-bbbbbbbbbbbbbbbbbb"


def test_roles():
    b = httpctl.start("midge_http_password_file {files}/passwd\nmidge_http_admin boss\n"
                      "midge_http_token_file {files}/tokens\n",
                      users={"boss": "boss-pw", "viewer": "viewer-pw", "mallory": "m-pw"},
                      tokens={ADMIN_TOKEN: "admin", READ_TOKEN: "read"})
    st, h, body = httpctl.request(b, "GET", "/api/v1/broker")
    R.check("no credentials: 401", st == 401)
    R.check("401 carries a Basic challenge", 'Basic realm="midge"' in h.get("www-authenticate", ""),
            h)
    R.check("401 body is a JSON error", (httpctl.json_of(body) or {}).get("code") == "unauthorized")
    st, _, _ = httpctl.request(b, "GET", "/api/v1/broker", user="viewer", password="viewer-pw")
    R.check("Basic read user reads", st == 200)
    st, _, _ = httpctl.request(b, "POST", "/api/v1/publish", user="viewer", password="viewer-pw",
                               body={"topic": "x"})
    R.check("Basic read user cannot publish (403)", st == 403)
    st, _, _ = httpctl.request(b, "POST", "/api/v1/publish", user="boss", password="boss-pw",
                               body={"topic": "x"})
    R.check("midge_http_admin user publishes", st == 200)
    st, _, _ = httpctl.request(b, "GET", "/metrics", token=READ_TOKEN)
    R.check("read token reads /metrics", st == 200)
    st, _, _ = httpctl.request(b, "POST", "/api/v1/reload", token=READ_TOKEN)
    R.check("read token cannot reload (403)", st == 403)
    st, _, _ = httpctl.request(b, "POST", "/api/v1/publish", token=ADMIN_TOKEN, body={"topic": "x"})
    R.check("admin token publishes", st == 200)
    st, _, _ = httpctl.request(b, "GET", "/metrics", token="wrong-token-cccccccccccccc")
    R.check("unknown token: 401", st == 401)
    st, _, _ = httpctl.request(b, "GET", "/metrics", user="boss", password="nope")
    R.check("wrong password: 401", st == 401)
    # failures from one address are limited: after 5, even the right
    # password of a user not yet verified gets 429 unchecked
    codes = [httpctl.request(b, "GET", "/metrics", user="mallory", password="guess%d" % i)[0]
             for i in range(6)]
    R.check("failures are 401 until the limit, then 429", codes[:3] == [401] * 3 and codes[-1] == 429,
            codes)
    st, h, _ = httpctl.request(b, "GET", "/metrics", user="mallory", password="m-pw")
    R.check("throttled address: 429 with Retry-After", st == 429 and "retry-after" in h, st)
    st, _, _ = httpctl.request(b, "GET", "/metrics", user="boss", password="boss-pw")
    R.check("a verified login keeps working meanwhile", st == 200)
    st, text = httpctl.metrics(b, token=ADMIN_TOKEN)
    R.check("auth failures counted",
            (httpctl.metric_value(text, "midge_http_auth_failures_total") or 0) >= 5)
    R.check("throttled logins counted",
            (httpctl.metric_value(text, "midge_http_auth_throttled_total") or 0) >= 1)
    R.check("failed login logged", "failed login from 127.0.0.1" in b.log_text())
    b.stop()


def expect_refused(config, what, needle, **kw):
    try:
        b = httpctl.start(config, **kw)
    except RuntimeError as e:
        R.check(what, needle in str(e), str(e)[-800:])
        return
    R.check(what, False, "the broker started")
    b.stop()


def test_fail_closed():
    expect_refused("midge_http_listener {port2} 0.0.0.0\n",
                   "off-loopback listener without credentials refused at start-up",
                   "broker.conf:2: midge_http_listener on 0.0.0.0 without")
    expect_refused("midge_http_token_file {files}/tokens\n", "short token refused with file:line",
                   "tokens:2: tokens need at least 16", tokens={"short": "admin"})
    expect_refused("midge_http_token_file {files}/tokens\n", "unknown role refused",
                   "role must be read or admin", tokens={"x" * 20: "root"})
    expect_refused("midge_http_admin boss\n", "midge_http_admin without a password file refused",
                   "midge_http_admin names users")
    expect_refused("midge_http_certfile /nonexistent/cert.pem\n", "certfile without keyfile refused",
                   "needs both midge_http_certfile and midge_http_keyfile")
    b = httpctl.start("")
    st, _, _ = httpctl.request(b, "GET", "/api/v1/clients")
    R.check("no credentials configured: read endpoints open on loopback", st == 200)
    st, _, body = httpctl.request(b, "DELETE", "/api/v1/clients/x")
    R.check("...admin endpoints refused (403)", st == 403 and b"midge_http_password_file" in body)
    R.check("start-up says so", "only the read endpoints are served" in b.log_text())
    b.stop()


def certtool(d, args, template):
    tpl = os.path.join(d, "tpl-%d.cfg" % abs(hash(template)))
    with open(tpl, "w") as f:
        f.write(template)
    subprocess.run(["certtool"] + args + ["--template", tpl], check=True, capture_output=True,
                   timeout=60)


def test_https():
    d = tempfile.mkdtemp(prefix="midge-https-")
    f = {k: os.path.join(d, k + ".pem") for k in ("ca-key", "ca", "key", "cert")}
    for k in ("ca-key", "key"):
        subprocess.run(["certtool", "--generate-privkey", "--key-type", "ecdsa", "--outfile", f[k]],
                       check=True, capture_output=True, timeout=60)
    certtool(d, ["--generate-self-signed", "--load-privkey", f["ca-key"], "--outfile", f["ca"]],
             'cn = "midge http test CA"\nca\ncert_signing_key\nexpiration_days = 2\n')
    certtool(d, ["--generate-certificate", "--load-privkey", f["key"], "--load-ca-certificate",
                 f["ca"], "--load-ca-privkey", f["ca-key"], "--outfile", f["cert"]],
             'cn = "localhost"\nip_address = "127.0.0.1"\ntls_www_server\nsigning_key\n'
             'encryption_key\nexpiration_days = 2\n')
    b = httpctl.start("midge_http_certfile %s\nmidge_http_keyfile %s\n"
                      "midge_http_token_file {files}/tokens\n" % (f["cert"], f["key"]),
                      tokens={ADMIN_TOKEN: "admin"})
    ctx = ssl.create_default_context(cafile=f["ca"])
    st, _, body = httpctl.request(b, "GET", "/api/v1/broker", token=ADMIN_TOKEN, tls_context=ctx)
    R.check("https with a certtool certificate verifies and answers",
            st == 200 and httpctl.json_of(body)["http"]["tls"] is True, body[:200])
    other = ssl.create_default_context()  # the system CAs do not know ours
    try:
        httpctl.request(b, "GET", "/api/v1/broker", token=ADMIN_TOKEN, tls_context=other)
        R.check("an unknown CA is refused by the client", False)
    except ssl.SSLError:
        R.check("an unknown CA is refused by the client", True)
    try:
        st, _, _ = httpctl.request(b, "GET", "/api/v1/broker", token=ADMIN_TOKEN, timeout=3)
        R.check("plain http to the https port gets no answer", st != 200)
    except Exception:
        R.check("plain http to the https port gets no answer", True)
    R.check("log says https", "https listening on 127.0.0.1" in b.log_text())
    b.stop()


httpctl.run_tests(R, [test_roles, test_fail_closed, test_https])
R.finish()

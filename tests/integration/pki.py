"""pki - certificates and keys for TLS tests, made with certtool.

    import pki
    f = pki.make(d, "good")         # CA, server cert (127.0.0.1/localhost), client cert
    f["ca"], f["server"], f["server-key"], f["client"], f["client-key"]
    pki.client_cert(d, f, "name", subject='cn = "x"\\norganization = "y"\\n')
    pki.revoke(d, f, [cert_path, ...])  # a CRL signed by the CA, its path
"""

import os
import subprocess


def certtool(d, args, template=None):
    cmd = ["certtool"] + args
    if template is not None:
        tpl = os.path.join(d, "tpl-%d.cfg" % abs(hash((template, tuple(args)))))
        with open(tpl, "w") as f:
            f.write(template)
        cmd += ["--template", tpl]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise RuntimeError("certtool %s: %s" % (args, p.stderr))
    return p.stdout


def _key(path):
    subprocess.run(["certtool", "--generate-privkey", "--key-type", "ecdsa", "--outfile", path],
                   check=True, capture_output=True, timeout=60)


def client_cert(d, f, name, subject=None):
    """A client certificate signed by f's CA: subject is a certtool
    template's naming lines (default cn = "<name>"). Returns (cert, key)."""
    cert = os.path.join(d, "%s.pem" % name)
    key = os.path.join(d, "%s-key.pem" % name)
    _key(key)
    certtool(d, ["--generate-certificate", "--load-privkey", key, "--load-ca-certificate", f["ca"],
                 "--load-ca-privkey", f["ca-key"], "--outfile", cert],
             (subject or 'cn = "%s"\n' % name) + "tls_www_client\nsigning_key\nexpiration_days = 2\n")
    os.chmod(cert, 0o644)
    os.chmod(key, 0o644)
    return cert, key


def make(d, prefix):
    """CA, server certificate for 127.0.0.1/localhost, client certificate
    with CN <prefix>-client. Returns a dict of paths."""
    f = {k: os.path.join(d, "%s-%s.pem" % (prefix, k)) for k in
         ("ca-key", "ca", "server-key", "server")}
    for k in ("ca-key", "server-key"):
        _key(f[k])
    certtool(d, ["--generate-self-signed", "--load-privkey", f["ca-key"], "--outfile", f["ca"]],
             'cn = "%s test CA"\nca\ncert_signing_key\ncrl_signing_key\nexpiration_days = 2\n'
             % prefix)
    certtool(d, ["--generate-certificate", "--load-privkey", f["server-key"], "--load-ca-certificate",
                 f["ca"], "--load-ca-privkey", f["ca-key"], "--outfile", f["server"]],
             'cn = "localhost"\ndns_name = "localhost"\nip_address = "127.0.0.1"\ntls_www_server\n'
             'signing_key\nencryption_key\nexpiration_days = 2\n')
    f["client"], f["client-key"] = client_cert(d, f, "%s-client" % prefix)
    # A broker started as root may drop to another user (Mosquitto does).
    os.chmod(d, 0o755)
    for path in f.values():
        os.chmod(path, 0o644)
    return f


def revoke(d, f, certs, name="crl"):
    """A CRL signed by f's CA revoking certs (paths). Returns its path."""
    crl = os.path.join(d, "%s.pem" % name)
    args = ["--generate-crl", "--load-ca-privkey", f["ca-key"], "--load-ca-certificate", f["ca"],
            "--outfile", crl]
    if certs:
        bundle = os.path.join(d, "%s-revoked.pem" % name)
        with open(bundle, "w") as out:
            for c in certs:
                out.write(open(c).read())
        args += ["--load-certificate", bundle]
    certtool(d, args, "crl_next_update = 2\ncrl_number = 1\n")
    os.chmod(crl, 0o644)
    return crl

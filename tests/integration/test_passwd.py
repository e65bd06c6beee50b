"""`midge passwd` as a user meets it, and the password files it and
mosquitto_passwd write, checked by the real broker: -c/-b write argon2id
(Mosquitto 2.1's format) that midge accepts; without -b the password is
asked twice without echo (a pseudo-terminal), or read from a pipe; -D
deletes, -U hashes plain-text passwords, comments survive, the mode of the
file is kept (0600 for a new one); mosquitto_passwd 2.0's $7$ and $6$
files are accepted; a $7$ file midge passwd writes is accepted by
Mosquitto 2.0 itself; bad flags and names are refused."""

import os
import pty
import select
import signal
import stat
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import brokerctl  # noqa: E402
from brokerctl import run  # noqa: E402

r = brokerctl.Results("passwd")
brokerctl.deadline(r, 170)
midge = brokerctl.midge_binary()
tmp = os.path.join(brokerctl.builddir(), "tests", "integration", "passwd-%d" % os.getpid())
os.makedirs(tmp, exist_ok=True)


def path(name):
    return os.path.join(tmp, name)


def mpasswd(*args, stdin=None):
    p = subprocess.run([midge, "passwd"] + list(args), input=stdin, capture_output=True,
                       text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def connects(port, user, pw, version="mqttv311"):
    """mosquitto_pub's exit status: 0 connected, else the CONNACK code."""
    cmd = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-t", "t", "-m", "m",
           "-V", version, "-i", "pw-test"]
    if user is not None:
        cmd += ["-u", user]
    if pw is not None:
        cmd += ["-P", pw]
    return run(cmd, timeout=30)[0]


def users_of(file):
    with open(file) as f:
        return [l.split(":")[0] for l in f if l.strip() and not l.startswith("#")]


def broker_with(file):
    return brokerctl.start("listener {port} 127.0.0.1\nallow_anonymous false\n"
                           "password_file %s\n" % file)


# -c -b: one user, argon2id as Mosquitto 2.1 writes it, mode 0600
pw = path("pw")
rc, out, err = mpasswd("-c", "-b", pw, "alice", "s3cret")
r.check("-c -b exits 0", rc == 0, err)
line = open(pw).read()
r.check("argon2id with Mosquitto 2.1's parameters",
        line.startswith("alice:$argon2id$v=19$m=47104,t=1,p=1$"), line)
r.check("a new file is 0600", stat.S_IMODE(os.stat(pw).st_mode) == 0o600,
        oct(os.stat(pw).st_mode))

# without -b on a terminal: asked twice, nothing echoed
pid, fd = pty.fork()
if pid == 0:
    os.execv(midge, [midge, "passwd", pw, "bob"])
seen = b""
typed = 0
end = time.time() + 60
status = None
while time.time() < end:
    rl, _, _ = select.select([fd], [], [], 0.5)
    if rl:
        try:
            chunk = os.read(fd, 1024)
        except OSError:
            chunk = b""
        if not chunk:
            break
        seen += chunk
        if typed == 0 and b"Password: " in seen:
            os.write(fd, b"hunter22\n")
            typed = 1
        elif typed == 1 and b"Reenter password: " in seen:
            os.write(fd, b"hunter22\n")
            typed = 2
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        break
if status is None or not os.WIFEXITED(status):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    os.waitpid(pid, 0)
os.close(fd)
r.check("terminal: asked twice", b"Password: " in seen and b"Reenter password: " in seen,
        repr(seen))
r.check("terminal: the password is not echoed", b"hunter22" not in seen, repr(seen))
r.check("terminal: user added", users_of(pw) == ["alice", "bob"], repr(users_of(pw)))

# from a pipe (as mosquitto_passwd reads it in scripts), sha512-pbkdf2
rc, out, err = mpasswd("-H", "sha512-pbkdf2", pw, "carol", stdin="c4rol\nc4rol\n")
r.check("pipe: carol added ($7$)", rc == 0 and "Adding password for user carol" in out and
        ":$7$210000$" in open(pw).read(), out + err)
rc, out, err = mpasswd(pw, "dave", stdin="one\ntwo\n")
r.check("pipe: passwords that differ are refused, file unchanged",
        rc == 1 and "do not match" in err and "dave" not in users_of(pw), err)

# the broker accepts what midge passwd wrote, and nothing else
with open(pw, "a") as f:
    f.write("# a comment the tools keep\n")
b = broker_with(pw)
P = b.port
r.check("broker: alice (argon2id, -b) accepted", connects(P, "alice", "s3cret") == 0)
r.check("broker: bob (argon2id, terminal) accepted, v5", connects(P, "bob", "hunter22",
                                                                   "mqttv5") == 0)
r.check("broker: carol ($7$) accepted", connects(P, "carol", "c4rol") == 0)
r.check("broker: wrong password refused (4)", connects(P, "alice", "s3creT") == 4)
r.check("broker: unknown user refused (4)", connects(P, "mallory", "s3cret") == 4)
r.check("broker: no password refused (4)", connects(P, "alice", None) == 4)

# -b on an existing user replaces its password; -D deletes; SIGHUP reloads
os.chmod(pw, 0o640)
rc, out, err = mpasswd("-b", pw, "alice", "n3w")
r.check("-b updates alice", rc == 0 and "Updating password for user alice" in out, out + err)
rc, out, err = mpasswd("-D", pw, "bob")
r.check("-D deletes bob", rc == 0 and users_of(pw) == ["alice", "carol"], err)
r.check("the file's mode is kept", stat.S_IMODE(os.stat(pw).st_mode) == 0o640,
        oct(os.stat(pw).st_mode))
r.check("comments are kept", "# a comment the tools keep" in open(pw).read())
rc, out, err = mpasswd("-D", pw, "bob")
r.check("-D of a missing user: warning, exit 1", rc == 1 and "not found" in err, err)
b.signal(signal.SIGHUP)
time.sleep(1.0)
r.check("after reload: alice's new password", connects(P, "alice", "n3w") == 0)
r.check("after reload: alice's old password refused", connects(P, "alice", "s3cret") == 4)
r.check("after reload: bob refused", connects(P, "bob", "hunter22") == 4)
b.stop()

# -U: plain text to hashes; hashed lines stay as they were
plain = path("plain")
with open(plain, "w") as f:
    f.write("# users\nerin:pl4in\n" + open(pw).read().splitlines()[-2] + "\nfrank : x y\n")
before = open(plain).read()
rc, out, err = mpasswd("-U", plain)
after = open(plain).read()
r.check("-U exits 0", rc == 0, err)
r.check("-U hashes plain passwords", "pl4in" not in after and
        after.count("$argon2id$") == 2, after)
r.check("-U keeps hashed lines", before.splitlines()[2] in after.splitlines(), after)
b = broker_with(plain)
r.check("-U file: erin accepted", connects(b.port, "erin", "pl4in") == 0)
r.check("-U file: frank's password with a blank inside", connects(b.port, "frank", "x y") == 0)
b.stop()

# files mosquitto_passwd (2.0) writes: $7$ and $6$
mq = path("mosquitto")
subprocess.run(["mosquitto_passwd", "-c", "-b", mq, "gina", "g1na"], check=True, timeout=30)
subprocess.run(["mosquitto_passwd", "-H", "sha512", "-b", mq, "hank", "h4nk"], check=True,
               timeout=30)
text = open(mq).read()
r.check("mosquitto_passwd wrote $7$ and $6$", ":$7$" in text and ":$6$" in text, text)
b = broker_with(mq)
r.check("mosquitto_passwd $7$: accepted", connects(b.port, "gina", "g1na") == 0)
r.check("mosquitto_passwd $6$: accepted", connects(b.port, "hank", "h4nk") == 0)
r.check("mosquitto_passwd $7$: wrong password refused", connects(b.port, "gina", "x") == 4)
b.stop()

# the other way round: Mosquitto 2.0 accepts midge passwd's $7$ (12-byte salt)
if os.path.exists("/usr/sbin/mosquitto"):
    back = path("for-mosquitto")
    rc, _, err = mpasswd("-c", "-H", "sha512-pbkdf2", "-b", back, "ivan", "1van")
    os.chmod(back, 0o644)
    os.chmod(tmp, 0o755)
    m = brokerctl.start_reference("listener {port} 127.0.0.1\nallow_anonymous false\n"
                                  "password_file %s\n" % back)
    r.check("Mosquitto 2.0 accepts midge passwd's $7$", connects(m.port, "ivan", "1van") == 0)
    r.check("Mosquitto 2.0 refuses a wrong password for it",
            connects(m.port, "ivan", "x") not in (0, -1))
    m.stop()

# refusals, as mosquitto_passwd words them
rc, _, err = mpasswd("-c", "-D", pw, "x")
r.check("-c with -D refused", rc == 1 and "cannot be used together" in err, err)
rc, _, err = mpasswd("-b", pw, "a:b", "pw")
r.check("a user name with ':' refused", rc == 1 and "':'" in err, err)
rc, _, err = mpasswd("-b", pw, "a\x01b", "pw")
r.check("a user name with a control character refused", rc == 1 and "control" in err, err)
rc, _, err = mpasswd("-H", "md5", "-b", pw, "x", "y")
r.check("an unknown hash refused", rc == 1 and "md5" in err, err)
rc, _, err = mpasswd("-b", path("missing"), "x", "y")
r.check("a missing file without -c refused", rc == 1 and "cannot open" in err, err)
rc, out, _ = mpasswd("-h")
r.check("-h prints usage", rc == 0 and "-U" in out and "-H" in out, out)

for name in os.listdir(tmp):
    os.unlink(os.path.join(tmp, name))
os.rmdir(tmp)
r.finish()

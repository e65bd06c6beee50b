"""midge_hooks - what every midge event example needs: the default event
endpoint, the shared command-line options and a SUB socket on the broker's
XPUB endpoint (plain or CurveZMQ). The examples import it from their own
folder, so they still run by path (./hooks_print.py).

Needs pyzmq (Debian: python3-zmq).
"""
import sys

import zmq

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5883"


def add_connection_args(ap):
    """The -e/--endpoint and --server-key options every example takes."""
    ap.add_argument("-e", "--endpoint", default=DEFAULT_ENDPOINT)
    ap.add_argument("--server-key", help="the broker's CurveZMQ public key (Z85)")


def connect(endpoint, prefixes, server_key=None):
    """A SUB socket subscribed to prefixes ("" = everything)."""
    sock = zmq.Context.instance().socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    if server_key:
        # CurveZMQ: the broker's public key, and a throwaway key pair of ours.
        public, secret = zmq.curve_keypair()
        sock.curve_serverkey = server_key.encode()
        sock.curve_publickey = public
        sock.curve_secretkey = secret
    for p in prefixes or [""]:
        sock.setsockopt(zmq.SUBSCRIBE, p.encode())
    sock.connect(endpoint)
    return sock


def run(main):
    """Exits with main()'s status; Ctrl-C is a normal way to stop."""
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(0)

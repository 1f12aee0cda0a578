#!/usr/bin/python3
# Test support: one receiving MX host of the delivery world (tests/support/smtp_mx.hpp).
# A real SMTP server (aiosmtpd) on ADDRESS:PORT that offers STARTTLS with the given certificate
# (or no STARTTLS at all with --no-tls) and writes every message it accepts to
# OUT/<pid>-<n>.eml (a restarted MX keeps what it received before), preceded by one line saying
# how it came in, so that a test can see which MX host got a message and whether over TLS:
#   X-Test-MX: host=<name>; tls=<version or none>; rcpt=<a>,<b>
# Run with Debian's /usr/bin/python3 (python3-aiosmtpd). Stops on SIGTERM.
import argparse
import os
import signal
import ssl
import sys
import threading

from aiosmtpd.controller import Controller


class Recorder:
    def __init__(self, name, out):
        self.name = name
        self.out = out
        self.count = 0
        self.lock = threading.Lock()

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        # No AUTH line at all (aiosmtpd offers an empty "AUTH" after STARTTLS otherwise):
        # Sendmail sends AUTH=<> when AUTH is offered, and aiosmtpd then refuses MAIL FROM.
        session.host_name = hostname
        return [r for r in responses if not r.startswith("250-AUTH")]

    async def handle_DATA(self, server, session, envelope):
        tls = "none"
        if session.ssl is not None:
            obj = session.ssl.get("ssl_object")
            tls = obj.version() if obj is not None else "yes"
        first = "X-Test-MX: host=%s; tls=%s; rcpt=%s\r\n" % (self.name, tls, ",".join(envelope.rcpt_tos))
        data = envelope.original_content or envelope.content
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogateescape")
        with self.lock:
            self.count += 1
            n = self.count
        # Written under a temporary name and renamed: a reader never sees half a message.
        stem = "%d-%d" % (os.getpid(), n)
        tmp = os.path.join(self.out, "." + stem + ".tmp")
        with open(tmp, "wb") as f:
            f.write(first.encode() + data)
        os.rename(tmp, os.path.join(self.out, stem + ".eml"))
        return "250 2.0.0 Ok: queued as %s-%d" % (self.name, n)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--address", required=True)
    p.add_argument("--port", type=int, default=25)
    p.add_argument("--name", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--no-tls", action="store_true")
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    kwargs = {}
    if not a.no_tls:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(a.cert, a.key)
        kwargs = {"tls_context": ctx, "require_starttls": False}
    controller = Controller(Recorder(a.name, a.out), hostname=a.address, port=a.port,
                            server_hostname=a.name, ident="test-mx",
                            auth_exclude_mechanism=["LOGIN", "PLAIN"], **kwargs)
    controller.start()
    print("ready %s %s:%d tls=%s" % (a.name, a.address, a.port, "no" if a.no_tls else "yes"), flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.wait(3600):
        pass
    controller.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

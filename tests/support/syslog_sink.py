#!/usr/bin/python3
# Test support: a syslog daemon for one program (tests/support/syslog_sink.hpp). Receives
# syslog(3) datagrams on a unix datagram socket (what glibc sends to /dev/log:
# "<PRI>Mmm dd hh:mm:ss TAG[PID]: MESSAGE") and appends each as one line to OUT in rsyslog's
# traditional file format, as Debian 12's rsyslog writes /var/log/mail.log:
#   Mmm dd hh:mm:ss HOST TAG[PID]: MESSAGE
# Prints "ready" once bound. Stops on SIGTERM.
import argparse
import os
import re
import signal
import socket
import sys

PRI = re.compile(rb"^<(\d{1,3})>")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--socket", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--host", required=True, help="the host name written in each line")
    a = p.parse_args()
    try:
        os.unlink(a.socket)
    except FileNotFoundError:
        pass
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(a.socket)
    os.chmod(a.socket, 0o666)  # the MTA's processes may run as other users
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    out = open(a.out, "ab", buffering=0)
    print("ready %s" % a.socket, flush=True)
    host = a.host.encode()
    while True:
        data = s.recv(65536)
        m = PRI.match(data)
        if m:
            data = data[m.end():]
        data = data.rstrip(b"\n\0")
        # "Mmm dd hh:mm:ss " then the tag: the host name goes between them.
        if len(data) > 16 and data[15:16] == b" ":
            line = data[:15] + b" " + host + b" " + data[16:]
        else:
            line = data
        out.write(line.replace(b"\n", b" ") + b"\n")


if __name__ == "__main__":
    sys.exit(main())

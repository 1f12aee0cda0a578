#!/usr/bin/env python3
"""An HTTPS endpoint for the sender's integration tests (tests/integration/reportd_send): a
real TLS server (python3's http.server with ssl) on ADDRESS and a free port, that logs every
request to OUT/requests.log ("<n> <method> <path> <status>") and stores each POST it accepts
(status 2xx) as OUT/<n>.body and its Content-Type as OUT/<n>.type. The reply status is read
from OUT/status (default 200) at each request. Prints "port <n>" once listening."""
import http.server
import os
import ssl
import sys
import threading

address, cert, key, out = sys.argv[1:5]
lock = threading.Lock()
count = [0]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or "0")
        body = self.rfile.read(length)
        try:
            with open(os.path.join(out, "status")) as f:
                status = int(f.read().strip() or "200")
        except (OSError, ValueError):
            status = 200
        with lock:
            n = count[0]
            count[0] += 1
            if 200 <= status < 300:
                with open(os.path.join(out, "%d.type.tmp" % n), "w") as f:
                    f.write(self.headers.get("Content-Type") or "")
                os.rename(os.path.join(out, "%d.type.tmp" % n), os.path.join(out, "%d.type" % n))
                with open(os.path.join(out, "%d.body.tmp" % n), "wb") as f:
                    f.write(body)
                os.rename(os.path.join(out, "%d.body.tmp" % n), os.path.join(out, "%d.body" % n))
            with open(os.path.join(out, "requests.log"), "a") as f:
                f.write("%d POST %s %d\n" % (n, self.path, status))
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()


server = http.server.ThreadingHTTPServer((address, 0), Handler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
server.socket = ctx.wrap_socket(server.socket, server_side=True)
print("port %d" % server.server_address[1], flush=True)
server.serve_forever()

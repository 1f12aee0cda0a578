#!/usr/bin/python3
# Test support: an HTTPS endpoint that keeps what is POSTed to it (tests/support/https_sink.hpp),
# e.g. the https: rua of a TLS-RPT record (RFC 8460 section 5.2: a POST of
# application/tlsrpt+gzip). A real HTTPS server (python3's http.server with ssl) on
# ADDRESS:PORT with the given certificate; every POST or PUT is written to OUT/<n>.http as
#   <request line>\r\n<header lines>\r\n\r\n<body>
# (written under a temporary name and renamed: a reader never sees half a request). The reply
# status is 200 unless the file STATUS_FILE holds another code (e.g. 503, to test retries).
# Chunked request bodies are decoded. Prints "ready" once listening. Stops on SIGTERM.
import argparse
import http.server
import os
import signal
import ssl
import sys
import threading


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--address", required=True)
    p.add_argument("--port", type=int, default=443)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--status-file", required=True)
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    lock = threading.Lock()
    counter = [0]

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            sys.stdout.write("%s %s\n" % (self.address_string(), fmt % args))
            sys.stdout.flush()

        def status(self):
            try:
                with open(a.status_file) as f:
                    return int(f.read().strip() or "200")
            except (OSError, ValueError):
                return 200

        def read_body(self):
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                body = b""
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        return body
                    body += self.rfile.read(size)
                    self.rfile.readline()
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def store(self):
            body = self.read_body()
            with lock:
                counter[0] += 1
                n = counter[0]
            stem = "%d-%d" % (os.getpid(), n)
            tmp = os.path.join(a.out, "." + stem + ".tmp")
            with open(tmp, "wb") as f:
                f.write(self.requestline.encode("latin-1") + b"\r\n")
                for k, v in self.headers.items():
                    f.write(("%s: %s\r\n" % (k, v)).encode("latin-1"))
                f.write(b"\r\n" + body)
            code = self.status()
            if code < 300:  # a refused request is not kept
                os.rename(tmp, os.path.join(a.out, stem + ".http"))
            else:
                os.unlink(tmp)
            reply = b"stored\n" if code < 300 else b"refused\n"
            self.send_response(code)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        do_POST = store
        do_PUT = store

        def do_GET(self):
            self.send_response(405)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = http.server.ThreadingHTTPServer((a.address, a.port), Handler)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(a.cert, a.key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print("ready %s:%d" % (a.address, a.port), flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())

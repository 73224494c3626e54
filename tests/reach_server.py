"""The test host's programs, run inside its network namespace (``tests/reach_host.py``) with the standard library
only: an HTTP server whose pages try what a hostile Service would, and a port that speaks no HTTP.

    python -m tests.reach_server HTTP_PORT GARBAGE_PORT

Pages of the HTTP server:

- ``/``: a small page with a relative and a root-relative link, and an image of the host's own;
- ``/echo``: the request's method, path and headers as JSON (what reached the Service);
- ``/hostile``: sets a cookie, runs a script that writes the console's cookie, storage and a global, and links
  away; ``/hostile.js`` is the same script as a file;
- ``/inside``: a redirect to ``/`` of the same host; ``/away``: a redirect to another host (a name that never
  resolves, so nothing could reach it even if it were followed);
- ``/slow``: answers only after ``SLOW_SECONDS``; ``/big``: a megabyte of text;
- anything else: 404.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SLOW_SECONDS = 12.0

# Everything the script tries against whichever origin it runs in; the browser test checks none of it happened in
# the console's.
HOSTILE_SCRIPT = """
document.cookie = "sessionid=stolen; path=/";
document.cookie = "hostile=1; path=/";
try { localStorage.setItem("hostile", "1"); } catch (e) {}
try { window.top.hostileRan = true; } catch (e) {}
try { window.parent.document.body.dataset.hostile = "1"; } catch (e) {}
window.hostileRan = true;
"""

PAGES = {
    "/": (
        "text/html; charset=utf-8",
        b"<!doctype html><title>Test host</title><h1>Hello from the test host</h1>"
        b'<p><a href="echo">relative link</a> <a href="/echo">root link</a></p>'
        b'<img alt="dot" src="/dot.svg">',
    ),
    "/dot.svg": (
        "image/svg+xml",
        b'<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><rect width="8" height="8"/></svg>',
    ),
    "/hostile": (
        "text/html; charset=utf-8",
        b"<!doctype html><title>Hostile</title><h1>Hostile page</h1>"
        b"<script>" + HOSTILE_SCRIPT.encode() + b"</script>"
        b'<script src="/hostile.js"></script>'
        b'<a id="away" href="http://other-host.invalid/">away</a>',
    ),
    "/hostile.js": ("text/javascript", HOSTILE_SCRIPT.encode()),
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # quiet: the test reads what it needs
        pass

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/echo":
            body = json.dumps({"method": self.command, "path": self.path, "headers": dict(self.headers.items())})
            self._answer(200, "application/json", body.encode())
        elif path == "/inside":
            self._answer(302, "text/plain", b"moved", Location="/")
        elif path == "/away":
            self._answer(302, "text/plain", b"moved", Location="http://other-host.invalid/landing")
        elif path == "/slow":
            time.sleep(SLOW_SECONDS)
            self._answer(200, "text/plain", b"late")
        elif path == "/big":
            self._answer(200, "text/plain", b"0123456789abcdef" * 65536)
        elif path in PAGES:
            content_type, body = PAGES[path]
            cookie = {"Set-Cookie": "sessionid=from-the-service; Path=/"} if path == "/hostile" else {}
            self._answer(200, content_type, body, **cookie)
        else:
            self._answer(404, "text/plain", b"not here")

    def _answer(self, status: int, content_type: str, body: bytes, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Test-Host", "reach")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


def speak_garbage(port: int) -> None:
    """Accept TCP connections and answer each with bytes that are not HTTP, then close it."""
    listener = socket.create_server(("0.0.0.0", port))
    while True:
        connection, _address = listener.accept()
        with connection:
            connection.settimeout(1.0)
            try:
                connection.recv(4096)
                connection.sendall(b"\x00\x01SSH-2.0-not-http\r\n\xff\xfe")
            except OSError:
                pass


def main() -> None:
    http_port, garbage_port = int(sys.argv[1]), int(sys.argv[2])
    threading.Thread(target=speak_garbage, args=(garbage_port,), daemon=True).start()
    server = ThreadingHTTPServer(("0.0.0.0", http_port), Handler)
    server.daemon_threads = True
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()

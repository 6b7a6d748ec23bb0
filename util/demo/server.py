"""The painting demo's web server: the standard library's threading HTTP server, a hand-written page.

Routes (JSON in and out unless said otherwise):

    GET  /                      the page (static/index.html, demo.js, demo.css under /static/)
    GET  /api/info              the model, canvas size, classes (value, name, colour), features, val picks
    GET  /api/val/<i>           val label map i: {'labels': base64}
    GET  /api/val/<i>.png       its thumbnail (image/png)
    GET  /api/queue?ticket=T    where request T is: {'state': 'running' | 'waiting' | 'unknown', 'ahead'}
    POST /api/upload_labels     body: the label PNG's bytes (header X-Filename) -> {'labels', 'notes'}
    POST /api/generate          {'width', 'height', 'labels', 'seed', 'class_seeds', 'style', 'ticket'}
    POST /api/label_png         {'width', 'height', 'labels'} -> image/png of the label values

Bad input answers 400 {'error': message} (the page shows the message); a body over
:data:`MAX_BODY_BYTES` 413. Each request has its own thread; generations queue in the engine.
"""
import http.server
import json
import logging
import os
import re
import socket
import urllib.parse

from util.demo.engine import MAX_FILE_BYTES, DemoInputError

logger = logging.getLogger(__name__)

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
STATIC_FILES = {"index.html": "text/html; charset=utf-8", "demo.js": "text/javascript; charset=utf-8",
                "demo.css": "text/css; charset=utf-8"}
MAX_BODY_BYTES = 2 * MAX_FILE_BYTES  # a request's JSON carries at most a label map and a style image (base64)
LOOPBACK = ("127.0.0.1", "localhost", "::1")


class DemoRequestHandler(http.server.BaseHTTPRequestHandler):
    """Routes of the demo; ``self.server.engine`` is the :class:`util.demo.engine.DemoEngine`."""

    server_version = "DAGANDemo"
    protocol_version = "HTTP/1.1"

    # ------------------------------------------------------------------ responses
    def send_body(self, status, body, content_type, extra_headers=()):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for key, value in extra_headers:
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_json(self, status, payload):
        self.send_body(status, json.dumps(payload).encode("utf-8"), "application/json")

    def send_error_json(self, status, message):
        self.send_json(status, {"error": message})

    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        logger.debug("%s %s", self.address_string(), format % args)

    # ------------------------------------------------------------------ dispatch
    def do_GET(self):  # noqa: N802 - http.server's name
        self.handle_safely(self.route_get)

    def do_POST(self):  # noqa: N802
        self.handle_safely(self.route_post)

    def handle_safely(self, route):
        try:
            route()
        except DemoInputError as err:
            self.send_error_json(400, str(err))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the page went away
        except Exception as err:  # a bug: the page gets a message, the log the traceback
            logger.exception("demo request %s %s failed", self.command, self.path)
            self.send_error_json(500, f"the server failed on this request ({type(err).__name__}: {err}); "
                                      "its log has the details")

    def route_get(self):
        engine = self.server.engine
        url = urllib.parse.urlsplit(self.path)
        path = url.path
        if path in ("/", "/index.html"):
            return self.send_static("index.html")
        if path.startswith("/static/"):
            return self.send_static(path[len("/static/"):])
        if path == "/api/info":
            return self.send_json(200, engine.info())
        if path == "/api/queue":
            ticket = urllib.parse.parse_qs(url.query).get("ticket", [None])[0]
            where = engine.queue.position(ticket)
            if where == "running":
                return self.send_json(200, {"state": "running", "ahead": 0})
            if where is None:
                return self.send_json(200, {"state": "unknown", "ahead": 0})
            return self.send_json(200, {"state": "waiting", "ahead": where})
        match = re.fullmatch(r"/api/val/(\d+)(\.png)?", path)
        if match:
            index = int(match.group(1))
            if match.group(2):
                return self.send_body(200, engine.val_thumbnail(index), "image/png")
            return self.send_json(200, {"labels": engine.encode_labels(engine.val_labels(index))})
        self.send_error_json(404, f"no such page: {path}")

    def route_post(self):
        engine = self.server.engine
        path = urllib.parse.urlsplit(self.path).path
        body = self.read_body()
        if body is None:
            return
        if path == "/api/upload_labels":
            name = os.path.basename(urllib.parse.unquote(self.headers.get("X-Filename", "upload.png")))
            return self.send_json(200, engine.decode_upload(body, name))
        if path not in ("/api/generate", "/api/label_png"):
            return self.send_error_json(404, f"no such action: {path}")
        try:
            payload = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise DemoInputError(f"the request is not JSON ({err})") from None
        if path == "/api/generate":
            return self.send_json(200, engine.generate(payload))
        png = engine.label_png(engine.decode_labels(payload))
        self.send_body(200, png, "image/png", [("Content-Disposition", 'attachment; filename="labels.png"')])

    def read_body(self):
        """The request body, or None after answering 411 / 413."""
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self.send_error_json(411, "the request has no Content-Length")
            return None
        length = int(length)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            self.send_error_json(413, f"the request has {length / 2**20:.1f} MB; at most "
                                      f"{MAX_BODY_BYTES // 2**20} MB")
            return None
        return self.rfile.read(length)

    def send_static(self, name):
        if name not in STATIC_FILES:
            return self.send_error_json(404, f"no such file: {name}")
        with open(os.path.join(STATIC_DIR, name), "rb") as f:
            self.send_body(200, f.read(), STATIC_FILES[name])


class DemoServer(http.server.ThreadingHTTPServer):
    """One engine, a thread per request; ``url`` is the address to open."""

    daemon_threads = True

    def __init__(self, engine, host="127.0.0.1", port=7860):
        self.engine = engine
        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__((host, port), DemoRequestHandler)

    @property
    def url(self):
        host, port = self.server_address[:2]
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
        if ":" in shown:
            shown = f"[{shown}]"
        return f"http://{shown}:{port}/"


def is_loopback(host):
    return host in LOOPBACK or host.startswith("127.")

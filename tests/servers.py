"""Real servers on loopback for delivery tests: an SMTP server (aiosmtpd) that keeps what it
receives and can be stopped and started again on the same port, and an HTTP server that keeps
the webhooks POSTed to it (and can answer with an error for a while)."""
from __future__ import annotations

import email
import email.policy
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SmtpServer:
    """aiosmtpd on 127.0.0.1:port; .messages holds email.message.EmailMessage objects."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.messages: list = []
        self._lock = threading.Lock()
        self._controller = None

    def start(self) -> "SmtpServer":
        server = self

        class Handler:
            async def handle_DATA(self, _server, _session, envelope):  # noqa: N802 - aiosmtpd's name
                msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
                with server._lock:
                    server.messages.append(msg)
                return "250 OK"

        self._controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def env(self) -> dict:
        return {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(self.port), "SMTP_FROM": "bi@example.com"}


class WebhookServer:
    """An HTTP server on 127.0.0.1 keeping (path, headers, JSON body) of each POST; answers
    `status` (200 unless set otherwise)."""

    def __init__(self):
        self.posts: list[tuple[str, dict, dict]] = []
        self.status = 200
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if server.status < 300:
                    server.posts.append((self.path, dict(self.headers), json.loads(body)))
                self.send_response(server.status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/hook"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def start(self) -> "WebhookServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

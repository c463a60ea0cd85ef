"""peers_auth - the real peers of the auth plugins' tests (test_auth.py), loopback only.

  TokenServer      an OAuth2 token endpoint (client-credentials grant, RFC 6749 4.4) in
                   the standard library: counts token requests, issues tok-1, tok-2, ...,
                   can answer errors, can be stopped and started again on the same port
  BearerReceiver   a hookdtest.Receiver that answers 401 to a token it was told is revoked
  WebhookReceiver  Debian's `webhook` (/usr/bin/webhook) with one hook whose trigger rule is
                   payload-hmac-sha256 on X-Hub-Signature-256; a run of the hook appends
                   the payload to a file
"""

import base64
import http.server
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse

import hookdtest as h

WEBHOOK_BIN = "/usr/bin/webhook"


class TokenServer:
    """POST /token with grant_type=client_credentials and HTTP Basic client credentials
    (client_id:client_secret, each form-urlencoded, RFC 6749 2.3.1)."""

    def __init__(self, client_id="hookd", client_secret="s3cret-client-secret",
                 expires_in=3600):
        self.client_id = client_id
        self.client_secret = client_secret
        self.expires_in = expires_in
        self.status = 200      # what a token request gets (200: a token)
        self.delay = 0.0       # seconds before answering (a slow token service)
        self.gate = None       # a threading.Event: answers wait until it is set
        self.lock = threading.Lock()
        self.requests = []     # (headers, form) of each token request
        self.issued = []
        self.port = h.free_port()
        self.server = None
        self.start()

    @property
    def url(self):
        return f"http://{h.HOST}:{self.port}/token"

    def count(self):
        with self.lock:
            return len(self.requests)

    def last_token(self):
        with self.lock:
            return self.issued[-1] if self.issued else None

    def _answer(self, headers, form):
        with self.lock:
            self.requests.append((headers, form))
            if self.status != 200:
                return self.status, {"error": "server_error",
                                     "error_description": "token service broken"}
            if form.get("grant_type") != "client_credentials":
                return 400, {"error": "unsupported_grant_type"}
            auth = headers.get("authorization", "")
            want = base64.b64encode(
                f"{urllib.parse.quote(self.client_id, safe='')}:"
                f"{urllib.parse.quote(self.client_secret, safe='')}".encode()).decode()
            if auth != f"Basic {want}":
                return 401, {"error": "invalid_client"}
            tok = f"tok-{len(self.issued) + 1}"
            self.issued.append(tok)
            return 200, {"access_token": tok, "token_type": "Bearer",
                         "expires_in": self.expires_in, "scope": form.get("scope", "")}

    def start(self):
        srv = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *args):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n).decode() if n else ""
                form = dict(urllib.parse.parse_qsl(body))
                hdrs = {k.lower(): v for k, v in self.headers.items()}
                status, obj = srv._answer(hdrs, form)
                if srv.delay:
                    time.sleep(srv.delay)
                if srv.gate is not None:
                    srv.gate.wait(60)
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server((h.HOST, self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        if self.gate is not None:
            self.gate.set()
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


class BearerReceiver(h.Receiver):
    """Answers 401 to a request whose bearer token is in `revoked`, else as behave() says."""

    def __init__(self):
        super().__init__()
        self.revoked = set()
        self.refusal_step = 0.0  # the n-th refusal is answered after n * this many seconds
        self.refusals = 0

    def _decide(self, req):
        status, extra, body, delay = super()._decide(req)
        tok = (req.headers.get("authorization") or "").removeprefix("Bearer ")
        if tok in self.revoked:
            with self.lock:
                n = self.refusals
                self.refusals += 1
            return (401, {"WWW-Authenticate": 'Bearer error="invalid_token"'}, b"revoked",
                    n * self.refusal_step)
        return status, extra, body, delay


class WebhookReceiver:
    """Debian's webhook on 127.0.0.1:<free port>, serving one hook, /hooks/hub."""

    MISMATCH_STATUS = 403

    def __init__(self, secret):
        self.tmp = tempfile.mkdtemp(prefix="hookd-webhook-")
        self.ran = os.path.join(self.tmp, "ran.log")
        script = os.path.join(self.tmp, "on-hook.sh")
        with open(script, "w", encoding="utf-8") as f:
            f.write("#!/bin/sh\nprintf '%s\\n' \"$1\" >> " + self.ran + "\n")
        os.chmod(script, 0o755)
        hooks = [{
            "id": "hub",
            "execute-command": script,
            "command-working-directory": self.tmp,
            "pass-arguments-to-command": [{"source": "payload", "name": "type"}],
            # A signature that does not match is an error to webhook 2.8 (500) unless it is
            # a soft failure inside "or": then the rule is false, and false gets the
            # mismatch code.
            "trigger-signature-soft-failures": True,
            "trigger-rule": {"or": [{"match": {
                "type": "payload-hmac-sha256", "secret": secret,
                "parameter": {"source": "header", "name": "X-Hub-Signature-256"}}}]},
            "trigger-rule-mismatch-http-response-code": self.MISMATCH_STATUS,
        }]
        self.hooks = os.path.join(self.tmp, "hooks.json")
        with open(self.hooks, "w", encoding="utf-8") as f:
            json.dump(hooks, f)
        self.port = h.free_port()
        self.log_path = os.path.join(self.tmp, "webhook.log")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [WEBHOOK_BIN, "-hooks", self.hooks, "-ip", h.HOST, "-port", str(self.port),
             "-verbose"], stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT)
        h.wait_until(self._listening, 10, message="webhook to listen")

    def _listening(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"webhook exited with {self.proc.returncode}: {self.log()}")
        try:
            socket.create_connection((h.HOST, self.port), timeout=0.5).close()
            return True
        except OSError:
            return False

    def url(self):
        return f"http://{h.HOST}:{self.port}/hooks/hub"

    def runs(self):
        try:
            with open(self.ran, encoding="utf-8") as f:
                return f.read().splitlines()
        except OSError:
            return []

    def log(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

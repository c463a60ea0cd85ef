"""hookdtest - shared harness for hookd's integration tests.

Standard library only. Everything listens on and talks to 127.0.0.1 (or ::1) only.

  Daemon     starts the real `$HOOKD_BIN serve --config FILE` on a temp config and data dir
  Receiver   a real HTTP/1.1 (keep-alive) webhook receiver that records every request
  HookdCase  unittest.TestCase base: owns daemons/receivers, prints the daemon log when a
             test fails, and fails a test whose daemon reported a sanitizer error
  helpers    create_app, create_endpoint, publish, get_message, wait_until, verify_v1, ...
"""

import base64
import glob
import hashlib
import hmac
import http.client
import http.server
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from datetime import datetime, timezone

HOST = "127.0.0.1"


def _sanitized_build():
    """True when HOOKD_BUILD_DIR is an ASan/UBSan build (everything is ~3-5x slower)."""
    build = os.environ.get("HOOKD_BUILD_DIR")
    if not build:
        return False
    try:
        with open(os.path.join(build, "CMakeCache.txt"), encoding="utf-8", errors="replace") as f:
            return re.search(r"^HOOKD_SANITIZE:BOOL=(ON|1|TRUE|YES)\s*$", f.read(),
                             re.M | re.I) is not None
    except OSError:
        return False


# Deadlines are multiplied by SCALE (HOOKD_TEST_SCALE overrides; 3 under sanitizers).
SCALE = float(os.environ.get("HOOKD_TEST_SCALE") or (3.0 if _sanitized_build() else 1.0))

SANITIZER_PATTERNS = re.compile(
    r"ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|(ERROR|WARNING): ThreadSanitizer")


def hookd_bin():
    b = os.environ.get("HOOKD_BIN")
    if not b:
        build = os.environ.get("HOOKD_BUILD_DIR") or os.path.join(
            os.path.dirname(os.path.abspath(__file__)), "..", "..", "build")
        b = os.path.join(build, "hookd")
    return b


def free_port(host=HOST):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout=10.0, interval=0.05, message="condition"):
    """Polls predicate() until it returns a truthy value (returned) or timeout*SCALE passes."""
    deadline = time.monotonic() + timeout * SCALE
    last_exc = None
    while True:
        try:
            v = predicate()
            if v:
                return v
        except AssertionError:
            raise
        except Exception as e:  # noqa: BLE001 - keep polling through transient errors
            last_exc = e
        if time.monotonic() >= deadline:
            extra = f" (last error: {last_exc!r})" if last_exc else ""
            raise AssertionError(f"timed out after {timeout * SCALE:.1f}s waiting for {message}{extra}")
        time.sleep(interval)


def parse_time(s):
    """ISO 8601 UTC ("2026-11-28T23:59:59.123Z") -> Unix seconds (float)."""
    if s is None:
        return None
    if isinstance(s, (int, float)):
        return float(s)
    t = s.strip()
    if t.endswith("Z") or t.endswith("z"):
        t = t[:-1] + "+00:00"
    dt = datetime.fromisoformat(t)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def iso(ts):
    """Unix seconds -> ISO 8601 UTC with milliseconds and Z."""
    dt = datetime.fromtimestamp(ts, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def random_whsec(nbytes=32):
    return "whsec_" + base64.b64encode(secrets.token_bytes(nbytes)).decode()


# --------------------------------------------------------------------------- YAML


def _yaml_scalar(v):
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return json.dumps(str(v))  # a JSON string is a valid YAML double-quoted scalar


def to_yaml(obj, indent=0):
    """Block-style YAML for dicts/lists/scalars (enough for hookd's config)."""
    pad = " " * indent
    lines = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, (dict, list)) and v:
                lines.append(f"{pad}{k}:")
                lines.append(to_yaml(v, indent + 2))
            elif isinstance(v, dict):
                lines.append(f"{pad}{k}: {{}}")
            elif isinstance(v, list):
                lines.append(f"{pad}{k}: []")
            else:
                lines.append(f"{pad}{k}: {_yaml_scalar(v)}")
    elif isinstance(obj, list):
        for item in obj:
            if isinstance(item, dict) and item:
                sub = to_yaml(item, indent + 2).split("\n")
                sub[0] = pad + "- " + sub[0][indent + 2:]
                lines.extend(sub)
            elif isinstance(item, list) and item:
                lines.append(f"{pad}-")
                lines.append(to_yaml(item, indent + 2))
            else:
                lines.append(f"{pad}- {_yaml_scalar(item) if not isinstance(item, (dict, list)) else ('{}' if isinstance(item, dict) else '[]')}")
    else:
        lines.append(pad + _yaml_scalar(obj))
    return "\n".join(lines)


# --------------------------------------------------------------------------- daemon


# delivery.breaker with both rules off: for tests that count one attempt per delivery of an
# endpoint that keeps failing, which an open breaker holds back on purpose.
NO_BREAKER = {"consecutive_failures": 0, "failure_ratio": 0}


class DaemonError(AssertionError):
    pass


class Daemon:
    """One hookd process on a temp config and data dir.

    kwargs: allow_destinations (list; default ["127.0.0.0/8", "::1/128"]), limits (dict),
    delivery (dict), storage (dict), api (dict merged into the api section, next to
    admin_key), apps (list of app dicts as in the config file), extra (dict merged at the top
    level), admin_key, start (default True), nofile (the process's file-descriptor limit:
    an int, or a (soft, hard) pair; the daemon runs under `prlimit --nofile=soft:hard`),
    env (dict of variables set in the daemon's environment; a value of None removes the
    variable).
    """

    def __init__(self, allow_destinations=None, limits=None, delivery=None, storage=None,
                 apps=None, extra=None, admin_key=None, start=True, name="hookd", api=None,
                 nofile=None, env=None):
        self.tmp = tempfile.mkdtemp(prefix="hookd-it-")
        self.data_dir = os.path.join(self.tmp, "data")
        self.port = free_port()
        self.admin_key = admin_key or ("test-" + secrets.token_hex(16))
        self.base = f"http://{HOST}:{self.port}"
        self.name = name
        self.extra_env = dict(env or {})
        cfg = {
            "listen": f"{HOST}:{self.port}",
            "data_dir": self.data_dir,
            "api": {"admin_key": self.admin_key},
            "security": {"allow_destinations": list(["127.0.0.0/8", "::1/128"]
                                                    if allow_destinations is None
                                                    else allow_destinations)},
        }
        if api:
            cfg["api"].update(api)
        if limits:
            cfg["limits"] = dict(limits)
        if delivery:
            cfg["delivery"] = dict(delivery)
        if storage:
            cfg["storage"] = dict(storage)
        if apps:
            cfg["apps"] = list(apps)
        if extra:
            cfg.update(extra)
        self.config = cfg
        self.config_path = os.path.join(self.tmp, "hookd.yaml")
        self.write_config()
        self.log_path = os.path.join(self.tmp, "hookd.log")
        self.nofile = (nofile, nofile) if isinstance(nofile, int) else nofile
        self.proc = None
        self.starts = 0
        self._logf = None
        if start:
            self.start()

    # -- lifecycle --------------------------------------------------------------

    def write_config(self, config=None):
        if config is not None:
            self.config = config
        with open(self.config_path, "w", encoding="utf-8") as f:
            f.write(to_yaml(self.config) + "\n")

    def env(self):
        e = dict(os.environ)
        e.pop("HOOKD_ADMIN_KEY", None)  # the env var wins over the file: keep ours
        for k, v in self.extra_env.items():
            if v is None:
                e.pop(k, None)
            else:
                e[k] = v
        return e

    def start(self, timeout=20.0):
        if self.proc is not None and self.proc.poll() is None:
            raise DaemonError("daemon already running")
        self.starts += 1
        self._logf = open(self.log_path, "ab")
        self._logf.write(f"\n===== start #{self.starts} at {iso(time.time())} =====\n".encode())
        self._logf.flush()
        cmd = [hookd_bin(), "serve", "--config", self.config_path]
        if self.nofile:
            cmd = ["prlimit", f"--nofile={self.nofile[0]}:{self.nofile[1]}", "--"] + cmd
        self.proc = subprocess.Popen(cmd,
                                     stdin=subprocess.DEVNULL, stdout=self._logf,
                                     stderr=subprocess.STDOUT, env=self.env(), cwd=self.tmp)
        deadline = time.monotonic() + timeout * SCALE
        while True:
            rc = self.proc.poll()
            if rc is not None:
                raise DaemonError(f"hookd exited with {rc} during start-up\n{self.log_tail()}")
            try:
                st, body = self.api("GET", "/healthz", auth=False, timeout=2)
                if st == 200:
                    return self
            except (OSError, http.client.HTTPException):
                pass
            if time.monotonic() >= deadline:
                raise DaemonError(f"hookd did not answer /healthz within {timeout * SCALE:.0f}s\n"
                                  f"{self.log_tail()}")
            time.sleep(0.05)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        if self.running():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)
        self._close_log()

    def stop(self, timeout=30.0):
        """SIGTERM, wait; SIGKILL if it does not exit. Returns the exit code."""
        rc = None
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    rc = self.proc.wait(timeout=timeout * SCALE)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=30)
                    self._close_log()
                    raise DaemonError(f"hookd did not exit within {timeout * SCALE:.0f}s of SIGTERM")
            rc = self.proc.returncode
        self._close_log()
        return rc

    def restart(self, kill=False):
        if kill:
            self.kill9()
        else:
            self.stop()
        return self.start()

    def _close_log(self):
        if self._logf:
            self._logf.close()
            self._logf = None

    def cleanup(self, keep=False):
        try:
            if self.running():
                self.stop()
        finally:
            if not keep:
                shutil.rmtree(self.tmp, ignore_errors=True)

    # -- log --------------------------------------------------------------------

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, n=200):
        lines = self.log().splitlines()
        return "\n".join(lines[-n:])

    def sanitizer_errors(self):
        return [ln for ln in self.log().splitlines() if SANITIZER_PATTERNS.search(ln)]

    # -- API --------------------------------------------------------------------

    def request(self, method, path, body=None, headers=None, auth=True, timeout=30, raw=None):
        """Returns (status, headers dict lowercased, body bytes)."""
        h = {}
        if auth:
            h["Authorization"] = f"Bearer {self.admin_key}"
        data = None
        if raw is not None:
            data = raw if isinstance(raw, bytes) else raw.encode()
            h["Content-Type"] = "application/json"
        elif body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        if headers:
            h.update(headers)
        conn = http.client.HTTPConnection(HOST, self.port, timeout=timeout * SCALE)
        try:
            conn.request(method, path, body=data, headers=h)
            resp = conn.getresponse()
            rbody = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, rbody
        finally:
            conn.close()

    def send_oversized(self, path, length, headers=None, auth=True, timeout=10):
        """Sends a request announcing `length` body bytes the way a client that cares about
        a server's early answer does: headers first, then the body in chunks, stopping when
        the server answers or closes. Returns (status, parsed body, bytes of body sent)."""
        h = {"Content-Type": "application/json", "Content-Length": str(length),
             "Host": f"{HOST}:{self.port}", "Connection": "close"}
        if auth:
            h["Authorization"] = f"Bearer {self.admin_key}"
        h.update(headers or {})
        head = f"POST {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items())
        sock = socket.create_connection((HOST, self.port), timeout=timeout * SCALE)
        sent = 0
        try:
            sock.sendall((head + "\r\n").encode())
            chunk = b" " * 16384
            sock.setblocking(False)
            import select
            while sent < length:
                r, w, _ = select.select([sock], [sock], [], timeout * SCALE)
                if r:
                    break  # the server answered (or closed) before the whole body
                if not w:
                    raise AssertionError("server neither reads the body nor answers")
                try:
                    sent += sock.send(chunk[:min(len(chunk), length - sent)])
                except (BrokenPipeError, ConnectionResetError):
                    break
            sock.setblocking(True)
            data = b""
            try:
                while True:
                    part = sock.recv(65536)
                    if not part:
                        break
                    data += part
                    if b"\r\n\r\n" in data:
                        hdr, _, rest = data.partition(b"\r\n\r\n")
                        m = re.search(rb"content-length:\s*(\d+)", hdr, re.I)
                        if m and len(rest) >= int(m.group(1)):
                            break
            except ConnectionResetError:
                pass
        finally:
            sock.close()
        if not data:
            raise AssertionError(f"no response to an oversized request ({sent} of {length} "
                                 "body bytes sent before the connection closed)")
        hdr, _, rest = data.partition(b"\r\n\r\n")
        status = int(hdr.split(b" ", 2)[1])
        return status, decode_body(rest), sent

    def api(self, method, path, body=None, headers=None, auth=True, timeout=30, raw=None):
        """Returns (status, parsed JSON or text or None)."""
        st, _, rb = self.request(method, path, body, headers, auth, timeout, raw)
        return st, decode_body(rb)


def decode_body(rb):
    if not rb:
        return None
    try:
        return json.loads(rb)
    except ValueError:
        return rb.decode("utf-8", "replace")


# --------------------------------------------------------------------------- receiver


class Request:
    __slots__ = ("method", "path", "headers", "body", "time", "client_port", "status")

    def __init__(self, method, path, headers, body, t, client_port):
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body
        self.time = t
        self.client_port = client_port
        self.status = None  # what the receiver answered

    @property
    def webhook_id(self):
        return self.headers.get("webhook-id")

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return (f"<Request {self.method} {self.path} id={self.webhook_id} status={self.status} "
                f"port={self.client_port} t={self.time:.3f}>")


class Behaviour:
    def __init__(self, status=200, fail_first=0, fail_status=500, retry_after=None, delay=0.0,
                 body=b"ok", headers=None):
        self.status = status
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.retry_after = retry_after
        self.delay = delay
        self.body = body if isinstance(body, bytes) else str(body).encode()
        self.headers = dict(headers or {})


class Receiver:
    """A webhook receiver on 127.0.0.1:<free port>.

    behave(path=None, status=200, fail_first=0, fail_status=500, retry_after=None, delay=0):
    the first `fail_first` requests per webhook-id answer `fail_status` (with Retry-After if
    set), the others `status`. path=None sets the default; a path sets that path's behaviour.
    """

    def __init__(self):
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.requests = []
        self.seen = {}  # (path, webhook-id) -> count
        self.behaviours = {None: Behaviour()}
        recv = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *args):
                pass

            def _handle(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                hdrs = {k.lower(): v for k, v in self.headers.items()}
                req = Request(self.command, self.path, hdrs, body, time.time(),
                              self.client_address[1])
                status, extra, rbody, delay = recv._decide(req)
                req.status = status
                with recv.cond:  # recorded on receipt, before any delay
                    recv.requests.append(req)
                    recv.cond.notify_all()
                if delay:
                    time.sleep(delay)
                self.send_response(status)
                for k, v in extra.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(rbody)))
                self.end_headers()
                self.wfile.write(rbody)

            do_POST = do_PUT = do_GET = do_PATCH = do_DELETE = _handle

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True

            def handle_error(self, request, client_address):
                exc = sys.exc_info()[1]
                if isinstance(exc, (ConnectionError, TimeoutError)):
                    return  # the peer went away (e.g. hookd was killed): not a test failure
                super().handle_error(request, client_address)

        self.server = Server((HOST, 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, name="receiver",
                                       daemon=True)
        self.thread.start()

    def url(self, path="/hook", host=HOST):
        return f"http://{host}:{self.port}{path}"

    def behave(self, path=None, **kw):
        with self.lock:
            self.behaviours[path] = Behaviour(**kw)

    def _decide(self, req):
        with self.lock:
            path_only = req.path.split("?", 1)[0]
            b = self.behaviours.get(path_only) or self.behaviours[None]
            key = (path_only, req.webhook_id)
            n = self.seen.get(key, 0)
            self.seen[key] = n + 1
            if n < b.fail_first:
                status = b.fail_status
            else:
                status = b.status
            extra = dict(b.headers)
            if b.retry_after is not None and status >= 300:
                extra["Retry-After"] = str(b.retry_after)
            return status, extra, b.body, b.delay

    def get(self, path=None, webhook_id=None):
        with self.lock:
            return [r for r in self.requests
                    if (path is None or r.path.split("?", 1)[0] == path)
                    and (webhook_id is None or r.webhook_id == webhook_id)]

    def count(self, path=None, webhook_id=None):
        return len(self.get(path, webhook_id))

    def ids(self, path=None):
        return {r.webhook_id for r in self.get(path)}

    def wait_for(self, count, timeout=10.0, path=None, webhook_id=None):
        """Waits until at least `count` matching requests arrived; returns them."""
        deadline = time.monotonic() + timeout * SCALE
        with self.cond:
            while True:
                got = [r for r in self.requests
                       if (path is None or r.path.split("?", 1)[0] == path)
                       and (webhook_id is None or r.webhook_id == webhook_id)]
                if len(got) >= count:
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"receiver: timed out after {timeout * SCALE:.1f}s waiting for {count} "
                        f"request(s) (path={path}, webhook_id={webhook_id}); got {len(got)}: {got}")
                self.cond.wait(min(left, 0.2))

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    # Standard Webhooks v1 (HMAC-SHA256) verification.
    def verify(self, secret, req):
        return verify_v1(secret, req.headers, req.body)


def secret_bytes(secret):
    if secret.startswith("whsec_"):
        secret = secret[len("whsec_"):]
    return base64.b64decode(secret)


def sign_v1(secret, msg_id, ts, body):
    mac = hmac.new(secret_bytes(secret), f"{msg_id}.{ts}.".encode() + body, hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


def signature_entries(headers, version=None):
    """The (version, sig) entries of webhook-signature (space-separated `v,sig`)."""
    out = []
    for part in (headers.get("webhook-signature") or "").split():
        if "," not in part:
            continue
        v, sig = part.split(",", 1)
        if version is None or v == version:
            out.append((v, sig))
    return out


def verify_v1(secret, headers, body):
    """True when any v1 entry of webhook-signature is HMAC-SHA256(secret, id.ts.body)."""
    msg_id = headers.get("webhook-id")
    ts = headers.get("webhook-timestamp")
    if not msg_id or not ts:
        return False
    expected = sign_v1(secret, msg_id, ts, body)
    return any(hmac.compare_digest(expected, sig) for _, sig in signature_entries(headers, "v1"))


class RawServer:
    """A raw TCP server on host:<free port> for peers that misbehave on purpose (hostile
    receivers, a recording proxy): accepts in a thread, counts connections, and runs
    serve(conn) in a thread per connection. Subclasses define serve; close() stops it."""

    def __init__(self, host=HOST):
        self.host = host
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                                  socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.connections = 0
        self.stopping = False
        self.thread = threading.Thread(target=self._accept_loop, daemon=True)
        self.thread.start()

    def url(self, path="/hook"):
        return f"http://{self.host}:{self.port}{path}"

    def _accept_loop(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            with self.lock:
                self.connections += 1
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    def serve(self, conn):
        raise NotImplementedError

    @staticmethod
    def read_request(c, buf=b""):
        """Reads one HTTP request (headers, then a Content-Length body) from c, starting with
        the bytes already in buf: (head, bytes after the request), or (None, ...) when the
        peer closed first."""
        while b"\r\n\r\n" not in buf:
            part = c.recv(65536)
            if not part:
                return None, buf
            buf += part
        head, _, rest = buf.partition(b"\r\n\r\n")
        n = 0
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                n = int(v.strip())
        while len(rest) < n:
            part = c.recv(65536)
            if not part:
                return None, b""
            rest += part
        return head, rest[n:]

    def close(self):
        self.stopping = True
        self.sock.close()
        self.thread.join(timeout=2)


def faketime_lib():
    hits = sorted(glob.glob("/usr/lib/*/faketime/libfaketimeMT.so.1"))
    if not hits:
        raise AssertionError("libfaketime is missing: scripts/install-deps.sh --test installs it")
    return hits[0]


def fake_clock(d):
    """Makes daemon d (not started yet) run under libfaketime, its wall clock offset by what
    the returned file says ("+0d" now; rewrite it to move the clock; libfaketime reads it at
    most once a second); monotonic time is left alone so timers behave."""
    clock = os.path.join(d.tmp, "faketime")
    with open(clock, "w") as f:
        f.write("+0d\n")
    base_env = d.env

    def env():
        e = base_env()
        e["LD_PRELOAD"] = faketime_lib()
        e["FAKETIME_TIMESTAMP_FILE"] = clock
        e["FAKETIME_CACHE_DURATION"] = "1"
        e["FAKETIME_DONT_FAKE_MONOTONIC"] = "1"
        # ASan wants to be first in the library list; faketime only wraps clock calls.
        e["ASAN_OPTIONS"] = (e.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0").lstrip(":")
        return e
    d.env = env
    return clock


def serve_config(test, text, prefix="hookd-cfg-"):
    """Runs `hookd serve --config` on the YAML text in a temporary directory (removed after
    the test); returns (exit code, stdout+stderr). A daemon that is still running after
    3 s has accepted the config: it is stopped and reported as exit 0."""
    tmp = tempfile.mkdtemp(prefix=prefix)
    test.addCleanup(shutil.rmtree, tmp, True)
    path = os.path.join(tmp, "cfg.yaml")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    env = dict(os.environ)
    env.pop("HOOKD_ADMIN_KEY", None)
    p = subprocess.Popen([hookd_bin(), "serve", "--config", path], cwd=tmp, env=env,
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    try:
        out, _ = p.communicate(timeout=3 * SCALE)
        return p.returncode, out.decode(errors="replace")
    except subprocess.TimeoutExpired:
        p.terminate()
        out, _ = p.communicate(timeout=20 * SCALE)
        return 0, out.decode(errors="replace")


def metric(d, name):
    """The value of an unlabelled metric in GET /metrics, or None when it is absent."""
    st, text = d.api("GET", "/metrics")
    assert st == 200, text
    m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


# --------------------------------------------------------------------------- API helpers


def _check(st, body, expected, what):
    if isinstance(expected, int):
        expected = (expected,)
    if st not in expected:
        raise AssertionError(f"{what}: expected HTTP {expected}, got {st}: {body!r}")
    return body


def create_app(d, app_id=None, name="Test app"):
    body = {"name": name}
    if app_id:
        body["id"] = app_id
    st, b = d.api("POST", "/v1/apps", body)
    return _check(st, b, 201, "create app")


def create_endpoint(d, app, url, **fields):
    app_id = app["id"] if isinstance(app, dict) else app
    body = {"url": url}
    body.update(fields)
    st, b = d.api("POST", f"/v1/apps/{app_id}/endpoints", body)
    return _check(st, b, 201, "create endpoint")


def publish(d, app, type_, data, idem=None, version=None, expect=(202,), **extra):
    """Publishes; returns the response body (asserts the status is in expect)."""
    app_id = app["id"] if isinstance(app, dict) else app
    body = {"type": type_, "data": data}
    if version is not None:
        body["version"] = version
    body.update(extra)
    headers = {"Idempotency-Key": idem} if idem else None
    st, b = d.api("POST", f"/v1/apps/{app_id}/messages", body, headers=headers)
    return _check(st, b, expect, f"publish {type_}")


def get_message(d, app, msg_id):
    app_id = app["id"] if isinstance(app, dict) else app
    st, b = d.api("GET", f"/v1/apps/{app_id}/messages/{msg_id}")
    return _check(st, b, 200, f"GET message {msg_id}")


def get_attempts(d, app, msg_id):
    app_id = app["id"] if isinstance(app, dict) else app
    st, b = d.api("GET", f"/v1/apps/{app_id}/messages/{msg_id}/attempts")
    return _check(st, b, 200, f"GET attempts {msg_id}")["data"]


def get_endpoint(d, app, ep_id):
    app_id = app["id"] if isinstance(app, dict) else app
    st, b = d.api("GET", f"/v1/apps/{app_id}/endpoints/{ep_id}")
    return _check(st, b, 200, f"GET endpoint {ep_id}")


def endpoint_status(d, app, ep_id):
    """GET .../endpoints/{id}/status: the breaker, rates, counts and the last hour."""
    app_id = app["id"] if isinstance(app, dict) else app
    st, b = d.api("GET", f"/v1/apps/{app_id}/endpoints/{ep_id}/status")
    return _check(st, b, 200, f"GET status of endpoint {ep_id}")


def delivery_for(msg, endpoint_id):
    for dl in msg.get("deliveries") or []:
        if dl.get("endpoint_id") == endpoint_id:
            return dl
    return None


def wait_delivery_state(d, app, msg_id, endpoint_id, state, timeout=15.0, attempts=None):
    """Polls GET message until the delivery to endpoint_id is in `state` (and has `attempts`
    attempts when given); returns that delivery."""
    last = {}

    def pred():
        m = get_message(d, app, msg_id)
        dl = delivery_for(m, endpoint_id)
        last["m"] = m
        if dl and dl.get("state") == state and (attempts is None or dl.get("attempts") == attempts):
            return dl
        return None

    try:
        return wait_until(pred, timeout, interval=0.1,
                          message=f"delivery of {msg_id} to {endpoint_id} to be {state}"
                                  + (f" with {attempts} attempts" if attempts else ""))
    except AssertionError as e:
        raise AssertionError(f"{e}; last message: {json.dumps(last.get('m'))}") from None


def error_of(body):
    """The `error` object of an error response (asserts the documented shape)."""
    if not isinstance(body, dict) or not isinstance(body.get("error"), dict):
        raise AssertionError(f"error body is not {{\"error\": {{...}}}}: {body!r}")
    e = body["error"]
    for k in ("code", "message", "field"):
        if k not in e:
            raise AssertionError(f"error object lacks {k!r}: {body!r}")
    return e


# --------------------------------------------------------------------------- test case


class HookdCase(unittest.TestCase):
    """Base class: self.daemon(**kw) and self.receiver() are cleaned up after the test; on
    failure the daemon logs are printed; a sanitizer report in a daemon log fails the test."""

    maxDiff = None

    def setUp(self):
        self._daemons = []
        self._receivers = []
        self.addCleanup(self._cleanup)

    def daemon(self, start=True, **kw):
        d = Daemon(start=False, **kw)
        self._daemons.append(d)
        if start:
            d.start()
        return d

    def receiver(self):
        r = Receiver()
        self._receivers.append(r)
        return r

    def _failed(self):
        outcome = getattr(self, "_outcome", None)
        if outcome is None:
            return True
        if not getattr(outcome, "success", True):
            return True
        res = getattr(outcome, "result", None)
        if res is not None:
            for test, _ in list(getattr(res, "failures", [])) + list(getattr(res, "errors", [])):
                if test is self:
                    return True
        return False

    def _cleanup(self):
        # Daemons first (their receivers still answer while they shut down), then receivers.
        problems = []
        failed = self._failed()
        for d in self._daemons:
            try:
                rc = d.stop() if d.running() else None
            except DaemonError as e:
                problems.append(str(e))
                rc = None
            if rc not in (None, 0):
                problems.append(f"{d.name} exited with {rc} on SIGTERM")
            san = d.sanitizer_errors()
            if san:
                problems.append(f"sanitizer errors in {d.name} log: {san[:5]}")
            if failed or problems:
                sys.stderr.write(f"\n----- {self.id()}: {d.name} log ({d.log_path}), "
                                 f"last exit {rc} -----\n{d.log_tail(300)}\n----- end log -----\n")
            d.cleanup(keep=False)
        for r in self._receivers:
            try:
                r.close()
            except Exception:  # noqa: BLE001
                pass
        if problems:
            self.fail("; ".join(problems))


def main():
    unittest.main(verbosity=2)

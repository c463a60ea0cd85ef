"""faultpeer - a webhook receiver that misbehaves on command, for hookd's fault scenarios.

Standard library only; it listens on 127.0.0.1 (or ::1) and nowhere else.

  peer = FaultPeer()                       # answers 200 until told otherwise
  peer.mode("status", status=503, retry_after=2)
  peer.sequence([("status", {"status": 503}), ("reset", {}), ("ok", {})])
  reqs = peer.wait_for(3, timeout=10, webhook_id=msg_id)

Modes (the mode is chosen when a request's header block has arrived, so a change takes
effect for the next request, on whatever connection it comes):

  ok                     200 "ok"; the connection is kept alive
  status                 status=500|503|429|...; retry_after=None|seconds sets Retry-After
  hang                   reads the request and never answers; waits for hookd to close
  slow                   200 "ok", written one byte every `interval` seconds (TCP_NODELAY)
  reset                  reads the header block only, then closes with RST (SO_LINGER 0)
  close_before_headers   reads the whole request, closes (FIN) without writing a byte
  big_body               200 with a 10 MiB body (`size` bytes), Content-Length set
  redirect               302 to `location` (required), empty body
  timeout                200 "ok" after `delay` seconds, if the connection is still open

Every request is recorded on receipt, before the answer, as a PeerRequest: method, path,
headers (names lowercased), body, time, mode and params used, the connection's number and
the request's number on it; `closed_at` is when hookd closed that connection while the
peer was waiting on it (hang, timeout, slow) or the peer gave up writing (big_body), and
`sent` is how many response bytes were written. `connections` counts accepted
connections (RawServer).

`sequence(steps)` makes the Nth request after the call use steps[N] (counted across all
connections, in order of arrival); once the steps run out the last one repeats. `mode()`
ends a sequence.

HealthWatch polls a daemon's /healthz in a thread for the length of a scenario.
"""

import os
import select
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import hookdtest as h  # noqa: E402

MODES = ("ok", "status", "hang", "slow", "reset", "close_before_headers", "big_body",
         "redirect", "timeout")
BIG_BODY_BYTES = 10 * 1024 * 1024
# The big body repeats this, so an excerpt can be checked to be the body's first bytes.
BIG_BODY_PATTERN = b"0123456789abcdef"
REASONS = {200: "OK", 302: "Found", 400: "Bad Request", 404: "Not Found", 410: "Gone",
           429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
           503: "Service Unavailable", 504: "Gateway Timeout"}
# How often a blocked peer thread wakes to notice close(); short enough that close() of a
# peer with hanging connections returns at once, long enough to cost nothing.
POLL_S = 0.1
# Header blocks hookd sends are a few hundred bytes; this only stops a runaway reader.
HEAD_MAX = 256 * 1024


class PeerRequest:
    __slots__ = ("method", "path", "headers", "body", "time", "mode", "params", "conn",
                 "n_on_conn", "index", "closed_at", "sent")

    def __init__(self, method, path, headers, body, t, mode, params, conn, n_on_conn, index):
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body
        self.time = t
        self.mode = mode
        self.params = params
        self.conn = conn            # the connection's number (1 = the first accepted)
        self.n_on_conn = n_on_conn  # 1 = the connection's first request
        self.index = index          # 0 = the peer's first request
        self.closed_at = None       # when hookd closed the connection during the answer
        self.sent = 0               # response bytes written

    @property
    def webhook_id(self):
        return self.headers.get("webhook-id")

    def __repr__(self):
        return (f"<PeerRequest #{self.index} {self.method} {self.path} id={self.webhook_id} "
                f"mode={self.mode} conn={self.conn}/{self.n_on_conn} t={self.time:.3f}>")


class _Closed(Exception):
    """The other side closed the connection (or the peer is stopping)."""


class FaultPeer(h.RawServer):

    def __init__(self, host=h.HOST):
        self.requests = []
        self._mode = ("ok", {})
        self._steps = None
        self._step = 0
        self._open = set()
        super().__init__(host)
        self.cond = threading.Condition(self.lock)

    # -- control --------------------------------------------------------------

    @staticmethod
    def _check(name, params):
        if name not in MODES:
            raise ValueError(f"unknown fault mode {name!r} (one of {', '.join(MODES)})")
        if name == "redirect" and "location" not in params:
            raise ValueError("redirect needs location=")
        if name == "status" and "status" not in params:
            raise ValueError("status needs status=")
        return (name, dict(params))

    def mode(self, name, **params):
        """Sets the mode of every request from the next one on (ends a sequence)."""
        m = self._check(name, params)
        with self.lock:
            self._mode = m
            self._steps = None

    def sequence(self, steps):
        """The Nth request from now uses steps[N] = (name, params); the last one repeats."""
        checked = [self._check(name, params or {}) for name, params in steps]
        if not checked:
            raise ValueError("an empty sequence")
        with self.lock:
            self._steps = checked
            self._step = 0

    def _next_mode(self):
        # Called with self.lock held.
        if self._steps is None:
            return self._mode
        m = self._steps[min(self._step, len(self._steps) - 1)]
        self._step += 1
        return m

    # -- records --------------------------------------------------------------

    def get(self, webhook_id=None, path=None):
        with self.lock:
            return [r for r in self.requests
                    if (webhook_id is None or r.webhook_id == webhook_id)
                    and (path is None or r.path.split("?", 1)[0] == path)]

    def count(self, webhook_id=None, path=None):
        return len(self.get(webhook_id, path))

    def open_connections(self):
        with self.lock:
            return len(self._open)

    def wait_for(self, count, timeout=10.0, webhook_id=None, path=None):
        """Waits until at least `count` matching requests arrived (timeout * SCALE);
        returns them."""
        deadline = time.monotonic() + timeout * h.SCALE
        with self.cond:
            while True:
                got = [r for r in self.requests
                       if (webhook_id is None or r.webhook_id == webhook_id)
                       and (path is None or r.path.split("?", 1)[0] == path)]
                if len(got) >= count:
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"fault peer: timed out after {timeout * h.SCALE:.1f}s waiting for "
                        f"{count} request(s) (webhook_id={webhook_id}, path={path}); "
                        f"got {len(got)}: {got}")
                self.cond.wait(min(left, 0.2))

    # -- the connection -------------------------------------------------------

    def _recv(self, c):
        """One recv that wakes up to notice close(); raises _Closed on EOF or error."""
        while True:
            if self.stopping:
                raise _Closed()
            try:
                r, _, _ = select.select([c], [], [], POLL_S)
            except (OSError, ValueError):
                raise _Closed() from None
            if not r:
                continue
            try:
                part = c.recv(65536)
            except OSError:
                raise _Closed() from None
            if not part:
                raise _Closed()
            return part

    def _send(self, c, data, req):
        try:
            c.sendall(data)
        except OSError:
            raise _Closed() from None
        req.sent += len(data)

    def _wait_closed(self, c, seconds=None):
        """Reads and drops whatever comes until hookd closes (True) or `seconds` pass
        (False)."""
        end = None if seconds is None else time.monotonic() + seconds
        while not self.stopping:
            wait = POLL_S if end is None else min(POLL_S, end - time.monotonic())
            if wait <= 0:
                return False
            try:
                r, _, _ = select.select([c], [], [], wait)
                if r and not c.recv(65536):
                    return True
            except OSError:
                return True
        return False

    def serve(self, c):
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.lock:
            conn_no = self.connections
            self._open.add(c)
        buf = b""
        n = 0
        try:
            while not self.stopping:
                while b"\r\n\r\n" not in buf:
                    if len(buf) > HEAD_MAX:
                        return
                    buf += self._recv(c)
                head, _, buf = buf.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                parts = lines[0].split(" ")
                method, path = parts[0], (parts[1] if len(parts) > 1 else "")
                headers = {}
                for line in lines[1:]:
                    k, _, v = line.partition(":")
                    headers[k.strip().lower()] = v.strip()
                n += 1
                with self.lock:
                    name, params = self._next_mode()
                    index = len(self.requests)
                req = PeerRequest(method, path, headers, b"", time.time(), name, params,
                                  conn_no, n, index)
                if name == "reset":
                    self._record(req)
                    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return
                if headers.get("expect", "").lower() == "100-continue":
                    self._send(c, b"HTTP/1.1 100 Continue\r\n\r\n", req)
                length = int(headers.get("content-length") or 0)
                while len(buf) < length:
                    buf += self._recv(c)
                req.body, buf = buf[:length], buf[length:]
                self._record(req)
                if not self._answer(c, req, name, params):
                    return
        except _Closed:
            pass
        finally:
            with self.lock:
                self._open.discard(c)
            try:
                c.close()
            except OSError:
                pass

    def _record(self, req):
        with self.cond:
            self.requests.append(req)
            self.cond.notify_all()

    def _closed(self, req):
        with self.cond:
            req.closed_at = time.time()
            self.cond.notify_all()

    @staticmethod
    def _response(status, body=b"ok", extra=None):
        head = f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}\r\n"
        for k, v in (extra or {}).items():
            head += f"{k}: {v}\r\n"
        head += f"Content-Type: text/plain\r\nContent-Length: {len(body)}\r\n\r\n"
        return head.encode() + body

    def _answer(self, c, req, name, params):
        """Writes the mode's answer; True to keep the connection for another request."""
        if name == "ok":
            self._send(c, self._response(200), req)
            return True
        if name == "status":
            extra = {}
            if params.get("retry_after") is not None:
                extra["Retry-After"] = str(params["retry_after"])
            self._send(c, self._response(int(params["status"]),
                                         params.get("body", b"fault peer says no"), extra), req)
            return True
        if name == "redirect":
            self._send(c, self._response(int(params.get("status", 302)), b"",
                                         {"Location": params["location"]}), req)
            return True
        if name == "hang":
            if self._wait_closed(c):
                self._closed(req)
            return False
        if name == "close_before_headers":
            return False
        if name == "timeout":
            if self._wait_closed(c, float(params.get("delay", 5.0))):
                self._closed(req)
                return False
            self._send(c, self._response(200), req)
            return True
        if name == "slow":
            interval = float(params.get("interval", 0.1))
            for i, b in enumerate(self._response(200)):
                if i and self._wait_closed(c, interval):
                    self._closed(req)
                    return False
                self._send(c, bytes([b]), req)
            return True
        if name == "big_body":
            size = int(params.get("size", BIG_BODY_BYTES))
            try:
                self._send(c, b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                           + f"Content-Length: {size}\r\n\r\n".encode(), req)
                chunk = BIG_BODY_PATTERN * 4096  # 64 KiB
                left = size
                while left > 0 and not self.stopping:
                    part = chunk[:left]
                    self._send(c, part, req)
                    left -= len(part)
            except _Closed:
                self._closed(req)  # hookd stopped reading and closed: what it should do
                return False
            return True
        raise AssertionError(f"mode {name} has no answer")

    def close(self):
        super().close()
        with self.lock:
            conns = list(self._open)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class HealthWatch:
    """Polls GET /healthz of a daemon every `interval` s in a thread until stop(); `failures`
    lists (time, what) for every poll that did not answer 200 within `timeout` s."""

    def __init__(self, daemon, interval=0.25, timeout=5.0):
        self.daemon = daemon
        self.interval = interval
        self.timeout = timeout
        self.failures = []
        self.polls = 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="healthwatch", daemon=True)
        self.thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                st, body = self.daemon.api("GET", "/healthz", auth=False,
                                           timeout=self.timeout)
                if st != 200:
                    self.failures.append((time.time(), f"HTTP {st}: {body!r}"))
            except Exception as e:  # noqa: BLE001 - every failure is a finding
                self.failures.append((time.time(), repr(e)))
            self.polls += 1
            self._stop.wait(self.interval)

    def stop(self):
        self._stop.set()
        self.thread.join(timeout=10 * h.SCALE)
        return self.failures

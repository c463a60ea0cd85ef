"""Nobody locks us out: idle connection floods and slowloris clients against the API.

Before the fix anyone who could connect could take the daemon down: no header or idle
timeout and no connection cap, so idle connections used up the file descriptors, /healthz
stopped answering, deliveries failed with "Couldn't connect to server", and the accept
failure warning filled the log in a busy loop. The daemon here runs with a low descriptor
limit (prlimit) so a few hundred sockets are a flood."""

import http.client
import json
import os
import re
import socket
import sys
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import hookdtest as h  # noqa: E402
import apiclient as c  # noqa: E402

NOFILE = 512
CAP = 100            # api.max_connections, under what NOFILE leaves after the reserve
FLOOD = 600          # more sockets than the daemon has descriptors
HEADER_TIMEOUT_MS = 1000
IDLE_TIMEOUT_MS = 2000


class FloodTest(h.HookdCase):

    def flood_daemon(self, **kw):
        return self.daemon(nofile=NOFILE, delivery={"max_inflight": 16},
                           api={"max_connections": CAP, "header_timeout_ms": HEADER_TIMEOUT_MS,
                                "idle_timeout_ms": IDLE_TIMEOUT_MS}, **kw)

    def flood(self, d, n):
        """n sockets connecting to d that never send anything (non-blocking: with a full
        accept queue some stay in SYN_SENT, which is what a flood looks like)."""
        socks = []
        self.addCleanup(lambda: [s.close() for s in socks])
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            try:
                s.connect((h.HOST, d.port))
            except BlockingIOError:
                pass
            socks.append(s)
        return socks

    def test_idle_flood_deliveries_and_healthz_survive(self):
        recv = self.receiver()
        d = self.flood_daemon()
        app = h.create_app(d, "app_flood")
        ep = h.create_endpoint(d, app, recv.url("/flood"), retry_schedule=[1, 1, 1, 1, 1, 1])
        # A publisher connected before the flood (keep-alive), as a real one would be.
        pub = http.client.HTTPConnection(h.HOST, d.port, timeout=10 * h.SCALE)
        self.addCleanup(pub.close)
        pub.request("GET", "/healthz")
        self.assertEqual(pub.getresponse().read(), b'{"status":"ok"}\n')
        log_before = len(d.log())
        t0 = time.monotonic()

        self.flood(d, FLOOD)
        time.sleep(0.3)
        # The cap holds: the daemon never has more API sockets than max_connections (plus
        # the listener, the publisher, the receiver connections and the store's).
        sockets = c.socket_fds(d.proc.pid)
        self.assertLessEqual(sockets, CAP + 20, f"{sockets} sockets open in the daemon")

        # A delivery during the flood still goes out: descriptors are left for it.
        pub.request("POST", f"/v1/apps/{app['id']}/messages",
                    body=json.dumps({"type": "a.b", "data": {"n": 1}}),
                    headers={"Authorization": f"Bearer {d.admin_key}",
                             "Content-Type": "application/json"})
        resp = pub.getresponse()
        body = json.loads(resp.read())
        self.assertEqual(resp.status, 202, body)
        got = recv.wait_for(1, timeout=5, path="/flood")
        self.assertEqual(got[0].webhook_id, body["id"])
        dl = h.wait_delivery_state(d, app, body["id"], ep["id"], "succeeded", timeout=5)
        self.assertEqual(dl["attempts"], 1, dl)

        # /healthz from a new client answers once the header timeout has cut the flooders
        # (each waits its turn in the accept queue, so a few rounds of HEADER_TIMEOUT_MS).
        def healthz():
            try:
                st, b = d.api("GET", "/healthz", auth=False, timeout=2)
            except (OSError, http.client.HTTPException):
                return None
            return st == 200
        h.wait_until(healthz, timeout=15, interval=0.2, message="/healthz during the flood")

        # Accept errors (if any) are logged at most once a second; the log stays small.
        elapsed = time.monotonic() - t0
        log = d.log()[log_before:]
        accept_lines = [ln for ln in log.splitlines() if re.search(r"accept", ln, re.I)]
        self.assertLessEqual(len(accept_lines), int(elapsed) + 2, accept_lines[:5])
        self.assertLess(len(log), 64 * 1024, log[:2000])

    def test_slowloris_cut_by_header_timeout(self):
        d = self.flood_daemon()
        s = c.connect(d)
        self.addCleanup(s.close)
        start = time.monotonic()
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        closed = None
        # One byte every 0.25 s: never idle for IDLE_TIMEOUT_MS, yet never done.
        while time.monotonic() - start < (HEADER_TIMEOUT_MS / 1000 + 4) * h.SCALE:
            try:
                s.sendall(b"a")
            except (BrokenPipeError, ConnectionResetError):
                closed = time.monotonic() - start
                break
            took, got = c.closed_within(s, 0.25 / h.SCALE)
            self.assertNotIn(b"200 OK", got)
            if took is not None:
                closed = time.monotonic() - start
                break
        self.assertIsNotNone(closed, "a 1-byte-per-0.25s client was never cut off")
        self.assertGreaterEqual(closed, HEADER_TIMEOUT_MS / 1000 * 0.9)
        self.assertLessEqual(closed, (HEADER_TIMEOUT_MS / 1000 + 1.5) * h.SCALE)
        # A request that takes its time but finishes within the deadline is served.
        s2 = c.connect(d)
        self.addCleanup(s2.close)
        for b in (b"GET /heal", b"thz HTTP/1.1\r\n", b"Host: x\r\n", b"\r\n"):
            s2.sendall(b)
            time.sleep(HEADER_TIMEOUT_MS / 1000 / 8)
        r = c.read_response(s2)
        self.assertIsNotNone(r)
        self.assertEqual(r[0], 200, r)

    def test_keepalive_idle_timeout(self):
        d = self.flood_daemon()
        s = c.connect(d)
        self.addCleanup(s.close)
        s.sendall(c.request_bytes("GET", "/healthz"))
        r = c.read_response(s)
        self.assertEqual(r[0], 200, r)
        # Silent after its request: closed after about IDLE_TIMEOUT_MS, not before.
        took, got = c.closed_within(s, IDLE_TIMEOUT_MS / 1000 + 3)
        self.assertIsNotNone(took, "an idle keep-alive connection was never closed")
        self.assertEqual(got, b"")
        self.assertGreaterEqual(took, IDLE_TIMEOUT_MS / 1000 * 0.9)

    def test_nofile_raised_to_hard_limit(self):
        d = self.daemon(nofile=(NOFILE, 4 * NOFILE))
        with open(f"/proc/{d.proc.pid}/limits", encoding="ascii") as f:
            m = re.search(r"^Max open files\s+(\d+)\s+(\d+)", f.read(), re.M)
        self.assertEqual((int(m.group(1)), int(m.group(2))), (4 * NOFILE, 4 * NOFILE))


if __name__ == "__main__":
    h.main()

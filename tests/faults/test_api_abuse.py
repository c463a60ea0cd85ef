"""Hostile requests to the API: huge and endless headers, bodies over the limit that must
not be read, methods evhttp answered with a server error, control characters in ids.

Before the fix: header bytes were buffered without limit before authentication (an
unfinished 64 MiB header stayed in memory, a complete one was served); a body over
limits.max_payload_bytes was read before the 413; HEAD, OPTIONS, TRACE and unknown methods
got 501; /v1/apps/ab%00/endpoints acted on app "ab"."""

import json
import os
import socket
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import hookdtest as h  # noqa: E402
import apiclient as c  # noqa: E402

MAX_PAYLOAD = 1024


def error_code(r):
    status, headers, body = r
    e = h.error_of(json.loads(body))
    return status, e["code"], e["message"]


class HeaderLimitTest(h.HookdCase):

    def test_unfinished_huge_header_does_not_grow_rss(self):
        d = self.daemon()
        time.sleep(0.2)
        before = c.rss_kib(d.proc.pid)
        socks = []
        self.addCleanup(lambda: [s.close() for s in socks])
        chunk = b"a" * 65536
        for _ in range(2):
            s = c.connect(d)
            socks.append(s)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
        # Each sends up to 24 MiB of one header line that never ends, for a bounded time.
        deadline = time.monotonic() + 4 * h.SCALE
        sent = [0, 0]
        open_ = [True, True]
        while time.monotonic() < deadline and any(open_):
            for i, s in enumerate(socks):
                if not open_[i] or sent[i] >= 24 << 20:
                    open_[i] = False
                    continue
                s.settimeout(0.2)
                try:
                    sent[i] += s.send(chunk)
                except socket.timeout:
                    pass
                except (BrokenPipeError, ConnectionResetError):
                    open_[i] = False
        time.sleep(0.3)
        grown = c.rss_kib(d.proc.pid) - before
        sys.stderr.write(f"sent {sent} bytes of unfinished headers; RSS grew {grown} KiB\n")
        self.assertLess(grown, 8 * 1024, f"RSS grew {grown} KiB for {sum(sent)} header bytes")
        # The daemon still answers.
        st, _ = d.api("GET", "/healthz", auth=False, timeout=5)
        self.assertEqual(st, 200)

    def test_complete_over_limit_header_refused(self):
        d = self.daemon()
        raw = c.request_bytes("GET", "/healthz", {"X-Big": "a" * (64 * 1024)})
        r = c.exchange(d, raw)
        self.assertIsNotNone(r, "connection closed without an answer")
        st, code, msg = error_code(r)
        self.assertEqual(st, 431, r)
        self.assertEqual(code, "headers_too_large")
        self.assertIn("limits.max_header_bytes", msg)
        self.assertIn("16384", msg)
        # Also before authentication, and on a route that would need it.
        raw = c.request_bytes("POST", "/v1/apps", {"X-Big": "a" * (20 * 1024)}, b"{}")
        r = c.exchange(d, raw)
        self.assertIsNotNone(r)
        self.assertEqual(r[0], 431, r)

    def test_too_many_header_lines_refused(self):
        d = self.daemon()
        hs = {f"X-H{i}": "v" for i in range(150)}
        r = c.exchange(d, c.request_bytes("GET", "/healthz", hs))
        self.assertIsNotNone(r, "connection closed without an answer")
        st, code, msg = error_code(r)
        self.assertEqual(st, 431, r)
        self.assertEqual(code, "headers_too_large")
        self.assertIn("limits.max_header_lines", msg)
        self.assertIn("100", msg)

    def test_headers_within_limits_served(self):
        d = self.daemon()
        hs = {f"X-H{i}": "v" * 100 for i in range(90)}
        r = c.exchange(d, c.request_bytes("GET", "/healthz", hs))
        self.assertEqual(r[0], 200, r)
        # Limits are settable: a smaller one applies.
        d2 = self.daemon(limits={"max_header_bytes": 2048, "max_header_lines": 10})
        r = c.exchange(d2, c.request_bytes("GET", "/healthz", {"X-A": "a" * 3000}))
        self.assertEqual(error_code(r)[:2], (431, "headers_too_large"), r)
        self.assertIn("2048", error_code(r)[2])
        r = c.exchange(d2, c.request_bytes("GET", "/healthz", {f"X-{i}": "v" for i in range(11)}))
        self.assertEqual(error_code(r)[:2], (431, "headers_too_large"), r)
        r = c.exchange(d2, c.request_bytes("GET", "/healthz", {f"X-{i}": "v" for i in range(9)}))
        self.assertEqual(r[0], 200, r)


class BodyLimitTest(h.HookdCase):
    """A body over limits.max_payload_bytes is refused from what announces it, unread."""

    def setUp(self):
        super().setUp()
        self.d = self.daemon(limits={"max_payload_bytes": MAX_PAYLOAD})
        self.app = h.create_app(self.d, "app_body")
        self.path = f"/v1/apps/{self.app['id']}/messages"
        self.auth = {"Authorization": f"Bearer {self.d.admin_key}",
                     "Content-Type": "application/json"}

    def test_content_length_over_limit_refused_before_the_body(self):
        for length in (MAX_PAYLOAD + 1, 4 * MAX_PAYLOAD, 10 << 20):
            hs = dict(self.auth, **{"Content-Length": str(length)})
            s = c.connect(self.d)
            try:
                s.sendall(c.request_bytes("POST", self.path, hs))  # headers only, no body
                r = c.read_response(s, timeout=3)
            finally:
                s.close()
            self.assertIsNotNone(r, f"Content-Length {length}: closed without an answer")
            st, code, msg = error_code(r)
            self.assertEqual((st, code), (413, "payload_too_large"), r)
            self.assertIn("limits.max_payload_bytes", msg)
            self.assertIn(str(length), msg)

    def test_chunked_body_over_limit_refused_before_the_rest(self):
        hs = dict(self.auth, **{"Transfer-Encoding": "chunked"})
        s = c.connect(self.d)
        try:
            # One chunk announcing twice the limit; only its first bytes are sent.
            s.sendall(c.request_bytes("POST", self.path, hs) + b"%x\r\n" % (2 * MAX_PAYLOAD)
                      + b"{\"type\": ")
            r = c.read_response(s, timeout=3)
        finally:
            s.close()
        self.assertIsNotNone(r, "closed without an answer")
        st, code, msg = error_code(r)
        self.assertEqual((st, code), (413, "payload_too_large"), r)
        self.assertIn("limits.max_payload_bytes", msg)
        # Chunks that add up to more than the limit, each under it.
        s = c.connect(self.d)
        try:
            s.sendall(c.request_bytes("POST", self.path, hs))
            for _ in range(3):
                s.sendall(b"%x\r\n" % 400 + b" " * 400 + b"\r\n")
            r = c.read_response(s, timeout=3)
        finally:
            s.close()
        self.assertEqual(error_code(r)[:2], (413, "payload_too_large"), r)

    def test_bodies_within_limit_accepted(self):
        body = json.dumps({"type": "a.b", "data": {"x": "y" * 100}}).encode()
        r = c.exchange(self.d, c.request_bytes("POST", self.path, self.auth, body))
        self.assertEqual(r[0], 202, r)
        hs = dict(self.auth, **{"Transfer-Encoding": "chunked"})
        chunked = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 10]), body[i:i + 10])
                           for i in range(0, len(body), 10)) + b"0\r\n\r\n"
        # Two chunked requests pipelined on one connection, then a plain one.
        s = c.connect(self.d)
        try:
            s.sendall(c.request_bytes("POST", self.path, hs) + chunked
                      + c.request_bytes("POST", self.path, hs) + chunked
                      + c.request_bytes("GET", "/healthz"))
            for want in (202, 202, 200):
                r = c.read_response(s)
                self.assertIsNotNone(r)
                self.assertEqual(r[0], want, r)
        finally:
            s.close()


class MethodTest(h.HookdCase):
    """Methods a route does not serve: 405 with Allow, never a 5xx."""

    def allow(self, r):
        return {m.strip() for m in r[1].get("allow", "").split(",") if m.strip()}

    def test_methods_get_405_with_allow(self):
        d = self.daemon()
        app = h.create_app(d, "app_m")
        ep = h.create_endpoint(d, app, "http://127.0.0.1:9/x")
        auth = {"Authorization": f"Bearer {d.admin_key}"}
        cases = [
            ("/v1/apps", {"GET", "POST"}),
            (f"/v1/apps/{app['id']}", {"GET", "PATCH"}),
            (f"/v1/apps/{app['id']}/endpoints/{ep['id']}", {"GET", "PATCH", "DELETE"}),
            (f"/v1/apps/{app['id']}/endpoints/{ep['id']}/secret/rotate", {"POST"}),
            (f"/v1/apps/{app['id']}/endpoints/{ep['id']}/status", {"GET"}),
            (f"/v1/apps/{app['id']}/endpoints/{ep['id']}/deliveries", {"GET"}),
            (f"/v1/apps/{app['id']}/endpoints/{ep['id']}/recover", {"POST"}),
            (f"/v1/apps/{app['id']}/endpoints/{ep['id']}/recover/rcv_x", {"GET"}),
            (f"/v1/apps/{app['id']}/dead", {"GET"}),
            ("/v1/policies", {"GET"}),
            ("/v1/policies/p1", {"GET", "PUT"}),
        ]
        for path, methods in cases:
            for m in ("TRACE", "FOO", "PUT" if "PUT" not in methods else "POST"):
                r = c.exchange(d, c.request_bytes(m, path, auth))
                self.assertIsNotNone(r, f"{m} {path}: closed")
                self.assertEqual(r[0], 405, f"{m} {path}: {r}")
                st, code, _ = error_code(r)
                self.assertEqual((st, code), (405, "method_not_allowed"), f"{m} {path}: {r}")
                self.assertEqual(self.allow(r), methods | {"OPTIONS"}, f"{m} {path}: {r}")
            r = c.exchange(d, c.request_bytes("OPTIONS", path, auth))
            self.assertIn(r[0], (200, 204), f"OPTIONS {path}: {r}")
            self.assertEqual(self.allow(r), methods | {"OPTIONS"}, f"OPTIONS {path}: {r}")
        # /healthz needs no key, for OPTIONS and 405 alike.
        r = c.exchange(d, c.request_bytes("DELETE", "/healthz"))
        self.assertEqual(r[0], 405, r)
        self.assertEqual(self.allow(r), {"GET", "OPTIONS"}, r)
        # HEAD: 405 without a body, and the connection stays usable (framing intact).
        s = c.connect(d)
        try:
            s.sendall(c.request_bytes("HEAD", "/healthz") + c.request_bytes("GET", "/healthz"))
            r = c.read_response(s, head=True)
            self.assertEqual(r[0], 405, r)
            self.assertEqual(self.allow(r), {"GET", "OPTIONS"}, r)
            r = c.read_response(s)
            self.assertEqual((r[0], r[2]), (200, b'{"status":"ok"}\n'), r)
        finally:
            s.close()
        # An unknown route is still 404, whatever the method.
        r = c.exchange(d, c.request_bytes("FOO", "/v1/nothing", auth))
        self.assertEqual(error_code(r)[:2], (404, "not_found"), r)


class PathTest(h.HookdCase):

    def test_control_characters_in_path_segments(self):
        d = self.daemon()
        h.create_app(d, "ab")
        for seg in ("ab%00", "ab%00x", "ab%01", "ab%1F", "ab%7F", "%0Aab"):
            for method, path, body in (
                    ("POST", f"/v1/apps/{seg}/endpoints", {"url": "http://127.0.0.1:9/x"}),
                    ("GET", f"/v1/apps/{seg}", None),
                    ("GET", f"/v1/apps/{seg}/messages", None)):
                st, b = d.api(method, path, body)
                self.assertEqual(st, 400, f"{method} {path}: {b}")
                e = h.error_of(b)
                self.assertEqual(e["code"], "invalid_path", b)
                self.assertIn(seg, e["message"], b)
        st, b = d.api("GET", "/v1/apps/ab/endpoints")
        self.assertEqual((st, b["data"]), (200, []), b)
        # Percent-encoded printable characters still decode as before.
        st, b = d.api("GET", "/v1/apps/%61b")
        self.assertEqual((st, b["id"]), (200, "ab"), b)


if __name__ == "__main__":
    h.main()

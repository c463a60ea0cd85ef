"""Hostile receivers: endless or huge response bodies, oversized response headers.

Defects: (1) hookd read every response body to its end, keeping only the first 4 KiB: a
receiver answering 200 with an endless (or 10 MiB, slowly sent) body held the transfer,
an in-flight slot and CPU until delivery.timeout_ms, and the attempt then failed with a
timeout although the receiver had said 200. (2) A response header over libcurl's limit
was recorded as "Out of memory". Now reading stops once the excerpt is full: the attempt
records the status and the excerpt at once, and the connection is closed, not reused;
an oversized header is recorded as "response header too large".

Receivers are raw socket servers on 127.0.0.1; the delivery timeout is 30 s so that an
attempt recorded within a few seconds proves hookd stopped reading early.
"""

import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import hookdtest as h  # noqa: E402

PATTERN = b"0123456789abcdef"
EXCERPT_MAX = 4096  # TRANSPORT_RESPONSE_MAX
# Well under delivery.timeout_ms (30 s) below; scaled by h.SCALE in wait_until.
QUICK_S = 5.0


class HostileReceiver(h.RawServer):
    """Accepts on 127.0.0.1; for each request (read in full) calls answer(conn, n), n being
    the request's number on this connection, which writes whatever it likes. Records how
    many connections were accepted and how many requests arrived."""

    def __init__(self, answer):
        self.answer = answer
        self.requests = 0
        super().__init__()

    def serve(self, c):
        c.settimeout(60)
        buf = b""
        n = 0
        try:
            while not self.stopping:
                head, buf = self.read_request(c, buf)
                if head is None:
                    break
                n += 1
                with self.lock:
                    self.requests += 1
                if not self.answer(self, c, n):
                    break
        except OSError:
            pass  # hookd closed the connection: expected for the hostile answers
        finally:
            c.close()



def endless_chunked(recv, c, n):
    """200 with a chunked body that never ends (until hookd closes)."""
    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = PATTERN * 4096  # 64 KiB
    frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    while not recv.stopping:
        c.sendall(frame)
    return False


def slow_ten_mib(recv, c, n):
    """200 with Content-Length 10 MiB: the first 16 KiB at once, then 64 KiB every 0.1 s
    (16 s for all of it, were it read to the end)."""
    total = 10 * 1024 * 1024
    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
              + f"Content-Length: {total}\r\n\r\n".encode())
    sent = 0
    first = PATTERN * 1024
    c.sendall(first)
    sent += len(first)
    chunk = PATTERN * 4096
    while sent < total and not recv.stopping:
        time.sleep(0.1)
        part = chunk[:total - sent]
        c.sendall(part)
        sent += len(part)
    return True


def huge_header_line(recv, c, n):
    """One 200 KiB header line (libcurl refuses a line over 100 KiB)."""
    c.sendall(b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * (200 * 1024)
              + b"\r\nContent-Length: 2\r\n\r\nok")
    return True


def many_headers(recv, c, n):
    """10,000 header lines of ~100 bytes each: 1 MiB of headers, no line over any limit."""
    line = b"X-Pad-%05d: " + b"p" * 84 + b"\r\n"
    c.sendall(b"HTTP/1.1 200 OK\r\n")
    for i in range(10000):
        c.sendall(line % i)
    c.sendall(b"Content-Length: 2\r\n\r\nok")
    return True


class HostileReceiverTest(h.HookdCase):

    def hostile(self, answer):
        r = HostileReceiver(answer)
        self.addCleanup(r.close)
        return r

    def start(self):
        return self.daemon(delivery={"timeout_ms": 30000, "connect_timeout_ms": 5000})

    def first_attempt(self, d, app, msg_id, timeout=QUICK_S):
        t0 = time.monotonic()
        a = h.wait_until(lambda: (h.get_attempts(d, app, msg_id) or [None])[0], timeout=timeout,
                         message=f"the first attempt of {msg_id} to be recorded "
                                 "(the delivery timeout is 30 s)")
        return a, time.monotonic() - t0

    def assert_excerpt(self, a):
        self.assertEqual(a["status"], 200, a)
        self.assertIsNone(a["error"], a)
        self.assertIsInstance(a["response"], str, a)
        self.assertEqual(len(a["response"]), EXCERPT_MAX, len(a["response"]))
        self.assertTrue((PATTERN * 512).decode().startswith(a["response"]), a["response"][:64])

    def test_endless_body_stops_at_excerpt(self):
        recv = self.hostile(endless_chunked)
        d = self.start()
        app = h.create_app(d)
        ep = h.create_endpoint(d, app, recv.url(), retry_schedule=[3600])
        msg_id = h.publish(d, app, "a.b", {})["id"]
        a, took = self.first_attempt(d, app, msg_id)
        sys.stderr.write(f"endless body: attempt recorded after {took:.2f}s: status {a['status']}\n")
        self.assert_excerpt(a)
        h.wait_delivery_state(d, app, msg_id, ep["id"], "succeeded", attempts=1)

        # The connection that was cut short is not reused: the next delivery opens a new one
        # (on a reused one, the rest of the endless body would be read as its response).
        msg2 = h.publish(d, app, "a.b", {})["id"]
        a2, _ = self.first_attempt(d, app, msg2)
        self.assert_excerpt(a2)
        with recv.lock:
            self.assertEqual((recv.connections, recv.requests), (2, 2),
                             "each delivery must arrive on its own connection")

    def test_slow_ten_mib_body_stops_at_excerpt(self):
        recv = self.hostile(slow_ten_mib)
        d = self.start()
        app = h.create_app(d)
        ep = h.create_endpoint(d, app, recv.url(), retry_schedule=[3600])
        msg_id = h.publish(d, app, "a.b", {})["id"]
        a, took = self.first_attempt(d, app, msg_id)
        sys.stderr.write(f"10 MiB body: attempt recorded after {took:.2f}s\n")
        self.assert_excerpt(a)
        h.wait_delivery_state(d, app, msg_id, ep["id"], "succeeded", attempts=1)

    def assert_header_too_large(self, answer):
        recv = self.hostile(answer)
        d = self.start()
        app = h.create_app(d)
        ep = h.create_endpoint(d, app, recv.url(), retry_schedule=[3600])
        msg_id = h.publish(d, app, "a.b", {})["id"]
        a, _ = self.first_attempt(d, app, msg_id)
        sys.stderr.write(f"attempt error: {a['error']!r}\n")
        self.assertIsNone(a["status"], a)
        self.assertIsInstance(a["error"], str, a)
        self.assertIn("response header too large", a["error"], a)
        self.assertNotIn("memory", a["error"].lower(), a)
        dl = h.wait_delivery_state(d, app, msg_id, ep["id"], "pending", attempts=1)
        self.assertIn("response header too large", dl.get("last_error") or "", dl)
        # The daemon is fine: it still answers.
        st, _ = d.api("GET", "/healthz", auth=False)
        self.assertEqual(st, 200)

    def test_huge_header_line(self):
        self.assert_header_too_large(huge_header_line)

    def test_many_headers(self):
        self.assert_header_too_large(many_headers)


if __name__ == "__main__":
    h.main()

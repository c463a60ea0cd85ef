"""Proxy variables in hookd's environment must not bypass the destination policy.

Defect: libcurl reads http_proxy / https_proxy / all_proxy (and HTTPS_PROXY, ALL_PROXY) by
itself. With one set, every delivery went to the proxy and only the proxy's address was
checked against security.allow_destinations: an endpoint on a refused address was
delivered through an allowed proxy. hookd now ignores proxy variables (docs/configuration.md,
"Proxies").

Setup, loopback only: the "proxy" is a socket server on 127.0.0.1 that records every
connection and answers 200 to anything; allow_destinations lists only 127.0.0.1/32 (the
proxy) and 127.0.0.3/32 (a real receiver). Endpoints on 127.0.0.2 must be refused as
127.0.0.2 (the real destination), the one on 127.0.0.3 delivered directly, and the proxy
never contacted.
"""

import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import hookdtest as h  # noqa: E402

PROXY_VARS = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy",
              "ALL_PROXY", "no_proxy", "NO_PROXY")


class RecordingServer(h.RawServer):
    """Accepts on host:0, records each connection's first bytes, answers 200 with a short
    body. Used as the proxy (it must never be contacted) and as a plain receiver."""

    def __init__(self, host):
        self.seen = []  # first bytes of every connection
        super().__init__(host)

    def serve(self, c):
        c.settimeout(5)
        data = b""
        try:
            while b"\r\n\r\n" not in data:
                part = c.recv(65536)
                if not part:
                    break
                data += part
            with self.lock:
                self.seen.append(data[:200])
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\nConnection: close\r\n\r\nproxied")
        except OSError:
            pass
        finally:
            c.close()

    def count(self):
        with self.lock:
            return len(self.seen)



class ProxyEnvTest(h.HookdCase):

    def setUp(self):
        super().setUp()
        self.proxy = RecordingServer("127.0.0.1")
        self.addCleanup(self.proxy.close)
        self.direct = RecordingServer("127.0.0.3")
        self.addCleanup(self.direct.close)

    def start(self, variables):
        env = {k: None for k in PROXY_VARS}
        env.update(variables)
        return self.daemon(allow_destinations=["127.0.0.1/32", "127.0.0.3/32"], env=env,
                           delivery={"timeout_ms": 5000, "connect_timeout_ms": 2000})

    def first_attempt(self, d, app, msg_id):
        return h.wait_until(lambda: (h.get_attempts(d, app, msg_id) or [None])[0], timeout=10,
                            message=f"an attempt for {msg_id}")

    def check(self, variables):
        """Publishes to an http and an https endpoint on refused 127.0.0.2 and to an http
        endpoint on allowed 127.0.0.3; asserts refusals name 127.0.0.2, the direct receiver
        got its delivery and the proxy saw nothing."""
        d = self.start(variables)
        app = h.create_app(d)
        refused = h.free_port("127.0.0.2")
        ep_http = h.create_endpoint(d, app, f"http://127.0.0.2:{refused}/in", event_types=["x.http"],
                                    retry_schedule=[3600])
        ep_https = h.create_endpoint(d, app, f"https://127.0.0.2:{refused}/in",
                                     event_types=["x.https"], retry_schedule=[3600])
        ep_ok = h.create_endpoint(d, app, f"http://127.0.0.3:{self.direct.port}/in",
                                  event_types=["x.ok"], retry_schedule=[3600])
        m_http = h.publish(d, app, "x.http", {})["id"]
        m_https = h.publish(d, app, "x.https", {})["id"]
        m_ok = h.publish(d, app, "x.ok", {})["id"]

        for msg_id, ep in ((m_http, ep_http), (m_https, ep_https)):
            a = self.first_attempt(d, app, msg_id)
            self.assertIsNone(a["status"], f"{ep['url']} answered through the proxy: {a}")
            self.assertIn("destination blocked", a["error"] or "", a)
            self.assertIn("127.0.0.2", a["error"], a)
        dl = h.wait_delivery_state(d, app, m_ok, ep_ok["id"], "succeeded", attempts=1)
        self.assertEqual(dl.get("last_status"), 200, dl)
        self.assertEqual(self.direct.count(), 1, self.direct.seen)
        time.sleep(0.2)
        self.assertEqual(self.proxy.count(), 0,
                         f"the proxy in {sorted(variables)} was contacted: {self.proxy.seen}")

    def test_scheme_proxies_ignored(self):
        p = f"http://127.0.0.1:{self.proxy.port}"
        self.check({"http_proxy": p, "HTTP_PROXY": p, "https_proxy": p, "HTTPS_PROXY": p})

    def test_all_proxy_ignored(self):
        p = f"http://127.0.0.1:{self.proxy.port}"
        self.check({"all_proxy": p, "ALL_PROXY": p})

    def test_socks_all_proxy_ignored(self):
        self.check({"ALL_PROXY": f"socks5h://127.0.0.1:{self.proxy.port}"})


if __name__ == "__main__":
    h.main()

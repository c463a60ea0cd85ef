"""The egress proxy end to end, on loopback only: delivery.proxy and an endpoint's "proxy"
override, CONNECT tunnels for http:// and https:// receivers, a proxy that is down, and the
destination guard: the proxy's own address is checked like any destination, and the
receiver's host is resolved and checked by hookd, which hands the proxy the checked address
(never a name the proxy would resolve again)."""

import os
import re
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hookdtest as h  # noqa: E402
import peers_tls  # noqa: E402


class ProxyTest(h.HookdCase):

    def proxy(self, host=h.HOST, port=0):
        p = peers_tls.ConnectProxy(host=host, port=port)
        self.addCleanup(p.close)
        return p

    def first_attempt(self, d, app, msg_id):
        return h.wait_until(lambda: (h.get_attempts(d, app, msg_id) or [None])[0],
                            message=f"an attempt for {msg_id}")

    def test_deliveries_go_through_the_proxy(self):
        pki = peers_tls.Pki()
        self.addCleanup(pki.cleanup)
        recv = self.receiver()
        tls_recv = peers_tls.TlsReceiver(pki, client_cert="none")
        self.addCleanup(tls_recv.close)
        p = self.proxy()
        d = self.daemon(delivery={"proxy": p.url()})
        app = h.create_app(d)
        plain = h.create_endpoint(d, app, recv.url("/via"), event_types=["plain"])
        secure = h.create_endpoint(d, app, tls_recv.url("/via-tls"), event_types=["secure"],
                                   tls={"ca": pki.ca_pem})
        self.assertIsNone(plain["proxy"])
        m1 = h.publish(d, app, "plain", {"n": 1})["id"]
        got = recv.wait_for(1, path="/via")[0]
        self.assertEqual(got.webhook_id, m1)
        self.assertTrue(recv.verify(plain["secret"], got))
        self.assertIn(f"127.0.0.1:{recv.port}", p.seen())
        m2 = h.publish(d, app, "secure", {"n": 2})["id"]
        self.assertEqual(tls_recv.wait_for(1, path="/via-tls", scale=h.SCALE)[0].webhook_id, m2)
        self.assertIn(f"127.0.0.1:{tls_recv.port}", p.seen())
        h.wait_delivery_state(d, app, m2, secure["id"], "succeeded", attempts=1)

    def test_endpoint_override(self):
        recv = self.receiver()
        p1, p2 = self.proxy(), self.proxy()
        d = self.daemon(delivery={"proxy": p1.url()})
        app = h.create_app(d)
        direct = h.create_endpoint(d, app, recv.url("/direct"), event_types=["direct"], proxy="")
        other = h.create_endpoint(d, app, recv.url("/other"), event_types=["other"],
                                  proxy=p2.url())
        self.assertEqual((direct["proxy"], other["proxy"]), ("", p2.url()))
        h.publish(d, app, "direct", {})
        recv.wait_for(1, path="/direct")
        self.assertEqual((p1.seen(), p2.seen()), ([], []))
        h.publish(d, app, "other", {})
        recv.wait_for(1, path="/other")
        self.assertEqual((p1.seen(), p2.seen()), ([], [f"127.0.0.1:{recv.port}"]))
        # null goes back to delivery.proxy.
        st, b = d.api("PATCH", f"/v1/apps/{app['id']}/endpoints/{direct['id']}", {"proxy": None})
        self.assertEqual(st, 200, b)
        h.publish(d, app, "direct", {})
        recv.wait_for(2, path="/direct")
        self.assertEqual(p1.seen(), [f"127.0.0.1:{recv.port}"])

    def test_endpoint_with_an_auth_scheme_keeps_its_proxy(self):
        # An attempt decorated by an auth scheme is sent by core/auth.c, which once dropped
        # the endpoint's proxy (and TLS options) on the way: such an endpoint went direct.
        recv = self.receiver()
        p = self.proxy()
        d = self.daemon()
        app = h.create_app(d)
        h.create_endpoint(d, app, recv.url("/authed"), proxy=p.url(),
                          auth={"scheme": "bearer", "token": "proxied-token-123"})
        h.publish(d, app, "a.b", {})
        got = recv.wait_for(1, path="/authed")[0]
        self.assertEqual(got.headers.get("authorization"), "Bearer proxied-token-123")
        self.assertEqual(p.seen(), [f"127.0.0.1:{recv.port}"])

    def test_proxy_down_then_back(self):
        recv = self.receiver()
        p = self.proxy()
        port = p.port
        p.stop()
        d = self.daemon(delivery={"proxy": f"http://127.0.0.1:{port}"})
        app = h.create_app(d)
        ep = h.create_endpoint(d, app, recv.url("/later"), retry_schedule=[1, 1, 1, 1, 1, 1, 1, 1])
        m = h.publish(d, app, "a.b", {})["id"]
        a = self.first_attempt(d, app, m)
        sys.stderr.write(f"proxy down: {a['error']!r}\n")
        self.assertIsNone(a["status"], a)
        self.assertTrue(a["error"], a)
        self.assertEqual(h.delivery_for(h.get_message(d, app, m), ep["id"])["state"], "pending")
        self.assertEqual(recv.count(), 0)
        p.start()
        got = recv.wait_for(1, path="/later", timeout=20)
        self.assertEqual([r.webhook_id for r in got], [m])
        dl = h.wait_delivery_state(d, app, m, ep["id"], "succeeded")
        self.assertGreaterEqual(dl["attempts"], 2, dl)
        self.assertIn(f"127.0.0.1:{recv.port}", p.seen())

    def test_guard_checks_the_target_not_only_the_proxy(self):
        recv = self.receiver()
        p = self.proxy()
        d = self.daemon(allow_destinations=["127.0.0.1/32"], delivery={"proxy": p.url()})
        app = h.create_app(d)
        h.create_endpoint(d, app, f"http://127.0.0.2:{recv.port}/no", event_types=["literal"],
                          retry_schedule=[600])
        named = h.create_endpoint(d, app, recv.url("/name", host="localhost"),
                                  event_types=["named"])
        m = h.publish(d, app, "literal", {})["id"]
        a = self.first_attempt(d, app, m)
        sys.stderr.write(f"refused target: {a['error']!r}\n")
        self.assertIsNone(a["status"], a)
        self.assertIn("destination blocked: 127.0.0.2 is a loopback address", a["error"])
        self.assertIn("not passed to the proxy", a["error"])
        self.assertEqual(p.seen(), [])
        # A name is resolved by hookd; the proxy is asked for the checked address.
        m2 = h.publish(d, app, "named", {})["id"]
        self.assertEqual(recv.wait_for(1, path="/name")[0].webhook_id, m2)
        self.assertEqual(p.seen(), [f"127.0.0.1:{recv.port}"])
        h.wait_delivery_state(d, app, m2, named["id"], "succeeded", attempts=1)

    def test_ipv6_target_and_proxy_refusal(self):
        """An IPv6 receiver is asked for as [addr]:port; a proxy that refuses the tunnel
        (here: nothing listens there, 502) fails the attempt with curl's reason."""
        p = self.proxy()
        port = h.free_port()
        d = self.daemon(delivery={"proxy": p.url()})
        app = h.create_app(d)
        h.create_endpoint(d, app, f"http://[::1]:{port}/v6", retry_schedule=[600])
        m = h.publish(d, app, "a.b", {})["id"]
        a = self.first_attempt(d, app, m)
        sys.stderr.write(f"tunnel refused: {a['error']!r}\n")
        self.assertIsNone(a["status"], a)
        self.assertIn("502", a["error"])
        self.assertEqual(p.seen(), [f"[::1]:{port}"])

    def test_name_resolving_only_to_refused_addresses(self):
        recv = self.receiver()
        p = self.proxy()
        d = self.daemon(allow_destinations=["127.0.0.2/32"], delivery={"proxy": p.url()})
        app = h.create_app(d)
        # localhost resolves to 127.0.0.1 only (/etc/hosts), which is refused: the attempt
        # ends before anything is sent to the proxy.
        h.create_endpoint(d, app, recv.url("/x", host="localhost"), retry_schedule=[600])
        m = h.publish(d, app, "a.b", {})["id"]
        a = self.first_attempt(d, app, m)
        sys.stderr.write(f"refused name: {a['error']!r}\n")
        self.assertIsNone(a["status"], a)
        self.assertRegex(a["error"], re.compile(r"^destination blocked: 127\.0\.0\.1 is a loopback"))
        self.assertIn("not passed to the proxy", a["error"])
        self.assertEqual(p.seen(), [])
        self.assertEqual(recv.count(), 0)

    def test_proxy_address_is_guarded(self):
        recv = self.receiver()
        p = self.proxy(host="127.0.0.3")
        d = self.daemon(allow_destinations=["127.0.0.1/32"], delivery={"proxy": p.url()})
        app = h.create_app(d)
        h.create_endpoint(d, app, recv.url("/p"), retry_schedule=[600])
        m = h.publish(d, app, "a.b", {})["id"]
        a = self.first_attempt(d, app, m)
        sys.stderr.write(f"refused proxy: {a['error']!r}\n")
        self.assertIsNone(a["status"], a)
        self.assertIn("proxy blocked: 127.0.0.3 is a loopback address", a["error"])
        self.assertEqual(p.seen(), [])
        self.assertEqual(recv.count(), 0)

    def test_proxy_values_checked(self):
        d = self.daemon()
        app = h.create_app(d)
        path = f"/v1/apps/{app['id']}/endpoints"
        for value, why in [("socks5://127.0.0.1:1080", "expected http://HOST:PORT"),
                           ("https://127.0.0.1:3128", "https:// proxy is not supported"),
                           ("http://127.0.0.1", "needs a port"),
                           ("http://u:p@127.0.0.1:3128", "user names and passwords"),
                           ("http://127.0.0.1:3128/path", "without a path"),
                           ("http://127.0.0.1:0", "1..65535"),
                           (5, "must be a string")]:
            st, b = d.api("POST", path, {"url": "http://127.0.0.1:9/", "proxy": value})
            self.assertEqual(st, 400, (value, b))
            e = h.error_of(b)
            self.assertEqual(e["field"], "proxy", b)
            self.assertIn(why, e["message"], b)
        ok = h.create_endpoint(d, app, "http://127.0.0.1:9/", proxy="http://[::1]:3128/")
        self.assertEqual(ok["proxy"], "http://[::1]:3128/")
        for value, why in [("ftp://127.0.0.1:21", "expected http://HOST:PORT"),
                           ("http://proxy", "needs a port")]:
            code, out = h.serve_config(self, h.to_yaml({
                "listen": f"127.0.0.1:{h.free_port()}", "delivery": {"proxy": value}}) + "\n")
            self.assertNotEqual(code, 0, out)
            self.assertIn("delivery.proxy: ", out)
            self.assertIn(why, out)
        code, out = h.serve_config(self, h.to_yaml({
            "listen": f"127.0.0.1:{h.free_port()}",
            "apps": [{"id": "a", "endpoints": [
                {"id": "e", "url": "http://127.0.0.1:9/", "proxy": "http://x"}]}]}) + "\n")
        self.assertNotEqual(code, 0, out)
        self.assertIn("apps[0].endpoints[0].proxy: the proxy URL needs a port", out)


if __name__ == "__main__":
    h.main()

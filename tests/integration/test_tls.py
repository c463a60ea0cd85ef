"""Endpoint "tls" options end to end, on loopback only: a client certificate (mTLS), a CA
bundle trusted instead of the system's, SPKI pinning; their checks at the API; the key never
shown in full; no certificate leaking from one endpoint to another through a reused handle
or connection. Certificates are made by the test with the openssl CLI (peers_tls.Pki)."""

import json
import os
import re
import shutil
import sys
import tempfile

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hookdtest as h  # noqa: E402
import peers_tls  # noqa: E402

PKI = None
BUILD = os.environ.get("HOOKD_BUILD_DIR") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "build")
FIXTURES = os.path.join(BUILD, "plugin-fixtures")


def setUpModule():
    global PKI
    PKI = peers_tls.Pki()


def tearDownModule():
    PKI.cleanup()


def key_lines(key):
    """The base64 lines of a PEM key: none of them may appear in any API answer."""
    return [ln for ln in key.splitlines() if ln and not ln.startswith("-----")]


class TlsTest(h.HookdCase):

    def tls_receiver(self, client_cert="required"):
        r = peers_tls.TlsReceiver(PKI, client_cert=client_cert)
        self.addCleanup(r.close)
        return r

    def first_attempt(self, d, app, msg_id):
        return h.wait_until(lambda: (h.get_attempts(d, app, msg_id) or [None])[0],
                            message=f"an attempt for {msg_id}")

    def mtls(self, **extra):
        t = {"client_cert": PKI.client_pem, "client_key": PKI.client_key, "ca": PKI.ca_pem}
        t.update(extra)
        return t

    def test_client_certificate_required(self):
        recv = self.tls_receiver("required")
        d = self.daemon()
        app = h.create_app(d)
        bare = h.create_endpoint(d, app, recv.url("/bare"), event_types=["no.cert"],
                                 retry_schedule=[600], tls={"ca": PKI.ca_pem})
        with_cert = h.create_endpoint(d, app, recv.url("/mtls"), event_types=["with.cert"],
                                      tls=self.mtls())
        m1 = h.publish(d, app, "no.cert", {"n": 1})["id"]
        a = self.first_attempt(d, app, m1)
        sys.stderr.write(f"without a client certificate: {a['error']!r}\n")
        self.assertIsNone(a["status"], a)
        self.assertTrue(a["error"], a)
        self.assertEqual(recv.get("/bare"), [])
        self.assertTrue(recv.handshake_failures, "the receiver saw no refused handshake")

        m2 = h.publish(d, app, "with.cert", {"n": 2})["id"]
        got = recv.wait_for(1, path="/mtls", scale=h.SCALE)[0]
        self.assertEqual(got.webhook_id, m2)
        self.assertEqual(got.peer, "hookd-client")
        self.assertTrue(h.verify_v1(with_cert["secret"], got.headers, got.body))
        h.wait_delivery_state(d, app, m2, with_cert["id"], "succeeded", attempts=1)
        self.assertEqual(h.delivery_for(h.get_message(d, app, m1), bare["id"])["state"], "pending")

    def test_certificate_of_another_ca_is_refused(self):
        recv = self.tls_receiver("required")
        d = self.daemon()
        app = h.create_app(d)
        h.create_endpoint(d, app, recv.url("/stranger"), retry_schedule=[600],
                          tls=self.mtls(client_cert=PKI.stranger_pem, client_key=PKI.stranger_key))
        m = h.publish(d, app, "a.b", {})["id"]
        a = self.first_attempt(d, app, m)
        self.assertIsNone(a["status"], a)
        self.assertEqual(recv.get(), [])

    def test_pinning(self):
        recv = self.tls_receiver("none")
        d = self.daemon()
        app = h.create_app(d)
        right = PKI.pin("server.pem")
        wrong = PKI.pin("client.pem")
        self.assertNotEqual(right, wrong)
        bad = h.create_endpoint(d, app, recv.url("/wrong-pin"), event_types=["pin.wrong"],
                                retry_schedule=[600], tls={"ca": PKI.ca_pem, "pin": wrong})
        good = h.create_endpoint(d, app, recv.url("/right-pin"), event_types=["pin.right"],
                                 tls={"ca": PKI.ca_pem, "pin": wrong + ";" + right})
        m1 = h.publish(d, app, "pin.wrong", {})["id"]
        a = self.first_attempt(d, app, m1)
        sys.stderr.write(f"wrong pin: {a['error']!r}\n")
        self.assertIsNone(a["status"], a)
        self.assertRegex(a["error"], re.compile(r"pinned", re.I))
        self.assertEqual(recv.get("/wrong-pin"), [])
        m2 = h.publish(d, app, "pin.right", {})["id"]
        self.assertEqual(recv.wait_for(1, path="/right-pin", scale=h.SCALE)[0].webhook_id, m2)
        h.wait_delivery_state(d, app, m2, good["id"], "succeeded", attempts=1)
        self.assertIsNotNone(bad)

    def test_custom_ca_bundle(self):
        recv = self.tls_receiver("none")
        d = self.daemon()
        app = h.create_app(d)
        h.create_endpoint(d, app, recv.url("/system"), event_types=["ca.system"], retry_schedule=[600])
        h.create_endpoint(d, app, recv.url("/other"), event_types=["ca.other"], retry_schedule=[600],
                          tls={"ca": PKI.other_ca_pem})
        ok = h.create_endpoint(d, app, recv.url("/custom"), event_types=["ca.custom"],
                               tls={"ca": PKI.ca_pem})
        for t in ("ca.system", "ca.other"):
            m = h.publish(d, app, t, {})["id"]
            a = self.first_attempt(d, app, m)
            sys.stderr.write(f"{t}: {a['error']!r}\n")
            self.assertIsNone(a["status"], a)
            self.assertRegex(a["error"], re.compile(r"certificate|SSL|peer", re.I))
        self.assertEqual(recv.get(), [])
        m = h.publish(d, app, "ca.custom", {})["id"]
        self.assertEqual(recv.wait_for(1, path="/custom", scale=h.SCALE)[0].webhook_id, m)
        h.wait_delivery_state(d, app, m, ok["id"], "succeeded", attempts=1)

    def test_no_certificate_leaks_between_endpoints(self):
        """Two endpoints on one receiver, one with a client certificate and one without, in
        turns: each request arrives with exactly its own endpoint's certificate, whatever
        handle or cached connection the previous one used."""
        recv = self.tls_receiver("optional")
        d = self.daemon(delivery={"max_inflight": 1})
        app = h.create_app(d)
        h.create_endpoint(d, app, recv.url("/cert"), event_types=["with"], tls=self.mtls())
        h.create_endpoint(d, app, recv.url("/nocert"), event_types=["without"],
                          tls={"ca": PKI.ca_pem})
        order = ["with", "without", "with", "without", "without", "with"]
        for i, t in enumerate(order):
            h.publish(d, app, t, {"i": i})
            recv.wait_for(i + 1, scale=h.SCALE)
        got = recv.get()
        self.assertEqual(len(got), len(order))
        for r in got:
            want = "hookd-client" if r.path == "/cert" else None
            self.assertEqual(r.peer, want, got)

    def test_auth_scheme_client_certificate(self):
        """An auth scheme's client certificate (auth_client_cert: PEM file paths, here from
        the certauth fixture's "certfile" scheme) is presented; an endpoint's own
        tls.client_cert wins over it: the scheme's is the other CA's and would be refused."""
        pdir = tempfile.mkdtemp(prefix="hookd-plugins-")
        self.addCleanup(shutil.rmtree, pdir, True)
        os.symlink(os.path.join(FIXTURES, "certauth.so"), os.path.join(pdir, "certauth.so"))
        recv = self.tls_receiver("optional")
        d = self.daemon(delivery={"max_inflight": 1}, extra={"plugins": {"dir": pdir}})
        app = h.create_app(d)
        h.create_endpoint(d, app, recv.url("/scheme-cert"), event_types=["scheme"],
                          tls={"ca": PKI.ca_pem},
                          auth={"scheme": "certfile", "cert": PKI.path("client.pem"),
                                "key": PKI.path("client.key")})
        h.create_endpoint(d, app, recv.url("/blob-wins"), event_types=["blob"],
                          tls=self.mtls(),
                          auth={"scheme": "certfile", "cert": PKI.path("stranger.pem"),
                                "key": PKI.path("stranger.key")})
        for i, t in enumerate(["scheme", "blob", "scheme", "blob"]):
            h.publish(d, app, t, {"i": i})
            recv.wait_for(i + 1, scale=h.SCALE)
        got = recv.get()
        self.assertEqual(sorted(r.path for r in got), ["/blob-wins"] * 2 + ["/scheme-cert"] * 2)
        for r in got:
            self.assertEqual(r.peer, "hookd-client", got)
        self.assertEqual(recv.handshake_failures, [])

    def test_no_ca_leaks_to_an_endpoint_without_tls(self):
        """An endpoint with the test CA delivers; then one without TLS options, to the same
        receiver, must be refused by the system's CAs: neither the handle's CA blob nor the
        verified connection may carry over."""
        recv = self.tls_receiver("none")
        d = self.daemon(delivery={"max_inflight": 1})
        app = h.create_app(d)
        h.create_endpoint(d, app, recv.url("/trusted"), event_types=["trusted"],
                          tls={"ca": PKI.ca_pem, "pin": PKI.pin("server.pem")})
        h.create_endpoint(d, app, recv.url("/plain"), event_types=["plain"], retry_schedule=[600])
        for round_ in range(2):
            h.publish(d, app, "trusted", {"r": round_})
            recv.wait_for(round_ + 1, path="/trusted", scale=h.SCALE)
            m = h.publish(d, app, "plain", {"r": round_})["id"]
            a = self.first_attempt(d, app, m)
            self.assertIsNone(a["status"], a)
            self.assertRegex(a["error"], re.compile(r"certificate|SSL|peer", re.I))
        self.assertEqual(recv.get("/plain"), [])

    def test_field_checks(self):
        d = self.daemon()
        app = h.create_app(d)
        path = f"/v1/apps/{app['id']}/endpoints"
        url = "https://127.0.0.1:9/x"
        enc_key = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n"
        cases = [
            ({"client_cert": "hello", "client_key": PKI.client_key}, "tls.client_cert",
             "not a PEM certificate"),
            ({"client_cert": PKI.client_key, "client_key": PKI.client_key}, "tls.client_cert",
             "PRIVATE KEY block"),
            ({"client_cert": PKI.client_pem, "client_key": PKI.client_pem}, "tls.client_key",
             "not a PEM private key"),
            ({"client_cert": PKI.client_pem, "client_key": enc_key}, "tls.client_key",
             "encrypted private keys are not supported"),
            ({"client_cert": PKI.client_pem}, "tls.client_key", "required with tls.client_cert"),
            ({"client_key": PKI.client_key}, "tls.client_cert", "required with tls.client_key"),
            ({"ca": "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n"}, "tls.ca",
             "not a PEM certificate"),
            ({"ca": PKI.ca_pem * 120}, "tls.ca", "at most 65536 bytes"),
            ({"pin": "sha256//abc"}, "tls.pin", "expected sha256//<base64 of 32 bytes>"),
            ({"pin": "md5//" + "A" * 43 + "="}, "tls.pin", "expected sha256//"),
            ({"pin": PKI.pin("server.pem") + ";"}, "tls.pin", "entry 2"),
            ({"verify": False}, "tls.verify", "unknown field"),
        ]
        for tls, field, msg in cases:
            st, b = d.api("POST", path, {"url": url, "tls": tls})
            self.assertEqual(st, 400, (field, msg, b if st == 400 else b.get("tls")))
            e = h.error_of(b)
            self.assertEqual(e["field"], field, b)
            self.assertIn(msg, e["message"], b)
            self.assertNotIn(key_lines(PKI.client_key)[0], json.dumps(b))
        # Only on https:// URLs, at a create and when a patch changes either side.
        st, b = d.api("POST", path, {"url": "http://127.0.0.1:9/x", "tls": {"ca": PKI.ca_pem}})
        self.assertEqual(st, 400, b)
        self.assertEqual(h.error_of(b)["field"], "tls", b)
        self.assertIn("https:// URLs only", h.error_of(b)["message"])
        ep = h.create_endpoint(d, app, url, tls={"ca": PKI.ca_pem})
        st, b = d.api("PATCH", f"{path}/{ep['id']}", {"url": "http://127.0.0.1:9/x"})
        self.assertEqual(st, 400, b)
        self.assertEqual(h.error_of(b)["field"], "tls", b)
        plain = h.create_endpoint(d, app, "http://127.0.0.1:9/y")
        st, b = d.api("PATCH", f"{path}/{plain['id']}", {"tls": {"pin": PKI.pin("server.pem")}})
        self.assertEqual(st, 400, b)
        self.assertIn("https:// URLs only", h.error_of(b)["message"])
        # null clears it; then the url may become http.
        st, b = d.api("PATCH", f"{path}/{ep['id']}", {"tls": None, "url": "http://127.0.0.1:9/x"})
        self.assertEqual(st, 200, b)
        self.assertIsNone(b["tls"])

    def test_key_is_never_shown(self):
        d = self.daemon()
        app = h.create_app(d)
        path = f"/v1/apps/{app['id']}/endpoints"
        ep = h.create_endpoint(d, app, "https://127.0.0.1:9/k", tls=self.mtls())
        st, one = d.api("GET", f"{path}/{ep['id']}")
        st2, listing = d.api("GET", path)
        st3, patched = d.api("PATCH", f"{path}/{ep['id']}", {"description": "x"})
        self.assertEqual((st, st2, st3), (200, 200, 200))
        for answer in (ep, one, patched, listing["data"][0]):
            self.assertEqual(answer["tls"]["client_key"], "-----BEGIN PRIVATE KEY-----\u2026")
            self.assertEqual(answer["tls"]["client_cert"], PKI.client_pem)
            self.assertEqual(answer["tls"]["ca"], PKI.ca_pem)
        for text in (json.dumps(ep), json.dumps(one), json.dumps(listing), json.dumps(patched)):
            for ln in key_lines(PKI.client_key):
                self.assertNotIn(ln, text)
        # Sending the answer's tls back is refused on the key (a tls object replaces the
        # stored one, and the masked form is no key).
        st, b = d.api("PATCH", f"{path}/{ep['id']}", {"tls": one["tls"]})
        self.assertEqual(st, 400, b)
        self.assertEqual(h.error_of(b)["field"], "tls.client_key", b)
        self.assertIn("not a PEM private key", h.error_of(b)["message"])
        # The key is kept: a patch that leaves tls alone still delivers with it, and the
        # stored key is the real one, not the prefix.
        recv = self.tls_receiver("required")
        st, b = d.api("PATCH", f"{path}/{ep['id']}", {"url": recv.url("/kept")})
        self.assertEqual(st, 200, b)
        m = h.publish(d, app, "a.b", {})["id"]
        self.assertEqual(recv.wait_for(1, path="/kept", scale=h.SCALE)[0].webhook_id, m)

    def test_config_file_endpoint_with_tls(self):
        recv = self.tls_receiver("required")
        d = self.daemon(apps=[{"id": "app1", "endpoints": [
            {"id": "ep1", "url": recv.url("/cfg"), "tls": self.mtls()}]}])
        m = h.publish(d, "app1", "a.b", {})["id"]
        got = recv.wait_for(1, path="/cfg", scale=h.SCALE)[0]
        self.assertEqual((got.webhook_id, got.peer), (m, "hookd-client"))
        self.assertEqual(h.get_endpoint(d, "app1", "ep1")["tls"]["client_key"],
                         "-----BEGIN PRIVATE KEY-----\u2026")
        code, out = h.serve_config(self, h.to_yaml({
            "listen": f"127.0.0.1:{h.free_port()}",
            "apps": [{"id": "a", "endpoints": [
                {"id": "e", "url": "http://127.0.0.1:9/", "tls": {"pin": "sha256//x"}}]}]}) + "\n")
        self.assertNotEqual(code, 0, out)
        self.assertIn("apps[0].endpoints[0].tls.pin: expected sha256//<base64 of 32 bytes>", out)


if __name__ == "__main__":
    h.main()

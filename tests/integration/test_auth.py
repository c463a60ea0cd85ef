"""Auth schemes end to end (the endpoint's "auth" object, plugins bearer, basic, oauth2 and
hub-signature): the headers reach a real receiver, secrets come back only as a prefix,
bad objects are refused naming the field, oauth2 against a local token server that counts
its requests, hub-signature against Debian's `webhook` receiver. Loopback only."""

import base64
import hashlib
import hmac
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hookdtest as h  # noqa: E402
import peers_auth  # noqa: E402

TOKEN = "tok_live_0123456789abcdef"        # a bearer token (secret)
PASSWORD = "p\u00e4ss:w\u00f6rd-0123456789"  # a colon is allowed in the password
MASK = "\u2026"


def masked(value):
    """docs/api.md: first 4 bytes and an ellipsis, or *** under 12 bytes."""
    return "***" if len(value.encode()) < 12 else value[:4] + MASK


class AuthCase(h.HookdCase):

    def wait_attempts(self, d, app, msg_id, pred, message):
        def check():
            at = h.get_attempts(d, app, msg_id)
            return at if pred(at) else None
        return h.wait_until(check, 20, interval=0.1, message=message)


class StaticSchemesTest(AuthCase):

    def test_bearer_and_basic_headers_reach_the_receiver(self):
        recv = self.receiver()
        d = self.daemon()
        app = h.create_app(d)
        secret = h.random_whsec()
        bearer = h.create_endpoint(d, app, recv.url("/bearer"), secret=secret,
                                   headers={"Authorization": "Basic overridden"},
                                   auth={"scheme": "bearer", "token": TOKEN})
        h.create_endpoint(d, app, recv.url("/basic"),
                          auth={"scheme": "basic", "username": "alice", "password": PASSWORD})
        h.create_endpoint(d, app, recv.url("/plain"))
        msg_id = h.publish(d, app, "order.created", {"n": 1})["id"]

        got = recv.wait_for(1, path="/bearer")[0]
        self.assertEqual(got.headers.get("authorization"), f"Bearer {TOKEN}")
        # Decorating leaves the Standard Webhooks signature as it was.
        self.assertTrue(recv.verify(secret, got), got.headers)

        got = recv.wait_for(1, path="/basic")[0]
        want = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
        self.assertEqual(got.headers.get("authorization"), f"Basic {want}")

        got = recv.wait_for(1, path="/plain")[0]
        self.assertNotIn("authorization", got.headers)
        h.wait_delivery_state(d, app, msg_id, bearer["id"], "succeeded")

    def test_secrets_are_shown_as_a_prefix_only(self):
        recv = self.receiver()
        d = self.daemon()
        app = h.create_app(d)
        ep = h.create_endpoint(d, app, recv.url("/b"), auth={"scheme": "bearer", "token": TOKEN})
        self.assertEqual(ep["auth"], {"scheme": "bearer", "token": masked(TOKEN)})
        self.assertEqual(masked(TOKEN), "tok_" + MASK)
        self.assertEqual(h.get_endpoint(d, app, ep["id"])["auth"]["token"], masked(TOKEN))
        st, listing = d.api("GET", f"/v1/apps/{app['id']}/endpoints")
        self.assertEqual(st, 200, listing)
        self.assertEqual([e["auth"] for e in listing["data"]],
                         [{"scheme": "bearer", "token": masked(TOKEN)}])
        self.assertNotIn(TOKEN, json.dumps(listing))

        basic = h.create_endpoint(d, app, recv.url("/short"),
                                  auth={"scheme": "basic", "username": "alice-the-user",
                                        "password": "short"})
        # Not a secret: shown in full. Short secrets: nothing of them.
        self.assertEqual(basic["auth"], {"scheme": "basic", "username": "alice-the-user",
                                         "password": "***"})

        # A PATCH that gives back what GET showed keeps the stored secret ...
        st, patched = d.api("PATCH", f"/v1/apps/{app['id']}/endpoints/{ep['id']}",
                            {"auth": h.get_endpoint(d, app, ep["id"])["auth"]})
        self.assertEqual(st, 200, patched)
        h.publish(d, app, "a.b", {})
        self.assertEqual(recv.wait_for(1, path="/b")[0].headers.get("authorization"),
                         f"Bearer {TOKEN}")
        # ... and a PATCH replaces the whole object: no token left from the old one.
        st, patched = d.api("PATCH", f"/v1/apps/{app['id']}/endpoints/{ep['id']}",
                            {"auth": {"scheme": "basic", "username": "bob"}})
        self.assertEqual(st, 200, patched)
        self.assertEqual(patched["auth"], {"scheme": "basic", "username": "bob"})
        h.publish(d, app, "a.c", {})
        got = recv.wait_for(2, path="/b")[1]
        self.assertEqual(got.headers.get("authorization"),
                         "Basic " + base64.b64encode(b"bob:").decode())
        # null removes it.
        st, patched = d.api("PATCH", f"/v1/apps/{app['id']}/endpoints/{ep['id']}", {"auth": None})
        self.assertEqual(st, 200, patched)
        self.assertIsNone(patched["auth"])

    def test_config_declared_endpoint_is_masked_the_same(self):
        recv = self.receiver()
        apps = [{"id": "app_auth", "endpoints": [
            {"id": "ep_auth", "url": recv.url("/cfg"),
             "auth": {"scheme": "bearer", "token": TOKEN}}]}]
        d = self.daemon(apps=apps)
        ep = h.get_endpoint(d, "app_auth", "ep_auth")
        self.assertEqual(ep["auth"], {"scheme": "bearer", "token": masked(TOKEN)})
        h.publish(d, "app_auth", "a.b", {})
        self.assertEqual(recv.wait_for(1, path="/cfg")[0].headers.get("authorization"),
                         f"Bearer {TOKEN}")

    def test_bad_auth_objects_name_the_field(self):
        d = self.daemon()
        app = h.create_app(d)
        url = "http://127.0.0.1:9/x"
        cases = [
            ({"scheme": "kerberos"}, "auth.scheme", ["unknown auth scheme 'kerberos'", "bearer",
                                                     "basic"]),
            ({"token": "x"}, "auth.scheme", ["required"]),
            ({"scheme": 5}, "auth.scheme", ["must be a string"]),
            ({"scheme": "bearer", "token": {"a": 1}}, "auth.token",
             ["must be a string, a number or a boolean"]),
            ({"scheme": "bearer", "token": [1]}, "auth.token",
             ["must be a string, a number or a boolean"]),
            ({"scheme": "bearer"}, "auth.token", ["required"]),
            ({"scheme": "bearer", "token": "x", "tokn": "y"}, "auth.tokn", ["unknown option"]),
            ({"scheme": "bearer", "token": "a\r\nX-Injected: 1"}, "auth.token",
             ["control characters"]),
            ({"scheme": "basic", "username": "a:b", "password": "x"}, "auth.username", [":"]),
            ({"scheme": "oauth2", "token_url": "ftp://x/", "client_id": "a",
              "client_secret": "b"}, "auth.token_url", ["http"]),
            ({"scheme": "hub-signature", "secret": "s", "header": "X Bad"}, "auth.header",
             ["header name"]),
            ("bearer", "auth", ["object"]),
        ]
        for auth, field, parts in cases:
            with self.subTest(auth=auth):
                st, body = d.api("POST", f"/v1/apps/{app['id']}/endpoints",
                                 {"url": url, "auth": auth})
                self.assertEqual(st, 400, body)
                e = h.error_of(body)
                self.assertEqual(e["field"], field, body)
                self.assertTrue(e["message"].startswith(field + ":"), body)
                for p in parts:
                    self.assertIn(p, e["message"], body)
        # Secrets never appear in a message.
        st, body = d.api("POST", f"/v1/apps/{app['id']}/endpoints",
                         {"url": url, "auth": {"scheme": "bearer", "token": TOKEN, "x": 1}})
        self.assertEqual(st, 400, body)
        self.assertNotIn(TOKEN, json.dumps(body))

    def test_config_file_unknown_scheme_is_refused(self):
        port = h.free_port()
        text = (f'listen: "127.0.0.1:{port}"\n'
                f'data_dir: "./data"\n'
                f'api:\n  admin_key: "k-{port}"\n'
                'apps:\n'
                '  - id: a1\n'
                '    endpoints:\n'
                '      - id: e1\n'
                '        url: "http://127.0.0.1:9/x"\n'
                '        auth:\n'
                '          scheme: kerberos\n')
        rc, out = h.serve_config(self, text)
        self.assertNotEqual(rc, 0, out)
        self.assertIn("auth.scheme", out)
        self.assertIn("unknown auth scheme 'kerberos'", out)


class OAuth2Test(AuthCase):

    def oauth_endpoint(self, d, app, url, ts, scope="webhooks:write", **extra):
        return h.create_endpoint(d, app, url, retry_schedule=[1, 1, 1, 1, 1, 1, 1, 1],
                                 auth={"scheme": "oauth2", "token_url": ts.url,
                                       "client_id": ts.client_id,
                                       "client_secret": ts.client_secret,
                                       "scope": scope}, **extra)

    def token_server(self, **kw):
        ts = peers_auth.TokenServer(**kw)
        self.addCleanup(ts.stop)
        return ts

    def test_many_deliveries_one_token_request(self):
        ts = self.token_server()
        recv = self.receiver()
        d = self.daemon()
        app = h.create_app(d)
        ep = self.oauth_endpoint(d, app, recv.url("/o"), ts)
        self.assertEqual(ep["auth"]["client_secret"], masked(ts.client_secret))
        self.assertEqual(ep["auth"]["client_id"], ts.client_id)
        ids = [h.publish(d, app, "a.b", {"i": i})["id"] for i in range(20)]
        got = recv.wait_for(20, path="/o")
        self.assertEqual({r.webhook_id for r in got}, set(ids))
        self.assertEqual({r.headers.get("authorization") for r in got}, {"Bearer tok-1"})
        self.assertEqual(ts.count(), 1, ts.requests)
        headers, form = ts.requests[0]
        self.assertEqual(form, {"grant_type": "client_credentials", "scope": "webhooks:write"})
        for m in ids:
            h.wait_delivery_state(d, app, m, ep["id"], "succeeded")

    def test_expired_token_is_fetched_again(self):
        ts = self.token_server(expires_in=1)  # used for half its life: 0.5 s
        recv = self.receiver()
        d = self.daemon()
        app = h.create_app(d)
        self.oauth_endpoint(d, app, recv.url("/e"), ts)
        h.publish(d, app, "a.b", {})
        self.assertEqual(recv.wait_for(1, path="/e")[0].headers.get("authorization"),
                         "Bearer tok-1")
        time.sleep(1.2)  # past the token's expiry: the next delivery needs another
        h.publish(d, app, "a.c", {})
        self.assertEqual(recv.wait_for(2, path="/e")[1].headers.get("authorization"),
                         "Bearer tok-2")
        self.assertEqual(ts.count(), 2)

    def test_401_refreshes_once_within_the_attempt(self):
        ts = self.token_server()
        recv = peers_auth.BearerReceiver()
        self._receivers.append(recv)
        d = self.daemon()
        app = h.create_app(d)
        ep = self.oauth_endpoint(d, app, recv.url("/r"), ts)
        first = h.publish(d, app, "a.b", {})["id"]
        h.wait_delivery_state(d, app, first, ep["id"], "succeeded")
        recv.revoked.add("tok-1")  # the receiver stops taking the cached token
        msg_id = h.publish(d, app, "a.c", {})["id"]
        dl = h.wait_delivery_state(d, app, msg_id, ep["id"], "succeeded")
        self.assertEqual(dl["attempts"], 1, dl)
        got = recv.get(path="/r", webhook_id=msg_id)
        self.assertEqual([(r.headers.get("authorization"), r.status) for r in got],
                         [("Bearer tok-1", 401), ("Bearer tok-2", 200)])
        self.assertEqual(ts.count(), 2, ts.requests)
        attempts = h.get_attempts(d, app, msg_id)
        self.assertEqual([(a["attempt"], a["status"]) for a in attempts], [(1, 200)])

    def test_a_burst_of_401s_costs_one_token_request(self):
        ts = self.token_server()
        recv = peers_auth.BearerReceiver()
        self._receivers.append(recv)
        # The refusals come back one after another, so most of them arrive after the first
        # refresh has fetched tok-2.
        recv.refusal_step = 0.05
        d = self.daemon(delivery={"max_inflight_per_endpoint": 16})
        app = h.create_app(d)
        ep = self.oauth_endpoint(d, app, recv.url("/burst"), ts)
        first = h.publish(d, app, "a.b", {})["id"]
        h.wait_delivery_state(d, app, first, ep["id"], "succeeded")
        recv.revoked.add("tok-1")
        # Held while the endpoint is disabled, then sent at once: all with tok-1.
        path = f"/v1/apps/{app['id']}/endpoints/{ep['id']}"
        self.assertEqual(d.api("PATCH", path, {"disabled": True})[0], 200)
        ids = [h.publish(d, app, "a.c", {"i": i})["id"] for i in range(16)]
        self.assertEqual(d.api("PATCH", path, {"disabled": False})[0], 200)
        for m in ids:
            dl = h.wait_delivery_state(d, app, m, ep["id"], "succeeded")
            self.assertEqual(dl["attempts"], 1, dl)
        # Every 401 was for tok-1; the refreshes after the first found tok-2 cached.
        self.assertEqual(ts.count(), 2, ts.requests)
        self.assertEqual({r.headers.get("authorization") for r in recv.get(path="/burst")
                          if r.status == 401}, {"Bearer tok-1"})

    def test_a_second_401_fails_the_attempt(self):
        ts = self.token_server()
        recv = self.receiver()
        recv.behave(path="/always", status=401)
        d = self.daemon()
        app = h.create_app(d)
        ep = self.oauth_endpoint(d, app, recv.url("/always"), ts)
        msg_id = h.publish(d, app, "a.b", {})["id"]
        at = self.wait_attempts(d, app, msg_id, lambda a: len(a) >= 1, "the first attempt")
        self.assertEqual(at[0]["status"], 401, at)
        # One refresh: two requests and two tokens for the first attempt, not more.
        self.assertEqual(len(recv.get(path="/always", webhook_id=msg_id)) % 2, 0)
        self.assertGreaterEqual(ts.count(), 2)
        d.api("DELETE", f"/v1/apps/{app['id']}/endpoints/{ep['id']}")

    def test_token_server_down_then_back(self):
        ts = self.token_server()
        ts.stop()  # the port stays ours; nothing listens
        recv = self.receiver()
        d = self.daemon()
        app = h.create_app(d)
        ep = self.oauth_endpoint(d, app, recv.url("/down"), ts)
        msg_id = h.publish(d, app, "a.b", {})["id"]
        at = self.wait_attempts(d, app, msg_id, lambda a: len(a) >= 1, "a failed attempt")
        self.assertIsNone(at[0]["status"], at)
        self.assertIn("token endpoint", at[0]["error"], at)
        dl = h.get_message(d, app, msg_id)
        self.assertEqual(h.delivery_for(dl, ep["id"])["state"], "pending", dl)
        self.assertEqual(recv.count(path="/down"), 0)
        ts.status = 500
        ts.start()
        at = self.wait_attempts(d, app, msg_id,
                                lambda a: any("answered 500" in (x["error"] or "") for x in a),
                                "an attempt failed by the token endpoint's 500")
        ts.status = 200
        h.wait_delivery_state(d, app, msg_id, ep["id"], "succeeded", timeout=30)
        got = recv.get(path="/down", webhook_id=msg_id)
        self.assertEqual([r.headers.get("authorization") for r in got], ["Bearer tok-1"])

    def test_slow_token_server_times_the_attempt_out(self):
        ts = self.token_server()
        ts.delay = 2.0
        recv = self.receiver()
        d = self.daemon(delivery={"timeout_ms": 500})
        app = h.create_app(d)
        ep = self.oauth_endpoint(d, app, recv.url("/slow"), ts)
        msg_id = h.publish(d, app, "a.b", {})["id"]
        at = self.wait_attempts(d, app, msg_id, lambda a: len(a) >= 1, "a timed-out attempt")
        self.assertIsNone(at[0]["status"], at)
        self.assertIn("auth scheme oauth2: no credentials within 500 ms", at[0]["error"], at)
        # The fetch went on and its token is cached: a retry uses it.
        ts.delay = 0
        h.wait_delivery_state(d, app, msg_id, ep["id"], "succeeded", timeout=20)
        self.assertEqual([r.headers.get("authorization") for r in recv.get(path="/slow")],
                         ["Bearer tok-1"])
        self.assertEqual(ts.count(), 1)

    def test_delete_and_shutdown_while_waiting_for_a_token(self):
        ts = self.token_server()
        ts.delay = 1.5
        recv = self.receiver()
        d = self.daemon()
        app = h.create_app(d)
        ep = self.oauth_endpoint(d, app, recv.url("/gone"), ts)
        msg_id = h.publish(d, app, "a.b", {})["id"]
        h.wait_until(lambda: ts.count() == 1, 10, message="the token request")
        st, body = d.api("DELETE", f"/v1/apps/{app['id']}/endpoints/{ep['id']}")
        self.assertEqual(st, 204, body)
        # The attempt waiting for the token ends, and there is nothing to retry to.
        dl = h.wait_delivery_state(d, app, msg_id, ep["id"], "dead", timeout=20)
        self.assertIn("endpoint deleted", dl.get("last_error") or "", dl)

        # Shutdown with an attempt waiting: a clean exit (the harness checks the exit code
        # and, in the sanitizer build, leaks).
        ts.delay = 30
        # (another scope: another cache key, so a fetch of its own)
        ep2 = self.oauth_endpoint(d, app, recv.url("/stop"), ts, scope="other", id="ep_stop")
        h.publish(d, app, "a.c", {})
        h.wait_until(lambda: ts.count() == 2, 10, message="the second token request")
        self.assertEqual(d.stop(), 0)
        self.assertEqual(recv.count(path="/stop"), 0, ep2)

    def test_a_stuck_token_endpoint_holds_up_no_other(self):
        stuck = self.token_server()
        stuck.gate = threading.Event()  # holds its answers until the test lets them go
        fast = self.token_server()
        recv = self.receiver()
        d = self.daemon()
        app = h.create_app(d)
        ep_stuck = self.oauth_endpoint(d, app, recv.url("/stuck"), stuck)
        stuck_msg = h.publish(d, app, "a.b", {})["id"]
        h.wait_until(lambda: stuck.count() == 1, 10, message="the stuck token request")
        ep_fast = self.oauth_endpoint(d, app, recv.url("/fast"), fast)
        fast_msg = h.publish(d, app, "a.c", {})["id"]
        # Delivered while the other endpoint's token request is still out: that one has
        # not ended, so the stuck delivery has no attempt recorded yet. (Were the fetches
        # one at a time, this one would wait until the stuck one gave up, 10 s, and the
        # stuck delivery would have failed its attempt by then.)
        h.wait_delivery_state(d, app, fast_msg, ep_fast["id"], "succeeded")
        self.assertEqual(h.get_attempts(d, app, stuck_msg), [])
        self.assertEqual(recv.count(path="/stuck"), 0)
        stuck.gate.set()
        h.wait_delivery_state(d, app, stuck_msg, ep_stuck["id"], "succeeded", timeout=30)

    def test_token_url_refused_by_the_destination_guard(self):
        recv = self.receiver()
        d = self.daemon()
        app = h.create_app(d)
        ep = h.create_endpoint(d, app, recv.url("/g"), retry_schedule=[60],
                               auth={"scheme": "oauth2", "token_url": "http://10.0.0.1:9/token",
                                     "client_id": "a", "client_secret": "b"})
        msg_id = h.publish(d, app, "a.b", {})["id"]
        at = self.wait_attempts(d, app, msg_id, lambda a: len(a) >= 1, "a refused attempt")
        self.assertIsNone(at[0]["status"], at)
        self.assertIn("10.0.0.1", at[0]["error"], at)
        self.assertIn("destination guard", at[0]["error"], at)
        self.assertEqual(recv.count(path="/g"), 0)
        d.api("DELETE", f"/v1/apps/{app['id']}/endpoints/{ep['id']}")


@unittest.skipUnless(os.access(peers_auth.WEBHOOK_BIN, os.X_OK),
                     "Debian's webhook is not installed (make test-deps installs it)")
class HubSignatureTest(AuthCase):

    def webhook(self, secret):
        w = peers_auth.WebhookReceiver(secret)
        self.addCleanup(w.close)
        return w

    def test_right_secret_runs_the_hook_wrong_one_is_refused(self):
        secret = "hub-secret-0123456789"
        w = self.webhook(secret)
        d = self.daemon()
        app = h.create_app(d)
        good = h.create_endpoint(d, app, w.url(),
                                 auth={"scheme": "hub-signature", "secret": secret})
        self.assertEqual(good["auth"]["secret"], masked(secret))
        msg_id = h.publish(d, app, "invoice.paid", {"amount": 5})["id"]
        dl = h.wait_delivery_state(d, app, msg_id, good["id"], "succeeded")
        self.assertEqual(dl["attempts"], 1)
        h.wait_until(lambda: w.runs() == ["invoice.paid"], 10,
                     message=f"the hook to run; webhook log:\n{w.log()}")

        d.api("DELETE", f"/v1/apps/{app['id']}/endpoints/{good['id']}")
        bad = h.create_endpoint(d, app, w.url(), retry_schedule=[60],
                                auth={"scheme": "hub-signature", "secret": "not-the-secret"})
        msg2 = h.publish(d, app, "invoice.void", {})["id"]
        at = self.wait_attempts(d, app, msg2, lambda a: len(a) >= 1, "a refused attempt")
        self.assertEqual(at[0]["status"], peers_auth.WebhookReceiver.MISMATCH_STATUS, at)
        self.assertEqual(w.runs(), ["invoice.paid"])

    def test_plugin_transport_carries_the_signature(self):
        # An endpoint on a plugin transport (file://) is decorated too: the scheme's header
        # travels with the Standard Webhooks headers, and the ids reach the plugin.
        out = tempfile.mkdtemp(prefix="hookd-auth-file-")
        self.addCleanup(shutil.rmtree, out, True)
        path = os.path.join(out, "events.jsonl")
        d = self.daemon()
        app = h.create_app(d)
        ep = h.create_endpoint(d, app, "file://" + path,
                               auth={"scheme": "hub-signature", "secret": "k-file"})
        msg_id = h.publish(d, app, "a.b", {"x": 1})["id"]
        h.wait_delivery_state(d, app, msg_id, ep["id"], "succeeded", attempts=1)
        with open(path, "rb") as f:
            raw = f.readline()
        line = json.loads(raw)
        body = raw[8:8 + line["body_length"]]  # the signed bytes (docs/plugins.md, file)
        want = "sha256=" + hmac.new(b"k-file", body, hashlib.sha256).hexdigest()
        self.assertEqual(line["headers"].get("X-Hub-Signature-256"), want, line)
        self.assertEqual(line["webhook-id"], msg_id)
        self.assertEqual((line["endpoint_id"], line["attempt"]), (ep["id"], 1))

    def test_header_option_renames_it(self):
        recv = self.receiver()
        d = self.daemon()
        app = h.create_app(d)
        h.create_endpoint(d, app, recv.url("/hs"),
                          auth={"scheme": "hub-signature", "secret": "k", "header": "X-Sig"})
        h.publish(d, app, "a.b", {"x": 1})
        got = recv.wait_for(1, path="/hs")[0]
        want = "sha256=" + hmac.new(b"k", got.body, hashlib.sha256).hexdigest()
        self.assertEqual(got.headers.get("x-sig"), want)
        self.assertNotIn("x-hub-signature-256", got.headers)


if __name__ == "__main__":
    h.main()

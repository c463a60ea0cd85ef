"""API contract: errors (401/404/400/413/409/405), idempotent publish, endpoint CRUD,
secret rotation, message paging. One daemon for the whole file (tests use their own apps)."""

import json
import os
import sys
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hookdtest as h  # noqa: E402

MAX_PAYLOAD = 1024


class ApiTest(h.HookdCase):
    """Shares one daemon and one receiver (each test works in its own app)."""

    @classmethod
    def setUpClass(cls):
        cls.recv = h.Receiver()
        cls.d = h.Daemon(limits={"max_payload_bytes": MAX_PAYLOAD})
        cls.any_failed = False

    @classmethod
    def tearDownClass(cls):
        rc = None
        try:
            rc = cls.d.stop()
        finally:
            san = cls.d.sanitizer_errors()
            if rc not in (None, 0):
                san.append(f"daemon exited with {rc} on SIGTERM")
            if cls.any_failed or san:
                sys.stderr.write(f"\n----- daemon log (exit {rc}) -----\n{cls.d.log_tail(300)}\n"
                                 "----- end log -----\n")
            cls.recv.close()
            cls.d.cleanup()
            if san:
                raise AssertionError(f"sanitizer errors in the daemon log: {san[:5]}")

    def _cleanup(self):
        if self._failed():
            type(self).any_failed = True
        super()._cleanup()

    def new_app(self):
        return h.create_app(self.d, name=self.id())

    def assertError(self, st, body, status, code, field=Ellipsis):
        self.assertEqual(st, status, body)
        e = h.error_of(body)
        self.assertEqual(e["code"], code, body)
        self.assertIsInstance(e["message"], str)
        self.assertTrue(e["message"], body)
        if field is not Ellipsis:
            self.assertEqual(e["field"], field, body)
        return e

    # ------------------------------------------------------------------ auth, health

    def test_healthz_needs_no_auth(self):
        st, body = self.d.api("GET", "/healthz", auth=False)
        self.assertEqual(st, 200)
        self.assertEqual(body, {"status": "ok"})

    def test_401(self):
        d = self.d
        st, body = d.api("GET", "/v1/apps", auth=False)
        self.assertError(st, body, 401, "unauthorized")
        st, body = d.api("GET", "/v1/apps", headers={"Authorization": "Bearer wrong-key"},
                         auth=False)
        self.assertError(st, body, 401, "unauthorized")
        st, body = d.api("GET", "/v1/apps",
                         headers={"Authorization": "Bearer " + d.admin_key + "x"}, auth=False)
        self.assertError(st, body, 401, "unauthorized")
        st, body = d.api("GET", "/v1/apps", headers={"Authorization": "Basic " + d.admin_key},
                         auth=False)
        self.assertError(st, body, 401, "unauthorized")
        app = self.new_app()
        st, body = d.api("POST", f"/v1/apps/{app['id']}/messages",
                         {"type": "a.b", "data": {}}, auth=False)
        self.assertError(st, body, 401, "unauthorized")
        st, body = d.api("GET", "/v1/apps")
        self.assertEqual(st, 200, body)
        self.assertIn(app["id"], [a["id"] for a in body["data"]])

    # ------------------------------------------------------------------ 404, 405

    def test_404(self):
        d = self.d
        app = self.new_app()
        aid = app["id"]
        st, body = d.api("GET", "/v1/apps/app_does_not_exist")
        self.assertError(st, body, 404, "not_found")
        st, body = d.api("POST", "/v1/apps/app_does_not_exist/messages",
                         {"type": "a.b", "data": {}})
        self.assertError(st, body, 404, "not_found")
        st, body = d.api("POST", "/v1/apps/app_does_not_exist/endpoints",
                         {"url": self.recv.url()})
        self.assertError(st, body, 404, "not_found")
        st, body = d.api("GET", f"/v1/apps/{aid}/messages/msg_doesnotexist")
        self.assertError(st, body, 404, "not_found")
        st, body = d.api("GET", f"/v1/apps/{aid}/messages/msg_doesnotexist/attempts")
        self.assertError(st, body, 404, "not_found")
        st, body = d.api("GET", f"/v1/apps/{aid}/endpoints/ep_doesnotexist")
        self.assertError(st, body, 404, "not_found")
        st, body = d.api("PATCH", f"/v1/apps/{aid}/endpoints/ep_doesnotexist",
                         {"description": "x"})
        self.assertError(st, body, 404, "not_found")
        st, body = d.api("DELETE", f"/v1/apps/{aid}/endpoints/ep_doesnotexist")
        self.assertError(st, body, 404, "not_found")
        st, body = d.api("GET", "/v1/no/such/route")
        self.assertError(st, body, 404, "not_found")
        # A message of another app is not visible through this app.
        other = self.new_app()
        mid = h.publish(d, other, "a.b", {})["id"]
        st, body = d.api("GET", f"/v1/apps/{aid}/messages/{mid}")
        self.assertError(st, body, 404, "not_found")

    def test_405(self):
        st, body = self.d.api("PUT", "/v1/apps", {"name": "x"})
        self.assertError(st, body, 405, "method_not_allowed")

    # ------------------------------------------------------------------ 400

    def test_400_invalid_json_names_position(self):
        app = self.new_app()
        st, body = self.d.api("POST", f"/v1/apps/{app['id']}/messages",
                              raw='{"type": "a.b", "data": {"x": }')
        e = self.assertError(st, body, 400, "invalid_json")
        self.assertRegex(e["message"].lower(), r"line|column|position|offset", body)
        self.assertRegex(e["message"], r"\d", body)
        st, body = self.d.api("POST", "/v1/apps", raw="not json at all")
        self.assertError(st, body, 400, "invalid_json")
        st, body = self.d.api("POST", f"/v1/apps/{app['id']}/messages", raw="")
        self.assertEqual(st, 400, body)

    def test_400_fields(self):
        d = self.d
        app = self.new_app()
        path = f"/v1/apps/{app['id']}/messages"
        st, body = d.api("POST", path, {"data": {"x": 1}})
        self.assertError(st, body, 400, "missing_field", "type")
        for bad in ("bad type!", "", "a..b", ".a", "a.", "a b", 42, None, ["a"]):
            st, body = d.api("POST", path, {"type": bad, "data": {}})
            self.assertEqual(st, 400, f"type {bad!r}: {body}")
            e = h.error_of(body)
            self.assertIn(e["code"], ("invalid_field", "missing_field"), body)
            self.assertEqual(e["field"], "type", body)
        # A number where the contract shows a string: refused, or kept as its text.
        st, body = d.api("POST", path, {"type": "a.b", "data": {}, "version": 2})
        if st == 400:
            self.assertEqual(h.error_of(body)["field"], "version", body)
        else:
            self.assertEqual(st, 202, body)
            self.assertEqual(h.get_message(d, app, body["id"])["version"], "2")
        st, body = d.api("POST", path, {"type": "a.b", "data": {}, "version": {"v": 1}})
        self.assertError(st, body, 400, "invalid_field", "version")
        for good in ("a", "invoice.paid", "A_b-c.d_E.f9"):
            st, body = d.api("POST", path, {"type": good, "data": {}})
            self.assertEqual(st, 202, f"type {good!r}: {body}")

        ep_path = f"/v1/apps/{app['id']}/endpoints"
        st, body = d.api("POST", ep_path, {"event_types": ["a.b"]})
        self.assertError(st, body, 400, "missing_field", "url")
        st, body = d.api("POST", ep_path, {"url": 42})
        self.assertError(st, body, 400, "invalid_field", "url")
        st, body = d.api("POST", ep_path, {"url": "not a url"})
        self.assertError(st, body, 400, "invalid_field", "url")
        st, body = d.api("POST", ep_path, {"url": self.recv.url(), "event_types": ["a.b", 7]})
        self.assertError(st, body, 400, "invalid_field", "event_types[1]")
        st, body = d.api("POST", ep_path, {"url": self.recv.url(), "retry_schedule": "5,10"})
        self.assertError(st, body, 400, "invalid_field", "retry_schedule")
        st, body = d.api("POST", ep_path, {"url": self.recv.url(), "secret": "nope"})
        self.assertError(st, body, 400, "invalid_field", "secret")
        st, body = d.api("POST", ep_path, {"url": self.recv.url(), "secret_type": "rsa"})
        self.assertError(st, body, 400, "invalid_field", "secret_type")

        st, body = d.api("POST", "/v1/apps", {"id": "bad id!", "name": "x"})
        self.assertError(st, body, 400, "invalid_field", "id")
        st, body = d.api("POST", "/v1/apps", {"id": "a" * 65, "name": "x"})
        self.assertError(st, body, 400, "invalid_field", "id")

    # ------------------------------------------------------------------ 413

    def test_413_payload_too_large(self):
        app = self.new_app()
        path = f"/v1/apps/{app['id']}/messages"
        big = {"type": "a.b", "data": {"blob": "x" * (MAX_PAYLOAD * 2)}}
        st, body = self.d.api("POST", path, big)
        self.assertError(st, body, 413, "payload_too_large")
        small = {"type": "a.b", "data": {"blob": "x" * (MAX_PAYLOAD - 200)}}
        self.assertLessEqual(len(json.dumps(small)), MAX_PAYLOAD)
        st, body = self.d.api("POST", path, small)
        self.assertEqual(st, 202, body)
        # Just over the limit, announced by a client that waits for an early answer: the JSON
        # error (this is under the read cutoff of docs/api.md).
        st, body, sent = self.d.send_oversized(path, MAX_PAYLOAD + 1)
        self.assertError(st, body, 413, "payload_too_large")
        # Way over the limit: refused from its Content-Length with the JSON error, before
        # the body is read (docs/api.md, Connections).
        length = 4 * 1024 * 1024
        st, body, sent = self.d.send_oversized(path, length)
        sys.stderr.write(f"4 MiB announced: {st} after {sent} body bytes sent\n")
        self.assertEqual(st, 413, body)
        self.assertError(st, body, 413, "payload_too_large")
        self.assertLess(sent, length)

    # ------------------------------------------------------------------ 409

    def test_409_duplicate_app(self):
        aid = "app_dup_" + str(int(time.time() * 1000))
        st, body = self.d.api("POST", "/v1/apps", {"id": aid, "name": "first"})
        self.assertEqual(st, 201, body)
        self.assertEqual(body["id"], aid)
        self.assertEqual(body["name"], "first")
        self.assertIn("created_at", body)
        st, body = self.d.api("POST", "/v1/apps", {"id": aid, "name": "second"})
        self.assertError(st, body, 409, "conflict")
        st, body = self.d.api("GET", f"/v1/apps/{aid}")
        self.assertEqual(st, 200, body)
        self.assertEqual(body["name"], "first")

    def test_409_duplicate_endpoint_id(self):
        app = self.new_app()
        ep = h.create_endpoint(self.d, app, self.recv.url("/dupep"), id="ep_same")
        self.assertEqual(ep["id"], "ep_same")
        st, body = self.d.api("POST", f"/v1/apps/{app['id']}/endpoints",
                              {"id": "ep_same", "url": self.recv.url("/dupep")})
        self.assertError(st, body, 409, "conflict")

    # ------------------------------------------------------------------ idempotency

    def test_idempotent_publish(self):
        d, recv = self.d, self.recv
        app = self.new_app()
        h.create_endpoint(d, app, recv.url("/idem"))
        path = f"/v1/apps/{app['id']}/messages"
        key = "idem-" + str(time.time())
        st1, b1 = d.api("POST", path, {"type": "a.b", "data": {"n": 1}},
                        headers={"Idempotency-Key": key})
        self.assertEqual(st1, 202, b1)
        st2, b2 = d.api("POST", path, {"type": "a.b", "data": {"n": 1}},
                        headers={"Idempotency-Key": key})
        self.assertEqual(st2, 200, b2)
        self.assertEqual(b2["id"], b1["id"])
        st3, b3 = d.api("POST", path, {"type": "a.b", "data": {"n": 1}},
                        headers={"Idempotency-Key": key + "-other"})
        self.assertEqual(st3, 202, b3)
        self.assertNotEqual(b3["id"], b1["id"])

        recv.wait_for(1, path="/idem", webhook_id=b3["id"])
        recv.wait_for(1, path="/idem", webhook_id=b1["id"])
        time.sleep(0.5)
        self.assertEqual(recv.count(path="/idem", webhook_id=b1["id"]), 1)
        self.assertEqual(recv.count(path="/idem"), 2, recv.get(path="/idem"))
        st, page = d.api("GET", f"{path}?limit=100")
        self.assertEqual(st, 200, page)
        self.assertEqual([m["id"] for m in page["data"]], [b1["id"], b3["id"]])

    # ------------------------------------------------------------------ endpoints

    def test_endpoint_crud(self):
        d = self.d
        app = self.new_app()
        base = f"/v1/apps/{app['id']}/endpoints"
        secret = h.random_whsec(24)
        st, ep = d.api("POST", base, {
            "url": self.recv.url("/crud"), "event_types": ["invoice.paid", "order.*"],
            "secret": secret, "retry_schedule": [2, 4], "headers": {"X-A": "1"},
            "description": "crud test"})
        self.assertEqual(st, 201, ep)
        for k in ("id", "app_id", "url", "event_types", "secret", "secret_type",
                  "retry_schedule", "headers", "disabled", "disabled_reason", "created_at",
                  "updated_at"):
            self.assertIn(k, ep)
        self.assertEqual(ep["app_id"], app["id"])
        self.assertEqual(ep["url"], self.recv.url("/crud"))
        self.assertEqual(ep["event_types"], ["invoice.paid", "order.*"])
        self.assertEqual(ep["secret"], secret)
        self.assertEqual(ep["secret_type"], "hmac")
        self.assertEqual(ep["retry_schedule"], [2, 4])
        self.assertEqual(ep["headers"], {"X-A": "1"})
        self.assertEqual(ep["description"], "crud test")
        self.assertFalse(ep["disabled"])
        self.assertIsNone(ep["disabled_reason"])
        eid = ep["id"]

        st, got = d.api("GET", f"{base}/{eid}")
        self.assertEqual(st, 200, got)
        self.assertEqual(got, ep)

        st, other = d.api("POST", base, {"url": self.recv.url("/crud2")})
        self.assertEqual(st, 201, other)
        self.assertTrue(other["secret"].startswith("whsec_"))
        self.assertNotEqual(other["secret"], secret)
        st, lst = d.api("GET", base)
        self.assertEqual(st, 200, lst)
        self.assertEqual(sorted(e["id"] for e in lst["data"]), sorted([eid, other["id"]]))

        time.sleep(0.01)
        st, p = d.api("PATCH", f"{base}/{eid}", {
            "url": self.recv.url("/crud-new"), "event_types": ["x.*"], "retry_schedule": [1],
            "headers": {"X-B": "2"}, "description": "changed", "disabled": True})
        self.assertEqual(st, 200, p)
        self.assertEqual(p["url"], self.recv.url("/crud-new"))
        self.assertEqual(p["event_types"], ["x.*"])
        self.assertEqual(p["retry_schedule"], [1])
        self.assertEqual(p["headers"], {"X-B": "2"})
        self.assertEqual(p["description"], "changed")
        self.assertTrue(p["disabled"])
        self.assertEqual(p["secret"], secret)
        self.assertEqual(p["created_at"], ep["created_at"])
        self.assertGreaterEqual(h.parse_time(p["updated_at"]), h.parse_time(ep["updated_at"]))
        st, got = d.api("GET", f"{base}/{eid}")
        self.assertEqual(got, p)
        st, body = d.api("PATCH", f"{base}/{eid}", {"url": 5})
        self.assertError(st, body, 400, "invalid_field", "url")

        st, body = d.api("DELETE", f"{base}/{eid}")
        self.assertEqual(st, 204, body)
        self.assertIsNone(body)
        st, body = d.api("GET", f"{base}/{eid}")
        self.assertError(st, body, 404, "not_found")
        st, lst = d.api("GET", base)
        self.assertEqual([e["id"] for e in lst["data"]], [other["id"]])

    def test_deleted_endpoint_gets_nothing(self):
        d, recv = self.d, self.recv
        app = self.new_app()
        ep = h.create_endpoint(d, app, recv.url("/del"))
        keep = h.create_endpoint(d, app, recv.url("/del-keep"))
        st, _ = d.api("DELETE", f"/v1/apps/{app['id']}/endpoints/{ep['id']}")
        self.assertEqual(st, 204)
        mid = h.publish(d, app, "a.b", {})["id"]
        recv.wait_for(1, path="/del-keep", webhook_id=mid)
        time.sleep(0.5)
        self.assertEqual(recv.count(path="/del"), 0)
        self.assertEqual(recv.count(path="/del-keep"), 1)
        self.assertIsNotNone(keep)

    def test_secret_rotation_signs_with_both(self):
        d, recv = self.d, self.recv
        app = self.new_app()
        ep = h.create_endpoint(d, app, recv.url("/rot"))
        old = ep["secret"]
        st, rot = d.api("POST", f"/v1/apps/{app['id']}/endpoints/{ep['id']}/secret/rotate", {})
        self.assertEqual(st, 200, rot)
        new = rot["secret"]
        self.assertTrue(new.startswith("whsec_"), rot)
        self.assertNotEqual(new, old)
        rotated_at = time.time()
        st, got = d.api("GET", f"/v1/apps/{app['id']}/endpoints/{ep['id']}")
        self.assertEqual(got["secret"], new)

        mid = h.publish(d, app, "a.b", {"r": 1})["id"]
        req = recv.wait_for(1, path="/rot", webhook_id=mid)[0]
        entries = h.signature_entries(req.headers, "v1")
        self.assertEqual(len(entries), 2, req.headers.get("webhook-signature"))
        ts, body = req.headers["webhook-timestamp"], req.body
        sigs = [s for _, s in entries]
        self.assertIn(h.sign_v1(old, mid, ts, body), sigs)
        self.assertIn(h.sign_v1(new, mid, ts, body), sigs)

        # Rotating to a given secret with no grace period: only the new one signs.
        given = h.random_whsec()
        st, rot2 = d.api("POST", f"/v1/apps/{app['id']}/endpoints/{ep['id']}/secret/rotate",
                         {"secret": given, "grace_period_s": 0})
        self.assertEqual(st, 200, rot2)
        self.assertEqual(rot2["secret"], given)
        mid2 = h.publish(d, app, "a.b", {"r": 2})["id"]
        req = recv.wait_for(1, path="/rot", webhook_id=mid2)[0]
        entries = h.signature_entries(req.headers, "v1")
        self.assertEqual(len(entries), 1, req.headers.get("webhook-signature"))
        self.assertTrue(h.verify_v1(given, req.headers, req.body))
        self.assertFalse(h.verify_v1(new, req.headers, req.body))
        self.assertFalse(h.verify_v1(old, req.headers, req.body))

        # docs/api.md: rotate -> 200 {"secret", "public_key"?, "previous_expires_at"}
        self.assertIn("previous_expires_at", rot, f"rotate response: {rot}")
        self.assertAlmostEqual(h.parse_time(rot["previous_expires_at"]), rotated_at + 86400,
                               delta=120)
        self.assertIn("previous_expires_at", rot2, f"rotate response: {rot2}")
        if rot2["previous_expires_at"] is not None:  # no grace: null, or (about) now
            self.assertAlmostEqual(h.parse_time(rot2["previous_expires_at"]), time.time(),
                                   delta=60)

    def test_rotation_refuses_a_secret_of_the_other_type(self):
        # As at creation: a secret and a secret_type that disagree are a 400 on secret,
        # not a silent switch of the endpoint to the secret's type.
        d = self.d
        app = self.new_app()
        ep = h.create_endpoint(d, app, self.recv.url("/rot-type"))
        path = f"/v1/apps/{app['id']}/endpoints/{ep['id']}"
        given = h.random_whsec()
        st, body = d.api("POST", f"{path}/secret/rotate",
                         {"secret": given, "secret_type": "ed25519"})
        self.assertEqual(st, 400, body)
        e = h.error_of(body)
        self.assertEqual((e["code"], e["field"]), ("invalid_field", "secret"), body)
        self.assertIn("needs a whsk_", e["message"])
        self.assertNotIn(given, e["message"], "the refused secret is repeated back")
        st, create = d.api("POST", f"/v1/apps/{app['id']}/endpoints",
                           {"url": self.recv.url("/rot-type2"), "secret": given,
                            "secret_type": "ed25519"})
        self.assertEqual((st, h.error_of(create)["message"]), (400, e["message"]),
                         "creation and rotation disagree")
        st, got = d.api("GET", path)
        self.assertEqual((got["secret"], got["secret_type"]), (ep["secret"], "hmac"),
                         "a refused rotation changed the endpoint")

    # ------------------------------------------------------------------ paging

    def test_message_paging(self):
        d = self.d
        app = self.new_app()
        ids = [h.publish(d, app, "page.item", {"i": i})["id"] for i in range(5)]
        self.assertEqual(len(set(ids)), 5)
        self.assertEqual(sorted(ids), ids, "msg ids are not sortable by creation")
        path = f"/v1/apps/{app['id']}/messages"
        seen, after, pages = [], None, 0
        while True:
            q = f"{path}?limit=2" + (f"&after={after}" if after else "")
            st, page = d.api("GET", q)
            self.assertEqual(st, 200, page)
            self.assertLessEqual(len(page["data"]), 2, page)
            for m in page["data"]:
                self.assertNotIn("data", m, "listing carries the payload")
                self.assertEqual(m["type"], "page.item")
            seen += [m["id"] for m in page["data"]]
            pages += 1
            self.assertIn("next_after", page)
            after = page["next_after"]
            if after is None or not page["data"]:
                break
            self.assertEqual(after, page["data"][-1]["id"])
            self.assertLess(pages, 10, "paging does not end")
        self.assertEqual(seen, ids)
        self.assertIn(pages, (3, 4))

        st, page = d.api("GET", f"{path}?limit=50")
        self.assertEqual([m["id"] for m in page["data"]], ids)
        self.assertIsNone(page["next_after"])
        st, page = d.api("GET", f"{path}?after={ids[2]}")
        self.assertEqual([m["id"] for m in page["data"]], ids[3:])
        for bad in ("0", "1001", "x"):
            st, body = d.api("GET", f"{path}?limit={bad}")
            self.assertError(st, body, 400, "invalid_field", "limit")


if __name__ == "__main__":
    unittest.main(verbosity=2)

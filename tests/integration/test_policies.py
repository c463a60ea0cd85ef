"""Routing policies end to end: the real daemon runs LuaJIT policies on real deliveries.

Redaction reaches the receiver signed over exactly the redacted bytes; filtered messages are
recorded and not sent; hostile policies (an endless loop, unbounded allocation) are recorded
as policy errors while the other endpoints keep delivering; a bad upload keeps the running
version; a fixed policy plus a redrive delivers what failed; SIGHUP reloads the directory."""

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hookdtest as h  # noqa: E402

SHIPPED = os.path.join(os.environ.get("HOOKD_SOURCE_DIR", os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..")), "policies")


def put_policy(d, name, source):
    return d.api("PUT", f"/v1/policies/{name}", raw=source.encode(),
                 headers={"Content-Type": "text/x-lua"})


class PolicyTest(h.HookdCase):

    def setUp(self):
        super().setUp()
        self.recv = self.receiver()

    def shipped_daemon(self, **kw):
        return self.daemon(extra={"policies": {"dir": SHIPPED, "cpu_limit_ms": 50,
                                               "memory_limit": "16MiB"}}, **kw)

    def test_redaction_is_what_gets_signed_and_sent(self):
        d = self.shipped_daemon()
        app = h.create_app(d)
        ep = h.create_endpoint(d, app, self.recv.url("/redact"), policy={
            "name": "redact-pii", "params": {"paths": ["card.number", "customer.email"]}})
        mid = h.publish(d, app, "payment.succeeded", {
            "amount": 4200, "card": {"number": "4242424242424242", "brand": "visa"},
            "customer": {"email": "ann@example.com", "id": "cus_1"}})["id"]
        req = self.recv.wait_for(1, path="/redact", webhook_id=mid)[0]
        body = req.json()
        self.assertEqual(body["id"], mid)
        self.assertEqual(body["data"]["amount"], 4200)
        self.assertEqual(body["data"]["card"]["brand"], "visa")
        self.assertEqual(body["data"]["customer"]["id"], "cus_1")
        self.assertNotIn(b"4242424242424242", req.body)
        self.assertNotIn(b"ann@example.com", req.body)
        self.assertEqual(body["data"]["card"]["number"], "[REDACTED]")
        self.assertTrue(h.verify_v1(ep["secret"], req.headers, req.body),
                        "signature must cover exactly the redacted bytes")
        h.wait_until(lambda: h.get_message(d, app, mid)["deliveries"][0]["state"] == "succeeded",
                     message="delivery recorded as succeeded")
        # The stored message keeps the original payload (the operator can see what came in).
        self.assertEqual(h.get_message(d, app, mid)["data"]["card"]["number"], "4242424242424242")

    def test_every_endpoint_and_policy_header_is_sent(self):
        # The most headers an endpoint may declare (32) and 50 from its policy all reach the
        # receiver: the request's header list used to be cut at 72 lines, so the policy's
        # past the 36th went missing without a word. (Not all 64 a policy may add: Python's
        # http.server, the receiver here, refuses a request of more than 100 header lines.)
        d = self.daemon()
        self.assertEqual(put_policy(d, "many-headers", """
return {
  transform = function(msg, ctx)
    for i = 1, 50 do msg.headers[string.format("x-p-%02d", i)] = "p" .. i end
    return msg
  end,
}
""")[0], 200)
        app = h.create_app(d)
        h.create_endpoint(d, app, self.recv.url("/many"), policy={"name": "many-headers"},
                          headers={f"x-e-{i:02d}": f"e{i}" for i in range(1, 33)})
        mid = h.publish(d, app, "order.created", {"n": 1})["id"]
        got = {k.lower(): v for k, v in self.recv.wait_for(1, path="/many",
                                                           webhook_id=mid)[0].headers.items()}
        for i in range(1, 33):
            self.assertEqual(got.get(f"x-e-{i:02d}"), f"e{i}", f"endpoint header {i} missing")
        for i in range(1, 51):
            self.assertEqual(got.get(f"x-p-{i:02d}"), f"p{i}", f"policy header {i} missing")
        self.assertIn("webhook-signature", got)

    def test_policy_output_resent_identically_after_kill9(self):
        # The policy's output is stored once: a retry after a crash sends the same bytes
        # (and the policy does not run again).
        d = self.shipped_daemon()
        self.recv.behave(path="/again", fail_first=1, fail_status=500)
        ep = h.create_endpoint(d, h.create_app(d, "app_again"), self.recv.url("/again"),
                               retry_schedule=[2], policy={
                                   "name": "redact-pii", "params": {"paths": ["card.number"]}})
        mid = h.publish(d, "app_again", "payment.succeeded",
                        {"card": {"number": "4242424242424242"}, "n": 1})["id"]
        first = self.recv.wait_for(1, path="/again", webhook_id=mid)[0]
        h.wait_until(lambda: h.get_message(d, "app_again", mid)["deliveries"][0]["attempts"] == 1
                     and h.get_attempts(d, "app_again", mid), message="first attempt recorded")
        d.kill9()
        d.start()
        reqs = self.recv.wait_for(2, path="/again", webhook_id=mid, timeout=20)
        self.assertEqual(reqs[1].body, first.body)
        self.assertIn(b"[REDACTED]", reqs[1].body)
        self.assertTrue(h.verify_v1(ep["secret"], reqs[1].headers, reqs[1].body))

    def test_retries_resend_the_first_output_of_a_policy_that_varies(self):
        # The policy's output differs on every run; every retry (also after a kill -9) must
        # still carry the bytes of the first attempt: the output is stored with the first
        # failed attempt and the policy does not run again.
        d = self.daemon()
        varies = ('return { transform = function(m)\n'
                  '  m.data.nonce = string.format("%.9f", os.clock()) .. tostring({})\n'
                  '  return m end }')
        self.assertEqual(put_policy(d, "varies", varies)[0], 200)
        self.recv.behave(path="/varies", fail_first=2, fail_status=503)
        ep = h.create_endpoint(d, h.create_app(d, "app_varies"), self.recv.url("/varies"),
                               retry_schedule=[1, 2], policy={"name": "varies"})
        mid = h.publish(d, "app_varies", "tick", {"n": 1})["id"]
        first = self.recv.wait_for(1, path="/varies", webhook_id=mid)[0]
        self.assertIn("nonce", first.json()["data"])
        h.wait_delivery_state(d, "app_varies", mid, ep["id"], "pending", attempts=1)
        h.wait_until(lambda: h.get_attempts(d, "app_varies", mid),
                     message="the first attempt stored")
        d.kill9()
        d.start()
        reqs = self.recv.wait_for(3, path="/varies", webhook_id=mid, timeout=20)
        for r in reqs[1:]:
            self.assertEqual(r.body, first.body, "a retry sent other bytes than the first attempt")
            self.assertTrue(h.verify_v1(ep["secret"], r.headers, r.body))
        h.wait_delivery_state(d, "app_varies", mid, ep["id"], "succeeded", attempts=3)

    def test_half_stored_policy_fanout_is_finished_without_duplicates(self):
        # Policy deliveries are sent before they are stored and stored with their first
        # outcome. Here one endpoint's first attempt is recorded (failed, retry in a minute)
        # while the other's is still out when hookd is killed: the restart must redo only
        # the second one, and the API must show the in-flight one before the crash.
        d = self.daemon()
        self.assertEqual(put_policy(d, "tag", 'return { transform = function(m)\n'
                                    '  m.headers["x-tag"] = "t" return m end }')[0], 200)
        app = h.create_app(d, "app_half")
        self.recv.behave(path="/fails", status=500)
        self.recv.behave(path="/hangs", delay=6)
        ep_f = h.create_endpoint(d, app, self.recv.url("/fails"), retry_schedule=[120],
                                 policy={"name": "tag"})
        ep_h = h.create_endpoint(d, app, self.recv.url("/hangs"), policy={"name": "tag"})
        mid = h.publish(d, app, "half.tick", {"n": 1})["id"]
        self.recv.wait_for(1, path="/hangs", webhook_id=mid)
        h.wait_delivery_state(d, app, mid, ep_f["id"], "pending", attempts=1)
        # The API shows live state at once; attempts are listed once they are stored.
        h.wait_until(lambda: h.get_attempts(d, app, mid), message="the failed attempt stored")
        hanging = h.wait_delivery_state(d, app, mid, ep_h["id"], "inflight")
        self.assertEqual(hanging["attempts"], 1)
        d.kill9()
        self.recv.behave(path="/hangs")  # answers 200 at once from now on
        d.start()
        reqs = self.recv.wait_for(2, path="/hangs", webhook_id=mid, timeout=20)
        self.assertEqual(reqs[1].headers.get("x-tag"), "t")
        h.wait_delivery_state(d, app, mid, ep_h["id"], "succeeded", attempts=1)
        m = h.get_message(d, app, mid)
        self.assertEqual(sorted(dl["endpoint_id"] for dl in m["deliveries"]),
                         sorted([ep_f["id"], ep_h["id"]]), m)
        self.assertEqual(len({dl["id"] for dl in m["deliveries"]}), 2, m)
        dl_f = h.delivery_for(m, ep_f["id"])
        self.assertEqual((dl_f["state"], dl_f["attempts"]), ("pending", 1), m)
        self.assertEqual(self.recv.count(path="/fails", webhook_id=mid), 1,
                         "the endpoint whose outcome was stored got the message again")
        self.assertRegex(d.log(), r"finished 1 interrupted policy fan-outs")

    def test_policy_fanout_interrupted_by_kill9_is_finished_at_restart(self):
        # The 202 comes before the policy deliveries exist; a crash in between must not lose
        # them: the stored marker makes the restart run the policies and deliver.
        d = self.daemon(extra={"policies": {"cpu_limit_ms": 500}})
        slow = ('return { transform = function(m)\n'
                '  local t = os.clock() while os.clock() - t < 0.03 do end\n'
                '  m.headers["x-slow"] = "yes" return m end }')
        self.assertEqual(put_policy(d, "slow", slow)[0], 200)
        app = h.create_app(d, "app_slow")
        h.create_endpoint(d, app, self.recv.url("/slow"), policy={"name": "slow"})
        ids = [h.publish(d, app, "slow.tick", {"i": i})["id"] for i in range(20)]
        d.kill9()  # ~0.6 s of policy work was still queued
        d.start()
        h.wait_until(lambda: len(set(self.recv.ids(path="/slow"))) == 20, timeout=30,
                     message="all 20 delivered through the policy after the restart")
        self.assertEqual(set(self.recv.ids(path="/slow")), set(ids))
        for r in self.recv.get(path="/slow"):
            self.assertEqual(r.headers.get("x-slow"), "yes")
        self.assertRegex(d.log(), r"finished [1-9][0-9]* interrupted policy fan-outs",
                         "the restart did not have to recover anything: test did not exercise it")

    def test_filtered_messages_are_recorded_not_sent(self):
        d = self.shipped_daemon()
        app = h.create_app(d)
        ep = h.create_endpoint(d, app, self.recv.url("/filter"), policy={
            "name": "drop-by-type-or-field", "params": {"types": ["test.*"]}})
        dropped = h.publish(d, app, "test.ping", {})["id"]
        kept = h.publish(d, app, "order.created", {"n": 1})["id"]
        self.recv.wait_for(1, path="/filter", webhook_id=kept)
        m = h.get_message(d, app, dropped)
        dl = h.delivery_for(m, ep["id"])
        self.assertEqual(dl["state"], "filtered", m)
        self.assertTrue(dl["last_error"], m)
        time.sleep(0.3)
        self.assertEqual(self.recv.count(path="/filter", webhook_id=dropped), 0)
        self.assertEqual(h.get_attempts(d, app, dropped), [])

    def test_hostile_policies_do_not_stop_other_endpoints(self):
        d = self.shipped_daemon()
        self.assertEqual(put_policy(d, "spin", "return { filter = function(m) while true do end end }")[0], 200)
        self.assertEqual(put_policy(d, "hog", """
            return { transform = function(m)
              local t = {}
              for i = 1, 1e9 do t[i] = string.rep("x", 1024) .. i end
              return m
            end }""")[0], 200)
        app = h.create_app(d)
        spin = h.create_endpoint(d, app, self.recv.url("/spin"), policy={"name": "spin"})
        hog = h.create_endpoint(d, app, self.recv.url("/hog"), policy={"name": "hog"})
        h.create_endpoint(d, app, self.recv.url("/ok"))
        n = 10
        t0 = time.time()
        ids = [h.publish(d, app, "load.tick", {"i": i})["id"] for i in range(n)]
        self.recv.wait_for(n, path="/ok", timeout=30)
        sys.stderr.write(f"{n} publishes with 2 hostile policies delivered in {time.time() - t0:.2f}s\n")
        self.assertEqual(self.recv.count(path="/spin") + self.recv.count(path="/hog"), 0)
        for mid in ids:
            # Policy deliveries are made after the 202, on the policy thread.
            m = h.wait_until(lambda: (lambda m: m if len(m["deliveries"]) == 3 else None)(
                h.get_message(d, app, mid)), timeout=30, message=f"3 deliveries for {mid}")
            for bad in (spin, hog):
                dl = h.delivery_for(m, bad["id"])
                self.assertEqual(dl["state"], "dead", m)
                self.assertTrue(dl["last_error"].startswith("policy_error:"), dl)
        st, dead = d.api("GET", f"/v1/apps/{app['id']}/dead?limit=1000")
        self.assertEqual(len(dead["data"]), 2 * n, dead)
        self.assertEqual(d.api("GET", "/healthz", auth=False)[0], 200)
        # The engine recovered: a normal policy on the same daemon still works.
        self.assertEqual(put_policy(d, "spin", "return {}")[0], 200)
        st, out = d.api("POST", "/v1/policies/spin/test", {"message": {"type": "a.b", "data": {"x": 1}}})
        self.assertEqual(out["action"], "deliver", out)

    def test_hostile_policy_does_not_stall_the_api(self):
        # Policies run on their own thread, after the publish is acknowledged: while one app's
        # messages each burn 4 policies' whole CPU budget, publishes to it are still answered
        # at once, and the loop answers everything else promptly.
        d = self.shipped_daemon()
        self.assertEqual(put_policy(d, "spin", "return { filter = function(m) while true do end end }")[0], 200)
        slow = h.create_app(d)
        for _ in range(4):
            h.create_endpoint(d, slow, self.recv.url("/spin4"), policy={"name": "spin"})
        fast = h.create_app(d)
        h.create_endpoint(d, fast, self.recv.url("/fast"))
        acks, ids = [], []
        for i in range(10):  # queues 10 x 4 x 50 ms = 2 s of policy CPU
            t0 = time.time()
            ids.append(h.publish(d, slow, "load.tick", {"i": i})["id"])
            acks.append(time.time() - t0)
        lat = []
        end = time.time() + 1.0
        while time.time() < end and len(lat) < 200:
            t0 = time.time()
            self.assertEqual(d.api("GET", "/healthz", auth=False)[0], 200)
            h.publish(d, fast, "fast.tick", {})
            lat.append(time.time() - t0)
        acks.sort()
        lat.sort()
        sys.stderr.write(f"policy storm: publish acks p50 {acks[len(acks) // 2] * 1000:.1f} ms; "
                         f"API meanwhile {len(lat)} round trips, p50 {lat[len(lat) // 2] * 1000:.1f} ms, "
                         f"max {lat[-1] * 1000:.1f} ms\n")
        # With policies inline on the loop each of these would take 4 x 50 ms.
        self.assertLess(acks[len(acks) // 2], 0.05 * h.SCALE, acks)
        self.assertLess(lat[len(lat) // 2], 0.05 * h.SCALE, lat)
        self.recv.wait_for(len(lat), path="/fast", timeout=30)
        # And the policy work itself still completes: every slow delivery ends dead.
        for mid in ids:
            h.wait_until(lambda: (lambda m: m if len(m["deliveries"]) == 4 and all(
                x["state"] == "dead" for x in m["deliveries"]) else None)(
                    h.get_message(d, slow, mid)), timeout=30, message=f"policy errors for {mid}")

    def test_bad_upload_keeps_running_version_then_fix_and_redrive(self):
        d = self.daemon()
        good = 'return { transform = function(m) m.headers["x-policy-version"] = "1"; return m end }'
        self.assertEqual(put_policy(d, "versioned", good)[0], 200)
        st, body = put_policy(d, "versioned", "return {\n  transform = function(m)\n   retrun m\nend }")
        self.assertEqual(st, 400, body)
        err = h.error_of(body)
        self.assertEqual(err["code"], "policy_compile_error", body)
        self.assertRegex(err["message"], r"line 3", body)
        st, got = d.api("GET", "/v1/policies/versioned")
        self.assertIn('"1"', got["source"])
        app = h.create_app(d)
        h.create_endpoint(d, app, self.recv.url("/v"), policy={"name": "versioned"})
        mid = h.publish(d, app, "a.b", {})["id"]
        req = self.recv.wait_for(1, path="/v", webhook_id=mid)[0]
        self.assertEqual(req.headers.get("x-policy-version"), "1")

        # A policy that throws: the delivery is dead with the error and its line.
        self.assertEqual(put_policy(d, "versioned", 'return { transform = function(m)\n  error("boom")\nend }')[0], 200)
        mid2 = h.publish(d, app, "a.b", {"n": 2})["id"]
        m = h.wait_until(lambda: (lambda m: m if m["deliveries"] else None)(
            h.get_message(d, app, mid2)), message="the policy delivery to be recorded")
        dl = m["deliveries"][0]
        self.assertEqual(dl["state"], "dead", m)
        self.assertRegex(dl["last_error"], r"^policy_error: .*2.*boom", dl)
        # Fix it and redrive: the policy runs again, the receiver gets the fixed output.
        fixed = 'return { transform = function(m) m.headers["x-policy-version"] = "2"; return m end }'
        self.assertEqual(put_policy(d, "versioned", fixed)[0], 200)
        st, r = d.api("POST", f"/v1/apps/{app['id']}/dead/redrive", {"delivery_ids": [dl["id"]]})
        self.assertEqual((st, r["redriven"]), (200, 1), r)
        req = self.recv.wait_for(1, path="/v", webhook_id=mid2)[0]
        self.assertEqual(req.headers.get("x-policy-version"), "2")
        self.assertEqual(req.json()["data"], {"n": 2})

        # Uploaded policies survive a restart.
        d.restart()
        st, got = d.api("GET", "/v1/policies/versioned")
        self.assertEqual(st, 200, got)
        self.assertIn('"2"', got["source"])

    def test_sighup_reloads_the_directory(self):
        pdir = tempfile.mkdtemp(prefix="hookd-policies-")
        path = os.path.join(pdir, "tag.lua")
        src = 'return {{ transform = function(m) m.headers["x-tag"] = "{}"; return m end }}'
        with open(path, "w") as f:
            f.write(src.format("one"))
        d = self.daemon(extra={"policies": {"dir": pdir}})
        app = h.create_app(d)
        h.create_endpoint(d, app, self.recv.url("/tag"), policy={"name": "tag"})
        mid = h.publish(d, app, "a.b", {})["id"]
        self.assertEqual(self.recv.wait_for(1, path="/tag", webhook_id=mid)[0].headers.get("x-tag"), "one")
        with open(path, "w") as f:
            f.write(src.format("two"))
        d.proc.send_signal(signal.SIGHUP)
        h.wait_until(lambda: "two" in d.api("GET", "/v1/policies/tag")[1]["source"],
                     message="policy reloaded on SIGHUP")
        mid = h.publish(d, app, "a.b", {})["id"]
        self.assertEqual(self.recv.wait_for(1, path="/tag", webhook_id=mid)[0].headers.get("x-tag"), "two")

    def test_cli_policy_test_offline(self):
        msg = json.dumps({"type": "payment.succeeded", "data": {"card": {"number": "4242"}}})
        out = subprocess.run([h.hookd_bin(), "policy", "test", os.path.join(SHIPPED, "redact-pii.lua"),
                              "--params", '{"paths": ["card.number"]}'],
                             input=msg.encode(), capture_output=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        res = json.loads(out.stdout)
        self.assertEqual(res["action"], "deliver", res)
        self.assertEqual(res["body"]["data"]["card"]["number"], "[REDACTED]")


if __name__ == "__main__":
    h.main()

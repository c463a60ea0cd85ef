"""Retries, dead letters, redrive, Retry-After and 410 Gone."""

import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hookdtest as h  # noqa: E402


class RetryTest(h.HookdCase):

    def test_fail_twice_then_succeed(self):
        recv = self.receiver()
        recv.behave(fail_first=2, fail_status=500)
        d = self.daemon()
        app = h.create_app(d)
        ep = h.create_endpoint(d, app, recv.url("/flaky"), retry_schedule=[1, 1, 1])
        self.assertEqual(ep["retry_schedule"], [1, 1, 1])
        msg_id = h.publish(d, app, "order.created", {"o": 1})["id"]

        reqs = recv.wait_for(3, path="/flaky", timeout=20)
        self.assertEqual([r.status for r in reqs], [500, 500, 200])
        self.assertEqual({r.webhook_id for r in reqs}, {msg_id})
        for r in reqs:
            self.assertTrue(recv.verify(ep["secret"], r), f"attempt {r} signature invalid")
        # Retries resend the same bytes (only the timestamp/signature headers may change).
        self.assertEqual(len({r.body for r in reqs}), 1, [r.body for r in reqs])
        # The schedule is [1, 1, 1] s with +-20% jitter: gaps roughly 0.8..1.2 s (+ slack).
        gaps = [b.time - a.time for a, b in zip(reqs, reqs[1:])]
        for g in gaps:
            self.assertGreaterEqual(g, 0.7, gaps)
            self.assertLess(g, 1.2 * 1 + 3.0 * h.SCALE, gaps)

        dl = h.wait_delivery_state(d, app, msg_id, ep["id"], "succeeded", attempts=3)
        self.assertEqual(dl["last_status"], 200)
        attempts = h.get_attempts(d, app, msg_id)
        self.assertEqual([a["status"] for a in attempts], [500, 500, 200], attempts)
        self.assertEqual([a["attempt"] for a in attempts], [1, 2, 3], attempts)
        self.assertEqual({a["delivery_id"] for a in attempts}, {dl["id"]})
        times = [h.parse_time(a["at"]) for a in attempts]
        self.assertEqual(times, sorted(times), "attempts are not oldest first")

        time.sleep(1.5)  # no 4th attempt after a success
        self.assertEqual(recv.count(path="/flaky"), 3)

    def test_dead_then_redrive_all(self):
        recv = self.receiver()
        recv.behave(status=500)
        d = self.daemon()
        app = h.create_app(d)
        ep = h.create_endpoint(d, app, recv.url("/down"), retry_schedule=[1, 1])
        msg_id = h.publish(d, app, "invoice.paid", {"i": 1})["id"]

        dl = h.wait_delivery_state(d, app, msg_id, ep["id"], "dead", attempts=3, timeout=20)
        self.assertEqual(recv.count(path="/down"), 3)
        self.assertEqual(dl["last_status"], 500)
        st, dead = d.api("GET", f"/v1/apps/{app['id']}/dead")
        self.assertEqual(st, 200, dead)
        self.assertEqual(len(dead["data"]), 1, dead)
        entry = dead["data"][0]
        self.assertEqual(entry["delivery_id"], dl["id"])
        self.assertEqual(entry["message_id"], msg_id)
        self.assertEqual(entry["endpoint_id"], ep["id"])
        self.assertEqual(entry["attempts"], 3)
        self.assertIsInstance(entry["reason"], str)
        self.assertTrue(entry["reason"].strip(), entry)
        self.assertAlmostEqual(h.parse_time(entry["dead_at"]), time.time(), delta=60)

        recv.behave(status=200)
        st, res = d.api("POST", f"/v1/apps/{app['id']}/dead/redrive", {})
        self.assertEqual(st, 200, res)
        self.assertEqual(res["redriven"], 1, res)
        self.assertEqual(res["delivery_ids"], [dl["id"]])

        reqs = recv.wait_for(4, path="/down")
        self.assertEqual({r.webhook_id for r in reqs}, {msg_id})
        self.assertEqual(reqs[3].status, 200)
        self.assertTrue(recv.verify(ep["secret"], reqs[3]))
        self.assertEqual(reqs[3].body, reqs[0].body)
        h.wait_delivery_state(d, app, msg_id, ep["id"], "succeeded")
        st, dead = d.api("GET", f"/v1/apps/{app['id']}/dead")
        self.assertEqual(dead["data"], [], dead)

    def test_redrive_by_ids_and_since(self):
        recv = self.receiver()
        recv.behave(status=500)
        d = self.daemon()
        app = h.create_app(d)
        aid = app["id"]
        ep = h.create_endpoint(d, app, recv.url("/down"), retry_schedule=[1])
        m1 = h.publish(d, app, "a.b", {"n": 1})["id"]
        m2 = h.publish(d, app, "a.b", {"n": 2})["id"]
        d1 = h.wait_delivery_state(d, app, m1, ep["id"], "dead", attempts=2, timeout=20)["id"]
        d2 = h.wait_delivery_state(d, app, m2, ep["id"], "dead", attempts=2, timeout=20)["id"]

        # By id: only m1 comes back.
        recv.behave(status=200)
        st, res = d.api("POST", f"/v1/apps/{aid}/dead/redrive", {"delivery_ids": [d1]})
        self.assertEqual(st, 200, res)
        self.assertEqual(res["redriven"], 1, res)
        self.assertEqual(res["delivery_ids"], [d1])
        h.wait_delivery_state(d, app, m1, ep["id"], "succeeded")
        self.assertEqual(recv.get(path="/down")[-1].webhook_id, m1)
        st, dead = d.api("GET", f"/v1/apps/{aid}/dead")
        self.assertEqual([e["delivery_id"] for e in dead["data"]], [d2], dead)

        # By time: a cut-off after m2 died; m3 dies after it.
        cut = int(time.time()) + 1
        h.wait_until(lambda: time.time() >= cut + 0.05, timeout=3)
        recv.behave(status=500)
        m3 = h.publish(d, app, "a.b", {"n": 3})["id"]
        d3 = h.wait_delivery_state(d, app, m3, ep["id"], "dead", attempts=2, timeout=20)["id"]

        st, res = d.api("POST", f"/v1/apps/{aid}/dead/redrive",
                        {"since": h.iso(time.time() + 3600)})
        self.assertEqual(st, 200, res)
        self.assertEqual(res["redriven"], 0, res)

        recv.behave(status=200)
        st, res = d.api("POST", f"/v1/apps/{aid}/dead/redrive", {"since": cut})
        self.assertEqual(st, 200, res)
        self.assertEqual(res["redriven"], 1, res)
        self.assertEqual(res["delivery_ids"], [d3])
        h.wait_delivery_state(d, app, m3, ep["id"], "succeeded")
        ok = [r for r in recv.get(path="/down") if r.status == 200]
        self.assertEqual([r.webhook_id for r in ok], [m1, m3])
        st, dead = d.api("GET", f"/v1/apps/{aid}/dead")
        self.assertEqual([e["delivery_id"] for e in dead["data"]], [d2], dead)
        self.assertEqual(h.get_message(d, app, m2)["deliveries"][0]["state"], "dead")

    def test_retry_after_is_honoured(self):
        recv = self.receiver()
        d = self.daemon()
        app = h.create_app(d)
        for status in (429, 503):
            with self.subTest(status=status):
                p = f"/slow{status}"
                recv.behave(path=p, fail_first=1, fail_status=status, retry_after=2)
                ep = h.create_endpoint(d, app, recv.url(p), retry_schedule=[1],
                                       event_types=[f"s{status}.x"])
                msg_id = h.publish(d, app, f"s{status}.x", {})["id"]
                reqs = recv.wait_for(2, path=p, timeout=20)
                self.assertEqual([r.status for r in reqs[:2]], [status, 200])
                gap = reqs[1].time - reqs[0].time
                sys.stderr.write(f"{status} Retry-After 2 s, schedule [1]: second attempt "
                                 f"after {gap:.2f} s\n")
                self.assertGreaterEqual(gap, 1.8, f"Retry-After: 2 on {status} not honoured")
                self.assertLess(gap, 2 * 1.2 + 3.0 * h.SCALE)
                h.wait_delivery_state(d, app, msg_id, ep["id"], "succeeded", attempts=2)
                self.assertEqual([a["status"] for a in h.get_attempts(d, app, msg_id)],
                                 [status, 200])

    def test_redirect_not_followed(self):
        recv = self.receiver()
        recv.behave(path="/moved", status=302,
                    headers={"Location": recv.url("/target")})
        d = self.daemon()
        app = h.create_app(d)
        ep = h.create_endpoint(d, app, recv.url("/moved"), retry_schedule=[1])
        msg_id = h.publish(d, app, "a.b", {})["id"]
        dl = h.wait_delivery_state(d, app, msg_id, ep["id"], "dead", attempts=2, timeout=20)
        self.assertEqual(dl["last_status"], 302)
        self.assertEqual([a["status"] for a in h.get_attempts(d, app, msg_id)], [302, 302])
        self.assertEqual(recv.count(path="/moved"), 2)
        self.assertEqual(recv.count(path="/target"), 0, "a redirect was followed")

    def test_timeout_is_a_failed_attempt(self):
        recv = self.receiver()
        d = self.daemon(delivery={"timeout_ms": 1000})
        app = h.create_app(d)
        # The first attempt hangs past delivery.timeout_ms; the retry is answered at once.
        recv.behave(path="/hang", delay=4.0)
        ep = h.create_endpoint(d, app, recv.url("/hang"), retry_schedule=[1])
        msg_id = h.publish(d, app, "a.b", {})["id"]
        recv.wait_for(1, path="/hang")
        recv.behave(path="/hang")
        dl = h.wait_delivery_state(d, app, msg_id, ep["id"], "succeeded", attempts=2,
                                   timeout=20)
        attempts = h.get_attempts(d, app, msg_id)
        self.assertEqual(len(attempts), 2, attempts)
        first = attempts[0]
        self.assertIsNone(first["status"], first)
        self.assertIsInstance(first["error"], str, first)
        self.assertRegex(first["error"].lower(), r"time.?out|timed out", first)
        self.assertLess(first["duration_ms"], 3500, first)
        self.assertGreaterEqual(first["duration_ms"], 800, first)
        self.assertEqual(attempts[1]["status"], 200)
        self.assertEqual(dl["last_status"], 200)

    def test_410_gone_disables_endpoint(self):
        recv = self.receiver()
        recv.behave(path="/gone", status=410)
        d = self.daemon()
        app = h.create_app(d)
        gone = h.create_endpoint(d, app, recv.url("/gone"), retry_schedule=[1, 1])
        ctl = h.create_endpoint(d, app, recv.url("/ctl"))

        m1 = h.publish(d, app, "a.b", {"n": 1})["id"]
        recv.wait_for(1, path="/gone")
        ep = h.wait_until(lambda: (lambda e: e if e["disabled"] else None)(
            h.get_endpoint(d, app, gone["id"])), message="endpoint disabled after 410")
        self.assertIsInstance(ep["disabled_reason"], str)
        self.assertTrue(ep["disabled_reason"].strip(), ep)
        sys.stderr.write(f"410: disabled_reason={ep['disabled_reason']!r}; m1 delivery: "
                         f"{h.delivery_for(h.get_message(d, app, m1), gone['id'])}\n")
        # 410 is final: no retry of m1.
        time.sleep(2.5)
        self.assertEqual(recv.count(path="/gone"), 1, recv.get(path="/gone"))

        # Later publishes are held for the disabled endpoint, not sent (the control one gets
        # them).
        m2 = h.publish(d, app, "a.b", {"n": 2})["id"]
        recv.wait_for(1, path="/ctl", webhook_id=m2)
        time.sleep(2.0)
        self.assertEqual(recv.count(path="/gone"), 1, recv.get(path="/gone"))

        # Re-enable: the endpoint works again.
        recv.behave(path="/gone", status=200)
        st, ep = d.api("PATCH", f"/v1/apps/{app['id']}/endpoints/{gone['id']}",
                       {"disabled": False})
        self.assertEqual(st, 200, ep)
        self.assertFalse(ep["disabled"])
        self.assertIsNone(ep["disabled_reason"])
        m3 = h.publish(d, app, "a.b", {"n": 3})["id"]
        r = recv.wait_for(1, path="/gone", webhook_id=m3)[0]
        self.assertEqual(r.status, 200)
        self.assertTrue(recv.verify(gone["secret"], r))
        # m2, published while disabled, was held and goes out after the re-enable.
        r2 = recv.wait_for(1, path="/gone", webhook_id=m2)[0]
        self.assertEqual(r2.status, 200)
        h.wait_delivery_state(d, app, m2, gone["id"], "succeeded", attempts=1)
        self.assertEqual(recv.count(path="/gone", webhook_id=m2), 1)


if __name__ == "__main__":
    h.main()

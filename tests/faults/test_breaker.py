"""An endpoint that fails, asks for less, or answers slowly is not flooded, and does not slow
the others: the circuit breaker, the rate limit, Retry-After pauses and the in-flight cap,
end to end against a real receiver (issue 11).

- Breaker: after `consecutive_failures` failed attempts in a row it opens; due deliveries
  then wait (no attempt, their schedule not consumed, `waiting_for: "breaker_open"`), one
  probe goes per cooldown (which doubles, capped), and the probe that succeeds closes it;
  the backlog then goes out on a rising rate, not all at once.
- `rate_limit.per_second` spaces attempts; `Retry-After` on a 429 pauses the endpoint.
- A slow receiver holds only its own in-flight slots.
- GET .../status shows each of these states.

Before this change none of it existed: a dead endpoint got an attempt per due delivery, at
the speed of the retry schedule, and `.../status` was 404."""

import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import hookdtest as h  # noqa: E402

S = h.SCALE


def status(d, app, ep):
    return h.endpoint_status(d, app, ep["id"])


def times(reqs):
    return [r.time for r in reqs]


class BreakerTest(h.HookdCase):

    def test_breaker_opens_probes_once_per_cooldown_and_closes(self):
        recv = self.receiver()
        recv.behave(status=500)
        d = self.daemon(delivery={"retry_schedule": [1] * 20,
                                  "breaker": {"max_cooldown_seconds": 2}})
        app = h.create_app(d)
        ep = h.create_endpoint(d, app, recv.url(), max_in_flight=1,
                               breaker={"consecutive_failures": 3, "cooldown_seconds": 1})
        self.assertEqual(ep["breaker"], {"consecutive_failures": 3, "failure_ratio": None,
                                         "window_seconds": None, "cooldown_seconds": 1})
        self.assertEqual(status(d, app, ep)["breaker"], "closed")

        ids = [h.publish(d, app, "order.placed", {"n": i})["id"] for i in range(5)]
        first = recv.wait_for(3)
        # Open now: nothing more until the cooldown ends.
        h.wait_until(lambda: status(d, app, ep)["breaker"] == "open", timeout=5,
                     message="the breaker to open after 3 failures")
        opened = time.time()
        st = status(d, app, ep)
        self.assertEqual(st["breaker_detail"]["failures_in_a_row"], 3, st)
        self.assertIsNotNone(st["breaker_detail"]["next_probe_at"], st)
        self.assertEqual(st["last_failure"]["status"], 500, st)
        self.assertEqual(st["last_hour"]["failed"], 3, st)
        self.assertEqual(st["success_ratio"], 0.0, st)
        # The messages not tried yet wait without spending attempts.
        untried = [m for m in ids if not recv.get(webhook_id=m)]
        self.assertTrue(untried, [r.webhook_id for r in first])
        for mid in untried:
            dl = h.delivery_for(h.get_message(d, app, mid), ep["id"])
            self.assertEqual(dl["attempts"], 0, dl)
            self.assertEqual(dl["state"], "pending", dl)
        h.wait_until(lambda: any(h.delivery_for(h.get_message(d, app, m), ep["id"])
                                 .get("waiting_for") == "breaker_open" for m in ids),
                     timeout=5, message="a due delivery shown waiting for the breaker")

        # Probes: after 1 s, then every 2 s (doubled, capped by max_cooldown_seconds).
        watch = 4.5 * S
        time.sleep(watch)
        during = [r for r in recv.get() if r.time > opened]
        self.assertGreaterEqual(len(during), 1, "no probe after the cooldown")
        self.assertLessEqual(len(during), 1 + int(watch / 2) + 1,
                             f"more than one probe per cooldown: {during}")
        for a, b in zip(during, during[1:]):
            self.assertGreaterEqual(b.time - a.time, 1.5, f"probes too close: {during}")
        # The waiting ones spent attempts only as probes, one per cooldown.
        spent = sum(h.delivery_for(h.get_message(d, app, mid), ep["id"])["attempts"]
                    for mid in untried)
        self.assertLessEqual(spent, len(during), f"attempts beyond the probes: {during}")

        # The endpoint recovers: the next probe closes it and everything is delivered.
        recv.behave(status=200)
        for mid in ids:
            h.wait_delivery_state(d, app, mid, ep["id"], "succeeded", timeout=20)
        st = status(d, app, ep)
        self.assertEqual(st["breaker"], "closed", st)
        self.assertIsNotNone(st["last_success"], st)
        self.assertGreater(st["success_ratio"], 0, st)
        self.assertLess(st["success_ratio"], 1, st)
        self.assertIsNotNone(st["latency_ms"]["p50"], st)
        self.assertIn("circuit breaker opened after 3 failed attempts", d.log())
        self.assertIn("probe succeeded; closed", d.log())
        # Never more attempts than the schedule allows, each one recorded.
        for mid in ids:
            att = [a for a in h.get_attempts(d, app, mid) if a["endpoint_id"] == ep["id"]]
            self.assertEqual(len(att), recv.count(webhook_id=mid), mid)
            self.assertLessEqual(len(att), 21)

    def test_backlog_after_close_goes_out_on_a_ramp(self):
        recv = self.receiver()
        recv.behave(status=503)
        d = self.daemon(delivery={"retry_schedule": [60] * 5})
        app = h.create_app(d)
        ep = h.create_endpoint(d, app, recv.url(), max_in_flight=1,
                               breaker={"consecutive_failures": 1, "cooldown_seconds": 1})
        h.publish(d, app, "order.placed", {"n": -1})
        recv.wait_for(1)
        h.wait_until(lambda: status(d, app, ep)["breaker"] != "closed", timeout=5,
                     message="the breaker to open")
        ids = [h.publish(d, app, "order.placed", {"n": i})["id"] for i in range(8)]
        recv.behave(status=200)
        for mid in ids:
            h.wait_delivery_state(d, app, mid, ep["id"], "succeeded", timeout=20)
        got = [r for r in recv.get() if r.webhook_id in ids]
        self.assertEqual(len(got), 8)
        # From 1/s doubling each second: 8 take about 3 s, never all at once.
        span = got[-1].time - got[0].time
        self.assertGreaterEqual(span, 1.5, f"the backlog went out at once: {times(got)}")


class RateTest(h.HookdCase):

    def test_rate_limit_spaces_attempts(self):
        recv = self.receiver()
        d = self.daemon()
        app = h.create_app(d)
        ep = h.create_endpoint(d, app, recv.url(), rate_limit={"per_second": 10, "burst": 1})
        self.assertEqual(ep["rate_limit"], {"per_second": 10, "burst": 1})
        ids = [h.publish(d, app, "order.placed", {"n": i})["id"] for i in range(20)]
        got = recv.wait_for(20, timeout=20)
        span = got[-1].time - got[0].time
        # 19 gaps of 100 ms; a loaded machine only makes it slower.
        self.assertGreaterEqual(span, 1.6, f"20 attempts at 10/s took {span:.2f} s")
        st = status(d, app, ep)
        self.assertEqual(st["rate_limit"]["per_second"], 10, st)
        self.assertEqual(st["rate_limit"]["limit"], 10, st)
        self.assertFalse(st["rate_limit"]["throttled"], st)
        for mid in ids:
            h.wait_delivery_state(d, app, mid, ep["id"], "succeeded", attempts=1)
        # A PATCH changes it for what is still to come: null means no limit again.
        st_, b = d.api("PATCH", f"/v1/apps/{app['id']}/endpoints/{ep['id']}",
                       {"rate_limit": None})
        self.assertEqual(st_, 200, b)
        self.assertIsNone(status(d, app, ep)["rate_limit"]["per_second"])
        ids = [h.publish(d, app, "order.placed", {"n": i})["id"] for i in range(20)]
        got = recv.wait_for(40, timeout=20)[20:]
        self.assertLess(got[-1].time - got[0].time, 1.6 * S if S > 1 else 1.5)

    def test_retry_after_pauses_the_endpoint_and_lowers_its_rate(self):
        recv = self.receiver()
        recv.behave(status=429, retry_after=2)
        d = self.daemon(delivery={"retry_schedule": [1] * 5})
        app = h.create_app(d)
        ep = h.create_endpoint(d, app, recv.url(), max_in_flight=1)
        ids = [h.publish(d, app, "order.placed", {"n": i})["id"] for i in range(3)]
        first = recv.wait_for(1)[0]
        recv.behave(status=200)
        st = status(d, app, ep)
        self.assertIsNotNone(st["rate_limit"]["paused_until"], st)
        self.assertTrue(st["rate_limit"]["throttled"], st)
        self.assertIsNotNone(st["rate_limit"]["per_second"], st)
        got = recv.wait_for(4, timeout=20)
        self.assertGreaterEqual(got[1].time - first.time, 1.8,
                                f"an attempt inside the Retry-After pause: {times(got)}")
        for mid in ids:
            h.wait_delivery_state(d, app, mid, ep["id"], "succeeded", timeout=20)
        self.assertIn("answered 429: sending at most", d.log())

    def test_slow_receiver_holds_only_its_own_slots(self):
        recv = self.receiver()
        recv.behave(path="/slow", delay=1.5)
        d = self.daemon()
        app = h.create_app(d)
        slow = h.create_endpoint(d, app, recv.url("/slow"), max_in_flight=2,
                                 event_types=["slow.*"])
        fast = h.create_endpoint(d, app, recv.url("/fast"), event_types=["fast.*"])
        for i in range(6):
            h.publish(d, app, "slow.tick", {"n": i})
        recv.wait_for(2, path="/slow")
        t0 = time.time()
        ids = [h.publish(d, app, "fast.tick", {"n": i})["id"] for i in range(30)]
        recv.wait_for(30, path="/fast", timeout=10)
        fast_done = time.time() - t0
        st = status(d, app, slow)
        self.assertLessEqual(st["inflight"], 2, st)
        # The slow endpoint is still busy with its backlog (6 x 1.5 s over 2 slots).
        self.assertLess(recv.count(path="/slow"), 6, "the slow endpoint finished first")
        self.assertLess(fast_done, 4.5 * S, f"the fast endpoint waited: {fast_done:.2f} s")
        for mid in ids:
            h.wait_delivery_state(d, app, mid, fast["id"], "succeeded", attempts=1)


class SchemaTest(h.HookdCase):

    def test_bad_values_name_the_field(self):
        d = self.daemon()
        app = h.create_app(d)
        url = "http://127.0.0.1:9/hook"
        cases = [
            ({"breaker": {"consecutive_failures": -1}}, "breaker.consecutive_failures",
             "expected 0..1000000, got -1"),
            ({"breaker": {"failure_ratio": 1.5}}, "breaker.failure_ratio", "expected 0..1"),
            ({"breaker": {"cooldown_seconds": "soon"}}, "breaker.cooldown_seconds",
             "must be an integer"),
            ({"breaker": {"cooldown": 3}}, "breaker.cooldown", "unknown field"),
            ({"rate_limit": {"burst": 3}}, "rate_limit.per_second", "required"),
            ({"rate_limit": {"per_second": "fast"}}, "rate_limit.per_second",
             "must be a number"),
            ({"max_in_flight": 0}, "max_in_flight", "expected 1..65536, got 0"),
        ]
        for body, field, msg in cases:
            body = dict(body, url=url)
            st, b = d.api("POST", f"/v1/apps/{app['id']}/endpoints", body)
            self.assertEqual(st, 400, (body, b))
            self.assertEqual(b["error"]["field"], field, b)
            self.assertIn(msg, b["error"]["message"], b)
        st, b = d.api("GET", f"/v1/apps/{app['id']}/endpoints/nope/status")
        self.assertEqual(st, 404, b)


if __name__ == "__main__":
    h.main()

"""An endpoint that fails without a success for its auto_disable_seconds is disabled with the
reason; what is published meanwhile is held, never dropped, and goes out once the operator
enables it again. The start of the run of failures survives a kill -9 (issue 11).

Before this change an endpoint that was gone for good got attempts forever (a 410 was the
only way hookd stopped)."""

import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import hookdtest as h  # noqa: E402

# The breaker off, so that attempts keep coming at the schedule's pace (one a second) and
# the test is about the time, not about the probes.
DELIVERY = {"retry_schedule": [1] * 30,
            "breaker": h.NO_BREAKER}


def endpoint(d, app, ep):
    return h.get_endpoint(d, app, ep["id"])


class AutoDisableTest(h.HookdCase):

    def test_failing_endpoint_is_disabled_held_and_released(self):
        recv = self.receiver()
        recv.behave(status=503)
        d = self.daemon(delivery=DELIVERY)
        app = h.create_app(d)
        ep = h.create_endpoint(d, app, recv.url(), auto_disable_seconds=3, max_in_flight=1)
        self.assertIsNone(ep["failing_since"], ep)
        first = h.publish(d, app, "order.placed", {"n": 0})["id"]
        recv.wait_for(1)
        t0 = time.time()
        h.wait_until(lambda: endpoint(d, app, ep)["disabled"], timeout=15,
                     message="the endpoint to be disabled after 3 s of failures")
        took = time.time() - t0
        self.assertGreaterEqual(took, 1.5, "disabled before its auto_disable_seconds")
        got = endpoint(d, app, ep)
        self.assertRegex(got["disabled_reason"], r"failing without a success since .*"
                                                 r"auto_disable_seconds is 3", got)
        self.assertIsNotNone(got["failing_since"], got)
        self.assertIn(f"endpoint {app['id']}/{ep['id']} disabled: failing without", d.log())
        st = h.endpoint_status(d, app, ep["id"])
        self.assertTrue(st["disabled"], st)

        # Held, not dropped: published while disabled, no attempt, pending.
        n = recv.count()
        held = [h.publish(d, app, "order.placed", {"n": i})["id"] for i in range(1, 4)]
        time.sleep(1.0 * h.SCALE)
        self.assertEqual(recv.count(), n, "an attempt to a disabled endpoint")
        for mid in held:
            dl = h.delivery_for(h.get_message(d, app, mid), ep["id"])
            self.assertEqual((dl["state"], dl["attempts"], dl["waiting_for"]),
                             ("pending", 0, "endpoint_disabled"), dl)

        # Enabled again (the receiver fixed): everything goes out, the run is forgotten.
        recv.behave(status=200)
        st_, b = d.api("PATCH", f"/v1/apps/{app['id']}/endpoints/{ep['id']}",
                       {"disabled": False})
        self.assertEqual(st_, 200, b)
        self.assertIsNone(b["failing_since"], b)
        self.assertIsNone(b["disabled_reason"], b)
        for mid in [first] + held:
            h.wait_delivery_state(d, app, mid, ep["id"], "succeeded", timeout=20)
        self.assertFalse(endpoint(d, app, ep)["disabled"])

    def test_run_of_failures_counts_across_a_restart(self):
        recv = self.receiver()
        recv.behave(status=500)
        d = self.daemon(delivery=DELIVERY)
        app = h.create_app(d)
        # Stored once the run lasts a quarter of the limit (2 s here).
        ep = h.create_endpoint(d, app, recv.url(), auto_disable_seconds=8, max_in_flight=1)
        h.publish(d, app, "order.placed", {"n": 0})
        recv.wait_for(1)
        h.wait_until(lambda: endpoint(d, app, ep)["failing_since"] is not None, timeout=10,
                     message="failing_since to be stored")
        since = endpoint(d, app, ep)["failing_since"]
        d.kill9()
        d.start()
        self.assertEqual(endpoint(d, app, ep)["failing_since"], since)
        # Disabled about 8 s after the first failure, not 8 s after the restart.
        h.wait_until(lambda: endpoint(d, app, ep)["disabled"], timeout=20,
                     message="the endpoint to be disabled")
        reason = endpoint(d, app, ep)["disabled_reason"]
        self.assertIn(f"since {since}", reason)

    def test_a_success_ends_the_run(self):
        recv = self.receiver()
        recv.behave(status=200, fail_first=1, fail_status=500)
        d = self.daemon(delivery=DELIVERY)
        app = h.create_app(d)
        ep = h.create_endpoint(d, app, recv.url(), auto_disable_seconds=4, max_in_flight=1)
        # Each message fails once and then succeeds: never 4 s without a success.
        deadline = time.time() + 6
        i = 0
        while time.time() < deadline:
            mid = h.publish(d, app, "order.placed", {"n": i})["id"]
            h.wait_delivery_state(d, app, mid, ep["id"], "succeeded", timeout=10)
            i += 1
        got = endpoint(d, app, ep)
        self.assertFalse(got["disabled"], got)


if __name__ == "__main__":
    h.main()

"""Messages published while an endpoint is disabled are held, not lost.

The fault campaign found that a disabled endpoint (by PATCH, or automatically after a
`410 Gone`) got no delivery at all for what was published meanwhile: re-enabling it
delivered nothing and there was nothing to redrive. Now the deliveries are recorded,
pending, shown with "waiting_for": "endpoint_disabled", counted in hookd_pending, kept
across a restart, and sent in publish order once the endpoint is enabled again."""

import os
import re
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import hookdtest as h  # noqa: E402

SHIPPED = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                       "policies"))


def metric(d, name):
    st, text = d.api("GET", "/metrics")
    assert st == 200, text
    m = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


class DisabledEndpointTest(h.HookdCase):

    def start(self, **kw):
        # One request at a time per endpoint, so arrival order is delivery order.
        return self.daemon(delivery={"max_inflight_per_endpoint": 1}, **kw)

    def set_disabled(self, d, app, ep, value):
        st, body = d.api("PATCH", f"/v1/apps/{app['id']}/endpoints/{ep['id']}",
                         {"disabled": value})
        self.assertEqual(st, 200, body)
        self.assertIs(body["disabled"], value)

    def assert_held(self, d, app, ep, ids):
        for mid in ids:
            dl = h.delivery_for(h.get_message(d, app, mid), ep["id"])
            self.assertIsNotNone(dl, f"{mid}: no delivery recorded for the disabled endpoint")
            self.assertEqual(dl["state"], "pending", dl)
            self.assertEqual(dl["waiting_for"], "endpoint_disabled", dl)
            self.assertEqual(dl["attempts"], 0, dl)
            self.assertEqual(h.get_attempts(d, app, mid), [])

    def assert_in_order(self, recv, path, ids):
        got = recv.wait_for(len(ids), path=path, timeout=20)
        self.assertEqual([r.webhook_id for r in got], ids, "not delivered in publish order")

    def test_held_while_disabled_and_sent_in_order_on_enable(self):
        recv = self.receiver()
        d = self.start()
        app = h.create_app(d)
        ep = h.create_endpoint(d, app, recv.url("/held"))
        self.set_disabled(d, app, ep, True)
        ids = [h.publish(d, app, "order.created", {"n": i})["id"] for i in range(6)]
        self.assert_held(d, app, ep, ids)
        self.assertEqual(metric(d, "hookd_pending"), 6)
        time.sleep(1.0)
        self.assertEqual(recv.count(path="/held"), 0, "a disabled endpoint received a request")
        self.set_disabled(d, app, ep, False)
        self.assert_in_order(recv, "/held", ids)
        for mid in ids:
            dl = h.wait_delivery_state(d, app, mid, ep["id"], "succeeded")
            self.assertIsNone(dl["waiting_for"])
        self.assertEqual(metric(d, "hookd_pending"), 0)

    def test_after_410_gone_later_messages_are_held(self):
        recv = self.receiver()
        recv.behave(path="/gone", status=410)
        d = self.start()
        app = h.create_app(d)
        ep = h.create_endpoint(d, app, recv.url("/gone"))
        first = h.publish(d, app, "order.created", {"n": 0})["id"]
        dl = h.wait_delivery_state(d, app, first, ep["id"], "dead")
        self.assertIn("410", dl["last_error"])
        got = h.get_endpoint(d, app, ep["id"])
        self.assertIs(got["disabled"], True)
        ids = [h.publish(d, app, "order.created", {"n": i})["id"] for i in range(1, 5)]
        self.assert_held(d, app, ep, ids)
        recv.behave(path="/gone", status=200)
        self.set_disabled(d, app, ep, False)
        self.assert_in_order(recv, "/gone", [first] + ids)  # the 410 itself came first
        for mid in ids:
            h.wait_delivery_state(d, app, mid, ep["id"], "succeeded")
        # The delivery that got the 410 stays dead and can be redriven.
        self.assertEqual(h.delivery_for(h.get_message(d, app, first), ep["id"])["state"], "dead")
        st, body = d.api("POST", f"/v1/apps/{app['id']}/dead/redrive", {})
        self.assertIn(st, (200, 202), body)
        h.wait_delivery_state(d, app, first, ep["id"], "succeeded")

    def test_held_across_a_restart(self):
        recv = self.receiver()
        d = self.start()
        app = h.create_app(d)
        ep = h.create_endpoint(d, app, recv.url("/restart"))
        self.set_disabled(d, app, ep, True)
        ids = [h.publish(d, app, "order.created", {"n": i})["id"] for i in range(4)]
        d.restart(kill=True)
        self.assert_held(d, app, ep, ids)
        self.assertEqual(metric(d, "hookd_pending"), 4)
        time.sleep(1.0)
        self.assertEqual(recv.count(path="/restart"), 0)
        self.set_disabled(d, app, ep, False)
        self.assert_in_order(recv, "/restart", ids)

    def test_policy_endpoint_disabled_is_held_too(self):
        recv = self.receiver()
        d = self.start(extra={"policies": {"dir": SHIPPED}})
        app = h.create_app(d)
        ep = h.create_endpoint(d, app, recv.url("/policy"),
                               policy={"name": "redact-pii", "params": {"paths": ["email"]}})
        self.set_disabled(d, app, ep, True)
        ids = [h.publish(d, app, "user.created", {"n": i, "email": "a@example.com"})["id"]
               for i in range(3)]
        h.wait_until(lambda: all(h.delivery_for(h.get_message(d, app, m), ep["id"])
                                 for m in ids), timeout=10, message="policy deliveries listed")
        self.assert_held(d, app, ep, ids)
        self.set_disabled(d, app, ep, False)
        got = recv.wait_for(3, path="/policy", timeout=20)
        self.assertEqual([r.webhook_id for r in got], ids)
        for r in got:
            self.assertNotIn("a@example.com", r.body.decode())


if __name__ == "__main__":
    h.main()

"""Operational webhooks: hookd tells the operator's endpoint, through the same signed and
retried delivery path, when an endpoint's breaker opens and closes, when an endpoint is
disabled (by a 410, a long run of failures, or the operator) and enabled, and when a
message goes dead; never about the operator app's own endpoints (issue 11).

Before this change the only way to learn of any of it was to poll the API or read the log."""

import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import hookdtest as h  # noqa: E402

OPS_SECRET = h.random_whsec()


def ops_events(recv, type_=None):
    out = []
    for r in recv.get(path="/ops"):
        body = r.json()
        if type_ is None or body["type"] == type_:
            out.append((r, body))
    return out


class OperationalWebhooksTest(h.HookdCase):

    def daemon_with_ops(self, recv, ops_path="/ops", **kw):
        apps = [{"id": "ops", "name": "operators",
                 "endpoints": [{"id": "pager", "url": recv.url(ops_path),
                                "secret": OPS_SECRET, "retry_schedule": [1, 1],
                                "breaker": {"consecutive_failures": 2,
                                            "cooldown_seconds": 1}}]}]
        return self.daemon(apps=apps, extra={"operational_webhooks": {"app": "ops"}}, **kw)

    def test_breaker_dead_disable_enable_are_published_signed(self):
        recv = self.receiver()
        recv.behave(path="/bad", status=500)
        d = self.daemon_with_ops(recv, delivery={"retry_schedule": [1]})
        app = h.create_app(d)
        ep = h.create_endpoint(d, app, recv.url("/bad"), max_in_flight=1,
                               breaker={"consecutive_failures": 2, "cooldown_seconds": 1})
        mid = h.publish(d, app, "order.placed", {"n": 1})["id"]
        h.publish(d, app, "order.placed", {"n": 2})

        h.wait_until(lambda: ops_events(recv, "endpoint.breaker_opened"), timeout=15,
                     message="endpoint.breaker_opened")
        r, ev = ops_events(recv, "endpoint.breaker_opened")[0]
        self.assertTrue(recv.verify(OPS_SECRET, r), "operational webhook not signed")
        self.assertEqual(ev["data"]["app_id"], app["id"], ev)
        self.assertEqual(ev["data"]["endpoint_id"], ep["id"], ev)
        self.assertEqual(ev["data"]["failures_in_a_row"], 2, ev)
        self.assertEqual(ev["data"]["last_error"], "HTTP 500", ev)
        self.assertEqual(ev["source"], "hookd", ev)
        # Stored like any message of the ops app, with its delivery recorded.
        m = h.get_message(d, "ops", r.webhook_id)
        self.assertEqual(m["type"], "endpoint.breaker_opened", m)

        # The first message goes dead after its one retry (the probe): message.dead.
        h.wait_until(lambda: any(e["data"]["message_id"] == mid
                                 for _, e in ops_events(recv, "message.dead")),
                     timeout=20, message="message.dead")
        dead = [e for _, e in ops_events(recv, "message.dead") if e["data"]["message_id"] == mid]
        self.assertEqual(dead[0]["data"]["endpoint_id"], ep["id"], dead)
        self.assertIn("retry schedule exhausted", dead[0]["data"]["last_error"], dead)

        # The receiver recovers: breaker_closed.
        recv.behave(path="/bad", status=200)
        h.publish(d, app, "order.placed", {"n": 3})
        h.wait_until(lambda: ops_events(recv, "endpoint.breaker_closed"), timeout=20,
                     message="endpoint.breaker_closed")

        # The operator disables and enables it: endpoint.disabled, endpoint.enabled.
        for value in (True, False):
            st, b = d.api("PATCH", f"/v1/apps/{app['id']}/endpoints/{ep['id']}",
                          {"disabled": value})
            self.assertEqual(st, 200, b)
        h.wait_until(lambda: ops_events(recv, "endpoint.enabled"), timeout=10,
                     message="endpoint.enabled")
        off = ops_events(recv, "endpoint.disabled")
        self.assertEqual(off[-1][1]["data"]["reason"], "disabled by operator", off)

        # A 410 disables it: endpoint.disabled with hookd's reason.
        recv.behave(path="/bad", status=410)
        h.publish(d, app, "order.placed", {"n": 4})
        h.wait_until(lambda: any("410" in e["data"]["reason"]
                                 for _, e in ops_events(recv, "endpoint.disabled")),
                     timeout=10, message="endpoint.disabled after a 410")

    def test_nothing_about_the_operator_app_itself(self):
        recv = self.receiver()
        recv.behave(path="/ops", status=500)
        d = self.daemon_with_ops(recv)
        app = h.create_app(d)
        # The operator endpoint fails: its breaker opens and its events go dead, and none
        # of that is published into the ops app again.
        recv.behave(path="/bad", status=500)
        ep = h.create_endpoint(d, app, recv.url("/bad"), max_in_flight=1,
                               breaker={"consecutive_failures": 1, "cooldown_seconds": 60})
        h.publish(d, app, "order.placed", {"n": 1})
        recv.wait_for(1, path="/ops")
        time.sleep(4 * h.SCALE)  # its retries (1 s, 1 s) and its breaker (2 failures)
        st, b = d.api("GET", "/v1/apps/ops/messages?limit=1000")
        self.assertEqual(st, 200, b)
        types = [m["type"] for m in b["data"]]
        self.assertEqual(types, ["endpoint.breaker_opened"],
                         f"events about the operator endpoint itself: {types}")
        ev = h.get_message(d, "ops", b["data"][0]["id"])
        self.assertEqual(ev["data"]["endpoint_id"], ep["id"], ev)
        # What was not published did happen: the operator endpoint's own breaker opened
        # and its event went dead.
        self.assertIn("endpoint ops/pager: circuit breaker opened", d.log())
        st, dead = d.api("GET", "/v1/apps/ops/dead")
        self.assertEqual(len(dead["data"]), 1, dead)

    def test_missing_app_is_a_warning(self):
        d = self.daemon(extra={"operational_webhooks": {"app": "nope"}})
        self.assertIn("operational_webhooks.app 'nope' is not an app", d.log())


if __name__ == "__main__":
    h.main()

"""Messages published while an endpoint is disabled are recorded and held, not dropped.

A disabled endpoint (by the operator, or automatically after `410 Gone`) still gets a
delivery for every message it subscribes to: stored, listed as `pending` with
`waiting_for: "endpoint_disabled"`, counted in `hookd_pending`, with no attempt made. When
the endpoint is enabled again the held deliveries go out in publish order. This holds
across a restart, for endpoints with a routing policy (whose output is kept from the
fan-out), for messages published in the same millisecond, for dead deliveries redriven
while the endpoint is disabled, and when every global in-flight slot is busy at the moment
of the re-enable.

Before the fix, fan-out skipped disabled endpoints: no delivery was made at all, so
re-enabling delivered nothing and nothing could be redriven."""

import os
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import hookdtest as h  # noqa: E402

# One attempt in flight per endpoint, so the order in which hookd starts the released
# deliveries is also the order in which the receiver sees them.
DELIVERY = {"max_inflight_per_endpoint": 1}

# How long a held delivery must stay unsent for the test to call it held (scaled).
QUIET_S = 0.8


def put_policy(d, name, source):
    return d.api("PUT", f"/v1/policies/{name}", raw=source.encode(),
                 headers={"Content-Type": "text/x-lua"})


def set_disabled(d, app, ep, value):
    st, body = d.api("PATCH", f"/v1/apps/{app['id']}/endpoints/{ep['id']}",
                     {"disabled": value})
    assert st == 200, (st, body)
    assert body["disabled"] is value, body
    return body


class DisabledEndpointTest(h.HookdCase):

    def assert_held(self, d, app, ids, ep):
        """Every message in ids has a delivery to ep that is pending, waiting for the
        endpoint, with no attempt and no next attempt time."""
        for mid in ids:
            m = h.get_message(d, app, mid)
            dl = h.delivery_for(m, ep["id"])
            self.assertIsNotNone(dl, f"no delivery of {mid} to the disabled endpoint: {m}")
            self.assertEqual(dl["state"], "pending", dl)
            self.assertEqual(dl.get("waiting_for"), "endpoint_disabled", dl)
            self.assertEqual(dl["attempts"], 0, dl)
            self.assertIsNone(dl["next_attempt_at"], dl)
            self.assertEqual([a for a in h.get_attempts(d, app, mid)
                              if a["endpoint_id"] == ep["id"]], [],
                             "an attempt against a disabled endpoint")

    def assert_released_in_order(self, d, app, recv, path, ids, ep, timeout=10.0):
        reqs = recv.wait_for(len(ids), path=path, timeout=timeout)
        self.assertEqual([r.webhook_id for r in reqs], ids, "held deliveries out of publish order")
        for r in reqs:
            self.assertTrue(recv.verify(ep["secret"], r))
        for mid in ids:
            dl = h.wait_delivery_state(d, app, mid, ep["id"], "succeeded", attempts=1)
            self.assertIsNone(dl.get("waiting_for"), dl)
        return reqs

    def test_publish_while_disabled_is_held_then_released_in_order(self):
        recv = self.receiver()
        d = self.daemon(delivery=DELIVERY)
        app = h.create_app(d)
        off = h.create_endpoint(d, app, recv.url("/off"))
        ctl = h.create_endpoint(d, app, recv.url("/ctl"))
        set_disabled(d, app, off, True)

        ids = [h.publish(d, app, "order.placed", {"n": i})["id"] for i in range(5)]
        # The enabled endpoint got all five: fan-out and dispatch ran.
        recv.wait_for(5, path="/ctl")
        for mid in ids:
            h.wait_delivery_state(d, app, mid, ctl["id"], "succeeded")
        self.assert_held(d, app, ids, off)
        h.wait_until(lambda: h.metric(d, "hookd_pending") == 5,
                     message="hookd_pending to count the 5 held deliveries")
        time.sleep(QUIET_S * h.SCALE)
        self.assertEqual(recv.count(path="/off"), 0, recv.get(path="/off"))

        set_disabled(d, app, off, False)
        self.assert_released_in_order(d, app, recv, "/off", ids, off)
        h.wait_until(lambda: h.metric(d, "hookd_pending") == 0, message="hookd_pending back to 0")
        self.assertEqual(recv.count(path="/off"), 5, "a held delivery was sent twice")

    def test_after_410_gone_later_messages_and_a_redrive_are_held(self):
        recv = self.receiver()
        recv.behave(path="/gone", status=410)
        d = self.daemon(delivery=DELIVERY)
        app = h.create_app(d)
        gone = h.create_endpoint(d, app, recv.url("/gone"), retry_schedule=[1, 1])

        m0 = h.publish(d, app, "order.placed", {"n": 0})["id"]
        recv.wait_for(1, path="/gone")
        h.wait_until(lambda: h.get_endpoint(d, app, gone["id"])["disabled"],
                     message="endpoint disabled after 410")
        # The delivery that got the 410 is final (dead, in the dead-letter list) ...
        dead = h.wait_delivery_state(d, app, m0, gone["id"], "dead", attempts=1)
        self.assertIn("410", dead["last_error"])
        # ... and a redrive while the endpoint is disabled holds it instead of sending it.
        st, rd = d.api("POST", f"/v1/apps/{app['id']}/dead/redrive", {"delivery_ids": [dead["id"]]})
        self.assertEqual((st, rd["redriven"]), (200, 1), rd)
        h.wait_until(lambda: h.delivery_for(h.get_message(d, app, m0), gone["id"]).get(
            "waiting_for") == "endpoint_disabled", message="the redriven delivery held")

        ids = [h.publish(d, app, "order.placed", {"n": i})["id"] for i in range(1, 4)]
        h.wait_until(lambda: h.metric(d, "hookd_pending") == 4,
                     message="hookd_pending to count the redrive and 3 held deliveries")
        self.assert_held(d, app, ids, gone)
        time.sleep(QUIET_S * h.SCALE)
        self.assertEqual(recv.count(path="/gone"), 1, recv.get(path="/gone"))

        recv.behave(path="/gone", status=200)
        ep = set_disabled(d, app, gone, False)
        self.assertIsNone(ep["disabled_reason"])
        reqs = recv.wait_for(5, path="/gone")
        self.assertEqual([r.webhook_id for r in reqs], [m0, m0] + ids, reqs)
        h.wait_delivery_state(d, app, m0, gone["id"], "succeeded", attempts=2)
        for mid in ids:
            h.wait_delivery_state(d, app, mid, gone["id"], "succeeded", attempts=1)

    def test_restart_while_disabled_keeps_them_held(self):
        recv = self.receiver()
        d = self.daemon(delivery=DELIVERY)
        app = h.create_app(d)
        off = h.create_endpoint(d, app, recv.url("/off"))
        set_disabled(d, app, off, True)
        ids = [h.publish(d, app, "order.placed", {"n": i})["id"] for i in range(4)]
        self.assert_held(d, app, ids, off)

        d.restart(kill=True)
        self.assert_held(d, app, ids, off)
        h.wait_until(lambda: h.metric(d, "hookd_pending") == 4,
                     message="hookd_pending to count the 4 held deliveries after the restart")
        d.restart()  # and a clean shutdown with them held
        self.assert_held(d, app, ids, off)
        time.sleep(QUIET_S * h.SCALE)
        self.assertEqual(recv.count(path="/off"), 0, recv.get(path="/off"))

        set_disabled(d, app, off, False)
        self.assert_released_in_order(d, app, recv, "/off", ids, off)

    def test_same_millisecond_messages_keep_publish_order_across_restart(self):
        # Concurrent publishers put several messages in one millisecond; a restart loads
        # their held deliveries all at once, all due at the same time. They must still go
        # out in the order hookd accepted the messages, which their ids record (sortable,
        # strictly increasing).
        recv = self.receiver()
        d = self.daemon(delivery=DELIVERY)
        app = h.create_app(d)
        off = h.create_endpoint(d, app, recv.url("/off"))
        set_disabled(d, app, off, True)
        ids, lock = [], threading.Lock()

        def publisher(k):
            for i in range(10):
                mid = h.publish(d, app, "order.placed", {"k": k, "i": i})["id"]
                with lock:
                    ids.append(mid)

        threads = [threading.Thread(target=publisher, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30 * h.SCALE)
        self.assertEqual(len(ids), 80)
        stamps = [h.get_message(d, app, mid)["timestamp"] for mid in ids]
        self.assertLess(len(set(stamps)), len(stamps),
                        "no two messages in one millisecond: the case is not exercised")
        d.restart()
        set_disabled(d, app, off, False)
        reqs = recv.wait_for(80, path="/off", timeout=20)
        self.assertEqual([r.webhook_id for r in reqs], sorted(ids),
                         "held deliveries out of publish order after a restart")

    def test_policy_endpoint_held_with_its_output_kept_across_restart(self):
        # The policy runs at fan-out as for an enabled endpoint; its output is stored with
        # the held delivery, so neither a restart nor a later change of the endpoint's
        # policy loses or changes what goes out.
        recv = self.receiver()
        d = self.daemon(delivery=DELIVERY)
        self.assertEqual(put_policy(d, "tag", 'return { transform = function(m)\n'
                                    '  m.headers["x-tag"] = "v1" m.data.tag = "v1"\n'
                                    '  return m end }')[0], 200)
        app = h.create_app(d)
        off = h.create_endpoint(d, app, recv.url("/pol"), policy={"name": "tag"})
        set_disabled(d, app, off, True)
        ids = [h.publish(d, app, "order.placed", {"n": i})["id"] for i in range(3)]
        # Policy deliveries are made just after the 202.
        h.wait_until(lambda: all(h.delivery_for(h.get_message(d, app, mid), off["id"])
                                 for mid in ids), message="the policy deliveries made")
        self.assert_held(d, app, ids, off)
        h.wait_until(lambda: h.metric(d, "hookd_pending") == 3, message="hookd_pending == 3")

        st, ep = d.api("PATCH", f"/v1/apps/{app['id']}/endpoints/{off['id']}", {"policy": None})
        self.assertEqual(st, 200, ep)
        d.restart(kill=True)
        self.assert_held(d, app, ids, off)
        time.sleep(QUIET_S * h.SCALE)
        self.assertEqual(recv.count(path="/pol"), 0, recv.get(path="/pol"))

        set_disabled(d, app, off, False)
        reqs = self.assert_released_in_order(d, app, recv, "/pol", ids, off)
        for i, r in enumerate(reqs):
            self.assertEqual(r.headers.get("x-tag"), "v1", r.headers)
            self.assertEqual(r.json()["data"], {"n": i, "tag": "v1"})

    def test_released_while_every_global_slot_is_busy(self):
        # The re-enable comes while the one global in-flight slot is held by another
        # endpoint's slow attempt: the held deliveries must go out once it frees.
        recv = self.receiver()
        recv.behave(path="/slow", delay=1.0 * h.SCALE)
        d = self.daemon(delivery={"max_inflight": 1, "max_inflight_per_endpoint": 1})
        app = h.create_app(d)
        off = h.create_endpoint(d, app, recv.url("/off"), event_types=["order.*"])
        h.create_endpoint(d, app, recv.url("/slow"), event_types=["slow.*"])
        set_disabled(d, app, off, True)
        ids = [h.publish(d, app, "order.placed", {"n": i})["id"] for i in range(3)]
        self.assert_held(d, app, ids, off)

        h.publish(d, app, "slow.tick", {})
        recv.wait_for(1, path="/slow")  # its attempt is out (the receiver is sleeping)
        set_disabled(d, app, off, False)
        self.assert_released_in_order(d, app, recv, "/off", ids, off)


if __name__ == "__main__":
    h.main()

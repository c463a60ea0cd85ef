"""Backpressure: past a cap on pending deliveries (an endpoint's max_pending, the daemon's
delivery.max_pending_per_endpoint, or delivery.max_pending for the whole queue) a publish
gets 429 with Retry-After and a message naming the cap; nothing is stored for it, nothing
accepted before is dropped, and publishes that do not reach a full queue still pass. Once
the queue drains, publishing works again (issue 11).

Before this change a subscriber that was down let its backlog grow until the store was
full (507 for everyone)."""

import json
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import hookdtest as h  # noqa: E402

# Every attempt fails and the next is a minute away: what is published stays pending.
DELIVERY = {"retry_schedule": [60] * 3,
            "breaker": h.NO_BREAKER}


def publish_raw(d, app, type_, data):
    return d.request("POST", f"/v1/apps/{app['id']}/messages", {"type": type_, "data": data})


class BackpressureTest(h.HookdCase):

    def test_endpoint_cap_refuses_with_retry_after_and_drains(self):
        recv = self.receiver()
        recv.behave(path="/capped", status=500)
        d = self.daemon(delivery=DELIVERY)
        app = h.create_app(d)
        capped = h.create_endpoint(d, app, recv.url("/capped"), max_pending=3,
                                   event_types=["order.*"])
        other = h.create_endpoint(d, app, recv.url("/other"), event_types=["note.*"])
        ok = [h.publish(d, app, "order.placed", {"n": i})["id"] for i in range(3)]
        h.wait_until(lambda: h.metric(d, "hookd_pending") >= 3, timeout=10,
                     message="three pending deliveries")
        st, hdrs, body = publish_raw(d, app, "order.placed", {"n": 3})
        self.assertEqual(st, 429, body)
        self.assertEqual(hdrs.get("retry-after"), "1", hdrs)
        err = json.loads(body)["error"]
        self.assertEqual(err["code"], "too_many_pending", err)
        self.assertIn(f"endpoint {capped['id']} (max_pending) has 3 pending", err["message"])
        # Another endpoint's queue is not full: its publishes pass.
        note = h.publish(d, app, "note.added", {"n": 1})["id"]
        h.wait_delivery_state(d, app, note, other["id"], "succeeded")
        st_ = h.endpoint_status(d, app, capped["id"])
        self.assertEqual((st_["pending"], st_["max_pending"]), (3, 3), st_)
        # Nothing accepted was dropped; the refused one was not stored.
        for mid in ok:
            self.assertEqual(h.delivery_for(h.get_message(d, app, mid), capped["id"])["state"],
                             "pending")
        st, b = d.api("GET", f"/v1/apps/{app['id']}/messages?limit=1000")
        self.assertEqual(len(b["data"]), 4, b)  # 3 orders and the note
        # The receiver recovers, the queue drains (a redrive is not needed: raise the cap
        # instead, which applies at once), and publishing passes again.
        st, b = d.api("PATCH", f"/v1/apps/{app['id']}/endpoints/{capped['id']}",
                      {"max_pending": None})
        self.assertEqual(st, 200, b)
        h.publish(d, app, "order.placed", {"n": 4})

    def test_daemon_caps(self):
        recv = self.receiver()
        recv.behave(status=500)
        d = self.daemon(delivery=dict(DELIVERY, max_pending=4, max_pending_per_endpoint=2))
        app = h.create_app(d)
        a = h.create_endpoint(d, app, recv.url("/a"), event_types=["a.*"])
        h.create_endpoint(d, app, recv.url("/b"), event_types=["b.*"])
        h.create_endpoint(d, app, recv.url("/c"), event_types=["c.*"], max_pending=0)
        for i in range(2):
            h.publish(d, app, "a.x", {"n": i})
        h.wait_until(lambda: h.metric(d, "hookd_pending") >= 2, timeout=10,
                     message="two pending")
        st, _, body = publish_raw(d, app, "a.x", {"n": 2})
        self.assertEqual(st, 429, body)
        self.assertIn(f"endpoint {a['id']} (max_pending) has 2 pending", str(body))
        for i in range(2):
            h.publish(d, app, "c.x", {"n": i})  # max_pending 0: no cap of its own
        h.wait_until(lambda: h.metric(d, "hookd_pending") >= 4, timeout=10,
                     message="four pending")
        st, _, body = publish_raw(d, app, "b.x", {"n": 0})
        self.assertEqual(st, 429, body)
        self.assertIn("the queue (delivery.max_pending) has 4 pending deliveries (cap 4)",
                      str(body))


if __name__ == "__main__":
    h.main()

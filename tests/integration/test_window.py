"""The scheduler holds a bounded window of each endpoint's pending deliveries in memory.

`delivery.window_per_endpoint` deliveries of one endpoint at most are in memory (soonest
due first, counted by `hookd_scheduled`); the rest wait in the store's due index
(`hookd_pending` counts them all) and are read back as the window empties. These tests use
a window of 4 with one attempt in flight per endpoint, so a backlog of a few dozen
deliveries is many windows deep: everything must still be delivered exactly once, in
publish order, across restarts, retries and an endpoint's deletion, and another endpoint
must not wait behind the backlog.

Before the window, every pending delivery was held in memory (1,000,000 pending cost
1.44 GB) and a restart read them all before serving."""

import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hookdtest as h  # noqa: E402

WINDOW = 4
# The breaker is off: these tests count one attempt per delivery of an endpoint that stays
# down, which an open breaker would hold back on purpose (tests/faults/test_breaker.py).
NO_BREAKER = h.NO_BREAKER
DELIVERY = {"max_inflight_per_endpoint": 1, "window_per_endpoint": WINDOW,
            "breaker": NO_BREAKER}


def set_disabled(d, app, ep, value):
    st, body = d.api("PATCH", f"/v1/apps/{app['id']}/endpoints/{ep['id']}",
                     {"disabled": value})
    assert st == 200, (st, body)
    return body


class WindowTest(h.HookdCase):

    def backlog(self, d, recv, n):
        """An app whose one endpoint is disabled, with n messages held for it."""
        app = h.create_app(d)
        off = h.create_endpoint(d, app, recv.url("/off"))
        set_disabled(d, app, off, True)
        ids = [h.publish(d, app, "order.placed", {"n": i})["id"] for i in range(n)]
        h.wait_until(lambda: h.metric(d, "hookd_pending") == n,
                     message=f"hookd_pending to count the {n} held deliveries")
        return app, off, ids

    def test_backlog_beyond_the_window_stays_in_the_store_and_goes_out_in_order(self):
        recv = self.receiver()
        d = self.daemon(delivery=DELIVERY)
        app, off, ids = self.backlog(d, recv, 60)
        # Only the window is in memory; the API still shows every one of them held.
        self.assertLessEqual(h.metric(d, "hookd_scheduled"), WINDOW)
        for mid in (ids[0], ids[WINDOW], ids[-1]):
            dl = h.delivery_for(h.get_message(d, app, mid), off["id"])
            self.assertEqual((dl["state"], dl["attempts"], dl.get("waiting_for")),
                             ("pending", 0, "endpoint_disabled"), dl)

        # Another app's endpoint does not wait behind the backlog.
        other = h.create_app(d)
        ok = h.create_endpoint(d, other, recv.url("/ok"))
        fresh = [h.publish(d, other, "order.placed", {"n": i})["id"] for i in range(10)]
        self.assertEqual(sorted(r.webhook_id for r in recv.wait_for(10, path="/ok")),
                         sorted(fresh))
        for mid in fresh:
            h.wait_delivery_state(d, other, mid, ok["id"], "succeeded", attempts=1)
        self.assertEqual(recv.count(path="/off"), 0)

        set_disabled(d, app, off, False)
        reqs = recv.wait_for(60, path="/off", timeout=30)
        self.assertEqual([r.webhook_id for r in reqs], ids, "backlog out of publish order")
        for r in reqs:
            self.assertTrue(recv.verify(off["secret"], r))
        h.wait_until(lambda: h.metric(d, "hookd_pending") == 0, message="hookd_pending to 0")
        h.wait_until(lambda: h.metric(d, "hookd_scheduled") == 0,
                     message="hookd_scheduled to 0")
        for mid in (ids[0], ids[30], ids[-1]):
            h.wait_delivery_state(d, app, mid, off["id"], "succeeded", attempts=1)
        self.assertEqual(recv.count(path="/off"), 60, "a delivery was sent twice")

    def test_restart_reads_one_window_and_delivers_the_whole_backlog(self):
        recv = self.receiver()
        d = self.daemon(delivery=DELIVERY)
        app, off, ids = self.backlog(d, recv, 40)
        d.restart(kill=True)
        self.assertIn("1 endpoints with pending deliveries", d.log())
        h.wait_until(lambda: h.metric(d, "hookd_pending") == 40,
                     message="hookd_pending after the restart")
        self.assertLessEqual(h.metric(d, "hookd_scheduled"), WINDOW)
        set_disabled(d, app, off, False)
        reqs = recv.wait_for(40, path="/off", timeout=30)
        self.assertEqual([r.webhook_id for r in reqs], ids)
        h.wait_until(lambda: h.metric(d, "hookd_pending") == 0, message="hookd_pending to 0")
        self.assertEqual(recv.count(path="/off"), 40)

    def test_retries_leave_the_window_and_come_back(self):
        """Every first attempt fails: each retry is written to the store and read back in
        its turn, and every message still succeeds exactly on its second attempt."""
        recv = self.receiver()
        recv.behave(path="/flaky", fail_first=1, fail_status=500)
        d = self.daemon(delivery=DELIVERY)
        app = h.create_app(d)
        ep = h.create_endpoint(d, app, recv.url("/flaky"), retry_schedule=[0, 0, 0])
        ids = [h.publish(d, app, "order.placed", {"n": i})["id"] for i in range(30)]
        recv.wait_for(60, path="/flaky", timeout=30)
        for mid in ids:
            h.wait_delivery_state(d, app, mid, ep["id"], "succeeded", attempts=2)
            self.assertEqual(recv.count(path="/flaky", webhook_id=mid), 2, mid)
        h.wait_until(lambda: h.metric(d, "hookd_pending") == 0, message="hookd_pending to 0")
        self.assertEqual(h.metric(d, "hookd_attempts_total"), 60)

    def test_a_down_endpoint_gets_one_attempt_per_delivery_beyond_the_window(self):
        """Every attempt fails and the next is an hour away: each retry leaves the window
        for the store, and the window reads on until every delivery has had its attempt,
        with only the window left in memory."""
        recv = self.receiver()
        recv.behave(path="/down", status=500)
        # Eight attempts in flight (a window of 16): several retries are on their way to
        # the store while the window is read, which is when one could be left behind.
        d = self.daemon(delivery={"max_inflight_per_endpoint": 8, "window_per_endpoint": 4,
                                  "breaker": NO_BREAKER})
        app = h.create_app(d)
        ep = h.create_endpoint(d, app, recv.url("/down"), retry_schedule=[3600, 3600])
        n = 200
        ids = [h.publish(d, app, "order.placed", {"n": i})["id"] for i in range(n)]
        try:
            h.wait_until(lambda: h.metric(d, "hookd_attempts_total") >= n, timeout=30,
                         message=f"one attempt for each of the {n} deliveries")
        except AssertionError as e:
            raise AssertionError(f"{e}: attempts {h.metric(d, 'hookd_attempts_total')}, "
                                 f"in memory {h.metric(d, 'hookd_scheduled')}, in flight "
                                 f"{h.metric(d, 'hookd_inflight')}") from None
        self.assertEqual(h.metric(d, "hookd_attempts_total"), n)
        self.assertEqual(sorted(r.webhook_id for r in recv.wait_for(n, path="/down")),
                         sorted(ids))
        for mid in (ids[0], ids[n // 2], ids[-1]):
            h.wait_delivery_state(d, app, mid, ep["id"], "pending", attempts=1)
        self.assertEqual(h.metric(d, "hookd_pending"), n)
        self.assertLessEqual(h.metric(d, "hookd_scheduled"), 16)
        # And after a restart, none is attempted early.
        d.restart()
        h.wait_until(lambda: h.metric(d, "hookd_pending") == n, message="pending after restart")
        self.assertLessEqual(h.metric(d, "hookd_scheduled"), 16)
        self.assertEqual(h.metric(d, "hookd_attempts_total"), 0)
        self.assertEqual(recv.count(path="/down"), n)

    def test_retries_due_later_do_not_hold_the_window(self):
        """A full window of retries due in an hour must not keep deliveries due now
        waiting: retries beyond the next second wait in the store, not in the window."""
        recv = self.receiver()
        recv.behave(path="/down", status=500)
        d = self.daemon(delivery=DELIVERY)
        app = h.create_app(d)
        ep = h.create_endpoint(d, app, recv.url("/down"), retry_schedule=[3600, 3600])
        first = [h.publish(d, app, "order.placed", {"n": i})["id"] for i in range(WINDOW)]
        h.wait_until(lambda: h.metric(d, "hookd_attempts_total") == WINDOW,
                     message="the first window attempted")
        later = [h.publish(d, app, "order.placed", {"n": i})["id"] for i in range(10)]
        h.wait_until(lambda: h.metric(d, "hookd_attempts_total") == WINDOW + 10,
                     message="the messages published after a window of retries attempted")
        self.assertEqual([r.webhook_id for r in recv.get(path="/down")], first + later)
        h.wait_delivery_state(d, app, later[-1], ep["id"], "pending", attempts=1)

    def test_policy_deliveries_beyond_the_window_are_stored_then_delivered(self):
        """A policy delivery is scheduled before it is ever stored; one that does not fit its
        endpoint's window is written to the store at once and read back later, with the
        policy's output."""
        recv = self.receiver()
        d = self.daemon(delivery=DELIVERY)
        src = ('return { transform = function(m) m.headers["x-seen"] = "yes" return m end }')
        st, _ = d.api("PUT", "/v1/policies/mark", raw=src.encode(),
                      headers={"Content-Type": "text/x-lua"})
        self.assertEqual(st, 200)
        app = h.create_app(d)
        ep = h.create_endpoint(d, app, recv.url("/pol"), policy={"name": "mark"})
        set_disabled(d, app, ep, True)
        ids = [h.publish(d, app, "order.placed", {"n": i})["id"] for i in range(20)]
        h.wait_until(lambda: h.metric(d, "hookd_pending") == 20,
                     message="the 20 policy deliveries stored and held")
        self.assertLessEqual(h.metric(d, "hookd_scheduled"), WINDOW)
        set_disabled(d, app, ep, False)
        reqs = recv.wait_for(20, path="/pol", timeout=30)
        self.assertEqual([r.webhook_id for r in reqs], ids)
        for r in reqs:
            self.assertEqual(r.headers.get("x-seen"), "yes")
        h.wait_until(lambda: h.metric(d, "hookd_pending") == 0, message="hookd_pending to 0")

    def test_deleting_an_endpoint_buries_its_whole_backlog(self):
        recv = self.receiver()
        d = self.daemon(delivery=DELIVERY)
        app, off, ids = self.backlog(d, recv, 30)
        st, _ = d.api("DELETE", f"/v1/apps/{app['id']}/endpoints/{off['id']}")
        self.assertIn(st, (200, 204))
        h.wait_until(lambda: h.metric(d, "hookd_pending") == 0,
                     message="every held delivery settled after the delete")
        for mid in ids:
            dl = h.delivery_for(h.get_message(d, app, mid), off["id"])
            self.assertEqual((dl["state"], dl["last_error"]), ("dead", "endpoint deleted"), dl)
        self.assertEqual(recv.count(path="/off"), 0)
        self.assertEqual(h.metric(d, "hookd_scheduled"), 0)


if __name__ == "__main__":
    h.main()

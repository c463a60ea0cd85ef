"""GET /v1/apps/{app}/endpoints/{id}/deliveries: an endpoint's deliveries per state, paged,
with exact counts, the same after a restart and after kill -9."""

import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hookdtest as h  # noqa: E402

STATES = ("pending", "succeeded", "dead", "filtered")


def page(d, app, ep, **q):
    query = "&".join(f"{k}={v}" for k, v in q.items())
    st, b = d.api("GET", f"/v1/apps/{app}/endpoints/{ep}/deliveries" + (f"?{query}" if query else ""))
    return st, b


def list_all(test, d, app, ep, state, limit):
    """Every delivery of ep in state, following next_after; checks each page's shape."""
    out, after, pages = [], None, 0
    while True:
        q = {"state": state, "limit": limit}
        if after:
            q["after"] = after
        st, b = page(d, app, ep, **q)
        test.assertEqual(st, 200, b)
        test.assertLessEqual(len(b["data"]), limit, b)
        out += b["data"]
        pages += 1
        after = b["next_after"]
        if after is None:
            return out, b["counts"], pages
        test.assertEqual(len(b["data"]), limit, b)
        test.assertEqual(after, b["data"][-1]["id"], b)


class EndpointDeliveriesTest(h.HookdCase):

    def snapshot(self, d, app, eps):
        """{ep: {state: [(id, message_id, state, attempts, last_status)]}} and counts, all
        listed in pages of 2, and the counts checked against the listings."""
        seen = {}
        for ep in eps:
            seen[ep] = {}
            for state in STATES:
                items, counts, _ = list_all(self, d, app, ep, state, 2)
                self.assertEqual(counts[state], len(items), (ep, state, counts, items))
                for it in items:
                    self.assertEqual(it["state"], state, it)
                    self.assertEqual(it["endpoint_id"], ep, it)
                    self.assertIsNotNone(h.parse_time(it["created_at"]), it)
                    self.assertIsNotNone(h.parse_time(it["updated_at"]), it)
                seen[ep][state] = [(it["id"], it["message_id"], it["state"], it["attempts"],
                                    it["last_status"], it["next_attempt_at"]) for it in items]
                seen[ep]["counts"] = counts
        return seen

    def test_listing_paging_counts_and_restarts(self):
        recv = self.receiver()
        recv.behave(path="/down", status=500)
        recv.behave(path="/slow", status=500)
        d = self.daemon()
        app = h.create_app(d)["id"]
        down = h.create_endpoint(d, app, recv.url("/down"), id="down", retry_schedule=[1])
        h.create_endpoint(d, app, recv.url("/up"), id="up")
        # fails once, then waits an hour: stays pending with a next attempt time
        h.create_endpoint(d, app, recv.url("/slow"), id="slow", retry_schedule=[3600])
        msgs = [h.publish(d, app, "order.created", {"n": i})["id"] for i in range(5)]

        recv.wait_for(5, path="/up", timeout=20)
        recv.wait_for(10, path="/down", timeout=30)  # two attempts each: then dead
        recv.wait_for(5, path="/slow", timeout=20)

        def settled():
            _, b = page(d, app, "down", state="dead")
            _, s = page(d, app, "slow")
            _, u = page(d, app, "up", state="succeeded")
            return (b["counts"]["dead"] == 5 and u["counts"]["succeeded"] == 5 and
                    all(x["attempts"] == 1 for x in s["data"]) and len(s["data"]) == 5)
        h.wait_until(settled, 20, interval=0.1, message="all deliveries settled")

        before = self.snapshot(d, app, ["down", "up", "slow"])
        # publish order: the message ids of each listing are the published ones, in order
        self.assertEqual([x[1] for x in before["down"]["dead"]], msgs)
        self.assertEqual([x[1] for x in before["up"]["succeeded"]], msgs)
        self.assertEqual([x[1] for x in before["slow"]["pending"]], msgs)
        self.assertEqual(before["down"]["counts"], {"pending": 0, "succeeded": 0, "dead": 5, "filtered": 0})
        self.assertEqual(before["up"]["counts"], {"pending": 0, "succeeded": 5, "dead": 0, "filtered": 0})
        self.assertEqual(before["slow"]["counts"], {"pending": 5, "succeeded": 0, "dead": 0, "filtered": 0})
        for x in before["down"]["dead"]:
            self.assertEqual((x[3], x[4], x[5]), (2, 500, None), x)
        for x in before["slow"]["pending"]:
            self.assertEqual((x[3], x[4]), (1, 500), x)
            self.assertGreater(h.parse_time(x[5]), time.time() + 1000, x)
        # the default state is pending; pages of 2: 2, 2, 1
        st, b = page(d, app, "slow")
        self.assertEqual(st, 200, b)
        self.assertEqual([x["id"] for x in b["data"]], [x[0] for x in before["slow"]["pending"]])
        self.assertIsNone(b["next_after"])
        _, _, pages = list_all(self, d, app, "slow", "pending", 2)
        self.assertEqual(pages, 3)
        # after an id, from the next one
        st, b = page(d, app, "down", state="dead", after=before["down"]["dead"][2][0])
        self.assertEqual([x["id"] for x in b["data"]], [x[0] for x in before["down"]["dead"][3:]])

        # refusals name the parameter
        for q, field in (({"state": "bogus"}, "state"), ({"state": "inflight"}, "state"),
                         ({"limit": 0}, "limit"), ({"limit": 1001}, "limit"),
                         ({"limit": "x"}, "limit")):
            st, b = page(d, app, "down", **q)
            self.assertEqual(st, 400, (q, b))
            self.assertEqual(h.error_of(b)["field"], field, b)
        self.assertIn("pending, succeeded, dead, filtered", h.error_of(page(d, app, "up", state="x")[1])["message"])
        st, b = page(d, app, "nope")
        self.assertEqual(st, 404, b)

        # a clean restart and a kill -9: the same deliveries, states and counts
        d.restart()
        self.assertEqual(self.snapshot(d, app, ["down", "up", "slow"]), before)
        d.restart(kill=True)
        self.assertEqual(self.snapshot(d, app, ["down", "up", "slow"]), before)

        # a redrive moves the dead ones back, and then to succeeded
        recv.behave(path="/down", status=200)
        st, res = d.api("POST", f"/v1/apps/{app}/dead/redrive", {})
        self.assertEqual((st, res["redriven"]), (200, 5), res)

        def redriven():
            _, b = page(d, app, down["id"], state="succeeded")
            return b["counts"] == {"pending": 0, "succeeded": 5, "dead": 0, "filtered": 0}
        h.wait_until(redriven, 20, interval=0.1, message="redriven deliveries to succeed")
        items, _, _ = list_all(self, d, app, "down", "succeeded", 2)
        self.assertEqual([x["message_id"] for x in items], msgs)
        d.restart(kill=True)
        _, b = page(d, app, "down", state="succeeded", limit=1000)
        self.assertEqual(b["counts"], {"pending": 0, "succeeded": 5, "dead": 0, "filtered": 0})
        self.assertEqual([x["message_id"] for x in b["data"]], msgs)


if __name__ == "__main__":
    h.main()

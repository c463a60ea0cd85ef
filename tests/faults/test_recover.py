"""Recover: POST /v1/apps/{app}/endpoints/{id}/recover {"since", "until"?} re-sends exactly the
dead deliveries of that endpoint whose messages were published in the window, in publish
order, as a job whose progress GET .../recover/{job} shows; a recover of more than a page
(500) works the same; bad requests name the field (issue 11).

Before this change a window could only be redriven by listing every dead id by hand."""

import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import hookdtest as h  # noqa: E402

# Two attempts, then dead; the breaker off so that every delivery gets both.
DELIVERY = {"retry_schedule": [1],
            "breaker": h.NO_BREAKER}


def recover(d, app, ep, body):
    return d.api("POST", f"/v1/apps/{app['id']}/endpoints/{ep['id']}/recover", body)


def wait_job(d, app, ep, job, timeout=60):
    def done():
        st, b = d.api("GET", f"/v1/apps/{app['id']}/endpoints/{ep['id']}/recover/{job}")
        assert st == 200, (st, b)
        return b if b["state"] != "running" else None
    return h.wait_until(done, timeout=timeout, message=f"recover job {job} to finish")


def wait_dead(d, app, ep, n, timeout=60):
    h.wait_until(lambda: h.endpoint_status(d, app, ep["id"])["dead"] >= n, timeout=timeout,
                 message=f"{n} dead deliveries")


class RecoverTest(h.HookdCase):

    def test_recover_resends_exactly_the_window_in_order(self):
        recv = self.receiver()
        recv.behave(status=500)
        d = self.daemon(delivery=DELIVERY)
        app = h.create_app(d)
        ep = h.create_endpoint(d, app, recv.url(), max_in_flight=1)
        before = [h.publish(d, app, "order.placed", {"g": "a", "n": i})["id"] for i in range(3)]
        time.sleep(1.1)
        since = h.iso(time.time())
        inside = [h.publish(d, app, "order.placed", {"g": "b", "n": i})["id"] for i in range(5)]
        until = h.iso(time.time())
        time.sleep(1.1)
        after = [h.publish(d, app, "order.placed", {"g": "c", "n": i})["id"] for i in range(3)]
        wait_dead(d, app, ep, 11)
        recv.behave(status=200)
        seen = recv.count()

        st, job = recover(d, app, ep, {"since": since, "until": until})
        self.assertEqual(st, 202, job)
        self.assertEqual(job["state"], "running", job)
        self.assertTrue(job["id"].startswith("rcv_"), job)
        fin = wait_job(d, app, ep, job["id"])
        self.assertEqual((fin["state"], fin["redriven"], fin["error"]), ("done", 5, None), fin)
        for mid in inside:
            h.wait_delivery_state(d, app, mid, ep["id"], "succeeded", timeout=20)
        again = [r.webhook_id for r in recv.get()[seen:]]
        self.assertEqual(again, inside, "recover sent other messages, or out of publish order")
        for mid in before + after:
            dl = h.delivery_for(h.get_message(d, app, mid), ep["id"])
            self.assertEqual(dl["state"], "dead", dl)
        # A second recover of the same window finds nothing left to do.
        st, job2 = recover(d, app, ep, {"since": since, "until": until})
        self.assertEqual(wait_job(d, app, ep, job2["id"])["redriven"], 0)

    def test_recover_of_many_pages(self):
        recv = self.receiver()
        recv.behave(status=500)
        d = self.daemon(delivery=DELIVERY)
        app = h.create_app(d)
        ep = h.create_endpoint(d, app, recv.url())
        since = h.iso(time.time() - 1)
        n = 1200
        ids = [h.publish(d, app, "order.placed", {"n": i})["id"] for i in range(n)]
        wait_dead(d, app, ep, n, timeout=120)
        recv.behave(status=200)
        st, job = recover(d, app, ep, {"since": since})  # until: now
        self.assertEqual(st, 202, job)
        fin = wait_job(d, app, ep, job["id"], timeout=120)
        self.assertEqual((fin["state"], fin["redriven"]), ("done", n), fin)
        def counts():
            return d.api("GET", f"/v1/apps/{app['id']}/endpoints/{ep['id']}/deliveries"
                                f"?state=succeeded&limit=1")[1]["counts"]
        h.wait_until(lambda: counts()["succeeded"] == n, timeout=120,
                     message="every recovered delivery to succeed")
        self.assertEqual(counts(), {"pending": 0, "succeeded": n, "dead": 0, "filtered": 0})
        self.assertTrue(recv.ids() >= set(ids))

    def test_bad_requests(self):
        d = self.daemon()
        app = h.create_app(d)
        ep = h.create_endpoint(d, app, "http://127.0.0.1:9/x")
        cases = [({}, 400, "since"), ({"since": "yesterday"}, 400, "since"),
                 ({"since": "2026-12-02T00:00:00Z", "until": "2026-12-01T00:00:00Z"}, 400,
                  "until"),
                 ({"since": "2026-12-02T00:00:00Z", "limit": 5}, 400, "limit")]
        for body, status, field in cases:
            st, b = recover(d, app, ep, body)
            self.assertEqual(st, status, (body, b))
            self.assertEqual(b["error"]["field"], field, b)
        st, b = d.api("GET", f"/v1/apps/{app['id']}/endpoints/{ep['id']}/recover/rcv_nope")
        self.assertEqual(st, 404, b)


if __name__ == "__main__":
    h.main()

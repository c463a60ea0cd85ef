"""Deleting an endpoint settles its pending deliveries: they are recorded dead with
"endpoint deleted" (never left pending for an endpoint that is gone), stay listed as dead,
and a redrive leaves them alone."""

import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hookdtest as h  # noqa: E402


class EndpointDeleteTest(h.HookdCase):

    def test_pending_deliveries_of_a_deleted_endpoint_end_dead(self):
        recv = self.receiver()
        recv.behave(path="/gone", status=500)
        d = self.daemon()
        app = h.create_app(d)
        ep = h.create_endpoint(d, app, recv.url("/gone"), retry_schedule=[60])
        keep = h.create_endpoint(d, app, recv.url("/keep"))
        # A delivery waiting for its retry (60 s away) when the endpoint is deleted.
        mid = h.publish(d, app, "a.b", {"n": 1})["id"]
        recv.wait_for(1, path="/gone", webhook_id=mid)
        h.wait_until(lambda: h.delivery_for(h.get_message(d, app, mid), ep["id"])["attempts"] == 1
                     and h.delivery_for(h.get_message(d, app, mid), ep["id"])["state"] == "pending",
                     message="the first attempt failed and a retry is scheduled")
        st, _ = d.api("DELETE", f"/v1/apps/{app['id']}/endpoints/{ep['id']}")
        self.assertEqual(st, 204)

        def settled():
            dl = h.delivery_for(h.get_message(d, app, mid), ep["id"])
            return dl if dl["state"] == "dead" else None
        dl = h.wait_until(settled, message="the deleted endpoint's delivery to end dead")
        self.assertEqual(dl["last_error"], "endpoint deleted")
        self.assertEqual(h.delivery_for(h.get_message(d, app, mid), keep["id"])["state"], "succeeded")
        st, dead = d.api("GET", f"/v1/apps/{app['id']}/dead")
        self.assertEqual([x["delivery_id"] for x in dead["data"]], [dl["id"]])
        st, r = d.api("POST", f"/v1/apps/{app['id']}/dead/redrive", {})
        self.assertEqual((st, r["redriven"]), (200, 0), r)
        st, dead = d.api("GET", f"/v1/apps/{app['id']}/dead")
        self.assertEqual(len(dead["data"]), 1, dead)
        # And after a restart nothing about it is pending or retried.
        d.restart()
        self.assertEqual(h.delivery_for(h.get_message(d, app, mid), ep["id"])["state"], "dead")
        self.assertEqual(recv.count(path="/gone"), 1)

    def test_delete_while_one_is_in_flight_and_others_wait(self):
        # One attempt out (a slow receiver), two more waiting for the endpoint's only slot:
        # the waiting ones end dead at the delete, the one out ends with its outcome, and the
        # endpoint's scheduler state goes with that last attempt (a sanitized build checks
        # the memory). Another endpoint of the app is not disturbed.
        recv = self.receiver()
        recv.behave(path="/slow", status=200, delay=1.5)
        d = self.daemon(delivery={"max_inflight_per_endpoint": 1})
        app = h.create_app(d)
        ep = h.create_endpoint(d, app, recv.url("/slow"))
        keep = h.create_endpoint(d, app, recv.url("/keep"))
        mids = [h.publish(d, app, "a.b", {"n": i})["id"] for i in range(3)]
        recv.wait_for(1, path="/slow", webhook_id=mids[0])
        st, _ = d.api("DELETE", f"/v1/apps/{app['id']}/endpoints/{ep['id']}")
        self.assertEqual(st, 204)
        for mid in mids[1:]:
            dl = h.wait_delivery_state(d, app, mid, ep["id"], "dead")
            self.assertEqual(dl["last_error"], "endpoint deleted")
            self.assertEqual(dl["attempts"], 0)
        h.wait_delivery_state(d, app, mids[0], ep["id"], "succeeded")
        self.assertEqual(recv.count(path="/slow"), 1)
        mid = h.publish(d, app, "a.b", {"n": 3})["id"]
        for m in mids + [mid]:
            h.wait_delivery_state(d, app, m, keep["id"], "succeeded")
        self.assertIsNone(h.delivery_for(h.get_message(d, app, mid), ep["id"]))


if __name__ == "__main__":
    h.main()

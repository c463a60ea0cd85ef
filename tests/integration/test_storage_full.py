"""LMDB map full: publishes get 507 with a clear message naming the setting, and every message
accepted before that is still delivered (state changes fit in the store's reserve)."""

import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hookdtest as h  # noqa: E402


class StorageFullTest(h.HookdCase):

    def test_507_when_full_and_accepted_still_delivered(self):
        recv = self.receiver()
        # Every first attempt fails, so accepted messages need a retry (a state change written
        # while the map is full) before they succeed.
        recv.behave(path="/full", fail_first=1, fail_status=500)
        d = self.daemon(storage={"map_size": "1MiB"}, limits={"max_payload_bytes": "64KiB"})
        app = h.create_app(d)
        h.create_endpoint(d, app, recv.url("/full"), retry_schedule=[1, 1, 1])
        accepted, refused = [], None
        for i in range(200):
            st, body = d.api("POST", f"/v1/apps/{app['id']}/messages",
                             {"type": "blob.stored", "data": {"i": i, "pad": "x" * 30000}})
            if st == 202:
                accepted.append(body["id"])
                continue
            refused = (st, body)
            break
        self.assertIsNotNone(refused, "the 1 MiB store never filled up")
        st, body = refused
        self.assertEqual(st, 507, body)
        err = h.error_of(body)
        self.assertEqual(err["code"], "storage_full", body)
        self.assertIn("map_size", err["message"], body)
        self.assertGreater(len(accepted), 3)
        # Still refused, not crashed. Admission is by size against pages actually in use,
        # which move a little as concurrent outcomes commit (copy-on-write frees pages), so
        # one more message of the same size may just fit; a few more never do.
        for i in range(5):
            st, body = d.api("POST", f"/v1/apps/{app['id']}/messages",
                             {"type": "blob.stored", "data": {"i": -1 - i, "pad": "x" * 30000}})
            if st != 202:
                break
            accepted.append(body["id"])
        self.assertEqual(st, 507, body)
        self.assertLess(i, 3, "the full store went on accepting 30 KB messages")
        self.assertEqual(d.api("GET", "/healthz", auth=False)[0], 200)

        def all_succeeded():
            for mid in accepted:
                m = h.get_message(d, app, mid)
                if [x["state"] for x in m["deliveries"]] != ["succeeded"]:
                    return None
            return True
        h.wait_until(all_succeeded, timeout=60, message="every accepted message delivered")
        for mid in accepted:
            self.assertGreaterEqual(recv.count(path="/full", webhook_id=mid), 2)


if __name__ == "__main__":
    h.main()

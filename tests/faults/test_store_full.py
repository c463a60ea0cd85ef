"""A full store (storage.map_size: 1MiB) must not lose or strand delivery outcomes.

The fault campaign found: publish until 507, then let deliveries succeed, and most stored
deliveries stayed `pending` with no attempt recorded (their outcome's commit failed and was
dropped); every restart resent them; they never settled, so retention never pruned them and
publishing stayed 507 forever, even with the clock days past retention_days.

Here the clock is moved with libfaketime (Debian's libfaketime, preloaded into hookd only),
through a file the test rewrites while the daemon runs; monotonic time is left alone so
timers behave."""

import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import hookdtest as h  # noqa: E402


# The breaker off: every delivery here fails its first attempts on purpose, which would open
# it (tests/faults/test_breaker.py) and stretch the settling this test waits for.
NO_BREAKER = {"breaker": h.NO_BREAKER}


class StoreFullTest(h.HookdCase):

    def fill(self, d, app, at_least=100):
        """Publishes until 507; returns the accepted ids."""
        accepted, refused = [], None
        deadline = time.monotonic() + 60 * h.SCALE
        while time.monotonic() < deadline:
            st, body = d.api("POST", f"/v1/apps/{app['id']}/messages",
                             {"type": "order.created", "data": {"n": len(accepted), "pad": "p" * 200}})
            if st == 202:
                accepted.append(body["id"])
                continue
            refused = (st, body)
            break
        self.assertIsNotNone(refused, "the 1 MiB store never filled up")
        self.assertEqual(refused[0], 507, refused)
        self.assertEqual(h.error_of(refused[1])["code"], "storage_full")
        self.assertGreaterEqual(len(accepted), at_least)
        sys.stderr.write(f"store filled after {len(accepted)} publishes\n")
        return accepted

    def test_full_store_settles_everything_and_resumes_after_retention(self):
        recv = self.receiver()
        # Every first attempt fails: each delivery needs a retry (a second outcome) that is
        # written while the store refuses publishes.
        recv.behave(path="/full", fail_first=1, fail_status=500)
        d = self.daemon(start=False, storage={"map_size": "1MiB", "retention_days": 1},
                        delivery=NO_BREAKER)
        clock = h.fake_clock(d)
        d.start()
        app = h.create_app(d)
        ep = h.create_endpoint(d, app, recv.url("/full"), retry_schedule=[2, 2, 2])
        accepted = self.fill(d, app)
        # Every accepted delivery settles, with its attempts on record.
        def settled():
            for mid in accepted:
                m = h.get_message(d, app, mid)
                if [x["state"] for x in m["deliveries"]] != ["succeeded"]:
                    return None
            return True
        h.wait_until(settled, timeout=90, interval=0.5, message="every accepted delivery succeeded")
        for mid in accepted[:: max(1, len(accepted) // 25)] + accepted[-3:]:
            att = h.get_attempts(d, app, mid)
            self.assertGreaterEqual(len(att), 2, f"{mid}: attempts not recorded: {att}")
            self.assertEqual(max(att, key=lambda a: a["attempt"])["status"], 200, att)
        self.assertEqual(h.metric(d, "hookd_pending"), 0)

        # A restart resends nothing: everything is settled on disk.
        before = recv.count(path="/full")
        d.restart()
        time.sleep(3)
        self.assertEqual(recv.count(path="/full"), before, "a restart resent settled deliveries")
        m = h.get_message(d, app, accepted[0])
        self.assertEqual([x["state"] for x in m["deliveries"]], ["succeeded"])
        # Settled deliveries give their reserve back, but their messages stay until retention:
        # fill again and again until settled messages alone fill the store.
        for _ in range(12):
            more = self.fill(d, app, at_least=0)
            accepted += more
            h.wait_until(settled, timeout=90, interval=0.5, message="the refill settled")
            if len(more) < 10:
                break
        else:
            self.fail("settled messages never filled the store")
        self.assertEqual(h.metric(d, "hookd_pending"), 0)
        self.assertEqual(h.metric(d, "hookd_store_waiting_writes"), 0)
        time.sleep(6)  # a janitor pass while full prunes nothing: nothing is past retention
        # What settling gave back (the reserve of < 10 deliveries) is no room for a 40 KB
        # message; pruning hundreds of messages is.
        big = {"type": "order.created", "data": {"n": -1, "pad": "p" * 40000}}
        st, body = d.api("POST", f"/v1/apps/{app['id']}/messages", big)
        self.assertEqual(st, 507, "nothing was pruned yet, the store should still be full")

        # Two days later everything is past retention: the janitor prunes it and publishing
        # resumes without a restart.
        with open(clock, "w") as f:
            f.write("+2d\n")

        def resumed():
            st, body = d.api("POST", f"/v1/apps/{app['id']}/messages", big)
            return body["id"] if st == 202 else None
        new_id = h.wait_until(resumed, timeout=60, interval=0.5,
                              message="publishing to resume after retention freed space")
        st, _ = d.api("GET", f"/v1/apps/{app['id']}/messages/{accepted[0]}")
        self.assertEqual(st, 404, "the oldest message should have been pruned")
        self.assertRegex(d.log(), r"janitor: \d+ settled messages past retention deleted")
        h.wait_delivery_state(d, app, new_id, ep["id"], "succeeded", timeout=30)
        self.assertEqual(h.metric(d, "hookd_store_full"), 0)

    def test_outcomes_past_the_reserve_wait_for_space_and_are_never_dropped(self):
        """Deliveries that fail several times with 4 KiB responses write more than their
        reserve. What does not fit waits in memory (hookd_store_waiting_writes), in order,
        and is committed once there is room: every attempt ends up on record, none twice."""
        recv = self.receiver()
        recv.behave(path="/ok")
        recv.behave(path="/flaky", fail_first=3, fail_status=500, body="x" * 4096)
        d = self.daemon(start=False, storage={"map_size": "1MiB", "retention_days": 2},
                        delivery=NO_BREAKER)
        clock = h.fake_clock(d)
        d.start()
        app = h.create_app(d)
        h.create_endpoint(d, app, recv.url("/ok"), event_types=["old.*"])
        flaky = h.create_endpoint(d, app, recv.url("/flaky"), event_types=["new.*"],
                                  retry_schedule=[1, 1, 1, 1])
        old = []
        for i in range(80):  # day 0: settled traffic that retention will prune (~360 KiB)
            old.append(h.publish(d, app, "old.event", {"i": i, "pad": "o" * 3000})["id"])
        recv.wait_for(80, path="/ok", timeout=30)
        with open(clock, "w") as f:
            f.write("+1d\n")

        def clock_moved():  # libfaketime re-reads the file at most once a second
            ts = h.publish(d, app, "probe.clock", {})["timestamp"]
            return h.parse_time(ts) > time.time() + 20 * 3600
        h.wait_until(clock_moved, timeout=10, interval=0.3, message="the fake clock to move")
        # Day 1: deliveries that fail 3 times with 4 KiB answers (each attempt ~8 KiB on disk),
        # a few at a time, until their outcomes outgrow the store and have to wait.
        new = []
        deadline = time.monotonic() + 60 * h.SCALE
        while h.metric(d, "hookd_store_waiting_writes") == 0:
            self.assertLess(time.monotonic(), deadline, "outcomes never had to wait for space")
            for _ in range(3):
                # Publishes stop at the budget (507); outcomes go on past it and then wait.
                st, body = d.api("POST", f"/v1/apps/{app['id']}/messages",
                                 {"type": "new.event", "data": {"i": len(new)}})
                self.assertIn(st, (202, 507), body)
                if st == 202:
                    new.append(body["id"])
            time.sleep(1.0)
        sys.stderr.write(f"outcomes waited after {len(new)} day-1 publishes\n")
        self.assertRegex(d.log(), r"state changes wait for space")
        # Day 2.5: the day-0 messages are past retention, so the janitor can make room if
        # nothing else does.
        with open(clock, "w") as f:
            f.write("+60h\n")

        def settled():
            for mid in new:
                m = h.get_message(d, app, mid)
                if [x["state"] for x in m["deliveries"]] != ["succeeded"]:
                    return None
            return h.metric(d, "hookd_store_waiting_writes") == 0
        h.wait_until(settled, timeout=120, interval=0.5, message="every delivery settled on record")
        # On disk, not just in memory: after a restart every attempt is there.
        d.restart()
        for mid in new:
            att = h.get_attempts(d, app, mid)
            self.assertEqual(sorted(a["attempt"] for a in att), [1, 2, 3, 4], f"{mid}: {att}")
            self.assertEqual(h.delivery_for(h.get_message(d, app, mid), flaky["id"])["state"],
                             "succeeded")
        before = recv.count(path="/flaky")
        time.sleep(2)
        self.assertEqual(recv.count(path="/flaky"), before, "a restart resent settled deliveries")
        self.assertEqual(h.metric(d, "hookd_pending"), 0)


if __name__ == "__main__":
    h.main()

"""A receiver that fails and then recovers: the next retry delivers, and nothing is sent
past the retry schedule.

test_failing_then_ok: two receivers fail (one answers 503, one hangs past
delivery.timeout_ms) until each of their messages has had two attempts; then both switch
to 200. Every message is delivered by the first attempt after the switch (an attempt
already hanging still ends in its timeout), with every earlier attempt recorded as the
failure the receiver gave, at most 1 + len(retry_schedule) in all, and none after the
success. A third receiver's delivery, dead before the switch, stays dead: recovering does
not revive it (a redrive does).

test_sequence_of_faults: one message meets a different fault on each attempt (reset,
close before headers, hang, 503 with Retry-After) and is delivered on the fifth; each
attempt records its own cause. The faults come in an order where none follows an answer
on a kept-alive connection, so this test does not depend on the defect that
test_fault_modes reports for that case.
"""

import os
import re
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faultpeer as fp  # noqa: E402

h = fp.h

SCHEDULE = [1, 1, 1, 1, 1]
MAX_ATTEMPTS = 1 + len(SCHEDULE)
TIMEOUT_MS = 2000
JITTER = 1.2  # each schedule wait is +-20%

TIMED_OUT = re.compile(r"time.?out|timed out", re.I)
RESET = re.compile(r"receiv|recv|send|reset|peer", re.I)
EMPTY = re.compile(r"nothing|empty|no headers|no data", re.I)


class FaultSwitchTest(h.HookdCase):

    def start(self):
        d = self.daemon(delivery={"timeout_ms": TIMEOUT_MS, "connect_timeout_ms": 1000})
        watch = fp.HealthWatch(d)
        self.addCleanup(watch.stop)
        return d, watch, h.create_app(d)

    def peer(self):
        p = fp.FaultPeer()
        self.addCleanup(p.close)
        return p

    def assert_healthy(self, d, watch):
        failures = watch.stop()
        self.assertGreater(watch.polls, 5)
        self.assertEqual(failures, [], "GET /healthz failed while receivers misbehaved")
        self.assertEqual(h.metric(d, "hookd_pending"), 0)
        self.assertEqual(h.metric(d, "hookd_inflight"), 0)

    def test_failing_then_ok(self):
        t0 = time.monotonic()
        d, watch, app = self.start()
        failing = {"status": ("status", {"status": 503}), "hang": ("hang", {})}
        peers, eps, msgs = {}, {}, {}
        for name, (mode, params) in failing.items():
            peers[name] = self.peer()
            peers[name].mode(mode, **params)
            eps[name] = h.create_endpoint(d, app, peers[name].url(f"/{name}"),
                                          retry_schedule=SCHEDULE,
                                          event_types=[f"switch.{name}"])
        doomed = self.peer()
        doomed.mode("status", status=500)
        doomed_ep = h.create_endpoint(d, app, doomed.url("/doomed"), retry_schedule=[1],
                                      event_types=["switch.doomed"])

        for name in failing:
            msgs[name] = [h.publish(d, app, f"switch.{name}", {"n": i})["id"] for i in range(2)]
        doomed_msg = h.publish(d, app, "switch.doomed", {})["id"]

        # The doomed delivery dead after its two attempts; then each receiver switches to
        # 200 once each of its messages had two failed attempts (the hanging receiver's
        # second is still hanging then).
        dead_dl = h.wait_delivery_state(d, app, doomed_msg, doomed_ep["id"], "dead",
                                        attempts=2, timeout=15)
        doomed.mode("ok")
        t_switch = {}
        for name in failing:
            for mid in msgs[name]:
                peers[name].wait_for(2, timeout=15, webhook_id=mid)
            t_switch[name] = time.time()
            peers[name].mode("ok")

        for name, (mode, params) in failing.items():
            for mid in msgs[name]:
                dl = h.wait_delivery_state(d, app, mid, eps[name]["id"], "succeeded",
                                           timeout=15)
                reqs = peers[name].get(webhook_id=mid)
                attempts = [a for a in h.get_attempts(d, app, mid)
                            if a["endpoint_id"] == eps[name]["id"]]
                sys.stderr.write(f"{name} {mid}: {[r.mode for r in reqs]}; "
                                 f"{[(a['status'], a['error']) for a in attempts]}\n")
                k = len(reqs) - 1
                # Delivered by the first attempt after the switch; all before it failed.
                self.assertEqual([r.mode for r in reqs], [mode] * k + ["ok"], reqs)
                self.assertGreaterEqual(k, 2, reqs)
                self.assertLessEqual(len(reqs), MAX_ATTEMPTS, reqs)
                # The wait after the switch: at most what was left of an attempt in
                # progress, then one schedule wait.
                late = reqs[-1].time - t_switch[name]
                self.assertLess(late, TIMEOUT_MS / 1000 + max(SCHEDULE) * JITTER + 1.0 * h.SCALE,
                                f"not delivered on the next retry after the switch: {reqs}")
                # Every attempt recorded, as the failure it was.
                self.assertEqual(dl["attempts"], len(reqs), dl)
                self.assertEqual(len(attempts), len(reqs), attempts)
                self.assertEqual([a["attempt"] for a in attempts], list(range(1, k + 2)))
                for a in attempts[:-1]:
                    if mode == "status":
                        self.assertEqual((a["status"], a["error"]), (503, None), a)
                    else:
                        self.assertIsNone(a["status"], a)
                        self.assertRegex(a["error"] or "", TIMED_OUT)
                self.assertEqual((attempts[-1]["status"], attempts[-1]["error"]), (200, None))
                self.assertEqual(dl["last_status"], 200, dl)

        # Nothing after a success, and the dead delivery is not revived by the recovery.
        counts = {name: p.count() for name, p in peers.items()}
        time.sleep(max(SCHEDULE) * JITTER + 1.0)
        self.assertEqual({name: p.count() for name, p in peers.items()}, counts)
        self.assertEqual(doomed.count(), 2, doomed.get())
        again = h.delivery_for(h.get_message(d, app, doomed_msg), doomed_ep["id"])
        self.assertEqual((again["state"], again["attempts"]), ("dead", 2), again)
        st, dead = d.api("GET", f"/v1/apps/{app['id']}/dead")
        self.assertEqual(st, 200, dead)
        self.assertEqual([e["delivery_id"] for e in dead["data"]], [dead_dl["id"]], dead)
        self.assert_healthy(d, watch)
        sys.stderr.write(f"test took {time.monotonic() - t0:.1f}s\n")

    def test_sequence_of_faults(self):
        t0 = time.monotonic()
        d, watch, app = self.start()
        peer = self.peer()
        peer.sequence([("reset", {}), ("close_before_headers", {}), ("hang", {}),
                       ("status", {"status": 503, "retry_after": 2}), ("ok", {})])
        ep = h.create_endpoint(d, app, peer.url("/seq"), retry_schedule=SCHEDULE)
        mid = h.publish(d, app, "seq.x", {})["id"]
        # ~0 + 1 + 0 + 1 + 2 (hang) + 1 + 0 + 2 (Retry-After) s.
        dl = h.wait_delivery_state(d, app, mid, ep["id"], "succeeded", timeout=20)
        reqs = peer.get(webhook_id=mid)
        attempts = h.get_attempts(d, app, mid)
        sys.stderr.write(f"sequence: {[r.mode for r in reqs]}; "
                         f"{[(a['status'], a['error']) for a in attempts]}\n")
        self.assertEqual([r.mode for r in reqs],
                         ["reset", "close_before_headers", "hang", "status", "ok"], reqs)
        self.assertEqual((dl["attempts"], len(attempts)), (5, 5), (dl, attempts))
        self.assertEqual([a["attempt"] for a in attempts], [1, 2, 3, 4, 5])
        self.assertEqual([a["status"] for a in attempts], [None, None, None, 503, 200])
        self.assertRegex(attempts[0]["error"] or "", RESET)
        self.assertRegex(attempts[1]["error"] or "", EMPTY)
        self.assertRegex(attempts[2]["error"] or "", TIMED_OUT)
        self.assertEqual([a["error"] for a in attempts[3:]], [None, None])
        gap = reqs[4].time - reqs[3].time
        self.assertGreaterEqual(gap, 1.8, f"Retry-After 2 on 503 not honoured: {gap:.2f}s")
        time.sleep(max(SCHEDULE) * JITTER + 1.0)
        self.assertEqual(peer.count(), 5, peer.get())
        self.assert_healthy(d, watch)
        sys.stderr.write(f"test took {time.monotonic() - t0:.1f}s\n")


if __name__ == "__main__":
    h.main()

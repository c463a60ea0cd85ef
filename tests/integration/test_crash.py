"""Durability: kill -9 during a publish burst loses no acknowledged message; a restart keeps
the schedule of pending retries."""

import http.client
import json
import os
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hookdtest as h  # noqa: E402

THREADS = 8
PER_THREAD = 200          # 1,600 publishes planned in the burst
KILL_AFTER_ACKS = 600


class CrashTest(h.HookdCase):

    def test_kill9_during_burst_loses_no_acked_message(self):
        recv = self.receiver()
        # A slow receiver during the burst: most acknowledged messages are still queued (or
        # in flight) when the daemon is killed, so the restart has real work to recover.
        recv.behave(delay=0.5)
        d = self.daemon()
        app = h.create_app(d)
        h.create_endpoint(d, app, recv.url("/burst"))
        path = f"/v1/apps/{app['id']}/messages"

        acked = []              # ids that got a 202
        ack_lock = threading.Lock()
        errors = []             # (thread, exception) after the kill: expected
        sent = [0]
        bad = []                # unexpected statuses

        def worker(t):
            conn = http.client.HTTPConnection(h.HOST, d.port, timeout=30 * h.SCALE)
            hdr = {"Authorization": f"Bearer {d.admin_key}", "Content-Type": "application/json"}
            try:
                for i in range(PER_THREAD):
                    body = json.dumps({"type": "burst.item", "data": {"t": t, "i": i}})
                    with ack_lock:
                        sent[0] += 1
                    conn.request("POST", path, body=body, headers=hdr)
                    resp = conn.getresponse()
                    rb = resp.read()
                    if resp.status == 202:
                        mid = json.loads(rb)["id"]
                        with ack_lock:
                            acked.append(mid)
                    else:
                        bad.append((resp.status, rb[:200]))
            except (OSError, http.client.HTTPException, ValueError) as e:
                errors.append((t, repr(e)))
            finally:
                conn.close()

        threads = [threading.Thread(target=worker, args=(t,), daemon=True) for t in range(THREADS)]
        t0 = time.monotonic()
        for th in threads:
            th.start()
        h.wait_until(lambda: len(acked) >= KILL_AFTER_ACKS or not any(th.is_alive() for th in threads),
                     timeout=60, interval=0.002, message=f"{KILL_AFTER_ACKS} acks")
        still_flowing = any(th.is_alive() for th in threads)
        d.kill9()
        acks_at_kill = len(acked)
        for th in threads:
            th.join(30)
        with ack_lock:
            acked_ids = list(acked)
        sys.stderr.write(f"burst: {sent[0]} sent, {acks_at_kill} acked when kill -9 "
                         f"({time.monotonic() - t0:.2f}s), {len(acked_ids)} acked in all, "
                         f"{len(errors)} client errors after the kill, flowing={still_flowing}\n")
        self.assertFalse(bad, f"unexpected publish statuses: {bad[:5]}")
        self.assertTrue(still_flowing, "the burst ended before the kill: nothing was in flight")
        self.assertGreaterEqual(len(acked_ids), KILL_AFTER_ACKS)
        self.assertEqual(len(set(acked_ids)), len(acked_ids), "duplicate ids acknowledged")
        before_restart = len(recv.ids(path="/burst"))
        self.assertLess(before_restart, len(acked_ids), "everything was delivered before the kill")

        recv.behave()
        d.start()
        want = set(acked_ids)

        def missing():
            return want - recv.ids(path="/burst")

        try:
            h.wait_until(lambda: not missing(), timeout=90, interval=0.2,
                         message="every acknowledged message to be delivered after restart")
        except AssertionError as e:
            miss = sorted(missing())
            sample = miss[:5]
            detail = []
            for mid in sample:
                st, m = d.api("GET", f"/v1/apps/{app['id']}/messages/{mid}")
                detail.append((mid, st, m if st != 200 else m.get("deliveries")))
            raise AssertionError(f"{e}: {len(miss)} of {len(want)} acked ids never delivered; "
                                 f"e.g. {detail}") from None

        reqs = recv.get(path="/burst")
        ids = recv.ids(path="/burst")
        dups = len(reqs) - len(ids)
        unacked = len(ids - want)
        sys.stderr.write(f"after restart: {len(ids)} distinct ids delivered ({before_restart} "
                         f"before the kill), {dups} duplicate deliveries, {unacked} delivered "
                         f"that were never acked (in flight at the kill)\n")
        # Deliveries are intact and signed with the same id as in the body.
        for r in reqs[:50] + reqs[-50:]:
            self.assertEqual(r.json()["id"], r.webhook_id)

    def test_restart_keeps_pending_retry_schedule(self):
        recv = self.receiver()
        recv.behave(status=500)
        d = self.daemon()
        app = h.create_app(d)
        ep = h.create_endpoint(d, app, recv.url("/later"), retry_schedule=[20])
        msg_id = h.publish(d, app, "a.b", {"x": 1})["id"]
        first = recv.wait_for(1, path="/later")[0]

        def pending_with_next():
            dl = h.delivery_for(h.get_message(d, app, msg_id), ep["id"])
            if dl and dl["attempts"] == 1 and dl["state"] == "pending" and dl["next_attempt_at"]:
                return dl
            return None

        dl = h.wait_until(pending_with_next, message="delivery pending with next_attempt_at")
        nxt = h.parse_time(dl["next_attempt_at"])
        delay = nxt - first.time
        sys.stderr.write(f"first attempt failed; next_attempt_at in {delay:.2f}s "
                         f"({dl['next_attempt_at']})\n")
        self.assertGreaterEqual(delay, 20 * 0.8 - 1.0, dl)
        self.assertLessEqual(delay, 20 * 1.2 + 1.0, dl)

        d.stop()
        restarted_at = time.time()
        d.start()
        dl2 = h.delivery_for(h.get_message(d, app, msg_id), ep["id"])
        self.assertIn(dl2["state"], ("pending",), dl2)
        self.assertEqual(dl2["attempts"], 1, dl2)
        self.assertAlmostEqual(h.parse_time(dl2["next_attempt_at"]), nxt, delta=1.0)

        # Not retried at restart: nothing for 5 s (or until just before the due time).
        quiet_until = min(restarted_at + 5.0, nxt - 1.0)
        while time.time() < quiet_until:
            self.assertEqual(recv.count(path="/later"), 1,
                             f"retried early after restart: {recv.get(path='/later')}")
            time.sleep(0.1)
        self.assertEqual(recv.count(path="/later"), 1, recv.get(path="/later"))

        # And it does come, on schedule.
        second = recv.wait_for(2, path="/later", timeout=max(5.0, nxt - time.time() + 10))[1]
        sys.stderr.write(f"second attempt {second.time - nxt:+.2f}s from next_attempt_at\n")
        self.assertGreaterEqual(second.time, nxt - 1.0)
        self.assertEqual(second.webhook_id, msg_id)
        self.assertEqual(second.body, first.body)
        h.wait_delivery_state(d, app, msg_id, ep["id"], "dead", attempts=2)

    def test_kill9_with_inflight_delivery_redelivers_same_id(self):
        recv = self.receiver()
        recv.behave(status=200, delay=3.0)     # hold the attempt open across the kill
        d = self.daemon()
        app = h.create_app(d)
        ep = h.create_endpoint(d, app, recv.url("/slowrecv"), retry_schedule=[1, 1, 1])
        msg_id = h.publish(d, app, "a.b", {"y": 1})["id"]
        h.wait_until(lambda: recv.seen.get(("/slowrecv", msg_id)),
                     message="the first attempt to reach the receiver")
        d.kill9()
        recv.behave(status=200)
        d.start()
        reqs = recv.wait_for(2, path="/slowrecv", timeout=30)
        self.assertEqual({r.webhook_id for r in reqs}, {msg_id})
        self.assertTrue(recv.verify(ep["secret"], reqs[-1]))
        h.wait_delivery_state(d, app, msg_id, ep["id"], "succeeded")

    def test_sigterm_with_inflight_deliveries(self):
        """SIGTERM while attempts are open: a clean exit (0, no sanitizer report), and the
        interrupted deliveries go out again after the restart with the same webhook-id."""
        recv = self.receiver()
        recv.behave(delay=4.0)
        d = self.daemon()
        app = h.create_app(d)
        ep = h.create_endpoint(d, app, recv.url("/term"), retry_schedule=[1, 1, 1])
        ids = [h.publish(d, app, "a.b", {"i": i})["id"] for i in range(5)]
        h.wait_until(lambda: all(recv.seen.get(("/term", m)) for m in ids),
                     message="all five attempts to be open at the receiver")
        rc = d.stop()
        san = d.sanitizer_errors()
        self.assertEqual(rc, 0, f"exit status {rc} on SIGTERM with attempts in flight; "
                                f"sanitizer: {san[:3]}")
        self.assertFalse(san, san[:5])
        recv.behave()
        d.start()
        for m in ids:
            h.wait_delivery_state(d, app, m, ep["id"], "succeeded", timeout=20)
            got = recv.get(path="/term", webhook_id=m)
            self.assertGreaterEqual(len(got), 2, got)


if __name__ == "__main__":
    h.main()

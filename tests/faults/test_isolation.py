"""A stuck endpoint does not slow the healthy ones (issue 11): nine endpoints that answer at
once are measured twice in one run, alone (phase A) and next to a tenth whose receiver
never answers and holds a backlog (phase B). The target is rate B >= 0.9 x rate A; the
test reports the figure and asserts only a loose 0.5 (see the assertion).

The stuck endpoint's attempts (a receiver that answers only after the test) hang until
delivery.timeout_ms, set far beyond the length of phase B, so its in-flight slots stay
taken for the whole measurement; the circuit breaker stays on (its default), it cannot open
before those attempts time out."""

import os
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import hookdtest as h  # noqa: E402

S = h.SCALE
HEALTHY = 9
# Messages per healthy endpoint per phase: the nine take ~1,200 deliveries/s on the shared
# 2-core machine (measured: 9 x 60 in 0.46 s, too short to mean much), so 9 x 400 is ~3 s
# a phase, ~10 s under ASan, and the whole test well under 30 s.
M = 400
# Before phase A, so that neither phase pays for the first connections to the receivers.
WARMUP = 5
# The stuck endpoint's backlog: more than its in-flight slots (the daemon's default of 64
# per endpoint), so it also has due deliveries waiting behind them.
STUCK_BACKLOG = 100
STUCK_SLOTS = 64
# Far beyond phase B (a few seconds, x3 under ASan): no stuck attempt ends while measured.
TIMEOUT_MS = 120000


class IsolationTest(h.HookdCase):

    def run_phase(self, d, app, receivers, tag):
        """Publishes M messages to each healthy endpoint, one thread per endpoint; the
        deliveries per second across all nine, first publish to last receipt."""
        before = [r.count() for r in receivers]
        errors = []

        def publisher(i):
            try:
                for n in range(M):
                    h.publish(d, app, f"iso.h{i}", {"phase": tag, "n": n})
            except AssertionError as e:
                errors.append((i, str(e)))

        threads = [threading.Thread(target=publisher, args=(i,), daemon=True)
                   for i in range(HEALTHY)]
        t0 = time.time()
        for t in threads:
            t.start()
        for t in threads:
            t.join(60 * S)
        self.assertFalse(errors, errors[:3])
        last = 0.0
        for r, b in zip(receivers, before):
            got = r.wait_for(b + M, timeout=30)
            last = max(last, max(q.time for q in got[b:]))
        rate = HEALTHY * M / (last - t0)
        sys.stderr.write(f"isolation: phase {tag}: {HEALTHY} x {M} deliveries in "
                         f"{last - t0:.2f}s = {rate:.0f}/s\n")
        return rate

    def test_stuck_endpoint_does_not_slow_healthy_ones(self):
        receivers = [self.receiver() for _ in range(HEALTHY)]
        # The stuck receiver: a Receiver whose answer waits longer than the test lasts. Its
        # handler threads sleep, so they take no CPU from the healthy receivers in this
        # process. FaultPeer's "hang" would do as well but polls each connection every
        # 0.1 s (64 threads, ~640 wake-ups/s) next to them; four runs with it gave ratios
        # 0.81-1.15, three with this 0.99-1.20: within the noise, but a cost the figure
        # need not carry.
        stuck_recv = self.receiver()
        stuck_recv.behave(delay=2 * TIMEOUT_MS / 1000)
        d = self.daemon(delivery={"timeout_ms": TIMEOUT_MS})
        app = h.create_app(d)
        for i, r in enumerate(receivers):
            h.create_endpoint(d, app, r.url(f"/h{i}"), event_types=[f"iso.h{i}"])
        for i, r in enumerate(receivers):
            for n in range(WARMUP):
                h.publish(d, app, f"iso.h{i}", {"warmup": n})
        for r in receivers:
            r.wait_for(WARMUP)

        rate_a = self.run_phase(d, app, receivers, "A")

        stuck = h.create_endpoint(d, app, stuck_recv.url("/stuck"), event_types=["iso.stuck"])
        for n in range(STUCK_BACKLOG):
            h.publish(d, app, "iso.stuck", {"n": n})
        # Every slot of the stuck endpoint taken by an attempt that hangs.
        stuck_recv.wait_for(STUCK_SLOTS, timeout=20)

        rate_b = self.run_phase(d, app, receivers, "B")

        st, status = d.api("GET", f"/v1/apps/{app['id']}/endpoints/{stuck['id']}/status")
        self.assertEqual(st, 200, status)
        # Still stuck at the end of phase B: the measurement was made next to it.
        self.assertEqual(status["inflight"], STUCK_SLOTS, status)
        self.assertEqual(stuck_recv.count(), STUCK_SLOTS, "a stuck attempt ended during phase B")
        ratio = rate_b / rate_a
        sys.stderr.write(f"isolation: figures: healthy rate alone {rate_a:.0f}/s, next to the "
                         f"stuck endpoint {rate_b:.0f}/s, ratio {ratio:.2f} (target 0.9); "
                         f"stuck endpoint in flight {status['inflight']}, waiting "
                         f"{status['waiting']}, breaker {status['breaker']}\n")
        # The target is 0.9. A shared, noisy 2-core machine moves a few-second rate by more
        # than 10% from one phase to the next, so the test holds only 0.5 (a stuck endpoint
        # that took the healthy ones' slots or the event loop would fall far below it) and
        # the figure above is what the note quotes.
        self.assertGreater(ratio, 0.5, f"healthy endpoints slowed to {ratio:.2f} of their "
                                       f"rate by a stuck one ({rate_a:.0f}/s -> {rate_b:.0f}/s)")


if __name__ == "__main__":
    h.main()

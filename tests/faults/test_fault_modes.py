"""Every way a receiver can fail, against one daemon: each message ends delivered or dead,
with every attempt recorded, none beyond the schedule, and hookd answering throughout.

One FaultPeer per misbehaviour (faultpeer.py), each behind its own endpoint subscribed to
its own event type, all running at once: 500, 503 and 429 with and without Retry-After,
a receiver that hangs, one that answers after the timeout, one that answers byte by byte
(within and past the timeout), a reset, a close before any header, a 10 MiB body and a
redirect. What a user checks for each: the delivery's final state; the attempts the API
lists equal the delivery's count and the requests the receiver saw, and are at most
1 + len(retry_schedule); each failed attempt says why (its HTTP status, or an error
naming the timeout, the reset, the empty reply); a dead one is in the dead-letter list; a
Retry-After is waited for; a 10 MiB answer is kept as a 4 KiB excerpt; a redirect is not
followed (docs/configuration.md, apps[].endpoints[].url); nothing is retried after the
end; nothing stays pending; /healthz answers all along.

Two more peers answer one message with 200 first and only then start to fail, so that
the failing attempt goes out on a connection hookd kept alive: see KEPT_ALIVE below.
"""

import os
import re
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faultpeer as fp  # noqa: E402

h = fp.h

SCHEDULE = [1, 1]
MAX_ATTEMPTS = 1 + len(SCHEDULE)
# delivery.timeout_ms: long enough for the byte-by-byte answer that should succeed
# (66 bytes at 10 ms), short enough that three timed-out attempts take ~8 s.
TIMEOUT_MS = 2000
RETRY_AFTER_S = 2  # longer than any schedule wait (1 s + 20% jitter)
MESSAGES = 2       # per scenario, published together
EXCERPT_MAX = 4096  # "response": at most 4 KiB (docs/api.md)

TIMED_OUT = re.compile(r"time.?out|timed out", re.I)
RESET = re.compile(r"receiv|recv|send|reset|peer", re.I)
EMPTY = re.compile(r"nothing|empty|no headers|no data", re.I)

# Scenarios: name -> (mode, params, final state). The redirect's location is filled in
# with a separate peer's URL, which must never be asked.
SCENARIOS = {
    "ok": ("ok", {}, "succeeded"),
    "status_500": ("status", {"status": 500}, "dead"),
    "status_503_retry_after": ("status", {"status": 503, "retry_after": RETRY_AFTER_S}, "dead"),
    "status_429_retry_after": ("status", {"status": 429, "retry_after": RETRY_AFTER_S}, "dead"),
    "status_429": ("status", {"status": 429}, "dead"),
    "hang": ("hang", {}, "dead"),
    "timeout": ("timeout", {"delay": 2 * TIMEOUT_MS / 1000}, "dead"),
    "slow_within_timeout": ("slow", {"interval": 0.01}, "succeeded"),
    "slow_past_timeout": ("slow", {"interval": 0.5}, "dead"),
    "reset": ("reset", {}, "dead"),
    "close_before_headers": ("close_before_headers", {}, "dead"),
    "big_body": ("big_body", {}, "succeeded"),
    "redirect": ("redirect", {}, "dead"),
    # KEPT_ALIVE: the peer first answers a warm-up message with 200 (hookd keeps that
    # connection), then switches to the fault, so that the first attempt of the one test
    # message goes out on the kept connection.
    "reset_on_kept_alive": ("reset", {}, "dead"),
    "close_on_kept_alive": ("close_before_headers", {}, "dead"),
}
KEPT_ALIVE = {"reset_on_kept_alive", "close_on_kept_alive"}
# Peers that must hold no connection once their deliveries are over: hookd closes every
# connection it gave up on (a hanging peer would otherwise keep a socket forever).
CLOSED_AFTER = {"hang", "timeout", "slow_past_timeout", "reset", "close_before_headers",
                "big_body", "reset_on_kept_alive", "close_on_kept_alive"}


class FaultModesTest(h.HookdCase):

    def test_every_fault_mode(self):
        t_start = time.monotonic()
        d = self.daemon(delivery={"timeout_ms": TIMEOUT_MS, "connect_timeout_ms": 1000})
        watch = fp.HealthWatch(d)
        self.addCleanup(watch.stop)
        app = h.create_app(d)

        target = fp.FaultPeer()  # where the redirect points
        self.addCleanup(target.close)
        peers, eps, msgs = {}, {}, {}
        for name, (mode, params, _) in SCENARIOS.items():
            peer = fp.FaultPeer()
            self.addCleanup(peer.close)
            peers[name] = peer
            eps[name] = h.create_endpoint(d, app, peer.url(f"/{name}"), retry_schedule=SCHEDULE,
                                          event_types=[f"fault.{name}"])
            if name in KEPT_ALIVE:
                warm = h.publish(d, app, f"fault.{name}", {"warm": True})["id"]
                h.wait_delivery_state(d, app, warm, eps[name]["id"], "succeeded", attempts=1)
                self.assertEqual(peer.connections, 1)
            if mode == "redirect":
                params = dict(params, location=target.url("/moved-here"))
            peer.mode(mode, **params)

        used_before = h.metric(d, "hookd_store_used_bytes")
        for name in SCENARIOS:
            n = 1 if name in KEPT_ALIVE else MESSAGES
            msgs[name] = [h.publish(d, app, f"fault.{name}", {"scenario": name, "n": i})["id"]
                          for i in range(n)]

        # Nothing stays pending: every delivery ends succeeded or dead. The slowest
        # scenarios take 3 timed-out attempts and 2 waits, ~8 s.
        final = {}

        def settled():
            for name, ids in msgs.items():
                for mid in ids:
                    if (name, mid) in final:
                        continue
                    dl = h.delivery_for(h.get_message(d, app, mid), eps[name]["id"])
                    if dl is None or dl["state"] not in ("succeeded", "dead"):
                        return False
                    final[(name, mid)] = dl
            return True

        h.wait_until(settled, timeout=40, interval=0.2,
                     message="every delivery to end succeeded or dead")
        t_settled = time.monotonic()
        sys.stderr.write(f"all {len(final)} deliveries settled after "
                         f"{t_settled - t_start:.1f}s\n")

        # No attempt after the end: wait longer than the longest schedule wait (+ jitter).
        seen = {name: p.count() for name, p in peers.items()}
        time.sleep(max(SCHEDULE) * 1.2 + 1.0)
        self.assertEqual({name: p.count() for name, p in peers.items()}, seen,
                         "a receiver was asked again after its deliveries ended")

        st, dead = d.api("GET", f"/v1/apps/{app['id']}/dead?limit=1000")
        self.assertEqual(st, 200, dead)
        dead_by_delivery = {e["delivery_id"]: e for e in dead["data"]}

        for name, (mode, params, state) in SCENARIOS.items():
            with self.subTest(scenario=name):
                for mid in msgs[name]:
                    self.check_delivery(d, app, name, mode, params, state, mid, eps[name],
                                        final[(name, mid)], peers[name], dead_by_delivery)
                if name in CLOSED_AFTER:
                    h.wait_until(lambda p=peers[name]: p.open_connections() == 0, timeout=5,
                                 message=f"hookd to close its connections to the {name} peer")

        with self.subTest(check="redirect not followed"):
            self.assertEqual(target.count(), 0,
                             f"the redirect's target was asked: {target.get()}")
        with self.subTest(check="10 MiB bodies not stored"):
            # Two 10 MiB answers stored whole would add 20 MiB; the whole test writes a few
            # hundred KiB of messages, deliveries and attempts.
            grown = h.metric(d, "hookd_store_used_bytes") - used_before
            sys.stderr.write(f"store used bytes grew by {grown:.0f}\n")
            self.assertLess(grown, 4 * 1024 * 1024)
        with self.subTest(check="counters"):
            self.assertEqual(h.metric(d, "hookd_pending"), 0)
            self.assertEqual(h.metric(d, "hookd_inflight"), 0)
            n_dead = sum(1 for dl in final.values() if dl["state"] == "dead")
            self.assertEqual(h.metric(d, "hookd_deliveries_dead_total"), n_dead)
        with self.subTest(check="healthz throughout"):
            failures = watch.stop()
            self.assertGreater(watch.polls, 10)
            self.assertEqual(failures, [], "GET /healthz failed while receivers misbehaved")
            self.assertTrue(d.running())
        sys.stderr.write(f"test took {time.monotonic() - t_start:.1f}s\n")

    def check_delivery(self, d, app, name, mode, params, state, mid, ep, dl, peer, dead):
        attempts = [a for a in h.get_attempts(d, app, mid) if a["endpoint_id"] == ep["id"]]
        reqs = peer.get(webhook_id=mid)
        sys.stderr.write(f"{name}: {dl['state']} after {len(attempts)} attempt(s), receiver "
                         f"saw {len(reqs)}; "
                         f"{[(a['status'], a['error'], a['duration_ms']) for a in attempts]}\n")
        self.assertEqual(dl["state"], state, dl)
        self.assertEqual(dl["attempts"], len(attempts), (dl, attempts))
        self.assertEqual([a["attempt"] for a in attempts], list(range(1, len(attempts) + 1)))
        self.assertLessEqual(len(attempts), MAX_ATTEMPTS, attempts)
        self.assertEqual(len(attempts), 1 if state == "succeeded" else MAX_ATTEMPTS, attempts)
        for r in reqs:
            self.assertEqual((r.method, r.path.split("?")[0]), ("POST", f"/{name}"), r)

        for a in attempts:
            if mode == "ok" or (mode == "slow" and state == "succeeded"):
                self.assertEqual((a["status"], a["error"], a["response"]), (200, None, "ok"), a)
            elif mode == "status":
                self.assertEqual((a["status"], a["error"]), (params["status"], None), a)
                self.assertEqual(a["response"], "fault peer says no", a)
            elif mode == "redirect":
                self.assertEqual((a["status"], a["error"]), (302, None), a)
            elif mode == "big_body":
                self.assertEqual((a["status"], a["error"]), (200, None), a)
                self.assertIsInstance(a["response"], str, a)
                self.assertLessEqual(len(a["response"]), EXCERPT_MAX)
                self.assertEqual(len(a["response"]), EXCERPT_MAX)
                self.assertTrue((fp.BIG_BODY_PATTERN * 256).decode() == a["response"],
                                a["response"][:64])
                self.assertLess(a["duration_ms"], TIMEOUT_MS, a)
            elif mode in ("hang", "timeout", "slow"):
                self.assertIsNone(a["status"], a)
                self.assertRegex(a["error"] or "", TIMED_OUT)
                self.assertGreaterEqual(a["duration_ms"], TIMEOUT_MS * 0.9, a)
                self.assertLess(a["duration_ms"], TIMEOUT_MS + 1500 * h.SCALE, a)
            elif mode == "reset":
                self.assertIsNone(a["status"], a)
                self.assertRegex(a["error"] or "", RESET)
            elif mode == "close_before_headers":
                self.assertIsNone(a["status"], a)
                self.assertRegex(a["error"] or "", EMPTY)
            else:
                self.fail(f"no check for mode {mode}")

        if mode in ("hang", "timeout", "slow") and state == "dead":
            # hookd closed each connection it timed out on, about when it gave up.
            for r in reqs:
                self.assertIsNotNone(r.closed_at, f"hookd never closed {r}")
                self.assertLess(r.closed_at - r.time, TIMEOUT_MS / 1000 + 1.5 * h.SCALE, r)

        gaps = [b.time - a.time for a, b in zip(reqs, reqs[1:])]
        if mode == "status" and params.get("retry_after") is not None:
            for g in gaps:
                self.assertGreaterEqual(g, RETRY_AFTER_S - 0.2,
                                        f"Retry-After {RETRY_AFTER_S} not honoured: {gaps}")
        elif mode in ("status", "redirect"):
            for g in gaps:  # the schedule, 1 s +- 20%
                self.assertGreaterEqual(g, 0.75, gaps)
                self.assertLess(g, 1.2 + 1.0 * h.SCALE, gaps)

        if state == "succeeded":
            self.assertEqual(dl["last_status"], 200, dl)
            self.assertNotIn(dl["id"], dead)
        else:
            self.assertRegex(dl["last_error"] or "",
                             rf"retry schedule exhausted after {MAX_ATTEMPTS} attempts", dl)
            self.assertIn(dl["id"], dead, f"dead delivery {dl['id']} not in the dead letters")
            entry = dead[dl["id"]]
            self.assertEqual((entry["message_id"], entry["endpoint_id"], entry["attempts"]),
                             (mid, ep["id"], len(attempts)), entry)
            self.assertTrue((entry["reason"] or "").strip(), entry)

        # Last, so that every other check has run: the receiver saw exactly the attempts
        # hookd recorded, so never more than 1 + len(retry_schedule) requests.
        # KNOWN LIMIT for the KEPT_ALIVE scenarios: when a receiver reads a request on a
        # connection hookd reused and then resets or closes it without answering, libcurl
        # sends the request again on a new connection within the same attempt (it cannot
        # tell this from a server that closed the idle connection just before the reuse,
        # where resending is right, and 7.88 has no option to turn it off), so the receiver
        # gets at most one POST more than hookd records, with the same webhook-id. Exactly
        # equal everywhere else; bounded by one there, so a second resend still fails.
        extra = 1 if name in KEPT_ALIVE else 0
        self.assertGreaterEqual(len(reqs), len(attempts), reqs)
        self.assertLessEqual(len(reqs), len(attempts) + extra,
                             f"receiver saw {len(reqs)} request(s) for {len(attempts)} recorded "
                             f"attempt(s): {reqs}")


if __name__ == "__main__":
    h.main()

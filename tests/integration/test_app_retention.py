"""Retention per app (issue 11): each app's retention_days and payload_retention_days, the
daemon's storage.* as defaults; settled messages past an app's payload retention keep their
metadata but lose their data (payload_purged), past its retention they go; pending ones are
never touched; the space freed is reused (hookd_store_used_bytes).

The clock is moved with libfaketime as in tests/faults/test_store_full.py: the janitor takes a
pass as soon as the wall clock has moved on by its interval."""

import os
import re
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hookdtest as h  # noqa: E402

PAD = "p" * 20000  # ~20 KB of payload per message: what a purge gives back shows


class AppRetentionTest(h.HookdCase):

    def move_clock(self, d, clock, offset, hours_ahead):
        with open(clock, "w") as f:
            f.write(offset + "\n")

        def moved():  # libfaketime re-reads the file at most once a second
            st, body = d.api("GET", "/v1/apps")
            return st == 200 and self._daemon_now(d) > time.time() + hours_ahead * 3600
        h.wait_until(moved, timeout=10, interval=0.3, message="the fake clock to move")

    def _daemon_now(self, d):
        # A throwaway app's created_at is the daemon's idea of now.
        st, body = d.api("POST", "/v1/apps", {"name": "clock probe"})
        self.assertEqual(st, 201, body)
        return h.parse_time(body["created_at"])

    def test_each_app_keeps_its_own_retention_and_payloads_go_first(self):
        recv = self.receiver()
        recv.behave(path="/ok")
        recv.behave(path="/down", status=500)
        d = self.daemon(start=False,
                        storage={"map_size": "64MiB", "retention_days": 30},
                        apps=[{"id": "short", "retention_days": 2},
                              {"id": "slim", "retention_days": 10, "payload_retention_days": 1},
                              {"id": "dflt"}])
        clock = h.fake_clock(d)
        d.start()
        # The apps view shows what the file said; null is the daemon's default.
        app = {a["id"]: a for a in d.api("GET", "/v1/apps")[1]["data"]}
        self.assertEqual((app["short"]["retention_days"], app["short"]["payload_retention_days"]),
                         (2, None))
        self.assertEqual((app["slim"]["retention_days"], app["slim"]["payload_retention_days"]),
                         (10, 1))
        self.assertEqual((app["dflt"]["retention_days"], app["dflt"]["payload_retention_days"]),
                         (None, None))
        for a in ("short", "slim", "dflt"):
            h.create_endpoint(d, a, recv.url("/ok"), event_types=["ok.*"])
        down = h.create_endpoint(d, "slim", recv.url("/down"), event_types=["stuck.*"],
                                 retry_schedule=[36000])
        used_start = h.metric(d, "hookd_store_used_bytes")
        sent = {"short": [], "slim": [], "dflt": []}
        for i in range(30):
            for a in sent:
                sent[a].append(h.publish(d, a, "ok.event", {"i": i, "pad": PAD})["id"])
        stuck = h.publish(d, "slim", "stuck.event", {"keep": "me", "pad": PAD})["id"]
        recv.wait_for(90, path="/ok", timeout=30)
        h.wait_until(lambda: recv.count(path="/down") >= 1, timeout=15, message="the stuck attempt")

        def settled(a, mid):
            m = h.get_message(d, a, mid)
            return all(x["state"] == "succeeded" for x in m["deliveries"])
        h.wait_until(lambda: all(settled(a, m) for a in sent for m in sent[a]), timeout=30,
                     message="every delivery to settle")
        self.assertEqual(h.get_message(d, "slim", stuck)["deliveries"][0]["state"], "pending")
        used0 = h.metric(d, "hookd_store_used_bytes")

        # Day 1.5: slim's payloads are past its payload_retention_days; nothing else moves.
        self.move_clock(d, clock, "+36h", 30)

        def slim_purged():
            return all(h.get_message(d, "slim", m).get("payload_purged") for m in sent["slim"])
        h.wait_until(slim_purged, timeout=30, interval=0.5, message="slim's payloads to be purged")
        m = h.get_message(d, "slim", sent["slim"][0])
        self.assertIsNone(m["data"])
        self.assertIs(m["payload_purged"], True)
        self.assertEqual(m["type"], "ok.event")
        self.assertEqual([x["state"] for x in m["deliveries"]], ["succeeded"])
        self.assertEqual(len(h.get_attempts(d, "slim", sent["slim"][0])), 1)
        st, page = d.api("GET", "/v1/apps/slim/messages?limit=100")
        self.assertEqual(st, 200, page)
        listed = {x["id"]: x for x in page["data"]}
        self.assertIs(listed[sent["slim"][5]]["payload_purged"], True)
        self.assertIs(listed[stuck]["payload_purged"], False)
        # The pending message is never touched.
        m = h.get_message(d, "slim", stuck)
        self.assertEqual(m["data"], {"keep": "me", "pad": PAD})
        self.assertIs(m["payload_purged"], False)
        self.assertEqual(h.delivery_for(m, down["id"])["state"], "pending")
        for a in ("short", "dflt"):
            m = h.get_message(d, a, sent[a][0])
            self.assertEqual(m["data"]["i"], 0)
            self.assertIs(m["payload_purged"], False)
        self.assertRegex(d.log(), r"janitor: \d+ settled messages past payload retention lost")
        # Day 3: short's messages are past its retention_days (2) and go; slim keeps its
        # metadata (10 days), dflt everything (storage.retention_days: 30).
        self.move_clock(d, clock, "+72h", 66)

        def short_gone():
            return all(d.api("GET", f"/v1/apps/short/messages/{m}")[0] == 404 for m in sent["short"])
        h.wait_until(short_gone, timeout=30, interval=0.5, message="short's messages to go")
        self.assertEqual(d.api("GET", "/v1/apps/short/messages")[1]["data"], [])
        self.assertIs(h.get_message(d, "slim", sent["slim"][-1])["payload_purged"], True)
        self.assertEqual(h.get_message(d, "dflt", sent["dflt"][-1])["data"]["i"], 29)
        self.assertEqual(h.get_message(d, "slim", stuck)["data"]["keep"], "me")

        # The space is reused: as much again as one app's first fill (30 x 20 KB) goes into
        # the pages the purge and the prune freed, so the store's pages in use (its high
        # mark while far from full: hookd_store_used_bytes) stop growing.
        per_app = (used0 - used_start) / 3
        for i in range(30):
            h.publish(d, "short", "ok.event", {"i": 100 + i, "pad": PAD})
        recv.wait_for(120, path="/ok", timeout=30)
        time.sleep(1)
        used3 = h.metric(d, "hookd_store_used_bytes")
        sys.stderr.write(f"used bytes: {used_start:.0f} -> {used0:.0f} after the first fill "
                         f"({per_app:.0f} per app) -> {used3:.0f} after the refill\n")
        self.assertGreater(per_app, 500000)
        self.assertLess(used3 - used0, per_app / 3, "the refill did not reuse the freed pages")

    def test_api_fields_and_refusals(self):
        d = self.daemon(storage={"retention_days": 30, "payload_retention_days": 7})
        st, a = d.api("POST", "/v1/apps", {"id": "r1", "retention_days": 14,
                                           "payload_retention_days": 3})
        self.assertEqual(st, 201, a)
        self.assertEqual((a["retention_days"], a["payload_retention_days"]), (14, 3))
        st, a = d.api("POST", "/v1/apps", {"id": "r2"})
        self.assertEqual((a["retention_days"], a["payload_retention_days"]), (None, None))
        self.assertEqual(list(a), ["id", "name", "created_at", "retention_days",
                                   "payload_retention_days"])
        cases = [
            ({"id": "x1", "retention_days": 3651}, "retention_days"),
            ({"id": "x2", "retention_days": -1}, "retention_days"),
            ({"id": "x3", "payload_retention_days": "7"}, "payload_retention_days"),
            ({"id": "x4", "retention_days": 10, "payload_retention_days": 11},
             "payload_retention_days"),
            # null retention_days is storage.retention_days (30)
            ({"id": "x5", "payload_retention_days": 31}, "payload_retention_days"),
        ]
        for body, field in cases:
            st, b = d.api("POST", "/v1/apps", body)
            self.assertEqual(st, 400, (body, b))
            self.assertEqual(h.error_of(b)["field"], field, (body, b))
        st, b = d.api("POST", "/v1/apps", {"id": "x6", "retention_days": 0,
                                           "payload_retention_days": 3650})
        self.assertEqual(st, 201, b)  # 0 keeps the message: any payload retention fits
        self.assertEqual(d.api("GET", "/v1/apps/x4")[0], 404)
        # PATCH: changes what it names, null is the default again.
        st, a = d.api("PATCH", "/v1/apps/r1", {"payload_retention_days": None, "name": "R1"})
        self.assertEqual(st, 200, a)
        self.assertEqual((a["name"], a["retention_days"], a["payload_retention_days"]),
                         ("R1", 14, None))
        st, a = d.api("PATCH", "/v1/apps/r1", {"payload_retention_days": 5})
        self.assertEqual(st, 200, a)
        st, b = d.api("PATCH", "/v1/apps/r1", {"retention_days": 4})
        self.assertEqual(st, 400, b)
        self.assertEqual(h.error_of(b)["field"], "retention_days")
        self.assertIn("must not exceed", h.error_of(b)["message"])
        st, b = d.api("PATCH", "/v1/apps/r1", {"id": "other"})
        self.assertEqual((st, h.error_of(b)["field"]), (400, "id"))
        self.assertEqual(d.api("PATCH", "/v1/apps/nope", {"name": "n"})[0], 404)
        # Kept across a restart, as stored.
        d.restart()
        a = d.api("GET", "/v1/apps/r1")[1]
        self.assertEqual((a["name"], a["retention_days"], a["payload_retention_days"]),
                         ("R1", 14, 5))

    def test_config_refusals_name_the_field_and_line(self):
        bad = [  # line 1 is listen:
            ("storage:\n  retention_days: 10\n  payload_retention_days: 11\n",
             r"cfg\.yaml:4: storage\.payload_retention_days: 11 must not exceed "
             r"storage\.retention_days \(10\)"),
            ("apps:\n  - id: a\n    retention_days: 5\n    payload_retention_days: 6\n",
             r"cfg\.yaml:5: apps\[0\]\.payload_retention_days: 6 must not exceed "
             r"apps\[0\]\.retention_days \(5\)"),
            ("storage:\n  retention_days: 3\napps:\n  - id: a\n    payload_retention_days: 4\n",
             r"cfg\.yaml:6: apps\[0\]\.payload_retention_days: 4 must not exceed "
             r"storage\.retention_days \(3\)"),
            ("apps:\n  - id: a\n    retention_days: 3651\n",
             r"cfg\.yaml:4: apps\[0\]\.retention_days: '?3651'? is out of range \(0\.\.3650\)"),
            ("storage:\n  payload_retention_days: x\n",
             r"cfg\.yaml:3: storage\.payload_retention_days: expected an integer"),
        ]
        for text, want in bad:
            port = h.free_port()
            rc, out = h.serve_config(self, f"listen: 127.0.0.1:{port}\n{text}")
            self.assertNotEqual(rc, 0, (text, out))
            self.assertRegex(out, want, text)
        ok = "apps:\n  - id: a\n    retention_days: 0\n    payload_retention_days: 9\n"
        rc, out = h.serve_config(self, f"listen: 127.0.0.1:{h.free_port()}\n{ok}")
        self.assertEqual(rc, 0, out)
        self.assertFalse(re.search(r"must not exceed", out), out)


if __name__ == "__main__":
    h.main()

#!/usr/bin/env python3
"""test_bench_smoke.py - `make bench` in miniature: bench/run.sh with small sizes, checked
for what must hold in any run (every publish accepted, every delivery received once, none
missing, hookd alive), never for speed: figures belong to `make bench`, not to tests."""
import os
import re
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hookdtest as h  # noqa: E402

ROOT = os.environ.get("HOOKD_SOURCE_DIR",
                      os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


class BenchSmokeTest(unittest.TestCase):

    def test_small_bench_delivers_everything_once(self):
        build = os.environ.get("HOOKD_BUILD_DIR") or os.path.dirname(h.hookd_bin())
        with tempfile.TemporaryDirectory(prefix="hookd-bench-smoke-") as results:
            env = dict(os.environ, BENCH_BASE_N="400", BENCH_BASE_ROUNDS="1", BENCH_M="400",
                       BENCH_FAN_M="100", BENCH_RATIO_ROUNDS="1", BENCH_RATIO_M="100",
                       BENCH_DRAIN_S=str(int(30 * h.SCALE)), BENCH_POLICY_COST="0",
                       BENCH_OPEN_RATE="200", BENCH_OPEN_S="1",
                       # The peer (bench/peers/bullmq) installs packages from Debian and
                       # npm: not something a test does.
                       BENCH_PEER="0", BENCH_FAN100="10", BENCH_FAN100_M="20",
                       BENCH_BACKLOG="300", BENCH_BACKLOG_H="100",
                       BENCH_RESULTS=results)
            p = subprocess.run([os.path.join(ROOT, "bench", "run.sh"), build], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               timeout=240 * h.SCALE)
            out = p.stdout.decode(errors="replace")
            self.assertEqual(p.returncode, 0, out[-3000:])
            self.assertTrue(os.path.exists(os.path.join(results, "latest.txt")), out[-2000:])
        self.assertNotIn("FAILED", out, out[-3000:])
        passes = re.findall(r"^(pass \d[^:]*):", out, re.M)
        self.assertEqual(len(passes), 4, f"expected passes 1, 2, 2b, 3 in the report:\n{out[-3000:]}")
        self.assertRegex(out, r"(?m)^open loop: .*offered at 200/s", out[-3000:])
        accepted = re.findall(r"publish: +(\d+) of (\d+) accepted with 202; not 202: (\d+)", out)
        self.assertEqual(len(accepted), 5, out[-3000:])
        for got, want, bad in accepted:
            self.assertEqual((got, bad), (want, "0"), out[-3000:])
        delivered = re.findall(r"end to end: +(\d+) of (\d+) deliveries", out)
        self.assertEqual(len(delivered), 5, out[-3000:])
        for got, want in delivered:
            self.assertEqual(got, want, out[-3000:])
        dups = re.findall(r"duplicates: +(\S+); missing: (\S+?)(;|$)", out, re.M)
        self.assertEqual(len(dups), 5, out[-3000:])
        for d, m, _ in dups:
            self.assertEqual((d, m), ("0", "0"), out[-3000:])
        self.assertNotIn("HOOKD DIED", out)
        self.assertRegex(out, r"(?m)^peer: skipped \(BENCH_PEER=0\)$", out[-3000:])
        self.assertRegex(out, r"(?m)^  fan-out cost: +one message to 10 endpoints", out[-3000:])
        # The backlog script: every one of its 300 held, and every one still pending after
        # the restart (nothing lost), the new message delivered.
        self.assertRegex(out, r"(?m)^  with 300 pending: ", out[-3000:])
        self.assertRegex(out, r"(?m)delivered \d+ ms after the process started", out[-3000:])
        self.assertRegex(out, r"(?m)^ +then 300 pending", out[-3000:])
        # The file transport pass (plugins/file, loaded from the build tree): every
        # delivery appended and synced, one line each.
        m = re.search(r"(?m)^  synced: +(\d+) of (\d+) deliveries in", out)
        self.assertIsNotNone(m, out[-3000:])
        self.assertEqual(m.group(1), m.group(2), out[-3000:])
        self.assertEqual(m.group(2), "400", out[-3000:])
        self.assertRegex(out, r"(?m)^  file: +400 lines, \d+ fdatasyncs", out[-3000:])
        # The broker passes (bench/brokers.sh): every accepted publish arrived through each.
        brokers = re.findall(r"(?m)^(nats \(core\)|nats \(JetStream\)|redis|mqtt): 1 endpoint",
                             out)
        self.assertEqual(brokers, ["nats (core)", "nats (JetStream)", "redis", "mqtt"],
                         out[-3000:])
        arrived = re.findall(r"end to end: +(\d+) of (\d+) arrived in", out)
        self.assertEqual(len(arrived), 4, out[-3000:])
        for got, want in arrived:
            self.assertEqual(got, want, out[-3000:])
            self.assertEqual(want, "200", out[-3000:])


if __name__ == "__main__":
    unittest.main(verbosity=2)

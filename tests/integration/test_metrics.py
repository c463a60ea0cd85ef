"""GET /metrics: Prometheus text with the counters an operator alerts on, behind the API key."""

import os
import re
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hookdtest as h  # noqa: E402


def metric(text, name):
    m = re.search(rf"^{name} ([0-9.e+]+)$", text, re.M)
    return float(m.group(1)) if m else None


class MetricsTest(h.HookdCase):

    def test_counters_follow_deliveries(self):
        recv = self.receiver()
        recv.behave(path="/m", fail_first=1, fail_status=500)
        d = self.daemon()
        st, _ = d.api("GET", "/metrics", auth=False)
        self.assertEqual(st, 401)
        app = h.create_app(d)
        h.create_endpoint(d, app, recv.url("/m"), retry_schedule=[1])
        for i in range(3):
            h.publish(d, app, "m.tick", {"i": i})
        recv.wait_for(6, path="/m", timeout=20)  # 3 failures, 3 successes

        def settled():
            st, text = d.api("GET", "/metrics")
            return text if metric(text, "hookd_deliveries_succeeded_total") == 3 else None
        text = h.wait_until(settled, message="3 successes counted")
        self.assertIn("# TYPE hookd_attempts_total counter", text)
        self.assertEqual(metric(text, "hookd_messages_published_total"), 3)
        self.assertEqual(metric(text, "hookd_attempts_total"), 6)
        self.assertEqual(metric(text, "hookd_attempts_failed_total"), 3)
        self.assertEqual(metric(text, "hookd_inflight"), 0)
        self.assertGreaterEqual(metric(text, "hookd_store_commits_total"), 1)


if __name__ == "__main__":
    h.main()

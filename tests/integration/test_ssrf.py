"""Destination policy end to end, on loopback only: refused unless
security.allow_destinations covers it; the refusal is a recorded attempt error."""

import os
import re
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hookdtest as h  # noqa: E402

BLOCKED_WORDS = re.compile(r"block|loopback|not allowed|disallowed|denied|forbidden|refus|"
                           r"destination|private", re.I)


class SsrfTest(h.HookdCase):

    def _blocked_attempt(self, d, app, msg_id):
        def pred():
            at = h.get_attempts(d, app, msg_id)
            return at if at else None
        attempts = h.wait_until(pred, message=f"an attempt to be recorded for {msg_id}")
        a = attempts[0]
        self.assertIsNone(a["status"], a)
        self.assertIsInstance(a["error"], str, a)
        self.assertRegex(a["error"], BLOCKED_WORDS, a)
        return a

    def test_loopback_blocked_by_default(self):
        recv = self.receiver()
        d = self.daemon(allow_destinations=[])
        app = h.create_app(d)
        ep = h.create_endpoint(d, app, recv.url("/ssrf"), retry_schedule=[1])
        msg_id = h.publish(d, app, "a.b", {})["id"]
        a = self._blocked_attempt(d, app, msg_id)
        sys.stderr.write(f"blocked attempt error: {a['error']!r}\n")
        self.assertRegex(a["error"], re.compile(r"block|loopback|not allowed|denied|forbidden|refus", re.I))
        # The schedule runs out on refusals too: the delivery ends dead, nothing is received.
        h.wait_delivery_state(d, app, msg_id, ep["id"], "dead", attempts=2, timeout=20)
        time.sleep(0.3)
        self.assertEqual(recv.count(), 0, recv.get())

    def test_localhost_name_blocked(self):
        recv = self.receiver()
        d = self.daemon(allow_destinations=[])
        app = h.create_app(d)
        h.create_endpoint(d, app, recv.url("/ssrf-name", host="localhost"))
        msg_id = h.publish(d, app, "a.b", {})["id"]
        a = self._blocked_attempt(d, app, msg_id)
        sys.stderr.write(f"blocked (localhost) attempt error: {a['error']!r}\n")
        time.sleep(0.5)
        self.assertEqual(recv.count(), 0, recv.get())

    def test_ipv6_only_allow_does_not_cover_ipv4_loopback(self):
        recv = self.receiver()
        d = self.daemon(allow_destinations=["::1/128"])
        app = h.create_app(d)
        h.create_endpoint(d, app, recv.url("/ssrf6"))
        msg_id = h.publish(d, app, "a.b", {})["id"]
        self._blocked_attempt(d, app, msg_id)
        time.sleep(0.3)
        self.assertEqual(recv.count(), 0, recv.get())

    def test_allowed_when_listed(self):
        recv = self.receiver()
        d = self.daemon(allow_destinations=["127.0.0.0/8"])
        app = h.create_app(d)
        ep = h.create_endpoint(d, app, recv.url("/ok"))
        msg_id = h.publish(d, app, "a.b", {"z": 1})["id"]
        req = recv.wait_for(1, path="/ok")[0]
        self.assertEqual(req.webhook_id, msg_id)
        self.assertTrue(recv.verify(ep["secret"], req))
        h.wait_delivery_state(d, app, msg_id, ep["id"], "succeeded", attempts=1)

    def test_allowed_narrow_cidr(self):
        recv = self.receiver()
        d = self.daemon(allow_destinations=["127.0.0.1/32"])
        app = h.create_app(d)
        h.create_endpoint(d, app, recv.url("/narrow"))
        msg_id = h.publish(d, app, "a.b", {})["id"]
        self.assertEqual(recv.wait_for(1, path="/narrow")[0].webhook_id, msg_id)


if __name__ == "__main__":
    h.main()

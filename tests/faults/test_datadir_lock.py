"""One daemon per data directory.

Defect: LMDB lets several processes open one environment, so a second `hookd serve` on
the same data_dir started happily, loaded the same pending deliveries and sent every
message twice. Now the first daemon holds an exclusive lock on data_dir/hookd.lock (its
pid written inside); a second one exits at once naming the directory and that pid. The
kernel drops the lock when the holder dies, so kill -9 leaves nothing stale behind. A data
directory open to group or others gets a warning at start-up.
"""

import os
import re
import stat
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import hookdtest as h  # noqa: E402

# A refusal is immediate (no store opened, nothing listened on); generous for a loaded box.
REFUSE_S = 5.0


class DataDirLockTest(h.HookdCase):

    def second(self, first):
        """Runs a second `hookd serve` on first's data_dir (own port and config file);
        returns (exit code, output, seconds taken). Fails if it keeps running."""
        cfg = dict(first.config)
        cfg["listen"] = f"{h.HOST}:{h.free_port()}"
        path = os.path.join(first.tmp, "second.yaml")
        with open(path, "w", encoding="utf-8") as f:
            f.write(h.to_yaml(cfg) + "\n")
        t0 = time.monotonic()
        p = subprocess.Popen([h.hookd_bin(), "serve", "--config", path], cwd=first.tmp,
                             env=first.env(), stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            out, _ = p.communicate(timeout=REFUSE_S * h.SCALE)
        except subprocess.TimeoutExpired:
            p.terminate()
            try:
                out, _ = p.communicate(timeout=10 * h.SCALE)
            except subprocess.TimeoutExpired:
                p.kill()
                out, _ = p.communicate()
            self.fail("a second hookd on the same data_dir was still running after "
                      f"{REFUSE_S * h.SCALE:.0f}s; its output:\n{out.decode(errors='replace')}")
        return p.returncode, out.decode(errors="replace"), time.monotonic() - t0

    def assert_refused(self, first):
        rc, out, took = self.second(first)
        sys.stderr.write(f"second daemon: exit {rc} after {took:.2f}s: {out.strip()}\n")
        self.assertGreater(rc, 0, f"exit {rc} (0 = ran, <0 = signal): {out}")
        self.assertIn(first.data_dir, out, "the message does not name the data directory")
        self.assertRegex(out, rf"\bpid {first.proc.pid}\b",
                         f"the message does not name the holder's pid {first.proc.pid}")
        self.assertEqual(h.SANITIZER_PATTERNS.findall(out), [], out)
        # The first one is untouched.
        st, _ = first.api("GET", "/healthz", auth=False)
        self.assertEqual(st, 200)

    def test_second_daemon_refused(self):
        recv = self.receiver()
        d = self.daemon()
        app = h.create_app(d)
        ep = h.create_endpoint(d, app, recv.url())
        self.assert_refused(d)
        # Delivery goes on, once.
        msg_id = h.publish(d, app, "a.b", {})["id"]
        h.wait_delivery_state(d, app, msg_id, ep["id"], "succeeded", attempts=1)
        time.sleep(0.3)
        self.assertEqual(recv.count(), 1, recv.get())

    def test_kill9_leaves_no_stale_lock(self):
        d = self.daemon()
        old_pid = d.proc.pid
        d.kill9()
        with open(os.path.join(d.data_dir, "hookd.lock"), encoding="utf-8") as f:
            self.assertIn(str(old_pid), f.read(), "the lock file does not hold the pid")
        d.start(timeout=REFUSE_S * 2)  # raises if the dead daemon's lock still counted
        self.assertNotEqual(d.proc.pid, old_pid)
        self.assert_refused(d)  # and the new one holds the lock in its turn

    def test_open_permissions_warned(self):
        d = self.daemon(start=False)
        os.makedirs(d.data_dir)
        os.chmod(d.data_dir, 0o755)
        d.start()
        log = d.log()
        self.assertRegex(log, re.compile(rf"warn.*{re.escape(d.data_dir)}.*0755", re.I),
                         "no warning about a data_dir readable by group/others")
        self.assertEqual(stat.S_IMODE(os.stat(d.data_dir).st_mode), 0o755,
                         "the operator's mode was changed (documented: warn only)")

    def test_private_dir_not_warned(self):
        d = self.daemon()  # hookd creates it: 0700
        self.assertEqual(stat.S_IMODE(os.stat(d.data_dir).st_mode), 0o700)
        self.assertNotRegex(d.log(), re.compile(rf"warn.*{re.escape(d.data_dir)}", re.I))


if __name__ == "__main__":
    h.main()

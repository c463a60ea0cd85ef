"""Configuration: a bad file stops the daemon with a message naming the key and line;
apps and endpoints declared in the file exist after start and deliver (config as code)."""

import os
import re
import subprocess
import sys
import tempfile
import shutil

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hookdtest as h  # noqa: E402


class BadConfigTest(h.HookdCase):

    def run_with(self, text):
        """Runs `hookd serve` on the YAML text; returns (exit code, stderr+stdout)."""
        tmp = tempfile.mkdtemp(prefix="hookd-cfg-")
        self.addCleanup(shutil.rmtree, tmp, True)
        path = os.path.join(tmp, "bad.yaml")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        env = dict(os.environ)
        env.pop("HOOKD_ADMIN_KEY", None)
        p = subprocess.Popen([h.hookd_bin(), "serve", "--config", path], cwd=tmp, env=env,
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        try:
            out, err = p.communicate(timeout=15 * h.SCALE)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
            self.fail(f"hookd started on a bad config (still running after 15 s):\n{text}\n"
                      f"stderr: {err.decode(errors='replace')}")
        return p.returncode, err.decode(errors="replace"), out.decode(errors="replace")

    def base(self, port):
        return (f'listen: "127.0.0.1:{port}"\n'       # line 1
                f'data_dir: "./data"\n'               # line 2
                f'api:\n'                             # line 3
                f'  admin_key: "k-{port}"\n')         # line 4

    def assertRefused(self, text, key, line):
        rc, err, out = self.run_with(text)
        self.assertNotEqual(rc, 0, f"exit 0 on a bad config; stderr: {err}")
        self.assertGreater(rc, 0, f"killed by signal {-rc} instead of exiting; stderr: {err}")
        self.assertIn(key, err, f"stderr does not name the key {key!r}: {err!r} (stdout {out!r})")
        self.assertRegex(err, rf"(:|line )\s*{line}\b",
                         f"stderr does not name line {line}: {err!r}")
        sys.stderr.write(f"refused as expected: {err.strip().splitlines()[-1] if err.strip() else ''}\n")

    def test_unknown_top_level_key(self):
        port = h.free_port()
        text = self.base(port) + "listn: \"127.0.0.1:1\"\n"     # line 5
        self.assertRefused(text, "listn", 5)

    def test_unknown_nested_key(self):
        port = h.free_port()
        text = self.base(port) + ("delivery:\n"                  # line 5
                                  "  timeout_ms: 1000\n"         # line 6
                                  "  retry_schedul: [1, 2]\n")   # line 7
        self.assertRefused(text, "retry_schedul", 7)

    def test_wrong_type_scalar(self):
        port = h.free_port()
        text = self.base(port) + ("limits:\n"                    # line 5
                                  "  max_payload_bytes: lots\n")  # line 6
        self.assertRefused(text, "max_payload_bytes", 6)

    def test_wrong_type_list(self):
        port = h.free_port()
        text = self.base(port) + ("security:\n"                  # line 5
                                  "  allow_destinations: \"127.0.0.0/8\"\n")  # line 6
        self.assertRefused(text, "allow_destinations", 6)

    def test_wrong_type_in_declared_endpoint(self):
        port = h.free_port()
        text = self.base(port) + ("apps:\n"                      # 5
                                  "  - id: app_a\n"              # 6
                                  "    endpoints:\n"             # 7
                                  "      - id: ep_a\n"           # 8
                                  "        url: \"http://127.0.0.1:9/x\"\n"   # 9
                                  "        retry_schedule: soon\n")         # 10
        self.assertRefused(text, "retry_schedule", 10)

    def test_unknown_key_in_declared_endpoint(self):
        port = h.free_port()
        text = self.base(port) + ("apps:\n"                      # 5
                                  "  - id: app_a\n"              # 6
                                  "    endpoints:\n"             # 7
                                  "      - id: ep_a\n"           # 8
                                  "        url: \"http://127.0.0.1:9/x\"\n"   # 9
                                  "        evnt_types: [a.b]\n")            # 10
        self.assertRefused(text, "evnt_types", 10)

    def test_invalid_yaml_syntax(self):
        port = h.free_port()
        text = self.base(port) + "limits: [\n  max_payload_bytes: 1\n"
        rc, err, _ = self.run_with(text)
        self.assertGreater(rc, 0, err)
        self.assertTrue(err.strip(), "no message on invalid YAML")

    def test_missing_config_file(self):
        missing = os.path.join(tempfile.gettempdir(), "hookd-no-such-config-%d.yaml" % os.getpid())
        p = subprocess.run([h.hookd_bin(), "serve", "--config", missing], capture_output=True,
                           timeout=15 * h.SCALE, stdin=subprocess.DEVNULL)
        self.assertGreater(p.returncode, 0)
        self.assertIn(missing, p.stderr.decode(errors="replace"))


class DeclaredAppsTest(h.HookdCase):

    def test_declared_apps_and_endpoints_exist_and_deliver(self):
        recv = self.receiver()
        secret = h.random_whsec()
        apps = [{
            "id": "app_cfg",
            "name": "Configured",
            "endpoints": [
                {"id": "ep_cfg", "url": recv.url("/cfg"), "event_types": ["order.*"],
                 "secret": secret, "retry_schedule": [1, 2],
                 "headers": {"X-From-Config": "yes"}},
                {"id": "ep_cfg_off", "url": recv.url("/cfg-off"), "disabled": True},
            ],
        }, {"id": "app_cfg2"}]
        d = self.daemon(apps=apps)

        st, app = d.api("GET", "/v1/apps/app_cfg")
        self.assertEqual(st, 200, app)
        self.assertEqual(app["name"], "Configured")
        st, app2 = d.api("GET", "/v1/apps/app_cfg2")
        self.assertEqual(st, 200, app2)
        self.assertEqual(app2["name"], "app_cfg2")   # name defaults to id

        ep = h.get_endpoint(d, "app_cfg", "ep_cfg")
        self.assertEqual(ep["url"], recv.url("/cfg"))
        self.assertEqual(ep["event_types"], ["order.*"])
        self.assertEqual(ep["secret"], secret)
        self.assertEqual(ep["retry_schedule"], [1, 2])
        self.assertEqual({k.lower(): v for k, v in ep["headers"].items()}, {"x-from-config": "yes"})
        self.assertFalse(ep["disabled"])
        self.assertTrue(h.get_endpoint(d, "app_cfg", "ep_cfg_off")["disabled"])

        mid = h.publish(d, "app_cfg", "order.created", {"o": 1})["id"]
        h.publish(d, "app_cfg", "invoice.paid", {"o": 2})
        req = recv.wait_for(1, path="/cfg")[0]
        self.assertEqual(req.webhook_id, mid)
        self.assertTrue(h.verify_v1(secret, req.headers, req.body))
        self.assertEqual(req.headers.get("x-from-config"), "yes")
        h.wait_delivery_state(d, "app_cfg", mid, "ep_cfg", "succeeded")

        # Restart on the same file: nothing duplicated, data kept.
        d.restart()
        st, lst = d.api("GET", "/v1/apps/app_cfg/endpoints")
        self.assertEqual(st, 200, lst)
        self.assertEqual(sorted(e["id"] for e in lst["data"]), ["ep_cfg", "ep_cfg_off"])
        self.assertEqual(h.get_message(d, "app_cfg", mid)["id"], mid)

        # Change the file: the endpoint is updated at start.
        cfg = d.config
        cfg["apps"][0]["endpoints"][0]["url"] = recv.url("/cfg-moved")
        cfg["apps"][0]["endpoints"][0]["event_types"] = []
        d.write_config(cfg)
        d.restart()
        ep = h.get_endpoint(d, "app_cfg", "ep_cfg")
        self.assertEqual(ep["url"], recv.url("/cfg-moved"))
        self.assertEqual(ep["secret"], secret)
        mid2 = h.publish(d, "app_cfg", "invoice.paid", {"o": 3})["id"]
        req = recv.wait_for(1, path="/cfg-moved")[0]
        self.assertEqual(req.webhook_id, mid2)
        self.assertTrue(h.verify_v1(secret, req.headers, req.body))
        self.assertEqual(recv.count(path="/cfg-off"), 0)

    def test_admin_key_from_env_wins(self):
        d = self.daemon(start=False)
        env_key = "env-key-" + h.secrets.token_hex(8)
        orig_env = d.env

        def env():
            e = orig_env()
            e["HOOKD_ADMIN_KEY"] = env_key
            return e

        d.env = env
        d.start()
        file_key = d.admin_key
        st, body = d.api("GET", "/v1/apps")
        self.assertEqual(st, 401, f"the file key {file_key} still works: {body}")
        d.admin_key = env_key
        st, body = d.api("GET", "/v1/apps")
        self.assertEqual(st, 200, body)


if __name__ == "__main__":
    h.main()

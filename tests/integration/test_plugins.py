"""The plugin host end to end: each loader refusal with its message (a fixture per refusal,
tests/plugins/), plugins.optional, a plugin built against the previous ABI minor, the
host's rules on time and completion with misbehaving transports, options and counters, the
destination guard on plugin URLs, and the shipped `file` plugin.

Fixtures are built into $HOOKD_BUILD_DIR/plugin-fixtures; each test links the ones it needs
into a plugins.dir of its own. Only loopback is ever contacted (10.0.0.1 appears only in a
URL that the destination guard refuses before anything is sent)."""

import json
import os
import re
import shutil
import sys
import tempfile
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hookdtest as h  # noqa: E402

BUILD = os.environ.get("HOOKD_BUILD_DIR") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "build")
SOURCE = os.environ.get("HOOKD_SOURCE_DIR") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..")
FIXTURES = os.path.join(BUILD, "plugin-fixtures")
SHIPPED = os.path.join(BUILD, "plugins")


def host_abi():
    with open(os.path.join(SOURCE, "include", "hookd", "plugin.h"), encoding="utf-8") as f:
        text = f.read()
    major = int(re.search(r"#define HOOKD_PLUGIN_ABI_MAJOR (\d+)", text).group(1))
    minor = int(re.search(r"#define HOOKD_PLUGIN_ABI_MINOR (\d+)", text).group(1))
    return major, minor


class PluginCase(h.HookdCase):

    def plugin_dir(self, *fixtures, shipped=()):
        """A fresh directory with the named fixtures (and shipped plugins) linked in."""
        d = tempfile.mkdtemp(prefix="hookd-plugins-")
        self.addCleanup(shutil.rmtree, d, True)
        for name in fixtures:
            os.symlink(os.path.join(FIXTURES, name + ".so"), os.path.join(d, name + ".so"))
        for name in shipped:
            os.symlink(os.path.join(SHIPPED, name + ".so"), os.path.join(d, name + ".so"))
        return d

    def serve(self, plugins):
        """Runs `hookd serve` on a config with this plugins section; (exit code, output)."""
        cfg = {"listen": f"{h.HOST}:{h.free_port()}", "data_dir": "./data",
               "api": {"admin_key": "k" * 20}, "plugins": plugins}
        return h.serve_config(self, h.to_yaml(cfg) + "\n")

    def refused(self, plugins, pattern):
        rc, out = self.serve(plugins)
        sys.stderr.write(f"refusal: {out.strip().splitlines()[-1] if out.strip() else out!r}\n")
        self.assertNotEqual(rc, 0, out)
        self.assertRegex(out, pattern)
        return out


class RefusalTest(PluginCase):

    def test_not_a_shared_object(self):
        d = self.plugin_dir()
        with open(os.path.join(d, "x.so"), "w") as f:
            f.write("this is text, not ELF\n")
        self.refused({"dir": d}, r"plugin \S*/x\.so refused: not a shared object \(.+\)")

    def test_missing_symbol(self):
        d = self.plugin_dir("nosym")
        self.refused({"dir": d}, r"nosym\.so refused: missing symbol hookd_plugin")

    def test_abi_major(self):
        major, minor = host_abi()
        d = self.plugin_dir("abi2")
        self.refused({"dir": d}, rf"abi2\.so refused: wrong ABI major: built for plugin ABI "
                                 rf"2\.0, this hookd has ABI {major}\.{minor}")

    def test_abi_minor_newer(self):
        major, minor = host_abi()
        d = self.plugin_dir("minornew")
        self.refused({"dir": d}, rf"minornew\.so refused: wrong ABI minor: built for plugin "
                                 rf"ABI {major}\.{minor + 1}, newer than this hookd's ABI "
                                 rf"{major}\.{minor}")

    def test_init_failed(self):
        d = self.plugin_dir("initfail")
        self.refused({"dir": d}, r"initfail\.so refused: init failed: the fixture refuses to "
                                 r"start: no broker configured")

    def test_scheme_claimed_twice(self):
        d = self.plugin_dir("dupa", "dupb")
        self.refused({"dir": d}, r"dupb\.so refused: transport scheme 'dup' is already "
                                 r"registered by plugin dupa \(\S*dupa\.so\)")

    def test_auth_name_claimed_twice(self):
        d = self.plugin_dir("autha", "authb")
        self.refused({"dir": d}, r"authb\.so refused: auth scheme 'same' is already "
                                 r"registered by plugin autha \(\S*autha\.so\)")

    def test_unknown_auth_scheme_lists_the_registered_ones(self):
        # A third party's scheme is listed like a shipped one: the message walks what the
        # plugins registered (autha registers "same"), not a list of the shipped names.
        d = self.plugin_dir("autha", shipped=("bearer",))
        dmn = self.daemon(extra={"plugins": {"dir": d}})
        app = h.create_app(dmn)
        st, body = dmn.api("POST", f"/v1/apps/{app['id']}/endpoints",
                           {"url": "http://127.0.0.1:9/x", "auth": {"scheme": "kerberos"}})
        self.assertEqual(st, 400, body)
        e = h.error_of(body)
        self.assertEqual(e["field"], "auth.scheme", body)
        self.assertIn("unknown auth scheme 'kerberos'", e["message"])
        self.assertRegex(e["message"], r"\(loaded: (same, bearer|bearer, same)\)", body)

    def test_malformed_scheme(self):
        d = self.plugin_dir("badscheme")
        self.refused({"dir": d}, r"badscheme\.so refused: transport scheme 'Bad_Scheme' is "
                                 r"not \[a-z\]\[a-z0-9\+\.-\]\*")

    def test_missing_explicit_dir(self):
        d = os.path.join(self.plugin_dir(), "nope")
        self.refused({"dir": d}, r"plugins\.dir: cannot open \S*nope: No such file")

    def test_config_errors(self):
        rc, out = self.serve({"optional": ["Not A Name"]})
        self.assertNotEqual(rc, 0, out)
        self.assertRegex(out, r"plugins\.optional\[0\]: expected a plugin name")
        rc, out = self.serve({"options": {"testtr": ["a", "b"]}})
        self.assertNotEqual(rc, 0, out)
        self.assertRegex(out, r"plugins\.options\.testtr: expected a mapping of option names")
        rc, out = self.serve({"options": {"testtr": {"greeting": {"nested": 1}}}})
        self.assertNotEqual(rc, 0, out)
        self.assertRegex(out, r"plugins\.options\.testtr\.greeting: expected a string, number "
                              r"or boolean")
        rc, out = self.serve({"dirr": "/x"})
        self.assertNotEqual(rc, 0, out)
        self.assertRegex(out, r"unknown key 'dirr' under 'plugins' \(did you mean 'dir'\?\)")

    def test_optional_turns_refusal_into_warning(self):
        d = self.plugin_dir("initfail", "testtr")
        with open(os.path.join(d, "x.so"), "w") as f:
            f.write("text\n")
        # Without optional the first refusal (initfail, by name order) stops the start.
        self.refused({"dir": d}, r"initfail\.so refused: init failed")
        # initfail by its name, x.so by its file's stem (it has no readable name).
        dmn = self.daemon(extra={"plugins": {"dir": d, "optional": ["initfail", "x"]}})
        log = dmn.log()
        self.assertRegex(log, r"warn plugin \S*initfail\.so refused: init failed: the fixture "
                              r"refuses to start.*plugins\.optional")
        self.assertRegex(log, r"warn plugin \S*x\.so refused: not a shared object")
        self.assertRegex(log, r"plugin testtr 0\.1 loaded from \S*testtr\.so: transport "
                              r"testtr, testnet")


class TransportTest(PluginCase):

    TIMEOUT_MS = 600

    def setUp(self):
        super().setUp()
        self.dir = self.plugin_dir("testtr", "old10")

    def start(self, **kw):
        extra = kw.pop("extra", {})
        plugins = {"dir": self.dir}
        plugins.update(kw.pop("plugins", {}))
        extra["plugins"] = plugins
        self.d = self.daemon(delivery={"timeout_ms": self.TIMEOUT_MS}, extra=extra, **kw)
        self.app = h.create_app(self.d)
        return self.d

    def deliver(self, url, state, attempts, schedule=(1, 1, 1), timeout=20):
        ep = h.create_endpoint(self.d, self.app, url, retry_schedule=list(schedule))
        msg = h.publish(self.d, self.app, "a.b", {"n": 1})
        h.wait_delivery_state(self.d, self.app, msg["id"], ep["id"], state, attempts=attempts,
                              timeout=timeout)
        return ep, msg["id"], h.get_attempts(self.d, self.app, msg["id"])

    def wait_log(self, pattern, message):
        return h.wait_until(lambda: re.search(pattern, self.d.log()), message=message)

    def test_completes(self):
        self.start()
        _, msg_id, at = self.deliver("testtr:///ok", "succeeded", 1)
        self.assertEqual(len(at), 1, at)
        self.assertIsNone(at[0]["error"], at)
        self.assertRegex(self.d.log(), r"plugin testtr: send dlv_\S+ attempt 1 token \d+ \(/ok\) "
                                       r"type a\.b")

    def test_never_completes_times_out_then_retried(self):
        self.start()
        ep, msg_id, at = self.deliver("testtr:///never-once", "succeeded", 2)
        self.assertEqual(at[0]["error"], f"plugin testtr: timed out after {self.TIMEOUT_MS} ms", at)
        self.assertIsNone(at[1]["error"], at)
        log = self.d.log()
        # The retry hands on the event type too (read once per body, core/delivery.c).
        self.assertRegex(log, r"plugin testtr: send dlv_\S+ attempt 2 token \d+ "
                              r"\(/never-once\) type a\.b")
        self.assertRegex(log, rf"plugin testtr: delivery {at[0]['delivery_id']} attempt 1 "
                              rf"\(token \d+\) timed out after {self.TIMEOUT_MS} ms: cancelled")
        self.assertRegex(log, r"plugin testtr: cancel token \d+")

    def test_never_completes_ends_dead(self):
        self.start()
        _, _, at = self.deliver("testtr:///never", "dead", 2, schedule=(1,))
        self.assertTrue(all("timed out" in a["error"] for a in at), at)

    def test_shutdown_cancels_before_cleanup(self):
        self.start()
        ep = h.create_endpoint(self.d, self.app, "testtr:///never", retry_schedule=[60])
        h.publish(self.d, self.app, "a.b", {})
        m = self.wait_log(r"plugin testtr: send dlv_\S+ attempt 1 token (\d+) \(/never\)",
                          "the send to start")
        self.assertEqual(self.d.stop(), 0)
        log = self.d.log()
        cancel = log.find(f"plugin testtr: cancel token {m.group(1)}")
        cleanup = log.find("plugin testtr: cleanup")
        self.assertGreater(cancel, 0, log[-2000:])
        self.assertGreater(cleanup, cancel, log[-2000:])

    def test_completes_twice(self):
        self.start()
        _, msg_id, at = self.deliver("testtr:///twice", "succeeded", 1)
        self.wait_log(rf"plugin testtr: complete\(\) for delivery {at[0]['delivery_id']} attempt 1 "
                      r"ignored: the attempt was already completed",
                      "the second completion to be logged")
        time.sleep(0.3)
        self.assertEqual(len(h.get_attempts(self.d, self.app, msg_id)), 1)

    def test_completes_after_timeout(self):
        self.start()
        _, msg_id, at = self.deliver("testtr:///late-once", "succeeded", 2)
        self.assertIn("timed out", at[0]["error"])
        self.wait_log(rf"plugin testtr: complete\(\) for delivery {at[0]['delivery_id']} attempt 1 "
                      r"ignored: it came after the host timed the attempt out",
                      "the late completion to be logged")
        self.assertEqual(len(h.get_attempts(self.d, self.app, msg_id)), 2)

    def test_completes_from_another_thread(self):
        self.start()
        self.deliver("testtr:///thread", "succeeded", 1)
        self.assertIn("from a thread of my own", self.d.log())

    def test_send_returns_nonzero(self):
        self.start()
        _, _, at = self.deliver("testtr:///nonzero-once", "succeeded", 2)
        self.assertEqual(at[0]["error"],
                         "plugin testtr: send() could not start the attempt (returned 1)", at)

    def test_permanent_failure_goes_dead_at_once(self):
        self.start()
        _, _, at = self.deliver("testtr:///fail", "dead", 1, schedule=(1, 1, 1, 1))
        self.assertEqual(len(at), 1, at)
        self.assertEqual(at[0]["error"], "fixture: permanent failure", at)

    def test_retry_after_is_honoured(self):
        self.start()
        _, _, at = self.deliver("testtr:///retry-after", "succeeded", 2, schedule=(1, 1))
        self.assertEqual(at[0]["error"], "fixture: come back in 2500 ms", at)
        gap = h.parse_time(at[1]["at"]) - h.parse_time(at[0]["at"])
        # The schedule says 1 s; the plugin asked for at least 2.5 s (a lower bound only).
        self.assertGreaterEqual(gap, 2.5, at)

    def test_options_and_counters(self):
        self.start(plugins={"options": {"testtr": {"greeting": "hi there", "n": 5},
                                        "testrt": {"greeting": "typo"}}})
        self.assertIn("plugin testtr: greeting option: hi there", self.d.log())
        self.assertIn("warn plugins.options.testrt: no plugin called 'testrt' is loaded",
                      self.d.log())
        self.assertNotIn("plugins.options.testtr:", self.d.log())
        self.assertEqual(h.metric(self.d, "hookd_plugin_testtr_sent_total"), 0)
        self.deliver("testtr:///ok", "succeeded", 1)
        self.deliver("testtr:///thread", "succeeded", 1)
        # The second message went to both endpoints: /ok twice, /thread once.
        self.assertEqual(h.metric(self.d, "hookd_plugin_testtr_sent_total"), 3)
        st, text = self.d.api("GET", "/metrics")
        self.assertIn("# TYPE hookd_plugin_testtr_sent_total counter", text)
        self.assertIn("# HELP hookd_plugin_testtr_sent_total Attempts the fixture completed", text)
        self.assertIn("# TYPE hookd_plugin_alloc_bytes gauge", text)
        # The thread's host->alloc'd block is freed right after it completes.
        h.wait_until(lambda: h.metric(self.d, 'hookd_plugin_alloc_bytes{plugin="testtr"}') == 0,
                     message="testtr's allocations to be freed")
        self.assertEqual(h.metric(self.d, 'hookd_plugin_alloc_bytes{plugin="old10"}'), 0)

    def test_previous_minor_loads_and_delivers(self):
        self.start()
        self.assertRegex(self.d.log(), r"plugin old10 1\.0\.0 loaded from \S*old10\.so: transport old10")
        self.assertRegex(self.d.log(), r"plugin old10: built for ABI 1\.0, host has \d+\.\d+")
        _, msg_id, _ = self.deliver("old10:///anything", "succeeded", 1)
        self.assertIn(f"old10 delivered {msg_id} attempt 1", self.d.log())

    def test_endpoint_urls(self):
        self.start()
        st, b = self.d.api("POST", f"/v1/apps/{self.app['id']}/endpoints",
                           {"url": "testtr:///refuse-me"})
        self.assertEqual(st, 400, b)
        self.assertRegex(h.error_of(b)["message"], r"the fixture refuses this path.*plugin testtr")
        st, b = self.d.api("POST", f"/v1/apps/{self.app['id']}/endpoints", {"url": "nope://x/y"})
        self.assertEqual(st, 400, b)
        self.assertRegex(h.error_of(b)["message"],
                         r"no loaded plugin serves the scheme 'nope'; plugin schemes loaded: "
                         r".*testtr, testnet")
        st, b = self.d.api("POST", f"/v1/apps/{self.app['id']}/endpoints",
                           {"url": "testnet:///no-host"})
        self.assertEqual(st, 400, b)
        self.assertRegex(h.error_of(b)["message"], r"no host")
        st, b = self.d.api("POST", f"/v1/apps/{self.app['id']}/endpoints",
                           {"url": "testnet://127.0.0.1:0/x"})
        self.assertEqual(st, 400, b)
        self.assertRegex(h.error_of(b)["message"], r"port must be 1\.\.65535")
        st, b = self.d.api("POST", f"/v1/apps/{self.app['id']}/endpoints",
                           {"url": "testtr://host/x"})
        self.assertEqual(st, 400, b)
        self.assertRegex(h.error_of(b)["message"], r"takes no host")
        h.create_endpoint(self.d, self.app, "TESTTR:///ok")  # schemes in any case

    def test_declared_endpoint_with_plugin_scheme(self):
        self.start(apps=[{"id": "decl", "endpoints": [{"id": "ep_decl", "url": "testtr:///ok"}]}])
        msg = h.publish(self.d, "decl", "a.b", {})
        h.wait_delivery_state(self.d, "decl", msg["id"], "ep_decl", "succeeded", attempts=1)
        rc, out = self.serve({"dir": self.dir})  # sanity: loads alone
        cfg = {"listen": f"{h.HOST}:{h.free_port()}", "data_dir": "./data",
               "api": {"admin_key": "k" * 20}, "plugins": {"dir": self.dir},
               "apps": [{"id": "x", "endpoints": [{"id": "e", "url": "nats://127.0.0.1:4222/s"}]}]}
        rc, out = h.serve_config(self, h.to_yaml(cfg) + "\n")
        self.assertNotEqual(rc, 0, out)
        self.assertRegex(out, r"apps\[0\]\.endpoints\[0\]\.url: .*no loaded plugin serves the "
                              r"scheme 'nats'; plugin schemes loaded: .*testtr, testnet")


class GuardTest(PluginCase):

    def setUp(self):
        super().setUp()
        self.dir = self.plugin_dir("testtr")

    def start(self, allow):
        self.d = self.daemon(allow_destinations=allow, extra={"plugins": {"dir": self.dir}})
        self.app = h.create_app(self.d)

    def attempt(self, url, state, attempts=1):
        ep = h.create_endpoint(self.d, self.app, url, retry_schedule=[1])
        msg = h.publish(self.d, self.app, "a.b", {})
        h.wait_delivery_state(self.d, self.app, msg["id"], ep["id"], state, attempts=attempts,
                              timeout=20)
        return h.get_attempts(self.d, self.app, msg["id"])

    def test_private_literal_blocked(self):
        self.start(["127.0.0.0/8"])
        at = self.attempt("testnet://10.0.0.1:4222/subject", "dead", attempts=2)
        self.assertIsNone(at[0]["status"], at)
        self.assertEqual(at[0]["error"], "destination blocked: 10.0.0.1 is a private address "
                                         "(not in security.allow_destinations)", at)
        self.assertNotIn("testnet send", self.d.log())

    def test_loopback_only_when_allowed(self):
        self.start([])
        at = self.attempt("testnet://127.0.0.1:4222/s", "dead", attempts=2)
        self.assertRegex(at[0]["error"], r"destination blocked: 127\.0\.0\.1 is a loopback")
        self.assertNotIn("testnet send", self.d.log())
        self.d.stop()
        self.start(["127.0.0.0/8", "::1/128"])
        self.attempt("testnet://127.0.0.1:4222/s", "succeeded")
        self.assertRegex(self.d.log(), r"testnet send to host 127\.0\.0\.1 address 127\.0\.0\.1 "
                                       r"port 4222 path /s")

    def test_name_resolved_then_guarded(self):
        self.start([])
        at = self.attempt("testnet://localhost:4222/s", "dead", attempts=2)
        self.assertRegex(at[0]["error"], r"destination blocked: (127\.0\.0\.1|::1) is a loopback")
        self.d.stop()
        self.start(["127.0.0.0/8", "::1/128"])
        self.attempt("testnet://localhost:4222/s", "succeeded")
        self.assertRegex(self.d.log(), r"testnet send to host localhost address (127\.0\.0\.1|::1)")


class FilePluginTest(PluginCase):
    """The shipped file plugin, loaded from the build tree's plugins directory (the default:
    no plugins.dir)."""

    def setUp(self):
        super().setUp()
        self.out = tempfile.mkdtemp(prefix="hookd-file-")
        self.addCleanup(shutil.rmtree, self.out, True)

    def lines(self, path):
        try:
            with open(path, "rb") as f:
                return [ln for ln in f.read().split(b"\n") if ln]
        except FileNotFoundError:
            return []

    def check_line(self, raw, secret, msg_id, data):
        line = json.loads(raw)
        n = line["body_length"]
        self.assertTrue(raw.startswith(b'{"body":'), raw[:40])
        body = raw[8:8 + n]
        self.assertEqual(json.loads(body), line["body"])
        self.assertEqual(line["body"]["data"], data)
        self.assertEqual(line["webhook-id"], msg_id)
        hdrs = {k: line[k] for k in ("webhook-id", "webhook-timestamp", "webhook-signature")}
        self.assertTrue(h.verify_v1(secret, hdrs, body), line)
        self.assertFalse(h.verify_v1(h.random_whsec(), hdrs, body))
        self.assertFalse(h.verify_v1(secret, hdrs, body + b" "))
        self.assertEqual(line["headers"].get("Content-Type"), "application/json", line)
        return line

    def test_delivers_signed_lines(self):
        d = self.daemon()
        self.assertRegex(d.log(), r"plugin file 1\.0 loaded from \S*/plugins/file\.so: "
                                  r"transport file")
        app = h.create_app(d)
        path = os.path.join(self.out, "events.jsonl")
        ep = h.create_endpoint(d, app, "file://" + path, headers={"X-Team": "a b"})
        ids = [h.publish(d, app, "order.paid", {"i": i, "s": "é\"\n"})["id"] for i in range(20)]
        for i, mid in enumerate(ids):
            h.wait_delivery_state(d, app, mid, ep["id"], "succeeded", attempts=1)
        raws = self.lines(path)
        self.assertEqual(len(raws), 20, raws)
        for i, raw in enumerate(sorted(raws, key=lambda r: json.loads(r)["body"]["data"]["i"])):
            line = self.check_line(raw, ep["secret"], ids[i], {"i": i, "s": "é\"\n"})
            self.assertEqual(line["headers"]["X-Team"], "a b")
            self.assertEqual(line["endpoint_id"], ep["id"])
            self.assertEqual(line["attempt"], 1)
        self.assertEqual(h.metric(d, "hookd_plugin_file_lines_total"), 20)
        syncs = h.metric(d, "hookd_plugin_file_syncs_total")
        self.assertTrue(1 <= syncs <= 20, syncs)

    def test_missing_directory_retried_until_it_exists(self):
        d = self.daemon()
        app = h.create_app(d)
        target = os.path.join(self.out, "later")
        path = os.path.join(target, "events.jsonl")
        ep = h.create_endpoint(d, app, "file://" + path, retry_schedule=[1, 1, 1, 1, 1, 1])
        msg_id = h.publish(d, app, "a.b", {"k": 1})["id"]
        h.wait_until(lambda: h.get_attempts(d, app, msg_id), message="a first attempt")
        at = h.get_attempts(d, app, msg_id)
        self.assertEqual(at[0]["error"], f"cannot append to {path}: No such file or directory", at)
        os.mkdir(target)
        h.wait_delivery_state(d, app, msg_id, ep["id"], "succeeded", timeout=20)
        raws = self.lines(path)
        self.assertEqual(len(raws), 1, raws)
        self.check_line(raws[0], ep["secret"], msg_id, {"k": 1})

    def test_file_urls(self):
        d = self.daemon()
        app = h.create_app(d)
        for url, why in (("file://relative/x", r"takes no host"),
                         ("file:///", r"ABSOLUTE/PATH"),
                         ("file:///tmp/dir/", r"ABSOLUTE/PATH"),
                         ("file:///tmp/a?x=1", r"no query"),
                         ("file:///tmp/a%00b", r"%00")):
            st, b = d.api("POST", f"/v1/apps/{app['id']}/endpoints", {"url": url})
            self.assertEqual(st, 400, (url, b))
            self.assertRegex(h.error_of(b)["message"], why)


class ExampleTest(PluginCase):
    """examples/plugins/hello.c, built the way docs/plugins.md says: the header installed
    (its own install component), then one cc line against that include directory alone."""

    def test_example_builds_against_installed_header_and_delivers(self):
        prefix = tempfile.mkdtemp(prefix="hookd-prefix-")
        self.addCleanup(shutil.rmtree, prefix, True)
        r = h.subprocess.run(["cmake", "--install", BUILD, "--component", "hookd_plugin_dev",
                              "--prefix", prefix], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        installed = sorted(os.path.relpath(os.path.join(dp, f), prefix)
                           for dp, _, fs in os.walk(prefix) for f in fs)
        self.assertEqual(installed, [os.path.join("include", "hookd", "plugin.h")])
        pdir = self.plugin_dir()
        cmd = [os.environ.get("CC") or "cc", "-std=c17", "-shared", "-fPIC",
               "-I" + os.path.join(prefix, "include"), "-o", os.path.join(pdir, "hello.so"),
               os.path.join(SOURCE, "examples", "plugins", "hello.c")]
        r = h.subprocess.run(cmd, capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, " ".join(cmd) + "\n" + r.stdout + r.stderr)
        d = self.daemon(extra={"plugins": {"dir": pdir}})
        self.assertRegex(d.log(), r"plugin hello 1\.0 loaded from \S*hello\.so: transport hello")
        app = h.create_app(d)
        ep = h.create_endpoint(d, app, "hello:///world")
        msg_id = h.publish(d, app, "greeting.sent", {"to": "world"})["id"]
        h.wait_delivery_state(d, app, msg_id, ep["id"], "succeeded", attempts=1)
        self.assertRegex(d.log(), rf"plugin hello: hello world: message {msg_id} "
                                  rf"\(greeting\.sent\), attempt 1, \d+ bytes")


if __name__ == "__main__":
    h.unittest.main(verbosity=2)

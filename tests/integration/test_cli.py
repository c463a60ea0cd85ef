"""The command line as a new user meets it.

- `--help`/`-h` on every verb (and `hookd --help`, `hookd help [VERB]`) prints that verb's
  usage on stdout, nothing on stderr, exit 0.
- An unknown verb, unknown option, missing option value or stray argument is named on
  stderr with a one-line hint to --help, exit 2, nothing on stdout.
- `hookd keygen` prints the key alone on stdout (S=$(hookd keygen)), and that key works.
- A listen failure says why in words and leaves the data directory untouched.
- `hookd serve` without --config says in its first log lines where it listens, where its
  data is (absolute path) and that it generated the admin key, printed once.
- POST /v1/apps with only an id: the name defaults to the id, as in the config file.
"""

import base64
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hookdtest as h  # noqa: E402

# Every verb and sub-verb, as typed after `hookd`.
VERBS = [["serve"], ["verify"], ["keygen"], ["policy"], ["policy", "test"], ["version"],
         ["help"]]

# The embedded default listen address (config.h): the only one `hookd serve` without a
# config can use, since no flag or variable sets it.
DEFAULT_PORT = 8080


def clean_env():
    e = dict(os.environ)
    e.pop("HOOKD_ADMIN_KEY", None)
    e.pop("HOOKD_LOG", None)
    return e


def run(argv, stdin=b"", cwd=None, timeout=20, prefix=()):
    """Runs hookd ARGV; returns (exit code, stdout, stderr) as text. stdin is written and
    closed; a command that is still running after timeout*SCALE seconds is a failure."""
    p = subprocess.Popen(list(prefix) + [h.hookd_bin()] + list(argv), cwd=cwd, env=clean_env(),
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = p.communicate(stdin, timeout=timeout * h.SCALE)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        raise AssertionError(f"hookd {' '.join(argv)} still running after {timeout * h.SCALE:.0f}s;"
                             f" stderr: {err.decode(errors='replace')!r}")
    return p.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def tmpdir(case):
    d = tempfile.mkdtemp(prefix="hookd-cli-")
    case.addCleanup(shutil.rmtree, d, True)
    return d


class HelpTest(unittest.TestCase):

    def assertHelp(self, argv, usage_of):
        """argv prints the usage of `hookd USAGE_OF` on stdout, nothing on stderr, exit 0."""
        rc, out, err = run(argv)
        what = f"hookd {' '.join(argv)}"
        self.assertEqual(err, "", f"{what}: stderr not empty")
        self.assertEqual(rc, 0, f"{what}: exit {rc}; stdout {out!r}")
        first = out.splitlines()[0] if out else ""
        self.assertTrue(first.startswith("usage: hookd " + usage_of),
                        f"{what}: stdout does not start with 'usage: hookd {usage_of}': {out!r}")
        return out

    def test_top_level_help_lists_every_verb(self):
        for argv in (["--help"], ["-h"], ["help"]):
            rc, out, err = run(argv)
            self.assertEqual((rc, err), (0, ""), f"hookd {argv}: {out!r}")
            self.assertTrue(out.startswith("usage:"), out)
            for verb in VERBS:
                self.assertIn("hookd " + " ".join(verb), out, f"hookd {argv} omits {verb}")

    def test_help_on_every_verb(self):
        for verb in VERBS:
            for flag in ("--help", "-h"):
                out = self.assertHelp(verb + [flag], " ".join(verb))
                self.assertIn(flag if flag == "--help" else "--help", out,
                              f"{verb} usage does not mention --help")

    def test_help_verb_is_verb_help(self):
        for verb in VERBS:
            if verb == ["help"]:
                continue
            out = self.assertHelp(["help"] + verb, " ".join(verb))
            self.assertEqual(out, run(verb + ["--help"])[1])

    def test_verb_usage_names_its_options(self):
        self.assertIn("--config", self.assertHelp(["serve", "--help"], "serve"))
        out = self.assertHelp(["verify", "--help"], "verify")
        for opt in ("--secret", "--id", "--timestamp", "--signature", "--tolerance"):
            self.assertIn(opt, out)
        self.assertIn("--type", self.assertHelp(["keygen", "--help"], "keygen"))
        self.assertIn("--params", self.assertHelp(["policy", "test", "--help"], "policy test"))
        self.assertIn("test", self.assertHelp(["policy", "--help"], "policy"))

    def test_help_wins_over_other_arguments_and_touches_nothing(self):
        """--help after other options still prints help: serve does not start, verify and
        policy test do not wait for stdin, and no data directory appears."""
        cwd = tmpdir(self)
        for argv, usage_of in ((["serve", "--config", "none.yaml", "--help"], "serve"),
                               (["verify", "--secret", "whsec_x", "-h"], "verify"),
                               (["policy", "test", "none.lua", "--help"], "policy test")):
            p = subprocess.Popen([h.hookd_bin()] + argv, cwd=cwd, env=clean_env(),
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
            try:
                rc = p.wait(timeout=10 * h.SCALE)  # stdin stays open: help must not read it
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                self.fail(f"hookd {' '.join(argv)} still running: it did not just print help")
            out, err = p.stdout.read().decode(), p.stderr.read().decode()
            p.stdin.close()
            p.stdout.close()
            p.stderr.close()
            self.assertEqual((rc, err), (0, ""), f"hookd {' '.join(argv)}: {out!r}")
            self.assertTrue(out.startswith("usage: hookd " + usage_of), out)
        self.assertEqual(os.listdir(cwd), [], "help created files")

    def test_version(self):
        rc, out, err = run(["version"])
        self.assertEqual((rc, err), (0, ""))
        self.assertRegex(out, r"^hookd \S+\n$")


class UsageErrorTest(unittest.TestCase):

    def assertUsageError(self, argv, *words):
        """Exit 2, nothing on stdout, stderr = 'hookd: ...WORDS...' then one hint line."""
        rc, out, err = run(argv)
        what = f"hookd {' '.join(argv)}"
        self.assertEqual(rc, 2, f"{what}: exit {rc}; stderr {err!r}")
        self.assertEqual(out, "", f"{what}: stdout not empty")
        lines = err.splitlines()
        self.assertEqual(len(lines), 2, f"{what}: stderr is not a message and a hint: {err!r}")
        self.assertTrue(lines[0].startswith("hookd: "), f"{what}: {err!r}")
        for w in words:
            self.assertIn(w, lines[0], f"{what}: the message does not name {w!r}: {err!r}")
        self.assertIn("--help", lines[1], f"{what}: no hint to --help: {err!r}")
        sys.stderr.write(f"  {what}: {lines[0]}\n")

    def test_unknown_command(self):
        self.assertUsageError(["srve"], "unknown command 'srve'")
        self.assertUsageError(["help", "srve"], "unknown command 'srve'")
        self.assertUsageError(["--cofig"], "unknown option '--cofig'")

    def test_no_command(self):
        rc, out, err = run([])
        self.assertEqual((rc, out), (2, ""))
        self.assertIn("usage:", err)

    def test_serve(self):
        self.assertUsageError(["serve", "--cofig", "x.yaml"], "serve: unknown option '--cofig'")
        self.assertUsageError(["serve", "--config"], "serve: option '--config' needs a value")
        self.assertUsageError(["serve", "x.yaml"], "serve: unexpected argument 'x.yaml'")

    def test_verify(self):
        self.assertUsageError(["verify", "--secret"], "verify: option '--secret' needs a value")
        self.assertUsageError(["verify", "--sekret", "x"], "verify: unknown option '--sekret'")
        self.assertUsageError(["verify", "--secret", "whsec_x", "--id", "m", "--timestamp", "1"],
                              "verify: missing", "--signature")
        self.assertUsageError(["verify", "--secret", "whsec_x", "--id", "m", "--timestamp", "1",
                               "--signature", "v1,x", "--tolerance", "soon"],
                              "verify:", "--tolerance", "'soon'")

    def test_keygen(self):
        self.assertUsageError(["keygen", "--type"], "keygen: option '--type' needs a value")
        self.assertUsageError(["keygen", "--tpye", "hmac"], "keygen: unknown option '--tpye'")
        self.assertUsageError(["keygen", "--type", "rsa"], "keygen:", "'rsa'")
        self.assertUsageError(["keygen", "extra"], "keygen: unexpected argument 'extra'")

    def test_policy(self):
        self.assertUsageError(["policy"], "policy: missing command")
        self.assertUsageError(["policy", "tset"], "policy: unknown command 'tset'")
        self.assertUsageError(["policy", "test"], "policy test: missing", "FILE")
        self.assertUsageError(["policy", "test", "p.lua", "--params"],
                              "policy test: option '--params' needs a value")
        self.assertUsageError(["policy", "test", "--parms", "{}", "p.lua"],
                              "policy test: unknown option '--parms'")
        self.assertUsageError(["policy", "test", "a.lua", "b.lua"],
                              "policy test: unexpected argument 'b.lua'")

    def test_version(self):
        self.assertUsageError(["version", "--verbose"], "version: unknown option '--verbose'")


class KeygenTest(h.HookdCase):

    def keygen(self, *args):
        rc, out, err = run(["keygen"] + list(args))
        self.assertEqual(rc, 0, err)
        self.assertEqual(len(out.splitlines()), 1, f"stdout is not one line: {out!r}")
        self.assertTrue(out.endswith("\n") and "\n" not in out[:-1], repr(out))
        return out[:-1], err

    def assertKey(self, key, prefix, nbytes):
        m = re.fullmatch(re.escape(prefix) + r"([A-Za-z0-9+/]+={0,2})", key)
        self.assertIsNotNone(m, f"not {prefix}<base64>: {key!r}")
        self.assertEqual(len(base64.b64decode(m.group(1), validate=True)), nbytes, key)

    def test_hmac_key_is_alone_on_stdout(self):
        key, _ = self.keygen()
        self.assertKey(key, "whsec_", 32)
        key2, _ = self.keygen("--type", "hmac")
        self.assertKey(key2, "whsec_", 32)
        self.assertNotEqual(key, key2)

    def test_ed25519_key_on_stdout_public_key_on_stderr(self):
        key, err = self.keygen("--type", "ed25519")
        self.assertKey(key, "whsk_", 64)
        m = re.search(r"whpk_[A-Za-z0-9+/=]+", err)
        self.assertIsNotNone(m, f"no public key on stderr: {err!r}")
        self.assertKey(m.group(0), "whpk_", 32)
        # the public key is the second half of the secret (libsodium's layout)
        self.assertEqual(base64.b64decode(key[5:])[32:], base64.b64decode(m.group(0)[5:]))

    def test_key_works_as_endpoint_secret(self):
        key, _ = self.keygen()
        d = self.daemon()
        recv = self.receiver()
        h.create_app(d, "app_kg")
        ep = h.create_endpoint(d, "app_kg", recv.url(), id="ep_kg", secret=key)
        self.assertEqual(ep["secret"], key)
        mid = h.publish(d, "app_kg", "invoice.paid", {"n": 1})["id"]
        req = recv.wait_for(1)[0]
        self.assertEqual(req.webhook_id, mid)
        self.assertTrue(h.verify_v1(key, req.headers, req.body))
        rc, out, err = run(["verify", "--secret", key, "--id", req.webhook_id,
                            "--timestamp", req.headers["webhook-timestamp"],
                            "--signature", req.headers["webhook-signature"]], stdin=req.body)
        self.assertEqual((rc, out), (0, "valid\n"), err)


class ListenFailureTest(unittest.TestCase):
    """The API listener is bound before the store is opened: a daemon that cannot listen
    says why and leaves the data directory as it was (not created, or still empty)."""

    def serve(self, listen, data_dir, prefix=(), cwd=None):
        cfg_dir = cwd or tmpdir(self)
        cfg = os.path.join(cfg_dir, "hookd.yaml")
        with open(cfg, "w", encoding="utf-8") as f:
            f.write(f'listen: "{listen}"\ndata_dir: "{data_dir}"\napi:\n  admin_key: "k"\n')
        os.chmod(cfg, 0o644)
        rc, out, err = run(["serve", "--config", cfg], prefix=prefix, cwd=cfg_dir)
        self.assertNotEqual(rc, 0, f"hookd served on {listen}; stderr {err!r}")
        self.assertGreater(rc, 0, f"killed by signal {-rc}; stderr {err!r}")
        sys.stderr.write(f"  {listen}: {err.strip().splitlines()[-1] if err.strip() else ''}\n")
        return err

    def assertUntouched(self, tmp):
        missing = os.path.join(tmp, "data")
        self.assertFalse(os.path.exists(missing), f"{missing} was created: "
                         f"{os.listdir(missing) if os.path.isdir(missing) else ''}")
        self.assertEqual(os.listdir(os.path.join(tmp, "existing")), [],
                         "files appeared in the existing (empty) data directory")

    def prepare(self):
        tmp = tmpdir(self)
        os.mkdir(os.path.join(tmp, "existing"), 0o700)
        return tmp

    def test_address_in_use(self):
        tmp = self.prepare()
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((h.HOST, 0))
            s.listen(1)
            port = s.getsockname()[1]
            for sub in ("data", "existing"):
                err = self.serve(f"127.0.0.1:{port}", os.path.join(tmp, sub))
                self.assertIn(f"hookd: cannot listen on 127.0.0.1:{port}: address already in use",
                              err)
        self.assertUntouched(tmp)

    def test_cannot_assign_requested_address(self):
        # 192.0.2.1 (TEST-NET-1) is on no interface here: bind() fails locally with
        # EADDRNOTAVAIL and nothing is sent anywhere.
        tmp = self.prepare()
        port = h.free_port()
        for sub in ("data", "existing"):
            err = self.serve(f"192.0.2.1:{port}", os.path.join(tmp, sub))
            self.assertIn(f"hookd: cannot listen on 192.0.2.1:{port}: "
                          "cannot assign requested address", err)
        self.assertUntouched(tmp)

    def test_permission_denied(self):
        """A port below net.ipv4.ip_unprivileged_port_start, as an unprivileged user (root
        drops to nobody with setpriv for this one)."""
        port = 1
        with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as f:
            if int(f.read()) <= port:
                self.skipTest("every port is unprivileged on this machine")
        prefix = ()
        tmp = self.prepare()
        if os.geteuid() == 0:
            if not shutil.which("setpriv"):
                self.skipTest("root without setpriv: cannot drop the bind privilege")
            prefix = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                      "--inh-caps=-all", "--")
            os.chmod(tmp, 0o777)  # nobody could create the data directory here
            os.chmod(os.path.join(tmp, "existing"), 0o777)
        err = self.serve(f"127.0.0.1:{port}", os.path.join(tmp, "data"), prefix=prefix, cwd=tmp)
        self.assertIn(f"hookd: cannot listen on 127.0.0.1:{port}: permission denied", err)
        err = self.serve(f"127.0.0.1:{port}", os.path.join(tmp, "existing"), prefix=prefix,
                         cwd=tmp)
        self.assertIn(f"hookd: cannot listen on 127.0.0.1:{port}: permission denied", err)
        os.unlink(os.path.join(tmp, "hookd.yaml"))
        self.assertUntouched(tmp)


class ServeDefaultsTest(unittest.TestCase):
    """`hookd serve` with no --config. No flag or variable sets its listen address, so this
    runs on the default 127.0.0.1:8080 and is skipped when something else holds that port."""

    FIRST_LINES = 5

    def test_says_what_it_chose(self):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((h.HOST, DEFAULT_PORT))
            except OSError as e:
                self.skipTest(f"127.0.0.1:{DEFAULT_PORT} is taken here ({e})")
        cwd = tmpdir(self)
        log_path = os.path.join(cwd, "hookd.log")
        logf = open(log_path, "wb")
        self.addCleanup(logf.close)
        p = subprocess.Popen([h.hookd_bin(), "serve"], cwd=cwd, env=clean_env(),
                             stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT)

        def log():
            with open(log_path, "rb") as f:
                return f.read().decode(errors="replace")

        def stop():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=30 * h.SCALE)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        self.addCleanup(stop)

        def get(path, key=None):
            conn = http.client.HTTPConnection(h.HOST, DEFAULT_PORT, timeout=5 * h.SCALE)
            try:
                conn.request("GET", path, headers={"Authorization": f"Bearer {key}"} if key else {})
                resp = conn.getresponse()
                return resp.status, resp.read()
            finally:
                conn.close()
        deadline = time.monotonic() + 20 * h.SCALE
        while True:
            if p.poll() is not None:
                self.fail(f"hookd serve exited with {p.returncode}:\n{log()}")
            try:
                if get("/healthz")[0] == 200:
                    break
            except (OSError, http.client.HTTPException):
                pass
            if time.monotonic() > deadline:
                self.fail(f"hookd serve did not answer on 127.0.0.1:{DEFAULT_PORT}:\n{log()}")
            time.sleep(0.05)
        text = log()
        # The first lines of its own, after one line per plugin loaded from the build tree
        # (as many as are built).
        first = "\n".join([ln for ln in text.splitlines()
                           if not re.search(r" info plugin \S+ \S+ loaded from ", ln)]
                          [:self.FIRST_LINES])
        sys.stderr.write(f"  first lines:\n{first}\n")
        data_dir = os.path.join(os.path.realpath(cwd), "data")
        self.assertTrue(os.path.isdir(data_dir))
        self.assertIn(f"127.0.0.1:{DEFAULT_PORT}", first, f"listen address not in\n{text}")
        self.assertIn(data_dir, first, f"absolute data directory not in\n{text}")
        self.assertRegex(first, r"(?i)default", f"no word of the embedded defaults in\n{text}")
        key_lines = [ln for ln in first.splitlines()
                     if re.search(r"(?i)admin key", ln) and re.search(r"(?i)generated", ln)]
        self.assertEqual(len(key_lines), 1, f"no line saying the admin key was generated in\n{text}")
        m = re.search(r"\b[0-9a-f]{32,}\b", key_lines[0])
        self.assertIsNotNone(m, f"the key is not on its line: {key_lines[0]!r}")
        key = m.group(0)
        self.assertEqual(text.count(key), 1, f"the admin key is printed more than once:\n{text}")
        self.assertEqual(get("/v1/apps", key)[0], 200, "the logged key is not the admin key")
        self.assertEqual(get("/v1/apps", "wrong")[0], 401)
        stop()
        self.assertEqual(p.returncode, 0, log())
        self.assertNotRegex(log(), h.SANITIZER_PATTERNS)


class AppsTest(h.HookdCase):

    def test_app_with_only_an_id_is_named_by_it(self):
        d = self.daemon()
        st, body = d.api("POST", "/v1/apps", {"id": "a"})
        self.assertEqual(st, 201, body)
        self.assertEqual((body["id"], body["name"]), ("a", "a"), body)
        st, body = d.api("GET", "/v1/apps/a")
        self.assertEqual((st, body["name"]), (200, "a"), body)
        # a name given still wins; neither id nor name is still refused
        st, body = d.api("POST", "/v1/apps", {"id": "b", "name": "Bee"})
        self.assertEqual((st, body["name"]), (201, "Bee"), body)
        st, body = d.api("POST", "/v1/apps", {})
        self.assertEqual(st, 400, body)
        self.assertEqual(h.error_of(body)["code"], "missing_field", body)


if __name__ == "__main__":
    h.main()

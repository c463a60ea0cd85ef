"""Endpoint schema agreement: the API and the config file accept exactly the same endpoints.

One table of cases (field, value, accepted?) runs through every way an endpoint is declared:
POST /v1/apps/{app}/endpoints, PATCH /v1/apps/{app}/endpoints/{id} (fields only a create may
set are always refused there), and `hookd serve --config FILE` with the endpoint in
apps[].endpoints[]. Every refused case must be refused by all of them, the API naming the
field (error.field) and the config naming file:line: and the key path; every accepted case
must be accepted by all, and the endpoint the config declares must read back through the API
exactly like the one the API created. A limit or rule changed on one side only (a
config-only check, an API-only exception) fails here.

Both sides validate through core/endpoint_schema.c; docs/api.md ("Endpoints") and
docs/configuration.md (apps[].endpoints[]) describe the rules. YAML's own typing is the one
thing that differs by design: a scalar where a string belongs is a string in the file
(`description: 5` is "5"), so the table only holds values whose JSON type the YAML spelling
keeps (cases of the wrong type that both refuse are included).
"""

import json
import os
import re
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hookdtest as h  # noqa: E402

MISSING = object()  # the field is left out of the request and the file


def keygen(kind):
    """(secret, public key or None): the secret alone on stdout, the whpk_ key on stderr."""
    p = subprocess.run([h.hookd_bin(), "keygen", "--type", kind], capture_output=True,
                       check=True, timeout=30)
    pub = re.search(r"whpk_[A-Za-z0-9+/=]+", p.stderr.decode())
    return p.stdout.decode().strip(), pub.group(0) if pub else None


WHSEC = h.random_whsec()
WHSK, WHPK = keygen("ed25519")

# What hookd sets itself (core/header.h); each is refused in any case spelling.
RESERVED = ["webhook-id", "webhook-timestamp", "webhook-signature", "content-type",
            "content-length", "host", "transfer-encoding", "connection", "keep-alive",
            "upgrade", "te", "trailer", "expect", "user-agent", "proxy-authorization",
            "proxy-connection"]

# Fields only a create may set: a PATCH naming them is refused whatever the value.
CREATE_ONLY = {"id", "secret", "secret_type"}


def case(field, value, ok, why=None, extra=None):
    """why: a regex the reason must match on both sides; extra: more fields of the request."""
    return {"field": field, "value": value, "ok": ok, "why": why, "extra": extra or {}}


def headers(n, value="v"):
    return {f"X-H{i}": value for i in range(n)}


CASES = [
    # url (the full URL table is tests/faults/test_endpoint_urls.py)
    case("url", "http://127.0.0.1:9/a", True),
    case("url", "https://example.com/hook?x=1", True),
    case("url", "http://example.com/" + "p" * (2048 - 19), True),
    case("url", "http://example.com/" + "p" * (2049 - 19), False, r"2048"),
    case("url", "ftp://example.com/hook", False, r"http:// or https://"),
    case("url", "plugin:nats", False, r"plugin"),
    case("url", "", False),
    case("url", MISSING, False, r"required"),
    # id
    case("id", "ep_ok-1", True),
    case("id", "e" * 64, True),
    case("id", "e" * 65, False, r"A-Za-z0-9_-"),
    case("id", "has space", False),
    # description
    case("description", "", True),
    case("description", "d" * 1024, True),
    case("description", "d" * 1025, False, r"1024"),
    case("description", None, False),
    # event_types
    case("event_types", None, True),
    case("event_types", [], True),
    case("event_types", ["*"], True),
    case("event_types", ["invoice.paid", "order.*", "A_b-c.d9"], True),
    case("event_types", ["a" * 128], True),
    case("event_types", ["a" * 129], False, r"128"),
    case("event_types", ["a" * 126 + ".*"], True),
    case("event_types", ["a" * 127 + ".*"], False, r"128"),
    case("event_types", [f"t.n{i}" for i in range(256)], True),
    case("event_types", [f"t.n{i}" for i in range(257)], False, r"256"),
    case("event_types", ["inv*.paid"], False, r"'\.\*'"),
    case("event_types", ["*.paid"], False, r"'\.\*'"),
    case("event_types", [".*"], False),
    case("event_types", ["a..b"], False, r"event type"),
    case("event_types", ["invoice/paid"], False, r"event type"),
    case("event_types", ["bad type"], False, r"event type"),
    case("event_types", [""], False),
    case("event_types", "a.b", False),
    # headers: count, names, reserved names, values
    case("headers", None, True),
    case("headers", {}, True),
    case("headers", {"X-Tenant": "acme", "Authorization": "Bearer t0k3n"}, True),
    case("headers", headers(32), True),
    case("headers", headers(33), False, r"32"),
    case("headers", {"X-A": "v" * 8192}, True),
    case("headers", {"X-A": "v" * 8193}, False, r"8192"),
    case("headers", {"h" * 256: "v"}, True),
    case("headers", {"h" * 257: "v"}, False, r"header name"),
    case("headers", {"!#$%&'*+-.^_`|~09azAZ": "v"}, True),
    case("headers", {"X-A": ""}, True),
    case("headers", {"X-A": "tab\there"}, True),
    case("headers", {"X-A": "caf\u00e9 \u2713"}, True),
    case("headers", {"X-A": "a\r\nX-B: c"}, False, r"control characters"),
    case("headers", {"X-A": "a\nb"}, False, r"control characters"),
    case("headers", {"X-A": "a\u0001b"}, False, r"control characters"),
    case("headers", {"X-A": "a\u007fb"}, False, r"control characters"),
    case("headers", {"X A": "v"}, False, r"header name"),
    case("headers", {"X:A": "v"}, False, r"header name"),
    case("headers", {"X-\u00e9": "v"}, False, r"header name"),
    case("headers", {"": "v"}, False, r"header name"),
    case("headers", {"X-A": "1", "x-a": "2"}, False, r"duplicate|same header"),
    case("headers", ["X-A"], False),
] + [
    case("headers", {name: "x"}, False, r"set by hookd")
    for name in RESERVED + ["Webhook-Signature", "CONTENT-TYPE", "User-Agent"]
] + [
    # breaker, rate_limit, max_in_flight (issue 11): null members are the daemon's defaults
    case("breaker", None, True),
    case("breaker", {}, True),
    case("breaker", {"consecutive_failures": 0, "failure_ratio": 0.5, "window_seconds": 30,
                     "cooldown_seconds": 10}, True),
    case("breaker", {"consecutive_failures": 1000000, "failure_ratio": 1}, True),
    case("breaker", {"consecutive_failures": 1000001}, False, r"0\.\.1000000"),
    case("breaker", {"consecutive_failures": -1}, False, r"0\.\.1000000"),
    case("breaker", {"consecutive_failures": 2.5}, False, r"integer"),
    case("breaker", {"failure_ratio": 1.01}, False, r"0\.\.1"),
    case("breaker", {"failure_ratio": "half"}, False, r"number"),
    case("breaker", {"window_seconds": 0}, False, r"1\.\.86400"),
    case("breaker", {"cooldown_seconds": 86401}, False, r"1\.\.86400"),
    case("breaker", {"cooldown": 5}, False, r"unknown (field|key) 'cooldown'"),
    case("breaker", [1], False),
    case("rate_limit", None, True),
    case("rate_limit", {"per_second": 0}, True),
    case("rate_limit", {"per_second": 2.5, "burst": 10}, True),
    case("rate_limit", {"per_second": 100000}, True),
    case("rate_limit", {"per_second": 100001}, False, r"0\.\.100000"),
    case("rate_limit", {"per_second": -1}, False, r"0\.\.100000"),
    case("rate_limit", {"burst": 5}, False, r"required"),
    case("rate_limit", {"per_second": 5, "burst": 0}, False, r"1\.\.100000"),
    case("max_in_flight", None, True),
    case("max_in_flight", 1, True),
    case("max_in_flight", 65536, True),
    case("max_in_flight", 0, False, r"1\.\.65536"),
    case("max_in_flight", 65537, False, r"1\.\.65536"),
    case("max_in_flight", "8", False, r"integer"),
    case("max_pending", None, True),
    case("max_pending", 0, True),
    case("max_pending", 1000000000, True),
    case("max_pending", 1000000001, False, r"0\.\.1000000000"),
    case("auto_disable_seconds", None, True),
    case("auto_disable_seconds", 0, True),
    case("auto_disable_seconds", 31536000, True),
    case("auto_disable_seconds", 31536001, False, r"0\.\.31536000"),
    case("auto_disable_seconds", -5, False, r"0\.\.31536000"),
    # retry_schedule
    case("retry_schedule", None, True),
    case("retry_schedule", [0], True),
    case("retry_schedule", [5, 300, 604800], True),
    case("retry_schedule", [1] * 50, True),
    case("retry_schedule", [1] * 51, False, r"1 to 50"),
    case("retry_schedule", [], False, r"1 to 50"),
    case("retry_schedule", [604801], False, r"604800"),
    case("retry_schedule", [-1], False, r"604800"),
    case("retry_schedule", [1.5], False, r"integer"),
    case("retry_schedule", "5,10", False),
    # disabled
    case("disabled", True, True),
    case("disabled", False, True),
    case("disabled", "no", False, r"true or false"),
    case("disabled", None, False),
    # secret and secret_type
    case("secret", WHSEC, True),
    case("secret", WHSK, True),
    case("secret", WHSK, True, extra={"secret_type": "ed25519"}),
    case("secret", None, True),
    case("secret", WHSEC, False, r"whsk_", extra={"secret_type": "ed25519"}),
    case("secret", WHSK, False, r"whsec_", extra={"secret_type": "hmac"}),
    case("secret", "whsec_!!", False, r"invalid secret"),
    case("secret", "whsk_placeholder", False, r"invalid secret"),
    case("secret", WHPK, False, r"public key"),
    case("secret", "hunter2", False, r"whsec_"),
    case("secret_type", "hmac", True),
    case("secret_type", "ed25519", True),
    case("secret_type", None, True),
    case("secret_type", "rsa", False, r"hmac"),
    # policy and its params
    case("policy", None, True),
    case("policy", {"name": "p"}, True),
    case("policy", {"name": "n" * 64}, True),
    case("policy", {"name": "redact-pii", "params": {"a": [1, "x", True, None], "b": {}}}, True),
    case("policy", {"name": "p", "params": None}, True),
    case("policy", {"name": "n" * 65}, False, r"a-z 0-9"),
    case("policy", {"name": "Upper"}, False, r"a-z 0-9"),
    case("policy", {"name": "../x"}, False, r"a-z 0-9"),
    case("policy", {"params": {}}, False, r"required"),
    case("policy", {"name": "p", "parms": {}}, False, r"unknown"),
    # auth (the scheme's own rules, which need the plugins loaded, are in test_auth.py)
    case("auth", None, True),
    case("auth", {"scheme": "bearer", "token": "tok_0123456789abcdef"}, True),
    case("auth", {"token": "x"}, False, r"required"),
    case("auth", {"scheme": "bearer", "token": {"a": 1}}, False,
         r"a string, a number or a boolean"),
    case("auth", {"scheme": "bearer", "token": [1]}, False, r"a string, a number or a boolean"),
    case("auth", "bearer", False),
    case("policy", {"name": "p", "params": [1]}, False),
    case("policy", "p", False),
    # fields that do not exist
    case("colour", "red", False, r"unknown"),
]


# tls and proxy (docs/api.md "Endpoint fields"). The table's URL is http://, so the only
# tls accepted here is null; a valid tls on it is refused by both sides on "tls" (TLS
# options need an https:// URL); test_tls.py covers the accepted ones end to end.
def _test_ca():
    out = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                          "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "/dev/null",
                          "-subj", "/CN=agreement", "-days", "1"],
                         capture_output=True, check=True, timeout=30)
    return out.stdout.decode()


CA_PEM = _test_ca()
CASES += [
    case("proxy", None, True),
    case("proxy", "", True),
    case("proxy", "http://127.0.0.1:3128", True),
    case("proxy", "http://[::1]:3128/", True),
    case("proxy", "https://127.0.0.1:3128", False, r"https:// proxy is not supported"),
    case("proxy", "http://proxy.internal", False, r"needs a port"),
    case("proxy", "http://u:p@127.0.0.1:3128", False, r"user names and passwords"),
    case("tls", None, True),
    case("tls", {"ca": CA_PEM}, False, r"https:// URLs only"),
    case("tls", {"ca": "not pem"}, False, r"not a PEM certificate"),
    case("tls", {"pin": "sha256//x"}, False, r"expected sha256//<base64 of 32 bytes>"),
    case("tls", {"client_cert": CA_PEM}, False, r"required with tls.client_cert"),
    case("tls", {"verify": False}, False, r"unknown"),
    case("tls", "yes", False),
]

ENDPOINT_LINE = 8  # "      - id: ..." of the endpoint in every generated file


def yaml_value(v):
    """JSON is YAML flow syntax; DEL is the one character JSON leaves raw that a YAML stream
    may not hold, so it is written as YAML's \\x7f escape."""
    return json.dumps(v, ensure_ascii=False).replace("\x7f", "\\x7f")


def endpoint_lines(ep_id, c):
    """YAML lines of one endpoint for case c; returns (lines, offset of the case's line)."""
    lines, at = [], 0
    if c["field"] == "id":
        lines.append(f"      - id: {yaml_value(c['value'])}")
    else:
        lines.append(f"      - id: {yaml_value(ep_id)}")
    if c["field"] == "url":
        at = 1
        if c["value"] is not MISSING:
            lines.append(f"        url: {yaml_value(c['value'])}")
        else:
            at = 0
    else:
        lines.append(f"        url: {yaml_value('http://127.0.0.1:9/cfg')}")
    if c["field"] not in ("id", "url"):
        at = len(lines)
        lines.append(f"        {c['field']}: {yaml_value(c['value'])}")
    for k, v in c["extra"].items():
        lines.append(f"        {k}: {yaml_value(v)}")
    return lines, at


def config_text(port, endpoints):
    head = [f'listen: "127.0.0.1:{port}"', 'data_dir: "./data"', "api:",
            f'  admin_key: "k-{port}"', "apps:", "  - id: app1", "    endpoints:"]
    return "\n".join(head + endpoints) + "\n"


def describe(c):
    v = c["value"]
    text = "MISSING" if v is MISSING else json.dumps(v)
    if len(text) > 80:
        text = text[:77] + "..."
    return f"{c['field']}={text}" + (f" with {json.dumps(c['extra'])}" if c["extra"] else "")


def short(body, n=600):
    text = json.dumps(body) if not isinstance(body, str) else body
    return text if len(text) <= n else text[:n] + f"... ({len(text)} bytes)"


def request_body(c, url="http://127.0.0.1:9/api"):
    body = {"url": url}
    if c["value"] is MISSING:
        del body[c["field"]]
    else:
        body[c["field"]] = c["value"]
    body.update(c["extra"])
    return body


class SchemaAgreementTest(h.HookdCase):

    @classmethod
    def setUpClass(cls):
        cls.api = h.Daemon()
        cls.app = h.create_app(cls.api)
        cls.ep = h.create_endpoint(cls.api, cls.app, "http://127.0.0.1:9/base")
        cls.ep_path = f"/v1/apps/{cls.app['id']}/endpoints"

    @classmethod
    def tearDownClass(cls):
        bad = cls.api.sanitizer_errors()
        cls.api.cleanup()
        if bad:
            raise AssertionError(f"sanitizer errors in the daemon log: {bad[:5]}")

    def run_config(self, text):
        """`hookd serve` on text; (exit code, output); a daemon that starts is exit 0."""
        return h.serve_config(self, text, "hookd-schema-")

    def check_api_refuses(self, st, body, c, what):
        self.assertEqual(st, 400, f"{what} accepted {describe(c)}: {short(body)}")
        e = h.error_of(body)
        self.assertIn(e["code"], ("invalid_field", "missing_field"), short(body))
        self.assertTrue((e["field"] or "").startswith(c["field"]),
                        f"{what} of {describe(c)} names field {e['field']!r}: {short(body)}")
        fixed = what == "PATCH" and c["field"] in CREATE_ONLY  # refused for being named
        if c["why"] and not fixed:
            self.assertRegex(e["message"], c["why"], f"{what} of {describe(c)}")

    def test_refused_everywhere(self):
        d = self.api
        for c in (c for c in CASES if not c["ok"]):
            with self.subTest(case=describe(c)):
                st, body = d.api("POST", self.ep_path, request_body(c))
                self.check_api_refuses(st, body, c, "POST")

                if c["value"] is not MISSING:
                    patch = {c["field"]: c["value"], **c["extra"]}
                    st, body = d.api("PATCH", f"{self.ep_path}/{self.ep['id']}", patch)
                    self.check_api_refuses(st, body, c, "PATCH")

                port = h.free_port()
                lines, at = endpoint_lines("ep1", c)
                rc, out = self.run_config(config_text(port, lines))
                self.assertGreater(rc, 0, f"the config accepted {describe(c)} (exit {rc}): "
                                          f"{out[-2000:]}")
                self.assertEqual(h.SANITIZER_PATTERNS.findall(out), [], out)
                line = ENDPOINT_LINE + at
                m = re.search(r"cfg\.yaml:(\d+): (.*)", out)
                self.assertTrue(m, f"no file:line: in the config error: {out[-2000:]}")
                self.assertEqual(int(m.group(1)), line, f"{describe(c)}: {m.group(0)}")
                self.assertIn(c["field"], m.group(2), f"{describe(c)}: {m.group(0)}")
                if c["value"] is not MISSING and c["field"] not in ("colour",):
                    self.assertIn(f"apps[0].endpoints[0].{c['field']}", m.group(2),
                                  f"{describe(c)}: {m.group(0)}")
                if c["why"]:
                    self.assertRegex(m.group(2), c["why"], f"config error of {describe(c)}")
        self.assertEqual(h.get_endpoint(d, self.app, self.ep["id"])["url"],
                         "http://127.0.0.1:9/base", "a refused PATCH changed the endpoint")

    def test_accepted_everywhere(self):
        d = self.api
        good = [c for c in CASES if c["ok"]]
        created = []
        for c in good:
            with self.subTest(case=describe(c)):
                st, body = d.api("POST", self.ep_path, request_body(c))
                self.assertEqual(st, 201, f"POST refused {describe(c)}: {short(body)}")
                created.append(body)
                patch = {c["field"]: c["value"], **c["extra"]}
                st, pbody = d.api("PATCH", f"{self.ep_path}/{body['id']}", patch)
                if c["field"] in CREATE_ONLY:
                    self.check_api_refuses(st, pbody, c, "PATCH")
                else:
                    self.assertEqual(st, 200, f"PATCH refused {describe(c)}: {short(pbody)}")

        # The config: every accepted case as one endpoint of one file; the daemon starts.
        lines, where = [], {}
        for i, c in enumerate(good):
            ep_lines, _ = endpoint_lines(f"ep_c{i}", c)
            where[ENDPOINT_LINE + len(lines)] = describe(c)
            lines += ep_lines
        cfg = self.daemon(start=False)
        with open(cfg.config_path, "w", encoding="utf-8") as f:
            f.write(config_text(cfg.port, lines).replace('"./data"', json.dumps(cfg.data_dir))
                    .replace(f'"k-{cfg.port}"', json.dumps(cfg.admin_key)))
        try:
            cfg.start()
        except h.DaemonError as e:
            m = re.search(r"cfg\.yaml:(\d+)|hookd\.yaml:(\d+)", str(e))
            n = int(m.group(1) or m.group(2)) if m else None
            near = max((k for k in where if n and k <= n), default=None)
            self.fail(f"the config refused an accepted case ({where.get(near)}): {e}")

        # What the config stored reads back like what the API stored.
        compared = 0
        for i, (c, api_ep) in enumerate(zip(good, created)):
            with self.subTest(case=describe(c)):
                ep_id = c["value"] if c["field"] == "id" else f"ep_c{i}"
                cfg_ep = h.get_endpoint(cfg, "app1", ep_id)
                if c["field"] in ("id", "secret") and c["value"] is None:
                    continue
                keys = {c["field"], *c["extra"]} & set(api_ep) | (
                    {"secret_type"} if c["field"] == "secret" else set())
                for k in keys:
                    self.assertEqual(cfg_ep[k], api_ep[k],
                                     f"{k} stored differently by the config and the API")
                    compared += 1
        self.assertGreater(compared, len(good) - 5, "too few stored values compared")


if __name__ == "__main__":
    h.main()

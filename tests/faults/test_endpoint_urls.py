"""Endpoint URLs: the API and the config accept exactly the same set.

Defect: the API (curl's URL parser) accepted URLs that can never be delivered and that
the config refused or read differently: port 0, hosts that are not a DNS name or an IP
literal once decoded (`127.0.0.1%2e`, fullwidth digits as UTF-8 or percent-encoded),
empty hosts, credentials, numeric host forms that parsers disagree on (`127.1`,
`0x7f.0.0.1`, `2130706433`). Both now call one validator (core/url.c); docs/api.md and
docs/configuration.md list the rules.

One table, three paths: POST .../endpoints, PATCH .../endpoints/{id}, and `hookd serve`
with the URL in apps[].endpoints[].url. Every bad URL is refused by all three with a
message naming the field and a reason matching the table's; every good one is accepted by
all three and stored as written.
"""

import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import hookdtest as h  # noqa: E402

GOOD = [
    "http://127.0.0.1:9000/hook",
    "https://example.com/hook",
    "HTTPS://Example.COM:8443/a/b?c=d&e=%2F",
    "https://example.com/a?b=c#frag",
    "http://example.com",
    "http://h/",
    "http://localhost:65535/",
    "http://my_service:8080/hook",            # docker-compose style names
    "https://xn--bcher-kva.example/in",       # an IDN host in its ASCII (xn--) form
    "https://[2001:db8::1]:8443/in?x=1",
    "http://[::1]:9000/",
    "http://[::ffff:127.0.0.1]/",
    "https://example.com/path%20with%20escapes",
    "http://255.255.255.255:1/",
    "http://a-b.c-d.example/",
    "http://example.com/" + "p" * 2000,
]

# (url, regex the reason must match in the API message and in the config error)
BAD = [
    ("http://example.com:0/hook", r"port"),
    ("http://example.com:65536/", r"port"),
    ("http://example.com:/", r"port"),
    ("http://example.com:8o/", r"port"),
    ("http://example.com:-1/", r"port"),
    ("http://[::1]:0/", r"port"),
    ("http://127.0.0.1%2e/", r"host"),
    ("http://%31%32%37.0.0.1/", r"host"),
    ("http://\uff11\uff12\uff17.0.0.1/", r"ASCII|host"),
    ("http://%EF%BC%91%EF%BC%92%EF%BC%97.0.0.1/", r"host"),
    ("http://b\u00fccher.example/", r"ASCII|host"),
    ("http:///hook", r"host"),
    ("http://:80/", r"host"),
    ("http://?x", r"host"),
    ("http://user:pass@example.com/", r"user|credential"),
    ("http://@example.com/", r"user|credential"),
    ("http://127.0.0.1@evil.example/", r"user|credential"),
    ("http://exa mple.com/", r"space|control"),
    ("http://example.com/\x7f", r"space|control"),
    ("http://example.com/\u00e9", r"ASCII"),
    ("ftp://example.com/hook", r"http:// or https://"),
    ("example.com/hook", r"http:// or https://"),
    ("http:/example.com/", r"http:// or https://"),
    ("javascript://example.com/", r"http:// or https://"),
    ("http://-bad.example/", r"host"),
    ("http://bad-.example/", r"host"),
    ("http://a..b/", r"host"),
    ("http://example.com./", r"host"),
    ("http://" + "a" * 64 + ".example/", r"host"),
    ("http://" + ".".join(["abcdefghi"] * 26) + "/", r"host"),   # 259 bytes of name
    ("http://exam\\ple.com/", r"host"),
    ("http://ex%61mple.com/", r"host"),
    ("http://127.1/", r"IPv4|host"),
    ("http://0x7f.0.0.1/", r"IPv4|host"),
    ("http://2130706433/", r"IPv4|host"),
    ("http://127.000.0.1/", r"IPv4|host"),
    ("http://256.0.0.1/", r"IPv4|host"),
    ("http://1.2.3.4.5/", r"IPv4|host"),
    ("http://[::1/", r"IPv6|\]"),
    ("http://[::1]x/", r"IPv6|\]"),
    ("http://[fe80::1%25eth0]/", r"IPv6"),
    ("http://[v1.fe]/", r"IPv6"),
    ("http://[127.0.0.1]/", r"IPv6"),
    ("http://::1/", r"port|host"),
    ("http://example.com/" + "p" * 2030, r"2048"),
]


def endpoint_config(port, url):
    """A config whose only endpoint has this url on line 9."""
    return (f'listen: "127.0.0.1:{port}"\n'        # 1
            f'data_dir: "./data"\n'                # 2
            f'api:\n'                              # 3
            f'  admin_key: "k-{port}"\n'           # 4
            f'apps:\n'                             # 5
            f'  - id: app1\n'                      # 6
            f'    endpoints:\n'                    # 7
            f'      - id: ep1\n'                   # 8
            f'        url: {h._yaml_scalar(url)}\n')  # 9


class EndpointUrlTest(h.HookdCase):

    @classmethod
    def setUpClass(cls):
        cls.shared = h.Daemon()
        cls.app = h.create_app(cls.shared)
        cls.ep = h.create_endpoint(cls.shared, cls.app, "http://127.0.0.1:9/base")
        cls.ep_path = f"/v1/apps/{cls.app['id']}/endpoints"

    @classmethod
    def tearDownClass(cls):
        bad = cls.shared.sanitizer_errors()
        cls.shared.cleanup()
        if bad:
            raise AssertionError(f"sanitizer errors in the daemon log: {bad[:5]}")

    def run_config(self, url):
        """`hookd serve` on a config declaring url; (exit code, output); a daemon that
        starts is exit 0."""
        return h.serve_config(self, endpoint_config(h.free_port(), url), "hookd-url-")

    def test_bad_urls_refused_by_api_and_config(self):
        d = self.shared
        for url, why in BAD:
            with self.subTest(url=url):
                st, body = d.api("POST", self.ep_path, {"url": url})
                self.assertEqual(st, 400, f"POST accepted {url!r}: {body}")
                e = h.error_of(body)
                self.assertEqual((e["code"], e["field"]), ("invalid_field", "url"), body)
                self.assertRegex(e["message"], why, body)

                st, body = d.api("PATCH", f"{self.ep_path}/{self.ep['id']}", {"url": url})
                self.assertEqual(st, 400, f"PATCH accepted {url!r}: {body}")
                self.assertEqual(h.error_of(body)["field"], "url", body)

                rc, out = self.run_config(url)
                self.assertGreater(rc, 0, f"the config accepted {url!r} (exit {rc}): {out}")
                self.assertRegex(out, r"cfg\.yaml:9: apps\[0\]\.endpoints\[0\]\.url: ",
                                 "the config error does not name file:line:key")
                self.assertRegex(out.split("url: ", 1)[-1], why, out)
                self.assertEqual(h.SANITIZER_PATTERNS.findall(out), [], out)
        self.assertEqual(h.get_endpoint(d, self.app, self.ep["id"])["url"],
                         "http://127.0.0.1:9/base", "a refused PATCH changed the url")

    def test_good_urls_accepted_by_api_and_config(self):
        d = self.shared
        for url in GOOD:
            with self.subTest(url=url):
                st, body = d.api("POST", self.ep_path, {"url": url})
                self.assertEqual(st, 201, f"POST refused {url!r}: {body}")
                self.assertEqual(body["url"], url, "stored differently from what was sent")
                st, body = d.api("PATCH", f"{self.ep_path}/{body['id']}",
                                 {"url": url + ("&p=1" if "?" in url else "?p=1")
                                  if "#" not in url else url})
                self.assertEqual(st, 200, f"PATCH refused a variant of {url!r}: {body}")

        # The config: all good URLs in one file; the daemon starts and serves them as written.
        apps = [{"id": "app_cfg", "endpoints": [{"id": f"ep_{i}", "url": u}
                                                for i, u in enumerate(GOOD)]}]
        c = self.daemon(apps=apps)
        for i, u in enumerate(GOOD):
            self.assertEqual(h.get_endpoint(c, "app_cfg", f"ep_{i}")["url"], u)


if __name__ == "__main__":
    h.main()

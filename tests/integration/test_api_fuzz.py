"""Hostile input never crashes the daemon: a fixed-seed stream of mutated and random requests
across every route. Each answer must be a well-formed 2xx/4xx (no 5xx), the daemon must stay
up, and (under the sanitizer build) its log must stay free of reports."""

import json
import os
import random
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hookdtest as h  # noqa: E402

SEEDS = [
    {"type": "invoice.paid", "data": {"a": 1, "b": [1, 2, {"c": None}], "s": "x"}},
    {"url": "http://127.0.0.1:9/x", "event_types": ["a.*"], "headers": {"X-A": "b"},
     "retry_schedule": [1, 2], "policy": {"name": "p", "params": {"k": 1}}},
    {"name": "app", "id": "app_1"},
    {"delivery_ids": ["dlv_x"], "since": "2026-01-01T00:00:00Z"},
    {"message": {"type": "a.b", "data": {}}, "params": {}},
]
WEIRD = [None, True, 0, -1, 2**63, 1.5e308, "", "\u0000", "\ud800", "a" * 5000, [], {}, [[[[]]]],
         {"": ""}, "../../etc", "%00", "msg_" + "Z" * 60]


def mutate(rng, v, depth=0):
    r = rng.random()
    if r < 0.15:
        return rng.choice(WEIRD)
    if isinstance(v, dict):
        v = dict(v)
        if v and rng.random() < 0.3:
            v.pop(rng.choice(list(v)))
        if rng.random() < 0.3:
            v[rng.choice(["type", "data", "url", "id", "x", "secret", "secret_type", "version",
                          "source", "disabled", "grace_period_s"])] = rng.choice(WEIRD)
        return {k: mutate(rng, x, depth + 1) if depth < 4 else x for k, x in v.items()}
    if isinstance(v, list):
        return [mutate(rng, x, depth + 1) for x in v]
    return v


def raw_mutate(rng, b):
    b = bytearray(b)
    for _ in range(rng.randint(1, 4)):
        op = rng.random()
        if not b:
            break
        i = rng.randrange(len(b))
        if op < 0.4:
            b[i] = rng.randrange(256)
        elif op < 0.7:
            del b[i:i + rng.randint(1, 8)]
        else:
            b[i:i] = bytes(rng.choice([b"{", b"}", b"[", b"\"", b"\\", b"\xff", b"\x00", b",", b":"]))
    return bytes(b)


class FuzzTest(h.HookdCase):

    def test_mutated_requests(self):
        rng = random.Random(int(os.environ.get("HOOKD_FUZZ_SEED") or 20261129))
        recv = self.receiver()
        d = self.daemon(limits={"max_payload_bytes": "64KiB"})
        app = h.create_app(d, "app_fuzz")
        ep = h.create_endpoint(d, app, recv.url("/f"))
        msg = h.publish(d, app, "a.b", {"x": 1})["id"]
        paths = [
            ("POST", "/v1/apps"), ("GET", "/v1/apps"), ("GET", "/v1/apps/app_fuzz"),
            ("POST", "/v1/apps/app_fuzz/endpoints"), ("GET", "/v1/apps/app_fuzz/endpoints"),
            ("PATCH", f"/v1/apps/app_fuzz/endpoints/{ep['id']}"),
            ("POST", f"/v1/apps/app_fuzz/endpoints/{ep['id']}/secret/rotate"),
            ("POST", "/v1/apps/app_fuzz/messages"), ("GET", "/v1/apps/app_fuzz/messages?limit=3"),
            ("GET", f"/v1/apps/app_fuzz/messages/{msg}"),
            ("GET", f"/v1/apps/app_fuzz/messages/{msg}/attempts"),
            ("GET", "/v1/apps/app_fuzz/dead"), ("POST", "/v1/apps/app_fuzz/dead/redrive"),
            ("PUT", "/v1/policies/fz"), ("POST", "/v1/policies/fz/test"), ("GET", "/v1/policies"),
            ("GET", "/v1/apps/app_fuzz/messages?after=%ff%00&limit=-1"),
            ("GET", "/v1/apps/%2e%2e/endpoints"), ("DELETE", "/v1/apps/app_fuzz/endpoints/nope"),
        ]
        n = int(os.environ.get("HOOKD_FUZZ_N") or 400 * (1 if h.SCALE == 1 else 0.5))
        statuses = {}
        for i in range(n):
            method, path = rng.choice(paths)
            seed = rng.choice(SEEDS)
            if rng.random() < 0.5:
                body = json.dumps(mutate(rng, seed)).encode()
            else:
                body = raw_mutate(rng, json.dumps(seed).encode())
            if path.startswith("/v1/policies/fz") and method == "PUT" and rng.random() < 0.5:
                body = rng.choice([b"return {}", b"return {filter = function() return false end}",
                                   b"\x1bLJ", b"while true do end", b"return 42", b"error('x')"])
            st, _, _ = d.request(method, path, raw=body,
                              headers={"Content-Type": "application/json",
                                       **({"Idempotency-Key": "k%d" % rng.randrange(5)}
                                          if rng.random() < 0.2 else {})})
            statuses[st] = statuses.get(st, 0) + 1
            self.assertLess(st, 500, f"request {i}: {method} {path} {body[:200]!r} -> {st}")
        sys.stderr.write(f"fuzz: {n} requests, statuses {sorted(statuses.items())}\n")
        self.assertTrue(d.running(), "daemon died")
        self.assertEqual(d.api("GET", "/healthz", auth=False)[0], 200)
        # Still fully working afterwards (on a fresh app: the fuzz may well have disabled,
        # re-pointed or re-filtered the first endpoint, as any client may).
        app2 = h.create_app(d, "app_after")
        h.create_endpoint(d, app2, recv.url("/after"))
        mid = h.publish(d, app2, "after.fuzz", {"ok": True})["id"]
        recv.wait_for(1, path="/after", webhook_id=mid)


if __name__ == "__main__":
    h.main()

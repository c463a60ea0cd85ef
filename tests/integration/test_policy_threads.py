"""Policies on several threads end to end (policies.threads: 4).

Three publishers, one per app, each publish messages one after the other to an app whose
endpoints all run a transforming policy; some messages make the policy take 20 ms, so the
jobs published after one of them finish first, on the other threads. Every delivery must
arrive exactly once, with the body the policy makes of its own message, and each endpoint
must receive its deliveries in the order of their publishes (max_inflight_per_endpoint: 1,
so the receipt order is the scheduler's order). A second case puts an endlessly looping
policy on one app while another app's policy deliveries keep arriving, complete and in
order, and the looping ones end dead with the CPU limit's error. A value of
policies.threads outside 1..16 is refused at start with the key and the limit.
"""

import os
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hookdtest as h  # noqa: E402

XFORM = """
return { transform = function(msg, ctx)
  local d = msg.data
  if d.slow then
    local t = hookd.time()
    while hookd.time() - t < 0.02 do end
  end
  msg.body = { seq = d.seq, src = d.src, ep = ctx.endpoint_id, tag = ctx.params.tag,
               square = d.seq * d.seq }
  msg.headers["x-seq"] = tostring(d.seq)
  return msg
end }
"""

SPIN = "return { filter = function(m) while true do end end }"


def put_policy(d, name, source):
    st, body = d.api("PUT", f"/v1/policies/{name}", raw=source.encode(),
                     headers={"Content-Type": "text/x-lua"})
    assert st == 200, body
    return body


def policy_threads(d):
    """Threads of the daemon named hookd-policy* (worker.c names them)."""
    task = f"/proc/{d.proc.pid}/task"
    names = []
    for tid in os.listdir(task):
        try:
            with open(f"{task}/{tid}/comm", encoding="utf-8") as f:
                names.append(f.read().strip())
        except OSError:
            pass
    return sorted(n for n in names if n.startswith("hookd-policy"))


class PolicyThreadsTest(h.HookdCase):

    def setUp(self):
        super().setUp()
        self.recv = self.receiver()

    def four_thread_daemon(self, cpu_limit_ms=500):
        return self.daemon(delivery={"max_inflight_per_endpoint": 1},
                           extra={"policies": {"threads": 4, "cpu_limit_ms": cpu_limit_ms}})

    def check_endpoint(self, path, ep_id, tag, src, ids):
        """The deliveries at path: one per id, in publish order, each the policy's output."""
        reqs = self.recv.get(path=path)
        self.assertEqual(len(reqs), len(ids), f"{path}: one delivery per message")
        self.assertEqual([r.webhook_id for r in reqs], ids,
                         f"{path}: deliveries in the order of their publishes")
        for seq, r in enumerate(reqs):
            self.assertEqual(r.json(), {"seq": seq, "src": src, "ep": ep_id, "tag": tag,
                                        "square": seq * seq}, f"{path} delivery {seq}")
            self.assertEqual(r.headers.get("x-seq"), str(seq), path)

    def test_many_publishes_keep_per_endpoint_order_and_bodies(self):
        d = self.four_thread_daemon()
        self.assertEqual(len(policy_threads(d)), 4, "policies.threads: 4 starts 4 threads")
        put_policy(d, "xform", XFORM)
        n, apps = 90, ["app_t0", "app_t1", "app_t2"]
        eps = {}  # app -> [(path, endpoint id, tag)]
        for a in apps:
            h.create_app(d, a)
            eps[a] = []
            for k in range(2):
                path, tag = f"/{a}/ep{k}", f"{a}-{k}"
                ep = h.create_endpoint(d, a, self.recv.url(path),
                                       policy={"name": "xform", "params": {"tag": tag}})
                eps[a].append((path, ep["id"], tag))
            h.create_endpoint(d, a, self.recv.url(f"/{a}/plain"))
        ids = {a: [] for a in apps}
        errors = []

        def publisher(a):
            try:
                for i in range(n):
                    ids[a].append(h.publish(d, a, "seq.tick",
                                            {"seq": i, "src": a, "slow": i % 15 == 0})["id"])
            except Exception as e:  # noqa: BLE001
                errors.append(f"{a}: {e}")

        threads = [threading.Thread(target=publisher, args=(a,)) for a in apps]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        for a in apps:
            for path, _, _ in eps[a]:
                self.recv.wait_for(n, path=path, timeout=60)
            self.recv.wait_for(n, path=f"/{a}/plain", timeout=60)
        time.sleep(0.5)  # room for a duplicate to show up
        for a in apps:
            for path, ep_id, tag in eps[a]:
                self.check_endpoint(path, ep_id, tag, a, ids[a])
            self.assertEqual(sorted(r.webhook_id for r in self.recv.get(path=f"/{a}/plain")),
                             sorted(ids[a]))

    def test_looping_policy_does_not_stop_other_policy_deliveries(self):
        d = self.four_thread_daemon(cpu_limit_ms=200)
        put_policy(d, "xform", XFORM)
        put_policy(d, "spin", SPIN)
        h.create_app(d, "app_bad")
        h.create_app(d, "app_good")
        bad = h.create_endpoint(d, "app_bad", self.recv.url("/bad"), policy={"name": "spin"})
        good = h.create_endpoint(d, "app_good", self.recv.url("/good"),
                                 policy={"name": "xform", "params": {"tag": "g"}})
        n = 40
        good_ids, bad_ids = [], []
        for i in range(n):
            good_ids.append(h.publish(d, "app_good", "seq.tick",
                                      {"seq": i, "src": "app_good", "slow": False})["id"])
            if i % 4 == 0:
                bad_ids.append(h.publish(d, "app_bad", "seq.tick", {"seq": i})["id"])
        self.recv.wait_for(n, path="/good", timeout=60)
        for mid in bad_ids:
            dl = h.wait_delivery_state(d, "app_bad", mid, bad["id"], "dead", timeout=30)
            self.assertEqual(dl["last_error"], "policy_error: cpu limit exceeded (200 ms)", dl)
        time.sleep(0.3)
        self.check_endpoint("/good", good["id"], "g", "app_good", good_ids)
        self.assertEqual(self.recv.count(path="/bad"), 0)
        self.assertEqual(d.api("GET", "/healthz", auth=False)[0], 200)
        self.assertEqual(len(policy_threads(d)), 4)

    def test_threads_out_of_range_is_refused(self):
        for value in (0, 17):
            rc, out = h.serve_config(self, f"data_dir: ./data\npolicies:\n  threads: {value}\n")
            self.assertNotEqual(rc, 0, out)
            self.assertIn(f"cfg.yaml:3: policies.threads: '{value}' is out of range (1..16)", out)


if __name__ == "__main__":
    h.main()

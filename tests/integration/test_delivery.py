"""Happy-path delivery: Standard Webhooks body, headers and signature; extra headers;
event-type filtering; connection reuse towards one endpoint."""

import json
import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hookdtest as h  # noqa: E402


class ClosingReceiver(h.RawServer):
    """Answers each connection's first request with a 200, then closes the connection.
    Without announce, the answer is keep-alive (no "Connection: close"): what a receiver
    whose idle keep-alive timeout is shorter than the gap between deliveries does, so hookd
    sees the close while the connection is idle. With announce, the answer says
    "Connection: close" and hookd closes the connection itself when the transfer ends.
    Counts connections and requests."""

    def __init__(self, announce=False):
        self.requests = 0
        self.announce = announce
        super().__init__()

    def serve(self, c):
        c.settimeout(30)
        try:
            head, _ = self.read_request(c)
            if head is None:
                return
            with self.lock:
                self.requests += 1
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n"
                      + (b"Connection: close\r\n" if self.announce else b"") + b"\r\nok")
            time.sleep(0.05)
        except OSError:
            pass
        finally:
            c.close()


class DeliveryTest(h.HookdCase):

    def test_happy_path_signed_delivery(self):
        recv = self.receiver()
        d = self.daemon()
        app = h.create_app(d, name="Acme")
        self.assertTrue(app["id"])
        ep = h.create_endpoint(d, app, recv.url("/hook"))
        self.assertTrue(ep["id"])
        self.assertTrue(ep["secret"].startswith("whsec_"), ep)
        self.assertEqual(ep.get("secret_type", "hmac"), "hmac")
        self.assertFalse(ep["disabled"])

        data = {"invoice": "in_123", "amount": 4200, "lines": [{"sku": "a", "qty": 2}],
                "note": "caf\u00e9 \u2713"}
        res = h.publish(d, app, "invoice.paid", data)
        msg_id = res["id"]
        self.assertTrue(msg_id.startswith("msg_"), res)
        self.assertNotIn(".", msg_id)  # Standard Webhooks ids must not contain '.'

        req = recv.wait_for(1, path="/hook")[0]
        self.assertEqual(req.method, "POST")
        self.assertIn("application/json", req.headers.get("content-type", ""))
        self.assertRegex(req.headers.get("user-agent", ""), r"^hookd/[0-9]+\.[0-9]+\.[0-9]+$")

        # Body: exactly the Standard Webhooks envelope (no "source": it was not set).
        body = req.json()
        self.assertEqual(set(body), {"id", "type", "timestamp", "version", "data"}, body)
        self.assertEqual(body["id"], msg_id)
        self.assertEqual(body["type"], "invoice.paid")
        self.assertEqual(body["data"], data)
        self.assertAlmostEqual(h.parse_time(body["timestamp"]), time.time(), delta=60)

        # Headers.
        self.assertEqual(req.headers.get("webhook-id"), msg_id)
        ts = req.headers.get("webhook-timestamp")
        self.assertIsNotNone(ts)
        self.assertRegex(ts, r"^[1-9][0-9]*$")  # integer Unix seconds, no leading zeros
        self.assertLess(abs(int(ts) - time.time()), 60)
        sig = req.headers.get("webhook-signature")
        self.assertIsNotNone(sig)
        self.assertTrue(h.signature_entries(req.headers, "v1"), sig)
        self.assertTrue(recv.verify(ep["secret"], req), f"signature {sig} does not verify")
        self.assertFalse(recv.verify(h.random_whsec(), req), "verifies with a wrong secret")
        # Tampered body fails.
        self.assertFalse(h.verify_v1(ep["secret"], req.headers, req.body + b" "))

        # The message shows the delivery succeeded after one attempt.
        dl = h.wait_delivery_state(d, app, msg_id, ep["id"], "succeeded", attempts=1)
        self.assertTrue(dl["id"].startswith("dlv_"), dl)
        self.assertEqual(dl.get("last_status"), 200)
        m = h.get_message(d, app, msg_id)
        self.assertEqual(m["id"], msg_id)
        self.assertEqual(m["app_id"], app["id"])
        self.assertEqual(m["type"], "invoice.paid")
        self.assertEqual(m["data"], data)

        attempts = h.get_attempts(d, app, msg_id)
        self.assertEqual(len(attempts), 1, attempts)
        a = attempts[0]
        self.assertEqual(a["status"], 200)
        self.assertEqual(a["endpoint_id"], ep["id"])
        self.assertEqual(a["delivery_id"], dl["id"])
        self.assertEqual(a["attempt"], 1)
        self.assertIsNone(a["error"])
        self.assertIsInstance(a["duration_ms"], (int, float))
        self.assertGreaterEqual(a["duration_ms"], 0)
        self.assertAlmostEqual(h.parse_time(a["at"]), time.time(), delta=60)
        self.assertEqual(a.get("response"), "ok")

        # Exactly one delivery.
        time.sleep(0.3)
        self.assertEqual(recv.count(path="/hook"), 1, recv.get())

    def test_source_and_version_in_body(self):
        recv = self.receiver()
        d = self.daemon()
        app = h.create_app(d)
        h.create_endpoint(d, app, recv.url("/hook"))
        res = h.publish(d, app, "user.created", {"u": 1}, version="2", source="accounts")
        body = recv.wait_for(1)[0].json()
        self.assertEqual(body["id"], res["id"])
        self.assertEqual(body["version"], "2")
        self.assertEqual(body["source"], "accounts")
        self.assertEqual(body["data"], {"u": 1})

    def test_extra_headers_arrive(self):
        recv = self.receiver()
        d = self.daemon()
        app = h.create_app(d)
        ep = h.create_endpoint(d, app, recv.url("/hdr"),
                               headers={"X-Tenant": "acme", "X-Custom-Token": "t0k3n"})
        self.assertEqual({k.lower(): v for k, v in ep["headers"].items()},
                         {"x-tenant": "acme", "x-custom-token": "t0k3n"})
        h.publish(d, app, "invoice.paid", {"n": 1})
        req = recv.wait_for(1, path="/hdr")[0]
        self.assertEqual(req.headers.get("x-tenant"), "acme")
        self.assertEqual(req.headers.get("x-custom-token"), "t0k3n")
        self.assertTrue(recv.verify(ep["secret"], req))

    def test_event_type_filtering(self):
        recv = self.receiver()
        d = self.daemon()
        app = h.create_app(d)
        ep_orders = h.create_endpoint(d, app, recv.url("/orders"), event_types=["order.*"])
        ep_inv = h.create_endpoint(d, app, recv.url("/invoices"), event_types=["invoice.paid"])
        ep_all = h.create_endpoint(d, app, recv.url("/all"))
        self.assertEqual(ep_orders["event_types"], ["order.*"])

        ids = {}
        for t in ("order.created", "invoice.paid", "orders.created", "order.item.added",
                  "invoice.voided"):
            ids[t] = h.publish(d, app, t, {"t": t})["id"]

        # The catch-all endpoint sees every type; use it as the "fan-out is done" signal.
        recv.wait_for(5, path="/all")
        for t, mid in ids.items():
            h.wait_until(lambda mid=mid: all(
                dl["state"] in ("succeeded", "filtered", "dead")
                for dl in h.get_message(d, app, mid)["deliveries"]),
                message=f"deliveries of {t} to settle")
        time.sleep(0.3)

        def types(path):
            return sorted(r.json()["type"] for r in recv.get(path=path))

        self.assertEqual(types("/orders"), ["order.created", "order.item.added"])
        self.assertEqual(types("/invoices"), ["invoice.paid"])
        self.assertEqual(types("/all"), sorted(ids))

        # A non-matching endpoint has no delivery, or one marked filtered; never a sent one.
        m = h.get_message(d, app, ids["invoice.paid"])
        dl = h.delivery_for(m, ep_orders["id"])
        if dl is not None:
            self.assertEqual(dl["state"], "filtered", m)
        dl = h.delivery_for(m, ep_inv["id"])
        self.assertEqual(dl["state"], "succeeded", m)
        self.assertEqual(h.delivery_for(m, ep_all["id"])["state"], "succeeded", m)

    def test_response_capture_is_bounded(self):
        recv = self.receiver()
        big = ("0123456789abcdef" * 1024).encode()  # 16 KiB
        recv.behave(path="/big", body=big)
        d = self.daemon()
        app = h.create_app(d)
        ep = h.create_endpoint(d, app, recv.url("/big"))
        msg_id = h.publish(d, app, "a.b", {})["id"]
        h.wait_delivery_state(d, app, msg_id, ep["id"], "succeeded", attempts=1)
        a = h.get_attempts(d, app, msg_id)[0]
        self.assertEqual(a["status"], 200)
        self.assertIsInstance(a["response"], str)
        self.assertGreater(len(a["response"]), 0)
        self.assertLessEqual(len(a["response"].encode()), 4096, len(a["response"]))
        self.assertTrue(big.decode().startswith(a["response"]), a["response"][:80])

    def test_keep_alive_connection_reuse(self):
        recv = self.receiver()
        d = self.daemon()
        app = h.create_app(d)
        ep = h.create_endpoint(d, app, recv.url("/ka"))
        n = 20
        for i in range(n):
            mid = h.publish(d, app, "ping.sent", {"i": i})["id"]
            # One at a time, each fully done (response read, success recorded) before the
            # next: nothing forces a new connection.
            recv.wait_for(1, path="/ka", webhook_id=mid)
            h.wait_delivery_state(d, app, mid, ep["id"], "succeeded")
        reqs = recv.get(path="/ka")
        self.assertEqual(len(reqs), n)
        ports = [r.client_port for r in reqs]
        distinct = len(set(ports))
        sys.stderr.write(f"keep-alive: {n} deliveries over {distinct} connection(s)\n")
        self.assertLess(distinct, n, f"no connection reuse: ports {ports}")
        self.assertLessEqual(distinct, 3, f"connections are not reused: ports {ports}")

    def test_keep_alive_reuse_many_endpoints_one_receiver(self):
        # The transport keeps connections in 16 caches, an endpoint's always in the same one
        # (core/transport_http.c): 20 endpoints of one receiver, 3 rounds one delivery at a
        # time, so every delivery finds its endpoint's idle connection from the round before.
        recv = self.receiver()
        d = self.daemon()
        app = h.create_app(d)
        eps = [h.create_endpoint(d, app, recv.url(f"/many/{i}"), event_types=[f"t{i}"])
               for i in range(20)]
        for rnd in range(3):
            for i, ep in enumerate(eps):
                mid = h.publish(d, app, f"t{i}", {"round": rnd})["id"]
                h.wait_delivery_state(d, app, mid, ep["id"], "succeeded", attempts=1)
        reqs = [r for r in recv.get() if r.path.startswith("/many/")]
        self.assertEqual(len(reqs), 60)
        distinct = len({r.client_port for r in reqs})
        sys.stderr.write(f"keep-alive, 20 endpoints: 60 deliveries over {distinct} connection(s)\n")
        self.assertLessEqual(distinct, 20, "an endpoint's connection was not reused")

    def test_receiver_closing_connections(self):
        # The transport keeps an idle connection's socket in the event loop between requests
        # and must let go of it when the connection is closed, by the receiver while idle or
        # by hookd after "Connection: close" (a socket number is reused at once, so a stale
        # registration would leave the next connection unwatched): every delivery still
        # succeeds at its first attempt, each on a new connection.
        d = self.daemon()
        n = 5
        for announce in (False, True):
            app = h.create_app(d)  # one endpoint per app: each receiver gets only its own
            recv = ClosingReceiver(announce)
            self.addCleanup(recv.close)
            path = "/announced" if announce else "/idle-closed"
            ep = h.create_endpoint(d, app, recv.url(path), retry_schedule=[3600])
            for i in range(n):
                mid = h.publish(d, app, "ping.sent", {"i": i})["id"]
                dl = h.wait_delivery_state(d, app, mid, ep["id"], "succeeded", attempts=1)
                self.assertEqual(dl.get("last_status"), 200, dl)
                time.sleep(0.3)  # the receiver's close arrives while the connection is idle
            with recv.lock:
                self.assertEqual((recv.connections, recv.requests), (n, n), path)
        st, _ = d.api("GET", "/healthz", auth=False)
        self.assertEqual(st, 200)


if __name__ == "__main__":
    h.main()

"""The broker transport plugins end to end: nats (core and JetStream), redis, mqtt.

Each test starts the real hookd (which loads the plugins from the build tree) and the real
server (nats-server, redis-server, mosquitto) on free loopback ports; the consumer side is
peers_brokers' minimal clients. Every delivery is checked where it landed: the body, the
message id and a signature that verifies, with Python's verifier and with `hookd verify`.
The failure cases take the server away (or leave out the JetStream stream, or put a key of
the wrong type where the Redis stream goes): the attempts fail and are recorded, then the
server comes back on the same port and the message lands exactly once, with the same id.
"""

import json
import os
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hookdtest as h  # noqa: E402
import peers_brokers as pb  # noqa: E402

# Retries every second (with hookd's jitter), enough of them that the delivery is still
# pending when the test brings the server back.
SCHEDULE = [1] * 30


class BrokerCase(h.HookdCase):

    def peer(self, obj):
        """Closes obj (a server or a client) after the test, printing a server's log when
        the test failed."""
        def done():
            if isinstance(obj, pb._Server) and self._failed():
                sys.stderr.write(f"\n----- {self.id()}: {obj.name} log -----\n{obj.log()}\n")
            obj.close()
        self.addCleanup(done)
        return obj

    def assertSigned(self, secret, headers, body, msg_id):
        """headers (lower-case names) carry the Standard Webhooks headers for msg_id and a
        signature of body that both verifiers accept."""
        self.assertEqual(headers.get("webhook-id"), msg_id, headers)
        self.assertTrue(headers.get("webhook-timestamp"), headers)
        self.assertTrue(h.verify_v1(secret, headers, body),
                        f"signature does not verify: {headers!r} {body[:200]!r}")
        r = subprocess.run([h.hookd_bin(), "verify", "--secret", secret, "--id", msg_id,
                            "--timestamp", headers["webhook-timestamp"],
                            "--signature", headers["webhook-signature"]],
                           input=body, capture_output=True, timeout=30 * h.SCALE)
        self.assertEqual(r.returncode, 0, f"hookd verify refused it: {r.stdout!r} {r.stderr!r}")

    def assertEnvelope(self, body, msg_id, type_, data):
        env = json.loads(body)
        self.assertEqual(env.get("type"), type_, env)
        self.assertEqual(env.get("data"), data, env)

    def wait_failed_attempts(self, d, app, msg_id, n, contains, endpoint_id=None):
        """Waits for n failed attempts (to endpoint_id, when given) whose error contains
        `contains`; returns them."""
        def pred():
            at = [a for a in h.get_attempts(d, app, msg_id)
                  if endpoint_id is None or a["endpoint_id"] == endpoint_id]
            bad = [a for a in at if a.get("error")]
            if len(bad) >= n:
                return at
            return None
        at = h.wait_until(pred, timeout=30, interval=0.1,
                          message=f"{n} failed attempts of {msg_id}")
        for a in at:
            self.assertIn(contains, a["error"] or "", at)
        return at

    def hold(self, d, app, ep, msg_id):
        """Disables ep and waits until the delivery of msg_id is held (not in flight): the
        next attempt is made only when the test re-enables the endpoint."""
        st, b = d.api("PATCH", f"/v1/apps/{app['id']}/endpoints/{ep['id']}", {"disabled": True})
        self.assertEqual(st, 200, b)

        def held():
            dl = h.delivery_for(h.get_message(d, app, msg_id), ep["id"])
            return dl if dl and dl.get("waiting_for") == "endpoint_disabled" else None
        h.wait_until(held, timeout=30, message=f"delivery of {msg_id} held")

    def release(self, d, app, ep):
        st, b = d.api("PATCH", f"/v1/apps/{app['id']}/endpoints/{ep['id']}", {"disabled": False})
        self.assertEqual(st, 200, b)

    def assertOneSuccessLast(self, d, app, msg_id, ep):
        """The delivery succeeded on its last attempt, every earlier one failed."""
        dl = h.wait_delivery_state(d, app, msg_id, ep["id"], "succeeded", timeout=30)
        at = h.get_attempts(d, app, msg_id)
        self.assertEqual(len(at), dl["attempts"], at)
        self.assertGreaterEqual(len(at), 3, at)
        self.assertIsNone(at[-1]["error"], at)
        for a in at[:-1]:
            self.assertTrue(a["error"], at)
        self.assertEqual([a["attempt"] for a in at], list(range(1, len(at) + 1)), at)
        return at


class NatsTest(BrokerCase):

    def test_core_publish_delivered_with_headers(self):
        srv = self.peer(pb.NatsServer())
        sub = self.peer(pb.NatsClient(srv.port))
        sid = sub.subscribe("orders.created")
        d = self.daemon()
        app = h.create_app(d)
        ep = h.create_endpoint(d, app, srv.url("orders.created"),
                               headers={"X-Tenant": "acme"})
        msg_id = h.publish(d, app, "order.created", {"order": 7})["id"]

        m = sub.wait_messages(sid, 1)[0]
        self.assertEqual(m.subject, "orders.created")
        self.assertSigned(ep["secret"], m.headers, m.data, msg_id)
        self.assertEqual(m.headers.get("nats-msg-id"), msg_id, m.headers)
        self.assertEqual(m.headers.get("content-type"), "application/json", m.headers)
        self.assertEqual(m.headers.get("x-tenant"), "acme", m.headers)
        self.assertEnvelope(m.data, msg_id, "order.created", {"order": 7})
        h.wait_delivery_state(d, app, msg_id, ep["id"], "succeeded", attempts=1)

    def test_server_down_retried_then_delivered_once(self):
        srv = self.peer(pb.NatsServer(start=False))
        d = self.daemon()
        app = h.create_app(d)
        ep = h.create_endpoint(d, app, srv.url("orders.paid"), retry_schedule=SCHEDULE)
        msg_id = h.publish(d, app, "order.paid", {"order": 8})["id"]
        self.wait_failed_attempts(d, app, msg_id, 2, f"cannot connect to nats://127.0.0.1:{srv.port}")

        # Core NATS keeps nothing for a subscriber that is not there yet: hold the delivery
        # while the server comes back and the subscriber subscribes.
        self.hold(d, app, ep, msg_id)
        srv.start()
        sub = self.peer(pb.NatsClient(srv.port))
        sid = sub.subscribe("orders.paid")
        self.release(d, app, ep)

        self.assertOneSuccessLast(d, app, msg_id, ep)
        got = sub.messages(sid)
        self.assertEqual(len(got), 1, got)
        self.assertSigned(ep["secret"], got[0].headers, got[0].data, msg_id)

    def test_server_restart_reconnects(self):
        """A connection the server closed is replaced on the next attempt."""
        srv = self.peer(pb.NatsServer())
        sub = self.peer(pb.NatsClient(srv.port))
        sid = sub.subscribe("orders.>")
        d = self.daemon()
        app = h.create_app(d)
        ep = h.create_endpoint(d, app, srv.url("orders.one"), retry_schedule=SCHEDULE)
        first = h.publish(d, app, "order.one", {"n": 1})["id"]
        sub.wait_messages(sid, 1)
        h.wait_delivery_state(d, app, first, ep["id"], "succeeded", attempts=1)
        sub.close()
        srv.stop()
        srv.start()
        sub = self.peer(pb.NatsClient(srv.port))
        sid = sub.subscribe("orders.>")
        second = h.publish(d, app, "order.one", {"n": 2})["id"]
        h.wait_delivery_state(d, app, second, ep["id"], "succeeded", timeout=30)
        got = sub.wait_messages(sid, 1)
        self.assertEqual([m.headers.get("webhook-id") for m in got], [second], got)

    def test_server_hanging_times_out_then_delivered(self):
        """A server that stops answering (SIGSTOP) fails the attempt when the flush is not
        confirmed in time; once it answers again the retry is delivered. What it had
        buffered is delivered too (at least once), always with the same webhook-id."""
        srv = self.peer(pb.NatsServer())
        sub = self.peer(pb.NatsClient(srv.port))
        sid = sub.subscribe("hang.x")
        d = self.daemon(delivery={"timeout_ms": 2000})
        app = h.create_app(d)
        ep = h.create_endpoint(d, app, srv.url("hang.x"), retry_schedule=SCHEDULE)
        first = h.publish(d, app, "order.created", {"order": 17})["id"]
        h.wait_delivery_state(d, app, first, ep["id"], "succeeded", attempts=1)
        srv.pause()
        msg_id = h.publish(d, app, "order.created", {"order": 18})["id"]
        at = self.wait_failed_attempts(d, app, msg_id, 1, "")
        self.assertRegex(at[0]["error"], r"did not confirm the publish|timed out", at)
        srv.resume()
        h.wait_delivery_state(d, app, msg_id, ep["id"], "succeeded", timeout=30)
        got = sub.wait_messages(sid, 2)
        self.assertEqual({m.headers.get("webhook-id") for m in got}, {first, msg_id}, got)
        sys.stderr.write(f"  attempts: {[a['error'] for a in h.get_attempts(d, app, msg_id)]}\n")

    def test_jetstream_acked(self):
        srv = self.peer(pb.NatsServer(jetstream=True))
        cli = self.peer(pb.NatsClient(srv.port))
        cli.stream_create("ORDERS", ["orders.>"])
        d = self.daemon()
        app = h.create_app(d)
        ep = h.create_endpoint(d, app, srv.url("orders.shipped", "jetstream=1"))
        msg_id = h.publish(d, app, "order.shipped", {"order": 9})["id"]

        h.wait_delivery_state(d, app, msg_id, ep["id"], "succeeded", attempts=1)
        self.assertEqual(cli.stream_messages("ORDERS"), 1)
        hdrs, data, subject = cli.stream_get("ORDERS", 1)
        self.assertEqual(subject, "orders.shipped")
        self.assertEqual(hdrs.get("nats-msg-id"), msg_id, hdrs)
        self.assertSigned(ep["secret"], hdrs, data, msg_id)
        self.assertEnvelope(data, msg_id, "order.shipped", {"order": 9})

    def test_jetstream_without_stream_fails_until_there_is_one(self):
        srv = self.peer(pb.NatsServer(jetstream=True))
        cli = self.peer(pb.NatsClient(srv.port))
        d = self.daemon()
        app = h.create_app(d)
        ep = h.create_endpoint(d, app, srv.url("orders.refunded", "jetstream=1"),
                               retry_schedule=SCHEDULE)
        msg_id = h.publish(d, app, "order.refunded", {"order": 10})["id"]
        # Core NATS would call this delivered (the server read it); JetStream has no stream
        # to store it, so no ack: a failed attempt, retried.
        self.wait_failed_attempts(d, app, msg_id, 2, "no stream stores the subject")

        cli.stream_create("REFUNDS", ["orders.refunded"])
        self.assertOneSuccessLast(d, app, msg_id, ep)
        self.assertEqual(cli.stream_messages("REFUNDS"), 1)
        hdrs, data, _ = cli.stream_get("REFUNDS", 1)
        self.assertEqual(hdrs.get("nats-msg-id"), msg_id, hdrs)
        self.assertSigned(ep["secret"], hdrs, data, msg_id)

    def test_jetstream_server_dies_before_the_ack(self):
        """The connection closes with a publish unacknowledged: that attempt fails at once
        (not at its timeout), and the retry lands once the server is back."""
        srv = self.peer(pb.NatsServer(jetstream=True))
        cli = self.peer(pb.NatsClient(srv.port))
        cli.stream_create("DIES", ["dies.x"])
        cli.close()
        d = self.daemon(delivery={"timeout_ms": 600000})
        app = h.create_app(d)
        ep = h.create_endpoint(d, app, srv.url("dies.x", "jetstream=1"), retry_schedule=SCHEDULE)
        first = h.publish(d, app, "order.created", {"order": 19})["id"]
        h.wait_delivery_state(d, app, first, ep["id"], "succeeded", attempts=1)
        srv.pause()
        msg_id = h.publish(d, app, "order.created", {"order": 20})["id"]
        # handed to libnats (its counter counts a publish it accepted), not yet acked
        h.wait_until(lambda: h.metric(d, "hookd_plugin_nats_published_total") == 2,
                     timeout=30, message="the second JetStream publish in flight")
        srv.kill()
        self.wait_failed_attempts(d, app, msg_id, 1, "closed before JetStream acknowledged")
        srv.start()  # the same store: the stream is still there
        h.wait_delivery_state(d, app, msg_id, ep["id"], "succeeded", timeout=30)
        cli = self.peer(pb.NatsClient(srv.port))
        self.assertEqual(cli.stream_messages("DIES"), 2)
        hdrs, _, _ = cli.stream_get("DIES", 2)
        self.assertEqual(hdrs.get("nats-msg-id"), msg_id, hdrs)

    def test_jetstream_deduplicates_by_message_id(self):
        """Nats-Msg-Id is the webhook-id: a second publish of the same message (here: two
        endpoints on one subject; in life: a retry whose ack was lost) is acknowledged as
        a duplicate and stored once."""
        srv = self.peer(pb.NatsServer(jetstream=True))
        cli = self.peer(pb.NatsClient(srv.port))
        cli.stream_create("DEDUP", ["dedup.x"])
        d = self.daemon()
        app = h.create_app(d)
        ep1 = h.create_endpoint(d, app, srv.url("dedup.x", "jetstream=1"))
        ep2 = h.create_endpoint(d, app, srv.url("dedup.x", "jetstream=true"))
        msg_id = h.publish(d, app, "order.created", {"order": 16})["id"]
        h.wait_delivery_state(d, app, msg_id, ep1["id"], "succeeded", attempts=1)
        h.wait_delivery_state(d, app, msg_id, ep2["id"], "succeeded", attempts=1)
        self.assertEqual(cli.stream_messages("DEDUP"), 1)
        hdrs, _, _ = cli.stream_get("DEDUP", 1)
        self.assertEqual(hdrs.get("nats-msg-id"), msg_id, hdrs)

    def test_jetstream_by_plugin_option(self):
        """plugins.options.nats.jetstream: true makes every nats endpoint JetStream unless
        its URL says jetstream=0."""
        srv = self.peer(pb.NatsServer(jetstream=True))
        cli = self.peer(pb.NatsClient(srv.port))
        sub = cli.subscribe("plain.>")
        d = self.daemon(extra={"plugins": {"options": {"nats": {"jetstream": True}}}})
        app = h.create_app(d)
        ep = h.create_endpoint(d, app, srv.url("opt.js"), retry_schedule=SCHEDULE)
        ep0 = h.create_endpoint(d, app, srv.url("plain.core", "jetstream=0"))
        msg_id = h.publish(d, app, "order.created", {"order": 13})["id"]
        self.wait_failed_attempts(d, app, msg_id, 1, "no stream stores the subject", ep["id"])
        h.wait_delivery_state(d, app, msg_id, ep0["id"], "succeeded", attempts=1)
        self.assertEqual([m.headers.get("webhook-id") for m in cli.messages(sub)], [msg_id])
        cli.stream_create("OPT", ["opt.js"])
        h.wait_delivery_state(d, app, msg_id, ep["id"], "succeeded", timeout=30)
        self.assertEqual(cli.stream_messages("OPT"), 1)

    def test_bad_plugin_option_refused_at_start(self):
        d = self.daemon(start=False,
                        extra={"plugins": {"options": {"nats": {"jetstream": "maybe"}}}})
        with self.assertRaises(h.DaemonError) as cm:
            d.start()
        self.assertIn("plugins.options.nats.jetstream must be true or false", str(cm.exception))

    def test_destination_guard_applies(self):
        """Loopback not allowed: the attempt is refused before the plugin connects; the server
        sees no client."""
        srv = self.peer(pb.NatsServer())
        sub = self.peer(pb.NatsClient(srv.port))
        sid = sub.subscribe(">")
        d = self.daemon(allow_destinations=["::1/128"])
        app = h.create_app(d)
        ep = h.create_endpoint(d, app, srv.url("guarded"), retry_schedule=[1])
        msg_id = h.publish(d, app, "order.created", {"order": 14})["id"]
        dl = h.wait_delivery_state(d, app, msg_id, ep["id"], "dead", attempts=2, timeout=30)
        self.assertIn("destination blocked", dl["last_error"], dl)
        sub.flush()
        self.assertEqual(sub.messages(sid), [])
        self.assertNotIn("connected to nats://", d.log())

    def test_credentials_from_plugin_options(self):
        srv = self.peer(pb.NatsServer(user="hookd", password="right"))
        sub = self.peer(pb.NatsClient(srv.port, user="hookd", password="right"))
        sid = sub.subscribe("auth.x")
        d = self.daemon(extra={"plugins": {"options": {"nats": {"user": "hookd",
                                                                 "password": "pw-wrong-7"}}}})
        app = h.create_app(d)
        ep = h.create_endpoint(d, app, srv.url("auth.x"), retry_schedule=SCHEDULE)
        msg_id = h.publish(d, app, "order.created", {"order": 21})["id"]
        self.wait_failed_attempts(d, app, msg_id, 1, "Authorization Violation")
        self.assertNotIn("pw-wrong-7", json.dumps(h.get_attempts(d, app, msg_id)) + d.log())

        d.stop()
        d.config["plugins"]["options"]["nats"]["password"] = "right"
        d.write_config()
        d.start()
        h.wait_delivery_state(d, app, msg_id, ep["id"], "succeeded", timeout=30)
        got = sub.wait_messages(sid, 1)
        self.assertEqual([m.headers.get("webhook-id") for m in got], [msg_id], got)

    def test_url_checks(self):
        d = self.daemon()
        app = h.create_app(d)
        for url, why in (("nats://127.0.0.1:4222/", "the subject must not be empty"),
                         ("nats://127.0.0.1:4222/orders.*", "wildcards"),
                         ("nats://127.0.0.1:4222/orders..x", "empty token"),
                         ("nats://127.0.0.1:4222/orders?jetstream=maybe", "jetstream must be"),
                         ("nats://127.0.0.1:4222/orders?stream=x", "unknown URL parameter")):
            st, b = d.api("POST", f"/v1/apps/{app['id']}/endpoints", {"url": url})
            self.assertEqual(st, 400, (url, b))
            e = h.error_of(b)
            self.assertEqual(e["field"], "url", b)
            self.assertIn(why, e["message"], (url, b))


class RedisTest(BrokerCase):

    def test_xadd_delivered(self):
        srv = self.peer(pb.RedisServer())
        cli = self.peer(pb.RedisClient(srv.port))
        d = self.daemon()
        app = h.create_app(d)
        ep = h.create_endpoint(d, app, srv.url("hooks"))
        msg_id = h.publish(d, app, "invoice.paid", {"invoice": 1})["id"]

        h.wait_delivery_state(d, app, msg_id, ep["id"], "succeeded", attempts=1)
        entries = cli.xrange("hooks")
        self.assertEqual(len(entries), 1, entries)
        fields = entries[0][1]
        self.assertEqual(sorted(fields), ["body", "headers", "id", "type"], fields)
        self.assertEqual(fields["id"].decode(), msg_id)
        self.assertEqual(fields["type"].decode(), "invoice.paid")
        headers = {k.lower(): v for k, v in json.loads(fields["headers"]).items()}
        self.assertSigned(ep["secret"], headers, fields["body"], msg_id)
        self.assertEnvelope(fields["body"], msg_id, "invoice.paid", {"invoice": 1})

    def test_server_down_retried_then_delivered_once(self):
        srv = self.peer(pb.RedisServer(start=False))
        d = self.daemon()
        app = h.create_app(d)
        ep = h.create_endpoint(d, app, srv.url("hooks"), retry_schedule=SCHEDULE)
        msg_id = h.publish(d, app, "invoice.paid", {"invoice": 2})["id"]
        self.wait_failed_attempts(d, app, msg_id, 2, f"redis://127.0.0.1:{srv.port}")

        srv.start()  # the stream lives in the server: no need to hold the delivery
        self.assertOneSuccessLast(d, app, msg_id, ep)
        cli = self.peer(pb.RedisClient(srv.port))
        entries = cli.xrange("hooks")
        self.assertEqual([e[1]["id"].decode() for e in entries], [msg_id], entries)
        headers = json.loads(entries[0][1]["headers"])
        self.assertSigned(ep["secret"], headers, entries[0][1]["body"], msg_id)

    def test_error_reply_retried(self):
        srv = self.peer(pb.RedisServer())
        cli = self.peer(pb.RedisClient(srv.port))
        cli.call("SET", "hooks", "not a stream")
        d = self.daemon()
        app = h.create_app(d)
        ep = h.create_endpoint(d, app, srv.url("hooks"), retry_schedule=SCHEDULE)
        msg_id = h.publish(d, app, "invoice.paid", {"invoice": 3})["id"]
        self.wait_failed_attempts(d, app, msg_id, 2, "WRONGTYPE")

        cli.call("DEL", "hooks")
        self.assertOneSuccessLast(d, app, msg_id, ep)
        self.assertEqual([e[1]["id"].decode() for e in cli.xrange("hooks")], [msg_id])

    def test_server_hanging_times_out_then_delivered(self):
        """A server that stops answering (SIGSTOP): the host times the attempt out, the
        plugin drops that connection; once the server answers again a retry is delivered.
        Every entry carries the one message id (what the hung server had read lands too:
        at least once)."""
        srv = self.peer(pb.RedisServer())
        d = self.daemon(delivery={"timeout_ms": 1000})
        app = h.create_app(d)
        ep = h.create_endpoint(d, app, srv.url("hooks"), retry_schedule=SCHEDULE)
        srv.pause()
        msg_id = h.publish(d, app, "invoice.paid", {"invoice": 4})["id"]
        at = self.wait_failed_attempts(d, app, msg_id, 2, "timed out")
        srv.resume()
        h.wait_delivery_state(d, app, msg_id, ep["id"], "succeeded", timeout=30)
        cli = self.peer(pb.RedisClient(srv.port))
        ids = {e[1]["id"].decode() for e in cli.xrange("hooks")}
        self.assertEqual(ids, {msg_id})
        self.assertIn("cancelled, to be retried", d.log())
        sys.stderr.write(f"  attempts: {[a['error'] for a in h.get_attempts(d, app, msg_id)]}; "
                         f"entries: {len(cli.xrange('hooks'))}\n")

    def test_server_restart_reconnects(self):
        srv = self.peer(pb.RedisServer())
        d = self.daemon()
        app = h.create_app(d)
        ep = h.create_endpoint(d, app, srv.url("hooks"), retry_schedule=SCHEDULE)
        first = h.publish(d, app, "invoice.paid", {"n": 1})["id"]
        h.wait_delivery_state(d, app, first, ep["id"], "succeeded", attempts=1)
        srv.stop()
        srv.start()  # empty: no persistence
        second = h.publish(d, app, "invoice.paid", {"n": 2})["id"]
        h.wait_delivery_state(d, app, second, ep["id"], "succeeded", timeout=30)
        cli = self.peer(pb.RedisClient(srv.port))
        self.assertEqual([e[1]["id"].decode() for e in cli.xrange("hooks")], [second])

    def test_password_from_plugin_options(self):
        srv = self.peer(pb.RedisServer(password="right"))
        d = self.daemon(extra={"plugins": {"options": {"redis": {"password": "pw-wrong-7"}}}})
        app = h.create_app(d)
        ep = h.create_endpoint(d, app, srv.url("hooks"), retry_schedule=SCHEDULE)
        msg_id = h.publish(d, app, "invoice.paid", {"invoice": 5})["id"]
        self.wait_failed_attempts(d, app, msg_id, 1, f"redis://127.0.0.1:{srv.port} refused AUTH")
        self.assertNotIn("pw-wrong-7", json.dumps(h.get_attempts(d, app, msg_id)) + d.log())

        d.stop()
        d.config["plugins"]["options"]["redis"]["password"] = "right"
        d.write_config()
        d.start()
        h.wait_delivery_state(d, app, msg_id, ep["id"], "succeeded", timeout=30)
        cli = self.peer(pb.RedisClient(srv.port, password="right"))
        self.assertEqual([e[1]["id"].decode() for e in cli.xrange("hooks")], [msg_id])

    def test_url_checks(self):
        d = self.daemon()
        app = h.create_app(d)
        for url, why in (("redis://127.0.0.1:6379/", "the stream must not be empty"),
                         ("redis://127.0.0.1:6379/s?maxlen=-1", "maxlen must be"),
                         ("redis://127.0.0.1:6379/s?db=2", "unknown URL parameter")):
            st, b = d.api("POST", f"/v1/apps/{app['id']}/endpoints", {"url": url})
            self.assertEqual(st, 400, (url, b))
            e = h.error_of(b)
            self.assertEqual(e["field"], "url", b)
            self.assertIn(why, e["message"], (url, b))


class MqttTest(BrokerCase):

    def test_publish_qos1_delivered(self):
        srv = self.peer(pb.Mosquitto())
        sub = self.peer(pb.MqttSubscriber(srv.port, "hooks/#"))
        d = self.daemon()
        app = h.create_app(d)
        ep = h.create_endpoint(d, app, srv.url("hooks/orders"))
        msg_id = h.publish(d, app, "order.created", {"order": 11})["id"]

        m = sub.wait_messages(1)[0]
        self.assertEqual(m.topic, "hooks/orders")
        self.assertEqual(m.qos, 1)
        self.assertEqual(m.content_type, "application/json")
        self.assertSigned(ep["secret"], m.headers, m.payload, msg_id)
        self.assertEnvelope(m.payload, msg_id, "order.created", {"order": 11})
        h.wait_delivery_state(d, app, msg_id, ep["id"], "succeeded", attempts=1)

    def test_broker_down_retried_then_delivered_once(self):
        srv = self.peer(pb.Mosquitto(start=False))
        d = self.daemon()
        app = h.create_app(d)
        ep = h.create_endpoint(d, app, srv.url("hooks/paid"), retry_schedule=SCHEDULE)
        msg_id = h.publish(d, app, "order.paid", {"order": 12})["id"]
        self.wait_failed_attempts(d, app, msg_id, 2, f"mqtt://127.0.0.1:{srv.port}")

        self.hold(d, app, ep, msg_id)
        srv.start()
        sub = self.peer(pb.MqttSubscriber(srv.port, "hooks/#"))
        self.release(d, app, ep)

        self.assertOneSuccessLast(d, app, msg_id, ep)
        got = sub.messages()
        self.assertEqual(len(got), 1, got)
        self.assertSigned(ep["secret"], got[0].headers, got[0].payload, msg_id)

    def test_refused_publish_retried(self):
        """A PUBACK with an error reason is a failed attempt, not a delivery."""
        srv = self.peer(pb.Mosquitto(acl="topic read #\n"))
        d = self.daemon()
        app = h.create_app(d)
        ep = h.create_endpoint(d, app, srv.url("hooks/acl"), retry_schedule=SCHEDULE)
        msg_id = h.publish(d, app, "order.paid", {"order": 15})["id"]
        self.wait_failed_attempts(d, app, msg_id, 2, "the broker refused the publish to "
                                                     "hooks/acl: Not authorized (0x87)")

        self.hold(d, app, ep, msg_id)
        srv.stop()
        srv.acl = None
        srv.start()
        sub = self.peer(pb.MqttSubscriber(srv.port, "hooks/#"))
        self.release(d, app, ep)
        self.assertOneSuccessLast(d, app, msg_id, ep)
        got = sub.messages()
        self.assertEqual([m.headers.get("webhook-id") for m in got], [msg_id], got)

    def test_broker_restart_reconnects(self):
        srv = self.peer(pb.Mosquitto())
        sub = self.peer(pb.MqttSubscriber(srv.port, "hooks/#"))
        d = self.daemon()
        app = h.create_app(d)
        ep = h.create_endpoint(d, app, srv.url("hooks/one"), retry_schedule=SCHEDULE)
        first = h.publish(d, app, "order.one", {"n": 1})["id"]
        sub.wait_messages(1)
        h.wait_delivery_state(d, app, first, ep["id"], "succeeded", attempts=1)
        sub.close()
        srv.stop()
        srv.start()
        sub = self.peer(pb.MqttSubscriber(srv.port, "hooks/#"))
        second = h.publish(d, app, "order.one", {"n": 2})["id"]
        h.wait_delivery_state(d, app, second, ep["id"], "succeeded", timeout=30)
        got = sub.wait_messages(1)
        self.assertEqual([m.headers.get("webhook-id") for m in got], [second], got)

    def test_credentials_from_plugin_options(self):
        srv = self.peer(pb.Mosquitto(user="hookd", password="right"))
        sub = self.peer(pb.MqttSubscriber(srv.port, "hooks/#", user="hookd", password="right"))
        d = self.daemon(extra={"plugins": {"options": {"mqtt": {"username": "hookd",
                                                                 "password": "pw-wrong-7"}}}})
        app = h.create_app(d)
        ep = h.create_endpoint(d, app, srv.url("hooks/auth"), retry_schedule=SCHEDULE)
        msg_id = h.publish(d, app, "order.created", {"order": 22})["id"]
        self.wait_failed_attempts(d, app, msg_id, 1, "the broker refused the connection")
        self.assertNotIn("pw-wrong-7", json.dumps(h.get_attempts(d, app, msg_id)) + d.log())

        d.stop()
        d.config["plugins"]["options"]["mqtt"]["password"] = "right"
        d.write_config()
        d.start()
        h.wait_delivery_state(d, app, msg_id, ep["id"], "succeeded", timeout=30)
        got = sub.wait_messages(1)
        self.assertEqual([m.headers.get("webhook-id") for m in got], [msg_id], got)

    def test_url_checks(self):
        d = self.daemon()
        app = h.create_app(d)
        for url, why in (("mqtt://127.0.0.1:1883/", "the topic must not be empty"),
                         ("mqtt://127.0.0.1:1883/hooks/+/x", "wildcards"),
                         ("mqtt://127.0.0.1:1883/hooks?qos=2", "no parameters")):
            st, b = d.api("POST", f"/v1/apps/{app['id']}/endpoints", {"url": url})
            self.assertEqual(st, 400, (url, b))
            e = h.error_of(b)
            self.assertEqual(e["field"], "url", b)
            self.assertIn(why, e["message"], (url, b))


if __name__ == "__main__":
    h.main()

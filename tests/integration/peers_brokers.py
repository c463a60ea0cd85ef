"""peers_brokers - real message brokers for the transport plugins' tests (nats, redis, mqtt).

Standard library only. Each server class starts the real binary from the install step
(nats-server, redis-server, mosquitto) on a free 127.0.0.1 port, with a temp dir and a config
of its own (never the system's service or its default port), and stops it; start() after
stop() comes back on the same port. Each client speaks just enough of the protocol to check
what hookd delivered:

  NatsServer / NatsClient     core NATS subscribe (with headers), request, JetStream API
  RedisServer / RedisClient   RESP commands (XRANGE, DEL, SET, ...)
  Mosquitto / MqttSubscriber  an MQTT 5 subscriber (QoS 1, user properties)
"""

import base64
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time

import hookdtest as h

HOST = h.HOST


def _wait_listening(port, proc, name, log_path, timeout=15.0):
    deadline = time.monotonic() + timeout * h.SCALE
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"{name} exited with {proc.returncode} during start-up:\n"
                                 f"{_tail(log_path)}")
        try:
            with socket.create_connection((HOST, port), timeout=1):
                return
        except OSError:
            pass
        if time.monotonic() >= deadline:
            raise AssertionError(f"{name} did not listen on {HOST}:{port} within "
                                 f"{timeout * h.SCALE:.0f}s:\n{_tail(log_path)}")
        time.sleep(0.05)


def _tail(path, n=40):
    try:
        with open(path, "rb") as f:
            return "\n".join(f.read().decode("utf-8", "replace").splitlines()[-n:])
    except OSError:
        return ""


class _Server:
    """A broker process on a fixed free port; subclasses give the command line."""

    binary = None

    def __init__(self, start=True):
        if not shutil.which(self.binary) and not os.path.exists(self.binary):
            raise AssertionError(f"{self.binary} is not installed (make test-deps installs it)")
        self.tmp = tempfile.mkdtemp(prefix=f"hookd-{self.name}-")
        self.port = h.free_port()
        self.log_path = os.path.join(self.tmp, f"{self.name}.log")
        self.proc = None
        self._logf = None
        if start:
            self.start()

    def command(self):
        raise NotImplementedError

    def start(self):
        if self.running():
            raise AssertionError(f"{self.name} already running")
        self._logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=self._logf,
                                     stderr=subprocess.STDOUT, cwd=self.tmp)
        _wait_listening(self.port, self.proc, self.name, self.log_path)
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.running():
            self.proc.send_signal(signal.SIGCONT)  # a paused server cannot act on TERM
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20 * h.SCALE)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=20)
        if self._logf:
            self._logf.close()
            self._logf = None

    def pause(self):
        """SIGSTOP: the kernel still accepts connections and buffers what clients send, but
        the server answers nothing (a server that hangs) until resume()."""
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)

    def kill(self):
        """SIGKILL (also while paused): its connections are reset, nothing is flushed."""
        if self.running():
            self.proc.kill()
            self.proc.wait(timeout=20)
        if self._logf:
            self._logf.close()
            self._logf = None

    def log(self):
        return _tail(self.log_path, 200)

    def close(self):
        try:
            self.stop()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)


# --------------------------------------------------------------------------- NATS


class NatsServer(_Server):
    """nats-server on 127.0.0.1:<port>; jetstream=True adds -js with its store in the temp
    dir, which survives stop()/start() (streams too)."""

    name = "nats"
    binary = "nats-server"

    def __init__(self, jetstream=False, start=True, user=None, password=None):
        self.jetstream = jetstream
        self.user, self.password = user, password
        super().__init__(start=start)

    def command(self):
        cmd = ["nats-server", "-a", HOST, "-p", str(self.port), "-n", "hookd-test"]
        if self.jetstream:
            cmd += ["-js", "-sd", os.path.join(self.tmp, "js")]
        if self.user:
            cmd += ["--user", self.user, "--pass", self.password]
        return cmd

    def url(self, subject, query=""):
        return f"nats://{HOST}:{self.port}/{subject}" + (f"?{query}" if query else "")


class NatsMsg:
    def __init__(self, subject, reply, headers, status, data):
        self.t_ns = time.time_ns()  # when it arrived (CLOCK_REALTIME, as bench/publish)
        self.subject = subject
        self.reply = reply
        self.headers = headers    # {lower-cased name: value}
        self.status = status      # "503" for no responders, else None
        self.data = data

    def __repr__(self):
        return f"NatsMsg({self.subject!r}, {self.headers!r}, {self.data[:80]!r})"


def parse_nats_headers(block):
    """b"NATS/1.0[ status]\\r\\nName: value\\r\\n...\\r\\n\\r\\n" -> (status or None, {name: value})."""
    lines = block.decode("utf-8", "replace").split("\r\n")
    first = lines[0].split(" ", 2)
    status = first[1] if len(first) > 1 and first[1] else None
    out = {}
    for ln in lines[1:]:
        if not ln:
            continue
        k, _, v = ln.partition(":")
        out[k.strip().lower()] = v.strip()
    return status, out


class NatsClient:
    """A core NATS client (headers on): subscribe(), request(), and the JetStream API calls
    the tests need."""

    def __init__(self, port, host=HOST, user=None, password=None):
        self.sock = socket.create_connection((host, port), timeout=10 * h.SCALE)
        self.buf = b""
        info = self._line()
        if not info.startswith(b"INFO "):
            raise AssertionError(f"nats: expected INFO, got {info!r}")
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.subs = {}      # sid -> list of NatsMsg
        self.next_sid = 1
        self.pongs = 0
        self.closed = False
        connect = {"verbose": False, "pedantic": False, "headers": True, "no_responders": True,
                   "protocol": 1, "lang": "python", "version": "0"}
        if user:
            connect.update(user=user, **{"pass": password})
        self._send(b"CONNECT " + json.dumps(connect).encode() + b"\r\n")
        self.sock.settimeout(None)
        self.reader = threading.Thread(target=self._read_loop, daemon=True)
        self.reader.start()
        self.flush()

    def _send(self, b):
        self.sock.sendall(b)

    def _fill(self):
        part = self.sock.recv(65536)
        if not part:
            raise EOFError
        self.buf += part

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def _bytes(self, n):
        while len(self.buf) < n + 2:
            self._fill()
        b, self.buf = self.buf[:n], self.buf[n + 2:]
        return b

    def _read_loop(self):
        try:
            while True:
                line = self._line()
                op = line.split(b" ", 1)[0].upper()
                if op == b"PING":
                    self._send(b"PONG\r\n")
                elif op == b"PONG":
                    with self.cond:
                        self.pongs += 1
                        self.cond.notify_all()
                elif op in (b"MSG", b"HMSG"):
                    parts = line.decode().split(" ")
                    if op == b"MSG":
                        subj, sid = parts[1], parts[2]
                        reply = parts[3] if len(parts) == 5 else None
                        n = int(parts[-1])
                        data = self._bytes(n)
                        status, hdrs = None, {}
                    else:
                        subj, sid = parts[1], parts[2]
                        reply = parts[3] if len(parts) == 6 else None
                        hlen, total = int(parts[-2]), int(parts[-1])
                        raw = self._bytes(total)
                        status, hdrs = parse_nats_headers(raw[:hlen])
                        data = raw[hlen:]
                    with self.cond:
                        self.subs.setdefault(int(sid), []).append(
                            NatsMsg(subj, reply, hdrs, status, data))
                        self.cond.notify_all()
                elif op == b"-ERR":
                    with self.cond:
                        self.closed = line.decode("utf-8", "replace")
                        self.cond.notify_all()
        except (EOFError, OSError):
            with self.cond:
                self.closed = self.closed or "closed"
                self.cond.notify_all()

    def flush(self, timeout=10.0):
        """PING and wait for the PONG: everything sent before is processed by the server."""
        with self.cond:
            want = self.pongs + 1
        self._send(b"PING\r\n")
        with self.cond:
            ok = self.cond.wait_for(lambda: self.pongs >= want or self.closed, timeout * h.SCALE)
            if not ok or self.pongs < want:
                raise AssertionError(f"nats: no PONG ({self.closed})")

    def subscribe(self, subject):
        with self.lock:
            sid = self.next_sid
            self.next_sid += 1
            self.subs[sid] = []
        self._send(f"SUB {subject} {sid}\r\n".encode())
        self.flush()
        return sid

    def messages(self, sid):
        with self.lock:
            return list(self.subs.get(sid, []))

    def wait_messages(self, sid, count, timeout=15.0, message="NATS messages"):
        with self.cond:
            ok = self.cond.wait_for(lambda: len(self.subs.get(sid, [])) >= count,
                                    timeout * h.SCALE)
            got = list(self.subs.get(sid, []))
        if not ok:
            raise AssertionError(f"timed out waiting for {count} {message}, got {got!r}")
        return got

    def request(self, subject, payload=b"", timeout=10.0):
        inbox = f"_INBOX.hookdtest.{self.next_sid}"
        sid = self.subscribe(inbox)
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self._send(f"PUB {subject} {inbox} {len(data)}\r\n".encode() + data + b"\r\n")
        msg = self.wait_messages(sid, 1, timeout, f"reply on {subject}")[0]
        self._send(f"UNSUB {sid}\r\n".encode())
        if msg.status == "503":
            raise AssertionError(f"nats: no responders for {subject}")
        return msg

    def js(self, api, payload=None):
        """A JetStream API call ($JS.API.<api>): the decoded JSON reply (asserts no error)."""
        msg = self.request("$JS.API." + api, payload if payload is not None else b"")
        reply = json.loads(msg.data)
        if "error" in reply:
            raise AssertionError(f"JetStream {api}: {reply['error']}")
        return reply

    def stream_create(self, name, subjects):
        return self.js(f"STREAM.CREATE.{name}",
                       {"name": name, "subjects": list(subjects), "storage": "file"})

    def stream_messages(self, name):
        """The number of messages the stream holds."""
        return self.js(f"STREAM.INFO.{name}")["state"]["messages"]

    def stream_get(self, name, seq):
        """Message seq of the stream: (headers {lower name: value}, data bytes, subject)."""
        m = self.js(f"STREAM.MSG.GET.{name}", {"seq": seq})["message"]
        hdrs = {}
        if m.get("hdrs"):
            _, hdrs = parse_nats_headers(base64.b64decode(m["hdrs"]))
        return hdrs, base64.b64decode(m.get("data") or ""), m["subject"]

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.reader.join(timeout=2)


# --------------------------------------------------------------------------- Redis


class RedisServer(_Server):
    """redis-server on 127.0.0.1:<port>, no persistence (a restart starts empty), its own
    working dir; no config file (the system's /etc/redis is not read)."""

    name = "redis"
    binary = "redis-server"

    def __init__(self, start=True, password=None):
        self.password = password
        super().__init__(start=start)

    def command(self):
        cmd = ["redis-server", "--port", str(self.port), "--bind", HOST, "--save", "",
               "--appendonly", "no", "--dir", self.tmp, "--protected-mode", "yes",
               "--daemonize", "no", "--logfile", "", "--databases", "1"]
        if self.password:
            cmd += ["--requirepass", self.password]
        return cmd

    def url(self, stream, query=""):
        return f"redis://{HOST}:{self.port}/{stream}" + (f"?{query}" if query else "")


class RedisClient:
    """RESP2 commands over one connection: call("XRANGE", "s", "-", "+")."""

    def __init__(self, port, host=HOST, password=None):
        self.sock = socket.create_connection((host, port), timeout=10 * h.SCALE)
        self.buf = b""
        if password:
            self.call("AUTH", password)

    def _fill(self):
        part = self.sock.recv(65536)
        if not part:
            raise EOFError("redis closed the connection")
        self.buf += part

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def _reply(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            raise AssertionError(f"redis error: {rest.decode()}")
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self._fill()
            b, self.buf = self.buf[:n], self.buf[n + 2:]
            return b
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        raise AssertionError(f"redis: unexpected reply {line!r}")

    def call(self, *args):
        out = [f"*{len(args)}\r\n".encode()]
        for a in args:
            b = a if isinstance(a, bytes) else str(a).encode()
            out.append(f"${len(b)}\r\n".encode() + b + b"\r\n")
        self.sock.sendall(b"".join(out))
        return self._reply()

    def xrange(self, stream):
        """[(entry id, {field: value bytes})] of the whole stream."""
        out = []
        for eid, fields in self.call("XRANGE", stream, "-", "+") or []:
            d = {fields[i].decode(): fields[i + 1] for i in range(0, len(fields), 2)}
            out.append((eid.decode(), d))
        return out

    def close(self):
        self.sock.close()


# --------------------------------------------------------------------------- MQTT


class Mosquitto(_Server):
    """mosquitto on 127.0.0.1:<port> with a config of its own: anonymous, no persistence.
    acl: the text of an acl_file (e.g. "topic read #\n": clients may subscribe but not
    publish), read at each start(); None for none."""

    name = "mosquitto"
    binary = "mosquitto"

    def __init__(self, start=True, acl=None, user=None, password=None):
        self.acl = acl
        self.user, self.password = user, password
        super().__init__(start=start)

    def command(self):
        conf = os.path.join(self.tmp, "mosquitto.conf")
        with open(conf, "w", encoding="utf-8") as f:
            f.write(f"listener {self.port} {HOST}\npersistence false\n"
                    "log_dest stdout\nlog_type error\nlog_type warning\nlog_type notice\n")
            if self.user:
                # one user; mosquitto reads the file after dropping root: readable by all
                pw = os.path.join(self.tmp, "passwd")
                subprocess.run(["mosquitto_passwd", "-c", "-b", pw, self.user, self.password],
                               check=True, capture_output=True)
                os.chmod(self.tmp, 0o755)
                os.chmod(pw, 0o644)
                f.write(f"allow_anonymous false\npassword_file {pw}\n")
            else:
                f.write("allow_anonymous true\n")
            if self.acl is not None:
                # mosquitto reads it after dropping root for its own user: readable by all
                acl = os.path.join(self.tmp, "acl")
                with open(acl, "w", encoding="utf-8") as a:
                    a.write(self.acl)
                os.chmod(self.tmp, 0o755)
                os.chmod(acl, 0o644)
                f.write(f"acl_file {acl}\n")
        return ["mosquitto", "-c", conf]

    def url(self, topic):
        return f"mqtt://{HOST}:{self.port}/{topic}"


def _varint(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _mqtt_str(s):
    b = s.encode()
    return struct.pack("!H", len(b)) + b


class MqttMsg:
    def __init__(self, topic, qos, payload, user_props, content_type):
        self.t_ns = time.time_ns()  # when it arrived (CLOCK_REALTIME, as bench/publish)
        self.topic = topic
        self.qos = qos
        self.payload = payload
        self.user_props = user_props          # [(name, value)] in order
        self.headers = {k.lower(): v for k, v in user_props}
        self.content_type = content_type

    def __repr__(self):
        return f"MqttMsg({self.topic!r}, qos={self.qos}, {self.headers!r})"


class MqttSubscriber:
    """An MQTT 5 client subscribed to one topic filter at QoS 1; records every PUBLISH
    (acknowledging QoS 1 with PUBACK)."""

    def __init__(self, port, topic, host=HOST, client_id=None, user=None, password=None):
        self.sock = socket.create_connection((host, port), timeout=10 * h.SCALE)
        self.buf = b""
        self.cond = threading.Condition()
        self.msgs = []
        self.closed = False
        cid = client_id or f"hookdtest-{os.getpid()}-{id(self)}"
        # CONNECT: protocol "MQTT" level 5, clean start (and user name and password when
        # given), keepalive 0 (none), no properties
        flags = 0x02 | (0xC0 if user else 0)
        var = _mqtt_str("MQTT") + bytes([5, flags]) + struct.pack("!H", 0) + _varint(0)
        payload = _mqtt_str(cid) + (_mqtt_str(user) + _mqtt_str(password) if user else b"")
        self._packet(0x10, var + payload)
        t, body = self._read_packet()
        if t >> 4 != 2 or body[1] != 0:
            raise AssertionError(f"mqtt: CONNACK refused: {body!r}")
        # SUBSCRIBE packet id 1, no properties, the filter at QoS 1
        self._packet(0x82, struct.pack("!H", 1) + _varint(0) + _mqtt_str(topic) + bytes([1]))
        t, body = self._read_packet()
        if t >> 4 != 9 or body[-1] > 2:
            raise AssertionError(f"mqtt: SUBACK refused: {body!r}")
        self.sock.settimeout(None)
        self.reader = threading.Thread(target=self._read_loop, daemon=True)
        self.reader.start()

    def _packet(self, first, body):
        self.sock.sendall(bytes([first]) + _varint(len(body)) + body)

    def _need(self, n):
        while len(self.buf) < n:
            part = self.sock.recv(65536)
            if not part:
                raise EOFError
            self.buf += part

    def _read_packet(self):
        self._need(2)
        first = self.buf[0]
        mult, n, i = 1, 0, 1
        while True:
            self._need(i + 1)
            b = self.buf[i]
            n += (b & 0x7F) * mult
            mult *= 128
            i += 1
            if not b & 0x80:
                break
        self._need(i + n)
        body, self.buf = self.buf[i:i + n], self.buf[i + n:]
        return first, body

    @staticmethod
    def _props(b, off):
        """Parses a properties block at off: (user props, content type, offset after)."""
        n, mult = 0, 1
        while True:
            x = b[off]
            off += 1
            n += (x & 0x7F) * mult
            mult *= 128
            if not x & 0x80:
                break
        end = off + n
        users, ctype = [], None

        def string(o):
            ln = struct.unpack("!H", b[o:o + 2])[0]
            return b[o + 2:o + 2 + ln].decode("utf-8"), o + 2 + ln

        while off < end:
            pid = b[off]
            off += 1
            if pid == 0x26:
                k, off = string(off)
                v, off = string(off)
                users.append((k, v))
            elif pid in (0x03, 0x08):
                s, off = string(off)
                if pid == 0x03:
                    ctype = s
            elif pid == 0x09:
                ln = struct.unpack("!H", b[off:off + 2])[0]
                off += 2 + ln
            elif pid == 0x01:
                off += 1
            elif pid == 0x02:
                off += 4
            elif pid == 0x23:
                off += 2
            elif pid == 0x0B:
                while b[off] & 0x80:
                    off += 1
                off += 1
            else:
                raise AssertionError(f"mqtt: unexpected PUBLISH property 0x{pid:02x}")
        return users, ctype, end

    def _read_loop(self):
        try:
            while True:
                first, body = self._read_packet()
                if first >> 4 != 3:
                    continue
                qos = (first >> 1) & 3
                tl = struct.unpack("!H", body[:2])[0]
                topic = body[2:2 + tl].decode("utf-8")
                off = 2 + tl
                pid = None
                if qos:
                    pid = struct.unpack("!H", body[off:off + 2])[0]
                    off += 2
                users, ctype, off = self._props(body, off)
                with self.cond:
                    self.msgs.append(MqttMsg(topic, qos, bytes(body[off:]), users, ctype))
                    self.cond.notify_all()
                if qos == 1:
                    self._packet(0x40, struct.pack("!H", pid))
        except (EOFError, OSError):
            with self.cond:
                self.closed = True
                self.cond.notify_all()

    def messages(self):
        with self.cond:
            return list(self.msgs)

    def wait_messages(self, count, timeout=15.0):
        with self.cond:
            ok = self.cond.wait_for(lambda: len(self.msgs) >= count, timeout * h.SCALE)
            got = list(self.msgs)
        if not ok:
            raise AssertionError(f"timed out waiting for {count} MQTT messages, got {got!r}")
        return got

    def close(self):
        try:
            self._packet(0xE0, b"\x00\x00")  # DISCONNECT, normal, no properties
        except OSError:
            pass
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.reader.join(timeout=2)

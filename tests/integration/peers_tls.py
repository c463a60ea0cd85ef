"""peers_tls - test peers for the TLS options and the egress proxy (test_tls.py, test_proxy.py).

Standard library and the `openssl` CLI only; everything listens on loopback.

  Pki           a test CA, a server certificate for 127.0.0.1 and a client certificate it
                signed, a second CA with its own client certificate, made by `openssl` in a
                temporary directory; pin() is the curl pin of a certificate's public key
  TlsReceiver   an HTTPS webhook receiver (python ssl) that records each request with the
                client certificate it came with (or None) and counts failed handshakes
  ConnectProxy  an HTTP CONNECT proxy that records every CONNECT target, tunnels to loopback
                targets only, and can be stopped and started again on the same port
"""

import base64
import hashlib
import http.server
import os
import select
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time

HOST = "127.0.0.1"


def _openssl(*args, cwd):
    r = subprocess.run(["openssl", *args], cwd=cwd, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, check=False)
    if r.returncode != 0:
        raise AssertionError(f"openssl {' '.join(args)} failed: {r.stdout.decode(errors='replace')}")
    return r.stdout


class Pki:
    """Certificates under self.dir; the *_pem attributes hold their text."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="hookd-pki-")
        d = self.dir
        self._ca("ca", "hookd test CA")
        self._ca("other_ca", "another CA")
        self._leaf("server", "ca", "127.0.0.1", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
        self._leaf("client", "ca", "hookd-client", "extendedKeyUsage=clientAuth\n")
        self._leaf("stranger", "other_ca", "stranger-client", "extendedKeyUsage=clientAuth\n")
        self.ca_pem = self.read("ca.pem")
        self.other_ca_pem = self.read("other_ca.pem")
        self.server_pem = self.read("server.pem")
        self.client_pem = self.read("client.pem")
        self.client_key = self.read("client.key")
        self.stranger_pem = self.read("stranger.pem")
        self.stranger_key = self.read("stranger.key")
        assert "BEGIN PRIVATE KEY" in self.client_key, self.client_key[:40]
        assert os.path.exists(os.path.join(d, "server.key"))

    def _ca(self, name, cn):
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                 "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2",
                 "-subj", f"/CN={cn}", cwd=self.dir)

    def _leaf(self, name, ca, cn, ext):
        with open(os.path.join(self.dir, f"{name}.ext"), "w", encoding="ascii") as f:
            f.write("basicConstraints=CA:FALSE\n" + ext)
        _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                 "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}",
                 cwd=self.dir)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
                 "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext",
                 cwd=self.dir)

    def path(self, name):
        return os.path.join(self.dir, name)

    def read(self, name):
        with open(self.path(name), encoding="ascii") as f:
            return f.read()

    def pin(self, cert_name):
        """curl's pin of a certificate: sha256// + base64 of the SHA-256 of its SPKI (DER)."""
        pub = _openssl("x509", "-in", cert_name, "-pubkey", "-noout", cwd=self.dir)
        p = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pub,
                           stdout=subprocess.PIPE, check=True)
        return "sha256//" + base64.b64encode(hashlib.sha256(p.stdout).digest()).decode()

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


class TlsRequest:
    __slots__ = ("path", "headers", "body", "peer", "client_port")

    def __init__(self, path, headers, body, peer, client_port):
        self.path, self.headers, self.body = path, headers, body
        self.peer, self.client_port = peer, client_port

    @property
    def webhook_id(self):
        return self.headers.get("webhook-id")

    def __repr__(self):
        return f"<TlsRequest {self.path} id={self.webhook_id} peer={self.peer} port={self.client_port}>"


def _peer_cn(sock):
    cert = sock.getpeercert()
    if not cert:
        return None
    for rdn in cert.get("subject", ()):
        for k, v in rdn:
            if k == "commonName":
                return v
    return "?"


class TlsReceiver:
    """HTTPS on 127.0.0.1:<free port> with the Pki's server certificate. client_cert:
    "required" (the handshake fails without one signed by the test CA), "optional" (asked
    for, recorded when given) or "none". Answers 200 to everything (keep-alive)."""

    def __init__(self, pki, client_cert="required"):
        self.lock = threading.Condition()
        self.requests = []
        self.handshake_failures = []
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(pki.path("server.pem"), pki.path("server.key"))
        if client_cert != "none":
            ctx.load_verify_locations(pki.path("ca.pem"))
            ctx.verify_mode = ssl.CERT_REQUIRED if client_cert == "required" else ssl.CERT_OPTIONAL
        recv = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *args):
                pass

            def setup(self):
                self.request.settimeout(30)
                try:
                    self.request.do_handshake()
                except (ssl.SSLError, OSError) as e:
                    with recv.lock:
                        recv.handshake_failures.append(repr(e))
                        recv.lock.notify_all()
                    raise
                self.peer = _peer_cn(self.request)
                super().setup()

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                hdrs = {k.lower(): v for k, v in self.headers.items()}
                with recv.lock:
                    recv.requests.append(TlsRequest(self.path, hdrs, body, self.peer,
                                                    self.client_address[1]))
                    recv.lock.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def get_request(self):
                conn, addr = self.socket.accept()
                return ctx.wrap_socket(conn, server_side=True, do_handshake_on_connect=False), addr

            def handle_error(self, request, client_address):
                pass  # failed handshakes are recorded in setup; peers going away are fine

        self.server = Server((HOST, 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path="/hook", host=HOST):
        return f"https://{host}:{self.port}{path}"

    def get(self, path=None):
        with self.lock:
            return [r for r in self.requests if path is None or r.path == path]

    def wait_for(self, count, path=None, timeout=10.0, scale=1.0):
        deadline = time.monotonic() + timeout * scale
        with self.lock:
            while True:
                got = [r for r in self.requests if path is None or r.path == path]
                if len(got) >= count:
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"TLS receiver: {len(got)} of {count} request(s) on "
                                         f"{path}: {got}; failed handshakes {self.handshake_failures}")
                self.lock.wait(min(left, 0.2))

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class ConnectProxy:
    """An HTTP proxy that only speaks CONNECT. self.targets lists every CONNECT target
    ("127.0.0.1:8443") in order of arrival. It tunnels to loopback addresses only (anything
    else is answered 403 and never connected to), and answers other methods 405."""

    def __init__(self, host=HOST, port=0):
        self.host = host
        self.lock = threading.Condition()
        self.targets = []
        self.sock = None
        self.port = port
        self.start()

    def url(self):
        return f"http://{self.host}:{self.port}"

    def start(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.host, self.port))
        s.listen(64)
        self.port = s.getsockname()[1]
        self.sock = s
        threading.Thread(target=self._accept, args=(s,), daemon=True).start()

    def stop(self):
        s, self.sock = self.sock, None
        if s:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    close = stop

    def _accept(self, s):
        while True:
            try:
                c, _ = s.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        try:
            c.settimeout(30)
            buf = b""
            while b"\r\n\r\n" not in buf:
                part = c.recv(4096)
                if not part:
                    return
                buf += part
            head, _, rest = buf.partition(b"\r\n\r\n")
            line = head.split(b"\r\n", 1)[0].decode("latin-1")
            parts = line.split()
            if len(parts) != 3 or parts[0] != "CONNECT":
                c.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
                return
            target = parts[1]
            with self.lock:
                self.targets.append(target)
                self.lock.notify_all()
            host, _, port = target.rpartition(":")
            host = host.strip("[]")
            if not (host.startswith("127.") or host == "::1"):
                c.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                return
            try:
                up = socket.create_connection((host, int(port)), timeout=10)
            except OSError:
                c.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
                return
            c.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            if rest:
                up.sendall(rest)
            self._pipe(c, up)
        except OSError:
            pass
        finally:
            c.close()

    @staticmethod
    def _pipe(a, b):
        try:
            while True:
                r, _, _ = select.select([a, b], [], [], 30)
                if not r:
                    return
                for s in r:
                    data = s.recv(65536)
                    if not data:
                        return
                    (b if s is a else a).sendall(data)
        except OSError:
            pass
        finally:
            b.close()

    def seen(self):
        with self.lock:
            return list(self.targets)

    def wait_for(self, count, timeout=10.0, scale=1.0):
        deadline = time.monotonic() + timeout * scale
        with self.lock:
            while len(self.targets) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"proxy: {len(self.targets)} of {count} CONNECT(s): {self.targets}")
                self.lock.wait(min(left, 0.2))
            return list(self.targets)

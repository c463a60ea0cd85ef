"""apiclient - raw HTTP/1.1 over one socket, for tests that need to misbehave on purpose
(slow bytes, huge or endless headers, methods http.client will not send). Loopback only."""

import os
import re
import socket
import time
import weakref

import hookdtest as h


def connect(d, timeout=5.0):
    s = socket.create_connection((h.HOST, d.port), timeout=timeout * h.SCALE)
    return s


# Bytes received on a socket after the response read_response returned (the next pipelined
# response may arrive in the same segment).
_rest = weakref.WeakKeyDictionary()


def _recv(sock, deadline, timeout, data):
    left = deadline - time.monotonic()
    if left <= 0:
        raise AssertionError(f"no complete response within {timeout * h.SCALE:.1f}s "
                             f"(got {data[:200]!r})")
    sock.settimeout(left)
    try:
        return sock.recv(65536)
    except socket.timeout:
        raise AssertionError(f"no complete response within {timeout * h.SCALE:.1f}s "
                             f"(got {data[:200]!r})") from None
    except (ConnectionResetError, BrokenPipeError):
        return b""


def read_response(sock, timeout=5.0, head=False):
    """Reads one response from sock: (status, headers lowercased, body bytes), or None when
    the server closed (or reset) the connection before a complete response."""
    deadline = time.monotonic() + timeout * h.SCALE
    data = _rest.pop(sock, b"")
    while b"\r\n\r\n" not in data:
        part = _recv(sock, deadline, timeout, data)
        if not part:
            return None
        data += part
    head_text, _, rest = data.partition(b"\r\n\r\n")
    lines = head_text.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        headers[k.strip().lower()] = v.strip()
    n = 0 if head or status in (204, 304) or 100 <= status < 200 else int(
        headers.get("content-length", "0"))
    while len(rest) < n:
        part = _recv(sock, deadline, timeout, data + rest)
        if not part:
            return None
        rest += part
    if rest[n:]:
        _rest[sock] = rest[n:]
    return status, headers, rest[:n]


def exchange(d, raw, timeout=5.0, head=False):
    """Sends raw bytes on a new connection and reads one response (see read_response)."""
    s = connect(d, timeout)
    try:
        try:
            s.sendall(raw)
        except (ConnectionResetError, BrokenPipeError):
            pass
        return read_response(s, timeout, head=head)
    finally:
        s.close()


def request_bytes(method, path, headers=None, body=b"", host="hookd"):
    hs = {"Host": host}
    hs.update(headers or {})
    if body:
        hs.setdefault("Content-Length", str(len(body)))
    return (f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hs.items())
            + "\r\n").encode() + body


def closed_within(sock, timeout):
    """Waits for the server to close sock (EOF or reset); returns the seconds it took, or None
    if it is still open after timeout*SCALE. Whatever the server sends meanwhile is returned
    in the second element."""
    start = time.monotonic()
    deadline = start + timeout * h.SCALE
    got = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None, got
        sock.settimeout(left)
        try:
            part = sock.recv(65536)
        except socket.timeout:
            return None, got
        except (ConnectionResetError, BrokenPipeError):
            return time.monotonic() - start, got
        if not part:
            return time.monotonic() - start, got
        got += part


def rss_kib(pid):
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        m = re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.M)
    return int(m.group(1))


def socket_fds(pid):
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                n += 1
        except OSError:
            pass
    return n

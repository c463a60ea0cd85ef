#!/usr/bin/env python3
"""A sample webhook receiver that verifies Standard Webhooks v1 signatures (stdlib only).

    python3 examples/receiver.py --port 9000 --secret whsec_...

Prints every delivery with its verification result and answers 200 when the signature is
valid (401 otherwise), deduplicating on webhook-id as a receiver should.
"""
import argparse
import base64
import hashlib
import hmac
import http.server
import json
import time

seen = set()


def verify(secret, msg_id, ts, body, header, tolerance=300):
    if not secret.startswith("whsec_"):
        raise ValueError("secret must start with whsec_")
    if abs(time.time() - int(ts)) > tolerance:
        return False
    key = base64.b64decode(secret[len("whsec_"):])
    mac = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    expected = base64.b64encode(mac).decode()
    for entry in header.split():
        version, _, sig = entry.partition(",")
        if version == "v1" and hmac.compare_digest(sig, expected):
            return True
    return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=9000)
    ap.add_argument("--secret", required=True)
    args = ap.parse_args()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            msg_id = self.headers.get("webhook-id", "")
            ok = verify(args.secret, msg_id, self.headers.get("webhook-timestamp", "0"), body,
                        self.headers.get("webhook-signature", ""))
            dup = msg_id in seen
            if ok:
                seen.add(msg_id)
            print(f"{'valid' if ok else 'INVALID'} signature{' (duplicate)' if dup else ''}: "
                  f"{msg_id} {json.loads(body).get('type')} {body.decode()}", flush=True)
            status = 200 if ok else 401
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *a):
            pass

    print(f"listening on http://127.0.0.1:{args.port}", flush=True)
    http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()

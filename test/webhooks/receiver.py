#!/usr/bin/env python3
"""test/webhooks/receiver.py - a webhook receiver for the tests, standard library only.

Verifies each request's Standard Webhooks signature with hmac, independently of
userlife, against every secret in SECRETS_FILE (a JSON object name -> "whsec_..."
re-read on each request), and appends one JSON line per request to LOG_FILE:
{"path", "id", "ts", "valid": [names of the secrets whose signature verified],
"sigs": number of signatures, "type", "external_id", "answer"}.

How it answers depends on the path:
  /ok                      200
  /fail/N                  500 for the first N requests of each webhook-id, then 200
  /always500               500
  /retry-after/S           429 with Retry-After: S for the first request of each id, then 200
  /gone                    410
  /hang/S                  sleeps S seconds, then 200
  /redirect                301 to /ok
  /fail-user/EXTERNAL_ID   500 for that user's events, 200 for the others

usage: receiver.py PORT SECRETS_FILE LOG_FILE [CERT KEY]  (prints "ready" when listening)
"""
import base64
import hashlib
import hmac
import json
import os
import socket
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT, SECRETS_FILE, LOG_FILE = int(sys.argv[1]), sys.argv[2], sys.argv[3]
lock = threading.Lock()
seen = {}


def verify(msg_id, ts, body, header):
    """names of the secrets one of whose v1 signatures in header matches"""
    try:
        with open(SECRETS_FILE) as f:
            secrets = json.load(f)
    except (OSError, ValueError):
        secrets = {}
    sigs = [s.split(",", 1)[1] for s in header.split(" ") if s.startswith("v1,")]
    signed = msg_id.encode() + b"." + ts.encode() + b"." + body
    valid = []
    for name, secret in secrets.items():
        key = base64.b64decode(secret[len("whsec_"):])
        expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        if any(hmac.compare_digest(expected, s) for s in sigs):
            valid.append(name)
    return sorted(valid), len(sigs)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        msg_id = self.headers.get("webhook-id", "")
        ts = self.headers.get("webhook-timestamp", "")
        valid, nsigs = verify(msg_id, ts, body, self.headers.get("webhook-signature", ""))
        try:
            event = json.loads(body)
        except ValueError:
            event = {}
        parts = self.path.strip("/").split("/")
        with lock:
            count = seen.get((self.path, msg_id), 0) + 1
            seen[(self.path, msg_id)] = count
        status, headers = 200, []
        if parts[0] == "fail" and count <= int(parts[1]):
            status = 500
        elif parts[0] == "always500":
            status = 500
        elif parts[0] == "retry-after" and count == 1:
            status, headers = 429, [("Retry-After", parts[1])]
        elif parts[0] == "gone":
            status = 410
        elif parts[0] == "hang":
            time.sleep(float(parts[1]))
        elif parts[0] == "redirect":
            status, headers = 301, [("Location", "/ok")]
        elif parts[0] == "fail-user" and event.get("data", {}).get("external_id") == parts[1]:
            status = 500
        line = json.dumps({"path": self.path, "id": msg_id, "ts": ts, "valid": valid, "sigs": nsigs,
                           "type": event.get("type"), "external_id": event.get("data", {}).get("external_id"),
                           "answer": status, "at": time.time()})
        with lock:
            with open(LOG_FILE, "a") as f:
                f.write(line + "\n")
        self.answer(status, headers)


class Server(ThreadingHTTPServer):
    request_queue_size = 1024  # the programs open many connections at once


class Server6(Server):
    address_family = socket.AF_INET6


# RECEIVER_BIND=::1 listens on the IPv6 loopback address instead
bind = os.environ.get("RECEIVER_BIND", "127.0.0.1")
server = (Server6 if ":" in bind else Server)((bind, PORT), Handler)
server.daemon_threads = True
if len(sys.argv) > 5:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[4], sys.argv[5])
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
print("ready", flush=True)
server.serve_forever()

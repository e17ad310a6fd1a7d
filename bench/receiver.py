#!/usr/bin/env python3
"""bench/receiver.py - the webhook receiver of bench/run's webhooks measurement.

test/webhooks/receiver.py (http.server, a thread per connection) is the
tests' receiver; with the delivery program's 64 kept-alive connections its
threads contend for the GIL and it, not the delivery, would be measured.
This one does the same work per request in one thread on asyncio: reads a
Content-Length request (HTTP/1.1, kept alive), verifies its Standard Webhooks
signature with hmac against the secret its path names (a request to /NAME
is checked with the secret NAME of SECRETS_FILE, a JSON object NAME ->
"whsec_..." as test/webhooks/lib.sh's wh_secrets_json writes it), answers
200 (one without a valid signature gets 401), and keeps, per request, the
webhook-id,
the receipt time (Unix seconds) and the body's "timestamp" (the change's).
On SIGTERM it writes them to LOG_FILE ("id receipt_time change_timestamp
valid" per line) and exits.  Standard library only.

usage: receiver.py PORT SECRETS_FILE LOG_FILE   (prints "ready" when listening)
"""
import asyncio
import base64
import hashlib
import hmac
import json
import signal
import sys
import time

PORT, LOG_FILE = int(sys.argv[1]), sys.argv[3]
with open(sys.argv[2]) as f:
    KEYS = {name: base64.b64decode(s[len("whsec_"):]) for name, s in json.load(f).items()}
OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
BAD = b"HTTP/1.1 401 Unauthorized\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nbad"
received = []


def valid(key, msg_id, ts, body, header):
    if key is None:
        return False
    signed = msg_id.encode() + b"." + ts.encode() + b"." + body
    expected = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(hmac.compare_digest(expected, s) for s in header.split(" "))


class Http(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        self.buf = b""

    def data_received(self, data):
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = self.buf[:end].decode("latin-1").split("\r\n")
            headers = {}
            for line in lines[1:]:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
            length = int(headers.get("content-length", "0"))
            if len(self.buf) < end + 4 + length:
                return
            body = self.buf[end + 4:end + 4 + length]
            self.buf = self.buf[end + 4 + length:]
            path = lines[0].split(" ")[1] if lines[0].count(" ") >= 2 else "/"
            self.request(KEYS.get(path.strip("/")), headers, body)

    def request(self, key, headers, body):
        at = time.time()
        msg_id = headers.get("webhook-id", "")
        ok = valid(key, msg_id, headers.get("webhook-timestamp", ""), body, headers.get("webhook-signature", ""))
        try:
            changed = json.loads(body).get("timestamp", "-")
        except ValueError:
            changed = "-"
        received.append((msg_id, at, changed, ok))
        self.transport.write(OK if ok else BAD)


def save():
    with open(LOG_FILE, "w") as f:
        for r in received:
            f.write("%s %.6f %s %d\n" % (r[0], r[1], r[2], r[3]))


async def main():
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
    server = await loop.create_server(Http, "127.0.0.1", PORT, backlog=1024)
    print("ready", flush=True)
    await stop
    server.close()
    save()


asyncio.run(main())

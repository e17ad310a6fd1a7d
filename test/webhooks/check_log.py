#!/usr/bin/env python3
"""test/webhooks/check_log.py LOG PATH SECRET_NAME EXPECTED_IDS_FILE [MAX_DUPLICATES]

Checks the receiver's log for one endpoint (requests whose path is PATH and
that were answered 2xx): every expected webhook-id arrived, nothing else did,
duplicates at most MAX_DUPLICATES (default 0), every signature verified with
SECRET_NAME, and each user's first arrivals are in event order.  Prints one
'# ' line of figures and exits 1 on the first broken rule, naming it.
"""
import json
import sys

log, path, secret, ids_file = sys.argv[1:5]
max_dups = int(sys.argv[5]) if len(sys.argv) > 5 else 0
expected = set(open(ids_file).read().split())
ok = [json.loads(l) for l in open(log) if l.strip()]
ok = [r for r in ok if r["path"] == path and 200 <= r["answer"] < 300]
ids = [r["id"] for r in ok]
got = set(ids)
dups = len(ids) - len(got)
bad_sig = [r["id"] for r in ok if secret not in r["valid"]]
last = {}
order_broken = []
first_seen = set()
for r in ok:
    if r["id"] in first_seen:
        continue
    first_seen.add(r["id"])
    prev = last.get(r["external_id"])
    if prev is not None and int(r["id"]) < prev:
        order_broken.append((r["external_id"], prev, r["id"]))
    last[r["external_id"]] = int(r["id"])
print("# %s: %d requests, %d distinct, %d expected, %d duplicates, %d missing, %d unexpected, %d bad signatures, %d out of order"
      % (path, len(ids), len(got), len(expected), dups, len(expected - got), len(got - expected), len(bad_sig), len(order_broken)))
if expected - got:
    print("# missing: %s" % sorted(expected - got, key=int)[:10]); sys.exit(1)
if got - expected:
    print("# unexpected: %s" % sorted(got - expected, key=int)[:10]); sys.exit(1)
if dups > max_dups:
    print("# too many duplicates"); sys.exit(1)
if bad_sig:
    print("# bad signatures: %s" % bad_sig[:10]); sys.exit(1)
if order_broken:
    print("# out of order: %s" % order_broken[:10]); sys.exit(1)

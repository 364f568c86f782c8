"""Peak RSS (VmHWM) of one faultline member under hostile queries (a measurement, not a test).

Needs pymongo (pip install pymongo). Starts its own member on a private dbpath and removes it afterwards.
usage: measure_query_memory.py BINARY CASE [extra node args...]
CASE: cursors     16 MB collection, 21 sorted find cursors left open (first batch only), then 21 aggregate cursors
      group       1 M small docs, $group {_id: "$k" (1000 keys), d: {$push: "$$ROOT"}} without, then with allowDiskUse
      group-disk  the same, with allowDiskUse only
env:  GROUP_NULL=1  group on _id: null (one group)
      SCAN_FIRST=1  first a streaming $count, a $group of counts, and the spilling $group with batchSize 10
"""
import os, subprocess, sys, tempfile, time
import pymongo
from pymongo.errors import OperationFailure

binary, case = sys.argv[1], sys.argv[2]
extra = sys.argv[3:]
port = 27600 + os.getpid() % 300
d = tempfile.mkdtemp(prefix="qmem-")
proc = subprocess.Popen([binary, "node", "--port", str(port), "--dbpath", d + "/db", "--logpath", d + "/log"] + extra,
                        stdout=subprocess.DEVNULL)

def hwm():
    for line in open(f"/proc/{proc.pid}/status"):
        if line.startswith(("VmHWM", "VmRSS")):
            print("   ", line.strip(), flush=True)

try:
    deadline = time.time() + 30
    while True:
        try:
            c = pymongo.MongoClient(port=port, directConnection=True, serverSelectionTimeoutMS=500)
            c.admin.command("ping")
            break
        except Exception:
            if time.time() > deadline:
                raise
    c.admin.command("replSetInitiate", {"_id": "rs0", "members": [{"_id": 0, "host": f"127.0.0.1:{port}"}]})
    deadline = time.time() + 30
    while not c.admin.command("hello").get("isWritablePrimary"):
        assert time.time() < deadline, "no primary"
    db = c.t
    print("after start:"); hwm()
    if case == "cursors":
        pad = "x" * 1000
        db.c.insert_many([{"_id": i, "k": (i * 7919) % 16000, "pad": pad} for i in range(16000)])
        print("16 MB loaded:"); hwm()
        keep = []
        for i in range(21):
            cur = db.c.find({}, batch_size=2).sort("k", 1)
            next(cur)
            keep.append(cur)
        print("21 sorted find cursors open:"); hwm()
        for i in range(21):
            cur = db.c.aggregate([{"$match": {}}], batchSize=2)
            next(cur)
            keep.append(cur)
        print("+21 aggregate cursors open:"); hwm()
        print("open cursors:", c.admin.command("serverStatus")["metrics"]["cursor"]["open"])
    elif case in ("group", "group-disk"):
        n = 1_000_000
        batch = []
        for i in range(n):
            batch.append({"_id": i, "k": i % 1000, "v": i})
            if len(batch) == 10000:
                db.g.insert_many(batch, ordered=False)
                batch = []
        print("1 M docs loaded:"); hwm()
        pipeline = [{"$group": {"_id": None if os.environ.get("GROUP_NULL") else "$k", "d": {"$push": "$$ROOT"}}}]
        if os.environ.get("SCAN_FIRST"):
            t = time.time()
            print("scan+count:", list(db.g.aggregate([{"$count": "n"}])), f"{time.time()-t:.1f}s"); hwm()
            t = time.time()
            print("group counts only:", sum(1 for _ in db.g.aggregate([{"$group": {"_id": "$k", "n": {"$sum": 1}}}])), f"{time.time()-t:.1f}s"); hwm()
            t = time.time()
            print("spilling group, batchSize 10:", sum(1 for _ in db.g.aggregate(pipeline, allowDiskUse=True, batchSize=10)), f"{time.time()-t:.1f}s"); hwm()
        t = time.time()
        try:
            if case == "group-disk":
                raise OperationFailure("skipped", 0, {"codeName": "skipped", "errmsg": "skipped"})
            n = sum(1 for _ in db.g.aggregate(pipeline))
            print(f"no allowDiskUse: {n} groups in {time.time()-t:.1f}s")
        except OperationFailure as e:
            print(f"no allowDiskUse: error {e.code} {e.details.get('codeName')}: {e.details.get('errmsg')} ({time.time()-t:.1f}s)")
        hwm()
        t = time.time()
        try:
            n = sum(1 for _ in db.g.aggregate(pipeline, allowDiskUse=True))
            print(f"allowDiskUse: {n} groups in {time.time()-t:.1f}s")
        except OperationFailure as e:
            print(f"allowDiskUse: error {e.code} {e.details.get('codeName')}: {e.details.get('errmsg')} ({time.time()-t:.1f}s)")
        hwm()
finally:
    proc.terminate()
    proc.wait()
    subprocess.run(["rm", "-rf", d])

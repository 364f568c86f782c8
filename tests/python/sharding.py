"""pymongo through one and two `faultline mongos` routers of a sharded cluster (run by run.py).

Starts a config server replica set and two shard replica sets (one member each) and two routers as real
processes, adds the shards, shards one collection on a hashed key and one on a range key (split in two, the
upper chunk handed to the other shard by hand, as the Rust e2e test does until migrations exist), writes 10,000
documents to each through `mongodb://h:p1,h:p2/`, reads them back through each router alone and through both,
and checks with a direct connection to each shard that every document lies on exactly the shard whose chunk
in `config.chunks` covers its key. The hashed key's value is computed here (md5, as MongoDB hashes numbers),
independently of the engine.
"""
import hashlib
import os
import shutil
import struct
import subprocess
import tempfile

import pymongo
from bson.max_key import MaxKey
from bson.min_key import MinKey
from bson.timestamp import Timestamp
from pymongo.write_concern import WriteConcern

from procs import free_port, wait_until

DOCUMENTS = 10_000


class Process:
    """One `faultline` child process (a member or a router) on a free port, with its own temp dir."""

    def __init__(self, binary, args, prefix):
        self.dir = tempfile.mkdtemp(prefix=prefix)
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        data = ["--dbpath", os.path.join(self.dir, "db")] if args[0] == "node" else []
        self.proc = subprocess.Popen(
            [binary, *args, *data, "--port", str(self.port), "--logpath", os.path.join(self.dir, "log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        self.direct = pymongo.MongoClient(f"mongodb://{self.host}/?directConnection=true",
                                          serverSelectionTimeoutMS=20000)
        wait_until(f"{self.host} to answer ping", lambda: self.direct.admin.command("ping"))

    def stop(self):
        self.direct.close()
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def start_set(binary, name, role):
    """A one-member replica set `name` started with `role`, initiated, primary."""
    member = Process(binary, ["node", role, "--replSet", name], f"faultline-pymongo-{name}-")
    member.direct.admin.command("replSetInitiate", {"_id": name, "members": [{"_id": 0, "host": member.host}]})
    wait_until(f"{name} PRIMARY", lambda: member.direct.admin.command("hello").get("isWritablePrimary"))
    return member


def hashed(value):
    """MongoDB's hashed value (seed 0) of an integer: md5 of seed, canonical number type, the value as an i64."""
    digest = hashlib.md5(struct.pack("<iiq", 0, 10, value)).digest()
    return struct.unpack("<q", digest[:8])[0]


def below(a, b):
    """a < b for the shard key values used here (integers, MinKey, MaxKey)."""
    if isinstance(a, MaxKey) or isinstance(b, MinKey):
        return False
    if isinstance(a, MinKey) or isinstance(b, MaxKey):
        return True
    return a < b


def owner(chunks, field, key):
    """The shard of the one chunk whose [min, max) holds `key`."""
    owners = [c["shard"] for c in chunks if not below(key, c["min"][field]) and below(key, c["max"][field])]
    assert len(owners) == 1, f"{len(owners)} chunks hold {field}={key}"
    return owners[0]


def hand_over_upper_chunk(config, shards, ns, donor, recipient):
    """What a migration's commit does, by hand (migrations are the next issue): the donor enters its critical
    section, the chunk ending at MaxKey changes owner in config.chunks with a new major version, then the
    recipient and the donor (which ends its critical section) refresh."""
    meta = config.direct.config
    uuid = meta.collections.find_one({"_id": ns})["uuid"]
    top = max(meta.chunks.find({"uuid": uuid}), key=lambda c: c["lastmod"])
    upper = next(c for c in meta.chunks.find({"uuid": uuid}) if isinstance(next(iter(c["max"].values())), MaxKey))
    shards[donor].direct.admin.command("_enterCriticalSection", ns)
    moved = Timestamp(top["lastmod"].time + 1, 0)
    majority = meta.chunks.with_options(write_concern=WriteConcern(w="majority"))
    result = majority.update_one({"_id": upper["_id"]}, {"$set": {
        "shard": recipient, "lastmod": moved,
        "history": [{"validAfter": upper["onCurrentShardSince"], "shard": recipient}]}})
    assert result.modified_count == 1, result.raw_result
    for name in (recipient, donor):
        shards[name].direct.admin.command("_flushRoutingTableCacheUpdates", ns)


def sharded_cluster(binary):
    """10,000 documents each to a hashed and a range-sharded collection through two routers; each document on
    exactly the shard config.chunks names."""
    started = []
    try:
        config = start_set(binary, "cfgRS", "--configsvr")
        started.append(config)
        shards = {}
        for name in ("shardA", "shardB"):
            shards[name] = start_set(binary, name, "--shardsvr")
            started.append(shards[name])
        routers = []
        for _ in range(2):
            routers.append(Process(binary, ["mongos", "--configdb", f"cfgRS/{config.host}"], "faultline-pymongo-mongos-"))
            started.append(routers[-1])

        both = pymongo.MongoClient("mongodb://" + ",".join(r.host for r in routers) + "/",
                                   serverSelectionTimeoutMS=20000)
        for name, member in shards.items():
            reply = both.admin.command("addShard", f"{name}/{member.host}")
            assert reply["shardAdded"] == name, reply
        both.admin.command("enableSharding", "py", primaryShard="shardA")
        collections = {"hashed": ("k", "hashed"), "range": ("k", 1)}
        for coll, (field, kind) in collections.items():
            both.admin.command("shardCollection", f"py.{coll}", key={field: kind})
        both.admin.command("split", "py.range", middle={"k": DOCUMENTS // 2})
        hand_over_upper_chunk(config, shards, "py.range", "shardA", "shardB")
        assert both.topology_description.topology_type_name == "Sharded", both.topology_description

        for coll in collections:
            both.py[coll].insert_many([{"_id": i, "k": i, "v": f"value {i}"} for i in range(DOCUMENTS)])

        for router in [*routers, None]:
            client = both if router is None else pymongo.MongoClient(f"mongodb://{router.host}/")
            for coll in collections:
                ids = [d["_id"] for d in client.py[coll].find({}, {"_id": 1}).batch_size(1000)]
                assert sorted(ids) == list(range(DOCUMENTS)), f"{coll} through {router and router.host}: {len(ids)} documents"
                assert client.py[coll].count_documents({}) == DOCUMENTS
                found = client.py[coll].find_one({"k": 4321})
                assert found is not None and found["v"] == "value 4321", found
            if router is not None:
                client.close()

        for coll, (field, kind) in collections.items():
            uuid = both.config.collections.find_one({"_id": f"py.{coll}"})["uuid"]
            chunks = list(both.config.chunks.find({"uuid": uuid}))
            assert {c["shard"] for c in chunks} == set(shards), f"py.{coll} chunks not on both shards: {chunks}"
            seen = 0
            for name, member in shards.items():
                for d in member.direct.py[coll].find({}, {"k": 1}):
                    key = hashed(d["k"]) if kind == "hashed" else d["k"]
                    expected = owner(chunks, field, key)
                    assert expected == name, f"py.{coll} k={d['k']} is on {name}, config.chunks names {expected}"
                    seen += 1
            assert seen == DOCUMENTS, f"py.{coll}: {seen} documents on the shards, {DOCUMENTS} written"
        both.close()
    finally:
        for process in reversed(started):
            process.stop()

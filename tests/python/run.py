#!/usr/bin/env python3
"""End-to-end tests of a `faultline node` member driven by pymongo, the second real client.

Starts a member as a real process on a free port, runs the same kinds of operations the Rust driver tests
run (CRUD, update operators, upserts, findAndModify as compare-and-set, cursors over several batches,
indexes, error codes, the oplog), and prints a `pymongo: N passed, N failed` line. Exit code 1 on failure.
"""
import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import traceback

import pymongo
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError, OperationFailure

import sharding
from procs import free_port, wait_until

TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


class Member:
    def __init__(self, binary):
        self.dir = tempfile.mkdtemp(prefix="faultline-pymongo-")
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [binary, "node", "--port", str(self.port), "--dbpath", os.path.join(self.dir, "db"),
             "--logpath", os.path.join(self.dir, "node.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        self.direct = pymongo.MongoClient(f"mongodb://127.0.0.1:{self.port}/?directConnection=true",
                                          serverSelectionTimeoutMS=20000)
        wait_until("the member to answer ping", lambda: self.direct.admin.command("ping"))

    def initiate(self):
        self.direct.admin.command("replSetInitiate")
        wait_until("PRIMARY", lambda: self.direct.admin.command("hello").get("isWritablePrimary"))
        # What applications do: the replica-set URI, with discovery.
        return pymongo.MongoClient(f"mongodb://127.0.0.1:{self.port}/?replicaSet=rs0", serverSelectionTimeoutMS=20000)

    def kill(self):
        self.proc.kill()
        self.proc.wait()

    def stop(self):
        if self.proc.poll() is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


@test
def crud_and_operators(client):
    coll = client.pydb.items
    coll.insert_many([{"_id": i, "n": i, "tags": ["even" if i % 2 == 0 else "odd"]} for i in range(10)])
    assert coll.count_documents({"tags": "even"}) == 5
    assert [d["_id"] for d in coll.find({"n": {"$gte": 7}}).sort("n", -1)] == [9, 8, 7]
    coll.update_one({"_id": 1}, {"$inc": {"n": 10}, "$set": {"a.b": 1}, "$push": {"tags": "x"},
                                 "$addToSet": {"set": 1}, "$currentDate": {"at": True}})
    doc = coll.find_one({"_id": 1})
    assert doc["n"] == 11 and doc["a"] == {"b": 1} and doc["tags"] == ["odd", "x"] and doc["set"] == [1], doc
    coll.update_one({"_id": 1}, {"$unset": {"a": ""}, "$mul": {"n": 2}, "$rename": {"set": "s"}})
    coll.update_one({"_id": 1}, {"$min": {"n": 5}, "$pull": {"tags": "x"}})
    coll.update_one({"_id": 1}, {"$pop": {"tags": 1}})
    try:
        coll.update_one({"_id": 1}, {"$mul": {"n": 2}, "$min": {"n": 5}})
        raise AssertionError("two operators on one path accepted")
    except OperationFailure as err:
        assert err.code == 40, err
    doc = coll.find_one({"_id": 1}, {"_id": 0})
    assert doc.get("n") == 5 and "a" not in doc and doc.get("s") == [1] and doc.get("tags") == [], doc
    res = coll.update_many({"n": {"$lt": 5}}, {"$set": {"small": True}})
    assert res.matched_count == res.modified_count == 4, res.raw_result  # _id 0, 2, 3, 4
    res = coll.update_one({"_id": "new"}, {"$setOnInsert": {"fresh": True}}, upsert=True)
    assert res.upserted_id == "new"
    assert coll.delete_many({"small": True}).deleted_count == 4
    assert coll.estimated_document_count() == 7
    assert sorted(coll.distinct("tags")) == ["even", "odd"]


@test
def find_and_modify_cas(client):
    reg = client.pydb.registers
    reg.insert_one({"_id": "r", "value": 0})
    assert reg.find_one_and_update({"_id": "r", "value": 0}, {"$set": {"value": 1}},
                                   return_document=ReturnDocument.AFTER)["value"] == 1
    assert reg.find_one_and_update({"_id": "r", "value": 0}, {"$set": {"value": 2}}) is None
    assert reg.find_one_and_delete({"_id": "r"})["value"] == 1


@test
def cursors_and_indexes(client):
    coll = client.pydb.big
    coll.insert_many([{"_id": i, "email": f"u{i}@x"} for i in range(500)])
    assert len(list(coll.find({}, batch_size=37))) == 500
    coll.create_index("email", unique=True)
    try:
        coll.insert_one({"_id": 1000, "email": "u3@x"})
        raise AssertionError("duplicate email accepted")
    except DuplicateKeyError as err:
        assert err.code == 11000
    assert "email_1" in coll.index_information()
    pipeline = [{"$match": {"_id": {"$lt": 100}}}, {"$group": {"_id": None, "n": {"$sum": 1}}}]
    assert list(coll.aggregate(pipeline))[0]["n"] == 100


@test
def errors_and_catalog(client):
    try:
        client.pydb.command("noSuchCommand")
        raise AssertionError("unknown command accepted")
    except OperationFailure as err:
        assert err.code == 59
    client.pydb.create_collection("made")
    try:
        client.pydb.command("create", "made", capped=True, size=4096)
        raise AssertionError("existing collection created again with other options")
    except OperationFailure as err:
        assert err.code == 48
    assert "pydb" in client.list_database_names()
    assert "made" in client.pydb.list_collection_names()


@test
def oplog_is_readable(client):
    client.oplogdb.c.insert_one({"_id": "o"})
    last = client.local["oplog.rs"].find_one({"ns": "oplogdb.c"}, sort=[("$natural", -1)])
    assert last["op"] == "i" and last["o"] == {"_id": "o"}, last
    status = client.admin.command("replSetGetStatus")
    assert status["myState"] == 1 and status["members"][0]["stateStr"] == "PRIMARY"


@test
def positional_pipeline_and_let(client):
    coll = client.pydb.positional
    coll.insert_one({"_id": 1, "grades": [80, 85, 90], "items": [{"n": "a", "q": 1}, {"n": "b", "q": 2}]})
    coll.update_one({"_id": 1, "grades": 85}, {"$set": {"grades.$": 82}})
    coll.update_one({"_id": 1}, {"$inc": {"items.$[it].q": 10}}, array_filters=[{"it.n": "b"}])
    coll.update_one({"_id": 1}, [{"$set": {"total": {"$size": "$items"}}}, {"$unset": "grades"}])
    doc = coll.find_one({"$expr": {"$eq": ["$_id", "$$id"]}}, let={"id": 1})
    assert doc == {"_id": 1, "items": [{"n": "a", "q": 1}, {"n": "b", "q": 12}], "total": 2}, doc
    try:
        coll.update_one({"_id": 1}, {"$set": {"items.$[x].q": 0}})
        raise AssertionError("an identifier without an array filter was accepted")
    except OperationFailure as err:
        assert err.code == 2, err


def replica_set_failover(binary):
    """Three members from pymongo's side: majority writes, SIGKILL the primary, pymongo follows the failover,
    nothing acknowledged with w:majority is lost."""
    members = [Member(binary) for _ in range(3)]
    try:
        config = {"_id": "rs0", "members": [{"_id": i, "host": m.host} for i, m in enumerate(members)],
                  "settings": {"electionTimeoutMillis": 1000, "heartbeatIntervalMillis": 200}}
        members[0].direct.admin.command("replSetInitiate", config)
        uri = "mongodb://" + ",".join(m.host for m in members) + "/?replicaSet=rs0&w=majority&wtimeoutMS=30000"
        client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=30000)
        coll = client.failover.c
        for i in range(100):
            coll.insert_one({"_id": i})
        # A causally consistent session reads its own writes on a secondary (afterClusterTime).
        secondary = client.failover.causal.with_options(read_preference=pymongo.ReadPreference.SECONDARY)
        with client.start_session(causal_consistency=True) as session:
            for i in range(50):
                client.failover.causal.insert_one({"_id": i}, session=session)
                assert session.operation_time is not None, "the member sends operationTime"
                found = secondary.find_one({"_id": i}, session=session)
                assert found == {"_id": i}, f"write {i} not read back on a secondary: {found}"
        primary = client.primary
        victim = next(m for m in members if ("127.0.0.1", m.port) == primary)
        victim.kill()

        def write_after():
            try:
                coll.insert_one({"_id": "after"})
                return True
            except pymongo.errors.PyMongoError:
                return False
        wait_until("a majority write after the failover", write_after, timeout=30)
        assert client.primary != primary, (client.primary, primary)
        survivors = [m for m in members if m is not victim]
        for m in survivors:
            ids = {d["_id"] for d in m.direct.failover.c.with_options(
                read_preference=pymongo.ReadPreference.PRIMARY_PREFERRED).find({"_id": {"$lt": 100}})}
            assert ids == set(range(100)), f"{m.host} lost {set(range(100)) - ids}"
    finally:
        for m in members:
            m.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bin", default="target/debug/faultline")
    args = parser.parse_args()
    member = Member(args.bin)
    passed = failed = 0
    try:
        client = member.initiate()
        for fn in TESTS:
            try:
                fn(client)
                passed += 1
                print(f"pymongo test {fn.__name__} ... ok")
            except Exception:  # noqa: BLE001 - report every failing test
                failed += 1
                print(f"pymongo test {fn.__name__} ... FAILED")
                traceback.print_exc()
    finally:
        member.stop()
    try:
        replica_set_failover(args.bin)
        passed += 1
        print("pymongo test replica_set_failover ... ok")
    except Exception:  # noqa: BLE001
        failed += 1
        print("pymongo test replica_set_failover ... FAILED")
        traceback.print_exc()
    try:
        sharding.sharded_cluster(args.bin)
        passed += 1
        print("pymongo test sharded_cluster ... ok")
    except Exception:  # noqa: BLE001
        failed += 1
        print("pymongo test sharded_cluster ... FAILED")
        traceback.print_exc()
    print(f"pymongo: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""Starts a replica set of real `faultline node` processes for the runner and stops it afterwards.

Members listen on free local ports with their own data directories under a temporary directory; the set is
initiated with short election and heartbeat settings and is ready once a primary accepts majority writes.
"""
import os
import shutil
import signal
import subprocess
import tempfile

import pymongo
from procs import free_port, wait_until  # tests/python/procs.py, on the path unified.py sets

REPLICA_SET = "rs0"


class ReplicaSet:
    """`members` faultline nodes as one replica set; `uri` is what test clients connect with."""

    def __init__(self, binary, members=3):
        self.binary = binary
        self.count = members
        self.dir = tempfile.mkdtemp(prefix="faultline-spec-")
        self.procs = []
        self.hosts = []
        self.uri = None
        self.internal = None
        self.direct = []

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        for i in range(self.count):
            port = free_port()
            member_dir = os.path.join(self.dir, f"m{i}")
            os.makedirs(member_dir)
            self.hosts.append(f"127.0.0.1:{port}")
            self.procs.append(subprocess.Popen(
                [self.binary, "node", "--port", str(port), "--replSet", REPLICA_SET,
                 "--dbpath", os.path.join(member_dir, "db"), "--logpath", os.path.join(member_dir, "node.log"),
                 "--setParameter", "enableTestCommands=1"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL))
        self.direct = [pymongo.MongoClient(f"mongodb://{h}/?directConnection=true", serverSelectionTimeoutMS=20000)
                       for h in self.hosts]
        for host, client in zip(self.hosts, self.direct):
            wait_until(f"{host} to answer ping", lambda c=client: c.admin.command("ping"))
        config = {"_id": REPLICA_SET, "members": [{"_id": i, "host": h} for i, h in enumerate(self.hosts)],
                  "settings": {"electionTimeoutMillis": 2000, "heartbeatIntervalMillis": 500}}
        self.direct[0].admin.command("replSetInitiate", config)
        self.uri = "mongodb://" + ",".join(self.hosts) + f"/?replicaSet={REPLICA_SET}"
        self.internal = pymongo.MongoClient(self.uri, w="majority", serverSelectionTimeoutMS=30000)
        wait_until("a primary that takes majority writes",
                   lambda: self.internal.spec_runner.ready.insert_one({}).acknowledged, timeout=60)
        wait_until("every member in PRIMARY or SECONDARY state", self.all_healthy, timeout=60)
        self.internal.drop_database("spec_runner")

    def all_healthy(self):
        status = self.internal.admin.command("replSetGetStatus")
        return all(m.get("state") in (1, 2) for m in status["members"])

    def server_info(self):
        """What runOnRequirements are judged against: version, topology and every server parameter."""
        build = self.internal.admin.command("buildInfo")
        parameters = self.internal.admin.command("getParameter", "*")
        return {"version": tuple(build.get("versionArray", [0, 0, 0])[:3]), "topology": "replicaset",
                "parameters": parameters, "auth": False, "serverless": False}

    def disable_fail_point(self, name):
        """Turns a fail point off on every member (a test configures it on whichever member was primary)."""
        for client in self.direct:
            try:
                client.admin.command("configureFailPoint", name, mode="off")
            except pymongo.errors.PyMongoError:
                pass

    def stop(self):
        for client in self.direct:
            client.close()
        if self.internal is not None:
            self.internal.close()
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if os.environ.get("FAULTLINE_SPEC_KEEP") is None:
            shutil.rmtree(self.dir, ignore_errors=True)
        else:
            print(f"kept member directories in {self.dir}")

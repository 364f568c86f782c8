"""The entity map of one test: clients (with their event recorders), databases, collections, sessions,
change streams and cursors, threads, saved results; and the recorder that turns pymongo's monitoring events
into the unified format's event documents.
"""
import queue
import threading

import pymongo
from pymongo import monitoring
from pymongo.read_concern import ReadConcern
from pymongo.read_preferences import read_pref_mode_from_name, make_read_preference
from pymongo.write_concern import WriteConcern

from .matching import MatchError

# Commands whose events are never observed unless a client asks for sensitive commands.
SENSITIVE_COMMANDS = {"authenticate", "saslstart", "saslcontinue", "getnonce", "createuser", "updateuser",
                      "copydbgetnonce", "copydbsaslstart", "copydb"}
HELLO_COMMANDS = {"hello", "ismaster"}

COMMAND_EVENTS = {"commandStartedEvent", "commandSucceededEvent", "commandFailedEvent"}
CMAP_EVENTS = {"poolCreatedEvent", "poolReadyEvent", "poolClearedEvent", "poolClosedEvent", "connectionCreatedEvent",
               "connectionReadyEvent", "connectionClosedEvent", "connectionCheckOutStartedEvent",
               "connectionCheckOutFailedEvent", "connectionCheckedOutEvent", "connectionCheckedInEvent"}
SDAM_EVENTS = {"serverDescriptionChangedEvent", "serverHeartbeatStartedEvent", "serverHeartbeatSucceededEvent",
               "serverHeartbeatFailedEvent", "topologyDescriptionChangedEvent", "topologyOpeningEvent",
               "topologyClosedEvent"}
EVENT_KIND = {**{e: "command" for e in COMMAND_EVENTS}, **{e: "cmap" for e in CMAP_EVENTS},
              **{e: "sdam" for e in SDAM_EVENTS}}


class UnsupportedEntity(Exception):
    """An entity this runner (or pymongo) does not provide: the test is skipped with this reason."""


class Recorder:
    """Records one client's events as `(name, fields)` pairs in the order they were published."""

    def __init__(self, observe, ignore_commands, observe_sensitive):
        self.observe = set(observe)
        self.ignore = {c.lower() for c in ignore_commands} | {"configurefailpoint"}
        self.observe_sensitive = observe_sensitive
        self.events = []
        self.started_commands = []
        self.lock = threading.Lock()
        self.enabled = True

    def add(self, name, fields):
        if self.enabled and name in self.observe:
            with self.lock:
                self.events.append((name, fields))

    def of_kind(self, kind):
        with self.lock:
            return [e for e in self.events if EVENT_KIND[e[0]] == kind]

    def skip_command(self, name, command_or_reply):
        lowered = name.lower()
        if lowered in self.ignore:
            return True
        if self.observe_sensitive:
            return False
        if lowered in SENSITIVE_COMMANDS:
            return True
        return lowered in HELLO_COMMANDS and not command_or_reply

    # command monitoring
    def started(self, event):
        if self.skip_command(event.command_name, event.command):
            return
        fields = {"command": event.command, "commandName": event.command_name, "databaseName": event.database_name,
                  "hasServiceId": event.service_id is not None,
                  "hasServerConnectionId": event.server_connection_id is not None}
        with self.lock:
            self.started_commands.append(event.command)
        self.add("commandStartedEvent", fields)

    def succeeded(self, event):
        if self.skip_command(event.command_name, event.reply):
            return
        self.add("commandSucceededEvent", {"reply": event.reply, "commandName": event.command_name,
                                           "databaseName": event.database_name,
                                           "hasServiceId": event.service_id is not None,
                                           "hasServerConnectionId": event.server_connection_id is not None})

    def failed(self, event):
        if self.skip_command(event.command_name, True):
            return
        self.add("commandFailedEvent", {"commandName": event.command_name, "databaseName": event.database_name,
                                        "hasServiceId": event.service_id is not None,
                                        "hasServerConnectionId": event.server_connection_id is not None})

    # connection pool monitoring
    def pool_created(self, event):
        self.add("poolCreatedEvent", {})

    def pool_ready(self, event):
        self.add("poolReadyEvent", {})

    def pool_cleared(self, event):
        self.add("poolClearedEvent", {"hasServiceId": event.service_id is not None,
                                      "interruptInUseConnections": bool(getattr(event, "interrupt_connections",
                                                                                False))})

    def pool_closed(self, event):
        self.add("poolClosedEvent", {})

    def connection_created(self, event):
        self.add("connectionCreatedEvent", {})

    def connection_ready(self, event):
        self.add("connectionReadyEvent", {})

    def connection_closed(self, event):
        self.add("connectionClosedEvent", {"reason": event.reason})

    def connection_check_out_started(self, event):
        self.add("connectionCheckOutStartedEvent", {})

    def connection_check_out_failed(self, event):
        self.add("connectionCheckOutFailedEvent", {"reason": event.reason})

    def connection_checked_out(self, event):
        self.add("connectionCheckedOutEvent", {})

    def connection_checked_in(self, event):
        self.add("connectionCheckedInEvent", {})

    # SDAM (pymongo's listener classes share method names; dispatch on the event's type instead)
    def opened(self, event):
        if isinstance(event, monitoring.TopologyOpenedEvent):
            self.add("topologyOpeningEvent", {})

    def description_changed(self, event):
        if isinstance(event, monitoring.ServerDescriptionChangedEvent):
            self.add("serverDescriptionChangedEvent",
                     {"previousDescription": {"type": event.previous_description.server_type_name},
                      "newDescription": {"type": event.new_description.server_type_name}})
        else:
            self.add("topologyDescriptionChangedEvent",
                     {"previousDescription": {"type": event.previous_description.topology_type_name},
                      "newDescription": {"type": event.new_description.topology_type_name}})

    def closed(self, event):
        if isinstance(event, monitoring.TopologyClosedEvent):
            self.add("topologyClosedEvent", {})


# pymongo's listener interfaces share method names (started, opened, ...): one forwarding listener per kind.
class HeartbeatRecorder(monitoring.ServerHeartbeatListener):

    def __init__(self, recorder):
        self.recorder = recorder

    def started(self, event):
        self.recorder.add("serverHeartbeatStartedEvent", {"awaited": event.awaited})

    def succeeded(self, event):
        self.recorder.add("serverHeartbeatSucceededEvent", {"awaited": event.awaited})

    def failed(self, event):
        self.recorder.add("serverHeartbeatFailedEvent", {"awaited": event.awaited})


class CommandRecorder(monitoring.CommandListener):
    def __init__(self, recorder):
        self.recorder = recorder

    def started(self, event):
        self.recorder.started(event)

    def succeeded(self, event):
        self.recorder.succeeded(event)

    def failed(self, event):
        self.recorder.failed(event)


class ServerRecorder(monitoring.ServerListener):
    def __init__(self, recorder):
        self.recorder = recorder

    def opened(self, event):
        pass

    def description_changed(self, event):
        self.recorder.description_changed(event)

    def closed(self, event):
        pass


class TopologyRecorder(monitoring.TopologyListener):
    def __init__(self, recorder):
        self.recorder = recorder

    def opened(self, event):
        self.recorder.opened(event)

    def description_changed(self, event):
        self.recorder.description_changed(event)

    def closed(self, event):
        self.recorder.closed(event)


class PoolRecorder(monitoring.ConnectionPoolListener):
    def __init__(self, recorder):
        self.recorder = recorder


def pool_methods():
    """ConnectionPoolListener's abstract methods, forwarded to the recorder."""
    names = ["pool_created", "pool_ready", "pool_cleared", "pool_closed", "connection_created", "connection_ready",
             "connection_closed", "connection_check_out_started", "connection_check_out_failed",
             "connection_checked_out", "connection_checked_in"]
    for name in names:
        setattr(PoolRecorder, name, lambda self, event, n=name: getattr(self.recorder, n)(event))


pool_methods()


def read_concern(spec):
    return ReadConcern(spec.get("level")) if spec is not None else None


def write_concern(spec):
    if spec is None:
        return None
    args = {}
    if "w" in spec:
        args["w"] = spec["w"]
    if "wtimeoutMS" in spec:
        args["wtimeout"] = spec["wtimeoutMS"]
    if "journal" in spec:
        args["j"] = spec["journal"]
    if "j" in spec:
        args["j"] = spec["j"]
    return WriteConcern(**args)


def read_preference(spec):
    if spec is None:
        return None
    mode = read_pref_mode_from_name(spec["mode"][0].lower() + spec["mode"][1:])
    return make_read_preference(mode, spec.get("tagSets"), spec.get("maxStalenessSeconds", -1))


def collection_options(spec):
    spec = spec or {}
    if "timeoutMS" in spec:
        raise UnsupportedEntity("timeoutMS on a database or collection (client-side operation timeouts)")
    return {"read_concern": read_concern(spec.get("readConcern")),
            "write_concern": write_concern(spec.get("writeConcern")),
            "read_preference": read_preference(spec.get("readPreference"))}


# The format lets a runner shorten the wait before a client re-checks a server after an error (pymongo's
# minHeartbeatFrequencyMS, fixed at 500 ms): recovery after an injected failure is what most tests wait for.
pymongo.common.MIN_HEARTBEAT_INTERVAL = 0.02


class Entities:
    """The entity map: names to driver objects, plus each client's recorder and each session's lsid."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.map = {}
        self.recorders = {}
        self.lsids = {}
        self.threads = {}
        self.clients = []

    def get(self, name):
        if name not in self.map:
            raise MatchError(f"no entity named {name!r}")
        return self.map[name]

    def put(self, name, value):
        if name in self.map:
            raise MatchError(f"entity {name!r} already exists")
        self.map[name] = value

    def session_lsid(self, name):
        if name not in self.lsids:
            raise MatchError(f"no session entity named {name!r}")
        return self.lsids[name]

    def create(self, entities):
        for entity in entities:
            (kind, spec), = entity.items()
            getattr(self, f"create_{kind}", self.unsupported(kind))(spec)

    @staticmethod
    def unsupported(kind):
        def refuse(_spec):
            raise UnsupportedEntity(f"{kind} entities are not supported by this runner")
        return refuse

    def create_client(self, spec):
        options = dict(spec.get("uriOptions", {}))
        if "serverApi" in spec:
            from pymongo.server_api import ServerApi
            api = spec["serverApi"]
            options["server_api"] = ServerApi(api["version"], strict=api.get("strict"),
                                              deprecation_errors=api.get("deprecationErrors"))
        if "timeoutMS" in options:
            raise UnsupportedEntity("timeoutMS client option (client-side operation timeouts)")
        recorder = Recorder(spec.get("observeEvents", []), spec.get("ignoreCommandMonitoringEvents", []),
                            spec.get("observeSensitiveCommands", False))
        for name in spec.get("storeEventsAsEntities", []):
            raise UnsupportedEntity(f"storeEventsAsEntities ({name['id']})")
        listeners = [CommandRecorder(recorder), PoolRecorder(recorder), HeartbeatRecorder(recorder),
                     ServerRecorder(recorder), TopologyRecorder(recorder)]
        options.setdefault("serverSelectionTimeoutMS", 10000)
        if "heartbeatFrequencyMS" not in spec.get("uriOptions", {}):
            options.setdefault("heartbeatFrequencyMS", 50)
        client = pymongo.MongoClient(self.cluster.uri, event_listeners=listeners, **options)
        self.clients.append(client)
        self.recorders[spec["id"]] = recorder
        self.put(spec["id"], client)
        if spec.get("awaitMinPoolSizeMS"):
            pass  # pools fill in the background; the selected tests do not depend on it

    def create_database(self, spec):
        client = self.get(spec["client"])
        self.put(spec["id"], client.get_database(spec["databaseName"], **collection_options(spec.get(
            "databaseOptions"))))

    def create_collection(self, spec):
        database = self.get(spec["database"])
        self.put(spec["id"], database.get_collection(spec["collectionName"], **collection_options(spec.get(
            "collectionOptions"))))

    def create_session(self, spec):
        client = self.get(spec["client"])
        options = dict(spec.get("sessionOptions", {}))
        kwargs = {}
        if "causalConsistency" in options:
            kwargs["causal_consistency"] = options.pop("causalConsistency")
        if "snapshot" in options:
            kwargs["snapshot"] = options.pop("snapshot")
        # pymongo has no snapshotTime session option: the time (a saved entity) is set where pymongo keeps
        # the time its first snapshot read returned, so the session's reads send it as atClusterTime.
        snapshot_time = options.pop("snapshotTime", None)
        if "defaultTransactionOptions" in options:
            raise UnsupportedEntity("defaultTransactionOptions (transactions are not supported by the engine)")
        if "defaultTimeoutMS" in options:
            raise UnsupportedEntity("defaultTimeoutMS session option (client-side operation timeouts)")
        session = client.start_session(**kwargs)
        if snapshot_time is not None:
            session._snapshot_time = self.get(snapshot_time) if isinstance(snapshot_time, str) else snapshot_time
        self.put(spec["id"], session)
        self.lsids[spec["id"]] = session.session_id

    def create_thread(self, spec):
        worker = Worker(spec["id"])
        self.threads[spec["id"]] = worker
        self.put(spec["id"], worker)

    def close(self):
        for worker in self.threads.values():
            worker.stop()
        for value in list(self.map.values()):
            closer = getattr(value, "close", None) if not isinstance(value, (pymongo.MongoClient, Worker)) else None
            if isinstance(value, pymongo.client_session.ClientSession):
                closer = value.end_session
            if closer is not None and callable(closer) and not isinstance(value, (pymongo.database.Database,
                                                                                  pymongo.collection.Collection)):
                try:
                    closer()
                except Exception:  # noqa: BLE001 - cleanup must go on
                    pass
        # Closing joins the client's monitor threads (up to half a second): done in the background.
        for client in self.clients:
            threading.Thread(target=client.close, name="spec-close", daemon=True).start()


class Worker:
    """A thread entity: runs operations handed to it in order; `wait` reports the first error."""

    def __init__(self, name):
        self.name = name
        self.jobs = queue.Queue()
        self.error = None
        self.thread = threading.Thread(target=self.loop, name=f"spec-{name}", daemon=True)
        self.thread.start()

    def loop(self):
        while True:
            job = self.jobs.get()
            try:
                if job is None:
                    return
                if self.error is None:
                    job()
            except BaseException as err:  # noqa: BLE001 - reported by waitForThread
                self.error = err
            finally:
                self.jobs.task_done()

    def submit(self, job):
        self.jobs.put(job)

    def wait(self, timeout=10.0):
        done = threading.Event()
        self.jobs.put(done.set)
        if not done.wait(timeout):
            raise MatchError(f"thread {self.name} did not finish its operations within {timeout}s")
        if self.error is not None:
            raise self.error

    def stop(self):
        self.jobs.put(None)

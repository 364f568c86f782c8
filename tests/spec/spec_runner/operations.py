"""The operations of the unified test format on pymongo objects: arguments translated to pymongo's names,
results converted to the documents the format expects, and the test runner's special operations.

`Operations.run(op)` returns the operation's result (already in the format's shape) or raises the driver's
exception; `NotSupported` means this runner (or pymongo) cannot express the operation, which skips the test.
"""
import inspect
import time

import pymongo
from pymongo import ReturnDocument
from pymongo.change_stream import ChangeStream
from pymongo.command_cursor import CommandCursor
from pymongo.cursor import Cursor
from pymongo.operations import DeleteMany, DeleteOne, InsertOne, ReplaceOne, UpdateMany, UpdateOne

from .entities import read_preference
from .matching import MISSING, Matcher, MatchError, describe


class NotSupported(Exception):
    """The runner cannot run this operation or argument: the test is skipped with this reason."""


# The format's argument names that pymongo spells differently (the rest: camelCase to snake_case).
RENAMED = {"maxTimeMS": "max_time_ms", "batchSize": "batch_size", "let": "let", "maxAwaitTimeMS": "max_await_time_ms",
           "showExpandedEvents": "show_expanded_events", "noCursorTimeout": "no_cursor_timeout",
           "allowPartialResults": "allow_partial_results", "returnKey": "return_key", "showRecordId": "show_record_id",
           "fullDocumentBeforeChange": "full_document_before_change"}
# Arguments with no pymongo equivalent on the operation that would change what is sent: the test is skipped.
UNSUPPORTED_ARGUMENTS = {"timeoutMS": "client-side operation timeouts (timeoutMS)",
                         "cursorType": "tailable cursors through the unified format",
                         "timeoutMode": "client-side operation timeouts (timeoutMode)"}


def snake(name):
    if name in RENAMED:
        return RENAMED[name]
    out = []
    for ch in name:
        if ch.isupper():
            out.append("_" + ch.lower())
        else:
            out.append(ch)
    return "".join(out)


def update_result(result):
    upserted = result.upserted_id
    doc = {"matchedCount": result.matched_count, "modifiedCount": result.modified_count,
           "upsertedCount": 0 if upserted is None else 1}
    if upserted is not None:
        doc["upsertedId"] = upserted
    return doc


def bulk_result(result):
    return {"deletedCount": result.deleted_count, "insertedCount": result.inserted_count,
            "matchedCount": result.matched_count, "modifiedCount": result.modified_count,
            "upsertedCount": result.upserted_count,
            "upsertedIds": {str(k): v for k, v in (result.upserted_ids or {}).items()}}


def bulk_requests(requests):
    models = []
    for request in requests:
        (kind, spec), = request.items()
        spec = dict(spec)
        if kind == "insertOne":
            models.append(InsertOne(spec["document"]))
            continue
        model = {"updateOne": UpdateOne, "updateMany": UpdateMany, "replaceOne": ReplaceOne, "deleteOne": DeleteOne,
                 "deleteMany": DeleteMany}.get(kind)
        if model is None:
            raise NotSupported(f"bulkWrite request {kind}")
        common = call_arguments(model, {k: v for k, v in spec.items() if k not in ("filter", "update", "replacement")})
        if kind == "updateOne":
            models.append(UpdateOne(spec["filter"], spec["update"], **common))
        elif kind == "updateMany":
            models.append(UpdateMany(spec["filter"], spec["update"], **common))
        elif kind == "replaceOne":
            models.append(ReplaceOne(spec["filter"], spec["replacement"], **common))
        elif kind == "deleteOne":
            models.append(DeleteOne(spec["filter"], **common))
        elif kind == "deleteMany":
            models.append(DeleteMany(spec["filter"], **common))
        else:
            raise NotSupported(f"bulkWrite request {kind}")
    return models


def call_arguments(method, args):
    """The format's arguments as keyword arguments of a pymongo method: a name the method takes explicitly in
    snake_case is renamed; other names go through its **kwargs unchanged (pymongo sends those to the server as
    they are); `rawData` is dropped (pymongo does not send it: the "ignore argument" behaviour for servers
    before 8.2)."""
    params = inspect.signature(method).parameters
    takes_any = any(p.kind == inspect.Parameter.VAR_KEYWORD for p in params.values())
    out = {}
    for key, value in args.items():
        if key == "rawData":
            continue
        if key in ("readConcern", "writeConcern", "readPreference"):
            raise NotSupported(f"{key} as an operation argument")
        name = snake(key)
        if name in params:
            out[name] = value
        elif key in params or takes_any:
            out[key] = value
        else:
            raise NotSupported(f"argument {key} of {getattr(method, '__name__', method)}")
    if "return_document" in out:
        out["return_document"] = ReturnDocument.AFTER if out["return_document"] == "After" else ReturnDocument.BEFORE
    return out


def take_session(args, entities):
    if "session" in args:
        args["session"] = entities.get(args["session"])


def static_skip_reason(op):
    """Why this runner cannot run an operation, judged before the test starts (so a skip never depends on how
    far the server let the test get), or None."""
    name = op["name"]
    for key in op.get("arguments", {}):
        if key in UNSUPPORTED_ARGUMENTS:
            return UNSUPPORTED_ARGUMENTS[key]
    if name == "clientBulkWrite":
        return "clientBulkWrite (needs MongoDB 8.0's bulkWrite command)"
    if name == "mapReduce":
        return "mapReduce (removed from pymongo 4)"
    prefixes = ("runner_",) if op["object"] == "testRunner" else (
        "client_", "database_", "collection_", "session_", "cursor_", "any_")
    if not any(hasattr(Operations, prefix + name) for prefix in prefixes):
        return f"operation {name}"
    if name == "runOnThread":
        return static_skip_reason(op["arguments"]["operation"])
    return None


class Operations:
    """Runs one operation of a test against the entity map."""

    def __init__(self, entities, cluster, test_state):
        self.entities = entities
        self.cluster = cluster
        self.state = test_state
        self.matcher = Matcher(entities)

    def run(self, op):
        name = op["name"]
        target_name = op["object"]
        args = dict(op.get("arguments", {}))
        for key in args:
            if key in UNSUPPORTED_ARGUMENTS:
                raise NotSupported(UNSUPPORTED_ARGUMENTS[key])
        if target_name == "testRunner":
            method = getattr(self, f"runner_{name}", None)
            if method is None:
                raise NotSupported(f"test runner operation {name}")
            return method(args)
        target = self.entities.get(target_name)
        if isinstance(target, pymongo.MongoClient):
            kind = "client"
        elif isinstance(target, pymongo.database.Database):
            kind = "database"
        elif isinstance(target, pymongo.collection.Collection):
            kind = "collection"
        elif isinstance(target, pymongo.client_session.ClientSession):
            kind = "session"
        elif isinstance(target, (ChangeStream, CommandCursor, Cursor, IterableResult)):
            kind = "cursor"
        else:
            raise NotSupported(f"operation {name} on {type(target).__name__}")
        method = getattr(self, f"{kind}_{name}", None) or getattr(self, f"any_{name}", None)
        if method is None:
            raise NotSupported(f"{kind} operation {name}")
        take_session(args, self.entities)
        return method(target, args)

    # -- client -----------------------------------------------------------------------------------------------
    def client_listDatabases(self, client, args):
        return list(client.list_databases(**call_arguments(client.list_databases, args)))

    def client_listDatabaseNames(self, client, args):
        return client.list_database_names(**call_arguments(client.list_database_names, args))

    def client_listDatabaseObjects(self, client, args):
        return list(client.list_databases(**call_arguments(client.list_databases, args)))

    def client_close(self, client, args):
        client.close()

    def client_clientBulkWrite(self, client, args):
        raise NotSupported("clientBulkWrite (needs MongoDB 8.0's bulkWrite command)")

    def any_createChangeStream(self, target, args):
        pipeline = args.pop("pipeline", [])
        return target.watch(pipeline, **call_arguments(target.watch, args))

    # -- database ---------------------------------------------------------------------------------------------
    def database_runCommand(self, db, args):
        command = args["command"]
        kwargs = {}
        if "session" in args:
            kwargs["session"] = args["session"]
        if "readPreference" in args:
            kwargs["read_preference"] = read_preference(args["readPreference"])
        if "readConcern" in args or "writeConcern" in args:
            raise NotSupported("runCommand with readConcern/writeConcern arguments")
        return db.command(command, **kwargs)

    def database_aggregate(self, db, args):
        pipeline = args.pop("pipeline")
        return list(db.aggregate(pipeline, **call_arguments(db.aggregate, args)))

    def database_listCollections(self, db, args):
        return list(db.list_collections(**call_arguments(db.list_collections, args)))

    def database_listCollectionObjects(self, db, args):
        return list(db.list_collections(**call_arguments(db.list_collections, args)))

    def database_listCollectionNames(self, db, args):
        return db.list_collection_names(**call_arguments(db.list_collection_names, args))

    def database_dropCollection(self, db, args):
        name = args.pop("collection")
        db.drop_collection(name, **call_arguments(db.drop_collection, args))

    def database_createCollection(self, db, args):
        name = args.pop("collection")
        kwargs = {}
        if "session" in args:
            kwargs["session"] = args.pop("session")
        # check_exists=False: the format expects the create command alone (no listCollections first).
        db.create_collection(name, check_exists=False, **kwargs, **args)

    def database_modifyCollection(self, db, args):
        name = args.pop("collection")
        command = {"collMod": name, **{k: v for k, v in args.items() if k != "session"}}
        return db.command(command, session=args.get("session"))

    # -- collection -------------------------------------------------------------------------------------------
    def collection_insertOne(self, coll, args):
        document = args.pop("document")
        result = coll.insert_one(document, **call_arguments(coll.insert_one, args))
        return {"insertedId": result.inserted_id} if result.acknowledged else None

    def collection_insertMany(self, coll, args):
        documents = args.pop("documents")
        result = coll.insert_many(documents, **call_arguments(coll.insert_many, args))
        return {"insertedIds": {str(i): v for i, v in enumerate(result.inserted_ids)}} if result.acknowledged else None

    def collection_bulkWrite(self, coll, args):
        requests = bulk_requests(args.pop("requests"))
        result = coll.bulk_write(requests, **call_arguments(coll.bulk_write, args))
        return bulk_result(result) if result.acknowledged else None

    def collection_updateOne(self, coll, args):
        result = coll.update_one(args.pop("filter"), args.pop("update"), **call_arguments(coll.update_one, args))
        return update_result(result) if result.acknowledged else None

    def collection_updateMany(self, coll, args):
        result = coll.update_many(args.pop("filter"), args.pop("update"), **call_arguments(coll.update_many, args))
        return update_result(result) if result.acknowledged else None

    def collection_replaceOne(self, coll, args):
        result = coll.replace_one(args.pop("filter"), args.pop("replacement"), **call_arguments(coll.replace_one, args))
        return update_result(result) if result.acknowledged else None

    def collection_deleteOne(self, coll, args):
        result = coll.delete_one(args.pop("filter"), **call_arguments(coll.delete_one, args))
        return {"deletedCount": result.deleted_count} if result.acknowledged else None

    def collection_deleteMany(self, coll, args):
        result = coll.delete_many(args.pop("filter"), **call_arguments(coll.delete_many, args))
        return {"deletedCount": result.deleted_count} if result.acknowledged else None

    # find and find_one take the Cursor's keyword arguments
    def collection_find(self, coll, args):
        return list(coll.find(args.pop("filter", {}), **call_arguments(Cursor.__init__, args)))

    def collection_createFindCursor(self, coll, args):
        return IterableResult(coll.find(args.pop("filter", {}), **call_arguments(Cursor.__init__, args)))

    def collection_findOne(self, coll, args):
        return coll.find_one(args.pop("filter", {}), **call_arguments(Cursor.__init__, args))

    def collection_aggregate(self, coll, args):
        return list(coll.aggregate(args.pop("pipeline"), **call_arguments(coll.aggregate, args)))

    def collection_findOneAndUpdate(self, coll, args):
        return coll.find_one_and_update(args.pop("filter"), args.pop("update"), **call_arguments(coll.find_one_and_update, args))

    def collection_findOneAndReplace(self, coll, args):
        return coll.find_one_and_replace(args.pop("filter"), args.pop("replacement"), **call_arguments(coll.find_one_and_replace, args))

    def collection_findOneAndDelete(self, coll, args):
        return coll.find_one_and_delete(args.pop("filter"), **call_arguments(coll.find_one_and_delete, args))

    def collection_countDocuments(self, coll, args):
        return coll.count_documents(args.pop("filter"), **call_arguments(coll.count_documents, args))

    def collection_estimatedDocumentCount(self, coll, args):
        return coll.estimated_document_count(**call_arguments(coll.estimated_document_count, args))

    def collection_count(self, coll, args):
        # The deprecated count helper, which pymongo 4 no longer has: the `count` command sent the way pymongo's
        # own estimated_document_count sends it (a retryable read, through pymongo's internal helpers, pinned
        # with pymongo in tests/python/requirements.txt).
        session = args.pop("session", None)
        command = {"count": coll.name}
        for key, value in args.items():
            if key != "rawData":
                command["query" if key == "filter" else key] = value

        def run(session, _server, conn, read_preference):
            return coll._count_cmd(session, conn, read_preference, command, collation=None)
        return coll._retryable_non_cursor_read(run, session, operation="count")

    def collection_distinct(self, coll, args):
        return coll.distinct(args.pop("fieldName"), args.pop("filter", None), **call_arguments(coll.distinct, args))

    def collection_listIndexes(self, coll, args):
        return list(coll.list_indexes(**call_arguments(coll.list_indexes, args)))

    def collection_listIndexNames(self, coll, args):
        return [index["name"] for index in coll.list_indexes(**call_arguments(coll.list_indexes, args))]

    def collection_createIndex(self, coll, args):
        keys = list(args.pop("keys").items())
        return coll.create_index(keys, **call_arguments(coll.create_index, args))

    def collection_dropIndex(self, coll, args):
        return coll.drop_index(args.pop("name"), **call_arguments(coll.drop_index, args))

    def collection_dropIndexes(self, coll, args):
        return coll.drop_indexes(**call_arguments(coll.drop_indexes, args))

    def collection_rename(self, coll, args):
        coll.rename(args.pop("to"), **call_arguments(coll.rename, args))

    def collection_mapReduce(self, coll, args):
        raise NotSupported("mapReduce (removed from pymongo 4)")

    # -- session ----------------------------------------------------------------------------------------------
    def session_endSession(self, session, args):
        session.end_session()

    def session_getSnapshotTime(self, session, args):
        return session.snapshot_time if hasattr(session, "snapshot_time") else session._snapshot_time

    # -- cursors and change streams ---------------------------------------------------------------------------
    def cursor_iterateUntilDocumentOrError(self, cursor, args):
        if isinstance(cursor, ChangeStream):
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                change = cursor.try_next()
                if change is not None:
                    return change
                if not cursor.alive:
                    break
            raise MatchError("the change stream returned no document within 10s")
        return next(cursor)

    def cursor_iterateOnce(self, cursor, args):
        if isinstance(cursor, ChangeStream):
            return cursor.try_next()
        return cursor.try_next() if hasattr(cursor, "try_next") else next(cursor, None)

    def cursor_close(self, cursor, args):
        cursor.close()

    # -- test runner ------------------------------------------------------------------------------------------
    def runner_failPoint(self, args):
        client = self.entities.get(args["client"])
        command = args["failPoint"]
        self.state.fail_points.add(command["configureFailPoint"])
        client.admin.command(command)

    def runner_createEntities(self, args):
        self.entities.create(args["entities"])

    def runner_wait(self, args):
        time.sleep(args["ms"] / 1000)

    def event_count(self, client, event):
        (name, expected), = event.items()
        recorder = self.entities.recorders[client]
        count = 0
        for actual_name, fields in list(recorder.events):
            if actual_name != name:
                continue
            try:
                self.matcher.match(expected, fields, root=True)
                count += 1
            except MatchError:
                pass
        return count

    def runner_waitForEvent(self, args):
        deadline = time.monotonic() + 10
        while self.event_count(args["client"], args["event"]) < args["count"]:
            if time.monotonic() > deadline:
                raise MatchError(f"waited 10s for {args['count']} of {describe(args['event'])}; saw "
                                 f"{self.event_count(args['client'], args['event'])}")
            time.sleep(0.01)

    def runner_assertEventCount(self, args):
        seen = self.event_count(args["client"], args["event"])
        if seen != args["count"]:
            raise MatchError(f"expected {args['count']} of {describe(args['event'])}, saw {seen}")

    def last_two_lsids(self, client):
        commands = self.entities.recorders[client].started_commands
        if len(commands) < 2:
            raise MatchError("fewer than two commands were observed")
        return commands[-2].get("lsid", MISSING), commands[-1].get("lsid", MISSING)

    def runner_assertSameLsidOnLastTwoCommands(self, args):
        first, second = self.last_two_lsids(args["client"])
        if first != second:
            raise MatchError(f"lsids differ: {describe(first)} and {describe(second)}")

    def runner_assertDifferentLsidOnLastTwoCommands(self, args):
        first, second = self.last_two_lsids(args["client"])
        if first == second:
            raise MatchError(f"lsids are the same: {describe(first)}")

    def session_dirty(self, name):
        session = self.entities.get(name)
        server_session = session._server_session
        return server_session.dirty

    def runner_assertSessionDirty(self, args):
        if not self.session_dirty(args["session"]):
            raise MatchError(f"session {args['session']} is not dirty")

    def runner_assertSessionNotDirty(self, args):
        if self.session_dirty(args["session"]):
            raise MatchError(f"session {args['session']} is dirty")

    def runner_assertCollectionExists(self, args):
        names = self.cluster.internal[args["databaseName"]].list_collection_names()
        if args["collectionName"] not in names:
            raise MatchError(f"collection {args['collectionName']} does not exist")

    def runner_assertCollectionNotExists(self, args):
        names = self.cluster.internal[args["databaseName"]].list_collection_names()
        if args["collectionName"] in names:
            raise MatchError(f"collection {args['collectionName']} exists")

    def index_names(self, args):
        coll = self.cluster.internal[args["databaseName"]][args["collectionName"]]
        return [index["name"] for index in coll.list_indexes()]

    def runner_assertIndexExists(self, args):
        if args["indexName"] not in self.index_names(args):
            raise MatchError(f"index {args['indexName']} does not exist")

    def runner_assertIndexNotExists(self, args):
        if args["indexName"] in self.index_names(args):
            raise MatchError(f"index {args['indexName']} exists")

    def runner_runOnThread(self, args):
        worker = self.entities.threads[args["thread"]]
        operation = args["operation"]
        worker.submit(lambda: self.state.run_operation(self, operation))

    def runner_waitForThread(self, args):
        self.entities.threads[args["thread"]].wait()

    def runner_recordTopologyDescription(self, args):
        client = self.entities.get(args["client"])
        self.entities.map[args["id"]] = client.topology_description

    def runner_assertTopologyType(self, args):
        description = self.entities.get(args["topologyDescription"])
        if description.topology_type_name != args["topologyType"]:
            raise MatchError(f"topology type {description.topology_type_name}, expected {args['topologyType']}")

    def runner_waitForPrimaryChange(self, args):
        client = self.entities.get(args["client"])
        prior = self.entities.get(args["priorTopologyDescription"])
        prior_primary = [s.address for s in prior.server_descriptions().values() if s.server_type_name == "RSPrimary"]
        deadline = time.monotonic() + args.get("timeoutMS", 10000) / 1000

        def primary():
            return [s.address for s in client.topology_description.server_descriptions().values()
                    if s.server_type_name == "RSPrimary"]
        while not primary() or primary() == prior_primary:
            if time.monotonic() > deadline:
                raise MatchError("the primary did not change")
            time.sleep(0.01)

    def runner_assertNumberConnectionsCheckedOut(self, args):
        raise NotSupported("assertNumberConnectionsCheckedOut (pymongo does not expose the pool's count)")


class IterableResult:
    """A find cursor kept as an entity (createFindCursor)."""

    def __init__(self, cursor):
        self.cursor = cursor

    def __next__(self):
        return next(self.cursor)

    def __iter__(self):
        return self

    def try_next(self):
        return next(self.cursor, None)

    def close(self):
        self.cursor.close()


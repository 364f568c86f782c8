"""Running one test file of the unified format: schema version and runOnRequirements, then for each test its
initialData, entities, operations (with expectResult / expectError / saveResultAsEntity), expectEvents and
outcome, and the clean-up (fail points off on every member, sessions ended, clients closed).

Outcomes are counted per suite in a `Tally`: passed, failed (with a one-line reason) and skipped (with the
reason: an unmet requirement, a feature the engine lacks such as transactions, or one this runner lacks).
"""
import os
import time
import traceback

import pymongo
from pymongo.errors import BulkWriteError, OperationFailure, PyMongoError
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

from .entities import Entities, UnsupportedEntity
from .matching import MatchError, describe, load_test_file, values_equal
from .operations import NotSupported, Operations, static_skip_reason

SUITES = ["crud", "retryable-writes", "retryable-reads", "sessions", "causal-consistency", "change-streams",
          "command-monitoring", "server-discovery-and-monitoring"]
# The highest schema version whose features this runner was written against.
SCHEMA_MAJOR = 1
TRANSACTION_OPERATIONS = {"startTransaction", "commitTransaction", "abortTransaction", "withTransaction",
                          "assertSessionTransactionState", "assertSessionPinned", "assertSessionUnpinned",
                          "targetedFailPoint"}
ITERABLE_RESULTS = {"find", "aggregate", "listCollections", "listDatabases", "listIndexes", "listCollectionObjects",
                    "listDatabaseObjects", "runCursorCommand"}


class Skip(Exception):
    pass


class Tally:
    def __init__(self):
        self.counts = {}
        self.failures = {}
        self.passed_ids = set()
        self.skipped = []

    def count(self, suite, outcome):
        per_suite = self.counts.setdefault(suite, {"passed": 0, "failed": 0, "skipped": 0})
        per_suite[outcome] += 1

    def total(self, outcome):
        return sum(c[outcome] for c in self.counts.values())

    def table(self, suites):
        lines = ["| suite | passed | failed | skipped |", "|---|---:|---:|---:|"]
        for suite in suites:
            c = self.counts.get(suite, {"passed": 0, "failed": 0, "skipped": 0})
            lines.append(f"| {suite} | {c['passed']} | {c['failed']} | {c['skipped']} |")
        lines.append(f"| **total** | {self.total('passed')} | {self.total('failed')} | {self.total('skipped')} |")
        reasons = {}
        for _test_id, reason in self.skipped:
            reasons[reason] = reasons.get(reason, 0) + 1
        lines.append("")
        lines.append("Skipped, by reason:")
        lines.append("")
        for reason, n in sorted(reasons.items(), key=lambda r: -r[1]):
            lines.append(f"- {n} × {reason}")
        return "\n".join(lines)


def parse_version(text):
    parts = [int(p) for p in text.split(".")]
    return tuple((parts + [0, 0, 0])[:3])


def unmet(requirement, info):
    """Why one runOnRequirement is not met by this server, or None when it is."""
    version = info["version"]
    if "minServerVersion" in requirement and version < parse_version(requirement["minServerVersion"]):
        return f"needs server >= {requirement['minServerVersion']}"
    if "maxServerVersion" in requirement and version > parse_version(requirement["maxServerVersion"]):
        return f"needs server <= {requirement['maxServerVersion']}"
    topologies = requirement.get("topologies")
    if topologies is not None and info["topology"] not in topologies:
        return f"needs topology {'/'.join(topologies)}"
    if requirement.get("serverless") == "require":
        return "needs Atlas Serverless"
    if requirement.get("auth") is True or "authMechanism" in requirement:
        return "needs authentication"
    if requirement.get("csfle"):
        return "needs client-side field level encryption"
    for name, value in requirement.get("serverParameters", {}).items():
        actual = info["parameters"].get(name)
        if actual is None or not values_equal(value, actual):
            return f"needs server parameter {name}={describe(value)}"
    return None


def requirements_reason(requirements, info):
    if not requirements:
        return None
    reasons = [unmet(r, info) for r in requirements]
    if any(r is None for r in reasons):
        return None
    return "runOnRequirements: " + "; or ".join(sorted(set(reasons)))


def uses_transactions(test):
    def names(ops):
        for op in ops:
            yield op["name"]
            if op["name"] == "runOnThread":
                yield op["arguments"]["operation"]["name"]
    return any(name in TRANSACTION_OPERATIONS for name in names(test["operations"]))


def one_line(err):
    if isinstance(err, OperationFailure):
        text = f"{type(err).__name__} code {err.code}: {err.details.get('errmsg', str(err)) if err.details else err}"
    else:
        text = f"{type(err).__name__}: {err}"
    text = " ".join(text.split())
    return text if len(text) <= 240 else text[:240] + "..."


class TestState:
    """What one test accumulates: the fail points it set."""

    def __init__(self, suite):
        self.suite = suite
        self.fail_points = set()

    def run_operation(self, ops, op):
        expect_error = op.get("expectError")
        try:
            result = ops.run(op)
        except (NotSupported, UnsupportedEntity, MatchError):
            raise
        except (PyMongoError, ValueError, TypeError, KeyError, StopIteration) as err:
            if isinstance(err, (KeyError, TypeError)) and not isinstance(err, PyMongoError) and expect_error is None:
                raise
            if op.get("ignoreResultAndError"):
                return
            if expect_error is None:
                raise
            check_error(ops.matcher, expect_error, err)
            return
        if expect_error is not None:
            raise MatchError(f"{op['name']}: expected an error {describe(expect_error)}, got result "
                             f"{describe(result)}")
        if "expectResult" in op and not op.get("ignoreResultAndError"):
            check_result(ops.matcher, op["name"], op["expectResult"], result)
        if "saveResultAsEntity" in op:
            ops.entities.map[op["saveResultAsEntity"]] = result


def check_result(matcher, name, expected, actual):
    if name in ITERABLE_RESULTS and isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            raise MatchError(f"{name}: expected {len(expected)} results, got {len(actual)}: {describe(actual)}")
        for i, (e, a) in enumerate(zip(expected, actual)):
            matcher.match(e, a, root=True, path=f"{name}[{i}]")
        return
    matcher.match(expected, actual, root=True, path=name)


def bulk_write_result(details):
    return {"insertedCount": details.get("nInserted", 0), "deletedCount": details.get("nRemoved", 0),
            "matchedCount": details.get("nMatched", 0), "modifiedCount": details.get("nModified", 0),
            "upsertedCount": details.get("nUpserted", 0),
            "upsertedIds": {str(u["index"]): u["_id"] for u in details.get("upserted", [])}}


def error_parts(err):
    """Codes, code names and messages of a driver error, including a bulk error's aggregated errors."""
    codes, names, messages = [], [], [str(err)]
    details = getattr(err, "details", None) or {}
    if isinstance(err, OperationFailure):
        codes.append(err.code)
        if "codeName" in details:
            names.append(details["codeName"])
        if "errmsg" in details:
            messages.append(details["errmsg"])
    for sub in list(details.get("writeErrors", [])) + list(details.get("writeConcernErrors", [])):
        codes.append(sub.get("code"))
        if "codeName" in sub:
            names.append(sub["codeName"])
        messages.append(sub.get("errmsg", ""))
    wce = details.get("writeConcernError")
    if isinstance(wce, dict):
        codes.append(wce.get("code"))
        names.append(wce.get("codeName", ""))
        messages.append(wce.get("errmsg", ""))
    return codes, names, messages


def check_error(matcher, expected, err):
    is_client = not isinstance(err, OperationFailure)
    if "isClientError" in expected and expected["isClientError"] != is_client:
        raise MatchError(f"expected {'a client' if expected['isClientError'] else 'a server'} error, got "
                         f"{one_line(err)}")
    if "isTimeoutError" in expected and expected["isTimeoutError"] != bool(getattr(err, "timeout", False)):
        raise MatchError(f"isTimeoutError {expected['isTimeoutError']}, got {one_line(err)}")
    codes, names, messages = error_parts(err)
    if "errorContains" in expected and not any(expected["errorContains"].lower() in m.lower() for m in messages):
        raise MatchError(f"error does not contain {expected['errorContains']!r}: {one_line(err)}")
    if "errorCode" in expected and expected["errorCode"] not in codes:
        raise MatchError(f"expected error code {expected['errorCode']}, got {one_line(err)}")
    if "errorCodeName" in expected and expected["errorCodeName"].lower() not in [n.lower() for n in names if n]:
        raise MatchError(f"expected error code name {expected['errorCodeName']}, got {one_line(err)} "
                         f"(code names {names})")
    has_label = getattr(err, "has_error_label", lambda _label: False)
    for label in expected.get("errorLabelsContain", []):
        if not has_label(label):
            raise MatchError(f"error lacks label {label}: {one_line(err)} "
                             f"labels {sorted(getattr(err, '_error_labels', []))}")
    for label in expected.get("errorLabelsOmit", []):
        if has_label(label):
            raise MatchError(f"error has label {label}: {one_line(err)}")
    if "errorResponse" in expected:
        matcher.match(expected["errorResponse"], getattr(err, "details", None) or {}, root=True,
                      path="errorResponse")
    if "expectResult" in expected:
        if not isinstance(err, BulkWriteError):
            raise MatchError(f"expected a partial result with the error, got {one_line(err)}")
        matcher.match(expected["expectResult"], bulk_write_result(err.details), root=True, path="errorResult")
    if "writeErrors" in expected or "writeConcernErrors" in expected:
        raise NotSupported("writeErrors/writeConcernErrors (clientBulkWrite)")


def check_events(matcher, entities, expectations):
    for expectation in expectations:
        client = expectation["client"]
        kind = expectation.get("eventType", "command")
        actual = entities.recorders[client].of_kind(kind)
        expected = expectation["events"]
        if expectation.get("ignoreExtraEvents"):
            actual = actual[:len(expected)]
        if len(actual) != len(expected):
            raise MatchError(f"{client}: expected {len(expected)} {kind} events, got {len(actual)}: "
                             f"{describe([summarize(e) for e in actual], 600)}")
        for i, (want, (name, fields)) in enumerate(zip(expected, actual)):
            (want_name, want_fields), = want.items()
            if want_name != name:
                raise MatchError(f"{client} event {i}: expected {want_name}, got {summarize((name, fields))}")
            for key, value in want_fields.items():
                if key not in fields:
                    raise MatchError(f"{client} event {i} {name}: no field {key}")
                matcher.match(value, fields[key], root=key in ("command", "reply"),
                              path=f"{client}.events[{i}].{name}.{key}")


def summarize(event):
    name, fields = event
    return f"{name}({fields.get('commandName', '')})" if "commandName" in fields else name


class FileRunner:
    def __init__(self, cluster, suite, path, tally, pattern, verbose):
        self.cluster = cluster
        self.suite = suite
        self.path = path
        self.file = os.path.basename(path)
        self.tally = tally
        self.pattern = pattern
        self.verbose = verbose
        self.info = None

    def test_id(self, description):
        return f"{self.suite}/{self.file} :: {description}"

    def run(self):
        data = load_test_file(self.path)
        major = int(str(data.get("schemaVersion", "1.0")).split(".")[0])
        file_reason = None
        if major != SCHEMA_MAJOR:
            file_reason = f"schema version {data.get('schemaVersion')}"
        for test in data["tests"]:
            test_id = self.test_id(test["description"])
            if self.pattern is not None and not self.pattern.search(test_id):
                continue
            reason = file_reason or self.skip_reason(data, test)
            if reason is not None:
                self.skip(test_id, reason)
                continue
            started = time.monotonic()
            try:
                self.run_test(data, test)
            except Skip as skip:
                self.skip(test_id, str(skip))
            except (NotSupported, UnsupportedEntity) as unsupported:
                self.skip(test_id, f"runner: {unsupported}")
            except (MatchError, PyMongoError, Exception) as err:  # noqa: BLE001 - any error fails the test
                reason = one_line(err) if not isinstance(err, MatchError) else " ".join(str(err).split())[:300]
                if not isinstance(err, (MatchError, PyMongoError)):
                    reason = f"runner error {reason} at {traceback.extract_tb(err.__traceback__)[-1].lineno}"
                self.tally.count(self.suite, "failed")
                self.tally.failures[test_id] = reason
                print(f"FAIL {test_id}: {reason}", flush=True)
            else:
                self.tally.count(self.suite, "passed")
                self.tally.passed_ids.add(test_id)
                if self.verbose:
                    print(f"ok   {test_id} ({time.monotonic() - started:.2f}s)", flush=True)

    def skip(self, test_id, reason):
        self.tally.count(self.suite, "skipped")
        self.tally.skipped.append((test_id, reason))
        if self.verbose:
            print(f"skip {test_id}: {reason}", flush=True)

    def skip_reason(self, data, test):
        if "skipReason" in test:
            return f"skipReason: {test['skipReason']}"
        if self.info is None:
            self.info = self.cluster.server_info()
        for requirements in (data.get("runOnRequirements"), test.get("runOnRequirements")):
            reason = requirements_reason(requirements, self.info)
            if reason is not None:
                return reason
        if uses_transactions(test):
            return "needs multi-document transactions (not in the engine yet)"
        if any("bucket" in entity for entity in data.get("createEntities", [])):
            return "runner: GridFS bucket entities"
        if "expectLogMessages" in test:
            return "runner: log message assertions"
        for op in test["operations"]:
            reason = static_skip_reason(op)
            if reason is not None:
                return f"runner: {reason}"
        return None

    def run_test(self, data, test):
        self.load_initial_data(data.get("initialData", []))
        entities = Entities(self.cluster)
        state = TestState(self.suite)
        try:
            entities.create(data.get("createEntities", []))
            ops = Operations(entities, self.cluster, state)
            for op in test["operations"]:
                state.run_operation(ops, op)
            for recorder in entities.recorders.values():
                recorder.enabled = False
            check_events(ops.matcher, entities, test.get("expectEvents", []))
        finally:
            for name in state.fail_points:
                self.cluster.disable_fail_point(name)
            entities.close()
        self.check_outcome(test.get("outcome", []))

    def load_initial_data(self, collections):
        client = self.cluster.internal
        majority = WriteConcern(w="majority")
        for spec in collections:
            db = client.get_database(spec["databaseName"], write_concern=majority)
            name = spec["collectionName"]
            db.drop_collection(name)
            if "createOptions" in spec:
                db.create_collection(name, **spec["createOptions"])
            if spec.get("documents"):
                db[name].insert_many(spec["documents"])
            elif "createOptions" not in spec:
                db.create_collection(name)

    def check_outcome(self, collections):
        client = self.cluster.internal
        for spec in collections:
            coll = client.get_database(spec["databaseName"], read_concern=ReadConcern("local"),
                                       read_preference=pymongo.ReadPreference.PRIMARY)[spec["collectionName"]]
            actual = list(coll.find({}, sort=[("_id", 1)]))
            expected = spec["documents"]
            if len(actual) != len(expected) or not all(values_equal(e, a) for e, a in zip(expected, actual)):
                raise MatchError(f"outcome {spec['collectionName']}: expected {describe(expected)}, "
                                 f"got {describe(actual)}")


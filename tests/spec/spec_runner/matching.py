"""Matching an expected value of a test file against an actual value, as the unified test format defines it.

Documents: every expected key must match; the actual document may carry extra keys only at the root (a
result document, an element of a cursor's results, an event's command or reply, an error response). Arrays:
same length, element by element. Numbers compare by value across int32, int64 and double (never against a
boolean). Special operators: `$$exists`, `$$type`, `$$unsetOrMatches`, `$$matchesEntity`,
`$$matchesHexBytes`, `$$sessionLsid`, `$$lte`, `$$matchAsDocument`, `$$matchAsRoot`. Mismatches raise
`MatchError` with the path to the difference.
"""
import datetime
import re

from bson import Binary, Code, DBRef, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp, json_util
from bson.raw_bson import RawBSONDocument

MISSING = object()


class MatchError(AssertionError):
    pass


def is_document(value):
    return isinstance(value, (dict, RawBSONDocument))


def is_number(value):
    return isinstance(value, (int, float, Int64)) and not isinstance(value, bool)


def special_operator(value):
    """The `$$name` of a one-key document whose key is a special operator, else None."""
    if is_document(value) and len(value) == 1:
        key = next(iter(value))
        if key.startswith("$$"):
            return key
    return None


TYPE_CHECKS = {
    "double": lambda v: isinstance(v, float),
    "string": lambda v: isinstance(v, str),
    "object": is_document,
    "array": lambda v: isinstance(v, list),
    "binData": lambda v: isinstance(v, (bytes, Binary)),
    "undefined": lambda v: v is None,
    "objectId": lambda v: isinstance(v, ObjectId),
    "bool": lambda v: isinstance(v, bool),
    "date": lambda v: isinstance(v, datetime.datetime),
    "null": lambda v: v is None,
    "regex": lambda v: isinstance(v, (Regex, re.Pattern)),
    "dbPointer": lambda v: isinstance(v, DBRef),
    "javascript": lambda v: isinstance(v, Code) and v.scope is None,
    "javascriptWithScope": lambda v: isinstance(v, Code) and v.scope is not None,
    "symbol": lambda v: isinstance(v, str),
    "int": lambda v: isinstance(v, int) and not isinstance(v, (bool, Int64)) and -2**31 <= v < 2**31,
    "timestamp": lambda v: isinstance(v, Timestamp),
    "long": lambda v: isinstance(v, Int64) or (isinstance(v, int) and not isinstance(v, bool)),
    "decimal": lambda v: isinstance(v, Decimal128),
    "minKey": lambda v: isinstance(v, MinKey),
    "maxKey": lambda v: isinstance(v, MaxKey),
    "number": lambda v: is_number(v) or isinstance(v, Decimal128),
}


class Matcher:
    """Matches with access to the test's entities (for `$$matchesEntity` and `$$sessionLsid`)."""

    def __init__(self, entities):
        self.entities = entities

    def match(self, expected, actual, root=True, path="$"):
        operator = special_operator(expected)
        if operator is not None:
            self.match_operator(operator, expected[operator], actual, path)
            return
        if is_document(expected):
            if not is_document(actual):
                raise MatchError(f"{path}: expected a document, got {describe(actual)}")
            for key, value in expected.items():
                self.match_key(key, value, actual, f"{path}.{key}")
            if not root:
                extra = [k for k in actual.keys() if k not in expected]
                if extra:
                    raise MatchError(f"{path}: unexpected fields {extra} in {describe(actual)}")
            return
        if isinstance(expected, list):
            if not isinstance(actual, (list, tuple)):
                raise MatchError(f"{path}: expected an array, got {describe(actual)}")
            if len(expected) != len(actual):
                raise MatchError(f"{path}: expected {len(expected)} elements, got {len(actual)}: {describe(actual)}")
            for i, (e, a) in enumerate(zip(expected, actual)):
                self.match(e, a, root=False, path=f"{path}[{i}]")
            return
        match_scalar(expected, actual, path)

    def match_key(self, key, value, actual, path):
        operator = special_operator(value)
        present = key in actual
        if operator == "$$exists":
            if bool(value[operator]) != present:
                raise MatchError(f"{path}: expected {'present' if value[operator] else 'absent'}"
                                 + (f", got {describe(actual[key])}" if present else ""))
            return
        if operator == "$$unsetOrMatches" and not present:
            return
        if not present:
            raise MatchError(f"{path}: missing (expected {describe(value)})")
        self.match(value, actual[key], root=False, path=path)

    def match_operator(self, operator, argument, actual, path):
        if operator == "$$unsetOrMatches":
            if actual is MISSING or actual is None:
                return
            self.match(argument, actual, root=True, path=path)
        elif operator == "$$exists":
            if bool(argument) != (actual is not MISSING):
                raise MatchError(f"{path}: $$exists {argument}")
        elif operator == "$$type":
            names = argument if isinstance(argument, list) else [argument]
            if not any(TYPE_CHECKS[name](actual) for name in names):
                raise MatchError(f"{path}: expected type {names}, got {describe(actual)}")
        elif operator == "$$matchesEntity":
            self.match(self.entities.get(argument), actual, root=True, path=path)
        elif operator == "$$matchesHexBytes":
            if not isinstance(actual, (bytes, Binary)) or bytes(actual).hex() != argument.lower():
                raise MatchError(f"{path}: expected bytes {argument}, got {describe(actual)}")
        elif operator == "$$sessionLsid":
            lsid = self.entities.session_lsid(argument)
            if not is_document(actual) or not values_equal(lsid, actual):
                raise MatchError(f"{path}: expected the lsid of {argument} {describe(lsid)}, got {describe(actual)}")
        elif operator == "$$lte":
            if not is_number(actual) or not actual <= argument:
                raise MatchError(f"{path}: expected a number <= {argument}, got {describe(actual)}")
        elif operator == "$$matchAsDocument":
            if not isinstance(actual, str):
                raise MatchError(f"{path}: expected a JSON string, got {describe(actual)}")
            self.match(argument, json_util.loads(actual), root=False, path=path)
        elif operator == "$$matchAsRoot":
            self.match(argument, actual, root=True, path=path)
        else:
            raise MatchError(f"{path}: unsupported special operator {operator}")


def match_scalar(expected, actual, path):
    if is_number(expected) and is_number(actual):
        if float(expected) != float(actual):
            raise MatchError(f"{path}: expected {expected!r}, got {actual!r}")
        return
    if isinstance(expected, bool) or isinstance(actual, bool):
        if type(expected) is not type(actual) or expected != actual:
            raise MatchError(f"{path}: expected {expected!r}, got {describe(actual)}")
        return
    if isinstance(expected, datetime.datetime) and isinstance(actual, datetime.datetime):
        if expected.replace(tzinfo=None) != actual.replace(tzinfo=None):
            raise MatchError(f"{path}: expected {expected}, got {actual}")
        return
    if isinstance(expected, (bytes, Binary)) and isinstance(actual, (bytes, Binary)):
        if bytes(expected) != bytes(actual):
            raise MatchError(f"{path}: expected {expected!r}, got {actual!r}")
        return
    if actual is MISSING or type(expected) is not type(actual) and not (expected is None and actual is None):
        raise MatchError(f"{path}: expected {describe(expected)}, got {describe(actual)}")
    if expected != actual:
        raise MatchError(f"{path}: expected {expected!r}, got {actual!r}")


def values_equal(a, b):
    """Exact equality up to key order and numeric type (outcome data, lsids)."""
    if is_document(a) and is_document(b):
        return set(a.keys()) == set(b.keys()) and all(values_equal(a[k], b[k]) for k in a.keys())
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(values_equal(x, y) for x, y in zip(a, b))
    try:
        match_scalar(a, b, "$")
        return True
    except MatchError:
        return False


def describe(value, limit=300):
    if value is MISSING:
        return "<missing>"
    try:
        text = json_util.dumps(value, json_options=json_util.RELAXED_JSON_OPTIONS)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def load_test_file(path):
    """A test file as Python values: Extended JSON types ($numberLong, $oid, $date, ...) decoded."""
    with open(path, encoding="utf-8") as f:
        return json_util.loads(f.read(), json_options=json_util.CANONICAL_JSON_OPTIONS.with_options(
            tz_aware=False, document_class=dict))


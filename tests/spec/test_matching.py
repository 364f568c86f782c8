"""Unit tests of the runner's matching rules (spec_runner/matching.py) and runOnRequirements, with no server:
`.venv/bin/python -m unittest discover -s tests/spec -p 'test_*.py'`."""
import os
import sys
import unittest

from bson import Int64, ObjectId

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from spec_runner.matching import MISSING, Matcher, MatchError, values_equal  # noqa: E402
from spec_runner.runner import requirements_reason  # noqa: E402


class Entities:
    def __init__(self):
        self.values = {"oid": ObjectId("0123456789abcdef01234567")}

    def get(self, name):
        return self.values[name]

    def session_lsid(self, name):
        return {"id": name}


def matches(expected, actual, root=True):
    try:
        Matcher(Entities()).match(expected, actual, root=root)
        return True
    except MatchError:
        return False


class MatchingRules(unittest.TestCase):
    def test_extra_fields_only_at_the_root(self):
        self.assertTrue(matches({"x": 1}, {"x": 1, "y": 1}))
        self.assertFalse(matches({"x": 1, "y": 1}, {"x": 1}))
        self.assertFalse(matches({"x": {"y": 1}}, {"x": {"y": 1, "z": 1}}))
        self.assertFalse(matches([{"x": 1}], [{"x": 1, "y": 1}]), "array elements are not root documents")

    def test_numbers_compare_by_value_but_never_as_booleans(self):
        self.assertTrue(matches({"ok": 1}, {"ok": 1.0}))
        self.assertTrue(matches({"n": Int64(2)}, {"n": 2}))
        self.assertFalse(matches({"n": 1}, {"n": 1.5}))
        self.assertFalse(matches({"b": True}, {"b": 1}))
        self.assertFalse(matches([1, 2, 3], [1, 2, 3, 4]), "arrays keep their length")

    def test_exists_type_and_unset_or_matches(self):
        self.assertTrue(matches({"a": {"$$exists": False}}, {}))
        self.assertFalse(matches({"a": {"$$exists": False}}, {"a": None}))
        self.assertTrue(matches({"a": {"$$exists": True}}, {"a": None}))
        self.assertTrue(matches({"a": {"$$type": ["int", "long"]}}, {"a": 5}))
        self.assertFalse(matches({"a": {"$$type": "string"}}, {"a": 5}))
        self.assertTrue(matches({"a": {"$$unsetOrMatches": 1}}, {}))
        self.assertFalse(matches({"a": {"$$unsetOrMatches": 1}}, {"a": 2}))
        self.assertTrue(matches({"$$unsetOrMatches": {"insertedId": 1}}, MISSING))

    def test_entity_operators(self):
        self.assertTrue(matches({"lsid": {"$$sessionLsid": "s0"}}, {"lsid": {"id": "s0"}}))
        self.assertFalse(matches({"lsid": {"$$sessionLsid": "s0"}}, {"lsid": {"id": "s1"}}))
        self.assertTrue(matches({"_id": {"$$matchesEntity": "oid"}}, {"_id": ObjectId("0123456789abcdef01234567")}))
        self.assertTrue(matches({"n": {"$$lte": 3}}, {"n": 3}))
        self.assertFalse(matches({"n": {"$$lte": 3}}, {"n": 4}))
        self.assertTrue(matches({"d": {"$$matchAsRoot": {"x": 1}}}, {"d": {"x": 1, "y": 2}}))
        self.assertTrue(matches({"s": {"$$matchAsDocument": {"x": 1}}}, {"s": '{"x": 1}'}))

    def test_outcome_equality_ignores_key_order_only(self):
        self.assertTrue(values_equal({"a": 1, "b": 2}, {"b": 2, "a": 1}))
        self.assertFalse(values_equal({"a": 1}, {"a": 1, "b": 2}))


class Requirements(unittest.TestCase):
    INFO = {"version": (7, 0, 0), "topology": "replicaset", "parameters": {"enableTestCommands": True}}

    def test_any_requirement_met_runs_the_test(self):
        self.assertIsNone(requirements_reason([{"minServerVersion": "8.0"}, {"topologies": ["replicaset"]}],
                                              self.INFO))
        self.assertIsNone(requirements_reason([{"minServerVersion": "4.0", "maxServerVersion": "7.0.0"}], self.INFO))
        self.assertIsNone(requirements_reason([{"serverParameters": {"enableTestCommands": True}}], self.INFO))

    def test_unmet_requirements_name_the_reason(self):
        self.assertIn(">= 8.0", requirements_reason([{"minServerVersion": "8.0"}], self.INFO))
        self.assertIn("sharded", requirements_reason([{"topologies": ["sharded"]}], self.INFO))
        self.assertIn("authentication", requirements_reason([{"auth": True}], self.INFO))
        self.assertIn("Serverless", requirements_reason([{"serverless": "require"}], self.INFO))
        self.assertIn("noSuchParameter", requirements_reason([{"serverParameters": {"noSuchParameter": 1}}],
                                                             self.INFO))


if __name__ == "__main__":
    unittest.main()

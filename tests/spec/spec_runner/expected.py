"""The expected-failures list: every test known to fail, each with a one-line reason.

Format, one test a line: `SUITE/FILE.json :: DESCRIPTION | REASON`; `#` starts a comment line. A test that
fails outside the list, or a listed test that passes, makes the run fail, so the list only shrinks. A reason
starting with `(flaky)` marks a test that fails only sometimes (timing of the driver's monitors): it may pass.
"""

FLAKY = "(flaky)"


class ExpectedFailures:
    def __init__(self, entries):
        self.entries = entries

    @classmethod
    def load(cls, path):
        entries = {}
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                line = line.rstrip("\n")
                if not line.strip() or line.lstrip().startswith("#"):
                    continue
                test_id, sep, reason = line.rpartition(" | ")
                if not sep or not reason.strip():
                    raise SystemExit(f"{path}:{number}: expected 'TEST ID | REASON', got {line!r}")
                entries[test_id.strip()] = reason.strip()
        return cls(entries)

    def compare(self, failures, passed_ids, pattern, suites):
        """(failures outside the list with their reasons, listed tests that passed)."""
        unexpected = [(t, r) for t, r in sorted(failures.items()) if t not in self.entries]
        fixed = sorted(t for t, reason in self.entries.items() if t in passed_ids and not reason.startswith(FLAKY))
        return unexpected, fixed

    @staticmethod
    def write(path, failures):
        with open(path, "w", encoding="utf-8") as out:
            out.write("# Unified specification tests that fail against the engine, each with its reason.\n")
            out.write("# Format: SUITE/FILE.json :: DESCRIPTION | REASON. tests/spec/unified.py fails when a test\n")
            out.write("# outside this list fails or a listed one passes: remove a line when its test passes.\n")
            for test_id, reason in sorted(failures.items()):
                out.write(f"{test_id} | {reason}\n")

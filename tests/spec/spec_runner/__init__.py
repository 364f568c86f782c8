"""The unified test format runner's parts: the replica set it starts (cluster), value matching (matching),
entities and their event listeners (entities), operations (operations), the per-file and per-test procedure
(runner) and the expected-failures list (expected)."""

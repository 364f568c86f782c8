//! Unit tests of the machine rules.

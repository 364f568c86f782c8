//! Deterministic simulation of N machines.

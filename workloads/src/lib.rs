//! Faultline's workloads: what clients do against the cluster, and the generators that pace them.
//!
//! Layout:
//! - [`rng`]: the seeded PRNG every random choice of a run comes from.
//! - [`generator`]: Jepsen-style generators and their combinators.
//! - [`client`]: the official `mongodb` driver, connected per logical process; error classification into
//!   `fail` (definitely did not happen) and `info` (indeterminate); the member that served each operation.
//! - [`workload`]: the workloads (`register`, `set`, `secondary-reads`, `counter`): each a generator, the
//!   client operations and the checkers that apply.

pub mod client;
pub mod generator;
pub mod rng;
pub mod workload;

pub use workload::{Workload, WorkloadOptions};

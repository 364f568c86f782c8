//! The replica set: member state, configuration, terms and optimes, and the pure state machine that makes
//! every replication decision (elections, votes, heartbeats, commit point, sync source, step-down).
//!
//! ```text
//! optime.rs   OpTime {ts, t}: oplog positions, ordered by (term, ts)
//! state.rs    MemberState: PRIMARY, SECONDARY, ... with MongoDB's codes and names
//! config/     ReplSetConfig: parse/write/validate the config document, majorities, safe reconfig
//! error.rs    ReplError {code, codeName, message}
//! rng.rs      SplitMix64: the seeded generator behind election jitter
//! machine/    ReplMachine: events in, actions out, no I/O
//!
//!   network / timers / storage (the async shell)
//!        │  now_ms + Event                          ▲  Vec<Action> (in order)
//!        ▼                                          │
//!   ┌─────────────────────────── ReplMachine ───────┴─────────────────────┐
//!   │ heartbeat ─ health, terms, configs     election ─ timer, dry run,    │
//!   │ voting ─ the voter's rules             leader ─ catch-up, commit pt  │
//!   │ stepdown ─ stepDown / freeze           sync_source ─ who to fetch    │
//!   └──────────────────────────────────────────────────────────────────────┘
//! ```
pub mod config;
pub mod error;
pub mod machine;
pub mod optime;
pub mod rng;
pub mod state;

pub use config::{ConfigVersionAndTerm, MemberConfig, ReplSetConfig, ReplSetSettings};
pub use error::ReplError;
pub use machine::{Action, Event, MachineStart, ReplMachine, ReplStatus, StartData};
pub use optime::OpTime;
pub use state::MemberState;

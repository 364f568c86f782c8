//! The replica set: member state, configuration, terms and optimes.
//!
//! ```text
//! optime.rs   OpTime {ts, t}: oplog positions, ordered by (term, ts)
//! state.rs    MemberState: PRIMARY, SECONDARY, ... with MongoDB's codes and names
//! config/     ReplSetConfig: parse/write/validate the config document, majorities, safe reconfig
//! error.rs    ReplError {code, codeName, message}
//! ```
pub mod config;
pub mod error;
pub mod optime;
pub mod state;

pub use config::{ConfigVersionAndTerm, MemberConfig, ReplSetConfig, ReplSetSettings};
pub use error::ReplError;
pub use optime::OpTime;
pub use state::MemberState;

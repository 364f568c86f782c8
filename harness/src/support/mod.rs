//! Support shared by the subcommands: usage errors ([`errors`]), signals ([`signals`]), the store of run
//! directories ([`store`]) and durations typed by users ([`durations`]).

pub mod durations;
pub mod errors;
pub mod signals;
pub mod store;

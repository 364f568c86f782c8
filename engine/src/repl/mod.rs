//! The replica set: member state, configuration, terms and optimes.

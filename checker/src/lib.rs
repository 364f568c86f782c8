//! Faultline's checker: the history model, consistency checkers and history formats.
//!
//! Pure library: it parses bytes and decides verdicts; it never touches files, sockets or clocks.

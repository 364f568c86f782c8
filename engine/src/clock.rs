//! The member's wall clock: the system clock plus an offset, so that one member's clock can run ahead of or
//! behind the others' (as Jepsen bumps a host's clock) without touching the machine's clock.
//!
//! The offset is set by the `skewClock` fail point (`data: {offsetMillis: n}`); it is zero otherwise. Every
//! wall-clock read of the engine goes through here: oplog timestamps and `wall` times, `lastWrite` dates,
//! `$$NOW` and `$currentDate`, `secondaryDelaySecs`. Timers (elections, heartbeats, timeouts) use the
//! monotonic clock and are unaffected, as on a host whose wall clock is stepped. One offset per process: a
//! process runs one member.

use std::sync::atomic::{AtomicI64, Ordering};

static OFFSET_MILLIS: AtomicI64 = AtomicI64::new(0);

/// Sets how far this member's wall clock runs ahead of the system clock (negative: behind).
pub fn set_offset_millis(offset: i64) {
    OFFSET_MILLIS.store(offset, Ordering::SeqCst);
}

/// How far this member's wall clock runs ahead of the system clock.
pub fn offset_millis() -> i64 {
    OFFSET_MILLIS.load(Ordering::SeqCst)
}

/// Milliseconds since the Unix epoch on this member's clock.
pub fn now_millis() -> i64 {
    skewed(bson::DateTime::now().timestamp_millis(), offset_millis())
}

/// Now, as a BSON date.
pub fn now() -> bson::DateTime {
    bson::DateTime::from_millis(now_millis())
}

/// Whole seconds since the Unix epoch (the `time` of oplog timestamps).
pub fn now_secs() -> u32 {
    (now_millis() / 1000).clamp(0, i64::from(u32::MAX)) as u32
}

fn skewed(system_millis: i64, offset: i64) -> i64 {
    system_millis.saturating_add(offset)
}

#[cfg(test)]
mod tests {
    use super::skewed;

    #[test]
    fn the_offset_moves_the_clock_both_ways_without_overflow() {
        assert_eq!(skewed(10_000, 60_000), 70_000);
        assert_eq!(skewed(10_000, -4_000), 6_000);
        assert_eq!(skewed(i64::MAX - 1, 5), i64::MAX);
    }
}

//! The member's wall clock: the system clock plus an offset, so that one member's clock can run ahead of or
//! behind the others' (as Jepsen bumps a host's clock) without touching the machine's clock.
//!
//! Each member owns one [`Clock`]: [`Node`](crate::node::Node) creates it and hands clones (one shared
//! offset) to its storage, whose writer stamps oplog entries with it and through which the member reads it,
//! and to its fail points, whose `skewClock` (`data: {offsetMillis: n}`) sets the offset; it is zero
//! otherwise. Several members in one process (the simulation) therefore keep separate clocks. Every
//! wall-clock read of the engine goes through a member's clock: oplog timestamps and `wall` times,
//! `lastWrite` dates, `$$NOW` and `$currentDate`, `secondaryDelaySecs`, the dates of `hello`,
//! `serverStatus` and `replSetGetStatus`. Timers (elections, heartbeats, timeouts) use the monotonic clock and
//! are unaffected, as on a host whose wall clock is stepped.
//!
//! Under simulation ([`Clock::simulated`]) the clock does not read the system clock at all: it starts at a
//! fixed epoch and moves with tokio's clock, which a paused runtime advances only when every task waits, so
//! the same seed stamps the same times.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// One member's wall clock; cheap to clone, and clones share the offset. A read is one atomic load plus
/// the system clock, so it may sit on the write path.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset_millis: Arc<AtomicI64>,
    /// Set under simulation: the wall time reads this epoch plus the tokio time elapsed since `started`.
    simulated: Option<SimulatedTime>,
}

#[derive(Debug, Clone, Copy)]
struct SimulatedTime {
    epoch_millis: i64,
    started: tokio::time::Instant,
}

impl Clock {
    /// A clock that reads the system clock (no offset).
    pub fn new() -> Clock {
        Clock::default()
    }

    /// A clock that starts at `epoch_millis` now and advances with tokio's clock (paused and advanced by the
    /// runtime under simulation), never reading the system clock.
    pub fn simulated(epoch_millis: i64) -> Clock {
        Clock {
            offset_millis: Arc::default(),
            simulated: Some(SimulatedTime {
                epoch_millis,
                started: tokio::time::Instant::now(),
            }),
        }
    }

    /// Sets how far this member's wall clock runs ahead of the system clock (negative: behind).
    pub fn set_offset_millis(&self, offset: i64) {
        self.offset_millis.store(offset, Ordering::SeqCst);
    }

    /// How far this member's wall clock runs ahead of the system clock.
    pub fn offset_millis(&self) -> i64 {
        self.offset_millis.load(Ordering::SeqCst)
    }

    /// Milliseconds since the Unix epoch on this member's clock.
    pub fn now_millis(&self) -> i64 {
        let base = match self.simulated {
            Some(time) => time
                .epoch_millis
                .saturating_add(time.started.elapsed().as_millis() as i64),
            None => bson::DateTime::now().timestamp_millis(),
        };
        skewed(base, self.offset_millis())
    }

    /// Now, as a BSON date.
    pub fn now(&self) -> bson::DateTime {
        bson::DateTime::from_millis(self.now_millis())
    }

    /// Whole seconds since the Unix epoch (the `time` of oplog timestamps).
    pub fn now_secs(&self) -> u32 {
        (self.now_millis() / 1000).clamp(0, i64::from(u32::MAX)) as u32
    }
}

fn skewed(system_millis: i64, offset: i64) -> i64 {
    system_millis.saturating_add(offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offset_moves_the_clock_both_ways_without_overflow() {
        assert_eq!(skewed(10_000, 60_000), 70_000);
        assert_eq!(skewed(10_000, -4_000), 6_000);
        assert_eq!(skewed(i64::MAX - 1, 5), i64::MAX);
    }

    #[test]
    fn clones_share_an_offset_and_separate_clocks_do_not() {
        let hour_ms = 3_600_000;
        let mine = Clock::new();
        let shared = mine.clone();
        let other = Clock::new();
        shared.set_offset_millis(hour_ms);
        assert_eq!(mine.offset_millis(), hour_ms);
        assert_eq!(other.offset_millis(), 0);
        let (before, skewed_now, after) = (other.now_millis(), mine.now_millis(), other.now_millis());
        assert!(
            skewed_now >= before + hour_ms && skewed_now <= after + hour_ms,
            "{before} <= {skewed_now} - 1h <= {after}"
        );
    }
}

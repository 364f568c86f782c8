//! End-to-end tests of `faultline test`: the real binary, real member processes, short time limits.
//!
//! One-member runs, and the three-member scenarios of issue 5 (kills, pauses, partitions through the
//! harness's fault proxies); bad input to every command; members that die with the harness; `faultline check`
//! over stored run directories and many inputs; `faultline test --shards` (issue 16).

mod t10_single_node;
mod t15_bad_input;
mod t20_interrupt;
mod t25_orphans;
mod t30_reproducible_plan;
mod t40_check_many;
mod t50_three_nodes;
mod t55_change_stream;
mod t60_sharded;

use std::path::Path;

use serde_json::Value;

pub fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_faultline"))
}

/// The history's events as JSON values.
pub fn events(history: &str) -> Vec<Value> {
    history
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// `(f, fault, target)` of the nemesis invocations, in order.
pub fn nemesis_plan(history: &str) -> Vec<(String, String, String)> {
    events(history)
        .iter()
        .filter(|e| e["process"] == "nemesis" && e["type"] == "invoke")
        .map(|e| {
            let text = |v: &Value| v.as_str().unwrap_or("").to_string();
            (text(&e["f"]), text(&e["value"]["fault"]), text(&e["value"]["target"]))
        })
        .collect()
}

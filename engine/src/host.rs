//! This machine's host name, as `hostInfo`, `serverStatus`, `currentOp`, explain output and the member's
//! own-address check report it.

/// The kernel's host name, trimmed; empty when it cannot be read.
pub fn name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .unwrap_or_default()
}

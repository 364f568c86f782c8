//! The process's allocator, mimalloc, and its one setting that differs from mimalloc's default.
//!
//! Members and clients allocate per document and per operation; under load glibc's `malloc` and `free` took
//! about a fifth of all CPU samples (perf, issue #14), mimalloc far less.
//!
//! mimalloc hands pages that stayed free for a second back to the kernel, and a busy member keeps freeing and
//! taking pages (redb's page buffers, reply buffers, batches): each page taken again faults and is zeroed by the
//! kernel, a huge page 2 MiB at a time. Under `w: 1` load a three-member set took 2,400–3,300 page faults a
//! second, and `clear_page_erms` was 4–7% of a member's CPU samples. Waiting ten seconds, as a server's allocator
//! would, leaves only the faults memory growth needs (26–59 in four seconds). mimalloc reads the setting from the
//! environment (`MIMALLOC_PURGE_DELAY`, in milliseconds), and the workspace has no `unsafe` to call its option
//! API, so a process started without the variable re-executes itself with it at once (same process id, same
//! arguments); a variable the user set is kept as it is.

use std::os::unix::process::CommandExt;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The variable mimalloc reads, and the value used when it is unset.
const PURGE_DELAY_VAR: &str = "MIMALLOC_PURGE_DELAY";
const PURGE_DELAY_MS: &str = "10000";

/// Re-executes this process with [`PURGE_DELAY_VAR`] set, unless it is set already. Returns (running on as
/// before) only if the variable is set or the re-execution failed.
pub fn tune() {
    if std::env::var_os(PURGE_DELAY_VAR).is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else { return };
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| exe.clone().into_os_string());
    // `exec` returns only on failure; the process then runs with mimalloc's default.
    let _ = std::process::Command::new(&exe)
        .arg0(arg0)
        .args(args)
        .env(PURGE_DELAY_VAR, PURGE_DELAY_MS)
        .exec();
}

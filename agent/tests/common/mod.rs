//! Helpers shared by the host integration tests.
#![allow(dead_code, reason = "each test binary uses the helpers it needs")]

/// Is this test running as root (real uid 0, from /proc/self/status)?
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
        })
        .is_some_and(|u| u == "0")
}

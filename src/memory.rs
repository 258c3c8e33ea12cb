//! This process's memory, from the operating system's own counters: `/proc/self/status` on Linux
//! (`VmRSS`, `VmHWM`), the process memory counters on Windows (working set, peak working set).
//! Elsewhere nothing is reported rather than a guess.
//!
//! Allowed `unsafe` (see `Cargo.toml`): on Windows, one call to `K32GetProcessMemoryInfo`, which
//! no safe crate in the tree wraps.
#![cfg_attr(windows, allow(unsafe_code))]

/// The resident memory of this process now, in bytes.
pub fn resident_bytes() -> Option<u64> {
    current().map(|m| m.resident)
}

/// The most resident memory this process has held so far, in bytes.
pub fn peak_resident_bytes() -> Option<u64> {
    current().map(|m| m.peak)
}

struct Memory {
    resident: u64,
    peak: u64,
}

#[cfg(target_os = "linux")]
fn current() -> Option<Memory> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib = |field: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(field))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    Some(Memory {
        resident: kib("VmRSS:")? * 1024,
        peak: kib("VmHWM:")? * 1024,
    })
}

#[cfg(windows)]
fn current() -> Option<Memory> {
    use windows_sys::Win32::System::{
        ProcessStatus::{K32GetProcessMemoryInfo, PROCESS_MEMORY_COUNTERS},
        Threading::GetCurrentProcess,
    };
    let mut counters = PROCESS_MEMORY_COUNTERS::default();
    let size = u32::try_from(std::mem::size_of::<PROCESS_MEMORY_COUNTERS>()).ok()?;
    // SAFETY: `GetCurrentProcess` returns a pseudo-handle that needs no closing; `counters` is a
    // live, writable `PROCESS_MEMORY_COUNTERS` and `size` is its exact size, as the call requires.
    let ok = unsafe { K32GetProcessMemoryInfo(GetCurrentProcess(), &raw mut counters, size) };
    (ok != 0).then(|| Memory {
        resident: counters.WorkingSetSize as u64,
        peak: counters.PeakWorkingSetSize as u64,
    })
}

#[cfg(not(any(target_os = "linux", windows)))]
fn current() -> Option<Memory> {
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_counters_are_read_where_the_system_has_them() {
        if cfg!(any(target_os = "linux", windows)) {
            let (now, peak) = (super::resident_bytes(), super::peak_resident_bytes());
            assert!(now.is_some_and(|b| b > 1 << 20), "{now:?}");
            assert!(peak >= now, "{peak:?} {now:?}");
        }
    }
}

//! CPU time of a process or of this thread, from `/proc/<pid>/stat` (utime + stime).

use anyhow::{Context, Result};

/// Linux reports `stat` times in USER_HZ ticks, 100 per second on every architecture Envoy
/// ships for (the kernel's `USER_HZ` is fixed at 100 for the user ABI).
const TICKS_PER_SEC: f64 = 100.0;

/// utime + stime of a process (all its threads) or a thread, in ticks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTicks(pub u64);

impl CpuTicks {
    /// Seconds of CPU between `earlier` and `self`.
    pub fn secs_since(&self, earlier: &CpuTicks) -> f64 {
        self.0.saturating_sub(earlier.0) as f64 / TICKS_PER_SEC
    }
}

fn parse(path: &str) -> Result<CpuTicks> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {path}"))?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = text
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("stat: no command field")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14, stime field 15.
    let utime: u64 = fields.get(11).context("utime")?.parse()?;
    let stime: u64 = fields.get(12).context("stime")?.parse()?;
    Ok(CpuTicks(utime + stime))
}

/// A process, all threads.
pub fn process(pid: u32) -> Result<CpuTicks> {
    parse(&format!("/proc/{pid}/stat"))
}

/// The calling thread only.
pub fn this_thread() -> Result<CpuTicks> {
    parse("/proc/thread-self/stat")
}

/// utime + stime of this process's children that have been waited for (`cutime` + `cstime`):
/// a child's whole CPU once it is reaped.
pub fn children() -> Result<CpuTicks> {
    let text = std::fs::read_to_string("/proc/self/stat").context("read /proc/self/stat")?;
    let rest = text
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("stat: no command field")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // cutime is field 16, cstime field 17.
    let cutime: u64 = fields.get(13).context("cutime")?.parse()?;
    let cstime: u64 = fields.get(14).context("cstime")?.parse()?;
    Ok(CpuTicks(cutime + cstime))
}

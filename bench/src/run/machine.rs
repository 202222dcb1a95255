//! What machine a run is on: its CPU, memory, kernel, Envoy, the tree, the load.

use super::*;

pub(super) fn sh(cmd: &str) -> String {
    std::process::Command::new("sh")
        .args(["-c", cmd])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

pub(super) fn machine(envoy: &Path) -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_default();
    let envoy_version = std::process::Command::new(envoy)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    json!({
        "nproc": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu_model": cpu,
        "memory": sh("free -h | awk '/^Mem:/ {print $2}'"),
        "kernel": sh("uname -srm"),
        "envoy": envoy_version,
        "git_head": sh("git rev-parse --short HEAD"),
        "uncommitted_in_plugin_or_protocol": sh("git status --short -- plugin filter protocol | tr '\\n' ' '"),
    })
}

pub(super) fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_owned()
}

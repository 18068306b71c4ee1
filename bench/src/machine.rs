//! Where and when the numbers were taken: CPU, cores, memory, kernel, date, commit.

use std::process::Command;

/// The machine and source a run measured.
#[derive(Debug, Clone)]
pub struct Machine {
    /// CPU model (`model name` in /proc/cpuinfo).
    pub cpu: String,
    /// Cores available to this process.
    pub cores: usize,
    /// Total memory in MiB.
    pub mem_mib: u64,
    /// Kernel release.
    pub kernel: String,
    /// UTC date and time of the run.
    pub date: String,
    /// `git rev-parse --short HEAD`, with `+dirty` when tracked files differ.
    pub commit: String,
}

impl Machine {
    /// Reads /proc and git (read-only).
    pub fn detect() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|v| v.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_else(|| "unknown".to_owned());
        let mem_mib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
            .map(|kb| kb / 1024)
            .unwrap_or(0);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "unknown".to_owned());
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let root = super::procs::workspace_root();
        let git = |args: &[&str]| {
            Command::new("git")
                .args(args)
                .current_dir(&root)
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        };
        let mut commit = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
        if git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty()) {
            commit.push_str("+dirty");
        }
        Machine {
            cpu,
            cores,
            mem_mib,
            kernel,
            date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
            commit,
        }
    }
}

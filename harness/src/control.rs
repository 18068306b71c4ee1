//! Control over the target's process, for the durability probes: start it, kill it
//! with SIGKILL (a crash), stop it with SIGTERM (a graceful shutdown). The target is
//! started from a shell command the user gives (`--server-cmd`), in a process group of
//! its own: every signal goes to the whole group, so whatever the command starts dies
//! with it, and [`kill_all_groups`] ends every group still alive (a second Ctrl-C).

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::error::{HarnessError, HarnessErrorKind};

/// Starts, crashes and stops the target.
pub trait ServerControl: Send + Sync {
    /// Starts the target (it must come back on the same address and data).
    fn start(&self) -> Result<(), HarnessError>;
    /// Kills it with SIGKILL and waits for it to be gone.
    fn kill(&self) -> Result<(), HarnessError>;
    /// Sends SIGTERM and waits (bounded) for it to exit.
    fn terminate(&self) -> Result<(), HarnessError>;
}

/// The process groups of the `--server-cmd` processes alive now.
static LIVE_GROUPS: Mutex<Vec<i32>> = Mutex::new(Vec::new());

fn live_groups() -> std::sync::MutexGuard<'static, Vec<i32>> {
    LIVE_GROUPS.lock().unwrap_or_else(|e| e.into_inner())
}

/// SIGKILLs every `--server-cmd` process group still alive, without waiting: for a
/// process about to exit at once (a second Ctrl-C).
pub fn kill_all_groups() {
    for pgid in live_groups().drain(..) {
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
    }
}

/// A target started by `sh -c <command>` in a process group of its own (use `exec` in
/// the command so the server is the group's leader, whose exit the controller waits for).
pub struct CommandControl {
    command: String,
    child: Mutex<Option<Child>>,
}

impl CommandControl {
    /// A controller for `command`; nothing is started yet.
    pub fn new(command: impl Into<String>) -> CommandControl {
        CommandControl {
            command: command.into(),
            child: Mutex::new(None),
        }
    }

    fn signal_and_wait(&self, sig: Signal, bound: Duration) -> Result<(), HarnessError> {
        let mut guard = self.child.lock().expect("control lock");
        let Some(mut child) = guard.take() else {
            return Ok(());
        };
        let pgid = child.id() as i32;
        live_groups().retain(|g| *g != pgid);
        let _ = killpg(Pid::from_raw(pgid), sig);
        let until = Instant::now() + bound;
        loop {
            match child.try_wait() {
                Ok(Some(_)) => {
                    // The rest of the group (what the command started beside the
                    // server) goes with it.
                    let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
                    return Ok(());
                }
                Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_millis(10)),
                _ => {
                    let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
                    let _ = child.wait();
                    return Err(HarnessError::new(
                        HarnessErrorKind::Server,
                        format!("target did not exit within {bound:?} of {sig}"),
                    ));
                }
            }
        }
    }
}

impl ServerControl for CommandControl {
    fn start(&self) -> Result<(), HarnessError> {
        let child = Command::new("sh")
            .arg("-c")
            .arg(&self.command)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .process_group(0)
            .spawn()
            .map_err(|e| {
                HarnessError::new(
                    HarnessErrorKind::Server,
                    format!("starting {:?}: {e}", self.command),
                )
            })?;
        live_groups().push(child.id() as i32);
        *self.child.lock().expect("control lock") = Some(child);
        Ok(())
    }

    fn kill(&self) -> Result<(), HarnessError> {
        self.signal_and_wait(Signal::SIGKILL, Duration::from_secs(10))
    }

    fn terminate(&self) -> Result<(), HarnessError> {
        self.signal_and_wait(Signal::SIGTERM, Duration::from_secs(20))
    }
}

impl Drop for CommandControl {
    fn drop(&mut self) {
        let _ = self.signal_and_wait(Signal::SIGKILL, Duration::from_secs(5));
    }
}

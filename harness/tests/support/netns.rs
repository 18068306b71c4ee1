//! Network namespaces for the tests that need separate client addresses (`shards`,
//! `shard_capacity`): a guard that deletes every namespace it made on drop (even on a
//! panic), the reference server started inside one, and bounded waits for children.
//! Included with `#[path = "support/netns.rs"] mod netns;`; each test uses a part.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use wait_timeout::ChildExt;

/// The harness binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_sse-harness");

/// Namespaces made by this test, deleted on drop (their veths go with them).
pub struct Netns {
    prefix: String,
    subnet: String,
    made: Vec<String>,
}

impl Netns {
    /// The hub with its bridge, and `members` namespaces on it: member `i` has the
    /// address of `host(i)`.
    pub fn create(members: &[(&str, u8)]) -> Result<Netns, String> {
        let pid = std::process::id();
        let mut net = Netns {
            prefix: format!("sseh{pid}"),
            subnet: format!("10.231.{}", pid % 250 + 1),
            made: Vec::new(),
        };
        let hub = net.name("hub");
        net.add(&hub)?;
        net.exec(&hub, &["ip", "link", "add", "br0", "type", "bridge"])?;
        net.exec(&hub, &["ip", "link", "set", "br0", "up"])?;
        for (i, (member, host)) in members.iter().enumerate() {
            let ns = net.name(member);
            net.add(&ns)?;
            let hub_end = format!("h{i}");
            let link = [
                "ip", "link", "add", &hub_end, "type", "veth", "peer", "name",
            ];
            let mut link: Vec<&str> = link.to_vec();
            link.extend(["eth0", "netns", &ns]);
            net.exec(&hub, &link)?;
            net.exec(&hub, &["ip", "link", "set", &hub_end, "master", "br0"])?;
            net.exec(&hub, &["ip", "link", "set", &hub_end, "up"])?;
            let addr = format!("{}.{host}/24", net.subnet);
            net.exec(&ns, &["ip", "addr", "add", &addr, "dev", "eth0"])?;
            net.exec(&ns, &["ip", "link", "set", "eth0", "up"])?;
            net.exec(&ns, &["ip", "link", "set", "lo", "up"])?;
        }
        Ok(net)
    }

    /// The full name of namespace `member`.
    pub fn name(&self, member: &str) -> String {
        format!("{}-{member}", self.prefix)
    }

    /// The address of host number `host` on the bridge.
    pub fn ip(&self, host: u8) -> String {
        format!("{}.{host}", self.subnet)
    }

    fn add(&mut self, ns: &str) -> Result<(), String> {
        run(&["ip", "netns", "add", ns])?;
        self.made.push(ns.to_owned());
        Ok(())
    }

    /// Runs `cmd` to its end inside namespace `ns` (a full name).
    pub fn exec(&self, ns: &str, cmd: &[&str]) -> Result<(), String> {
        let mut full = vec!["ip", "netns", "exec", ns];
        full.extend_from_slice(cmd);
        run(&full)
    }

    /// A command run inside namespace `member`.
    pub fn command(&self, member: &str, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name(member), program]);
        c
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for ns in self.made.iter().rev() {
            let _ = run(&["ip", "netns", "del", ns]);
        }
    }
}

/// Runs a command to its end; an error with its stderr when it fails.
pub fn run(cmd: &[&str]) -> Result<(), String> {
    let out = Command::new(cmd[0])
        .args(&cmd[1..])
        .output()
        .map_err(|e| format!("{}: {e}", cmd.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}: {}",
            cmd.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A child process killed on drop.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The reference server in namespace `member` on `addr` (`ip:port`) with `token` and
/// `faults`, once it listens (within 30 s); its base URL.
pub fn serve(
    net: &Netns,
    member: &str,
    addr: &str,
    token: &str,
    data: &Path,
    faults: &[&str],
) -> (Killed, String) {
    let mut c = net.command(member, BIN);
    c.args([
        "serve-reference",
        "--addr",
        addr,
        "--token",
        token,
        "--data",
    ])
    .arg(data)
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    for f in faults {
        c.args(["--fault", f]);
    }
    let mut child = Killed(c.spawn().expect("serve-reference starts"));
    let stdout = child.0.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the server says it listens within 30 s");
    assert!(line.starts_with("listening on"), "{line}");
    (child, format!("http://{addr}"))
}

/// Waits for a process within `bound`; its exit code and stderr.
pub fn finish(mut k: Killed, what: &str, bound: Duration) -> (i32, String) {
    let mut stderr = k.0.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
        s
    });
    let status =
        k.0.wait_timeout(bound)
            .expect("wait")
            .unwrap_or_else(|| panic!("{what} did not end within {bound:?}"));
    let text = reader.join().unwrap_or_default();
    (status.code().unwrap_or(-1), text)
}

/// Whether namespaces can be made here, with `tools` on PATH too; why not, if not.
pub fn unable(tools: &[&str]) -> Option<String> {
    let uid = Command::new("id").arg("-u").output().map(|o| o.stdout);
    if uid.ok().as_deref().map(|u| u.trim_ascii()) != Some(b"0".as_slice()) {
        return Some("not root: `ip netns add` needs CAP_SYS_ADMIN".into());
    }
    if Command::new("ip").arg("-V").output().is_err() {
        return Some("no `ip` (iproute2) on PATH".into());
    }
    for tool in tools {
        if Command::new(tool).arg("--version").output().is_err() {
            return Some(format!("no `{tool}` on PATH"));
        }
    }
    None
}

/// Skips test `name` with `reason` printed, except under `CI=true`, where it fails.
pub fn skip_or_fail(name: &str, reason: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true and network namespaces cannot be made: {reason}");
    }
    eprintln!("SKIPPED {name}: {reason}");
}

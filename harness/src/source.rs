//! Where the harness's streams connect from, and what the machine running it must
//! give a run: local source addresses, ephemeral ports, file descriptors.
//!
//! Linux picks a client connection's local port from `net.ipv4.ip_local_port_range`
//! (default 32768–60999: 28,232 ports) per source address, target address and port:
//! one process connecting from one address holds at most ~28k streams towards one
//! target. [`SourceAddrs`] (`--source-addr`, repeatable) spreads the streams over
//! several local addresses, one after the other per connection; each brings its own
//! ~28k ports. On loopback every 127.0.0.0/8 address is local without setup; elsewhere
//! add addresses to an interface (`ip addr add 10.0.0.12/24 dev eth0`).
//!
//! A connection the harness's own machine cannot make (no free local port, a source
//! address that is not local, no file descriptor left) is not the target's doing:
//! such a client stops at once ([`is_local`]) and the scenario's verdict is an error
//! naming the cause and the fix ([`shortage_of`]), never a finding against the target.

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

use harness_model::{ConnEnd, Recording};
use sse_wire::WireErrorKind;

use crate::error::{HarnessError, HarnessErrorKind};
use crate::scenario::Scenario;

/// The local addresses streams connect from, taken in turn per connection (shared by
/// every clone of a target). Empty: the kernel's choice, as without `--source-addr`.
#[derive(Debug, Default)]
pub struct SourceAddrs {
    addrs: Vec<IpAddr>,
    next: AtomicUsize,
}

impl SourceAddrs {
    /// The addresses, each checked to be an address of this machine (a TCP socket
    /// binds to it); one that is not, or one given twice, is a usage error naming it.
    pub fn new(addrs: Vec<IpAddr>) -> Result<SourceAddrs, HarnessError> {
        for (i, a) in addrs.iter().enumerate() {
            if addrs[..i].contains(a) {
                return Err(usage(format!("--source-addr {a} is given twice")));
            }
            check_local(*a)?;
        }
        Ok(SourceAddrs {
            addrs,
            next: AtomicUsize::new(0),
        })
    }

    /// The address the next connection comes from (round robin); None without any.
    pub fn next(&self) -> Option<IpAddr> {
        if self.addrs.is_empty() {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        Some(self.addrs[i % self.addrs.len()])
    }

    /// The addresses, in the order they are taken.
    pub fn addrs(&self) -> &[IpAddr] {
        &self.addrs
    }

    /// Checks the addresses can reach a target at `host`: a loopback source cannot
    /// reach a target off this machine (the kernel refuses the connect), so that is a
    /// usage error naming both. Host names other than `localhost` are not resolved here.
    pub fn check_reach(&self, host: &str) -> Result<(), HarnessError> {
        let remote = host
            .trim_matches(['[', ']'])
            .parse::<IpAddr>()
            .is_ok_and(|ip| !ip.is_loopback());
        match self.addrs.iter().find(|a| a.is_loopback()) {
            Some(a) if remote => Err(usage(format!(
                "--source-addr {a} is a loopback address and cannot reach the target {host}: \
                 give addresses of an interface that routes to it"
            ))),
            _ => Ok(()),
        }
    }
}

/// A usage error.
fn usage(message: String) -> HarnessError {
    HarnessError::new(HarnessErrorKind::Usage, message)
}

/// Binds a TCP socket to `ip` (any port, released at once): an error naming the
/// address when it is not an address of this machine.
fn check_local(ip: IpAddr) -> Result<(), HarnessError> {
    let socket = match ip {
        IpAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
        IpAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
    }
    .map_err(|e| {
        HarnessError::new(
            HarnessErrorKind::Io,
            format!("--source-addr {ip}: a socket: {e}"),
        )
    })?;
    socket.bind(std::net::SocketAddr::new(ip, 0)).map_err(|e| {
        usage(format!(
            "--source-addr {ip}: cannot bind it ({e}): not an address of this machine? \
             On loopback any 127.0.0.x is local; elsewhere add the address to an interface \
             (e.g. `ip addr add {ip}/24 dev eth0`)"
        ))
    })
}

/// Whether a connect error of this kind is the harness machine's shortage (no free
/// local port, a source address it cannot bind, no file descriptor), not the target's.
pub fn is_local(kind: WireErrorKind) -> bool {
    matches!(
        kind,
        WireErrorKind::NoLocalPort | WireErrorKind::SourceAddress | WireErrorKind::NoDescriptor
    )
}

/// What to do about a shortage of `kind`.
fn fix(kind: WireErrorKind) -> &'static str {
    match kind {
        WireErrorKind::NoLocalPort => {
            "Linux gives each source address about 28,000 ephemeral ports \
             (net.ipv4.ip_local_port_range) towards one target address and port: spread the \
             streams over more source addresses with --source-addr (repeatable; on loopback any \
             127.0.0.x works without setup, e.g. --source-addr 127.0.0.2 --source-addr \
             127.0.0.3; elsewhere add addresses to an interface), or split the run over \
             processes with --shard I/N"
        }
        WireErrorKind::NoDescriptor => {
            "raise the harness's RLIMIT_NOFILE hard limit (`ulimit -Hn`, `nofile` in \
             /etc/security/limits.conf, LimitNOFILE= for a systemd unit, --ulimit nofile= for \
             docker; the harness raises its soft limit to the hard one) or split the run over \
             processes with --shard I/N"
        }
        _ => "give --source-addr only addresses of this machine",
    }
}

/// Connections of `rec` that failed on the harness's machine ([`is_local`]): how many,
/// and a reason naming the first one's cause and the fix; None when there were none.
pub fn shortage_of(rec: &Recording) -> Option<String> {
    let kinds = [
        WireErrorKind::NoLocalPort,
        WireErrorKind::NoDescriptor,
        WireErrorKind::SourceAddress,
    ];
    let mut count = 0usize;
    let mut first: Option<(WireErrorKind, &str)> = None;
    let clients = rec.transcripts.len();
    for c in rec.transcripts.iter().flat_map(|t| &t.connections) {
        let ConnEnd::ConnectFailed { error } = &c.end else {
            continue;
        };
        // The recorded error is the wire error's `kind: detail`, the kind by its
        // stable report name.
        let Some(kind) = kinds.into_iter().find(|k| {
            error
                .strip_prefix(k.name())
                .is_some_and(|r| r.starts_with(':'))
        }) else {
            continue;
        };
        count += 1;
        first.get_or_insert((kind, error));
    }
    let (kind, error) = first?;
    Some(format!(
        "{count} connection(s) of {clients} client(s) failed on the harness's machine, not \
         the target: {error}. Fix: {}",
        fix(kind)
    ))
}

/// Descriptors a process keeps besides its streams (runtime, files, publishers).
const FD_HEADROOM: u64 = 256;

/// The streams the largest of `scenarios` holds at once (its wire clients; a shard's
/// share of them when the run is split over `shards` processes).
pub fn most_streams(scenarios: &[Scenario], shards: u32) -> Option<(String, u64)> {
    scenarios
        .iter()
        .map(|sc| {
            let n: u64 = sc
                .clients
                .iter()
                .filter(|g| g.kind == crate::scenario::ClientKind::Wire)
                .map(|g| u64::from(g.count))
                .sum();
            (sc.id(), n.div_ceil(u64::from(shards.max(1))))
        })
        .max_by_key(|(_, n)| *n)
}

/// Raises `RLIMIT_NOFILE` to its hard limit and checks it covers the largest
/// scenario's streams (twice over with the in-process `embedded` server, which holds
/// the other end of each); an error naming the limit and the fix when it does not.
pub fn check_descriptors(
    scenarios: &[Scenario],
    shards: u32,
    embedded: bool,
) -> Result<(), HarnessError> {
    let Some((id, streams)) = most_streams(scenarios, shards) else {
        return Ok(());
    };
    let need = streams * if embedded { 2 } else { 1 } + FD_HEADROOM;
    let soft = crate::limits::raise_fd_limit().map_err(|e| {
        HarnessError::new(HarnessErrorKind::Io, format!("reading RLIMIT_NOFILE: {e}"))
    })?;
    if need <= soft {
        return Ok(());
    }
    let server = if embedded {
        " (the embedded server holds the other end of each in this process too)"
    } else {
        ""
    };
    Err(HarnessError::new(
        HarnessErrorKind::Usage,
        format!(
            "scenario {id} holds {streams} streams at once: this process needs about {need} \
             file descriptors{server}, but RLIMIT_NOFILE allows {soft} (its hard limit). Fix: {}",
            fix(WireErrorKind::NoDescriptor)
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_taken_in_turn() {
        let a: Vec<IpAddr> = vec!["127.0.0.2".parse().unwrap(), "127.0.0.3".parse().unwrap()];
        let s = SourceAddrs::new(a.clone()).unwrap();
        let got: Vec<IpAddr> = (0..4).filter_map(|_| s.next()).collect();
        assert_eq!(got, [a[0], a[1], a[0], a[1]]);
        assert_eq!(SourceAddrs::default().next(), None);
    }

    #[test]
    fn a_foreign_or_repeated_address_is_a_usage_error_naming_it() {
        let e = SourceAddrs::new(vec!["192.0.2.9".parse().unwrap()]).unwrap_err();
        assert_eq!(e.kind, HarnessErrorKind::Usage);
        assert!(e.message.contains("192.0.2.9"), "{e}");
        assert!(e.message.contains("not an address of this machine"), "{e}");
        let lo = SourceAddrs::new(vec!["127.0.0.2".parse().unwrap()]).unwrap();
        assert!(lo.check_reach("127.0.0.1").is_ok());
        assert!(lo.check_reach("localhost").is_ok());
        let e = lo.check_reach("203.0.113.5").unwrap_err();
        assert!(e.message.contains("127.0.0.2 is a loopback address"), "{e}");
        let twice = vec!["127.0.0.2".parse().unwrap(); 2];
        let e = SourceAddrs::new(twice).unwrap_err();
        assert!(e.message.contains("twice"), "{e}");
    }

    #[test]
    fn a_recording_with_exhausted_ports_names_the_cause_and_the_fix() {
        let failed = |error: &str| harness_model::Connection {
            end: ConnEnd::ConnectFailed {
                error: error.to_owned(),
            },
            ..harness_model::Connection::opened(0, None, None, 0)
        };
        let mut rec = Recording::default();
        rec.transcripts.push(harness_model::Transcript {
            connections: vec![
                failed("connect: connecting to 127.0.0.1:1: Connection refused"),
                failed("no-local-port: connecting to 127.0.0.1:8080 from 127.0.0.2: no free local port"),
            ],
            client: harness_model::ClientId("crowd#0".into()),
            stream: harness_model::StreamKind::Events,
            jobs: Vec::new(),
            initial_cursor: None,
            from_start: true,
            agent: Default::default(),
            gave_up_us: None,
        });
        let why = shortage_of(&rec).expect("a shortage");
        assert!(why.starts_with("1 connection(s) of 1 client(s)"), "{why}");
        assert!(why.contains("--source-addr"), "{why}");
        rec.transcripts[0].connections.pop();
        assert_eq!(shortage_of(&rec), None);
    }
}

//! Out of file descriptors at `accept`: the accept loop backs off instead of spinning,
//! and serves again once descriptors are free. Its own test binary: it lowers the
//! process's descriptor limit.

mod common;

use std::time::Duration;

use common::{DEADLINE, TestServer};
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use tokio::net::TcpStream;
use tokio::time::Instant;

fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").expect("fds").count() as u64
}

#[tokio::test]
async fn out_of_descriptors_at_accept_backs_off_and_recovers() {
    let s = TestServer::start().await;
    let addr = s.url.trim_start_matches("http://").to_owned();
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    setrlimit(Resource::RLIMIT_NOFILE, open_fds() + 40, hard).expect("lower");
    // Connect until this process is out of descriptors: the server's accepts fail
    // from then on, with connections waiting in the backlog.
    let mut clients = Vec::new();
    let end = Instant::now() + DEADLINE;
    loop {
        match TcpStream::connect(&addr).await {
            Ok(c) => clients.push(c),
            Err(_) => break,
        }
        assert!(Instant::now() < end, "never ran out of descriptors");
    }
    assert!(!clients.is_empty());
    // Let the accept loop meet EMFILE for a while (a spinning loop would fail
    // hundreds of thousands of times in this second).
    tokio::time::sleep(Duration::from_secs(1)).await;
    drop(clients);
    setrlimit(Resource::RLIMIT_NOFILE, soft, hard).expect("restore");
    let end = Instant::now() + DEADLINE;
    let errors = loop {
        if let Ok(r) = s.http.get(s.u("/metrics")).send().await
            && r.status() == 200
        {
            break s.metric("spine_accept_errors_total").await;
        }
        assert!(Instant::now() < end, "the server never served again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(errors >= 1, "accept never failed");
    // 1 s at one failure per 100 ms back-off, with a wide margin for slow machines
    // (which make fewer failures, not more).
    assert!(errors < 1_000, "{errors} accept failures: the loop spins");
    s.stop().await;
}

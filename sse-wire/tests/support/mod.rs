//! What the loopback tests of `sse-wire` share: one deadline for every wait, and a
//! one-connection server that reads the request head and hands the socket to the test.

use std::future::Future;
use std::time::Duration;

use sse_wire::Target;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::timeout;

/// Every wait in these tests ends by this deadline.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// The largest request head a test server reads.
const MAX_HEAD: usize = 65_536;

/// Accepts one connection on 127.0.0.1, reads the request head, hands both to `f`.
pub async fn serve_once<F, Fut, T>(f: F) -> (Target, JoinHandle<T>)
where
    F: FnOnce(TcpStream, Vec<u8>) -> Fut + Send + 'static,
    Fut: Future<Output = T> + Send,
    T: Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let (mut stream, _) = timeout(DEADLINE, listener.accept()).await.unwrap().unwrap();
        stream.set_nodelay(true).unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            let n = timeout(DEADLINE, stream.read(&mut byte))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(n, 1, "client closed before the end of the request head");
            head.push(byte[0]);
            assert!(head.len() < MAX_HEAD, "request head above {MAX_HEAD} bytes");
        }
        f(stream, head).await
    });
    let target = Target {
        host: "127.0.0.1".into(),
        port,
        tls: false,
    };
    (target, task)
}

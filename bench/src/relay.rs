//! Toxic proxy relay: bytes/s through `sse-toxics` with no toxic, beside the same load
//! sent straight to the same sink (like for like: one connection, the same sizes, in the
//! same run, alternating which goes first). Bounded by a byte count and a deadline.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Write size of the sender.
const BLOCK: usize = 256 * 1024;
/// Deadline of one transfer.
const LIMIT: Duration = Duration::from_secs(60);

/// A sink on 127.0.0.1: reads each connection to its end, then answers the byte count
/// (8 bytes, big-endian) and closes.
pub struct Sink {
    /// Where it listens.
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Sink {
    /// Starts the sink.
    pub async fn start() -> anyhow::Result<Sink> {
        let l = TcpListener::bind("127.0.0.1:0").await?;
        let addr = l.local_addr()?;
        let task = tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut buf = vec![0u8; BLOCK];
                    let mut n = 0u64;
                    while let Ok(k) = s.read(&mut buf).await {
                        if k == 0 {
                            break;
                        }
                        n += k as u64;
                    }
                    let _ = s.write_all(&n.to_be_bytes()).await;
                });
            }
        });
        Ok(Sink { addr, task })
    }

    /// Stops accepting.
    pub fn stop(self) {
        self.task.abort();
    }
}

/// Sends `bytes` to `addr` on one connection and waits for the sink's count; bits/s
/// from the first write to the count's arrival.
pub async fn transfer(addr: SocketAddr, bytes: u64) -> anyhow::Result<f64> {
    let run = async {
        let mut s = TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        let block = vec![0x5au8; BLOCK];
        let start = Instant::now();
        let mut left = bytes;
        while left > 0 {
            let k = left.min(BLOCK as u64) as usize;
            s.write_all(&block[..k]).await?;
            left -= k as u64;
        }
        s.shutdown().await?;
        let mut count = [0u8; 8];
        s.read_exact(&mut count).await?;
        let secs = start.elapsed().as_secs_f64();
        anyhow::ensure!(
            u64::from_be_bytes(count) == bytes,
            "the sink counted {} of {bytes} bytes",
            u64::from_be_bytes(count)
        );
        anyhow::Ok(bytes as f64 * 8.0 / secs)
    };
    tokio::time::timeout(LIMIT, run)
        .await
        .context("transfer over its deadline")?
}

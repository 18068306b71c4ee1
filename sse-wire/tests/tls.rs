//! The wire client over TLS against a rustls server on 127.0.0.1 with a throwaway CA:
//! trust by `cacert`, an unknown CA refused with a clear error, `insecure`, and a cut
//! after exactly k decoded body bytes followed by a reset without `close_notify`.

use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sse_wire::{ConnectOptions, RequestSpec, Target, TlsOptions, WireErrorKind, open};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::timeout;

/// Every wait in these tests ends by this deadline.
const DEADLINE: Duration = Duration::from_secs(10);
/// The body the server sends (close-delimited).
const BODY_LEN: usize = 40_000;

/// A CA (its PEM file in `dir`) and a server config for 127.0.0.1 signed by it.
fn pki(dir: &std::path::Path, name: &str) -> (std::path::PathBuf, Arc<rustls::ServerConfig>) {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, name);
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let path = dir.join(format!("{name}.pem"));
    std::fs::write(&path, ca.pem()).unwrap();
    sse_wire::install_default_provider();
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(leaf.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    (path, Arc::new(config))
}

/// Serves one TLS connection: a close-delimited body of `BODY_LEN` bytes, then reports
/// how the client's side ended (`Ok(0)`: close_notify or FIN; `Err`: a reset).
async fn serve(config: Arc<rustls::ServerConfig>) -> (Target, JoinHandle<Option<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let (tcp, _) = timeout(DEADLINE, listener.accept()).await.ok()?.ok()?;
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let mut s = timeout(DEADLINE, acceptor.accept(tcp)).await.ok()?.ok()?;
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            timeout(DEADLINE, s.read_exact(&mut byte))
                .await
                .ok()?
                .ok()?;
            head.push(byte[0]);
        }
        let body: Vec<u8> = (0..BODY_LEN).map(|i| b'a' + (i % 26) as u8).collect();
        s.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n")
            .await
            .ok()?;
        let _ = s.write_all(&body).await;
        let _ = s.flush().await;
        let mut rest = [0u8; 1024];
        Some(match timeout(DEADLINE, s.read(&mut rest)).await {
            Ok(Ok(n)) => format!("eof {n}"),
            Ok(Err(e)) => format!("error {:?}", e.kind()),
            Err(_) => "timeout".to_owned(),
        })
    });
    let target = Target {
        host: "127.0.0.1".into(),
        port,
        tls: true,
    };
    (target, task)
}

fn opts(tls: TlsOptions) -> ConnectOptions {
    ConnectOptions {
        tls: Some(tls.client_config().unwrap()),
        rcvbuf: Some(8192),
        connect_timeout: Duration::from_secs(5),
        head_timeout: Duration::from_secs(5),
        ..ConnectOptions::default()
    }
}

#[tokio::test]
async fn a_cut_over_tls_lands_after_decoded_byte_k_and_a_reset_sends_no_close_notify() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, config) = pki(dir.path(), "ca");
    let (target, server) = serve(config).await;
    let o = opts(TlsOptions {
        cacert: Some(ca),
        ..TlsOptions::default()
    });
    let mut resp = timeout(DEADLINE, open(&target, &RequestSpec::get("/s"), &o))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.status, 200);
    assert!(
        resp.recv_buffer_size().is_some(),
        "the socket stays reachable"
    );
    assert!(resp.peer_addr().is_some());
    let k = 12_345usize;
    let mut got = Vec::new();
    let mut buf = [0u8; 1000];
    while got.len() < k {
        let want = (k - got.len()).min(buf.len());
        let n = timeout(DEADLINE, resp.read_body(&mut buf[..want]))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got.len(), k);
    assert_eq!(resp.body_offset(), k as u64);
    assert_eq!(got[k - 1], b'a' + ((k - 1) % 26) as u8);
    resp.reset();
    let seen = timeout(DEADLINE, server).await.unwrap().unwrap();
    assert_eq!(seen.as_deref(), Some("error ConnectionReset"), "{seen:?}");
}

#[tokio::test]
async fn an_unknown_ca_is_a_tls_error_naming_the_host_and_insecure_connects() {
    let dir = tempfile::tempdir().unwrap();
    let (_, config) = pki(dir.path(), "server-ca");
    let (other_ca, _) = pki(dir.path(), "other-ca");
    let (target, _server) = serve(config.clone()).await;
    let o = opts(TlsOptions {
        cacert: Some(other_ca),
        ..TlsOptions::default()
    });
    let e = timeout(DEADLINE, open(&target, &RequestSpec::get("/"), &o))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(e.kind, WireErrorKind::Tls);
    let text = e.to_string();
    assert!(text.contains("127.0.0.1"), "{text}");
    assert!(text.contains("UnknownIssuer"), "{text}");

    let (target, _server) = serve(config).await;
    let o = opts(TlsOptions {
        insecure: true,
        ..TlsOptions::default()
    });
    let resp = timeout(DEADLINE, open(&target, &RequestSpec::get("/"), &o))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.status, 200);
    resp.close();
}

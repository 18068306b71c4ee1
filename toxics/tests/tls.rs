//! The proxy relays TLS without terminating it: a real rustls handshake and echo go
//! through it end to end while the slicer cuts the records into 7-byte pieces and
//! latency delays the replies.

mod common;

use std::sync::Arc;

use common::*;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use sse_toxics::{Action, Latency, Slicer, Stream, Toxic, ToxicConfig};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// A throwaway CA and a server config for `localhost`, plus a client config trusting it.
fn configs() -> (rustls::ServerConfig, rustls::ClientConfig) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let server = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], key_der)
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    let client = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (server, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_goes_through_untouched_while_toxics_act_on_its_bytes() {
    let (server_cfg, client_cfg) = configs();
    let acceptor = TlsAcceptor::from(Arc::new(server_cfg));
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = l.local_addr().unwrap();
    tokio::spawn(async move {
        let (s, _) = l.accept().await.unwrap();
        let mut tls = acceptor.accept(s).await.unwrap();
        let mut buf = [0u8; 9];
        tls.read_exact(&mut buf).await.unwrap();
        tls.write_all(&buf).await.unwrap();
        tls.shutdown().await.unwrap();
    });
    let toxics = vec![
        ToxicConfig::new(
            Toxic::Slicer(Slicer {
                average_size: 7,
                size_variation: 3,
                delay: 0,
            }),
            Stream::Upstream,
        ),
        ToxicConfig::new(
            Toxic::Latency(Latency {
                latency: 20,
                jitter: 10,
            }),
            Stream::Downstream,
        ),
    ];
    let p = proxy(upstream, toxics, 11).await;
    let tcp = TcpStream::connect(p.addr()).await.unwrap();
    let connector = TlsConnector::from(Arc::new(client_cfg));
    let name = ServerName::try_from("localhost").unwrap();
    let mut tls = tokio::time::timeout(DEADLINE, connector.connect(name, tcp))
        .await
        .expect("deadline")
        .expect("handshake through the proxy");
    tls.write_all(b"hello tls").await.unwrap();
    let mut back = [0u8; 9];
    tokio::time::timeout(DEADLINE, tls.read_exact(&mut back))
        .await
        .expect("deadline")
        .unwrap();
    assert_eq!(&back, b"hello tls");
    let snap = p.stop().await;
    assert!(
        snap.events
            .iter()
            .any(|e| matches!(e.action, Action::Sliced { pieces, .. } if pieces > 10))
    );
    assert!(
        snap.events
            .iter()
            .any(|e| matches!(e.action, Action::Delayed { .. }))
    );
}

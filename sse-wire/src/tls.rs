//! TLS for the byte-exact client, with rustls on the `ring` provider.
//!
//! One [`TlsConfig`] is built per run ([`TlsOptions::client_config`]) and shared by every
//! stream connection and by the plain HTTP client (reqwest takes the same
//! `rustls::ClientConfig`), so both stacks trust the same roots and present the same
//! client certificate.
//!
//! Roots: the system's trust store by default, read with `rustls-native-certs`
//! (maintained by the rustls project; it reads the OS store, e.g. `/etc/ssl/certs`, so
//! a deployment signed by a company CA the administrator installed is trusted as
//! `curl` would trust it, where `webpki-roots` would only know Mozilla's public CAs
//! compiled in at build time). `--cacert FILE` replaces them with the CAs in a PEM
//! file; `--insecure` accepts any certificate (signatures are still checked, so the
//! handshake is real) and every report says so.
//!
//! What the chaos operations mean over TLS: a cut "after decoded body byte k" still
//! closes after exactly k decoded body bytes (the client decrypts at most one TLS
//! record ahead, ≤ 16 KiB, and never hands more than asked to the parser); an
//! orderly close sends `close_notify` and then FIN; a *reset* is an abortive TCP close
//! (`SO_LINGER` 0, the peer sees RST) **without** `close_notify`, as a crashed client
//! or a dropped network path looks to a server. `SO_RCVBUF` is set on the TCP socket
//! under TLS, so slow readers still push back through the kernel's buffers.

use std::path::PathBuf;
use std::sync::{Arc, Once};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::conn::{WireError, WireErrorKind};

/// Installs `ring` as the process's default rustls crypto provider, once; later
/// calls (and a provider some other code installed first) are fine.
pub fn install_default_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// How the client verifies servers and identifies itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// PEM file of the CAs to trust instead of the system's roots.
    pub cacert: Option<PathBuf>,
    /// Accept any server certificate (reported loudly by the harness).
    pub insecure: bool,
    /// PEM client certificate chain for mTLS (needs `key`).
    pub cert: Option<PathBuf>,
    /// PEM private key of the client certificate.
    pub key: Option<PathBuf>,
}

/// A built client configuration, shared; cheap to clone. Compares by identity.
#[derive(Clone)]
pub struct TlsConfig(pub Arc<ClientConfig>);

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsConfig")
    }
}

impl PartialEq for TlsConfig {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for TlsConfig {}

fn tls_error(detail: String) -> WireError {
    WireError::new(WireErrorKind::Tls, detail)
}

impl TlsOptions {
    /// Builds the rustls configuration (ALPN `http/1.1`): roots, verifier and client
    /// certificate. Unreadable or empty PEM files are [`WireErrorKind::Tls`] errors
    /// naming the file.
    pub fn client_config(&self) -> Result<TlsConfig, WireError> {
        install_default_provider();
        let builder = ClientConfig::builder();
        let builder = if self.insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate::new()))
        } else {
            builder.with_root_certificates(self.roots()?)
        };
        let mut config = match (&self.cert, &self.key) {
            (None, None) => builder.with_no_client_auth(),
            (Some(cert), Some(key)) => {
                let chain = read_certs(cert)?;
                let key = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| tls_error(format!("client key {}: {e}", key.display())))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| tls_error(format!("client certificate: {e}")))?
            }
            _ => {
                return Err(tls_error(
                    "a client certificate needs both --cert and --key".into(),
                ));
            }
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsConfig(Arc::new(config)))
    }

    fn roots(&self) -> Result<RootCertStore, WireError> {
        let mut roots = RootCertStore::empty();
        if let Some(path) = &self.cacert {
            for cert in read_certs(path)? {
                roots
                    .add(cert)
                    .map_err(|e| tls_error(format!("CA file {}: {e}", path.display())))?;
            }
            return Ok(roots);
        }
        let found = rustls_native_certs::load_native_certs();
        let (added, _) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            return Err(tls_error(format!(
                "no system root certificates found ({} errors); give --cacert FILE",
                found.errors.len()
            )));
        }
        Ok(roots)
    }
}

fn read_certs(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, WireError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| tls_error(format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(tls_error(format!(
            "{}: no PEM certificate in it",
            path.display()
        )));
    }
    Ok(certs)
}

/// The server name to send (SNI) and verify: the URL's host, a DNS name or an IP.
pub(crate) fn server_name(host: &str) -> Result<ServerName<'static>, WireError> {
    ServerName::try_from(host.to_owned())
        .map_err(|e| tls_error(format!("{host:?} is not a valid TLS server name: {e}")))
}

/// `--insecure`: any certificate is accepted; handshake signatures are still checked
/// with the provider's algorithms.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl AnyCertificate {
    fn new() -> Self {
        AnyCertificate(Arc::new(rustls::crypto::ring::default_provider()))
    }
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_a_client_certificate_is_refused() {
        let o = TlsOptions {
            insecure: true,
            cert: Some("/nonexistent.pem".into()),
            ..TlsOptions::default()
        };
        let e = o.client_config().unwrap_err();
        assert_eq!(e.kind, WireErrorKind::Tls);
        assert!(e.detail.contains("--cert and --key"), "{e}");
    }

    #[test]
    fn a_missing_ca_file_is_named() {
        let o = TlsOptions {
            cacert: Some("/nonexistent/ca.pem".into()),
            ..TlsOptions::default()
        };
        let e = o.client_config().unwrap_err();
        assert_eq!(e.kind, WireErrorKind::Tls);
        assert!(e.detail.contains("/nonexistent/ca.pem"), "{e}");
    }

    #[test]
    fn insecure_builds_and_speaks_http11() {
        let c = TlsOptions {
            insecure: true,
            ..TlsOptions::default()
        }
        .client_config()
        .unwrap();
        assert_eq!(c.0.alpn_protocols, vec![b"http/1.1".to_vec()]);
        assert!(server_name("127.0.0.1").is_ok());
        assert!(server_name("localhost").is_ok());
        assert!(server_name("bad host").is_err());
    }
}

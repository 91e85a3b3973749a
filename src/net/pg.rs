//! PostgreSQL connections shared by the PostgreSQL store and backend: where the
//! connection string comes from, whether a server is local, and TLS.

use secrecy::SecretString;
use std::path::PathBuf;
use std::sync::Arc;
use tokio_postgres::config::Host;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PgUrlSource {
    /// The name of an environment variable holding the URL.
    Env(String),
    /// A file whose (trimmed) contents are the URL.
    File(PathBuf),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgTls {
    Disable,
    /// Encrypted, server certificate not verified.
    Require,
    /// Encrypted, certificate chain and host name verified.
    VerifyFull,
}

/// Why a connection string could not be read; each caller words it for its setting.
#[derive(Debug)]
pub enum UrlError {
    /// The environment variable is unset or empty.
    Unset(String),
    /// The file is empty.
    Empty(PathBuf),
    /// The file cannot be read.
    Unreadable(PathBuf, std::io::Error),
}

/// Reads a connection string (trimmed) from where the config says, at every call.
pub fn read_url(source: &PgUrlSource) -> Result<SecretString, UrlError> {
    match source {
        PgUrlSource::Env(var) => match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => Ok(SecretString::from(v.trim().to_string())),
            _ => Err(UrlError::Unset(var.clone())),
        },
        PgUrlSource::File(p) => match std::fs::read_to_string(p) {
            Ok(v) if !v.trim().is_empty() => Ok(SecretString::from(v.trim().to_string())),
            Ok(_) => Err(UrlError::Empty(p.clone())),
            Err(e) => Err(UrlError::Unreadable(p.clone(), e)),
        },
    }
}

/// Whether every host of `pc` is a Unix socket or a loopback address.
pub fn is_local(pc: &tokio_postgres::Config) -> bool {
    pc.get_hosts().iter().all(|h| match h {
        Host::Unix(_) => true,
        Host::Tcp(h) => {
            h == "localhost"
                || h.parse::<std::net::IpAddr>()
                    .map(|ip| ip.is_loopback())
                    .unwrap_or(false)
        }
    })
}

/// Why a TLS client config could not be made for PostgreSQL.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("postgres: TLS setup: {0}")]
    Setup(#[source] rustls::Error),
    #[error("postgres: cannot read ca_file {}: {source}", path.display())]
    CaFileUnreadable {
        path: std::path::PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// A certificate in ca_file that rustls does not take as a root.
    #[error("postgres: ca_file {}: {source}", path.display())]
    CaFileRejected {
        path: std::path::PathBuf,
        #[source]
        source: rustls::Error,
    },
}

/// The rustls client config for `mode` (not `Disable`): `Require` encrypts without
/// checking the certificate; `VerifyFull` checks it against `ca_file` (PEM), else
/// the web PKI roots.
pub fn tls_config(
    mode: PgTls,
    ca_file: Option<&std::path::Path>,
) -> Result<rustls::ClientConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Setup)?;
    if mode == PgTls::Require {
        return Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoCertVerification(provider)))
            .with_no_client_auth());
    }
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(p) => {
            use rustls::pki_types::pem::PemObject;
            let certs = rustls::pki_types::CertificateDer::pem_file_iter(p)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|source| TlsError::CaFileUnreadable {
                    path: p.to_path_buf(),
                    source,
                })?;
            for c in certs {
                roots.add(c).map_err(|source| TlsError::CaFileRejected {
                    path: p.to_path_buf(),
                    source,
                })?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

/// For `tls = "require"`: encrypted, but like libpq's sslmode=require the server's
/// certificate is not checked (signatures still are).
#[derive(Debug)]
struct NoCertVerification(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoCertVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
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
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

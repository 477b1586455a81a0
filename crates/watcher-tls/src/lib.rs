//! TLS for every connection watcherd makes or accepts, built once here so
//! that Keystone, Nova, Cinder, Placement, Prometheus, PostgreSQL, RabbitMQ
//! and the API trust the same roots the same way.
//!
//! A client trusts the system's roots (`/etc/ssl/certs`, what
//! `update-ca-certificates` maintains) plus the CA bundle of its settings, as
//! OpenStack's clients do with `cacert`; presents a client certificate when
//! one is set; and skips verification only when `insecure` is asked for, with
//! a warning each time a configuration is built.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use rustls;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{setting}: cannot read {path}: {source}")]
    Read {
        setting: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{setting}: {path} holds no PEM {what}")]
    Empty {
        setting: String,
        path: PathBuf,
        what: &'static str,
    },
    #[error("{setting}: the certificate and the key do not go together ({reason})")]
    Mismatch { setting: String, reason: String },
    #[error("{setting}: {message}")]
    Invalid { setting: String, message: String },
}

/// The TLS settings of one client: which CA to trust beyond the system's,
/// which certificate to present, whether to verify at all.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TlsOptions {
    /// PEM file of CA certificates trusted besides the system's roots
    /// (clouds.yaml `cacert`, `OS_CACERT`, oslo's `ssl_ca_file`).
    pub cafile: Option<PathBuf>,
    /// PEM client certificate (chain) presented to the server.
    pub certfile: Option<PathBuf>,
    /// PEM private key of `certfile`.
    pub keyfile: Option<PathBuf>,
    /// Accept any server certificate. For a test cloud only: anyone on the
    /// path can then read and change the traffic.
    pub insecure: bool,
}

impl TlsOptions {
    /// Checks the files now, so a wrong path is an error at start naming
    /// `setting` (e.g. `clients_auth.cafile`), not a failed request later.
    pub fn check(&self, setting: &str) -> Result<(), TlsError> {
        self.client_config(setting).map(|_| ())
    }

    /// The rustls client configuration of these options.
    pub fn client_config(&self, setting: &str) -> Result<Arc<ClientConfig>, TlsError> {
        self.build(setting, Verify::Full)
    }

    /// As [`Self::client_config`], but the server's name is not checked
    /// against its certificate, only its chain: libpq's `verify-ca`.
    pub fn client_config_without_hostname_check(
        &self,
        setting: &str,
    ) -> Result<Arc<ClientConfig>, TlsError> {
        self.build(setting, Verify::ChainOnly)
    }

    /// No verification at all: libpq's `require` and `prefer` without a
    /// root certificate, which encrypt but trust any server.
    pub fn client_config_unverified(&self, setting: &str) -> Result<Arc<ClientConfig>, TlsError> {
        self.build(setting, Verify::None)
    }

    fn build(&self, setting: &str, verify: Verify) -> Result<Arc<ClientConfig>, TlsError> {
        let provider = provider();
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid(setting, e))?;
        let verify = if self.insecure { Verify::None } else { verify };
        let builder = match verify {
            Verify::None => {
                if self.insecure {
                    tracing::warn!(
                        setting,
                        "TLS certificates are not verified (insecure = true): anyone on the \
                         network path can read and change this traffic"
                    );
                }
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
            }
            Verify::Full => builder.with_root_certificates(self.roots(setting)?),
            Verify::ChainOnly => {
                let inner = WebPkiServerVerifier::builder_with_provider(
                    Arc::new(self.roots(setting)?),
                    provider,
                )
                .build()
                .map_err(|e| invalid(setting, e))?;
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(ChainOnly(inner)))
            }
        };
        let config = match (&self.certfile, &self.keyfile) {
            (Some(cert), Some(key)) => {
                let chain = read_certs(setting, cert)?;
                let key = read_key(setting, key)?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| TlsError::Mismatch {
                        setting: setting.into(),
                        reason: e.to_string(),
                    })?
            }
            (None, None) => builder.with_no_client_auth(),
            _ => {
                return Err(TlsError::Invalid {
                    setting: setting.into(),
                    message: "a client certificate needs both certfile and keyfile".into(),
                })
            }
        };
        Ok(Arc::new(config))
    }

    /// The system's roots plus `cafile`.
    fn roots(&self, setting: &str) -> Result<RootCertStore, TlsError> {
        let mut roots = RootCertStore::empty();
        // Unreadable system certificates are skipped, as OpenSSL does; a
        // machine without any still works with a `cafile`.
        let native = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(native.certs);
        if let Some(path) = &self.cafile {
            let certs = read_certs(setting, path)?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(TlsError::Empty {
                    setting: setting.into(),
                    path: path.clone(),
                    what: "CA certificate that can be used",
                });
            }
        }
        Ok(roots)
    }
}

/// A server configuration (the API's `--tls-cert` / `--tls-key`).
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let setting = "tls_cert/tls_key";
    let chain = read_certs(setting, cert)?;
    let key = read_key(setting, key)?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(setting, e))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Mismatch {
            setting: setting.into(),
            reason: e.to_string(),
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Whether an error message (of any client library) is about the server's
/// certificate, so that callers report it as a trust problem to fix rather
/// than an outage to wait out.
pub fn is_certificate_error(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("invalid peer certificate")
        || m.contains("unknownissuer")
        || m.contains("certificate")
            && (m.contains("not valid for") || m.contains("expired") || m.contains("unknown"))
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn invalid(setting: &str, e: impl std::fmt::Display) -> TlsError {
    TlsError::Invalid {
        setting: setting.into(),
        message: e.to_string(),
    }
}

fn read_certs(setting: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let read_err = |source| TlsError::Read {
        setting: setting.into(),
        path: path.to_path_buf(),
        source,
    };
    let bytes = std::fs::read(path).map_err(read_err)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&bytes)
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(TlsError::Empty {
            setting: setting.into(),
            path: path.to_path_buf(),
            what: "certificate",
        });
    }
    Ok(certs)
}

fn read_key(setting: &str, path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = std::fs::read(path).map_err(|source| TlsError::Read {
        setting: setting.into(),
        path: path.to_path_buf(),
        source,
    })?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|_| TlsError::Empty {
        setting: setting.into(),
        path: path.to_path_buf(),
        what: "private key",
    })
}

enum Verify {
    Full,
    ChainOnly,
    None,
}

/// `insecure`: every certificate is accepted; signatures are still checked
/// so that the handshake itself is sound.
#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
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

/// libpq's `verify-ca`: the chain must lead to a trusted root; the name
/// the server was reached by need not be in its certificate.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        use rustls::CertificateError::{NotValidForName, NotValidForNameContext};
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                NotValidForName | NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("watcher-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn bad_files_are_errors_naming_the_setting() {
        let missing = TlsOptions {
            cafile: Some("/nonexistent/ca.pem".into()),
            ..Default::default()
        };
        let e = missing
            .check("clients_auth.cafile")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("clients_auth.cafile: cannot read /nonexistent/ca.pem"),
            "{e}"
        );
        let not_pem = TlsOptions {
            cafile: Some(temp("junk.pem", "not a certificate")),
            ..Default::default()
        };
        let e = not_pem.check("keystone.cafile").unwrap_err().to_string();
        assert!(e.contains("holds no PEM certificate"), "{e}");
        let half = TlsOptions {
            certfile: Some(temp("c.pem", "x")),
            ..Default::default()
        };
        let e = half.check("notifications").unwrap_err().to_string();
        assert!(e.contains("needs both certfile and keyfile"), "{e}");
    }

    #[test]
    fn system_roots_alone_make_a_configuration() {
        TlsOptions::default().check("x").unwrap();
        TlsOptions {
            insecure: true,
            ..Default::default()
        }
        .check("x")
        .unwrap();
    }
}

//! TLS to PostgreSQL with rustls (no system OpenSSL), with libpq's `sslmode` meanings:
//!
//! | sslmode | encrypted | server authenticated |
//! |---|---|---|
//! | `disable` | no | no |
//! | `prefer` (the default, as libpq) | when the server offers it | no |
//! | `require` | yes | no (as `verify-ca` when `sslrootcert` is given, as libpq) |
//! | `verify-ca` | yes | its chain, against `sslrootcert` |
//! | `verify-full` | yes | its chain and its host name |
//!
//! `sslrootcert` is a PEM file of CA certificates, or `system` for the public web PKI
//! roots (managed databases whose certificates chain to one). Without it, `verify-*` read
//! `~/.postgresql/root.crt`, as libpq does. Both come from the connection string or from
//! `PGSSLMODE` / `PGSSLROOTCERT`.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use crate::error::{Error, Result};

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// No TLS.
    Disable,
    /// TLS when the server offers it, unauthenticated.
    Prefer,
    /// TLS or nothing, unauthenticated (unless a root certificate is given).
    Require,
    /// TLS, the server's chain checked against the root certificates.
    VerifyCa,
    /// TLS, the chain and the host name checked.
    VerifyFull,
}

impl TlsMode {
    /// The `sslmode` value.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::Disable => "disable",
            TlsMode::Prefer => "prefer",
            TlsMode::Require => "require",
            TlsMode::VerifyCa => "verify-ca",
            TlsMode::VerifyFull => "verify-full",
        }
    }

    /// Parses an `sslmode` value (`allow` is taken as `prefer`: neither authenticates).
    pub fn parse(value: &str) -> Result<TlsMode> {
        match value.trim() {
            "disable" => Ok(TlsMode::Disable),
            "allow" | "prefer" => Ok(TlsMode::Prefer),
            "require" => Ok(TlsMode::Require),
            "verify-ca" => Ok(TlsMode::VerifyCa),
            "verify-full" => Ok(TlsMode::VerifyFull),
            other => Err(Error::config(format!(
                "sslmode {other:?} is not one of disable, prefer, require, verify-ca, verify-full"
            ))),
        }
    }
}

/// Where the TLS settings came from and what they say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// The mode.
    pub mode: TlsMode,
    /// `sslrootcert`: a PEM file, or `system`.
    pub root_cert: Option<String>,
}

/// Splits `sslmode` and `sslrootcert` out of a connection string (URL query or key=value
/// form), which the PostgreSQL client library below does not know in full; returns the
/// rest and what was found. Client certificates (`sslcert`, `sslkey`) are refused.
pub fn split_settings(conn: &str) -> Result<(String, Option<String>, Option<String>)> {
    let mut mode = None;
    let mut root = None;
    let mut take = |key: &str, value: &str| -> Result<bool> {
        match key {
            "sslmode" => mode = Some(value.to_string()),
            "sslrootcert" => root = Some(value.to_string()),
            "sslcert" | "sslkey" | "sslpassword" => {
                return Err(Error::config(
                    "client certificates (sslcert, sslkey) are not supported; authenticate with a password or trust the network",
                ))
            }
            _ => return Ok(false),
        }
        Ok(true)
    };
    if conn.starts_with("postgres://") || conn.starts_with("postgresql://") {
        let Some((base, query)) = conn.split_once('?') else {
            return Ok((conn.to_string(), None, None));
        };
        let mut kept = Vec::new();
        for pair in query.split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            if !take(k, &percent_decoded(v))? {
                kept.push(pair);
            }
        }
        let rest = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        return Ok((rest, mode, root));
    }
    let mut kept = Vec::new();
    for word in conn.split_whitespace() {
        let (k, v) = word.split_once('=').unwrap_or((word, ""));
        if !take(k.trim(), v.trim_matches('\''))? {
            kept.push(word);
        }
    }
    Ok((kept.join(" "), mode, root))
}

fn percent_decoded(v: &str) -> String {
    let hex = |b: u8| char::from(b).to_digit(16);
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The rustls connector for `settings` (not called for `disable`).
pub fn connector(settings: &TlsSettings) -> Result<tokio_postgres_rustls::MakeRustlsConnect> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier: Arc<dyn ServerCertVerifier> = match (settings.mode, &settings.root_cert) {
        (TlsMode::Disable | TlsMode::Prefer, _) | (TlsMode::Require, None) => Arc::new(Relaxed {
            chain: None,
            provider: Arc::clone(&provider),
        }),
        (mode, root) => {
            let roots = Arc::new(load_roots(root.as_deref())?);
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, Arc::clone(&provider))
                .build()
                .map_err(|e| {
                    Error::config(format!("TLS: the root certificates cannot be used: {e}"))
                })?;
            if mode == TlsMode::VerifyFull {
                webpki
            } else {
                Arc::new(Relaxed {
                    chain: Some(webpki),
                    provider: Arc::clone(&provider),
                })
            }
        }
    };
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::config(format!("TLS: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

fn load_roots(root: Option<&str>) -> Result<RootCertStore> {
    let mut store = RootCertStore::empty();
    if root == Some("system") {
        store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        return Ok(store);
    }
    let path = match root {
        Some(p) => PathBuf::from(p),
        None => std::env::var_os("HOME")
            .map(|h| PathBuf::from(h).join(".postgresql/root.crt"))
            .filter(|p| p.exists())
            .ok_or_else(|| {
                Error::config(
                    "TLS: verify-ca and verify-full need the CA certificate: set sslrootcert (a PEM file, or system) or create ~/.postgresql/root.crt",
                )
            })?,
    };
    let certs = CertificateDer::pem_file_iter(&path).map_err(|e| {
        Error::config(format!(
            "TLS: cannot read sslrootcert {}: {e}",
            path.display()
        ))
    })?;
    for cert in certs {
        let cert = cert.map_err(|e| {
            Error::config(format!(
                "TLS: sslrootcert {} is not PEM: {e}",
                path.display()
            ))
        })?;
        store.add(cert).map_err(|e| {
            Error::config(format!(
                "TLS: sslrootcert {} holds a certificate that cannot be a root: {e}",
                path.display()
            ))
        })?;
    }
    if store.is_empty() {
        return Err(Error::config(format!(
            "TLS: sslrootcert {} holds no certificate",
            path.display()
        )));
    }
    Ok(store)
}

/// How the server's certificate is checked when the mode does not ask for the full
/// check: `prefer` and `require` without a root (`chain: None`) accept any certificate
/// (encrypted, unauthenticated: libpq's meaning); `verify-ca` checks the chain against the
/// roots but not the host name. The handshake's signatures are checked either way.
#[derive(Debug)]
struct Relaxed {
    chain: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Relaxed {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Whether a connection error is about TLS (then it is a configuration error, exit 78:
/// retrying the same settings cannot help).
pub fn is_tls_error(err: &postgres::Error) -> Option<String> {
    let mut texts = vec![err.to_string()];
    let mut source = std::error::Error::source(err);
    while let Some(e) = source {
        if let Some(r) = e.downcast_ref::<rustls::Error>() {
            return Some(r.to_string());
        }
        texts.push(e.to_string());
        source = e.source();
    }
    let all = texts.join(": ");
    let lower = all.to_ascii_lowercase();
    (lower.contains("tls") || lower.contains("certificate") || lower.contains("ssl"))
        .then(|| texts.last().cloned().unwrap_or(all))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_and_sslrootcert_are_split_out_of_both_forms() {
        let (rest, mode, root) =
            split_settings("postgres://u@h:5/db?sslmode=verify-full&application_name=x&sslrootcert=%2Fetc%2Fca.pem")
                .unwrap();
        assert_eq!(rest, "postgres://u@h:5/db?application_name=x");
        assert_eq!(mode.as_deref(), Some("verify-full"));
        assert_eq!(root.as_deref(), Some("/etc/ca.pem"));
        let (rest, mode, root) = split_settings("host=h sslmode=require dbname=d").unwrap();
        assert_eq!(rest, "host=h dbname=d");
        assert_eq!(mode.as_deref(), Some("require"));
        assert_eq!(root, None);
        assert_eq!(
            split_settings("postgres://u@h/db").unwrap(),
            ("postgres://u@h/db".to_string(), None, None)
        );
        assert!(split_settings("postgres://h/db?sslcert=/x").is_err());
        assert!(TlsMode::parse("verify-everything").is_err());
        assert_eq!(TlsMode::parse("allow").unwrap(), TlsMode::Prefer);
    }
}

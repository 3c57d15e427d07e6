//! TLS to PostgreSQL, from the URL's `sslmode` and `sslrootcert` parameters (libpq's names),
//! with rustls:
//!
//! * no `sslmode`, or `sslmode=disable`: no TLS (keep the database on a private network);
//! * `sslmode=require` or `sslmode=verify-full`: TLS is required and the server's
//!   certificate is verified, chain *and* host name, against `sslrootcert` (a PEM file of
//!   the CA certificates, or `system` for the Mozilla root set). (libpq's `require` skips the
//!   verification; rustls always verifies, so here `require` means `verify-full`.)
//!
//! `prefer`, `allow` and `verify-ca` are refused with a message rather than half-honoured.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::CertificateDer;
use tokio_postgres_rustls::MakeRustlsConnect;

/// How to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tls {
    /// Plain TCP.
    Off,
    /// TLS, verified against these roots: a PEM file, or `None` for the Mozilla set.
    Verified { roots: Option<String> },
}

/// Takes `sslmode` and `sslrootcert` out of a `postgres://` URL: the URL the driver parses
/// (without them) and the TLS to use.
pub fn split_url(url: &str) -> Result<(String, Tls)> {
    let mut parsed =
        url::Url::parse(url).map_err(|e| anyhow::anyhow!("invalid PostgreSQL URL: {e}"))?;
    let (mut mode, mut root) = (None, None);
    let kept: Vec<(String, String)> = parsed
        .query_pairs()
        .filter_map(|(k, v)| match &*k {
            "sslmode" => {
                mode = Some(v.into_owned());
                None
            }
            "sslrootcert" => {
                root = Some(v.into_owned());
                None
            }
            _ => Some((k.into_owned(), v.into_owned())),
        })
        .collect();
    if kept.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(kept);
    }
    let tls = match mode.as_deref() {
        None | Some("disable") => Tls::Off,
        Some("require" | "verify-full") => {
            let root = root.context(
                "sslmode=require/verify-full needs sslrootcert=FILE (PEM: the CA that signed the \
                 server's certificate) or sslrootcert=system (the Mozilla root set)",
            )?;
            Tls::Verified {
                roots: (root != "system").then_some(root),
            }
        }
        Some(other) => anyhow::bail!(
            "sslmode={other} is not supported: use disable, or require / verify-full (both \
             verify the server's certificate and host name)"
        ),
    };
    Ok((parsed.into(), tls))
}

/// The rustls connector for [`Tls::Verified`].
pub fn connector(roots: Option<&str>) -> Result<MakeRustlsConnect> {
    let mut store = RootCertStore::empty();
    match roots {
        None => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(Path::new(path))
                .with_context(|| format!("reading sslrootcert {path}"))?;
            for cert in certs {
                let cert = cert.with_context(|| format!("a certificate in {path}"))?;
                store
                    .add(cert)
                    .with_context(|| format!("a certificate in {path}"))?;
            }
            anyhow::ensure!(!store.is_empty(), "sslrootcert {path} holds no certificate");
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .with_root_certificates(store)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_parameters_are_taken_out_of_the_url() {
        let (url, tls) = split_url("postgres://u:p@h:5/db").unwrap();
        assert_eq!((url.as_str(), tls), ("postgres://u:p@h:5/db", Tls::Off));
        let (url, tls) = split_url(
            "postgres://u@h/db?sslmode=verify-full&sslrootcert=/etc/ca.pem&connect_timeout=3",
        )
        .unwrap();
        assert_eq!(url, "postgres://u@h/db?connect_timeout=3");
        assert_eq!(
            tls,
            Tls::Verified {
                roots: Some("/etc/ca.pem".into())
            }
        );
        let (_, tls) = split_url("postgres://u@h/db?sslmode=require&sslrootcert=system").unwrap();
        assert_eq!(tls, Tls::Verified { roots: None });
        let (url, tls) = split_url("postgresql://u@h/db?sslmode=disable").unwrap();
        assert_eq!((url.as_str(), tls), ("postgresql://u@h/db", Tls::Off));
        for bad in ["prefer", "allow", "verify-ca", "nonsense"] {
            let err = split_url(&format!("postgres://h/db?sslmode={bad}")).unwrap_err();
            assert!(format!("{err}").contains("not supported"), "{err}");
        }
        let err = split_url("postgres://h/db?sslmode=require").unwrap_err();
        assert!(format!("{err}").contains("sslrootcert"), "{err}");
        assert!(connector(Some("/nonexistent/ca.pem")).is_err());
        assert!(connector(None).is_ok());
    }
}

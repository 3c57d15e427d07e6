//! TLS to PostgreSQL (issue 25): against a throw-away cluster that accepts TCP clients only
//! over TLS, with a certificate from a throw-away CA, `sslmode=verify-full` with that CA
//! works end to end; no TLS, another CA, or the public root set is refused at start.

mod common;

use common::pg::{PgCluster, ServerTls};
use common::{Backend, TestServer};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};

/// A CA certificate (PEM) and a server certificate + key it signed, for 127.0.0.1.
fn certificates(name: &str) -> (String, String, String) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, name);
    let ca = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut server = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    server
        .subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    let server = server.signed_by(&key, &ca, &ca_key).unwrap();
    (ca.pem(), server.pem(), key.serialize_pem())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_connects_over_tls_and_anything_less_is_refused() {
    let (ca, cert, key) = certificates("rotafetch test CA");
    let cluster = PgCluster::start_tls(ServerTls {
        cert_pem: &cert,
        key_pem: &key,
    });
    let db = cluster.create_db().await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca).unwrap();
    let (other_ca, ..) = certificates("another CA");
    let other_file = dir.path().join("other.pem");
    std::fs::write(&other_file, &other_ca).unwrap();
    let keys = dir.path().join("keys.json");

    let tls = format!("{db}?sslmode=verify-full&sslrootcert={}", ca_file.display());
    let s = TestServer::start_db(Backend::Postgres, tls.clone(), |c| {
        c.keys = Some(rotafetch_server::keys::KeySource::File(keys.clone()));
    })
    .await;
    let t = s.login_ok().await;
    let t = s.refresh_ok(&t.refresh).await;
    assert_eq!(s.me(&t.access).await.status(), 200);
    drop(s.stop().await);
    let require = tls.replace("verify-full", "require");
    let s = TestServer::start_db(Backend::Postgres, require, |c| {
        c.keys = Some(rotafetch_server::keys::KeySource::File(keys.clone()));
    })
    .await;
    s.refresh_ok(&t.refresh).await;
    drop(s.stop().await);

    for (url, why) in [
        (db.clone(), "no TLS: the cluster refuses it"),
        (
            format!(
                "{db}?sslmode=verify-full&sslrootcert={}",
                other_file.display()
            ),
            "another CA",
        ),
        (
            format!("{db}?sslmode=verify-full&sslrootcert=system"),
            "not a public CA",
        ),
    ] {
        let err = TestServer::try_start(url, keys.clone()).await.unwrap_err();
        let text = format!("{err:#}");
        assert!(!text.is_empty(), "{why}");
        if why == "another CA" {
            assert!(text.to_lowercase().contains("certificate"), "{why}: {text}");
        }
    }
}

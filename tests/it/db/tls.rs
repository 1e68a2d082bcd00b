//! TLS to PostgreSQL, each sslmode against the test server, which serves TLS (the
//! machine's PostgreSQL, or the private cluster scripts/pg-local.sh makes with a
//! self-signed certificate for localhost and 127.0.0.1).

use std::path::PathBuf;

use agentbus::db::{self, DbConfig, SessionSettings};
use agentbus::ErrorKind;

use crate::support::{admin_url, connect, run_cli};

/// key=value settings of the test server, host `localhost` at its address, plus `extra`.
fn settings(extra: &str) -> String {
    let config: postgres::Config = admin_url().parse().expect("admin URL parses");
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("postgres");
    let dbname = config.get_dbname().unwrap_or("postgres");
    format!("host=localhost hostaddr=127.0.0.1 port={port} user={user} dbname={dbname} {extra}")
}

/// The root that signed the server's certificate: the private cluster's `ca.crt`, else
/// the certificate itself (a self-signed one, such as Debian's snakeoil, is its own root).
fn server_cert() -> PathBuf {
    let mut admin = connect(&admin_url());
    let row = admin
        .query_one(
            "select current_setting('ssl'), current_setting('ssl_cert_file'), current_setting('data_directory')",
            &[],
        )
        .expect("read the server's TLS settings");
    let (ssl, file, data): (String, String, String) = (row.get(0), row.get(1), row.get(2));
    assert_eq!(
        ssl, "on",
        "the test server must serve TLS (scripts/pg-local.sh makes one that does)"
    );
    let ca = PathBuf::from(&data).join("ca.crt");
    if ca.exists() {
        return ca;
    }
    let path = PathBuf::from(&file);
    if path.is_absolute() {
        path
    } else {
        PathBuf::from(data).join(file)
    }
}

/// Whether a connection with these settings is encrypted; the error when it fails.
fn encrypted(conn: &str) -> Result<bool, agentbus::Error> {
    let config = DbConfig::parse(conn)?;
    let mut client = db::connect(&config, &SessionSettings::cli("tls-test"))?;
    let row = client
        .query_one(
            "select ssl from pg_stat_ssl where pid = pg_backend_pid()",
            &[],
        )
        .expect("pg_stat_ssl");
    Ok(row.get(0))
}

#[test]
fn each_sslmode_connects_as_libpq_would() {
    let cert = server_cert();
    let root = format!("sslrootcert={}", cert.display());
    assert!(!encrypted(&settings("sslmode=disable")).unwrap());
    assert!(encrypted(&settings("sslmode=prefer")).unwrap());
    assert!(
        encrypted(&settings("")).unwrap(),
        "the default is prefer, as in libpq"
    );
    assert!(encrypted(&settings("sslmode=require")).unwrap());
    assert!(encrypted(&settings(&format!("sslmode=verify-ca {root}"))).unwrap());
    assert!(encrypted(&settings(&format!("sslmode=verify-full {root}"))).unwrap());
    // The URL form and the environment's PGSSLMODE work too.
    let url = format!(
        "{}?sslmode=verify-ca&sslrootcert={}",
        admin_url(),
        cert.display()
    );
    assert!(encrypted(&url).unwrap());
    let plain = admin_url();
    let from_env = DbConfig::from_lookup(|k| match k {
        "AGENTBUS_DATABASE_URL" => Some(plain.clone()),
        "PGSSLMODE" => Some("disable".to_string()),
        _ => None,
    })
    .unwrap();
    let mut client = db::connect(&from_env, &SessionSettings::cli("tls-test")).unwrap();
    let ssl: bool = client
        .query_one(
            "select ssl from pg_stat_ssl where pid = pg_backend_pid()",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(!ssl, "PGSSLMODE=disable was ignored");
}

#[test]
fn a_server_that_fails_verification_is_a_configuration_error_not_a_retry() {
    let cert = server_cert();
    // Another host name than the certificate's.
    let wrong_name = settings(&format!(
        "sslmode=verify-full sslrootcert={}",
        cert.display()
    ))
    .replace("host=localhost", "host=wrong.invalid");
    let e = encrypted(&wrong_name).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Config, "{e:?}");
    assert!(e.message.contains("not valid for name"), "{}", e.message);
    // A root that did not sign it.
    let dir = std::env::temp_dir().join(format!("agentbus-tls-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let other = dir.join("other-ca.pem");
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=not-this-server",
        ])
        .arg("-keyout")
        .arg(dir.join("other-ca.key"))
        .arg("-out")
        .arg(&other)
        .output()
        .expect("run openssl");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let e = encrypted(&settings(&format!(
        "sslmode=verify-ca sslrootcert={}",
        other.display()
    )))
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Config, "{e:?}");
    assert!(e.message.contains("UnknownIssuer"), "{}", e.message);
    // No root at all, a bad mode, client certificates: refused before connecting.
    for bad in [
        "sslmode=verify-full sslrootcert=/nonexistent/ca.pem",
        "sslmode=sometimes",
        "sslmode=require sslcert=/x.pem",
    ] {
        let e = encrypted(&settings(bad)).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Config, "{bad}: {e:?}");
    }
    // Through the command line: exit 78 with the reason, not 75 "retry".
    let out = run_cli(
        &["list-agents"],
        &[("AGENTBUS_DATABASE_URL", wrong_name.as_str())],
        None,
    );
    assert_eq!(out.code, 78, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("TLS to the database failed (sslmode verify-full)"),
        "{}",
        out.stderr
    );
    let _ = std::fs::remove_dir_all(&dir);
}

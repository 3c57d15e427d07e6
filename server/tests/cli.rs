//! Runs the real binary: flags, the stdout line, the port file, SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_rotafetch-server");

fn http_get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn help_lists_every_flag() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--listen",
        "--port-file",
        "--db",
        "--access-ttl",
        "--session-ttl",
        "--idle-ttl",
        "--reuse-grace",
        "--www",
        "--pkg",
        "--static",
        "--cors-origin",
        "--demo-user",
        "--test-faults",
        "--client",
        "--post-logout",
        "--provider-session-ttl",
        "--key-file",
        "--rotate-keys",
        "--new-key-delay",
        "--login-failures-per-account",
        "--login-failures-per-address",
        "--hash-memory-mib",
        "--hash-threads",
        "--trusted-proxy",
        "--audience",
        "--max-connections",
        "--metrics-listen",
    ] {
        assert!(help.contains(flag), "missing {flag} in\n{help}");
    }
    let bad = Command::new(BIN)
        .args(["--access-ttl", "0"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let bad = Command::new(BIN)
        .args(["--static", "no-equals-sign"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    for client in [
        "app",
        "app=http://evil.example/cb",
        "app=https://a.example/cb#f",
    ] {
        let bad = Command::new(BIN)
            .args(["--client", client])
            .output()
            .unwrap();
        assert!(!bad.status.success(), "--client {client}");
    }
}

#[test]
fn binary_starts_reports_port_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port_file = dir.path().join("port");
    let mut child = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--port-file"])
        .arg(&port_file)
        .arg("--db")
        .arg(dir.path().join("db.sqlite"))
        .arg("--www")
        .arg(dir.path().join("www"))
        .arg("--pkg")
        .arg(dir.path().join("pkg"))
        .args([
            "--access-ttl",
            "5",
            "--reuse-grace",
            "0",
            "--test-faults",
            "--demo-user",
        ])
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        tx.send(line).unwrap();
    });
    let line = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("stdout line");
    let deadline = Instant::now() + Duration::from_secs(10);
    let port_text = loop {
        if let Ok(t) = std::fs::read_to_string(&port_file) {
            break t;
        }
        assert!(Instant::now() < deadline, "no port file");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(port_text.ends_with('\n'));
    let port: u16 = port_text.trim_end().parse().unwrap();
    assert!(port_text.trim_end().bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(
        line,
        format!("rotafetch-server listening on http://127.0.0.1:{port}\n")
    );

    let metrics = http_get(port, "/metrics");
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    assert!(metrics.contains("rotafetch_refresh_total{outcome=\"rotated\"} 0"));
    let faults = http_get(port, "/test/faults");
    assert!(faults.starts_with("HTTP/1.1 200"), "{faults}");

    // A login, so the log has something secret-looking in it to not print.
    let body = r#"{"username":"demo","password":"demo"}"#;
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let json_start = resp.find("\r\n\r\n").unwrap() + 4;
    let v: serde_json::Value = serde_json::from_str(&resp[json_start..]).unwrap();
    let refresh = v["refresh_token"].as_str().unwrap().to_owned();
    let access = v["access_token"].as_str().unwrap().to_owned();

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "server did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "{exit:?}");
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(stderr.contains("SIGTERM"), "{stderr}");
    assert!(!stderr.contains(&refresh), "refresh token leaked into logs");
    assert!(!stderr.contains(&access), "access token leaked into logs");
    assert!(
        !stderr.contains("$argon2"),
        "password hash leaked into logs"
    );
}

#[test]
fn a_repeated_flag_takes_its_last_value() {
    // e2e/lib/pg.mjs relies on it: the harness names a SQLite file, a second --db overrides.
    let dir = tempfile::tempdir().unwrap();
    let port_file = dir.path().join("port");
    let mut child = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0"])
        .arg("--db")
        .arg(dir.path().join("first.db"))
        .arg("--db")
        .arg(dir.path().join("last.db"))
        .arg("--port-file")
        .arg(&port_file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !port_file.exists() {
        assert!(Instant::now() < deadline, "the server did not start");
        assert!(child.try_wait().unwrap().is_none(), "the server exited");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(dir.path().join("last.db").exists());
    assert!(!dir.path().join("first.db").exists());
}

/// Starts the binary with `args` (and `--listen 127.0.0.1:0 --port-file`) and `env`; returns
/// it and its port once it listens.
fn start(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> (std::process::Child, u16) {
    let port_file = dir.join("port");
    let mut child = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--port-file"])
        .arg(&port_file)
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(port) = std::fs::read_to_string(&port_file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            return (child, port);
        }
        assert!(Instant::now() < deadline, "the server did not start");
        assert!(child.try_wait().unwrap().is_none(), "the server exited");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn rotate_keys_and_keys_from_the_environment() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("keys.json");
    let rotate = || {
        let out = Command::new(BIN)
            .arg("--key-file")
            .arg(&key_file)
            .arg("--rotate-keys")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(rotate().contains("new keys"));
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    rotate();
    let keys = std::fs::read_to_string(&key_file).unwrap();
    let db = dir.path().join("db.sqlite");
    let db = db.to_str().unwrap();
    // The key file's content from the environment: nothing is written beside the database.
    let (mut child, port) = start(dir.path(), &["--db", db], &[("ROTAFETCH_KEYS", &keys)]);
    let jwks = http_get(port, "/.well-known/jwks.json");
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(jwks.starts_with("HTTP/1.1 200"), "{jwks}");
    let body: serde_json::Value =
        serde_json::from_str(&jwks[jwks.find("\r\n\r\n").unwrap() + 4..]).unwrap();
    for alg in ["EdDSA", "RS256"] {
        let n = body["keys"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|k| k["alg"] == alg)
            .count();
        assert_eq!(n, 2, "both rotations' {alg} keys");
    }
    assert!(!dir.path().join("db.sqlite.keys.json").exists());

    // PostgreSQL without a key file: refused before anything else.
    let out = Command::new(BIN)
        .args(["--db", "postgres://u@127.0.0.1:1/db"])
        .env_remove("ROTAFETCH_KEYS")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--key-file"));
}

#[test]
fn metrics_listen_moves_metrics_to_their_own_address() {
    let dir = tempfile::tempdir().unwrap();
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let metrics_port = free.local_addr().unwrap().port();
    drop(free);
    let db = dir.path().join("db.sqlite");
    let listen = format!("127.0.0.1:{metrics_port}");
    let (mut child, port) = start(
        dir.path(),
        &["--db", db.to_str().unwrap(), "--metrics-listen", &listen],
        &[],
    );
    let main = http_get(port, "/metrics");
    let deadline = Instant::now() + Duration::from_secs(30);
    let separate = loop {
        // The metrics listener starts with the server; retry until it answers.
        if let Ok(s) = TcpStream::connect(("127.0.0.1", metrics_port)) {
            drop(s);
            break http_get(metrics_port, "/metrics");
        }
        assert!(Instant::now() < deadline, "no metrics listener");
        std::thread::sleep(Duration::from_millis(50));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(main.starts_with("HTTP/1.1 404"), "{main}");
    assert!(separate.starts_with("HTTP/1.1 200"), "{separate}");
    assert!(
        separate.contains("rotafetch_http_connections_total"),
        "{separate}"
    );
}

//! The server binary as a separate OS process (several of them can share one PostgreSQL
//! database). Killed on drop.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

pub struct ServerProcess {
    pub base: String,
    child: tokio::process::Child,
    log: PathBuf,
}

impl ServerProcess {
    /// Starts `bin --db <db> --listen 127.0.0.1:0 --key-file <dir>/keys.json --demo-user <extra>` (stderr
    /// to `<dir>/<name>.log`; instances started in one `dir` share the key file) and waits
    /// until it writes its port file (after the database and keys are open).
    pub async fn start(bin: &Path, db: &str, dir: &Path, name: &str, extra: &[&str]) -> Self {
        Self::start_logging(bin, db, dir, name, extra, "warn").await
    }

    /// [`ServerProcess::start`] with `RUST_LOG=<rust_log>`.
    pub async fn start_logging(
        bin: &Path,
        db: &str,
        dir: &Path,
        name: &str,
        extra: &[&str],
        rust_log: &str,
    ) -> Self {
        let port_file = dir.join(format!("{name}.port"));
        let log = dir.join(format!("{name}.log"));
        let child = tokio::process::Command::new(bin)
            .args(["--listen", "127.0.0.1:0", "--db", db])
            .arg("--port-file")
            .arg(&port_file)
            .arg("--www")
            .arg(dir)
            .arg("--pkg")
            .arg(dir)
            .arg("--key-file")
            .arg(dir.join("keys.json"))
            .arg("--demo-user")
            .args(extra)
            .env("RUST_LOG", rust_log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("creating the server log"))
            .kill_on_drop(true)
            .spawn()
            .expect("spawning the server binary");
        let mut server = ServerProcess {
            base: String::new(),
            child,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        let port = loop {
            if let Some(port) = std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|s| s.trim().parse::<u16>().ok())
            {
                break port;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("{name} exited ({status}):\n{}", server.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "{name} did not start:\n{}",
                server.log_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        server.base = format!("http://127.0.0.1:{port}");
        server
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL and wait.
    pub async fn kill(mut self) {
        let _ = self.child.kill().await;
    }
}

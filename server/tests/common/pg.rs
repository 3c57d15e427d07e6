//! A throw-away PostgreSQL cluster for the tests (and the rotation benchmark): `initdb` in a
//! fresh temp dir, `postgres` on 127.0.0.1 and a free port, trust authentication, run as an
//! unprivileged user when we are root (PostgreSQL refuses to run as root).
//!
//! Clean-up never depends on `Drop` running: a small janitor shell process holds a pipe from
//! us, and when this process ends in any way (tests done, panic, abort, kill) the pipe closes
//! and the janitor stops the cluster (`pg_ctl stop -m immediate`) and deletes the directory.
//! [`shared`] gives one cluster per test binary; tests take a fresh database each
//! ([`PgCluster::create_db`]).
#![allow(dead_code)]

use std::io::Write as _;
use std::os::unix::fs::MetadataExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};

pub struct PgCluster {
    pub port: u16,
    dir: PathBuf,
    bindir: PathBuf,
    /// Command prefix that runs a program as the unprivileged user (empty if we are not root).
    as_user: Vec<String>,
    janitor: Mutex<Option<Child>>,
    next_db: AtomicU32,
    /// Extra `postgres` options (TLS).
    options: String,
}

/// A server certificate and key (PEM) for [`PgCluster::start_tls`].
pub struct ServerTls<'a> {
    pub cert_pem: &'a str,
    pub key_pem: &'a str,
}

/// The directory holding `initdb`, `pg_ctl` and `postgres`: `$ROTAFETCH_PG_BINDIR`,
/// `pg_config --bindir`, the newest `/usr/lib/postgresql/*/bin`, or `$PATH`. Panics with what
/// to do if there is none: PostgreSQL variants of the tests must fail, never skip.
pub fn bindir() -> PathBuf {
    let has_server = |d: &Path| d.join("initdb").is_file() && d.join("pg_ctl").is_file();
    if let Some(d) = std::env::var_os("ROTAFETCH_PG_BINDIR") {
        let d = PathBuf::from(d);
        assert!(
            has_server(&d),
            "ROTAFETCH_PG_BINDIR={d:?} has no initdb and pg_ctl"
        );
        return d;
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let d = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && has_server(&d) {
            return d;
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, d)| has_server(d))
        .collect();
    versions.sort();
    if let Some((_, d)) = versions.pop() {
        return d;
    }
    if let Some(d) =
        std::env::var_os("PATH").and_then(|p| std::env::split_paths(&p).find(|d| has_server(d)))
    {
        return d;
    }
    panic!(
        "PostgreSQL server binaries (initdb, pg_ctl) not found: run scripts/setup-postgres.sh \
         (make test does) or set ROTAFETCH_PG_BINDIR"
    );
}

fn run(cmd: &mut Command, what: &str) -> Result<(), String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{what}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

fn id_of(flag: &str) -> String {
    let out = Command::new("id")
        .args([flag, "nobody"])
        .output()
        .expect("running id");
    assert!(
        out.status.success(),
        "no user `nobody` to run PostgreSQL as"
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("binding 127.0.0.1:0")
        .port()
}

impl PgCluster {
    /// initdb + start. Panics (with PostgreSQL's log) if it cannot.
    pub fn start() -> PgCluster {
        Self::start_with(None)
    }

    /// A cluster that accepts TCP connections only over TLS (`hostssl`), with this
    /// certificate.
    pub fn start_tls(tls: ServerTls<'_>) -> PgCluster {
        Self::start_with(Some(tls))
    }

    fn start_with(tls: Option<ServerTls<'_>>) -> PgCluster {
        let bindir = bindir();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let dir =
            std::env::temp_dir().join(format!("rotafetch-pg-{}-{nanos:x}", std::process::id()));
        std::fs::create_dir(&dir).expect("creating the cluster directory");
        let root = std::fs::metadata(&dir).unwrap().uid() == 0;
        let mut owner = None;
        let as_user = if root {
            let (uid, gid) = (id_of("-u"), id_of("-g"));
            owner = Some((uid.parse::<u32>().unwrap(), gid.parse::<u32>().unwrap()));
            std::os::unix::fs::chown(&dir, Some(uid.parse().unwrap()), Some(gid.parse().unwrap()))
                .expect("chown of the cluster directory");
            [
                "setpriv",
                "--reuid",
                &uid,
                "--regid",
                &gid,
                "--clear-groups",
                "--",
            ]
            .map(String::from)
            .to_vec()
        } else {
            Vec::new()
        };
        let data = dir.join("data");
        // The janitor first, so that even a failing initdb leaves nothing behind.
        let janitor = Command::new("sh")
            .arg("-c")
            .arg(r#"read _; "$@" >/dev/null 2>&1; rm -rf "$0""#)
            .arg(&dir)
            .args(&as_user)
            .arg(bindir.join("pg_ctl"))
            .args(["stop", "-m", "immediate", "-D"])
            .arg(&data)
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Not in our process group: a Ctrl-C to the tests must not kill it before it
            // cleans up.
            .process_group(0)
            .spawn()
            .expect("spawning the cluster janitor");
        let mut cluster = PgCluster {
            port: 0,
            dir,
            bindir,
            as_user,
            janitor: Mutex::new(Some(janitor)),
            next_db: AtomicU32::new(0),
            options: String::new(),
        };
        let mut initdb = cluster.command("initdb");
        initdb
            .args([
                "--auth=trust",
                "--username=postgres",
                "--no-sync",
                "--no-locale",
            ])
            .args(["--encoding=UTF8", "-D"])
            .arg(&data);
        run(&mut initdb, "initdb").unwrap_or_else(|e| panic!("{e}"));
        if let Some(tls) = tls {
            cluster.options = setup_tls(&data, &tls, owner);
        }
        // The port is free when we look; if someone takes it before postgres binds it, try
        // another.
        let mut last = String::new();
        for _ in 0..3 {
            cluster.port = free_port();
            match cluster.pg_ctl_start() {
                Ok(()) => return cluster,
                Err(e) => last = e,
            }
        }
        panic!("could not start PostgreSQL: {last}");
    }

    fn command(&self, program: &str) -> Command {
        let program = self.bindir.join(program);
        let mut cmd = match self.as_user.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(program);
                c
            }
            None => Command::new(program),
        };
        // Our working directory may be one `nobody` cannot enter (a checkout under /root).
        cmd.current_dir(&self.dir);
        // Never let a developer's PG* variables point the tools elsewhere.
        for var in ["PGHOST", "PGPORT", "PGDATA", "PGUSER", "PGDATABASE"] {
            cmd.env_remove(var);
        }
        cmd
    }

    fn pg_ctl_start(&self) -> Result<(), String> {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c max_connections=200 \
             -c fsync=off -c synchronous_commit=off -c full_page_writes=off{}",
            self.port,
            self.dir.display(),
            self.options,
        );
        let mut cmd = self.command("pg_ctl");
        // -w: returns once the server accepts connections (pg_ctl polls it), -t: at most 120 s.
        cmd.args(["start", "-w", "-t", "120", "-o", &options, "-l"])
            .arg(self.dir.join("postgres.log"))
            .arg("-D")
            .arg(self.dir.join("data"));
        run(&mut cmd, "pg_ctl start").map_err(|e| {
            let log = std::fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default();
            format!("{e}\npostgres.log:\n{log}")
        })
    }

    /// Stops the server (fast shutdown: clients are disconnected), keeping the data.
    pub fn stop(&self) {
        let mut cmd = self.command("pg_ctl");
        cmd.args(["stop", "-w", "-t", "120", "-m", "fast", "-D"])
            .arg(self.dir.join("data"));
        run(&mut cmd, "pg_ctl stop").unwrap_or_else(|e| panic!("{e}"));
    }

    /// Starts it again after [`PgCluster::stop`], on the same port.
    pub fn restart(&self) {
        self.pg_ctl_start().unwrap_or_else(|e| panic!("{e}"));
    }

    /// The URL of database `name` on this cluster.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates an empty database and returns its URL.
    pub async fn create_db(&self) -> String {
        let n = self.next_db.fetch_add(1, Ordering::Relaxed);
        let name = format!("t{}_{n}", std::process::id());
        // Over the Unix socket: a TLS-only cluster refuses plain TCP.
        let admin = format!(
            "host={} port={} user=postgres dbname=postgres",
            self.dir.display(),
            self.port
        );
        let client = connect(&admin).await;
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("CREATE DATABASE");
        self.url(&name)
    }
}

/// Writes the certificate and key into the data directory (owned by the server's user, the
/// key 0600) and lets TCP clients in over TLS only; returns the `postgres` options.
fn setup_tls(data: &Path, tls: &ServerTls<'_>, owner: Option<(u32, u32)>) -> String {
    use std::os::unix::fs::PermissionsExt as _;
    let write = |name: &str, text: &str, mode: u32| {
        let path = data.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&path, Some(uid), Some(gid)).unwrap();
        }
    };
    write("server.crt", tls.cert_pem, 0o644);
    write("server.key", tls.key_pem, 0o600);
    let hba = std::fs::read_to_string(data.join("pg_hba.conf")).unwrap();
    let hba: String = hba
        .lines()
        .map(|l| match l.strip_prefix("host ") {
            Some(rest) => format!("hostssl {rest}\n"),
            None => format!("{l}\n"),
        })
        .collect();
    write("pg_hba.conf", &hba, 0o600);
    " -c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key".to_owned()
}

/// A connection to `url` whose connection task runs on the current runtime.
pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connecting to the test cluster");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let janitor = self.janitor.get_mut().ok().and_then(Option::take);
        if let Some(mut janitor) = janitor {
            // EOF on its stdin: it stops the server and removes the directory; wait for it.
            if let Some(mut stdin) = janitor.stdin.take() {
                let _ = stdin.write_all(b"\n");
            }
            let _ = janitor.wait();
        }
    }
}

/// One cluster for the whole test binary, started on first use and stopped by its janitor
/// when the binary exits.
pub fn shared() -> &'static PgCluster {
    static SHARED: OnceLock<PgCluster> = OnceLock::new();
    SHARED.get_or_init(PgCluster::start)
}

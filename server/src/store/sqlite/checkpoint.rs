//! Checkpoints of the write-ahead log, off the serving connection.
//!
//! By default SQLite checkpoints inside the commit that takes the log past 1,000 pages: that
//! request copies the pages into the database file and waits for two `fsync`s (tens of
//! milliseconds on a busy disk) while it holds the one serving connection, so every request
//! queued behind it waits too. Under steady traffic (a DPoP proof or a rotation is a write)
//! that came every two seconds or so: the users' p99 latency on the reference server was these
//! stalls (the abuse bench found it; with the database on tmpfs they were gone).
//!
//! Here the serving connection only checkpoints as a backstop, past [`BACKSTOP_PAGES`], and a
//! thread of its own checkpoints every [`EVERY`] on a second connection, in `PASSIVE` mode:
//! it takes no lock a writer waits for, copies what no reader still needs, and leaves the rest
//! for the next time. With `synchronous = NORMAL` a commit still never waits for the disk, and
//! the writer that starts the log over syncs only its header.
//!
//! Measured on 2 cores, 16 chains rotating flat out (a rotation writes a few pages): SQLite's
//! default 4,500–4,750 rotations/s with p99 17–18 ms; a checkpoint every second 5,800–6,100/s
//! but p99 20–27 ms (the log outgrew the interval and the backstop checkpointed under the
//! serving connection); every 100 ms 6,350–6,450/s, p99 10–16 ms. When there is nothing to
//! copy a checkpoint only reads the log's index.

use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};
use rusqlite::Connection;

/// How often the checkpointer runs: often enough that the log stays small at full load.
const EVERY: Duration = Duration::from_millis(100);

/// The serving connection's own checkpoint threshold (pages of 4 KiB): reached only if the
/// checkpointer cannot keep up (a long reader), so that the log stays bounded anyway.
pub(super) const BACKSTOP_PAGES: u32 = 10_000;

/// The checkpointing thread of a file database; stopped (and joined) on drop.
pub(super) struct Checkpointer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Opens a second connection to the database at `path` and starts checkpointing it every
    /// [`EVERY`].
    pub(super) fn start(path: &Path) -> Result<Self> {
        let conn = Connection::open(path)
            .with_context(|| format!("opening {} for checkpoints", path.display()))?;
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                // Until the sender is dropped: the database is closing.
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(EVERY) {
                    if let Err(e) = passive(&conn) {
                        tracing::warn!("SQLite checkpoint failed: {e}");
                    }
                }
            })
            .context("starting the checkpoint thread")?;
        Ok(Checkpointer {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One `PASSIVE` checkpoint (its answer, the log's pages and those copied, is not needed).
fn passive(conn: &Connection) -> Result<()> {
    Ok(conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?)
}

//! WAL checkpoints on a thread of their own, off the writer's path.
//!
//! SQLite's automatic checkpoint runs inside the commit that pushes the WAL past 1,000 pages:
//! that commit copies the WAL into the database file and syncs it before its requests are
//! answered, and the next batch waits behind it (5 % of the server's CPU samples under
//! `hookplane-bench ingest`, all of it on the writer's thread). The writer's own connection
//! turns that off; after its commits it nudges this thread, which runs a `PASSIVE` checkpoint
//! on its own connection at most every [`INTERVAL`]. A passive checkpoint copies only what no
//! reader still needs and never blocks the writer or a reader, and the next write transaction
//! after one that copied everything starts the WAL over from its beginning, as before.
//!
//! Checkpoints move committed pages from one file to the other; a commit is durable in the
//! WAL before its requests are answered, whether or not a checkpoint has run since.

use std::{
    path::Path,
    sync::{Arc, Condvar, Mutex, PoisonError},
    thread::JoinHandle,
    time::Duration,
};

use rusqlite::Connection;

/// At most one checkpoint per interval while the writer commits; none while it is idle.
const INTERVAL: Duration = Duration::from_millis(100);

/// The checkpoint thread; stopped (after the checkpoint it is running, if any) when dropped.
pub(crate) struct Checkpointer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// Why the thread did not start (the writer's connection then checkpoints as SQLite does).
#[derive(Debug, thiserror::Error)]
pub(crate) enum StartError {
    #[error("its connection could not be opened: {0}")]
    Open(#[from] rusqlite::Error),
    #[error("its thread could not be started: {0}")]
    Spawn(#[from] std::io::Error),
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Default)]
struct State {
    /// Something was committed since the last checkpoint began.
    committed: bool,
    stopping: bool,
}

impl Checkpointer {
    /// Opens a connection to `path` (a WAL database) and starts the thread.
    pub(crate) fn start(path: &Path, busy_timeout: Duration) -> Result<Self, StartError> {
        let connection = super::direct::connect(path, busy_timeout)?;
        let shared = Arc::new(Shared::default());
        let thread = std::thread::Builder::new()
            .name("hookplane-checkpoint".to_owned())
            .spawn({
                let shared = Arc::clone(&shared);
                move || run(&connection, &shared)
            })?;
        Ok(Self {
            shared,
            thread: Some(thread),
        })
    }

    /// Tells the thread that the writer committed.
    pub(crate) fn committed(&self) {
        let mut state = self.lock();
        if !state.committed {
            state.committed = true;
            self.shared.wake.notify_one();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.lock().stopping = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            // A checkpoint in progress finishes first; it is bounded by the WAL's size.
            let _ = thread.join();
        }
    }
}

/// Waits for a commit, checkpoints, rests for [`INTERVAL`]; what was committed before the
/// stop is checkpointed before the thread ends.
fn run(connection: &Connection, shared: &Shared) {
    let lock = || shared.state.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        {
            let mut state = shared
                .wake
                .wait_while(lock(), |state| !state.committed && !state.stopping)
                .unwrap_or_else(PoisonError::into_inner);
            if !state.committed {
                return;
            }
            state.committed = false;
        }
        checkpoint(connection);
        let (state, _) = shared
            .wake
            .wait_timeout_while(lock(), INTERVAL, |state| !state.stopping)
            .unwrap_or_else(PoisonError::into_inner);
        if state.stopping && !state.committed {
            return;
        }
    }
}

/// One passive checkpoint; a failure is logged and the next commit's nudge tries again.
fn checkpoint(connection: &Connection) {
    let result = connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
        Ok((row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
    });
    match result {
        Ok((wal_pages, copied)) => {
            tracing::trace!(wal_pages, copied, "checkpointed the WAL");
        }
        Err(error) => {
            tracing::warn!(error = %error, "a WAL checkpoint failed; the next commit retries it")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A WAL file with `rows` rows committed one by one by a connection that never
    /// checkpoints, as the writer's is.
    fn wal_database(dir: &Path, rows: usize) -> (std::path::PathBuf, Connection) {
        let path = dir.join("store.db");
        let writer = Connection::open(&path).expect("open");
        writer
            .execute_batch(
                "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0; \
                 CREATE TABLE t (v BLOB)",
            )
            .expect("setup");
        for _ in 0..rows {
            writer
                .execute("INSERT INTO t (v) VALUES (zeroblob(4096))", [])
                .expect("insert");
        }
        (path, writer)
    }

    #[test]
    fn a_nudge_checkpoints_what_the_writer_committed() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let (path, writer) = wal_database(dir.path(), 50);
        let wal = std::fs::metadata(path.with_extension("db-wal"))
            .expect("wal")
            .len();
        assert!(
            wal > 50 * 4096,
            "the writer's commits stay in the WAL: {wal}"
        );

        let database = || std::fs::metadata(&path).expect("database file").len();
        assert!(
            database() < 50 * 4096,
            "nothing was copied yet: {}",
            database()
        );

        let checkpointer = Checkpointer::start(&path, Duration::from_secs(5)).expect("start");
        checkpointer.committed();
        // Stopping waits for the checkpoint the nudge asked for.
        drop(checkpointer);

        // The pages are in the database file now, and the rows read back.
        assert!(database() >= 50 * 4096, "{} bytes", database());
        let count: i64 = writer
            .query_row("SELECT count(*) FROM t", [], |row| row.get(0))
            .expect("count");
        assert_eq!(count, 50);
    }
}

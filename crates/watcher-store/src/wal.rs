//! SQLite's write-ahead log, checkpointed on a thread of its own so that a
//! checkpoint never lands on a commit.

use crate::error::StoreError;
use crate::location::open_sqlite;
use rusqlite::OpenFlags;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;
use watcher_core::backoff::LogGate;

/// Copies the WAL back into the database off the write path, every
/// `CHECKPOINT_EVERY` or sooner when the writer reports a large group; and
/// once the WAL has not changed for a whole interval (writes paused),
/// truncates it to nothing, so that a burst leaves no large file behind.
pub(crate) fn checkpointer_loop(path: PathBuf, wake: mpsc::Receiver<()>) {
    let conn = match open_sqlite(&path, OpenFlags::default()) {
        Ok(c) => c,
        Err(e) => return tracing::error!(error = %e, "checkpointer cannot open the database"),
    };
    // A TRUNCATE holds new writers while it waits for readers: never long.
    let _ = conn.busy_timeout(Duration::from_millis(200));
    let mut last_seen = None;
    let mut gate = LogGate::default();
    loop {
        let mode = match wake.recv_timeout(CHECKPOINT_EVERY) {
            Ok(()) => "PASSIVE",
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let now = wal_state(&path);
                let quiet = now.0 > 0 && last_seen == Some(now);
                last_seen = Some(now);
                if quiet {
                    "TRUNCATE"
                } else if now.0 > 0 {
                    "PASSIVE"
                } else {
                    continue;
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        };
        match conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |_| Ok(())) {
            Ok(()) => gate.reset(),
            Err(e) => {
                if let Some(held_back) = gate.admit(&e.to_string(), std::time::Instant::now()) {
                    tracing::warn!(error = %e, not_logged = held_back, "WAL checkpoint failed; will retry");
                }
            }
        }
    }
}

/// Size and modification time of the WAL file: unchanged means unwritten.
fn wal_state(path: &Path) -> (u64, Option<std::time::SystemTime>) {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    match std::fs::metadata(PathBuf::from(wal)) {
        Ok(m) => (m.len(), m.modified().ok()),
        Err(_) => (0, None),
    }
}

const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// Past this, the writer itself checkpoints (RESTART) before its next
/// group, waiting for readers: a burst cannot outrun the checkpointer.
pub(crate) const WAL_HIGH_WATER_BYTES: u64 = 48 * 1024 * 1024;

/// A blocking checkpoint (`RESTART` or `TRUNCATE`) on a connection of its
/// own (the writer's may hold statements that would make it fail), waiting
/// up to the busy timeout for readers; an error if it could not complete.
pub(crate) fn checkpoint(path: &Path, mode: &str) -> Result<(), StoreError> {
    let conn = open_sqlite(path, OpenFlags::default())?;
    // A reader in the middle of a query, or the checkpointer thread at
    // work, makes one attempt give up: they finish within moments.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let busy: i64 =
            conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| r.get(0))?;
        if busy == 0 {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err(StoreError::Unavailable(format!(
                "the {mode} checkpoint of {} could not finish: readers held the WAL for 5 s",
                path.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Size of the WAL file of the database at `path` (0 when there is none).
pub fn wal_bytes(path: &Path) -> u64 {
    wal_state(path).0
}

/// Bytes an unprivileged writer may still use on the file system that
/// holds `path` (its directory's, for a file not made yet); `None` when it
/// cannot be asked.
pub(crate) fn disk_free_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let c_path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a statvfs the call fills in.
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) } != 0 {
        return None;
    }
    Some(stat.f_bavail as u64 * stat.f_frsize as u64)
}

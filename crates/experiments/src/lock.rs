//! Claims that let several processes (local runs, Slurm shards) share one experiment folder: a
//! unit is trained by whoever creates its lock file first (`create_new` is atomic on local and
//! NFSv3+ filesystems); the file names its owner (host, pid), so a lock left by a dead local
//! process is recognised and taken over. Locks are removed when their guard is dropped.

use std::io::Write;
use std::path::{Path, PathBuf};

use realbias_train::TrainError;

/// Who holds a lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub host: String,
    pub pid: u32,
}

impl Owner {
    /// This process.
    pub fn me() -> Owner {
        Owner {
            host: hostname(),
            pid: std::process::id(),
        }
    }

    fn parse(text: &str) -> Option<Owner> {
        let mut words = text.split_whitespace();
        let host = words.next()?.to_string();
        let pid = words.next()?.parse().ok()?;
        Some(Owner { host, pid })
    }

    /// False only when the owner is known to be gone: a process of this host that no longer
    /// exists. Another host's process is taken to be alive (it cannot be checked from here).
    pub fn alive(&self) -> bool {
        self.host != hostname() || Path::new(&format!("/proc/{}", self.pid)).exists()
    }
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} pid {}", self.host, self.pid)
    }
}

/// This machine's name (`/proc/sys/kernel/hostname`, else `$HOSTNAME`, else "localhost").
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// A held lock; dropping it removes the file.
#[derive(Debug)]
pub struct Lock {
    path: PathBuf,
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The owner named in a lock file, if the file is there and readable.
pub fn owner(path: &Path) -> Option<Owner> {
    Owner::parse(&std::fs::read_to_string(path).ok()?)
}

/// Takes the lock at `path`, or says who holds it. A lock whose owner is dead is removed and
/// taken.
pub fn try_lock(path: &Path) -> Result<Result<Lock, Owner>, TrainError> {
    let write_err = |source| TrainError::Write {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(write_err)?;
    }
    for _ in 0..3 {
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
        {
            Ok(mut file) => {
                let me = Owner::me();
                writeln!(file, "{} {}", me.host, me.pid).map_err(write_err)?;
                return Ok(Ok(Lock {
                    path: path.to_path_buf(),
                }));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => match owner(path) {
                Some(o) if o.alive() => return Ok(Err(o)),
                // Dead owner, or a file being written this instant: clear a dead one and retry.
                Some(_) => realbias_train::files::remove(path)?,
                None => std::thread::sleep(std::time::Duration::from_millis(50)),
            },
            Err(e) => return Err(write_err(e)),
        }
    }
    let holder = owner(path).unwrap_or_else(|| Owner {
        host: "unknown".into(),
        pid: 0,
    });
    Ok(Err(holder))
}

/// Waits (polling once a second) until the lock at `path` is free and takes it; `stop` ends
/// the wait early with `None`.
pub fn wait_lock(path: &Path, stop: &dyn Fn() -> bool) -> Result<Option<Lock>, TrainError> {
    loop {
        if let Ok(lock) = try_lock(path)? {
            return Ok(Some(lock));
        }
        if stop() {
            return Ok(None);
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_is_exclusive_until_dropped_and_a_dead_owners_lock_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("unit.lock");
        let held = try_lock(&path).unwrap().unwrap();
        let other = try_lock(&path).unwrap().unwrap_err();
        assert_eq!(other, Owner::me());
        drop(held);
        assert!(!path.exists());
        // A pid that does not exist on this host: stale.
        std::fs::write(&path, format!("{} {}\n", hostname(), u32::MAX - 7)).unwrap();
        let taken = try_lock(&path).unwrap().unwrap();
        assert_eq!(owner(&path), Some(Owner::me()));
        drop(taken);
        // Another host's lock is respected.
        std::fs::write(&path, "elsewhere 1\n").unwrap();
        assert_eq!(try_lock(&path).unwrap().unwrap_err().host, "elsewhere");
    }
}

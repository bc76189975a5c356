//! Claims that let several processes (local runs, Slurm shards on many nodes) share one
//! experiment folder. A unit is trained by whoever creates its lock file first (`create_new` is
//! atomic on local and NFSv3+ filesystems). A lock is a **lease**: its holder refreshes the
//! file's modification time every [`REFRESH`] while it holds it, and a lock not refreshed for
//! the lease time ([`lease`], default 5 minutes) is stale, whatever host wrote it, and is taken
//! over. A lock is stale at once when its owner is known to be gone: a process of this host that
//! no longer exists, or whose pid now belongs to a process started at another time (a reused
//! pid); an empty or unreadable lock is stale once it is older than [`WRITE_GRACE`] (a full
//! disk leaves a 0-byte file). Locks are removed when their guard is dropped.
//!
//! Clocks: on a shared filesystem the lease compares the file's mtime, set from the holder's
//! clock, with the reader's clock, so the nodes' clocks must agree to well within the lease
//! (NTP keeps them within milliseconds; a skew of minutes would take live locks over).

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, SystemTime};

use realbias_train::TrainError;

/// How often a holder refreshes its locks.
pub const REFRESH: Duration = Duration::from_secs(10);
/// The default lease: a lock not refreshed for this long is stale.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(300);
/// How long an empty or unreadable lock may be in the middle of being written.
pub const WRITE_GRACE: Duration = Duration::from_secs(10);
/// The environment variable that sets the lease, in seconds (at least 3 refreshes).
pub const LEASE_VARIABLE: &str = "REALBIAS_LOCK_LEASE";

/// How far in the future a lock's mtime may be and still count: nodes' clocks that agree
/// to within a refresh. A lock further ahead (a clock far off, a `touch -d` by hand) would
/// otherwise look fresh until the clock catches up, blocking its unit for that long.
pub const FUTURE_TOLERANCE: Duration = REFRESH;

/// The lease in force: `REALBIAS_LOCK_LEASE` seconds, else [`DEFAULT_LEASE`]. The value is
/// checked once at the start ([`check_lease_variable`]); here an invalid one falls back to
/// the default, and the lease is never shorter than three refreshes, so a live holder is
/// never taken for stale.
pub fn lease() -> Duration {
    parse_lease(std::env::var(LEASE_VARIABLE).ok().as_deref())
        .ok()
        .flatten()
        .unwrap_or(DEFAULT_LEASE)
}

/// The lease `REALBIAS_LOCK_LEASE` sets (`None`: unset), or why the value is refused.
fn parse_lease(value: Option<&str>) -> Result<Option<Duration>, String> {
    let Some(text) = value else {
        return Ok(None);
    };
    let minimum = 3 * REFRESH.as_secs();
    match text.trim().parse::<u64>() {
        Ok(seconds) if seconds >= minimum => Ok(Some(Duration::from_secs(seconds))),
        Ok(seconds) => Err(format!(
            "{LEASE_VARIABLE}={seconds} is shorter than three refreshes of a held lock ({minimum} s): a live holder would look stale"
        )),
        Err(_) => Err(format!(
            "{LEASE_VARIABLE}={text:?} is not a whole number of seconds (at least {minimum}; default {})",
            DEFAULT_LEASE.as_secs()
        )),
    }
}

/// Refuses an invalid `REALBIAS_LOCK_LEASE` (not a whole number of seconds, or shorter than
/// three refreshes) rather than silently using another lease.
pub fn check_lease_variable() -> Result<(), String> {
    parse_lease(std::env::var(LEASE_VARIABLE).ok().as_deref()).map(|_| ())
}

/// Who holds a lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub host: String,
    pub pid: u32,
    /// When the process started (clock ticks since boot, `/proc/PID/stat`), to tell a reused
    /// pid from the owner; `None` in locks written before it was recorded.
    pub started: Option<u64>,
}

impl Owner {
    /// This process.
    pub fn me() -> Owner {
        let pid = std::process::id();
        Owner {
            host: hostname(),
            pid,
            started: process_start(pid),
        }
    }

    fn parse(text: &str) -> Option<Owner> {
        let mut words = text.split_whitespace();
        let host = words.next()?.to_string();
        let pid = words.next()?.parse().ok()?;
        let started = words.next().and_then(|w| w.parse().ok());
        Some(Owner { host, pid, started })
    }

    fn line(&self) -> String {
        match self.started {
            Some(t) => format!("{} {} {t}\n", self.host, self.pid),
            None => format!("{} {}\n", self.host, self.pid),
        }
    }

    /// Why the owner is known to be gone, if it is: a process of this host that no longer
    /// exists or whose pid was reused. Another host's process cannot be checked from here.
    fn gone(&self) -> Option<String> {
        if self.host != hostname() {
            return None;
        }
        match (process_start(self.pid), self.started) {
            (None, _) => Some(format!("its process ({self}) is gone")),
            (Some(now), Some(then)) if now != then => Some(format!(
                "its pid {} now belongs to another process",
                self.pid
            )),
            _ => None,
        }
    }
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} pid {}", self.host, self.pid)
    }
}

/// The start time of process `pid` (field 22 of `/proc/PID/stat`), `None` when there is no
/// such process (or no `/proc`).
fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
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

/// What a lock file says: its owner (if readable), how long since it was refreshed, and why
/// it is stale if it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockInfo {
    pub owner: Option<Owner>,
    pub age: Duration,
    pub stale: Option<String>,
}

/// The state of the lock at `path`; `None` when there is no lock.
pub fn inspect(path: &Path) -> Option<LockInfo> {
    inspect_file(path).map(|(_, info)| info)
}

/// [`inspect`], with the metadata of the very file judged (its inode tells it from a lock
/// that replaced it since).
fn inspect_file(path: &Path) -> Option<(std::fs::Metadata, LockInfo)> {
    let metadata = std::fs::metadata(path).ok()?;
    let modified = metadata.modified().ok()?;
    let now = SystemTime::now();
    let age = now.duration_since(modified).unwrap_or(Duration::ZERO);
    let ahead = modified.duration_since(now).unwrap_or(Duration::ZERO);
    let owner = read_lock_text(path).and_then(|t| Owner::parse(&t));
    let stale = match &owner {
        _ if ahead > FUTURE_TOLERANCE => Some(format!(
            "refreshed {} s in the future (a clock ahead by more than {} s, or an mtime set by hand)",
            ahead.as_secs(),
            FUTURE_TOLERANCE.as_secs()
        )),
        None if age > WRITE_GRACE => Some("empty or unreadable".to_string()),
        None => None,
        Some(o) => o.gone().or_else(|| {
            (age > lease()).then(|| {
                format!(
                    "not refreshed for {} s (lease {} s)",
                    age.as_secs(),
                    lease().as_secs()
                )
            })
        }),
    };
    Some((metadata, LockInfo { owner, age, stale }))
}

/// The live owner of the lock at `path`: `None` when there is no lock or it is stale.
pub fn live_owner(path: &Path) -> Option<Owner> {
    let info = inspect(path)?;
    match info.stale {
        Some(_) => None,
        None => info.owner,
    }
}

/// The locks this process holds, refreshed by one background thread. The set is only ever
/// inserted into or removed from, so a poisoned lock still holds a consistent set.
fn held() -> MutexGuard<'static, BTreeSet<PathBuf>> {
    static HELD: OnceLock<Mutex<BTreeSet<PathBuf>>> = OnceLock::new();
    static REFRESHER: OnceLock<()> = OnceLock::new();
    let set = HELD.get_or_init(|| Mutex::new(BTreeSet::new()));
    REFRESHER.get_or_init(|| {
        std::thread::spawn(|| {
            loop {
                std::thread::sleep(REFRESH);
                refresh_all();
            }
        });
    });
    set.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Renews every held lock's lease (a lock removed meanwhile is skipped).
fn refresh_all() {
    let paths: Vec<PathBuf> = held().iter().cloned().collect();
    for path in paths {
        if let Ok(file) = std::fs::OpenOptions::new().write(true).open(&path) {
            let _ = file.set_modified(SystemTime::now());
        }
    }
}

/// Removes every lock this process holds: for an exit that skips destructors (a second
/// Ctrl-C), so that nothing it held blocks a resume.
pub fn release_all() {
    let paths = std::mem::take(&mut *held());
    for path in paths {
        let _ = std::fs::remove_file(path);
    }
}

/// A held lock; dropping it removes the file.
#[derive(Debug)]
pub struct Lock {
    path: PathBuf,
}

impl Lock {
    fn hold(path: &Path) -> Lock {
        held().insert(path.to_path_buf());
        Lock {
            path: path.to_path_buf(),
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        held().remove(&self.path);
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The owner named in a lock file, if the file is there and readable (stale or not).
fn owner(path: &Path) -> Option<Owner> {
    Owner::parse(&read_lock_text(path)?)
}

/// A lock file's text, if it is a regular file of at most 4 KB (a lock is one short line; a
/// FIFO or a huge file is unreadable, never waited on or loaded).
fn read_lock_text(path: &Path) -> Option<String> {
    crate::text::read_text(path, 4096).ok().flatten()
}

/// Removes the stale lock at `path` without removing a fresh one that replaced it meanwhile:
/// the file is moved aside (atomic), and put back if it is not the one judged stale.
#[cfg(unix)]
fn clear_stale(path: &Path, judged: &std::fs::Metadata) -> Result<(), TrainError> {
    use std::os::unix::fs::MetadataExt;
    let aside = path.with_extension(format!("stale-{}", std::process::id()));
    if std::fs::rename(path, &aside).is_err() {
        return Ok(()); // someone else cleared it first
    }
    let moved = std::fs::metadata(&aside).ok();
    if moved.is_some_and(|m| m.ino() != judged.ino()) {
        // A fresh lock replaced the stale one: put it back unless yet another appeared.
        let _ = std::fs::hard_link(&aside, path);
    }
    realbias_train::run_files::files::remove(&aside)
}

#[cfg(not(unix))]
fn clear_stale(path: &Path, _judged: &std::fs::Metadata) -> Result<(), TrainError> {
    realbias_train::run_files::files::remove(path)
}

/// Takes the lock at `path`, or says who holds it. A stale lock is cleared and taken.
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
                let lock = Lock::hold(path); // removed again if the owner cannot be written
                file.write_all(Owner::me().line().as_bytes())
                    .and_then(|_| file.sync_all())
                    .map_err(write_err)?;
                return Ok(Ok(lock));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                match inspect_file(path) {
                    None => continue, // released this instant
                    Some((judged, LockInfo { stale: Some(_), .. })) => clear_stale(path, &judged)?,
                    Some((
                        _,
                        LockInfo {
                            owner: Some(o),
                            stale: None,
                            ..
                        },
                    )) => return Ok(Err(o)),
                    // Being written this instant.
                    _ => std::thread::sleep(std::time::Duration::from_millis(50)),
                }
            }
            Err(e) => return Err(write_err(e)),
        }
    }
    let holder = owner(path).unwrap_or_else(|| Owner {
        host: "unknown".into(),
        pid: 0,
        started: None,
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

    /// Sets the lock file's mtime `seconds` into the past.
    fn age(path: &Path, seconds: u64) {
        let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        file.set_modified(SystemTime::now() - Duration::from_secs(seconds))
            .unwrap();
    }

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
    }

    #[test]
    fn another_hosts_lock_is_respected_while_fresh_and_taken_over_once_stale() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("unit.lock");
        std::fs::write(&path, "node-b 1 12345\n").unwrap();
        assert_eq!(try_lock(&path).unwrap().unwrap_err().host, "node-b");
        age(&path, lease().as_secs() - 30);
        assert!(try_lock(&path).unwrap().is_err(), "inside the lease");
        age(&path, lease().as_secs() + 1);
        let info = inspect(&path).unwrap();
        assert!(
            info.stale.as_deref().unwrap().contains("not refreshed"),
            "{info:?}"
        );
        let taken = try_lock(&path).unwrap().unwrap();
        assert_eq!(owner(&path), Some(Owner::me()));
        drop(taken);
    }

    #[test]
    fn an_empty_lock_and_a_reused_pid_are_stale() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("unit.lock");
        // A full disk: created, the owner never written. Fresh, it may be mid-write.
        std::fs::write(&path, "").unwrap();
        assert!(inspect(&path).unwrap().stale.is_none());
        age(&path, WRITE_GRACE.as_secs() + 1);
        assert!(try_lock(&path).unwrap().is_ok());
        // This very pid, recorded with another start time: the pid was reused.
        let me = Owner::me();
        assert!(me.started.is_some(), "Linux has /proc");
        std::fs::write(&path, format!("{} {} 1\n", me.host, me.pid)).unwrap();
        let info = inspect(&path).unwrap();
        assert!(
            info.stale.as_deref().unwrap().contains("another process"),
            "{info:?}"
        );
        // Without a recorded start time, a live pid is trusted (older locks).
        std::fs::write(&path, format!("{} {}\n", me.host, me.pid)).unwrap();
        assert_eq!(inspect(&path).unwrap().stale, None);
    }

    /// A lock refreshed "in the future" beyond the clocks' tolerance is stale, saying why;
    /// within it, a foreign live lock is still respected.
    #[test]
    fn a_lock_from_the_future_is_stale() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("unit.lock");
        std::fs::write(&path, "otherhost 1 1\n").unwrap();
        let ahead = |seconds: u64| {
            let file = std::fs::File::options().write(true).open(&path).unwrap();
            file.set_modified(SystemTime::now() + Duration::from_secs(seconds))
                .unwrap();
        };
        ahead(2);
        assert_eq!(inspect(&path).unwrap().stale, None, "within the tolerance");
        assert!(try_lock(&path).unwrap().is_err());
        ahead(86_400);
        let why = inspect(&path).unwrap().stale.unwrap();
        assert!(why.contains("in the future"), "{why}");
        assert!(
            try_lock(&path).unwrap().is_ok(),
            "a lock from the future is taken over"
        );
    }

    #[test]
    fn an_invalid_lease_is_refused_not_replaced() {
        assert_eq!(parse_lease(None), Ok(None));
        assert_eq!(
            parse_lease(Some(" 600 ")),
            Ok(Some(Duration::from_secs(600)))
        );
        for bad in ["abc", "-1", "1.5", "", "29"] {
            let e = parse_lease(Some(bad)).unwrap_err();
            assert!(e.contains(LEASE_VARIABLE), "{bad}: {e}");
        }
    }

    #[test]
    fn a_held_lock_is_refreshed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("unit.lock");
        let held = try_lock(&path).unwrap().unwrap();
        age(&path, 3600);
        assert!(inspect(&path).unwrap().stale.is_some(), "an hour old");
        refresh_all();
        let info = inspect(&path).unwrap();
        assert!(
            info.age < Duration::from_secs(60) && info.stale.is_none(),
            "{info:?}"
        );
        drop(held);
        assert!(!path.exists());
    }
}

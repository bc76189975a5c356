//! `realbias status DIR`: where an experiment folder stands, from the folder alone (so it works
//! from a cluster's login node while shards run elsewhere).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;
use realbias_experiments::experiment::{FAILURE_FILE, lock_path};
use realbias_experiments::lock;
use realbias_experiments::registry;
use realbias_experiments::store::read_result;
use realbias_experiments::text::MAX_TEXT_BYTES;
use realbias_train::run_files::state::CHECKPOINT_FILE;

/// A unit's state.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum State {
    Finished,
    /// Held by a live process (its lease refreshed this many seconds ago).
    Claimed(String, u64),
    /// Its lock belongs to a process of this host that is gone, or it left partial output.
    Failed(String),
    /// Stopped with a checkpoint (written this many seconds ago): the next run resumes it.
    Resumable(u64),
    ToDo,
}

fn state(finished: bool, unit_result: &Path, lock: &Path) -> State {
    if finished {
        return State::Finished;
    }
    // There but not readable as a result: named, so it can be looked at or removed.
    if unit_result.exists() {
        let why = match read_result::<serde_json::Value>(unit_result) {
            Err(e) => e,
            Ok(_) => format!("{}: not a result of this experiment", unit_result.display()),
        };
        return State::Failed(format!("{why}; remove it to train the unit again"));
    }
    let lock = lock::inspect(lock);
    let holder = |info: &lock::LockInfo| {
        info.owner
            .as_ref()
            .map_or("an unreadable lock".to_string(), |o| o.to_string())
    };
    // A live process is retrying it, whatever failed before.
    if let Some(info) = lock.as_ref().filter(|i| i.stale.is_none()) {
        return State::Claimed(holder(info), info.age.as_secs());
    }
    // A unit that failed on its own says why (`failed.txt`), until a run finishes it.
    let failure = unit_result.with_file_name(FAILURE_FILE);
    if let Ok(Some(why)) = realbias_experiments::text::read_text(&failure, MAX_TEXT_BYTES) {
        return State::Failed(why.trim().to_string());
    }
    // What lock is left is stale. Killed with a checkpoint: the next run takes the lock over
    // and resumes.
    if let Some(age) = checkpoint_age(unit_result) {
        return State::Resumable(age);
    }
    match lock.and_then(|info| Some((holder(&info), info.stale?))) {
        Some((holder, why)) => State::Failed(format!(
            "stale lock of {holder} ({why}); the next run takes it over"
        )),
        None if unit_result.with_file_name("history.csv").exists() => {
            State::Failed("started, no result (failed, interrupted or killed)".into())
        }
        None => State::ToDo,
    }
}

/// How long ago the checkpoint beside `unit_result` was written, if there is one.
fn checkpoint_age(unit_result: &Path) -> Option<u64> {
    let written = std::fs::metadata(unit_result.with_file_name(CHECKPOINT_FILE))
        .and_then(|m| m.modified())
        .ok()?;
    Some(written.elapsed().map_or(0, |d| d.as_secs()))
}

pub fn command(dir: &Path) -> Result<()> {
    let exp = registry::load_folder(dir)?;
    let units = exp.plan(dir);
    let states: Vec<State> = units
        .iter()
        .map(|u| state(exp.finished(u).is_some(), &u.result, &lock_path(u)))
        .collect();
    let count = |f: fn(&State) -> bool| states.iter().filter(|s| f(s)).count();
    println!("{} ({}): {} units", exp.name(), dir.display(), units.len());
    println!("  finished  {:>6}", count(|s| *s == State::Finished));
    println!(
        "  claimed   {:>6}",
        count(|s| matches!(s, State::Claimed(..)))
    );
    println!(
        "  failed    {:>6}",
        count(|s| matches!(s, State::Failed(_)))
    );
    println!(
        "  resumable {:>6}",
        count(|s| matches!(s, State::Resumable(_)))
    );
    println!("  to do     {:>6}", count(|s| *s == State::ToDo));
    // Per holder: its units and the oldest refresh of their leases.
    let mut by_owner: BTreeMap<&str, (Vec<&str>, u64)> = BTreeMap::new();
    for (u, s) in units.iter().zip(&states) {
        match s {
            State::Claimed(owner, age) => {
                let entry = by_owner.entry(owner).or_default();
                entry.0.push(&u.label);
                entry.1 = entry.1.max(*age);
            }
            State::Failed(why) => println!("  failed: {} ({why})", u.label),
            State::Resumable(age) => println!(
                "  resumable: {} (checkpoint written {age} s ago; the next run resumes it)",
                u.label
            ),
            _ => {}
        }
    }
    let litter = realbias_experiments::store::litter(dir);
    if !litter.is_empty() {
        println!(
            "  left by killed processes: {} file(s) (temporary files, session markers), removed by the run that finishes the folder:",
            litter.len()
        );
        for path in &litter {
            println!("    {}", path.display());
        }
    }
    for (owner, (labels, age)) in by_owner {
        println!(
            "  claimed by {owner} (leases refreshed within {age} s, stale after {} s): {}",
            lock::lease().as_secs(),
            labels.join(", ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_unit_that_a_live_process_retries_is_claimed_not_failed() {
        let tmp = tempfile::tempdir().unwrap();
        let result = tmp.path().join("result.json");
        let lock_file = tmp.path().join("result.lock");
        std::fs::write(tmp.path().join(FAILURE_FILE), "corrupt checkpoint\n").unwrap();
        let failed = State::Failed("corrupt checkpoint".into());
        assert_eq!(state(false, &result, &lock_file), failed);
        let held = lock::try_lock(&lock_file).unwrap().unwrap();
        assert!(
            matches!(state(false, &result, &lock_file), State::Claimed(..)),
            "a live holder is retrying it"
        );
        drop(held);
        assert_eq!(state(false, &result, &lock_file), failed);
        assert_eq!(state(true, &result, &lock_file), State::Finished);
    }
}

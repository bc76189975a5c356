//! An ensemble on the CPU, split over the run's threads.
//!
//! A member's steps and readings never depend on the other members of its stack, so an
//! ensemble can train as several smaller stacks ("shards") at once, one per thread, and each
//! member's record is the one it has in a single stack (and alone). On the CPU that is where
//! an ensemble gains over runs one by one at `--jobs 1`: flex runs only the large batched
//! products on several threads, while a single run's small operations use one.
//!
//! The shards' threads cannot share the caller's [`Progress`] and `finished` (neither is
//! `Send`), so they send what happens over a channel, and the calling thread hands it on:
//! the epochs and batches of the first shard still training, and every member's output as it
//! stops. A stop the caller asks for, or a shard's failure, stops every shard at its next
//! batch; each checkpoints its members as a stack does.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::time::Duration;

use crate::run_files::record::{EpochRecord, FinishedRun};
use crate::{Progress, TrainError};

/// How often the calling thread asks its [`Progress`] whether to stop while no shard reports.
const POLL: Duration = Duration::from_millis(50);

/// The members `group`, dealt round-robin into at most `threads` shards: members of one
/// condition sit next to each other in a sweep and tend to stop at the same epoch, so
/// dealing them keeps the shards' work even.
pub(crate) fn split(group: &[usize], threads: usize) -> Vec<Vec<usize>> {
    let n = threads.clamp(1, group.len().max(1));
    (0..n)
        .map(|s| group.iter().skip(s).step_by(n).copied().collect())
        .collect()
}

/// Trains one shard (its members' indices) with the progress and output callbacks given.
pub(crate) type TrainShard<'s> = dyn Fn(&[usize], &mut dyn Progress, &mut dyn FnMut(usize, FinishedRun)) -> Result<(), TrainError>
    + Sync
    + 's;

/// What a shard's thread tells the calling thread.
enum Event {
    Batch {
        shard: usize,
        epoch: usize,
        batch: usize,
        batches: usize,
    },
    Epoch {
        shard: usize,
        record: EpochRecord,
    },
    Finished {
        member: usize,
        run: Box<FinishedRun>,
    },
    Done {
        shard: usize,
    },
}

/// Trains `shards` at once, each on its own thread with `train_shard`, handing the first
/// running shard's progress to `progress` and every member's output to `finished` on this
/// thread. Returns the first shard's error, after every shard has stopped.
pub(crate) fn train(
    shards: &[Vec<usize>],
    train_shard: &TrainShard,
    progress: &mut dyn Progress,
    finished: &mut dyn FnMut(usize, FinishedRun),
) -> Result<(), TrainError> {
    let stop = AtomicBool::new(false);
    let per_shard = (rayon::current_num_threads() / shards.len()).max(1);
    std::thread::scope(|scope| {
        let (events, received) = mpsc::channel();
        let mut handles = Vec::with_capacity(shards.len());
        let mut outcome = Ok(());
        for (shard, members) in shards.iter().enumerate() {
            let work = ShardWork {
                shard,
                events: events.clone(),
                stop: &stop,
            };
            let spawned = std::thread::Builder::new()
                .name(format!("ensemble-shard-{shard}"))
                .spawn_scoped(scope, move || work.run(members, per_shard, train_shard));
            match spawned {
                Ok(handle) => handles.push(handle),
                Err(e) => {
                    // The shards already started stop and checkpoint their members.
                    stop.store(true, Ordering::Relaxed);
                    outcome = Err(TrainError::Threads(e.to_string()));
                    break;
                }
            }
        }
        drop(events);
        hand_on(&received, &stop, (progress, finished), handles.len());
        for handle in handles {
            let result = handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            if outcome.is_ok() {
                outcome = result;
            }
        }
        outcome
    })
}

/// Hands the shards' events on until every shard's thread has ended, and passes a stop the
/// caller asks for on to the shards.
fn hand_on(
    received: &mpsc::Receiver<Event>,
    stop: &AtomicBool,
    (progress, finished): (&mut dyn Progress, &mut dyn FnMut(usize, FinishedRun)),
    shards: usize,
) {
    let mut running: Vec<bool> = vec![true; shards];
    let shown = |running: &[bool], shard: usize| running.iter().position(|&r| r) == Some(shard);
    loop {
        match received.recv_timeout(POLL) {
            Ok(Event::Batch {
                shard,
                epoch,
                batch,
                batches,
            }) if shown(&running, shard) => progress.batch(epoch, batch, batches),
            Ok(Event::Epoch { shard, record }) if shown(&running, shard) => progress.epoch(&record),
            Ok(Event::Finished { member, run }) => finished(member, *run),
            Ok(Event::Done { shard }) => running[shard] = false,
            Ok(_) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        if progress.stop_requested() {
            stop.store(true, Ordering::Relaxed);
        }
    }
}

/// One shard's side of the channel: its number, where its events go, and the stop flag all
/// shards share.
struct ShardWork<'s> {
    shard: usize,
    events: Sender<Event>,
    stop: &'s AtomicBool,
}

impl ShardWork<'_> {
    /// Trains `members` on this thread, in a pool of `threads` threads of its own (so that
    /// the shard's parallel work stays on its share of the cores).
    fn run(
        mut self,
        members: &[usize],
        threads: usize,
        train_shard: &TrainShard,
    ) -> Result<(), TrainError> {
        let outputs = self.events.clone();
        let mut finished = |member: usize, run: FinishedRun| {
            // The receiver lives until every shard's thread has ended.
            let run = Box::new(run);
            let _ = outputs.send(Event::Finished { member, run });
        };
        let result = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| TrainError::Threads(e.to_string()))
            .and_then(|pool| pool.install(|| train_shard(members, &mut self, &mut finished)));
        if result.is_err() {
            // The other shards stop too, and checkpoint what they have.
            self.stop.store(true, Ordering::Relaxed);
        }
        let _ = self.events.send(Event::Done { shard: self.shard });
        result
    }
}

impl Progress for ShardWork<'_> {
    fn batch(&mut self, epoch: usize, batch: usize, batches: usize) {
        let shard = self.shard;
        let _ = self.events.send(Event::Batch {
            shard,
            epoch,
            batch,
            batches,
        });
    }

    fn epoch(&mut self, record: &EpochRecord) {
        let record = record.clone();
        let _ = self.events.send(Event::Epoch {
            shard: self.shard,
            record,
        });
    }

    fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_dealt_round_robin_into_at_most_one_shard_each() {
        let group = [3, 4, 5, 6, 7];
        assert_eq!(split(&group, 2), vec![vec![3, 5, 7], vec![4, 6]]);
        assert_eq!(split(&group, 1), vec![group.to_vec()]);
        assert_eq!(split(&group, 9).len(), 5);
        assert_eq!(split(&[], 4), vec![Vec::<usize>::new()]);
    }
}

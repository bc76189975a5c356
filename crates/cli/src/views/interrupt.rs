//! Stop requests: Ctrl-C (SIGINT), SIGTERM (Slurm's time limit and preemption) and SIGHUP (a
//! closed terminal). The first asks the work in flight to stop at its next check (finished work
//! is kept, locks released as their holders unwind); the second quits at once, after removing
//! every lock this process holds so that nothing it leaves blocks a resume.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Burn's `Interrupter`, stopped by the first stop request (the second quits at once). `what`
/// says what stops, e.g. "within a mini-batch".
pub fn ctrl_c_interrupter(what: &'static str) -> burn::train::Interrupter {
    let interrupter = burn::train::Interrupter::new();
    let stop = interrupter.clone();
    let first = Arc::new(AtomicBool::new(false));
    let _ = ctrlc::set_handler(move || {
        if first.swap(true, Ordering::Relaxed) {
            realbias_experiments::lock::release_all();
            eprintln!(
                "\nsecond stop request: quitting now; unfinished runs are retrained next time"
            );
            std::process::exit(130);
        }
        stop.stop(Some("stop requested (Ctrl-C, SIGTERM or SIGHUP)"));
        eprintln!(
            "\nstop requested (Ctrl-C, SIGTERM or SIGHUP): stopping {what}; finished runs are kept (send it again to quit now)"
        );
    });
    interrupter
}

/// A flag set by the first stop request. `what` says what stops, e.g. "within a mini-batch".
pub fn ctrl_c_flag(what: &'static str) -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::Relaxed) {
            realbias_experiments::lock::release_all();
            eprintln!(
                "\nsecond stop request: quitting now; unfinished runs are retrained next time"
            );
            std::process::exit(130);
        }
        eprintln!(
            "\nstop requested (Ctrl-C, SIGTERM or SIGHUP): stopping {what}; finished runs are kept (send it again to quit now)"
        );
    });
    stop
}

//! Stop requests: Ctrl-C (SIGINT), SIGTERM (Slurm's time limit and preemption) and SIGHUP (a
//! closed terminal). The first asks the work in flight to stop at its next check (finished work
//! is kept, locks released as their holders unwind); the second quits at once, after removing
//! every lock this process holds so that nothing it leaves blocks a resume.
//!
//! A process blocked in a system call (a hung network file system) cannot reach its next
//! check: the first request also arms a watchdog that quits as the second request would once
//! [`stop_grace`] has passed (20 s, within the 30 s Slurm waits after its SIGTERM).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The variable that sets the watchdog's grace, in seconds.
pub const STOP_GRACE_VARIABLE: &str = "REALBIAS_STOP_GRACE";
const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(20);

/// How long a stop request may take before the process quits anyway.
pub fn stop_grace() -> Result<Duration, String> {
    match std::env::var(STOP_GRACE_VARIABLE) {
        Err(_) => Ok(DEFAULT_STOP_GRACE),
        Ok(text) => match text.trim().parse::<f64>() {
            Ok(s) if s.is_finite() && (0.0..=3600.0).contains(&s) => Ok(Duration::from_secs_f64(s)),
            _ => Err(format!(
                "{STOP_GRACE_VARIABLE}={text:?}: expected seconds between 0 and 3600"
            )),
        },
    }
}

/// Quits after the grace unless the process has ended first.
fn arm_watchdog() {
    let grace = stop_grace().unwrap_or(DEFAULT_STOP_GRACE);
    std::thread::spawn(move || {
        std::thread::sleep(grace);
        realbias_experiments::lock::release_all();
        eprintln!(
            "\nnot stopped {:.0} s after the stop request (blocked on a file?): quitting now; the last checkpoint is kept",
            grace.as_secs_f64()
        );
        std::process::exit(130);
    });
}

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
        arm_watchdog();
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
        arm_watchdog();
        eprintln!(
            "\nstop requested (Ctrl-C, SIGTERM or SIGHUP): stopping {what}; finished runs are kept (send it again to quit now)"
        );
    });
    stop
}

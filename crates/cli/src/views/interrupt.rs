//! Ctrl-C: the first asks the work in flight to stop at its next check (finished work is kept),
//! the second quits at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A flag set by the first Ctrl-C. `what` says what stops, e.g. "after this epoch".
pub fn ctrl_c_flag(what: &'static str) -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::Relaxed) {
            std::process::exit(130);
        }
        eprintln!("\ninterrupt: stopping {what} (Ctrl-C again to quit now)");
    });
    stop
}

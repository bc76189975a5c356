//! An experiment on the terminal, whatever its kind: an overall bar (units done, ETA) above one
//! status line per worker, finished units and notes printed above them; one line per finished
//! unit when the output is not a terminal.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use realbias_experiments::experiment::Unit;
use realbias_experiments::progress::ExperimentProgress;

pub struct ExperimentView {
    bars: Option<(MultiProgress, ProgressBar)>,
    workers: Vec<ProgressBar>,
    total: usize,
    done: AtomicUsize,
    stop: Arc<AtomicBool>,
}

impl ExperimentView {
    pub fn new(total: usize, jobs: usize) -> Self {
        let stop = super::interrupt::ctrl_c_flag(
            "the units in flight within a mini-batch (each writes its checkpoint and resumes from it next time)",
        );
        let style = |template: &str| {
            ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
        };
        let (bars, workers) = if std::io::stdout().is_terminal() {
            let multi = MultiProgress::new();
            let overall = multi.add(ProgressBar::new(total as u64));
            overall.set_style(style(
                "{pos}/{len} {bar:40} elapsed {elapsed_precise}, eta {eta_precise}",
            ));
            let workers = (0..jobs)
                .map(|_| {
                    let bar = multi.add(ProgressBar::new_spinner());
                    bar.set_style(style("  {msg}"));
                    bar
                })
                .collect();
            (Some((multi, overall)), workers)
        } else {
            (None, Vec::new())
        };
        ExperimentView {
            bars,
            workers,
            total,
            done: AtomicUsize::new(0),
            stop,
        }
    }

    fn line(&self, text: &str) {
        match &self.bars {
            Some((multi, _)) => {
                let _ = multi.println(text);
            }
            None => println!("{text}"),
        }
    }

    /// Clears the bars before the summary is printed.
    pub fn finish(&self) {
        for w in &self.workers {
            w.finish_and_clear();
        }
        if let Some((_, overall)) = &self.bars {
            overall.finish_and_clear();
        }
    }
}

impl ExperimentProgress for ExperimentView {
    fn started(&self, worker: usize, unit: &Unit) {
        if let Some(bar) = self.workers.get(worker) {
            bar.set_message(format!("{}: starting", unit.label));
        }
    }

    fn status(&self, worker: usize, unit: &Unit, text: &str) {
        if let Some(bar) = self.workers.get(worker) {
            bar.set_message(format!("{}: {text}", unit.label));
        }
    }

    fn finished(&self, unit: &Unit, outcome: &str, skipped: bool) {
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some((_, overall)) = &self.bars {
            overall.set_position(done as u64);
        }
        if !skipped {
            self.line(&format!(
                "[{done}/{}] {}: {outcome}",
                self.total, unit.label
            ));
        }
    }

    fn note(&self, text: &str) {
        self.line(text);
    }

    fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

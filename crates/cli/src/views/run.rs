//! One run on the terminal: Burn's dashboard, or one line per epoch (with a batch progress bar
//! when the lines go to a terminal); the history is rewritten after every epoch so an
//! interruption loses nothing measured.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use indicatif::{ProgressBar, ProgressStyle};
use realbias_train::files::write_atomic;
use realbias_train::record::history_csv;
use realbias_train::state::CHECKPOINT_FILE;
use realbias_train::{EpochRecord, Progress};

use super::dashboard::TuiDashboard;

enum View {
    Dashboard(Box<TuiDashboard>),
    Bar(ProgressBar),
    Lines,
}

/// The progress of `realbias train`.
pub struct RunView {
    view: View,
    interrupted: Arc<AtomicBool>,
    out: PathBuf,
    history: Vec<EpochRecord>,
    /// Set when the history could not be written (reported once).
    write_failed: bool,
}

impl RunView {
    /// The dashboard on a terminal unless `plain`; lines otherwise.
    pub fn new(title: &str, max_epochs: usize, plain: bool, out: PathBuf) -> Self {
        let interrupted =
            super::interrupt::ctrl_c_flag("within a mini-batch, writing the checkpoint");
        let view = match (std::io::stdout().is_terminal(), plain) {
            (true, false) => View::Dashboard(Box::new(TuiDashboard::new(title, max_epochs))),
            (true, true) => {
                let bar = ProgressBar::new(1);
                bar.set_style(
                    ProgressStyle::with_template("{msg} {bar:40} {pos}/{len} batches  {per_sec}")
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                View::Bar(bar)
            }
            (false, _) => View::Lines,
        };
        RunView {
            view,
            interrupted,
            out,
            history: Vec::new(),
            write_failed: false,
        }
    }

    /// Gives the terminal back.
    pub fn finish(&mut self) {
        match std::mem::replace(&mut self.view, View::Lines) {
            View::Dashboard(d) => d.finish(),
            View::Bar(bar) => bar.finish_and_clear(),
            View::Lines => {}
        }
    }

    fn line(&self, text: String) {
        match &self.view {
            View::Bar(bar) => bar.println(text),
            _ => println!("{text}"),
        }
    }
}

impl Progress for RunView {
    fn batch(&mut self, epoch: usize, batch: usize, batches: usize) {
        match &mut self.view {
            View::Dashboard(d) => d.batch(epoch, batch, batches),
            View::Bar(bar) => {
                if batch == 1 {
                    bar.set_length(batches as u64);
                    bar.set_message(format!("epoch {epoch}"));
                }
                bar.set_position(batch as u64);
            }
            View::Lines => {}
        }
    }

    fn epoch(&mut self, record: &EpochRecord) {
        match &mut self.view {
            View::Dashboard(d) => d.epoch(record),
            _ => self.line(record.summary_line()),
        }
        self.history.push(record.clone());
        let path = self.out.join("history.csv");
        if let Err(e) = write_atomic(&path, history_csv(&self.history).as_bytes())
            && !self.write_failed
        {
            self.write_failed = true;
            self.line(format!(
                "warning: {e}; the run goes on, result.json is written at the end"
            ));
        }
    }

    fn resumed(&mut self, history: &[EpochRecord]) {
        let epoch = history.last().map_or(0, |r| r.epoch);
        match &mut self.view {
            View::Dashboard(d) => history.iter().for_each(|r| d.epoch(r)),
            _ => self.line(format!(
                "resumed at epoch {epoch} from {}",
                self.out.join(CHECKPOINT_FILE).display()
            )),
        }
        self.history = history.to_vec();
    }

    fn stop_requested(&self) -> bool {
        let from_dashboard = matches!(&self.view, View::Dashboard(d) if d.stop_requested());
        from_dashboard || self.interrupted.load(Ordering::Relaxed)
    }
}

//! One run on the terminal: Burn's dashboard (fed by the run's `Learner`), or one line per
//! epoch (with a batch progress bar when the lines go to a terminal); the history is rewritten
//! after every epoch so an interruption loses nothing measured.

use std::io::IsTerminal;
use std::path::PathBuf;

use burn::train::Interrupter;
use burn::train::renderer::MetricsRenderer;
use burn::train::renderer::tui::TuiMetricsRendererWrapper;
use indicatif::{ProgressBar, ProgressStyle};
use realbias_train::run_files::files::write_atomic;
use realbias_train::run_files::record::history_csv;
use realbias_train::run_files::state::CHECKPOINT_FILE;
use realbias_train::run_files::tensorboard::write_history_events;
use realbias_train::{EpochRecord, Progress};

enum View {
    /// Burn's dashboard draws the run from the `Learner`'s events.
    Dashboard,
    Bar(ProgressBar),
    Lines,
}

/// The progress of `realbias train`.
pub struct RunView {
    view: View,
    /// Stops the run: Ctrl-C (and SIGTERM, SIGHUP), and the dashboard's keys.
    interrupter: Interrupter,
    out: PathBuf,
    history: Vec<EpochRecord>,
    /// Set when the history could not be written (reported once).
    write_failed: bool,
    /// Rewrite the run's TensorBoard events (`tb/`) after every epoch (`train.tensorboard`).
    tensorboard: bool,
    /// What the dashboard could not show while it held the terminal ("resumed at epoch
    /// ..."): printed once it gives the terminal back.
    after_dashboard: Vec<String>,
}

impl RunView {
    /// The dashboard on a terminal unless `plain` (its renderer: [`RunView::dashboard`]);
    /// lines otherwise.
    pub fn new(plain: bool, out: PathBuf) -> Self {
        let interrupter =
            super::interrupt::ctrl_c_interrupter("within a mini-batch, writing the checkpoint");
        let view = match (std::io::stdout().is_terminal(), plain) {
            (true, false) => View::Dashboard,
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
            interrupter,
            out,
            history: Vec::new(),
            write_failed: false,
            tensorboard: false,
            after_dashboard: Vec::new(),
        }
    }

    /// Also keep the run's TensorBoard event file up to date after every epoch.
    pub fn with_tensorboard(mut self, tensorboard: bool) -> Self {
        self.tensorboard = tensorboard;
        self
    }

    /// Burn's terminal dashboard and the `Interrupter` its keys stop, when this view is one;
    /// it takes over the terminal until the run ends.
    pub fn dashboard(&self) -> Option<(Box<dyn MetricsRenderer>, Interrupter)> {
        match self.view {
            View::Dashboard => {
                let tui = TuiMetricsRendererWrapper::new(self.interrupter.clone(), None);
                Some((Box::new(tui), self.interrupter.clone()))
            }
            _ => None,
        }
    }

    /// Gives the terminal back, and prints what the dashboard held back.
    pub fn finish(&mut self) {
        if let View::Bar(bar) = std::mem::replace(&mut self.view, View::Lines) {
            bar.finish_and_clear();
        }
        for text in self.after_dashboard.drain(..) {
            println!("{text}");
        }
    }

    fn line(&self, text: String) {
        match &self.view {
            View::Bar(bar) => bar.println(text),
            View::Lines => println!("{text}"),
            View::Dashboard => {}
        }
    }
}

impl Progress for RunView {
    fn batch(&mut self, epoch: usize, batch: usize, batches: usize) {
        if let View::Bar(bar) = &mut self.view {
            if batch == 1 {
                bar.set_length(batches as u64);
                bar.set_message(format!("epoch {epoch}"));
            }
            bar.set_position(batch as u64);
        }
    }

    fn epoch(&mut self, record: &EpochRecord) {
        self.line(record.summary_line());
        self.history.push(record.clone());
        let path = self.out.join("history.csv");
        let history = history_csv(&self.history);
        let written =
            write_atomic(&path, history.as_bytes()).and_then(|()| match self.tensorboard {
                true => write_history_events(&history, &path, &self.out).map(|_| ()),
                false => Ok(()),
            });
        if let Err(e) = written
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
        let text = format!(
            "resumed at epoch {epoch} from {}",
            self.out.join(CHECKPOINT_FILE).display()
        );
        match self.view {
            // The dashboard holds the terminal: said once it gives it back.
            View::Dashboard => self.after_dashboard.push(text),
            _ => self.line(text),
        }
        self.history = history.to_vec();
    }

    fn discarded(&mut self, path: &std::path::Path, why: &str) {
        let text = format!(
            "--force: discarded {} ({why}); the run starts from epoch 0",
            path.display()
        );
        match self.view {
            // Before the launch: the dashboard does not hold the terminal yet.
            View::Dashboard => eprintln!("{text}"),
            _ => self.line(text),
        }
    }

    fn stop_requested(&self) -> bool {
        self.interrupter.should_stop()
    }
}

//! Section 3 as an experiment: matrix completion by a linear two-layer network (`W = U V`,
//! the Burn module with `activation = linear`, inputs the identity), swept over the inner
//! dimension `k`, against the convex trace-norm baselines computed from the matrix alone.
//!
//! Layout of the folder: `experiment.toml`, `fits/m<observed>-k<k>-<regime>.json` (one per
//! finished fit), `baselines.json`, `summary.csv`, `report.md`, `errors.*`, `trace-norm.*`,
//! `objective-gap.*`.

mod config;
mod figures;
mod fit;
mod report;

use std::path::{Path, PathBuf};

pub use config::{
    CompletionSpec, ConvexSpec, FactorizationConfig, FactorizationSpec, KIND, PlannedFit, Regime,
};
pub use fit::{BaselineSummary, Baselines, FitResult};
pub use report::{report_markdown, summary_csv};

use crate::ExperimentError;
use crate::experiment::{Context, Experiment, Finalized, Unit, UnitOutcome};
use crate::store::{cached, read_results, save, save_texts};

/// Section 3 as an [`Experiment`].
pub struct Factorization {
    config: FactorizationConfig,
    /// One completion problem with its convex solutions per observed count, after `prepare`.
    settings: Vec<fit::Setting>,
}

impl Factorization {
    pub fn new(config: FactorizationConfig) -> Self {
        Factorization {
            config,
            settings: Vec::new(),
        }
    }

    pub fn config(&self) -> &FactorizationConfig {
        &self.config
    }

    /// The saved fits and baselines of a folder, and the unreadable fit files.
    pub fn load_results(&self, dir: &Path) -> (Vec<FitResult>, Vec<Baselines>, Vec<String>) {
        let paths: Vec<PathBuf> = self.config.plan().iter().map(|p| p.path(dir)).collect();
        let (fits, broken) = read_results::<FitResult>(&paths);
        let baselines = cached::<Vec<Baselines>>(&dir.join("baselines.json")).unwrap_or_default();
        (fits.into_iter().flatten().collect(), baselines, broken)
    }
}

fn baseline_note(b: &Baselines) -> String {
    format!(
        "m = {}: trace-norm solution (λ = {}) objective {:.6} (gap {:.1e}, rank {}), min-trace-norm interpolant ‖W‖_tr = {:.4} (gap {:.1e}, held-out RMSE {:.4}); truth ‖M‖_tr = {:.4}",
        b.observed,
        b.lambda,
        b.regularized.objective,
        b.regularized.relative_gap,
        b.regularized.numerical_rank,
        b.interpolant.objective,
        b.interpolant.relative_gap,
        b.interpolant.held_out_rmse,
        b.truth_trace_norm
    )
}

impl Experiment for Factorization {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn config_toml(&self) -> Result<String, ExperimentError> {
        crate::store::config_text(&self.config.name, &self.config)
    }

    fn plan(&self, dir: &Path) -> Vec<Unit> {
        Unit::uniform(self.config.plan().iter().map(|f| (f.label(), f.path(dir))))
    }

    fn finished(&self, unit: &Unit) -> Option<String> {
        cached::<FitResult>(&unit.result).map(|r| report::outcome(&r))
    }

    fn stale(&self, _unit: &Unit, config_changed: bool) -> bool {
        // A fit's file does not record the config that made it.
        config_changed
    }

    fn load(&mut self, _ctx: &Context) -> Result<(), ExperimentError> {
        Ok(()) // the problem is generated from the config: nothing to read
    }

    fn prepare(&mut self, ctx: &Context) -> Result<(), ExperimentError> {
        let mut settings = Vec::new();
        for &observed in &self.config.problem.observed {
            let setting = fit::setting(&self.config, observed)?;
            ctx.progress.note(&baseline_note(&setting.baselines));
            settings.push(setting);
        }
        let baselines: Vec<&Baselines> = settings.iter().map(|s| &s.baselines).collect();
        save(&ctx.dir.join("baselines.json"), &baselines)?;
        self.settings = settings;
        Ok(())
    }

    fn run_unit(
        &self,
        unit: &Unit,
        _worker: usize,
        ctx: &Context,
    ) -> Result<UnitOutcome, ExperimentError> {
        let planned = self.config.plan()[unit.index];
        let setting = self
            .settings
            .iter()
            .find(|s| s.baselines.observed == planned.observed)
            .ok_or_else(|| ExperimentError::Encode {
                path: unit.result.clone(),
                message: "no convex baseline for this observed count".into(),
            })?;
        let stop = || ctx.progress.stop_requested();
        let Some(r) = ExperimentError::unless_interrupted(fit::fit(
            &self.config,
            &planned,
            setting,
            ctx.device,
            &stop,
        ))?
        else {
            return Ok(UnitOutcome::Interrupted);
        };
        save(&unit.result, &r)?;
        Ok(UnitOutcome::Finished(report::outcome(&r)))
    }

    fn finalize(&self, dir: &Path) -> Result<Finalized, ExperimentError> {
        let (fits, baselines, broken) = self.load_results(dir);
        if fits.is_empty() {
            return Err(ExperimentError::NothingFinished {
                dir: dir.to_path_buf(),
                broken,
            });
        }
        let texts = vec![
            (dir.join("summary.csv"), summary_csv(&fits)),
            (
                dir.join("report.md"),
                report_markdown(&self.config.name, &fits, &baselines),
            ),
        ];
        let mut finalized = Finalized {
            files: save_texts(texts)?,
            skipped: broken,
            warnings: Vec::new(),
        };
        figures::draw(dir, &fits, &baselines, &mut finalized)?;
        Ok(finalized)
    }

    fn report(&self, dir: &Path) -> Result<String, ExperimentError> {
        let (fits, baselines, _) = self.load_results(dir);
        Ok(report_markdown(&self.config.name, &fits, &baselines))
    }
}

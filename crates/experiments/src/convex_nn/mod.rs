//! Section 4 as an experiment: Theorem 1 and Corollary 1 checked against the certified
//! optimum of the convex neural net.
//!
//! For each input dimension `d`: the convex program (exact patterns for `d = 2`, sampled for
//! larger `d`, then an upper bound), and the weight-decay network (eq. 4, the Burn module with
//! `k = 1`, full-batch gradient descent) over `H` and several initializations. For `d = 2`,
//! Theorem 1 directly: eq. (4) and eq. (5) (proximal gradient, `‖u_h‖ ≤ 1`) from the same
//! start, for squared and logistic loss.
//!
//! Folder: `experiment.toml`, `fits/*.json`, `convex.json`, `summary.csv`, `theorem1.csv`,
//! `report.md`, `corollary.*`, `training.*`, `function.*`, `selecting.*`.

mod config;
mod figures;
mod fit;
mod report;

use std::path::{Path, PathBuf};

pub use config::{
    ConvexNnConfig, Formulation, KIND, NetworkSpec, PlannedFit, ProblemSpec, SelectingSpec,
    Theorem1Spec,
};
pub use fit::{ConvexSummary, FitResult, SelectingRow};
pub use report::{
    CorollaryRow, Theorem1Row, corollary_rows, report_markdown, summary_csv, theorem1_rows,
};

use crate::ExperimentError;
use crate::experiment::{Context, Experiment, Finalized, Unit, UnitOutcome};
use crate::store::{cached, read_results, save, save_texts};

/// Section 4 as an [`Experiment`].
pub struct ConvexNn {
    config: ConvexNnConfig,
    /// The convex program of each dimension, after `prepare`.
    solved: Vec<ConvexSummary>,
}

impl ConvexNn {
    pub fn new(config: ConvexNnConfig) -> Self {
        ConvexNn {
            config,
            solved: Vec::new(),
        }
    }

    pub fn config(&self) -> &ConvexNnConfig {
        &self.config
    }

    /// The saved fits and convex programs of a folder, and the unreadable fit files.
    pub fn load_results(&self, dir: &Path) -> (Vec<FitResult>, Vec<ConvexSummary>, Vec<String>) {
        let paths: Vec<PathBuf> = self.config.plan().iter().map(|p| p.path(dir)).collect();
        let (fits, broken) = read_results::<FitResult>(&paths);
        let convex = cached::<Vec<ConvexSummary>>(&dir.join("convex.json")).unwrap_or_default();
        (fits.into_iter().flatten().collect(), convex, broken)
    }

    fn optimum(&self, d: usize) -> Option<f64> {
        self.solved.iter().find(|c| c.d == d).map(|c| c.objective)
    }
}

fn convex_note(c: &ConvexSummary) -> String {
    format!(
        "d = {}: convex optimum {:.8} ({} patterns, {}; Clarabel {} in {} iterations, primal {:.8} / dual {:.8}; max constraint violation {:.1e}; {} active units)",
        c.d,
        c.objective,
        c.patterns,
        if c.exact {
            "all of them: certified"
        } else {
            "sampled: an upper bound"
        },
        c.status,
        c.iterations,
        c.solver_primal,
        c.solver_dual,
        c.max_violation,
        c.active_units
    )
}

impl Experiment for ConvexNn {
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
        let r = cached::<FitResult>(&unit.result)?;
        Some(report::outcome(&r, self.optimum(r.d)))
    }

    fn stale(&self, _unit: &Unit, config_changed: bool) -> bool {
        // A fit's file does not record the config that made it.
        config_changed
    }

    fn load(&mut self, _ctx: &Context) -> Result<(), ExperimentError> {
        Ok(()) // the toy problem is generated from the config: nothing to read
    }

    fn prepare(&mut self, ctx: &Context) -> Result<(), ExperimentError> {
        let mut solved = Vec::new();
        for &d in &self.config.problem.dims {
            let c = fit::convex(&self.config, d)?;
            ctx.progress.note(&convex_note(&c));
            solved.push(c);
        }
        save(&ctx.dir.join("convex.json"), &solved)?;
        self.solved = solved;
        Ok(())
    }

    fn run_unit(
        &self,
        unit: &Unit,
        _worker: usize,
        ctx: &Context,
    ) -> Result<UnitOutcome, ExperimentError> {
        let planned = self.config.plan()[unit.index];
        let stop = || ctx.progress.stop_requested();
        let Some(r) = ExperimentError::unless_interrupted(fit::fit(
            &self.config,
            &planned,
            ctx.device,
            &stop,
        ))?
        else {
            return Ok(UnitOutcome::Interrupted);
        };
        save(&unit.result, &r)?;
        Ok(UnitOutcome::Finished(report::outcome(
            &r,
            self.optimum(planned.d),
        )))
    }

    fn finalize(&self, dir: &Path) -> Result<Finalized, ExperimentError> {
        let (fits, convex, broken) = self.load_results(dir);
        if fits.is_empty() {
            return Err(ExperimentError::NothingFinished {
                dir: dir.to_path_buf(),
                broken,
            });
        }
        let rows = corollary_rows(&fits, &convex);
        let theorem = theorem1_rows(&self.config, &fits);
        let texts = vec![
            (dir.join("summary.csv"), summary_csv(&rows)),
            (dir.join("theorem1.csv"), report::theorem1_csv(&theorem)),
            (
                dir.join("report.md"),
                report_markdown(&self.config, &rows, &theorem, &convex),
            ),
        ];
        let mut finalized = Finalized {
            files: save_texts(texts)?,
            skipped: broken,
            warnings: Vec::new(),
        };
        figures::draw(&self.config, dir, &fits, &convex, &rows, &mut finalized)?;
        Ok(finalized)
    }

    fn report(&self, dir: &Path) -> Result<String, ExperimentError> {
        let (fits, convex, _) = self.load_results(dir);
        let rows = corollary_rows(&fits, &convex);
        let theorem = theorem1_rows(&self.config, &fits);
        Ok(report_markdown(&self.config, &rows, &theorem, &convex))
    }
}

//! The tables of Section 3: `summary.csv` (one row per fit) and `report.md`.

use super::config::Regime;
use super::fit::{Baselines, FitResult};

pub fn outcome(r: &FitResult) -> String {
    let gap = r
        .objective_gap
        .map_or(String::new(), |g| format!(", objective gap {g:.1e}"));
    format!(
        "train RMSE {:.4}, held-out RMSE {:.4}, ‖W‖_tr {:.3}, eff. rank {:.2}{gap}, distance to convex {:.1e} ({} iterations, {:.1} s)",
        r.observed_rmse,
        r.held_out_rmse,
        r.trace_norm,
        r.effective_rank,
        r.distance_to_convex,
        r.iterations,
        r.seconds
    )
}

fn opt(x: Option<f64>) -> String {
    x.map_or(String::new(), |v| format!("{v:.6e}"))
}

/// `summary.csv`: one row per fit.
pub fn summary_csv(fits: &[FitResult]) -> String {
    let mut s = String::from(
        "observed,inner,regime,init_scale,lambda,iterations,converged,observed_rmse,held_out_rmse,trace_norm,effective_rank,numerical_rank,factor_cost,objective,convex_objective,objective_gap,distance_to_convex\n",
    );
    for r in fits {
        let (regime, init, lambda) = match r.regime {
            Regime::Unregularized { init_scale } => ("unregularized", init_scale, 0.0),
            Regime::Penalized { lambda, init_scale } => ("penalized", init_scale, lambda),
        };
        s.push_str(&format!(
            "{},{},{regime},{init},{lambda},{},{},{:.6e},{:.6e},{:.6e},{:.4},{},{:.6e},{},{},{},{:.6e}\n",
            r.observed,
            r.inner,
            r.iterations,
            r.converged,
            r.observed_rmse,
            r.held_out_rmse,
            r.trace_norm,
            r.effective_rank,
            r.numerical_rank,
            r.factor_cost,
            opt(r.objective),
            opt(r.convex_objective),
            opt(r.objective_gap),
            r.distance_to_convex
        ));
    }
    s
}

/// `report.md`: the baselines and one table per observed set.
pub fn report_markdown(name: &str, fits: &[FitResult], baselines: &[Baselines]) -> String {
    let mut s = format!(
        "# {name}\n\nRMSE = root-mean-square error on the observed (train) and held-out (test) entries; the truth has RMS entry 1.\n"
    );
    for b in baselines {
        s.push_str(&format!(
            "\n## {} observed entries\n\n| convex baseline | objective | certified gap | ‖W‖_tr | eff. rank | rank | train RMSE | test RMSE |\n|---|---|---|---|---|---|---|---|\n",
            b.observed
        ));
        for (label, c) in [
            (format!("min L(W) + {}‖W‖_tr", b.lambda), &b.regularized),
            ("min ‖W‖_tr s.t. W = M on Ω".to_string(), &b.interpolant),
        ] {
            s.push_str(&format!(
                "| {label} | {:.6} | {:.1e} | {:.4} | {:.2} | {} | {:.4} | {:.4} |\n",
                c.objective,
                c.relative_gap,
                c.trace_norm,
                c.effective_rank,
                c.numerical_rank,
                c.observed_rmse,
                c.held_out_rmse
            ));
        }
        s.push_str(&format!(
            "\nThe truth: ‖M‖_tr = {:.4}.\n\n| k | fit | train RMSE | test RMSE | ‖W‖_tr | ½(‖U‖²+‖V‖²) | eff. rank | objective gap | distance to convex | iterations |\n|---|---|---|---|---|---|---|---|---|---|\n",
            b.truth_trace_norm
        ));
        for r in fits.iter().filter(|r| r.observed == b.observed) {
            s.push_str(&format!(
                "| {} | {} | {:.4} | {:.4} | {:.4} | {:.4} | {:.2} | {} | {:.1e} | {}{} |\n",
                r.inner,
                r.regime.label(),
                r.observed_rmse,
                r.held_out_rmse,
                r.trace_norm,
                r.factor_cost,
                r.effective_rank,
                r.objective_gap.map_or("".into(), |g| format!("{g:.1e}")),
                r.distance_to_convex,
                r.iterations,
                if r.converged { "" } else { " (cap)" }
            ));
        }
    }
    s.push_str("\nObjective gap: (factorized − convex optimum) / convex optimum, penalized fits. Distance: ‖W − W*‖_F/‖W*‖_F to the trace-norm regularized solution (penalized fits) or to the minimum-trace-norm interpolant (unregularized fits). (cap): stopped at optim.max_iterations.\n");
    s
}

//! The paper's theory made runnable, without Burn (it builds and tests in seconds).
//!
//! - [`trace`]: the trace norm and eq. (3), `‖W‖_tr = min_{W = A Bᵀ} ½(‖A‖² + ‖B‖²)`.
//! - [`completion`]: Section 3's matrix-completion problem and its convex baselines, the
//!   trace-norm regularized solution and the minimum-trace-norm interpolant, both with
//!   duality-gap certificates.
//! - [`network`]: a two-layer network's loss and gradient as an oracle, the optimizers of
//!   eq. (4) (weight decay) and eq. (5) (`ℓ1` on `v`, `‖u_h‖ ≤ 1`), and Theorem 1's rescaling.
//! - [`convex_nn`]: the convex neural net (eq. 8) for squared loss as the exact group-lasso
//!   program over activation patterns (Pilanci & Ergen, 2020), solved by Clarabel.
//!
//! Matrices of network weights use the model crate's layout: `U` is `d x H` row-major (column
//! `h` is unit `h`'s input weights) and `V` is `H x k` row-major.

pub mod completion;
pub mod convex_nn;
pub mod network;
pub mod trace;

/// Errors of the theory crate.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum TheoryError {
    #[error("invalid problem: {0}")]
    InvalidProblem(String),
    #[error("the SVD of a {rows}x{cols} matrix did not converge")]
    Svd { rows: usize, cols: usize },
    #[error("the conic solver could not be set up: {0}")]
    SolverSetup(String),
    #[error("the conic solver stopped with status {status} (primal {primal:.6e}, dual {dual:.6e})")]
    SolverFailed {
        status: String,
        primal: f64,
        dual: f64,
    },
    #[error("the optimization diverged at iteration {iteration} (objective {objective})")]
    Diverged { iteration: usize, objective: f64 },
    #[error("stopped on request")]
    Interrupted,
}

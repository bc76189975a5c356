//! The trace norm (nuclear norm) and its factorization characterization, eq. (3).

use nalgebra::{DMatrix, DVector};

use crate::TheoryError;

/// Singular values (descending) and the thin SVD factors `W = P diag(σ) Qᵀ`.
pub struct Svd {
    pub p: DMatrix<f64>,
    pub sigma: DVector<f64>,
    pub q: DMatrix<f64>,
}

/// The thin SVD, singular values sorted in descending order, computed by faer.
///
/// Not nalgebra's: nalgebra 0.34.2's SVD returned decompositions with up to 32% reconstruction
/// error on low-rank and masked 30x30 matrices of exactly the kind matrix completion feeds it,
/// where faer's stayed below 1e-14 (crates/theory/README.md). The result is still checked: a
/// decomposition that does not reproduce `w` is an error, never silently wrong numbers.
pub fn svd(w: &DMatrix<f64>) -> Result<Svd, TheoryError> {
    let (rows, cols) = (w.nrows(), w.ncols());
    let err = TheoryError::Svd { rows, cols };
    let m = faer::Mat::<f64>::from_fn(rows, cols, |i, j| w[(i, j)]);
    let s = m.thin_svd().map_err(|_| err.clone())?;
    let (u, v, sigma) = (s.U(), s.V(), s.S().column_vector());
    let r = sigma.nrows();
    let mut order: Vec<usize> = (0..r).collect();
    order.sort_by(|&a, &b| sigma[b].total_cmp(&sigma[a]));
    let p = DMatrix::from_fn(rows, r, |i, j| u[(i, order[j])]);
    let q = DMatrix::from_fn(cols, r, |i, j| v[(i, order[j])]);
    let sigma = DVector::from_fn(r, |j, _| sigma[order[j]]);
    let back = &p * DMatrix::from_diagonal(&sigma) * q.transpose();
    if (back - w).norm() > 1e-9 * (1.0 + w.norm()) {
        return Err(err);
    }
    Ok(Svd { p, sigma, q })
}

/// `‖W‖_tr`, the sum of singular values.
pub fn trace_norm(w: &DMatrix<f64>) -> Result<f64, TheoryError> {
    Ok(svd(w)?.sigma.sum())
}

/// The largest singular value.
pub fn spectral_norm(w: &DMatrix<f64>) -> Result<f64, TheoryError> {
    Ok(svd(w)?.sigma.max())
}

/// `½(‖A‖_F² + ‖B‖_F²)`, the cost of the factorization `W = A Bᵀ` in eq. (3).
pub fn factor_cost(a: &DMatrix<f64>, b: &DMatrix<f64>) -> f64 {
    0.5 * (a.norm_squared() + b.norm_squared())
}

/// The balanced factorization `A = P √Σ`, `B = Q √Σ` of `W = A Bᵀ`, with inner dimension
/// `rank(W)` (singular values below `1e-12·σ₁` dropped). It attains eq. (3)'s minimum.
pub fn balanced_factors(w: &DMatrix<f64>) -> Result<(DMatrix<f64>, DMatrix<f64>), TheoryError> {
    let s = svd(w)?;
    let top = s.sigma.iter().copied().fold(0.0, f64::max);
    let r = s.sigma.iter().filter(|&&x| x > 1e-12 * top).count().max(1);
    let root = DMatrix::from_diagonal(&s.sigma.rows(0, r).map(f64::sqrt));
    Ok((s.p.columns(0, r) * &root, s.q.columns(0, r) * &root))
}

/// Singular value thresholding, the proximal map of `τ‖·‖_tr`: `P max(Σ − τ, 0) Qᵀ`.
pub fn singular_value_threshold(w: &DMatrix<f64>, tau: f64) -> Result<DMatrix<f64>, TheoryError> {
    let s = svd(w)?;
    let shrunk = s.sigma.map(|x| (x - tau).max(0.0));
    let r = shrunk.iter().filter(|&&x| x > 0.0).count();
    if r == 0 {
        return Ok(DMatrix::zeros(w.nrows(), w.ncols()));
    }
    let scaled = s.p.columns(0, r) * DMatrix::from_diagonal(&shrunk.rows(0, r));
    Ok(scaled * s.q.columns(0, r).transpose())
}

/// Rank measures of a learned matrix.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RankMeasures {
    /// `exp(entropy of σ/Σσ)` (Roy & Vetterli, 2007): 1 for a rank-one matrix, `r` for `r`
    /// equal singular values, and continuous in between.
    pub effective_rank: f64,
    /// Singular values above `1e-3·σ₁`.
    pub numerical_rank: usize,
    pub trace_norm: f64,
    pub spectral_norm: f64,
}

pub fn rank_measures(w: &DMatrix<f64>) -> Result<RankMeasures, TheoryError> {
    let s = svd(w)?;
    let total: f64 = s.sigma.sum();
    let top = s.sigma.iter().copied().fold(0.0, f64::max);
    let entropy: f64 = if total > 0.0 {
        s.sigma
            .iter()
            .map(|&x| x / total)
            .filter(|&p| p > 0.0)
            .map(|p| -p * p.ln())
            .sum()
    } else {
        0.0
    };
    Ok(RankMeasures {
        effective_rank: if total > 0.0 { entropy.exp() } else { 0.0 },
        numerical_rank: s.sigma.iter().filter(|&&x| x > 1e-3 * top).count(),
        trace_norm: total,
        spectral_norm: top,
    })
}

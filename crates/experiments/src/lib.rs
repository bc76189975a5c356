//! The experiments of realbias, each a kind of [`experiment::Experiment`]: width sweeps
//! (Figures 1 and 2, [`sweep`]), Section 3's matrix factorization ([`factorization`]) and
//! Section 4's convex neural net ([`convex_nn`]).
//!
//! Every kind plans units of work, runs one unit, and finalizes tables and figures; the
//! [`experiment`] driver does the rest for all of them (folder claims, resume, `--jobs`
//! workers, most expensive first, `--shard I/N`, one lock per unit so several processes can share
//! a folder: [`shard`], [`lock`]). [`registry`] is the only place that names every kind,
//! [`store`] the one result store, [`chart`] the one chart engine.

pub mod chart;
pub mod convex_nn;
mod error;
pub mod experiment;
pub mod factorization;
mod kendall;
pub mod lock;
pub mod oracle;
pub mod progress;
pub mod registry;
pub mod shard;
pub mod store;
pub mod sweep;
pub mod text;
mod unit;

pub use error::ExperimentError;
pub use experiment::{Experiment, ExperimentOptions};

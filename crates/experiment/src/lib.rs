//! Training, sweeps and the command line of realbias: the experiments of Neyshabur, Tomioka &
//! Srebro (2015) on Burn.

pub mod backend;
pub mod bench;
pub mod chart;
pub mod config;
pub mod convex_nn;
pub mod dashboard;
pub mod experiment;
pub mod factorization;
pub mod fused;
pub mod optim;
pub mod oracle;
pub mod output;
pub mod plot;
pub mod preview;
pub mod study;
pub mod summary;
pub mod sweep;
pub mod train;

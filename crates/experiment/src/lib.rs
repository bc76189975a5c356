//! Training, sweeps and the command line of realbias: the experiments of Neyshabur, Tomioka &
//! Srebro (2015) on Burn.

pub mod backend;
pub mod config;
pub mod dashboard;
pub mod experiment;
pub mod optim;
pub mod output;
pub mod plot;
pub mod preview;
pub mod summary;
pub mod sweep;
pub mod train;

//! One file per command.

pub mod bench;
pub mod data;
pub mod inspect;
pub mod run;
pub mod slurm;
pub mod status;
pub mod tensorboard;
pub mod train;

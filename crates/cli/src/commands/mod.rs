//! One file per command.

pub mod bench;
pub mod data;
pub mod inspect;
pub mod run;
pub mod train;

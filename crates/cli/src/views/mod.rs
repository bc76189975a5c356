//! What the terminal shows: Burn's dashboard or epoch lines for one run, progress bars for an
//! experiment, and the one Ctrl-C flag every command stops by.

pub mod experiment;
pub mod interrupt;
pub mod run;

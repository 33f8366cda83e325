//! One file per command: the glue from its parsed arguments to the library and the run files.

pub mod bench;
pub mod data;
pub mod eval;
pub mod export;
pub mod plot;
pub mod train;

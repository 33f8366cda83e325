//! The demos, one file each: regression, generation (Gaussian mixture and alphabet) and the
//! Train tab.

pub mod generation;
pub mod regression;
pub mod train;

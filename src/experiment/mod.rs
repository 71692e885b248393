//! Presets, sweeps, run directories and the results table.
pub mod preset;
pub mod results;

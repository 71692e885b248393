//! Presets, sweeps, run directories and the results table.
pub mod assets;
mod load;
pub mod preset;
pub mod results;
pub mod rundir;
pub mod sweep;
pub mod table;

//! The trainer (on its own thread), optimizer, schedule, metrics and checkpoints.
pub mod events;
pub mod metrics;
pub mod optim;
pub mod schedule;

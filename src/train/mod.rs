//! The trainer (on its own thread), optimizer, schedule and checkpoints.
pub mod checkpoint;
pub mod evaluate;
pub mod events;
pub mod optim;
pub mod prepare;
pub mod schedule;
pub mod trainer;
pub mod update;

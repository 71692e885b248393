//! sift-tui: a terminal console for robust (adversarial) fine-tuning research on Candle.
//!
//! The crate is laid out along the architecture:
//! - [`metrics`]: the vocabulary every layer shares: metrics, scores, the scored split and the
//!   lines of `metrics.jsonl`;
//! - [`model`]: tokenizers, the trainable BERT / DeBERTa encoders, heads and checkpoint loading;
//! - `method`: the fine-tuning methods (standard, R3F, SMART, ALUM, SiFT, FreeLB) behind one trait;
//! - [`data`]: dataset readers, label maps, splits and batching;
//! - [`train`]: the trainer thread, optimizer, schedule and checkpoints;
//! - `experiment`: presets, sweeps, run directories and the results table;
//! - [`plot`]: the SVG figures of a runs directory, and the curve transforms the console shares;
//! - [`ui`]: the ratatui console, which talks to the trainer through channels only;
//! - [`cli`]: the command-line entry points.
pub mod atomic;
pub mod cli;
pub mod data;
pub mod experiment;
pub mod method;
pub mod metrics;
pub mod model;
pub mod plot;
pub mod report;
pub mod rng;
pub mod train;
pub mod ui;

//! sift-tui: a terminal console for robust (adversarial) fine-tuning research on Candle.
//!
//! The crate is laid out along the architecture, each layer importing only those below it:
//! - [`cli`]: the command-line entry points;
//! - [`ui`]: the ratatui console, which talks to the trainer through channels only;
//! - [`plot`]: the SVG figures of a runs directory, and the curve transforms the console shares;
//! - [`train`]: the trainer thread, optimizer, schedule and checkpoints;
//! - `experiment`: presets, sweeps, run directories and the results table;
//! - `method`: the fine-tuning methods (standard, R3F, SMART, ALUM, SiFT, FreeLB) behind one trait;
//! - [`data`]: dataset readers, label maps, splits and batching;
//! - [`model`]: tokenizers, the trainable BERT / DeBERTa encoders, heads and checkpoint loading;
//! - [`metrics`], below them all: the shared vocabulary of metrics, scores, the scored split and the
//!   lines of `metrics.jsonl`.
pub mod atomic;
pub mod cli;
pub mod data;
pub mod download;
pub mod experiment;
pub mod method;
pub mod metrics;
pub mod model;
pub mod plot;
pub mod report;
pub mod rng;
pub mod signals;
pub mod train;
pub mod ui;

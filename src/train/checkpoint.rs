//! Resumable checkpoints: weights, optimizer moments, method state (one safetensors file, with a
//! checksum of its data) and the trainer's position, sampler, RNG and partial results (one JSON
//! file, written last, so a checkpoint exists only once both are complete). Both are written
//! atomically; SIGKILL at any moment leaves the previous checkpoint loadable, and a checkpoint
//! damaged later fails its checksum, so loading falls back to the one before it.
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::update::LossScale;
use crate::data::EpochSampler;
use crate::experiment::results::ColumnResult;
use crate::metrics::Scores;
use crate::rng::Rng;

/// How many resumable checkpoints to keep (older ones are deleted once a newer one is complete).
const KEEP: usize = 2;

/// The best dev score of stage 1 so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Best {
    pub value: f64,
    pub step: usize,
    pub scores: Scores,
}

/// Everything but the tensors that a resumed run needs to continue exactly.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainState {
    pub stage_index: usize,
    /// False at a stage boundary: the stage starts fresh from the selected weights.
    pub stage_started: bool,
    /// Updates done in this stage.
    pub step: usize,
    pub optimizer_steps: usize,
    pub sampler: EpochSampler,
    pub rng: Rng,
    pub best: Option<Best>,
    pub bad_in_row: usize,
    /// The f16 loss-scaling state of the stage's updater (none in f32 and bf16, and in checkpoints
    /// written before mixed precision).
    #[serde(default)]
    pub loss_scale: Option<LossScale>,
    pub columns: Vec<ColumnResult>,
    pub elapsed_secs: f64,
}

pub struct Checkpoint {
    pub state: TrainState,
    pub tensors: HashMap<String, Tensor>,
    pub path: PathBuf,
}

fn stem(stage_index: usize, step: usize) -> String {
    format!("ckpt-{stage_index:02}-{step:07}")
}

/// Writes a checkpoint into `dir` and prunes old ones; returns the path of its tensor file.
pub fn save(dir: &Path, state: &TrainState, tensors: &HashMap<String, Tensor>) -> anyhow::Result<PathBuf> {
    let stem = stem(state.stage_index, state.step);
    let tensor_path = dir.join(format!("{stem}.safetensors"));
    crate::atomic::write_safetensors(&tensor_path, tensors)?;
    let json = serde_json::to_vec_pretty(state).context("serialising the trainer state")?;
    crate::atomic::write(&dir.join(format!("{stem}.json")), &json)?;
    for old in list(dir).into_iter().rev().skip(KEEP) {
        let _ = std::fs::remove_file(old.with_extension("safetensors"));
        let _ = std::fs::remove_file(&old);
    }
    Ok(tensor_path)
}

/// Whether `dir` holds any checkpoint to resume from.
pub fn any(dir: &Path) -> bool {
    !list(dir).is_empty()
}

/// The state files in `dir`, oldest first (names sort by stage, then step).
fn list(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.starts_with("ckpt-") && name.ends_with(".json")
        })
        .collect();
    found.sort();
    found
}

/// The newest checkpoint that loads completely; damaged newer ones are reported and skipped.
pub fn load_latest(dir: &Path, device: &Device, warn: &mut dyn FnMut(String)) -> anyhow::Result<Option<Checkpoint>> {
    for json in list(dir).into_iter().rev() {
        match load(&json, device) {
            Ok(checkpoint) => return Ok(Some(checkpoint)),
            Err(e) => warn(format!("skipping damaged checkpoint: {e:#}")),
        }
    }
    Ok(None)
}

fn load(json: &Path, device: &Device) -> anyhow::Result<Checkpoint> {
    let text = std::fs::read(json).with_context(|| format!("{}: cannot read", json.display()))?;
    let state: TrainState = serde_json::from_slice(&text).with_context(|| format!("{}: corrupt", json.display()))?;
    let path = json.with_extension("safetensors");
    let tensors = crate::atomic::read_safetensors(&path, device)?;
    Ok(Checkpoint { state, tensors, path })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(step: usize) -> TrainState {
        TrainState {
            stage_index: 0,
            stage_started: true,
            step,
            optimizer_steps: step,
            sampler: EpochSampler::new(8, 2, 1, false),
            rng: crate::rng::stream(1, 1),
            best: None,
            bad_in_row: 0,
            loss_scale: None,
            columns: Vec::new(),
            elapsed_secs: 0.0,
        }
    }

    /// 64 KiB overwritten inside the newest checkpoint's tensor data (which still parses): the
    /// checksum fails, a warning says so, and the previous checkpoint is loaded.
    #[test]
    fn a_damaged_newest_checkpoint_falls_back_to_the_previous_one() {
        let dir = tempfile::tempdir().unwrap();
        let weights = Tensor::arange(0f32, 65_536f32, &Device::Cpu).unwrap();
        let tensors = HashMap::from([("model.w".to_string(), weights)]);
        save(dir.path(), &state(5), &tensors).unwrap();
        let newest = save(dir.path(), &state(10), &tensors).unwrap();
        let mut bytes = std::fs::read(&newest).unwrap();
        let end = bytes.len() - 1024;
        bytes[end - 65_536..end].fill(0x7f);
        std::fs::write(&newest, bytes).unwrap();

        let mut warnings = Vec::new();
        let loaded = load_latest(dir.path(), &Device::Cpu, &mut |w| warnings.push(w)).unwrap().unwrap();
        assert_eq!(loaded.state.step, 5);
        assert_eq!(loaded.tensors["model.w"].to_vec1::<f32>().unwrap()[65_535], 65_535.0);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains("ckpt-00-0000010.safetensors") && warnings[0].contains("checksum"),
            "{warnings:?}"
        );
    }
}

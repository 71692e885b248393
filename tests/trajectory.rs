//! Training fidelity: twenty updates of the trainer's own update (`train::update::Updater`: AdamW with
//! its weight-decay groups, clipping, the warm-up schedule) from the same weights on the same batches
//! reproduce PyTorch + transformers (`scripts/make_trajectories.py`): the loss, logits and gradient norm
//! of every update, the learning rates, and the loss and logits of a probe batch after the last update.
//! Dropout is off on both sides, so the two runs are deterministic and comparable step by step.
mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde::Deserialize;
use sift_tui::data::Batch;
use sift_tui::method::standard::Standard;
use sift_tui::method::Progress;
use sift_tui::model::config::ModelConfig;
use sift_tui::model::resolve::weights_file;
use sift_tui::model::weights::Checkpoint;
use sift_tui::model::{Classifier, Ctx, Inputs};
use sift_tui::train::optim::AdamWConfig;
use sift_tui::train::schedule::LinearSchedule;
use sift_tui::train::update::Updater;

/// `<name>.json` beside the recorded tensors: the recipe of the reference run.
#[derive(Debug, Deserialize)]
struct Settings {
    updates: usize,
    num_labels: usize,
    lr: f64,
    warmup_ratio: f64,
    warmup_steps: usize,
    weight_decay: f64,
    grad_clip: f64,
    betas: [f64; 2],
    eps: f64,
}

/// Relative tolerance of the loss at every update and after the last. The two sides agree to about
/// 2e-7 (f32 rounding); a parameter in the wrong weight-decay group moves the tiny fixtures' losses
/// and logits well past these bounds.
const LOSS_RTOL: f32 = 1e-5;
/// Absolute tolerance of the logits (observed: at most 3e-7).
const LOGITS_ATOL: f32 = 5e-6;

fn trajectory(name: &str) -> (HashMap<String, Tensor>, Settings) {
    let dir = common::fixtures().join("trajectories");
    let tensors = candle_core::safetensors::load(dir.join(format!("{name}.safetensors")), &Device::Cpu).unwrap();
    let settings = serde_json::from_str(&std::fs::read_to_string(dir.join(format!("{name}.json"))).unwrap()).unwrap();
    (tensors, settings)
}

/// The model as the reference starts it: the checkpoint, the head the reference initialised where
/// the checkpoint lacks one (`init.*`), and every dropout probability set to 0.
fn load(model_dir: &Path, recorded: &HashMap<String, Tensor>, num_labels: usize) -> Classifier {
    let mut config = ModelConfig::from_file(&model_dir.join("config.json")).unwrap();
    match &mut config {
        ModelConfig::Bert(c) => {
            c.common.hidden_dropout_prob = 0.0;
            c.common.attention_probs_dropout_prob = 0.0;
            c.classifier_dropout = Some(0.0);
        }
        ModelConfig::Deberta(c) | ModelConfig::DebertaV2(c) => {
            c.common.hidden_dropout_prob = 0.0;
            c.common.attention_probs_dropout_prob = 0.0;
            c.pooler_dropout = 0.0;
            c.cls_dropout = Some(0.0);
        }
    }
    let weights = weights_file(model_dir).unwrap();
    let mut tensors: Vec<(String, Tensor)> =
        candle_core::safetensors::load(&weights, &Device::Cpu).unwrap().into_iter().collect();
    tensors.extend(recorded.iter().filter_map(|(k, v)| Some((k.strip_prefix("init.")?.to_string(), v.clone()))));
    let checkpoint = Checkpoint::from_tensors(&weights, tensors);
    Classifier::from_checkpoint(config, checkpoint, num_labels, &Device::Cpu, DType::F32, 0).unwrap()
}

fn batch(recorded: &HashMap<String, Tensor>, index: usize) -> Batch {
    let get = |name: &str| recorded[name].get(index).unwrap().to_dtype(DType::U32).unwrap();
    let input_ids = get("input_ids");
    Batch {
        inputs: Inputs {
            token_type_ids: input_ids.zeros_like().unwrap(),
            input_ids,
            attention_mask: get("attention_mask"),
        },
        labels: get("labels"),
    }
}

fn relative(ours: f32, theirs: f32) -> f32 {
    (ours - theirs).abs() / theirs.abs().max(1e-6)
}

fn logits(model: &Classifier, inputs: &Inputs) -> Tensor {
    model.logits(inputs, &mut Ctx::eval(&mut sift_tui::rng::stream(0, 0))).unwrap()
}

fn check(name: &str, model_dir: PathBuf) {
    let (recorded, settings) = trajectory(name);
    let model = load(&model_dir, &recorded, settings.num_labels);
    let adamw = AdamWConfig {
        beta1: settings.betas[0],
        beta2: settings.betas[1],
        eps: settings.eps,
        weight_decay: settings.weight_decay,
    };
    let mut updater = Updater::new(&model, adamw, settings.grad_clip).unwrap();
    let schedule = LinearSchedule::with_warmup_ratio(settings.lr, settings.warmup_ratio, settings.updates);
    assert_eq!(schedule.warmup_steps, settings.warmup_steps, "{name}: warm-up length");
    let host = |key: &str| recorded[key].to_dtype(DType::F32).unwrap().to_vec1::<f32>().unwrap();
    let (losses, norms, lrs) = (host("loss"), host("grad_norm"), host("lr"));
    let mut rng = sift_tui::rng::stream(0, 0);
    let mut worst = (0f32, 0f32);

    for step in 0..settings.updates {
        let batch = batch(&recorded, step);
        let diff = common::max_abs_diff(&logits(&model, &batch.inputs), &recorded["logits"].get(step).unwrap());
        assert!(diff < LOGITS_ATOL, "{name}: logits before update {step} differ by {diff}");
        let lr = schedule.lr(step);
        assert!(relative(lr as f32, lrs[step]) < 1e-6, "{name}: lr of update {step}: {lr} vs {}", lrs[step]);
        let progress = Progress { step, total_steps: settings.updates };
        let applied = updater
            .update(&mut Standard, &model, 1, || Ok(batch.clone()), &mut rng, lr, progress)
            .unwrap()
            .applied()
            .unwrap_or_else(|| panic!("{name}: update {step} was not finite"));
        let loss_error = relative(applied.loss, losses[step]);
        worst = (worst.0.max(loss_error), worst.1.max(diff));
        assert!(loss_error < LOSS_RTOL, "{name}: loss of update {step}: {} vs {}", applied.loss, losses[step]);
        let norm_error = relative(applied.grad_norm, norms[step]);
        assert!(norm_error < 1e-3, "{name}: gradient norm of update {step}: {} vs {}", applied.grad_norm, norms[step]);
    }

    println!("{name}: largest relative loss error {:.2e}, largest logit difference {:.2e}", worst.0, worst.1);
    let probe = batch(&recorded, settings.updates);
    let probe_logits = logits(&model, &probe.inputs);
    let diff = common::max_abs_diff(&probe_logits, &recorded["probe_logits"]);
    assert!(diff < LOGITS_ATOL, "{name}: probe logits after {} updates differ by {diff}", settings.updates);
    let loss = sift_tui::method::divergence::cross_entropy(&probe_logits, &probe.labels).unwrap();
    let (ours, theirs) = (loss.to_scalar::<f32>().unwrap(), host("probe_loss")[0]);
    assert!(relative(ours, theirs) < LOSS_RTOL, "{name}: probe loss after the last update: {ours} vs {theirs}");
}

#[test]
fn bert_follows_transformers_for_twenty_updates() {
    check("bert-cls", common::fixture_model("bert-cls"));
}

#[test]
fn deberta_v1_follows_transformers_for_twenty_updates() {
    check("deberta-cls", common::fixture_model("deberta-cls"));
}

#[test]
fn deberta_v3_follows_transformers_for_twenty_updates() {
    check("deberta-v3-cls", common::fixture_model("deberta-v3-cls"));
}

#[test]
fn minilm_follows_transformers_for_twenty_updates() {
    let Some(dir) = common::shared_model("all-MiniLM-L6-v2") else { return };
    check("minilm", dir);
}

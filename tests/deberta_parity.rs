//! DeBERTa v1 and v2/v3 encoders against transformers' reference outputs.
//!
//! Fixtures live in `tests/fixtures/models/<name>` (`config.json`, `model.safetensors`) and
//! `tests/fixtures/expected/<name>.safetensors` (`input_ids`, `attention_mask`, `token_type_ids`,
//! `last_hidden_state` from eval mode). A test whose fixtures are missing says so and passes.
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{Module, VarBuilder, VarMap};
use rand::SeedableRng;
use sift_tui::model::config::{DebertaConfig, ModelConfig};
use sift_tui::model::deberta::Deberta;
use sift_tui::model::deberta_v2::DebertaV2;
use sift_tui::model::nn::normalize;
use sift_tui::model::weights::{Checkpoint, TrainableWeights};
use sift_tui::model::{Ctx, Encoder, Inputs};
use sift_tui::rng::Rng;

const TOLERANCE: f32 = 1e-4;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn model_dir(name: &str) -> PathBuf {
    fixtures().join("models").join(name)
}

/// Whether a fixture is present; prints why the test is skipped when it is not.
fn available(name: &str) -> bool {
    let present = model_dir(name).join("config.json").exists()
        && fixtures().join("expected").join(format!("{name}.safetensors")).exists();
    if !present {
        eprintln!("skipping {name}: fixtures not found under {}", fixtures().display());
    }
    present
}

fn deberta_config(name: &str) -> anyhow::Result<(DebertaConfig, bool)> {
    let path = model_dir(name).join("config.json");
    match ModelConfig::from_file(&path)? {
        ModelConfig::Deberta(config) => Ok((config, false)),
        ModelConfig::DebertaV2(config) => Ok((config, true)),
        other => bail!("{}: expected a DeBERTa config, found {}", path.display(), other.family()),
    }
}

fn load_encoder(name: &str, config: &DebertaConfig, v2: bool) -> anyhow::Result<Box<dyn Encoder>> {
    build_encoder(config, v2, var_builder(name, &VarMap::new())?)
}

/// Every tensor of the checkpoint becomes a trainable `Var` recorded in `varmap`.
fn var_builder(name: &str, varmap: &VarMap) -> anyhow::Result<VarBuilder<'static>> {
    let checkpoint = Checkpoint::load(&model_dir(name).join("model.safetensors"))?;
    Ok(TrainableWeights::new(checkpoint, varmap.clone(), &["pooler.", "classifier."], 0)
        .into_var_builder(DType::F32, &Device::Cpu))
}

fn build_encoder(config: &DebertaConfig, v2: bool, vb: VarBuilder) -> anyhow::Result<Box<dyn Encoder>> {
    Ok(if v2 { Box::new(DebertaV2::load(config, vb)?) } else { Box::new(Deberta::load(config, vb)?) })
}

struct Expected {
    tensors: HashMap<String, Tensor>,
    inputs: Inputs,
    last_hidden_state: Tensor,
}

fn expected(name: &str) -> anyhow::Result<Expected> {
    let path = fixtures().join("expected").join(format!("{name}.safetensors"));
    let tensors: HashMap<String, Tensor> = candle_core::safetensors::load(&path, &Device::Cpu)?;
    let take = |key: &str| tensors.get(key).cloned().with_context(|| format!("{}: missing `{key}`", path.display()));
    let ids = |key: &str| -> anyhow::Result<Tensor> { Ok(take(key)?.to_dtype(DType::U32)?) };
    Ok(Expected {
        tensors: tensors.clone(),
        inputs: Inputs {
            input_ids: ids("input_ids")?,
            attention_mask: ids("attention_mask")?,
            token_type_ids: ids("token_type_ids")?,
        },
        last_hidden_state: take("last_hidden_state")?,
    })
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> anyhow::Result<f32> {
    Ok((a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?)
}

fn check_parity(name: &str) -> anyhow::Result<()> {
    if !available(name) {
        return Ok(());
    }
    let (config, v2) = deberta_config(name)?;
    let encoder = load_encoder(name, &config, v2)?;
    let expected = expected(name)?;
    let mut rng = Rng::seed_from_u64(0);
    let hidden = encoder.forward(&expected.inputs, &mut Ctx::eval(&mut rng))?;
    anyhow::ensure!(
        hidden.dims() == expected.last_hidden_state.dims(),
        "{name}: output shape {:?}, expected {:?}",
        hidden.dims(),
        expected.last_hidden_state.dims()
    );
    let error = max_abs_diff(&hidden, &expected.last_hidden_state)?;
    println!("{name}: max |diff| of last_hidden_state = {error:.3e}");
    anyhow::ensure!(error <= TOLERANCE, "{name}: max |diff| {error:.3e} exceeds {TOLERANCE:e}");
    Ok(())
}

#[test]
fn deberta_v1_matches_transformers() -> anyhow::Result<()> {
    check_parity("deberta")
}

#[test]
fn deberta_v1_classifier_backbone_matches_transformers() -> anyhow::Result<()> {
    check_parity("deberta-cls")
}

#[test]
fn deberta_v2_matches_transformers() -> anyhow::Result<()> {
    check_parity("deberta-v2")
}

#[test]
fn deberta_v3_classifier_backbone_matches_transformers() -> anyhow::Result<()> {
    check_parity("deberta-v3-cls")
}

/// Train-mode outputs with dropout 0.1 under two seeds: returns (seed 1, seed 1 again, seed 2).
fn train_outputs(name: &str) -> anyhow::Result<(Tensor, Tensor, Tensor)> {
    let (mut config, v2) = deberta_config(name)?;
    config.hidden_dropout_prob = 0.1;
    config.attention_probs_dropout_prob = 0.1;
    let encoder = load_encoder(name, &config, v2)?;
    let inputs = expected(name)?.inputs;
    let run = |seed: u64| -> anyhow::Result<Tensor> {
        let mut rng = Rng::seed_from_u64(seed);
        Ok(encoder.forward(&inputs, &mut Ctx::train(&mut rng))?)
    };
    Ok((run(1)?, run(1)?, run(2)?))
}

#[test]
fn dropout_follows_the_seed() -> anyhow::Result<()> {
    for name in ["deberta", "deberta-v3-cls"] {
        if !available(name) {
            continue;
        }
        let (first, repeat, other) = train_outputs(name)?;
        assert_eq!(max_abs_diff(&first, &repeat)?, 0.0, "{name}: same seed, different outputs");
        assert!(max_abs_diff(&first, &other)? > 1e-3, "{name}: different seeds, same outputs");
    }
    Ok(())
}

impl Expected {
    fn get(&self, key: &str) -> anyhow::Result<&Tensor> {
        self.tensors.get(key).with_context(|| format!("expected outputs lack `{key}`"))
    }
}

/// transformers' `ContextPooler` and classifier in eval mode: `classifier(gelu(dense(hidden[:, 0])))`,
/// then the mean cross-entropy against `labels`.
fn classifier_loss(hidden: &Tensor, vb: &VarBuilder, expected: &Expected) -> anyhow::Result<Tensor> {
    let width = hidden.dim(2)?;
    let labels = expected.get("labels")?.to_dtype(DType::U32)?;
    let classes = expected.get("logits")?.dim(1)?;
    let pooler = candle_nn::linear(width, width, vb.pp("pooler.dense"))?;
    let classifier = candle_nn::linear(width, classes, vb.pp("classifier"))?;
    let first_token = hidden.narrow(1, 0, 1)?.squeeze(1)?;
    let logits = classifier.forward(&pooler.forward(&first_token)?.gelu_erf()?)?;
    Ok(candle_nn::loss::cross_entropy(&logits, &labels)?)
}

/// The SiFT P1 perturbation of the fixtures: the LayerNorm input `s` is replaced by
/// `normalize(s) + delta` before the model's own embedding LayerNorm.
fn p1_loss(encoder: &dyn Encoder, vb: &VarBuilder, expected: &Expected, delta: &Tensor) -> anyhow::Result<Tensor> {
    let inputs = &expected.inputs;
    let mut rng = Rng::seed_from_u64(0);
    let mut ctx = Ctx::eval(&mut rng);
    let words = encoder.word_embeddings(&inputs.input_ids)?;
    let s = encoder.layer_norm_input(&words, inputs)?;
    let perturbed = (normalize(&s, 1e-7)? + delta)?;
    let embedded = encoder.embedding_output(&perturbed, inputs, &mut ctx)?;
    let hidden = encoder.encode(&embedded, inputs, &mut ctx)?;
    classifier_loss(&hidden, vb, expected)
}

/// The largest gradient error relative to the largest reference gradient entry.
fn relative_error(ours: &Tensor, reference: &Tensor) -> anyhow::Result<f32> {
    let scale = reference.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?.max(1e-12);
    Ok(max_abs_diff(ours, reference)? / scale)
}

fn check_gradients(name: &str) -> anyhow::Result<()> {
    if !available(name) {
        return Ok(());
    }
    let (config, v2) = deberta_config(name)?;
    let varmap = VarMap::new();
    let vb = var_builder(name, &varmap)?;
    let encoder = build_encoder(&config, v2, vb.clone())?;
    let expected = expected(name)?;
    let mut rng = Rng::seed_from_u64(0);
    let hidden = encoder.forward(&expected.inputs, &mut Ctx::eval(&mut rng))?;
    let loss = classifier_loss(&hidden, &vb, &expected)?;
    let loss_error = max_abs_diff(&loss, expected.get("loss")?)?;
    println!("{name}: |loss - reference| = {loss_error:.3e}");
    anyhow::ensure!(loss_error <= TOLERANCE, "{name}: loss differs by {loss_error:.3e}");

    let grads = loss.backward()?;
    let vars = varmap.data().lock().expect("varmap poisoned").clone();
    for (param, var) in &vars {
        let grad = grads.get(var.as_tensor()).with_context(|| format!("{name}: no gradient for `{param}`"))?;
        let norm = grad.sqr()?.sum_all()?.to_scalar::<f32>()?;
        anyhow::ensure!(norm > 0.0, "{name}: zero gradient for `{param}`");
    }
    for (key, reference) in &expected.tensors {
        let Some(param) = key.strip_prefix("grad.").filter(|p| *p != "p1_delta") else {
            continue;
        };
        let var_name = param.strip_prefix("deberta.").unwrap_or(param);
        let var = vars.get(var_name).with_context(|| format!("{name}: no variable `{var_name}`"))?;
        let grad = grads.get(var.as_tensor()).with_context(|| format!("{name}: no gradient for `{var_name}`"))?;
        let error = relative_error(grad, reference)?;
        println!("{name}: d loss / d {var_name}: max |diff| / max |ref| = {error:.3e}");
        anyhow::ensure!(error <= 1e-4, "{name}: gradient of `{var_name}` differs ({error:.3e})");
    }

    let delta = Var::from_tensor(expected.get("p1_delta")?)?;
    let perturbed_loss = p1_loss(encoder.as_ref(), &vb, &expected, delta.as_tensor())?;
    let p1_error = max_abs_diff(&perturbed_loss, expected.get("p1_loss")?)?;
    let p1_grads = perturbed_loss.backward()?;
    let grad = p1_grads.get(delta.as_tensor()).context("no gradient for the P1 perturbation")?;
    let grad_error = relative_error(grad, expected.get("grad.p1_delta")?)?;
    println!("{name}: P1 |loss diff| = {p1_error:.3e}, d loss / d delta relative error = {grad_error:.3e}");
    anyhow::ensure!(p1_error <= TOLERANCE && grad_error <= 1e-4, "{name}: P1 check failed");
    Ok(())
}

#[test]
fn deberta_v1_gradients_match_transformers() -> anyhow::Result<()> {
    check_gradients("deberta-cls")
}

#[test]
fn deberta_v3_gradients_match_transformers() -> anyhow::Result<()> {
    check_gradients("deberta-v3-cls")
}

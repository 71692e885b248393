//! The encoders reproduce transformers on the same weights: hidden states, logits, gradients of the
//! loss w.r.t. weights and w.r.t. a perturbation at P1 (fixtures made by `scripts/make_fixtures.py`).
mod common;

use candle_core::{DType, Device, Tensor, Var};
use common::{expected, fixture_inputs, fixture_model, max_abs_diff, shared_model};
use sift_tui::model::kernels::{use_kernels, Kernels};
use sift_tui::model::nn::normalize;
use sift_tui::model::{load_encoder, Classifier, Ctx, ModelFiles, Start};
use sift_tui::rng;

const HIDDEN_TOL: f32 = 1e-4;

fn hidden_state_error(dir: &std::path::Path, fixture: &str) -> f32 {
    let exp = expected(fixture);
    let (encoder, _) = load_encoder(&ModelFiles::in_dir(dir).unwrap(), &Device::Cpu, DType::F32).unwrap();
    let mut rng = rng::stream(0, 0);
    let hidden = encoder.forward(&fixture_inputs(&exp), &mut Ctx::eval(&mut rng)).unwrap();
    max_abs_diff(&hidden, &exp["last_hidden_state"])
}

#[test]
fn hidden_states_match_for_every_family() {
    for name in ["bert-cls", "bert-legacy", "deberta", "deberta-cls", "deberta-v2", "deberta-v3-cls"] {
        let err = hidden_state_error(&fixture_model(name), name);
        println!("{name}: max |Δ| last_hidden_state = {err:.2e}");
        assert!(err <= HIDDEN_TOL, "{name}: {err}");
    }
}

#[test]
fn minilm_hidden_states_match() {
    let Some(dir) = shared_model("all-MiniLM-L6-v2") else { return };
    let err = hidden_state_error(&dir, "minilm");
    println!("all-MiniLM-L6-v2: max |Δ| last_hidden_state = {err:.2e}");
    assert!(err <= 2e-4, "{err}");
}

/// Logits, loss and gradients of a `*ForSequenceClassification` fixture.
fn check_classifier(fixture: &str, num_labels: usize) {
    let exp = expected(fixture);
    let files = ModelFiles::in_dir(&fixture_model(fixture)).unwrap();
    let model = Classifier::load(&files, num_labels, &Device::Cpu, DType::F32, 0).unwrap();
    let inputs = fixture_inputs(&exp);
    let labels = exp["labels"].to_dtype(DType::U32).unwrap();
    let mut rng = rng::stream(0, 0);

    let logits = model.logits(&inputs, &mut Ctx::eval(&mut rng)).unwrap();
    let err = max_abs_diff(&logits, &exp["logits"]);
    println!("{fixture}: logits max |Δ| = {err:.2e}");
    assert!(err <= 1e-4, "{fixture} logits: {err}");

    let loss = candle_nn::loss::cross_entropy(&logits, &labels).unwrap();
    let loss_err = max_abs_diff(&loss, &exp["loss"]);
    assert!(loss_err <= 1e-5, "{fixture} loss: {loss_err}");
    let grads = loss.backward().unwrap();
    let vars = model.varmap.data().lock().unwrap().clone();
    for (key, want) in exp.iter().filter(|(k, _)| k.starts_with("grad.") && *k != "grad.p1_delta") {
        let name = key.trim_start_matches("grad.");
        let name = name.strip_prefix("bert.").or(name.strip_prefix("deberta.")).unwrap_or(name);
        let var = vars.get(name).unwrap_or_else(|| panic!("{fixture}: no variable {name}"));
        let got = grads.get(var.as_tensor()).unwrap_or_else(|| panic!("{fixture}: no gradient for {name}"));
        let err = max_abs_diff(got, want);
        let scale = want.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
        println!("{fixture}: grad {name} max |Δ| = {err:.2e} (max |g| {scale:.2e})");
        assert!(err <= 1e-5 + 1e-3 * scale, "{fixture} grad {name}: {err}");
    }

    // P1: SiFT's injection point, LN_emb(LN0(s) + δ).
    let words = model.encoder.word_embeddings(&inputs.input_ids).unwrap();
    let s = model.encoder.layer_norm_input(&words, &inputs).unwrap();
    let delta = Var::from_tensor(&exp["p1_delta"]).unwrap();
    let perturbed = (normalize(&s, 1e-7).unwrap() + delta.as_tensor()).unwrap();
    let logits = model.logits_from(Start::LayerNormInput(&perturbed), &inputs, &mut Ctx::eval(&mut rng)).unwrap();
    assert!(max_abs_diff(&logits, &exp["p1_logits"]) <= 1e-4);
    let loss = candle_nn::loss::cross_entropy(&logits, &labels).unwrap();
    assert!(max_abs_diff(&loss, &exp["p1_loss"]) <= 1e-5);
    let grad = loss.backward().unwrap().get(delta.as_tensor()).unwrap().clone();
    let err = max_abs_diff(&grad, &exp["grad.p1_delta"]);
    println!("{fixture}: grad p1_delta max |Δ| = {err:.2e}");
    assert!(err <= 1e-5, "{fixture} P1 gradient: {err}");
}

#[test]
fn bert_classifier_logits_and_gradients_match() {
    check_classifier("bert-cls", 3);
}

#[test]
fn deberta_classifier_logits_and_gradients_match() {
    check_classifier("deberta-cls", 2);
}

#[test]
fn deberta_v3_classifier_logits_and_gradients_match() {
    check_classifier("deberta-v3-cls", 3);
}

/// The composed ops that CUDA and Metal run, taken on the CPU: the same logits, weight gradients
/// and P1 gradient as transformers, at the same tolerances.
#[test]
fn portable_path_logits_and_gradients_match_for_every_family() {
    use_kernels(Kernels::Portable);
    for (fixture, labels) in [("bert-cls", 3), ("deberta-cls", 2), ("deberta-v3-cls", 3)] {
        check_classifier(fixture, labels);
    }
}

/// Every trainable variable receives a non-zero gradient from the classification loss (the stock
/// candle layers silently drop most of them).
fn assert_all_variables_get_gradients(fixture: &str, num_labels: usize) {
    let exp = expected(fixture);
    let files = ModelFiles::in_dir(&fixture_model(fixture)).unwrap();
    let model = Classifier::load(&files, num_labels, &Device::Cpu, DType::F32, 0).unwrap();
    let inputs = fixture_inputs(&exp);
    let labels = Tensor::zeros(inputs.input_ids.dim(0).unwrap(), DType::U32, &Device::Cpu).unwrap();
    let mut rng = rng::stream(0, 0);
    let logits = model.logits(&inputs, &mut Ctx::train(&mut rng)).unwrap();
    let grads = candle_nn::loss::cross_entropy(&logits, &labels).unwrap().backward().unwrap();
    let vars = model.varmap.data().lock().unwrap().clone();
    let mut missing = Vec::new();
    for (name, var) in &vars {
        let nonzero = grads
            .get(var.as_tensor())
            .map(|g| g.abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap() > 0.0)
            .unwrap_or(false);
        if !nonzero {
            missing.push(name.clone());
        }
    }
    println!("{fixture}: {} variables, {} without gradient", vars.len(), missing.len());
    assert!(missing.is_empty(), "{fixture}: no gradient for {missing:?}");
}

#[test]
fn every_variable_gets_a_gradient() {
    for (fixture, labels) in [("bert-cls", 3), ("deberta-cls", 2), ("deberta-v3-cls", 3)] {
        assert_all_variables_get_gradients(fixture, labels);
    }
}

/// Dropout draws from the run's generator: the same seed repeats a training forward pass exactly,
/// another seed changes it.
#[test]
fn dropout_follows_the_seed() {
    for fixture in ["bert-cls", "deberta-cls", "deberta-v3-cls"] {
        let exp = expected(fixture);
        let files = ModelFiles::in_dir(&fixture_model(fixture)).unwrap();
        let (encoder, _) = load_encoder(&files, &Device::Cpu, DType::F32).unwrap();
        let inputs = fixture_inputs(&exp);
        let run = |seed| {
            let mut rng = rng::stream(seed, 1);
            encoder.forward(&inputs, &mut Ctx::train(&mut rng)).unwrap()
        };
        assert_eq!(max_abs_diff(&run(1), &run(1)), 0.0, "{fixture}");
        assert!(max_abs_diff(&run(1), &run(2)) > 1e-3, "{fixture}");
    }
}

//! The fine-tuning methods compute what `docs/methods.md` says: divergences against hand-computed
//! values, each objective against an independent recomputation from the same perturbation (dropout
//! off, the same seed), the ascent direction, FreeLB's gradient average, SMART's teacher, ALUM's
//! curriculum (on the tiny BERT fixture `bert-cls`), and a gradient for every trainable variable from
//! every method on all three families (BERT, DeBERTa v1, DeBERTa v3 with `embed_proj`).
mod common;

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor, Var, D};
use common::{expected, fixture_inputs, fixture_model, max_abs_diff};
use sift_tui::data::Batch;
use sift_tui::method::alum::{Alum, AlumConfig};
use sift_tui::method::divergence::{
    cross_entropy, kl_sg, scalar, skl_full, skl_sg, squared_error, stable_kl, Reduction,
};
use sift_tui::method::freelb::{Freelb, FreelbConfig};
use sift_tui::method::noise;
use sift_tui::method::r3f::{NoiseType, R3f, R3fConfig};
use sift_tui::method::sift::{AscentLoss, Sift, SiftConfig, LN0_EPS};
use sift_tui::method::smart::{Projection, Smart, SmartConfig, BALL_GRADIENT_FLOOR};
use sift_tui::method::{build, Method, MethodName, MethodsConfig, Progress, StepOutput};
use sift_tui::model::kernels::{use_kernels, Kernels};
use sift_tui::model::nn::normalize;
use sift_tui::model::{Classifier, Ctx, ModelFiles, Start};
use sift_tui::rng::{self, Rng};

const SEED: u64 = 7;
const EARLY: Progress = Progress { step: 0, total_steps: 10 };

fn load_model() -> Classifier {
    let files = ModelFiles::in_dir(&fixture_model("bert-cls")).unwrap();
    Classifier::load(&files, 3, &Device::Cpu, DType::F32, 0).unwrap()
}

fn fixture_batch() -> Batch {
    let exp = expected("bert-cls");
    Batch { inputs: fixture_inputs(&exp), labels: exp["labels"].to_dtype(DType::U32).unwrap() }
}

fn value(t: &Tensor) -> f32 {
    scalar(t).unwrap()
}

/// Relative agreement: the recomputations run the same f32 operations, the hand values are float64.
fn assert_close(got: f32, want: f32, what: &str) {
    let tol = 1e-5 * want.abs() + 1e-12;
    assert!((got - want).abs() <= tol, "{what}: got {got}, want {want}");
}

/// One step with dropout off, from a generator seeded with [`SEED`].
fn eval_step(method: &mut dyn Method, model: &Classifier, batch: &Batch, at: Progress) -> StepOutput {
    let mut rng = rng::stream(SEED, 0);
    method.step(model, batch, &mut Ctx::eval(&mut rng), at).unwrap()
}

fn var(model: &Classifier, name: &str) -> Var {
    model.varmap.data().lock().unwrap()[name].clone()
}

// ---------------------------------------------------------------------------------------------
// Divergences

fn example_logits() -> (Tensor, Tensor) {
    let perturbed = Tensor::new(&[[1.0f32, 2.0, 0.5], [0.0, -1.0, 3.0]], &Device::Cpu).unwrap();
    let clean = Tensor::new(&[[0.5f32, 1.5, 1.0], [1.0, 0.0, 2.0]], &Device::Cpu).unwrap();
    (perturbed, clean)
}

/// Values computed by hand (float64) for the logits of [`example_logits`]:
/// p = softmax(perturbed) = [[0.231224, 0.628532, 0.140244], [0.046613, 0.017148, 0.936240]],
/// q = softmax(clean)     = [[0.186324, 0.506480, 0.307196], [0.244728, 0.090031, 0.665241]].
#[test]
fn divergences_match_hand_computed_values() {
    let (p, q) = example_logits();
    // SKL per row: 0.166951503, 0.541997192.
    assert_close(value(&skl_sg(&p, &q, Reduction::Sum).unwrap()), 0.708_948_7, "skl_sg sum");
    assert_close(value(&skl_sg(&p, &q, Reduction::Mean).unwrap()), 0.354_474_3, "skl_sg mean");
    assert_close(value(&skl_full(&p, &q, Reduction::Mean).unwrap()), 0.354_474_3, "skl_full mean");
    // KL(q‖p) per row: 0.0912949992, 0.327796028.
    assert_close(value(&kl_sg(&p, &q, Reduction::Sum).unwrap()), 0.419_091, "kl_sg sum");
    assert_close(value(&kl_sg(&p, &q, Reduction::Mean).unwrap()), 0.209_545_5, "kl_sg mean");
    // stable_kl per row (ε = 1e-6): 0.474135806, 3.50913688.
    assert_close(value(&stable_kl(&p, &q, Reduction::Sum).unwrap()), 3.983_273, "stable_kl sum");
    assert_close(value(&stable_kl(&p, &q, Reduction::Mean).unwrap()), 1.991_636, "stable_kl mean");
    // Squared logit differences per row: 0.75, 3.
    assert_close(value(&squared_error(&p, &q, Reduction::Sum).unwrap()), 3.75, "squared_error sum");
    // −log p[0][1] and −log p[1][2], averaged.
    let labels = Tensor::new(&[1u32, 2], &Device::Cpu).unwrap();
    assert_close(value(&cross_entropy(&p, &labels).unwrap()), 0.265_126_3, "cross_entropy");
}

/// The gradient columns of the table in `docs/methods.md` §0.2.
#[test]
fn divergence_gradients_follow_the_stop_gradients() {
    let (p_logits, q_logits) = example_logits();
    let (p, q) = (Var::from_tensor(&p_logits).unwrap(), Var::from_tensor(&q_logits).unwrap());
    let softmax = |t: &Tensor| candle_nn::ops::softmax(t, D::Minus1).unwrap();
    let p_minus_q = (softmax(&p_logits) - softmax(&q_logits)).unwrap();

    let grads = skl_sg(p.as_tensor(), q.as_tensor(), Reduction::Sum).unwrap().backward().unwrap();
    assert!(max_abs_diff(grads.get(p.as_tensor()).unwrap(), &p_minus_q) < 1e-6, "skl_sg: ∂/∂perturbed = p − q");
    assert!(max_abs_diff(grads.get(q.as_tensor()).unwrap(), &p_minus_q.neg().unwrap()) < 1e-6, "∂/∂clean = q − p");

    let grads = kl_sg(p.as_tensor(), q.as_tensor(), Reduction::Sum).unwrap().backward().unwrap();
    assert!(max_abs_diff(grads.get(p.as_tensor()).unwrap(), &p_minus_q) < 1e-6, "kl_sg: ∂/∂perturbed = p − q");
    assert!(grads.get(q.as_tensor()).is_none(), "kl_sg: the clean side is constant");

    let grads = stable_kl(p.as_tensor(), q.as_tensor(), Reduction::Sum).unwrap().backward().unwrap();
    assert!(grads.get(p.as_tensor()).is_some() && grads.get(q.as_tensor()).is_none(), "stable_kl");

    // SKL_full also differentiates the second KL through p: a different gradient from skl_sg's.
    let grads = skl_full(p.as_tensor(), q.as_tensor(), Reduction::Sum).unwrap().backward().unwrap();
    assert!(max_abs_diff(grads.get(p.as_tensor()).unwrap(), &p_minus_q) > 1e-3, "skl_full");
}

// ---------------------------------------------------------------------------------------------
// SiFT

/// SiFT recomputed step by step from `docs/methods.md` §1.1 with the public pieces.
struct SiftReference {
    task: f32,
    ascent_before: f32,
    ascent_after: f32,
    adversarial: f32,
    total: f32,
}

fn sift_reference(model: &Classifier, batch: &Batch, config: &SiftConfig) -> SiftReference {
    let mut rng = rng::stream(SEED, 0);
    let mut ctx = Ctx::eval(&mut rng);
    let inputs = &batch.inputs;
    let words = model.encoder.word_embeddings(&inputs.input_ids).unwrap();
    let u = normalize(&model.encoder.layer_norm_input(&words, inputs).unwrap(), 1e-7).unwrap();
    let clean = model.logits_from(Start::LayerNormInput(&u), inputs, &mut ctx).unwrap();
    let task = cross_entropy(&clean, &batch.labels).unwrap();

    let delta0 = noise::clamped_normal(ctx.rng, u.shape(), config.init_perturbation, &Device::Cpu).unwrap();
    let logits_at = |delta: &Tensor, ctx: &mut Ctx| {
        let perturbed = (u.detach() + delta).unwrap();
        model.logits_from(Start::LayerNormInput(&perturbed), inputs, ctx).unwrap()
    };
    let delta = Var::from_tensor(&delta0).unwrap();
    let ascent_before = skl_sg(&logits_at(delta.as_tensor(), &mut ctx), &clean.detach(), Reduction::Sum).unwrap();
    let g = ascent_before.backward().unwrap().get(delta.as_tensor()).unwrap().clone();
    let step = (noise::per_token_max_abs(&g, 1e-6).unwrap() * config.learning_rate).unwrap();
    let delta1 = (&delta0 + step).unwrap();
    let ascent_after = skl_sg(&logits_at(&delta1, &mut ctx), &clean.detach(), Reduction::Sum).unwrap();

    let adversarial = skl_sg(&logits_at(&delta1, &mut ctx), &clean, Reduction::Mean).unwrap();
    let total = (&task + (&adversarial * config.lambda).unwrap()).unwrap();
    SiftReference {
        task: value(&task),
        ascent_before: value(&ascent_before),
        ascent_after: value(&ascent_after),
        adversarial: value(&adversarial),
        total: value(&total),
    }
}

#[test]
fn sift_total_is_ce_plus_lambda_symmetric_kl() {
    let (model, batch) = (load_model(), fixture_batch());
    // Larger than the defaults, so that λ·L_adv stands well above the f32 resolution of the total.
    let config = SiftConfig { init_perturbation: 0.5, learning_rate: 0.05, ..SiftConfig::default() };
    let want = sift_reference(&model, &batch, &config);
    let got = eval_step(&mut Sift::new(config.clone()), &model, &batch, EARLY);
    println!("sift: task {} adv_kl {:?} total {}", got.task_loss, got.adv_kl, got.total_loss);
    assert_close(got.task_loss, want.task, "sift task loss");
    assert_close(got.adv_kl.unwrap(), want.adversarial, "sift adv_kl");
    assert_close(got.total_loss, want.total, "sift total");
    assert!(want.adversarial > 1e-3);

    // The `kl` ascent has the same gradient as `symmetric-kl` (the clean side is constant there).
    let kl = SiftConfig { ascent_loss: AscentLoss::Kl, ..config.clone() };
    assert_close(eval_step(&mut Sift::new(kl), &model, &batch, EARLY).adv_kl.unwrap(), want.adversarial, "kl");
    let mse = SiftConfig { ascent_loss: AscentLoss::Mse, ..config };
    assert!(eval_step(&mut Sift::new(mse), &model, &batch, EARLY).adv_kl.unwrap() > 0.0);
}

#[test]
fn sift_ascent_step_increases_the_divergence() {
    let (model, batch) = (load_model(), fixture_batch());
    let r = sift_reference(&model, &batch, &SiftConfig::default());
    println!("sift: L_asc(δ₀) = {:.6e}, L_asc(δ₁) = {:.6e}", r.ascent_before, r.ascent_after);
    assert!(r.ascent_after > r.ascent_before, "{} ≤ {}", r.ascent_after, r.ascent_before);
}

#[test]
fn sift_evaluation_goes_through_the_extra_layer_norm() {
    let (model, batch) = (load_model(), fixture_batch());
    let inputs = &batch.inputs;
    let mut rng = rng::stream(SEED, 0);
    let got = Sift::new(SiftConfig::default()).eval_logits(&model, inputs, &mut Ctx::eval(&mut rng)).unwrap();
    let words = model.encoder.word_embeddings(&inputs.input_ids).unwrap();
    let u = normalize(&model.encoder.layer_norm_input(&words, inputs).unwrap(), LN0_EPS).unwrap();
    let want = model.logits_from(Start::LayerNormInput(&u), inputs, &mut Ctx::eval(&mut rng)).unwrap();
    assert_eq!(max_abs_diff(&got, &want), 0.0);
    // LN_emb(LN0(s)) = LN_emb(s) up to the eps terms.
    assert!(max_abs_diff(&got, &model.logits(inputs, &mut Ctx::eval(&mut rng)).unwrap()) < 1e-4);
}

// ---------------------------------------------------------------------------------------------
// SMART

/// SMART's terms recomputed from `docs/methods.md` §2.2 (unit projection) or the paper (ball), one ascent step, and the
/// proximal spec of §2.1. The ascent is judged by the symmetric KL it stands for: at noise 1e-5 the
/// value of `stable_kl` in f32 is rounding (≈4e-7 where the KL is ≈1e-11); only its gradient is used.
struct SmartReference {
    task: f32,
    /// Σ_rows SKL at noise₀, after the ascent step, and after a step against the gradient.
    divergence_before: f32,
    divergence_after: f32,
    divergence_against: f32,
    adversarial: f32,
    proximal: f32,
    total: f32,
}

fn smart_reference(model: &Classifier, teacher: &Classifier, batch: &Batch, config: &SmartConfig) -> SmartReference {
    let mut rng = rng::stream(SEED, 0);
    let mut ctx = Ctx::eval(&mut rng);
    let (inputs, enc) = (&batch.inputs, &model.encoder);
    let words = enc.word_embeddings(&inputs.input_ids).unwrap();
    let embedded = enc.embedding_output(&enc.layer_norm_input(&words, inputs).unwrap(), inputs, &mut ctx).unwrap();
    let clean = model.logits_from(Start::Embedded(&embedded), inputs, &mut ctx).unwrap();
    let task = cross_entropy(&clean, &batch.labels).unwrap();

    let noise0 = noise::normal(ctx.rng, embedded.shape(), config.noise_std, &Device::Cpu).unwrap();
    let logits_at = |base: &Tensor, noise: &Tensor, ctx: &mut Ctx| {
        model.logits_from(Start::Embedded(&(base + noise).unwrap()), inputs, ctx).unwrap()
    };
    let noise = Var::from_tensor(&noise0).unwrap();
    let before = logits_at(&embedded.detach(), noise.as_tensor(), &mut ctx);
    let g = stable_kl(&before, &clean.detach(), Reduction::Sum).unwrap().backward().unwrap();
    let g = g.get(noise.as_tensor()).unwrap();
    let step = |sign: f64| {
        let eta = sign * config.step_size;
        match config.projection {
            Projection::Unit => noise::per_token_max_abs(&(&noise0 + (g * eta).unwrap()).unwrap(), 1e-6),
            Projection::Ball => {
                let direction = noise::per_example_max_abs(g, BALL_GRADIENT_FLOOR).unwrap();
                (&noise0 + (direction * eta).unwrap()).unwrap().clamp(-config.eps_ball, config.eps_ball)
            }
        }
        .unwrap()
    };
    let (noise1, against) = (step(1.0), step(-1.0));
    let mut divergence_at = |n: &Tensor| {
        let logits = logits_at(&embedded.detach(), n, &mut ctx);
        value(&skl_sg(&logits, &clean.detach(), Reduction::Sum).unwrap())
    };
    let (divergence_before, divergence_after) = (divergence_at(&noise0), divergence_at(&noise1));
    let divergence_against = divergence_at(&against);

    let adversarial = skl_sg(&logits_at(&embedded, &noise1, &mut ctx), &clean, Reduction::Mean).unwrap();
    let teacher_logits = teacher.logits(inputs, &mut ctx).unwrap();
    let proximal = skl_full(&clean, &teacher_logits.detach(), Reduction::Mean).unwrap();
    let total = (&task + (&adversarial * config.lambda).unwrap() + (&proximal * config.mu).unwrap()).unwrap();
    SmartReference {
        task: value(&task),
        divergence_before,
        divergence_after,
        divergence_against,
        adversarial: value(&adversarial),
        proximal: value(&proximal),
        total: value(&total),
    }
}

/// Moves the student's classifier away from the teacher copy, so that the proximal term is not zero
/// (a scale, since adding a constant to every weight shifts all logits alike).
fn nudge_classifier(model: &Classifier, by: f64) {
    let weight = var(model, "classifier.weight");
    weight.set(&(weight.as_tensor() * (1.0 + by)).unwrap()).unwrap();
}

#[test]
fn smart_total_is_ce_plus_adversarial_and_proximal_terms() {
    let batch = fixture_batch();
    let teacher = load_model();
    for projection in [Projection::Unit, Projection::Ball] {
        let model = load_model();
        let config = SmartConfig { projection, ..SmartConfig::default() };
        let mut smart = Smart::new(config.clone(), &model).unwrap();
        nudge_classifier(&model, 0.5);

        let want = smart_reference(&model, &teacher, &batch, &config);
        let got = eval_step(&mut smart, &model, &batch, EARLY);
        println!(
            "smart {projection:?}: task {} adv_kl {:?} proximal {} total {}",
            got.task_loss, got.adv_kl, want.proximal, got.total_loss
        );
        assert_close(got.task_loss, want.task, "smart task loss");
        assert_close(got.adv_kl.unwrap(), want.adversarial, "smart adv_kl");
        assert_close(got.total_loss, want.total, "smart total");
        assert!(want.adversarial > 0.0 && want.proximal > 1e-4);
    }
}

/// With the unit projection the divergence rises only because the noise is renormalised from 1e-5 to 1
/// per token: η·g is far below the noise, and a step against the gradient does as well (printed). The
/// paper's ball step follows the gradient: it beats the step against it. Noise and ball at 1e-3 keep
/// the KL (≈1e-6) well above f32 rounding.
#[test]
fn smart_ascent_step_increases_the_divergence() {
    let (model, batch) = (load_model(), fixture_batch());
    for projection in [Projection::Unit, Projection::Ball] {
        let config = SmartConfig { projection, noise_std: 1e-3, eps_ball: 1e-3, ..SmartConfig::default() };
        let r = smart_reference(&model, &model, &batch, &config);
        println!(
            "smart {projection:?}: SKL at noise₀ {:.6e}, after the step {:.6e}, against the gradient {:.6e}",
            r.divergence_before, r.divergence_after, r.divergence_against
        );
        assert!(r.divergence_after > r.divergence_before);
        if projection == Projection::Ball {
            assert!(r.divergence_after > r.divergence_against);
        }
    }
}

fn teacher_weight(smart: &Smart, name: &str) -> Tensor {
    let state: HashMap<_, _> = smart.state().into_iter().collect();
    state[&format!("teacher.{name}")].copy().unwrap()
}

#[test]
fn smart_teacher_follows_the_momentum_update() {
    let model = load_model();
    let mut smart = Smart::new(SmartConfig::default(), &model).unwrap();
    let name = "classifier.weight";

    let switch = |step| smart.beta(Progress { step, total_steps: 100 });
    assert_eq!((switch(0), switch(10), switch(11), switch(99)), (0.99, 0.99, 0.999, 0.999));

    for (step, beta) in [(1, 0.99), (50, 0.999)] {
        nudge_classifier(&model, 0.5);
        let before = teacher_weight(&smart, name);
        let student = var(&model, name).as_tensor().copy().unwrap();
        smart.after_update(&model, Progress { step, total_steps: 100 }).unwrap();
        let want = ((student * (1.0 - beta)).unwrap() + (before * beta).unwrap()).unwrap();
        let err = max_abs_diff(&teacher_weight(&smart, name), &want);
        println!("smart teacher after step {step} (β = {beta}): max |Δ| = {err:.1e}");
        assert!(err < 1e-6, "step {step}: {err}");
    }
}

#[test]
fn smart_teacher_round_trips_through_the_state() {
    let model = load_model();
    let mut smart = Smart::new(SmartConfig::default(), &model).unwrap();
    let zeros: HashMap<String, Tensor> =
        smart.state().into_iter().map(|(name, t)| (name, t.zeros_like().unwrap())).collect();
    assert_eq!(zeros.len(), model.varmap.all_vars().len());
    smart.load_state(&zeros).unwrap();
    assert_eq!(value(&teacher_weight(&smart, "classifier.weight").abs().unwrap().sum_all().unwrap()), 0.0);

    let mut missing = zeros.clone();
    missing.remove("teacher.classifier.weight");
    assert!(smart.load_state(&missing).is_err());
}

// ---------------------------------------------------------------------------------------------
// R3F

#[test]
fn r3f_total_is_ce_plus_lambda_full_symmetric_kl() {
    let (model, batch) = (load_model(), fixture_batch());
    let inputs = &batch.inputs;
    for noise_type in [NoiseType::Uniform, NoiseType::Normal] {
        // A visible noise scale: at the default 1e-5 the divergence is below f32 resolution of the sum.
        let config = R3fConfig { noise_type, eps: 0.1, lambda: 0.7 };
        let got = eval_step(&mut R3f::new(config.clone()), &model, &batch, EARLY);

        let mut rng = rng::stream(SEED, 0);
        let mut ctx = Ctx::eval(&mut rng);
        let clean = model.logits(inputs, &mut ctx).unwrap();
        let words = model.encoder.word_embeddings(&inputs.input_ids).unwrap();
        let nu = match noise_type {
            NoiseType::Uniform => noise::uniform(ctx.rng, words.shape(), config.eps, &Device::Cpu),
            NoiseType::Normal => noise::normal(ctx.rng, words.shape(), config.eps, &Device::Cpu),
        }
        .unwrap();
        let noisy = model.logits_from(Start::Words(&(words + nu).unwrap()), inputs, &mut ctx).unwrap();
        let task = value(&cross_entropy(&clean, &batch.labels).unwrap());
        let divergence = value(&skl_full(&noisy, &clean, Reduction::Mean).unwrap());

        println!("r3f {noise_type:?}: task {} adv_kl {:?} total {}", got.task_loss, got.adv_kl, got.total_loss);
        assert_close(got.task_loss, task, "r3f task loss");
        assert_close(got.adv_kl.unwrap(), divergence, "r3f adv_kl");
        assert_close(got.total_loss, task + 0.7 * divergence, "r3f total");
        assert!(divergence > 0.0);
    }
}

// ---------------------------------------------------------------------------------------------
// FreeLB

#[test]
fn freelb_gradient_is_the_average_over_its_passes() {
    let (model, batch) = (load_model(), fixture_batch());
    let inputs = &batch.inputs;
    let config = FreelbConfig { max_norm: 0.15, ..FreelbConfig::default() };
    let freelb = Freelb::new(config.clone());
    let got = eval_step(&mut Freelb::new(config.clone()), &model, &batch, EARLY);

    let mut rng = rng::stream(SEED, 0);
    let mut ctx = Ctx::eval(&mut rng);
    let mut delta = freelb.initial_delta(ctx.rng, inputs, model.config.embedding_size()).unwrap();
    let padding = inputs.attention_mask.eq(0u32).unwrap().unsqueeze(2).unwrap();
    let on_padding = padding.broadcast_as(delta.shape()).unwrap().where_cond(&delta, &delta.zeros_like().unwrap());
    assert_eq!(value(&on_padding.unwrap().abs().unwrap().sum_all().unwrap()), 0.0, "δ₀ is masked");

    let vars = model.varmap.data().lock().unwrap().clone();
    let mut sums: HashMap<String, Tensor> = HashMap::new();
    let mut losses = Vec::new();
    for _ in 0..config.steps {
        let d = Var::from_tensor(&delta).unwrap();
        let words = model.encoder.word_embeddings(&inputs.input_ids).unwrap();
        let logits = model.logits_from(Start::Words(&(words + d.as_tensor()).unwrap()), inputs, &mut ctx).unwrap();
        let loss = cross_entropy(&logits, &batch.labels).unwrap();
        let grads = loss.backward().unwrap();
        for (name, v) in &vars {
            let g = grads.get(v.as_tensor()).unwrap().clone();
            let sum = sums.remove(name).map_or(g.clone(), |s| (s + g).unwrap());
            sums.insert(name.clone(), sum);
        }
        losses.push(value(&loss));
        delta = freelb.ascend(&delta, grads.get(d.as_tensor()).unwrap()).unwrap();
    }
    let k = config.steps as f64;
    let worst = vars
        .iter()
        .map(|(name, v)| max_abs_diff(got.grads.get(v.as_tensor()).unwrap(), &(&sums[name] / k).unwrap()))
        .fold(0.0f32, f32::max);
    println!("freelb: losses per pass {losses:?}; max |Δ| gradient vs average = {worst:.1e}");
    assert!(worst < 1e-6, "{worst}");
    assert_close(got.task_loss, losses[0], "freelb task loss");
    assert_close(got.total_loss, losses.iter().sum::<f32>() / config.steps as f32, "freelb objective");
    assert!(losses[2] > losses[0], "the perturbation raises the loss");
}

#[test]
fn freelb_reuses_dropout_masks_across_passes() {
    let (model, batch) = (load_model(), fixture_batch());
    // δ stays 0, so with the same masks every pass is the same forward pass.
    let config = FreelbConfig { init_mag: 0.0, adv_lr: 0.0, ..FreelbConfig::default() };
    let mut rng = rng::stream(SEED, 0);
    let out = Freelb::new(config).step(&model, &batch, &mut Ctx::train(&mut rng), EARLY).unwrap();
    assert_eq!(out.total_loss, out.task_loss);
}

// ---------------------------------------------------------------------------------------------
// ALUM, and every method

#[test]
fn alum_switches_from_standard_to_adversarial() {
    let (model, batch) = (load_model(), fixture_batch());
    let mut alum = Alum::new(AlumConfig::default());
    let standard = eval_step(&mut alum, &model, &batch, Progress { step: 4, total_steps: 10 });
    assert_eq!((standard.adv_kl, standard.total_loss), (None, standard.task_loss));
    let adversarial = eval_step(&mut alum, &model, &batch, Progress { step: 5, total_steps: 10 });
    println!("alum after the switch: task {} adv_kl {:?}", adversarial.task_loss, adversarial.adv_kl);
    let adv_kl = adversarial.adv_kl.expect("adversarial after the switch");
    assert!(adv_kl > 0.0);
    assert_close(adversarial.total_loss, adversarial.task_loss + adv_kl, "alum total (α = 1)");
}

/// The classification fixtures of the three families, with their label counts: BERT, DeBERTa v1,
/// and DeBERTa v3 with `embed_proj` (embedding width 24, hidden size 32).
const FAMILIES: [(&str, usize); 3] = [("bert-cls", 3), ("deberta-cls", 2), ("deberta-v3-cls", 3)];

#[test]
fn every_method_reaches_every_trainable_variable_of_every_family() {
    for (fixture, labels) in FAMILIES {
        let files = ModelFiles::in_dir(&fixture_model(fixture)).unwrap();
        let model = Classifier::load(&files, labels, &Device::Cpu, DType::F32, 0).unwrap();
        let exp = expected(fixture);
        let batch = Batch { inputs: fixture_inputs(&exp), labels: exp["labels"].to_dtype(DType::U32).unwrap() };
        every_method_reaches_every_variable(fixture, &model, &batch);
    }
}

fn every_method_reaches_every_variable(fixture: &str, model: &Classifier, batch: &Batch) {
    let vars = model.varmap.data().lock().unwrap().clone();
    // ALUM is adversarial from the middle of the stage on.
    let late = Progress { step: 9, total_steps: 10 };
    for name in MethodName::ALL {
        let mut method = build(name, &MethodsConfig::default(), model).unwrap();
        let mut rng: Rng = rng::stream(SEED, 1);
        let out = method
            .step(model, batch, &mut Ctx::train(&mut rng), late)
            .unwrap_or_else(|e| panic!("{fixture}: {name} failed: {e}"));
        let missing: Vec<_> = vars
            .iter()
            .filter(|(_, v)| {
                out.grads.get(v.as_tensor()).is_none_or(|g| value(&g.abs().unwrap().sum_all().unwrap()) == 0.0)
            })
            .map(|(n, _)| n.clone())
            .collect();
        println!("{fixture} {name}: loss {} task {} adv_kl {:?}", out.total_loss, out.task_loss, out.adv_kl);
        assert!(out.total_loss.is_finite(), "{fixture}: {name}");
        assert!(missing.is_empty(), "{fixture}: {name}: no gradient for {missing:?}");
    }
}

/// Every method's step on the portable path (the composed ops of CUDA and Metal, taken on the CPU)
/// gives the fused path's losses and gradients, dropout and noise included: both draw the same masks
/// and noise from the same generator.
#[test]
fn portable_path_steps_equal_fused_steps_for_every_method_and_family() {
    let late = Progress { step: 9, total_steps: 10 };
    for (fixture, labels) in FAMILIES {
        let files = ModelFiles::in_dir(&fixture_model(fixture)).unwrap();
        let model = Classifier::load(&files, labels, &Device::Cpu, DType::F32, 0).unwrap();
        let exp = expected(fixture);
        let batch = Batch { inputs: fixture_inputs(&exp), labels: exp["labels"].to_dtype(DType::U32).unwrap() };
        let vars = model.varmap.data().lock().unwrap().clone();
        for name in MethodName::ALL {
            let step = |kernels: Kernels| {
                use_kernels(kernels);
                let mut method = build(name, &MethodsConfig::default(), &model).unwrap();
                let mut rng: Rng = rng::stream(SEED, 1);
                let out = method.step(&model, &batch, &mut Ctx::train(&mut rng), late).unwrap();
                use_kernels(Kernels::Fused);
                out
            };
            let (fused, portable) = (step(Kernels::Fused), step(Kernels::Portable));
            let what = format!("{fixture} {name}");
            assert_close(portable.total_loss, fused.total_loss, &format!("{what}: loss"));
            assert_eq!(portable.adv_kl.is_some(), fused.adv_kl.is_some(), "{what}: adv_kl");
            for (var_name, var) in &vars {
                let (a, b) = (fused.grads.get(var.as_tensor()), portable.grads.get(var.as_tensor()));
                let (Some(a), Some(b)) = (a, b) else { panic!("{what}: {var_name} has a gradient on one path only") };
                let scale = value(&a.abs().unwrap().flatten_all().unwrap().max(0).unwrap());
                let err = max_abs_diff(a, b);
                assert!(
                    err <= 1e-5 + 1e-3 * scale,
                    "{what}: gradient of {var_name} differs by {err} (max |g| {scale})"
                );
            }
        }
    }
}

#[test]
fn method_configs_read_presets() {
    let config: MethodsConfig = toml::from_str(
        "[sift]\nlambda = 3.0\nascent_loss = \"kl\"\n[smart]\nprojection = \"ball\"\n[r3f]\nnoise_type = \"normal\"",
    )
    .unwrap();
    assert_eq!(config.sift, SiftConfig { lambda: 3.0, ascent_loss: AscentLoss::Kl, ..SiftConfig::default() });
    assert_eq!(config.smart.projection, Projection::Ball);
    assert_eq!(config.smart.step_size, 1e-3);
    assert_eq!(config.r3f.noise_type, NoiseType::Normal);
    assert!(toml::from_str::<MethodsConfig>("[sift]\nlamda = 3.0").is_err());
}

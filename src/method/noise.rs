//! Perturbation draws, the normalisations of the ascent steps (`docs/methods.md` §0.3), and the gradient of
//! a loss with respect to a perturbation.
//!
//! Every draw comes from the run's seeded generator (`ctx.rng`), one element after another in row-major
//! order, never from candle's device RNG (which cannot be seeded); draws are f32 tensors.
use candle_core::{DType, Device, Result, Shape, Tensor, Var, D};
use rand::distr::Uniform;
use rand::Rng as _;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use crate::rng::Rng;

fn ensure_scale(what: &str, scale: f64) -> Result<()> {
    if !(scale.is_finite() && scale >= 0.0) {
        candle_core::bail!("{what} must be finite and ≥ 0, got {scale}");
    }
    Ok(())
}

fn from_draws(shape: Shape, device: &Device, draw: impl FnMut() -> f32) -> Result<Tensor> {
    let values: Vec<f32> = std::iter::repeat_with(draw).take(shape.elem_count()).collect();
    Tensor::from_vec(values, shape, device)
}

/// Uniform(−bound, bound), elementwise (R3F's default noise, FreeLB's initialisation).
pub fn uniform(rng: &mut Rng, shape: impl Into<Shape>, bound: f64, device: &Device) -> Result<Tensor> {
    ensure_scale("a uniform noise bound", bound)?;
    let dist = Uniform::new_inclusive(-bound as f32, bound as f32).map_err(candle_core::Error::wrap)?;
    from_draws(shape.into(), device, || rng.sample(dist))
}

/// N(0, std²), elementwise.
pub fn normal(rng: &mut Rng, shape: impl Into<Shape>, std: f64, device: &Device) -> Result<Tensor> {
    ensure_scale("a noise standard deviation", std)?;
    let std = std as f32;
    from_draws(shape.into(), device, || std * rng.sample::<f32, _>(StandardNormal))
}

/// clamp(N(0, std²), −2·std, 2·std), elementwise: SiFT's initial perturbation.
pub fn clamped_normal(rng: &mut Rng, shape: impl Into<Shape>, std: f64, device: &Device) -> Result<Tensor> {
    normal(rng, shape, std, device)?.clamp(-2.0 * std, 2.0 * std)
}

/// x / (eps + max_h |x[b, t, h]|): the per-token max-abs normalisation ("inf" in the Microsoft code).
pub fn per_token_max_abs(x: &Tensor, eps: f64) -> Result<Tensor> {
    x.broadcast_div(&(x.abs()?.max_keepdim(D::Minus1)? + eps)?)
}

/// x / (eps + ‖x[b, t, :]‖₂): the per-token L2 normalisation (mt-dnn "l2").
pub fn per_token_l2(x: &Tensor, eps: f64) -> Result<Tensor> {
    x.broadcast_div(&(x.sqr()?.sum_keepdim(D::Minus1)?.sqrt()? + eps)?)
}

/// Divides each example `x[b]` by `max(norm[b], floor)`, `norm` being `[B]`.
fn divide_examples(x: &Tensor, norm: &Tensor, floor: f64) -> Result<Tensor> {
    let shape: Vec<usize> = std::iter::once(x.dim(0)?).chain(std::iter::repeat_n(1, x.rank() - 1)).collect();
    x.broadcast_div(&norm.clamp(floor, f64::INFINITY)?.reshape(shape)?)
}

/// ‖x[b]‖_F per example, `[B]`.
fn example_l2_norms(x: &Tensor) -> Result<Tensor> {
    x.flatten_from(1)?.sqr()?.sum(1)?.sqrt()
}

/// x / max(‖x[b]‖_F, floor): the per-example Frobenius normalisation (FreeLB "l2").
pub fn per_example_l2(x: &Tensor, floor: f64) -> Result<Tensor> {
    divide_examples(x, &example_l2_norms(x)?, floor)
}

/// x / max(‖x[b]‖_∞, floor): the per-example max-abs normalisation (FreeLB "linf", the SMART paper).
pub fn per_example_max_abs(x: &Tensor, floor: f64) -> Result<Tensor> {
    divide_examples(x, &x.flatten_from(1)?.abs()?.max(1)?, floor)
}

/// Rescales each example whose Frobenius norm exceeds `radius` onto the sphere of that radius.
pub fn project_example_l2(x: &Tensor, radius: f64) -> Result<Tensor> {
    divide_examples(x, &(example_l2_norms(x)? / radius)?, 1.0)
}

/// The per-token normalisation of the mt-dnn ascent (`adv_p_norm`): the noise is renormalised to unit
/// norm per token after each step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenNorm {
    /// Per-token max-abs (the default).
    Inf,
    /// Per-token L2.
    L2,
}

impl TokenNorm {
    pub fn apply(self, x: &Tensor, eps: f64) -> Result<Tensor> {
        match self {
            Self::Inf => per_token_max_abs(x, eps),
            Self::L2 => per_token_l2(x, eps),
        }
    }
}

/// Whether every element is finite, judged as the references do by the tensor's L2 norm (an overflowing
/// norm counts as non-finite).
pub fn is_finite(x: &Tensor) -> Result<bool> {
    let sum_of_squares = x.to_dtype(DType::F32)?.sqr()?.sum_all()?.to_scalar::<f32>()?;
    Ok(sum_of_squares.is_finite())
}

/// The gradient of `loss_at(δ)` with respect to the perturbation δ alone, or `None` when it is not
/// finite.
///
/// Callers build the loss with frozen weights (`Ctx::frozen`) from detached activations, so that this
/// backward pass forms no parameter gradients; any it does form are dropped.
pub fn perturbation_gradient(
    delta: &Tensor,
    loss_at: impl FnOnce(&Tensor) -> Result<Tensor>,
) -> Result<Option<Tensor>> {
    let delta = Var::from_tensor(delta)?;
    let grads = loss_at(delta.as_tensor())?.backward()?;
    match grads.get(delta.as_tensor()) {
        Some(g) if is_finite(g)? => Ok(Some(g.clone())),
        Some(_) => Ok(None),
        // The loss does not depend on δ: the gradient is zero.
        None => Ok(Some(delta.as_tensor().zeros_like()?)),
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device};

    use super::*;
    use crate::data::synthetic_batch;
    use crate::model::{Classifier, Ctx, ModelFiles, Start};

    /// A frozen pass (the ascent passes) computes the same δ-gradient as a normal one, and no
    /// parameter gradient at all.
    #[test]
    fn frozen_pass_gives_the_perturbation_gradient_alone() -> anyhow::Result<()> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models/bert-cls");
        let model = Classifier::load(&ModelFiles::in_dir(&dir)?, 3, &Device::Cpu, DType::F32, 0)?;
        let mut rng = crate::rng::stream(1, 0);
        let batch = synthetic_batch(&mut rng, 3, 7, model.config.vocab_size(), 3, &Device::Cpu)?;
        let inputs = &batch.inputs;
        let words = model.encoder.word_embeddings(&inputs.input_ids)?;
        let base = model.encoder.layer_norm_input(&words, inputs)?.detach();
        let delta = normal(&mut rng, base.shape(), 0.1, &Device::Cpu)?;

        let run = |frozen: bool| -> Result<(Tensor, Tensor, usize)> {
            let var = Var::from_tensor(&delta)?;
            let mut rng = crate::rng::stream(2, 0);
            let mut ctx = Ctx { train: true, frozen, loss_scale: 1.0, rng: &mut rng };
            let logits = model.logits_from(Start::LayerNormInput(&(&base + var.as_tensor())?), inputs, &mut ctx)?;
            let grads = logits.sqr()?.sum_all()?.backward()?;
            let data = model.varmap.data().lock().expect("varmap");
            // Every weight, the head's included: a frozen pass forms no parameter gradient at all.
            let param_grads = data.values().filter(|var| grads.get(var).is_some()).count();
            Ok((logits, grads.get(&var).expect("δ gradient").clone(), param_grads))
        };
        let (logits, grad, with_grads) = run(false)?;
        let (frozen_logits, frozen_grad, frozen_with_grads) = run(true)?;
        assert!(with_grads > 0);
        assert_eq!(frozen_with_grads, 0, "a frozen pass formed parameter gradients");
        let diff = |a: &Tensor, b: &Tensor| -> Result<f32> { (a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar() };
        assert!(diff(&logits, &frozen_logits)? == 0.0);
        assert!(diff(&grad, &frozen_grad)? <= 1e-6, "δ gradients differ");
        Ok(())
    }
}

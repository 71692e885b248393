//! Divergences between perturbed and clean logits (`docs/methods.md` §0.2).
//!
//! Every function takes logits `[B, C]`, `perturbed` first (p = softmax of it) and `clean` second
//! (q = softmax of it), computes in f32 whatever the model dtype, and reduces over rows as asked.
//! "sg" is a stop-gradient: the tensor is used as a constant.
//!
//! | function | value per row | gradient w.r.t. perturbed | gradient w.r.t. clean |
//! |---|---|---|---|
//! | [`skl_sg`] | KL(sg(q)‖p) + KL(sg(p)‖q) | p − q | q − p |
//! | [`skl_full`] | KL(q‖p) + KL(p‖q) | full gradient of both terms | full gradient of both terms |
//! | [`kl_sg`] | KL(sg(q)‖p) | p − q | none |
//! | [`stable_kl`] | 2·Σ_c p_c·(ℓ(p_c) − ℓ(q_c)), ℓ(x) = −log(1/(x+ε) − 1 + ε), both ℓ detached | through the leading p_c only | none |
//! | [`squared_error`] | ‖perturbed − clean‖² | 2(perturbed − clean) | 2(clean − perturbed) |
//!
//! With a single output (C = 1) every softmax-based divergence is identically 0.
use candle_core::{DType, Result, Tensor, D};
use candle_nn::ops::log_softmax;

/// How per-row values are combined into the scalar loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reduction {
    /// Sum over rows (the ascent losses of SiFT and mt-dnn).
    Sum,
    /// Mean over rows (PyTorch's `batchmean` for KL).
    Mean,
}

impl Reduction {
    fn apply(self, per_row: &Tensor) -> Result<Tensor> {
        match self {
            Self::Sum => per_row.sum_all(),
            Self::Mean => per_row.mean_all(),
        }
    }
}

/// The stabiliser of mt-dnn's `stable_kl` log-odds.
const STABLE_KL_EPS: f64 = 1e-6;

/// Log-probabilities over the last dimension, in f32.
fn log_probs(logits: &Tensor) -> Result<Tensor> {
    log_softmax(&logits.to_dtype(DType::F32)?, D::Minus1)
}

/// Σ_c exp(t_c)·(t_c − l_c) per row: KL(target‖live) from log-probabilities; the target is constant.
fn kl_rows(target_log: &Tensor, live_log: &Tensor) -> Result<Tensor> {
    let target_log = target_log.detach();
    (target_log.exp()? * (&target_log - live_log)?)?.sum(D::Minus1)
}

/// The symmetric KL with each target held constant: KL(sg(q)‖p) + KL(sg(p)‖q). DeBERTa's
/// `symmetric_kl` (written there as two cross-entropies: same gradient, value higher by H(p) + H(q)),
/// mt-dnn's `SymKlCriterion`, the final term of SiFT, SMART and ALUM.
pub fn skl_sg(perturbed: &Tensor, clean: &Tensor, reduction: Reduction) -> Result<Tensor> {
    let (lp, lq) = (log_probs(perturbed)?, log_probs(clean)?);
    reduction.apply(&(kl_rows(&lq, &lp)? + kl_rows(&lp, &lq)?)?)
}

/// The symmetric KL without stop-gradient, Σ_c (q_c − p_c)(log q_c − log p_c): fairseq R3F's `_get_symm_kl`.
pub fn skl_full(perturbed: &Tensor, clean: &Tensor, reduction: Reduction) -> Result<Tensor> {
    let (lp, lq) = (log_probs(perturbed)?, log_probs(clean)?);
    let per_row = ((lq.exp()? - lp.exp()?)? * (&lq - &lp)?)?.sum(D::Minus1)?;
    reduction.apply(&per_row)
}

/// KL(sg(q)‖p): the ascent loss of ALUM (and SiFT's `kl` option) with the clean prediction as a constant.
pub fn kl_sg(perturbed: &Tensor, clean: &Tensor, reduction: Reduction) -> Result<Tensor> {
    reduction.apply(&kl_rows(&log_probs(clean)?, &log_probs(perturbed)?)?)
}

/// ℓ(x) = −log(1/(x + ε) − 1 + ε), a clipped log-odds, as a constant.
fn clipped_log_odds(probs: &Tensor) -> Result<Tensor> {
    (probs.detach() + STABLE_KL_EPS)?.recip()?.affine(1.0, STABLE_KL_EPS - 1.0)?.log()?.neg()
}

/// mt-dnn's `stable_kl`, the SMART ascent loss: 2·Σ_c p_c·(ℓ(p_c) − ℓ(q_c)). Both log-odds are
/// constants, so the gradient flows only through the leading p_c.
pub fn stable_kl(perturbed: &Tensor, clean: &Tensor, reduction: Reduction) -> Result<Tensor> {
    let p = log_probs(perturbed)?.exp()?;
    let q = log_probs(clean)?.exp()?.detach();
    let odds_gap = (clipped_log_odds(&p)? - clipped_log_odds(&q)?)?;
    reduction.apply(&((p * odds_gap)?.sum(D::Minus1)? * 2.0)?)
}

/// ‖perturbed − clean‖² per row, no stop-gradient (SiFT's `mse` ascent option; callers detach).
/// DeBERTa's `mse` is a mean over all elements: the same direction, and the ascent normalises it away.
pub fn squared_error(perturbed: &Tensor, clean: &Tensor, reduction: Reduction) -> Result<Tensor> {
    let diff = (perturbed.to_dtype(DType::F32)? - clean.to_dtype(DType::F32)?)?;
    reduction.apply(&diff.sqr()?.sum(D::Minus1)?)
}

/// The mean cross-entropy of logits `[B, C]` against `u32` labels `[B]`, in f32.
pub fn cross_entropy(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    candle_nn::loss::cross_entropy(&logits.to_dtype(DType::F32)?, labels)
}

/// A scalar loss tensor as an `f32`, for logging.
pub fn scalar(loss: &Tensor) -> Result<f32> {
    loss.to_dtype(DType::F32)?.to_scalar::<f32>()
}

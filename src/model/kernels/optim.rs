//! In-place AdamW and the gradient norm, without temporaries.
//!
//! The composed update allocates about ten parameter-sized tensors per variable and step; for a
//! BERT-sized vocabulary that is a gigabyte of fresh pages each step. This kernel updates the weight
//! where it is, and the moments with it in the same pass: AdamW is bound by memory traffic (a fifth of
//! a short-sequence step), and one pass reads the weight, gradient and both moments once and writes
//! three of them (28 bytes per parameter, against 40 for a pass per moment and one for the weight).
use std::sync::Mutex;

use candle_core::{CpuStorage, InplaceOp2, Layout, Result, Tensor};
use rayon::prelude::*;

use super::math::sum_map;
use super::{fused, simd_fn, slice, slice_mut, with_data, CHUNK, PARALLEL_MIN};

/// The scalars of one AdamW update of one parameter.
#[derive(Debug, Clone, Copy)]
pub struct AdamWStep {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Decoupled weight decay (0 for parameters that take none).
    pub weight_decay: f64,
    /// 1 − β₁ᵗ.
    pub bias_correction1: f64,
    /// 1 − β₂ᵗ.
    pub bias_correction2: f64,
}

/// Whether [`adamw_in_place`] can update this weight: a contiguous f32 tensor on the fused CPU path.
pub fn adamw_applies(weight: &Tensor) -> bool {
    fused(weight) && weight.is_contiguous()
}

/// Updates `weight` in place from its gradient `grad`, and its first and second moments `m` and `v`
/// (one element per weight element) with it, in one pass. The weight must satisfy [`adamw_applies`].
pub fn adamw_in_place(weight: &Tensor, grad: &Tensor, m: &mut [f32], v: &mut [f32], step: &AdamWStep) -> Result<()> {
    let n = weight.elem_count();
    if !adamw_applies(weight) || !fused(grad) || grad.shape() != weight.shape() || m.len() != n || v.len() != n {
        candle_core::bail!(
            "adamw: weight {:?} ({:?}), gradient {:?}, moments of {} and {}",
            weight.shape(),
            weight.dtype(),
            grad.shape(),
            m.len(),
            v.len()
        );
    }
    weight.inplace_op2(&grad.contiguous()?, &AdamWUpdate { step: *step, moments: Mutex::new((m, v)) })
}

/// Σ x², accumulated in f64, for a CPU f32 tensor; `None` for other tensors.
pub fn sum_of_squares(x: &Tensor) -> Result<Option<f64>> {
    if !fused(x) {
        return Ok(None);
    }
    with_data(x, "sum_of_squares", |data| {
        Ok(Some(if data.len() < PARALLEL_MIN {
            squares(data)
        } else {
            data.par_chunks(super::CHUNK).map(squares).sum()
        }))
    })
}

simd_fn! {
    /// Σ x² of a chunk, in f64 from f32 partial sums (chunks are short enough for f32).
    fn squares(x: &[f32]) -> f64 {
        sum_map(x, |v| v * v) as f64
    }
}

simd_fn! {
    /// m ← β₁·m + (1 − β₁)·g; v ← β₂·v + (1 − β₂)·g²; w ← w·decay − lr · (m / c₁) / (√(v / c₂) + ε).
    fn adamw_update(
        weight: &mut [f32],
        grad: &[f32],
        m: &mut [f32],
        v: &mut [f32],
        betas: (f32, f32),
        rests: (f32, f32),
        corrections: (f32, f32),
        eps: f32,
        lr: f32,
        decay: f32,
    ) {
        let ((beta1, beta2), (rest1, rest2), (c1, c2)) = (betas, rests, corrections);
        for (((w, &g), m), v) in weight.iter_mut().zip(grad).zip(m.iter_mut()).zip(v.iter_mut()) {
            *m = *m * beta1 + g * rest1;
            *v = *v * beta2 + g * g * rest2;
            let update = (*m / c1) / ((*v / c2).sqrt() + eps);
            *w = *w * decay - update * lr;
        }
    }
}

/// One AdamW update of the weight (the op's destination) and of the moments it holds.
struct AdamWUpdate<'a> {
    step: AdamWStep,
    /// (m, v). A lock only because the op is shared by reference; one thread takes it once.
    moments: Mutex<(&'a mut [f32], &'a mut [f32])>,
}

impl InplaceOp2 for AdamWUpdate<'_> {
    fn name(&self) -> &'static str {
        "adamw"
    }

    fn cpu_fwd(&self, weight: &mut CpuStorage, wl: &Layout, grad: &CpuStorage, gl: &Layout) -> Result<()> {
        let s = &self.step;
        let weight = slice_mut(weight, wl, self.name())?;
        let grad = slice(grad, gl, self.name())?;
        let mut moments = self.moments.lock().map_err(|_| candle_core::Error::Msg("adamw: poisoned".into()))?;
        let (m, v) = &mut *moments;
        let betas = (s.beta1 as f32, s.beta2 as f32);
        let rests = ((1.0 - s.beta1) as f32, (1.0 - s.beta2) as f32);
        let corrections = (s.bias_correction1 as f32, s.bias_correction2 as f32);
        let (eps, lr, decay) = (s.eps as f32, s.lr as f32, (1.0 - s.lr * s.weight_decay) as f32);
        let update = |w: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]| {
            adamw_update(w, g, m, v, betas, rests, corrections, eps, lr, decay)
        };
        if weight.len() < PARALLEL_MIN {
            update(weight, grad, m, v);
        } else {
            let parts = weight.par_chunks_mut(CHUNK).zip(grad.par_chunks(CHUNK));
            let moments = m.par_chunks_mut(CHUNK).zip(v.par_chunks_mut(CHUNK));
            parts.zip(moments).for_each(|((w, g), (m, v))| update(w, g, m, v));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{assert_close, random};
    use super::*;

    fn composed(w: &Tensor, g: &Tensor, m: &Tensor, v: &Tensor, s: &AdamWStep) -> Result<(Tensor, Tensor, Tensor)> {
        let m = ((m * s.beta1)? + (g * (1.0 - s.beta1))?)?;
        let v = ((v * s.beta2)? + (g.sqr()? * (1.0 - s.beta2))?)?;
        let update = ((&m / s.bias_correction1)? / ((&v / s.bias_correction2)?.sqrt()? + s.eps)?)?;
        let w = ((w * (1.0 - s.lr * s.weight_decay))? - (update * s.lr)?)?;
        Ok((w, m, v))
    }

    #[test]
    fn adamw_matches_the_composed_update() -> Result<()> {
        // An odd size, large enough to take the parallel path.
        let shape = [3, 40_001];
        let step = AdamWStep {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
            bias_correction1: 1.0 - 0.9f64.powi(3),
            bias_correction2: 1.0 - 0.999f64.powi(3),
        };
        let (w, g) = (random(&shape, 1.0, 1), random(&shape, 0.1, 2));
        let (m, v) = (random(&shape, 0.01, 3), random(&shape, 1e-4, 4).abs()?);
        let (want_w, want_m, want_v) = composed(&w, &g, &m, &v, &step)?;
        let host = |t: &Tensor| t.flatten_all()?.to_vec1::<f32>();
        let (mut m, mut v) = (host(&m)?, host(&v)?);
        adamw_in_place(&w, &g, &mut m, &mut v, &step)?;
        assert_close(&Tensor::from_vec(m, &shape, w.device())?, &want_m, 1e-6, "m");
        assert_close(&Tensor::from_vec(v, &shape, w.device())?, &want_v, 1e-6, "v");
        assert_close(&w, &want_w, 1e-6, "w");
        Ok(())
    }

    #[test]
    fn adamw_refuses_what_it_cannot_update() -> Result<()> {
        let w = random(&[4, 6], 1.0, 1);
        let t = random(&[6, 4], 1.0, 2).t()?;
        let step = AdamWStep {
            lr: 1.0,
            beta1: 0.9,
            beta2: 0.9,
            eps: 1e-8,
            weight_decay: 0.0,
            bias_correction1: 1.0,
            bias_correction2: 1.0,
        };
        let (mut m, mut v) = (vec![0f32; 24], vec![0f32; 24]);
        assert!(adamw_in_place(&w, &t.contiguous()?, &mut m, &mut v, &step).is_ok());
        assert!(adamw_in_place(&w, &t.t()?, &mut m, &mut v, &step).is_err(), "a gradient of another shape");
        assert!(adamw_in_place(&w, &w.copy()?, &mut m[..23], &mut v, &step).is_err(), "a short moment");
        let half = w.to_dtype(candle_core::DType::BF16)?;
        assert!(!adamw_applies(&half));
        assert!(adamw_in_place(&half, &half, &mut m, &mut v, &step).is_err());
        assert!(!adamw_applies(&t), "a transposed view");
        Ok(())
    }

    #[test]
    fn sum_of_squares_matches() -> Result<()> {
        for n in [7, 100_003] {
            let x = random(&[n], 1.0, 5);
            let want = x.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
            let got = sum_of_squares(&x)?.expect("f32 on the CPU");
            assert!((got - want).abs() <= 1e-5 * want, "{n}: {got} vs {want}");
        }
        Ok(())
    }
}

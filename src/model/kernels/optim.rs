//! In-place AdamW and the gradient norm, without temporaries.
//!
//! The composed update allocates about ten parameter-sized tensors per variable and step; for a
//! BERT-sized vocabulary that is a gigabyte of fresh pages each step. These kernels update the moments
//! and the weights where they are, in three passes.
use candle_core::{CpuStorage, InplaceOp2, InplaceOp3, Layout, Result, Tensor};
use rayon::prelude::*;

use super::math::sum_map;
use super::{for_rows, fused, simd_fn, slice, slice_mut, with_data, PARALLEL_MIN};

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

/// Updates `m`, `v` and `weight` in place from the gradient `grad`, when all four are contiguous f32
/// CPU tensors of one shape; returns `false` (and touches nothing) otherwise, for the caller to take
/// the composed path. `m` and `v` must not share storage.
pub fn adamw_in_place(weight: &Tensor, grad: &Tensor, m: &Tensor, v: &Tensor, step: &AdamWStep) -> Result<bool> {
    let tensors = [weight, grad, m, v];
    let applicable = tensors.iter().all(|t| fused(t) && t.is_contiguous() && t.shape() == weight.shape());
    if !applicable {
        return Ok(false);
    }
    m.inplace_op2(grad, &Moment { beta: step.beta1, squared: false })?;
    v.inplace_op2(grad, &Moment { beta: step.beta2, squared: true })?;
    weight.inplace_op3(m, v, &WeightUpdate(*step))?;
    Ok(true)
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
    fn moment_update(moment: &mut [f32], grad: &[f32], beta: f32, rest: f32, squared: bool) {
        if squared {
            moment.iter_mut().zip(grad).for_each(|(m, &g)| *m = *m * beta + g * g * rest);
        } else {
            moment.iter_mut().zip(grad).for_each(|(m, &g)| *m = *m * beta + g * rest);
        }
    }
}

simd_fn! {
    fn weight_update(weight: &mut [f32], m: &[f32], v: &[f32], c1: f32, c2: f32, eps: f32, lr: f32, decay: f32) {
        for ((w, &m), &v) in weight.iter_mut().zip(m).zip(v) {
            let update = (m / c1) / ((v / c2).sqrt() + eps);
            *w = *w * decay - update * lr;
        }
    }
}

/// m ← β·m + (1 − β)·g, or with g² for the second moment.
struct Moment {
    beta: f64,
    squared: bool,
}

impl InplaceOp2 for Moment {
    fn name(&self) -> &'static str {
        "adamw-moment"
    }

    fn cpu_fwd(&self, moment: &mut CpuStorage, ml: &Layout, grad: &CpuStorage, gl: &Layout) -> Result<()> {
        let moment = slice_mut(moment, ml, self.name())?;
        let grad = slice(grad, gl, self.name())?;
        let (beta, rest) = (self.beta as f32, (1.0 - self.beta) as f32);
        for_rows(moment, 1, |start, chunk| {
            moment_update(chunk, &grad[start..start + chunk.len()], beta, rest, self.squared)
        });
        Ok(())
    }
}

/// w ← w·(1 − lr·λ) − lr · (m / c₁) / (√(v / c₂) + ε).
struct WeightUpdate(AdamWStep);

impl InplaceOp3 for WeightUpdate {
    fn name(&self) -> &'static str {
        "adamw-weights"
    }

    fn cpu_fwd(
        &self,
        weight: &mut CpuStorage,
        wl: &Layout,
        m: &CpuStorage,
        ml: &Layout,
        v: &CpuStorage,
        vl: &Layout,
    ) -> Result<()> {
        let s = &self.0;
        let weight = slice_mut(weight, wl, self.name())?;
        let (m, v) = (slice(m, ml, self.name())?, slice(v, vl, self.name())?);
        let (c1, c2, eps, lr) = (s.bias_correction1 as f32, s.bias_correction2 as f32, s.eps as f32, s.lr as f32);
        let decay = (1.0 - s.lr * s.weight_decay) as f32;
        for_rows(weight, 1, |start, chunk| {
            let span = start..start + chunk.len();
            weight_update(chunk, &m[span.clone()], &v[span], c1, c2, eps, lr, decay)
        });
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
        assert!(adamw_in_place(&w, &g, &m, &v, &step)?);
        assert_close(&m, &want_m, 1e-6, "m");
        assert_close(&v, &want_v, 1e-6, "v");
        assert_close(&w, &want_w, 1e-6, "w");
        Ok(())
    }

    #[test]
    fn adamw_declines_what_it_cannot_update() -> Result<()> {
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
        assert!(!adamw_in_place(&w, &t, &w.copy()?, &w.copy()?, &step)?);
        let half = w.to_dtype(candle_core::DType::BF16)?;
        assert!(!adamw_in_place(&half, &half, &half, &half, &step)?);
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

//! The exact (erf) GELU as one node, with a vectorized erf.
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};

use super::math::erf_with_gaussian;
use super::{for_rows, fused, output_buffer, simd_fn, slice, tensor, with_data};

/// 1/√2.
const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
/// 1/√(2π).
const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;

/// x·Φ(x), Φ the standard normal CDF (transformers' `gelu`).
pub fn gelu_erf(x: &Tensor) -> Result<Tensor> {
    if fused(x) {
        x.contiguous()?.apply_op1(GeluErf)
    } else {
        x.gelu_erf()
    }
}

simd_fn! {
    /// y = x·Φ(x) elementwise.
    pub(crate) fn gelu_forward(x: &[f32], y: &mut [f32]) {
        for (o, &v) in y.iter_mut().zip(x) {
            let (erf, _) = erf_with_gaussian(v * FRAC_1_SQRT_2);
            *o = 0.5 * v * (1.0 + erf);
        }
    }
}

simd_fn! {
    /// dx = dy·(Φ(x) + x·φ(x)) elementwise.
    pub(crate) fn gelu_backward(x: &[f32], dy: &[f32], dx: &mut [f32]) {
        for ((o, &v), &g) in dx.iter_mut().zip(x).zip(dy) {
            let (erf, gaussian) = erf_with_gaussian(v * FRAC_1_SQRT_2);
            *o = g * (0.5 * (1.0 + erf) + v * gaussian * FRAC_1_SQRT_2PI);
        }
    }
}

struct GeluErf;

impl CustomOp1 for GeluErf {
    fn name(&self) -> &'static str {
        "gelu-erf"
    }

    fn cpu_fwd(&self, x: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = slice(x, layout, self.name())?;
        // SAFETY: `gelu_forward` writes every element of every row block.
        let mut y = unsafe { output_buffer(x.len()) };
        for_rows(&mut y, 1, |start, out| gelu_forward(&x[start..start + out.len()], out));
        Ok((CpuStorage::F32(y), layout.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        with_data(x, self.name(), |xs| {
            with_data(grad, self.name(), |dy| {
                // SAFETY: `gelu_backward` writes every element of every row block.
                let mut dx = unsafe { output_buffer(xs.len()) };
                for_rows(&mut dx, 1, |start, out| {
                    let span = start..start + out.len();
                    gelu_backward(&xs[span.clone()], &dy[span], out)
                });
                tensor(dx, x.shape()).map(Some)
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{assert_same_op, var};
    use super::*;

    #[test]
    fn matches_candle_gelu_erf() -> Result<()> {
        for (shape, seed) in [(vec![3, 7], 1), (vec![5, 40_003], 2)] {
            let x = var(&shape, 6.0, seed);
            let (got, want) = (gelu_erf(&x)?, x.gelu_erf()?);
            assert_same_op(&got, &want, &[("x", &x)], 1e-6, 1e-6)?;
        }
        Ok(())
    }
}

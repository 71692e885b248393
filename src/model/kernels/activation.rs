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
        y.iter_mut().zip(x).for_each(|(o, &v)| *o = gelu(v));
    }
}

/// x·Φ(x) of one element.
#[inline(always)]
fn gelu(x: f32) -> f32 {
    let (erf, _) = erf_with_gaussian(x * FRAC_1_SQRT_2);
    0.5 * x * (1.0 + erf)
}

simd_fn! {
    /// z += bias on each row of `bias.len()` (when given), then y = gelu(z): a linear layer's bias and
    /// GELU in the one pass over its product that the GELU needs anyway.
    pub(crate) fn bias_gelu(z: &mut [f32], bias: Option<&[f32]>, y: &mut [f32]) {
        let width = bias.map_or(z.len(), <[f32]>::len).max(1);
        for (z, y) in z.chunks_mut(width).zip(y.chunks_mut(width)) {
            if let Some(bias) = bias {
                z.iter_mut().zip(bias).for_each(|(v, &b)| *v += b);
            }
            y.iter_mut().zip(z.iter()).for_each(|(o, &v)| *o = gelu(v));
        }
    }
}

simd_fn! {
    /// z = gelu(z + bias) in place, the bias on each row of `bias.len()` (when given).
    pub(crate) fn bias_gelu_in_place(z: &mut [f32], bias: Option<&[f32]>) {
        let width = bias.map_or(z.len(), <[f32]>::len).max(1);
        for z in z.chunks_mut(width) {
            match bias {
                Some(bias) => z.iter_mut().zip(bias).for_each(|(v, &b)| *v = gelu(*v + b)),
                None => z.iter_mut().for_each(|v| *v = gelu(*v)),
            }
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

simd_fn! {
    /// `gelu_backward` that also recomputes the GELU's output: dx = dy·(Φ(x) + x·φ(x)), and y = x·Φ(x)
    /// written over dy (bit for bit what `gelu_forward` gives), from the one erf that both need.
    pub(crate) fn gelu_backward_recomputing(x: &[f32], dy_then_y: &mut [f32], dx: &mut [f32]) {
        for ((o, g), &v) in dx.iter_mut().zip(dy_then_y.iter_mut()).zip(x) {
            let (erf, gaussian) = erf_with_gaussian(v * FRAC_1_SQRT_2);
            *o = *g * (0.5 * (1.0 + erf) + v * gaussian * FRAC_1_SQRT_2PI);
            *g = 0.5 * v * (1.0 + erf);
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

    #[test]
    fn the_recomputing_backward_pass_restores_the_forward_output_bit_for_bit() {
        let x: Vec<f32> = (0..1000).map(|i| (i as f32 - 500.0) * 0.013).collect();
        let dy: Vec<f32> = (0..1000).map(|i| ((i * 7919) % 101) as f32 * 0.01 - 0.5).collect();
        let (mut y, mut dx) = (vec![0f32; x.len()], vec![0f32; x.len()]);
        gelu_forward(&x, &mut y);
        gelu_backward(&x, &dy, &mut dx);
        let (mut dy_then_y, mut dx_recomputing) = (dy.clone(), vec![0f32; x.len()]);
        gelu_backward_recomputing(&x, &mut dy_then_y, &mut dx_recomputing);
        assert_eq!(dx_recomputing, dx);
        assert_eq!(dy_then_y, y);
    }
}

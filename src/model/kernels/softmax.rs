//! Softmax over the last dimension as one node; backward dx = y·(dy − Σ dy·y).
use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor, D};

use super::math::{exp, max_of, sum_map, sum_zip};
use super::{for_rows, fused, simd_fn, slice, tensor, with_data};

/// Softmax over the last dimension. Half-precision inputs get their statistics (max, sum of
/// exponentials) in f32, as PyTorch's autocast does, and the probabilities back in their dtype.
pub fn softmax(x: &Tensor) -> Result<Tensor> {
    if fused(x) {
        x.contiguous()?.apply_op1(Softmax)
    } else if matches!(x.dtype(), DType::BF16 | DType::F16) {
        candle_nn::ops::softmax(&x.to_dtype(DType::F32)?, D::Minus1)?.to_dtype(x.dtype())
    } else {
        candle_nn::ops::softmax(x, D::Minus1)
    }
}

/// Softmax of one row in place: max-shifted, as the composed op.
#[inline(always)]
fn softmax_row(row: &mut [f32]) {
    let max = max_of(row);
    row.iter_mut().for_each(|v| *v = exp(*v - max));
    let inv_sum = 1.0 / sum_map(row, |v| v);
    row.iter_mut().for_each(|v| *v *= inv_sum);
}

simd_fn! {
    /// Softmax of each row of `width` in place, after adding `bias` (one term per column) when given.
    pub(crate) fn softmax_rows(rows: &mut [f32], width: usize, bias: Option<&[f32]>) {
        for row in rows.chunks_exact_mut(width) {
            if let Some(bias) = bias {
                row.iter_mut().zip(bias).for_each(|(s, &b)| *s += b);
            }
            softmax_row(row);
        }
    }
}

simd_fn! {
    /// dx = y·(dy − Σ dy·y) for each row of `width`, overwriting the upstream gradient `grad` with dx.
    pub(crate) fn softmax_backward_rows(y: &[f32], grad: &mut [f32], width: usize) {
        for (y, grad) in y.chunks_exact(width).zip(grad.chunks_exact_mut(width)) {
            let dot = sum_zip(grad, y, |g, p| g * p);
            grad.iter_mut().zip(y).for_each(|(g, &p)| *g = p * (*g - dot));
        }
    }
}

struct Softmax;

impl CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        "softmax"
    }

    fn cpu_fwd(&self, x: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let mut y = slice(x, layout, self.name())?.to_vec();
        let width = layout.dims().last().copied().unwrap_or(1);
        for_rows(&mut y, width, |_, rows| softmax_rows(rows, width, None));
        Ok((CpuStorage::F32(y), layout.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let width = y.dim(D::Minus1)?;
        with_data(y, self.name(), |ys| {
            let mut dx = with_data(grad, self.name(), |dy| Ok(dy.to_vec()))?;
            for_rows(&mut dx, width, |first, out| {
                softmax_backward_rows(&ys[first * width..first * width + out.len()], out, width)
            });
            tensor(dx, y.shape()).map(Some)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{assert_same_op, var};
    use super::*;

    #[test]
    fn matches_the_composed_softmax() -> Result<()> {
        for (shape, seed) in [(vec![3, 7], 1), (vec![2, 4, 33, 65], 2)] {
            let x = var(&shape, 8.0, seed);
            let (got, want) = (softmax(&x)?, candle_nn::ops::softmax(&x, D::Minus1)?);
            assert_same_op(&got, &want, &[("x", &x)], 1e-6, 1e-6)?;
        }
        Ok(())
    }

    #[test]
    fn masked_entries_get_zero_probability() -> Result<()> {
        let x =
            candle_core::Tensor::new(&[[0.5f32, f32::MIN, 1.0], [f32::MIN, f32::MIN, 2.0]], &candle_core::Device::Cpu)?;
        let y = softmax(&x)?.to_vec2::<f32>()?;
        assert_eq!(y[0][1], 0.0);
        assert_eq!(y[1], vec![0.0, 0.0, 1.0]);
        Ok(())
    }
}

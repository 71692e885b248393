//! LayerNorm over the last dimension, with and without affine parameters, and after a residual
//! connection with dropout, as one node each.
//!
//! Backward recomputes each row's mean and inverse deviation from the input (two cheap passes)
//! instead of saving them, and forms dγ and dβ only when those are tracked.
use candle_core::{CpuStorage, CustomOp1, CustomOp3, DType, Layout, Result, Shape, Tensor, D};

use super::dropout::{add_in_place, dropout, sum_of, DropoutMask};
use super::math::{sum_map, sum_zip, sum_zip3};
use super::{for_rows, for_rows_summing, fused, output_buffer, simd_fn, slice, tensor, with_data};

/// `(x − mean) / √(var + eps) · weight + bias` over the last dimension.
pub fn layer_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
    if fused(x) && fused(weight) && fused(bias) {
        let op = LayerNorm { eps: eps as f32 };
        x.contiguous()?.apply_op3(&weight.contiguous()?, &bias.contiguous()?, op)
    } else {
        composed_normalize(x, eps)?.broadcast_mul(weight)?.broadcast_add(bias)
    }
}

/// `layer_norm(dropout(x) + residual)` as one node (the output blocks of a transformer layer): the
/// sum is formed row by row, in forward and again in backward, and never stored.
pub fn residual_layer_norm(
    x: &Tensor,
    residual: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
    dropout_mask: Option<&DropoutMask>,
) -> Result<Tensor> {
    if x.shape() != residual.shape() || dropout_mask.is_some_and(|m| m.len() != x.elem_count()) {
        candle_core::bail!("residual layer norm: x {:?}, residual {:?}", x.dims(), residual.dims());
    }
    if ![x, residual, weight, bias].into_iter().all(fused) {
        let x = match dropout_mask {
            Some(mask) => dropout(x, mask)?,
            None => x.clone(),
        };
        return layer_norm(&(x + residual)?, weight, bias, eps);
    }
    // Three operands at most: γ and β travel stacked as `[2, H]`.
    let params = Tensor::stack(&[weight, bias], 0)?;
    let op = ResidualLayerNorm { eps: eps as f32, dropout_mask: dropout_mask.cloned() };
    x.contiguous()?.apply_op3(&residual.contiguous()?, &params, op)
}

/// `(x − mean) / √(var + eps)` over the last dimension, statistics in f32 whatever the dtype.
pub fn normalize(x: &Tensor, eps: f64) -> Result<Tensor> {
    if fused(x) {
        x.contiguous()?.apply_op1(LayerNorm { eps: eps as f32 })
    } else {
        composed_normalize(x, eps)
    }
}

/// The composed normalisation (other devices and dtypes; the reference in tests).
pub fn composed_normalize(x: &Tensor, eps: f64) -> Result<Tensor> {
    let dtype = x.dtype();
    let x = x.to_dtype(DType::F32)?;
    let mean = x.mean_keepdim(D::Minus1)?;
    let centered = x.broadcast_sub(&mean)?;
    let var = centered.sqr()?.mean_keepdim(D::Minus1)?;
    centered.broadcast_div(&(var + eps)?.sqrt()?)?.to_dtype(dtype)
}

/// The normalisation alone as a one-operand op, the affine LayerNorm as a three-operand op.
#[derive(Debug, Clone, Copy)]
struct LayerNorm {
    eps: f32,
}

/// A row's mean and 1 / √(var + eps).
#[inline(always)]
fn row_stats(row: &[f32], eps: f32) -> (f32, f32) {
    let n = row.len() as f32;
    let mean = sum_map(row, |v| v) / n;
    let var = sum_map(row, |v| (v - mean) * (v - mean)) / n;
    (mean, 1.0 / (var + eps).sqrt())
}

simd_fn! {
    /// Normalises each row of `width` in place, then applies (γ, β) when given.
    fn normalize_rows(rows: &mut [f32], width: usize, eps: f32, affine: Option<(&[f32], &[f32])>) {
        for row in rows.chunks_exact_mut(width) {
            let (mean, inv_std) = row_stats(row, eps);
            match affine {
                Some((w, b)) => {
                    for ((v, &w), &b) in row.iter_mut().zip(w).zip(b) {
                        *v = (*v - mean) * inv_std * w + b;
                    }
                }
                None => row.iter_mut().for_each(|v| *v = (*v - mean) * inv_std),
            }
        }
    }
}

simd_fn! {
    /// The backward pass of rows of `width`: dx = (g − mean(g) − x̂·mean(g·x̂)) / σ with g = dy·γ
    /// (when `dx` is given), and dγ += dy·x̂, dβ += dy into `sums` = [dγ, dβ] (when not empty).
    fn backward_rows(
        x: &[f32],
        dy: &[f32],
        weight: Option<&[f32]>,
        dx: Option<&mut [f32]>,
        sums: &mut [f32],
        width: usize,
        eps: f32,
    ) {
        let n = width as f32;
        let mut dx_rows = dx.map(|dx| dx.chunks_exact_mut(width));
        for (row, g) in x.chunks_exact(width).zip(dy.chunks_exact(width)) {
            let (mean, inv_std) = row_stats(row, eps);
            if !sums.is_empty() {
                let (dw, db) = sums.split_at_mut(width);
                for (((dw, db), &v), &g) in dw.iter_mut().zip(db.iter_mut()).zip(row).zip(g) {
                    *dw += g * (v - mean) * inv_std;
                    *db += g;
                }
            }
            let Some(dx) = dx_rows.as_mut().and_then(|rows| rows.next()) else { continue };
            match weight {
                Some(w) => {
                    let mean_g = sum_zip(g, w, |g, w| g * w) / n;
                    let mean_gx = sum_zip3(g, w, row, |g, w, v| g * w * (v - mean)) * inv_std / n;
                    for (((d, &g), &w), &v) in dx.iter_mut().zip(g).zip(w).zip(row) {
                        *d = (g * w - mean_g - (v - mean) * inv_std * mean_gx) * inv_std;
                    }
                }
                None => {
                    let mean_g = sum_map(g, |g| g) / n;
                    let mean_gx = sum_zip(g, row, |g, v| g * (v - mean)) * inv_std / n;
                    for ((d, &g), &v) in dx.iter_mut().zip(g).zip(row) {
                        *d = (g - mean_g - (v - mean) * inv_std * mean_gx) * inv_std;
                    }
                }
            }
        }
    }
}

impl LayerNorm {
    fn forward(&self, x: &[f32], layout: &Layout, affine: Option<(&[f32], &[f32])>) -> Result<(CpuStorage, Shape)> {
        let h = layout.dims().last().copied().unwrap_or(1);
        let mut y = x.to_vec();
        for_rows(&mut y, h, |_, rows| normalize_rows(rows, h, self.eps, affine));
        Ok((CpuStorage::F32(y), layout.shape().clone()))
    }

    /// dx (when `x` is tracked) and, with `param_sums`, dγ and dβ packed as `[2, H]`.
    fn backward(
        &self,
        x: &Tensor,
        weight: Option<&Tensor>,
        grad: &Tensor,
        param_sums: bool,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let h = x.dim(D::Minus1)?;
        let weight: Option<Vec<f32>> = weight.map(|w| w.flatten_all()?.to_vec1()).transpose()?;
        let weight = weight.as_deref();
        let sums_len = if param_sums { 2 * h } else { 0 };
        let eps = self.eps;
        with_data(x, "layer-norm-backward", |xs| {
            with_data(grad, "layer-norm-backward", |dy| {
                if !x.track_op() {
                    let mut sums = vec![0f32; sums_len];
                    backward_rows(xs, dy, weight, None, &mut sums, h, eps);
                    return Ok((None, param_sums.then(|| tensor(sums, (2, h))).transpose()?));
                }
                // SAFETY: `backward_rows` writes every row of `dx` it is given.
                let mut dx = unsafe { output_buffer(xs.len()) };
                let sums = for_rows_summing(&mut dx, h, sums_len, |first, dx, sums| {
                    let span = first * h..first * h + dx.len();
                    backward_rows(&xs[span.clone()], &dy[span], weight, Some(dx), sums, h, eps)
                });
                let sums = param_sums.then(|| tensor(sums, (2, h))).transpose()?;
                Ok((Some(tensor(dx, x.shape())?), sums))
            })
        })
    }
}

impl CustomOp1 for LayerNorm {
    fn name(&self) -> &'static str {
        "normalize"
    }

    fn cpu_fwd(&self, x: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        self.forward(slice(x, layout, "normalize")?, layout, None)
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(self.backward(x, None, grad, false)?.0)
    }
}

impl CustomOp3 for LayerNorm {
    fn name(&self) -> &'static str {
        "layer-norm"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        xl: &Layout,
        w: &CpuStorage,
        wl: &Layout,
        b: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let name = "layer-norm";
        self.forward(slice(x, xl, name)?, xl, Some((slice(w, wl, name)?, slice(b, bl, name)?)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        bias: &Tensor,
        _y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let param_sums = weight.track_op() || bias.track_op();
        let (dx, sums) = self.backward(x, Some(weight), grad, param_sums)?;
        let Some(sums) = sums else { return Ok((dx, None, None)) };
        let dw = weight.track_op().then(|| sums.get(0)).transpose()?;
        let db = bias.track_op().then(|| sums.get(1)).transpose()?;
        Ok((dx, dw, db))
    }
}

struct ResidualLayerNorm {
    eps: f32,
    dropout_mask: Option<DropoutMask>,
}

impl ResidualLayerNorm {
    /// `out = x · mask + residual` for the rows starting at element `start`.
    fn sum_into(&self, start: usize, x: &[f32], residual: &[f32], out: &mut [f32]) {
        match &self.dropout_mask {
            Some(mask) => {
                mask.apply_to(start, x, out);
                add_in_place(out, residual);
            }
            None => sum_of(x, residual, out),
        }
    }
}

impl CustomOp3 for ResidualLayerNorm {
    fn name(&self) -> &'static str {
        "residual-layer-norm"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        xl: &Layout,
        r: &CpuStorage,
        rl: &Layout,
        p: &CpuStorage,
        pl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let name = self.name();
        let (x, residual, params) = (slice(x, xl, name)?, slice(r, rl, name)?, slice(p, pl, name)?);
        let h = params.len() / 2;
        let (weight, bias) = params.split_at(h);
        // SAFETY: `sum_into` writes every element of every row block.
        let mut y = unsafe { output_buffer(x.len()) };
        for_rows(&mut y, h, |first, out| {
            let span = first * h..first * h + out.len();
            self.sum_into(span.start, &x[span.clone()], &residual[span], out);
            normalize_rows(out, h, self.eps, Some((weight, bias)))
        });
        Ok((CpuStorage::F32(y), xl.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        residual: &Tensor,
        params: &Tensor,
        _y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let name = self.name();
        let h = x.dim(D::Minus1)?;
        let param_sums = params.track_op();
        let weight: Vec<f32> = params.get(0)?.to_vec1()?;
        // SAFETY: `backward_rows` writes every row of `ds` it is given.
        let mut ds = unsafe { output_buffer(x.elem_count()) };
        let sums_len = if param_sums { 2 * h } else { 0 };
        let sums = with_data(x, name, |xs| {
            with_data(residual, name, |rs| {
                with_data(grad, name, |dy| {
                    Ok(for_rows_summing(&mut ds, h, sums_len, |first, ds, sums| {
                        let span = first * h..first * h + ds.len();
                        // SAFETY: `sum_into` writes every element.
                        let mut summed = unsafe { output_buffer(ds.len()) };
                        self.sum_into(span.start, &xs[span.clone()], &rs[span.clone()], &mut summed);
                        backward_rows(&summed, &dy[span], Some(&weight), Some(ds), sums, h, self.eps)
                    }))
                })
            })
        })?;
        let dx = if x.track_op() {
            let mut dx = ds.clone();
            if let Some(mask) = &self.dropout_mask {
                for_rows(&mut dx, 1, |start, chunk| mask.apply_in_place(start, chunk));
            }
            Some(tensor(dx, x.shape())?)
        } else {
            None
        };
        let dr = if residual.track_op() { Some(tensor(ds, x.shape())?) } else { None };
        let dp = if param_sums { Some(tensor(sums, (2, h))?) } else { None };
        Ok((dx, dr, dp))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{assert_close, assert_same_op, loss, var};
    use super::*;

    #[test]
    fn layer_norm_matches_the_composed_one() -> Result<()> {
        for (shape, seed) in [(vec![3, 5, 7], 1), (vec![2, 33, 384], 2), (vec![1, 1], 3)] {
            let h = shape[shape.len() - 1];
            let x = var(&shape, 2.0, seed);
            let w = var(&[h], 1.0, seed + 10);
            let b = var(&[h], 1.0, seed + 20);
            let got = layer_norm(&x, &w, &b, 1e-12)?;
            let want = composed_normalize(&x, 1e-12)?.broadcast_mul(&w)?.broadcast_add(&b)?;
            assert_same_op(&got, &want, &[("x", &x), ("weight", &w), ("bias", &b)], 1e-5, 1e-4)?;
        }
        Ok(())
    }

    #[test]
    fn residual_layer_norm_matches_the_composed_one() -> Result<()> {
        let cases = [(vec![3, 5, 7], 1, true), (vec![2, 45, 384], 2, true), (vec![4, 9], 3, false)];
        for (shape, seed, with_dropout) in cases {
            let h = shape[shape.len() - 1];
            let (x, r) = (var(&shape, 2.0, seed), var(&shape, 2.0, seed + 5));
            let (w, b) = (var(&[h], 1.0, seed + 10), var(&[h], 1.0, seed + 20));
            let mut rng = crate::rng::stream(seed, 0);
            let mask = with_dropout.then(|| DropoutMask::draw(&mut rng, x.elem_count(), 0.25));
            let got = residual_layer_norm(&x, &r, &w, &b, 1e-12, mask.as_ref())?;
            let dropped = match &mask {
                Some(mask) => dropout(&x, mask)?,
                None => x.as_tensor().clone(),
            };
            let summed = (dropped + r.as_tensor())?;
            let want = composed_normalize(&summed, 1e-12)?.broadcast_mul(&w)?.broadcast_add(&b)?;
            let inputs = [("x", &x), ("residual", &r), ("weight", &w), ("bias", &b)];
            assert_same_op(&got, &want, &inputs, 1e-5, 1e-4)?;
        }
        Ok(())
    }

    #[test]
    fn normalize_matches_the_composed_one() -> Result<()> {
        for (shape, seed) in [(vec![4, 9], 1), (vec![2, 17, 129], 2)] {
            let x = var(&shape, 3.0, seed);
            let got = normalize(&x, 1e-7)?;
            let want = composed_normalize(&x, 1e-7)?;
            assert_same_op(&got, &want, &[("x", &x)], 1e-5, 1e-4)?;
        }
        Ok(())
    }

    #[test]
    fn frozen_parameters_and_inputs_are_skipped() -> Result<()> {
        let x = var(&[6, 10], 1.0, 1);
        let (w, b) = (var(&[10], 1.0, 2), var(&[10], 1.0, 3));
        let y = layer_norm(&x, &w.as_tensor().detach(), &b.as_tensor().detach(), 1e-5)?;
        let grads = loss(&y, 4)?.backward()?;
        assert!(grads.get(&x).is_some() && grads.get(&w).is_none() && grads.get(&b).is_none());

        let y = layer_norm(&x.as_tensor().detach(), &w, &b, 1e-5)?;
        let grads = loss(&y, 4)?.backward()?;
        let want = composed_normalize(&x, 1e-5)?.broadcast_mul(&w)?.broadcast_add(&b)?;
        let want = loss(&want, 4)?.backward()?;
        assert!(grads.get(&x).is_none());
        assert_close(grads.get(&w).expect("dw"), want.get(&w).expect("dw"), 1e-5, "weight");
        assert_close(grads.get(&b).expect("db"), want.get(&b).expect("db"), 1e-5, "bias");
        Ok(())
    }
}

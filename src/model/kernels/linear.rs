//! A linear layer `x · Wᵀ + b`, optionally followed by the erf GELU, as one node: two GEMMs and a
//! column sum in backward, each only when its operand is tracked.
use std::sync::OnceLock;

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};

use super::activation::{bias_gelu, bias_gelu_in_place, gelu_backward, gelu_backward_recomputing, gelu_erf};
use super::{
    for_row_pairs, for_rows, fused, matmul, output_buffer, simd_fn, slice, sum_over_rows, tensor, with_data, Mat,
    Threads,
};

/// `x · Wᵀ + b` over the last dimension of `x` (`[.., in]`), weight `[out, in]`, bias `[out]`.
pub fn linear(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    apply(x, weight, bias, false)
}

/// `gelu(x · Wᵀ + b)` (the erf GELU) as one node: the pre-activation is kept inside the op instead of
/// being a graph node of its own, whose gradient Candle would materialise and accumulate.
pub fn linear_gelu(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    apply(x, weight, bias, true)
}

fn apply(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>, gelu: bool) -> Result<Tensor> {
    let (out_dim, in_dim) = weight.dims2()?;
    let Some(&width) = x.dims().last() else { candle_core::bail!("linear: the input is a scalar") };
    if width != in_dim || bias.is_some_and(|b| b.dims() != [out_dim]) {
        let bias = bias.map(|b| b.dims().to_vec());
        candle_core::bail!("linear: input {:?}, weight {:?}, bias {bias:?}", x.dims(), weight.dims());
    }
    if !(fused(x) && fused(weight) && bias.is_none_or(fused)) {
        let mut out_shape = x.dims().to_vec();
        out_shape[x.rank() - 1] = out_dim;
        let y = composed(&x.reshape(((), in_dim))?, weight, bias)?.reshape(out_shape)?;
        return if gelu { gelu_erf(&y) } else { Ok(y) };
    }
    // The op keeps the input's leading dimensions: reshapes would be graph nodes of their own.
    let tracked = x.track_op() || weight.track_op() || bias.is_some_and(Tensor::track_op);
    let op = Linear { in_dim, out_dim, gelu, pre_activation: (gelu && tracked).then(OnceLock::new) };
    let (x, weight) = (x.contiguous()?, weight.contiguous()?);
    match bias {
        Some(bias) => x.apply_op3(&weight, &bias.contiguous()?, op),
        None => x.apply_op2(&weight, op),
    }
}

/// The same layer from Candle's ops (other devices and dtypes; the reference in tests).
pub fn composed(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let y = x.matmul(&weight.t()?)?;
    match bias {
        Some(bias) => y.broadcast_add(bias),
        None => Ok(y),
    }
}

simd_fn! {
    /// Adds every row of `rows` (rows of `acc.len()`) into `acc`.
    fn add_rows(rows: &[f32], acc: &mut [f32]) {
        for row in rows.chunks_exact(acc.len()) {
            acc.iter_mut().zip(row).for_each(|(a, &g)| *a += g);
        }
    }
}

struct Linear {
    in_dim: usize,
    out_dim: usize,
    /// Whether the erf GELU follows, the bias then added in the GELU's pass over the product.
    gelu: bool,
    /// With a GELU whose backward may run (an operand is tracked): the pre-activation `x · Wᵀ + b`,
    /// written by the forward pass for the backward pass. Without one the GELU runs in place.
    pre_activation: Option<OnceLock<Vec<f32>>>,
}

impl Linear {
    fn forward(&self, x: &[f32], x_shape: &Shape, weight: &[f32], bias: Option<&[f32]>) -> Result<(CpuStorage, Shape)> {
        let rows = x.len() / self.in_dim.max(1);
        let weight = Mat::dense(weight, self.out_dim, self.in_dim);
        // With a GELU the bias is added in the GELU's pass over the product.
        let mut y = product(x, rows, weight, bias.filter(|_| !self.gelu))?;
        if self.gelu {
            let (activation, pre_activation) = bias_gelu_rows(y, self.out_dim, bias, self.pre_activation.is_some());
            if let (Some(saved), Some(pre_activation)) = (&self.pre_activation, pre_activation) {
                saved.set(pre_activation).map_err(|_| candle_core::Error::Msg("linear: forward ran twice".into()))?;
            }
            y = activation;
        }
        let mut out_shape = x_shape.dims().to_vec();
        if let Some(last) = out_shape.last_mut() {
            *last = self.out_dim;
        }
        Ok((CpuStorage::F32(y), Shape::from(out_shape)))
    }

    /// (dx, dW, db), each only for a tracked operand.
    fn backward(
        &self,
        x: &Tensor,
        weight: &Tensor,
        bias: Option<&Tensor>,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        with_data(grad, "linear-backward", |dy| match &self.pre_activation {
            Some(saved) => {
                let Some(z) = saved.get() else { candle_core::bail!("linear: backward before forward") };
                self.backward_from(x, weight, bias, &gelu_gradient(z, dy))
            }
            None => self.backward_from(x, weight, bias, dy),
        })
    }

    /// (dx, dW, db) from the gradient `dy` of the product `x · Wᵀ + b`.
    fn backward_from(
        &self,
        x: &Tensor,
        weight: &Tensor,
        bias: Option<&Tensor>,
        dy: &[f32],
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (i, o) = (self.in_dim, self.out_dim);
        let rows = dy.len() / o.max(1);
        let dx = if x.track_op() {
            let dx = with_data(weight, "linear-backward", |w| input_gradient(dy, rows, Mat::dense(w, o, i)))?;
            Some(tensor(dx, x.shape())?)
        } else {
            None
        };
        let dw = if weight.track_op() {
            // SAFETY: the product (no accumulation) writes every element.
            let mut dw = unsafe { output_buffer(o * i) };
            with_data(x, "linear-backward", |x| {
                weight_gradient_into(Mat::dense(dy, rows, o), Mat::dense(x, rows, i), &mut dw, i)
            })?;
            Some(tensor(dw, (o, i))?)
        } else {
            None
        };
        let db = match bias {
            Some(bias) if bias.track_op() => Some(tensor(bias_gradient(dy, o), o)?),
            _ => None,
        };
        Ok((dx, dw, db))
    }
}

/// `x · Wᵀ` for the `rows` rows of `x`, `weight` the `[out, in]` matrix (its rows may be strided: a
/// packed operand), each row of the product starting as `bias` when one is given.
pub(super) fn product(x: &[f32], rows: usize, weight: Mat, bias: Option<&[f32]>) -> Result<Vec<f32>> {
    let out_dim = weight.rows;
    // SAFETY: every row is the bias, written in parallel below, or the product overwrites it.
    let mut y = unsafe { output_buffer(rows * out_dim) };
    if let Some(bias) = bias {
        for_rows(&mut y, out_dim, |_, block| block.chunks_mut(out_dim).for_each(|row| row.copy_from_slice(bias)));
    }
    matmul(&mut y, out_dim, Mat::dense(x, rows, weight.cols), weight.t(), 1.0, bias.is_some(), Threads::Pool)?;
    Ok(y)
}

/// The gradient `dy · W` of a product's input, from the gradient `dy` of its `rows` rows.
pub(super) fn input_gradient(dy: &[f32], rows: usize, weight: Mat) -> Result<Vec<f32>> {
    // SAFETY: the product (no accumulation) writes every element.
    let mut dx = unsafe { output_buffer(rows * weight.cols) };
    matmul(&mut dx, weight.cols, Mat::dense(dy, rows, weight.rows), weight, 1.0, false, Threads::Pool)?;
    Ok(dx)
}

/// The gradient `dyᵀ · x` of a product's weight (`dy` and `x` the product's output gradient and input,
/// `rows` × out and `rows` × in), written into the first columns of `dw`'s rows, `stride` apart.
pub(super) fn weight_gradient_into(dy: Mat, x: Mat, dw: &mut [f32], stride: usize) -> Result<()> {
    matmul(dw, stride, dy.t(), x, 1.0, false, Threads::Pool)
}

/// The gradient of a bias: the rows of `dy`, of `width`, summed.
pub(super) fn bias_gradient(dy: &[f32], width: usize) -> Vec<f32> {
    let rows = dy.len() / width.max(1);
    sum_over_rows(rows, width, width, |first, count, acc| add_rows(&dy[first * width..(first + count) * width], acc))
}

/// gelu(z + bias) from a product `z` with rows of `width`, the bias on each row when given. In place,
/// unless `keep`: then into a new buffer, with `z + bias` returned too for the backward pass.
pub(super) fn bias_gelu_rows(
    mut z: Vec<f32>,
    width: usize,
    bias: Option<&[f32]>,
    keep: bool,
) -> (Vec<f32>, Option<Vec<f32>>) {
    if !keep {
        for_rows(&mut z, width, |_, block| bias_gelu_in_place(block, bias));
        return (z, None);
    }
    // SAFETY: `bias_gelu` writes every element of every block of rows.
    let mut y = unsafe { output_buffer(z.len()) };
    for_row_pairs(&mut z, &mut y, width, |_, z, y| bias_gelu(z, bias, y));
    (y, Some(z))
}

/// The gradient of the pre-activation `z` of a GELU from the gradient `dy` of its output.
pub(super) fn gelu_gradient(z: &[f32], dy: &[f32]) -> Vec<f32> {
    // SAFETY: `gelu_backward` writes every element of every row block.
    let mut dz = unsafe { output_buffer(dy.len()) };
    for_rows(&mut dz, 1, |start, out| {
        let span = start..start + out.len();
        gelu_backward(&z[span.clone()], &dy[span], out)
    });
    dz
}

impl CustomOp2 for Linear {
    fn name(&self) -> &'static str {
        "linear"
    }

    fn cpu_fwd(&self, x: &CpuStorage, xl: &Layout, w: &CpuStorage, wl: &Layout) -> Result<(CpuStorage, Shape)> {
        self.forward(slice(x, xl, "linear")?, xl.shape(), slice(w, wl, "linear")?, None)
    }

    fn bwd(&self, x: &Tensor, weight: &Tensor, _y: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, _) = self.backward(x, weight, None, grad)?;
        Ok((dx, dw))
    }
}

impl CustomOp3 for Linear {
    fn name(&self) -> &'static str {
        "linear"
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
        let name = "linear";
        self.forward(slice(x, xl, name)?, xl.shape(), slice(w, wl, name)?, Some(slice(b, bl, name)?))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        bias: &Tensor,
        _y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        self.backward(x, weight, Some(bias), grad)
    }
}

/// The gradient of the pre-activation `z` of a GELU from the gradient of its output, which `dy_then_y`
/// holds on entry and the GELU's output, recomputed in the same pass, on return: a block that keeps
/// only `z` for its backward pass still has the output for its next layer's weight gradient.
pub(super) fn gelu_gradient_recomputing(z: &[f32], dy_then_y: &mut [f32], width: usize) -> Vec<f32> {
    // SAFETY: `gelu_backward_recomputing` writes every element of every block of rows.
    let mut dz = unsafe { output_buffer(dy_then_y.len()) };
    for_row_pairs(dy_then_y, &mut dz, width, |first, dy_then_y, dz| {
        let span = first * width..first * width + dz.len();
        gelu_backward_recomputing(&z[span], dy_then_y, dz)
    });
    dz
}

/// `[W | b]`: the weight `[out, in]` with the bias as its column `in`, so that a layer is one operand
/// of an op that takes more than a layer (a Candle op takes three operands at most).
pub(super) fn with_bias_column(weight: &Tensor, bias: &Tensor) -> Result<Tensor> {
    Tensor::cat(&[weight, &bias.unsqueeze(1)?], 1)
}

/// The weight of a `[W | b]` operand, as a matrix whose rows are `in + 1` apart.
pub(super) fn weight_of(packed: &[f32], out: usize, inp: usize) -> Mat<'_> {
    Mat::new(packed, out, inp, inp + 1)
}

/// The bias column of a `[W | b]` operand.
pub(super) fn bias_of(packed: &[f32], out: usize, inp: usize) -> Vec<f32> {
    (0..out).map(|row| packed[row * (inp + 1) + inp]).collect()
}

/// The gradient of a `[W | b]` operand of `out` rows from its product's output gradient `dy` and
/// input `x` (`rows` rows each): `dyᵀ · x` in the weight's columns, the column sums of `dy` in the
/// bias column.
pub(super) fn packed_gradient(dy: &[f32], x: &[f32], rows: usize, out: usize, inp: usize) -> Result<Tensor> {
    let stride = inp + 1;
    // SAFETY: the product writes the first `inp` columns of every row, the loop below the last one.
    let mut grad = unsafe { output_buffer(out * stride) };
    weight_gradient_into(Mat::dense(dy, rows, out), Mat::dense(x, rows, inp), &mut grad, stride)?;
    for (row, sum) in grad.chunks_exact_mut(stride).zip(bias_gradient(dy, out)) {
        row[inp] = sum;
    }
    tensor(grad, (out, stride))
}

/// The gradients of a product's input `x` and of its `[W | b]` operand `packed` (`out` rows), each only
/// when tracked, from the gradient `dy` of the product's output.
pub(super) fn packed_layer_gradients(
    dy: &[f32],
    x: &Tensor,
    packed: &Tensor,
    out: usize,
    op: &str,
) -> Result<(Option<Tensor>, Option<Tensor>)> {
    let inp = packed.dim(1)? - 1;
    let rows = dy.len() / out.max(1);
    let d_packed =
        if packed.track_op() { Some(with_data(x, op, |x| packed_gradient(dy, x, rows, out, inp))?) } else { None };
    let dx = if x.track_op() {
        let dx = with_data(packed, op, |w| input_gradient(dy, rows, weight_of(w, out, inp)))?;
        Some(tensor(dx, x.shape())?)
    } else {
        None
    };
    Ok((dx, d_packed))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{assert_close, assert_same_op, loss, var};
    use super::*;

    /// Forward and all three gradients against the composed layer, for `[.., in] → out`.
    fn check(x_shape: &[usize], out_dim: usize, with_bias: bool) -> Result<()> {
        let in_dim = *x_shape.last().expect("rank ≥ 1");
        let x = var(x_shape, 1.0, 1);
        let w = var(&[out_dim, in_dim], 0.5, 2);
        let b = var(&[out_dim], 0.5, 3);
        let bias = with_bias.then(|| b.as_tensor());
        let got = linear(&x, &w, bias)?;
        let rows = x.elem_count() / in_dim;
        let want = composed(&x.reshape((rows, in_dim))?, &w, bias)?.reshape(got.shape())?;
        let inputs = [("x", &x), ("weight", &w), ("bias", &b)];
        assert_same_op(&got, &want, &inputs[..if with_bias { 3 } else { 2 }], 1e-5, 1e-5)?;
        Ok(())
    }

    #[test]
    fn matches_the_composed_layer() -> Result<()> {
        check(&[3, 5, 7], 11, true)?;
        check(&[13, 33], 17, false)?;
        check(&[2, 97, 384], 65, true)
    }

    #[test]
    fn gelu_epilogue_matches_linear_then_gelu() -> Result<()> {
        for (shape, out_dim, seed) in [(vec![3, 5, 7], 11, 1), (vec![2, 45, 384], 1536, 2)] {
            let in_dim = shape[shape.len() - 1];
            let x = var(&shape, 1.0, seed);
            let w = var(&[out_dim, in_dim], 0.3, seed + 1);
            let b = var(&[out_dim], 0.5, seed + 2);
            let got = linear_gelu(&x, &w, Some(&b))?;
            let want = composed(&x.reshape(((), in_dim))?, &w, Some(&b))?.gelu_erf()?.reshape(got.shape())?;
            assert_same_op(&got, &want, &[("x", &x), ("weight", &w), ("bias", &b)], 1e-5, 1e-5)?;
        }
        Ok(())
    }

    #[test]
    fn gelu_epilogue_without_tracked_operands_matches_the_tracked_one() -> Result<()> {
        for (rows, out_dim, with_bias) in [(5, 11, true), (90, 1536, true), (90, 700, false)] {
            let x = var(&[rows, 384], 1.0, 1);
            let w = var(&[out_dim, 384], 0.3, 2);
            let b = var(&[out_dim], 0.5, 3);
            let bias = with_bias.then(|| b.as_tensor());
            let tracked = linear_gelu(&x, &w, bias)?;
            let detached = |t: &Tensor| t.detach();
            let inference = linear_gelu(&x.detach(), &w.detach(), bias.map(detached).as_ref())?;
            assert_close(&inference, &tracked, 0.0, "in-place GELU");
        }
        Ok(())
    }

    #[test]
    fn detached_weights_get_no_gradient() -> Result<()> {
        let x = var(&[4, 6], 1.0, 1);
        let w = var(&[3, 6], 1.0, 2);
        let b = var(&[3], 1.0, 3);
        let y = linear(&x, &w.as_tensor().detach(), Some(&b.as_tensor().detach()))?;
        let grads = loss(&y, 4)?.backward()?;
        assert!(grads.get(&w).is_none() && grads.get(&b).is_none());
        let want = loss(&composed(&x, &w, Some(&b))?, 4)?.backward()?;
        assert_close(grads.get(&x).expect("dx"), want.get(&x).expect("dx"), 1e-5, "dx");
        Ok(())
    }
}

//! A transformer feed-forward block, `gelu(x · W1ᵀ + b1) · W2ᵀ + b2` (the erf GELU), as one node.
//!
//! As two linear nodes the block's widest tensor, the GELU output (four times the hidden width), is a
//! graph node: Candle materialises its gradient and adds it into a fresh zero tensor, two passes over
//! the largest activation of the layer on one thread. Here that gradient stays inside the op. A Candle
//! op takes three operands at most, so each bias travels as an extra column of its weight
//! ([`with_bias_column`]).
use std::sync::OnceLock;

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};

use super::linear::{
    bias_gelu_rows, bias_of, gelu_gradient_recomputing, input_gradient, linear, linear_gelu, packed_gradient,
    packed_layer_gradients, product, weight_of, with_bias_column,
};
use super::{fused, slice, with_data};

/// `gelu(x · W1ᵀ + b1) · W2ᵀ + b2` over the last dimension of `x` (`[.., hidden]`), with `w1` of
/// `[inner, hidden]` and `w2` of `[hidden, inner]`.
pub fn feed_forward(x: &Tensor, w1: &Tensor, b1: &Tensor, w2: &Tensor, b2: &Tensor) -> Result<Tensor> {
    let (inner, hidden) = w1.dims2()?;
    if w2.dims() != [hidden, inner] || b1.dims() != [inner] || b2.dims() != [hidden] || x.dims().last() != Some(&hidden)
    {
        let dims = [x, w1, b1, w2, b2].map(|t| t.dims().to_vec());
        candle_core::bail!("feed-forward: inconsistent shapes (x, w1, b1, w2, b2) {dims:?}");
    }
    let operands = [x, w1, b1, w2, b2];
    // Other devices and dtypes, or nothing to differentiate (evaluation): two linear nodes, whose GELU
    // runs in place when untracked, without the packed copies of the weights this op would take.
    if !operands.into_iter().all(fused) || !operands.into_iter().any(Tensor::track_op) {
        return linear(&linear_gelu(x, w1, Some(b1))?, w2, Some(b2));
    }
    let op = FeedForward { hidden, inner, pre_activation: OnceLock::new() };
    x.contiguous()?.apply_op3(&with_bias_column(w1, b1)?, &with_bias_column(w2, b2)?, op)
}

struct FeedForward {
    hidden: usize,
    inner: usize,
    /// The pre-activation `x · W1ᵀ + b1`, which the backward pass needs for the GELU's derivative and
    /// recomputes the GELU's output from (in the same pass, for `W2`'s gradient) rather than keeping
    /// that too: 12.6 MB less per MiniLM layer at batch 32 × seq 64.
    pre_activation: OnceLock<Vec<f32>>,
}

impl FeedForward {
    const NAME: &'static str = "feed-forward";

    fn forward(&self, x: &[f32], first: &[f32], second: &[f32]) -> Result<Vec<f32>> {
        let (h, i) = (self.hidden, self.inner);
        let rows = x.len() / h.max(1);
        let z = product(x, rows, weight_of(first, i, h), None)?;
        let (activation, pre_activation) = bias_gelu_rows(z, i, Some(&bias_of(first, i, h)), true);
        let y = product(&activation, rows, weight_of(second, h, i), Some(&bias_of(second, h, i)))?;
        if let Some(pre_activation) = pre_activation {
            let twice = |_| candle_core::Error::Msg("feed-forward: forward ran twice".into());
            self.pre_activation.set(pre_activation).map_err(twice)?;
        }
        Ok(y)
    }

    /// The gradients of x, `[W1 | b1]` and `[W2 | b2]`, each only when tracked.
    fn backward(&self, x: &Tensor, first: &Tensor, second: &Tensor, dy: &[f32]) -> Result<Gradients> {
        let Some(z) = self.pre_activation.get() else { candle_core::bail!("feed-forward: backward before forward") };
        let (h, i) = (self.hidden, self.inner);
        let rows = dy.len() / h.max(1);
        let mut d_activation = with_data(second, Self::NAME, |w2| input_gradient(dy, rows, weight_of(w2, h, i)))?;
        let dz = gelu_gradient_recomputing(z, &mut d_activation, i);
        let activation = d_activation;
        let d_second = second.track_op().then(|| packed_gradient(dy, &activation, rows, h, i)).transpose()?;
        drop(activation);
        let (dx, d_first) = packed_layer_gradients(&dz, x, first, i, Self::NAME)?;
        Ok((dx, d_first, d_second))
    }
}

type Gradients = (Option<Tensor>, Option<Tensor>, Option<Tensor>);

impl CustomOp3 for FeedForward {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        xl: &Layout,
        first: &CpuStorage,
        fl: &Layout,
        second: &CpuStorage,
        sl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, first, second) =
            (slice(x, xl, Self::NAME)?, slice(first, fl, Self::NAME)?, slice(second, sl, Self::NAME)?);
        Ok((CpuStorage::F32(self.forward(x, first, second)?), xl.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, first: &Tensor, second: &Tensor, _y: &Tensor, grad: &Tensor) -> Result<Gradients> {
        with_data(grad, Self::NAME, |dy| self.backward(x, first, second, dy))
    }
}

#[cfg(test)]
mod tests {
    use super::super::linear::composed;
    use super::super::testing::{assert_close, assert_same_op, loss, var};
    use super::*;

    /// The block from Candle's own ops.
    fn reference(x: &Tensor, w1: &Tensor, b1: &Tensor, w2: &Tensor, b2: &Tensor) -> Result<Tensor> {
        let hidden = w1.dim(1)?;
        let inner = composed(&x.reshape(((), hidden))?, w1, Some(b1))?.gelu_erf()?;
        composed(&inner, w2, Some(b2))?.reshape(x.shape())
    }

    #[test]
    fn matches_the_composed_block_forward_and_backward() -> Result<()> {
        // Small odd shapes, a layer's shape, and one row per example (a last layer's first token).
        for (x_shape, inner, seed) in [(vec![3, 5, 7], 11, 1), (vec![2, 45, 384], 1536, 2), (vec![4, 1, 64], 256, 3)] {
            let hidden = x_shape[x_shape.len() - 1];
            let x = var(&x_shape, 1.0, seed);
            let w1 = var(&[inner, hidden], 0.3, seed + 1);
            let b1 = var(&[inner], 0.5, seed + 2);
            let w2 = var(&[hidden, inner], 0.3, seed + 3);
            let b2 = var(&[hidden], 0.5, seed + 4);
            let got = feed_forward(&x, &w1, &b1, &w2, &b2)?;
            let want = reference(&x, &w1, &b1, &w2, &b2)?;
            let inputs = [("x", &x), ("w1", &w1), ("b1", &b1), ("w2", &w2), ("b2", &b2)];
            assert_same_op(&got, &want, &inputs, 1e-5, 1e-5)?;
        }
        Ok(())
    }

    #[test]
    fn an_untracked_pass_equals_the_tracked_one() -> Result<()> {
        let (x, w1, b1, w2, b2) = (
            var(&[90, 64], 1.0, 1),
            var(&[256, 64], 0.3, 2),
            var(&[256], 0.5, 3),
            var(&[64, 256], 0.3, 4),
            var(&[64], 0.5, 5),
        );
        let tracked = feed_forward(&x, &w1, &b1, &w2, &b2)?;
        let [x, w1, b1, w2, b2] = [&x, &w1, &b1, &w2, &b2].map(|v| v.as_tensor().detach());
        assert_close(&feed_forward(&x, &w1, &b1, &w2, &b2)?, &tracked, 0.0, "in-place GELU");
        Ok(())
    }

    #[test]
    fn frozen_weights_get_no_gradient_and_the_input_still_does() -> Result<()> {
        let (x, w1, b1, w2, b2) =
            (var(&[6, 8], 1.0, 1), var(&[16, 8], 0.3, 2), var(&[16], 0.5, 3), var(&[8, 16], 0.3, 4), var(&[8], 0.5, 5));
        let frozen = [&w1, &b1, &w2, &b2].map(|v| v.as_tensor().detach());
        let grads = loss(&feed_forward(&x, &frozen[0], &frozen[1], &frozen[2], &frozen[3])?, 4)?.backward()?;
        assert!([&w1, &b1, &w2, &b2].iter().all(|w| grads.get(w).is_none()));
        let want = loss(&reference(&x, &w1, &b1, &w2, &b2)?, 4)?.backward()?;
        assert_close(grads.get(&x).expect("dx"), want.get(&x).expect("dx"), 1e-5, "dx");
        Ok(())
    }
}

//! Scaled dot-product attention with an additive key mask and dropout on the probabilities, as one
//! node over heads laid out side by side (`[B, T, heads · d]`, the projections' own layout). The
//! queries may be fewer than the keys (only the first token's output of a classifier's last layer).
//! [`projected_attention`] takes the layer's input and its query, key and value projections instead,
//! applies them as one GEMM and reads the heads from its `[B, T, 3 · heads · d]` output: that output,
//! the second-widest tensor of a layer, is no graph node, so Candle accumulates neither its gradient
//! nor those of three separate projections.
//!
//! Per example and head: S = Q·Kᵀ/√d + mask, P = softmax(S), C = dropout(P)·V. The heads are read and
//! written in place through strided GEMMs, so there are no transposes or copies to split and merge
//! them. The probabilities P are kept for backward:
//! dV = P̃ᵀ·dC, dP̃ = dC·Vᵀ, dS = P·(dP − Σ dP·P) with dP = dropout(dP̃), dQ = dS·K/√d, dK = dSᵀ·Q/√d.
use std::sync::OnceLock;

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::dropout::{dropout, DropoutMask};
use super::linear::{bias_of, linear, packed_layer_gradients, product, weight_of, with_bias_column};
use super::softmax::{softmax, softmax_backward_rows, softmax_rows};
use super::{fused, matmul, output_buffer, slice, tensor, with_data, Mat, Threads};

/// The attention of `heads` heads: `query` is `[B, Tq, heads · d]`, `key` and `value` are
/// `[B, Tk, heads · d]` (Tq < Tk when only some positions' outputs are needed), `key_bias` holds one
/// additive term per key (`[B, 1, 1, Tk]` or `[B, Tk]`: 0, or a large negative value for padding),
/// `dropout` masks the probabilities `[B, heads, Tq, Tk]`. Returns the context `[B, Tq, heads · d]`.
pub fn attention(
    query: &Tensor,
    key: &Tensor,
    value: &Tensor,
    key_bias: &Tensor,
    heads: usize,
    dropout: Option<&DropoutMask>,
) -> Result<Tensor> {
    let (batch, q_len, hidden) = query.dims3()?;
    let kv_len = key.dim(1)?;
    let consistent = heads > 0
        && hidden % heads == 0
        && key.dims() == [batch, kv_len, hidden]
        && value.dims() == key.dims()
        && key_bias.elem_count() == batch * kv_len;
    if !consistent {
        candle_core::bail!(
            "attention: {heads} heads over q {:?}, k {:?}, v {:?}, key mask {:?}",
            query.dims(),
            key.dims(),
            value.dims(),
            key_bias.dims()
        );
    }
    check_dropout(dropout, [batch, heads, q_len, kv_len])?;
    if ![query, key, value, key_bias].into_iter().all(fused) {
        return composed(query, key, value, key_bias, heads, dropout);
    }
    let tracked = [query, key, value].into_iter().any(Tensor::track_op);
    let op = Attention::new([batch, q_len, kv_len], heads, hidden / heads, false, key_bias, dropout, tracked)?;
    query.contiguous()?.apply_op3(&key.contiguous()?, &value.contiguous()?, op)
}

/// Self-attention of `heads` heads over `x`, `[B, T, hidden]`, with its projections: `weight`
/// (`[3 · hidden, hidden]`) and `bias` (`[3 · hidden]`) stack the query, key and value layers in that
/// order. `key_bias` and `dropout` as in [`attention`]. Returns the context `[B, T, hidden]`.
pub fn projected_attention(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    key_bias: &Tensor,
    heads: usize,
    dropout: Option<&DropoutMask>,
) -> Result<Tensor> {
    let (batch, len, hidden) = x.dims3()?;
    let consistent = heads > 0
        && hidden % heads == 0
        && weight.dims() == [3 * hidden, hidden]
        && bias.dims() == [3 * hidden]
        && key_bias.elem_count() == batch * len;
    if !consistent {
        candle_core::bail!(
            "attention: {heads} heads over x {:?}, projections {:?} + {:?}, key mask {:?}",
            x.dims(),
            weight.dims(),
            bias.dims(),
            key_bias.dims()
        );
    }
    check_dropout(dropout, [batch, heads, len, len])?;
    if ![x, weight, bias, key_bias].into_iter().all(fused) {
        let qkv = linear(x, weight, Some(bias))?;
        let part = |i: usize| qkv.narrow(2, i * hidden, hidden);
        return composed(&part(0)?, &part(1)?, &part(2)?, key_bias, heads, dropout);
    }
    let tracked = [x, weight, bias].into_iter().any(Tensor::track_op);
    let attention = Attention::new([batch, len, len], heads, hidden / heads, true, key_bias, dropout, tracked)?;
    let op = ProjectedAttention { attention, qkv: OnceLock::new() };
    x.contiguous()?.apply_op2(&with_bias_column(weight, bias)?, op)
}

/// That a dropout mask covers the probabilities `[B, heads, Tq, Tk]`.
fn check_dropout(dropout: Option<&DropoutMask>, [batch, heads, q_len, kv_len]: [usize; 4]) -> Result<()> {
    match dropout {
        Some(mask) if mask.len() != batch * heads * q_len * kv_len => {
            candle_core::bail!("attention: a dropout mask of {} for {batch}x{heads}x{q_len}x{kv_len}", mask.len())
        }
        _ => Ok(()),
    }
}

/// The same attention from Candle's ops (other devices and dtypes; the reference in tests).
pub fn composed(
    query: &Tensor,
    key: &Tensor,
    value: &Tensor,
    key_bias: &Tensor,
    heads: usize,
    dropout_mask: Option<&DropoutMask>,
) -> Result<Tensor> {
    let (b, q_len, hidden) = query.dims3()?;
    let head_dim = hidden / heads;
    let split = |x: &Tensor| x.reshape((b, x.dim(1)?, heads, head_dim))?.transpose(1, 2)?.contiguous();
    let (q, k, v) = (split(query)?, split(key)?, split(value)?);
    let key_bias = key_bias.reshape((b, 1, 1, key.dim(1)?))?;
    let scores = (q.matmul(&k.t()?)? / (head_dim as f64).sqrt())?.broadcast_add(&key_bias)?;
    let probs = softmax(&scores)?;
    let probs = match dropout_mask {
        Some(mask) => dropout(&probs, mask)?,
        None => probs,
    };
    probs.matmul(&v)?.transpose(1, 2)?.reshape((b, q_len, hidden))
}

struct Attention {
    batch: usize,
    q_len: usize,
    kv_len: usize,
    heads: usize,
    head_dim: usize,
    /// Whether the queries, keys and values come packed in one `[B, T, 3 · hidden]` buffer (the
    /// projections' output in a [`ProjectedAttention`]) rather than in three `[B, T, hidden]` tensors.
    packed: bool,
    /// `[B · Tk]` additive key terms.
    key_bias: Vec<f32>,
    dropout: Option<DropoutMask>,
    /// When a backward pass may run (an operand is tracked): P, `[B, heads, Tq, Tk]`, written by the
    /// forward pass for the backward pass.
    probs: Option<OnceLock<Vec<f32>>>,
}

/// Which projection a head is read from (and its gradient written to).
#[derive(Clone, Copy)]
enum Part {
    Query = 0,
    Key = 1,
    Value = 2,
}

/// One example's gradient rows: three buffers, or one packed buffer.
enum GradRows<'a> {
    Separate([&'a mut [f32]; 3]),
    Packed(&'a mut [f32]),
}

impl Attention {
    /// The op for `[batch, q_len, kv_len]` positions, its inputs checked by the caller; `tracked` when a
    /// backward pass may run.
    fn new(
        [batch, q_len, kv_len]: [usize; 3],
        heads: usize,
        head_dim: usize,
        packed: bool,
        key_bias: &Tensor,
        dropout: Option<&DropoutMask>,
        tracked: bool,
    ) -> Result<Self> {
        Ok(Self {
            batch,
            q_len,
            kv_len,
            heads,
            head_dim,
            packed,
            key_bias: key_bias.flatten_all()?.to_vec1()?,
            dropout: dropout.cloned(),
            probs: tracked.then(OnceLock::new),
        })
    }

    fn hidden(&self) -> usize {
        self.heads * self.head_dim
    }

    fn scale(&self) -> f32 {
        1.0 / (self.head_dim as f32).sqrt()
    }

    /// The distance between two positions' rows in the input buffers and their gradients.
    fn row_stride(&self) -> usize {
        if self.packed {
            3 * self.hidden()
        } else {
            self.hidden()
        }
    }

    /// Where `part`'s head `head` starts within a position's row.
    fn column(&self, part: Part, head: usize) -> usize {
        let within = head * self.head_dim;
        if self.packed {
            part as usize * self.hidden() + within
        } else {
            within
        }
    }

    /// The `rows × d` matrix of `part`'s head `head` for example `b`, in the buffer that holds `part`.
    fn head_mat<'a>(&self, buffer: &'a [f32], part: Part, b: usize, head: usize) -> Mat<'a> {
        let rows = if matches!(part, Part::Query) { self.q_len } else { self.kv_len };
        let start = b * rows * self.row_stride() + self.column(part, head);
        Mat::new(&buffer[start..], rows, self.head_dim, self.row_stride())
    }

    /// P̃ = dropout(P) for the probabilities of (example, head) `index`, into `out`.
    fn dropped<'a>(&self, probs: &'a [f32], index: usize, out: &'a mut [f32]) -> &'a [f32] {
        match &self.dropout {
            Some(mask) => {
                mask.apply_to(index * probs.len(), probs, out);
                out
            }
            None => probs,
        }
    }

    /// The context from the buffers holding the queries, keys and values (one buffer three times when
    /// packed).
    fn forward(&self, q: &[f32], k: &[f32], v: &[f32]) -> Result<Vec<f32>> {
        let (tq, tk, h) = (self.q_len, self.kv_len, self.hidden());
        let scores = tq * tk;
        // SAFETY: each head's products (no accumulation) write its probabilities and its columns of the
        // context, and the heads cover every column.
        let mut context = unsafe { output_buffer(self.batch * tq * h) };
        // `probs` holds an example's heads one after another when they are kept, else one head's at a time.
        let kept = self.probs.is_some();
        let per_example = |b: usize, context: &mut [f32], probs: &mut [f32]| -> Result<()> {
            let key_bias = &self.key_bias[b * tk..(b + 1) * tk];
            let mut scratch = vec![0f32; if self.dropout.is_some() { scores } else { 0 }];
            for head in 0..self.heads {
                let p = if kept { &mut probs[head * scores..(head + 1) * scores] } else { &mut *probs };
                let (qh, kh) = (self.head_mat(q, Part::Query, b, head), self.head_mat(k, Part::Key, b, head));
                matmul(p, tk, qh, kh.t(), self.scale(), false, Threads::Single)?;
                softmax_rows(p, tk, Some(key_bias));
                let p = self.dropped(p, b * self.heads + head, &mut scratch);
                let out = &mut context[head * self.head_dim..];
                let vh = self.head_mat(v, Part::Value, b, head);
                matmul(out, h, Mat::dense(p, tq, tk), vh, 1.0, false, Threads::Single)?;
            }
            Ok(())
        };
        let contexts = context.par_chunks_mut(tq * h).enumerate();
        match &self.probs {
            Some(kept) => {
                // SAFETY: each head's product (no accumulation) writes its probabilities.
                let mut probs = unsafe { output_buffer(self.batch * self.heads * scores) };
                contexts
                    .zip(probs.par_chunks_mut(self.heads * scores))
                    .try_for_each(|((b, context), probs)| per_example(b, context, probs))?;
                kept.set(probs).map_err(|_| candle_core::Error::Msg("attention: forward ran twice".into()))?;
            }
            // One head's probabilities at a time, which stay in cache for the product with V (at seq
            // 128, 25 MB a layer that would go to memory and back).
            None => contexts.try_for_each(|(b, context)| per_example(b, context, &mut vec![0f32; scores]))?,
        }
        Ok(context)
    }

    /// Example `b`'s share of (dQ, dK, dV) from the upstream gradient dC, into `grads`.
    fn backward_example(
        &self,
        b: usize,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        dc: &[f32],
        grads: &mut GradRows,
    ) -> Result<()> {
        let Some(probs) = self.probs.as_ref().and_then(OnceLock::get) else {
            candle_core::bail!("attention: backward without a tracked forward pass")
        };
        let (tq, tk, h) = (self.q_len, self.kv_len, self.hidden());
        let scores = tq * tk;
        let dc = &dc[b * tq * h..(b + 1) * tq * h];
        let mut scratch = vec![0f32; if self.dropout.is_some() { scores } else { 0 }];
        let mut ds = vec![0f32; scores];
        for head in 0..self.heads {
            let index = b * self.heads + head;
            let p = &probs[index * scores..(index + 1) * scores];
            let (qh, kh, vh) = (
                self.head_mat(q, Part::Query, b, head),
                self.head_mat(k, Part::Key, b, head),
                self.head_mat(v, Part::Value, b, head),
            );
            let dch = Mat::new(&dc[head * self.head_dim..], tq, self.head_dim, h);
            let p_dropped = Mat::dense(self.dropped(p, index, &mut scratch), tq, tk);
            let (dv, stride) = self.grad_head(grads, Part::Value, head);
            matmul(dv, stride, p_dropped.t(), dch, 1.0, false, Threads::Single)?;
            matmul(&mut ds, tk, dch, vh.t(), 1.0, false, Threads::Single)?;
            if let Some(mask) = &self.dropout {
                mask.apply_in_place(index * scores, &mut ds);
            }
            softmax_backward_rows(p, &mut ds, tk);
            let ds_mat = Mat::dense(&ds, tq, tk);
            let (dq, stride) = self.grad_head(grads, Part::Query, head);
            matmul(dq, stride, ds_mat, kh, self.scale(), false, Threads::Single)?;
            let (dk, stride) = self.grad_head(grads, Part::Key, head);
            matmul(dk, stride, ds_mat.t(), qh, self.scale(), false, Threads::Single)?;
        }
        Ok(())
    }

    /// Where `part`'s head `head` of one example's gradient starts, and its row stride.
    fn grad_head<'a>(&self, grads: &'a mut GradRows, part: Part, head: usize) -> (&'a mut [f32], usize) {
        let rows = match grads {
            GradRows::Separate(parts) => &mut *parts[part as usize],
            GradRows::Packed(rows) => &mut **rows,
        };
        (&mut rows[self.column(part, head)..], self.row_stride())
    }

    /// (dQ, dK, dV) from the upstream gradient dC, for three separate inputs.
    fn backward(&self, q: &[f32], k: &[f32], v: &[f32], dc: &[f32]) -> Result<[Vec<f32>; 3]> {
        let (tq, tk, h) = (self.q_len, self.kv_len, self.hidden());
        // SAFETY: each head's products (no accumulation) write its columns of dQ, dK and dV, and the
        // heads cover every column.
        let (mut dq, mut dk, mut dv) = unsafe {
            (output_buffer(self.batch * tq * h), output_buffer(self.batch * tk * h), output_buffer(self.batch * tk * h))
        };
        dq.par_chunks_mut(tq * h)
            .zip(dk.par_chunks_mut(tk * h))
            .zip(dv.par_chunks_mut(tk * h))
            .enumerate()
            .try_for_each(|(b, ((dq, dk), dv))| {
                self.backward_example(b, q, k, v, dc, &mut GradRows::Separate([dq, dk, dv]))
            })?;
        Ok([dq, dk, dv])
    }

    /// The gradient of the packed input from the upstream gradient dC.
    fn backward_packed(&self, qkv: &[f32], dc: &[f32]) -> Result<Vec<f32>> {
        let rows = self.q_len * self.row_stride();
        // SAFETY: each head's products (no accumulation) write its query, key and value columns, and the
        // heads cover every column.
        let mut dqkv = unsafe { output_buffer(self.batch * rows) };
        dqkv.par_chunks_mut(rows)
            .enumerate()
            .try_for_each(|(b, grads)| self.backward_example(b, qkv, qkv, qkv, dc, &mut GradRows::Packed(grads)))?;
        Ok(dqkv)
    }
}

/// [`Attention`] over the output of the packed projections of its input, which it computes.
struct ProjectedAttention {
    attention: Attention,
    /// The projections' output, which the attention's backward pass reads: kept when the attention
    /// keeps its probabilities (a backward pass may run).
    qkv: OnceLock<Vec<f32>>,
}

impl ProjectedAttention {
    const NAME: &'static str = "projected-attention";
}

impl CustomOp2 for ProjectedAttention {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn cpu_fwd(&self, x: &CpuStorage, xl: &Layout, packed: &CpuStorage, pl: &Layout) -> Result<(CpuStorage, Shape)> {
        let (x, packed) = (slice(x, xl, Self::NAME)?, slice(packed, pl, Self::NAME)?);
        let h = self.attention.hidden();
        let qkv = product(x, x.len() / h, weight_of(packed, 3 * h, h), Some(&bias_of(packed, 3 * h, h)))?;
        let context = self.attention.forward(&qkv, &qkv, &qkv)?;
        if self.attention.probs.is_some() {
            self.qkv.set(qkv).map_err(|_| candle_core::Error::Msg("attention: forward ran twice".into()))?;
        }
        Ok((CpuStorage::F32(context), xl.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        packed: &Tensor,
        _context: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let Some(qkv) = self.qkv.get() else {
            candle_core::bail!("attention: backward without a tracked forward pass")
        };
        let dqkv = with_data(grad, Self::NAME, |dc| self.attention.backward_packed(qkv, dc))?;
        packed_layer_gradients(&dqkv, x, packed, 3 * self.attention.hidden(), Self::NAME)
    }
}

impl CustomOp3 for Attention {
    fn name(&self) -> &'static str {
        "attention"
    }

    fn cpu_fwd(
        &self,
        q: &CpuStorage,
        ql: &Layout,
        k: &CpuStorage,
        kl: &Layout,
        v: &CpuStorage,
        vl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let name = CustomOp3::name(self);
        let context = self.forward(slice(q, ql, name)?, slice(k, kl, name)?, slice(v, vl, name)?)?;
        Ok((CpuStorage::F32(context), ql.shape().clone()))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        _context: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let name = CustomOp3::name(self);
        let [dq, dk, dv] = with_data(q, name, |qs| {
            with_data(k, name, |ks| with_data(v, name, |vs| with_data(grad, name, |dc| self.backward(qs, ks, vs, dc))))
        })?;
        let keep = |t: &Tensor, g: Vec<f32>| if t.track_op() { tensor(g, t.shape()).map(Some) } else { Ok(None) };
        Ok((keep(q, dq)?, keep(k, dk)?, keep(v, dv)?))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device};
    use rand::SeedableRng;

    use super::super::testing::{assert_same_op, var};
    use super::*;
    use crate::rng::Rng;

    /// Additive key terms with the last `padded` keys of example 0 masked.
    fn key_bias(b: usize, t: usize, padded: usize) -> Result<Tensor> {
        let bias: Vec<f32> = (0..b * t).map(|i| if i < t && i >= t - padded { f32::MIN } else { 0.0 }).collect();
        Tensor::from_vec(bias, (b, 1, 1, t), &Device::Cpu)
    }

    /// `tq` queries against `t` keys.
    fn check(b: usize, tq: usize, t: usize, heads: usize, d: usize, with_dropout: bool) -> Result<()> {
        let q = var(&[b, tq, heads * d], 1.0, 1);
        let (k, v) = (var(&[b, t, heads * d], 1.0, 2), var(&[b, t, heads * d], 1.0, 3));
        let bias = key_bias(b, t, t / 3)?;
        let mask = with_dropout.then(|| DropoutMask::draw(&mut Rng::seed_from_u64(4), b * heads * tq * t, 0.2));
        let got = attention(&q, &k, &v, &bias, heads, mask.as_ref())?;
        let want = composed(&q, &k, &v, &bias, heads, mask.as_ref())?;
        // Untracked, the op keeps no probabilities and computes one head's at a time: the same output.
        let [qd, kd, vd] = [&q, &k, &v].map(|t| t.as_tensor().detach());
        let untracked = attention(&qd, &kd, &vd, &bias, heads, mask.as_ref())?;
        super::super::testing::assert_close(&untracked, &got, 0.0, "untracked pass");
        assert_same_op(&got, &want, &[("dq", &q), ("dk", &k), ("dv", &v)], 1e-5, 1e-5)
    }

    #[test]
    fn matches_the_composed_attention() -> Result<()> {
        check(2, 5, 5, 3, 4, false)?;
        check(3, 17, 17, 2, 7, true)?;
        check(2, 64, 64, 12, 32, true)
    }

    #[test]
    fn fewer_queries_than_keys() -> Result<()> {
        check(3, 1, 9, 2, 4, true)?;
        check(2, 4, 33, 3, 8, false)
    }

    /// The projected op against the composed projections and attention.
    fn check_projected(b: usize, t: usize, heads: usize, d: usize, with_dropout: bool) -> Result<()> {
        let hidden = heads * d;
        let x = var(&[b, t, hidden], 1.0, 5);
        let (weight, bias) = (var(&[3 * hidden, hidden], 0.3, 6), var(&[3 * hidden], 0.5, 7));
        let key_bias = key_bias(b, t, t / 3)?;
        let mask = with_dropout.then(|| DropoutMask::draw(&mut Rng::seed_from_u64(8), b * heads * t * t, 0.2));
        let got = projected_attention(&x, &weight, &bias, &key_bias, heads, mask.as_ref())?;
        let qkv = super::super::linear::composed(&x.reshape((b * t, hidden))?, &weight, Some(&bias))?;
        let part = |i: usize| qkv.narrow(1, i * hidden, hidden)?.reshape((b, t, hidden));
        let want = composed(&part(0)?, &part(1)?, &part(2)?, &key_bias, heads, mask.as_ref())?;
        assert_same_op(&got, &want, &[("dx", &x), ("dweight", &weight), ("dbias", &bias)], 1e-5, 1e-5)
    }

    #[test]
    fn projected_attention_matches_the_composed_projections_and_attention() -> Result<()> {
        check_projected(2, 5, 3, 4, false)?;
        check_projected(3, 17, 2, 7, true)?;
        check_projected(2, 64, 12, 32, true)
    }

    #[test]
    fn projected_attention_without_tracked_operands_matches_the_tracked_one() -> Result<()> {
        let (x, weight, bias) = (var(&[2, 9, 12], 1.0, 1), var(&[36, 12], 0.3, 2), var(&[36], 0.5, 3));
        let key_bias = key_bias(2, 9, 2)?;
        let tracked = projected_attention(&x, &weight, &bias, &key_bias, 3, None)?;
        let [x, weight, bias] = [&x, &weight, &bias].map(|v| v.as_tensor().detach());
        let untracked = projected_attention(&x, &weight, &bias, &key_bias, 3, None)?;
        super::super::testing::assert_close(&untracked, &tracked, 0.0, "untracked pass");
        Ok(())
    }

    #[test]
    fn rejects_inconsistent_shapes() -> Result<()> {
        let q = var(&[2, 4, 6], 1.0, 1);
        let bias = Tensor::zeros((2, 1, 1, 4), DType::F32, &Device::Cpu)?;
        assert!(attention(&q, &q, &q, &bias, 4, None).is_err());
        let short = Tensor::zeros((2, 1, 1, 3), DType::F32, &Device::Cpu)?;
        assert!(attention(&q, &q, &q, &short, 3, None).is_err());
        let (weight, projection_bias) = (var(&[18, 6], 1.0, 2), var(&[18], 1.0, 3));
        assert!(projected_attention(&q, &weight, &projection_bias, &bias, 4, None).is_err(), "6 heads of 4?");
        assert!(projected_attention(&q, &weight, &projection_bias, &short, 2, None).is_err());
        assert!(projected_attention(&q, &q, &projection_bias, &bias, 2, None).is_err(), "a [2, 4, 6] weight");
        Ok(())
    }
}

//! Scaled dot-product attention with an additive key mask and dropout on the probabilities, as one
//! node over heads laid out side by side (`[B, T, heads · d]`, the projections' own layout). The
//! queries may be fewer than the keys (only the first token's output of a classifier's last layer).
//!
//! Per example and head: S = Q·Kᵀ/√d + mask, P = softmax(S), C = dropout(P)·V. The heads are read and
//! written in place through strided GEMMs, so there are no transposes or copies to split and merge
//! them. The probabilities P are kept for backward:
//! dV = P̃ᵀ·dC, dP̃ = dC·Vᵀ, dS = P·(dP − Σ dP·P) with dP = dropout(dP̃), dQ = dS·K/√d, dK = dSᵀ·Q/√d.
use std::sync::OnceLock;

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::dropout::{dropout, DropoutMask};
use super::softmax::{softmax, softmax_backward_rows, softmax_rows};
use super::{fused, matmul, slice, tensor, with_data, Mat, Threads};

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
    if let Some(mask) = dropout {
        if mask.len() != batch * heads * q_len * kv_len {
            candle_core::bail!("attention: a dropout mask of {} for {batch}x{heads}x{q_len}x{kv_len}", mask.len());
        }
    }
    if ![query, key, value, key_bias].into_iter().all(fused) {
        return composed(query, key, value, key_bias, heads, dropout);
    }
    let op = Attention {
        batch,
        q_len,
        kv_len,
        heads,
        head_dim: hidden / heads,
        key_bias: key_bias.flatten_all()?.to_vec1()?,
        dropout: dropout.cloned(),
        probs: OnceLock::new(),
    };
    query.contiguous()?.apply_op3(&key.contiguous()?, &value.contiguous()?, op)
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
    /// `[B · Tk]` additive key terms.
    key_bias: Vec<f32>,
    dropout: Option<DropoutMask>,
    /// P, `[B, heads, Tq, Tk]`, written by the forward pass for the backward pass.
    probs: OnceLock<Vec<f32>>,
}

impl Attention {
    fn hidden(&self) -> usize {
        self.heads * self.head_dim
    }

    fn scale(&self) -> f32 {
        1.0 / (self.head_dim as f32).sqrt()
    }

    /// The `rows × d` matrix of one head in an example's rows `[rows, heads · d]`.
    fn head_mat<'a>(&self, rows: &'a [f32], head: usize) -> Mat<'a> {
        let hidden = self.hidden();
        Mat::new(&rows[head * self.head_dim..], rows.len() / hidden, self.head_dim, hidden)
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

    /// The rows of example `b` in a query-side and a key-side buffer.
    fn example<'a>(&self, b: usize, queries: &'a [f32], keys: &'a [f32]) -> (&'a [f32], &'a [f32]) {
        let (q_rows, kv_rows) = (self.q_len * self.hidden(), self.kv_len * self.hidden());
        (&queries[b * q_rows..(b + 1) * q_rows], &keys[b * kv_rows..(b + 1) * kv_rows])
    }

    fn forward(&self, q: &[f32], k: &[f32], v: &[f32]) -> Result<Vec<f32>> {
        let (tq, tk, h) = (self.q_len, self.kv_len, self.hidden());
        let scores = tq * tk;
        let mut context = vec![0f32; self.batch * tq * h];
        let mut probs = vec![0f32; self.batch * self.heads * scores];
        let per_example = |b: usize, (context, probs): (&mut [f32], &mut [f32])| -> Result<()> {
            let ((q, k), (_, v)) = (self.example(b, q, k), self.example(b, q, v));
            let key_bias = &self.key_bias[b * tk..(b + 1) * tk];
            let mut scratch = vec![0f32; if self.dropout.is_some() { scores } else { 0 }];
            for (head, p) in probs.chunks_exact_mut(scores).enumerate() {
                let (qh, kh) = (self.head_mat(q, head), self.head_mat(k, head));
                matmul(p, tk, qh, kh.t(), self.scale(), false, Threads::Single)?;
                softmax_rows(p, tk, Some(key_bias));
                let p = self.dropped(p, b * self.heads + head, &mut scratch);
                let out = &mut context[head * self.head_dim..];
                matmul(out, h, Mat::dense(p, tq, tk), self.head_mat(v, head), 1.0, false, Threads::Single)?;
            }
            Ok(())
        };
        context
            .par_chunks_mut(tq * h)
            .zip(probs.par_chunks_mut(self.heads * scores))
            .enumerate()
            .try_for_each(|(b, chunks)| per_example(b, chunks))?;
        self.probs.set(probs).map_err(|_| candle_core::Error::Msg("attention: forward ran twice".into()))?;
        Ok(context)
    }

    /// (dQ, dK, dV) from the upstream gradient dC.
    fn backward(&self, q: &[f32], k: &[f32], v: &[f32], dc: &[f32]) -> Result<[Vec<f32>; 3]> {
        let Some(probs) = self.probs.get() else { candle_core::bail!("attention: backward before forward") };
        let (tq, tk, h) = (self.q_len, self.kv_len, self.hidden());
        let scores = tq * tk;
        let mut dq = vec![0f32; self.batch * tq * h];
        let (mut dk, mut dv) = (vec![0f32; self.batch * tk * h], vec![0f32; self.batch * tk * h]);
        let per_example = |b: usize, ((dq, dk), dv): ((&mut [f32], &mut [f32]), &mut [f32])| -> Result<()> {
            let ((q, k), (dc, v)) = (self.example(b, q, k), self.example(b, dc, v));
            let mut scratch = vec![0f32; if self.dropout.is_some() { scores } else { 0 }];
            let mut ds = vec![0f32; scores];
            for head in 0..self.heads {
                let index = b * self.heads + head;
                let p = &probs[index * scores..(index + 1) * scores];
                let offset = head * self.head_dim;
                let (qh, kh, vh, dch) =
                    (self.head_mat(q, head), self.head_mat(k, head), self.head_mat(v, head), self.head_mat(dc, head));
                let p_dropped = Mat::dense(self.dropped(p, index, &mut scratch), tq, tk);
                matmul(&mut dv[offset..], h, p_dropped.t(), dch, 1.0, false, Threads::Single)?;
                matmul(&mut ds, tk, dch, vh.t(), 1.0, false, Threads::Single)?;
                if let Some(mask) = &self.dropout {
                    mask.apply_in_place(index * scores, &mut ds);
                }
                softmax_backward_rows(p, &mut ds, tk);
                let ds_mat = Mat::dense(&ds, tq, tk);
                matmul(&mut dq[offset..], h, ds_mat, kh, self.scale(), false, Threads::Single)?;
                matmul(&mut dk[offset..], h, ds_mat.t(), qh, self.scale(), false, Threads::Single)?;
            }
            Ok(())
        };
        dq.par_chunks_mut(tq * h)
            .zip(dk.par_chunks_mut(tk * h))
            .zip(dv.par_chunks_mut(tk * h))
            .enumerate()
            .try_for_each(|(b, chunks)| per_example(b, chunks))?;
        Ok([dq, dk, dv])
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
        let name = self.name();
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
        let name = self.name();
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

    #[test]
    fn rejects_inconsistent_shapes() -> Result<()> {
        let q = var(&[2, 4, 6], 1.0, 1);
        let bias = Tensor::zeros((2, 1, 1, 4), DType::F32, &Device::Cpu)?;
        assert!(attention(&q, &q, &q, &bias, 4, None).is_err());
        let short = Tensor::zeros((2, 1, 1, 3), DType::F32, &Device::Cpu)?;
        assert!(attention(&q, &q, &q, &short, 3, None).is_err());
        Ok(())
    }
}

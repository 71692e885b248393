//! Scaled dot-product attention with an additive key mask and dropout on the probabilities, as one
//! node over heads laid out side by side (`[B, T, heads · d]`, the projections' own layout).
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

/// The attention of `heads` heads: `query`, `key` and `value` are `[B, T, heads · d]`, `key_bias`
/// holds one additive term per key (`[B, 1, 1, T]` or `[B, T]`: 0, or a large negative value for
/// padding), `dropout` masks the probabilities `[B, heads, T, T]`. Returns the context `[B, T, heads · d]`.
pub fn attention(
    query: &Tensor,
    key: &Tensor,
    value: &Tensor,
    key_bias: &Tensor,
    heads: usize,
    dropout: Option<&DropoutMask>,
) -> Result<Tensor> {
    let (batch, seq, hidden) = query.dims3()?;
    if heads == 0 || hidden % heads != 0 || key.dims() != query.dims() || value.dims() != query.dims() {
        candle_core::bail!(
            "attention: {heads} heads over q {:?}, k {:?}, v {:?}",
            query.dims(),
            key.dims(),
            value.dims()
        );
    }
    if key_bias.elem_count() != batch * seq {
        candle_core::bail!("attention: a key mask of {:?} for batch {batch}, length {seq}", key_bias.dims());
    }
    if let Some(mask) = dropout {
        if mask.len() != batch * heads * seq * seq {
            candle_core::bail!("attention: a dropout mask of {} for {batch}x{heads}x{seq}x{seq}", mask.len());
        }
    }
    if ![query, key, value, key_bias].into_iter().all(fused) {
        return composed(query, key, value, key_bias, heads, dropout);
    }
    let op = Attention {
        batch,
        seq,
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
    let (b, t, hidden) = query.dims3()?;
    let head_dim = hidden / heads;
    let split = |x: &Tensor| x.reshape((b, t, heads, head_dim))?.transpose(1, 2)?.contiguous();
    let (q, k, v) = (split(query)?, split(key)?, split(value)?);
    let scores = (q.matmul(&k.t()?)? / (head_dim as f64).sqrt())?.broadcast_add(&key_bias.reshape((b, 1, 1, t))?)?;
    let probs = softmax(&scores)?;
    let probs = match dropout_mask {
        Some(mask) => dropout(&probs, mask)?,
        None => probs,
    };
    probs.matmul(&v)?.transpose(1, 2)?.reshape((b, t, hidden))
}

struct Attention {
    batch: usize,
    seq: usize,
    heads: usize,
    head_dim: usize,
    /// `[B · T]` additive key terms.
    key_bias: Vec<f32>,
    dropout: Option<DropoutMask>,
    /// P, `[B, heads, T, T]`, written by the forward pass for the backward pass.
    probs: OnceLock<Vec<f32>>,
}

impl Attention {
    fn hidden(&self) -> usize {
        self.heads * self.head_dim
    }

    fn scale(&self) -> f32 {
        1.0 / (self.head_dim as f32).sqrt()
    }

    /// The `T × d` matrix of one head in an example's rows `[T, heads · d]`.
    fn head_mat<'a>(&self, rows: &'a [f32], head: usize) -> Mat<'a> {
        Mat::new(&rows[head * self.head_dim..], self.seq, self.head_dim, self.hidden())
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

    fn forward(&self, q: &[f32], k: &[f32], v: &[f32]) -> Result<Vec<f32>> {
        let (t, h, tt) = (self.seq, self.hidden(), self.seq * self.seq);
        let mut context = vec![0f32; self.batch * t * h];
        let mut probs = vec![0f32; self.batch * self.heads * tt];
        let example = t * h;
        let per_example = |b: usize, (context, probs): (&mut [f32], &mut [f32])| -> Result<()> {
            let rows = b * example..(b + 1) * example;
            let (q, k, v) = (&q[rows.clone()], &k[rows.clone()], &v[rows]);
            let key_bias = &self.key_bias[b * t..(b + 1) * t];
            let mut scratch = vec![0f32; if self.dropout.is_some() { tt } else { 0 }];
            for (head, p) in probs.chunks_exact_mut(tt).enumerate() {
                let (qh, kh) = (self.head_mat(q, head), self.head_mat(k, head));
                matmul(p, t, qh, kh.t(), self.scale(), false, Threads::Single)?;
                softmax_rows(p, t, Some(key_bias));
                let p = self.dropped(p, b * self.heads + head, &mut scratch);
                let vh = self.head_mat(v, head);
                let out = &mut context[head * self.head_dim..];
                matmul(out, h, Mat::dense(p, t, t), vh, 1.0, false, Threads::Single)?;
            }
            Ok(())
        };
        context
            .par_chunks_mut(example)
            .zip(probs.par_chunks_mut(self.heads * tt))
            .enumerate()
            .try_for_each(|(b, chunks)| per_example(b, chunks))?;
        self.probs.set(probs).map_err(|_| candle_core::Error::Msg("attention: forward ran twice".into()))?;
        Ok(context)
    }

    /// (dQ, dK, dV) from the upstream gradient dC.
    fn backward(&self, q: &[f32], k: &[f32], v: &[f32], dc: &[f32]) -> Result<[Vec<f32>; 3]> {
        let Some(probs) = self.probs.get() else { candle_core::bail!("attention: backward before forward") };
        let (t, h, tt) = (self.seq, self.hidden(), self.seq * self.seq);
        let example = t * h;
        let mut grads = [(); 3].map(|_| vec![0f32; self.batch * example]);
        let [dq, dk, dv] = &mut grads;
        let per_example = |b: usize, ((dq, dk), dv): ((&mut [f32], &mut [f32]), &mut [f32])| -> Result<()> {
            let rows = b * example..(b + 1) * example;
            let (q, k, v, dc) = (&q[rows.clone()], &k[rows.clone()], &v[rows.clone()], &dc[rows]);
            let mut scratch = vec![0f32; if self.dropout.is_some() { tt } else { 0 }];
            let mut ds = vec![0f32; tt];
            for head in 0..self.heads {
                let index = b * self.heads + head;
                let p = &probs[index * tt..(index + 1) * tt];
                let offset = head * self.head_dim;
                let (qh, kh, vh, dch) =
                    (self.head_mat(q, head), self.head_mat(k, head), self.head_mat(v, head), self.head_mat(dc, head));
                let p_dropped = Mat::dense(self.dropped(p, index, &mut scratch), t, t);
                matmul(&mut dv[offset..], h, p_dropped.t(), dch, 1.0, false, Threads::Single)?;
                matmul(&mut ds, t, dch, vh.t(), 1.0, false, Threads::Single)?;
                if let Some(mask) = &self.dropout {
                    mask.apply_in_place(index * tt, &mut ds);
                }
                softmax_backward_rows(p, &mut ds, t);
                let ds_mat = Mat::dense(&ds, t, t);
                matmul(&mut dq[offset..], h, ds_mat, kh, self.scale(), false, Threads::Single)?;
                matmul(&mut dk[offset..], h, ds_mat.t(), qh, self.scale(), false, Threads::Single)?;
            }
            Ok(())
        };
        dq.par_chunks_mut(example)
            .zip(dk.par_chunks_mut(example))
            .zip(dv.par_chunks_mut(example))
            .enumerate()
            .try_for_each(|(b, chunks)| per_example(b, chunks))?;
        Ok(grads)
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
        let shape = q.shape();
        let keep = |t: &Tensor, g: Vec<f32>| if t.track_op() { tensor(g, shape).map(Some) } else { Ok(None) };
        Ok((keep(q, dq)?, keep(k, dk)?, keep(v, dv)?))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device};
    use rand::SeedableRng;

    use super::super::testing::{assert_close, loss, var};
    use super::*;
    use crate::rng::Rng;

    /// Additive key terms with the last `padded` keys of example 0 masked.
    fn key_bias(b: usize, t: usize, padded: usize) -> Result<Tensor> {
        let bias: Vec<f32> = (0..b * t).map(|i| if i < t && i >= t - padded { f32::MIN } else { 0.0 }).collect();
        Tensor::from_vec(bias, (b, 1, 1, t), &Device::Cpu)
    }

    fn check(b: usize, t: usize, heads: usize, d: usize, with_dropout: bool) -> Result<()> {
        let shape = [b, t, heads * d];
        let (q, k, v) = (var(&shape, 1.0, 1), var(&shape, 1.0, 2), var(&shape, 1.0, 3));
        let bias = key_bias(b, t, t / 3)?;
        let mask = with_dropout.then(|| DropoutMask::draw(&mut Rng::seed_from_u64(4), b * heads * t * t, 0.2));
        let got = attention(&q, &k, &v, &bias, heads, mask.as_ref())?;
        let want = composed(&q, &k, &v, &bias, heads, mask.as_ref())?;
        assert_close(&got, &want, 1e-5, "context");
        let (g, r) = (loss(&got, 5)?.backward()?, loss(&want, 5)?.backward()?);
        for (name, x) in [("dq", &q), ("dk", &k), ("dv", &v)] {
            assert_close(g.get(x).expect("grad"), r.get(x).expect("grad"), 1e-5, name);
        }
        Ok(())
    }

    #[test]
    fn matches_the_composed_attention() -> Result<()> {
        check(2, 5, 3, 4, false)?;
        check(3, 17, 2, 7, true)?;
        check(2, 64, 12, 32, true)
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

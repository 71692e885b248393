//! Dropout masks drawn in bulk from the run's generator, applied as one node.
//!
//! A mask keeps element i when its 16-bit draw is at least `p · 2¹⁶` (so p is honoured to 1/65536),
//! and scales kept elements by 1/(1 − p). The op keeps the draws, not a float mask tensor, and its
//! backward multiplies by the same mask.
use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rand::Rng as _;
use rayon::prelude::*;

use super::{for_rows, fused, output_buffer, simd_fn, slice, tensor, with_data};
use crate::rng::Rng;

/// The keep/drop decisions for one tensor.
#[derive(Debug, Clone)]
pub struct DropoutMask {
    draws: Arc<[u16]>,
    threshold: u16,
    scale: f32,
}

impl DropoutMask {
    /// Draws the mask of `len` elements for drop probability `p` in (0, 1).
    pub fn draw(rng: &mut Rng, len: usize, p: f32) -> Self {
        let draws = parallel_fill(rng, len);
        let threshold = (p as f64 * 65_536.0).round().min(u16::MAX as f64) as u16;
        Self { draws: draws.into(), threshold, scale: 1.0 / (1.0 - p) }
    }

    pub fn len(&self) -> usize {
        self.draws.len()
    }

    pub fn is_empty(&self) -> bool {
        self.draws.is_empty()
    }

    /// The factor of element i: 0 or 1/(1 − p).
    fn factor(&self, i: usize) -> f32 {
        if self.draws[i] >= self.threshold {
            self.scale
        } else {
            0.0
        }
    }

    /// `out[j] = x[j] · factor(start + j)`.
    pub(crate) fn apply_to(&self, start: usize, x: &[f32], out: &mut [f32]) {
        mask_into(&self.draws[start..start + out.len()], self.threshold, self.scale, x, out);
    }

    /// `x[j] *= factor(start + j)`.
    pub(crate) fn apply_in_place(&self, start: usize, x: &mut [f32]) {
        mask_in_place(&self.draws[start..start + x.len()], self.threshold, self.scale, x);
    }

    /// The mask as a tensor of factors (the composed path).
    fn tensor(&self, like: &Tensor) -> Result<Tensor> {
        let factors: Vec<f32> = (0..self.len()).map(|i| self.factor(i)).collect();
        Tensor::from_vec(factors, like.shape(), like.device())?.to_dtype(like.dtype())
    }

    fn check(&self, x: &Tensor) -> Result<()> {
        if self.len() != x.elem_count() {
            candle_core::bail!("dropout: a mask of {} elements for a tensor of {}", self.len(), x.elem_count());
        }
        Ok(())
    }
}

/// 16-bit draws per task: even, so that every task starts on a 32-bit word of the stream.
const DRAWS_PER_TASK: usize = 64 * 1024;

/// `len` 16-bit draws, exactly those of `rng.fill` on a slice of `len` (which consumes whole 32-bit
/// words, little-endian), leaving `rng` where that fill would: tasks of [`DRAWS_PER_TASK`] each seek a
/// copy of the generator to their own word of the stream (ChaCha is seekable), so the draws do not
/// depend on the number of threads. An attention mask at batch 32 × seq 128 is 6.3 M draws per layer.
fn parallel_fill(rng: &mut Rng, len: usize) -> Vec<u16> {
    let mut draws = vec![0u16; len];
    if len <= DRAWS_PER_TASK {
        rng.fill(&mut draws[..]);
        return draws;
    }
    let (start, base) = (rng.get_word_pos(), rng.clone());
    draws.par_chunks_mut(DRAWS_PER_TASK).enumerate().for_each(|(task, block)| {
        let mut rng = base.clone();
        rng.set_word_pos(start + (task * DRAWS_PER_TASK / 2) as u128);
        rng.fill(block);
    });
    rng.set_word_pos(start + len.div_ceil(2) as u128);
    draws
}

/// `x · mask`.
pub fn dropout(x: &Tensor, mask: &DropoutMask) -> Result<Tensor> {
    mask.check(x)?;
    if fused(x) {
        x.contiguous()?.apply_op1(Dropout(mask.clone()))
    } else {
        x.mul(&mask.tensor(x)?)
    }
}

simd_fn! {
    fn mask_into(draws: &[u16], threshold: u16, scale: f32, x: &[f32], out: &mut [f32]) {
        for ((o, &v), &d) in out.iter_mut().zip(x).zip(draws) {
            *o = if d >= threshold { v * scale } else { 0.0 };
        }
    }
}

simd_fn! {
    fn mask_in_place(draws: &[u16], threshold: u16, scale: f32, x: &mut [f32]) {
        for (v, &d) in x.iter_mut().zip(draws) {
            *v = if d >= threshold { *v * scale } else { 0.0 };
        }
    }
}

simd_fn! {
    /// `out = a + b`.
    pub(crate) fn sum_of(a: &[f32], b: &[f32], out: &mut [f32]) {
        out.iter_mut().zip(a).zip(b).for_each(|((o, &a), &b)| *o = a + b);
    }
}

simd_fn! {
    /// `x += other`.
    pub(crate) fn add_in_place(x: &mut [f32], other: &[f32]) {
        x.iter_mut().zip(other).for_each(|(v, &o)| *v += o);
    }
}

struct Dropout(DropoutMask);

impl Dropout {
    fn masked(&self, x: &[f32]) -> Vec<f32> {
        // SAFETY: `apply_to` writes every element of every row block.
        let mut y = unsafe { output_buffer(x.len()) };
        for_rows(&mut y, 1, |start, out| self.0.apply_to(start, &x[start..], out));
        y
    }

    fn masked_grad(&self, grad: &Tensor) -> Result<Tensor> {
        with_data(grad, "dropout-backward", |dy| tensor(self.masked(dy), grad.shape()))
    }
}

impl CustomOp1 for Dropout {
    fn name(&self) -> &'static str {
        "dropout"
    }

    fn cpu_fwd(&self, x: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        Ok((CpuStorage::F32(self.masked(slice(x, layout, "dropout")?)), layout.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, _y: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        self.masked_grad(grad).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::super::testing::{assert_same_op, var};
    use super::*;

    #[test]
    fn parallel_draws_are_the_sequential_stream() {
        use rand::RngCore;
        for len in [0, 7, DRAWS_PER_TASK, 3 * DRAWS_PER_TASK + 1, 5 * DRAWS_PER_TASK + 2] {
            let (mut parallel, mut sequential) = (Rng::seed_from_u64(9), Rng::seed_from_u64(9));
            parallel.next_u32(); // an odd word position, as after earlier draws
            sequential.next_u32();
            let mut want = vec![0u16; len];
            sequential.fill(&mut want[..]);
            assert_eq!(parallel_fill(&mut parallel, len), want, "{len} draws");
            assert_eq!(parallel.next_u64(), sequential.next_u64(), "the generator continues alike after {len}");
        }
    }

    #[test]
    fn drops_about_p_and_scales_the_rest() -> Result<()> {
        let mut rng = Rng::seed_from_u64(0);
        let mask = DropoutMask::draw(&mut rng, 200_000, 0.1);
        let dropped = (0..mask.len()).filter(|&i| mask.factor(i) == 0.0).count() as f64 / mask.len() as f64;
        assert!((dropped - 0.1).abs() < 0.005, "dropped {dropped}");
        assert!((0..mask.len()).all(|i| [0.0, 1.0 / 0.9].contains(&mask.factor(i))));
        Ok(())
    }

    #[test]
    fn matches_the_composed_mask() -> Result<()> {
        let mut rng = Rng::seed_from_u64(1);
        for shape in [vec![3, 7], vec![5, 30_011]] {
            let x = var(&shape, 1.0, 2);
            let n = x.elem_count();
            let mask = DropoutMask::draw(&mut rng, n, 0.3);
            let factors = mask.tensor(&x)?;
            let got = dropout(&x, &mask)?;
            let want = x.mul(&factors)?;
            assert_same_op(&got, &want, &[("dx", &x)], 0.0, 0.0)?;
        }
        Ok(())
    }

    #[test]
    fn rejects_a_mask_of_another_size() {
        let mut rng = Rng::seed_from_u64(1);
        let mask = DropoutMask::draw(&mut rng, 5, 0.5);
        assert!(dropout(&var(&[2, 3], 1.0, 1), &mask).is_err());
    }
}

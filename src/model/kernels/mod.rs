//! Fused CPU kernels with hand-written backward passes.
//!
//! Candle's autograd records one node per primitive and, in backward, computes the gradient of every
//! operand (weights of a frozen pass included) and accumulates each into a fresh zero tensor. A
//! transformer layer built from primitives therefore spends most of its time in memory traffic. The
//! ops here replace whole blocks (a linear layer, the feed-forward block, attention with its
//! projections, LayerNorm, GELU, dropout) by one node each, whose backward only forms the gradients of
//! operands that are tracked (`Tensor::track_op`): a pass over detached weights never computes weight
//! gradients.
//!
//! The kernels run on contiguous f32 CPU tensors. Each public entry point checks [`fused`] and otherwise
//! runs the composed Candle ops (GPUs, half precision), which also serve as the reference in the tests.
//! [`use_kernels`]`(Kernels::Portable)` makes a thread take the composed ops on the CPU too: exactly
//! the code that CUDA and Metal run, testable on a machine without a GPU.
pub mod activation;
pub mod attention;
pub mod dropout;
pub mod feed_forward;
pub mod layer_norm;
pub mod linear;
pub(crate) mod math;
pub mod optim;
pub mod softmax;

use std::cell::Cell;

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, DType, Layout, Result, Storage, Tensor};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Which implementation the kernels' entry points take for f32 CPU tensors (`train.kernels`,
/// `--kernels`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Kernels {
    /// The fused CPU kernels with hand-written backward passes.
    #[default]
    Fused,
    /// The composed Candle ops that every other device and dtype runs.
    Portable,
}

thread_local! {
    /// Per thread, so that the trainer thread of a run and each test choose independently; the entry
    /// points are called on the thread that builds the graph, never from inside a kernel's workers.
    static PORTABLE: Cell<bool> = const { Cell::new(false) };
}

/// Makes the kernels called from this thread take `kernels` from now on.
pub fn use_kernels(kernels: Kernels) {
    PORTABLE.with(|portable| portable.set(kernels == Kernels::Portable));
}

/// Runs `f` on a thread of a new pool for the kernels (`RAYON_NUM_THREADS` threads, or one per core),
/// the calling thread waiting for it. Whoever builds the graphs of a run or a benchmark calls the
/// kernels from inside the pool this way: a parallel loop started by a pool thread runs one part
/// itself and leaves the rest to be stolen, where one started from outside hands all its work over and
/// sleeps until it is done, hundreds of times a step (measured on 2 cores, MiniLM, batch 32 × seq 64:
/// 2,600 context switches a training step from outside the pool, 780 from inside). The kernel choice
/// of [`use_kernels`] is per thread, so `f` makes it.
pub fn on_kernel_pool<R: Send>(f: impl FnOnce() -> R + Send) -> Result<R> {
    let pool = rayon::ThreadPoolBuilder::new()
        .thread_name(|i| format!("kernels {i}"))
        .build()
        .map_err(candle_core::Error::wrap)?;
    Ok(pool.install(f))
}

/// Whether the fused kernels handle this tensor: f32 on the CPU, unless this thread asked for the
/// portable path.
pub fn fused(x: &Tensor) -> bool {
    x.device().is_cpu() && x.dtype() == DType::F32 && !PORTABLE.with(Cell::get)
}

/// The contiguous f32 data of a CPU storage.
fn slice<'a>(storage: &'a CpuStorage, layout: &Layout, op: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else { bail!("{op}: expects f32, got {:?}", storage.dtype()) };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => bail!("{op}: expects a contiguous tensor"),
    }
}

/// The contiguous f32 data of a CPU storage, writable (in-place ops).
fn slice_mut<'a>(storage: &'a mut CpuStorage, layout: &Layout, op: &str) -> Result<&'a mut [f32]> {
    let dtype = storage.dtype();
    let CpuStorage::F32(data) = storage else { bail!("{op}: expects f32, got {dtype:?}") };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&mut data[start..end]),
        None => bail!("{op}: expects a contiguous tensor"),
    }
}

/// Runs `f` on the contiguous f32 data of a CPU tensor (backward passes read their saved tensors here).
fn with_data<R>(t: &Tensor, op: &str, f: impl FnOnce(&[f32]) -> Result<R>) -> Result<R> {
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    match &*storage {
        Storage::Cpu(cpu) => f(slice(cpu, layout, op)?),
        _ => bail!("{op}: the fused kernels run on the CPU only"),
    }
}

/// A buffer of `len` floats with unspecified contents, for a kernel that writes every element before
/// anything reads it (a GEMM without accumulation, an elementwise map). Zeroing the activation and
/// gradient buffers first took about 4 % of a training step.
///
/// # Safety
/// The caller writes every element before reading any, or handing the buffer on.
#[allow(clippy::uninit_vec)]
unsafe fn output_buffer(len: usize) -> Vec<f32> {
    let mut buffer = Vec::with_capacity(len);
    // SAFETY: the capacity is `len`; the caller's contract covers the contents.
    unsafe { buffer.set_len(len) };
    buffer
}

/// A new f32 tensor of `shape` on the CPU.
fn tensor(data: Vec<f32>, shape: impl Into<candle_core::Shape>) -> Result<Tensor> {
    Tensor::from_vec(data, shape, &candle_core::Device::Cpu)
}

/// Below this many elements a kernel runs on the calling thread: splitting costs more than it saves.
const PARALLEL_MIN: usize = 32 * 1024;
/// Elements per parallel task (whole rows, at least one).
const CHUNK: usize = 16 * 1024;

/// Rows per task for rows of `row_len` elements.
fn rows_per_chunk(row_len: usize) -> usize {
    (CHUNK / row_len.max(1)).max(1)
}

/// Runs `f(first_row, rows)` over `out` split into chunks of whole rows of `row_len`, in parallel when
/// the work is large enough.
fn for_rows(out: &mut [f32], row_len: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    if out.len() < PARALLEL_MIN || row_len == 0 {
        return f(0, out);
    }
    let rows = rows_per_chunk(row_len);
    out.par_chunks_mut(rows * row_len).enumerate().for_each(|(i, chunk)| f(i * rows, chunk));
}

/// Like [`for_rows`] over two buffers of the same layout, split alike: `f(first_row, rows of a, rows
/// of b)`.
fn for_row_pairs(a: &mut [f32], b: &mut [f32], row_len: usize, f: impl Fn(usize, &mut [f32], &mut [f32]) + Sync) {
    debug_assert_eq!(a.len(), b.len());
    if a.len() < PARALLEL_MIN || row_len == 0 {
        return f(0, a, b);
    }
    let rows = rows_per_chunk(row_len);
    let block = rows * row_len;
    a.par_chunks_mut(block).zip(b.par_chunks_mut(block)).enumerate().for_each(|(i, (a, b))| f(i * rows, a, b));
}

/// Like [`for_rows`], where `f(first_row, rows, sums)` also adds into `sums`, a vector of `len`
/// accumulators per task; returns their total (parameter gradients summed over rows).
fn for_rows_summing(
    out: &mut [f32],
    row_len: usize,
    len: usize,
    f: impl Fn(usize, &mut [f32], &mut [f32]) + Sync,
) -> Vec<f32> {
    let run = |first: usize, chunk: &mut [f32]| {
        let mut sums = vec![0f32; len];
        f(first, chunk, &mut sums);
        sums
    };
    if out.len() < PARALLEL_MIN || row_len == 0 {
        return run(0, out);
    }
    let rows = rows_per_chunk(row_len);
    out.par_chunks_mut(rows * row_len)
        .enumerate()
        .map(|(i, chunk)| run(i * rows, chunk))
        .reduce(|| vec![0f32; len], add_into)
}

/// Sums `f(first_row, row_count)`, a vector of `len` partial sums per chunk of rows, over `total_rows`
/// rows (the parameter gradients of LayerNorm and the bias of a linear layer).
fn sum_over_rows(
    total_rows: usize,
    row_len: usize,
    len: usize,
    f: impl Fn(usize, usize, &mut [f32]) + Sync,
) -> Vec<f32> {
    let rows = rows_per_chunk(row_len);
    let partial = |chunk: usize| {
        let first = chunk * rows;
        let mut acc = vec![0f32; len];
        f(first, rows.min(total_rows - first), &mut acc);
        acc
    };
    let chunks = total_rows.div_ceil(rows);
    if total_rows * row_len < PARALLEL_MIN {
        return (0..chunks).map(partial).reduce(add_into).unwrap_or_else(|| vec![0f32; len]);
    }
    (0..chunks).into_par_iter().map(partial).reduce(|| vec![0f32; len], add_into)
}

fn add_into(mut acc: Vec<f32>, other: Vec<f32>) -> Vec<f32> {
    acc.iter_mut().zip(&other).for_each(|(a, b)| *a += b);
    acc
}

/// Whether the CPU runs the AVX2 + FMA copies of the [`simd_fn!`] kernels.
#[cfg(target_arch = "x86_64")]
pub(crate) fn has_avx2_fma() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

/// Whether the CPU runs the AVX-512 copies of the [`simd_fn!`] kernels.
#[cfg(target_arch = "x86_64")]
pub(crate) fn has_avx512() -> bool {
    std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512vl") && has_avx2_fma()
}

/// Defines a kernel function whose body is compiled three times: for AVX-512 and for AVX2 + FMA, each
/// used when the CPU has them, and for the crate's baseline target (SSE2 on x86-64, a quarter of the
/// AVX2 vector width). The body and the `#[inline(always)]` helpers it calls are inlined into each
/// copy, so its loops vectorize for the features of the copy. Arguments are plain values (no generics
/// or closures).
macro_rules! simd_fn {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn body($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                fn avx512($($arg: $ty),*) $(-> $ret)? {
                    body($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                fn avx2($($arg: $ty),*) $(-> $ret)? {
                    body($($arg),*)
                }
                if $crate::model::kernels::has_avx512() {
                    // SAFETY: the CPU has the features this copy was compiled for.
                    return unsafe { avx512($($arg),*) };
                }
                if $crate::model::kernels::has_avx2_fma() {
                    // SAFETY: the CPU has the features this copy was compiled for.
                    return unsafe { avx2($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}
pub(crate) use simd_fn;

/// A strided f32 matrix: element (i, j) is `data[i * row_stride + j * col_stride]`.
#[derive(Debug, Clone, Copy)]
struct Mat<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> Mat<'a> {
    /// A row-major matrix at the start of `data` with rows `row_stride` apart.
    fn new(data: &'a [f32], rows: usize, cols: usize, row_stride: usize) -> Self {
        Self { data, rows, cols, row_stride, col_stride: 1 }
    }

    /// A contiguous row-major matrix.
    fn dense(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self::new(data, rows, cols, cols)
    }

    /// The transpose, as a view.
    fn t(self) -> Self {
        Self { rows: self.cols, cols: self.rows, row_stride: self.col_stride, col_stride: self.row_stride, ..self }
    }

    /// Whether every element lies inside `data`.
    fn in_bounds(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride < self.data.len()
    }
}

/// How a [`matmul`] uses the threads of the rayon pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Threads {
    /// Split the rows of the product over the pool (one large product).
    Pool,
    /// Stay on the calling thread (many small products already run in parallel).
    Single,
}

/// Below this many multiply-adds a product runs on one thread.
const PARALLEL_GEMM_MIN: usize = 1 << 21;

/// `dst = lhs · rhs` (or `dst += lhs · rhs` with `accumulate`), `dst` row-major with rows
/// `dst_stride` apart, the product scaled by `scale`.
///
/// With [`Threads::Pool`] the rows are split into one block per thread, each a single-threaded GEMM:
/// on a few cores this scales better than the GEMM's own fine-grained parallelism.
fn matmul(
    dst: &mut [f32],
    dst_stride: usize,
    lhs: Mat,
    rhs: Mat,
    scale: f32,
    accumulate: bool,
    threads: Threads,
) -> Result<()> {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    let dst_fits = m == 0 || n == 0 || (m - 1) * dst_stride + n <= dst.len();
    if rhs.rows != k || !lhs.in_bounds() || !rhs.in_bounds() || !dst_fits || dst_stride < n {
        bail!("matmul: inconsistent shapes ({m}x{k}) · ({}x{n}) into {} elements", rhs.rows, dst.len());
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    // Exactly the rows of the product, so that the blocks below cover nothing else.
    let dst = &mut dst[..(m - 1) * dst_stride + n];
    if k == 0 {
        if !accumulate {
            dst.chunks_mut(dst_stride).for_each(|row| row[..n].fill(0.0));
        }
        return Ok(());
    }
    let pool = rayon::current_num_threads();
    if threads == Threads::Single || pool < 2 || m < 2 || m * n * k < PARALLEL_GEMM_MIN {
        gemm_block(dst, dst_stride, lhs, rhs, scale, accumulate);
        return Ok(());
    }
    let rows_per_block = m.div_ceil(pool);
    dst.par_chunks_mut(rows_per_block * dst_stride).enumerate().for_each(|(i, block)| {
        let first = i * rows_per_block;
        let rows = rows_per_block.min(m - first);
        let lhs = Mat { data: &lhs.data[first * lhs.row_stride..], rows, ..lhs };
        gemm_block(block, dst_stride, lhs, rhs, scale, accumulate);
    });
    Ok(())
}

/// The throughput, in FLOP/s (two per multiply-add), of the GEMM the linear layers run: `reps` dense
/// products of an `m`×`k` by a `k`×`n` matrix, split over the rayon pool as a linear layer's forward
/// pass splits them, after one untimed product. `bench --mode gemm` reports it, the peak that a
/// training step's FLOPs are measured against.
pub fn gemm_throughput(m: usize, k: usize, n: usize, reps: usize) -> Result<f64> {
    let lhs: Vec<f32> = (0..m * k).map(|i| (i % 17) as f32 * 0.01).collect();
    let rhs: Vec<f32> = (0..k * n).map(|i| (i % 13) as f32 * 0.01).collect();
    let mut dst = vec![0f32; m * n];
    let mut product = || matmul(&mut dst, n, Mat::dense(&lhs, m, k), Mat::dense(&rhs, k, n), 1.0, false, Threads::Pool);
    product()?;
    let started = std::time::Instant::now();
    for _ in 0..reps {
        product()?;
    }
    Ok((2 * m * k * n * reps) as f64 / started.elapsed().as_secs_f64())
}

/// One single-threaded GEMM of non-empty shapes that [`matmul`] has checked.
fn gemm_block(dst: &mut [f32], dst_stride: usize, lhs: Mat, rhs: Mat, scale: f32, accumulate: bool) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    debug_assert!(lhs.in_bounds() && rhs.in_bounds() && (m - 1) * dst_stride + n <= dst.len());
    // SAFETY: `matmul` checked that both operands lie inside their slices and that `m` rows of `n`
    // fit in `dst` at `dst_stride`; a block keeps its rows inside its own chunk. `dst` is borrowed
    // mutably, so it cannot alias the operands.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_stride as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.data.as_ptr(),
            rhs.col_stride as isize,
            rhs.row_stride as isize,
            1.0,
            scale,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Helpers for comparing a fused op with its composed reference.
    use candle_core::{Device, Result, Tensor, Var};
    use rand::{Rng as _, SeedableRng};

    /// A tensor of uniform(-scale, scale) values from a fixed seed.
    pub fn random(shape: &[usize], scale: f32, seed: u64) -> Tensor {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let n = shape.iter().product();
        let data: Vec<f32> = (0..n).map(|_| rng.random_range(-scale..scale)).collect();
        Tensor::from_vec(data, shape, &Device::Cpu).expect("shape matches")
    }

    pub fn var(shape: &[usize], scale: f32, seed: u64) -> Var {
        Var::from_tensor(&random(shape, scale, seed)).expect("f32 tensor")
    }

    pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
        assert_eq!(a.dims(), b.dims(), "shapes differ");
        let diff = (a - b).and_then(|d| d.abs()).and_then(|d| d.flatten_all()).and_then(|d| d.max(0));
        diff.and_then(|d| d.to_scalar::<f32>()).expect("f32 tensors")
    }

    /// Asserts that two tensors agree to `tol` relative to the reference's largest magnitude.
    pub fn assert_close(got: &Tensor, want: &Tensor, tol: f32, what: &str) {
        let scale = want.abs().and_then(|w| w.flatten_all()).and_then(|w| w.max(0)).expect("f32");
        let scale = scale.to_scalar::<f32>().expect("scalar").max(1.0);
        let err = max_abs_diff(got, want);
        assert!(err <= tol * scale, "{what}: max abs diff {err} (scale {scale})");
    }

    /// A fixed random projection of `y`, so that backward sees a non-uniform upstream gradient.
    pub fn loss(y: &Tensor, seed: u64) -> Result<Tensor> {
        let weights = random(y.dims(), 1.0, seed);
        (y * weights)?.sum_all()
    }

    /// Asserts that a fused op agrees with its composed reference: the outputs to `tol`, and the
    /// gradients of each named input to `grad_tol` under the same random projection of the outputs.
    pub fn assert_same_op(got: &Tensor, want: &Tensor, inputs: &[(&str, &Var)], tol: f32, grad_tol: f32) -> Result<()> {
        assert_close(got, want, tol, "forward");
        let (got_grads, want_grads) = (loss(got, 7)?.backward()?, loss(want, 7)?.backward()?);
        for (name, input) in inputs {
            let (g, w) = (got_grads.get(input).expect("gradient"), want_grads.get(input).expect("gradient"));
            assert_close(g, w, grad_tol, name);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_portable_switch_turns_the_fused_path_off_for_this_thread_only() -> Result<()> {
        let x = Tensor::zeros(4, DType::F32, &candle_core::Device::Cpu)?;
        assert!(fused(&x));
        use_kernels(Kernels::Portable);
        assert!(!fused(&x));
        assert!(std::thread::spawn(move || fused(&x)).join().expect("thread"), "another thread keeps its choice");
        use_kernels(Kernels::Fused);
        assert!(!fused(&Tensor::zeros(4, DType::F64, &candle_core::Device::Cpu)?));
        Ok(())
    }

    #[test]
    fn on_kernel_pool_runs_its_closure_on_a_pool_thread_whose_loops_stay_in_that_pool() -> Result<()> {
        let outside = std::thread::spawn(rayon::current_thread_index).join().expect("thread");
        assert_eq!(outside, None, "a plain thread is no pool thread");
        let (index, threads, loop_threads) = std::thread::spawn(|| {
            on_kernel_pool(|| {
                // A parallel loop started here runs on the threads of this pool.
                let mut out = vec![0f32; 4 * PARALLEL_MIN];
                let seen = std::sync::Mutex::new(std::collections::BTreeSet::new());
                for_rows(&mut out, 64, |_, _| {
                    seen.lock().expect("lock").insert(rayon::current_thread_index());
                });
                (rayon::current_thread_index(), rayon::current_num_threads(), seen.into_inner().expect("lock"))
            })
        })
        .join()
        .expect("thread")?;
        assert!(index.is_some(), "the closure runs on a pool thread");
        assert!(loop_threads.iter().all(|i| i.is_some_and(|i| i < threads)), "{loop_threads:?} of {threads}");
        Ok(())
    }
}

//! Branch-free `exp` and `erf` for f32 that the compiler vectorizes (libm's are scalar calls).
//!
//! `exp` is the classic Cody–Waite range reduction with a degree-6 polynomial (relative error about
//! 2e-7); `erf` is Abramowitz & Stegun 7.1.26 (absolute error 1.5e-7, 4.5e-7 in f32), which shares its
//! exp(−x²) with the Gaussian density that the GELU backward needs.

/// 1.5 · 2²³: adding and subtracting it rounds an f32 of magnitude below 2²² to the nearest integer.
const ROUND: f32 = 12_582_912.0;
const LOG2_E: f32 = std::f32::consts::LOG2_E;
/// ln 2 split so that `n · LN2_HI` is exact for the exponents that occur.
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// Below this, e^x is under the smallest normal f32 and is returned as 0.
const EXP_MIN: f32 = -87.336_55;
/// Above this, e^x overflows.
const EXP_MAX: f32 = 88.376_26;

/// e^x; NaN stays NaN, large arguments give +inf, small ones 0.
#[inline(always)]
#[allow(clippy::excessive_precision)] // The polynomial's coefficients as published (Cephes `expf`).
pub(crate) fn exp(x: f32) -> f32 {
    // `clamp` (not `min`/`max`) so that NaN passes through.
    let clamped = x.clamp(EXP_MIN, EXP_MAX);
    let shifted = clamped * LOG2_E + ROUND;
    let n = shifted - ROUND;
    let r = clamped - n * LN2_HI - n * LN2_LO;
    let p = 1.987_569_1e-4;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 5.000_000_1e-1;
    let e_r = p * r * r + r + 1.0;
    // 2ⁿ from the integer n that `shifted` holds in its low mantissa bits (ROUND's bits plus n): integer
    // arithmetic on the bits vectorizes, where `n as i32` (a saturating conversion) is done lane by lane.
    let two_n = f32::from_bits((shifted.to_bits().wrapping_sub(ROUND.to_bits()).wrapping_add(127)) << 23);
    let y = e_r * two_n;
    if x > EXP_MAX {
        f32::INFINITY
    } else if x < EXP_MIN {
        0.0
    } else {
        y
    }
}

/// (erf(x), e^(−x²)).
#[inline(always)]
pub(crate) fn erf_with_gaussian(x: f32) -> (f32, f32) {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = ((((1.061_405_4 * t - 1.453_152) * t + 1.421_413_8) * t - 0.284_496_74) * t + 0.254_829_6) * t;
    let gaussian = exp(-x * x);
    let magnitude = 1.0 - poly * gaussian;
    (if x < 0.0 { -magnitude } else { magnitude }, gaussian)
}

/// Independent accumulators of the reductions: enough for the compiler to keep two AVX2 registers
/// busy (a single running sum cannot be vectorized without reassociating float additions).
const LANES: usize = 16;

/// Σ f(aᵢ, bᵢ, cᵢ) over three rows of equal length, with [`LANES`] partial sums.
#[inline(always)]
pub(crate) fn sum_zip3(a: &[f32], b: &[f32], c: &[f32], f: impl Fn(f32, f32, f32) -> f32) -> f32 {
    debug_assert!(a.len() == b.len() && a.len() == c.len());
    let (a_blocks, a_tail) = a.as_chunks::<LANES>();
    let (b_blocks, b_tail) = b.as_chunks::<LANES>();
    let (c_blocks, c_tail) = c.as_chunks::<LANES>();
    let mut partial = [0f32; LANES];
    for ((a_block, b_block), c_block) in a_blocks.iter().zip(b_blocks).zip(c_blocks) {
        for lane in 0..LANES {
            partial[lane] += f(a_block[lane], b_block[lane], c_block[lane]);
        }
    }
    let tail: f32 = a_tail.iter().zip(b_tail).zip(c_tail).map(|((&x, &y), &z)| f(x, y, z)).sum();
    partial.iter().sum::<f32>() + tail
}

/// Σ f(aᵢ, bᵢ) over two rows of equal length.
#[inline(always)]
pub(crate) fn sum_zip(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f32 {
    sum_zip3(a, b, b, |x, y, _| f(x, y))
}

/// Σ f(aᵢ) over a row.
#[inline(always)]
pub(crate) fn sum_map(a: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    sum_zip3(a, a, a, |x, _, _| f(x))
}

/// The largest element of a row (−∞ for an empty one; NaNs are skipped, as by a running `v > max`),
/// with [`LANES`] running maxima: a single running maximum is a chain the compiler does not vectorize.
#[inline(always)]
pub(crate) fn max_of(a: &[f32]) -> f32 {
    let larger = |m: f32, v: f32| if v > m { v } else { m };
    let (blocks, tail) = a.as_chunks::<LANES>();
    let mut partial = [f32::NEG_INFINITY; LANES];
    for block in blocks {
        for lane in 0..LANES {
            partial[lane] = larger(partial[lane], block[lane]);
        }
    }
    partial.into_iter().chain(tail.iter().copied()).fold(f32::NEG_INFINITY, larger)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_of_is_the_running_maximum() {
        for len in [0, 1, 15, 16, 17, 100, 128] {
            let row: Vec<f32> = (0..len).map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.5).collect();
            let want = row.iter().fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m });
            assert_eq!(max_of(&row), want, "{len} elements");
        }
        assert_eq!(max_of(&[f32::NAN, 1.0, f32::NEG_INFINITY]), 1.0);
    }

    fn erf_reference(x: f64) -> f64 {
        // erf from its Taylor series (|x| ≤ 3) or its asymptotic complement, in f64.
        if x.abs() > 3.0 {
            let t = 1.0 / (1.0 + 0.5 * x.abs());
            // Numerical Recipes erfc (fractional error below 1.2e-7 in f64 — ample at |x| > 3).
            let tau = t
                * (-x * x - 1.265_512_23
                    + t * (1.000_023_68
                        + t * (0.374_091_96
                            + t * (0.096_784_18
                                + t * (-0.186_288_06
                                    + t * (0.278_868_07
                                        + t * (-1.135_203_98
                                            + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
                    .exp();
            return x.signum() * (1.0 - tau);
        }
        let (mut term, mut sum, mut k) = (x, x, 0.0);
        while term.abs() > 1e-17 {
            k += 1.0;
            term *= -x * x / k;
            sum += term / (2.0 * k + 1.0);
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn sums_cover_every_element() {
        for len in [0, 1, 15, 16, 17, 100] {
            let row: Vec<f32> = (0..len).map(|i| i as f32).collect();
            let want: f32 = row.iter().map(|x| x * x).sum();
            assert_eq!(sum_map(&row, |x| x * x), want, "{len}");
            assert_eq!(sum_zip(&row, &row, |x, y| x * y), want, "{len}");
            assert_eq!(sum_zip3(&row, &row, &row, |x, y, _| x * y), want, "{len}");
        }
    }

    #[test]
    fn exp_is_accurate_over_the_range() {
        let mut worst = 0f64;
        for i in -87_000..88_000 {
            let x = i as f32 * 1e-3;
            let want = (x as f64).exp();
            worst = worst.max(((exp(x) as f64 - want) / want).abs());
        }
        assert!(worst < 5e-7, "relative error {worst}");
    }

    #[test]
    fn exp_handles_the_edges() {
        assert_eq!(exp(-1e30), 0.0);
        assert_eq!(exp(f32::MIN), 0.0);
        assert_eq!(exp(1e30), f32::INFINITY);
        assert!(exp(f32::NAN).is_nan());
        assert_eq!(exp(0.0), 1.0);
    }

    #[test]
    fn erf_is_accurate() {
        let mut worst = 0f64;
        for i in -6000..6000 {
            let x = i as f32 * 1e-3;
            let (erf, gaussian) = erf_with_gaussian(x);
            worst = worst.max((erf as f64 - erf_reference(x as f64)).abs());
            assert!((gaussian as f64 - (-(x as f64) * x as f64).exp()).abs() < 1e-7, "gaussian at {x}");
        }
        // The formula's 1.5e-7 plus f32 rounding near |erf| = 1.
        assert!(worst < 5e-7, "absolute error {worst}");
        assert!(erf_with_gaussian(f32::NAN).0.is_nan());
    }
}

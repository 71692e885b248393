//! Linear warm-up then linear decay to zero, as transformers' `get_linear_schedule_with_warmup`.

#[derive(Debug, Clone, Copy)]
pub struct LinearSchedule {
    pub peak_lr: f64,
    pub warmup_steps: usize,
    pub total_steps: usize,
}

impl LinearSchedule {
    /// Warm-up over `ceil(ratio · total)` updates, as transformers' `TrainingArguments.warmup_ratio`
    /// (the same float product, so the same count: 100 · 0.07 = 7.000000000000001 rounds up to 8 there
    /// and here).
    pub fn with_warmup_ratio(peak_lr: f64, ratio: f64, total_steps: usize) -> Self {
        let warmup_steps = (total_steps as f64 * ratio).ceil() as usize;
        Self { peak_lr, warmup_steps, total_steps }
    }

    /// The learning rate of update number `step` (0-based).
    pub fn lr(&self, step: usize) -> f64 {
        if step < self.warmup_steps {
            return self.peak_lr * step as f64 / self.warmup_steps.max(1) as f64;
        }
        let remaining = self.total_steps.saturating_sub(step) as f64;
        let span = self.total_steps.saturating_sub(self.warmup_steps).max(1) as f64;
        self.peak_lr * (remaining / span).max(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warms_up_then_decays_to_zero() {
        let s = LinearSchedule { peak_lr: 1.0, warmup_steps: 2, total_steps: 10 };
        let lrs: Vec<f64> = (0..=10).map(|t| s.lr(t)).collect();
        assert_eq!(lrs[0], 0.0);
        assert_eq!(lrs[1], 0.5);
        assert_eq!(lrs[2], 1.0);
        assert_eq!(lrs[6], 0.5);
        assert_eq!(lrs[10], 0.0);
    }

    #[test]
    fn warm_up_length_rounds_up_like_transformers() {
        // math.ceil(20 * 0.12) = 3, math.ceil(30 * 0.1) = 3, math.ceil(100 * 0.07) = 8 (the product is
        // 7.000000000000001).
        assert_eq!(LinearSchedule::with_warmup_ratio(1.0, 0.12, 20).warmup_steps, 3);
        assert_eq!(LinearSchedule::with_warmup_ratio(1.0, 0.1, 30).warmup_steps, 3);
        assert_eq!(LinearSchedule::with_warmup_ratio(1.0, 0.07, 100).warmup_steps, 8);
        assert_eq!(LinearSchedule::with_warmup_ratio(1.0, 0.1, 20).warmup_steps, 2);
        assert_eq!(LinearSchedule::with_warmup_ratio(1.0, 0.0, 20).warmup_steps, 0);
    }
}

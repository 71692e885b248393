//! Linear warm-up then linear decay to zero, as transformers' `get_linear_schedule_with_warmup`.

#[derive(Debug, Clone, Copy)]
pub struct LinearSchedule {
    pub peak_lr: f64,
    pub warmup_steps: usize,
    pub total_steps: usize,
}

impl LinearSchedule {
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
}

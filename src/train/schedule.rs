//! Learning rate per optimizer step: linear warm-up from 0, then linear or cosine decay to 0
//! (transformers' `get_linear_schedule_with_warmup` / `get_cosine_schedule_with_warmup`).

use super::config::Schedule;

/// The learning rate of optimizer step `step` (0-based) of `total_steps`.
pub fn learning_rate(
    schedule: Schedule,
    peak: f64,
    step: u64,
    warmup_steps: u64,
    total_steps: u64,
) -> f64 {
    if step < warmup_steps {
        return peak * step as f64 / warmup_steps.max(1) as f64;
    }
    let decay_steps = total_steps.saturating_sub(warmup_steps).max(1) as f64;
    let progress = ((step - warmup_steps) as f64 / decay_steps).min(1.0);
    match schedule {
        Schedule::Constant => peak,
        Schedule::Linear => peak * (1.0 - progress).max(0.0),
        Schedule::Cosine => peak * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()),
    }
}

/// Warm-up steps for a ratio of the run, rounded up as transformers does.
pub fn warmup_steps(warmup_ratio: f64, total_steps: u64) -> u64 {
    (warmup_ratio * total_steps as f64).ceil() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warm_up_rises_linearly_then_decays_to_zero() {
        // 10 steps, 2 of warm-up, peak 1: 0, 0.5, then 1 − k/8.
        let lr = |s| learning_rate(Schedule::Linear, 1.0, s, 2, 10);
        assert_eq!(lr(0), 0.0);
        assert_eq!(lr(1), 0.5);
        assert_eq!(lr(2), 1.0);
        assert_eq!(lr(6), 0.5);
        assert_eq!(lr(10), 0.0);
    }

    #[test]
    fn cosine_is_half_way_at_the_middle_of_the_decay() {
        let lr = |s| learning_rate(Schedule::Cosine, 2.0, s, 0, 10);
        assert!((lr(0) - 2.0).abs() < 1e-12);
        assert!((lr(5) - 1.0).abs() < 1e-12);
        assert!(lr(10).abs() < 1e-12);
        assert_eq!(learning_rate(Schedule::Constant, 2.0, 7, 0, 10), 2.0);
    }

    #[test]
    fn warmup_steps_round_up() {
        assert_eq!(warmup_steps(0.05, 100), 5);
        assert_eq!(warmup_steps(0.05, 10), 1);
        assert_eq!(warmup_steps(0.0, 10), 0);
    }
}

//! What a run has reported so far, built from its events alone (pure, no UI): the curves the
//! plots draw, the progress line and the latest metrics.

use crate::data::Split;
use crate::train::{Event, Metrics, RunSummary, StopReason};

/// Points kept per curve for drawing; longer curves are downsampled (bucket means).
pub const MAX_PLOT_POINTS: usize = 1000;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunHistory {
    pub classes: Vec<String>,
    /// `[step, loss]` of every training step.
    pub train_loss: Vec<[f64; 2]>,
    /// Exponential moving average of the training loss (α = 0.1, bias-corrected).
    pub train_loss_smoothed: Vec<[f64; 2]>,
    pub val_loss: Vec<[f64; 2]>,
    pub val_f1: Vec<[f64; 2]>,
    pub val_mcc: Vec<[f64; 2]>,
    pub step: u64,
    pub total_steps: u64,
    pub epoch: f64,
    pub sequences_per_second: f64,
    pub elapsed_s: f64,
    pub eta_s: f64,
    pub learning_rate: f64,
    /// Latest validation metrics (record level) and whether they were the best.
    pub last_validation: Option<(u64, Metrics, bool)>,
    pub best_step: Option<u64>,
    pub test: Option<Metrics>,
    pub status: String,
    pub download: Option<(u64, u64)>,
    pub summary: Option<RunSummary>,
    /// Where the run trains (`cpu`, `cuda:0 (…)`, `metal`).
    pub device: String,
    /// The run's peak memory so far, in MiB (see [`Event::Step`]).
    pub peak_memory_mib: Option<f64>,
    ema: f64,
}

impl RunHistory {
    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::Downloading { done, total, .. } => {
                self.download = Some((*done, *total));
                self.status = format!(
                    "downloading the model: {:.1} of {:.1} MB",
                    *done as f64 / 1e6,
                    *total as f64 / 1e6
                );
            }
            Event::DataLoaded {
                classes,
                train_items,
                ..
            } => {
                self.classes = classes.clone();
                self.status =
                    format!("data ready: {train_items} training inputs; loading the model");
            }
            Event::ModelLoaded {
                total_steps,
                family,
                device,
                ..
            } => {
                self.download = None;
                self.device = device.clone();
                self.total_steps = *total_steps;
                self.status = format!("training {family} on {device}");
            }
            Event::Step {
                step,
                total_steps,
                epoch,
                loss,
                learning_rate,
                sequences_per_second,
                elapsed_s,
                eta_s,
                peak_memory_mib,
                ..
            } => {
                self.peak_memory_mib = *peak_memory_mib;
                let x = *step as f64;
                self.train_loss.push([x, *loss]);
                if loss.is_finite() {
                    self.ema = 0.9 * self.ema + 0.1 * loss;
                }
                let correction = 1.0 - 0.9f64.powi(self.train_loss.len() as i32);
                self.train_loss_smoothed.push([x, self.ema / correction]);
                self.step = *step;
                self.total_steps = *total_steps;
                self.epoch = *epoch;
                self.learning_rate = *learning_rate;
                self.sequences_per_second = *sequences_per_second;
                self.elapsed_s = *elapsed_s;
                self.eta_s = *eta_s;
            }
            Event::Eval {
                step,
                split,
                record,
                is_best,
                ..
            } => match split {
                Split::Validation => {
                    let x = *step as f64;
                    if let Some(loss) = record.loss {
                        self.val_loss.push([x, loss]);
                    }
                    self.val_f1.push([x, record.f1]);
                    self.val_mcc.push([x, record.mcc]);
                    if *is_best {
                        self.best_step = Some(*step);
                    }
                    self.last_validation = Some((*step, record.clone(), *is_best));
                }
                Split::Test => self.test = Some(record.clone()),
                Split::Train => {}
            },
            Event::CheckpointSaved { step, .. } => self.best_step = Some(*step),
            Event::Finished { summary } => {
                self.status = match summary.stop_reason {
                    StopReason::Completed => "finished",
                    StopReason::EarlyStopped => "stopped early: no more improvement",
                    StopReason::Cancelled => "stopped",
                }
                .to_string();
                self.summary = Some((**summary).clone());
            }
        }
    }

    /// Fraction of the steps done, 0..=1.
    pub fn progress(&self) -> f32 {
        if self.total_steps == 0 {
            0.0
        } else {
            (self.step as f64 / self.total_steps as f64).min(1.0) as f32
        }
    }
}

/// At most `max_points` points: consecutive points averaged in equal buckets, so a long
/// curve keeps its shape and draws cheaply.
pub fn downsample(points: &[[f64; 2]], max_points: usize) -> Vec<[f64; 2]> {
    if points.len() <= max_points || max_points == 0 {
        return points.to_vec();
    }
    let bucket = points.len().div_ceil(max_points);
    points
        .chunks(bucket)
        .map(|chunk| {
            let n = chunk.len() as f64;
            let x = chunk.iter().map(|p| p[0]).sum::<f64>() / n;
            let y = chunk.iter().map(|p| p[1]).sum::<f64>() / n;
            [x, y]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(step: u64, loss: f64) -> Event {
        Event::Step {
            step,
            total_steps: 10,
            epoch: 0.0,
            loss,
            learning_rate: 1e-4,
            grad_norm: 1.0,
            sequences_per_second: 5.0,
            elapsed_s: 1.0,
            eta_s: 9.0,
            peak_memory_mib: None,
        }
    }

    #[test]
    fn steps_build_the_loss_curves_and_progress() {
        let mut history = RunHistory::default();
        history.apply(&step(1, 1.0));
        history.apply(&step(2, 0.0));
        assert_eq!(history.train_loss, vec![[1.0, 1.0], [2.0, 0.0]]);
        // EMA with bias correction: first point equals the loss, second 0.09/0.19·… = 0.1/0.19.
        assert!((history.train_loss_smoothed[0][1] - 1.0).abs() < 1e-12);
        assert!((history.train_loss_smoothed[1][1] - 0.09 / 0.19).abs() < 1e-12);
        assert!((history.progress() - 0.2).abs() < 1e-6);
    }

    #[test]
    fn downsampling_keeps_at_most_the_limit_and_the_mean() {
        let points: Vec<[f64; 2]> = (0..10_000).map(|i| [i as f64, 1.0]).collect();
        let small = downsample(&points, 1000);
        assert!(small.len() <= 1000);
        assert!(small.iter().all(|p| (p[1] - 1.0).abs() < 1e-12));
        assert_eq!(downsample(&points[..5], 1000).len(), 5);
    }
}

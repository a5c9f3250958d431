//! The data step's quality check as shown: the core's [`QcReport`] (counts per class and
//! split, lengths, GC, duplicates, what was left out, the composition-shortcut warning) and
//! length and GC histograms per class.

use eframe::egui;
use egui_plot::{Bar, BarChart, Legend, Plot};

use crate::data::qc::{gc_fraction, QcReport};
use crate::data::split::SPLITS;
use crate::data::{Dataset, Split};

use super::data_ui::thousands;

/// Counts of values in equal bins, per class.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    pub start: f64,
    pub bin_width: f64,
    /// `counts[class][bin]`.
    pub counts: Vec<Vec<u64>>,
}

impl Histogram {
    /// Bins `values` (class, value) into `bins` bins over `range`, or over the values' own
    /// range when `None`.
    pub(crate) fn of(
        values: &[(u32, f64)],
        classes: usize,
        bins: usize,
        range: Option<(f64, f64)>,
    ) -> Self {
        let (low, high) = range.unwrap_or_else(|| {
            values
                .iter()
                .fold((f64::MAX, f64::MIN), |(low, high), &(_, v)| {
                    (low.min(v), high.max(v))
                })
        });
        let (start, bin_width, bins) = if values.is_empty() {
            (0.0, 1.0, 1)
        } else if high <= low {
            // One value only: one bin centred on it.
            (low - 0.5, 1.0, 1)
        } else {
            (low, (high - low) / bins as f64, bins)
        };
        let mut counts = vec![vec![0u64; bins]; classes];
        for &(class, value) in values {
            let bin = (((value - start) / bin_width) as usize).min(bins - 1);
            if let Some(class_counts) = counts.get_mut(class as usize) {
                class_counts[bin] += 1;
            }
        }
        Histogram {
            start,
            bin_width,
            counts,
        }
    }
}

/// The quality check's result: the core's report and the histograms to draw.
#[derive(Debug, Clone)]
pub struct QcResult {
    pub report: QcReport,
    /// Record lengths in bp.
    pub lengths: Histogram,
    /// GC fraction of every window.
    pub gc: Histogram,
}

/// Counts per class and split, lengths, GC, duplicates, drops and the composition check.
pub fn qc_report_ui(ui: &mut egui::Ui, result: &QcResult) {
    let report = &result.report;
    if let Some(warning) = &report.composition.warning {
        egui::Frame::new()
            .fill(ui.visuals().warn_fg_color.gamma_multiply(0.15))
            .stroke(egui::Stroke::new(1.5, ui.visuals().warn_fg_color))
            .inner_margin(8.0)
            .corner_radius(4.0)
            .show(ui, |ui| {
                ui.add(
                    egui::Label::new(
                        egui::RichText::new(format!("Warning: {warning}"))
                            .strong()
                            .color(ui.visuals().warn_fg_color),
                    )
                    .wrap(),
                );
            });
    } else if let (Some(mcc), Some(split)) = (
        report.composition.gc_only_mcc,
        report.composition.evaluated_on,
    ) {
        ui.label(format!(
            "GC content alone does not separate the classes (a GC-only rule reaches MCC {mcc:.2} on the {split} set)."
        ));
    }

    ui.strong("Windows per class and split");
    egui::Grid::new("qc_counts")
        .striped(true)
        .num_columns(7)
        .show(ui, |ui| {
            for title in [
                "Class",
                "Train",
                "Validation",
                "Test",
                "Duplicates removed",
                "Record length (min / median / max)",
                "GC (mean ± sd)",
            ] {
                ui.strong(title);
            }
            ui.end_row();
            for class in &report.classes {
                ui.label(class);
                let rows: Vec<_> = report.splits.iter().filter(|r| &r.class == class).collect();
                for split in SPLITS {
                    let Some(row) = rows.iter().find(|r| r.split == split) else {
                        ui.label("–");
                        continue;
                    };
                    let text = if row.windows == row.records {
                        thousands(row.windows)
                    } else {
                        format!(
                            "{} ({} records)",
                            thousands(row.windows),
                            thousands(row.records)
                        )
                    };
                    let description = format!(
                        "{class} in {split}: {} windows from {} records",
                        row.windows, row.records
                    );
                    ui.label(text).widget_info(|| {
                        egui::WidgetInfo::labeled(egui::Role::Label, true, &description)
                    });
                }
                let removed: u64 = rows.iter().map(|r| r.duplicates_removed).sum();
                let other_class: u64 = rows.iter().map(|r| r.duplicates_with_other_class).sum();
                ui.label(if other_class > 0 {
                    format!("{removed} ({other_class} with another class)")
                } else {
                    removed.to_string()
                });
                let lengths: Vec<String> = rows
                    .iter()
                    .filter(|r| r.split == Split::Train)
                    .filter_map(|r| r.record_len)
                    .map(|l| {
                        format!(
                            "{} / {} / {}",
                            thousands(l.min.into()),
                            thousands(l.median.into()),
                            thousands(l.max.into())
                        )
                    })
                    .collect();
                ui.label(lengths.first().cloned().unwrap_or_else(|| "–".into()));
                let gc = rows
                    .iter()
                    .find(|r| r.split == Split::Train)
                    .and_then(|r| Some((r.gc_mean?, r.gc_sd?)));
                ui.label(gc.map_or("–".into(), |(mean, sd)| {
                    format!("{:.1}% ± {:.1}", mean * 100.0, sd * 100.0)
                }));
                ui.end_row();
            }
        });
    ui.weak("Lengths and GC of the train split; duplicates: windows whose bases already occur earlier, removed from validation and test.");

    let drops: Vec<String> = report
        .classes_before_split
        .iter()
        .filter_map(|d| {
            let mut parts = Vec::new();
            if d.records_too_short > 0 {
                parts.push(format!(
                    "{} records shorter than the shortest window",
                    d.records_too_short
                ));
            }
            if d.windows_too_many_n > 0 {
                parts.push(format!("{} windows with too many N", d.windows_too_many_n));
            }
            if d.windows_crossing_block_border > 0 {
                parts.push(format!(
                    "{} windows across block borders",
                    d.windows_crossing_block_border
                ));
            }
            if d.normalization.empty_records > 0 {
                parts.push(format!("{} empty records", d.normalization.empty_records));
            }
            (!parts.is_empty()).then(|| format!("{}: {}", d.class, parts.join(", ")))
        })
        .collect();
    if !drops.is_empty() {
        ui.label(format!("Left out: {}", drops.join("; ")));
    }

    ui.columns(2, |columns| {
        columns[0].strong("Record length");
        histogram_ui(
            &mut columns[0],
            "qc_length_histogram",
            "record length (bp)",
            &result.lengths,
            &report.classes,
        );
        columns[1].strong("GC content of windows");
        histogram_ui(
            &mut columns[1],
            "qc_gc_histogram",
            "GC fraction",
            &result.gc,
            &report.classes,
        );
    });
}

/// One bar per class and bin, side by side; heights are shares of the class so that
/// classes of different sizes compare.
fn histogram_ui(
    ui: &mut egui::Ui,
    id: &str,
    x_label: &str,
    histogram: &Histogram,
    classes: &[String],
) {
    let class_count = classes.len().max(1) as f64;
    Plot::new(id)
        .height(180.0)
        .legend(Legend::default())
        .allow_drag(false)
        .allow_zoom(false)
        .allow_scroll(false)
        .allow_boxed_zoom(false)
        .x_axis_label(x_label)
        .y_axis_label("share of class")
        .show(ui, |plot| {
            for (class, name) in classes.iter().enumerate() {
                let Some(counts) = histogram.counts.get(class) else {
                    continue;
                };
                let total = counts.iter().sum::<u64>().max(1) as f64;
                let bars = counts
                    .iter()
                    .enumerate()
                    .map(|(bin, &count)| {
                        let x = histogram.start
                            + histogram.bin_width
                                * (bin as f64 + (class as f64 + 0.5) / class_count);
                        Bar::new(x, count as f64 / total).width(histogram.bin_width / class_count)
                    })
                    .collect();
                plot.bar_chart(BarChart::new(name.clone(), bars));
            }
        });
}

/// Report and histograms of a built dataset (on the worker thread).
pub fn qc_result(dataset: &Dataset) -> QcResult {
    let classes = dataset.data.classes.len();
    let lengths: Vec<(u32, f64)> = dataset
        .data
        .records
        .iter()
        .map(|r| (r.class, f64::from(r.len)))
        .collect();
    let mut gc = Vec::new();
    for split in SPLITS {
        for window in dataset.windows(split) {
            if let Some(fraction) = gc_fraction(dataset.bases(window)) {
                gc.push((dataset.class_of(window), fraction));
            }
        }
    }
    QcResult {
        report: dataset.report.clone(),
        lengths: Histogram::of(&lengths, classes, 30, None),
        gc: Histogram::of(&gc, classes, 25, Some((0.0, 1.0))),
    }
}

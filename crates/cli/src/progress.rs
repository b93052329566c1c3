//! Progress bars on stderr for runs longer than about a second.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A spinner that appears only after one second and only when not quiet.
pub struct Progress {
    quiet: bool,
    start: Instant,
    label: String,
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A new, still invisible, progress indicator.
    pub fn new(quiet: bool, label: &str) -> Self {
        Progress {
            quiet,
            start: Instant::now(),
            label: label.to_string(),
            bar: None,
        }
    }

    /// Report the current simulated cycle and phase.
    pub fn tick(&mut self, cycle: u64, phase: &str) {
        if self.quiet {
            return;
        }
        if self.bar.is_none() && self.start.elapsed() >= Duration::from_secs(1) {
            let b = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            b.set_style(
                ProgressStyle::with_template("{spinner} {prefix} [{elapsed_precise}] {msg}")
                    .expect("static template"),
            );
            b.set_prefix(self.label.clone());
            b.enable_steady_tick(Duration::from_millis(200));
            self.bar = Some(b);
        }
        if let Some(b) = &self.bar {
            let rate = cycle as f64 / self.start.elapsed().as_secs_f64().max(1e-9);
            b.set_message(format!("{phase}: cycle {cycle} ({rate:.0} cycles/s)"));
        }
    }

    /// A determinate bar over `total` items (e.g. sweep points); hidden when quiet.
    pub fn bar(quiet: bool, total: u64, label: &str) -> ProgressBar {
        if quiet {
            return ProgressBar::hidden();
        }
        let b = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        b.set_style(
            ProgressStyle::with_template(
                "{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} {msg}",
            )
            .expect("static template"),
        );
        b.set_prefix(label.to_string());
        b
    }

    /// Remove the indicator.
    pub fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

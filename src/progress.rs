//! Download progress: on a terminal, a bar per active file and a total bar with speed and ETA
//! (indicatif); elsewhere plain lines, so logs of CI image builds hold no control characters.

use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::ui::{self, Ui};

pub struct DownloadProgress {
    multi: Option<MultiProgress>,
    total: Option<ProgressBar>,
    started: Instant,
}

/// One file's progress; dropping it removes its bar.
pub struct FileProgress {
    bar: Option<ProgressBar>,
    total: Option<ProgressBar>,
}

impl DownloadProgress {
    pub fn new(files: usize, bytes: u64) -> DownloadProgress {
        let started = Instant::now();
        if !Ui::get().progress_bars {
            return DownloadProgress {
                multi: None,
                total: None,
                started,
            };
        }
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stdout());
        let total = multi.add(ProgressBar::new(bytes).with_style(style(
            "{prefix:<30!} {bytes:>10} {binary_bytes_per_sec:>12} {eta:>5} [{bar:30}] {percent:>3}%",
        )));
        total.set_prefix(format!("Total ({files} files)"));
        total.enable_steady_tick(Duration::from_millis(200));
        DownloadProgress {
            multi: Some(multi),
            total: Some(total),
            started,
        }
    }

    /// A file starts downloading; `size` is the database's size.
    pub fn start(&self, name: &str, size: u64) -> FileProgress {
        let display = name.strip_suffix(".pkg.tar.zst").unwrap_or(name);
        let Some(multi) = &self.multi else {
            println!(" {display} downloading...");
            return FileProgress {
                bar: None,
                total: None,
            };
        };
        let count = multi.clone();
        let bar = count.insert_from_back(
            1,
            ProgressBar::new(size).with_style(style(
                " {prefix:<29!} {msg:<6} {bytes:>10} {binary_bytes_per_sec:>12} {eta:>5} [{bar:30}] {percent:>3}%",
            )),
        );
        bar.set_prefix(display.to_owned());
        FileProgress {
            bar: Some(bar),
            total: self.total.clone(),
        }
    }

    /// Prints a message without tearing the bars.
    pub fn warn(&self, text: &str) {
        match &self.multi {
            Some(multi) => multi.suspend(|| ui::warning(text)),
            None => ui::warning(text),
        }
    }

    /// The closing line: how much, from where, how fast (not with `--quiet`).
    pub fn finish(self, from_peers: u64, from_mirrors: u64) {
        if let Some(total) = &self.total {
            total.finish_and_clear();
        }
        if Ui::get().quiet {
            return;
        }
        let bytes = from_peers + from_mirrors;
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        println!(
            " downloaded {}: {} from peers, {} from mirrors in {:.1} s ({}/s)",
            ui::human(bytes),
            ui::human(from_peers),
            ui::human(from_mirrors),
            secs,
            ui::human((bytes as f64 / secs) as u64)
        );
    }
}

impl FileProgress {
    pub fn advance(&self, bytes: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(bytes);
        }
        if let Some(total) = &self.total {
            total.inc(bytes);
        }
    }

    /// Where the bytes come from now ("peers" or "mirror"), shown on the file's bar.
    pub fn source(&self, source: &'static str) {
        if let Some(bar) = &self.bar {
            bar.set_message(source);
        }
    }

    /// Bytes thrown away (a corrupt copy, a restart): take them back off the bars.
    pub fn rewind(&self, bytes: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(bar.position().saturating_sub(bytes));
        }
        if let Some(total) = &self.total {
            total.set_position(total.position().saturating_sub(bytes));
        }
    }
}

impl Drop for FileProgress {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .expect("static template")
        .progress_chars("#-")
}

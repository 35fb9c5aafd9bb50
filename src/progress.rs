//! Download progress: on a terminal, a bar per active file and a total bar with speed and ETA
//! (indicatif); elsewhere plain lines, so logs of CI image builds hold no control characters.
//! In the download process nothing is drawn: every change goes to a [`Sink`], the root
//! process, which draws it.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::ui::{self, Ui};

pub struct DownloadProgress {
    multi: Option<MultiProgress>,
    total: Option<ProgressBar>,
    started: Instant,
    sink: Option<Arc<dyn Sink>>,
}

/// Where the download process's progress goes: the root process, which draws it.
pub trait Sink: Send + Sync {
    fn start(&self, files: usize, bytes: u64);
    /// A file's bar appears; its number, if the file is known.
    fn file_start(&self, name: &str) -> Option<u32>;
    /// Bytes per source (peers, mirror), who is active, and how much of the swarm copy is final.
    fn bar(&self, file: u32, kept: [u64; 2], active: [bool; 2], swarm_prefix: u64);
    fn file_done(&self, file: u32);
    fn warn(&self, text: &str);
    fn finish(&self, peers: u64, mirrors: u64);
}

static SINK: OnceLock<Arc<dyn Sink>> = OnceLock::new();

/// From now on this process draws no progress: it goes to `sink`.
pub fn redirect(sink: Arc<dyn Sink>) {
    let _ = SINK.set(sink);
}

/// Where a file's bytes come from. The swarm and a mirror may both fetch a file at once (a
/// slow swarm races the mirror), each into its own staging file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Peers,
    Mirror,
}

/// One file's progress; dropping it removes its bar. The bar shows the source that is
/// furthest along; each source's bytes are also counted for the final report.
pub struct FileProgress {
    bar: Option<ProgressBar>,
    total: Option<ProgressBar>,
    counts: Mutex<Counts>,
    remote: Option<(Arc<dyn Sink>, u32)>,
}

/// Per source: bytes that count towards the file now (rewound when a copy is thrown away),
/// and bytes received at all (never rewound: what the network carried).
#[derive(Default)]
struct Counts {
    kept: [u64; 2],
    received: [u64; 2],
    active: [bool; 2],
    /// Bytes of the swarm copy that are final (verified pieces from the start).
    swarm_prefix: u64,
}

impl Counts {
    fn shown(&self) -> u64 {
        self.kept[0].max(self.kept[1])
    }
}

impl DownloadProgress {
    pub fn new(files: usize, bytes: u64) -> DownloadProgress {
        let started = Instant::now();
        if let Some(sink) = SINK.get() {
            sink.start(files, bytes);
            return DownloadProgress {
                multi: None,
                total: None,
                started,
                sink: Some(sink.clone()),
            };
        }
        if !Ui::get().progress_bars {
            return DownloadProgress {
                multi: None,
                total: None,
                started,
                sink: None,
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
            sink: None,
        }
    }

    /// A file starts downloading; `size` is the database's size.
    pub fn start(&self, name: &str, size: u64) -> FileProgress {
        let display = name.strip_suffix(".pkg.tar.zst").unwrap_or(name);
        if let Some(sink) = &self.sink {
            return FileProgress {
                bar: None,
                total: None,
                counts: Mutex::default(),
                remote: sink.file_start(name).map(|id| (sink.clone(), id)),
            };
        }
        let Some(multi) = &self.multi else {
            println!(" {display} downloading...");
            return FileProgress {
                bar: None,
                total: None,
                counts: Mutex::default(),
                remote: None,
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
            counts: Mutex::default(),
            remote: None,
        }
    }

    /// Prints a message without tearing the bars.
    pub fn warn(&self, text: &str) {
        self.say(ui::Level::Warning, text);
    }

    /// Prints a line at `level` without tearing the bars.
    pub fn say(&self, level: ui::Level, text: &str) {
        if let (Some(sink), ui::Level::Warning) = (&self.sink, level) {
            return sink.warn(text);
        }
        match &self.multi {
            Some(multi) => multi.suspend(|| ui::say(level, text)),
            None => ui::say(level, text),
        }
    }

    /// The closing line: how much, from where, how fast (not with `--quiet`).
    pub fn finish(self, from_peers: u64, from_mirrors: u64) {
        if let Some(sink) = &self.sink {
            return sink.finish(from_peers, from_mirrors);
        }
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
    /// `bytes` more arrived from `source`.
    pub fn advance(&self, source: Source, bytes: u64) {
        self.update(|c| {
            c.kept[source as usize] += bytes;
            c.received[source as usize] += bytes;
        });
    }

    /// Bytes of `source` thrown away (a corrupt copy, a restart): off the bars, though they
    /// stay counted as received.
    pub fn rewind(&self, source: Source, bytes: u64) {
        self.update(|c| {
            let kept = &mut c.kept[source as usize];
            *kept = kept.saturating_sub(bytes);
        });
    }

    /// `source` starts or stops working on the file; the bar names who is working.
    pub fn set_active(&self, source: Source, active: bool) {
        self.update(|c| c.active[source as usize] = active);
    }

    /// How much of the swarm copy is final: the root process may copy it already.
    pub fn set_swarm_prefix(&self, bytes: u64) {
        self.update(|c| c.swarm_prefix = c.swarm_prefix.max(bytes));
    }

    /// The download process's view of the file, drawn as it is (in the root process).
    pub fn show(&self, kept: [u64; 2], active: [bool; 2]) {
        self.update(|c| {
            c.kept = kept;
            c.active = active;
        });
    }

    /// Bytes received from `source`, kept or not.
    pub fn received(&self, source: Source) -> u64 {
        self.counts.lock().expect("no poisoning").received[source as usize]
    }

    fn update(&self, change: impl FnOnce(&mut Counts)) {
        let mut counts = self.counts.lock().expect("no poisoning");
        let before = counts.shown();
        change(&mut counts);
        let after = counts.shown();
        if let Some((sink, id)) = &self.remote {
            sink.bar(*id, counts.kept, counts.active, counts.swarm_prefix);
        }
        if let Some(bar) = &self.bar {
            bar.set_position(after);
            bar.set_message(match counts.active {
                [true, true] => "both",
                [true, false] => "peers",
                [false, true] => "mirror",
                [false, false] => "",
            });
        }
        if let Some(total) = &self.total {
            total.set_position((total.position() + after).saturating_sub(before));
        }
    }
}

impl Drop for FileProgress {
    fn drop(&mut self) {
        if let Some((sink, id)) = &self.remote {
            sink.file_done(*id);
        }
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

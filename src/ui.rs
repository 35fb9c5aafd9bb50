//! Output in pacman's voice: `:: ` headers, `error: `/`warning: ` prefixes, sizes in MiB,
//! `[Y/n]` prompts. Colours follow `--color`, then `NO_COLOR`, then pacman.conf's `Color`.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::OnceLock;

use console::style;

use crate::cli::{ColorWhen, SyncArgs};
pub use crate::fetcher::protocol::Level;

/// How pactor talks to the user; fixed once at start-up.
#[derive(Debug, Clone, Copy)]
pub struct Ui {
    /// Progress bars only on a terminal, and never with `--noprogressbar`.
    pub progress_bars: bool,
    pub noconfirm: bool,
    /// `--quiet`: pactor's own extra lines (the download summary) are left out.
    pub quiet: bool,
}

static UI: OnceLock<Ui> = OnceLock::new();

impl Ui {
    /// Fixes colours, progress bars and prompts from the command line and pacman.conf's `Color`.
    pub fn init(args: &SyncArgs, pacman_color: bool) {
        let tty = std::io::stdout().is_terminal();
        let color = use_color(
            args.color,
            pacman_color,
            tty,
            std::env::var_os("NO_COLOR").is_some(),
        );
        console::set_colors_enabled(color);
        console::set_colors_enabled_stderr(color);
        let ui = Ui {
            progress_bars: tty && !args.noprogressbar,
            noconfirm: args.noconfirm && !args.confirm,
            quiet: args.quiet,
        };
        let _ = UI.set(ui);
    }

    pub fn get() -> Ui {
        *UI.get_or_init(|| Ui {
            progress_bars: false,
            noconfirm: false,
            quiet: false,
        })
    }
}

/// `--color` decides; without it, pacman.conf's `Color` turns colour on for a terminal, and
/// `NO_COLOR` turns it off (pacman has `Color` act on a terminal only too).
fn use_color(when: Option<ColorWhen>, pacman_color: bool, tty: bool, no_color: bool) -> bool {
    match when {
        Some(ColorWhen::Always) => true,
        Some(ColorWhen::Never) => false,
        Some(ColorWhen::Auto) => tty && !no_color,
        None => pacman_color && tty && !no_color,
    }
}

/// Diagnostics through `tracing`, on stderr in pacman's words (`debug: …`, `warning: …`).
/// `--debug` shows pactor's debug events; `$PACTOR_LOG` takes any filter (`librqbit=debug`).
pub fn init_tracing(debug: bool) {
    let filter = if debug { "pactor=debug" } else { "pactor=warn" };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PACTOR_LOG")
                .unwrap_or_else(|_| filter.into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .event_format(PacmanFormat)
        .try_init();
}

/// Formats an event as pacman prints its log: `level: message`.
struct PacmanFormat;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for PacmanFormat
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let meta = event.metadata();
        let level = match *meta.level() {
            tracing::Level::ERROR => style("error:").bold().red(),
            tracing::Level::WARN => style("warning:").bold().yellow(),
            _ => style("debug:"),
        };
        write!(writer, "{level} ")?;
        if !meta.target().starts_with("pactor") {
            write!(writer, "{}: ", meta.target())?;
            // The engine's events make sense only with their spans: which torrent, which peer.
            if let Some(scope) = ctx.event_scope() {
                for span in scope.from_root() {
                    write!(writer, "{}", span.name())?;
                    let extensions = span.extensions();
                    if let Some(fields) =
                        extensions.get::<tracing_subscriber::fmt::FormattedFields<N>>()
                        && !fields.is_empty()
                    {
                        write!(writer, "{{{fields}}}")?;
                    }
                    write!(writer, ": ")?;
                }
            }
        }
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// Where the lines of [`section`], [`warning`] and [`error`] go instead of the terminal.
pub type Redirect = Box<dyn Fn(Level, &str) + Send + Sync>;

static REDIRECT: OnceLock<Redirect> = OnceLock::new();

/// In the download process the terminal is the root process's: every line goes to it, which
/// prints it (cleaned) where it belongs.
pub fn redirect(to: Redirect) {
    let _ = REDIRECT.set(to);
}

fn redirected(level: Level, text: &str) -> bool {
    match REDIRECT.get() {
        Some(to) => {
            to(level, text);
            true
        }
        None => false,
    }
}

/// `:: text` in bold, as pacman announces a phase.
pub fn section(text: &str) {
    if !redirected(Level::Section, text) {
        println!("{}", section_line(text));
    }
}

/// The `:: text` line, for output assembled before it is printed.
pub fn section_line(text: &str) -> String {
    format!("{} {}", style("::").bold().blue(), style(text).bold())
}

pub fn error(text: &str) {
    if redirected(Level::Error, text) {
        return;
    }
    eprintln!("{} {}", style("error:").bold().red(), text.trim_end());
}

pub fn warning(text: &str) {
    if redirected(Level::Warning, text) {
        return;
    }
    eprintln!("{} {}", style("warning:").bold().yellow(), text.trim_end());
}

/// A plain line on stdout, or the root process's when redirected.
pub fn line(text: &str) {
    if !redirected(Level::Line, text) {
        println!("{text}");
    }
}

/// Shows a line at `level`, as the functions above do.
pub fn say(level: Level, text: &str) {
    match level {
        Level::Section => section(text),
        Level::Line => line(text),
        Level::Warning => warning(text),
        Level::Error => error(text),
    }
}

/// pacman's numbered choice list, grouped under `:: Repository NAME` headers:
/// `   1) a   2) b`. Items are `(repo, name)` in display order.
pub fn numbered_by_repo(items: &[(&str, &str)]) {
    let mut last_repo = None;
    let mut line = String::new();
    for (i, (repo, name)) in items.iter().enumerate() {
        if last_repo != Some(*repo) {
            if !line.is_empty() {
                println!("{line}");
                line.clear();
            }
            section(&format!("Repository {repo}"));
            last_repo = Some(*repo);
        }
        line.push_str(&format!("   {}) {name}", i + 1));
    }
    println!("{line}\n");
}

/// Bytes as pacman shows them in summaries: always MiB with two decimals.
pub fn mib(bytes: i64) -> String {
    let value = bytes as f64 / (1024.0 * 1024.0);
    // pacman's humanize_size: what would print as -0.00 prints as 0.00.
    let value = if value < 0.0 && value > -0.005 {
        0.0
    } else {
        value
    };
    format!("{value:.2} MiB")
}

/// Bytes with a fitting binary unit, for progress lines.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A yes/no question the way pacman asks it: `:: prompt [Y/n] `. With `--noconfirm` the
/// default is taken (and shown). The answer is a line read from stdin, on a terminal too, as
/// pacman reads it: the terminal stays in its line mode, so Ctrl-Z suspends the run there and
/// Ctrl-C stops it (see [`read_line`]). End of input takes the default.
pub fn confirm(prompt: &str, default: bool) -> bool {
    let hint = if default { "[Y/n]" } else { "[y/N]" };
    print!(
        "{} {} {hint} ",
        style("::").bold().blue(),
        style(prompt).bold()
    );
    if Ui::get().noconfirm {
        println!();
        return default;
    }
    let _ = std::io::stdout().flush();
    let answer = match read_line() {
        Answer::Line(line) => Some(line),
        Answer::End => None,
        Answer::Interrupted => return false,
    };
    // A terminal echoed the answer and its newline; a pipe did not.
    if answer.is_none() || !std::io::stdin().is_terminal() {
        println!();
    }
    match answer.as_deref().map(str::trim) {
        None | Some("") => default,
        Some(a) => a.eq_ignore_ascii_case("y") || a.eq_ignore_ascii_case("yes"),
    }
}

/// A number between 1 and `count` (pacman's provider question); `None` means the default.
pub fn select_number(prompt: &str, count: usize) -> Option<usize> {
    if Ui::get().noconfirm {
        println!("{prompt}");
        return None;
    }
    loop {
        print!("{prompt}");
        let _ = std::io::stdout().flush();
        let Answer::Line(line) = read_line() else {
            return None;
        };
        let line = line.trim();
        if line.is_empty() {
            return None;
        }
        match line.parse::<usize>() {
            Ok(n) if (1..=count).contains(&n) => return Some(n - 1),
            _ => error(&format!("invalid number: {line}")),
        }
    }
}

/// What a prompt read from stdin.
pub enum Answer {
    Line(String),
    /// End of input (or a read error): the default is taken.
    End,
    /// A stopping signal arrived while waiting, announced as pacman announces it; every later
    /// prompt gets this at once. The caller answers no, and the run ends with the signal.
    Interrupted,
}

/// One line from stdin, or [`Answer::Interrupted`] as soon as a stopping signal arrives. pacman
/// exits from its signal handler at a prompt; here the signal is only recorded (the handler
/// restarts the read), so the line is read on a thread of its own and watched for.
pub fn read_line() -> Answer {
    let interrupted = || {
        let signum = crate::interrupt::received()?;
        crate::interrupt::announce(signum);
        // pacman's handler ends the line the prompt was on.
        println!();
        Some(Answer::Interrupted)
    };
    if let Some(answer) = interrupted() {
        return answer;
    }
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let read = std::io::stdin().lock().read_line(&mut line);
        let _ = tx.send(match read {
            Ok(0) | Err(_) => Answer::End,
            Ok(_) => Answer::Line(line),
        });
    });
    loop {
        match rx.recv_timeout(std::time::Duration::from_millis(20)) {
            Ok(answer) => return answer,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return Answer::End,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if let Some(answer) = interrupted() {
                    return answer;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_follows_the_flag_then_no_color_then_pacman_conf() {
        use ColorWhen::*;
        // (--color, pacman.conf Color, terminal, NO_COLOR) -> colour
        for (when, pacman, tty, no_color, expected) in [
            (Some(Always), false, false, true, true),
            (Some(Never), true, true, false, false),
            (Some(Auto), false, true, false, true),
            (Some(Auto), false, true, true, false),
            (Some(Auto), true, false, false, false),
            (None, true, true, false, true),
            (None, true, true, true, false),
            (None, true, false, false, false),
            (None, false, true, false, false),
        ] {
            assert_eq!(
                use_color(when, pacman, tty, no_color),
                expected,
                "{when:?} Color={pacman} tty={tty} NO_COLOR={no_color}"
            );
        }
    }

    #[test]
    fn sizes_read_like_pacmans() {
        assert_eq!(mib(0), "0.00 MiB");
        assert_eq!(mib(5 * 1024 * 1024 + 512 * 1024), "5.50 MiB");
        assert_eq!(mib(-1024 * 1024), "-1.00 MiB");
        assert_eq!(human(999), "999 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }
}

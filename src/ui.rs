//! Output in pacman's voice: `:: ` headers, `error: `/`warning: ` prefixes, sizes in MiB,
//! `[Y/n]` prompts. Colours follow `--color`, then `NO_COLOR`, then pacman.conf's `Color`.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::OnceLock;

use console::style;

use crate::cli::ColorWhen;

/// How pactor talks to the user; fixed once at start-up.
#[derive(Debug, Clone, Copy)]
pub struct Ui {
    /// Progress bars only on a terminal, and never with `--noprogressbar`.
    pub progress_bars: bool,
    pub noconfirm: bool,
}

static UI: OnceLock<Ui> = OnceLock::new();

impl Ui {
    pub fn init(when: Option<ColorWhen>, pacman_color: bool, noprogressbar: bool, noconfirm: bool) {
        let tty = std::io::stdout().is_terminal();
        let color = match when {
            Some(ColorWhen::Always) => true,
            Some(ColorWhen::Never) => false,
            Some(ColorWhen::Auto) => tty && std::env::var_os("NO_COLOR").is_none(),
            None => pacman_color && tty && std::env::var_os("NO_COLOR").is_none(),
        };
        console::set_colors_enabled(color);
        console::set_colors_enabled_stderr(color);
        let ui = Ui {
            progress_bars: tty && !noprogressbar,
            noconfirm,
        };
        let _ = UI.set(ui);
    }

    pub fn get() -> Ui {
        *UI.get_or_init(|| Ui {
            progress_bars: false,
            noconfirm: false,
        })
    }
}

/// `:: text` in bold, as pacman announces a phase.
pub fn section(text: &str) {
    println!("{} {}", style("::").bold().blue(), style(text).bold());
}

pub fn error(text: &str) {
    eprintln!("{} {}", style("error:").bold().red(), text.trim_end());
}

pub fn warning(text: &str) {
    eprintln!("{} {}", style("warning:").bold().yellow(), text.trim_end());
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
    format!("{:.2} MiB", bytes as f64 / (1024.0 * 1024.0))
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
/// default is taken (and shown). On a terminal dialoguer reads the answer; otherwise a line is
/// read from stdin as pacman does, and end of input takes the default.
pub fn confirm(prompt: &str, default: bool) -> bool {
    let hint = if default { "[Y/n]" } else { "[y/N]" };
    let ui = Ui::get();
    if ui.noconfirm {
        println!(
            "{} {} {hint} ",
            style("::").bold().blue(),
            style(prompt).bold()
        );
        return default;
    }
    if std::io::stdin().is_terminal() && std::io::stderr().is_terminal() {
        let theme = dialoguer::theme::SimpleTheme;
        return dialoguer::Confirm::with_theme(&theme)
            .with_prompt(format!(
                "{} {}",
                style("::").bold().blue(),
                style(prompt).bold()
            ))
            .default(default)
            .wait_for_newline(true)
            .interact()
            .unwrap_or(false);
    }
    print!(
        "{} {} {hint} ",
        style("::").bold().blue(),
        style(prompt).bold()
    );
    let _ = std::io::stdout().flush();
    let answer = read_line();
    println!();
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
        let line = read_line()?;
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

fn read_line() -> Option<String> {
    let mut line = String::new();
    match std::io::stdin().lock().read_line(&mut line) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(line),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

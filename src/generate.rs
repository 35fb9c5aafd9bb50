//! Files generated for packagers and readers, each from its one definition: the man pages and
//! completions from the clap command line (`cli.rs`), and pactor.conf(5), the shipped
//! `assets/pactor.conf` and the README's option table from the options table (`config.rs`).
//! `scripts/generate` writes them into the tree; `tests/generated.rs` fails when one is stale.

use std::io::Write;

use clap_mangen::Man;
use roff::{Roff, bold, italic, roman};

use crate::cli::{self, Generate};
use crate::config::{ConfOption, DEFAULT_STATE_DIR, Group, OPTIONS};

/// Writes one generated file to `out`.
pub fn write(kind: Generate, out: &mut dyn Write) -> std::io::Result<()> {
    match kind {
        Generate::Man => man_page(None, out),
        Generate::ManPublish => man_page(Some("publish"), out),
        Generate::ManSeed => man_page(Some("seed"), out),
        Generate::ManServe => man_page(Some("serve"), out),
        Generate::ManStats => man_page(Some("stats"), out),
        Generate::ManConf => out.write_all(conf_man_page().as_bytes()),
        Generate::Conf => out.write_all(conf_file().as_bytes()),
        Generate::ReadmeOptions => out.write_all(readme_options().as_bytes()),
        Generate::CompleteBash | Generate::CompleteZsh | Generate::CompleteFish => {
            crate::complete::write_registration(kind, out)
        }
    }
}

/// A section of prose after the generated ones: a title and its paragraphs. A paragraph that
/// starts with `\t` is a tagged paragraph: `\tTAG\tTEXT`.
type Prose = (&'static str, &'static [&'static str]);

const PACTOR_ENVIRONMENT: Prose = (
    "ENVIRONMENT",
    &[
        "\tPACTOR_CONF\tpactor's settings file, as --pactor-conf (default /etc/pactor.conf).",
        "\tPACTOR_PACMAN\tThe pacman run for every operation pactor passes on (default: pacman on PATH).",
        "\tPACTOR_LOG\tA tracing filter for diagnostics on stderr, such as pactor=debug,librqbit=info; --debug sets pactor=debug.",
        "\tNO_COLOR\tWhen set, no colours unless --color asks for them.",
    ],
);

const PACTOR_FILES: Prose = (
    "FILES",
    &[
        "\t/etc/pactor.conf\tpactor's settings; see pactor.conf(5).",
        "\t/var/lib/pactor/stats.json\tTransfer statistics; see pactor-stats(8).",
        "\t/var/cache/pacman/pkg/download-pactor/\tPartial downloads, resumed by the next run.",
        "\t/var/lib/pacman/pactor/<repo>.torrents\tThe torrent index fetched with each database.",
    ],
);

const PACTOR_EXIT: Prose = (
    "EXIT STATUS",
    &[
        "As pacman: 0 on success, 1 on any error (including a usage error and answering no), \
         128 + the signal number when SIGINT or SIGTERM stopped the prefetch (nothing was \
         installed; the partial files are resumed by the next run). Operations passed to pacman \
         exit with pacman's status.",
    ],
);

const SEE_ALSO: Prose = (
    "SEE ALSO",
    &[
        "pacman(8), pacman.conf(5), pactor.conf(5), pactor-publish(8), pactor-seed(8), \
       pactor-serve(8), pactor-stats(8)",
    ],
);

const SEED_SIGNALS: Prose = (
    "SIGNALS",
    &[
        "\tSIGHUP\tRescan now, as after --rescan seconds: the pacman hook pactor-seed.hook has \
         systemd send it after every transaction, so new packages are seeded at once.",
        "\tSIGINT, SIGTERM\tRecord the upload total in the statistics and exit.",
    ],
);

const SEED_FILES: Prose = (
    "FILES",
    &[
        "\t/usr/lib/systemd/system/pactor-seed.service\tRuns pactor seed as the pactor user, \
         read-only on the package cache.",
        "\t/usr/share/libalpm/hooks/pactor-seed.hook\tAsks a running seeder to rescan after \
         each transaction.",
        "\t/var/lib/pactor/stats.json\tThe upload total, flushed every minute and at exit.",
    ],
);

const STATS_FILES: Prose = (
    "FILES",
    &[
        "\t/var/lib/pactor/stats.json\tThe statistics (under StateDir, see pactor.conf(5)): \
         totals since the first run and the latest 100 runs. pactor -S adds a run when it \
         ends; pactor seed updates its run every minute and at exit.",
    ],
);

/// pactor(8), or pactor-TOOL(8) for one of the tools.
fn man_page(tool: Option<&str>, out: &mut dyn Write) -> std::io::Result<()> {
    let mut cmd = cli::command();
    cmd.build();
    let (cmd, prose): (clap::Command, Vec<Prose>) = match tool {
        None => (
            cmd,
            vec![PACTOR_ENVIRONMENT, PACTOR_FILES, PACTOR_EXIT, SEE_ALSO],
        ),
        Some(name) => {
            let sub = cmd.find_subcommand(name).expect("a defined tool").clone();
            let prose = match name {
                "seed" => vec![SEED_SIGNALS, SEED_FILES, SEE_ALSO],
                "stats" => vec![STATS_FILES, SEE_ALSO],
                _ => vec![SEE_ALSO],
            };
            (sub, prose)
        }
    };
    let man = Man::new(cmd.clone())
        .section("8")
        .source(format!("pactor {}", env!("CARGO_PKG_VERSION")))
        .manual("pactor manual");
    // clap_mangen's sections, then ours. Each rendering repeats roff's two-line preamble;
    // it is kept once.
    let mut page = Vec::new();
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    man.render_description_section(&mut page)?;
    man.render_options_section(&mut page)?;
    if cmd.has_subcommands() {
        man.render_subcommands_section(&mut page)?;
    }
    let mut roff = Roff::new();
    for (title, paragraphs) in prose {
        prose_section(&mut roff, title, paragraphs);
    }
    roff.to_writer(&mut page)?;
    if cmd.get_version().is_some() {
        man.render_version_section(&mut page)?;
    }
    let page = String::from_utf8(page).expect("roff is text");
    const PREAMBLE: [&str; 2] = [".ie \\n(.g .ds Aq \\(aq", ".el .ds Aq '"];
    let mut seen = false;
    let mut lines = page.lines().peekable();
    while let Some(line) = lines.next() {
        if line == PREAMBLE[0] && lines.peek() == Some(&PREAMBLE[1]) {
            lines.next();
            if !std::mem::replace(&mut seen, true) {
                writeln!(out, "{}\n{}", PREAMBLE[0], PREAMBLE[1])?;
            }
            continue;
        }
        writeln!(out, "{line}")?;
    }
    Ok(())
}

fn prose_section(roff: &mut Roff, title: &str, paragraphs: &[&str]) {
    roff.control("SH", [title]);
    for paragraph in paragraphs {
        match paragraph
            .strip_prefix('\t')
            .and_then(|p| p.split_once('\t'))
        {
            Some((tag, text)) => {
                roff.control("TP", []);
                roff.text([bold(tag)]);
                roff.text([roman(text)]);
            }
            None => {
                roff.control("PP", []);
                roff.text([roman(*paragraph)]);
            }
        }
    }
}

/// An option's description with its default, and whether it repeats.
fn described(option: &ConfOption) -> String {
    let mut text = format!("{} Default: {}.", option.doc, option.default);
    if option.repeatable {
        text.push_str(" Repeatable.");
    }
    text
}

/// `Name = VALUE`, or `Name` for a flag.
fn synopsis(option: &ConfOption) -> String {
    match option.value {
        Some(value) => format!("{} = {value}", option.name),
        None => option.name.to_owned(),
    }
}

/// pactor.conf(5).
fn conf_man_page() -> String {
    let mut roff = Roff::new();
    roff.control(
        "TH",
        [
            "pactor.conf",
            "5",
            "",
            &format!("pactor {}", env!("CARGO_PKG_VERSION")),
            "pactor manual",
        ],
    );
    roff.control("SH", ["NAME"]);
    roff.text([roman("pactor.conf - pactor's own settings")]);
    roff.control("SH", ["SYNOPSIS"]);
    roff.text([roman("/etc/pactor.conf")]);
    roff.control("SH", ["DESCRIPTION"]);
    roff.text([roman(
        "pactor(8) reads its own settings from /etc/pactor.conf, or from the file named by \
         --pactor-conf or $PACTOR_CONF; pacman's settings stay in pacman.conf(5), which pactor \
         reads through pacman-conf. A missing /etc/pactor.conf means every default; a file \
         named explicitly must exist.",
    )]);
    roff.control("PP", []);
    roff.text([roman(
        "The syntax is pacman.conf's: a [options] section, one \"Key = Value\" per line, bare \
         flags (a flag may also be written \"Flag = yes\" or \"Flag = no\"), and comments from \
         \"#\" to the end of the line. Options marked repeatable may be given several times; \
         the others take their last value. An unknown option is ignored with a warning (so a \
         file written for a newer pactor still works); a malformed line is an error naming the \
         file and line.",
    )]);
    for group in Group::ALL {
        roff.control("SH", [group.title().to_uppercase().as_str()]);
        for option in OPTIONS.iter().filter(|o| o.group == group) {
            roff.control("TP", []);
            let mut head = vec![bold(option.name)];
            if let Some(value) = option.value {
                head.push(roman(" = "));
                head.push(italic(value));
            }
            roff.text(head);
            roff.text([roman(described(option))]);
        }
    }
    roff.control("SH", ["EXAMPLE"]);
    roff.text([roman(
        "A machine on a LAN with a seedbox, giving back at 2 MiB/s:",
    )]);
    roff.control("PP", []);
    roff.control("nf", []);
    for line in [
        "[options]",
        "Peer = seedbox.lan:6881",
        "Tracker = http://seedbox.lan:6969/announce",
        "ListenPort = 6881",
        "MaxUploadRate = 2M",
    ] {
        roff.text([roman(line)]);
    }
    roff.control("fi", []);
    roff.control("SH", ["FILES"]);
    roff.control("TP", []);
    roff.text([bold("/etc/pactor.conf")]);
    roff.text([roman(
        "This file. The package installs it with every option commented out.",
    )]);
    roff.control("TP", []);
    roff.text([bold(DEFAULT_STATE_DIR)]);
    roff.text([roman("The default StateDir.")]);
    roff.control("SH", ["SEE ALSO"]);
    roff.text([roman(
        "pactor(8), pactor-seed(8), pactor-serve(8), pactor-stats(8), pacman.conf(5)",
    )]);
    roff.render()
}

/// The shipped `/etc/pactor.conf`: every option commented out with its default or an example.
fn conf_file() -> String {
    let mut out = String::from(
        "#\n\
         # /etc/pactor.conf — pactor's own settings (pacman's own stay in /etc/pacman.conf).\n\
         #\n\
         # Same syntax as pacman.conf: [sections], \"Key = Value\", bare flags, \"#\" comments.\n\
         # Every option is commented out with its default value, or an example where there is\n\
         # none. See pactor.conf(5).\n\
         #\n\n\
         [options]\n",
    );
    for (i, group) in Group::ALL.into_iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&format!("## {}\n", group.title()));
        for option in OPTIONS.iter().filter(|o| o.group == group) {
            out.push('\n');
            for line in wrap(&described(option), 96) {
                out.push_str(&format!("# {line}\n"));
            }
            out.push_str(&format!("#{}\n", option.sample));
        }
    }
    out
}

/// The README's option table, between markers the staleness test looks for.
fn readme_options() -> String {
    let mut out = String::from(
        "<!-- pactor.conf options: generated by `pactor --generate readme-options` -->\n\
         | option | default | meaning |\n\
         | --- | --- | --- |\n",
    );
    for option in OPTIONS {
        out.push_str(&format!(
            "| `{}` | {} | {} |\n",
            synopsis(option),
            // Outside code spans, markdown would take `<repo>` for an HTML tag.
            option.default.replace('<', "\\<"),
            option.summary
        ));
    }
    out.push_str("<!-- end of pactor.conf options -->\n");
    out
}

/// Greedy word wrap at `width` columns.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    #[test]
    fn the_shipped_conf_file_parses_to_the_defaults() {
        let text = conf_file();
        assert_eq!(
            Settings::parse(&text, std::path::Path::new("pactor.conf")).unwrap(),
            Settings::default()
        );
        // Uncommented, every sample line is a valid setting (but Include, which names a
        // mirrorlist that need not exist here).
        let uncommented: String = text
            .lines()
            .map(|l| match l.strip_prefix('#') {
                Some(rest)
                    if !rest.starts_with("Include")
                        && OPTIONS.iter().any(|o| rest.starts_with(o.name)) =>
                {
                    rest
                }
                _ => l,
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let parsed = Settings::parse(&uncommented, std::path::Path::new("pactor.conf")).unwrap();
        assert!(parsed.dht && parsed.lsd);
        assert_eq!(parsed.peers, ["seedbox.lan:6881"]);
    }

    #[test]
    fn every_option_is_documented_everywhere() {
        let man = conf_man_page();
        let readme = readme_options();
        for option in OPTIONS {
            assert!(
                man.contains(&format!("\\fB{}\\fR", option.name)),
                "{}",
                option.name
            );
            assert!(
                readme.contains(&format!("`{}", option.name)),
                "{}",
                option.name
            );
            assert!(!option.doc.is_empty() && !option.summary.is_empty());
        }
    }

    #[test]
    fn wrapping() {
        assert_eq!(wrap("a bb ccc dddd", 6), ["a bb", "ccc", "dddd"]);
    }
}

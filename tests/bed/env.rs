//! A temp root with its own pacman.conf (every directory pacman-conf realpaths exists), and
//! helpers to run the built `pactor` and the real `pacman` against it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::repo::{Gpg, run_ok};

pub struct TestEnv {
    pub dir: tempfile::TempDir,
    conf: PathBuf,
}

pub struct TestEnvBuilder {
    repos: Vec<(String, Vec<String>)>,
    signer: Option<Gpg>,
    extra: String,
    download_user: Option<String>,
}

impl TestEnv {
    pub fn builder() -> TestEnvBuilder {
        TestEnvBuilder {
            repos: vec![],
            signer: None,
            extra: String::new(),
            download_user: None,
        }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }
    pub fn db_dir(&self) -> PathBuf {
        self.dir.path().join("db")
    }
    pub fn cache_dir(&self) -> PathBuf {
        self.dir.path().join("cache")
    }
    pub fn conf(&self) -> &Path {
        &self.conf
    }
    pub fn pactor_conf_path(&self) -> PathBuf {
        self.dir.path().join("pactor.conf")
    }
    /// Writes this root's pactor.conf: `text` (`[options]` lines), with the state kept in the
    /// temp dir.
    pub fn write_pactor_conf(&self, text: &str) {
        write_pactor_conf(&self.pactor_conf_path(), text);
    }
    /// This root's `StateDir`, as [`write_pactor_conf`] sets it.
    pub fn state_dir(&self) -> PathBuf {
        self.pactor_conf_path().with_extension("state")
    }

    /// `pacman --config <conf> ARGS`.
    pub fn pacman(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("pacman");
        cmd.arg("--config").arg(&self.conf).args(args);
        cmd
    }

    /// The built `pactor --config <conf> ARGS`, with this root's pactor.conf.
    pub fn pactor(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(pactor_bin());
        cmd.arg("--config")
            .arg(&self.conf)
            .args(args)
            .env("PACTOR_CONF", self.pactor_conf_path());
        cmd
    }

    /// Installed packages as (name, version), sorted.
    pub fn installed(&self) -> Vec<(String, String)> {
        let out = run(self.pacman(&["-Q"]));
        let mut list: Vec<(String, String)> = out
            .stdout
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect();
        list.sort();
        list
    }

    /// libalpm's system hook directory inside the root (`<root>/usr/share/libalpm/hooks/` on
    /// Arch), where packages install hooks: the first of pacman's `Hook Dirs`.
    pub fn system_hook_dir(&self) -> PathBuf {
        let out = run(self.pacman(&["-Q", "-v"]));
        let line = out
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("Hook Dirs : "))
            .expect("pacman -v prints its hook dirs");
        let dir = PathBuf::from(line.split_whitespace().next().unwrap());
        assert!(dir.starts_with(self.root()), "{dir:?}");
        dir
    }

    /// Regular files directly in the cache directory, sorted.
    pub fn cache_files(&self) -> Vec<String> {
        let mut files: Vec<String> = std::fs::read_dir(self.cache_dir())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        files
    }
}

impl TestEnvBuilder {
    /// A sync repo with its servers, in order.
    pub fn repo(mut self, name: &str, servers: &[String]) -> Self {
        self.repos.push((name.to_owned(), servers.to_vec()));
        self
    }
    /// Arch's default `SigLevel = Required DatabaseOptional`, trusting this key.
    pub fn signed(mut self, gpg: &Gpg) -> Self {
        self.signer = Some(gpg.clone());
        self
    }
    /// `DownloadUser = USER` (created if missing), as Arch's pacman.conf has `alpm`. The temp
    /// root becomes traversable by others (0755), as /var/cache/pacman is, so the download
    /// user reaches its staging directory.
    pub fn download_user(mut self, user: &str) -> Self {
        ensure_user(user);
        self.download_user = Some(user.to_owned());
        self
    }
    /// More lines for `[options]`.
    pub fn options(mut self, text: &str) -> Self {
        self.extra.push_str(text);
        self.extra.push('\n');
        self
    }

    pub fn build(self) -> TestEnv {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        let mut extra = self.extra.clone();
        if let Some(user) = &self.download_user {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
            extra.push_str(&format!("DownloadUser = {user}\n"));
        }
        for sub in ["root", "db", "cache", "gnupg", "hooks"] {
            std::fs::create_dir_all(p.join(sub)).unwrap();
        }
        let siglevel = if self.signer.is_some() {
            "SigLevel = Required DatabaseOptional\nLocalFileSigLevel = Optional"
        } else {
            "SigLevel = Never"
        };
        let mut conf = format!(
            "[options]\nRootDir = {root}\nDBPath = {p}/db\nCacheDir = {p}/cache\nLogFile = {p}/pacman.log\n\
             GPGDir = {p}/gnupg\nHookDir = {p}/hooks\nArchitecture = x86_64\n{siglevel}\nParallelDownloads = 5\n{extra}\n",
            root = p.join("root").display(),
            p = p.display(),
        );
        for (name, servers) in &self.repos {
            conf.push_str(&format!("[{name}]\n"));
            for server in servers {
                conf.push_str(&format!("Server = {server}\n"));
            }
        }
        let conf_path = p.join("pacman.conf");
        std::fs::write(&conf_path, conf).unwrap();
        write_pactor_conf(&p.join("pactor.conf"), "");
        if let Some(gpg) = &self.signer {
            let gpgdir = p.join("gnupg");
            let key = p.join("signer.asc");
            gpg.export(&key);
            for args in [
                vec!["--init".to_string()],
                vec!["--add".to_string(), key.display().to_string()],
                vec!["--lsign-key".to_string(), gpg.key_id.clone()],
            ] {
                let mut cmd = Command::new("pacman-key");
                cmd.arg("--config")
                    .arg(&conf_path)
                    .arg("--gpgdir")
                    .arg(&gpgdir)
                    .args(&args);
                run_ok(cmd);
            }
        }
        TestEnv {
            dir,
            conf: conf_path,
        }
    }
}

/// Writes a pactor.conf holding `text` (empty, or starting with `[options]`) plus a `StateDir`
/// beside the file, so no test writes to /var/lib/pactor.
pub fn write_pactor_conf(path: &Path, text: &str) {
    let state = path.with_extension("state");
    let text = if text.trim().is_empty() {
        "[options]\n"
    } else {
        text
    };
    assert!(text.starts_with("[options]"), "{text}");
    std::fs::write(path, format!("{text}\nStateDir = {}\n", state.display())).unwrap();
}

/// The built pactor: Cargo names it for integration tests; examples find it beside themselves;
/// `$PACTOR_BIN` overrides both.
pub fn pactor_bin() -> PathBuf {
    // Measurements compare builds: `PACTOR_BIN=/path/to/other/pactor`.
    if let Some(path) = std::env::var_os("PACTOR_BIN") {
        return path.into();
    }
    if let Some(path) = option_env!("CARGO_BIN_EXE_pactor") {
        return path.into();
    }
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(Path::parent).unwrap().join("pactor")
}

/// A finished command's output, as text.
#[derive(Debug)]
pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    #[track_caller]
    pub fn assert_ok(&self) {
        assert_eq!(
            self.code,
            Some(0),
            "command failed\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
    }
}

/// Runs `cmd` with no input and captures its output.
pub fn run(cmd: Command) -> Output {
    run_with_stdin(cmd, "")
}

pub fn run_with_stdin(mut cmd: Command, input: &str) -> Output {
    use std::io::Write;
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_owned();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let out = child.wait_with_output().unwrap();
    let _ = writer.join();
    Output {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Creates the system user `name` unless it exists (tests run as root; several may race).
pub fn ensure_user(name: &str) {
    let exists = || {
        Command::new("id")
            .arg(name)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if exists() {
        return;
    }
    let _ = Command::new("useradd")
        .args(["--system", "--no-create-home", "--home-dir", "/"])
        .args(["--shell", "/usr/sbin/nologin", name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    assert!(exists(), "could not create user {name}");
}

/// uid of a user.
pub fn uid_of(name: &str) -> u32 {
    let out = Command::new("id").args(["-u", name]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// The running download processes (`pactor __pactor-download-process`) whose working
/// directory is `fetch_dir`, as pids.
pub fn download_processes(fetch_dir: &Path) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let is_child = cmdline
            .split(|b| *b == 0)
            .nth(1)
            .is_some_and(|arg| arg == b"__pactor-download-process");
        let cwd = std::fs::read_link(entry.path().join("cwd")).ok();
        if is_child && cwd.as_deref() == Some(fetch_dir) {
            pids.push(pid);
        }
    }
    pids
}

/// A field of /proc/PID/status (`Uid`, `NoNewPrivs`, `Seccomp`, `Groups`).
pub fn proc_status(pid: u32, field: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .map(|v| v.trim().to_owned())
}

/// Copies a host executable into `root` at the same path, with the libraries ldd names: what
/// pacman runs chrooted (hooks, scriptlets) must be inside the root.
pub fn copy_executable(root: &Path, path: &str) {
    let mut files = vec![PathBuf::from(path)];
    let ldd = run({
        let mut cmd = Command::new("ldd");
        cmd.arg(path);
        cmd
    });
    for line in ldd.stdout.lines() {
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)" or "/lib64/ld-linux….so.2 (0x…)"
        let candidate = line.split("=>").last().unwrap().trim();
        if let Some(lib) = candidate
            .split_whitespace()
            .next()
            .filter(|l| l.starts_with('/'))
        {
            files.push(lib.into());
        }
    }
    for file in files {
        let dest = root.join(file.strip_prefix("/").unwrap());
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(std::fs::canonicalize(&file).unwrap(), &dest).unwrap();
    }
}

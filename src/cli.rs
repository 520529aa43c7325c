//! The command line: argument parsing, reading and writing files, printing, exit codes.
//! The only module that touches the terminal or decides how the process ends.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::diag::render::{self, Style};
use crate::diag::{Code, Diag};
use crate::lock::{Lock, LockParseError};
use crate::source::{SourceFile, display_path};

/// Exit codes, as documented in the README.
pub mod exit {
    /// Success (warnings allowed).
    pub const OK: u8 = 0;
    /// The spec or its lock has problems; diagnostics were printed.
    pub const SPEC: u8 = 1;
    /// The command line was wrong (clap's own code).
    pub const USAGE: u8 = 2;
    /// The environment failed: a file could not be read or written, AWS or nix failed.
    pub const ENV: u8 = 3;
    /// An internal error: a bake bug.
    pub const BUG: u8 = 70;
}

#[derive(Debug, Parser)]
#[command(
    name = "bake",
    version,
    about = "Bake reproducible Amazon Linux 2023 images with Nix and roll them out"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// When to use colour in diagnostics.
    #[arg(long, global = true, value_enum, default_value_t = Color::Auto)]
    color: Color,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Color {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a spec and report every problem, without reading the lock or the network.
    Check {
        /// The spec file (KDL).
        spec: PathBuf,
        /// Output format of the diagnostics.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Check a spec, verify its lock and write the SSM documents, the CloudFormation template and the lock used.
    Compile {
        spec: PathBuf,
        /// The output directory.
        #[arg(short, long, default_value = "bake.out")]
        out: PathBuf,
        /// The lock file [default: the spec's path with `.lock.json` instead of `.kdl`].
        #[arg(long)]
        lock: Option<PathBuf>,
        /// Fail instead of resolving anything (compile never resolves; accepted for CI scripts).
        #[arg(long)]
        locked: bool,
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Explain a diagnostic code, e.g. `bake explain bake::check::size_order`.
    Explain {
        /// The code, with or without the `bake::` prefix; without one, list all codes.
        code: Option<String>,
    },
    /// Print the reference of the spec language (the table `docs/spec.md` is generated from).
    Schema,
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            });
        }
    };
    let color = match cli.color {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    };
    let style = Style {
        color,
        ..Style::PLAIN
    };
    let code = match cli.command {
        Command::Check { spec, format } => check(&spec, format, style),
        Command::Compile {
            spec,
            out,
            lock,
            locked: _,
            format,
        } => compile(&spec, &out, lock.as_deref(), format, style),
        Command::Explain { code } => explain(code.as_deref()),
        Command::Schema => {
            print!("{}", crate::spec::schema::reference_markdown());
            exit::OK
        }
    };
    ExitCode::from(code)
}

fn eprint_error(message: &str) {
    eprintln!("error: {message}");
}

fn read_spec(path: &Path) -> Result<SourceFile, u8> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(SourceFile::new(path, text)),
        Err(e) => {
            eprint_error(&format!("cannot read {}: {e}", display_path(path)));
            Err(exit::ENV)
        }
    }
}

/// Prints diagnostics in the chosen format. Human output goes to stderr, JSON to stdout.
fn report(file: &SourceFile, diags: &[Diag], format: Format, style: Style) {
    match format {
        Format::Human => {
            if diags.is_empty() {
                return;
            }
            eprint!("{}", render::human(file, diags, style));
        }
        Format::Json => {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{}", render::json(file, diags));
        }
    }
}

fn check(path: &Path, format: Format, style: Style) -> u8 {
    let file = match read_spec(path) {
        Ok(f) => f,
        Err(code) => return code,
    };
    let (_, diags) = crate::check_source(&file);
    report(&file, &diags, format, style);
    if crate::diag::has_errors(&diags) {
        exit::SPEC
    } else {
        if format == Format::Human {
            eprintln!("{}", render::summary(&file, &diags));
        }
        exit::OK
    }
}

/// `specs/web.kdl` → `specs/web.lock.json`.
pub fn default_lock_path(spec: &Path) -> PathBuf {
    let stem = spec
        .file_stem()
        .map_or_else(|| "spec".into(), |s| s.to_string_lossy().into_owned());
    spec.with_file_name(format!("{stem}.lock.json"))
}

/// Reads the lock; a missing file is an empty lock (each built image then reports what `bake lock` must resolve).
fn read_lock(path: &Path, format: Format, style: Style) -> Result<Lock, u8> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Lock::new()),
        Err(e) => {
            eprint_error(&format!("cannot read {}: {e}", display_path(path)));
            return Err(exit::ENV);
        }
    };
    Lock::from_json(&text).map_err(|e| {
        let file = SourceFile::new(path, text);
        report(&file, &[lock_parse_diag(&file, &e)], format, style);
        exit::SPEC
    })
}

fn lock_parse_diag(file: &SourceFile, e: &LockParseError) -> Diag {
    let offset = if e.line == 0 {
        0
    } else {
        let line_start: usize = file
            .text
            .split_inclusive('\n')
            .take(e.line - 1)
            .map(str::len)
            .sum();
        (line_start + e.column.saturating_sub(1)).min(file.text.len())
    };
    Diag::error(
        Code::LockInvalid,
        format!("the lock file is not valid: {}", e.message),
    )
    .label(crate::source::span(offset, 0), "here")
    .help("the lock is written by `bake lock`; re-create it with `bake lock <spec> --update`")
}

fn compile(path: &Path, out: &Path, lock_path: Option<&Path>, format: Format, style: Style) -> u8 {
    let file = match read_spec(path) {
        Ok(f) => f,
        Err(code) => return code,
    };
    let (plan, diags) = crate::check_source(&file);
    let Some(plan) = plan else {
        report(&file, &diags, format, style);
        return exit::SPEC;
    };
    let lock_path = lock_path.map_or_else(|| default_lock_path(path), Path::to_path_buf);
    let lock = match read_lock(&lock_path, format, style) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let resolved = match crate::lock::verify(&plan, &lock, &file.name()) {
        Ok(r) => r,
        Err(lock_diags) => {
            let mut all = diags;
            all.extend(lock_diags);
            crate::diag::sort(&mut all);
            report(&file, &all, format, style);
            return exit::SPEC;
        }
    };
    let artifacts = match crate::emit::emit(&plan, &resolved, &lock) {
        Ok(a) => a,
        Err(e @ crate::emit::EmitError::TooLarge(_)) => {
            report(&file, &diags, format, style);
            eprint_error(&e.to_string());
            return exit::SPEC;
        }
        Err(e) => {
            eprint_error(&e.to_string());
            return exit::BUG;
        }
    };
    report(&file, &diags, format, style);
    for (name, content) in &artifacts.files {
        let target = out.join(name);
        if let Err(e) = crate::fsio::write_atomic(&target, content) {
            eprint_error(&format!("cannot write {}: {e}", display_path(&target)));
            return exit::ENV;
        }
    }
    if format == Format::Human {
        let names: Vec<&str> = artifacts.files.iter().map(|(n, _)| n.as_str()).collect();
        eprintln!(
            "{}: compiled {} image(s), {} fleet(s) into {}/ ({})",
            file.name(),
            plan.images.len(),
            plan.fleets.len(),
            display_path(out),
            names.join(", ")
        );
    }
    exit::OK
}

fn explain(code: Option<&str>) -> u8 {
    match code {
        None => {
            for c in Code::ALL {
                println!("{:<44} {}", c.as_str(), c.doc());
            }
            exit::OK
        }
        Some(name) => match Code::from_name(name) {
            Some(c) => {
                println!("{}\n\n{}", c.as_str(), c.doc());
                exit::OK
            }
            None => {
                eprint_error(&format!(
                    "unknown code `{name}`; `bake explain` lists them all"
                ));
                exit::USAGE
            }
        },
    }
}

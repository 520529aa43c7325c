//! The command line: argument parsing, reading and writing files, printing, exit codes.
//! The only module that touches the terminal or decides how the process ends.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::diag::render::{self, Style};
use crate::diag::{Code, Diag, Lookup};
use crate::lock::{Lock, LockParseError};
use crate::source::{SourceFile, display_path};

mod build;
mod deploy;
mod image;
mod promote;

/// Exit codes live in `crate::exit`, beside nothing that runs: every module may name them.
pub use crate::exit;

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
    /// Print the full report of AWS errors (the SDK's own chain of causes) under the one-line message.
    #[arg(short, long, global = true)]
    verbose: bool,
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
        /// Also check that this environment exists (every environment is always checked).
        #[arg(long, value_name = "NAME")]
        env: Option<String>,
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
        /// The environment to compile [default: the one with `default=#true`]; its artifacts go to `<out>/<env>/`.
        #[arg(long, value_name = "NAME")]
        env: Option<String>,
    },
    /// Resolve the base AMIs and flake revisions a spec builds from into its lock file.
    Lock(LockArgs),
    /// Build, sign and push the images' prebuilt closures to their binary caches and record them in the lock.
    Build(build::BuildArgs),
    /// Build the spec's NixOS images with nix, upload them into EBS snapshots, register the AMIs and record them in
    /// the lock; images whose flake did not move are left alone.
    Image(image::ImageArgs),
    /// Rewrite spec files in the canonical layout, keeping comments; files that do not parse are left alone.
    Fmt(FmtArgs),
    /// Run the language server (LSP over stdin/stdout) for editors: diagnostics, completion, hover, formatting.
    Lsp {
        /// Accepted and ignored: stdio is the only transport (some clients pass it).
        #[arg(long, hide = true)]
        stdio: bool,
    },
    /// Show what `deploy` would change in the stack, and why, without changing anything.
    Plan(deploy::PlanArgs),
    /// Compile from the lock (never resolving), show the plan, confirm, deploy through a change set and watch.
    Deploy(deploy::DeployArgs),
    /// Show the stack's state, outputs and AMIs, and whether it runs the spec as compiled now.
    Status(deploy::StatusArgs),
    /// Delete the stack and everything in it, with confirmation.
    Destroy(deploy::DestroyArgs),
    /// Move the AMIs one environment runs into another's lock entry, sharing or copying them where it deploys.
    Promote(promote::PromoteArgs),
    /// Explain a diagnostic code, e.g. `bake explain bake::check::size_order`.
    Explain {
        /// The code, with or without the `bake::` prefix; without one, list all codes.
        code: Option<String>,
    },
    /// Print the reference of the spec language (the table `docs/spec.md` is generated from).
    Schema,
}

pub fn main() -> ExitCode {
    crate::fsio::mark_process_start();
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
    let output = deploy::Output {
        style,
        verbose: cli.verbose,
    };
    let code = match cli.command {
        Command::Check { spec, format, env } => check(&spec, format, env.as_deref(), style),
        Command::Compile {
            spec,
            out,
            lock,
            locked: _,
            format,
            env,
        } => compile(&spec, &out, lock.as_deref(), env.as_deref(), format, style),
        Command::Lock(args) => lock_command(&args, style),
        Command::Build(args) => build::build(&args, style),
        Command::Image(args) => image::image_command(&args, style),
        Command::Fmt(args) => fmt_command(&args, style),
        Command::Lsp { stdio: _ } => lsp_command(),
        Command::Explain { code } => explain(code.as_deref()),
        Command::Plan(args) => deploy::plan(&args, output),
        Command::Deploy(args) => deploy::deploy(&args, output),
        Command::Status(args) => deploy::status(&args, output),
        Command::Destroy(args) => deploy::destroy(&args, output),
        Command::Promote(args) => promote::promote(&args, output),
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

/// Reads and checks a spec; on errors, prints them and returns the exit code. Warnings are returned for the
/// caller to print with the rest of its output.
fn checked_spec(
    path: &Path,
    env: Option<&str>,
    format: Format,
    style: Style,
) -> Result<(SourceFile, crate::environments::Checked, Vec<Diag>), u8> {
    let file = read_spec(path)?;
    let (checked, diags) = crate::check_source_env(&file, crate::environments::Want::Env(env));
    match checked {
        Some(checked) => Ok((file, checked, diags)),
        None => {
            report(&file, &diags, format, style);
            Err(exit::SPEC)
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

fn check(path: &Path, format: Format, env: Option<&str>, style: Style) -> u8 {
    let file = match read_spec(path) {
        Ok(f) => f,
        Err(code) => return code,
    };
    let want = match env {
        Some(_) => crate::environments::Want::Env(env),
        None => crate::environments::Want::All,
    };
    let (_, diags) = crate::check_source_env(&file, want);
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

fn compile(
    path: &Path,
    out: &Path,
    lock_path: Option<&Path>,
    env: Option<&str>,
    format: Format,
    style: Style,
) -> u8 {
    // The templates compile on another thread while the spec is read and checked.
    crate::emit::templates::prepare();
    let (file, checked, diags) = match checked_spec(path, env, format, style) {
        Ok(checked) => checked,
        Err(code) => return code,
    };
    let env_name = checked.env.as_ref().map(|e| e.name.clone());
    let lock_path = lock_path.map_or_else(|| default_lock_path(path), Path::to_path_buf);
    let lock = match read_lock(&lock_path, format, style) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let crate::pipeline::Compiled {
        plan,
        artifacts,
        diags,
    } = match crate::pipeline::build_env(&file, checked, diags, &lock) {
        Ok(c) => c,
        Err(crate::pipeline::Failed::Diags(all)) => {
            report(&file, &all, format, style);
            return exit::SPEC;
        }
        Err(crate::pipeline::Failed::TooLarge { diags, message }) => {
            report(&file, &diags, format, style);
            eprint_error(&message);
            return exit::SPEC;
        }
        Err(crate::pipeline::Failed::Bug(message)) => {
            eprint_error(&message);
            return exit::BUG;
        }
    };
    report(&file, &diags, format, style);
    // Each environment's artifacts in their own directory: `bake.out/staging/`, `bake.out/prod/`.
    let out = &match &env_name {
        Some(name) => out.join(name),
        None => out.to_path_buf(),
    };
    for (name, content) in &artifacts.files {
        let target = out.join(name);
        if let Err(e) = crate::fsio::write_artifact(&target, content) {
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
        Some(name) => match Code::lookup(name) {
            Lookup::Found(c) => {
                println!("{}\n\n{}", c.as_str(), c.doc());
                exit::OK
            }
            Lookup::Ambiguous(codes) => {
                eprint_error(&format!(
                    "`{name}` is the name of {} codes: {}; give the whole code",
                    codes.len(),
                    crate::spec::schema::code_list(codes.iter().map(|c| c.as_str()))
                ));
                exit::USAGE
            }
            Lookup::Unknown(closest) => {
                let hint = closest.map_or(String::new(), |c| {
                    format!("did you mean `{}`? ", c.as_str())
                });
                eprint_error(&format!(
                    "unknown code `{name}`; {hint}`bake explain` lists them all"
                ));
                exit::USAGE
            }
        },
    }
}

// ---- bake lock ---------------------------------------------------------------------------------------------------

#[derive(Debug, clap::Args)]
struct LockArgs {
    /// The spec file (KDL).
    spec: PathBuf,
    /// The lock file [default: the spec's path with `.lock.json` instead of `.kdl`].
    #[arg(long)]
    lock: Option<PathBuf>,
    /// Re-resolve entries that are still valid: all of them, or `base` (every base AMI), `flake` (every flake) or
    /// the named images. Values may be comma-separated; put the spec before `--update`.
    #[arg(long, num_args = 0.., value_delimiter = ',', value_name = "base|flake|IMAGE")]
    update: Option<Vec<String>>,
    /// Resolve nothing and write nothing: exit 1 if the lock lacks an entry, no longer matches the spec or has entries
    /// for images the spec no longer builds.
    #[arg(long, conflicts_with_all = ["update", "status"])]
    check: bool,
    /// Show what is pinned, when it was resolved and how old it is; resolves and writes nothing.
    #[arg(long, conflicts_with = "update")]
    status: bool,
    /// With `--status`: flag entries resolved more than this many days ago.
    #[arg(long, value_name = "DAYS", default_value_t = 30, requires = "status")]
    max_age: u64,
    /// The AWS profile to read SSM parameters with [default: the standard AWS configuration chain].
    #[arg(long)]
    profile: Option<String>,
    /// The region to read SSM parameters in; AMI ids are per region, so it must be the spec's stack region.
    #[arg(long)]
    region: Option<String>,
    /// Seconds each lookup (SSM, nix) may take.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    timeout: u64,
    /// The environment whose images to resolve (its region and account) [default: the `default=#true` one].
    #[arg(long, value_name = "NAME")]
    env: Option<String>,
}

/// The time `bake lock` records: `BAKE_NOW` (RFC 3339; for reproducible tests and builds) or the clock.
fn lock_now() -> Result<i64, String> {
    match std::env::var("BAKE_NOW") {
        Ok(s) => crate::lock::time::parse_rfc3339(&s).ok_or_else(|| {
            format!("BAKE_NOW=`{s}` is not an RFC 3339 time such as 2026-11-27T08:00:00Z")
        }),
        Err(_) => Ok(std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))),
    }
}

fn lock_command(args: &LockArgs, style: Style) -> u8 {
    use crate::lock::resolve::{self, Failure, Request, Selection};

    let (file, checked, _warnings) =
        match checked_spec(&args.spec, args.env.as_deref(), Format::Human, style) {
            Ok(checked) => checked,
            Err(code) => return code,
        };
    let env = checked.env.clone();
    let mut plan = checked.plan;
    let spec_name = file.name();
    let lock_path = args
        .lock
        .clone()
        .unwrap_or_else(|| default_lock_path(&args.spec));
    let lock_name = display_path(&lock_path);
    let update_all = args.update.as_ref().is_some_and(Vec::is_empty);

    // The old lock: missing is empty; unreadable is an error, except that `--update` re-creates it.
    let (old, old_text) = match std::fs::read_to_string(&lock_path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Lock::new(), None),
        Err(e) => {
            eprint_error(&format!("cannot read {lock_name}: {e}"));
            return exit::ENV;
        }
        Ok(text) => match Lock::from_json(&text) {
            Ok(lock) => (lock, Some(text)),
            Err(e) if update_all => {
                eprintln!(
                    "warning: {lock_name} is not a valid lock ({}); `--update` replaces it",
                    e.message
                );
                (Lock::new(), Some(text))
            }
            Err(e) => {
                let lf = SourceFile::new(&lock_path, text);
                report(&lf, &[lock_parse_diag(&lf, &e)], Format::Human, style);
                return exit::SPEC;
            }
        },
    };

    if let Some(env) = &env
        && let Some(from) = &env.images_from
    {
        // A promoted environment builds nothing: `bake promote` records its AMIs, `bake lock` has nothing to
        // resolve; `--check` checks that those entries are there.
        if args.check {
            if let Err(d) =
                crate::environments::promotion::apply(&mut plan, Some(env), &old, &lock_name)
            {
                report(&file, &d, Format::Human, style);
                return exit::SPEC;
            }
            eprintln!(
                "{lock_name}: up to date with {spec_name} for environment `{}`",
                env.name
            );
            return exit::OK;
        }
        eprintln!(
            "environment `{}` takes its images from `{}`: nothing to resolve (`bake promote {} --from {} --to {}` records its AMIs)",
            env.name,
            from.value,
            display_path(&args.spec),
            from.value,
            env.name,
        );
        return exit::OK;
    }

    if args.status {
        let now = match lock_now() {
            Ok(n) => n,
            Err(e) => {
                eprint_error(&e);
                return exit::USAGE;
            }
        };
        let (text, _) = crate::lock::report::status(&plan, &old, &spec_name, now, args.max_age);
        print!("{lock_name}\n{text}");
        let warnings = crate::lock::report::base_warnings(&plan, &old, &spec_name, now);
        report(&file, &warnings, Format::Human, style);
        return exit::OK;
    }

    if args.check {
        let pruned = resolve::pruned(&plan, &old);
        let verified = crate::lock::verify(&plan, &old, &spec_name);
        let mut ok = pruned.is_empty();
        match verified {
            Err(lock_diags) => {
                report(&file, &lock_diags, Format::Human, style);
                ok = false;
            }
            // Prebuilt closures: is each locked store path in its cache, signed by the spec's key?
            Ok(_) => {
                let all: Vec<&str> = plan.images.iter().map(|i| i.name.value.as_str()).collect();
                let timeout = std::time::Duration::from_secs(args.timeout);
                match build::check_caches(
                    &plan,
                    &old,
                    &all,
                    &spec_name,
                    args.profile.as_deref(),
                    timeout,
                ) {
                    Ok(d) if d.is_empty() => {}
                    Ok(d) => {
                        report(&file, &d, Format::Human, style);
                        ok = false;
                    }
                    Err(code) => return code,
                }
            }
        }
        for name in &pruned {
            eprint_error(&format!(
                "{lock_name} has an entry for image `{name}`, which {spec_name} no longer builds; `bake lock {spec_name}` removes it"
            ));
        }
        if old_text.is_none()
            && ok
            && !resolve::needs(&plan, &old, &Selection::default()).is_empty()
        {
            ok = false;
        }
        if ok {
            eprintln!("{lock_name}: up to date with {spec_name}");
            return exit::OK;
        }
        return exit::SPEC;
    }

    if let Some(r) = &args.region
        && *r != plan.stack.region
    {
        eprint_error(&format!(
            "`--region {r}`: AMI ids are per region and {spec_name} deploys to {}; drop `--region` or change the stack's region",
            plan.stack.region
        ));
        return exit::USAGE;
    }
    let selection = match &args.update {
        None => Selection::default(),
        Some(values) => match Selection::parse(values, &plan) {
            Ok(s) => s,
            Err(e) => {
                eprint_error(&e);
                return exit::USAGE;
            }
        },
    };
    let now = match lock_now() {
        Ok(n) => crate::lock::time::rfc3339(n),
        Err(e) => {
            eprint_error(&e);
            return exit::USAGE;
        }
    };
    // Relative to the spec; `web.kdl` has the parent "", so paths show as the spec writes them.
    let spec_dir = args
        .spec
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let request = Request {
        plan: &plan,
        old: &old,
        selection: &selection,
        spec_dir: &spec_dir,
        spec_name: &spec_name,
        now: &now,
        timeout: std::time::Duration::from_secs(args.timeout),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprint_error(&format!("cannot start the async runtime: {e}"));
            return exit::BUG;
        }
    };
    let outcome = runtime.block_on(async {
        let needs_aws = resolve::needs(&plan, &old, &selection)
            .iter()
            .any(|n| n.base.is_some());
        let resolver = crate::lock::live::LiveResolver::new(
            &plan.stack.region,
            args.profile.as_deref().filter(|_| needs_aws),
            std::time::Duration::from_secs(args.timeout),
        )
        .await
        .with_installer_mirror(std::env::var(crate::lock::live::INSTALLER_MIRROR_ENV).ok());
        resolve::run(&request, &resolver).await
    });
    report(&file, &outcome.diags, Format::Human, style);
    match outcome.failure {
        Some(Failure::Spec) => {
            eprintln!("{lock_name}: not written");
            return exit::SPEC;
        }
        Some(Failure::World) => {
            eprintln!("{lock_name}: not written");
            return exit::ENV;
        }
        None => {}
    }
    eprint!(
        "{}",
        crate::lock::report::changes(&outcome.changes, &outcome.pruned)
    );
    let text = outcome.lock.to_json();
    if old_text.as_deref() == Some(text.as_str()) {
        eprintln!("{lock_name}: up to date");
        return exit::OK;
    }
    if let Err(e) = crate::fsio::write_atomic(&lock_path, &text) {
        eprint_error(&format!("cannot write {lock_name}: {e}"));
        return exit::ENV;
    }
    if old_text.is_some() && old.version < outcome.lock.version {
        eprintln!(
            "{lock_name}: upgraded from lock format version {} to {}: the base entries now say what their AMIs are (EC2 DescribeImages)",
            old.version, outcome.lock.version
        );
    }
    eprintln!("{lock_name}: wrote {} image(s)", outcome.lock.images.len());
    exit::OK
}

// ---- bake fmt, bake lsp ------------------------------------------------------------------------------------------

#[derive(Debug, clap::Args)]
struct FmtArgs {
    /// The spec files (KDL).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Write nothing; list the files that are not formatted and exit 1 if there are any.
    #[arg(long)]
    check: bool,
}

/// Formats each file. Exit 1 if one does not parse (its syntax errors are printed, the file is untouched) or, with
/// `--check`, if one would change; 3 if one cannot be read or written.
fn fmt_command(args: &FmtArgs, style: Style) -> u8 {
    let mut code = exit::OK;
    let mut worse = |c: u8| {
        if c == exit::ENV || code == exit::OK {
            code = c;
        }
    };
    for path in &args.files {
        let file = match read_spec(path) {
            Ok(f) => f,
            Err(c) => {
                worse(c);
                continue;
            }
        };
        let formatted = match crate::fmt::format(&file) {
            Ok(f) => f,
            Err(crate::fmt::FmtError::Syntax(diags)) => {
                report(&file, &diags, Format::Human, style);
                eprint_error(&format!("{} does not parse; not formatted", file.name()));
                worse(exit::SPEC);
                continue;
            }
            Err(e) => {
                eprint_error(&format!("{}: {e}", file.name()));
                worse(exit::SPEC);
                continue;
            }
        };
        if formatted == *file.text {
            continue;
        }
        if args.check {
            println!("{}", file.name());
            worse(exit::SPEC);
        } else if let Err(e) = crate::fsio::write_atomic(path, &formatted) {
            eprint_error(&format!("cannot write {}: {e}", file.name()));
            worse(exit::ENV);
        } else {
            eprintln!("formatted {}", file.name());
        }
    }
    code
}

fn lsp_command() -> u8 {
    match crate::lsp::run_stdio() {
        Ok(()) => exit::OK,
        Err(e) => {
            eprint_error(&format!("bake lsp: {e}"));
            exit::SPEC
        }
    }
}

//! `bake plan`, `deploy`, `status`, `destroy`: argument parsing and wiring to `crate::deploy`.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::{Format, checked_spec, exit, read_lock, report};
use crate::deploy::cfn::{AwsCfn, AwsOptions};
use crate::deploy::stackset::{self, AwsStackSets, SetOptions};
use crate::deploy::template_store::TemplateStore;
use crate::deploy::{self, Options, Target, Ui};
use crate::diag::render::Style;
use crate::pipeline::{self, Failed};
use crate::source::display_path;

/// Arguments every deploy command shares.
#[derive(Debug, clap::Args)]
pub(super) struct StackArgs {
    /// The spec file (KDL).
    spec: PathBuf,
    /// The lock file [default: the spec's path with `.lock.json` instead of `.kdl`]. Never re-resolved.
    #[arg(long)]
    lock: Option<PathBuf>,
    /// The AWS profile [default: the standard AWS configuration chain].
    #[arg(long)]
    profile: Option<String>,
    /// The region [default: the spec's stack region].
    #[arg(long)]
    region: Option<String>,
    /// `json`: the plan as one object (`plan`), or events as NDJSON (`deploy`, `destroy`), on stdout.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
    /// Seconds one CloudFormation call may take, retries included; while watching, how long bake goes on without
    /// an answer before it reports lost contact (exit 3).
    #[arg(long, value_name = "SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    timeout: u64,
    /// The environment [default: the one with `default=#true`; required when the spec has environments and none is].
    #[arg(long, value_name = "NAME")]
    env: Option<String>,
}

#[derive(Debug, clap::Args)]
pub(super) struct PlanArgs {
    #[command(flatten)]
    stack: StackArgs,
    /// Exit 0 when there are no changes and 10 when there are (errors keep their codes).
    #[arg(long)]
    detailed_exitcode: bool,
    #[command(flatten)]
    bucket: BucketArgs,
}

/// Where templates over CloudFormation's inline limit go (`deploy::template_store`).
#[derive(Debug, clap::Args)]
pub(super) struct BucketArgs {
    /// An existing S3 bucket in the stack's region for templates over 51,200 bytes [default: bake's own
    /// `bake-templates-<account>-<region>`, created when first needed].
    #[arg(long, value_name = "BUCKET", value_parser = bucket_name)]
    template_bucket: Option<String>,
}

fn bucket_name(s: &str) -> Result<String, String> {
    crate::deploy::template_store::valid_bucket_name(s).map(|()| s.to_owned())
}

#[derive(Debug, clap::Args)]
pub(super) struct DeployArgs {
    #[command(flatten)]
    stack: StackArgs,
    /// Deploy without asking for confirmation (required without a terminal).
    #[arg(short, long)]
    yes: bool,
    /// Start the deployment and return without watching it.
    #[arg(long)]
    detach: bool,
    /// Keep what was created or updated when the deployment fails, instead of rolling back (for debugging).
    #[arg(long)]
    no_rollback: bool,
    /// Stack sets: delete the stack instances of accounts and regions the spec no longer names (with their
    /// stacks' resources). Without it they are kept and listed.
    #[arg(long)]
    delete_instances: bool,
    #[command(flatten)]
    bucket: BucketArgs,
}

#[derive(Debug, clap::Args)]
pub(super) struct StatusArgs {
    #[command(flatten)]
    stack: StackArgs,
    /// Follow an operation in progress until it ends.
    #[arg(long)]
    watch: bool,
}

#[derive(Debug, clap::Args)]
pub(super) struct DestroyArgs {
    #[command(flatten)]
    stack: StackArgs,
    /// Delete without asking for confirmation (required without a terminal).
    #[arg(short, long)]
    yes: bool,
    /// Start the deletion and return without watching it.
    #[arg(long)]
    detach: bool,
}

#[derive(Debug, Clone, Copy)]
enum Verb {
    Plan,
    Deploy,
    Status,
    Destroy,
}

/// How the command prints: the diagnostics' style and `--verbose`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Output {
    pub style: Style,
    pub verbose: bool,
}

fn base_options(args: &StackArgs) -> Options {
    Options {
        timeout: Duration::from_secs(args.timeout),
        ..Options::default()
    }
}

pub(super) fn plan(args: &PlanArgs, output: Output) -> u8 {
    let options = Options {
        detailed_exitcode: args.detailed_exitcode,
        ..base_options(&args.stack)
    };
    run(
        Verb::Plan,
        &args.stack,
        Some(&args.bucket),
        options,
        SetOptions::default(),
        output,
    )
}

pub(super) fn deploy(args: &DeployArgs, output: Output) -> u8 {
    let options = Options {
        yes: args.yes,
        detach: args.detach,
        no_rollback: args.no_rollback,
        ..base_options(&args.stack)
    };
    let set_options = SetOptions {
        delete_instances: args.delete_instances,
    };
    run(
        Verb::Deploy,
        &args.stack,
        Some(&args.bucket),
        options,
        set_options,
        output,
    )
}

pub(super) fn status(args: &StatusArgs, output: Output) -> u8 {
    let options = Options {
        watch: args.watch,
        ..base_options(&args.stack)
    };
    run(
        Verb::Status,
        &args.stack,
        None,
        options,
        SetOptions::default(),
        output,
    )
}

pub(super) fn destroy(args: &DestroyArgs, output: Output) -> u8 {
    let options = Options {
        yes: args.yes,
        detach: args.detach,
        ..base_options(&args.stack)
    };
    run(
        Verb::Destroy,
        &args.stack,
        None,
        options,
        SetOptions::default(),
        output,
    )
}

/// Asks on the terminal; `None` without one (never waits on a pipe).
fn ask(question: &str) -> Option<bool> {
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return None;
    }
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer).ok()?;
    Some(matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}

fn run(
    verb: Verb,
    args: &StackArgs,
    bucket: Option<&BucketArgs>,
    options: Options,
    set_options: SetOptions,
    output: Output,
) -> u8 {
    let style = output.style;
    let path: &Path = &args.spec;
    let (file, checked, diags) = match checked_spec(path, args.env.as_deref(), Format::Human, style)
    {
        Ok(checked) => checked,
        Err(code) => return code,
    };
    let lock_path = args
        .lock
        .clone()
        .unwrap_or_else(|| super::default_lock_path(path));
    let lock = match read_lock(&lock_path, Format::Human, style) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let compiled = match pipeline::build_env(&file, checked, diags, &lock) {
        Ok(c) => c,
        Err(Failed::Diags(all)) => {
            report(&file, &all, Format::Human, style);
            return exit::SPEC;
        }
        Err(Failed::TooLarge { diags, message }) => {
            report(&file, &diags, Format::Human, style);
            eprintln!("error: {message}");
            return exit::SPEC;
        }
        Err(Failed::Bug(message)) => {
            eprintln!("error: {message}");
            return exit::BUG;
        }
    };
    report(&file, &compiled.diags, Format::Human, style);
    let region = args
        .region
        .clone()
        .unwrap_or_else(|| compiled.plan.stack.region.clone());
    if !crate::aws::is_region_name(&region) {
        eprintln!("error: `--region {region}` is not an AWS region name such as eu-west-1");
        return exit::USAGE;
    }
    let aws = AwsOptions {
        profile: args.profile.clone(),
        region,
        timeout: options.timeout,
    };
    let json = args.format == Format::Json;
    let started = Arc::new(AtomicBool::new(false));
    // Plans and status are the command's product: stdout. Deploy and destroy narrate on stderr. Errors: stderr.
    let out: Box<dyn Write> = match verb {
        Verb::Plan | Verb::Status if !json => Box::new(std::io::stdout()),
        _ => Box::new(std::io::stderr()),
    };
    let mut ui = Ui {
        out,
        err: Box::new(std::io::stderr()),
        json: json.then(|| Box::new(std::io::stdout()) as Box<dyn Write>),
        live: !json && std::io::stderr().is_terminal(),
        verbose: output.verbose,
        confirm: Box::new(ask),
        started: Arc::clone(&started),
    };
    // One worker besides this thread: the signal task must run while a confirmation blocks on stdin.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return exit::BUG;
        }
    };
    runtime.block_on(async {
        let (stop, stopped) = tokio::sync::oneshot::channel::<Signal>();
        let cfn = AwsCfn::connect(&aws).await;
        let store = TemplateStore::s3(&aws, bucket.and_then(|b| b.template_bucket.clone()));
        let target = Target {
            plan: &compiled.plan,
            template: compiled.template(),
            spec: display_path(path),
            region: cfn.endpoint().region.clone(),
            store: &store,
        };
        let messages = Messages {
            started: Arc::clone(&started),
            before: [
                deploy::interrupted_message(&target, false, "Ctrl-C"),
                deploy::interrupted_message(&target, false, "SIGTERM"),
            ],
            after: [
                deploy::interrupted_message(&target, true, "Ctrl-C"),
                deploy::interrupted_message(&target, true, "SIGTERM"),
            ],
        };
        tokio::spawn(on_signal(stop, messages.clone()));
        // A spec with `stack-set` deploys through CloudFormation StackSets (`deploy::stackset`).
        let sets = match compiled.plan.stack_set {
            Some(_) => Some(AwsStackSets::connect(&aws).await),
            None => None,
        };
        let command = async {
            if let Some(sets) = &sets {
                return match verb {
                    Verb::Plan => stackset::plan(sets, &target, options, &mut ui).await,
                    Verb::Deploy => {
                        stackset::deploy(sets, &target, options, set_options, &mut ui).await
                    }
                    Verb::Status => stackset::status(sets, &target, options, &mut ui).await,
                    Verb::Destroy => stackset::destroy(sets, &target, options, &mut ui).await,
                };
            }
            match verb {
                Verb::Plan => deploy::plan(&cfn, &target, options, &mut ui).await,
                Verb::Deploy => deploy::deploy(&cfn, &target, options, &mut ui).await,
                Verb::Status => deploy::status(&cfn, &target, options, &mut ui).await,
                Verb::Destroy => deploy::destroy(&cfn, &target, options, &mut ui).await,
            }
        };
        tokio::select! {
            code = command => code,
            Ok(signal) = stopped => {
                // The command future is dropped here: no call is awaited any more.
                stop_now(json, messages.text(signal), signal.code())
            }
        }
    })
}

/// What to say when a signal ends bake, before and after an operation was started in AWS: for Ctrl-C, SIGTERM.
#[derive(Clone)]
struct Messages {
    started: Arc<AtomicBool>,
    before: [String; 2],
    after: [String; 2],
}

impl Messages {
    fn text(&self, signal: Signal) -> &str {
        let texts = if self.started.load(Ordering::SeqCst) {
            &self.after
        } else {
            &self.before
        };
        &texts[signal as usize]
    }
}

#[derive(Debug, Clone, Copy)]
enum Signal {
    Interrupt = 0,
    Terminate = 1,
}

impl Signal {
    fn code(self) -> u8 {
        match self {
            Signal::Interrupt => exit::INTERRUPTED,
            Signal::Terminate => exit::TERMINATED,
        }
    }
}

/// Waits for Ctrl-C (SIGINT) or SIGTERM and reports which, with its exit code. When the command is blocked
/// outside the runtime (a confirmation read from the terminal), nothing would take the report: then this
/// task ends the process itself after a moment.
async fn on_signal(stop: tokio::sync::oneshot::Sender<Signal>, messages: Messages) {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    #[cfg(unix)]
    let terminate = async {
        match term.as_mut() {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    let report = tokio::select! {
        r = tokio::signal::ctrl_c() => match r {
            Ok(()) => Signal::Interrupt,
            Err(_) => std::future::pending().await,
        },
        () = terminate => Signal::Terminate,
    };
    if stop.send(report).is_err() {
        return;
    }
    // The main future normally takes over at once; if it is stuck in a blocking read, end here.
    tokio::time::sleep(Duration::from_millis(500)).await;
    eprintln!("{}", messages.text(report));
    std::process::exit(i32::from(report.code()));
}

/// Prints the interruption's message (and, with `--format json`, a result line) and returns its code.
fn stop_now(json: bool, text: &str, code: u8) -> u8 {
    if json {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "{}",
            serde_json::json!({"type": "result", "ok": null, "status": "interrupted"})
        );
        let _ = out.flush();
    }
    eprintln!("{text}");
    code
}

//! `bake plan`, `deploy`, `status`, `destroy`: argument parsing and wiring to `crate::deploy`.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{Format, checked_spec, exit, read_lock, report};
use crate::deploy::cfn::{AwsCfn, AwsOptions};
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

pub(super) fn plan(args: &PlanArgs, style: Style) -> u8 {
    let options = Options {
        detailed_exitcode: args.detailed_exitcode,
        ..Options::default()
    };
    run(Verb::Plan, &args.stack, Some(&args.bucket), options, style)
}

pub(super) fn deploy(args: &DeployArgs, style: Style) -> u8 {
    let options = Options {
        yes: args.yes,
        detach: args.detach,
        no_rollback: args.no_rollback,
        ..Options::default()
    };
    run(
        Verb::Deploy,
        &args.stack,
        Some(&args.bucket),
        options,
        style,
    )
}

pub(super) fn status(args: &StatusArgs, style: Style) -> u8 {
    let options = Options {
        watch: args.watch,
        ..Options::default()
    };
    run(Verb::Status, &args.stack, None, options, style)
}

pub(super) fn destroy(args: &DestroyArgs, style: Style) -> u8 {
    let options = Options {
        yes: args.yes,
        detach: args.detach,
        ..Options::default()
    };
    run(Verb::Destroy, &args.stack, None, options, style)
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
    style: Style,
) -> u8 {
    let path: &Path = &args.spec;
    let (file, plan, diags) = match checked_spec(path, Format::Human, style) {
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
    let compiled = match pipeline::build(&file, plan, diags, &lock) {
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
    let target = Target {
        plan: &compiled.plan,
        template: compiled.template(),
        spec: display_path(path),
    };
    let region = args
        .region
        .clone()
        .unwrap_or_else(|| compiled.plan.stack.region.clone());
    let aws = AwsOptions {
        profile: args.profile.clone(),
        region,
    };
    let json = args.format == Format::Json;
    let interrupted = Arc::new(AtomicBool::new(false));
    let watching = Arc::new(AtomicBool::new(false));
    // Plans and status are the command's product: stdout. Deploy and destroy narrate on stderr.
    let out: Box<dyn Write> = match verb {
        Verb::Plan | Verb::Status if !json => Box::new(std::io::stdout()),
        _ => Box::new(std::io::stderr()),
    };
    let mut ui = Ui {
        out,
        json: json.then(|| Box::new(std::io::stdout()) as Box<dyn Write>),
        live: !json && std::io::stderr().is_terminal(),
        confirm: Box::new(ask),
        interrupted: Arc::clone(&interrupted),
        watching: Arc::clone(&watching),
    };
    // One worker besides this thread: the Ctrl-C task must run while a confirmation blocks on stdin.
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
        let flag = Arc::clone(&interrupted);
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                if !watching.load(Ordering::SeqCst) {
                    eprintln!("\ninterrupted");
                    std::process::exit(i32::from(deploy::codes::INTERRUPTED));
                }
                flag.store(true, Ordering::SeqCst);
            }
        });
        let cfn = AwsCfn::connect(&aws).await;
        let store = TemplateStore::s3(&aws, bucket.and_then(|b| b.template_bucket.clone()));
        match verb {
            Verb::Plan => deploy::plan_with(&cfn, &store, &target, options, &mut ui).await,
            Verb::Deploy => deploy::deploy_with(&cfn, &store, &target, options, &mut ui).await,
            Verb::Status => deploy::status(&cfn, &target, options, &mut ui).await,
            Verb::Destroy => deploy::destroy(&cfn, &target, options, &mut ui).await,
        }
    })
}

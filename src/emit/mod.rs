//! Stage 4: `Plan` + `Resolved` → `Artifacts`.
//!
//! Input: a checked plan and what the lock resolved for each image. Output: the files of `bake compile`, as
//! strings. Pure: no IO, no clock, no environment, so the same inputs give byte-identical artifacts.
//! An error here is a bake bug (a template that renders invalid output), never a spec problem.

#![deny(clippy::disallowed_methods, clippy::disallowed_types)] // pure: see clippy.toml

mod cfn;
mod fetch;
pub(crate) use cfn::ami_parameter_name;
pub mod templates;

/// The `Mappings` entry of a stack set's template that holds each region's ids.
pub use cfn::STACKSET_MAP;

use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::check::image::GIT;
use crate::check::plan::{
    BuildPlan, FleetPlan, ImagePlan, ImageSource, InstallerKind, Plan, Rollout,
};
use crate::lock::{Lock, Resolved};

/// The output files, by path relative to the output directory, in a fixed order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifacts {
    pub files: Vec<(String, String)>,
}

impl Artifacts {
    pub fn get(&self, path: &str) -> Option<&str> {
        self.files
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, c)| c.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EmitError {
    #[error(
        "internal error while rendering {what}: {message}\nThis is a bake bug; please report it with the spec."
    )]
    Bug { what: String, message: String },
    #[error("{0}")]
    TooLarge(String),
}

fn bug(what: impl Into<String>, message: impl Into<String>) -> EmitError {
    EmitError::Bug {
        what: what.into(),
        message: message.into(),
    }
}

/// AWSTOE component documents are at most 16,000 characters.
const COMPONENT_DATA_MAX: usize = 16_000;
/// SSM documents are at most 64 KB.
const SSM_CONTENT_MAX: usize = 64 * 1024;

/// What the templates need to render one image's scripts and documents.
#[derive(Debug, Clone)]
pub(crate) struct ImageScripts {
    pub bootstrap: String,
    pub ssm_document: Value,
    /// `ssm_document` as written to `<image>.ssm.json` (pretty JSON), printed once.
    pub ssm_json: String,
    /// The AWSTOE component document, as the text Image Builder stores.
    pub component_data: String,
}

pub fn emit(
    plan: &Plan,
    resolved: &[Option<Resolved>],
    lock: &Lock,
) -> Result<Artifacts, EmitError> {
    let hb = templates::for_plan(needs(plan, resolved)).map_err(|e| bug("templates", e))?;
    let scripts = all_image_scripts(hb, plan, resolved)?;
    let mut files = Vec::new();
    for (image, s) in plan.images.iter().zip(&scripts) {
        if let Some(s) = s {
            let name = &image.name.value;
            files.push((format!("{name}.bootstrap.sh"), s.bootstrap.clone()));
            files.push((format!("{name}.ssm.json"), s.ssm_json.clone()));
        }
    }
    let mut user_data = Vec::new();
    for fleet in &plan.fleets {
        let ud = fleet_user_data(hb, fleet)?;
        if let Some(text) = &ud {
            files.push((format!("{}.user-data.sh", fleet.name.value), text.clone()));
        }
        user_data.push(ud);
    }
    let mut nixos = Vec::new();
    for image in &plan.images {
        let entry = match &image.source {
            ImageSource::Nixos(_) => match lock.nixos.get(&image.name.value) {
                Some(e) if e.amis.contains_key(&plan.stack.region) => Some(e),
                _ => return Err(bug("images", "a NixOS image reached emit without an AMI")),
            },
            _ => None,
        };
        nixos.push(entry);
    }
    let template = cfn::template_with_nixos(plan, resolved, &scripts, &user_data, &nixos);
    files.insert(0, ("template.json".to_owned(), pretty(&template)));
    files.push(("lock.json".to_owned(), used_lock(plan, lock).to_json()));
    // The template and the documents are trees of small allocations: freeing them was an eighth of a 100-image
    // compile, which need not wait for it.
    crate::drop_later((template, scripts));
    Ok(Artifacts { files })
}

/// The optional templates this compile renders: only those are compiled.
fn needs(plan: &Plan, resolved: &[Option<Resolved>]) -> templates::Needs {
    let built = || {
        plan.images
            .iter()
            .zip(resolved)
            .filter_map(|(image, r)| match (&image.source, r) {
                (ImageSource::Built(build), Some(r)) => Some((build, r)),
                _ => None,
            })
    };
    templates::Needs {
        refresh: plan
            .fleets
            .iter()
            .any(|f| matches!(f.rollout, Rollout::InstanceRefresh { .. })),
        fetch: built().any(|(build, _)| fetch::needed(&build.fetch)),
        closure: built().any(|(_, r)| r.closure.is_some()),
    }
}

/// From this many images on, their scripts and template resources are made on two threads ([`on_two_threads`]).
const PARALLEL_IMAGES: usize = 8;

/// Each image's scripts and documents (`None` for a pinned image), in the plan's order.
fn all_image_scripts(
    hb: &handlebars::Handlebars<'_>,
    plan: &Plan,
    resolved: &[Option<Resolved>],
) -> Result<Vec<Option<ImageScripts>>, EmitError> {
    let one = |(image, resolved): (&ImagePlan, &Option<Resolved>)| match (&image.source, resolved) {
        (ImageSource::Built(_), Some(r)) => image_scripts(hb, plan, image, r).map(Some),
        (ImageSource::Built(_), None) => {
            Err(bug("images", "a built image reached emit unresolved"))
        }
        (ImageSource::Pinned { .. } | ImageSource::Nixos(_), _) => Ok(None),
    };
    let pairs: Vec<_> = plan.images.iter().zip(resolved).collect();
    on_two_threads(&pairs, |&pair| one(pair))
        .into_iter()
        .collect()
}

/// `f` of each item, in order: on two threads (half the items each) from [`PARALLEL_IMAGES`] items on, so that the
/// results, and the first error among them, are those one thread gives.
pub(crate) fn on_two_threads<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    if items.len() < PARALLEL_IMAGES {
        return items.iter().map(f).collect();
    }
    let (first, second) = items.split_at(items.len() / 2);
    std::thread::scope(|s| {
        let later = s.spawn(|| second.iter().map(&f).collect::<Vec<_>>());
        let mut out: Vec<R> = first.iter().map(&f).collect();
        out.extend(
            later
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p)),
        );
        out
    })
}

/// The part of the lock this compile used, so the output directory records exactly what it was built from.
fn used_lock(plan: &Plan, lock: &Lock) -> Lock {
    let mut used = Lock::new();
    for image in &plan.images {
        if let Some(entry) = lock.images.get(&image.name.value)
            && matches!(image.source, ImageSource::Built(_))
        {
            used.images.insert(image.name.value.clone(), entry.clone());
        }
        if let Some(p) = &image.promoted
            && let Some(entry) = lock
                .environments
                .get(&p.environment)
                .and_then(|e| e.images.get(&image.name.value))
        {
            used.environments
                .entry(p.environment.clone())
                .or_default()
                .images
                .insert(image.name.value.clone(), entry.clone());
        }
        if let Some(entry) = lock.nixos.get(&image.name.value)
            && matches!(image.source, ImageSource::Nixos(_))
        {
            used.nixos.insert(image.name.value.clone(), entry.clone());
        }
    }
    used
}

pub(crate) fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

#[derive(Serialize)]
struct BootstrapContext<'a> {
    installer_url: &'a str,
    installer_sha256: &'a str,
    /// The Determinate installer: turn its diagnostics reporting off.
    determinate: bool,
    upstream: bool,
    flake_ref: &'a str,
    system_manager_ref: &'a str,
    /// System registry entries to pin (empty when the spec turns pinning off).
    registry: Vec<RegistryPin<'a>>,
    rpms: Vec<&'a str>,
    replacements: &'a [String],
    /// The locked base AMI's AL2023 release: every dnf call installs from that versioned repository.
    releasever: &'a str,
    /// `system-manager switch` (the SSM document, for running instances) instead of `pre-populate` (the image).
    activate: bool,
    /// The `fetch` node's credentials and proxy (`templates/fetch-credentials.sh.hbs`), when it has any.
    fetch: Option<fetch::FetchContext>,
    /// The prebuilt closure to substitute instead of building the flake (`templates/closure.sh.hbs`).
    closure: Option<ClosureContext<'a>>,
}

#[derive(Serialize)]
struct ClosureContext<'a> {
    cache: &'a str,
    public_key: &'a str,
    store_path: &'a str,
    nar_hash: &'a str,
    system_manager_path: &'a str,
}

#[derive(Serialize)]
struct RegistryPin<'a> {
    from: &'a str,
    to: &'a str,
}

fn image_scripts(
    hb: &handlebars::Handlebars<'_>,
    plan: &Plan,
    image: &ImagePlan,
    resolved: &Resolved,
) -> Result<ImageScripts, EmitError> {
    let ImageSource::Built(build) = &image.source else {
        return Err(bug("images", "image_scripts called for a pinned image"));
    };
    let name = &image.name.value;
    let fetch = fetch::context(&plan.stack.region, &build.fetch, &resolved.secrets)
        .map_err(|e| bug("the fetch credentials", e))?;
    let bootstrap = bootstrap_script(hb, build, resolved, fetch.clone(), false)?;
    let converge = bootstrap_script(hb, build, resolved, fetch, true)?;
    let lines: Vec<&str> = bootstrap.lines().collect();
    let converge_lines: Vec<&str> = converge.lines().collect();
    let description = format!(
        "bake: bootstrap of image {name} in stack {}",
        plan.stack.name
    );
    let document_name = format!("{}-{name}-bootstrap", plan.stack.name);
    let ssm_document = json!({
        "schemaVersion": "2.2",
        "description": description,
        "mainSteps": [
            {
                "action": "aws:runShellScript",
                "name": "bootstrap",
                "precondition": { "StringEquals": ["platformType", "Linux"] },
                "inputs": {
                    "timeoutSeconds": build.timeout_secs.to_string(),
                    "runCommand": converge_lines,
                }
            }
        ]
    });
    let ssm_json = pretty(&ssm_document);
    if ssm_json.len() > SSM_CONTENT_MAX {
        return Err(EmitError::TooLarge(format!(
            "the SSM document of image `{name}` exceeds SSM's 64 KB limit"
        )));
    }
    let component = json!({
        "name": document_name,
        "description": description,
        "schemaVersion": 1.0,
        "phases": [
            {
                "name": "build",
                "steps": [
                    {
                        "name": "Bootstrap",
                        "action": "ExecuteBash",
                        "timeoutSeconds": build.timeout_secs,
                        "onFailure": "Abort",
                        "maxAttempts": 1,
                        "inputs": { "commands": lines }
                    }
                ]
            }
        ]
    });
    // JSON is YAML, which is what AWSTOE reads.
    let component_data = pretty(&component);
    if component_data.chars().count() > COMPONENT_DATA_MAX {
        return Err(EmitError::TooLarge(format!(
            "the Image Builder component of image `{name}` exceeds the 16,000-character limit of inline component data"
        )));
    }
    Ok(ImageScripts {
        bootstrap,
        ssm_document,
        ssm_json,
        component_data,
    })
}

/// The bootstrap script: for the image build (`pre-populate`) or, with `activate`, for the SSM document that
/// converges a running instance (`switch`).
fn bootstrap_script(
    hb: &handlebars::Handlebars<'_>,
    build: &BuildPlan,
    resolved: &Resolved,
    fetch: Option<fetch::FetchContext>,
    activate: bool,
) -> Result<String, EmitError> {
    let mut rpms: Vec<&str> = build.rpms.iter().map(String::as_str).collect();
    if resolved.needs_git && !rpms.contains(&GIT) {
        rpms.push(GIT);
    }
    let script = templates::render(
        hb,
        templates::BOOTSTRAP,
        &BootstrapContext {
            installer_url: &resolved.installer_url,
            installer_sha256: &resolved.installer_sha256,
            determinate: build.installer.kind == InstallerKind::Determinate,
            upstream: build.installer.kind == InstallerKind::Upstream,
            flake_ref: &resolved.flake_ref,
            system_manager_ref: &resolved.system_manager_ref,
            registry: if build.pin_registry {
                resolved
                    .registry
                    .iter()
                    .map(|(from, to)| RegistryPin { from, to })
                    .collect()
            } else {
                Vec::new()
            },
            rpms,
            replacements: &build.minimal_replacements,
            releasever: &resolved.base_release,
            activate,
            closure: resolved.closure.as_ref().map(|c| ClosureContext {
                cache: &c.cache,
                public_key: &c.public_key,
                store_path: &c.store_path,
                nar_hash: &c.nar_hash,
                system_manager_path: &c.system_manager_path,
            }),
            fetch,
        },
    )
    .map_err(|e| bug("the bootstrap script", e))?;
    // SSM and AWSTOE interpolate `{{ ... }}`; the spec's values were checked, so this would be a template bug.
    if script.contains("{{") {
        return Err(bug(
            "the bootstrap script",
            "it contains `{{`, which SSM and AWSTOE would interpolate",
        ));
    }
    Ok(script)
}

#[derive(Serialize)]
struct UserDataContext<'a> {
    ready_unit: &'a str,
    ready_command: Option<&'a str>,
    wait_secs: u64,
    resource: String,
}

#[derive(Serialize)]
struct ReadinessContext<'a> {
    ready_unit: &'a str,
    ready_command: Option<&'a str>,
}

/// The readiness check on its own: shell functions `bake_ready` and `bake_wait_ready SECONDS` (see
/// `templates/readiness.sh.hbs`), for whatever reports an instance's health.
pub fn readiness_script(
    ready_unit: &str,
    ready_command: Option<&str>,
) -> Result<String, EmitError> {
    let hb = templates::for_plan(templates::Needs::default()).map_err(|e| bug("templates", e))?;
    templates::render(
        hb,
        templates::READINESS,
        &ReadinessContext {
            ready_unit,
            ready_command,
        },
    )
    .map_err(|e| bug("the readiness check", e))
}

#[derive(Serialize)]
struct RefreshUserDataContext<'a> {
    ready_unit: &'a str,
    ready_command: Option<&'a str>,
    wait_secs: u64,
    group: String,
    hook: &'a str,
}

/// The user data of a fleet whose instances report readiness: they signal CloudFormation (rolling, replacing) or
/// complete their launch lifecycle hook (instance refresh). `${AWS::StackName}` and `${AWS::Region}` are left for
/// `Fn::Sub`.
fn fleet_user_data(
    hb: &handlebars::Handlebars<'_>,
    fleet: &FleetPlan,
) -> Result<Option<String>, EmitError> {
    let text = match &fleet.rollout {
        Rollout::InstanceRefresh { ready, .. } => templates::render(
            hb,
            templates::REFRESH_USER_DATA,
            &RefreshUserDataContext {
                ready_unit: &ready.ready_unit,
                ready_command: ready.ready_command.as_deref(),
                // Leave the hook's heartbeat time to receive the result before it abandons the instance itself.
                wait_secs: hook_wait_secs(ready.timeout_secs),
                group: cfn::fleet_group_name_sub(fleet),
                hook: cfn::READY_HOOK,
            },
        ),
        _ => {
            let Some(signals) = fleet.rollout.signals() else {
                return Ok(None);
            };
            templates::render(
                hb,
                templates::USER_DATA,
                &UserDataContext {
                    ready_unit: &signals.ready_unit,
                    ready_command: signals.ready_command.as_deref(),
                    // Leave CloudFormation's own timeout time to receive a failure signal.
                    wait_secs: (signals.timeout_secs * 9 / 10).max(30),
                    resource: cfn::fleet_group_id(fleet),
                },
            )
        }
    }
    .map_err(|e| bug("the user data", e))?;
    let substitutions = text.matches("${").count();
    let allowed =
        text.matches("${AWS::StackName}").count() + text.matches("${AWS::Region}").count();
    if substitutions != allowed {
        return Err(bug(
            "the user data",
            "it contains a `${` that Fn::Sub would substitute",
        ));
    }
    Ok(Some(text))
}

/// How long an instance-refresh instance waits to become ready: 90% of the hook's heartbeat timeout, so that its
/// ABANDON (with the reason in the console) arrives before the hook times out.
fn hook_wait_secs(timeout_secs: u64) -> u64 {
    timeout_secs * 9 / 10
}

/// A semantic version whose patch number is derived from content: changed content gives a new version, unchanged
/// content the same one. Image Builder recipes and components are immutable, so this is what lets them update.
pub fn content_version(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for p in parts {
        hasher.update(p.as_bytes());
        hasher.update([0]);
    }
    let digest = hasher.finalize();
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    // Image Builder allows 0 ..= 2^30 - 1 per version part.
    let patch = u64::from_be_bytes(bytes) % (1 << 30);
    format!("1.0.{patch}")
}

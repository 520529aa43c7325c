//! The plan: what bake will build and deploy, after every check passed. No optional parts that are required,
//! defaults applied, durations parsed. Spans remain where a later stage may have to blame the spec.

use crate::source::{Span, Spanned};

#[derive(Debug, Clone)]
pub struct Plan {
    pub stack: StackPlan,
    pub images: Vec<ImagePlan>,
    pub fleets: Vec<FleetPlan>,
    /// Deployed through CloudFormation StackSets (`check::stackset`); `None`: one plain stack.
    pub stack_set: Option<super::stackset::StackSetPlan>,
}

#[derive(Debug, Clone)]
pub struct StackPlan {
    pub name: String,
    pub region: String,
    pub account: Option<String>,
    /// Tags in the order the spec gives them.
    pub tags: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    Arm64,
}

impl Arch {
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "arm64",
        }
    }

    pub fn parse(s: &str) -> Option<Arch> {
        match s {
            "x86_64" => Some(Arch::X86_64),
            "arm64" => Some(Arch::Arm64),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ImagePlan {
    pub name: Spanned<String>,
    pub arch: Option<Arch>,
    pub source: ImageSource,
    /// The `base` node: blamed for what is wrong with the AMI it names.
    pub base_span: Span,
    /// In an environment with `images-from`: the AMI the lock says it runs instead of building (the source is
    /// then `Pinned` with that AMI). See `crate::environments`.
    pub promoted: Option<Box<Promotion>>,
}

/// Where a promoted image's AMI comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Promotion {
    /// The environment that runs it (the one being compiled).
    pub environment: String,
    /// The environment it was promoted from.
    pub from: String,
    /// Since when `from` has run it (RFC 3339).
    pub tested_since: String,
}

#[derive(Debug, Clone)]
pub enum ImageSource {
    /// An existing AMI, used as is.
    Pinned { ami: String },
    /// Built by Image Builder.
    Built(Box<BuildPlan>),
    /// A NixOS disk image that `bake image` builds with Nix and registers; the AMI comes from the lock.
    Nixos(Box<NixosPlan>),
}

/// A NixOS image (`image > nixos`): what `bake image` builds, uploads and registers (src/nixos/).
#[derive(Debug, Clone)]
pub struct NixosPlan {
    /// The flake and its output that builds the raw disk image; `span` is the `nixos` node.
    pub flake: FlakePlan,
    /// The snapshot size in GiB; `None`: the image file's size rounded up.
    pub volume_gib: Option<u32>,
    pub encrypted: bool,
    pub kms_key: Option<String>,
    pub tpm: bool,
    /// Blocks uploaded at once.
    pub parallelism: u32,
    /// Regions besides the stack's that the AMI is copied to, in spec order, without duplicates.
    pub copy_to: Vec<String>,
    pub delete_old_amis: bool,
    pub keep_amis: u32,
}

#[derive(Debug, Clone)]
pub struct BuildPlan {
    /// The SSM parameter naming the base AMI, and the `base` node it came from.
    pub base_parameter: Spanned<String>,
    /// `base max-age`: how many days old the locked base AMI may be before `bake lock --status` warns.
    pub base_max_age_days: u32,
    /// The base AMI's architecture: which Nix installer binary the build downloads.
    pub arch: Arch,
    pub installer: Installer,
    pub installer_span: Span,
    pub flake: FlakePlan,
    pub system_manager: SystemManagerSource,
    pub system_manager_span: Span,
    /// RPMs in spec order, deduplicated, plus `git` when Nix fetches the flake with git and `aws-cfn-bootstrap`
    /// when a fleet of this image signals.
    pub rpms: Vec<String>,
    /// Full packages that replace AL2023's preinstalled `-minimal` ones (`curl-full`, `libcurl-full`,
    /// `gnupg2-full`), installed in their own transaction with `--allowerasing` (see `check::image`).
    pub minimal_replacements: Vec<String>,
    /// Whether the system flake registry pins `nixpkgs` and `system-manager` to the flake's locked revisions.
    pub pin_registry: bool,
    pub instance_types: Vec<String>,
    pub subnet: Option<String>,
    pub security_group: Option<String>,
    pub volume_gib: u32,
    pub volume_type: String,
    pub timeout_secs: u64,
    pub delete_old_amis: bool,
    /// With `delete_old_amis`: how many baked AMIs the lifecycle policy keeps.
    pub keep_amis: u32,
    pub image_tests: bool,
    /// The `fetch` node: credentials and proxy for a private flake (`check::credentials`).
    pub fetch: crate::check::credentials::FetchPlan,
    /// The image ships a prebuilt closure from a binary cache (`closure` node) instead of fetching the flake.
    pub closure: Option<ClosurePlan>,
}

/// Where a prebuilt closure comes from and which key it must be signed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosurePlan {
    /// The URL as the spec gives it (what Nix is told), and what it names.
    pub cache: String,
    pub cache_url: crate::closure::url::CacheUrl,
    pub public_key: String,
    /// The `closure` node.
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstallerKind {
    Determinate,
    Upstream,
}

impl InstallerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            InstallerKind::Determinate => "determinate",
            InstallerKind::Upstream => "upstream",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installer {
    pub kind: InstallerKind,
    pub version: String,
}

impl Installer {
    /// The file name of the installer binary for an architecture: `nix-installer-x86_64-linux`.
    pub fn file_name(arch: Arch) -> &'static str {
        match arch {
            Arch::X86_64 => "nix-installer-x86_64-linux",
            Arch::Arm64 => "nix-installer-aarch64-linux",
        }
    }

    /// The versioned URL of the installer binary for an architecture: what the build instance downloads and checks
    /// against the hash in the lock (the release's `curl | sh` script would download the same file, unchecked).
    pub fn binary_url(&self, arch: Arch) -> String {
        let file = Self::file_name(arch);
        match self.kind {
            InstallerKind::Determinate => format!(
                "https://install.determinate.systems/nix/tag/v{}/{file}",
                self.version
            ),
            InstallerKind::Upstream => format!(
                "https://github.com/NixOS/nix-installer/releases/download/{}/{file}",
                self.version
            ),
        }
    }
}

#[derive(Debug, Clone)]
pub struct FlakePlan {
    pub url: String,
    pub git_ref: Option<String>,
    pub output: String,
    pub checkout: Option<String>,
    /// The `flake` node, blamed when the lock's flake entry is missing or stale.
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SystemManagerSource {
    /// The revision the flake's lock pins for this input.
    Input(String),
    /// A pinned system-manager commit.
    Rev(String),
}

#[derive(Debug, Clone)]
pub struct FleetPlan {
    pub name: Spanned<String>,
    /// Index into `Plan::images`.
    pub image: usize,
    pub instance_type: String,
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
    pub min: u32,
    pub max: u32,
    pub desired: Option<u32>,
    pub policies: Vec<String>,
    pub rollout: Rollout,
    /// The instances' IMDSv2 `HttpPutResponseHopLimit`.
    pub imds_hop_limit: u32,
}

#[derive(Debug, Clone)]
pub struct Signals {
    /// ISO-8601, as CloudFormation takes it.
    pub timeout: String,
    pub timeout_secs: u64,
    pub ready_unit: String,
    /// A shell command that must succeed, besides the units, before an instance counts as ready.
    pub ready_command: Option<String>,
    pub min_success_percent: Option<u32>,
}

#[derive(Debug, Clone)]
pub enum Rollout {
    Rolling {
        max_batch: u32,
        min_in_service: u32,
        pause: Option<String>,
        signals: Option<Signals>,
        suspend: Vec<String>,
    },
    Replacing {
        signals: Signals,
    },
    InstanceRefresh {
        min_healthy: u32,
        max_healthy: u32,
        warmup_secs: Option<u64>,
        checkpoints: Vec<u32>,
        checkpoint_delay_secs: Option<u64>,
        skip_matching: bool,
        /// What a new instance waits for before it completes its launch lifecycle hook; `timeout_secs` is the
        /// hook's heartbeat timeout, after which EC2 Auto Scaling abandons the instance.
        ready: Signals,
    },
}

impl Rollout {
    /// How instances tell CloudFormation they are ready (`cfn-signal`), when they do.
    pub fn signals(&self) -> Option<&Signals> {
        match self {
            Rollout::Rolling { signals, .. } => signals.as_ref(),
            Rollout::Replacing { signals } => Some(signals),
            Rollout::InstanceRefresh { .. } => None,
        }
    }

    /// What a new instance waits for before it reports ready, however it reports it: `cfn-signal` for signalled
    /// rollouts, `complete-lifecycle-action` on the launch hook for an instance refresh.
    pub fn readiness(&self) -> Option<&Signals> {
        match self {
            Rollout::InstanceRefresh { ready, .. } => Some(ready),
            _ => self.signals(),
        }
    }
}

//! Tests that need a real peer (moto, nix, Neovim, Emacs, cfn-lint, shellcheck, checkov): each peer is detected once per
//! test binary, and a test whose peer is absent or too old is reported as **ignored**, with the reason printed,
//! so `cargo test` says `N ignored` instead of a pass for a test that did not run.
//!
//! With `BAKE_TEST_REQUIRE_PEERS=1` (CI, `scripts/peers.sh env` prints it) a missing peer is not a skip: the
//! test runs and FAILS with the reason.
//!
//! # Use in a test file
//!
//! The file gets `harness = false` in `Cargo.toml` (its own `[[test]]` section) and a `main` that lists its tests:
//!
//! ```ignore
//! // Cargo.toml:  [[test]]  name = "deploy_faults"  harness = false
//! mod common;
//! use common::peers::{Peer, Suite, moto_url};
//!
//! fn main() {
//!     let mut suite = Suite::new();
//!     suite.test("a_stack_that_rolls_back_is_explained", &[Peer::Moto], a_stack_that_rolls_back_is_explained);
//!     suite.test("no_peer_needed", &[], no_peer_needed);
//!     suite.run() // parses libtest's arguments (filters, --list, --ignored, --test-threads, …), exits
//! }
//!
//! fn a_stack_that_rolls_back_is_explained() {
//!     let url = moto_url(); // only valid in a test that listed Peer::Moto
//!     assert!(url.starts_with("http://127.0.0.1"));
//! }
//! ```
//!
//! A test body is a plain `fn()` that panics to fail, as under libtest (`assert!`, `insta`, `unwrap`). Keep the
//! name string equal to the function's name: it is the test's name in filters and summaries. For a peer this
//! module does not know yet, add a variant to [`Peer`] and its probe to [`probe`].
//!
//! Running ignored tests anyway (`cargo test -- --ignored` / `--include-ignored`) fails each one with the reason
//! its peer was not usable, instead of running it into a confusing error.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use libtest_mimic::{Arguments, Failed, Trial};

/// The oldest cfn-lint the templates are checked with: older ones do not know every property bake emits (1.51
/// rejects the 2026 `AutoScalingInstanceRefresh` update policy). `scripts/peers.sh` installs this version.
pub const CFN_LINT_MIN: (u32, u32, u32) = (1, 58, 0);
/// The oldest Neovim with a built-in LSP client that the e2e script uses.
pub const NVIM_MIN: (u32, u32, u32) = (0, 7, 0);

/// A real program or server a test talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Peer {
    /// A moto server answering at `BAKE_TEST_MOTO_URL`.
    Moto,
    /// `nix` (Debian `nix-bin`, 2.8 or later).
    Nix,
    /// `nvim` 0.7 or later.
    Nvim,
    /// `cfn-lint` at least [`CFN_LINT_MIN`].
    CfnLint,
    /// `emacs` that can `(require 'eglot)` (Emacs 29+, or Debian 12's emacs-nox + elpa-eglot).
    Emacs,
    /// `shellcheck`.
    Shellcheck,
    /// `checkov`.
    Checkov,
    /// `curl` (some moto tests read moto's EC2 API with it).
    Curl,
    /// `script` (util-linux), which gives a test's `bake` a terminal.
    Script,
    /// The AWS CLI (v1 or v2: the commands the bootstrap runs are the same), which reads secrets from moto.
    AwsCli,
    /// OpenSSH's `ssh`, whose `-G` prints the configuration the bootstrap gives git.
    Ssh,
    /// `git` 2.31 or later (`GIT_CONFIG_COUNT`).
    Git,
}

impl Peer {
    /// How to get the peer, for the skip message.
    fn remedy(self) -> &'static str {
        match self {
            Peer::Moto => {
                "run `scripts/peers.sh start` and export what `scripts/peers.sh env` prints"
            }
            Peer::CfnLint | Peer::Checkov => {
                "run `scripts/peers.sh install` and put its venv's bin/ first on PATH"
            }
            Peer::AwsCli => "install the AWS CLI (`pip install awscli`, or Debian's `awscli`)",
            Peer::Nix
            | Peer::Nvim
            | Peer::Emacs
            | Peer::Shellcheck
            | Peer::Curl
            | Peer::Script
            | Peer::Ssh
            | Peer::Git => "run `scripts/peers.sh install` (Debian packages)",
        }
    }
}

/// Whether BAKE_TEST_REQUIRE_PEERS=1: a missing peer is then a failure, not a skip.
pub fn peers_required() -> bool {
    std::env::var("BAKE_TEST_REQUIRE_PEERS").is_ok_and(|v| v == "1")
}

/// The moto endpoint. Call it only from a test that listed [`Peer::Moto`]: the suite checked it answers.
pub fn moto_url() -> String {
    std::env::var("BAKE_TEST_MOTO_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .expect("a test that uses moto_url() lists Peer::Moto")
}

/// The detection results of this binary, each peer probed at most once.
fn status(peer: Peer) -> Result<(), String> {
    static SEEN: OnceLock<std::sync::Mutex<BTreeMap<Peer, Result<(), String>>>> = OnceLock::new();
    let seen = SEEN.get_or_init(Default::default);
    let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
    seen.entry(peer).or_insert_with(|| probe(peer)).clone()
}

/// Finds out whether a peer is usable; `Err` says why not, in a phrase ("cfn-lint 1.51.0 is older than …").
pub fn probe(peer: Peer) -> Result<(), String> {
    match peer {
        Peer::Moto => probe_moto(),
        Peer::Nix => version_of("nix", &["--version"]).map(drop),
        Peer::Nvim => at_least("nvim", version_of("nvim", &["--version"])?, NVIM_MIN),
        Peer::CfnLint => at_least(
            "cfn-lint",
            version_of("cfn-lint", &["--version"])?,
            CFN_LINT_MIN,
        ),
        Peer::Emacs => probe_emacs(),
        Peer::Shellcheck => version_of("shellcheck", &["--version"]).map(drop),
        Peer::Checkov => version_of("checkov", &["--version"]).map(drop),
        Peer::Curl => version_of("curl", &["--version"]).map(drop),
        Peer::Script => version_of("script", &["--version"]).map(drop),
        Peer::AwsCli => runs("aws", &["--version"]),
        Peer::Ssh => runs("ssh", &["-V"]),
        Peer::Git => at_least("git", version_of("git", &["--version"])?, (2, 31, 0)),
    }
}

/// Whether `tool ARGS` runs and succeeds (for tools that print their version on stderr).
fn runs(tool: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(tool)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("`{tool}` is not on PATH ({e})"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{tool} {}` failed ({})",
            args.join(" "),
            out.status
        ))
    }
}

/// Runs `tool ARGS` and returns the first `x.y.z` (or `x.y`) in its output.
fn version_of(tool: &str, args: &[&str]) -> Result<(u32, u32, u32), String> {
    let out = Command::new(tool)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("`{tool}` is not on PATH ({e})"))?;
    if !out.status.success() {
        return Err(format!(
            "`{tool} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    parse_version(&text).ok_or_else(|| format!("`{tool} --version` printed no version: {text:?}"))
}

/// The first `x.y[.z]` in a text ("cfn-lint 1.58.0", "NVIM v0.7.2", "nix (Nix) 2.8.0", "version: 0.9.0").
pub fn parse_version(text: &str) -> Option<(u32, u32, u32)> {
    text.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .find_map(|word| {
            let mut parts = word.split('.').filter(|p| !p.is_empty());
            let major = parts.next()?.parse().ok()?;
            let minor = parts.next()?.parse().ok()?;
            let patch = parts.next().map_or(Some(0), |p| p.parse().ok())?;
            Some((major, minor, patch))
        })
}

fn at_least(tool: &str, found: (u32, u32, u32), min: (u32, u32, u32)) -> Result<(), String> {
    if found >= min {
        Ok(())
    } else {
        let v = |(a, b, c): (u32, u32, u32)| format!("{a}.{b}.{c}");
        Err(format!(
            "{tool} {} is older than {}, the oldest this suite accepts",
            v(found),
            v(min)
        ))
    }
}

/// `emacs --batch` (which loads the site files, where Debian's elpa packages are) can load Eglot.
fn probe_emacs() -> Result<(), String> {
    version_of("emacs", &["--version"])?;
    let out = Command::new("emacs")
        .args(["--batch", "--eval", "(require 'eglot)"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("`emacs` did not run ({e})"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err("this Emacs has no Eglot (Emacs 29 has it built in; Debian 12: elpa-eglot)".into())
    }
}

/// `GET /moto-api/` answers at `BAKE_TEST_MOTO_URL` within a few seconds.
fn probe_moto() -> Result<(), String> {
    let url = std::env::var("BAKE_TEST_MOTO_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .ok_or("BAKE_TEST_MOTO_URL is not set")?;
    let authority = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("BAKE_TEST_MOTO_URL={url} is not an http:// URL"))?
        .trim_end_matches('/');
    let unreachable = |why: String| format!("no moto server answers at {url} ({why})");
    let addr = authority
        .to_socket_addrs()
        .map_err(|e| unreachable(e.to_string()))?
        .next()
        .ok_or_else(|| unreachable("no address".into()))?;
    let timeout = Duration::from_secs(5);
    let mut stream =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| unreachable(e.to_string()))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| unreachable(e.to_string()))?;
    write!(
        stream,
        "GET /moto-api/ HTTP/1.0\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| unreachable(e.to_string()))?;
    let mut head = [0u8; 12];
    stream
        .read_exact(&mut head)
        .map_err(|e| unreachable(e.to_string()))?;
    match &head[..] {
        [b'H', b'T', b'T', b'P', b'/', _, _, _, b' ', b'2', _, _] => Ok(()),
        other => Err(unreachable(format!(
            "answered {:?}",
            String::from_utf8_lossy(other)
        ))),
    }
}

/// The tests of one binary, each with the peers it needs.
pub struct Suite {
    args: Arguments,
    trials: Vec<Trial>,
    skipped: Vec<(String, String)>,
}

impl Default for Suite {
    fn default() -> Self {
        Suite::new()
    }
}

impl Suite {
    /// Reads libtest's command line (the same flags `cargo test -- …` passes).
    pub fn new() -> Suite {
        Suite {
            args: Arguments::from_args(),
            trials: Vec::new(),
            skipped: Vec::new(),
        }
    }

    /// Adds a test that runs only when every one of `peers` is usable.
    pub fn test(&mut self, name: &str, peers: &[Peer], body: fn()) {
        let probe_now = !self.filtered_out(name);
        // Probe only for tests the filter selects: `cargo test some_name` starts no peer it does not need.
        let missing: Vec<String> = if probe_now {
            peers
                .iter()
                .filter_map(|&p| status(p).err().map(|why| format!("{why}; {}", p.remedy())))
                .collect()
        } else {
            Vec::new()
        };
        let trial = if missing.is_empty() {
            Trial::test(name, move || {
                body();
                Ok(())
            })
        } else {
            let reason = missing.join("; ");
            let required = peers_required();
            if !required {
                self.skipped.push((name.to_owned(), reason.clone()));
            }
            let failure = if required {
                format!("{reason} (BAKE_TEST_REQUIRE_PEERS=1: a missing peer is a failure)")
            } else {
                format!("not run: {reason}")
            };
            Trial::test(name, move || Err(Failed::from(failure))).with_ignored_flag(!required)
        };
        self.trials.push(trial);
    }

    /// Whether libtest's filter leaves this test out (so its peers need no probing).
    fn filtered_out(&self, name: &str) -> bool {
        let matches = |filter: &str| {
            if self.args.exact {
                name == filter
            } else {
                name.contains(filter)
            }
        };
        self.args.filter.as_deref().is_some_and(|f| !matches(f))
            || self.args.skip.iter().any(|s| matches(s))
    }

    /// Prints what is skipped and why, runs the tests, and exits with libtest's status.
    pub fn run(self) -> ! {
        if !self.args.list && !self.args.ignored && !self.args.include_ignored {
            for (name, reason) in &self.skipped {
                eprintln!("skipped {name}: {reason}");
            }
        }
        libtest_mimic::run(&self.args, self.trials).exit()
    }
}

//! The process exit codes, one table for every command (the README and docs/deploy.md list them). Any module may
//! name them; only `cli` ends the process.

/// Success (warnings allowed); also "no changes".
pub const OK: u8 = 0;
/// The spec or its lock has problems; diagnostics were printed.
pub const SPEC: u8 = 1;
/// The command line was wrong (clap's own code).
pub const USAGE: u8 = 2;
/// The environment failed: a file could not be read or written, AWS or nix failed or did not answer in time, the
/// stack is busy or was lost while watching.
pub const ENV: u8 = 3;
/// The stack operation (or the change set) failed; the summary names the root cause.
pub const FAILED: u8 = 4;
/// The user declined, or there was no terminal to ask and no `--yes`.
pub const NOT_CONFIRMED: u8 = 5;
/// `bake plan --detailed-exitcode`: the plan has changes.
pub const CHANGES: u8 = 10;
/// An internal error: a bake bug.
pub const BUG: u8 = 70;
/// Ctrl-C (SIGINT): bake stopped; an operation already started goes on in AWS.
pub const INTERRUPTED: u8 = 130;
/// SIGTERM (what CI runners send on cancel): as Ctrl-C, with the conventional 128 + 15.
pub const TERMINATED: u8 = 143;

//! End to end with an LSP client nobody here wrote: Neovim's built-in client, headless, against the real
//! `bake lsp` binary. The client script is `tests/lsp_e2e/nvim.lua`; it reports what it saw as JSON.
//!
//! Needs `nvim` 0.7 or later on PATH (Debian: `apt-get install -y neovim`). Without it the test is reported as
//! ignored with the reason, unless `BAKE_TEST_REQUIRE_PEERS=1` (CI), where a missing client is a failure
//! (tests/common/peers.rs).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::peers::{Peer, Suite};

fn main() {
    let mut suite = Suite::new();
    suite.test(
        "neovim_gets_diagnostics_hover_completion_and_formatting",
        &[Peer::Nvim],
        neovim_gets_diagnostics_hover_completion_and_formatting,
    );
    suite.run()
}

fn neovim_gets_diagnostics_hover_completion_and_formatting() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("web.kdl");
    let fixture = std::fs::read_to_string(root.join("tests/lsp_e2e/fixture.kdl")).unwrap();
    std::fs::write(&spec, &fixture).unwrap();
    let out = dir.path().join("out.json");

    let mut child = Command::new("nvim")
        .args(["--headless", "--clean", "-n", "-i", "NONE", "-c"])
        .arg(format!(
            "luafile {}",
            root.join("tests/lsp_e2e/nvim.lua").display()
        ))
        .env("BAKE_BIN", env!("CARGO_BIN_EXE_bake"))
        .env("BAKE_SPEC", &spec)
        .env("BAKE_E2E_OUT", &out)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            panic!("nvim did not finish within 90 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let report: Value = match std::fs::read_to_string(&out) {
        Ok(text) => serde_json::from_str(&text).unwrap(),
        Err(e) => panic!("nvim wrote no report ({e}); exit status {status}"),
    };
    // The suite checked the version (0.7 or later); a client without LSP here is a failure, not a skip.
    assert_ne!(
        report["too_old"],
        Value::Bool(true),
        "this Neovim has no built-in LSP client"
    );
    assert!(
        report["error"].is_null(),
        "the client script failed: {}",
        report["error"]
    );
    assert!(status.success(), "{status}");

    // Diagnostics on open, at the right place although the line has ü and 😀 before it: Neovim converts the
    // server's UTF-16 columns to bytes, so this checks the server's conversion.
    let line7 = fixture.lines().nth(7).unwrap();
    let col = line7.find("größe").unwrap();
    let open = report["open"].as_array().unwrap();
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0]["code"], "bake::spec::unknown_property");
    assert_eq!(open[0]["lnum"], 7);
    assert_eq!(open[0]["col"], col);
    assert_eq!(open[0]["end_col"], col + "größe".len());
    assert_eq!(open[0]["severity"], 1, "error");
    assert!(open[0]["message"].as_str().unwrap().contains("help: "));

    let hover = report["hover"].as_str().unwrap();
    assert!(hover.contains("Instances replaced at a time"), "{hover}");

    let completion: Vec<&str> = report["completion"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        completion.contains(&"rollout") && completion.contains(&"subnets"),
        "{completion:?}"
    );
    assert!(!completion.contains(&"base"), "{completion:?}");

    let changed = report["changed"].as_array().unwrap();
    assert!(
        changed
            .iter()
            .any(|d| d["code"] == "bake::check::size_order"),
        "{changed:?}"
    );

    let formatted: Vec<&str> = report["formatted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        formatted.contains(&"fleet \"web\" image=\"web\" instance-type=\"m7i.large\" {"),
        "{formatted:?}"
    );
    assert_eq!(
        formatted[0],
        fixture.lines().next().unwrap(),
        "the comment is kept"
    );
    assert!(
        formatted.contains(&"    size min=3 max=2"),
        "formatting saw the edit"
    );

    assert_eq!(report["stopped"], true, "the server shut down when asked");
}

//! End to end with LSP clients nobody here wrote, against the real `bake lsp` binary: Neovim's built-in client,
//! headless (`tests/lsp_e2e/nvim.lua`), and Emacs's Eglot in batch mode (`tests/lsp_e2e/eglot.el`, with the set-up
//! docs/editors.md gives). Each client script reports what it saw as JSON; the assertions are here.
//!
//! Needs `nvim` 0.7 or later, and `emacs` with Eglot (Debian 12: `emacs-nox elpa-eglot`; Emacs 29+ has it built
//! in), on PATH — `scripts/peers.sh install`. Without one, its test is reported as ignored with the reason,
//! unless `BAKE_TEST_REQUIRE_PEERS=1` (CI), where a missing client is a failure (tests/common/peers.rs).

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
    suite.test(
        "emacs_eglot_gets_diagnostics_hover_and_formatting",
        &[Peer::Emacs],
        emacs_eglot_gets_diagnostics_hover_and_formatting,
    );
    suite.run()
}

/// A scratch directory holding the fixture as `web.kdl`.
struct Session {
    dir: tempfile::TempDir,
    fixture: String,
}

impl Session {
    fn new() -> Session {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let dir = tempfile::tempdir().unwrap();
        let fixture = std::fs::read_to_string(root.join("tests/lsp_e2e/fixture.kdl")).unwrap();
        std::fs::write(dir.path().join("web.kdl"), &fixture).unwrap();
        Session { dir, fixture }
    }

    /// Runs a client (bounded at 90 s) with `BAKE_BIN`, `BAKE_SPEC` and `BAKE_E2E_OUT` set; returns its report
    /// after checking that the client script finished without error.
    fn run(&self, mut client: Command) -> Value {
        let out = self.dir.path().join("out.json");
        let log = self.dir.path().join("client.log");
        let name = client.get_program().to_string_lossy().into_owned();
        let mut child = client
            .env("BAKE_BIN", env!("CARGO_BIN_EXE_bake"))
            .env("BAKE_SPEC", self.dir.path().join("web.kdl"))
            .env("BAKE_E2E_OUT", &out)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > Duration::from_secs(90) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{name} did not finish within 90 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        let report: Value = match std::fs::read_to_string(&out) {
            Ok(text) => serde_json::from_str(&text).unwrap(),
            Err(e) => {
                panic!("{name} wrote no report ({e}); exit status {status}; its stderr:\n{log}")
            }
        };
        assert!(
            report["error"].is_null(),
            "the {name} client script failed: {}; its stderr:\n{log}",
            report["error"]
        );
        assert!(status.success(), "{name}: {status}; its stderr:\n{log}");
        report
    }
}

fn emacs_eglot_gets_diagnostics_hover_and_formatting() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let session = Session::new();
    let fixture = &session.fixture;
    // `--batch` skips the user's init file but loads the site files that put Debian's elpa-eglot on the path.
    let mut emacs = Command::new("emacs");
    emacs
        .arg("--batch")
        .arg("-l")
        .arg(root.join("tests/lsp_e2e/eglot.el"));
    let report = session.run(emacs);
    assert_eq!(report["mode"], "kdl-mode", "{report}");
    assert_eq!(report["managed"], true, "eglot-ensure started the server");

    // Eglot converts the server's UTF-16 columns to characters: ü is one, 😀 one (two UTF-16 units).
    let line7 = fixture.lines().nth(7).unwrap();
    let col = line7[..line7.find("größe").unwrap()].chars().count();
    let open = report["open"].as_array().unwrap();
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0]["line"], 7);
    assert_eq!(open[0]["col"], col);
    assert_eq!(open[0]["end_col"], col + "größe".chars().count());
    assert_eq!(open[0]["type"], "eglot-error");
    let text = open[0]["text"].as_str().unwrap();
    assert!(
        text.starts_with("bake [bake::spec::unknown_property]: ") && text.contains("help: "),
        "{text}"
    );

    let hover = report["hover"].as_str().unwrap();
    assert!(hover.contains("Instances replaced at a time"), "{hover}");

    let changed = report["changed"].as_array().unwrap();
    assert!(
        changed.iter().any(|d| d["text"]
            .as_str()
            .is_some_and(|t| t.contains("[bake::check::size_order]"))
            && d["line"] == 11),
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
    assert!(
        formatted.contains(&"    size min=3 max=2"),
        "formatting saw the edit"
    );
    assert_eq!(
        report["exit_status"], 0,
        "the server exited by itself on `exit`"
    );
}

fn neovim_gets_diagnostics_hover_completion_and_formatting() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let session = Session::new();
    let fixture = &session.fixture;
    let mut nvim = Command::new("nvim");
    nvim.args(["--headless", "--clean", "-n", "-i", "NONE", "-c"])
        .arg(format!(
            "luafile {}",
            root.join("tests/lsp_e2e/nvim.lua").display()
        ));
    let report = session.run(nvim);
    // The suite checked the version (0.7 or later); a client without LSP here is a failure, not a skip.
    assert_ne!(
        report["too_old"],
        Value::Bool(true),
        "this Neovim has no built-in LSP client"
    );

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

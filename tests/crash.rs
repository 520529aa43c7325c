//! Inputs that used to kill bake with a stack overflow (exit 134, and `bake lsp` with it): the real binary must
//! answer each with a syntax diagnostic and exit 1, and the language server must stay up.
//!
//! The fixtures in `tests/specs/crash/` are the reported ones: `{` hidden from the nesting guard by a line
//! continuation ended by FF, NEL, U+2028 or U+2029, or by `\` + CRLF in a string, and a ~60 KB one that took the
//! language server down. The generated ones hit kdl's other recursions: long block comments, nested block
//! comments, stray `}`, and blocks that kdl's error recovery nests while the lexer reads them as strings.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

fn fixtures() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/specs/crash");
    let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "kdl"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect();
    out.sort();
    assert!(out.len() >= 4, "{out:?}");
    let n = 10_000;
    out.extend([
        (
            "comment-stars".to_owned(),
            format!("a\n/*{}*/\n", "*".repeat(n * 4)),
        ),
        (
            "nested-comments".to_owned(),
            format!("{}{}\n", "/*".repeat(n), "*/".repeat(n)),
        ),
        ("stray-closing-braces".to_owned(), "}".repeat(n * 3)),
        ("recovery-nesting".to_owned(), "a b\"{".repeat(n)),
        (
            "deep-blocks".to_owned(),
            format!("{}{}", "a {".repeat(n), "}".repeat(n)),
        ),
    ]);
    out
}

fn bake(args: &[&str], dir: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_bake"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

#[test]
fn check_fmt_and_compile_answer_with_a_diagnostic() {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in fixtures() {
        let path = dir.path().join("spec.kdl");
        std::fs::write(&path, &text).unwrap();
        // None of them is a spec: check and compile report it. The long comments are valid KDL, which fmt may
        // format; the rest it refuses, leaving the file alone.
        for args in [
            &["check", "spec.kdl"][..],
            &["check", "--format", "json", "spec.kdl"],
            &["compile", "spec.kdl"],
            &["fmt", "--check", "spec.kdl"],
            &["fmt", "spec.kdl"],
        ] {
            let out = bake(args, dir.path());
            let stderr = String::from_utf8_lossy(&out.stderr);
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(!stderr.contains("overflow"), "{name} {args:?}: {stderr}");
            if args[0] == "fmt" && out.status.code() == Some(0) {
                continue;
            }
            assert_eq!(out.status.code(), Some(1), "{name} {args:?}: {stderr}");
            assert!(
                stderr.contains("bake::spec::") || stdout.contains("bake::spec::"),
                "{name} {args:?}: {stderr}"
            );
            if args[0] == "fmt" {
                assert_eq!(
                    std::fs::read_to_string(&path).unwrap(),
                    text,
                    "{name}: fmt wrote"
                );
            }
        }
        assert!(
            !dir.path().join("bake.out").exists(),
            "{name}: compile wrote"
        );
    }
}

/// A language-server client over the real binary's stdio, with a deadline on every read.
struct Lsp {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    messages: mpsc::Receiver<Value>,
    next_id: i64,
}

impl Lsp {
    fn start() -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_bake"))
            .arg("lsp")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let (tx, messages) = mpsc::channel();
        std::thread::spawn(move || {
            loop {
                let mut len = 0;
                loop {
                    let mut line = String::new();
                    if stdout.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let line = line.trim_end();
                    if line.is_empty() {
                        break;
                    }
                    if let Some(n) = line.strip_prefix("Content-Length: ") {
                        len = n.parse().unwrap();
                    }
                }
                let mut body = vec![0; len];
                if stdout.read_exact(&mut body).is_err() {
                    return;
                }
                if tx.send(serde_json::from_slice(&body).unwrap()).is_err() {
                    return;
                }
            }
        });
        let mut lsp = Self {
            child,
            stdin,
            messages,
            next_id: 0,
        };
        lsp.request("initialize", json!({"capabilities": {}}));
        lsp.notify("initialized", json!({}));
        lsp
    }

    fn send(&mut self, message: Value) {
        let body = message.to_string();
        write!(self.stdin, "Content-Length: {}\r\n\r\n{body}", body.len()).unwrap();
        self.stdin.flush().unwrap();
    }

    fn notify(&mut self, method: &str, params: Value) {
        self.send(json!({"jsonrpc": "2.0", "method": method, "params": params}));
    }

    /// The next message matching `pred`, within 60 s.
    fn wait(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.messages.recv_timeout(left) {
                Ok(m) if pred(&m) => return m,
                Ok(_) => {}
                Err(e) => panic!(
                    "no {what} from bake lsp ({e}); exited: {:?}",
                    self.child.try_wait()
                ),
            }
        }
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        self.wait(method, |m| m["id"] == json!(id))
    }
}

#[test]
fn the_language_server_survives_them() {
    let mut lsp = Lsp::start();
    for (i, (name, text)) in fixtures().into_iter().enumerate() {
        let uri = format!("file:///tmp/crash-{i}.kdl");
        lsp.notify(
            "textDocument/didOpen",
            json!({"textDocument": {"uri": uri, "languageId": "kdl", "version": 1, "text": text}}),
        );
        let published = lsp.wait("diagnostics", |m| {
            m["method"] == "textDocument/publishDiagnostics" && m["params"]["uri"] == json!(uri)
        });
        let diags = published["params"]["diagnostics"].as_array().unwrap();
        assert!(!diags.is_empty(), "{name}");
        // An edit (the piecewise parse with the previous text cached), formatting and hover on the same text.
        lsp.notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": uri, "version": 2},
                   "contentChanges": [{"text": format!("stack \"web\"\n{text}")}]}),
        );
        lsp.wait("diagnostics after an edit", |m| {
            m["method"] == "textDocument/publishDiagnostics" && m["params"]["uri"] == json!(uri)
        });
        let formatted = lsp.request(
            "textDocument/formatting",
            json!({"textDocument": {"uri": uri}, "options": {"tabSize": 4, "insertSpaces": true}}),
        );
        assert!(formatted.get("result").is_some(), "{name}: {formatted}");
        lsp.request(
            "textDocument/hover",
            json!({"textDocument": {"uri": uri}, "position": {"line": 0, "character": 3}}),
        );
        lsp.notify(
            "textDocument/didClose",
            json!({"textDocument": {"uri": uri}}),
        );
    }
    lsp.request("shutdown", json!(null));
    lsp.notify("exit", json!(null));
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = lsp.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "bake lsp did not exit");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
}

//! How long `bake lsp` takes to re-diagnose a 1,000-line spec after an edit (the issue's budget: 10 ms).
//!
//! `cargo run --example lsp_bench` (debug profile) or `cargo run --release --example lsp_bench`.
//! It drives the server's own `didChange` handler: parse, check, offset conversion, the `publishDiagnostics`
//! message; then completion, hover and formatting on the same document.

use std::time::{Duration, Instant};

use bake::lsp::Server;
use lsp_server::{Notification, Request, RequestId};
use serde_json::json;

/// A valid spec of at least `lines` lines: one stack, then images and fleets in pairs.
fn spec(lines: usize) -> String {
    let mut out = String::from(
        "// Generated for the benchmark: ünïcödé 😀 in comments too.\nstack \"bench\" region=\"us-east-1\" {\n    tags team=\"platform\" owner=\"Jürgen\"\n}\n",
    );
    let mut i = 0;
    while out.lines().count() < lines {
        out.push_str(&format!(
            r#"
image "img-{i}" {{
    base ssm="/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-6.12-x86_64"
    nix installer="determinate" version="3.1.1"
    flake "git+https://github.com/acme/infra.git" ref="main" output="systemConfigs.web"
    rpms "git" "jq"
    build "m7i.large" subnet="subnet-0a1b2c3d4e5f60718" security-group="sg-0a1b2c3d4e5f60718" volume-gib=30
}}
fleet "fleet-{i}" image="img-{i}" instance-type="m7i.large" {{
    subnets "subnet-0a1b2c3d4e5f60718" "subnet-0f1e2d3c4b5a69788"
    size min=2 max=6 desired=3
    rollout "rolling" max-batch=1 min-in-service=2 pause="PT10M" {{
        suspend "HealthCheck" "AZRebalance"
    }}
}}
"#
        ));
        i += 1;
    }
    out
}

fn change(version: i32, text: &str) -> Notification {
    Notification::new(
        "textDocument/didChange".into(),
        json!({
            "textDocument": { "uri": "file:///bench.kdl", "version": version },
            "contentChanges": [{ "text": text }],
        }),
    )
}

fn time(label: &str, runs: usize, mut f: impl FnMut(usize)) -> Duration {
    f(0); // warm up
    let mut samples: Vec<Duration> = (0..runs)
        .map(|i| {
            let start = Instant::now();
            f(i);
            start.elapsed()
        })
        .collect();
    samples.sort();
    let median = samples[runs / 2];
    println!(
        "{label:<44} median {:>8.3} ms   p95 {:>8.3} ms   max {:>8.3} ms   ({runs} runs)",
        ms(median),
        ms(samples[runs * 95 / 100]),
        ms(samples[runs - 1])
    );
    median
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let profile = if cfg!(debug_assertions) {
        "debug (dev)"
    } else {
        "release"
    };
    let mut server = Server::default();
    let mut version = 0;
    for size in [50, 250, 1000] {
        let good = spec(size);
        // The same spec after an edit that breaks something semantic (an unknown image), and one that breaks syntax.
        let semantic = good.replacen("image=\"img-0\"", "image=\"img-x\"", 1);
        let syntax = good.replacen("volume-gib=30", "volume-gib=", 1);
        println!(
            "\n{} lines, {} bytes ({profile} build):",
            good.lines().count(),
            good.len()
        );
        for (label, edited) in [
            ("didChange → diagnostics (valid spec)", &good),
            ("didChange → diagnostics (1 semantic error)", &semantic),
            ("didChange → diagnostics (1 syntax error)", &syntax),
        ] {
            let texts = [good.as_str(), edited.as_str()];
            let median = time(label, 50, |i| {
                version += 1;
                let out = server.notification(change(version, texts[i % 2]));
                assert_eq!(out.len(), 1);
            });
            let verdict = if median < Duration::from_millis(10) {
                "within"
            } else {
                "OVER"
            };
            println!("{:<44} {verdict} the 10 ms budget", "");
        }
    }
    let good = spec(1000);
    {
        // Where the time goes: a full parse of the text, against the server's piecewise parse (src/lsp/incremental.rs).
        let edited = good.replacen("image=\"img-0\"", "image=\"img-x\"", 1);
        let texts = [good.as_str(), edited.as_str()];
        let file = |i: usize| bake::source::SourceFile::new("bench.kdl", texts[i % 2]);
        println!("\nwhere the time goes ({} lines):", good.lines().count());
        let all = time("parse + check (check_source)", 50, |i| {
            let _ = bake::check_source(&file(i));
        });
        let parse = time("of which: kdl parse of the whole text", 50, |i| {
            let _ = kdl::KdlDocument::parse(texts[i % 2]);
        });
        let mut chunks = bake::lsp::incremental::Chunks::default();
        let incremental = time("incremental kdl parse (one node changed)", 50, |i| {
            assert!(chunks.parse(texts[i % 2]).is_some());
        });
        println!(
            "{:<44} {:>8.3} ms   (check alone: {:.3} ms)",
            "parse + check, piecewise",
            ms(all.saturating_sub(parse) + incremental),
            ms(all.saturating_sub(parse))
        );
    }
    server.notification(change(version + 1, &good));
    let offset_line = good.lines().count() / 2;
    let mut id = 0;
    let mut request = |method: &str, params: serde_json::Value| {
        id += 1;
        let r = server.request(Request::new(RequestId::from(id), method.into(), params));
        assert!(r.error_or_none());
    };
    let at = json!({ "textDocument": { "uri": "file:///bench.kdl" }, "position": { "line": offset_line, "character": 4 } });
    time("completion (middle of the spec)", 100, |_| {
        request("textDocument/completion", at.clone());
    });
    time("hover (middle of the spec)", 100, |_| {
        request("textDocument/hover", at.clone());
    });
    time("formatting (whole spec)", 20, |_| {
        request(
            "textDocument/formatting",
            json!({ "textDocument": { "uri": "file:///bench.kdl" }, "options": { "tabSize": 4, "insertSpaces": true } }),
        );
    });
}

trait ErrorOrNone {
    fn error_or_none(&self) -> bool;
}

impl ErrorOrNone for lsp_server::Response {
    fn error_or_none(&self) -> bool {
        self.response_result.is_ok()
    }
}

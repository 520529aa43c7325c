//! `bake lsp` at the protocol level: a client talks to the server through an in-memory connection, exactly as an
//! editor would over stdio.

use std::path::Path;
use std::thread::JoinHandle;
use std::time::Duration;

use lsp_server::{Connection, Message, Notification, Request, RequestId, Response};
use lsp_types::notification::{
    DidChangeTextDocument, DidOpenTextDocument, Exit, Initialized, Notification as _,
    PublishDiagnostics,
};
use lsp_types::request::{
    Completion, Formatting, HoverRequest, Initialize, Request as _, Shutdown,
};
use lsp_types::{
    CompletionItem, CompletionResponse, CompletionTextEdit, DiagnosticSeverity,
    DidChangeTextDocumentParams, DidOpenTextDocumentParams, HoverContents, NumberOrString,
    Position, PublishDiagnosticsParams, TextDocumentContentChangeEvent, TextDocumentIdentifier,
    TextDocumentItem, TextDocumentPositionParams, Uri, VersionedTextDocumentIdentifier,
};
use serde_json::{Value, json};

struct Client {
    conn: Connection,
    server: Option<JoinHandle<Result<(), String>>>,
    next_id: i32,
}

impl Client {
    fn start() -> Client {
        let (server, conn) = Connection::memory();
        let handle =
            std::thread::spawn(move || bake::lsp::serve(&server).map_err(|e| e.to_string()));
        let mut client = Client {
            conn,
            server: Some(handle),
            next_id: 0,
        };
        let init = client.request_raw(Initialize::METHOD, json!({ "capabilities": {} }));
        let init = init.response_result.expect("initialize succeeds");
        let caps = &init["capabilities"];
        assert_eq!(caps["textDocumentSync"], json!(1), "full sync");
        assert_eq!(caps["hoverProvider"], json!(true));
        assert_eq!(caps["documentFormattingProvider"], json!(true));
        assert!(caps["completionProvider"].is_object());
        client.notify(Initialized::METHOD, json!({}));
        client
    }

    fn request_raw(&mut self, method: &str, params: Value) -> Response {
        self.next_id += 1;
        let id = RequestId::from(self.next_id);
        self.conn
            .sender
            .send(Request::new(id.clone(), method.to_owned(), params).into())
            .unwrap();
        loop {
            match self.recv() {
                Message::Response(r) if r.id == id => return r,
                Message::Notification(_) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        let r = self.request_raw(method, params);
        match r.response_result {
            Ok(v) => v,
            Err(e) => panic!("{method} failed: {e:?}"),
        }
    }

    fn notify(&self, method: &str, params: Value) {
        self.conn
            .sender
            .send(Notification::new(method.to_owned(), params).into())
            .unwrap();
    }

    fn recv(&self) -> Message {
        self.conn
            .receiver
            .recv_timeout(Duration::from_secs(10))
            .expect("the server answers")
    }

    fn diagnostics(&self) -> PublishDiagnosticsParams {
        loop {
            if let Message::Notification(n) = self.recv()
                && n.method == PublishDiagnostics::METHOD
            {
                return serde_json::from_value(n.params).unwrap();
            }
        }
    }

    fn open(&self, uri: &Uri, text: &str) -> PublishDiagnosticsParams {
        let params = DidOpenTextDocumentParams {
            text_document: TextDocumentItem::new(uri.clone(), "kdl".into(), 1, text.into()),
        };
        self.notify(
            DidOpenTextDocument::METHOD,
            serde_json::to_value(params).unwrap(),
        );
        self.diagnostics()
    }

    fn change(&self, uri: &Uri, version: i32, text: &str) -> PublishDiagnosticsParams {
        let params = DidChangeTextDocumentParams {
            text_document: VersionedTextDocumentIdentifier::new(uri.clone(), version),
            content_changes: vec![TextDocumentContentChangeEvent {
                range: None,
                range_length: None,
                text: text.into(),
            }],
        };
        self.notify(
            DidChangeTextDocument::METHOD,
            serde_json::to_value(params).unwrap(),
        );
        self.diagnostics()
    }

    fn at(uri: &Uri, position: Position) -> Value {
        serde_json::to_value(TextDocumentPositionParams::new(
            TextDocumentIdentifier::new(uri.clone()),
            position,
        ))
        .unwrap()
    }

    fn completion(&mut self, uri: &Uri, position: Position) -> Vec<CompletionItem> {
        let v = self.request(Completion::METHOD, Client::at(uri, position));
        match serde_json::from_value::<Option<CompletionResponse>>(v).unwrap() {
            Some(CompletionResponse::Array(items)) => items,
            Some(CompletionResponse::List(l)) => l.items,
            None => Vec::new(),
        }
    }

    fn hover(&mut self, uri: &Uri, position: Position) -> Option<String> {
        let v = self.request(HoverRequest::METHOD, Client::at(uri, position));
        let hover: Option<lsp_types::Hover> = serde_json::from_value(v).unwrap();
        hover.map(|h| match h.contents {
            HoverContents::Markup(m) => m.value,
            other => panic!("{other:?}"),
        })
    }

    /// `shutdown`, then `exit`: the server thread ends cleanly.
    fn shutdown(mut self) {
        let r = self.request_raw(Shutdown::METHOD, Value::Null);
        assert!(r.response_result.is_ok(), "{r:?}");
        self.notify(Exit::METHOD, Value::Null);
        let result = self
            .server
            .take()
            .unwrap()
            .join()
            .expect("the server thread does not panic");
        assert_eq!(result, Ok(()));
    }
}

fn uri(name: &str) -> Uri {
    format!("file:///work/{name}").parse().unwrap()
}

/// The position of the `n`th (0-based) occurrence of `needle`, plus `delta` UTF-16 units, computed independently
/// of the server: lines split on `\n`, columns counted with `encode_utf16`.
fn pos(text: &str, needle: &str, delta: u32) -> Position {
    let offset = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle} not in text"));
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line = text[..offset].matches('\n').count() as u32;
    let col = text[line_start..offset].encode_utf16().count() as u32;
    Position::new(line, col + delta)
}

// Fixtures of this file's own, so the corpus in specs/ and tests/specs/ can change without breaking these tests.
const WEB: &str = r#"// One x86_64 fleet with a rolling update: the setup this project was born from.
// `bake compile specs/web.kdl` reads specs/web.lock.json; `bake lock specs/web.kdl` refreshes it.

stack "web" region="us-east-1" {
    tags team="platform" service="web"
}

image "web" {
    // Pin a kernel lineage: `kernel-default` moves between kernels over time.
    base ssm="/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-6.12-x86_64"
    nix installer="determinate" version="3.1.1"
    // URLs must be quoted: in KDL an unquoted `//` starts a comment.
    flake "git+https://github.com/acme/infra.git" ref="main" output="systemConfigs.web" checkout="../../infra"
    rpms "git" "jq"
    build "m7i.large" "m6i.large" subnet="subnet-0a1b2c3d4e5f60718" security-group="sg-0a1b2c3d4e5f60718" volume-gib=30
    delete-old-amis #true
}

fleet "web" image="web" instance-type="m7i.large" {
    subnets "subnet-0a1b2c3d4e5f60718" "subnet-0f1e2d3c4b5a69788"
    security-groups "sg-0123456789abcdef0"
    size min=2 max=6 desired=3
    policies "arn:aws:iam::aws:policy/CloudWatchAgentServerPolicy"
    rollout "rolling" max-batch=1 min-in-service=2 pause="PT10M" wait-for-signals=#true {
        suspend "HealthCheck" "ReplaceUnhealthy" "AZRebalance" "AlarmNotification" "ScheduledActions"
    }
}
"#;

const STRATEGY_MISMATCH: &str = r#"// Properties and children of one rollout strategy used with another.
stack "web" region="us-east-1"
image "web" {
    base ssm="/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-6.12-x86_64"
    nix version="3.1.1"
    flake "git+https://github.com/acme/infra.git" output="systemConfigs.web"
}
fleet "web" image="web" instance-type="m7i.large" {
    subnets "subnet-0a1b2c3d4e5f60718"; security-groups "sg-0123456789abcdef0"
    size min=1 max=2
    rollout "rolling" min-healthy=90 {
        checkpoints 50 100
    }
}
fleet "api" image="web" instance-type="m7i.large" {
    subnets "subnet-0a1b2c3d4e5f60718"; security-groups "sg-0123456789abcdef0"
    size min=1 max=2
    rollout "replacing"
}
"#;

const DUPLICATES: &str = r#"stack "web" region="us-east-1" region="eu-west-1"
image "web" {
    base ami="ami-0123456789abcdef0" arch="x86_64"
}
"#;

const UNICODE: &str = r#"// Non-ASCII text before the problem: spans are bytes, columns are characters.
stack "web" region="us-east-1" {
    tags owner="Jürgen Größe" team="plattform-übergreifend"
}
image "web" {
    base ssm="/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-6.12-x86_64"
    nix version="3.1.1"
    flake "git+https://github.com/acme/infra.git" output="systemConfigs.web" größe=1
}
"#;

fn labels(items: &[CompletionItem]) -> Vec<&str> {
    items.iter().map(|i| i.label.as_str()).collect()
}

#[test]
fn open_and_change_publish_the_diagnostics_of_bake_check() {
    let c = Client::start();
    let u = uri("web.kdl");
    let web = WEB.to_owned();
    let d = c.open(&u, &web);
    assert_eq!(d.uri, u);
    assert_eq!(d.version, Some(1));
    assert!(d.diagnostics.is_empty(), "{:?}", d.diagnostics);

    // A semantic problem: the same codes and count as `bake check`.
    let broken = STRATEGY_MISMATCH.to_owned();
    let d = c.change(&u, 2, &broken);
    assert_eq!(d.version, Some(2));
    let file = bake::source::SourceFile::new("x.kdl", broken.as_str());
    let (_, expected) = bake::check_source(&file);
    assert_eq!(d.diagnostics.len(), expected.len());
    for (got, want) in d.diagnostics.iter().zip(&expected) {
        assert_eq!(
            got.code,
            Some(NumberOrString::String(want.code.as_str().to_owned()))
        );
        assert!(got.message.starts_with(&want.message), "{}", got.message);
        assert_eq!(got.source.as_deref(), Some("bake"));
        if let Some(help) = &want.help {
            assert!(
                got.message.ends_with(&format!("help: {help}")),
                "{}",
                got.message
            );
        }
    }
    let first = &d.diagnostics[0];
    assert_eq!(first.severity, Some(DiagnosticSeverity::ERROR));
    assert_eq!(first.range.start, pos(&broken, "min-healthy=90", 0));
    assert_eq!(first.range.end, pos(&broken, "min-healthy=90", 11));
    assert!(
        first
            .message
            .contains("only for `instance-refresh` rollouts")
    );

    // A syntax error replaces them.
    let d = c.change(&u, 3, "stack \"web\" {\n    tags a=true\n}\n");
    assert_eq!(d.diagnostics.len(), 1);
    assert_eq!(
        d.diagnostics[0].code,
        Some(NumberOrString::String("bake::spec::syntax".into()))
    );
    assert!(
        d.diagnostics[0].message.contains("#true"),
        "{}",
        d.diagnostics[0].message
    );

    // Fixed again: the diagnostics are cleared.
    let d = c.change(&u, 4, &web);
    assert!(d.diagnostics.is_empty());
    c.shutdown();
}

#[test]
fn the_editor_reports_a_stack_set_region_without_its_ami() {
    let c = Client::start();
    let u = uri("stackset.kdl");
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/specs/stackset.kdl"))
        .unwrap();
    let d = c.open(&u, &text);
    assert!(d.diagnostics.is_empty(), "{:?}", d.diagnostics);
    let broken = text.replace("        image \"web\" ami=\"ami-04c1d2e3f4a5b6c78\"\n", "");
    assert_ne!(broken, text);
    let d = c.change(&u, 2, &broken);
    assert_eq!(d.diagnostics.len(), 1, "{:?}", d.diagnostics);
    let got = &d.diagnostics[0];
    assert_eq!(
        got.code,
        Some(NumberOrString::String(
            "bake::stackset::region_value".into()
        ))
    );
    assert!(
        got.message
            .contains("region `eu-west-1` needs an AMI id for image `web`"),
        "{}",
        got.message
    );
    // At the region in `regions`, where the instance would have run without it.
    let at = pos(&broken, "\"eu-west-1\"\n", 0);
    assert_eq!(got.range.start, at);
    c.shutdown();
}

#[test]
fn secondary_labels_become_related_information() {
    let c = Client::start();
    let u = uri("dup.kdl");
    let text = DUPLICATES.to_owned();
    let d = c.open(&u, &text);
    let with_related: Vec<_> = d
        .diagnostics
        .iter()
        .filter(|d| d.related_information.is_some())
        .collect();
    assert!(!with_related.is_empty());
    let dup_region = with_related
        .iter()
        .find(|d| d.range.start == pos(&text, "region=\"eu-west-1\"", 0))
        .expect("the second region is the primary place");
    let related = &dup_region.related_information.as_ref().unwrap()[0];
    assert_eq!(related.location.uri, u);
    assert_eq!(
        related.location.range.start,
        pos(&text, "region=\"us-east-1\"", 0)
    );
    c.shutdown();
}

#[test]
fn positions_count_utf16_units_after_multibyte_text() {
    let mut c = Client::start();
    let u = uri("unicode.kdl");
    let text = UNICODE.to_owned();
    let d = c.open(&u, &text);
    let unknown = d
        .diagnostics
        .iter()
        .find(|d| {
            d.code
                == Some(NumberOrString::String(
                    "bake::spec::unknown_property".into(),
                ))
        })
        .expect("größe is reported");
    assert_eq!(unknown.range.start, pos(&text, "größe=1", 0));
    // The label covers the key: `größe` is 7 bytes, 5 UTF-16 units.
    assert_eq!(unknown.range.end, pos(&text, "größe=1", 5));

    // Emoji are two UTF-16 units; the property after them is still found.
    let emoji =
        "stack \"web\" region=\"us-east-1\" {\n    tags owner=\"😀😀\" größe=\"x\" team=\"t\"\n}\n";
    let d = c.change(&u, 2, emoji);
    let starts: Vec<Position> = d.diagnostics.iter().map(|d| d.range.start).collect();
    // `tags` takes any key, so nothing is wrong there; hover still lands on the right words.
    assert!(starts.iter().all(|p| p.line != 1), "{starts:?}");
    let h = c.hover(&u, pos(emoji, "team", 1)).expect("hover on a tag");
    assert!(h.contains("`team`"), "{h}");
    let items = c.completion(&u, pos(emoji, "team", 0));
    assert!(items.is_empty() || labels(&items).iter().all(|l| !l.is_empty()));
    c.shutdown();
}

const DRAFT: &str = r#"stack "web" region="us-east-1"
image "web" {
    base ssm=""
    build volume-type=
    delete-old-amis 
}
fleet "web" image="web" instance-type="m7i.large" {
    
    rollout "rolling" max-batch=1 {
        
    }
    rollout "instance-refresh"  {
    }
}
"#;

#[test]
fn completion_offers_what_the_schema_allows_at_the_cursor() {
    let mut c = Client::start();
    let u = uri("draft.kdl");
    c.open(&u, DRAFT);

    // Top level.
    let top = c.completion(&u, Position::new(15, 0));
    assert_eq!(
        labels(&top),
        ["stack", "image", "fleet", "environment", "stack-set"]
    );

    // Children of a fleet, not of an image.
    let fleet = c.completion(&u, pos(DRAFT, "    \n    rollout", 4));
    let names = labels(&fleet);
    for n in ["subnets", "security-groups", "size", "policies", "rollout"] {
        assert!(names.contains(&n), "{names:?}");
    }
    assert!(!names.contains(&"base"));
    let subnets = fleet.iter().find(|i| i.label == "subnets").unwrap();
    assert!(subnets.documentation.is_some());

    // Children of a rolling rollout: `suspend`, not `checkpoints`.
    let rolling = c.completion(&u, pos(DRAFT, "        \n    }", 8));
    assert_eq!(labels(&rolling), ["suspend"]);

    // Properties of a rolling rollout (not yet written), and of an instance refresh.
    let props = c.completion(&u, pos(DRAFT, "max-batch=1 {", 12));
    let names = labels(&props);
    assert!(
        names.contains(&"min-in-service") && names.contains(&"wait-for-signals"),
        "{names:?}"
    );
    assert!(!names.contains(&"max-batch"), "already written");
    assert!(!names.contains(&"rolling"), "the strategy is already given");
    assert!(!names.contains(&"min-healthy"), "instance-refresh only");
    let edit = match &props[0].text_edit {
        Some(CompletionTextEdit::Edit(e)) => e,
        other => panic!("{other:?}"),
    };
    assert!(edit.new_text.ends_with('='));
    let refresh = c.completion(&u, pos(DRAFT, "\"instance-refresh\"  {", 19));
    let names = labels(&refresh);
    assert!(
        names.contains(&"min-healthy") && names.contains(&"checkpoint-delay"),
        "{names:?}"
    );
    assert!(!names.contains(&"max-batch"));

    // Enumerated values: AL2023 parameters inside the quotes, choices after `=`, booleans as arguments.
    let ssm = c.completion(&u, pos(DRAFT, "ssm=\"\"", 5));
    assert_eq!(ssm.len(), 12);
    assert!(
        labels(&ssm)
            .contains(&"/aws/service/ami-amazon-linux-latest/al2023-ami-minimal-kernel-6.18-arm64")
    );
    let edit = match &ssm[0].text_edit {
        Some(CompletionTextEdit::Edit(e)) => e,
        other => panic!("{other:?}"),
    };
    // The edit replaces the whole `""`, closing quote included.
    assert_eq!(edit.range.start, pos(DRAFT, "\"\"", 0));
    assert_eq!(edit.range.end, pos(DRAFT, "\"\"", 2));
    assert!(edit.new_text.starts_with("\"/aws/service/") && edit.new_text.ends_with('"'));

    let volume = c.completion(&u, pos(DRAFT, "volume-type=", 12));
    assert_eq!(labels(&volume), ["gp3", "gp2", "io1", "io2"]);
    let bools = c.completion(&u, pos(DRAFT, "delete-old-amis ", 16));
    // `delete-old-amis` takes its boolean and the `keep` property.
    assert_eq!(labels(&bools), ["keep", "#true", "#false"]);

    // Nothing inside a comment.
    let text = "// ro\nfleet \"web\" { /* ro */ }\n";
    c.change(&u, 2, text);
    assert!(c.completion(&u, pos(text, "ro\n", 2)).is_empty());
    assert!(c.completion(&u, pos(text, "ro */", 2)).is_empty());
    assert!(!c.completion(&u, pos(text, " }", 1)).is_empty());

    // Rollout strategies, and the images a fleet can run.
    let text = "fleet \"web\" image=\"\" {\n    rollout \"\n}\nimage \"api\"\nimage \"web\"\n";
    c.change(&u, 3, text);
    let strategies = c.completion(&u, pos(text, "rollout \"", 9));
    assert_eq!(
        labels(&strategies),
        ["rolling", "replacing", "instance-refresh"]
    );
    let images = c.completion(&u, pos(text, "image=\"\"", 7));
    assert_eq!(labels(&images), ["api", "web"]);
    c.shutdown();
}

#[test]
fn hover_shows_the_schema_docs() {
    let mut c = Client::start();
    let u = uri("web.kdl");
    let web = WEB.to_owned();
    c.open(&u, &web);

    let h = c.hover(&u, pos(&web, "rollout \"rolling\"", 2)).unwrap();
    assert!(
        h.contains("`fleet > rollout`") && h.contains("How a new image reaches the fleet"),
        "{h}"
    );
    let h = c.hover(&u, pos(&web, "max-batch", 3)).unwrap();
    assert!(
        h.contains("Instances replaced at a time")
            && h.contains("Default: `1`")
            && h.contains("rolling"),
        "{h}"
    );
    // On a value: the property's docs.
    let h = c.hover(&u, pos(&web, "\"PT10M\"", 2)).unwrap();
    assert!(h.contains("`pause`") && h.contains("ISO-8601"), "{h}");
    let h = c.hover(&u, pos(&web, "ssm=", 1)).unwrap();
    assert!(h.contains("SSM parameter"), "{h}");
    // An argument.
    let h = c.hover(&u, pos(&web, "\"m6i.large\"", 1)).unwrap();
    assert!(h.contains("`instance-type`"), "{h}");
    // A comment: nothing.
    assert_eq!(c.hover(&u, pos(&web, "One x86_64", 1)), None);
    c.shutdown();
}

#[test]
fn formatting_is_bake_fmt() {
    let mut c = Client::start();
    let u = uri("messy.kdl");
    let messy = "stack   \"web\" region=\"us-east-1\"   // the stack\nimage \"web\" {\n  base ami=\"ami-0123456789abcdef0\"   arch=\"x86_64\"\n}\n";
    c.open(&u, messy);
    let params = json!({ "textDocument": { "uri": u.as_str() }, "options": { "tabSize": 4, "insertSpaces": true } });
    let edits: Vec<lsp_types::TextEdit> =
        serde_json::from_value(c.request(Formatting::METHOD, params.clone())).unwrap();
    assert_eq!(edits.len(), 1);
    let expected = bake::fmt::format(&bake::source::SourceFile::new("m.kdl", messy)).unwrap();
    assert_eq!(edits[0].new_text, expected);
    assert!(expected.contains("// the stack"));
    assert_eq!(edits[0].range.start, Position::new(0, 0));
    assert_eq!(edits[0].range.end, Position::new(4, 0));

    // Already formatted: no edits. Not KDL: null (the diagnostics say why).
    c.change(&u, 2, &expected);
    let none: Vec<lsp_types::TextEdit> =
        serde_json::from_value(c.request(Formatting::METHOD, params.clone())).unwrap();
    assert!(none.is_empty());
    c.change(&u, 3, "stack \"web");
    assert_eq!(c.request(Formatting::METHOD, params), Value::Null);
    c.shutdown();
}

#[test]
fn bad_requests_get_errors_and_the_session_goes_on() {
    let mut c = Client::start();
    let u = uri("x.kdl");
    c.open(&u, "stack \"x\" {\n    tags a=\"ü\"\n}\n");
    // Unknown method, invalid parameters, unknown document, positions past the end or inside a surrogate pair.
    let r = c.request_raw(
        "textDocument/definition",
        Client::at(&u, Position::new(0, 0)),
    );
    assert_eq!(
        r.response_result.unwrap_err().code,
        lsp_server::ErrorCode::MethodNotFound as i32
    );
    let r = c.request_raw(HoverRequest::METHOD, json!({ "nonsense": 1 }));
    assert_eq!(
        r.response_result.unwrap_err().code,
        lsp_server::ErrorCode::InvalidParams as i32
    );
    assert_eq!(c.hover(&uri("other.kdl"), Position::new(0, 0)), None);
    for p in [
        Position::new(0, 999),
        Position::new(99, 99),
        Position::new(1, 13),
        Position::new(2, 1),
    ] {
        c.hover(&u, p);
        c.completion(&u, p);
    }
    // Nesting deep enough to overflow a recursive parser: one diagnostic, no crash; formatting declines.
    let deep = format!("{}{}", "a {".repeat(20_000), "}".repeat(20_000));
    let d = c.change(&u, 5, &deep);
    assert_eq!(d.diagnostics.len(), 1);
    assert!(
        d.diagnostics[0].message.contains("levels deep"),
        "{}",
        d.diagnostics[0].message
    );
    let params = json!({ "textDocument": { "uri": u.as_str() }, "options": { "tabSize": 4, "insertSpaces": true } });
    assert_eq!(c.request(Formatting::METHOD, params), Value::Null);
    c.hover(&u, Position::new(0, 30_000));
    c.completion(&u, Position::new(0, 30_000));

    // Garbage text of every kind still gets diagnostics, never a dead server.
    for (i, text) in [
        "",
        "{",
        "}}}",
        "\"",
        "/*",
        "a=",
        "#",
        "(",
        "stack (x",
        "\u{feff}stack",
        "r#\"",
        "\\",
    ]
    .iter()
    .enumerate()
    {
        let d = c.change(&u, 10 + i as i32, text);
        assert_eq!(d.uri, u);
        for offset in 0..=text.len() {
            if text.is_char_boundary(offset) {
                let p = Position::new(0, text[..offset].encode_utf16().count() as u32);
                c.completion(&u, p);
                c.hover(&u, p);
            }
        }
    }
    c.shutdown();
}

#[test]
fn exit_without_shutdown_ends_the_session_with_an_error() {
    let c = Client::start();
    c.notify(Exit::METHOD, Value::Null);
    let mut c = c;
    let result = c.server.take().unwrap().join().unwrap();
    assert!(result.is_err());
}

/// Completion and hover at every character boundary of every spec in the corpus (valid and broken, with
/// multi-byte text) and of every prefix of one: no panics, and every edit range lies inside the text.
#[test]
fn completion_and_hover_never_panic_anywhere() {
    use bake::lsp::convert::LineIndex;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut texts: Vec<String> = ["specs", "tests/specs/err", "tests/lsp_e2e"]
        .iter()
        .flat_map(|d| {
            std::fs::read_dir(root.join(d))
                .into_iter()
                .flatten()
                .flatten()
        })
        .filter(|e| e.path().extension().is_some_and(|x| x == "kdl"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    let web = WEB.to_owned();
    texts.extend(
        web.char_indices()
            .map(|(i, _)| web[..i].to_owned())
            .step_by(31),
    );
    for text in &texts {
        let index = LineIndex::new(text);
        let end = index.position(text, text.len());
        for (offset, _) in text.char_indices().chain([(text.len(), ' ')]) {
            for item in bake::lsp::completion::complete(text, &index, offset) {
                if let Some(CompletionTextEdit::Edit(e)) = item.text_edit {
                    assert!(e.range.start <= e.range.end && e.range.end <= end, "{e:?}");
                }
            }
            bake::lsp::hover::hover(text, &index, offset);
        }
    }
}

/// Environments appended to `WEB`: the editor checks each environment's overrides as you type, with the same
/// diagnostics as `bake check`, placed at the override.
#[test]
fn environment_overrides_are_checked_as_you_type() {
    let c = Client::start();
    let u = uri("envs.kdl");
    let good = format!(
        "{WEB}\nenvironment \"staging\" default=#true {{\n    region \"us-east-1\"\n}}\nenvironment \"prod\" {{\n    account \"222222222222\"\n    images-from \"staging\"\n    fleet \"web\" instance-type=\"m7i.xlarge\" desired=4\n}}\n"
    );
    let d = c.open(&u, &good);
    assert!(d.diagnostics.is_empty(), "{:?}", d.diagnostics);

    // Typing a wrong type, an arm64 instance type for the x86_64 image, an unknown fleet and an unknown source.
    let bad = good
        .replace(
            "instance-type=\"m7i.xlarge\" desired=4",
            "instance-type=\"m7g.large\" desired=\"four\"",
        )
        .replace(
            "images-from \"staging\"",
            "images-from \"stagin\"\n    fleet \"wbe\" min=1",
        );
    let d = c.change(&u, 2, &bad);
    let found = |code: &str| {
        d.diagnostics
            .iter()
            .find(|x| x.code == Some(NumberOrString::String(code.to_owned())))
            .unwrap_or_else(|| panic!("no {code} in {:?}", d.diagnostics))
    };
    assert_eq!(
        found("bake::spec::wrong_type").range.start,
        pos(&bad, "\"four\"", 0)
    );
    assert_eq!(
        found("bake::check::architecture").range.start,
        pos(&bad, "\"m7g.large\"", 0)
    );
    assert_eq!(
        found("bake::env::unknown_fleet").range.start,
        pos(&bad, "\"wbe\"", 0)
    );
    let unknown = found("bake::env::unknown");
    assert_eq!(unknown.range.start, pos(&bad, "\"stagin\"", 0));
    assert!(
        unknown.message.contains("did you mean `staging`?"),
        "{}",
        unknown.message
    );
    // The same problems `bake check` reports.
    let file = bake::source::SourceFile::new("x.kdl", bad.as_str());
    let (_, expected) = bake::check_source(&file);
    assert_eq!(d.diagnostics.len(), expected.len(), "{:?}", d.diagnostics);

    // Fixed again: cleared.
    let d = c.change(&u, 3, &good);
    assert!(d.diagnostics.is_empty(), "{:?}", d.diagnostics);
    c.shutdown();
}

/// An environment's `stack-set` is checked in that environment: a type error and a region without its AMI are
/// reported inside the environment, where they were typed.
#[test]
fn an_environments_stack_set_is_checked_at_its_spans() {
    let c = Client::start();
    let u = uri("environments.kdl");
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/specs/environments.kdl"
    ))
    .unwrap();
    let d = c.open(&u, &text);
    assert!(d.diagnostics.is_empty(), "{:?}", d.diagnostics);
    let env_start = text.find("environment \"prod\"").unwrap();

    let typed = text.replace(
        "failure-tolerance-count=0",
        "failure-tolerance-count=\"none\"",
    );
    assert_ne!(typed, text);
    let d = c.change(&u, 2, &typed);
    assert_eq!(d.diagnostics.len(), 1, "{:?}", d.diagnostics);
    let got = &d.diagnostics[0];
    assert_eq!(
        got.code,
        Some(NumberOrString::String("bake::spec::wrong_type".into()))
    );
    assert_eq!(got.range.start, pos(&typed, "\"none\"", 0));
    assert!(typed.find("\"none\"").unwrap() > env_start);

    let broken = text.replace(
        "            image \"shop\" ami=\"ami-0d4c3b2a1f0e9d8c7\"\n",
        "",
    );
    assert_ne!(broken, text);
    let d = c.change(&u, 3, &broken);
    assert_eq!(d.diagnostics.len(), 1, "{:?}", d.diagnostics);
    let got = &d.diagnostics[0];
    assert_eq!(
        got.code,
        Some(NumberOrString::String(
            "bake::stackset::region_value".into()
        ))
    );
    assert!(
        got.message
            .contains("region `eu-west-1` needs an AMI id for image `shop`"),
        "{}",
        got.message
    );
    assert_eq!(got.range.start, pos(&broken, "\"eu-west-1\"\n", 0));
    assert!(broken.find("\"eu-west-1\"\n").unwrap() > env_start);

    let d = c.change(&u, 4, &text);
    assert!(d.diagnostics.is_empty(), "{:?}", d.diagnostics);
    c.shutdown();
}

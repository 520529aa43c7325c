//! `bake fmt`: canonical, idempotent, keeps every comment, never rewrites a file that does not parse.

use std::path::{Path, PathBuf};
use std::process::Command;

use bake::fmt::{FmtError, format};
use bake::source::SourceFile;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.kdl` file under a directory, recursively, sorted.
fn kdl_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(kdl_files(&path));
        } else if path.extension().is_some_and(|e| e == "kdl") {
            out.push(path);
        }
    }
    out.sort();
    out
}

fn fmt(text: &str) -> String {
    format(&SourceFile::new("t.kdl", text)).unwrap_or_else(|e| panic!("{e}"))
}

/// The comments of a text, whitespace removed, in order (a crude scan that is good enough for the corpus).
fn comments(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.find("//").map(|i| &l[i..]))
        .map(|c| c.split_whitespace().collect::<String>())
        .collect()
}

/// What `bake check` says about a text, without positions.
fn verdict(text: &str) -> Vec<(String, String)> {
    let (_, diags) = bake::check_source(&SourceFile::new("t.kdl", text));
    diags
        .iter()
        .map(|d| (d.code.as_str().to_owned(), d.message.clone()))
        .collect()
}

#[test]
fn every_spec_formats_idempotently_and_keeps_its_meaning_and_comments() {
    let mut files = kdl_files(&root().join("specs"));
    assert!(!files.is_empty());
    files.extend(kdl_files(&root().join("tests/specs")));
    let mut formatted = 0;
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        let file = SourceFile::new(path, text.as_str());
        let once = match format(&file) {
            Ok(f) => f,
            // Broken specs in the corpus may not parse; those must be refused with syntax diagnostics.
            Err(FmtError::Syntax(d)) => {
                assert!(!d.is_empty(), "{}", path.display());
                continue;
            }
            Err(e) => panic!("{}: {e}", path.display()),
        };
        formatted += 1;
        assert_eq!(fmt(&once), once, "not idempotent: {}", path.display());
        assert_eq!(
            comments(&once),
            comments(&text),
            "comments changed: {}",
            path.display()
        );
        assert_eq!(
            verdict(&once),
            verdict(&text),
            "meaning changed: {}",
            path.display()
        );
    }
    assert!(formatted >= 3, "{formatted}");
}

/// Comments and slashdashes in every place KDL allows them, including those kdl's autoformat drops.
const TORTURE: &str = r##"/* header
   block */
// line
stack "web" /* after name */ region="us-east-1" { // after brace
    tags a="x" // after node
    tags b=(t)#"raw "q""# c=1.50 d=0x1F /* after entries */
    tags e="""
        multi // not a comment
        """ /- f=1
}
/- image "old" {
    base ami="ami-12345678"
}
image "web" /- { commented children } {
    rpms "git" /- "jq" /* between */ "curl" \
        "wget" // last
    base ssm="/aws/x" ; nix version="3.1.1" // after semicolon node

    // before close, after a blank line
}
// trailing comment of the file
"##;

const TORTURE_FORMATTED: &str = r##"/* header
   block */
// line
stack "web" /* after name */ region="us-east-1" {
    // after brace
    tags a="x" // after node
    tags b=(t)#"raw "q""# c=1.50 d=0x1F /* after entries */
    tags e="""
        multi // not a comment
        """ /- f=1
}
/- image "old" {
    base ami="ami-12345678"
}
image "web" /- { commented children } {
    rpms "git" /- "jq" /* between */ "curl" "wget" // last
    base ssm="/aws/x"
    nix version="3.1.1" // after semicolon node

    // before close, after a blank line
}
// trailing comment of the file
"##;

#[test]
fn comments_survive_in_every_position() {
    let once = fmt(TORTURE);
    assert_eq!(once, TORTURE_FORMATTED, "\n{once}");
    assert_eq!(fmt(&once), once);
}

/// A file that uses CRLF throughout keeps it; mixed line breaks become `\n`.
#[test]
fn unicode_and_crlf() {
    let text = "stack \"wéb\" region=\"us-east-1\" {\r\n  tags owner=\"Jürgen 😀\"   // ü\r\n}\r\n";
    let once = fmt(text);
    assert_eq!(
        once,
        "stack \"wéb\" region=\"us-east-1\" {\r\n    tags owner=\"Jürgen 😀\" // ü\r\n}\r\n"
    );
    assert_eq!(fmt(&once), once);
    let mixed = text.replacen("\r\n", "\n", 1);
    assert_eq!(fmt(&mixed), once.replace("\r\n", "\n"));
}

/// kdl 6.7 drops what follows a children block's `}` on its line; `bake fmt` keeps it, and the blank line after.
#[test]
fn comments_after_a_closing_brace_are_kept() {
    let cases = [
        ("a {\n} // keep me\n\nb\n", "a {\n} // keep me\n\nb\n"),
        ("a {\n}   /* x */\nb\n", "a {\n} /* x */\nb\n"),
        (
            "x {\n  a {\n  }   // k\n}\n",
            "x {\n    a {\n    } // k\n}\n",
        ),
        ("a {} /* y */ ; b\n", "a {\n} /* y */\nb\n"),
        (
            "a { b; } /- {c}   // z\n\n\nd\n",
            "a {\n    b\n} /- {c} // z\n\nd\n",
        ),
        ("a {\n}// tight\nb", "a {\n} // tight\nb\n"),
    ];
    for (text, want) in cases {
        let once = fmt(text);
        assert_eq!(once, want, "{text:?}");
        assert_eq!(fmt(&once), once);
    }
}

/// Every KDL line break ends a `//` comment and a node; formatting writes `\n`.
#[test]
fn every_kdl_line_break_is_a_line_break() {
    for nl in [
        "\r", "\n", "\r\n", "\u{85}", "\u{0B}", "\u{0C}", "\u{2028}", "\u{2029}",
    ] {
        let text = format!(
            "stack \"web\" //{nl}image \"w\" {{{nl}  // c{nl}  base ami=\"ami-1\"{nl}}} // d{nl}"
        );
        let once = format(&SourceFile::new("t.kdl", text.as_str()))
            .unwrap_or_else(|e| panic!("{nl:?}: {e}"));
        let want = "stack \"web\" //\nimage \"w\" {\n    // c\n    base ami=\"ami-1\"\n} // d\n";
        assert_eq!(
            once,
            if nl == "\r\n" {
                want.replace('\n', "\r\n")
            } else {
                want.to_owned()
            },
            "{nl:?}"
        );
    }
}

/// A layout kdl itself cannot give back (a comment inside a type annotation) is refused, naming what would go.
#[test]
fn a_layout_that_would_lose_text_is_refused() {
    for text in ["node (/* why */t)1\n", "(/*c*/t)a 1\n"] {
        match format(&SourceFile::new("t.kdl", text)) {
            Err(FmtError::Unsafe(why)) => assert!(why.contains("/*"), "{why}"),
            other => panic!("{text:?}: {other:?}"),
        }
    }
}

fn bake(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_bake"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

#[test]
fn cli_check_write_and_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.kdl");
    let messy = dir.path().join("messy.kdl");
    let broken = dir.path().join("broken.kdl");
    std::fs::write(&good, "stack \"web\" region=\"us-east-1\"\n").unwrap();
    let messy_text = "stack   \"web\"  region=\"us-east-1\" { // c\ntags a=\"b\"\n}\n";
    std::fs::write(&messy, messy_text).unwrap();
    let broken_text = "stack \"web\" {\n  tags a=true\n";
    std::fs::write(&broken, broken_text).unwrap();
    let s = |p: &Path| p.to_str().unwrap().to_owned();

    // --check: lists the files that would change, exit 1, writes nothing.
    let out = bake(&["fmt", "--check", &s(&good), &s(&messy)]);
    assert_eq!(out.status.code(), Some(1));
    let listed = String::from_utf8(out.stdout).unwrap();
    assert!(
        listed.contains("messy.kdl") && !listed.contains("good.kdl"),
        "{listed}"
    );
    assert_eq!(std::fs::read_to_string(&messy).unwrap(), messy_text);
    assert_eq!(bake(&["fmt", "--check", &s(&good)]).status.code(), Some(0));

    // Without --check: rewrites, then --check is clean.
    let out = bake(&["fmt", &s(&good), &s(&messy)]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = std::fs::read_to_string(&messy).unwrap();
    assert_eq!(
        after,
        "stack \"web\" region=\"us-east-1\" {\n    // c\n    tags a=\"b\"\n}\n"
    );
    assert_eq!(bake(&["fmt", "--check", &s(&messy)]).status.code(), Some(0));

    // A file that does not parse: syntax diagnostics, exit 1, untouched; the other files are still formatted.
    std::fs::write(&messy, messy_text).unwrap();
    let out = bake(&["fmt", &s(&broken), &s(&messy)]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("bake::spec::syntax") && err.contains("#true"),
        "{err}"
    );
    assert!(err.contains("not formatted"), "{err}");
    assert_eq!(std::fs::read_to_string(&broken).unwrap(), broken_text);
    assert_ne!(std::fs::read_to_string(&messy).unwrap(), messy_text);
    let out = bake(&["fmt", "--check", &s(&broken)]);
    assert_eq!(out.status.code(), Some(1));

    // A layout that formatting would lose text of: refused, exit 1, untouched.
    let lossy = dir.path().join("lossy.kdl");
    let lossy_text = "stack \"web\" region=(/* why */t)\"us-east-1\"\n";
    std::fs::write(&lossy, lossy_text).unwrap();
    let out = bake(&["fmt", &s(&lossy)]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("/* why */") && err.contains("left as it is"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&lossy).unwrap(), lossy_text);

    // A missing file: exit 3. No file at all: usage error.
    assert_eq!(
        bake(&["fmt", &s(&dir.path().join("none.kdl"))])
            .status
            .code(),
        Some(3)
    );
    assert_eq!(bake(&["fmt"]).status.code(), Some(2));
}

#[test]
fn absurd_nesting_is_refused_not_a_crash() {
    let deep = format!("{}{}", "a {".repeat(20_000), "}".repeat(20_000));
    assert!(matches!(
        format(&SourceFile::new("t.kdl", deep)),
        Err(FmtError::Syntax(d)) if d.len() == 1
    ));
}

#[test]
fn quoted_node_and_property_names_keep_their_quotes() {
    // kdl's autoformat writes identifiers in their plainest form (`"bake:fleet"` → `bake:fleet`), which would
    // change characters the user wrote; the layout keeps them as written.
    let text = "stack \"web\"   region=\"us-east-1\" {\n    tags \"bake:fleet\"=\"mine\"  \"cost center\"=\"42\" team=\"x\"\n}\n\"image\" \"web\"\n";
    let out = fmt(text);
    assert_eq!(
        out,
        "stack \"web\" region=\"us-east-1\" {\n    tags \"bake:fleet\"=\"mine\" \"cost center\"=\"42\" team=\"x\"\n}\n\"image\" \"web\"\n"
    );
    assert_eq!(fmt(&out), out);
}

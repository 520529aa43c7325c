//! Hostile values in every string of a spec: each is either rejected with a diagnostic, or reaches the artifacts
//! as data (JSON-escaped, or one single-quoted shell word) — never as shell code or an SSM/AWSTOE parameter.

use std::path::Path;
use std::process::Command;

use bake::lock::Lock;
use bake::source::SourceFile;

/// Payloads and their KDL spelling (inside a quoted string).
const PAYLOADS: &[(&str, &str)] = &[
    ("it's", "it's"),
    ("$(touch /tmp/bake-pwned)", "$(touch /tmp/bake-pwned)"),
    ("`id`", "`id`"),
    ("a;reboot", "a;reboot"),
    ("--setopt=x", "--setopt=x"),
    ("{{ssm:secret}}", "{{ssm:secret}}"),
    ("${AWS::Region}", "${AWS::Region}"),
    ("a\nb", "a\\nb"),
    ("a b", "a b"),
    ("\"q\"", "\\\"q\\\""),
];

/// The byte ranges of the contents of every quoted string in a spec without escapes.
fn string_literals(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        if c == '"' {
            match start.take() {
                None => start = Some(i + 1),
                Some(s) => out.push((s, i)),
            }
        } else if c == '\n' {
            start = None;
        }
    }
    out
}

#[test]
fn hostile_values_are_rejected_or_quoted() {
    let (rejected, compiled) = hostile("web");
    // Free-text fields (tags, the checkout path) take most payloads; everything else rejects them.
    assert!(
        rejected > 100 && compiled > 5,
        "rejected {rejected}, compiled {compiled}"
    );
}

/// The prebuilt-closure example: cache URLs and public keys reach the script too.
#[test]
fn hostile_closure_values_are_rejected_or_quoted() {
    let (rejected, compiled) = hostile("cache");
    assert!(
        rejected > 100 && compiled > 5,
        "rejected {rejected}, compiled {compiled}"
    );
}

/// The same for a private flake's `fetch`: hosts, secret names, parameter names, the pinned known_hosts line,
/// the proxy URL and no-proxy list all refuse every payload (the lock's ARNs are keyed by the secret names, so a
/// changed name that parsed would stop at verify).
#[test]
fn hostile_fetch_values_are_rejected_or_quoted() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("specs/private.kdl")).unwrap();
    let lock =
        Lock::from_json(&std::fs::read_to_string(root.join("specs/private.lock.json")).unwrap())
            .unwrap();
    let fetch = text.find("fetch {").unwrap();
    let end = fetch + text[fetch..].find("\n    }").unwrap();
    for (start, stop) in string_literals(&text)
        .into_iter()
        .filter(|(s, _)| (fetch..end).contains(s))
    {
        for (_, spelled) in PAYLOADS {
            for spelling in [
                spelled.to_string(),
                format!("{}{spelled}", &text[start..stop]),
            ] {
                let spec = format!("{}{spelling}{}", &text[..start], &text[stop..]);
                let (plan, diags) =
                    bake::check_source(&SourceFile::new("private.kdl", spec.as_str()));
                // A value that passes its grammar (`bake/git-token--setopt=x` is a valid secret name) names
                // another secret than the lock's ARNs: verify refuses it, so it never reaches a script.
                let refused = match plan {
                    None => diags.iter().any(|d| d.is_error()),
                    Some(plan) => bake::lock::verify(&plan, &lock, "private.kdl").is_err(),
                };
                assert!(
                    refused,
                    "`{spelling}` in place of `{}` was accepted",
                    &text[start..stop]
                );
            }
        }
    }
    let (rejected, compiled) = hostile("private");
    assert!(
        rejected > 100 && compiled > 3,
        "rejected {rejected}, compiled {compiled}"
    );
}

/// Every payload in every string of `specs/NAME.kdl`: rejected, or compiled into artifacts that hold it as data.
fn hostile(name: &str) -> (usize, usize) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join(format!("specs/{name}.kdl"))).unwrap();
    let lock = Lock::from_json(
        &std::fs::read_to_string(root.join(format!("specs/{name}.lock.json"))).unwrap(),
    )
    .unwrap();
    let (mut rejected, mut compiled) = (0, 0);
    for (start, end) in string_literals(&text) {
        for (payload, spelled) in PAYLOADS {
            // Both replacing the value and appending to it: grammars that accept a prefix must still refuse.
            for spelling in [
                spelled.to_string(),
                format!("{}{spelled}", &text[start..end]),
            ] {
                let spec = format!("{}{spelling}{}", &text[..start], &text[end..]);
                let file = SourceFile::new(format!("{name}.kdl"), spec.as_str());
                let (plan, diags) = bake::check_source(&file);
                let Some(plan) = plan else {
                    assert!(diags.iter().any(|d| d.is_error()));
                    rejected += 1;
                    continue;
                };
                let Ok(resolved) = bake::lock::verify(&plan, &lock, &format!("{name}.kdl")) else {
                    rejected += 1;
                    continue;
                };
                let artifacts = bake::emit::emit(&plan, &resolved, &lock).expect("emit");
                compiled += 1;
                for (name, content) in &artifacts.files {
                    if name.ends_with(".json") {
                        let _: serde_json::Value = serde_json::from_str(content).expect(name);
                        continue;
                    }
                    assert!(!content.contains("{{"), "{name} carries `{{{{`:\n{content}");
                    for line in content
                        .lines()
                        .filter(|l| l.contains(payload) && !l.trim_start().starts_with('#'))
                    {
                        let words = shlex::split(line)
                            .unwrap_or_else(|| panic!("unbalanced quoting: {line}"));
                        assert!(
                            words.iter().any(|w| w.contains(payload)),
                            "`{payload}` is not inside one shell word in {name}: {line}"
                        );
                    }
                    let syntax = Command::new("bash")
                        .arg("-n")
                        .arg("-c")
                        .arg(content)
                        .output()
                        .unwrap();
                    assert!(syntax.status.success(), "{name} does not parse:\n{content}");
                }
            }
        }
    }
    (rejected, compiled)
}

/// A hand-edited lock: hostile store paths and NAR hashes in the prebuilt closure never reach the script.
#[test]
fn hostile_closure_lock_values_are_rejected() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("specs/cache.kdl")).unwrap();
    let lock_text = std::fs::read_to_string(root.join("specs/cache.lock.json")).unwrap();
    let file = SourceFile::new("cache.kdl", text.as_str());
    let plan = bake::check_source(&file).0.expect("the example checks");
    let good = Lock::from_json(&lock_text).unwrap();
    assert!(bake::lock::verify(&plan, &good, "cache.kdl").is_ok());
    for (payload, _) in PAYLOADS {
        for field in ["store_path", "system_manager_path", "nar_hash"] {
            let mut lock = good.clone();
            let c = lock
                .images
                .get_mut("api")
                .unwrap()
                .closure
                .as_mut()
                .unwrap();
            let slot = match field {
                "store_path" => &mut c.store_path,
                "system_manager_path" => &mut c.system_manager_path,
                _ => &mut c.nar_hash,
            };
            slot.push_str(payload);
            // `-` and `=` may be part of a store path's name (`…-system-manager--setopt=x` is one): such a path
            // is data, quoted as one word like every value.
            if field != "nar_hash" && bake::closure::url::is_store_path(slot) {
                continue;
            }
            let diags = bake::lock::verify(&plan, &lock, "cache.kdl")
                .expect_err(&format!("{field} with {payload:?} was accepted"));
            assert!(
                diags
                    .iter()
                    .any(|d| d.code == bake::diag::Code::LockInvalid),
                "{field}: {diags:?}"
            );
        }
    }
}

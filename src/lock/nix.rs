//! Reading `nix flake metadata --json`: the locked revision of a checkout and the pins of its direct inputs.
//!
//! The JSON differs between Nix versions (2.8 has no `dirtyRevision`, newer ones add `fingerprint`, the docs call
//! `url` `lockedUrl`), so it is read as a `serde_json::Value`, taking only the fields bake needs and ignoring the rest.

use std::collections::BTreeMap;

use serde_json::Value;

use super::InputLock;

/// What bake takes from `nix flake metadata`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlakeMetadata {
    /// The commit; `None` for a dirty tree.
    pub revision: Option<String>,
    /// Set by newer Nix for a dirty tree (`<rev>-dirty`).
    pub dirty_revision: Option<String>,
    pub nar_hash: Option<String>,
    pub last_modified: Option<i64>,
    /// The branch the checkout is on, when Nix reports it.
    pub git_ref: Option<String>,
    /// Direct inputs that are pinned to a revision, after following `follows`.
    pub inputs: BTreeMap<String, InputLock>,
    /// Direct inputs without a revision (`path:`, tarballs): they cannot be recorded.
    pub unpinned_inputs: Vec<String>,
}

impl FlakeMetadata {
    pub fn is_dirty(&self) -> bool {
        self.revision.is_none()
    }
}

/// Parses the output of `nix flake metadata --json`.
pub fn parse_metadata(json: &str) -> Result<FlakeMetadata, String> {
    let v: Value =
        serde_json::from_str(json).map_err(|e| format!("nix printed invalid JSON: {e}"))?;
    if !v.is_object() {
        return Err("nix printed JSON that is not an object".to_owned());
    }
    let locked = v.get("locked");
    let field = |name: &str| v.get(name).or_else(|| locked.and_then(|l| l.get(name)));
    let revision = v
        .get("revision")
        .or_else(|| locked.and_then(|l| l.get("rev")))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let mut meta = FlakeMetadata {
        revision,
        dirty_revision: v
            .get("dirtyRevision")
            .and_then(Value::as_str)
            .map(str::to_owned),
        nar_hash: field("narHash").and_then(Value::as_str).map(str::to_owned),
        last_modified: field("lastModified").and_then(Value::as_i64),
        git_ref: locked
            .and_then(|l| l.get("ref"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        inputs: BTreeMap::new(),
        unpinned_inputs: Vec::new(),
    };
    if let Some(locks) = v.get("locks") {
        let root_label = locks.get("root").and_then(Value::as_str).unwrap_or("root");
        let nodes = locks.get("nodes");
        let root_inputs = nodes
            .and_then(|n| n.get(root_label))
            .and_then(|r| r.get("inputs"))
            .and_then(Value::as_object);
        for (name, target) in root_inputs.into_iter().flatten() {
            let node = nodes.and_then(|n| resolve_input(n, root_label, target, 0));
            match node.and_then(|n| n.get("locked")).and_then(input_lock) {
                Some(lock) => {
                    meta.inputs.insert(name.clone(), lock);
                }
                None => meta.unpinned_inputs.push(name.clone()),
            }
        }
    }
    Ok(meta)
}

/// Follows an input reference to its node: a node label, or a `follows` path of input names walked from the root.
fn resolve_input<'a>(
    nodes: &'a Value,
    root: &str,
    target: &'a Value,
    depth: usize,
) -> Option<&'a Value> {
    if depth > 32 {
        return None; // a cycle in a damaged lock
    }
    match target {
        Value::String(label) => nodes.get(label),
        Value::Array(path) => {
            let mut node = nodes.get(root)?;
            for step in path {
                let next = node.get("inputs")?.get(step.as_str()?)?;
                node = resolve_input(nodes, root, next, depth + 1)?;
            }
            Some(node)
        }
        _ => None,
    }
}

/// A node's `locked` attributes → a pinned flake reference, when they carry a revision.
fn input_lock(locked: &Value) -> Option<InputLock> {
    let s = |k: &str| locked.get(k).and_then(Value::as_str);
    let rev = s("rev")?;
    let url = match s("type")? {
        kind @ ("github" | "gitlab" | "sourcehut") => {
            let mut url = format!("{kind}:{}/{}/{rev}", s("owner")?, s("repo")?);
            let mut params = Vec::new();
            if let Some(host) = s("host") {
                params.push(format!("host={host}"));
            }
            if let Some(dir) = s("dir") {
                params.push(format!("dir={dir}"));
            }
            if !params.is_empty() {
                url = format!("{url}?{}", params.join("&"));
            }
            url
        }
        "git" => {
            let base = s("url")?;
            let mut params = Vec::new();
            if let Some(r) = s("ref") {
                params.push(format!("ref={r}"));
            }
            params.push(format!("rev={rev}"));
            if let Some(dir) = s("dir") {
                params.push(format!("dir={dir}"));
            }
            if locked.get("submodules").and_then(Value::as_bool) == Some(true) {
                params.push("submodules=1".to_owned());
            }
            format!("git+{base}?{}", params.join("&"))
        }
        "mercurial" => format!("hg+{}?rev={rev}", s("url")?),
        _ => return None,
    };
    Some(InputLock {
        url,
        rev: rev.to_owned(),
        nar_hash: s("narHash").map(str::to_owned),
        last_modified: locked.get("lastModified").and_then(Value::as_i64),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const REV: &str = "f86e9d6094051f2eb7ba09b2351c827681014b4a";
    const NIXPKGS: &str = "8f1c2d3e4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d";
    const SM: &str = "48d47346e0c6ad05b6c869ea92649c47723d1cfc";

    fn sample(extra: &str, root_inputs: &str) -> String {
        format!(
            r#"{{"description":"demo","lastModified":1795756213,{extra}
            "locked":{{"lastModified":1795756213,"narHash":"sha256-AAA=","ref":"main","rev":"{REV}","revCount":2,"type":"git","url":"file:///x"}},
            "locks":{{"nodes":{{
              "nixpkgs":{{"locked":{{"lastModified":1700000000,"narHash":"sha256-N=","owner":"NixOS","repo":"nixpkgs","rev":"{NIXPKGS}","type":"github"}},"original":{{"owner":"NixOS","repo":"nixpkgs","type":"github"}}}},
              "nixpkgs_2":{{"locked":{{"narHash":"sha256-O=","owner":"NixOS","repo":"nixpkgs","rev":"0000000000000000000000000000000000000000","type":"github"}}}},
              "system-manager":{{"inputs":{{"nixpkgs":["nixpkgs"]}},"locked":{{"lastModified":1710000000,"narHash":"sha256-S=","owner":"numtide","repo":"system-manager","rev":"{SM}","type":"github"}}}},
              "lib":{{"locked":{{"type":"git","url":"https://example.com/lib.git","ref":"v1","rev":"{REV}","submodules":true}}}},
              "local":{{"locked":{{"type":"path","path":"/tmp/x","narHash":"sha256-P="}}}},
              "root":{{"inputs":{root_inputs}}}}},"root":"root","version":7}},
            "original":{{"type":"git","url":"file:///x"}},"originalUrl":"git+file:///x","path":"/nix/store/x-source",
            "url":"git+file:///x?ref=main&rev={REV}"}}"#
        )
    }

    #[test]
    fn clean_checkout_with_follows() {
        let json = sample(
            &format!(r#""revision":"{REV}","revCount":2,"fingerprint":"abc","#),
            r#"{"nixpkgs":"nixpkgs","system-manager":"system-manager","pkgs2":["system-manager","nixpkgs"],"lib":"lib","local":"local"}"#,
        );
        let m = parse_metadata(&json).unwrap();
        assert!(!m.is_dirty());
        assert_eq!(m.revision.as_deref(), Some(REV));
        assert_eq!(m.nar_hash.as_deref(), Some("sha256-AAA="));
        assert_eq!(m.last_modified, Some(1_795_756_213));
        assert_eq!(m.git_ref.as_deref(), Some("main"));
        assert_eq!(
            m.inputs["nixpkgs"].url,
            format!("github:NixOS/nixpkgs/{NIXPKGS}")
        );
        // `pkgs2` follows system-manager's nixpkgs, which itself follows the root's nixpkgs.
        assert_eq!(m.inputs["pkgs2"], m.inputs["nixpkgs"]);
        assert_eq!(
            m.inputs["system-manager"].url,
            format!("github:numtide/system-manager/{SM}")
        );
        assert_eq!(
            m.inputs["system-manager"].last_modified,
            Some(1_710_000_000)
        );
        assert_eq!(
            m.inputs["lib"].url,
            format!("git+https://example.com/lib.git?ref=v1&rev={REV}&submodules=1")
        );
        assert_eq!(m.unpinned_inputs, vec!["local".to_owned()]);
    }

    #[test]
    fn dirty_tree_has_no_revision() {
        let json = r#"{"lastModified":1795756213,"locked":{"lastModified":1795756213,"narHash":"sha256-AAA=","type":"git","url":"file:///x"},
            "locks":{"nodes":{"root":{}},"root":"root","version":7},"url":"git+file:///x","dirtyRevision":"abc-dirty"}"#;
        let m = parse_metadata(json).unwrap();
        assert!(m.is_dirty());
        assert_eq!(m.dirty_revision.as_deref(), Some("abc-dirty"));
        assert!(m.inputs.is_empty());
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(parse_metadata("warning: oops").is_err());
        assert!(parse_metadata("[1]").is_err());
        // A follows cycle does not hang.
        let json =
            r#"{"revision":"x","locks":{"nodes":{"root":{"inputs":{"a":["a"]}}},"root":"root"}}"#;
        let m = parse_metadata(json).unwrap();
        assert_eq!(m.unpinned_inputs, vec!["a".to_owned()]);
    }
}

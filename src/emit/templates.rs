//! The handlebars registry: the shell templates compiled into the binary, strict mode, no HTML escaping, and two
//! helpers through which every interpolation goes: `shell` (POSIX shell quoting) and `json` (a JSON value).

use handlebars::{
    Context, Handlebars, Helper, HelperDef, HelperResult, Output, RenderContext, RenderError,
    RenderErrorReason, ScopedJson, Template,
};
use std::sync::OnceLock;

use serde::Serialize;
use serde_json::Value;

pub const BOOTSTRAP: &str = "bootstrap.sh";
pub const USER_DATA: &str = "user-data.sh";
/// The user data of an instance-refresh fleet: completes the launch lifecycle hook once the instance is ready.
pub const REFRESH_USER_DATA: &str = "refresh-user-data.sh";
/// The readiness check (`bake_ready`, `bake_wait_ready`): a template and the partial `{{> readiness}}`, with the
/// context fields `ready_unit` and `ready_command` (string or null).
pub const READINESS: &str = "readiness";
/// The bootstrap's credential and proxy part, the partial `{{> fetch-credentials}}` (`emit::fetch`).
pub const FETCH_CREDENTIALS: &str = "fetch-credentials";
/// Partials of the bootstrap script for images with a prebuilt closure (`{{> closure}}`, `{{> closure-apply}}`).
pub const CLOSURE: &str = "closure";
pub const CLOSURE_APPLY: &str = "closure-apply";

/// Every shipped template, by name. The first three are what every compile renders ([`BASE`]); the others only
/// a spec that uses them needs ([`Needs`]).
const SOURCES: [(&str, &str); 7] = [
    (BOOTSTRAP, include_str!("../../templates/bootstrap.sh.hbs")),
    (READINESS, include_str!("../../templates/readiness.sh.hbs")),
    (USER_DATA, include_str!("../../templates/user-data.sh.hbs")),
    (
        REFRESH_USER_DATA,
        include_str!("../../templates/refresh-user-data.sh.hbs"),
    ),
    (
        FETCH_CREDENTIALS,
        include_str!("../../templates/fetch-credentials.sh.hbs"),
    ),
    (CLOSURE, include_str!("../../templates/closure.sh.hbs")),
    (
        CLOSURE_APPLY,
        include_str!("../../templates/closure-apply.sh.hbs"),
    ),
];

/// How many of [`SOURCES`] every compile needs.
const BASE: usize = 3;

/// Which of the optional templates a compile renders: a template is compiled only when a spec needs it, because
/// compiling is most of what emit costs for a small spec (handlebars parses templates with pest, whose
/// line/column lookup is quadratic in a template's length, and the credential part is the longest template).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    /// A fleet rolls out by instance refresh (`refresh-user-data.sh`).
    pub refresh: bool,
    /// An image has `fetch` credentials or a proxy (`fetch-credentials`).
    pub fetch: bool,
    /// An image substitutes a prebuilt closure (`closure`, `closure-apply`).
    pub closure: bool,
}

impl Needs {
    #[cfg(test)]
    const ALL: Needs = Needs {
        refresh: true,
        fetch: true,
        closure: true,
    };

    fn index(self) -> usize {
        usize::from(self.refresh) | usize::from(self.fetch) << 1 | usize::from(self.closure) << 2
    }

    fn wants(self, name: &str) -> bool {
        match name {
            REFRESH_USER_DATA => self.refresh,
            FETCH_CREDENTIALS => self.fetch,
            CLOSURE | CLOSURE_APPLY => self.closure,
            _ => true,
        }
    }
}

/// One shipped template, compiled at most once per process (as `register_template_string` compiles it), from its
/// [`skeleton`].
fn compiled(index: usize) -> Result<&'static Template, String> {
    static COMPILED: [OnceLock<Result<Template, String>>; SOURCES.len()] =
        [const { OnceLock::new() }; SOURCES.len()];
    let (name, source) = SOURCES[index];
    COMPILED[index]
        .get_or_init(|| {
            let text = skeleton(index, source);
            Template::compile_with_name(text.as_deref().unwrap_or(source), name.to_owned())
                .map_err(|e| format!("template {name}: {e}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// The helper that writes a byte range of a shipped template's own text: `{{bake_text TEMPLATE START END}}`.
const TEXT: &str = "bake_text";

/// Runs of plain lines shorter than this stay in the template.
const TEXT_RUN_MIN: usize = 80;

/// `source` (the template `index` of [`SOURCES`]) with each run of plain lines — lines with no `{{`, outside any
/// tag — replaced by a [`TEXT`] call that writes the same bytes, or `None` when there is nothing to replace or the
/// template has a comment or raw block (whose lines could look plain). Most of a template is plain shell, and
/// handlebars parses plain text with pest at hundreds of instructions a byte, asking for the line and column of
/// every element by scanning from the start (quadratic in the template's length): the skeleton compiles several
/// times faster and renders the same text, because a run's last line break stays in the template (so a block
/// tag next to a run still stands alone on its line) and no shipped partial is included with indentation (which
/// handlebars would add to raw text only). `skeleton_renders_as_the_template` checks both.
fn skeleton(index: usize, source: &str) -> Option<String> {
    if source.contains("{{!") || source.contains("{{{{") {
        return None;
    }
    let mut out = String::with_capacity(source.len() / 2);
    let mut in_tag = false;
    // The plain run being collected: its start and end byte.
    let mut run: Option<(usize, usize)> = None;
    let mut replaced = false;
    let mut flush = |out: &mut String, run: &mut Option<(usize, usize)>| {
        if let Some((start, end)) = run.take() {
            let text = &source[start..end];
            if text.len() < TEXT_RUN_MIN {
                out.push_str(text);
                return;
            }
            let body = text.strip_suffix('\n').unwrap_or(text);
            out.push_str(&format!(
                "{{{{{TEXT} {index} {start} {}}}}}",
                start + body.len()
            ));
            out.push_str(&text[body.len()..]);
            replaced = true;
        }
    };
    let mut at = 0;
    for line in source.split_inclusive('\n') {
        let plain = !in_tag && !line.contains("{{");
        if plain {
            run = Some((run.map_or(at, |(start, _)| start), at + line.len()));
        } else {
            flush(&mut out, &mut run);
            out.push_str(line);
            let mut rest = line;
            loop {
                let marker = if in_tag { "}}" } else { "{{" };
                let Some(i) = rest.find(marker) else { break };
                in_tag = !in_tag;
                rest = &rest[i + 2..];
            }
        }
        at += line.len();
    }
    flush(&mut out, &mut run);
    replaced.then_some(out)
}

/// Starts compiling the templates every compile needs on another thread, while `bake compile` reads and checks
/// the spec; [`for_plan`] then compiles what else the spec needs on the calling thread and waits for these.
pub fn prepare() {
    std::thread::spawn(|| (0..BASE).try_for_each(|i| compiled(i).map(drop)));
}

/// The registry `emit` renders with for a spec that needs `needs`, built once per process and kind. The optional
/// templates are compiled first, on the calling thread, so that they overlap with [`prepare`]'s thread.
pub fn for_plan(needs: Needs) -> Result<&'static Handlebars<'static>, String> {
    static REGISTRIES: [OnceLock<Result<Handlebars<'static>, String>>; 8] =
        [const { OnceLock::new() }; 8];
    REGISTRIES[needs.index()]
        .get_or_init(|| {
            let wanted: Vec<usize> = (0..SOURCES.len())
                .filter(|&i| needs.wants(SOURCES[i].0))
                .collect();
            // The optional ones first: the base ones may still be compiling on `prepare`'s thread.
            for &i in wanted.iter().filter(|&&i| i >= BASE) {
                compiled(i)?;
            }
            let mut hb = empty();
            for &i in &wanted {
                hb.register_template(SOURCES[i].0, compiled(i)?.clone());
            }
            Ok(hb)
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// A registry with bake's settings and helpers and no templates.
fn empty() -> Handlebars<'static> {
    let mut hb = Handlebars::new();
    hb.set_strict_mode(true);
    hb.register_escape_fn(handlebars::no_escape);
    hb.register_helper("shell", Box::new(ShellQuote));
    hb.register_helper("json", Box::new(Json));
    hb.register_helper(TEXT, Box::new(Text(&SOURCES)));
    hb
}

pub fn render(hb: &Handlebars<'_>, name: &str, data: &impl Serialize) -> Result<String, String> {
    hb.render(name, data)
        .map_err(|e| format!("template {name}: {e}"))
}

/// The single parameter of a helper, refusing a missing one even though hand-written helpers are not covered by
/// strict mode.
fn param<'a>(h: &'a Helper<'_>) -> Result<&'a Value, RenderError> {
    let p = h
        .param(0)
        .ok_or_else(|| RenderErrorReason::ParamNotFoundForIndex("helper", 0))?;
    if p.is_value_missing() {
        return Err(RenderErrorReason::MissingVariable(p.relative_path().cloned()).into());
    }
    Ok(p.value())
}

/// `{{shell value}}`: the value as one shell word. Strings are quoted; numbers are written as they are.
struct ShellQuote;

impl HelperDef for ShellQuote {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let text = match param(h)? {
            Value::String(s) => {
                shell_quote(s).map_err(|e| RenderErrorReason::Other(e.to_owned()))?
            }
            Value::Number(n) => n.to_string(),
            other => {
                return Err(
                    RenderErrorReason::Other(format!("shell: cannot quote {other}")).into(),
                );
            }
        };
        Ok(ScopedJson::Derived(Value::String(text)))
    }
}

/// Quotes a value for bash. Plain words stay as they are; anything else is single-quoted. NUL is refused.
pub fn shell_quote(s: &str) -> Result<String, &'static str> {
    if s.is_empty() {
        return Ok("''".to_owned());
    }
    shlex::try_quote(s)
        .map(|q| q.into_owned())
        .map_err(|_| "a value with a NUL byte cannot be passed to a shell")
}

/// `{{bake_text TEMPLATE START END}}`: bytes START..END of template TEMPLATE of these sources (the shipped ones
/// but in tests), as they are ([`skeleton`]).
struct Text(&'static [(&'static str, &'static str)]);

impl HelperDef for Text {
    fn call<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> HelperResult {
        let number = |i| {
            h.param(i)
                .and_then(|p| p.value().as_u64())
                .and_then(|n| usize::try_from(n).ok())
        };
        let text = match (number(0), number(1), number(2)) {
            (Some(t), Some(start), Some(end)) => self.0.get(t).and_then(|(_, s)| s.get(start..end)),
            _ => None,
        };
        let text = text.ok_or_else(|| RenderErrorReason::Other(format!("{TEXT}: no such text")))?;
        out.write(text)?;
        Ok(())
    }
}

/// `{{json value}}`: the value as JSON text.
struct Json;

impl HelperDef for Json {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let text = serde_json::to_string(param(h)?)
            .map_err(|e| RenderErrorReason::Other(e.to_string()))?;
        Ok(ScopedJson::Derived(Value::String(text)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn no_html_escaping_and_strict_mode() {
        let mut hb = for_plan(Needs::ALL).unwrap().clone();
        hb.register_template_string("t", "{{shell url}} {{json url}}")
            .unwrap();
        let out = render(
            &hb,
            "t",
            &json!({"url": "git+https://h/r?ref=main&rev=abc#x"}),
        )
        .unwrap();
        assert_eq!(
            out,
            "'git+https://h/r?ref=main&rev=abc#x' \"git+https://h/r?ref=main&rev=abc#x\""
        );
        let missing = render(&hb, "t", &json!({}));
        assert!(missing.is_err(), "{missing:?}");
    }

    /// Templates with what could go wrong where plain runs are cut out: block tags standing alone before and
    /// after a run, a run at the start and at the end (with and without a final line break), blank and
    /// whitespace-only lines next to tags, `}}` in plain text, a tag spanning lines, a partial, an `else`.
    const TRICKY: [(&str, &str); 3] = [
        (
            "t0",
            "#!/bin/bash\n# a plain first run, long enough to be replaced by the text helper\n# more of it\n\
             {{#if a}}\n  indented line one of the plain run inside the block, long enough\n  two ${x}} }}\n\
             {{else}}\n\n   \n  the else branch's plain run, long enough to be cut out of it, surely\n{{/if}}\n\
             tail {{shell v}} and more\n{{#each list}}\n{{shell this}}\n{{/each}}\n{{> p}}\n\
             {{#if\n  a}}\nafter a tag spanning lines: plain but inside no tag, long enough to cut\n{{/if}}\n\
             the last run, long enough to be replaced as well, and it has no final line break",
        ),
        (
            "p",
            "partial's own plain run, long enough to be replaced by the text helper too, surely now\n{{#if a}}yes{{/if}}\n",
        ),
        (
            "t2",
            "the last run, long enough to be replaced, ending in a line break before the end of the text\n\n",
        ),
    ];

    #[test]
    fn skeleton_renders_as_the_template() {
        let mut original = empty();
        let mut cut = empty();
        cut.register_helper(TEXT, Box::new(Text(&TRICKY)));
        for (i, (name, source)) in TRICKY.iter().enumerate() {
            original.register_template_string(name, source).unwrap();
            let skeleton =
                skeleton(i, source).unwrap_or_else(|| panic!("{name} has no plain run to cut"));
            assert!(skeleton.len() < source.len(), "{skeleton}");
            cut.register_template_string(name, &skeleton).unwrap();
        }
        for a in [true, false] {
            for list in [json!([]), json!(["x y", "z"])] {
                let data = json!({"a": a, "v": "it's", "list": list});
                for name in ["t0", "t2"] {
                    let want = render(&original, name, &data).unwrap();
                    assert_eq!(render(&cut, name, &data).unwrap(), want, "{name} {data}");
                }
            }
        }
    }

    /// Every shipped template is compiled from its skeleton, and each skeleton is much shorter: the plain runs
    /// are what cost (the rendered output of each is checked byte for byte by the example snapshots).
    #[test]
    fn shipped_templates_compile_from_skeletons() {
        for (i, (name, source)) in SOURCES.iter().enumerate() {
            let skeleton = skeleton(i, source).unwrap_or_else(|| panic!("{name} has no plain run"));
            assert!(skeleton.len() * 3 < source.len() * 2, "{name}: {skeleton}");
            compiled(i).unwrap();
        }
        // The skeleton's text is the template's only where no partial is included with indentation: handlebars
        // indents a partial's raw text, not what a helper writes.
        for (name, source) in SOURCES {
            let indented = source
                .lines()
                .any(|l| l.trim_start().starts_with("{{>") && !l.starts_with("{{>"));
            assert!(!indented, "{name} includes a partial with indentation");
        }
        // A comment or raw block keeps the template as it is.
        assert_eq!(skeleton(0, "{{!-- a\nb\nc --}}\n"), None);
    }

    #[test]
    fn quoting_survives_hostile_values() {
        for hostile in [
            "it's",
            "$(reboot)",
            "`id`",
            "a b",
            "x;rm -rf /",
            "\"q\"",
            "-n",
        ] {
            let quoted = shell_quote(hostile).unwrap();
            let words = shlex::split(&quoted).unwrap();
            assert_eq!(words, vec![hostile.to_owned()], "{quoted}");
        }
        assert!(shell_quote("a\0b").is_err());
    }
}

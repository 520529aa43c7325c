//! The handlebars registry: templates compiled into the binary, strict mode, no HTML escaping, and two helpers
//! through which every interpolation goes: `shell` (POSIX shell quoting) and `json` (a JSON value).

use handlebars::{
    Context, Handlebars, Helper, HelperDef, RenderContext, RenderError, RenderErrorReason,
    ScopedJson,
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
pub const SSM_DOCUMENT: &str = "ssm-document.json";
pub const COMPONENT: &str = "component.json";
/// The bootstrap's credential and proxy part, the partial `{{> fetch-credentials}}` (`emit::fetch`).
pub const FETCH_CREDENTIALS: &str = "fetch-credentials";

const SOURCES: &[(&str, &str)] = &[
    (BOOTSTRAP, include_str!("../../templates/bootstrap.sh.hbs")),
    (USER_DATA, include_str!("../../templates/user-data.sh.hbs")),
    (
        REFRESH_USER_DATA,
        include_str!("../../templates/refresh-user-data.sh.hbs"),
    ),
    (READINESS, include_str!("../../templates/readiness.sh.hbs")),
    // Partials of the bootstrap script for images with a prebuilt closure (`{{> closure}}`, `{{> closure-apply}}`).
    ("closure", include_str!("../../templates/closure.sh.hbs")),
    (
        "closure-apply",
        include_str!("../../templates/closure-apply.sh.hbs"),
    ),
    (
        FETCH_CREDENTIALS,
        include_str!("../../templates/fetch-credentials.sh.hbs"),
    ),
    (
        SSM_DOCUMENT,
        include_str!("../../templates/ssm-document.json.hbs"),
    ),
    (
        COMPONENT,
        include_str!("../../templates/component.json.hbs"),
    ),
];

/// The registry `emit` renders with, built once per process: every template but the instance-refresh user data
/// (see [`refresh`]). Compiling the templates is most of what emit costs for a small spec (handlebars parses them
/// with pest, whose line/column lookup is quadratic in a template's length), so `bake compile` starts it with
/// [`prepare`] on another thread while it reads and checks the spec.
pub fn shared() -> Result<&'static Handlebars<'static>, String> {
    static SHARED: OnceLock<Result<Handlebars<'static>, String>> = OnceLock::new();
    SHARED
        .get_or_init(|| with_templates(|name| name != REFRESH_USER_DATA))
        .as_ref()
        .map_err(Clone::clone)
}

/// The registry of the instance-refresh user data (and the `readiness` partial it includes), built once per
/// process and only by a compile that has such a fleet: most specs have none, and it is a quarter of the
/// templates' text.
pub fn refresh() -> Result<&'static Handlebars<'static>, String> {
    static REFRESH: OnceLock<Result<Handlebars<'static>, String>> = OnceLock::new();
    REFRESH
        .get_or_init(|| with_templates(|name| name == REFRESH_USER_DATA || name == READINESS))
        .as_ref()
        .map_err(Clone::clone)
}

/// Starts building [`shared`] on another thread; whoever calls `shared` first after this waits for it.
pub fn prepare() {
    std::thread::spawn(|| shared().map(drop));
}

/// Builds a registry of every template. Fails only if a shipped template does not compile, which the tests catch.
pub fn registry() -> Result<Handlebars<'static>, String> {
    with_templates(|_| true)
}

/// A registry of the shipped templates `keep` selects, with bake's settings and helpers.
fn with_templates(keep: impl Fn(&str) -> bool) -> Result<Handlebars<'static>, String> {
    let mut hb = Handlebars::new();
    hb.set_strict_mode(true);
    hb.register_escape_fn(handlebars::no_escape);
    hb.register_helper("shell", Box::new(ShellQuote));
    hb.register_helper("json", Box::new(Json));
    for (name, source) in SOURCES.iter().filter(|(name, _)| keep(name)) {
        hb.register_template_string(name, *source)
            .map_err(|e| format!("template {name}: {e}"))?;
    }
    Ok(hb)
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
        let mut hb = registry().unwrap();
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

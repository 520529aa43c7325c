//! The shape check: walks the KDL document against `schema` and keeps what fits.
//!
//! It reports unknown nodes and properties (with suggestions), wrong types and arity, values that break their
//! grammar, duplicates and missing required parts — all of them, in one pass.

use kdl::{KdlDocument, KdlEntry, KdlNode, KdlValue};

use super::grammar::Grammar;
use super::schema::{self, Ty};
use super::suggest::closest;
use super::tree::{Item, Value};
use crate::diag::{Code, Diag, Diags};
use crate::source::{Span, Spanned};

pub fn check_document(doc: &KdlDocument, diags: &mut Diags) -> Vec<Item> {
    walk(doc.nodes(), schema::ROOT, None, None, diags)
}

/// The parent a list of nodes sits in, for messages and "missing child" labels.
struct Parent<'a> {
    name: &'a str,
    name_span: Span,
}

fn walk(
    nodes: &[KdlNode],
    allowed: &'static [schema::Node],
    parent: Option<&Parent<'_>>,
    strategy: Option<&str>,
    diags: &mut Diags,
) -> Vec<Item> {
    let mut items: Vec<Item> = Vec::new();
    // Required children a misspelt node probably meant: not reported again as missing.
    let mut suggested: Vec<&str> = Vec::new();
    for node in nodes {
        let name = node.name().value();
        let name_span = node.name().span();
        let Some(schema) = allowed.iter().find(|s| s.name == name) else {
            if let Some(s) = closest(name, allowed.iter().map(|n| n.name)) {
                suggested.push(s);
            }
            diags.push(unknown_node(name, name_span, allowed, parent));
            continue;
        };
        if !schema.strategies.is_empty()
            && let Some(strategy) = strategy
            && !schema.strategies.contains(&strategy)
        {
            diags.push(
                Diag::error(
                    Code::PropertyNotForStrategy,
                    format!("`{name}` does not apply to a `{strategy}` rollout"),
                )
                .label(
                    name_span,
                    format!("only for {}", strategies_text(schema.strategies)),
                )
                .help(format!("remove `{name}`, or change the rollout strategy")),
            );
            continue;
        }
        if !schema.repeatable
            && let Some(first) = items.iter().find(|i| i.schema.name == name)
        {
            diags.push(
                Diag::error(Code::Duplicate, format!("`{name}` is given more than once"))
                    .label(name_span, "given again here")
                    .label(first.name_span, "first given here")
                    .help(format!(
                        "a {} takes one `{name}`; remove one",
                        parent_name(parent)
                    )),
            );
            continue;
        }
        items.push(check_node(node, schema, diags));
    }
    for schema in allowed.iter().filter(|s| s.required) {
        if schema.strategies.is_empty()
            && !suggested.contains(&schema.name)
            && !items.iter().any(|i| i.schema.name == schema.name)
        {
            let mut d = Diag::error(Code::Missing, missing_child_message(schema.name, parent))
                .help(format!("add it, for example:\n    {}", schema.example));
            if let Some(p) = parent {
                d = d.label(
                    p.name_span,
                    format!("this {} needs a `{}`", p.name, schema.name),
                );
            } else {
                d = d.label(crate::source::span(0, 0), "");
            }
            diags.push(d);
        }
    }
    items
}

fn parent_name(parent: Option<&Parent<'_>>) -> String {
    parent.map_or_else(|| "spec".to_owned(), |p| format!("`{}`", p.name))
}

fn missing_child_message(name: &str, parent: Option<&Parent<'_>>) -> String {
    match parent {
        Some(p) => format!("`{}` has no `{name}`", p.name),
        None => format!("the spec has no `{name}`"),
    }
}

fn strategies_text(strategies: &[&str]) -> String {
    let quoted: Vec<String> = strategies.iter().map(|s| format!("`{s}`")).collect();
    format!("{} rollouts", quoted.join(" and "))
}

fn unknown_node(
    name: &str,
    span: Span,
    allowed: &[schema::Node],
    parent: Option<&Parent<'_>>,
) -> Diag {
    let where_ = parent.map_or_else(
        || "at the top of a spec".to_owned(),
        |p| format!("inside `{}`", p.name),
    );
    let mut d = Diag::error(Code::UnknownNode, format!("unknown node `{name}` {where_}"));
    if let Some(s) = closest(name, allowed.iter().map(|n| n.name)) {
        d = d.label(span, format!("did you mean `{s}`?"));
    } else {
        d = d.label(span, "not a bake node");
    }
    if let Some(home) = find_home(name) {
        d = d.help(format!("`{name}` belongs inside `{home}`"));
    } else if allowed.is_empty() {
        d = d.help(format!(
            "`{}` takes no child nodes",
            parent.map_or("", |p| p.name)
        ));
    } else {
        d = d.help(format!(
            "allowed here: {}",
            schema::code_list(allowed.iter().map(|n| n.name))
        ));
    }
    d
}

/// Where a node name is valid, when the user put it somewhere else.
fn find_home(name: &str) -> Option<String> {
    fn search(
        nodes: &'static [schema::Node],
        path: &mut Vec<&'static str>,
        name: &str,
    ) -> Option<String> {
        for n in nodes {
            if n.children.iter().any(|c| c.name == name) {
                path.push(n.name);
                let found = path.join(" > ");
                path.pop();
                return Some(found);
            }
            path.push(n.name);
            let found = search(n.children, path, name);
            path.pop();
            if found.is_some() {
                return found;
            }
        }
        None
    }
    search(schema::ROOT, &mut Vec::new(), name)
}

fn check_node(node: &KdlNode, schema: &'static schema::Node, diags: &mut Diags) -> Item {
    let name = schema.name;
    let name_span = node.name().span();
    let mut item = Item {
        schema,
        name_span,
        span: node.span(),
        args: Vec::new(),
        props: Vec::new(),
        free_props: Vec::new(),
        rejected: Vec::new(),
        children: Vec::new(),
    };

    let args: Vec<&KdlEntry> = node
        .entries()
        .iter()
        .filter(|e| e.name().is_none())
        .collect();
    match &schema.args {
        None => {
            if let Some(first) = args.first() {
                diags.push(
                    Diag::error(Code::Arguments, format!("`{name}` takes no arguments"))
                        .label(first.span(), "unexpected argument")
                        .help(format!("for example:\n    {}", schema.example)),
                );
            }
        }
        Some(spec) => {
            if args.len() < spec.min {
                diags.push(
                    Diag::error(Code::Arguments, format!("`{name}` needs its {}", spec.name))
                        .label(name_span, format!("no {} given", spec.name))
                        .help(format!("for example:\n    {}", schema.example)),
                );
            }
            for (i, entry) in args.iter().enumerate() {
                if i >= spec.max {
                    let what = if spec.max == 1 {
                        format!("one {}", spec.name)
                    } else {
                        format!("{} {}s", spec.max, spec.name)
                    };
                    diags.push(
                        Diag::error(Code::Arguments, format!("`{name}` takes {what}"))
                            .label(entry.span(), "extra argument")
                            .help(format!("for example:\n    {}", schema.example)),
                    );
                    break;
                }
                if let Some(v) =
                    check_value(entry, spec.ty, &format!("`{name}`'s {}", spec.name), diags)
                {
                    item.args.push(v);
                }
            }
        }
    }

    let strategy = (name == "rollout")
        .then(|| item.arg_str(0).map(|s| s.value))
        .flatten();
    let mut seen: Vec<(&str, Span)> = Vec::new();
    // Required properties a misspelt key probably meant: not reported again as missing.
    let mut suggested: Vec<&str> = Vec::new();
    for entry in node.entries().iter().filter(|e| e.name().is_some()) {
        let Some(key) = entry.name() else { continue };
        let key_name = key.value();
        if let Some((_, first)) = seen.iter().find(|(k, _)| *k == key_name) {
            diags.push(
                Diag::error(
                    Code::Duplicate,
                    format!("`{key_name}` is given more than once"),
                )
                .label(entry.span(), "given again here")
                .label(*first, "first given here")
                .help("KDL keeps the last value silently; bake asks you to remove one"),
            );
            continue;
        }
        seen.push((key_name, entry.span()));
        if let Some(prop) = schema.prop(key_name) {
            if let Some(strategy) = strategy.as_deref()
                && !prop.strategies.is_empty()
                && !prop.strategies.contains(&strategy)
            {
                diags.push(
                    Diag::error(
                        Code::PropertyNotForStrategy,
                        format!("`{key_name}` does not apply to a `{strategy}` rollout"),
                    )
                    .label(
                        key.span(),
                        format!("only for {}", strategies_text(prop.strategies)),
                    )
                    .help(format!(
                        "remove `{key_name}`, or change the rollout strategy"
                    )),
                );
                continue;
            }
            match check_value(entry, prop.ty, &format!("`{key_name}`"), diags) {
                Some(v) => item.props.push((prop.name, v)),
                None => item.rejected.push(prop.name),
            }
        } else if let Some((key_grammar, value_grammar)) = schema.free_props {
            let key_ok = check_string(
                key_name,
                key.span(),
                key_grammar,
                &format!("tag key `{key_name}`"),
                diags,
            );
            let value = check_value(
                entry,
                Ty::Str(value_grammar),
                &format!("tag `{key_name}`"),
                diags,
            );
            if let (
                true,
                Some(Spanned {
                    value: Value::Str(v),
                    span,
                }),
            ) = (key_ok, value)
            {
                item.free_props.push((
                    Spanned::new(key_name.to_owned(), key.span()),
                    Spanned::new(v, span),
                ));
            }
        } else {
            if let Some(s) = closest(key_name, schema.props.iter().map(|p| p.name)) {
                suggested.push(s);
            }
            diags.push(unknown_property(name, key_name, key.span(), schema));
        }
    }
    for prop in schema.props.iter().filter(|p| p.required) {
        if !seen.iter().any(|(k, _)| *k == prop.name) && !suggested.contains(&prop.name) {
            diags.push(
                Diag::error(Code::Missing, format!("`{name}` needs `{}`", prop.name))
                    .label(name_span, format!("no `{}` given", prop.name))
                    .help(format!(
                        "`{}`: {}\nfor example:\n    {}",
                        prop.name, prop.doc, schema.example
                    )),
            );
        }
    }

    if let Some(children) = node.children() {
        if schema.children.is_empty() {
            diags.push(
                Diag::error(
                    Code::UnexpectedChildren,
                    format!("`{name}` takes no child nodes"),
                )
                .label(children.span(), "unexpected block")
                .help(format!("for example:\n    {}", schema.example)),
            );
        } else {
            let parent = Parent { name, name_span };
            let children = walk(
                children.nodes(),
                schema.children,
                Some(&parent),
                strategy.as_deref(),
                diags,
            );
            item.children = children;
        }
    } else if schema.children.iter().any(|c| c.required) {
        let parent = Parent { name, name_span };
        let children = walk(
            &[],
            schema.children,
            Some(&parent),
            strategy.as_deref(),
            diags,
        );
        item.children = children;
    }
    item
}

fn unknown_property(node: &str, key: &str, span: Span, schema: &'static schema::Node) -> Diag {
    let mut d = Diag::error(
        Code::UnknownProperty,
        format!("`{node}` has no property `{key}`"),
    );
    match closest(key, schema.props.iter().map(|p| p.name)) {
        Some(s) => d = d.label(span, format!("did you mean `{s}`?")),
        None => d = d.label(span, "unknown property"),
    }
    if schema.child(key).is_some() {
        return d.help(format!(
            "`{key}` is a child node: write it inside `{node} {{ ... }}`"
        ));
    }
    if schema.props.is_empty() {
        d.help(format!(
            "`{node}` takes no properties; for example:\n    {}",
            schema.example
        ))
    } else {
        d.help(format!(
            "`{node}` takes {}",
            schema::code_list(schema.props.iter().map(|p| p.name))
        ))
    }
}

/// The span of an entry's value alone, without `key=`.
fn value_span(entry: &KdlEntry) -> Span {
    let span = entry.span();
    match entry.format() {
        Some(f) if f.value_repr.len() <= span.len() => {
            let end = span.offset() + span.len();
            crate::source::span(end - f.value_repr.len(), f.value_repr.len())
        }
        _ => span,
    }
}

fn describe_found(v: &KdlValue) -> String {
    match v {
        KdlValue::String(s) => format!("the string \"{s}\""),
        KdlValue::Integer(i) => format!("the integer {i}"),
        KdlValue::Float(f) => format!("the number {f}"),
        KdlValue::Bool(b) => format!("#{b}"),
        KdlValue::Null => "#null".to_owned(),
    }
}

fn check_value(entry: &KdlEntry, ty: Ty, what: &str, diags: &mut Diags) -> Option<Spanned<Value>> {
    let span = value_span(entry);
    let value = entry.value();
    let wrong_type = |help: Option<String>| {
        let d = Diag::error(
            Code::WrongType,
            format!("{what} must be {}", ty.kind_with_article()),
        )
        .label(span, format!("found {}", describe_found(value)));
        match help {
            Some(h) => d.help(h),
            None => d.help(format!("expected {}", ty.describe())),
        }
    };
    match (ty, value) {
        (Ty::Str(g), KdlValue::String(s)) => {
            check_string(s, span, g, what, diags).then(|| Spanned::new(Value::Str(s.clone()), span))
        }
        (Ty::Choice(options), KdlValue::String(s)) => {
            if options.contains(&s.as_str()) {
                return Some(Spanned::new(Value::Str(s.clone()), span));
            }
            let mut d = Diag::error(Code::NotAllowed, format!("{what} cannot be \"{s}\""));
            d = match closest(s, options.iter().copied()) {
                Some(c) => d.label(span, format!("did you mean \"{c}\"?")),
                None => d.label(span, "not allowed here"),
            };
            diags.push(d.help(format!("expected {}", ty.describe())));
            None
        }
        (Ty::Int { min, max }, KdlValue::Integer(i)) => {
            if (min..=max).contains(i) {
                Some(Spanned::new(Value::Int(*i), span))
            } else {
                diags.push(
                    Diag::error(Code::OutOfRange, format!("{what} is out of range"))
                        .label(span, format!("{i} is not in {min}..={max}"))
                        .help(format!("expected {}", ty.describe())),
                );
                None
            }
        }
        (Ty::Bool, KdlValue::Bool(b)) => Some(Spanned::new(Value::Bool(*b), span)),
        (Ty::Int { .. }, KdlValue::String(s)) if s.trim().parse::<i128>().is_ok() => {
            diags.push(wrong_type(Some(format!(
                "write the number without quotes: {}",
                s.trim()
            ))));
            None
        }
        (Ty::Bool, KdlValue::String(s))
            if matches!(s.as_str(), "true" | "false" | "yes" | "no") =>
        {
            let b = matches!(s.as_str(), "true" | "yes");
            diags.push(wrong_type(Some(format!(
                "KDL v2 writes booleans as `#{b}`"
            ))));
            None
        }
        (Ty::Str(_) | Ty::Choice(_), KdlValue::Integer(_) | KdlValue::Float(_)) => {
            diags.push(wrong_type(Some(format!(
                "quote it if you mean text; expected {}",
                ty.describe()
            ))));
            None
        }
        _ => {
            diags.push(wrong_type(None));
            None
        }
    }
}

/// Checks a string against its grammar; returns whether it passed.
fn check_string(s: &str, span: Span, grammar: Grammar, what: &str, diags: &mut Diags) -> bool {
    if let Err(why) = super::grammar::check_safe(s) {
        diags.push(
            Diag::error(Code::UnsafeValue, format!("{what} has characters bake does not allow"))
                .label(span, format!("this value {why}"))
                .help("bake puts values into shell scripts and SSM/AWSTOE documents, so they must be plain single-line text"),
        );
        return false;
    }
    match grammar.check(s) {
        Ok(()) => true,
        Err(why) => {
            let label = if why.is_empty() {
                "invalid value".to_owned()
            } else {
                format!("this value {why}")
            };
            diags.push(
                Diag::error(Code::InvalidValue, format!("{what} is not valid"))
                    .label(span, label)
                    .help(format!("expected {}", grammar.describe())),
            );
            false
        }
    }
}

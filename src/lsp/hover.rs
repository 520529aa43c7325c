//! Hover: the schema's docs for the node, property or argument under the cursor (the same table as
//! `docs/spec.md`).

use lsp_types::{Hover, HoverContents, MarkupContent, MarkupKind, Range};

use super::context::{self, Kind};
use super::convert::LineIndex;
use crate::spec::schema::{self, Node, Prop, code_list};

/// The hover at a byte offset of `text`, if the cursor is on something the schema documents.
pub fn hover(text: &str, index: &LineIndex, offset: usize) -> Option<Hover> {
    let tokens = context::tokenize(text);
    let (i, token) = context::token_at(&tokens, offset)?;
    let (parents, start, end) = context::statement_of(text, &tokens, i);
    let mut path: Vec<&str> = parents.iter().map(|f| f.name.as_str()).collect();
    path.push(tokens[start].value(text));
    let node = schema::lookup(&path)?;
    let key = if tokens.get(i + 1).is_some_and(|t| t.kind == Kind::Eq) && i + 1 < end {
        Some(token)
    } else if i >= start + 2 && tokens[i - 1].kind == Kind::Eq {
        Some(&tokens[i - 2])
    } else {
        None
    };
    let markdown = if i == start {
        node_markdown(&path, node)
    } else if let Some(key) = key {
        let name = key.value(text);
        match (node.prop(name), node.free_props) {
            (Some(p), _) => prop_markdown(&path, p),
            (None, Some((k, v))) => format!(
                "**`{name}`**: a property of `{}` with a name of your choice\n\nName: {}. Value: {}.",
                path.join(" > "),
                k.describe(),
                v.describe()
            ),
            (None, None) => return None,
        }
    } else {
        let args = node.args.as_ref()?;
        format!(
            "**`{}`**: an argument of `{}`\n\nType: {}\n\n{}",
            args.name,
            path.join(" > "),
            args.ty.describe(),
            args.doc
        )
    };
    Some(Hover {
        contents: HoverContents::Markup(MarkupContent {
            kind: MarkupKind::Markdown,
            value: markdown,
        }),
        range: Some(Range::new(
            index.position(text, token.start),
            index.position(text, token.end),
        )),
    })
}

/// A node's docs: what it is, how often it may appear, its arguments and an example.
pub fn node_markdown(path: &[&str], node: &Node) -> String {
    let mut out = format!("**`{}`**\n\n{}\n\n", path.join(" > "), node.doc);
    out.push('*');
    out.push_str(node.occurrence());
    out.push('*');
    if !node.strategies.is_empty() {
        out.push_str(&format!(
            " — only in `{}` rollouts",
            node.strategies.join("`, `")
        ));
    }
    if let Some(args) = &node.args {
        out.push_str(&format!(
            "\n\nArguments: `{}` ({}). {}",
            args.name,
            args.ty.describe(),
            args.doc
        ));
    }
    if !node.props.is_empty() {
        let names = code_list(node.props.iter().map(|p| p.name));
        out.push_str(&format!("\n\nProperties: {names}."));
    }
    if !node.children.is_empty() {
        let names = code_list(node.children.iter().map(|c| c.name));
        out.push_str(&format!("\n\nChildren: {names}."));
    }
    out.push_str(&format!("\n\n```kdl\n{}\n```", node.example));
    out
}

/// A property's docs: type, required or default, strategies, description.
pub fn prop_markdown(path: &[&str], p: &Prop) -> String {
    let mut out = format!(
        "**`{}`**: a property of `{}`\n\nType: {}\n\n",
        p.name,
        path.join(" > "),
        p.ty.describe()
    );
    if p.required {
        out.push_str("Required.");
    } else if let Some(d) = p.default {
        out.push_str(&format!("Default: `{d}`."));
    } else {
        out.push_str("Optional.");
    }
    if !p.strategies.is_empty() {
        out.push_str(&format!(
            " Only for `{}` rollouts.",
            p.strategies.join("`, `")
        ));
    }
    out.push_str("\n\n");
    out.push_str(p.doc);
    out
}

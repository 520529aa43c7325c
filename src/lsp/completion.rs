//! Completion from the schema table: node names valid under the enclosing node, property names of the node at
//! the cursor (only those of its rollout strategy), and the values a property or argument can take.

use lsp_types::{
    CompletionItem, CompletionItemKind, CompletionTextEdit, Documentation, MarkupContent,
    MarkupKind, Range, TextEdit,
};

use super::context::{self, Context, Kind, Place, Token};
use super::convert::LineIndex;
use super::hover;
use crate::spec::grammar::Grammar;
use crate::spec::schema::{self, Node, ROLLOUT_STRATEGIES, Ty};

/// The kernel lineages of Amazon Linux 2023 that have public AMI parameters.
pub const AL2023_KERNELS: &[&str] = &["6.1", "6.12", "6.18"];

/// The public SSM parameters naming the latest AL2023 AMIs (standard and minimal, each kernel and architecture):
/// what `base ssm=` completes.
pub fn al2023_ssm_parameters() -> Vec<String> {
    let mut out = Vec::new();
    for minimal in ["", "minimal-"] {
        for kernel in AL2023_KERNELS {
            for arch in schema::ARCHITECTURES {
                out.push(format!(
                    "/aws/service/ami-amazon-linux-latest/al2023-ami-{minimal}kernel-{kernel}-{arch}"
                ));
            }
        }
    }
    out
}

/// The completion items at a byte offset of `text`.
pub fn complete(text: &str, index: &LineIndex, offset: usize) -> Vec<CompletionItem> {
    if context::in_comment(text, offset) {
        return Vec::new();
    }
    let tokens = context::tokenize(text);
    let ctx = context::at(text, &tokens, offset);
    let parent_names: Vec<&str> = ctx.path.iter().map(|f| f.name.as_str()).collect();
    let edit_range = |start: usize| -> Range {
        // Replace the whole string the cursor is in, closing quote included, so `"|"` does not end up `"x""`.
        let end = tokens
            .iter()
            .find(|t| t.start == start && matches!(t.kind, Kind::Str { .. }) && t.end > offset)
            .map_or(offset, |t| t.end);
        Range::new(index.position(text, start), index.position(text, end))
    };
    match &ctx.place {
        Place::NodeName { prefix_start } => {
            let candidates: &[Node] = if parent_names.is_empty() {
                schema::ROOT
            } else {
                schema::lookup(&parent_names).map_or(&[], |n| n.children)
            };
            let strategy = ctx
                .path
                .last()
                .and_then(|f| strategy(f.first_arg.as_deref()));
            candidates
                .iter()
                .filter(|n| applies(n.strategies, strategy))
                .map(|n| {
                    let mut path = parent_names.clone();
                    path.push(n.name);
                    item(
                        n.name,
                        n.name,
                        CompletionItemKind::CLASS,
                        first_sentence(n.doc),
                        hover::node_markdown(&path, n),
                        edit_range(*prefix_start),
                    )
                })
                .collect()
        }
        Place::Entry { prefix_start } => {
            let Some((path, node)) = statement_node(&ctx, &parent_names) else {
                return Vec::new();
            };
            let strategy = if node.name == "rollout" {
                strategy(ctx.node.as_ref().and_then(|f| f.first_arg.as_deref()))
            } else {
                None
            };
            let range = edit_range(*prefix_start);
            let mut items: Vec<CompletionItem> = node
                .props
                .iter()
                .filter(|p| {
                    applies(p.strategies, strategy) && !ctx.props.iter().any(|w| w == p.name)
                })
                .map(|p| {
                    item(
                        p.name,
                        &format!("{}=", p.name),
                        CompletionItemKind::PROPERTY,
                        p.ty.describe(),
                        hover::prop_markdown(&path, p),
                        range,
                    )
                })
                .collect();
            if let Some(args) = node.args.as_ref().filter(|a| ctx.args < a.max) {
                items.extend(
                    values(args.ty, None, text, &tokens)
                        .into_iter()
                        .map(|v| value_item(&v, args.doc, range)),
                );
            }
            items
        }
        Place::PropValue { key, prefix_start } => {
            let Some((_, node)) = statement_node(&ctx, &parent_names) else {
                return Vec::new();
            };
            let Some(prop) = node.prop(key) else {
                return Vec::new();
            };
            let range = edit_range(*prefix_start);
            values(prop.ty, Some((node.name, prop.name)), text, &tokens)
                .iter()
                .map(|v| value_item(v, prop.doc, range))
                .collect()
        }
        Place::ArgValue { prefix_start } => {
            let Some((_, node)) = statement_node(&ctx, &parent_names) else {
                return Vec::new();
            };
            let Some(args) = &node.args else {
                return Vec::new();
            };
            let range = edit_range(*prefix_start);
            values(args.ty, None, text, &tokens)
                .iter()
                .map(|v| value_item(v, args.doc, range))
                .collect()
        }
    }
}

/// The schema node of the statement the cursor is in, with its path.
fn statement_node<'a>(
    ctx: &'a Context,
    parents: &[&'a str],
) -> Option<(Vec<&'a str>, &'static Node)> {
    let mut path = parents.to_vec();
    path.push(ctx.node.as_ref()?.name.as_str());
    let node = schema::lookup(&path)?;
    Some((path, node))
}

fn strategy(arg: Option<&str>) -> Option<&str> {
    arg.filter(|a| ROLLOUT_STRATEGIES.contains(a))
}

/// Whether a node or property restricted to `only` strategies fits the strategy written (unknown: everything).
fn applies(only: &[&str], strategy: Option<&str>) -> bool {
    only.is_empty() || strategy.is_none_or(|s| only.contains(&s))
}

/// A value as it is written in KDL: strings quoted, booleans with `#`.
#[derive(Debug)]
struct ValueText {
    label: String,
    insert: String,
}

fn values(ty: Ty, prop: Option<(&str, &str)>, text: &str, tokens: &[Token]) -> Vec<ValueText> {
    let quoted = |s: &str| ValueText {
        label: s.to_owned(),
        insert: format!("\"{s}\""),
    };
    match ty {
        Ty::Choice(options) => options.iter().map(|o| quoted(o)).collect(),
        Ty::Bool => ["#true", "#false"]
            .iter()
            .map(|b| ValueText {
                label: (*b).to_owned(),
                insert: (*b).to_owned(),
            })
            .collect(),
        Ty::Str(Grammar::SsmParameter) => {
            al2023_ssm_parameters().iter().map(|p| quoted(p)).collect()
        }
        Ty::Str(Grammar::Name) if prop == Some(("fleet", "image")) => image_names(text, tokens)
            .iter()
            .map(|n| quoted(n))
            .collect(),
        Ty::Str(_) | Ty::Int { .. } => Vec::new(),
    }
}

/// The names of the images defined at the top level of the document, for `fleet image=`.
fn image_names(text: &str, tokens: &[Token]) -> Vec<String> {
    let mut depth = 0usize;
    let mut at_start = true;
    let mut names = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        match t.kind {
            Kind::Open => depth += 1,
            Kind::Close => depth = depth.saturating_sub(1),
            _ => {}
        }
        if depth == 0
            && at_start
            && t.value(text) == "image"
            && let Some(name) = tokens
                .get(i + 1)
                .filter(|n| matches!(n.kind, Kind::Str { .. } | Kind::Word))
        {
            names.push(name.value(text).to_owned());
        }
        at_start = matches!(t.kind, Kind::End | Kind::Open | Kind::Close);
    }
    names.sort();
    names.dedup();
    names
}

fn value_item(v: &ValueText, doc: &str, range: Range) -> CompletionItem {
    item(
        &v.label,
        &v.insert,
        CompletionItemKind::ENUM_MEMBER,
        first_sentence(doc).to_owned(),
        doc.to_owned(),
        range,
    )
}

fn item(
    label: &str,
    insert: &str,
    kind: CompletionItemKind,
    detail: impl Into<String>,
    documentation: String,
    range: Range,
) -> CompletionItem {
    CompletionItem {
        label: label.to_owned(),
        kind: Some(kind),
        detail: Some(detail.into()),
        documentation: Some(Documentation::MarkupContent(MarkupContent {
            kind: MarkupKind::Markdown,
            value: documentation,
        })),
        // Clients filter on the text between the range start and the cursor, opening quote included.
        filter_text: Some(insert.to_owned()),
        text_edit: Some(CompletionTextEdit::Edit(TextEdit::new(
            range,
            insert.to_owned(),
        ))),
        ..CompletionItem::default()
    }
}

fn first_sentence(doc: &str) -> &str {
    doc.find(". ").map_or(doc, |i| &doc[..=i])
}

//! The spec as a tree of nodes that passed the shape check: every node is known to the schema, every kept value
//! has the type the schema gives it, and everything keeps its span.

use super::schema::{self, Ty};
use crate::source::{Span, Spanned};

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Int(i128),
    Bool(bool),
}

/// One node of the spec. Values that failed the shape check are left out (their diagnostic is already reported).
#[derive(Debug, Clone)]
pub struct Item {
    pub schema: &'static schema::Node,
    /// The span of the node's name, where "this node" diagnostics point.
    pub name_span: Span,
    /// The span of the whole node, children included.
    pub span: Span,
    pub args: Vec<Spanned<Value>>,
    pub props: Vec<(&'static str, Spanned<Value>)>,
    /// User-named properties (tags), in source order.
    pub free_props: Vec<(Spanned<String>, Spanned<String>)>,
    /// Properties the user wrote whose values failed the shape check (already reported, so left out of `props`).
    pub rejected: Vec<&'static str>,
    pub children: Vec<Item>,
}

/// The whole spec: its top-level nodes.
#[derive(Debug, Clone, Default)]
pub struct Tree {
    pub items: Vec<Item>,
}

impl Tree {
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Item> + 'a {
        self.items.iter().filter(move |i| i.schema.name == name)
    }

    pub fn first(&self, name: &str) -> Option<&Item> {
        self.items.iter().find(|i| i.schema.name == name)
    }
}

impl Item {
    pub fn name(&self) -> &'static str {
        self.schema.name
    }

    pub fn child(&self, name: &str) -> Option<&Item> {
        self.children.iter().find(|c| c.schema.name == name)
    }

    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Item> + 'a {
        self.children.iter().filter(move |c| c.schema.name == name)
    }

    fn prop(&self, name: &str) -> Option<&Spanned<Value>> {
        debug_assert!(
            self.schema.prop(name).is_some(),
            "{} has no property {name}",
            self.schema.name
        );
        self.props
            .iter()
            .rev()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
    }

    /// The default the schema documents for a property, parsed to its type.
    fn default_value(&self, name: &str) -> Option<Value> {
        let p = self.schema.prop(name)?;
        let text = p.default?;
        Some(match p.ty {
            Ty::Int { .. } => Value::Int(text.parse().ok()?),
            Ty::Bool => Value::Bool(text == "#true"),
            Ty::Str(_) | Ty::Choice(_) => Value::Str(text.to_owned()),
        })
    }

    pub fn str(&self, name: &str) -> Option<Spanned<String>> {
        match self.prop(name) {
            Some(Spanned {
                value: Value::Str(s),
                span,
            }) => Some(Spanned::new(s.clone(), *span)),
            _ => None,
        }
    }

    pub fn int(&self, name: &str) -> Option<Spanned<i128>> {
        match self.prop(name) {
            Some(Spanned {
                value: Value::Int(i),
                span,
            }) => Some(Spanned::new(*i, *span)),
            _ => None,
        }
    }

    pub fn bool(&self, name: &str) -> Option<Spanned<bool>> {
        match self.prop(name) {
            Some(Spanned {
                value: Value::Bool(b),
                span,
            }) => Some(Spanned::new(*b, *span)),
            _ => None,
        }
    }

    /// Whether the user wrote the property (even with a value that failed its check).
    pub fn has(&self, name: &str) -> bool {
        self.prop(name).is_some() || self.rejected.contains(&name)
    }

    /// A string property, or the schema's default placed at the node name.
    pub fn str_or_default(&self, name: &str) -> Option<Spanned<String>> {
        self.str(name).or_else(|| match self.default_value(name) {
            Some(Value::Str(s)) => Some(Spanned::new(s, self.name_span)),
            _ => None,
        })
    }

    pub fn int_or_default(&self, name: &str) -> Option<Spanned<i128>> {
        self.int(name).or_else(|| match self.default_value(name) {
            Some(Value::Int(i)) => Some(Spanned::new(i, self.name_span)),
            _ => None,
        })
    }

    pub fn bool_or_default(&self, name: &str) -> Option<Spanned<bool>> {
        self.bool(name).or_else(|| match self.default_value(name) {
            Some(Value::Bool(b)) => Some(Spanned::new(b, self.name_span)),
            _ => None,
        })
    }

    pub fn arg_str(&self, index: usize) -> Option<Spanned<String>> {
        match self.args.get(index) {
            Some(Spanned {
                value: Value::Str(s),
                span,
            }) => Some(Spanned::new(s.clone(), *span)),
            _ => None,
        }
    }

    pub fn arg_bool(&self, index: usize) -> Option<Spanned<bool>> {
        match self.args.get(index) {
            Some(Spanned {
                value: Value::Bool(b),
                span,
            }) => Some(Spanned::new(*b, *span)),
            _ => None,
        }
    }

    pub fn arg_strs(&self) -> Vec<Spanned<String>> {
        (0..self.args.len())
            .filter_map(|i| self.arg_str(i))
            .collect()
    }

    pub fn arg_ints(&self) -> Vec<Spanned<i128>> {
        self.args
            .iter()
            .filter_map(|a| match a.value {
                Value::Int(i) => Some(Spanned::new(i, a.span)),
                _ => None,
            })
            .collect()
    }
}

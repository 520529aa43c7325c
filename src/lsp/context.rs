//! Where the cursor is, in terms of the schema: which nodes enclose it, which node's statement it is in, and
//! whether it is on a node name, a property name, a property value or an argument.
//!
//! This works on text that does not parse (the usual state while typing): a forgiving scanner splits the text
//! into the few tokens that matter (words, strings, `=`, `{`, `}` and line ends), skipping comments.

pub use crate::spec::lex::{Kind, MAX_DEPTH, Token, in_comment, max_depth, tokenize};

/// One node that encloses the cursor: its name and its first argument (the rollout strategy for `rollout`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub name: String,
    pub first_arg: Option<String>,
}

/// Where the cursor is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// Where a node name goes (start of a statement, or on its first word).
    NodeName { prefix_start: usize },
    /// After a node name, on a word that could be a property name or an argument.
    Entry { prefix_start: usize },
    /// On (or right after the `=` of) a property's value.
    PropValue { key: String, prefix_start: usize },
    /// Inside a quoted argument.
    ArgValue { prefix_start: usize },
}

/// The cursor's context: the enclosing nodes, the statement it is in, and its place in that statement.
#[derive(Debug, Clone)]
pub struct Context {
    /// Enclosing nodes, outermost first.
    pub path: Vec<Frame>,
    /// The node name of the statement the cursor is in, when one is written.
    pub node: Option<Frame>,
    /// Property names already written in the statement.
    pub props: Vec<String>,
    /// Arguments already written in the statement, not counting the one under the cursor.
    pub args: usize,
    pub place: Place,
}

/// Analyses the cursor position `offset` (a byte offset on a character boundary).
pub fn at(text: &str, tokens: &[Token], offset: usize) -> Context {
    // Every token before the cursor; a word or string that ends at the cursor is the one being typed.
    let i = tokens
        .iter()
        .position(|t| t.end > offset || (t.end == offset && t.is_value()))
        .unwrap_or(tokens.len());
    let (path, stmt_start, stmt_end) = statement_of(text, tokens, i);
    let at_token = tokens.get(i).filter(|t| {
        t.is_value()
            && t.start < offset
            && !(t.end == offset && matches!(t.kind, Kind::Str { closed: true }))
    });
    let before = &tokens[stmt_start..i];
    let statement = &tokens[stmt_start..stmt_end];
    let node = frame(text, statement).filter(|_| !before.is_empty());
    let props = statement
        .windows(2)
        .filter(|w| w[1].kind == Kind::Eq && w[0].is_value())
        .map(|w| w[0].value(text).to_owned())
        .collect();
    let args = count_args(&statement[1.min(statement.len())..], at_token);
    let after_eq = before.last().is_some_and(|t| t.kind == Kind::Eq);
    let place = match at_token {
        _ if before.is_empty() => Place::NodeName {
            prefix_start: at_token.map_or(offset, |t| t.start),
        },
        Some(t) if after_eq => Place::PropValue {
            key: key_before(text, before),
            prefix_start: t.start,
        },
        Some(t) if matches!(t.kind, Kind::Str { .. }) => Place::ArgValue {
            prefix_start: t.start,
        },
        Some(t) => Place::Entry {
            prefix_start: t.start,
        },
        None if after_eq => Place::PropValue {
            key: key_before(text, before),
            prefix_start: offset,
        },
        None => Place::Entry {
            prefix_start: offset,
        },
    };
    Context {
        path,
        node,
        props,
        args,
        place,
    }
}

/// The arguments among a statement's tokens after the node name (property keys and values left out).
fn count_args(rest: &[Token], skip: Option<&Token>) -> usize {
    let mut n = 0;
    let mut j = 0;
    while j < rest.len() {
        if rest.get(j + 1).is_some_and(|t| t.kind == Kind::Eq) {
            j += 3;
            continue;
        }
        if rest[j].is_value() && Some(&rest[j]) != skip {
            n += 1;
        }
        j += 1;
    }
    n
}

/// The key of `key =` at the end of `before` (which ends with the `=`).
fn key_before(text: &str, before: &[Token]) -> String {
    match before {
        [.., key, eq] if eq.kind == Kind::Eq && key.is_value() => key.value(text).to_owned(),
        _ => String::new(),
    }
}

/// The node a statement's tokens describe: the name and the first argument that is not a property.
fn frame(text: &str, statement: &[Token]) -> Option<Frame> {
    let (name, rest) = statement.split_first()?;
    if !name.is_value() {
        return None;
    }
    let mut first_arg = None;
    let mut j = 0;
    while j < rest.len() {
        if rest.get(j + 1).is_some_and(|t| t.kind == Kind::Eq) {
            j += 3;
            continue;
        }
        if rest[j].is_value() {
            first_arg = Some(rest[j].value(text).to_owned());
            break;
        }
        j += 1;
    }
    Some(Frame {
        name: name.value(text).to_owned(),
        first_arg,
    })
}

/// The token under the cursor (for hover) with its role: the statement it belongs to, and its index in it.
pub fn token_at(tokens: &[Token], offset: usize) -> Option<(usize, &Token)> {
    tokens
        .iter()
        .enumerate()
        .find(|(_, t)| t.start <= offset && offset < t.end && t.is_value())
        .or_else(|| {
            tokens
                .iter()
                .enumerate()
                .find(|(_, t)| t.end == offset && t.is_value())
        })
}

/// The enclosing path (as for [`at`]) and the statement tokens of the token at index `index`.
pub fn statement_of(text: &str, tokens: &[Token], index: usize) -> (Vec<Frame>, usize, usize) {
    let mut path: Vec<Frame> = Vec::new();
    let mut stmt_start = 0;
    for (i, t) in tokens[..index].iter().enumerate() {
        match t.kind {
            Kind::Open => {
                path.push(frame(text, &tokens[stmt_start..i]).unwrap_or(Frame {
                    name: String::new(),
                    first_arg: None,
                }));
                stmt_start = i + 1;
            }
            Kind::Close => {
                path.pop();
                stmt_start = i + 1;
            }
            Kind::End => stmt_start = i + 1,
            _ => {}
        }
    }
    let stmt_end = tokens[stmt_start..]
        .iter()
        .position(|t| matches!(t.kind, Kind::End | Kind::Open | Kind::Close))
        .map_or(tokens.len(), |p| stmt_start + p);
    (path, stmt_start, stmt_end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(with_cursor: &str) -> Context {
        let offset = with_cursor.find('|').unwrap();
        let text = with_cursor.replacen('|', "", 1);
        let tokens = tokenize(&text);
        at(&text, &tokens, offset)
    }

    fn names(c: &Context) -> Vec<&str> {
        c.path.iter().map(|f| f.name.as_str()).collect()
    }

    #[test]
    fn tokens_skip_comments_and_keep_strings_whole() {
        let text = "a \"x // y\" /* c /* d */ */ k=#\"r\"# // tail\nb; c \\\n d";
        let kinds: Vec<(Kind, &str)> = tokenize(text)
            .iter()
            .map(|t| (t.kind, &text[t.start..t.end]))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (Kind::Word, "a"),
                (Kind::Str { closed: true }, "\"x // y\""),
                (Kind::Word, "k"),
                (Kind::Eq, "="),
                (Kind::Str { closed: true }, "#\"r\"#"),
                (Kind::End, "\n"),
                (Kind::Word, "b"),
                (Kind::End, ";"),
                (Kind::Word, "c"),
                (Kind::Word, "d"),
            ]
        );
    }

    #[test]
    fn places() {
        let c = ctx("fleet \"web\" {\n    |\n}");
        assert_eq!(names(&c), ["fleet"]);
        assert!(matches!(c.place, Place::NodeName { .. }));

        let c = ctx("fleet \"web\" {\n    rollout \"rolling\" {\n        su|");
        assert_eq!(names(&c), ["fleet", "rollout"]);
        assert_eq!(c.path[1].first_arg.as_deref(), Some("rolling"));
        assert!(matches!(c.place, Place::NodeName { prefix_start } if prefix_start == 46));

        let c = ctx("fleet \"web\" {\n    rollout \"rolling\" max|");
        assert_eq!(names(&c), ["fleet"]);
        assert_eq!(c.node.as_ref().unwrap().name, "rollout");
        assert_eq!(
            c.node.as_ref().unwrap().first_arg.as_deref(),
            Some("rolling")
        );
        assert!(matches!(c.place, Place::Entry { .. }));

        let c = ctx("image \"x\" {\n base ssm=|\n}");
        assert_eq!(
            c.place,
            Place::PropValue {
                key: "ssm".into(),
                prefix_start: 22
            }
        );
        let c = ctx("image \"x\" {\n base ssm=\"/aws|\"\n}");
        assert_eq!(
            c.place,
            Place::PropValue {
                key: "ssm".into(),
                prefix_start: 22
            }
        );
        let c = ctx("fleet \"x\" {\n rollout \"r|\" }");
        assert!(matches!(c.place, Place::ArgValue { .. }));
        let c = ctx("fleet \"x\" {\n rollout \"rolling\" |}");
        assert!(matches!(c.place, Place::Entry { .. }));
        assert_eq!(c.node.unwrap().name, "rollout");
        let c = ctx("stack \"x\" region=\"a\" |");
        assert_eq!(c.props, ["region"]);
        let c = ctx("stack \"x\"\n|");
        assert!(matches!(c.place, Place::NodeName { .. }));
        let c = ctx("stack \"x\" {\n}\n|");
        assert!(c.path.is_empty());
        assert!(matches!(c.place, Place::NodeName { .. }));
    }
}

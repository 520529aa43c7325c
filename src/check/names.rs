//! Names AWS derives from spec names: CloudFormation logical ids (which must not collide) and Image Builder
//! resource names (which have a length limit).

use std::collections::BTreeMap;

use crate::diag::{Code, Diag, Diags};
use crate::source::Spanned;
use crate::spec::Item;

/// Image Builder names are at most 128 characters; bake's longest suffix is `-bootstrap`.
const IMAGE_BUILDER_NAME_MAX: usize = 128;
const LONGEST_SUFFIX: &str = "-bootstrap";

/// The CloudFormation logical-id stem of a name: `web-2` → `Web2`.
pub fn pascal(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut c = part.chars();
            c.next().map_or_else(String::new, |f| {
                f.to_ascii_uppercase().to_string() + c.as_str()
            })
        })
        .collect()
}

/// Names must be unique, and distinct after the transformations AWS applies.
pub(super) fn unique_names<'a>(
    kind: &str,
    items: impl Iterator<Item = &'a Item>,
    diags: &mut Diags,
) {
    let mut seen: BTreeMap<String, Spanned<String>> = BTreeMap::new();
    for item in items {
        let Some(name) = item.arg_str(0) else {
            continue;
        };
        let key = pascal(&name.value);
        if let Some(first) = seen.get(&key) {
            if first.value == name.value {
                diags.push(
                    Diag::error(
                        Code::Duplicate,
                        format!("two {kind}s are named `{}`", name.value),
                    )
                    .label(name.span, "defined again here")
                    .label(first.span, "first defined here")
                    .help(format!("{kind} names must be unique in a spec")),
                );
            } else {
                diags.push(
                    Diag::error(
                        Code::NameCollision,
                        format!(
                            "{kind} names `{}` and `{}` collide",
                            first.value, name.value
                        ),
                    )
                    .label(
                        name.span,
                        format!("becomes `{key}` in CloudFormation logical ids"),
                    )
                    .label(first.span, "so does this one"),
                );
            }
        } else {
            seen.insert(key, name);
        }
    }
}

/// An image's Image Builder resource names (`<stack>-<image><suffix>`) must fit AWS's limit.
pub(super) fn image_name_fits(name: &Spanned<String>, stack_name: &str, diags: &mut Diags) {
    let total = stack_name.len() + 1 + name.value.len() + LONGEST_SUFFIX.len();
    if total > IMAGE_BUILDER_NAME_MAX {
        diags.push(
            Diag::error(Code::NameTooLong, format!("image name `{}` is too long for this stack", name.value))
                .label(name.span, format!("`{stack_name}-{}{LONGEST_SUFFIX}` has {total} characters", name.value))
                .help(format!("Image Builder names have at most {IMAGE_BUILDER_NAME_MAX} characters; shorten the stack or image name")),
        );
    }
}

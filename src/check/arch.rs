//! Which CPU architecture an EC2 instance type has, from its name.

use super::plan::Arch;
use crate::diag::{Code, Diag, Diags};
use crate::source::{Span, Spanned};

/// Graviton families carry a `g` after the generation digit (m7g, c7gn, r8gd, im4gn, is4gen); `a1` is the first
/// Graviton. Returns `None` for names that do not follow the family-generation pattern.
pub fn instance_arch(instance_type: &str) -> Option<Arch> {
    let family = instance_type.split('.').next()?;
    let family = family.split('-').next()?;
    if family == "a1" {
        return Some(Arch::Arm64);
    }
    let digit = family.find(|c: char| c.is_ascii_digit())?;
    if digit == 0 {
        return None;
    }
    let attributes = family[digit..].trim_start_matches(|c: char| c.is_ascii_digit());
    Some(if attributes.contains('g') {
        Arch::Arm64
    } else {
        Arch::X86_64
    })
}

/// An instance type must have the image's architecture.
pub(super) fn check_arch(
    instance_type: &Spanned<String>,
    image_arch: Arch,
    image_span: Span,
    what: &str,
    diags: &mut Diags,
) {
    let Some(type_arch) = instance_arch(&instance_type.value) else {
        return;
    };
    if type_arch != image_arch {
        let suggestion = match image_arch {
            Arch::Arm64 => "a Graviton type such as m7g.large",
            Arch::X86_64 => "an x86_64 type such as m7i.large",
        };
        diags.push(
            Diag::error(
                Code::Architecture,
                format!(
                    "{what} type `{}` is {}, the image is {}",
                    instance_type.value,
                    type_arch.as_str(),
                    image_arch.as_str()
                ),
            )
            .label(
                instance_type.span,
                format!("{} instance type", type_arch.as_str()),
            )
            .label(image_span, format!("{} image", image_arch.as_str()))
            .help(format!(
                "use {suggestion}, or an image of the other architecture"
            )),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families() {
        for t in [
            "m7g.large",
            "c7gn.xlarge",
            "t4g.micro",
            "r8gd.2xlarge",
            "im4gn.large",
            "is4gen.large",
            "a1.medium",
            "x2gd.large",
        ] {
            assert_eq!(instance_arch(t), Some(Arch::Arm64), "{t}");
        }
        for t in [
            "m7i.large",
            "m7i-flex.large",
            "c5n.large",
            "g4dn.xlarge",
            "g5.xlarge",
            "t3.micro",
            "m7a.large",
            "p4de.24xlarge",
        ] {
            assert_eq!(instance_arch(t), Some(Arch::X86_64), "{t}");
        }
        assert_eq!(instance_arch("u-6tb1.metal"), None);
    }
}

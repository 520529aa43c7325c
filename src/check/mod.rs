//! Stage 2: `Tree` → `Plan`.
//!
//! Input: the shape-checked tree. Output: a plan, when no error was found, and every semantic problem: sizes,
//! rollout constraints, references, architectures, names AWS would reject, reproducibility warnings.
//! This stage never reads files, the lock or the network.

#![deny(clippy::disallowed_methods, clippy::disallowed_types)] // pure: see clippy.toml

mod arch;
mod build;
mod closure;
pub mod credentials;
mod fleet;
mod fleets;
pub mod image;
mod names;
mod nixos;
pub mod plan;
mod retention;
pub mod rollback;
mod rollout;
mod stack;
pub mod stackset;
mod tags;

use crate::diag::{Code, Diag, Diags};
use crate::source::Spanned;
use crate::spec::Tree;
use crate::spec::grammar::parse_duration;
pub use arch::instance_arch;
pub use image::AL2023_PREFIX;
pub use names::pascal;
use plan::{FleetPlan, ImagePlan, Plan};

/// Checks a spec's meaning. The plan is `Some` only when no error was found (warnings allowed). A tree that had
/// shape errors may yield no plan and no further diagnostics: the shape errors already explain why.
pub fn check(tree: &Tree) -> (Option<Plan>, Vec<Diag>) {
    check_images(tree, Images::AsWritten)
}

/// Where a plan's images come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Images {
    /// As the spec writes them: built, pinned or NixOS.
    AsWritten,
    /// A promoted environment's (`images-from`): each image a fleet runs becomes the AMI the lock records for
    /// it (`environments::promotion`), so a stack set takes them as pinned.
    Promoted,
}

/// `check`, for a tree whose images may be promoted.
pub fn check_images(tree: &Tree, source: Images) -> (Option<Plan>, Vec<Diag>) {
    let mut diags = Diags::default();
    let stack = tree.first("stack").and_then(stack::stack_plan);
    let images = image::images(tree, stack.as_ref(), &mut diags);
    let fleets = fleets::fleets(tree, &images, &mut diags);
    image::warn_unused_images(tree, &images, &mut diags);
    tags::check(tree, &mut diags);
    let images = image::add_signal_rpms(images, &fleets);
    let stack_set = tree.first("stack-set").map(|item| {
        stack_set(
            item,
            tree,
            stack.as_ref(),
            &images,
            &fleets,
            source,
            &mut diags,
        )
    });
    let images: Option<Vec<ImagePlan>> = images.into_iter().map(|(_, i)| i).collect();
    let fleets: Option<Vec<FleetPlan>> = fleets.into_iter().collect();
    let plan = match (stack, images, fleets, stack_set) {
        (Some(stack), Some(images), Some(fleets), None) => Some(Plan {
            stack,
            images,
            fleets,
            stack_set: None,
        }),
        (Some(stack), Some(images), Some(fleets), Some(Some(set))) => Some(Plan {
            stack,
            images,
            fleets,
            stack_set: Some(set),
        }),
        _ => None,
    };
    let mut diags = diags.into_vec();
    crate::diag::sort(&mut diags);
    let plan = if crate::diag::has_errors(&diags) {
        None
    } else {
        plan
    };
    (plan, diags)
}

/// The `stack-set` node against the images and fleets that passed their checks.
fn stack_set(
    item: &crate::spec::Item,
    tree: &Tree,
    stack: Option<&plan::StackPlan>,
    images: &[image::NamedImage],
    fleets: &[Option<FleetPlan>],
    source: Images,
    diags: &mut Diags,
) -> Option<stackset::StackSetPlan> {
    // A fleet's `image` indexes every image, also those with errors.
    let promoted = (source == Images::Promoted).then(|| {
        fleets
            .iter()
            .flatten()
            .filter_map(|f| images.get(f.image).and_then(|(n, _)| n.as_ref()))
            .map(|n| n.value.as_str())
            .collect::<Vec<&str>>()
    });
    let images: Vec<&ImagePlan> = images.iter().filter_map(|(_, i)| i.as_ref()).collect();
    if promoted.is_none() {
        stackset::built_images(item, &images, diags);
    }
    fn names<'t>(tree: &'t Tree, kind: &'static str) -> Vec<&'t str> {
        tree.all(kind)
            .filter_map(|i| i.args.first())
            .filter_map(|a| match &a.value {
                crate::spec::Value::Str(s) => Some(s.as_str()),
                _ => None,
            })
            .collect()
    }
    let cx = stackset::Context {
        stack_region: stack.map(|s| s.region.as_str()),
        image_names: names(tree, "image"),
        fleet_names: names(tree, "fleet"),
        images,
        fleets: fleets.iter().flatten().collect(),
        promoted,
    };
    stackset::stack_set(item, &cx, diags)
}

/// A duration property within CloudFormation's range for it (1 second to `max_secs`).
pub(super) fn duration_within(
    value: &Spanned<String>,
    max_secs: u64,
    what: &str,
    diags: &mut Diags,
) -> Option<u64> {
    // The grammar already accepted the text, so it parses.
    let secs = parse_duration(&value.value).ok()?;
    if secs == 0 || secs > max_secs {
        diags.push(
            Diag::error(Code::Duration, format!("{what} is out of range"))
                .label(value.span, format!("{secs} seconds"))
                .help(format!(
                    "CloudFormation accepts 1 to {max_secs} seconds ({}) here",
                    human_secs(max_secs)
                )),
        );
        return None;
    }
    Some(secs)
}

fn human_secs(secs: u64) -> String {
    if secs.is_multiple_of(3600) {
        format!("PT{}H", secs / 3600)
    } else {
        format!("PT{secs}S")
    }
}

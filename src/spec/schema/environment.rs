//! The `environment` node: one deployment of the spec (staging, prod) and what differs in it. Every override has
//! the type of the value it replaces, so the shape check types it like the original (`crate::environments` applies
//! them).

use super::{
    Grammar, Node, Prop, ROLLOUT, SECURITY_GROUPS, SUBNETS, Ty, U32, many_args, node, one_arg, prop,
};

/// A fleet's overrides: everything optional, the same types as in `fleet`.
const FLEET_OVERRIDE: Node = Node {
    args: one_arg(
        "fleet",
        Ty::Str(Grammar::Name),
        "The name of a fleet the spec defines.",
    ),
    props: &[
        prop(
            "instance-type",
            Ty::Str(Grammar::InstanceType),
            "The fleet's instance type in this environment.",
        ),
        prop(
            "min",
            Ty::Int { min: 0, max: U32 },
            "The group's minimum size in this environment.",
        ),
        prop(
            "max",
            Ty::Int { min: 1, max: U32 },
            "The group's maximum size in this environment.",
        ),
        prop(
            "desired",
            Ty::Int { min: 0, max: U32 },
            "The group's desired size in this environment.",
        ),
    ],
    children: &[
        Node {
            required: false,
            doc: "The subnets the group launches into in this environment (replaces the fleet's).",
            ..SUBNETS
        },
        Node {
            doc: "The instances' security groups in this environment (replaces the fleet's).",
            ..SECURITY_GROUPS
        },
        Node {
            required: false,
            doc: "The rollout policy in this environment (replaces the fleet's whole `rollout`).",
            ..ROLLOUT
        },
    ],
    repeatable: true,
    ..node(
        "fleet",
        "Overrides of one fleet in this environment; what is not given stays as the fleet has it.",
        "fleet \"web\" instance-type=\"m7i.xlarge\" min=3 max=12 desired=4",
    )
};

const DEFAULT: Prop = prop(
    "default",
    Ty::Bool,
    "The environment commands use without `--env`. At most one; without one, `--env` is required once a spec has environments.",
);

pub(super) const ENVIRONMENT: Node = Node {
    args: one_arg(
        "name",
        Ty::Str(Grammar::Name),
        "The environment's name, unique in the spec (`--env NAME`).",
    ),
    props: &[DEFAULT],
    children: &[
        Node {
            args: many_args(
                "account",
                Ty::Str(Grammar::AccountId),
                1,
                "AWS account ids. A plain stack takes exactly one; several accounts are a StackSet's job.",
            ),
            ..node(
                "account",
                "The account this environment deploys to (replaces the stack's `account`). Recorded in the lock entries of promoted images.",
                "account \"222222222222\"",
            )
        },
        Node {
            args: many_args(
                "region",
                Ty::Str(Grammar::Region),
                1,
                "AWS regions. A plain stack takes exactly one; several regions are a StackSet's job.",
            ),
            ..node(
                "region",
                "The region this environment deploys to (replaces the stack's `region`).",
                "region \"eu-west-1\"",
            )
        },
        Node {
            args: one_arg(
                "name",
                Ty::Str(Grammar::StackName),
                "The CloudFormation stack name.",
            ),
            ..node(
                "stack-name",
                "The stack name in this environment. Default `<stack>-<environment>`.",
                "stack-name \"web-production\"",
            )
        },
        Node {
            args: one_arg(
                "environment",
                Ty::Str(Grammar::Name),
                "The environment whose AMIs this one runs.",
            ),
            ..node(
                "images-from",
                "Run the AMIs another environment runs instead of building them: `bake promote --from <that> --to <this>` records them in the lock, and this environment's template has no Image Builder resources. See docs/environments.md.",
                "images-from \"staging\"",
            )
        },
        Node {
            free_props: Some((Grammar::TagKey, Grammar::Text)),
            ..node(
                "tags",
                "Tags added to the stack's tags in this environment; a key the stack also sets takes this value.",
                "tags env=\"prod\"",
            )
        },
        FLEET_OVERRIDE,
        Node {
            doc: "Deploy this environment through CloudFormation StackSets (replaces the spec's `stack-set`): one stack instance per target account and region, administered from this environment's region. Its images must be pinned AMIs; a promoted environment's (`images-from`) are. See docs/stacksets.md.",
            ..super::stackset::STACK_SET
        },
    ],
    repeatable: true,
    ..node(
        "environment",
        "A deployment of the spec (staging, prod) with what differs there: account, region, stack name, tags, fleet sizes, instance types, subnets, security groups and rollout, and whether it builds its images or runs another environment's. See docs/environments.md.",
        "environment \"prod\" { account \"222222222222\"; region \"us-east-1\"; images-from \"staging\"; fleet \"web\" min=3 max=12 }",
    )
};

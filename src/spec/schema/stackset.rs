//! The `stack-set` node: deploying the spec's template through CloudFormation StackSets to several accounts and
//! regions. Its meaning is checked in `check::stackset`; AWS's names and limits are from the CloudFormation API
//! (`CreateStackSet`, `CreateStackInstances`, `StackSetOperationPreferences`).

use super::{Node, Ty, U32, many_args, node, one_arg, prop, required, with_default};
use crate::spec::grammar::Grammar;

pub const PERMISSION_MODELS: &[&str] = &["SELF_MANAGED", "SERVICE_MANAGED"];
pub const CALL_AS: &[&str] = &["SELF", "DELEGATED_ADMIN"];
pub const REGION_CONCURRENCY: &[&str] = &["SEQUENTIAL", "PARALLEL"];
pub const CONCURRENCY_MODES: &[&str] = &["STRICT_FAILURE_TOLERANCE", "SOFT_FAILURE_TOLERANCE"];
/// The execution role CloudFormation assumes in each target account when none is named (self-managed).
pub const DEFAULT_EXECUTION_ROLE: &str = "AWSCloudFormationStackSetExecutionRole";

pub const STACK_SET: Node = Node {
    props: &[
        required(
            "permission-model",
            Ty::Choice(PERMISSION_MODELS),
            "`SELF_MANAGED`: you create the administration role in this account and the execution role in each target account, and name the target accounts. `SERVICE_MANAGED`: StackSets creates the roles through AWS Organizations (trusted access) and deploys to organizational units.",
        ),
        with_default(
            "call-as",
            Ty::Choice(CALL_AS),
            "SELF",
            "`SELF` from the account that administers the stack set (the management account for service-managed); `DELEGATED_ADMIN` from a member account registered as a delegated administrator (service-managed only).",
        ),
        prop(
            "administration-role",
            Ty::Str(Grammar::RoleArn),
            "Self-managed: the role CloudFormation uses in this account to reach the target accounts. Without it, CloudFormation uses `AWSCloudFormationStackSetAdministrationRole` of this account.",
        ),
        with_default(
            "execution-role",
            Ty::Str(Grammar::RoleName),
            DEFAULT_EXECUTION_ROLE,
            "Self-managed: the name of the role CloudFormation assumes in each target account; it must trust the administration role.",
        ),
        with_default(
            "auto-deployment",
            Ty::Bool,
            "#true",
            "Service-managed: deploy to accounts that join a target OU later (and remove the stacks of accounts that leave).",
        ),
        with_default(
            "retain-stacks-on-account-removal",
            Ty::Bool,
            "#false",
            "Service-managed with auto-deployment: keep the stack's resources when an account leaves a target OU.",
        ),
    ],
    children: &[
        Node {
            args: many_args(
                "account",
                Ty::Str(Grammar::AccountId),
                1,
                "12-digit account ids.",
            ),
            ..node(
                "accounts",
                "Self-managed: the accounts that get a stack instance in every region of `regions`.",
                "accounts \"111111111111\" \"222222222222\"",
            )
        },
        Node {
            args: many_args(
                "id",
                Ty::Str(Grammar::OrganizationalUnitId),
                1,
                "OU ids (`ou-…`) or the organization's root id (`r-…`).",
            ),
            ..node(
                "organizational-units",
                "Service-managed: the organizational units whose accounts get a stack instance in every region of `regions`. StackSets never deploys to the management account.",
                "organizational-units \"ou-ab12-cdefgh34\"",
            )
        },
        Node {
            args: many_args(
                "region",
                Ty::Str(Grammar::Region),
                1,
                "Region names, in the order the operations run through them.",
            ),
            required: true,
            ..node(
                "regions",
                "The regions of the stack instances, in deployment order (the operations' `RegionOrder`).",
                "regions \"us-east-1\" \"eu-west-1\"",
            )
        },
        Node {
            props: &[
                with_default(
                    "region-concurrency",
                    Ty::Choice(REGION_CONCURRENCY),
                    "SEQUENTIAL",
                    "`SEQUENTIAL`: one region at a time, in the order of `regions`; `PARALLEL`: all regions at once.",
                ),
                prop(
                    "max-concurrent-count",
                    Ty::Int { min: 1, max: U32 },
                    "At most this many accounts per region at a time (CloudFormation's default: 1). Not with `max-concurrent-percentage`.",
                ),
                prop(
                    "max-concurrent-percentage",
                    Ty::Int { min: 1, max: 100 },
                    "At most this percentage of the accounts per region at a time (rounded down, at least one). Not with `max-concurrent-count`.",
                ),
                prop(
                    "failure-tolerance-count",
                    Ty::Int { min: 0, max: U32 },
                    "How many accounts per region may fail before the operation stops in that region and skips the regions after it (CloudFormation's default: 0). Not with `failure-tolerance-percentage`.",
                ),
                prop(
                    "failure-tolerance-percentage",
                    Ty::Int { min: 0, max: 100 },
                    "The percentage of accounts per region that may fail (rounded down). Not with `failure-tolerance-count`.",
                ),
                with_default(
                    "concurrency-mode",
                    Ty::Choice(CONCURRENCY_MODES),
                    "STRICT_FAILURE_TOLERANCE",
                    "`STRICT_FAILURE_TOLERANCE` lowers the concurrency so that failures never exceed the tolerance + 1; `SOFT_FAILURE_TOLERANCE` keeps the maximum concurrency whatever fails.",
                ),
            ],
            ..node(
                "preferences",
                "How each stack set operation runs through the accounts and regions (`OperationPreferences`).",
                "preferences region-concurrency=\"SEQUENTIAL\" max-concurrent-count=1 failure-tolerance-count=0",
            )
        },
        Node {
            args: one_arg(
                "region",
                Ty::Str(Grammar::Region),
                "A region of `regions` other than the stack's.",
            ),
            children: &[
                Node {
                    args: one_arg("image", Ty::Str(Grammar::Name), "The image's name."),
                    props: &[required(
                        "ami",
                        Ty::Str(Grammar::AmiId),
                        "The image's AMI in this region (copied there, and shared with the target accounts).",
                    )],
                    repeatable: true,
                    ..node(
                        "image",
                        "A pinned image's AMI id in this region.",
                        "image \"web\" ami=\"ami-0123456789abcdef0\"",
                    )
                },
                Node {
                    args: many_args("subnet", Ty::Str(Grammar::SubnetId), 1, "Subnet ids."),
                    props: &[required(
                        "fleet",
                        Ty::Str(Grammar::Name),
                        "The fleet's name.",
                    )],
                    repeatable: true,
                    ..node(
                        "subnets",
                        "A fleet's subnets in this region.",
                        "subnets \"subnet-0123456789abcdef0\" fleet=\"web\"",
                    )
                },
                Node {
                    args: many_args(
                        "security-group",
                        Ty::Str(Grammar::SecurityGroupId),
                        1,
                        "Security group ids.",
                    ),
                    props: &[required(
                        "fleet",
                        Ty::Str(Grammar::Name),
                        "The fleet's name.",
                    )],
                    repeatable: true,
                    ..node(
                        "security-groups",
                        "A fleet's security groups in this region.",
                        "security-groups \"sg-0123456789abcdef0\" fleet=\"web\"",
                    )
                },
            ],
            repeatable: true,
            ..node(
                "region",
                "What differs in one region of the stack set: AMI ids, subnets, security groups. The stack's own region takes them from the `image` and `fleet` nodes.",
                "region \"eu-west-1\" { image \"web\" ami=\"ami-0123456789abcdef0\"; subnets \"subnet-0123456789abcdef0\" fleet=\"web\" }",
            )
        },
    ],
    ..node(
        "stack-set",
        "Deploy the stack through CloudFormation StackSets: one stack instance per target account and region, from the stack's region (the administration region). Images must be pinned AMIs, given per region. See docs/stacksets.md.",
        "stack-set permission-model=\"SELF_MANAGED\" { accounts \"111111111111\"; regions \"us-east-1\" \"eu-west-1\" }",
    )
};

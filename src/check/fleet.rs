//! Fleet rules about what AWS does when the spec says nothing: the VPC's default security group, the processes
//! a rolling update suspends, and the readiness gate of an instance refresh.

use super::plan::Signals;
use crate::diag::{Code, Diag, Diags};
use crate::spec::Item;
use crate::spec::grammar::parse_duration;
use crate::spec::schema::RECOMMENDED_SUSPEND;

/// A launch lifecycle hook's heartbeat timeout: 30 seconds to 2 hours (EC2 Auto Scaling).
const HOOK_TIMEOUT_MIN_SECS: u64 = 30;
const HOOK_TIMEOUT_MAX_SECS: u64 = 7200;

/// A fleet without `security-groups` silently gets the VPC's default security group.
pub(super) fn warn_default_security_group(fleet: &Item, diags: &mut Diags) {
    if fleet.child("security-groups").is_some() {
        return;
    }
    let Some(name) = fleet.arg_str(0) else {
        return;
    };
    diags.push(
        Diag::warning(
            Code::DefaultSecurityGroup,
            format!(
                "fleet `{}` has no security groups, so its instances get the VPC's default one",
                name.value
            ),
        )
        .label(name.span, "no `security-groups` in this fleet")
        .help(
            "EC2 falls back to the VPC's default security group, which other resources share; name the fleet's own, \
             e.g. `security-groups \"sg-0123456789abcdef0\"`",
        ),
    );
}

/// The processes a rolling update suspends: what the spec lists, or what AWS recommends when it lists nothing.
/// `suspend` with no arguments suspends nothing.
pub(super) fn suspended_processes(rollout: &Item) -> Vec<String> {
    match rollout.child("suspend") {
        Some(s) => s.arg_strs().into_iter().map(|s| s.value).collect(),
        None => RECOMMENDED_SUSPEND
            .iter()
            .map(|p| (*p).to_owned())
            .collect(),
    }
}

/// What a new instance of an instance-refresh fleet waits for before it completes its launch lifecycle hook,
/// and how long EC2 Auto Scaling waits for that before it abandons the instance.
pub(super) fn refresh_readiness(rollout: &Item, diags: &mut Diags) -> Option<Signals> {
    let timeout = rollout.str_or_default("ready-timeout")?;
    // The grammar already accepted the text, so it parses.
    let secs = parse_duration(&timeout.value).ok()?;
    if !(HOOK_TIMEOUT_MIN_SECS..=HOOK_TIMEOUT_MAX_SECS).contains(&secs) {
        diags.push(
            Diag::error(Code::Duration, "`ready-timeout` is out of range")
                .label(timeout.span, format!("{secs} seconds"))
                .help("a launch lifecycle hook waits 30 seconds to 2 hours (PT30S to PT2H)"),
        );
        return None;
    }
    Some(Signals {
        timeout: timeout.value,
        timeout_secs: secs,
        ready_unit: rollout.str_or_default("ready-unit")?.value,
        ready_command: rollout.str("ready-command").map(|c| c.value),
        min_success_percent: None,
    })
}

#[cfg(test)]
mod tests {
    use crate::check::plan::{Plan, Rollout};
    use crate::diag::{Code, Diag};
    use crate::source::SourceFile;
    use crate::spec::schema::RECOMMENDED_SUSPEND;

    fn check(fleet_body: &str, fleet_props: &str) -> (Option<Plan>, Vec<Diag>) {
        let text = format!(
            r#"stack "web" region="us-east-1"
image "web" {{
    base ami="ami-0123456789abcdef0" arch="x86_64"
}}
fleet "web" image="web" instance-type="m7i.large" {fleet_props} {{
    subnets "subnet-0a1b2c3d4e5f60718"
    size min=1 max=2
    {fleet_body}
}}
"#
        );
        crate::check_source(&SourceFile::new("t.kdl", text))
    }

    const SG: &str = r#"security-groups "sg-0123456789abcdef0""#;

    #[test]
    fn a_fleet_without_security_groups_is_warned_about() {
        let (plan, diags) = check(r#"rollout "rolling""#, "");
        assert!(plan.is_some());
        let codes: Vec<Code> = diags.iter().map(|d| d.code).collect();
        assert_eq!(codes, vec![Code::DefaultSecurityGroup]);
        assert!(!diags[0].is_error());
        let (_, diags) = check(&format!("{SG}\n    rollout \"rolling\""), "");
        assert!(diags.is_empty(), "{diags:?}");
    }

    fn suspended(body: &str) -> Vec<String> {
        let (plan, diags) = check(&format!("{SG}\n    {body}"), "");
        match plan.unwrap_or_else(|| panic!("{diags:?}")).fleets[0]
            .rollout
            .clone()
        {
            Rollout::Rolling { suspend, .. } => suspend,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rolling_updates_suspend_what_aws_recommends_unless_told_otherwise() {
        assert_eq!(suspended(r#"rollout "rolling""#), RECOMMENDED_SUSPEND);
        assert_eq!(
            suspended(r#"rollout "rolling" { suspend "HealthCheck"; }"#),
            vec!["HealthCheck"]
        );
        assert!(suspended(r#"rollout "rolling" { suspend; }"#).is_empty());
    }

    #[test]
    fn instance_refresh_waits_for_readiness_with_a_bounded_hook() {
        let (plan, diags) = check(&format!("{SG}\n    rollout \"instance-refresh\""), "");
        let plan = plan.unwrap_or_else(|| panic!("{diags:?}"));
        let ready = plan.fleets[0].rollout.readiness().unwrap().clone();
        assert_eq!(
            (ready.timeout_secs, ready.ready_unit.as_str()),
            (900, "system-manager.target")
        );
        assert!(plan.fleets[0].rollout.signals().is_none());
        let (plan, _) = check(
            &format!(
                "{SG}\n    rollout \"instance-refresh\" ready-timeout=\"PT30S\" ready-unit=\"api.service\""
            ),
            "",
        );
        let ready = plan.unwrap().fleets[0].rollout.readiness().unwrap().clone();
        assert_eq!(
            (ready.timeout_secs, ready.ready_unit.as_str()),
            (30, "api.service")
        );
        for bad in ["PT29S", "PT2H1S"] {
            let (plan, diags) = check(
                &format!("{SG}\n    rollout \"instance-refresh\" ready-timeout=\"{bad}\""),
                "",
            );
            assert!(plan.is_none(), "{bad}");
            assert_eq!(diags[0].code, Code::Duration, "{bad}");
        }
    }

    #[test]
    fn imds_hop_limit_defaults_to_one() {
        let body = format!("{SG}\n    rollout \"rolling\"");
        assert_eq!(check(&body, "").0.unwrap().fleets[0].imds_hop_limit, 1);
        assert_eq!(
            check(&body, "imds-hop-limit=2").0.unwrap().fleets[0].imds_hop_limit,
            2
        );
    }
}

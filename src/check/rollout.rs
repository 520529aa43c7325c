//! A fleet's `rollout`: the rules of the three strategies (`rolling`, `replacing`, `instance-refresh`) and the
//! signals new instances send.

use super::duration_within;
use super::fleet;
use super::plan::{Rollout, Signals};
use crate::diag::{Code, Diag, Diags};
use crate::source::Spanned;
use crate::spec::Item;

const PAUSE_MAX_SECS: u64 = 3600;
const SIGNAL_TIMEOUT_MAX_SECS: u64 = 12 * 3600;
const CHECKPOINT_DELAY_MAX_SECS: u64 = 48 * 3600;

pub(super) fn rollout_plan(
    item: &Item,
    max: Option<&Spanned<i128>>,
    running: Option<&Spanned<i128>>,
    diags: &mut Diags,
) -> Option<Rollout> {
    let strategy = item.arg_str(0)?;
    match strategy.value.as_str() {
        "rolling" => rolling(item, max, running, diags),
        "replacing" => {
            let Some(timeout) = item.str("signal-timeout") else {
                diags.push(
                    Diag::error(Code::Missing, "a `replacing` rollout needs `signal-timeout`")
                        .label(strategy.span, "the new group must signal before it replaces the old one")
                        .help("add e.g. signal-timeout=\"PT15M\": how long CloudFormation waits for the new instances"),
                );
                return None;
            };
            Some(Rollout::Replacing {
                signals: signals(item, &timeout, diags)?,
            })
        }
        _ => refresh(item, diags),
    }
}

pub(super) fn signals(
    item: &Item,
    timeout: &Spanned<String>,
    diags: &mut Diags,
) -> Option<Signals> {
    let timeout_secs =
        duration_within(timeout, SIGNAL_TIMEOUT_MAX_SECS, "`signal-timeout`", diags)?;
    Some(Signals {
        timeout: timeout.value.clone(),
        timeout_secs,
        ready_unit: item.str_or_default("ready-unit")?.value,
        ready_command: item.str("ready-command").map(|c| c.value),
        min_success_percent: item
            .int("min-success-percent")
            .and_then(|p| u32::try_from(p.value).ok()),
    })
}

pub(super) fn rolling(
    item: &Item,
    max: Option<&Spanned<i128>>,
    running: Option<&Spanned<i128>>,
    diags: &mut Diags,
) -> Option<Rollout> {
    let mut ok = true;
    let min_in_service = item.int_or_default("min-in-service")?;
    if let Some(max) = max
        && min_in_service.value >= max.value
    {
        ok = false;
        diags.push(
            Diag::error(
                Code::MinInService,
                "`min-in-service` must be below the group's `max`",
            )
            .label(
                min_in_service.span,
                format!("min-in-service is {}", min_in_service.value),
            )
            .label(max.span, format!("max is {}", max.value))
            .help("CloudFormation needs room above min-in-service to launch new instances"),
        );
    } else if let Some(running) = running
        && min_in_service.value > running.value
    {
        ok = false;
        diags.push(
            Diag::error(
                Code::MinInService,
                "`min-in-service` is above the group's desired size",
            )
            .label(
                min_in_service.span,
                format!("min-in-service is {}", min_in_service.value),
            )
            .label(running.span, format!("the group runs {}", running.value))
            .help("the update would wait for instances that never exist; lower min-in-service"),
        );
    }
    let pause = item.str("pause");
    if let Some(p) = &pause {
        ok &= duration_within(p, PAUSE_MAX_SECS, "`pause`", diags).is_some();
    }
    let wait = item.bool_or_default("wait-for-signals")?;
    let signals = if wait.value {
        match &pause {
            None => {
                diags.push(
                    Diag::error(Code::SignalsNeedPause, "`wait-for-signals` needs a `pause`")
                        .label(wait.span, "instances signal")
                        .label(item.name_span, "no `pause` given")
                        .help("with signals, `pause` is how long CloudFormation waits for each batch; add e.g. pause=\"PT10M\" (at most PT1H)"),
                );
                None
            }
            Some(p) => {
                let timeout = item.str("signal-timeout").unwrap_or_else(|| p.clone());
                signals(item, &timeout, diags)
            }
        }
    } else {
        for name in [
            "min-success-percent",
            "signal-timeout",
            "ready-unit",
            "ready-command",
        ] {
            if let Some(span) = item
                .props
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.span)
            {
                ok = false;
                diags.push(
                    Diag::error(
                        Code::SuccessPercentNeedsSignals,
                        format!("`{name}` needs `wait-for-signals=#true`"),
                    )
                    .label(span, "only used when instances signal")
                    .help("add wait-for-signals=#true and a pause, or remove this property"),
                );
            }
        }
        None
    };
    if wait.value && signals.is_none() {
        return None;
    }
    let suspend = fleet::suspended_processes(item);
    ok.then(|| Rollout::Rolling {
        max_batch: item
            .int_or_default("max-batch")
            .and_then(|v| u32::try_from(v.value).ok())
            .unwrap_or(1),
        min_in_service: u32::try_from(min_in_service.value).unwrap_or(0),
        pause: pause.map(|p| p.value),
        signals,
        suspend,
    })
}

pub(super) fn refresh(item: &Item, diags: &mut Diags) -> Option<Rollout> {
    let mut ok = true;
    let min_healthy = item.int_or_default("min-healthy")?;
    let max_healthy = item.int_or_default("max-healthy")?;
    if min_healthy.value >= max_healthy.value || max_healthy.value - min_healthy.value > 100 {
        ok = false;
        diags.push(
            Diag::error(
                Code::HealthyPercent,
                "`min-healthy` and `max-healthy` leave the refresh no room",
            )
            .label(
                min_healthy.span,
                format!("min-healthy is {}", min_healthy.value),
            )
            .label(
                max_healthy.span,
                format!("max-healthy is {}", max_healthy.value),
            )
            .help("EC2 Auto Scaling needs min-healthy < max-healthy, at most 100 apart"),
        );
    }
    let warmup_secs = match item.str("warmup") {
        Some(w) => Some(duration_within(
            &w,
            CHECKPOINT_DELAY_MAX_SECS,
            "`warmup`",
            diags,
        )?),
        None => None,
    };
    let checkpoints_node = item.child("checkpoints");
    let checkpoints = checkpoints_node.map(Item::arg_ints).unwrap_or_default();
    for pair in checkpoints.windows(2) {
        if pair[1].value <= pair[0].value {
            ok = false;
            diags.push(
                Diag::error(Code::Checkpoints, "checkpoints must rise")
                    .label(pair[1].span, format!("{} comes after {}", pair[1].value, pair[0].value))
                    .label(pair[0].span, "previous checkpoint")
                    .help("list checkpoint percentages in increasing order, e.g. `checkpoints 25 50 100`"),
            );
        }
    }
    let checkpoint_delay_secs = match item.str("checkpoint-delay") {
        Some(d) => {
            if checkpoints.is_empty() {
                ok = false;
                diags.push(
                    Diag::error(Code::Checkpoints, "`checkpoint-delay` needs `checkpoints`")
                        .label(d.span, "there is no checkpoint to wait at")
                        .help("add a child node, e.g. `rollout \"instance-refresh\" checkpoint-delay=\"PT10M\" { checkpoints 50 100 }`"),
                );
            }
            Some(duration_within(
                &d,
                CHECKPOINT_DELAY_MAX_SECS,
                "`checkpoint-delay`",
                diags,
            )?)
        }
        None => None,
    };
    let ready = fleet::refresh_readiness(item, diags);
    let ready = ready?;
    ok.then(|| Rollout::InstanceRefresh {
        min_healthy: u32::try_from(min_healthy.value).unwrap_or(90),
        max_healthy: u32::try_from(max_healthy.value).unwrap_or(100),
        warmup_secs,
        checkpoints: checkpoints
            .iter()
            .filter_map(|c| u32::try_from(c.value).ok())
            .collect(),
        checkpoint_delay_secs,
        skip_matching: item
            .bool_or_default("skip-matching")
            .is_none_or(|b| b.value),
        ready,
    })
}

//! `bake plan`/`deploy`/`status`/`destroy` end to end: the real binary against a real moto server.
//!
//! moto has no Image Builder, so these specs run fleets on a pinned AMI (a real user feature: no build, no lock
//! entry). moto needs real subnet ids: the tests read its default VPC's subnets with EC2 `DescribeSubnets` over
//! plain HTTP (`curl`). Every test uses its own stack names and never resets moto (the server is shared).
//!
//! Peers: `BAKE_TEST_MOTO_URL` (e.g. `http://127.0.0.1:5000`), fake AWS credentials and `AWS_REGION` in the
//! environment, `curl` on PATH. A test whose peer is absent is reported as ignored with the reason, unless
//! `BAKE_TEST_REQUIRE_PEERS=1` (CI), where it fails (tests/common/peers.rs).

mod common;
use common::peers::{Peer, Suite, moto_url};

fn main() {
    let mut suite = Suite::new();
    let moto = &[Peer::Moto, Peer::Curl];
    suite.test(
        "create_update_noop_status_destroy",
        moto,
        create_update_noop_status_destroy,
    );
    suite.test(
        "missing_subnet_fails_with_the_cause_and_leaves_nothing",
        &[Peer::Moto],
        missing_subnet_fails_with_the_cause_and_leaves_nothing,
    );
    suite.test(
        "no_terminal_without_yes_changes_nothing",
        moto,
        no_terminal_without_yes_changes_nothing,
    );
    suite.test(
        "unreachable_endpoint_is_an_environment_error",
        &[],
        unreachable_endpoint_is_an_environment_error,
    );
    suite.run()
}

#[path = "support/stack.rs"]
mod stack;

use stack::{bake, default_subnet, expect, text, unique, write_spec};

fn create_update_noop_status_destroy() {
    let url = moto_url();
    let dir = tempfile::tempdir().unwrap();
    let stack = unique("life");
    let subnet = default_subnet(&url, "us-east-1");
    write_spec(dir.path(), &stack, "us-east-1", &subnet, 2);

    let plan = bake(
        dir.path(),
        &url,
        &["plan", "app.kdl", "--detailed-exitcode"],
    );
    expect(&plan, 10, "+ FleetWebGroup");
    expect(
        &plan,
        10,
        "Plan: 5 to add, 0 to change (0 replaced), 0 to remove.",
    );

    let create = bake(dir.path(), &url, &["deploy", "app.kdl", "--yes"]);
    expect(
        &create,
        0,
        &format!("Deployed stack {stack} in us-east-1 (account 123456789012): CREATE_COMPLETE."),
    );

    let again = bake(dir.path(), &url, &["deploy", "app.kdl", "--yes"]);
    expect(&again, 0, "No changes");
    let plan = bake(
        dir.path(),
        &url,
        &["plan", "app.kdl", "--detailed-exitcode"],
    );
    expect(&plan, 0, "No changes");

    let status = bake(dir.path(), &url, &["status", "app.kdl"]);
    expect(&status, 0, "CREATE_COMPLETE");
    expect(&status, 0, "The deployed template matches the spec.");

    write_spec(dir.path(), &stack, "us-east-1", &subnet, 3);
    let plan = bake(
        dir.path(),
        &url,
        &["plan", "app.kdl", "--format", "json", "--detailed-exitcode"],
    );
    assert_eq!(plan.status.code(), Some(10), "{}", text(&plan));
    let v: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    assert_eq!(v["operation"], "update");
    assert_eq!(v["changes"][0]["action"], "Modify", "{v}");
    assert_eq!(v["changes"][0]["logical_id"], "FleetWebGroup", "{v}");
    assert_eq!(v["changes"][0]["spec"], "fleet \"web\"", "{v}");

    let update = bake(dir.path(), &url, &["deploy", "app.kdl", "--yes"]);
    expect(
        &update,
        0,
        &format!("Deployed stack {stack} in us-east-1 (account 123456789012): UPDATE_COMPLETE."),
    );
    let status = bake(dir.path(), &url, &["status", "app.kdl", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(v["status"], "UPDATE_COMPLETE", "{v}");
    assert_eq!(v["matches_spec"], true, "{v}");

    let refused = bake(dir.path(), &url, &["destroy", "app.kdl"]);
    expect(&refused, 5, "pass --yes");
    let destroy = bake(dir.path(), &url, &["destroy", "app.kdl", "--yes"]);
    expect(
        &destroy,
        0,
        &format!("Destroyed stack {stack} in us-east-1 (account 123456789012)."),
    );
    let gone = bake(dir.path(), &url, &["status", "app.kdl"]);
    expect(&gone, 0, "does not exist");
}

fn missing_subnet_fails_with_the_cause_and_leaves_nothing() {
    let url = moto_url();
    let dir = tempfile::tempdir().unwrap();
    let stack = unique("subnet");
    write_spec(
        dir.path(),
        &stack,
        "us-east-1",
        "subnet-0123456789abcdef0",
        2,
    );
    let deploy = bake(dir.path(), &url, &["deploy", "app.kdl", "--yes"]);
    expect(&deploy, 4, "InvalidSubnetID.NotFound");
    expect(&deploy, 4, "next: nothing was created");
    let status = bake(dir.path(), &url, &["status", "app.kdl"]);
    expect(&status, 0, "does not exist");
}

fn no_terminal_without_yes_changes_nothing() {
    let url = moto_url();
    let dir = tempfile::tempdir().unwrap();
    let stack = unique("notty");
    write_spec(
        dir.path(),
        &stack,
        "us-east-1",
        &default_subnet(&url, "us-east-1"),
        2,
    );
    let deploy = bake(dir.path(), &url, &["deploy", "app.kdl"]);
    expect(&deploy, 5, "no terminal to confirm on; pass --yes");
    let status = bake(dir.path(), &url, &["status", "app.kdl"]);
    expect(&status, 0, "does not exist");
}

fn unreachable_endpoint_is_an_environment_error() {
    // No moto needed: nothing listens on port 9 of loopback.
    let dir = tempfile::tempdir().unwrap();
    write_spec(
        dir.path(),
        &unique("down"),
        "us-east-1",
        "subnet-0123456789abcdef0",
        2,
    );
    let out = bake(dir.path(), "http://127.0.0.1:9", &["plan", "app.kdl"]);
    expect(&out, 3, "error: cannot describe stack");
    expect(
        &out,
        3,
        "cannot reach CloudFormation in us-east-1 (at http://127.0.0.1:9): connection refused",
    );
    assert!(out.stdout.is_empty(), "errors go to stderr: {}", text(&out));
}

//! `bake plan`/`deploy`/`status`/`destroy` through a scripted CloudFormation (`FakeCfn` implements bake's `Cfn`
//! trait): the paths moto cannot produce — rollbacks with nested reasons, throttling, a server dying mid-watch,
//! Ctrl-C — plus the decision points (no changes, declined, no terminal). Time is tokio's paused clock, so the
//! watcher's sleeps take no real time. The plain transcripts are snapshotted.

mod common;

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io::Write;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use bake::aws::{Failure, Kind};
use bake::check::plan::Plan;
use bake::deploy::cfn::{
    Cfn, CfnError, ChangeSet, ChangeSetKind, ChangeSetRequest, ResourceChange, Stack, StackEvent,
};
use bake::deploy::events::{Category, SpecNode, clean_reason, root_cause, spec_node};
use bake::deploy::{self, Options, Target, Ui, change_set_name};
use bake::exit;
use bake::lock::Lock;
use bake::source::SourceFile;

const STACK_ID: &str = "arn:aws:cloudformation:us-east-1:123456789012:stack/web/1";
const T0: i64 = 1_790_000_000_000;

// ---- the fake -------------------------------------------------------------------------------------------------

#[derive(Default)]
struct FakeCfn {
    /// The stack before anything is executed or deleted.
    before: Option<Stack>,
    /// The stack after `execute_change_set` or `delete_stack`.
    after: Option<Stack>,
    /// When not empty, `describe_stack` answers from here instead (the last one repeats).
    answers: RefCell<VecDeque<Option<Stack>>>,
    template: Option<String>,
    change_set: ChangeSet,
    create_error: Option<CfnError>,
    execute_error: Option<CfnError>,
    /// Events before the operation (newest first).
    old_events: Vec<StackEvent>,
    /// One answer per poll after the operation started; the last one repeats.
    polls: RefCell<VecDeque<Result<Vec<StackEvent>, CfnError>>>,
    started: Cell<bool>,
    polled: Cell<usize>,
    calls: RefCell<Vec<String>>,
    requests: RefCell<Vec<ChangeSetRequest>>,
}

impl FakeCfn {
    fn log(&self, call: impl Into<String>) {
        self.calls.borrow_mut().push(call.into());
    }

    fn called(&self, prefix: &str) -> bool {
        self.calls.borrow().iter().any(|c| c.starts_with(prefix))
    }
}

impl Cfn for FakeCfn {
    async fn describe_stack(&self, _stack: &str) -> Result<Option<Stack>, CfnError> {
        self.log("describe_stack");
        let mut answers = self.answers.borrow_mut();
        if answers.len() > 1 {
            return Ok(answers.pop_front().unwrap());
        }
        if let Some(a) = answers.front() {
            return Ok(a.clone());
        }
        Ok(if self.started.get() {
            self.after.clone()
        } else {
            self.before.clone()
        })
    }

    async fn get_template(&self, _stack: &str) -> Result<Option<String>, CfnError> {
        self.log("get_template");
        Ok(self.template.clone())
    }

    async fn create_change_set(
        &self,
        request: &ChangeSetRequest,
    ) -> Result<(String, String), CfnError> {
        self.log(format!("create_change_set {:?}", request.kind));
        self.requests.borrow_mut().push(request.clone());
        match &self.create_error {
            Some(e) => Err(e.clone()),
            None => Ok(("cs-1".into(), STACK_ID.into())),
        }
    }

    async fn describe_change_set(&self, _stack: &str, _id: &str) -> Result<ChangeSet, CfnError> {
        self.log("describe_change_set");
        Ok(self.change_set.clone())
    }

    async fn execute_change_set(
        &self,
        _stack: &str,
        _id: &str,
        disable_rollback: bool,
    ) -> Result<(), CfnError> {
        self.log(format!("execute_change_set rollback={}", !disable_rollback));
        self.started.set(true);
        match &self.execute_error {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    async fn delete_change_set(&self, _stack: &str, _id: &str) -> Result<(), CfnError> {
        self.log("delete_change_set");
        Ok(())
    }

    async fn delete_stack(&self, _stack: &str) -> Result<(), CfnError> {
        self.log("delete_stack");
        self.started.set(true);
        Ok(())
    }

    async fn stack_events(&self, _stack: &str, _since: i64) -> Result<Vec<StackEvent>, CfnError> {
        if !self.started.get() {
            return Ok(self.old_events.clone());
        }
        let n = self.polled.get() + 1;
        self.polled.set(n);
        let mut polls = self.polls.borrow_mut();
        let answer = if polls.len() > 1 {
            polls.pop_front()
        } else {
            polls.front().cloned()
        };
        answer.unwrap_or_else(|| Ok(self.old_events.clone()))
    }
}

// ---- helpers ---------------------------------------------------------------------------------------------------

fn ev(n: u32, secs: i64, logical: &str, kind: &str, status: &str, reason: &str) -> StackEvent {
    StackEvent {
        id: format!("e{n}"),
        timestamp_ms: T0 + secs * 1000,
        logical_id: logical.into(),
        resource_type: kind.into(),
        status: status.into(),
        reason: (!reason.is_empty()).then(|| reason.into()),
    }
}

fn stack_ev(n: u32, secs: i64, status: &str, reason: &str) -> StackEvent {
    ev(n, secs, "web", "AWS::CloudFormation::Stack", status, reason)
}

/// Poll answers from batches of new events (oldest first): each answer holds everything so far, newest first,
/// as `DescribeStackEvents` does.
fn polls(
    old: &[StackEvent],
    batches: Vec<Vec<StackEvent>>,
) -> RefCell<VecDeque<Result<Vec<StackEvent>, CfnError>>> {
    let mut all: Vec<StackEvent> = old.iter().rev().cloned().collect();
    let mut out = VecDeque::new();
    for batch in batches {
        all.extend(batch);
        out.push_back(Ok(all.iter().rev().cloned().collect()));
    }
    RefCell::new(out)
}

fn stack(status: &str) -> Stack {
    Stack {
        id: STACK_ID.into(),
        name: "web".into(),
        status: status.into(),
        tags: vec![
            ("team".into(), "platform".into()),
            ("service".into(), "web".into()),
        ],
        ..Stack::default()
    }
}

fn change(
    action: &str,
    logical: &str,
    kind: &str,
    replacement: Option<&str>,
    props: &[&str],
) -> ResourceChange {
    ResourceChange {
        action: action.into(),
        logical_id: logical.into(),
        resource_type: kind.into(),
        replacement: replacement.map(Into::into),
        properties: props.iter().map(|p| (*p).to_owned()).collect(),
    }
}

fn ready(changes: Vec<ResourceChange>) -> ChangeSet {
    ChangeSet {
        id: "cs-1".into(),
        status: "CREATE_COMPLETE".into(),
        status_reason: None,
        changes,
    }
}

/// A compiled example spec: its plan and template.
struct Compiled {
    plan: Plan,
    template: String,
}

fn compiled(spec: &str) -> Compiled {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("specs")
        .join(spec);
    let file = common::read(&path);
    let (plan, diags) = bake::check_source(&file);
    let lock_path = bake::cli::default_lock_path(&path);
    let lock = Lock::from_json(&std::fs::read_to_string(lock_path).unwrap()).unwrap();
    let c = bake::pipeline::build(&file, plan.unwrap(), diags, &lock).unwrap();
    let template = c.template().to_owned();
    Compiled {
        plan: c.plan,
        template,
    }
}

#[derive(Clone, Copy)]
enum Verb {
    Plan,
    Deploy,
    Status,
    Destroy,
}

impl Compiled {
    /// Runs one command against the fake, with the session's answers, and gives the session back to look at.
    async fn run(
        &self,
        mut s: Session,
        verb: Verb,
        fake: &FakeCfn,
        options: Options,
    ) -> (u8, Session) {
        let code = self
            .run_with(&mut s, verb, fake, &self.template, options)
            .await;
        (code, s)
    }

    async fn run_with(
        &self,
        s: &mut Session,
        verb: Verb,
        fake: &FakeCfn,
        template: &str,
        options: Options,
    ) -> u8 {
        let store = bake::deploy::template_store::TemplateStore::InlineOnly;
        let target = Target {
            plan: &self.plan,
            template,
            spec: "specs/web.kdl".into(),
            region: self.plan.stack.region.clone(),
            store: &store,
        };
        match verb {
            Verb::Plan => deploy::plan(fake, &target, options, &mut s.ui).await,
            Verb::Deploy => deploy::deploy(fake, &target, options, &mut s.ui).await,
            Verb::Status => deploy::status(fake, &target, options, &mut s.ui).await,
            Verb::Destroy => deploy::destroy(fake, &target, options, &mut s.ui).await,
        }
    }
}

#[derive(Clone, Default)]
struct Buf(Rc<RefCell<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buf {
    fn text(&self) -> String {
        String::from_utf8(self.0.borrow().clone()).unwrap()
    }
}

struct Session {
    ui: Ui,
    /// Everything printed, errors included, in order (in the binary, deploy's narration and errors share stderr).
    out: Buf,
    /// What went to `Ui::out` alone (stdout for `plan` and `status`).
    stdout: Buf,
    /// Errors and warnings alone (always stderr).
    err: Buf,
    json: Buf,
    asked: Rc<RefCell<Vec<String>>>,
}

/// A UI that records everything; `answer` is what the confirmation returns (`None`: no terminal).
fn session(answer: Option<bool>, json: bool) -> Session {
    let out = Buf::default();
    let stdout = Buf::default();
    let err = Buf::default();
    let json_buf = Buf::default();
    let asked = Rc::new(RefCell::new(Vec::new()));
    let asked2 = Rc::clone(&asked);
    let ui = Ui {
        out: Box::new(Tee(out.clone(), stdout.clone())),
        err: Box::new(Tee(out.clone(), err.clone())),
        json: json.then(|| Box::new(json_buf.clone()) as Box<dyn Write>),
        live: false,
        verbose: false,
        confirm: Box::new(move |q: &str| {
            asked2.borrow_mut().push(q.to_owned());
            answer
        }),
        started: Arc::new(AtomicBool::new(false)),
    };
    Session {
        ui,
        out,
        stdout,
        err,
        json: json_buf,
        asked,
    }
}

/// Writes to both: the transcript and the errors alone.
struct Tee(Buf, Buf);

impl Write for Tee {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.write_all(data)?;
        self.1.write_all(data)?;
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const YES: Options = Options {
    yes: true,
    detach: false,
    no_rollback: false,
    detailed_exitcode: false,
    watch: false,
    timeout: Options::DEFAULT_TIMEOUT,
};

fn first_create_fake() -> FakeCfn {
    let mut after = stack("CREATE_COMPLETE");
    after.outputs = vec![
        ("ImageWebAmiId".into(), "ami-0ac48d91c7d16772c".into()),
        ("FleetWebGroupName".into(), "web-FleetWebGroup-1A2B".into()),
    ];
    FakeCfn {
        after: Some(after),
        change_set: ready(vec![
            change("Add", "FleetWebRole", "AWS::IAM::Role", None, &[]),
            change(
                "Add",
                "FleetWebProfile",
                "AWS::IAM::InstanceProfile",
                None,
                &[],
            ),
            change(
                "Add",
                "FleetWebLaunchTemplate",
                "AWS::EC2::LaunchTemplate",
                None,
                &[],
            ),
            change(
                "Add",
                "FleetWebGroup",
                "AWS::AutoScaling::AutoScalingGroup",
                None,
                &[],
            ),
        ]),
        polls: polls(
            &[],
            vec![
                vec![stack_ev(1, 0, "REVIEW_IN_PROGRESS", "User Initiated")],
                vec![
                    stack_ev(2, 1, "CREATE_IN_PROGRESS", "User Initiated"),
                    ev(
                        3,
                        2,
                        "FleetWebRole",
                        "AWS::IAM::Role",
                        "CREATE_IN_PROGRESS",
                        "",
                    ),
                ],
                vec![],
                vec![
                    ev(
                        4,
                        17,
                        "FleetWebRole",
                        "AWS::IAM::Role",
                        "CREATE_COMPLETE",
                        "",
                    ),
                    ev(
                        5,
                        18,
                        "FleetWebProfile",
                        "AWS::IAM::InstanceProfile",
                        "CREATE_IN_PROGRESS",
                        "",
                    ),
                ],
                vec![
                    ev(
                        6,
                        140,
                        "FleetWebProfile",
                        "AWS::IAM::InstanceProfile",
                        "CREATE_COMPLETE",
                        "",
                    ),
                    ev(
                        7,
                        141,
                        "FleetWebLaunchTemplate",
                        "AWS::EC2::LaunchTemplate",
                        "CREATE_COMPLETE",
                        "",
                    ),
                    ev(
                        8,
                        142,
                        "FleetWebGroup",
                        "AWS::AutoScaling::AutoScalingGroup",
                        "CREATE_IN_PROGRESS",
                        "",
                    ),
                ],
                vec![
                    ev(
                        9,
                        260,
                        "FleetWebGroup",
                        "AWS::AutoScaling::AutoScalingGroup",
                        "CREATE_COMPLETE",
                        "",
                    ),
                    stack_ev(10, 261, "CREATE_COMPLETE", ""),
                ],
            ],
        ),
        ..FakeCfn::default()
    }
}

// ---- deploy ----------------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn first_create_succeeds_and_prints_outputs() {
    let spec = compiled("rollback.kdl");
    let fake = first_create_fake();
    let s = session(Some(true), false);
    let (code, s) = spec.run(s, Verb::Deploy, &fake, Options::default()).await;
    assert_eq!(code, 0, "{}", s.out.text());
    assert_eq!(s.asked.borrow().len(), 1, "asks once without --yes");
    let requests = fake.requests.borrow();
    assert_eq!(requests[0].kind, ChangeSetKind::Create);
    assert_eq!(requests[0].tags, spec.plan.stack.tags);
    assert!(fake.called("execute_change_set rollback=true"));
    insta::assert_snapshot!(s.out.text());
}

#[tokio::test(start_paused = true)]
async fn a_stack_name_tag_is_left_to_the_template() {
    let mut spec = compiled("rollback.kdl");
    spec.plan.stack.tags.extend([
        ("Name".to_owned(), "shop".to_owned()),
        ("name".to_owned(), "shop".to_owned()),
    ]);
    let fake = first_create_fake();
    let (code, s) = spec
        .run(session(None, false), Verb::Deploy, &fake, YES)
        .await;
    assert_eq!(code, 0, "{}", s.out.text());
    let requests = fake.requests.borrow();
    let keys: Vec<&str> = requests[0].tags.iter().map(|(k, _)| k.as_str()).collect();
    // Tag keys are case-sensitive: only `Name` competes with the fleets' own `Name`.
    assert!(!keys.contains(&"Name"), "{keys:?}");
    assert!(keys.contains(&"name"), "{keys:?}");
    let others: Vec<_> = spec
        .plan
        .stack
        .tags
        .iter()
        .filter(|(k, _)| k != "Name")
        .cloned()
        .collect();
    assert_eq!(requests[0].tags, others);
}

#[tokio::test(start_paused = true)]
async fn first_create_as_ndjson() {
    let spec = compiled("rollback.kdl");
    let fake = first_create_fake();
    let s = session(None, true);
    let (code, s) = spec.run(s, Verb::Deploy, &fake, YES).await;
    assert_eq!(code, 0);
    let lines: Vec<serde_json::Value> = s
        .json
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).expect("every line is JSON"))
        .collect();
    assert_eq!(lines[0]["status"], "changes", "the plan comes first");
    let events: Vec<&str> = lines
        .iter()
        .filter(|l| l["type"] == "event")
        .map(|l| l["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        events,
        ["e1", "e2", "e3", "e4", "e5", "e6", "e7", "e8", "e9", "e10"],
        "oldest first, each once"
    );
    let last = lines.last().unwrap();
    assert_eq!(last["type"], "result");
    assert_eq!(last["ok"], true);
}

/// An update that rebuilds the image fails in the build; CloudFormation cancels the rest and rolls back.
fn failed_update_fake(plan_template: &str) -> FakeCfn {
    let mut old: serde_json::Value = serde_json::from_str(plan_template).unwrap();
    old["Metadata"]["bake"]["images"]["web"]["flake-rev"] =
        "0123456789abcdef0123456789abcdef01234567".into();
    let old_events = vec![stack_ev(1, -86_400, "UPDATE_COMPLETE", "")];
    FakeCfn {
        before: Some(stack("UPDATE_COMPLETE")),
        after: Some(stack("UPDATE_ROLLBACK_COMPLETE")),
        template: Some(old.to_string()),
        change_set: ready(vec![
            change(
                "Modify",
                "ImageWebComponent",
                "AWS::ImageBuilder::Component",
                Some("True"),
                &["Data", "Version"],
            ),
            change(
                "Modify",
                "ImageWebRecipe",
                "AWS::ImageBuilder::ImageRecipe",
                Some("True"),
                &["Components", "Version"],
            ),
            change(
                "Modify",
                "ImageWeb",
                "AWS::ImageBuilder::Image",
                Some("True"),
                &["ImageRecipeArn"],
            ),
            change(
                "Modify",
                "FleetWebLaunchTemplate",
                "AWS::EC2::LaunchTemplate",
                Some("False"),
                &["LaunchTemplateData"],
            ),
            change(
                "Modify",
                "FleetWebGroup",
                "AWS::AutoScaling::AutoScalingGroup",
                Some("Conditional"),
                &["LaunchTemplate"],
            ),
            change(
                "Modify",
                "FleetWebRole",
                "AWS::IAM::Role",
                Some("False"),
                &["ManagedPolicyArns"],
            ),
        ]),
        polls: polls(
            &old_events,
            vec![
                vec![stack_ev(2, 0, "UPDATE_IN_PROGRESS", "User Initiated")],
                vec![
                    ev(
                        3,
                        3,
                        "ImageWebComponent",
                        "AWS::ImageBuilder::Component",
                        "UPDATE_COMPLETE",
                        "",
                    ),
                    ev(
                        4,
                        5,
                        "ImageWebRecipe",
                        "AWS::ImageBuilder::ImageRecipe",
                        "UPDATE_COMPLETE",
                        "",
                    ),
                    ev(
                        5,
                        6,
                        "ImageWeb",
                        "AWS::ImageBuilder::Image",
                        "UPDATE_IN_PROGRESS",
                        "",
                    ),
                    ev(
                        6,
                        7,
                        "FleetWebRole",
                        "AWS::IAM::Role",
                        "UPDATE_IN_PROGRESS",
                        "",
                    ),
                ],
                vec![],
                vec![],
                vec![
                    ev(
                        7,
                        1_720,
                        "ImageWeb",
                        "AWS::ImageBuilder::Image",
                        "UPDATE_FAILED",
                        "Resource handler returned message: \"Image status: FAILED. Reason: Workflow step ApplySystemManager failed: \
                         system-manager switch exited with status 1\" (RequestToken: 5d4c, HandlerErrorCode: GeneralServiceException)",
                    ),
                    ev(
                        8,
                        1_721,
                        "FleetWebRole",
                        "AWS::IAM::Role",
                        "UPDATE_FAILED",
                        "Resource update cancelled",
                    ),
                    stack_ev(
                        9,
                        1_722,
                        "UPDATE_ROLLBACK_IN_PROGRESS",
                        "The following resource(s) failed to update: [ImageWeb, FleetWebRole]. ",
                    ),
                ],
                vec![
                    ev(
                        10,
                        1_800,
                        "ImageWebRecipe",
                        "AWS::ImageBuilder::ImageRecipe",
                        "UPDATE_COMPLETE",
                        "",
                    ),
                    stack_ev(
                        11,
                        1_830,
                        "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS",
                        "",
                    ),
                    stack_ev(12, 1_860, "UPDATE_ROLLBACK_COMPLETE", ""),
                ],
            ],
        ),
        old_events,
        ..FakeCfn::default()
    }
}

#[tokio::test(start_paused = true)]
async fn failed_update_names_the_root_cause_not_the_cascade() {
    let spec = compiled("web.kdl");
    let fake = failed_update_fake(&spec.template);
    let s = session(None, false);
    let (code, s) = spec.run(s, Verb::Deploy, &fake, YES).await;
    assert_eq!(code, exit::FAILED);
    assert_eq!(fake.requests.borrow()[0].kind, ChangeSetKind::Update);
    let text = s.out.text();
    assert!(
        text.contains("root cause: ImageWeb (AWS::ImageBuilder::Image, from image \"web\""),
        "{text}"
    );
    assert!(!text.contains("root cause: FleetWebRole"), "{text}");
    insta::assert_snapshot!(text);
}

#[tokio::test(start_paused = true)]
async fn plan_explains_why_and_flags_replacements_and_iam() {
    let spec = compiled("web.kdl");
    let fake = failed_update_fake(&spec.template);
    let s = session(None, false);
    let options = Options {
        detailed_exitcode: true,
        ..Options::default()
    };
    let (code, s) = spec.run(s, Verb::Plan, &fake, options).await;
    assert_eq!(code, exit::CHANGES);
    assert!(
        fake.called("delete_change_set"),
        "a plan leaves no change set behind"
    );
    assert!(
        !fake.called("delete_stack"),
        "an update plan never deletes the stack"
    );
    assert!(!fake.called("execute"));
    insta::assert_snapshot!(s.out.text());
}

#[tokio::test(start_paused = true)]
async fn plan_as_json() {
    let spec = compiled("web.kdl");
    let fake = failed_update_fake(&spec.template);
    let s = session(None, true);
    let (code, s) = spec.run(s, Verb::Plan, &fake, Options::default()).await;
    assert_eq!(code, 0, "without --detailed-exitcode changes exit 0");
    let v: serde_json::Value = serde_json::from_str(s.json.text().trim()).unwrap();
    assert_eq!(v["summary"]["replace"], 3);
    assert_eq!(v["summary"]["iam_or_security"], 1);
    let image = &v["changes"][2];
    assert_eq!(image["spec"], "image \"web\"");
    assert!(
        image["reasons"][0]
            .as_str()
            .unwrap()
            .starts_with("flake revision 0123456789ab → "),
        "{image}"
    );
}

#[tokio::test(start_paused = true)]
async fn identical_template_skips_the_change_set() {
    let spec = compiled("web.kdl");
    let fake = FakeCfn {
        before: Some(stack("UPDATE_COMPLETE")),
        template: Some(spec.template.clone()),
        ..FakeCfn::default()
    };
    let s = session(None, false);
    let (code, s) = spec.run(s, Verb::Deploy, &fake, Options::default()).await;
    assert_eq!(code, 0);
    assert!(!fake.called("create_change_set"));
    assert_eq!(
        s.out.text(),
        "No changes: stack web in us-east-1 (account 123456789012) is up to date (the deployed template is identical).\n"
    );
}

#[tokio::test(start_paused = true)]
async fn empty_change_set_is_no_changes() {
    let spec = compiled("web.kdl");
    let fake = FakeCfn {
        before: Some(stack("UPDATE_COMPLETE")),
        template: Some("{}".into()),
        change_set: ChangeSet {
            id: "cs-1".into(),
            status: "FAILED".into(),
            status_reason: Some(
                "The submitted information didn't contain changes. Submit different information to create a change set."
                    .into(),
            ),
            changes: vec![],
        },
        ..FakeCfn::default()
    };
    let s = session(None, false);
    let options = Options {
        detailed_exitcode: true,
        ..Options::default()
    };
    let (code, s) = spec.run(s, Verb::Plan, &fake, options).await;
    assert_eq!(code, 0);
    assert!(fake.called("delete_change_set"));
    assert!(s.out.text().starts_with("No changes"));
}

#[tokio::test(start_paused = true)]
async fn declining_deletes_the_change_set_and_the_empty_stack() {
    let spec = compiled("rollback.kdl");
    let fake = first_create_fake();
    let s = session(Some(false), false);
    let (code, s) = spec.run(s, Verb::Deploy, &fake, Options::default()).await;
    assert_eq!(code, exit::NOT_CONFIRMED);
    assert!(fake.called("delete_change_set"));
    assert!(fake.called("delete_stack"));
    assert!(!fake.called("execute"));
    assert!(
        s.out
            .text()
            .ends_with("Declined. The change set was deleted; nothing was changed.\n")
    );
}

#[tokio::test(start_paused = true)]
async fn no_terminal_and_no_yes_refuses() {
    let spec = compiled("rollback.kdl");
    let fake = first_create_fake();
    let s = session(None, false);
    let (code, s) = spec.run(s, Verb::Deploy, &fake, Options::default()).await;
    assert_eq!(code, exit::NOT_CONFIRMED);
    assert!(!fake.called("execute"));
    assert!(
        s.out
            .text()
            .contains("no terminal to confirm on; pass --yes")
    );
}

#[tokio::test(start_paused = true)]
async fn throttling_slows_down_and_carries_on() {
    let spec = compiled("rollback.kdl");
    let fake = first_create_fake();
    {
        let mut p = fake.polls.borrow_mut();
        p.insert(2, Err(CfnError::Throttled("Rate exceeded".into())));
        p.insert(3, Err(CfnError::Throttled("Rate exceeded".into())));
    }
    let s = session(None, false);
    let started = tokio::time::Instant::now();
    let (code, s) = spec.run(s, Verb::Deploy, &fake, YES).await;
    assert_eq!(code, 0);
    let text = s.out.text();
    assert!(
        text.contains("throttled by CloudFormation; polling every 2s"),
        "{text}"
    );
    assert!(
        text.contains("throttled by CloudFormation; polling every 4s"),
        "{text}"
    );
    assert!(started.elapsed() >= std::time::Duration::from_secs(6));
    assert_eq!(
        text.matches("CREATE_COMPLETE          AWS::CloudFormation::Stack")
            .count(),
        1,
        "no duplicate events"
    );
}

#[tokio::test(start_paused = true)]
async fn server_dying_mid_watch_says_how_to_resume() {
    let spec = compiled("rollback.kdl");
    let fake = first_create_fake();
    {
        let mut p = fake.polls.borrow_mut();
        p.truncate(2);
        p.push_back(Err(CfnError::Transport(Failure::new(
            Kind::Network,
            "cannot reach CloudFormation in us-east-1: connection refused",
        ))));
    }
    let s = session(None, false);
    let (code, s) = spec.run(s, Verb::Deploy, &fake, YES).await;
    assert_eq!(code, exit::ENV);
    insta::assert_snapshot!(s.out.text());
}

#[tokio::test(start_paused = true)]
async fn execute_rejected_is_terminal_and_removes_the_empty_stack() {
    // moto reports resource errors on ExecuteChangeSet itself; the stack stays in REVIEW_IN_PROGRESS.
    let spec = compiled("rollback.kdl");
    let fake = FakeCfn {
        after: Some(stack("REVIEW_IN_PROGRESS")),
        execute_error: Some(CfnError::Service {
            code: "InvalidSubnetID.NotFound".into(),
            message: "The subnet ID 'subnet-0a1b2c3d4e5f60718' does not exist".into(),
        }),
        ..first_create_fake()
    };
    let s = session(None, false);
    let (code, s) = spec.run(s, Verb::Deploy, &fake, YES).await;
    assert_eq!(code, exit::FAILED);
    assert!(fake.called("delete_stack"));
    assert_eq!(fake.polled.get(), 0, "nothing to watch");
    insta::assert_snapshot!(s.out.text());
}

#[tokio::test(start_paused = true)]
async fn rolled_back_create_must_be_destroyed_first() {
    let spec = compiled("rollback.kdl");
    let fake = FakeCfn {
        before: Some(stack("ROLLBACK_COMPLETE")),
        ..FakeCfn::default()
    };
    let s = session(None, false);
    let (code, s) = spec.run(s, Verb::Deploy, &fake, YES).await;
    assert_eq!(code, exit::FAILED);
    assert!(!fake.called("create_change_set"));
    assert!(
        s.out
            .text()
            .contains("run `bake destroy specs/web.kdl`, then `bake deploy specs/web.kdl`")
    );
}

#[tokio::test(start_paused = true)]
async fn busy_stack_is_left_alone() {
    let spec = compiled("rollback.kdl");
    let fake = FakeCfn {
        before: Some(stack("UPDATE_IN_PROGRESS")),
        ..FakeCfn::default()
    };
    let s = session(None, false);
    let (code, s) = spec.run(s, Verb::Deploy, &fake, YES).await;
    assert_eq!(code, exit::ENV);
    assert!(s.out.text().contains("`bake status specs/web.kdl --watch`"));
}

#[tokio::test(start_paused = true)]
async fn oversized_template_is_refused_before_any_call() {
    let spec = compiled("rollback.kdl");
    let big = format!("{{\"Description\": \"{}\"}}", "x".repeat(60_000));
    let fake = FakeCfn::default();
    let mut s = session(None, false);
    let code = spec.run_with(&mut s, Verb::Deploy, &fake, &big, YES).await;
    assert_eq!(code, exit::SPEC);
    assert!(fake.calls.borrow().is_empty());
    assert!(
        s.out
            .text()
            .contains("CloudFormation takes at most 51200 bytes inline")
    );
}

#[tokio::test(start_paused = true)]
async fn detach_returns_after_execution() {
    let spec = compiled("rollback.kdl");
    let fake = first_create_fake();
    let s = session(None, false);
    let options = Options {
        detach: true,
        no_rollback: true,
        ..YES
    };
    let (code, s) = spec.run(s, Verb::Deploy, &fake, options).await;
    assert_eq!(code, 0);
    assert!(fake.called("execute_change_set rollback=false"));
    assert_eq!(fake.polled.get(), 0);
    assert!(
        s.out.text().ends_with(
            "Deploying stack web in us-east-1 (account 123456789012); follow it with `bake status specs/web.kdl --watch`.\n"
        )
    );
}

#[tokio::test(start_paused = true)]
async fn stack_vanishing_mid_watch_is_lost_contact_not_a_failure() {
    let spec = compiled("rollback.kdl");
    let fake = FakeCfn {
        after: None,
        ..first_create_fake()
    };
    {
        let mut p = fake.polls.borrow_mut();
        p.truncate(2);
        p.push_back(Err(CfnError::Service {
            code: "ValidationError".into(),
            message: format!("Stack with id {STACK_ID} does not exist"),
        }));
    }
    let (code, s) = spec
        .run(session(None, false), Verb::Deploy, &fake, YES)
        .await;
    assert_eq!(code, exit::ENV, "{}", s.out.text());
    let text = s.err.text();
    assert!(
        text.contains(
            "lost contact: stack web is no longer found in us-east-1 (account 123456789012)"
        ),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "look: `bake status specs/web.kdl`, or `aws cloudformation describe-stacks --region us-east-1 --stack-name {STACK_ID}`"
        )),
        "{text}"
    );
    assert!(
        !s.out.text().contains("DELETE_COMPLETE"),
        "no invented status"
    );
    assert!(!s.out.text().contains("failed"), "not a failed deployment");
}

#[tokio::test(start_paused = true)]
async fn a_stack_busy_at_execution_is_exit_3_like_a_stack_busy_at_plan() {
    let spec = compiled("rollback.kdl");
    let busy_now = FakeCfn {
        execute_error: Some(CfnError::Service {
            code: "ValidationError".into(),
            message: format!(
                "Stack:{STACK_ID} is in UPDATE_IN_PROGRESS state and can not be updated."
            ),
        }),
        ..first_create_fake()
    };
    let (code, at_execute) = spec
        .run(session(None, false), Verb::Deploy, &busy_now, YES)
        .await;
    assert_eq!(code, exit::ENV, "{}", at_execute.out.text());
    let busy_before = FakeCfn {
        before: Some(stack("UPDATE_IN_PROGRESS")),
        ..FakeCfn::default()
    };
    let (code, at_plan) = spec
        .run(session(None, false), Verb::Deploy, &busy_before, YES)
        .await;
    assert_eq!(code, exit::ENV);
    let expected = "error: stack web in us-east-1 (account 123456789012) is busy (UPDATE_IN_PROGRESS); \
                    wait for it: `bake status specs/web.kdl --watch`\n";
    assert_eq!(at_plan.err.text(), expected);
    assert!(
        at_execute.err.text().ends_with(expected),
        "{}",
        at_execute.err.text()
    );
}

#[tokio::test(start_paused = true)]
async fn plan_errors_go_to_stderr_not_into_the_plan() {
    let spec = compiled("rollback.kdl");
    let fake = FakeCfn {
        create_error: Some(CfnError::Transport(Failure::new(
            Kind::BadAnswer,
            "no readable answer from CloudFormation in us-east-1: HTTP 403 with \"<html>\"",
        ))),
        ..FakeCfn::default()
    };
    let (code, s) = spec
        .run(session(None, false), Verb::Plan, &fake, Options::default())
        .await;
    assert_eq!(code, exit::ENV);
    assert_eq!(s.stdout.text(), "", "nothing on stdout");
    assert_eq!(
        s.err.text(),
        "error: cannot create a change set: no readable answer from CloudFormation in us-east-1: HTTP 403 with \"<html>\"\n"
    );
}

#[test]
fn change_set_names_are_unique_and_valid() {
    let names: Vec<String> = (0..2000).map(|_| change_set_name()).collect();
    let distinct: std::collections::HashSet<&String> = names.iter().collect();
    assert_eq!(
        distinct.len(),
        names.len(),
        "two runs in the same millisecond get different names"
    );
    let pid = format!("-{}-", std::process::id());
    for n in &names {
        assert!(n.len() <= 128, "{n}");
        assert!(n.starts_with("bake-2"), "{n}");
        assert!(n.contains(&pid), "traceable to the process: {n}");
        assert!(
            n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'),
            "CloudFormation's grammar [a-zA-Z][-a-zA-Z0-9]*: {n}"
        );
    }
}

// ---- status and destroy ----------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn status_shows_state_outputs_and_drift_from_the_spec() {
    let spec = compiled("rollback.kdl");
    let mut deployed = stack("UPDATE_COMPLETE");
    deployed.outputs = vec![("ImageWebAmiId".into(), "ami-0ac48d91c7d16772c".into())];
    let fake = FakeCfn {
        before: Some(deployed),
        template: Some(spec.template.clone()),
        ..FakeCfn::default()
    };
    let s = session(None, false);
    let (code, s) = spec.run(s, Verb::Status, &fake, Options::default()).await;
    assert_eq!(code, 0);
    insta::assert_snapshot!(s.out.text(), @r#"
    Stack web in us-east-1 (account 123456789012): UPDATE_COMPLETE
      ImageWebAmiId = ami-0ac48d91c7d16772c  (image "web")
    The deployed template matches the spec.
    "#);
}

#[tokio::test(start_paused = true)]
async fn status_watch_follows_an_operation_in_progress() {
    let spec = compiled("rollback.kdl");
    let started = vec![
        stack_ev(1, -3_600, "CREATE_COMPLETE", ""),
        stack_ev(2, 0, "UPDATE_IN_PROGRESS", "User Initiated"),
        ev(
            3,
            1,
            "FleetWebGroup",
            "AWS::AutoScaling::AutoScalingGroup",
            "UPDATE_IN_PROGRESS",
            "",
        ),
    ];
    let fake = FakeCfn {
        answers: RefCell::new(
            [
                Some(stack("UPDATE_IN_PROGRESS")),
                Some(stack("UPDATE_COMPLETE")),
            ]
            .into(),
        ),
        polls: polls(
            &[],
            vec![
                started.clone(),
                vec![],
                vec![
                    ev(
                        4,
                        95,
                        "FleetWebGroup",
                        "AWS::AutoScaling::AutoScalingGroup",
                        "UPDATE_COMPLETE",
                        "",
                    ),
                    stack_ev(5, 96, "UPDATE_COMPLETE", ""),
                ],
            ],
        ),
        started: Cell::new(true),
        ..FakeCfn::default()
    };
    let s = session(None, false);
    let options = Options {
        watch: true,
        ..Options::default()
    };
    let (code, s) = spec.run(s, Verb::Status, &fake, options).await;
    assert_eq!(code, 0);
    insta::assert_snapshot!(s.out.text(), @r"
    Stack web in us-east-1 (account 123456789012) is UPDATE_IN_PROGRESS; watching.
         0s  web                          UPDATE_IN_PROGRESS       AWS::CloudFormation::Stack
             User Initiated
         1s  FleetWebGroup                UPDATE_IN_PROGRESS       AWS::AutoScaling::AutoScalingGroup
      1m35s  FleetWebGroup                UPDATE_COMPLETE          AWS::AutoScaling::AutoScalingGroup
      1m36s  web                          UPDATE_COMPLETE          AWS::CloudFormation::Stack

    Deployed stack web in us-east-1 (account 123456789012): UPDATE_COMPLETE.
    ");
}

#[tokio::test(start_paused = true)]
async fn destroy_confirms_and_watches() {
    let spec = compiled("rollback.kdl");
    let old = vec![stack_ev(1, -60, "UPDATE_COMPLETE", "")];
    let fake = FakeCfn {
        before: Some(stack("UPDATE_COMPLETE")),
        after: None,
        polls: polls(
            &old,
            vec![vec![
                stack_ev(2, 0, "DELETE_IN_PROGRESS", "User Initiated"),
                ev(
                    3,
                    30,
                    "FleetWebGroup",
                    "AWS::AutoScaling::AutoScalingGroup",
                    "DELETE_COMPLETE",
                    "",
                ),
                stack_ev(4, 31, "DELETE_COMPLETE", ""),
            ]],
        ),
        old_events: old,
        ..FakeCfn::default()
    };
    let s = session(Some(true), false);
    let (code, s) = spec.run(s, Verb::Destroy, &fake, Options::default()).await;
    assert_eq!(code, 0);
    assert_eq!(
        s.asked.borrow()[0],
        "Delete stack web (UPDATE_COMPLETE) in us-east-1 (account 123456789012) and every resource in it?"
    );
    insta::assert_snapshot!(s.out.text(), @r"
         0s  web                          DELETE_IN_PROGRESS       AWS::CloudFormation::Stack
             User Initiated
        30s  FleetWebGroup                DELETE_COMPLETE          AWS::AutoScaling::AutoScalingGroup
        31s  web                          DELETE_COMPLETE          AWS::CloudFormation::Stack

    Destroyed stack web in us-east-1 (account 123456789012).
    ");
}

#[tokio::test(start_paused = true)]
async fn destroy_without_terminal_refuses() {
    let spec = compiled("rollback.kdl");
    let fake = FakeCfn {
        before: Some(stack("UPDATE_COMPLETE")),
        ..FakeCfn::default()
    };
    let s = session(None, false);
    let (code, _) = spec.run(s, Verb::Destroy, &fake, Options::default()).await;
    assert_eq!(code, exit::NOT_CONFIRMED);
    assert!(!fake.called("delete_stack"));
}

// ---- the pieces ------------------------------------------------------------------------------------------------

#[test]
fn status_categories_cover_unknown_values() {
    assert_eq!(Category::of("REVIEW_IN_PROGRESS"), Category::Pending);
    assert_eq!(
        Category::of("UPDATE_COMPLETE_CLEANUP_IN_PROGRESS"),
        Category::InProgress
    );
    assert_eq!(Category::of("UPDATE_ROLLBACK_COMPLETE"), Category::Failed);
    assert_eq!(Category::of("ROLLBACK_COMPLETE"), Category::Failed);
    assert_eq!(Category::of("CREATE_FAILED"), Category::Failed);
    assert_eq!(Category::of("IMPORT_COMPLETE"), Category::Complete);
    assert_eq!(Category::of("UPDATE_SKIPPED"), Category::Cancelled);
    // A status this bake has never heard of: keep watching rather than declare victory.
    assert_eq!(Category::of("SOMETHING_NEW"), Category::InProgress);
}

#[test]
fn handler_wrapping_is_removed_from_reasons() {
    assert_eq!(
        clean_reason(
            "Resource handler returned message: \"Image status: FAILED\" (RequestToken: 1-2, HandlerErrorCode: GeneralServiceException)"
        ),
        "Image status: FAILED (GeneralServiceException)"
    );
    assert_eq!(clean_reason("  plain reason "), "plain reason");
}

#[test]
fn logical_ids_map_back_to_the_longest_matching_name() {
    let text = r#"
stack "s" region="us-east-1"
image "web" {
    base ami="ami-0ac48d91c7d16772c" arch="x86_64"
}
fleet "web" image="web" instance-type="t3.micro" {
    subnets "subnet-0a1b2c3d4e5f60718"
    size min=0 max=1
    rollout "rolling" max-batch=1 min-in-service=0
}
fleet "web-api" image="web" instance-type="t3.micro" {
    subnets "subnet-0a1b2c3d4e5f60718"
    size min=0 max=1
    rollout "rolling" max-batch=1 min-in-service=0
}
"#;
    let file = SourceFile::new("s.kdl", text.to_owned());
    let (plan, diags) = bake::check_source(&file);
    let plan = plan.unwrap_or_else(|| panic!("{diags:?}"));
    assert_eq!(
        spec_node(&plan, "FleetWebApiGroup"),
        Some(SpecNode::Fleet("web-api".into()))
    );
    assert_eq!(
        spec_node(&plan, "FleetWebGroup"),
        Some(SpecNode::Fleet("web".into()))
    );
    assert_eq!(
        spec_node(&plan, "ImageWebAmiId"),
        Some(SpecNode::Image("web".into()))
    );
    assert_eq!(spec_node(&plan, "Other"), None);
}

#[test]
fn root_cause_falls_back_to_the_stack_reason() {
    let events = vec![
        stack_ev(1, 0, "CREATE_IN_PROGRESS", "User Initiated"),
        stack_ev(
            2,
            5,
            "ROLLBACK_IN_PROGRESS",
            "The following resource(s) failed to create: [X].",
        ),
        stack_ev(3, 9, "ROLLBACK_COMPLETE", ""),
        ev(
            4,
            3,
            "X",
            "AWS::IAM::Role",
            "CREATE_FAILED",
            "Resource creation cancelled",
        ),
    ];
    assert_eq!(
        root_cause(&events, "web").map(|e| e.id.as_str()),
        Some("e4"),
        "a cascade beats nothing"
    );
    assert_eq!(
        root_cause(&events[..3], "web").map(|e| e.id.as_str()),
        Some("e2")
    );
}

//! The deploy commands against a failing AWS: the real binary, in front of it a thin real TCP proxy on loopback
//! (written here, std::net) that forwards to moto, or accepts and never answers, or freezes once the stack
//! operation has started, or answers like a misconfigured corporate proxy (HTML 403). Also: no credentials, a
//! closed port, Ctrl-C and SIGTERM while a call hangs, `--region`, and concurrent plans.
//!
//! Tests that need moto read `BAKE_TEST_MOTO_URL`; without it they print why and pass, unless
//! `BAKE_TEST_REQUIRE_PEERS=1`. The others need nothing but loopback. Every wait is bounded.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[path = "support/stack.rs"]
mod stack;

use stack::{default_subnet, text, unique, write_spec};

#[path = "support/http.rs"]
mod http;
use http::{forward, read_request};

mod common;
use common::peers::{Peer, Suite, moto_url};

fn main() {
    let mut suite = Suite::new();
    suite.test(
        "an_endpoint_that_never_answers_times_out_with_exit_3",
        &[],
        an_endpoint_that_never_answers_times_out_with_exit_3,
    );
    suite.test(
        "ctrl_c_while_a_call_hangs_ends_bake_at_once",
        &[],
        ctrl_c_while_a_call_hangs_ends_bake_at_once,
    );
    suite.test(
        "a_proxys_html_403_is_reported_as_what_came_back",
        &[],
        a_proxys_html_403_is_reported_as_what_came_back,
    );
    suite.test(
        "access_denied_throttling_and_expired_credentials_say_what_to_do",
        &[],
        access_denied_throttling_and_expired_credentials_say_what_to_do,
    );
    suite.test(
        "no_credentials_is_one_sentence_with_the_next_step",
        &[],
        no_credentials_is_one_sentence_with_the_next_step,
    );
    suite.test(
        "a_closed_port_is_no_connection_for_every_command",
        &[],
        a_closed_port_is_no_connection_for_every_command,
    );
    suite.test(
        "a_region_that_is_not_a_region_name_is_a_usage_error",
        &[],
        a_region_that_is_not_a_region_name_is_a_usage_error,
    );
    suite.test(
        "a_watch_that_freezes_loses_contact_within_the_timeout",
        &[Peer::Moto, Peer::Curl],
        a_watch_that_freezes_loses_contact_within_the_timeout,
    );
    suite.test(
        "an_execution_without_an_answer_says_how_to_see_whether_it_started",
        &[Peer::Moto, Peer::Curl],
        an_execution_without_an_answer_says_how_to_see_whether_it_started,
    );
    suite.test(
        "ctrl_c_mid_watch_ends_bake_with_130_and_the_resume_hint",
        &[Peer::Moto, Peer::Curl],
        ctrl_c_mid_watch_ends_bake_with_130_and_the_resume_hint,
    );
    suite.test(
        "sigterm_mid_watch_ends_bake_with_143_and_the_resume_hint",
        &[Peer::Moto, Peer::Curl],
        sigterm_mid_watch_ends_bake_with_143_and_the_resume_hint,
    );
    suite.test(
        "ctrl_c_at_the_confirmation_prompt_ends_bake",
        &[Peer::Moto, Peer::Curl, Peer::Script],
        ctrl_c_at_the_confirmation_prompt_ends_bake,
    );
    suite.test(
        "messages_name_the_region_the_calls_go_to",
        &[Peer::Moto, Peer::Curl],
        messages_name_the_region_the_calls_go_to,
    );
    suite.test(
        "concurrent_plans_get_their_own_change_sets",
        &[Peer::Moto, Peer::Curl],
        concurrent_plans_get_their_own_change_sets,
    );
    suite.run()
}

// ---- the proxy -------------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Accept, read the request, never answer.
    Freeze,
    /// Forward until `ExecuteChangeSet` or `DeleteStack` has been answered, then freeze every request.
    FreezeAfterStart,
    /// Forward everything but `ExecuteChangeSet`, which is held without an answer.
    FreezeExecute,
    /// Answer every request with an HTML 403 page, as a proxy that blocks the host does.
    Html403,
    /// Answer every request with CloudFormation's own XML error: HTTP status, code, message.
    Fail(u16, &'static str, &'static str),
}

struct Proxy {
    url: String,
    /// Requests the mode acted on so far: held without an answer, or answered with the `Fail` error.
    caught: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    fn start(mode: Mode, upstream: Option<&str>) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let upstream = upstream.map(|u| u.trim_start_matches("http://").to_owned());
        let caught = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let started = Arc::new(AtomicBool::new(false));
        let (f, s) = (Arc::clone(&caught), Arc::clone(&stop));
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(300);
            while !s.load(Ordering::SeqCst) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let state = Conn {
                            mode,
                            upstream: upstream.clone(),
                            caught: Arc::clone(&f),
                            stop: Arc::clone(&s),
                            started: Arc::clone(&started),
                        };
                        std::thread::spawn(move || state.serve(conn));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Proxy { url, caught, stop }
    }

    /// Waits (at most `limit`) until a request is being held.
    fn wait_held(&self, limit: Duration) {
        let start = Instant::now();
        while self.caught.load(Ordering::SeqCst) == 0 {
            assert!(start.elapsed() < limit, "no request was held by the proxy");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

struct Conn {
    mode: Mode,
    upstream: Option<String>,
    caught: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    started: Arc<AtomicBool>,
}

impl Conn {
    /// One request per connection: moto closes after each answer (we ask it to), and so does the proxy, which
    /// the client sees in the `Connection: close` of the answer.
    fn serve(self, mut conn: TcpStream) {
        conn.set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let Some((head, body)) = read_request(&mut conn) else {
            return;
        };
        let text = String::from_utf8_lossy(&body).into_owned();
        let freeze = self.mode == Mode::Freeze
            || (self.mode == Mode::FreezeAfterStart && self.started.load(Ordering::SeqCst))
            || (self.mode == Mode::FreezeExecute && text.contains("Action=ExecuteChangeSet"));
        if freeze {
            self.caught.fetch_add(1, Ordering::SeqCst);
            let until = Instant::now() + Duration::from_secs(120);
            while !self.stop.load(Ordering::SeqCst) && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(20));
            }
            return;
        }
        if self.mode == Mode::Html403 {
            let page = "<html>\r\n<head><title>403 Forbidden</title></head>\r\n<body>Access to this host is blocked \
                        by policy</body></html>";
            let _ = write!(
                conn,
                "HTTP/1.1 403 Forbidden\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
                page.len()
            );
            return;
        }
        if let Mode::Fail(status, code, message) = self.mode {
            self.caught.fetch_add(1, Ordering::SeqCst);
            let xml = format!(
                "<ErrorResponse xmlns=\"http://cloudformation.amazonaws.com/doc/2010-05-15/\"><Error><Type>Sender</Type>\
                 <Code>{code}</Code><Message>{message}</Message></Error><RequestId>0</RequestId></ErrorResponse>"
            );
            let _ = write!(
                conn,
                "HTTP/1.1 {status} Error\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{xml}",
                xml.len()
            );
            return;
        }
        let Some(answer) = self.forward(&head, &body) else {
            return;
        };
        if conn.write_all(&answer).is_ok()
            && (text.contains("Action=ExecuteChangeSet") || text.contains("Action=DeleteStack"))
        {
            self.started.store(true, Ordering::SeqCst);
        }
    }

    /// One request to moto on a fresh connection, `Connection: close`, read to the end.
    fn forward(&self, head: &str, body: &[u8]) -> Option<Vec<u8>> {
        forward(self.upstream.as_deref()?, head, body)
    }
}

// ---- running bake ----------------------------------------------------------------------------------------------

/// The binary in `dir`, pointed at `endpoint` with fake credentials, nothing else from the caller's AWS setup.
fn bake(dir: &Path, endpoint: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bake"));
    cmd.args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir)
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Waits for the process at most `limit`; kills it and fails the test past that.
fn finish(mut child: Child, limit: Duration) -> (Output, Duration) {
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return (child.wait_with_output().unwrap(), start.elapsed());
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("bake did not end within {limit:?}:\n{}", text(&out));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn run(cmd: &mut Command, limit: Duration) -> (Output, Duration) {
    finish(cmd.spawn().expect("bake runs"), limit)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The raw SDK report, which only `--verbose` may show.
fn assert_no_dump(out: &Output) {
    let all = text(out);
    for raw in [
        "DispatchFailure",
        "ConnectorError",
        "ProviderAttempt",
        "SdkError",
        "headers",
    ] {
        assert!(!all.contains(raw), "{raw} without -v:\n{all}");
    }
}

fn kill(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

// ---- an endpoint that never answers ------------------------------------------------------------------------------

fn an_endpoint_that_never_answers_times_out_with_exit_3() {
    let proxy = Proxy::start(Mode::Freeze, None);
    let dir = offline_spec("freeze");
    for args in [
        &["status", "app.kdl", "--timeout", "2"][..],
        &["plan", "app.kdl", "--timeout", "2"],
        &["deploy", "app.kdl", "--yes", "--timeout", "2"],
        &["destroy", "app.kdl", "--yes", "--timeout", "2"],
    ] {
        let (out, took) = run(
            &mut bake(dir.path(), &proxy.url, args),
            Duration::from_secs(30),
        );
        assert_eq!(out.status.code(), Some(3), "{args:?}\n{}", text(&out));
        let expected = format!(
            "CloudFormation in us-east-1 (at {}) did not answer within 2 s; check network/proxy/VPC endpoint, \
             or raise --timeout",
            proxy.url
        );
        assert!(stderr(&out).contains(&expected), "{args:?}\n{}", text(&out));
        assert!(
            out.stdout.is_empty(),
            "{args:?}: errors go to stderr\n{}",
            text(&out)
        );
        assert!(took >= Duration::from_secs(2), "{args:?} waited {took:?}");
        // One call at a time is in the air, each bounded by 2 s (plus the outer 2 s of slack): never unbounded.
        assert!(took < Duration::from_secs(15), "{args:?} took {took:?}");
        assert_no_dump(&out);
    }
}

fn ctrl_c_while_a_call_hangs_ends_bake_at_once() {
    let proxy = Proxy::start(Mode::Freeze, None);
    let dir = offline_spec("intr");
    let child = bake(
        dir.path(),
        &proxy.url,
        &["plan", "app.kdl", "--timeout", "600"],
    )
    .spawn()
    .unwrap();
    proxy.wait_held(Duration::from_secs(30));
    let sent = Instant::now();
    kill(&child, "-INT");
    let (out, _) = finish(child, Duration::from_secs(10));
    assert!(
        sent.elapsed() < Duration::from_secs(3),
        "took {:?}",
        sent.elapsed()
    );
    assert_eq!(out.status.code(), Some(130), "{}", text(&out));
    assert!(
        stderr(&out)
            .contains("Interrupted (Ctrl-C) before anything was executed; nothing was changed"),
        "{}",
        text(&out)
    );
}

// ---- what comes back is not CloudFormation ---------------------------------------------------------------------

fn a_proxys_html_403_is_reported_as_what_came_back() {
    let proxy = Proxy::start(Mode::Html403, None);
    let dir = offline_spec("html");
    for verb in ["plan", "status"] {
        let (out, _) = run(
            &mut bake(dir.path(), &proxy.url, &[verb, "app.kdl"]),
            Duration::from_secs(30),
        );
        assert_eq!(out.status.code(), Some(3), "{}", text(&out));
        let err = stderr(&out);
        assert!(
            err.contains(&format!(
                "no readable answer from CloudFormation in us-east-1 (at {}): HTTP 403 with \
                 \"<html> <head><title>403 Forbidden</title></head> <body>Access to this host is bl…\"",
                proxy.url
            )),
            "{}",
            text(&out)
        );
        assert!(err.contains("a proxy or firewall in between?"), "{err}");
        assert!(out.stdout.is_empty(), "{}", text(&out));
        assert_no_dump(&out);
    }
}

fn access_denied_throttling_and_expired_credentials_say_what_to_do() {
    let dir = offline_spec("denied");
    let cases = [
        (
            Mode::Fail(
                403,
                "AccessDenied",
                "User: arn:aws:iam::123456789012:user/ci is not authorized to perform: cloudformation:DescribeStacks",
            ),
            "denied access (AccessDenied: User: arn:aws:iam::123456789012:user/ci is not authorized to perform: \
             cloudformation:DescribeStacks); the credentials' IAM policy must allow this call, or pass another `--profile`",
            1,
        ),
        (
            Mode::Fail(400, "Throttling", "Rate exceeded"),
            "throttled bake's calls even after retries (Throttling: Rate exceeded); wait a minute and run it again",
            3,
        ),
        (
            Mode::Fail(
                403,
                "ExpiredToken",
                "The security token included in the request is expired",
            ),
            "rejected the credentials (ExpiredToken: The security token included in the request is expired); they may \
             have expired: configure credentials with `aws configure` or `aws sso login`, or pass `--profile NAME`",
            1,
        ),
    ];
    for (mode, expected, attempts) in cases {
        let proxy = Proxy::start(mode, None);
        let (out, _) = run(
            &mut bake(dir.path(), &proxy.url, &["status", "app.kdl"]),
            Duration::from_secs(60),
        );
        assert_eq!(out.status.code(), Some(3), "{}", text(&out));
        assert!(
            stderr(&out).contains(&format!(
                "CloudFormation in us-east-1 (at {}) {expected}",
                proxy.url
            )),
            "{}",
            text(&out)
        );
        assert_eq!(stderr(&out).lines().count(), 1, "{}", text(&out));
        // The standard retry mode retries throttling (3 attempts in all), and nothing else here.
        assert_eq!(proxy.caught.load(Ordering::SeqCst), attempts, "{mode:?}");
        assert_no_dump(&out);
    }
}

// ---- no credentials, no network ----------------------------------------------------------------------------------

fn no_credentials_is_one_sentence_with_the_next_step() {
    let dir = offline_spec("nocreds");
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let empty_home = tempfile::tempdir().unwrap();
    let without_credentials = |args: &[&str]| {
        let mut cmd = bake(dir.path(), &url, args);
        cmd.env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env("HOME", empty_home.path());
        cmd
    };
    for verb in [
        &["plan", "app.kdl"][..],
        &["deploy", "app.kdl", "--yes"],
        &["status", "app.kdl"],
        &["destroy", "app.kdl", "--yes"],
    ] {
        let (out, _) = run(&mut without_credentials(verb), Duration::from_secs(60));
        assert_eq!(out.status.code(), Some(3), "{verb:?}\n{}", text(&out));
        let err = stderr(&out);
        assert!(
            err.contains("no usable AWS credentials for CloudFormation in us-east-1")
                && err.contains("(none were found); configure credentials with `aws configure` or `aws sso login`, or pass `--profile NAME`"),
            "{verb:?}\n{err}"
        );
        assert_eq!(err.lines().count(), 1, "one line:\n{err}");
        assert!(out.stdout.is_empty(), "{}", text(&out));
        assert_no_dump(&out);
    }
    let (out, _) = run(
        &mut without_credentials(&["status", "app.kdl", "--profile", "nope"]),
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        stderr(&out).contains("(none were found for profile `nope`)"),
        "{}",
        text(&out)
    );
    let mut verbose = without_credentials(&["status", "app.kdl", "-v"]);
    let (out, _) = run(&mut verbose, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("  detail: ") && stderr(&out).contains("CredentialsNotLoaded"),
        "-v shows the SDK's report:\n{}",
        text(&out)
    );
}

fn a_closed_port_is_no_connection_for_every_command() {
    let dir = offline_spec("closed");
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    for verb in [
        &["plan", "app.kdl"][..],
        &["deploy", "app.kdl", "--yes"],
        &["status", "app.kdl"],
        &["destroy", "app.kdl", "--yes"],
    ] {
        let (out, _) = run(&mut bake(dir.path(), &url, verb), Duration::from_secs(60));
        assert_eq!(out.status.code(), Some(3), "{verb:?}\n{}", text(&out));
        assert!(
            stderr(&out).contains(&format!(
                "cannot reach CloudFormation in us-east-1 (at {url}): connection refused; check that it is \
                 running, or unset AWS_ENDPOINT_URL"
            )),
            "{verb:?}\n{}",
            text(&out)
        );
        assert!(out.stdout.is_empty());
        assert_no_dump(&out);
    }
}

fn a_region_that_is_not_a_region_name_is_a_usage_error() {
    let dir = offline_spec("region");
    let (out, _) = run(
        &mut bake(
            dir.path(),
            "http://127.0.0.1:9",
            &["status", "app.kdl", "--region", "eu-west"],
        ),
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        stderr(&out).contains("`--region eu-west` is not an AWS region name such as eu-west-1")
    );
}

// ---- against moto ------------------------------------------------------------------------------------------------

fn a_watch_that_freezes_loses_contact_within_the_timeout() {
    let url = moto_url();
    let proxy = Proxy::start(Mode::FreezeAfterStart, Some(&url));
    let (dir, stack) = moto_spec(&url, "watchfreeze", "us-east-1");
    let start = Instant::now();
    let (out, _) = run(
        &mut bake(
            dir.path(),
            &proxy.url,
            &["deploy", "app.kdl", "--yes", "--timeout", "3"],
        ),
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        proxy.caught.load(Ordering::SeqCst) >= 1,
        "the watch was frozen"
    );
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "error: lost contact with CloudFormation while watching: CloudFormation in us-east-1 (at {}) did not \
             answer within 3 s; check network/proxy/VPC endpoint, or raise --timeout",
            proxy.url
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "The operation on stack {stack} in us-east-1 (account 123456789012) continues on AWS; resume watching \
             with `bake status app.kdl --watch`."
        )),
        "{err}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "{:?}",
        start.elapsed()
    );
    assert_no_dump(&out);
    drop(proxy);
    clean_up(dir.path(), &url);
}

fn an_execution_without_an_answer_says_how_to_see_whether_it_started() {
    let url = moto_url();
    let proxy = Proxy::start(Mode::FreezeExecute, Some(&url));
    let (dir, _) = moto_spec(&url, "execfreeze", "us-east-1");
    let (out, took) = run(
        &mut bake(
            dir.path(),
            &proxy.url,
            &["deploy", "app.kdl", "--yes", "--timeout", "3"],
        ),
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert_eq!(
        proxy.caught.load(Ordering::SeqCst),
        1,
        "the execution was held"
    );
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "error: cannot execute the change set: CloudFormation in us-east-1 (at {}) did not answer within 3 s",
            proxy.url
        )),
        "{err}"
    );
    assert!(
        err.contains(
            "The request may have reached CloudFormation: `bake status app.kdl --watch` shows whether the stack is changing."
        ),
        "{err}"
    );
    assert!(took < Duration::from_secs(30), "{took:?}");
    drop(proxy);
    clean_up(dir.path(), &url);
}

fn interrupt_mid_watch(signal: &str, code: i32, name: &str) {
    let url = moto_url();
    let proxy = Proxy::start(Mode::FreezeAfterStart, Some(&url));
    let (dir, stack) = moto_spec(&url, "sig", "us-east-1");
    let child = bake(
        dir.path(),
        &proxy.url,
        &["deploy", "app.kdl", "--yes", "--timeout", "600"],
    )
    .spawn()
    .unwrap();
    proxy.wait_held(Duration::from_secs(60));
    let sent = Instant::now();
    kill(&child, signal);
    let (out, _) = finish(child, Duration::from_secs(10));
    assert!(
        sent.elapsed() < Duration::from_secs(3),
        "took {:?}",
        sent.elapsed()
    );
    assert_eq!(out.status.code(), Some(code), "{}", text(&out));
    assert!(
        stderr(&out).contains(&format!(
            "Stopped ({name}). The operation on stack {stack} in us-east-1 continues on AWS and was not cancelled;\n  \
             resume watching with `bake status app.kdl --watch`."
        )),
        "{}",
        text(&out)
    );
    drop(proxy);
    clean_up(dir.path(), &url);
}

fn ctrl_c_mid_watch_ends_bake_with_130_and_the_resume_hint() {
    interrupt_mid_watch("-INT", 130, "Ctrl-C");
}

fn sigterm_mid_watch_ends_bake_with_143_and_the_resume_hint() {
    interrupt_mid_watch("-TERM", 143, "SIGTERM");
}

/// A fresh directory with a spec that never reaches a real AWS (its subnet does not exist anywhere).
fn offline_spec(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_spec(
        dir.path(),
        &unique(name),
        "us-east-1",
        "subnet-0123456789abcdef0",
        2,
    );
    dir
}

/// A fresh directory with a spec for a new stack on moto's default subnet in `region`.
fn moto_spec(url: &str, name: &str, region: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let stack = unique(name);
    write_spec(dir.path(), &stack, region, &default_subnet(url, region), 2);
    (dir, stack)
}

/// Deletes the test's stack on moto (directly, past any proxy), so moto does not fill up with test stacks.
fn clean_up(dir: &Path, url: &str) {
    let (gone, _) = run(
        &mut bake(dir, url, &["destroy", "app.kdl", "--yes"]),
        Duration::from_secs(60),
    );
    assert_eq!(gone.status.code(), Some(0), "{}", text(&gone));
}

/// The descendants of `pid` (through `/proc/PID/task/PID/children`), to find the bake that `script` started.
fn descendant_named(pid: u32, name: &str) -> Option<u32> {
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
    for child in children
        .split_whitespace()
        .filter_map(|c| c.parse::<u32>().ok())
    {
        let comm = std::fs::read_to_string(format!("/proc/{child}/comm")).unwrap_or_default();
        if comm.trim() == name {
            return Some(child);
        }
        if let Some(found) = descendant_named(child, name) {
            return Some(found);
        }
    }
    None
}

fn ctrl_c_at_the_confirmation_prompt_ends_bake() {
    let url = moto_url();
    let (dir, stack) = moto_spec(&url, "prompt", "us-east-1");
    // `script` gives bake a terminal, so it asks and blocks reading the answer; our pipe never sends one.
    let line = format!("{} deploy app.kdl", env!("CARGO_BIN_EXE_bake"));
    let env = bake(dir.path(), &url, &[]);
    let mut child = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .current_dir(dir.path())
        .env_clear()
        .envs(env.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut stdout = child.stdout.take().unwrap();
    let sink = Arc::clone(&seen);
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    let shown = || String::from_utf8_lossy(&seen.lock().unwrap()).into_owned();
    let start = Instant::now();
    while !shown().contains("[y/N]") {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no question:\n{}",
            shown()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        shown().contains(&format!(
            "Deploy these changes to stack {stack} in us-east-1 (account 123456789012)?"
        )),
        "{}",
        shown()
    );
    let pid = descendant_named(child.id(), "bake").expect("bake runs under script");
    let sent = Instant::now();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(10),
            "bake still waits:\n{}",
            shown()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        sent.elapsed() < Duration::from_secs(3),
        "took {:?}",
        sent.elapsed()
    );
    assert_eq!(status.code(), Some(130), "{}", shown());
    assert!(
        shown().contains("Interrupted (Ctrl-C) before anything was executed; nothing was changed"),
        "{}",
        shown()
    );
    clean_up(dir.path(), &url);
}

fn messages_name_the_region_the_calls_go_to() {
    let url = moto_url();
    let dir = tempfile::tempdir().unwrap();
    let stack = unique("euwest");
    // The spec says us-east-1; `--region eu-west-1` sends every call to eu-west-1, and every message says so.
    write_spec(
        dir.path(),
        &stack,
        "us-east-1",
        &default_subnet(&url, "eu-west-1"),
        2,
    );
    let eu = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--region", "eu-west-1"]);
        let (out, _) = run(&mut bake(dir.path(), &url, &all), Duration::from_secs(60));
        out
    };
    let missing = eu(&["status", "app.kdl"]);
    assert_eq!(missing.status.code(), Some(0), "{}", text(&missing));
    assert!(text(&missing).contains(&format!("Stack {stack} does not exist in eu-west-1;")));
    let plan = eu(&["plan", "app.kdl"]);
    assert!(
        text(&plan).contains(&format!(
            "Plan to create stack \"{stack}\" in eu-west-1 (account 123456789012):"
        )),
        "{}",
        text(&plan)
    );
    let deploy = eu(&["deploy", "app.kdl", "--yes"]);
    assert_eq!(deploy.status.code(), Some(0), "{}", text(&deploy));
    assert!(
        text(&deploy).contains(&format!(
            "Deployed stack {stack} in eu-west-1 (account 123456789012): CREATE_COMPLETE."
        )),
        "{}",
        text(&deploy)
    );
    let status = eu(&["status", "app.kdl"]);
    assert!(
        text(&status).contains(&format!(
            "Stack {stack} in eu-west-1 (account 123456789012): CREATE_COMPLETE"
        )),
        "{}",
        text(&status)
    );
    // And the spec's own region really is another place.
    let (home, _) = run(
        &mut bake(dir.path(), &url, &["status", "app.kdl"]),
        Duration::from_secs(60),
    );
    assert!(
        text(&home).contains("does not exist in us-east-1"),
        "{}",
        text(&home)
    );
    let destroy = eu(&["destroy", "app.kdl", "--yes"]);
    assert!(
        text(&destroy).contains(&format!(
            "Destroyed stack {stack} in eu-west-1 (account 123456789012)."
        )),
        "{}",
        text(&destroy)
    );
}

fn concurrent_plans_get_their_own_change_sets() {
    let url = moto_url();
    let dir = tempfile::tempdir().unwrap();
    let stack = unique("concurrent");
    let subnet = default_subnet(&url, "us-east-1");
    write_spec(dir.path(), &stack, "us-east-1", &subnet, 2);
    let (created, _) = run(
        &mut bake(dir.path(), &url, &["deploy", "app.kdl", "--yes"]),
        Duration::from_secs(60),
    );
    assert_eq!(created.status.code(), Some(0), "{}", text(&created));
    write_spec(dir.path(), &stack, "us-east-1", &subnet, 3);
    let children: Vec<Child> = (0..4)
        .map(|_| {
            bake(
                dir.path(),
                &url,
                &["plan", "app.kdl", "--detailed-exitcode"],
            )
            .spawn()
            .unwrap()
        })
        .collect();
    for child in children {
        let (out, _) = finish(child, Duration::from_secs(60));
        assert_eq!(out.status.code(), Some(10), "{}", text(&out));
        assert!(text(&out).contains("~ FleetWebGroup"), "{}", text(&out));
    }
    clean_up(dir.path(), &url);
}

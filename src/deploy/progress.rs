//! Printers for stack events: plain lines (CI, pipes, tests), a live indicatif view on a terminal, NDJSON.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;

use super::cfn::StackEvent;
use super::events::{Category, clean_reason};

/// Receives each new event once, oldest first. `zero_ms` is the timestamp of the operation's first event.
pub trait Progress {
    fn event(&mut self, event: &StackEvent, zero_ms: i64);
    /// A remark about the watching itself (throttling, a lost connection being retried).
    fn note(&mut self, text: &str);
    /// Clears anything live before the final summary is printed.
    fn finish(&mut self);
}

fn elapsed(event: &StackEvent, zero_ms: i64) -> String {
    let secs = (event.timestamp_ms - zero_ms).max(0) / 1000;
    if secs >= 3600 {
        format!("{}h{:02}m", secs / 3600, secs % 3600 / 60)
    } else if secs >= 60 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{secs}s")
    }
}

fn line(event: &StackEvent, zero_ms: i64) -> String {
    let mut s = format!(
        "{:>7}  {:<28} {:<24} {}",
        elapsed(event, zero_ms),
        event.logical_id,
        event.status,
        event.resource_type
    );
    if let Some(r) = event.reason.as_deref().filter(|r| !r.is_empty()) {
        s.push_str(&format!("\n{:>9}{}", "", clean_reason(r)));
    }
    s
}

/// One line per event, to any writer.
pub struct Plain<W: Write> {
    pub out: W,
}

impl<W: Write> Progress for Plain<W> {
    fn event(&mut self, event: &StackEvent, zero_ms: i64) {
        let _ = writeln!(self.out, "{}", line(event, zero_ms));
    }

    fn note(&mut self, text: &str) {
        let _ = writeln!(self.out, "{:>7}  {text}", "…");
    }

    fn finish(&mut self) {
        let _ = self.out.flush();
    }
}

/// One JSON object per line: `{"type":"event",...}` and `{"type":"note",...}`.
pub struct Json<W: Write> {
    pub out: W,
}

impl<W: Write> Progress for Json<W> {
    fn event(&mut self, e: &StackEvent, _zero_ms: i64) {
        let v = json!({
            "type": "event",
            "id": e.id,
            "timestamp_ms": e.timestamp_ms,
            "logical_id": e.logical_id,
            "resource_type": e.resource_type,
            "status": e.status,
            "reason": e.reason,
        });
        let _ = writeln!(self.out, "{v}");
    }

    fn note(&mut self, text: &str) {
        let _ = writeln!(self.out, "{}", json!({"type": "note", "message": text}));
    }

    fn finish(&mut self) {
        let _ = self.out.flush();
    }
}

/// A live view on a terminal: finished events scroll above, and every resource still in progress has a
/// spinner with the time it has been working (an Image Builder build takes tens of minutes).
pub struct Live {
    multi: MultiProgress,
    bars: BTreeMap<String, ProgressBar>,
    waiting: ProgressBar,
}

impl Live {
    pub fn new() -> Live {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let waiting = multi.add(ProgressBar::new_spinner().with_style(style()));
        waiting.set_message("waiting for CloudFormation");
        waiting.enable_steady_tick(Duration::from_millis(120));
        Live {
            multi,
            bars: BTreeMap::new(),
            waiting,
        }
    }
}

impl Default for Live {
    fn default() -> Self {
        Live::new()
    }
}

fn style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {elapsed:>5} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

impl Progress for Live {
    fn event(&mut self, event: &StackEvent, zero_ms: i64) {
        let _ = self.multi.println(line(event, zero_ms));
        let key = event.logical_id.clone();
        if Category::of(&event.status) == Category::InProgress {
            let bar = self.bars.entry(key).or_insert_with(|| {
                let bar = self.multi.insert_before(
                    &self.waiting,
                    ProgressBar::new_spinner().with_style(style()),
                );
                bar.enable_steady_tick(Duration::from_millis(120));
                bar
            });
            bar.set_message(format!(
                "{} {} {}",
                event.logical_id, event.status, event.resource_type
            ));
        } else if let Some(bar) = self.bars.remove(&key) {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
    }

    fn note(&mut self, text: &str) {
        let _ = self.multi.println(format!("{:>7}  {text}", "…"));
    }

    fn finish(&mut self) {
        for bar in self.bars.values() {
            bar.finish_and_clear();
        }
        self.bars.clear();
        self.waiting.finish_and_clear();
        let _ = self.multi.clear();
    }
}

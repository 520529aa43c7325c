//! `bake lsp`: a language server for spec files over stdio.
//!
//! Synchronous (lsp-server + lsp-types), full text sync, one `SourceFile` per open document. On every open and
//! change it runs what `bake check` runs, parse and check, never the network, and publishes the diagnostics.
//! Completion and hover read the schema table; formatting is `bake fmt`. A panic in a handler is caught and
//! answered as an error, so one bad request never ends the session.
//!
//! stdout is the protocol channel: nothing in this module prints.
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod completion;
pub mod context;
pub mod convert;
pub mod diagnostics;
pub mod hover;
pub mod incremental;

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};

use lsp_server::{Connection, ErrorCode, Message, Notification, Request, RequestId, Response};
use lsp_types::notification::{
    DidChangeTextDocument, DidCloseTextDocument, DidOpenTextDocument, Notification as _,
    PublishDiagnostics,
};
use lsp_types::request::{Completion, Formatting, HoverRequest, Request as _};
use lsp_types::{
    CompletionOptions, CompletionParams, CompletionResponse, DidChangeTextDocumentParams,
    DidCloseTextDocumentParams, DidOpenTextDocumentParams, DocumentFormattingParams, HoverParams,
    HoverProviderCapability, OneOf, Position, PublishDiagnosticsParams, Range, ServerCapabilities,
    ServerInfo, TextDocumentSyncCapability, TextDocumentSyncKind, TextEdit, Uri,
};
use serde_json::Value;

use crate::source::SourceFile;
use convert::LineIndex;

pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// What the server offers.
pub fn capabilities() -> ServerCapabilities {
    ServerCapabilities {
        text_document_sync: Some(TextDocumentSyncCapability::Kind(TextDocumentSyncKind::FULL)),
        completion_provider: Some(CompletionOptions {
            trigger_characters: Some(vec!["=".into(), "\"".into(), "/".into()]),
            ..CompletionOptions::default()
        }),
        hover_provider: Some(HoverProviderCapability::Simple(true)),
        document_formatting_provider: Some(OneOf::Left(true)),
        ..ServerCapabilities::default()
    }
}

/// Runs the server on stdin/stdout until the client says `exit`.
pub fn run_stdio() -> Result<(), Error> {
    let (connection, io_threads) = Connection::stdio();
    // The KDL parser recurses; a roomy stack keeps odd inputs from overflowing it (depth is capped as well).
    let server = std::thread::Builder::new()
        .name("bake-lsp".into())
        .stack_size(64 << 20)
        .spawn(move || serve(&connection).map_err(|e| e.to_string()))?;
    server.join().map_err(|_| "the server thread panicked")??;
    io_threads.join()?;
    Ok(())
}

/// Runs the server on a connection: the initialize handshake, then the main loop until shutdown and exit.
pub fn serve(connection: &Connection) -> Result<(), Error> {
    let (id, _params) = connection.initialize_start()?;
    let result = serde_json::json!({
        "capabilities": capabilities(),
        "serverInfo": ServerInfo { name: "bake".into(), version: Some(env!("CARGO_PKG_VERSION").into()) },
    });
    connection.initialize_finish(id, result)?;
    let mut server = Server::default();
    for message in &connection.receiver {
        match message {
            Message::Request(req) => {
                if connection.handle_shutdown(&req)? {
                    return Ok(());
                }
                let response = server.request(req);
                connection.sender.send(response.into())?;
            }
            Message::Notification(note) => {
                if note.method == lsp_types::notification::Exit::METHOD {
                    return Err("exit without shutdown".into());
                }
                for out in server.notification(note) {
                    connection.sender.send(out.into())?;
                }
            }
            Message::Response(_) => {}
        }
    }
    Ok(())
}

/// The open documents.
#[derive(Default)]
pub struct Server {
    docs: HashMap<Uri, Document>,
    /// Per document, the top-level nodes parsed for the last diagnostics.
    chunks: HashMap<Uri, incremental::Chunks>,
}

struct Document {
    file: SourceFile,
    index: LineIndex,
}

impl Document {
    fn new(uri: &Uri, text: String) -> Self {
        let index = LineIndex::new(&text);
        Self {
            file: SourceFile::new(uri.path().as_str(), text),
            index,
        }
    }

    fn text(&self) -> &str {
        &self.file.text
    }

    fn offset(&self, position: Position) -> usize {
        self.index.offset(self.text(), position)
    }
}

/// Runs a handler; a panic becomes `Err` with its message instead of unwinding into the main loop.
pub fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|panic| {
        panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_owned())
    })
}

impl Server {
    /// Answers one request; never panics.
    pub fn request(&mut self, req: Request) -> Response {
        let id = req.id.clone();
        let method = req.method.clone();
        match guarded(|| self.dispatch(req)) {
            Ok(response) => response,
            Err(panic) => Response::new_err(
                id,
                ErrorCode::InternalError as i32,
                format!("bake lsp: internal error in {method}: {panic}"),
            ),
        }
    }

    fn dispatch(&mut self, req: Request) -> Response {
        let id = req.id.clone();
        match req.method.as_str() {
            Completion::METHOD => self.with_params(id, req.params, |s, p: CompletionParams| {
                let pos = p.text_document_position;
                let items = s
                    .docs
                    .get(&pos.text_document.uri)
                    .map_or_else(Vec::new, |d| {
                        completion::complete(d.text(), &d.index, d.offset(pos.position))
                    });
                CompletionResponse::Array(items)
            }),
            HoverRequest::METHOD => self.with_params(id, req.params, |s, p: HoverParams| {
                let pos = p.text_document_position_params;
                s.docs
                    .get(&pos.text_document.uri)
                    .and_then(|d| hover::hover(d.text(), &d.index, d.offset(pos.position)))
            }),
            Formatting::METHOD => {
                let unsafe_layout = std::cell::RefCell::new(None);
                let response =
                    self.with_params(id.clone(), req.params, |s, p: DocumentFormattingParams| {
                        match s.docs.get(&p.text_document.uri).map(format_edits) {
                            Some(Err(message)) => {
                                *unsafe_layout.borrow_mut() = Some(message);
                                None
                            }
                            Some(Ok(edits)) => edits,
                            None => None,
                        }
                    });
                // No edit, and the editor shows why (`bake fmt`'s message: what formatting would lose).
                match unsafe_layout.into_inner() {
                    Some(message) => {
                        Response::new_err(id, ErrorCode::RequestFailed as i32, message)
                    }
                    None => response,
                }
            }
            _ => Response::new_err(
                id,
                ErrorCode::MethodNotFound as i32,
                format!("bake lsp does not handle {}", req.method),
            ),
        }
    }

    fn with_params<P: serde::de::DeserializeOwned, R: serde::Serialize>(
        &mut self,
        id: RequestId,
        params: Value,
        f: impl FnOnce(&mut Self, P) -> R,
    ) -> Response {
        match serde_json::from_value::<P>(params) {
            Ok(p) => Response::new_ok(id, f(self, p)),
            Err(e) => Response::new_err(
                id,
                ErrorCode::InvalidParams as i32,
                format!("invalid parameters: {e}"),
            ),
        }
    }

    /// Handles one notification; returns the notifications to send back (diagnostics). Never panics.
    pub fn notification(&mut self, note: Notification) -> Vec<Notification> {
        let method = note.method.clone();
        match guarded(|| self.notification_inner(note)) {
            Ok(out) => out,
            Err(panic) => vec![Notification::new(
                lsp_types::notification::LogMessage::METHOD.to_owned(),
                lsp_types::LogMessageParams {
                    typ: lsp_types::MessageType::ERROR,
                    message: format!("bake lsp: internal error in {method}: {panic}"),
                },
            )],
        }
    }

    fn notification_inner(&mut self, note: Notification) -> Vec<Notification> {
        match note.method.as_str() {
            DidOpenTextDocument::METHOD => {
                let Ok(p) = serde_json::from_value::<DidOpenTextDocumentParams>(note.params) else {
                    return Vec::new();
                };
                let uri = p.text_document.uri;
                let doc = Document::new(&uri, p.text_document.text);
                let version = Some(p.text_document.version);
                let out = publish(
                    &uri,
                    &doc,
                    version,
                    self.chunks.entry(uri.clone()).or_default(),
                );
                self.docs.insert(uri, doc);
                vec![out]
            }
            DidChangeTextDocument::METHOD => {
                let Ok(p) = serde_json::from_value::<DidChangeTextDocumentParams>(note.params)
                else {
                    return Vec::new();
                };
                // Full sync: the last change holds the whole text.
                let Some(change) = p.content_changes.into_iter().last() else {
                    return Vec::new();
                };
                let uri = p.text_document.uri;
                let doc = Document::new(&uri, change.text);
                let chunks = self.chunks.entry(uri.clone()).or_default();
                let out = publish(&uri, &doc, Some(p.text_document.version), chunks);
                self.docs.insert(uri, doc);
                vec![out]
            }
            DidCloseTextDocument::METHOD => {
                let Ok(p) = serde_json::from_value::<DidCloseTextDocumentParams>(note.params)
                else {
                    return Vec::new();
                };
                self.docs.remove(&p.text_document.uri);
                self.chunks.remove(&p.text_document.uri);
                // Clear the diagnostics of a closed file.
                vec![Notification::new(
                    PublishDiagnostics::METHOD.to_owned(),
                    PublishDiagnosticsParams::new(p.text_document.uri, Vec::new(), None),
                )]
            }
            _ => Vec::new(),
        }
    }
}

fn publish(
    uri: &Uri,
    doc: &Document,
    version: Option<i32>,
    chunks: &mut incremental::Chunks,
) -> Notification {
    let diagnostics = diagnostics::diagnose(uri, &doc.file, chunks);
    Notification::new(
        PublishDiagnostics::METHOD.to_owned(),
        PublishDiagnosticsParams::new(uri.clone(), diagnostics, version),
    )
}

/// `bake fmt` as one edit replacing the whole document; none when it is formatted or does not parse (the
/// diagnostics say why); `Err` with `bake fmt`'s message when formatting would lose some of the text.
fn format_edits(doc: &Document) -> Result<Option<Vec<TextEdit>>, String> {
    let formatted = match crate::fmt::format(&doc.file) {
        Ok(f) => f,
        Err(crate::fmt::FmtError::Syntax(_)) => return Ok(None),
        Err(e @ crate::fmt::FmtError::Unsafe(_)) => return Err(format!("bake fmt: {e}")),
    };
    if formatted == doc.text() {
        return Ok(Some(Vec::new()));
    }
    let end = doc.index.position(doc.text(), doc.text().len());
    Ok(Some(vec![TextEdit::new(
        Range::new(Position::new(0, 0), end),
        formatted,
    )]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_handler_becomes_an_error() {
        let r: Result<(), String> = guarded(|| panic!("boom {}", 1));
        assert_eq!(r, Err("boom 1".to_owned()));
        assert_eq!(guarded(|| 2), Ok(2));
    }
}

//! Building JSON values and their positions from the parser's events, without recursion,
//! within the [`Limits`].

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span, Tag};
use serde_json::{Map, Value};

use super::error::{Position, YamlError};
use super::positions::{Children, Positions, ScalarSource};
use super::scalar;
use super::source::SourceIndex;
use super::{Document, Limits, Parsed};

/// Reads every document of `text` (UTF-8, without BOM), resuming after syntax errors at the
/// next `---` line so that the errors of every document are reported.
pub(crate) fn read_stream(text: &str, limits: &Limits) -> Parsed {
    let source = SourceIndex::new(text);
    let mut stream = Stream {
        limits,
        source: &source,
        documents: Vec::new(),
        errors: Vec::new(),
        documents_seen: 0,
        nodes: 0,
        text_bytes: 0,
    };
    let mut first_line = 1;
    while let Some(chunk) = source.rest_from_line(first_line) {
        match read_chunk(chunk, first_line - 1, &mut stream) {
            ChunkEnd::Done | ChunkEnd::Fatal => break,
            ChunkEnd::Resume { line } => match source.next_document_marker(line, first_line) {
                Some(next) => first_line = next,
                None => break,
            },
        }
    }
    let Stream {
        documents,
        mut errors,
        ..
    } = stream;
    errors.sort_by_key(YamlError::position);
    Parsed { documents, errors }
}

/// How reading a chunk of the text ended.
enum ChunkEnd {
    /// The end of the text.
    Done,
    /// A syntax error (or a document too deep to read on) at `line`; reading resumes at the
    /// next document after it.
    Resume { line: usize },
    /// A file-wide limit was passed; nothing more is read.
    Fatal,
}

/// A file-wide limit was passed (the error is already recorded).
struct Fatal;

/// What is known about the whole file while its documents are read.
struct Stream<'a> {
    limits: &'a Limits,
    source: &'a SourceIndex<'a>,
    documents: Vec<Document>,
    errors: Vec<YamlError>,
    /// Documents started so far, empty ones and broken ones included.
    documents_seen: usize,
    /// Value nodes built so far, aliases expanded and anchored copies included.
    nodes: usize,
    /// Scalar bytes built so far, aliases expanded and anchored copies included.
    text_bytes: usize,
}

impl Stream<'_> {
    /// Counts `n` more nodes, failing once the file passes [`Limits::max_nodes`].
    fn add_nodes(&mut self, n: usize, at: Position) -> Result<(), Fatal> {
        self.nodes = self.nodes.saturating_add(n);
        if self.nodes > self.limits.max_nodes {
            self.errors.push(YamlError::TooManyNodes {
                position: at,
                limit: self.limits.max_nodes,
            });
            return Err(Fatal);
        }
        Ok(())
    }

    /// Counts `n` more bytes of text, failing once the file passes [`Limits::max_text_bytes`].
    fn add_text(&mut self, n: usize, at: Position) -> Result<(), Fatal> {
        self.text_bytes = self.text_bytes.saturating_add(n);
        if self.text_bytes > self.limits.max_text_bytes {
            self.errors.push(YamlError::TooMuchText {
                position: at,
                limit: self.limits.max_text_bytes,
            });
            return Err(Fatal);
        }
        Ok(())
    }
}

/// Parses `chunk`, which starts `line_offset` lines into the file, until its end or an error.
fn read_chunk(chunk: &str, line_offset: usize, stream: &mut Stream<'_>) -> ChunkEnd {
    let mut parser = Parser::new_from_str(chunk);
    let mut doc: Option<DocBuilder> = None;
    while let Some(next) = parser.next_event() {
        let (event, span) = match next {
            Ok(pair) => pair,
            Err(error) => {
                let error = stream
                    .source
                    .scan_error(&error, line_offset, stream.limits.max_depth);
                if doc.is_none() {
                    stream.documents_seen += 1;
                }
                let line = error.position().line;
                stream.errors.push(error);
                return ChunkEnd::Resume { line };
            }
        };
        let at = Position::at(&span.start, line_offset);
        match event {
            Event::StreamEnd => return ChunkEnd::Done,
            Event::DocumentStart(_) => {
                stream.documents_seen += 1;
                if stream.documents_seen > stream.limits.max_documents {
                    stream.errors.push(YamlError::TooManyDocuments {
                        position: at,
                        limit: stream.limits.max_documents,
                    });
                    return ChunkEnd::Fatal;
                }
                doc = Some(DocBuilder::new(
                    stream.documents_seen - 1,
                    at.line,
                    line_offset,
                ));
            }
            Event::DocumentEnd => {
                if let Some(finished) = doc.take() {
                    finished.finish(stream);
                }
            }
            Event::StreamStart | Event::Nothing => {}
            node_event => {
                if let Some(building) = doc.as_mut() {
                    if building.event(node_event, span, stream).is_err() {
                        return ChunkEnd::Fatal;
                    }
                    if building.abandoned {
                        // Leave the parser, which would otherwise work through all the nesting.
                        return ChunkEnd::Resume { line: at.line };
                    }
                }
            }
        }
    }
    ChunkEnd::Done
}

/// A list or map being built.
struct Frame {
    kind: FrameKind,
    /// Its node in [`Positions`].
    node: usize,
    /// Its anchor id (0: none).
    anchor: usize,
    /// Value nodes below it.
    nodes: usize,
    /// Collection levels below it.
    height: usize,
    /// Scalar bytes below it, keys included.
    text: usize,
    /// Tab-indented nodes below it, reported unless it turns out to be a flow collection.
    tab_suspects: Vec<Position>,
    /// It stands as a map key, which is refused: its value is dropped.
    as_key: bool,
}

/// The container of a [`Frame`].
enum FrameKind {
    Seq(Vec<Value>),
    Map {
        map: Map<String, Value>,
        pending: Option<PendingKey>,
    },
}

/// The key read last in a map, waiting for its value.
enum PendingKey {
    Key {
        text: String,
        at: Position,
    },
    /// The key was refused (error recorded): drop the value.
    Discard,
}

/// A finished node, ready to go into its parent.
struct Built {
    value: Value,
    node: usize,
    nodes: usize,
    height: usize,
    text: usize,
    /// A plain empty scalar without tag or anchor (an empty document's only node).
    empty: bool,
}

/// An anchored node, kept for its aliases.
struct Anchored {
    value: Value,
    nodes: usize,
    height: usize,
    text: usize,
    scalar: Option<ScalarSource>,
}

/// One document being built.
struct DocBuilder {
    index: usize,
    start_line: usize,
    line_offset: usize,
    positions: Positions,
    stack: Vec<Frame>,
    root: Option<Built>,
    anchors: HashMap<usize, Anchored>,
    /// An error was recorded: the document is not returned.
    failed: bool,
    /// The depth limit was passed: the rest of the document is not read.
    abandoned: bool,
    /// Tab-indented nodes outside any flow collection.
    tab_suspects: Vec<Position>,
}

impl DocBuilder {
    fn new(index: usize, start_line: usize, line_offset: usize) -> Self {
        DocBuilder {
            index,
            start_line,
            line_offset,
            positions: Positions::default(),
            stack: Vec::new(),
            root: None,
            anchors: HashMap::new(),
            failed: false,
            abandoned: false,
            tab_suspects: Vec::new(),
        }
    }

    /// Records an error that spoils this document but not the file.
    fn fail(&mut self, stream: &mut Stream<'_>, error: YamlError) {
        stream.errors.push(error);
        self.failed = true;
    }

    /// Handles one node event.
    fn event(
        &mut self,
        event: Event<'_>,
        span: Span,
        stream: &mut Stream<'_>,
    ) -> Result<(), Fatal> {
        let at = Position::at(&span.start, self.line_offset);
        match event {
            Event::Scalar(text, style, anchor, tag) => {
                self.note_tab(&span, stream);
                self.scalar(text.into_owned(), style, anchor, tag.as_deref(), at, stream)
            }
            Event::SequenceStart(anchor, tag) => {
                self.note_tab(&span, stream);
                self.open(true, anchor, tag.as_deref(), at, stream)
            }
            Event::MappingStart(anchor, tag) => {
                self.note_tab(&span, stream);
                self.open(false, anchor, tag.as_deref(), at, stream)
            }
            Event::SequenceEnd | Event::MappingEnd => self.close(&span, stream),
            Event::Alias(id) => {
                self.note_tab(&span, stream);
                self.alias(id, at, stream)
            }
            _ => Ok(()),
        }
    }

    /// A node that starts a tab-indented line is suspect until we know it is not in a flow collection.
    fn note_tab(&mut self, span: &Span, stream: &Stream<'_>) {
        let line = span.start.line().saturating_add(self.line_offset);
        if let Some(tab) = stream.source.tab_line(line)
            && tab.content_col == span.start.col()
        {
            let position = Position {
                line,
                column: tab.tab_col + 1,
            };
            match self.stack.last_mut() {
                Some(frame) => frame.tab_suspects.push(position),
                None => self.tab_suspects.push(position),
            }
        }
    }

    /// Whether the next node is a map key.
    fn awaiting_key(&self) -> bool {
        matches!(
            self.stack.last(),
            Some(Frame {
                kind: FrameKind::Map { pending: None, .. },
                ..
            })
        )
    }

    /// Sets the pending key of the innermost map.
    fn set_pending(&mut self, key: PendingKey) {
        if let Some(Frame {
            kind: FrameKind::Map { pending, .. },
            ..
        }) = self.stack.last_mut()
        {
            *pending = Some(key);
        }
    }

    /// Accepts `text` as the next key of the innermost map unless it repeats an earlier key.
    fn set_key(
        &mut self,
        text: String,
        at: Position,
        stream: &mut Stream<'_>,
    ) -> Result<(), Fatal> {
        stream.add_text(text.len(), at)?;
        let Some(frame) = self.stack.last_mut() else {
            return Ok(());
        };
        frame.text = frame.text.saturating_add(text.len());
        if let Some(first) = self.positions.entry_key(frame.node, &text) {
            self.fail(
                stream,
                YamlError::DuplicateKey {
                    position: at,
                    key: text,
                    first,
                },
            );
            self.set_pending(PendingKey::Discard);
        } else {
            self.set_pending(PendingKey::Key { text, at });
        }
        Ok(())
    }

    /// A scalar: a map key, or a value resolved by the core schema.
    fn scalar(
        &mut self,
        text: String,
        style: ScalarStyle,
        anchor: usize,
        tag: Option<&Tag>,
        at: Position,
        stream: &mut Stream<'_>,
    ) -> Result<(), Fatal> {
        let plain = style == ScalarStyle::Plain;
        let len = text.len();
        if self.awaiting_key() {
            if anchor > 0 {
                stream.add_nodes(1, at)?;
                stream.add_text(len, at)?;
                let value = scalar::resolve(&text, style, tag)
                    .unwrap_or_else(|_| Value::String(text.clone()));
                self.anchors.insert(
                    anchor,
                    Anchored {
                        value,
                        nodes: 1,
                        height: 0,
                        text: len,
                        scalar: Some(ScalarSource {
                            text: text.clone(),
                            plain,
                        }),
                    },
                );
            }
            if let Err(problem) = scalar::check_key_tag(tag) {
                self.fail(stream, problem.into_error(at, &text));
                self.set_pending(PendingKey::Discard);
                return Ok(());
            }
            if plain && tag.is_none() && text == "<<" {
                self.fail(stream, YamlError::MergeKey { position: at });
                self.set_pending(PendingKey::Discard);
                return Ok(());
            }
            return self.set_key(text, at, stream);
        }
        stream.add_nodes(1, at)?;
        stream.add_text(len, at)?;
        let value = match scalar::resolve(&text, style, tag) {
            Ok(value) => value,
            Err(problem) => {
                self.fail(stream, problem.into_error(at, &text));
                Value::Null
            }
        };
        let empty = plain && tag.is_none() && anchor == 0 && text.is_empty();
        let source = ScalarSource { text, plain };
        if anchor > 0 {
            stream.add_nodes(1, at)?;
            stream.add_text(len, at)?;
            self.anchors.insert(
                anchor,
                Anchored {
                    value: value.clone(),
                    nodes: 1,
                    height: 0,
                    text: len,
                    scalar: Some(source.clone()),
                },
            );
        }
        let node = self.positions.add(at, Some(source), Children::Leaf);
        self.attach(Built {
            value,
            node,
            nodes: 1,
            height: 0,
            text: len,
            empty,
        });
        Ok(())
    }

    /// The start of a list (`seq`) or map.
    fn open(
        &mut self,
        seq: bool,
        anchor: usize,
        tag: Option<&Tag>,
        at: Position,
        stream: &mut Stream<'_>,
    ) -> Result<(), Fatal> {
        let as_key = self.awaiting_key();
        if as_key {
            self.fail(stream, YamlError::NonScalarKey { position: at });
        }
        if let Err(problem) = scalar::check_collection_tag(tag, if seq { "seq" } else { "map" }) {
            self.fail(stream, problem.into_error(at, ""));
        }
        if self.stack.len() >= stream.limits.max_depth {
            self.fail(
                stream,
                YamlError::TooDeep {
                    position: at,
                    limit: stream.limits.max_depth,
                },
            );
            self.abandoned = true;
            return Ok(());
        }
        stream.add_nodes(1, at)?;
        let (kind, children) = if seq {
            (FrameKind::Seq(Vec::new()), Children::Seq(Vec::new()))
        } else {
            (
                FrameKind::Map {
                    map: Map::new(),
                    pending: None,
                },
                Children::Map(HashMap::new()),
            )
        };
        let node = self.positions.add(at, None, children);
        self.stack.push(Frame {
            kind,
            node,
            anchor,
            nodes: 0,
            height: 0,
            text: 0,
            tab_suspects: Vec::new(),
            as_key,
        });
        Ok(())
    }

    /// The end of the innermost list or map.
    fn close(&mut self, span: &Span, stream: &mut Stream<'_>) -> Result<(), Fatal> {
        let Some(frame) = self.stack.pop() else {
            return Ok(());
        };
        let at = self
            .positions
            .value_of(frame.node)
            .unwrap_or(Position::START);
        // A flow collection ends with a visible `]` or `}`; a block one with an empty span.
        // Tabs may indent the lines of a flow collection (JSON written with tabs is fine).
        if span.is_empty() {
            match self.stack.last_mut() {
                Some(parent) => parent.tab_suspects.extend(frame.tab_suspects),
                None => self.tab_suspects.extend(frame.tab_suspects),
            }
        }
        let value = match frame.kind {
            FrameKind::Seq(items) => Value::Array(items),
            FrameKind::Map { map, .. } => Value::Object(map),
        };
        let built = Built {
            value,
            node: frame.node,
            nodes: frame.nodes.saturating_add(1),
            height: frame.height.saturating_add(1),
            text: frame.text,
            empty: false,
        };
        if frame.anchor > 0 {
            stream.add_nodes(built.nodes, at)?;
            stream.add_text(built.text, at)?;
            self.anchors.insert(
                frame.anchor,
                Anchored {
                    value: built.value.clone(),
                    nodes: built.nodes,
                    height: built.height,
                    text: built.text,
                    scalar: None,
                },
            );
        }
        if frame.as_key {
            self.set_pending(PendingKey::Discard);
        } else {
            self.attach(built);
        }
        Ok(())
    }

    /// An alias: a copy of its anchored node, charged to the limits like the original.
    fn alias(&mut self, id: usize, at: Position, stream: &mut Stream<'_>) -> Result<(), Fatal> {
        if self.stack.iter().any(|frame| frame.anchor == id) {
            self.fail(stream, YamlError::RecursiveAlias { position: at });
            return self.placeholder(at, stream);
        }
        let Some(anchored) = self.anchors.get(&id) else {
            self.fail(stream, YamlError::UnknownAlias { position: at });
            return self.placeholder(at, stream);
        };
        if self.awaiting_key() {
            return match anchored.scalar.as_ref().map(|s| s.text.clone()) {
                Some(text) => self.set_key(text, at, stream),
                None => {
                    self.fail(stream, YamlError::NonScalarKey { position: at });
                    self.set_pending(PendingKey::Discard);
                    Ok(())
                }
            };
        }
        if self.stack.len().saturating_add(anchored.height) > stream.limits.max_depth {
            self.fail(
                stream,
                YamlError::TooDeep {
                    position: at,
                    limit: stream.limits.max_depth,
                },
            );
            return self.placeholder(at, stream);
        }
        let (nodes, height, text) = (anchored.nodes, anchored.height, anchored.text);
        stream.add_nodes(nodes, at)?;
        stream.add_text(text, at)?;
        let value = anchored.value.clone();
        let scalar = anchored.scalar.clone();
        let node = self.positions.add(at, scalar, Children::Leaf);
        self.attach(Built {
            value,
            node,
            nodes,
            height,
            text,
            empty: false,
        });
        Ok(())
    }

    /// A `null` standing for a node that was refused (its error is recorded), so the rest of
    /// the document keeps its shape and its other errors can still be found.
    fn placeholder(&mut self, at: Position, stream: &mut Stream<'_>) -> Result<(), Fatal> {
        if self.awaiting_key() {
            self.set_pending(PendingKey::Discard);
            return Ok(());
        }
        stream.add_nodes(1, at)?;
        let node = self.positions.add(at, None, Children::Leaf);
        self.attach(Built {
            value: Value::Null,
            node,
            nodes: 1,
            height: 0,
            text: 0,
            empty: false,
        });
        Ok(())
    }

    /// Puts a finished node into the innermost list or map, or makes it the root.
    fn attach(&mut self, built: Built) {
        let Some(frame) = self.stack.last_mut() else {
            if self.root.is_none() {
                self.root = Some(built);
            }
            return;
        };
        frame.nodes = frame.nodes.saturating_add(built.nodes);
        frame.height = frame.height.max(built.height);
        frame.text = frame.text.saturating_add(built.text);
        match &mut frame.kind {
            FrameKind::Seq(items) => {
                self.positions.push_item(frame.node, built.node);
                items.push(built.value);
            }
            FrameKind::Map { map, pending } => match pending.take() {
                Some(PendingKey::Key { text, at }) => {
                    self.positions
                        .insert_entry(frame.node, text.clone(), at, built.node);
                    map.insert(text, built.value);
                }
                Some(PendingKey::Discard) => {}
                // Only a refused key gets here (collections and aliases as keys).
                None => *pending = Some(PendingKey::Discard),
            },
        }
    }

    /// Ends the document: reports tab indentation, and keeps the document if it is sound and not empty.
    fn finish(mut self, stream: &mut Stream<'_>) {
        let mut suspects = std::mem::take(&mut self.tab_suspects);
        suspects.sort();
        suspects.dedup_by_key(|p| p.line);
        for position in suspects {
            self.fail(stream, YamlError::TabIndentation { position });
        }
        if self.failed || !self.stack.is_empty() {
            return;
        }
        let Some(root) = self.root else {
            return;
        };
        if root.empty {
            return;
        }
        stream.documents.push(Document {
            index: self.index,
            value: root.value,
            positions: self.positions,
            start_line: self.start_line,
        });
    }
}

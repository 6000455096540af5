//! A positioned YAML tree: the policy front end's only view of the input text.
//!
//! Why not serde: a serde model loses positions, and every policy error must name
//! `FILE:LINE:COLUMN`. serde_yaml is unmaintained, so we read `yaml-rust2`'s event stream
//! (maintained, pure Rust, YAML 1.2, reports a marker for every event) into a small tree where
//! every node and every mapping key keeps its line and column. The schema walk in
//! [`crate::parse`] then reports problems exactly where they are.
//!
//! Duplicate mapping keys are rejected here (YAML forbids them; Kubernetes' decoder rejects them
//! too), and aliases are expanded so the schema walk never sees them.

use std::collections::HashMap;
use std::fmt;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// A 1-based line and column in the source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

impl Pos {
    fn from_marker(m: &Marker) -> Self {
        Pos {
            line: u32::try_from(m.line()).unwrap_or(u32::MAX),
            col: u32::try_from(m.col().saturating_add(1)).unwrap_or(u32::MAX),
        }
    }
}

/// A YAML value with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub pos: Pos,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A scalar; `quoted` is true for single- or double-quoted (and block) scalars, which are
    /// always strings. Plain scalars may resolve to null, booleans or numbers.
    Scalar {
        text: String,
        quoted: bool,
    },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// True for a plain scalar that YAML resolves to null (`~`, `null`, empty).
    pub fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar { text, quoted: false }
            if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// What kind of value this is, for error messages ("a mapping", "a list", "the integer 5").
    pub fn describe(&self) -> String {
        match &self.value {
            Value::Seq(_) => "a list".to_string(),
            Value::Map(_) => "a mapping".to_string(),
            Value::Scalar { .. } if self.is_null() => "nothing (null)".to_string(),
            Value::Scalar { text, quoted: true } => format!("the string \"{text}\""),
            Value::Scalar { text, .. } => format!("`{text}`"),
        }
    }
}

/// One YAML document of a file, with the byte range of its text (for source digests).
#[derive(Debug, Clone)]
pub struct Document {
    pub root: Node,
    /// Byte offsets of the document's text in the source.
    pub span: (usize, usize),
}

/// A syntax error in the YAML text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{pos}: {message}")]
pub struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

/// Parse every document of `src`. Documents that are empty (only comments, or a trailing `---`)
/// are dropped.
pub fn parse_documents(src: &str) -> Result<Vec<Document>, SyntaxError> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(src);
    parser.load(&mut builder, true).map_err(|e| SyntaxError {
        pos: Pos::from_marker(e.marker()),
        message: format!("YAML syntax error: {}", e.info()),
    })?;
    if let Some(err) = builder.error {
        return Err(err);
    }
    let offsets = CharOffsets::new(src);
    Ok(builder
        .docs
        .into_iter()
        .filter(|(node, _, _)| !node.is_null())
        .map(|(root, start, end)| Document {
            root,
            span: (offsets.byte(start), offsets.byte(end)),
        })
        .collect())
}

/// Maps yaml-rust2's character indices to byte offsets.
struct CharOffsets<'a> {
    src: &'a str,
}

impl<'a> CharOffsets<'a> {
    fn new(src: &'a str) -> Self {
        CharOffsets { src }
    }
    fn byte(&self, char_index: usize) -> usize {
        self.src
            .char_indices()
            .nth(char_index)
            .map_or(self.src.len(), |(b, _)| b)
    }
}

enum Frame {
    Seq(Pos, Vec<Node>, usize),
    /// Map position, entries, pending key, anchor.
    Map(Pos, Vec<(Node, Node)>, Option<Node>, usize),
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    docs: Vec<(Node, usize, usize)>,
    doc_start: usize,
    current: Option<Node>,
    anchors: HashMap<usize, Node>,
    error: Option<SyntaxError>,
}

impl Builder {
    fn fail(&mut self, pos: Pos, message: String) {
        if self.error.is_none() {
            self.error = Some(SyntaxError { pos, message });
        }
    }

    /// Attach a finished node to its parent (or make it the document root).
    fn push_node(&mut self, node: Node, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => self.current = Some(node),
            Some(Frame::Seq(_, items, _)) => items.push(node),
            Some(Frame::Map(_, entries, pending, _)) => match pending.take() {
                None => {
                    let dup = entries
                        .iter()
                        .find(|(k, _)| k.value == node.value)
                        .map(|(k, _)| k.pos);
                    if let Some(first) = dup {
                        let what = node.describe();
                        let pos = node.pos;
                        *pending = Some(node);
                        self.fail(
                            pos,
                            format!(
                                "duplicate key {what} in this mapping (first defined at {first}); \
                                 each key may appear once"
                            ),
                        );
                    } else {
                        *pending = Some(node);
                    }
                }
                Some(key) => entries.push((key, node)),
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let pos = Pos::from_marker(&mark);
        match ev {
            Event::DocumentStart => {
                self.doc_start = mark.index();
                self.current = None;
                self.anchors.clear();
            }
            Event::DocumentEnd => {
                let node = self.current.take().unwrap_or(Node {
                    pos,
                    value: Value::Scalar {
                        text: String::new(),
                        quoted: false,
                    },
                });
                self.docs.push((node, self.doc_start, mark.index()));
            }
            Event::Scalar(text, style, anchor, _tag) => {
                let quoted = !matches!(style, TScalarStyle::Plain);
                self.push_node(
                    Node {
                        pos,
                        value: Value::Scalar { text, quoted },
                    },
                    anchor,
                );
            }
            Event::SequenceStart(anchor, _) => self.stack.push(Frame::Seq(pos, Vec::new(), anchor)),
            Event::SequenceEnd => {
                if let Some(Frame::Seq(p, items, anchor)) = self.stack.pop() {
                    self.push_node(
                        Node {
                            pos: p,
                            value: Value::Seq(items),
                        },
                        anchor,
                    );
                }
            }
            Event::MappingStart(anchor, _) => {
                self.stack.push(Frame::Map(pos, Vec::new(), None, anchor));
            }
            Event::MappingEnd => {
                if let Some(Frame::Map(p, entries, _, anchor)) = self.stack.pop() {
                    // A block mapping's marker points past its first key; the first key's
                    // position is where a reader sees the mapping start.
                    let p = entries.first().map_or(p, |(k, _)| k.pos);
                    self.push_node(
                        Node {
                            pos: p,
                            value: Value::Map(entries),
                        },
                        anchor,
                    );
                }
            }
            Event::Alias(id) => match self.anchors.get(&id).cloned() {
                Some(mut node) => {
                    node.pos = pos;
                    self.push_node(node, 0);
                }
                None => self.fail(pos, "alias refers to an unknown anchor".to_string()),
            },
            Event::Nothing | Event::StreamStart | Event::StreamEnd => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar(n: &Node) -> &str {
        match &n.value {
            Value::Scalar { text, .. } => text,
            other => panic!("not a scalar: {other:?}"),
        }
    }

    #[test]
    fn positions_are_one_based_and_point_at_keys_and_values() {
        let docs = parse_documents("a: 1\nb:\n  - x: \"y\"\n").unwrap();
        let Value::Map(entries) = &docs[0].root.value else {
            panic!()
        };
        assert_eq!(entries[0].0.pos, Pos { line: 1, col: 1 });
        assert_eq!(entries[0].1.pos, Pos { line: 1, col: 4 });
        let Value::Seq(items) = &entries[1].1.value else {
            panic!()
        };
        let Value::Map(inner) = &items[0].value else {
            panic!()
        };
        assert_eq!(inner[0].0.pos, Pos { line: 3, col: 5 });
        assert_eq!(scalar(&inner[0].1), "y");
        assert!(matches!(
            inner[0].1.value,
            Value::Scalar { quoted: true, .. }
        ));
    }

    #[test]
    fn multi_document_spans_and_empty_documents() {
        let src = "a: 1\n---\n# only a comment\n---\nb: 2\n";
        let docs = parse_documents(src).unwrap();
        assert_eq!(docs.len(), 2);
        assert!(src[docs[1].span.0..docs[1].span.1].contains("b: 2"));
        assert!(!src[docs[0].span.0..docs[0].span.1].contains("b: 2"));
    }

    #[test]
    fn duplicate_keys_are_rejected_with_both_positions() {
        let err = parse_documents("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(err.pos, Pos { line: 3, col: 1 });
        assert!(
            err.message.contains("first defined at 1:1"),
            "{}",
            err.message
        );
    }

    #[test]
    fn aliases_are_expanded() {
        let docs = parse_documents("a: &x [1, 2]\nb: *x\n").unwrap();
        let Value::Map(entries) = &docs[0].root.value else {
            panic!()
        };
        assert!(matches!(&entries[1].1.value, Value::Seq(v) if v.len() == 2));
    }

    #[test]
    fn syntax_errors_have_positions() {
        let err = parse_documents("a: \"unclosed\nb: 2\n").unwrap_err();
        assert!(err.pos.line >= 1);
        assert!(err.message.starts_with("YAML syntax error"));
    }
}

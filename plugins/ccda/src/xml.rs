//! Walking CDA XML: elements in the HL7 v3 namespace, template ids, source
//! spans, and the human-readable narrative as lines of text.

use medmemory_plugin_sdk::parser::Span;
use medmemory_plugin_sdk::text::squash_whitespace;
use roxmltree::Node;

use crate::V3;

pub(crate) fn is(node: Node<'_, '_>, name: &str) -> bool {
    node.is_element() && node.tag_name().name() == name && node.tag_name().namespace() == Some(V3)
}

pub(crate) fn children<'a, 'i>(
    node: Node<'a, 'i>,
    name: &'static str,
) -> impl Iterator<Item = Node<'a, 'i>> {
    node.children().filter(move |n| is(*n, name))
}

pub(crate) fn child<'a, 'i>(node: Node<'a, 'i>, name: &'static str) -> Option<Node<'a, 'i>> {
    children(node, name).next()
}

/// The first descendant element called `name` (the node itself excluded).
pub(crate) fn find<'a, 'i>(node: Node<'a, 'i>, name: &'static str) -> Option<Node<'a, 'i>> {
    node.descendants().skip(1).find(|n| is(*n, name))
}

/// The first descendant element carrying template `root`.
pub(crate) fn with_template<'a, 'i>(node: Node<'a, 'i>, root: &str) -> Option<Node<'a, 'i>> {
    node.descendants().find(|n| {
        n.is_element() && children(*n, "templateId").any(|t| t.attribute("root") == Some(root))
    })
}

pub(crate) fn span(node: Node<'_, '_>) -> Span {
    let range = node.range();
    Span::bytes(range.start, range.end)
}

pub(crate) fn text_of(node: Node<'_, '_>) -> String {
    node.descendants()
        .filter(|n| n.is_text())
        .filter_map(|n| n.text())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A section's narrative as plain text: table rows and list items on lines of
/// their own, cells separated by `; `.
pub(crate) fn narrative_text(narrative: Node<'_, '_>) -> String {
    let mut lines = Vec::new();
    let mut loose = Vec::new();
    for node in narrative.children() {
        collect_lines(node, &mut lines, &mut loose, 0);
    }
    if !loose.is_empty() {
        lines.push(squash_whitespace(&loose.join(" ")));
    }
    lines.retain(|l| !l.is_empty());
    lines.join("\n")
}

/// Narrative nested deeper than this is read as flat text (no recursion).
pub(crate) const MAX_NARRATIVE_DEPTH: usize = 32;

pub(crate) fn collect_lines(
    node: Node<'_, '_>,
    lines: &mut Vec<String>,
    loose: &mut Vec<String>,
    depth: usize,
) {
    if node.is_text() {
        loose.extend(node.text().map(str::to_owned));
        return;
    }
    if depth > MAX_NARRATIVE_DEPTH {
        loose.push(text_of(node));
        return;
    }
    let name = node.tag_name().name();
    match name {
        "tr" => {
            let cells: Vec<String> = node
                .children()
                .filter(|c| matches!(c.tag_name().name(), "td" | "th"))
                .map(|c| squash_whitespace(&text_of(c)))
                .collect();
            lines.push(cells.join("; "));
        }
        "item" | "paragraph" | "caption" => {
            flush(lines, loose);
            lines.push(squash_whitespace(&text_of(node)));
        }
        _ => {
            for c in node.children() {
                collect_lines(c, lines, loose, depth + 1);
            }
        }
    }
}

pub(crate) fn flush(lines: &mut Vec<String>, loose: &mut Vec<String>) {
    if !loose.is_empty() {
        lines.push(squash_whitespace(&loose.join(" ")));
        loose.clear();
    }
}

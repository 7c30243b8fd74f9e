//! DocumentReference attachments with inline text become notes and text
//! sections; a Patient becomes a short demographics section.

use medmemory_plugin_sdk::parser::{RecordKind, Span, TextSection};
use medmemory_plugin_sdk::text;
use serde_json::Value;

use crate::Output;
use crate::json::{base, base64, concept, owned, str_at};

pub(crate) fn document_reference(v: &Value, span: Span, out: &mut Output) {
    let title = str_at(v, &["description"])
        .map(str::to_owned)
        .or_else(|| v.get("type").and_then(|t| concept(t).1))
        .unwrap_or_else(|| "Document".into());
    let attachments = v
        .get("content")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    for content in attachments {
        let attachment = &content["attachment"];
        let media = str_at(attachment, &["contentType"]).unwrap_or("text/plain");
        let media = media.split(';').next().unwrap_or(media).trim();
        let Some(data) = str_at(attachment, &["data"]) else {
            out.warnings
                .push("a DocumentReference attachment has no inline data".into());
            continue;
        };
        if !matches!(media, "text/plain" | "text/markdown") {
            out.warnings.push(format!(
                "a DocumentReference attachment of type {media} was not indexed"
            ));
            continue;
        }
        let Some(text) = base64(data).and_then(|b| String::from_utf8(b).ok()) else {
            out.warnings
                .push("a DocumentReference attachment is not valid base64 UTF-8 text".into());
            continue;
        };
        let title = str_at(attachment, &["title"]).map_or(title.clone(), str::to_owned);
        let mut note = base(RecordKind::Note, v, Vec::new(), title.clone(), span)
            .status(str_at(v, &["status"]))
            .effective(owned(str_at(v, &["date"])), None);
        if let Some(t) = v.get("type") {
            note.codes = concept(t).0;
        }
        out.records.push(note);
        for section in text::sections(&text) {
            out.sections.push(TextSection {
                title: section.title.or_else(|| Some(title.clone())),
                text: section.text,
                source: span,
            });
        }
    }
}

pub(crate) fn patient(v: &Value, span: Span) -> TextSection {
    let name = v
        .get("name")
        .and_then(|n| n.get(0))
        .map(|n| {
            let given: Vec<&str> = n
                .get("given")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let family = str_at(n, &["family"]).unwrap_or("");
            format!("{} {family}", given.join(" ")).trim().to_owned()
        })
        .unwrap_or_default();
    let mut facts = Vec::new();
    if !name.is_empty() {
        facts.push(format!("Name: {name}."));
    }
    if let Some(birth) = str_at(v, &["birthDate"]) {
        facts.push(format!("Born {birth}."));
    }
    if let Some(gender) = str_at(v, &["gender"]) {
        facts.push(format!("Gender: {gender}."));
    }
    TextSection {
        title: Some("Patient".into()),
        text: facts.join(" "),
        source: span,
    }
}

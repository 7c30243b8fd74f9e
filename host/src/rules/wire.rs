//! Cards and system actions in the CDS Hooks 2.0 JSON a client reads:
//! camelCase, optional attributes omitted rather than `null`, `""` or `[]`
//! (the spec's JSON rules), action resources as JSON objects.

use serde_json::{Map, Value, json};

use super::indicator;
use crate::plugins::clinical_rules::{
    Action, ActionType, Card, Evaluation, LinkType, SelectionBehavior,
};
use crate::plugins::types::Coding;

/// The response body of a service call: `cards`, and `systemActions` when
/// there are any.
pub fn response(evaluation: &Evaluation) -> Value {
    let mut body = Map::new();
    body.insert(
        "cards".into(),
        Value::Array(evaluation.cards.iter().map(card).collect()),
    );
    if !evaluation.system_actions.is_empty() {
        body.insert(
            "systemActions".into(),
            Value::Array(evaluation.system_actions.iter().map(action).collect()),
        );
    }
    Value::Object(body)
}

fn put(object: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    match value {
        Some(Value::Array(a)) if a.is_empty() => {}
        Some(Value::String(s)) if s.is_empty() => {}
        Some(Value::Null) | None => {}
        Some(v) => {
            object.insert(key.into(), v);
        }
    }
}

fn coding(c: &Coding) -> Value {
    let mut o = Map::new();
    o.insert("system".into(), c.system.clone().into());
    o.insert("code".into(), c.code.clone().into());
    put(&mut o, "display", c.display.clone().map(Value::from));
    Value::Object(o)
}

/// One card.
pub fn card(c: &Card) -> Value {
    let mut o = Map::new();
    put(&mut o, "uuid", c.uuid.clone().map(Value::from));
    o.insert("summary".into(), c.summary.clone().into());
    put(&mut o, "detail", c.detail.clone().map(Value::from));
    o.insert("indicator".into(), indicator(c.indicator).into());
    let mut source = Map::new();
    source.insert("label".into(), c.source.label.clone().into());
    put(&mut source, "url", c.source.url.clone().map(Value::from));
    put(&mut source, "topic", c.source.topic.as_ref().map(coding));
    o.insert("source".into(), Value::Object(source));
    let suggestions: Vec<Value> = c
        .suggestions
        .iter()
        .map(|s| {
            let mut so = Map::new();
            so.insert("label".into(), s.label.clone().into());
            put(&mut so, "uuid", s.uuid.clone().map(Value::from));
            if s.is_recommended {
                so.insert("isRecommended".into(), true.into());
            }
            put(
                &mut so,
                "actions",
                Some(Value::Array(s.actions.iter().map(action).collect())),
            );
            Value::Object(so)
        })
        .collect();
    put(&mut o, "suggestions", Some(Value::Array(suggestions)));
    put(
        &mut o,
        "selectionBehavior",
        c.selection_behavior.map(|b| {
            match b {
                SelectionBehavior::AtMostOne => "at-most-one",
                SelectionBehavior::Any => "any",
            }
            .into()
        }),
    );
    put(
        &mut o,
        "overrideReasons",
        Some(Value::Array(
            c.override_reasons.iter().map(coding).collect(),
        )),
    );
    let links: Vec<Value> = c
        .links
        .iter()
        .map(|l| {
            let mut lo = Map::new();
            lo.insert("label".into(), l.label.clone().into());
            lo.insert("url".into(), l.url.clone().into());
            let smart = l.link_type == LinkType::Smart;
            lo.insert(
                "type".into(),
                if smart { "smart" } else { "absolute" }.into(),
            );
            if smart {
                put(
                    &mut lo,
                    "appContext",
                    l.app_context.clone().map(Value::from),
                );
            }
            Value::Object(lo)
        })
        .collect();
    put(&mut o, "links", Some(Value::Array(links)));
    Value::Object(o)
}

/// One action; a resource that is not a JSON object is left out.
pub fn action(a: &Action) -> Value {
    let kind = match a.action_type {
        ActionType::Create => "create",
        ActionType::Update => "update",
        ActionType::Delete => "delete",
    };
    let mut o = Map::new();
    o.insert("type".into(), kind.into());
    o.insert("description".into(), a.description.clone().into());
    let resource = a
        .resource_json
        .as_deref()
        .and_then(|r| serde_json::from_str::<Value>(r).ok())
        .filter(Value::is_object);
    put(&mut o, "resource", resource);
    put(&mut o, "resourceId", a.resource_id.clone().map(Value::from));
    Value::Object(o)
}

/// The discovery entry of a service.
pub fn service(id: &str, s: &crate::plugins::ServiceInfo) -> Value {
    let mut o = Map::new();
    o.insert("hook".into(), s.hook.clone().into());
    o.insert("id".into(), id.into());
    o.insert("title".into(), s.title.clone().into());
    o.insert("description".into(), s.description.clone().into());
    if !s.prefetch.is_empty() {
        o.insert("prefetch".into(), json!(s.prefetch));
    }
    put(
        &mut o,
        "usageRequirements",
        s.usage_requirements.clone().map(Value::from),
    );
    // CDS Hooks 3.0 (additive): the version of the specification served.
    o.insert("version".into(), super::cds::SPEC_VERSION.into());
    Value::Object(o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::clinical_rules::{CardSource, Indicator, Link, Suggestion};

    #[test]
    fn optional_attributes_are_omitted_not_null() {
        let c = Card {
            uuid: Some("u".into()),
            summary: "Amoxicillin ordered for a patient allergic to penicillin".into(),
            indicator: Indicator::Warning,
            detail: None,
            source: CardSource {
                label: "MedMemory".into(),
                url: None,
                topic: None,
            },
            suggestions: vec![Suggestion {
                label: "Remove".into(),
                uuid: Some("s".into()),
                is_recommended: true,
                actions: vec![Action {
                    action_type: ActionType::Delete,
                    description: "Remove the draft order".into(),
                    resource_json: None,
                    resource_id: Some("MedicationRequest/1".into()),
                }],
            }],
            selection_behavior: Some(SelectionBehavior::AtMostOne),
            override_reasons: Vec::new(),
            links: vec![Link {
                label: "Guideline".into(),
                url: "https://example.org".into(),
                link_type: LinkType::Absolute,
                app_context: Some("ignored".into()),
            }],
            evidence: Vec::new(),
        };
        let v = card(&c);
        assert_eq!(v["indicator"], "warning");
        assert_eq!(v["selectionBehavior"], "at-most-one");
        assert_eq!(v["suggestions"][0]["isRecommended"], true);
        assert_eq!(
            v["suggestions"][0]["actions"][0]["resourceId"],
            "MedicationRequest/1"
        );
        assert!(v["suggestions"][0]["actions"][0].get("resource").is_none());
        assert!(v.get("detail").is_none() && v.get("overrideReasons").is_none());
        assert!(v["source"].get("url").is_none());
        assert_eq!(v["links"][0]["type"], "absolute");
        assert!(v["links"][0].get("appContext").is_none());
    }
}

//! The event envelope: the JSON text that goes into the stream, byte-compatible with what the
//! platform's TypeScript publisher makes with `JSON.stringify` (docs/wire-contract.md).

use crate::clock::{iso_timestamp_ms, now_ms};
use crate::errors::PublishError;
use crate::event::{ids, validate};

/// The envelope's `version`.
pub const ENVELOPE_VERSION: &str = "1.0";

/// One event as the caller gave it. `data_json` is the payload already serialized by
/// `JSON.stringify` on the JavaScript side, spliced into the envelope unchanged.
#[derive(Debug, Clone, Default)]
pub struct EventInput {
    /// The event type, e.g. `approval.item.approved`.
    pub event_type: String,
    /// `JSON.stringify(data)`.
    pub data_json: String,
    /// `context.tenantId`.
    pub tenant_id: String,
    /// `context.userId`.
    pub user_id: String,
    /// `context.correlationId`; missing or empty means a fresh id.
    pub correlation_id: Option<String>,
    /// `context.source`; missing or empty means the publisher's default source.
    pub source: Option<String>,
    /// `context.eventId`: a caller-chosen id that makes retries idempotent.
    pub event_id: Option<String>,
    /// W3C `traceparent` (and `\n` + `tracestate`) to write beside the event (`traceContext`).
    pub trace_context: Option<String>,
}

impl EventInput {
    /// Bytes of every field but `data` (what admission counts besides the payload).
    pub fn fields_len(&self) -> usize {
        let opt = |o: &Option<String>| o.as_ref().map_or(0, String::len);
        self.event_type.len()
            + self.tenant_id.len()
            + self.user_id.len()
            + opt(&self.correlation_id)
            + opt(&self.source)
            + opt(&self.event_id)
            + opt(&self.trace_context)
    }
}

/// An event that passed validation, with its ids, timestamp and envelope JSON fixed.
#[derive(Debug, Clone)]
pub struct PreparedEvent {
    /// The event id (`id` in the JSON, `event_id` in the row).
    pub event_id: String,
    /// Whether the caller chose `event_id` (then retries are deduplicated by it).
    pub caller_event_id: bool,
    /// The metadata row's own primary key.
    pub row_id: String,
    /// The event type.
    pub event_type: String,
    /// The source after defaulting.
    pub source: String,
    /// The tenant.
    pub tenant_id: String,
    /// The correlation id after defaulting.
    pub correlation_id: String,
    /// The envelope's `timestamp` (also the row's `created_at`).
    pub timestamp: String,
    /// The whole envelope, the value of the stream entry's `event` field.
    pub json: String,
    /// `traceparent` [`\n` `tracestate`] for the entry's second field pair, or "" for none.
    pub trace_context: String,
}

impl PreparedEvent {
    /// Validates `input` and builds its envelope. Fails with `ERR_INVALID_EVENT` or
    /// `ERR_PAYLOAD_TOO_LARGE`, naming the field, before anything is written.
    pub fn prepare(
        input: EventInput,
        default_source: &str,
        max_payload_bytes: usize,
    ) -> Result<Self, PublishError> {
        validate::event_type(&input.event_type)?;
        validate::required_id("context.tenantId", &input.tenant_id)?;
        validate::required_id("context.userId", &input.user_id)?;
        if let Some(c) = &input.correlation_id {
            validate::optional_id("context.correlationId", c)?;
        }
        if let Some(s) = &input.source {
            validate::optional_id("context.source", s)?;
        }
        if let Some(id) = &input.event_id {
            validate::event_id(id)?;
        }
        validate::data_json(&input.data_json, max_payload_bytes)?;
        if let Some(t) = &input.trace_context {
            validate::trace_context(t)?;
        }

        // `||` semantics: an empty string falls back like a missing one.
        let source = match input.source {
            Some(s) if !s.is_empty() => s,
            _ => default_source.to_string(),
        };
        let correlation_id = match input.correlation_id {
            Some(c) if !c.is_empty() => c,
            _ => ids::new_id(),
        };
        let (event_id, caller_event_id) = match input.event_id {
            Some(id) => (id, true),
            None => (ids::new_id(), false),
        };
        let timestamp = iso_timestamp_ms(now_ms());
        let json = envelope_json(
            &event_id,
            &input.event_type,
            &source,
            &timestamp,
            &correlation_id,
            &input.tenant_id,
            &input.user_id,
            &input.data_json,
        );
        Ok(PreparedEvent {
            event_id,
            caller_event_id,
            row_id: ids::new_row_id(),
            event_type: input.event_type,
            source,
            tenant_id: input.tenant_id,
            correlation_id,
            timestamp,
            json,
            trace_context: input.trace_context.unwrap_or_default(),
        })
    }
}

/// Prepares `inputs` as `publishBatch` does (`batch`), else each as `publish` does: the one
/// choice `stage()` and the in-memory test publisher make, like the real calls.
pub fn prepare_all(
    inputs: Vec<EventInput>,
    batch: bool,
    default_source: &str,
    max_payload_bytes: usize,
) -> Result<Vec<PreparedEvent>, PublishError> {
    if batch {
        return prepare_batch(inputs, default_source, max_payload_bytes);
    }
    inputs
        .into_iter()
        .map(|i| PreparedEvent::prepare(i, default_source, max_payload_bytes))
        .collect()
}

/// Prepares a batch as `publishBatch` does: each event as [`PreparedEvent::prepare`] (errors
/// prefixed `events[i].`), then refuses a caller `eventId` repeated within the batch.
pub fn prepare_batch(
    inputs: Vec<EventInput>,
    default_source: &str,
    max_payload_bytes: usize,
) -> Result<Vec<PreparedEvent>, PublishError> {
    let mut events = Vec::with_capacity(inputs.len());
    for (i, input) in inputs.into_iter().enumerate() {
        events.push(
            PreparedEvent::prepare(input, default_source, max_payload_bytes)
                .map_err(|e| PublishError::new(e.code, format!("events[{i}].{}", e.message)))?,
        );
    }
    let mut seen = std::collections::HashSet::new();
    for (i, e) in events.iter().enumerate() {
        if e.caller_event_id && !seen.insert(e.event_id.as_str()) {
            return Err(PublishError::invalid(
                &format!("events[{i}].context.eventId"),
                "repeats an eventId earlier in the same batch",
            ));
        }
    }
    Ok(events)
}

/// Writes the envelope with keys in the original object literal's order; `data_json` is
/// spliced in raw so that its bytes are exactly what `JSON.stringify(data)` produced.
#[allow(clippy::too_many_arguments)]
pub fn envelope_json(
    id: &str,
    event_type: &str,
    source: &str,
    timestamp: &str,
    correlation_id: &str,
    tenant_id: &str,
    user_id: &str,
    data_json: &str,
) -> String {
    let mut out = String::with_capacity(
        160 + id.len()
            + event_type.len()
            + source.len()
            + correlation_id.len()
            + tenant_id.len()
            + user_id.len()
            + data_json.len(),
    );
    out.push_str("{\"id\":");
    push_json_string(&mut out, id);
    out.push_str(",\"type\":");
    push_json_string(&mut out, event_type);
    out.push_str(",\"source\":");
    push_json_string(&mut out, source);
    out.push_str(",\"timestamp\":\"");
    out.push_str(timestamp);
    out.push_str("\",\"correlationId\":");
    push_json_string(&mut out, correlation_id);
    out.push_str(",\"tenantId\":");
    push_json_string(&mut out, tenant_id);
    out.push_str(",\"userId\":");
    push_json_string(&mut out, user_id);
    out.push_str(",\"version\":\"");
    out.push_str(ENVELOPE_VERSION);
    out.push_str("\",\"data\":");
    out.push_str(data_json);
    out.push('}');
    out
}

/// Appends `s` as a JSON string literal with the escapes `JSON.stringify` uses: `\"`, `\\`,
/// `\b \f \n \r \t`, other control characters as lowercase `\u00xx`, everything else raw.
pub fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if esc.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push_str("\\u00");
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 0xf) as usize] as char);
        } else {
            out.push_str(esc);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errors::Code;

    fn input() -> EventInput {
        EventInput {
            event_type: "approval.item.approved".into(),
            data_json: r#"{"approvalId":"a1","n":1,"when":"2026-01-01T00:00:00.000Z"}"#.into(),
            tenant_id: "ws_1".into(),
            user_id: "user_1".into(),
            ..Default::default()
        }
    }

    #[test]
    fn prepare_batch_prefixes_errors_and_refuses_repeated_event_ids() {
        let with_id = |id: &str| EventInput {
            event_id: Some(id.into()),
            ..input()
        };
        let ok = prepare_batch(vec![input(), with_id("e1")], "platform", 1 << 20).unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!(ok[1].event_id, "e1");
        assert!(ok[1].caller_event_id && !ok[0].caller_event_id);
        let bad = prepare_batch(vec![input(), with_id("a b")], "platform", 1 << 20).unwrap_err();
        assert_eq!(bad.code, Code::InvalidEvent);
        assert!(
            bad.message.starts_with("events[1].context.eventId"),
            "{}",
            bad.message
        );
        let twice =
            prepare_batch(vec![with_id("x"), with_id("x")], "platform", 1 << 20).unwrap_err();
        assert_eq!(twice.code, Code::InvalidEvent);
        assert!(
            twice.message.contains("events[1].context.eventId"),
            "{}",
            twice.message
        );
        assert!(prepare_batch(vec![], "platform", 1).unwrap().is_empty());
    }

    #[test]
    fn envelope_key_order_and_raw_data() {
        let json = envelope_json(
            "id1",
            "approval.item.approved",
            "approvals",
            "2026-11-27T06:32:41.123Z",
            "corr1",
            "ws_1",
            "user_1",
            r#"{"b":1,"a":[1,2.5,null]}"#,
        );
        assert_eq!(
            json,
            r#"{"id":"id1","type":"approval.item.approved","source":"approvals","timestamp":"2026-11-27T06:32:41.123Z","correlationId":"corr1","tenantId":"ws_1","userId":"user_1","version":"1.0","data":{"b":1,"a":[1,2.5,null]}}"#
        );
    }

    #[test]
    fn strings_escaped_like_json_stringify() {
        let mut s = String::new();
        push_json_string(&mut s, "a\"b\\c\nd\u{1}\u{1f}\u{8}\u{c}é€😀\u{2028}/");
        assert_eq!(s, "\"a\\\"b\\\\c\\nd\\u0001\\u001f\\b\\fé€😀\u{2028}/\"");
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(
            v.as_str().unwrap(),
            "a\"b\\c\nd\u{1}\u{1f}\u{8}\u{c}é€😀\u{2028}/"
        );
    }

    #[test]
    fn defaults_follow_or_semantics() {
        let mut i = input();
        i.source = Some(String::new());
        i.correlation_id = Some(String::new());
        let e = PreparedEvent::prepare(i, "platform", 1 << 20).unwrap();
        assert_eq!(e.source, "platform");
        assert!(ids::is_cuid2_shape(&e.correlation_id));
        assert!(ids::is_cuid2_shape(&e.event_id));
        assert!(ids::is_cuid2_shape(&e.row_id));
        assert_ne!(e.event_id, e.correlation_id);
        assert!(!e.caller_event_id);

        let mut i = input();
        i.source = Some("approvals".into());
        i.correlation_id = Some("corr-7".into());
        i.event_id = Some("evt-7".into());
        let e = PreparedEvent::prepare(i, "platform", 1 << 20).unwrap();
        assert_eq!(
            (e.source.as_str(), e.correlation_id.as_str()),
            ("approvals", "corr-7")
        );
        assert_eq!(e.event_id, "evt-7");
        assert!(e.caller_event_id);
    }

    #[test]
    fn prepared_envelope_parses_with_fields_in_order() {
        let e = PreparedEvent::prepare(input(), "platform", 1 << 20).unwrap();
        let prefix = format!(
            r#"{{"id":"{}","type":"approval.item.approved","source":"platform","timestamp":"{}","correlationId":"{}","tenantId":"ws_1","userId":"user_1","version":"1.0","data":"#,
            e.event_id, e.timestamp, e.correlation_id
        );
        assert!(e.json.starts_with(&prefix), "{}", e.json);
        assert!(e
            .json
            .ends_with(r#""data":{"approvalId":"a1","n":1,"when":"2026-01-01T00:00:00.000Z"}}"#));
        let ts = &e.timestamp;
        assert_eq!(ts.len(), 24);
        assert!(ts.ends_with('Z') && &ts[19..20] == ".");
        let v: serde_json::Value = serde_json::from_str(&e.json).unwrap();
        assert_eq!(v["data"]["n"], 1);
    }

    #[test]
    fn bad_input_names_the_field() {
        type Case = (fn(&mut EventInput), &'static str, Code);
        let cases: Vec<Case> = vec![
            (
                |i| i.tenant_id.clear(),
                "context.tenantId",
                Code::InvalidEvent,
            ),
            (|i| i.user_id.clear(), "context.userId", Code::InvalidEvent),
            (
                |i| i.event_type = "Bad Type".into(),
                "type",
                Code::InvalidEvent,
            ),
            (|i| i.data_json = "[1]".into(), "data", Code::InvalidEvent),
            (
                |i| i.data_json = format!("{{\"a\":\"{}\"}}", "x".repeat(100)),
                "data",
                Code::PayloadTooLarge,
            ),
            (
                |i| i.event_id = Some("a b".into()),
                "context.eventId",
                Code::InvalidEvent,
            ),
            (
                |i| i.correlation_id = Some("c".repeat(300)),
                "context.correlationId",
                Code::InvalidEvent,
            ),
            (
                |i| i.source = Some("s".repeat(300)),
                "context.source",
                Code::InvalidEvent,
            ),
        ];
        for (mutate, field, code) in cases {
            let mut i = input();
            mutate(&mut i);
            let e = PreparedEvent::prepare(i, "platform", 100).unwrap_err();
            assert_eq!(e.code, code, "{field}");
            assert!(e.message.contains(field), "{field}: {}", e.message);
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// Any string survives `push_json_string` → JSON parser unchanged.
            #[test]
            fn json_strings_round_trip(s in any::<String>()) {
                let mut out = String::new();
                push_json_string(&mut out, &s);
                let back: String = serde_json::from_str(&out).unwrap();
                prop_assert_eq!(back, s);
            }

            /// Arbitrary contexts and types either give an envelope that parses to exactly the
            /// given fields (in order, data spliced raw), or an ERR_INVALID_EVENT; never a panic.
            #[test]
            fn prepare_is_exact_or_refuses(
                event_type in "[a-z]{1,6}\\.[a-z_0-9]{1,6}|[a-z._0-9A-Z -]{0,24}",
                tenant in any::<String>(),
                user in any::<String>(),
                correlation in proptest::option::of(any::<String>()),
                source in proptest::option::of(any::<String>()),
                value in any::<String>(),
            ) {
                let mut data = String::from("{\"v\":");
                push_json_string(&mut data, &value);
                data.push('}');
                let input = EventInput {
                    event_type: event_type.clone(),
                    data_json: data.clone(),
                    tenant_id: tenant.clone(),
                    user_id: user.clone(),
                    correlation_id: correlation.clone(),
                    source: source.clone(),
                    event_id: None,
                    trace_context: None,
                };
                match PreparedEvent::prepare(input, "platform", 1 << 20) {
                    Ok(e) => {
                        let v: serde_json::Value = serde_json::from_str(&e.json).unwrap();
                        // Key order in the text (quotes inside values are escaped, so a bare
                        // `"key":` can only be a key).
                        let positions: Vec<usize> = ["id", "type", "source", "timestamp", "correlationId", "tenantId", "userId", "version", "data"]
                            .iter()
                            .map(|k| e.json.find(&format!("\"{k}\":")).unwrap())
                            .collect();
                        prop_assert!(positions.windows(2).all(|w| w[0] < w[1]), "{}", e.json);
                        prop_assert_eq!(v.as_object().unwrap().len(), 9);
                        prop_assert_eq!(v["type"].as_str().unwrap(), event_type.as_str());
                        prop_assert_eq!(v["tenantId"].as_str().unwrap(), tenant.as_str());
                        prop_assert_eq!(v["userId"].as_str().unwrap(), user.as_str());
                        let want_source = source.filter(|s| !s.is_empty()).unwrap_or_else(|| "platform".into());
                        prop_assert_eq!(v["source"].as_str().unwrap(), want_source.as_str());
                        if let Some(c) = correlation.filter(|c| !c.is_empty()) {
                            prop_assert_eq!(v["correlationId"].as_str().unwrap(), c.as_str());
                        }
                        prop_assert_eq!(v["data"]["v"].as_str().unwrap(), value.as_str());
                        let suffix = format!(",\"data\":{data}}}");
                        prop_assert!(e.json.ends_with(&suffix));
                    }
                    Err(err) => prop_assert_eq!(err.code, Code::InvalidEvent),
                }
            }
        }
    }
}

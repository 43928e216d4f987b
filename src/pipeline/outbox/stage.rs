//! Staging: the one statement that writes staged events into the caller's own transaction, its
//! `event_metadata` rows (PENDING, `stream_id` '0-0') and its `event_outbox` rows (the envelope
//! bytes), built without I/O from events prepared by the publisher's own code.

use crate::event::{push_json_string, PreparedEvent};

/// The statement texts of one publisher (constant per table pair, so a caller's driver may
/// cache them) and the building of their one parameter.
#[derive(Debug, Clone)]
pub struct Stager {
    /// The stream the relay appends these events to (a relay only takes its own stream's rows).
    stream: String,
    /// For events with generated ids only: nothing can conflict.
    fresh: String,
    /// With a caller-supplied id: a repeat (an id that already has a row) writes nothing, not
    /// even its outbox row, so an event delivered long ago is never appended again.
    repeat: String,
}

/// One staged statement: `text` with one parameter `$1`, the JSON document `value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedStatement {
    /// The SQL text.
    pub text: String,
    /// `$1`.
    pub value: String,
}

impl Stager {
    /// Texts for the (quoted) metadata and outbox tables.
    pub fn new(metadata_table: &str, outbox_table: &str, stream: &str) -> Self {
        // `$1::text` then `::json`: every driver binds a JS string as text (Prisma, pg, Kysely,
        // Drizzle, TypeORM alike), and json (not jsonb) is parsed once, without re-encoding.
        let head = format!(
            "WITH ev AS (SELECT * FROM json_to_recordset(($1::text)::json) AS x(id text, event_id text, type text, \
             source text, tenant_id text, correlation_id text, created_at text, envelope text, trace text, \
             stream text, stage_id text, position int)), \
             m AS (INSERT INTO {metadata_table} (id, event_id, stream_id, type, source, tenant_id, correlation_id, created_at) \
             SELECT ev.id, ev.event_id, '0-0', ev.type, ev.source, ev.tenant_id, ev.correlation_id, \
             (ev.created_at::timestamptz AT TIME ZONE 'UTC') FROM ev ORDER BY ev.event_id"
        );
        // The outbox rows are joined to the metadata rows really inserted.
        let tail = format!(
            " RETURNING event_id) \
             INSERT INTO {outbox_table} (event_id, stream, envelope, trace, stage_id, position) \
             SELECT ev.event_id, ev.stream, ev.envelope, ev.trace, ev.stage_id, ev.position FROM ev \
             JOIN m ON m.event_id = ev.event_id ORDER BY ev.position"
        );
        Stager {
            stream: stream.to_string(),
            fresh: format!("{head}{tail}"),
            repeat: format!("{head} ON CONFLICT (event_id) DO NOTHING{tail}"),
        }
    }

    /// The statement staging `events` (in order; one unit for the relay: appended together).
    pub fn statement(&self, events: &[PreparedEvent]) -> StagedStatement {
        let size: usize = events.iter().map(|e| e.json.len() * 11 / 10 + 400).sum();
        let mut v = String::with_capacity(size + 2);
        let stage_id = events.first().map_or("", |e| e.event_id.as_str());
        v.push('[');
        for (i, e) in events.iter().enumerate() {
            if i > 0 {
                v.push(',');
            }
            for (k, (key, val)) in [
                ("id", e.row_id.as_str()),
                ("event_id", &e.event_id),
                ("type", &e.event_type),
                ("source", &e.source),
                ("tenant_id", &e.tenant_id),
                ("correlation_id", &e.correlation_id),
                ("created_at", &e.timestamp),
                ("envelope", &e.json),
                ("stream", &self.stream),
                ("stage_id", stage_id),
            ]
            .into_iter()
            .enumerate()
            {
                v.push(if k == 0 { '{' } else { ',' });
                push_json_string(&mut v, key);
                v.push(':');
                push_json_string(&mut v, val);
            }
            v.push_str(",\"trace\":");
            if e.trace_context.is_empty() {
                v.push_str("null");
            } else {
                push_json_string(&mut v, &e.trace_context);
            }
            v.push_str(",\"position\":");
            v.push_str(&i.to_string());
            v.push('}');
        }
        v.push(']');
        let text = if events.iter().any(|e| e.caller_event_id) {
            &self.repeat
        } else {
            &self.fresh
        };
        StagedStatement {
            text: text.clone(),
            value: v,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventInput, PreparedEvent};

    fn event(id: Option<&str>) -> PreparedEvent {
        PreparedEvent::prepare(
            EventInput {
                event_type: "approval.item.approved".into(),
                data_json: "{\"a\":\"x\\\"y\\n\"}".into(),
                tenant_id: "t".into(),
                user_id: "u".into(),
                event_id: id.map(Into::into),
                ..Default::default()
            },
            "platform",
            1 << 20,
        )
        .unwrap()
    }

    #[test]
    fn the_parameter_is_json_holding_the_exact_envelope() {
        let s = Stager::new("\"event_metadata\"", "\"event_outbox\"", "s");
        let events = vec![event(None), event(None)];
        let st = s.statement(&events);
        let v: serde_json::Value = serde_json::from_str(&st.value).unwrap();
        assert_eq!(v[0]["envelope"], events[0].json);
        assert_eq!(v[1]["position"], 1);
        assert_eq!(v[1]["stage_id"], events[0].event_id);
        assert_eq!(v[0]["trace"], serde_json::Value::Null);
        assert!(!st.text.contains("ON CONFLICT"));
        assert!(s
            .statement(&[event(Some("mine"))])
            .text
            .contains("ON CONFLICT"));
    }
}

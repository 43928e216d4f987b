//! Input checks that run before anything is written. Each failure names the field.

use crate::errors::{Code, PublishError};

/// Longest accepted `tenantId`, `userId`, `source`, `correlationId` or `type`.
pub const MAX_ID_LEN: usize = 256;
/// Longest accepted caller-supplied `eventId` (it ends up in admin URLs).
pub const MAX_EVENT_ID_LEN: usize = 128;

/// An event type is a dot-separated lowercase name: `approval.item.approved`,
/// `pm.workflow.execution.started`. Each segment starts with a letter and holds `[a-z0-9_]`.
pub fn event_type(t: &str) -> Result<(), PublishError> {
    if t.is_empty() {
        return Err(PublishError::invalid("type", "must be a non-empty string"));
    }
    if t.len() > MAX_ID_LEN {
        return Err(PublishError::invalid(
            "type",
            &format!("is longer than {MAX_ID_LEN} bytes (UTF-8)"),
        ));
    }
    let well_formed = t.contains('.')
        && t.split('.').all(|seg| {
            let b = seg.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_lowercase()
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
        });
    if !well_formed {
        return Err(PublishError::invalid(
            "type",
            "must be a dot-separated lowercase name such as 'approval.item.approved'",
        ));
    }
    Ok(())
}

/// A required context string (`tenantId`, `userId`): non-empty, bounded, no NUL (Postgres text
/// cannot hold it).
pub fn required_id(field: &str, value: &str) -> Result<(), PublishError> {
    if value.is_empty() {
        return Err(PublishError::invalid(field, "must be a non-empty string"));
    }
    optional_id(field, value)
}

/// An optional context string (`source`, `correlationId`) once present: bounded, no NUL.
pub fn optional_id(field: &str, value: &str) -> Result<(), PublishError> {
    if value.len() > MAX_ID_LEN {
        return Err(PublishError::invalid(
            field,
            &format!("is longer than {MAX_ID_LEN} bytes (UTF-8)"),
        ));
    }
    if value.contains('\0') {
        return Err(PublishError::invalid(
            field,
            "must not contain a NUL character",
        ));
    }
    Ok(())
}

/// A caller-supplied event id: non-empty, at most 128 chars, URL-safe (RFC 3986 unreserved).
pub fn event_id(value: &str) -> Result<(), PublishError> {
    if value.is_empty() {
        return Err(PublishError::invalid(
            "context.eventId",
            "must be a non-empty string",
        ));
    }
    if value.len() > MAX_EVENT_ID_LEN {
        return Err(PublishError::invalid(
            "context.eventId",
            &format!("is longer than {MAX_EVENT_ID_LEN} characters"),
        ));
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'))
    {
        return Err(PublishError::invalid(
            "context.eventId",
            "must be URL-safe: letters, digits, '-', '_', '.', '~'",
        ));
    }
    Ok(())
}

/// W3C trace context for the stream entry: `traceparent`, optionally `\n` and `tracestate`
/// (built by `index.js` from the active span; checked so no stray field reaches the entry).
pub fn trace_context(value: &str) -> Result<(), PublishError> {
    let (parent, state) = value.split_once('\n').unwrap_or((value, ""));
    let b = parent.as_bytes();
    let hex =
        |r: std::ops::Range<usize>| b[r].iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'));
    let parent_ok = b.len() == 55
        && b[2] == b'-'
        && b[35] == b'-'
        && b[52] == b'-'
        && hex(0..2)
        && hex(3..35)
        && hex(36..52)
        && hex(53..55);
    let state_ok = state.len() <= 512 && state.bytes().all(|c| (0x20..0x7f).contains(&c));
    if parent_ok && state_ok {
        Ok(())
    } else {
        Err(PublishError::invalid(
            "traceContext",
            "must be a W3C traceparent, optionally followed by a newline and a tracestate",
        ))
    }
}

/// The serialized payload: a JSON object (what `JSON.stringify` of a plain object gives),
/// within the size limit.
pub fn data_json(json: &str, max_bytes: usize) -> Result<(), PublishError> {
    if json.len() > max_bytes {
        return Err(PublishError::new(
            Code::PayloadTooLarge,
            format!(
                "data is {} bytes serialized, over the limit of {max_bytes} (maxPayloadBytes)",
                json.len()
            ),
        ));
    }
    let b = json.as_bytes();
    if b.first() != Some(&b'{') || b.last() != Some(&b'}') {
        return Err(PublishError::invalid("data", "must be a JSON object"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types() {
        for ok in [
            "approval.item.approved",
            "pm.task.phase_changed",
            "pm.workflow.execution.started",
            "kb.page.linked_to_project",
            "ai.token.limit_warning",
            "a.b2",
        ] {
            assert!(event_type(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "approval",
            "Approval.item",
            "approval..item",
            ".a.b",
            "a.b.",
            "a b.c",
            "a.1b",
            "a.b-c",
        ] {
            let e = event_type(bad).unwrap_err();
            assert_eq!(e.code, Code::InvalidEvent, "{bad}");
            assert!(e.message.starts_with("type "), "{}", e.message);
        }
        assert!(event_type(&format!("a.{}", "b".repeat(300))).is_err());
    }

    #[test]
    fn context_fields() {
        assert!(required_id("context.tenantId", "ws_1").is_ok());
        let e = required_id("context.tenantId", "").unwrap_err();
        assert!(e.message.contains("context.tenantId"));
        assert!(required_id("context.userId", &"x".repeat(257)).is_err());
        assert!(required_id("context.userId", &"x".repeat(256)).is_ok());
        assert!(required_id("context.userId", "a\0b").is_err());
        assert!(optional_id("context.source", "").is_ok());
    }

    #[test]
    fn trace_contexts() {
        let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        assert!(trace_context(tp).is_ok());
        assert!(trace_context(&format!("{tp}\nvendor=v1,other=x")).is_ok());
        assert!(trace_context(&tp.to_uppercase()).is_err());
        assert!(trace_context(&tp[..54]).is_err());
        assert!(trace_context(&format!("{tp}\nbad\nstate")).is_err());
        assert!(trace_context(&format!("{tp}\n{}", "a".repeat(513))).is_err());
    }

    #[test]
    fn event_ids() {
        assert!(event_id("order-42_retry.1~x").is_ok());
        assert!(event_id("").is_err());
        assert!(event_id("a/b").is_err());
        assert!(event_id("a b").is_err());
        assert!(event_id(&"a".repeat(128)).is_ok());
        assert!(event_id(&"a".repeat(129)).is_err());
    }

    #[test]
    fn payloads() {
        assert!(data_json("{}", 10).is_ok());
        assert_eq!(
            data_json("{\"a\":\"xxxxxxxxxx\"}", 10).unwrap_err().code,
            Code::PayloadTooLarge
        );
        assert_eq!(data_json("[]", 10).unwrap_err().code, Code::InvalidEvent);
        assert_eq!(data_json("null", 10).unwrap_err().code, Code::InvalidEvent);
        assert_eq!(data_json("\"s\"", 10).unwrap_err().code, Code::InvalidEvent);
    }
}

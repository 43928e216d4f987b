//! How a large `publishBatch` is cut into parts, so that no single command the publisher sends
//! holds the shared Redis for long: each part is one script call (and its rows a few statements),
//! written in input order, one after the other (docs/overload.md states what a consumer sees).

use crate::event::PreparedEvent;

/// Most events in one part (and in one group of coalesced publishes). Measured here: the append
/// script costs Redis 4–14 µs per event (SLOWLOG, this 2-vCPU machine under load), so 500
/// events stay under 10 ms even at the slow end.
pub(crate) const PART_EVENTS: usize = 500;
/// Most bytes of event JSON in one part or group (a part always takes at least one event):
/// Redis copies each event's JSON into Lua and again into the stream, ~1 ms per few MiB.
pub(crate) const PART_BYTES: usize = 2 << 20;

/// Whether `events` go out as one part.
pub(crate) fn fits_one(events: &[PreparedEvent]) -> bool {
    events.len() <= PART_EVENTS && events.iter().map(|e| e.json.len()).sum::<usize>() <= PART_BYTES
}

/// `events` in consecutive parts of at most `PART_EVENTS` events and `PART_BYTES` bytes of JSON.
pub(crate) fn split(events: Vec<PreparedEvent>) -> Vec<Vec<PreparedEvent>> {
    let mut parts = Vec::with_capacity(events.len() / PART_EVENTS + 1);
    let mut part: Vec<PreparedEvent> = Vec::new();
    let mut bytes = 0;
    for e in events {
        let len = e.json.len();
        if !part.is_empty() && (part.len() == PART_EVENTS || bytes + len > PART_BYTES) {
            parts.push(std::mem::take(&mut part));
            bytes = 0;
        }
        bytes += len;
        part.push(e);
    }
    if !part.is_empty() {
        parts.push(part);
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventInput;

    fn events(n: usize, data_len: usize) -> Vec<PreparedEvent> {
        (0..n)
            .map(|i| {
                PreparedEvent::prepare(
                    EventInput {
                        event_type: "a.b".into(),
                        data_json: format!("{{\"i\":{i},\"x\":\"{}\"}}", "x".repeat(data_len)),
                        tenant_id: "t".into(),
                        user_id: "u".into(),
                        correlation_id: None,
                        source: None,
                        event_id: None,
                        trace_context: None,
                    },
                    "platform",
                    8 << 20,
                )
                .unwrap()
            })
            .collect()
    }

    #[test]
    fn parts_keep_order_and_bounds() {
        let all = events(1201, 10);
        let ids: Vec<String> = all.iter().map(|e| e.event_id.clone()).collect();
        assert!(!fits_one(&all));
        let parts = split(all);
        assert_eq!(
            parts.iter().map(Vec::len).collect::<Vec<_>>(),
            [500, 500, 201]
        );
        let again: Vec<String> = parts.iter().flatten().map(|e| e.event_id.clone()).collect();
        assert_eq!(again, ids);
        assert!(fits_one(&events(500, 10)));
    }

    #[test]
    fn large_events_cut_by_bytes_and_one_event_always_fits_a_part() {
        let parts = split(events(5, 900 << 10));
        assert_eq!(parts.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1]);
        let parts = split(events(2, 3 << 20));
        assert_eq!(parts.iter().map(Vec::len).collect::<Vec<_>>(), [1, 1]);
    }
}

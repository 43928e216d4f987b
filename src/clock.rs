//! The wall clock as the envelope and the rows write it: milliseconds since the epoch, and
//! `Date.prototype.toISOString()`'s format. A leaf: the event, the rows and the logs all read it.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, from the system clock.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `2026-11-27T06:32:41.123Z`, as `new Date(ms).toISOString()` writes it.
pub fn iso_timestamp_ms(ms: u64) -> String {
    let secs = ms / 1000;
    let millis = ms % 1000;
    let days = (secs / 86_400) as i64;
    let sod = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_match_to_iso_string() {
        assert_eq!(iso_timestamp_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            iso_timestamp_ms(1_795_761_161_123),
            "2026-11-27T06:32:41.123Z"
        );
        assert_eq!(
            iso_timestamp_ms(951_782_400_007),
            "2000-02-29T00:00:00.007Z"
        );
        assert_eq!(
            iso_timestamp_ms(4_102_444_799_999),
            "2099-12-31T23:59:59.999Z"
        );
    }
}

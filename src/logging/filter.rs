//! The log filter: `logLevel` / `EVENT_PUBLISHER_LOG` parsed into per-target directives. A leaf:
//! the configuration checks a filter with it, and the `log` bridge reads [`OWN_TARGET`].

use std::str::FromStr;

use tracing_subscriber::filter::Targets;

/// The target prefix of this crate's own events; a bare level in a filter applies to these.
pub const OWN_TARGET: &str = "hyvve_event_publisher";

/// Parses `logLevel` / `EVENT_PUBLISHER_LOG`: comma-separated directives, `target=level` or a
/// bare level. A bare level (`off|error|warn|info|debug|trace`) applies to this package's own
/// records; the drivers' records are off unless named (`info,sqlx=debug`).
pub fn parse_filter(spec: &str) -> Result<Targets, String> {
    let mut directives = Vec::new();
    let mut own_named = false;
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('=') {
            Some((target, level)) => {
                let level = level_name(level).ok_or_else(|| bad(spec))?;
                own_named |= target.trim() == OWN_TARGET;
                directives.push(format!("{}={level}", target.trim()));
            }
            None => {
                let level = level_name(part).ok_or_else(|| bad(spec))?;
                own_named = true;
                directives.push(format!("{OWN_TARGET}={level}"));
            }
        }
    }
    if !own_named {
        directives.push(format!("{OWN_TARGET}=info"));
    }
    Targets::from_str(&directives.join(",")).map_err(|_| bad(spec))
}

fn bad(spec: &str) -> String {
    format!(
        "logLevel must be one of off, error, warn, info, debug, trace, or directives like \
         'info,sqlx=debug'; got '{spec}'"
    )
}

fn level_name(s: &str) -> Option<&'static str> {
    Some(match s.trim().to_ascii_lowercase().as_str() {
        "off" | "none" | "silent" => "off",
        "error" => "error",
        "warn" | "warning" => "warn",
        "info" => "info",
        "debug" => "debug",
        "trace" => "trace",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn parse_filters() {
        assert!(parse_filter("INFO").is_ok());
        assert!(parse_filter("info,sqlx=warn,redis=debug").is_ok());
        assert!(parse_filter("loud").unwrap_err().contains("'loud'"));
        assert!(parse_filter("sqlx=loud").is_err());
        let t = parse_filter("warning").unwrap();
        assert!(t.would_enable("hyvve_event_publisher::x", &Level::WARN));
        assert!(!t.would_enable("hyvve_event_publisher::x", &Level::INFO));
        assert!(!t.would_enable("sqlx::query", &Level::ERROR));
    }
}

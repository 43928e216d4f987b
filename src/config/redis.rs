//! Which Redis deployment the publisher talks to, resolved from the options and environment:
//! one node (a Cluster is detected on it at connect), Cluster seeds, or a Sentinel-watched
//! primary. Contradictory options are refused here, naming them.

use crate::errors::{redact, PublishError};

/// The deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topology {
    /// `redisUrl` names one node: standalone, or any node of a Cluster (`INFO cluster` tells).
    Node,
    /// `redisClusterNodes` / `REDIS_CLUSTER_NODES`: seed URLs of a Cluster.
    Cluster {
        /// Seed node URLs (may hold a password; never printed).
        seeds: Vec<String>,
    },
    /// `redisSentinel` or a `redis+sentinel://` URL: the primary that the sentinels name.
    Sentinel(SentinelConfig),
}

/// Where the sentinels are and what they watch.
#[derive(Clone, PartialEq, Eq)]
pub struct SentinelConfig {
    /// `host:port` of each sentinel.
    pub sentinels: Vec<(String, u16)>,
    /// The monitored primary's name.
    pub name: String,
    /// Password of the primary and its replicas.
    pub password: Option<String>,
    /// Password of the sentinels themselves.
    pub sentinel_password: Option<String>,
}

impl std::fmt::Debug for SentinelConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentinelConfig")
            .field("sentinels", &self.sentinels)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The `redisSentinel` option as the caller gives it (ioredis's shape).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SentinelOptions {
    /// `host:port` of each sentinel.
    pub sentinels: Vec<String>,
    /// The monitored primary's name.
    pub name: String,
    /// Password of the primary and its replicas.
    pub password: Option<String>,
    /// Password of the sentinels.
    pub sentinel_password: Option<String>,
}

/// Resolves the topology. `url` is the `redisUrl` option (else `REDIS_URL`) when one was given;
/// `cluster_nodes` the option, else `REDIS_CLUSTER_NODES` split on commas.
pub fn resolve(
    url: Option<&str>,
    cluster_nodes: Option<Vec<String>>,
    sentinel: Option<SentinelOptions>,
) -> Result<Topology, PublishError> {
    let sentinel_url = url.filter(|u| u.starts_with("redis+sentinel://"));
    let cluster_nodes = cluster_nodes.filter(|n| !n.is_empty());
    match (cluster_nodes, sentinel, sentinel_url) {
        (Some(_), Some(_), _) => Err(PublishError::config(
            "redisClusterNodes and redisSentinel contradict each other: a deployment is a Cluster or Sentinel-managed, not both",
        )),
        (Some(_), None, Some(_)) => Err(PublishError::config(
            "redisClusterNodes and a redis+sentinel:// redisUrl contradict each other",
        )),
        (None, Some(_), Some(_)) => Err(PublishError::config(
            "redisSentinel and a redis+sentinel:// redisUrl both name sentinels: give one",
        )),
        (Some(nodes), None, None) => {
            let seeds = nodes
                .iter()
                .map(|n| seed_url(n, url))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Topology::Cluster { seeds })
        }
        (None, Some(s), None) => Ok(Topology::Sentinel(sentinel_options(s)?)),
        (None, None, Some(u)) => Ok(Topology::Sentinel(sentinel_url_config(u)?)),
        (None, None, None) => Ok(Topology::Node),
    }
}

/// A seed as a URL: full `redis://`/`rediss://` URLs as given, `host:port` with the scheme and
/// credentials of `redisUrl` (or none).
fn seed_url(node: &str, url: Option<&str>) -> Result<String, PublishError> {
    let node = node.trim();
    let full = if node.contains("://") {
        node.to_string()
    } else {
        let (scheme, userinfo) = match url.and_then(|u| url::Url::parse(u).ok()) {
            Some(u) => {
                let userinfo = match (u.username(), u.password()) {
                    ("", None) => String::new(),
                    (user, Some(p)) => format!("{user}:{p}@"),
                    (user, None) => format!("{user}@"),
                };
                (u.scheme().to_string(), userinfo)
            }
            None => ("redis".to_string(), String::new()),
        };
        format!("{scheme}://{userinfo}{node}")
    };
    let parsed = url::Url::parse(&full).map_err(|e| {
        PublishError::config(format!(
            "redisClusterNodes entry {} is not a URL or host:port ({e})",
            redact(node)
        ))
    })?;
    if !matches!(parsed.scheme(), "redis" | "rediss")
        || parsed.host_str().is_none_or(str::is_empty)
        || parsed.port().is_none() && !node.contains("://")
    {
        return Err(PublishError::config(format!(
            "redisClusterNodes entry {} must be host:port or a redis:// or rediss:// URL",
            redact(node)
        )));
    }
    Ok(full)
}

fn host_port(what: &str, s: &str) -> Result<(String, u16), PublishError> {
    let bad = || PublishError::config(format!("{what} entry '{}' must be host:port", redact(s)));
    let (host, port) = s.trim().rsplit_once(':').ok_or_else(bad)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port: u16 = port.parse().map_err(|_| bad())?;
    if host.is_empty() || port == 0 {
        return Err(bad());
    }
    Ok((host.to_string(), port))
}

fn sentinel_options(s: SentinelOptions) -> Result<SentinelConfig, PublishError> {
    if s.sentinels.is_empty() {
        return Err(PublishError::config(
            "redisSentinel.sentinels must name at least one host:port",
        ));
    }
    if s.name.is_empty() {
        return Err(PublishError::config(
            "redisSentinel.name must name the monitored primary",
        ));
    }
    Ok(SentinelConfig {
        sentinels: s
            .sentinels
            .iter()
            .map(|h| host_port("redisSentinel.sentinels", h))
            .collect::<Result<_, _>>()?,
        name: s.name,
        password: s.password.filter(|p| !p.is_empty()),
        sentinel_password: s.sentinel_password.filter(|p| !p.is_empty()),
    })
}

/// `redis+sentinel://[:password@]host:port[,host:port]/<name>[?sentinel_password=…]`.
fn sentinel_url_config(u: &str) -> Result<SentinelConfig, PublishError> {
    let bad = |why: &str| {
        PublishError::config(format!(
            "redisUrl {} is not redis+sentinel://[:password@]host:port[,host:port]/<name>: {why}",
            redact(u)
        ))
    };
    let rest = &u["redis+sentinel://".len()..];
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    let (authority, name) = rest.split_once('/').ok_or_else(|| bad("no primary name"))?;
    let name = percent_decode(name.trim_end_matches('/'));
    if name.is_empty() {
        return Err(bad("no primary name"));
    }
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((ui, h)) => (Some(ui), h),
        None => (None, authority),
    };
    let password = userinfo
        .map(|ui| percent_decode(ui.split_once(':').map_or(ui, |(_, p)| p)))
        .filter(|p| !p.is_empty());
    let sentinels = hosts
        .split(',')
        .map(|h| host_port("redis+sentinel:// URL", h))
        .collect::<Result<Vec<_>, _>>()?;
    let mut sentinel_password = None;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("sentinel_password", v)) => sentinel_password = Some(percent_decode(v)),
            _ => {
                return Err(bad(&format!(
                    "unknown parameter '{}' (only sentinel_password)",
                    redact(pair.split('=').next().unwrap_or(""))
                )))
            }
        }
    }
    Ok(SentinelConfig {
        sentinels,
        name,
        password,
        sentinel_password: sentinel_password.filter(|p| !p.is_empty()),
    })
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// The replicas to wait for after each append: `replicaAcks`, else
/// `EVENT_PUBLISHER_REPLICA_ACKS`, else 0.
pub fn replica_acks(option: Option<f64>, env: Option<String>) -> Result<u32, PublishError> {
    let v = match (option, env) {
        (Some(v), _) => v,
        (None, Some(e)) => e.trim().parse::<f64>().map_err(|_| {
            PublishError::config(format!(
                "EVENT_PUBLISHER_REPLICA_ACKS must be a whole number, got '{e}'"
            ))
        })?,
        (None, None) => 0.0,
    };
    if !(v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v <= 64.0) {
        return Err(PublishError::config(format!(
            "replicaAcks must be a whole number from 0 to 64, got {v}"
        )));
    }
    Ok(v as u32)
}

/// Where and how to reach Redis.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// The URL as given (may hold a password; never printed).
    pub url: String,
    /// The URL without its password, for messages.
    pub display: String,
    /// `rediss://`.
    pub tls: bool,
    /// Extra CA to trust.
    pub ca_file: Option<String>,
    /// `url` came from `redisUrl` or `REDIS_URL` (not the local default).
    pub given: bool,
    /// The deployment (one node, Cluster seeds, Sentinel).
    pub topology: crate::config::redis::Topology,
    /// Replicas to wait for after each append (0: none).
    pub replica_acks: u32,
}

/// The Redis URL: the option, else `REDIS_URL`, else `REDIS_HOST`/`REDIS_PORT`/`REDIS_PASSWORD`,
/// else the local default.
pub(super) fn redis_config(
    url: Option<String>,
    ca_file: Option<String>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<RedisConfig, PublishError> {
    let given = url.is_some() || env("REDIS_URL").is_some();
    let url = match url.or_else(|| env("REDIS_URL")) {
        Some(u) => u,
        None => {
            let host = env("REDIS_HOST").unwrap_or_else(|| "127.0.0.1".into());
            let port = env("REDIS_PORT").unwrap_or_else(|| "6379".into());
            match env("REDIS_PASSWORD") {
                Some(p) => format!("redis://:{}@{host}:{port}/0", percent_encode(&p)),
                None => format!("redis://{host}:{port}/0"),
            }
        }
    };
    let base = |tls| RedisConfig {
        display: redact(&url),
        url: url.clone(),
        tls,
        ca_file: ca_file.clone(),
        topology: Topology::Node,
        replica_acks: 0,
        given,
    };
    // Parsed by `resolve` below (its host list is no URL authority).
    if url.starts_with("redis+sentinel://") {
        return Ok(base(false));
    }
    let parsed = url::Url::parse(&url)
        .map_err(|e| PublishError::config(format!("redisUrl is not a valid URL ({e})")))?;
    let tls = match parsed.scheme() {
        "redis" => false,
        "rediss" => true,
        other => {
            return Err(PublishError::config(format!(
            "redisUrl must start with redis://, rediss:// or redis+sentinel://, got '{other}://'"
        )))
        }
    };
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(PublishError::config("redisUrl has no host"));
    }
    Ok(base(tls))
}

fn percent_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errors::Code;

    #[test]
    fn a_url_alone_is_one_node() {
        assert_eq!(
            resolve(Some("redis://127.0.0.1:6379"), None, None).unwrap(),
            Topology::Node
        );
        assert_eq!(resolve(None, Some(vec![]), None).unwrap(), Topology::Node);
    }

    #[test]
    fn cluster_seeds_take_the_urls_scheme_and_password() {
        let t = resolve(
            Some("rediss://:pw@cfg.example:6379"),
            Some(vec!["10.0.0.1:7000".into(), "redis://n2:7001".into()]),
            None,
        )
        .unwrap();
        assert_eq!(
            t,
            Topology::Cluster {
                seeds: vec![
                    "rediss://:pw@10.0.0.1:7000".into(),
                    "redis://n2:7001".into()
                ]
            }
        );
        let t = resolve(None, Some(vec!["127.0.0.1:7000".into()]), None).unwrap();
        assert_eq!(
            t,
            Topology::Cluster {
                seeds: vec!["redis://127.0.0.1:7000".into()]
            }
        );
        let e = resolve(None, Some(vec!["nohostport".into()]), None).unwrap_err();
        assert_eq!(e.code, Code::Config);
        assert!(e.message.contains("redisClusterNodes"));
    }

    #[test]
    fn sentinel_url_form() {
        let t = resolve(
            Some("redis+sentinel://:s%40cret@10.0.0.1:26379,10.0.0.2:26380/mymaster?sentinel_password=sp"),
            None,
            None,
        )
        .unwrap();
        let Topology::Sentinel(s) = t else {
            panic!("not sentinel")
        };
        assert_eq!(
            s.sentinels,
            vec![("10.0.0.1".into(), 26379), ("10.0.0.2".into(), 26380)]
        );
        assert_eq!(s.name, "mymaster");
        assert_eq!(s.password.as_deref(), Some("s@cret"));
        assert_eq!(s.sentinel_password.as_deref(), Some("sp"));
        assert!(!format!("{s:?}").contains("cret"));
        let e = resolve(Some("redis+sentinel://h:1"), None, None).unwrap_err();
        assert!(e.message.contains("primary name"));
        let e = resolve(Some("redis+sentinel://:pw@h:1/m?foo=1"), None, None).unwrap_err();
        assert!(e.message.contains("foo") && !e.message.contains(":pw@"));
        let e = resolve(Some("redis+sentinel://h/m"), None, None).unwrap_err();
        assert!(e.message.contains("host:port"));
    }

    #[test]
    fn sentinel_option_form() {
        let t = resolve(
            None,
            None,
            Some(SentinelOptions {
                sentinels: vec!["127.0.0.1:26379".into()],
                name: "m".into(),
                password: Some("p".into()),
                sentinel_password: None,
            }),
        )
        .unwrap();
        assert!(
            matches!(t, Topology::Sentinel(ref s) if s.name == "m" && s.password.as_deref() == Some("p"))
        );
        let e = resolve(
            None,
            None,
            Some(SentinelOptions {
                name: "m".into(),
                ..Default::default()
            }),
        )
        .unwrap_err();
        assert!(e.message.contains("redisSentinel.sentinels"));
    }

    #[test]
    fn contradictions_are_named() {
        let s = || {
            Some(SentinelOptions {
                sentinels: vec!["h:1".into()],
                name: "m".into(),
                ..Default::default()
            })
        };
        let e = resolve(None, Some(vec!["h:1".into()]), s()).unwrap_err();
        assert_eq!(e.code, Code::Config);
        assert!(e.message.contains("redisClusterNodes") && e.message.contains("redisSentinel"));
        let e = resolve(Some("redis+sentinel://h:1/m"), None, s()).unwrap_err();
        assert!(e.message.contains("redisSentinel") && e.message.contains("redis+sentinel"));
        let e = resolve(
            Some("redis+sentinel://h:1/m"),
            Some(vec!["h:2".into()]),
            None,
        )
        .unwrap_err();
        assert!(e.message.contains("redisClusterNodes"));
    }

    #[test]
    fn replica_acks_bounds() {
        assert_eq!(replica_acks(None, None).unwrap(), 0);
        assert_eq!(replica_acks(Some(2.0), Some("5".into())).unwrap(), 2);
        assert_eq!(replica_acks(None, Some("1".into())).unwrap(), 1);
        assert!(replica_acks(Some(-1.0), None).is_err());
        assert!(replica_acks(Some(1.5), None).is_err());
        assert!(replica_acks(None, Some("x".into())).is_err());
    }

    #[test]
    fn redis_url_from_parts_keeps_password_out_of_display() {
        let c = redis_config(Some("rediss://:s3cret@cache:6380/0".into()), None, &|_| {
            None
        })
        .unwrap();
        assert!(c.tls);
        assert!(!c.display.contains("s3cret"));
        assert!(c.url.contains("s3cret"));
    }
}

//! TLS for the Redis connections made on a probed socket ([`super::probed_stream`]): the same
//! trust redis-rs gives a `rediss://` URL, so the TLS stream can sit on that socket instead of
//! one redis-rs opens itself (whose outages it cannot classify). As in redis-rs 1.8
//! (`create_rustls_config`): the webpki roots, or only the certificates of `redisCaFile` when it
//! is given; no client certificate; `#insecure` refused (redis-rs is built here without
//! `tls-rustls-insecure`); the server name is the URL's host.

use std::sync::{Arc, LazyLock, Mutex};

use redis::{ConnectionAddr, ErrorKind, RedisError};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

/// The TLS side of a connection: the connector and the name the certificate must carry.
pub struct Tls {
    pub connector: TlsConnector,
    pub name: ServerName<'static>,
}

/// Without a CA file: the webpki roots.
static WEBPKI: LazyLock<Arc<ClientConfig>> = LazyLock::new(|| {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    config(roots)
});

fn config(roots: RootCertStore) -> Arc<ClientConfig> {
    Arc::new(
        ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

fn other(msg: String) -> RedisError {
    RedisError::from(std::io::Error::other(msg))
}

/// The client config for a CA file's PEM (only its certificates are trusted), or the webpki
/// roots without one.
pub fn client_config(ca_pem: Option<&[u8]>) -> Result<Arc<ClientConfig>, RedisError> {
    let Some(pem) = ca_pem else {
        return Ok(WEBPKI.clone());
    };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| other(format!("Unable to parse root certificate PEM: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| other(format!("Unable to parse TLS trust anchors: {e}")))?;
    }
    Ok(config(roots))
}

/// The TLS to use for `addr` with `config` (the webpki roots' without one): `None` for plain TCP.
pub fn for_addr(
    addr: &ConnectionAddr,
    config: Option<&Arc<ClientConfig>>,
) -> Result<Option<Tls>, RedisError> {
    let ConnectionAddr::TcpTls { host, insecure, .. } = addr else {
        return Ok(None);
    };
    if *insecure {
        return Err(RedisError::from((
            ErrorKind::InvalidClientConfig,
            "Cannot create insecure client without tls-rustls-insecure feature",
        )));
    }
    let name = ServerName::try_from(host.as_str())
        .map_err(|e| {
            RedisError::from((
                ErrorKind::InvalidClientConfig,
                "invalid TLS server name",
                e.to_string(),
            ))
        })?
        .to_owned();
    Ok(Some(Tls {
        connector: TlsConnector::from(config.unwrap_or(&WEBPKI).clone()),
        name,
    }))
}

/// The CA files (PEM) Cluster publishers of this process were given. redis-rs copies a seed's
/// certificates into the address of every node it connects to but keeps them opaque (not even
/// their `Debug` tells two CAs apart), so a node's address names its CA only while the process
/// has one.
static CLUSTER_CAS: Mutex<Vec<(Vec<u8>, Arc<ClientConfig>)>> = Mutex::new(Vec::new());

fn cluster_cas() -> std::sync::MutexGuard<'static, Vec<(Vec<u8>, Arc<ClientConfig>)>> {
    CLUSTER_CAS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Notes that a Cluster connection is made with the CA file `pem`.
pub fn cluster_uses_ca(pem: &[u8]) -> Result<(), RedisError> {
    let mut cas = cluster_cas();
    if !cas.iter().any(|(p, _)| p == pem) {
        let config = client_config(Some(pem))?;
        cas.push((pem.to_vec(), config));
    }
    Ok(())
}

/// The config for a Cluster node at `addr` over TLS: the webpki roots when it carries no
/// certificates, the process's one CA file's when it does, `None` (unknown: leave the
/// connection to redis-rs) when Cluster publishers here were given different CA files.
pub fn cluster_config(addr: &ConnectionAddr) -> Option<Arc<ClientConfig>> {
    match addr {
        ConnectionAddr::TcpTls {
            tls_params: None, ..
        } => Some(WEBPKI.clone()),
        ConnectionAddr::TcpTls { .. } => match cluster_cas().as_slice() {
            [(_, config)] => Some(config.clone()),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_tcp_has_no_tls_insecure_is_refused_and_an_ip_host_is_an_ip_name() {
        let plain = ConnectionAddr::Tcp("127.0.0.1".into(), 6379);
        assert!(for_addr(&plain, None).unwrap().is_none());
        let info =
            redis::IntoConnectionInfo::into_connection_info("rediss://localhost:1/#insecure")
                .unwrap();
        assert!(for_addr(info.addr(), None).is_err());
        let info = redis::IntoConnectionInfo::into_connection_info("rediss://127.0.0.1:1").unwrap();
        let tls = for_addr(info.addr(), None).unwrap().unwrap();
        assert!(matches!(tls.name, ServerName::IpAddress(_)));
    }

    #[test]
    fn a_pem_without_certificates_trusts_nothing_and_garbage_is_an_error() {
        assert!(client_config(Some(b"no certificates here")).is_ok());
        assert!(client_config(Some(
            b"-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n"
        ))
        .is_err());
    }

    #[test]
    fn a_cluster_node_with_certificates_has_a_config_only_while_the_process_has_one_ca() {
        let url = "rediss://127.0.0.1:1";
        let without = redis::IntoConnectionInfo::into_connection_info(url).unwrap();
        assert!(cluster_config(without.addr()).is_some());
        // A PEM without certificates: an empty trust store, but certificates all the same.
        let pem = b"first CA file".to_vec();
        let certs = redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(pem.clone()),
        };
        let with = redis::Client::build_with_tls(url, certs).unwrap();
        assert!(cluster_config(with.get_connection_info().addr()).is_none());
        cluster_uses_ca(&pem).unwrap();
        cluster_uses_ca(&pem).unwrap();
        assert!(cluster_config(with.get_connection_info().addr()).is_some());
        cluster_uses_ca(b"second CA file").unwrap();
        assert!(cluster_config(with.get_connection_info().addr()).is_none());
        assert!(cluster_config(&ConnectionAddr::Tcp("127.0.0.1".into(), 1)).is_none());
    }
}

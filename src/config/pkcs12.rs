//! Prisma's `sslidentity` + `sslpassword`: a PKCS#12 file holding the client certificate (and its
//! chain) and private key, read once at `connect()` and handed to the driver as PEM.

use base64::Engine;

use crate::errors::PublishError;

/// A client identity as PEM: the certificate chain (leaf first) and the PKCS#8 private key.
pub struct PemIdentity {
    /// `CERTIFICATE` blocks.
    pub certs: Vec<u8>,
    /// One `PRIVATE KEY` block.
    pub key: Vec<u8>,
}

/// Never prints the key.
impl std::fmt::Debug for PemIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PemIdentity { .. }")
    }
}

fn pem(label: &str, der: &[u8], out: &mut Vec<u8>) {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    out.extend_from_slice(format!("-----BEGIN {label}-----\n").as_bytes());
    for line in b64.as_bytes().chunks(64) {
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    out.extend_from_slice(format!("-----END {label}-----\n").as_bytes());
}

/// Opens the PKCS#12 file at `path` with `password` (never part of an error message).
pub fn read_identity(
    option: &str,
    path: &str,
    password: &str,
) -> Result<PemIdentity, PublishError> {
    let data = std::fs::read(path).map_err(|e| {
        PublishError::config(format!(
            "{option} sslidentity '{path}' cannot be read ({e})"
        ))
    })?;
    let store = p12_keystore::KeyStore::from_pkcs12(
        &data,
        password,
        p12_keystore::Pkcs12ImportPolicy::Strict,
    )
    .map_err(|e| {
        PublishError::config(format!(
            "{option} sslidentity '{path}' cannot be opened with its sslpassword ({e})"
        ))
    })?;
    let Some((_, chain)) = store.private_key_chain() else {
        return Err(PublishError::config(format!(
            "{option} sslidentity '{path}' holds no private key with its certificate"
        )));
    };
    let mut certs = Vec::new();
    for c in chain.certs() {
        pem("CERTIFICATE", c.as_der(), &mut certs);
    }
    let mut key = Vec::new();
    pem("PRIVATE KEY", chain.key().as_der(), &mut key);
    Ok(PemIdentity { certs, key })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_lines_are_64_characters() {
        let mut out = Vec::new();
        pem("CERTIFICATE", &[7u8; 100], &mut out);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "-----BEGIN CERTIFICATE-----");
        assert_eq!(lines[1].len(), 64);
        assert_eq!(*lines.last().unwrap(), "-----END CERTIFICATE-----");
    }

    #[test]
    fn unreadable_or_wrong_files_are_config_errors_without_the_password() {
        let e = read_identity("databaseUrl", "/nonexistent/id.p12", "s3cret").unwrap_err();
        assert_eq!(e.code, crate::errors::Code::Config);
        assert!(e.message.contains("sslidentity") && !e.message.contains("s3cret"));
        let dir = std::env::temp_dir().join(format!("p12-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("junk.p12");
        std::fs::write(&f, b"not a pkcs12 file").unwrap();
        let e = read_identity("databaseUrl", f.to_str().unwrap(), "s3cret").unwrap_err();
        assert_eq!(e.code, crate::errors::Code::Config);
        assert!(!e.message.contains("s3cret"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

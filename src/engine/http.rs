//! The one HTTP client cutout downloads with (models, ONNX Runtime wheels).
//!
//! Certificates are checked against the operating system's trusted roots (the Windows and macOS
//! certificate stores, `/etc/ssl/certs` or `SSL_CERT_FILE` on Linux), not only a list compiled
//! into cutout: networks that inspect TLS through their own certificate authority work as they do
//! for the browser. Only where the system has no roots at all (a bare container) are Mozilla's
//! roots, compiled in, used instead. Revocation is not checked (as with rustls' own verifier).
//! Proxies come from `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY`.

use std::sync::OnceLock;

use ureq::tls::{Certificate, RootCerts, TlsConfig};

/// The shared agent (connections are reused between requests).
pub fn agent() -> &'static ureq::Agent {
    static AGENT: OnceLock<ureq::Agent> = OnceLock::new();
    AGENT.get_or_init(|| {
        ureq::Agent::config_builder()
            .tls_config(TlsConfig::builder().root_certs(system_roots()).build())
            .user_agent(concat!("cutout/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent()
    })
}

fn system_roots() -> RootCerts {
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        tracing::debug!("a system certificate could not be read: {e}");
    }
    if found.certs.is_empty() {
        tracing::info!("no system root certificates; checking servers against Mozilla's roots");
        return RootCerts::WebPki;
    }
    let certs: Vec<Certificate<'static>> = found
        .certs
        .iter()
        .map(|der| Certificate::from_der(der.as_ref()).to_owned())
        .collect();
    RootCerts::new_with_certs(&certs)
}

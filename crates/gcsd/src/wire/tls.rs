//! Mutual TLS between members: one CA per group (the CA is the group's boundary), and each
//! member's certificate names it with a URI SAN `gcs://member/<id>` (and the IP address it is
//! reached at, which the connecting side verifies). The member a certificate names is handed
//! to the hello and to authorization, so a member cannot speak for another.
//!
//! TLS 1.3 only, with ring. A certificate revocation list (`tls_crl_file`) is checked on both
//! sides.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::net::TcpListener;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::transport::{
    accept_tcp, connect_tcp, Acceptor, BoxFuture, Connected, Pending, Transport,
};
use crate::state::MemberId;

/// The URI a member certificate carries: this prefix, then the member id.
pub const MEMBER_URI: &str = "gcs://member/";

/// The files of one member's TLS setup.
pub struct TlsFiles<'a> {
    pub ca: &'a Path,
    pub cert: &'a Path,
    pub key: &'a Path,
    pub crl: Option<&'a Path>,
}

pub struct Tls {
    connector: TlsConnector,
    acceptor: TlsAcceptor,
}

impl Tls {
    /// Reads the files and checks that the certificate names member `me`.
    pub fn load(files: &TlsFiles, me: MemberId) -> Result<Self, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let read = |what: &str, path: &Path, e: rustls::pki_types::pem::Error| {
            format!("{what} {}: {e}", path.display())
        };
        let mut roots = RootCertStore::empty();
        for ca in
            CertificateDer::pem_file_iter(files.ca).map_err(|e| read("tls_ca_file", files.ca, e))?
        {
            let ca = ca.map_err(|e| read("tls_ca_file", files.ca, e))?;
            roots
                .add(ca)
                .map_err(|e| format!("tls_ca_file {}: {e}", files.ca.display()))?;
        }
        if roots.is_empty() {
            return Err(format!(
                "tls_ca_file {} holds no certificate",
                files.ca.display()
            ));
        }
        let roots = Arc::new(roots);
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(files.cert)
            .map_err(|e| read("tls_cert_file", files.cert, e))?
            .collect::<Result<_, _>>()
            .map_err(|e| read("tls_cert_file", files.cert, e))?;
        let leaf = chain.first().ok_or_else(|| {
            format!(
                "tls_cert_file {} holds no certificate",
                files.cert.display()
            )
        })?;
        let named =
            member_of(leaf).map_err(|e| format!("tls_cert_file {}: {e}", files.cert.display()))?;
        if named != me {
            return Err(format!(
                "tls_cert_file {} is member {named}'s certificate, and this is member {me}",
                files.cert.display()
            ));
        }
        let key = PrivateKeyDer::from_pem_file(files.key)
            .map_err(|e| read("tls_key_file", files.key, e))?;
        let crls: Vec<CertificateRevocationListDer<'static>> = match files.crl {
            Some(path) => CertificateRevocationListDer::pem_file_iter(path)
                .map_err(|e| read("tls_crl_file", path, e))?
                .collect::<Result<_, _>>()
                .map_err(|e| read("tls_crl_file", path, e))?,
            None => Vec::new(),
        };
        let tls13 = &[&rustls::version::TLS13];
        let clients = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .with_crls(crls.clone())
            .build()
            .map_err(|e| format!("tls_ca_file {}: {e}", files.ca.display()))?;
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(tls13)
            .map_err(|e| e.to_string())?
            .with_client_cert_verifier(clients)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(|e| format!("tls_cert_file and tls_key_file: {e}"))?;
        let servers = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
            .with_crls(crls)
            .build()
            .map_err(|e| format!("tls_ca_file {}: {e}", files.ca.display()))?;
        let client = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(tls13)
            .map_err(|e| e.to_string())?
            .with_webpki_verifier(servers)
            .with_client_auth_cert(chain, key)
            .map_err(|e| format!("tls_cert_file and tls_key_file: {e}"))?;
        Ok(Tls {
            connector: TlsConnector::from(Arc::new(client)),
            acceptor: TlsAcceptor::from(Arc::new(server)),
        })
    }
}

/// The member a certificate names: its one `gcs://member/<id>` URI SAN.
pub fn member_of(cert: &CertificateDer) -> Result<MemberId, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let names = cert
        .subject_alternative_name()
        .map_err(|e| format!("unreadable subject alternative names: {e}"))?;
    let mut ids = names
        .iter()
        .flat_map(|san| &san.value.general_names)
        .filter_map(|name| match name {
            x509_parser::extensions::GeneralName::URI(uri) => uri.strip_prefix(MEMBER_URI),
            _ => None,
        });
    match (ids.next(), ids.next()) {
        (Some(id), None) => id
            .parse::<MemberId>()
            .ok()
            .filter(|&id| id > 0)
            .ok_or_else(|| format!("{MEMBER_URI}{id} does not name a member id")),
        (None, _) => Err(format!(
            "the certificate names no member (a URI SAN {MEMBER_URI}<id>)"
        )),
        (Some(_), Some(_)) => Err("the certificate names more than one member".into()),
    }
}

/// The member named by the certificate the peer presented in `conn`.
fn peer_member(certs: Option<&[CertificateDer<'static>]>) -> std::io::Result<MemberId> {
    let leaf = certs
        .and_then(|c| c.first())
        .ok_or_else(|| std::io::Error::other("the peer presented no certificate"))?;
    member_of(leaf).map_err(std::io::Error::other)
}

impl Transport for Tls {
    fn connect<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, std::io::Result<Connected>> {
        Box::pin(async move {
            let ip = addr
                .parse::<SocketAddr>()
                .map_err(|_| std::io::Error::other(format!("{addr} is not an IP:port address")))?
                .ip();
            let tcp = connect_tcp(addr).await?;
            // The certificate must be valid for the address we meant to reach.
            let stream = self
                .connector
                .connect(ServerName::IpAddress(ip.into()), tcp)
                .await?;
            let member = peer_member(stream.get_ref().1.peer_certificates())?;
            Ok(Connected {
                stream: Box::new(stream),
                member: Some(member),
            })
        })
    }

    fn bind<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, std::io::Result<Box<dyn Acceptor>>> {
        Box::pin(async move {
            let listener = TcpListener::bind(addr).await?;
            Ok(Box::new(TlsListener {
                listener,
                acceptor: self.acceptor.clone(),
            }) as Box<dyn Acceptor>)
        })
    }
}

struct TlsListener {
    listener: TcpListener,
    acceptor: TlsAcceptor,
}

impl Acceptor for TlsListener {
    fn accept(&mut self) -> BoxFuture<'_, std::io::Result<(Pending, String)>> {
        Box::pin(async move {
            let (tcp, peer) = accept_tcp(&self.listener).await?;
            let acceptor = self.acceptor.clone();
            let handshake: Pending = Box::pin(async move {
                let stream = acceptor.accept(tcp).await?;
                let member = peer_member(stream.get_ref().1.peer_certificates())?;
                Ok(Connected {
                    stream: Box::new(stream),
                    member: Some(member),
                })
            });
            Ok((handshake, peer))
        })
    }
}

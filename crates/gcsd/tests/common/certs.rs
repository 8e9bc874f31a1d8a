//! Test certificates, minted with rcgen: one CA per test process (each test group has its own
//! group id anyway), a member certificate per member, and the broken kinds the TLS tests need.

use std::net::IpAddr;
use std::sync::OnceLock;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, SanType};

pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its key, PEM.
pub struct Minted {
    pub cert: String,
    pub key: String,
}

impl TestCa {
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        TestCa { issuer }
    }

    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A certificate with these SANs, expired if asked.
    pub fn leaf(&self, sans: Vec<SanType>, expired: bool) -> Minted {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.subject_alt_names = sans;
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Minted {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }

    /// Member `id`'s certificate, valid for `ip`.
    pub fn member(&self, id: u64, ip: IpAddr) -> Minted {
        self.leaf(member_sans(id, ip), false)
    }
}

pub fn member_sans(id: u64, ip: IpAddr) -> Vec<SanType> {
    vec![
        SanType::URI(format!("gcs://member/{id}").try_into().unwrap()),
        SanType::IpAddress(ip),
    ]
}

/// The CA of every TLS member this test process starts.
pub fn group_ca() -> &'static TestCa {
    static CA: OnceLock<TestCa> = OnceLock::new();
    CA.get_or_init(|| TestCa::new("mysql-gcs test CA"))
}

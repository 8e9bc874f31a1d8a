//! Random identifiers (the admin token, a data directory's incarnation), from the kernel.

use std::io::{self, Read};

/// `bytes` random bytes from /dev/urandom, as lower-case hex.
pub fn hex(bytes: usize) -> io::Result<String> {
    let mut raw = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut raw)?;
    Ok(raw.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn hex_is_random_and_of_the_size_asked() {
        let a = super::hex(16).unwrap();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, super::hex(16).unwrap());
    }
}

//! Generation of run credentials from the operating system's CSPRNG.

use rand::RngCore;

/// `n` random bytes, hex-encoded (2n lower-case characters).
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// A random UUID v4 string (36 characters).
pub fn random_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_and_uniqueness() {
        assert_eq!(random_hex(256).len(), 512);
        assert_ne!(random_hex(16), random_hex(16));
        assert_eq!(random_uuid().len(), 36);
    }
}

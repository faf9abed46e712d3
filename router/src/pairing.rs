//! Pairing codes: how a chat proves it may use a private bot.
//!
//! Threat: a stranger who finds a private bot guessing its way in. Codes are 10 characters from
//! a 32-letter alphabet without look-alikes (50 bits), only their SHA-256 is stored (so the
//! config file does not hand out a working code), the comparison is constant-time, and the
//! pipeline limits failed attempts per chat (see `store::Store::pairing_failure`). Left open:
//! the hash is unsalted, to stay compatible with openwork-server, which writes the same field.

use rand::Rng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/// A fresh code, `XXXXX-XXXXX`.
pub fn new_code() -> String {
    let mut rng = rand::rng();
    let chars: String = (0..10)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("{}-{}", &chars[..5], &chars[5..])
}

/// Upper-case A-Z0-9 only: the form that is hashed.
pub fn normalize(code: &str) -> String {
    code.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// The stored form of a code: SHA-256 hex of the normalised code.
pub fn hash_code(code: &str) -> String {
    hex::encode(Sha256::digest(normalize(code).as_bytes()))
}

/// Whether `code` matches the stored hash (constant-time).
pub fn verify(code: &str, stored_hash: &str) -> bool {
    let given = hash_code(code);
    given
        .as_bytes()
        .ct_eq(stored_hash.trim().to_ascii_lowercase().as_bytes())
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_verify_in_any_spelling() {
        let code = new_code();
        assert_eq!(code.len(), 11);
        let h = hash_code(&code);
        assert!(verify(&code.to_lowercase().replace('-', " "), &h));
        assert!(!verify("AAAAA-AAAAA", &h));
        assert_ne!(new_code(), code);
    }
}

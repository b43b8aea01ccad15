//! A daemon's secret: the key behind its handshake nonces, link tokens and tracker cookies.
//!
//! UDP does not authenticate a sender's address, so whatever a daemon hands out to prove a
//! round trip (a nonce, a cookie) must be unguessable by anyone who did not receive it. The
//! swarm's seeds are written to `scenario.toml`, so a nonce drawn from the seeded generator is
//! not. Daemons take their secret from the operating system ([`Secret::from_os`]); only the
//! deterministic virtual-time network and tests derive it from a seed ([`Secret::from_seed`]),
//! so that a seed still replays a run exactly.

use rand::rngs::{ChaCha12Rng, SysRng};
use rand::{Rng, SeedableRng, TryRng};
use siphasher::sip::SipHasher24;
use std::hash::Hasher;

/// 256 bits of key; see the [module docs](self).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    key: [u8; 32],
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key: debug output ends up in logs.
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// A fresh secret from the operating system's random source.
    ///
    /// # Panics
    ///
    /// If the OS has no random source to give (`getrandom` fails), which a daemon cannot
    /// recover from: it would otherwise hand out guessable nonces.
    pub fn from_os() -> Secret {
        let mut key = [0u8; 32];
        SysRng.try_fill_bytes(&mut key).expect("the operating system's random source (getrandom) failed");
        Secret { key }
    }

    /// A secret derived from a seed: reproducible, hence for virtual-time runs and tests only.
    pub fn from_seed(seed: u64) -> Secret {
        let mut rng = ChaCha12Rng::seed_from_u64(seed ^ 0x5ec2_e7ab_ad1d_ea5e);
        let mut key = [0u8; 32];
        rng.fill_bytes(&mut key);
        Secret { key }
    }

    /// A cryptographically secure generator keyed by this secret, one per `domain` (so that
    /// nonces of one purpose reveal nothing of another's).
    pub fn rng(&self, domain: &str) -> ChaCha12Rng {
        let mut seed = self.key;
        let d = self.mac(&[b"rng", domain.as_bytes()]).to_le_bytes();
        for (s, d) in seed.iter_mut().zip(d.iter().cycle()) {
            *s ^= d;
        }
        ChaCha12Rng::from_seed(seed)
    }

    /// A keyed hash (SipHash-2-4 under the first half of the key, over the parts with their
    /// lengths) of `parts`: a stateless cookie or a token nobody without the secret can forge.
    pub fn mac(&self, parts: &[&[u8]]) -> u64 {
        let k0 = u64::from_le_bytes(self.key[0..8].try_into().expect("8 bytes"));
        let k1 = u64::from_le_bytes(self.key[8..16].try_into().expect("8 bytes"));
        let mut h = SipHasher24::new_with_keys(k0, k1);
        for p in parts {
            h.write_u64(p.len() as u64);
            h.write(p);
        }
        h.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngExt;

    #[test]
    fn seeded_secrets_replay_and_os_secrets_differ() {
        assert_eq!(Secret::from_seed(7), Secret::from_seed(7));
        assert_ne!(Secret::from_seed(7), Secret::from_seed(8));
        assert_ne!(Secret::from_os(), Secret::from_os());
        assert_eq!(format!("{:?}", Secret::from_seed(7)), "Secret(..)");
    }

    #[test]
    fn macs_depend_on_key_parts_and_their_boundaries() {
        let s = Secret::from_seed(1);
        assert_eq!(s.mac(&[b"ab", b"c"]), s.mac(&[b"ab", b"c"]));
        assert_ne!(s.mac(&[b"ab", b"c"]), s.mac(&[b"a", b"bc"]));
        assert_ne!(s.mac(&[b"ab"]), Secret::from_seed(2).mac(&[b"ab"]));
    }

    #[test]
    fn domains_give_independent_streams() {
        let s = Secret::from_seed(1);
        let a: u64 = s.rng("hello").random();
        let b: u64 = s.rng("tracker").random();
        assert_ne!(a, b);
        assert_eq!(a, s.rng("hello").random::<u64>());
    }
}

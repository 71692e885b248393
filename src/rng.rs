//! The project's seeded random number generator.
//!
//! Candle's CPU device RNG cannot be seeded, so dropout masks, noise and data order are all drawn from
//! this generator. ChaCha8 is portable and its state serialises, so a checkpoint can carry it.
use rand::SeedableRng;
pub use rand_chacha::ChaCha8Rng as Rng;

/// A generator for a named stream derived from the run seed, so that data order, dropout and noise
/// do not consume each other's numbers.
pub fn stream(seed: u64, stream: u64) -> Rng {
    let mut rng = Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

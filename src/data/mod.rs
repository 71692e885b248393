//! Dataset readers, label maps, splits and batching.

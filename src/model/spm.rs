//! A reader for SentencePiece `.model` files (`spm.model`).
//!
//! The file is a serialized `sentencepiece.ModelProto`. Only the fields needed to rebuild the
//! tokenizer are decoded, with a small protobuf wire-format reader instead of a protobuf dependency:
//!
//! ```text
//! ModelProto      { pieces = 1 (repeated SentencePiece), trainer_spec = 2, normalizer_spec = 3 }
//! SentencePiece   { piece = 1 (string), score = 2 (float), type = 3 (enum) }
//! TrainerSpec     { model_type = 3, control_symbols = 30 (repeated string), unk_id = 40 }
//! NormalizerSpec  { precompiled_charsmap = 2 (bytes) }
//! ```
/// What a vocabulary entry is for (`SentencePiece.Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PieceKind {
    Normal,
    Unknown,
    /// Never produced from text: `[CLS]`, `[SEP]`, `[PAD]`, ...
    Control,
    /// Always kept whole when it appears in text.
    UserDefined,
    Unused,
    /// `<0xAB>` pieces of byte fallback.
    Byte,
}

/// One vocabulary entry; its id is its index in [`SpmModel::pieces`].
#[derive(Debug, Clone, PartialEq)]
pub struct Piece {
    pub piece: String,
    /// The unigram log-probability.
    pub score: f32,
    pub kind: PieceKind,
}

/// The parts of a SentencePiece model a Unigram tokenizer is built from.
#[derive(Debug, Clone, PartialEq)]
pub struct SpmModel {
    pub pieces: Vec<Piece>,
    pub unk_id: usize,
    /// Control symbols declared at training time (`[CLS]`, `[MASK]`, ...), possibly not among the pieces.
    pub control_symbols: Vec<String>,
    /// The normalization rules compiled into a double-array trie (`nmt_nfkc` and friends).
    pub precompiled_charsmap: Vec<u8>,
}

/// `TrainerSpec.ModelType::UNIGRAM`, the only algorithm DeBERTa uses.
const UNIGRAM: u64 = 1;

impl SpmModel {
    /// Decodes a serialized `ModelProto`.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SpmError> {
        let mut model =
            Self { pieces: Vec::new(), unk_id: 0, control_symbols: Vec::new(), precompiled_charsmap: Vec::new() };
        let mut model_type = UNIGRAM;
        for field in Fields::new(bytes) {
            match field? {
                (1, Value::Bytes(b)) => model.pieces.push(decode_piece(b)?),
                (2, Value::Bytes(b)) => model_type = model.read_trainer_spec(b)?,
                (3, Value::Bytes(b)) => model.read_normalizer_spec(b)?,
                _ => {}
            }
        }
        if model_type != UNIGRAM {
            return Err(SpmError::NotUnigram(model_type));
        }
        if model.pieces.is_empty() {
            return Err(SpmError::NoPieces);
        }
        if model.unk_id >= model.pieces.len() {
            return Err(SpmError::UnkOutOfRange(model.unk_id, model.pieces.len()));
        }
        Ok(model)
    }

    /// Reads the trainer options into `self`; returns the model type.
    fn read_trainer_spec(&mut self, bytes: &[u8]) -> Result<u64, SpmError> {
        let mut model_type = UNIGRAM;
        for field in Fields::new(bytes) {
            match field? {
                (3, Value::Varint(v)) => model_type = v,
                (30, Value::Bytes(b)) => self.control_symbols.push(decode_string(b)?),
                // An int32 field: a negative id is sign-extended to ten bytes and ends up huge here,
                // which the range check of `from_bytes` rejects.
                (40, Value::Varint(v)) => self.unk_id = usize::try_from(v).unwrap_or(usize::MAX),
                _ => {}
            }
        }
        Ok(model_type)
    }

    fn read_normalizer_spec(&mut self, bytes: &[u8]) -> Result<(), SpmError> {
        for field in Fields::new(bytes) {
            if let (2, Value::Bytes(b)) = field? {
                self.precompiled_charsmap = b.to_vec();
            }
        }
        Ok(())
    }
}

fn decode_piece(bytes: &[u8]) -> Result<Piece, SpmError> {
    let mut piece = Piece { piece: String::new(), score: 0.0, kind: PieceKind::Normal };
    for field in Fields::new(bytes) {
        match field? {
            (1, Value::Bytes(b)) => piece.piece = decode_string(b)?,
            (2, Value::Fixed32(bits)) => piece.score = f32::from_bits(bits),
            (3, Value::Varint(v)) => piece.kind = piece_kind(v)?,
            _ => {}
        }
    }
    Ok(piece)
}

fn piece_kind(value: u64) -> Result<PieceKind, SpmError> {
    Ok(match value {
        1 => PieceKind::Normal,
        2 => PieceKind::Unknown,
        3 => PieceKind::Control,
        4 => PieceKind::UserDefined,
        5 => PieceKind::Unused,
        6 => PieceKind::Byte,
        other => return Err(SpmError::BadPieceType(other)),
    })
}

fn decode_string(bytes: &[u8]) -> Result<String, SpmError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| SpmError::NotUtf8)
}

/// A malformed SentencePiece model.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpmError {
    #[error("truncated protobuf data at byte {0}")]
    Truncated(usize),
    #[error("varint longer than 10 bytes at byte {0}")]
    VarintTooLong(usize),
    #[error("unsupported protobuf wire type {wire_type} at byte {at}")]
    BadWireType { wire_type: u64, at: usize },
    #[error("a piece is not valid UTF-8")]
    NotUtf8,
    #[error("unknown piece type {0}")]
    BadPieceType(u64),
    #[error("model type {0} is not a unigram model (only unigram SentencePiece models are supported)")]
    NotUnigram(u64),
    #[error("the model has no pieces")]
    NoPieces,
    #[error("unk_id {0} is outside the {1} pieces")]
    UnkOutOfRange(usize, usize),
}

/// One decoded field value, by wire type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Value<'a> {
    Varint(u64),
    /// Skipped: no field the reader needs is a 64-bit fixed-width one.
    Fixed64,
    Bytes(&'a [u8]),
    Fixed32(u32),
}

/// Iterates over the `(field number, value)` pairs of one serialized message.
struct Fields<'a> {
    bytes: &'a [u8],
    pos: usize,
    failed: bool,
}

impl<'a> Fields<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0, failed: false }
    }

    fn varint(&mut self) -> Result<u64, SpmError> {
        let start = self.pos;
        let mut value = 0u64;
        for shift in (0..70).step_by(7) {
            let byte = *self.bytes.get(self.pos).ok_or(SpmError::Truncated(self.pos))?;
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(SpmError::VarintTooLong(start))
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], SpmError> {
        let end = self.pos.checked_add(len).filter(|&end| end <= self.bytes.len());
        let end = end.ok_or(SpmError::Truncated(self.bytes.len()))?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn field(&mut self) -> Result<(u32, Value<'a>), SpmError> {
        let at = self.pos;
        let key = self.varint()?;
        // Field numbers are at most 2^29 - 1, so the shifted key always fits.
        let number = (key >> 3) as u32;
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Value::Fixed64
            }
            2 => {
                let len = self.varint()?;
                let len = usize::try_from(len).map_err(|_| SpmError::Truncated(self.bytes.len()))?;
                Value::Bytes(self.take(len)?)
            }
            5 => {
                let bytes = self.take(4)?;
                Value::Fixed32(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
            }
            wire_type => return Err(SpmError::BadWireType { wire_type, at }),
        };
        Ok((number, value))
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u32, Value<'a>), SpmError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.bytes.len() {
            return None;
        }
        let field = self.field();
        self.failed = field.is_err();
        Some(field)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    fn bytes_field(number: u64, payload: &[u8], out: &mut Vec<u8>) {
        varint(number << 3 | 2, out);
        varint(payload.len() as u64, out);
        out.extend_from_slice(payload);
    }

    fn varint_field(number: u64, value: u64, out: &mut Vec<u8>) {
        varint(number << 3, out);
        varint(value, out);
    }

    fn piece(text: &str, score: f32, kind: u64) -> Vec<u8> {
        let mut out = Vec::new();
        bytes_field(1, text.as_bytes(), &mut out);
        varint(2 << 3 | 5, &mut out);
        out.extend_from_slice(&score.to_le_bytes());
        varint_field(3, kind, &mut out);
        out
    }

    fn tiny_model() -> Vec<u8> {
        let mut trainer = Vec::new();
        varint_field(3, 1, &mut trainer);
        bytes_field(30, b"[MASK]", &mut trainer);
        varint_field(40, 1, &mut trainer);
        // An unknown field the reader must skip.
        varint(99 << 3 | 1, &mut trainer);
        trainer.extend_from_slice(&7u64.to_le_bytes());
        let mut normalizer = Vec::new();
        bytes_field(1, b"nmt_nfkc", &mut normalizer);
        bytes_field(2, &[1, 2, 3], &mut normalizer);

        let mut model = Vec::new();
        bytes_field(1, &piece("[PAD]", 0.0, 3), &mut model);
        bytes_field(1, &piece("[UNK]", 0.0, 2), &mut model);
        bytes_field(1, &piece("▁hi", -1.5, 1), &mut model);
        bytes_field(2, &trainer, &mut model);
        bytes_field(3, &normalizer, &mut model);
        model
    }

    #[test]
    fn decodes_pieces_and_specs() {
        let model = SpmModel::from_bytes(&tiny_model()).unwrap();
        assert_eq!(model.pieces.len(), 3);
        assert_eq!(model.pieces[2], Piece { piece: "▁hi".into(), score: -1.5, kind: PieceKind::Normal });
        assert_eq!(model.pieces[0].kind, PieceKind::Control);
        assert_eq!(model.unk_id, 1);
        assert_eq!(model.control_symbols, vec!["[MASK]".to_string()]);
        assert_eq!(model.precompiled_charsmap, vec![1, 2, 3]);
    }

    #[test]
    fn truncated_input_is_an_error() {
        let bytes = tiny_model();
        for cut in [1, 5, bytes.len() - 1] {
            assert!(SpmModel::from_bytes(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn rejects_garbage_and_non_unigram() {
        assert!(SpmModel::from_bytes(b"{\"not\": \"protobuf\"}").is_err());
        let mut bpe = tiny_model();
        let mut trainer = Vec::new();
        varint_field(3, 2, &mut trainer);
        bytes_field(2, &trainer, &mut bpe);
        assert_eq!(SpmModel::from_bytes(&bpe), Err(SpmError::NotUnigram(2)));
    }
}

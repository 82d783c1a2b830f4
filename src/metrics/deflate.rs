//! One gzip stream assembled from pieces compressed separately, so that a tenant's series
//! are compressed once when they change and a scrape's gzip body is a concatenation.
//!
//! Each [`Piece`] is the raw DEFLATE encoding of one text by a reset compressor, ended
//! with a sync flush: its blocks are not final, it ends on a byte boundary and it refers
//! to nothing before its own start, so pieces can follow one another in any order.
//! [`gzip`] writes the gzip header (RFC 1952), the pieces, an empty final block, and the
//! trailer: the CRC-32 of the whole text, combined from the pieces' CRCs, and its length.
//! This is how `pigz` joins the blocks it compresses in parallel.
//!
//! Keeping only the compressed pieces is what lets hundreds of tenants be served
//! pre-rendered: the text of 200 tenants is about 27 MB, its pieces about 1.8 MB.

use bytes::Bytes;
use flate2::{Compress, Compression, FlushCompress};

/// One text, compressed on its own; cheap to clone.
#[derive(Clone)]
pub struct Piece {
    deflate: Bytes,
    crc: crc32fast::Hasher,
    len: u64,
}

impl std::fmt::Debug for Piece {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Piece")
            .field("text_bytes", &self.len)
            .field("compressed_bytes", &self.deflate.len())
            .finish()
    }
}

impl Piece {
    /// The length of the text this piece encodes.
    pub fn text_len(&self) -> u64 {
        self.len
    }

    /// The text as stored (uncompressed) DEFLATE blocks: the fallback when compression
    /// fails or its flush does not complete (see [`Compressor::piece`]).
    fn stored(text: &[u8]) -> Piece {
        let mut out = Vec::with_capacity(text.len() + text.len() / 65_535 * 5 + 5);
        for block in text.chunks(usize::from(u16::MAX)) {
            // BFINAL 0, BTYPE 00, then LEN and its one's complement, little-endian.
            let len = u16::try_from(block.len()).unwrap_or(u16::MAX);
            out.push(0);
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&(!len).to_le_bytes());
            out.extend_from_slice(block);
        }
        Piece::with_crc(&out, text)
    }

    fn with_crc(deflate: &[u8], text: &[u8]) -> Piece {
        let mut crc = crc32fast::Hasher::new();
        crc.update(text);
        Piece {
            deflate: Bytes::copy_from_slice(deflate),
            crc,
            len: text.len() as u64,
        }
    }
}

/// A raw-DEFLATE compressor at the fastest level, reset before every piece (its tables
/// and output buffer are reused rather than allocated per piece).
pub struct Compressor {
    inner: Compress,
    out: Vec<u8>,
}

impl Default for Compressor {
    fn default() -> Self {
        Compressor {
            inner: Compress::new(Compression::fast(), false),
            out: Vec::new(),
        }
    }
}

impl Compressor {
    /// `text` compressed on its own (see the module documentation).
    pub fn piece(&mut self, text: &[u8]) -> Piece {
        self.inner.reset();
        self.out.clear();
        match self.compress(text) {
            Ok(()) => Piece::with_crc(&self.out, text),
            Err(error) => {
                tracing::error!(%error, "compression failed; keeping the text stored");
                Piece::stored(text)
            }
        }
    }

    /// Compresses `text` in one call with a sync flush, into a buffer larger than DEFLATE
    /// can make any text. miniz_oxide (flate2's default backend) may leave a sync flush
    /// incomplete when its output does not fit (its issue #105; at the fastest level a
    /// continued flush lost the final marker, found by the property test in
    /// `tests/it/properties.rs`), so the piece is accepted only when the whole text went in
    /// and the output ends with the sync marker with room to spare; otherwise the caller
    /// stores the text uncompressed, which is always valid.
    fn compress(&mut self, text: &[u8]) -> Result<(), String> {
        let bound = text.len() + text.len() / 64 + 1024;
        self.out.reserve(bound);
        self.inner
            .compress_vec(text, &mut self.out, FlushCompress::Sync)
            .map_err(|e| e.to_string())?;
        let consumed = usize::try_from(self.inner.total_in()).map_err(|e| e.to_string())?;
        if consumed != text.len() {
            return Err(format!("{consumed} of {} bytes compressed", text.len()));
        }
        if self.out.len() >= self.out.capacity() || !self.out.ends_with(&SYNC_MARKER) {
            return Err("the sync flush did not complete".into());
        }
        Ok(())
    }
}

/// How a sync flush ends: an empty stored block's LEN and NLEN.
const SYNC_MARKER: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Gzip header: magic, DEFLATE, no flags, no modification time, no extra flags, unknown
/// operating system.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// An empty fixed-Huffman block with BFINAL set: ends the DEFLATE stream.
const FINAL_BLOCK: [u8; 2] = [0x03, 0x00];

/// One gzip stream of the concatenated texts of `pieces`, in order.
pub fn gzip<'a>(pieces: impl IntoIterator<Item = &'a Piece> + Clone) -> Vec<u8> {
    let size: usize = pieces.clone().into_iter().map(|p| p.deflate.len()).sum();
    let mut out = Vec::with_capacity(size + HEADER.len() + FINAL_BLOCK.len() + 8);
    out.extend_from_slice(&HEADER);
    let mut crc = crc32fast::Hasher::new();
    let mut len = 0u64;
    for piece in pieces {
        out.extend_from_slice(&piece.deflate);
        crc.combine(&piece.crc);
        len = len.wrapping_add(piece.len);
    }
    out.extend_from_slice(&FINAL_BLOCK);
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    // ISIZE is the length modulo 2^32.
    out.extend_from_slice(&((len & u64::from(u32::MAX)) as u32).to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut text = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut text)
            .unwrap();
        text
    }

    fn sample(lines: usize, seed: usize) -> Vec<u8> {
        (0..lines)
            .map(|i| {
                format!(
                    "metric_bucket{{tenant=\"t{seed}\",le=\"{i}\"}} {}\n",
                    i * seed
                )
            })
            .collect::<String>()
            .into_bytes()
    }

    #[test]
    fn pieces_in_any_order_decode_to_the_concatenated_text() {
        let mut c = Compressor::default();
        let texts = [sample(3, 1), Vec::new(), sample(5000, 2), sample(1, 3)];
        let pieces: Vec<Piece> = texts.iter().map(|t| c.piece(t)).collect();
        for order in [[0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1]] {
            let chosen: Vec<&Piece> = order.iter().map(|i| &pieces[*i]).collect();
            let expected: Vec<u8> = order.iter().flat_map(|i| texts[*i].clone()).collect();
            assert_eq!(gunzip(&gzip(chosen.iter().copied())), expected);
        }
    }

    #[test]
    fn a_piece_compresses_and_counts_its_text() {
        let mut c = Compressor::default();
        let text = sample(5000, 7);
        let piece = c.piece(&text);
        assert_eq!(piece.text_len(), text.len() as u64);
        assert!(
            piece.deflate.len() * 5 < text.len(),
            "{} compressed bytes for {} bytes of text",
            piece.deflate.len(),
            text.len()
        );
    }

    #[test]
    fn stored_pieces_mix_with_compressed_ones() {
        let mut c = Compressor::default();
        let big = sample(3000, 4); // more than one stored block of 65 535 bytes
        assert!(big.len() > 65_535);
        let pieces = [Piece::stored(&big), c.piece(b"x 1\n"), Piece::stored(b"")];
        let mut expected = big.clone();
        expected.extend_from_slice(b"x 1\n");
        assert_eq!(gunzip(&gzip(pieces.iter())), expected);
    }

    #[test]
    fn incompressible_text_that_outgrows_the_first_buffer_decodes() {
        // Found by the property test in tests/it/properties.rs: flushing in several calls
        // lost the sync marker at the fastest level.
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let mut c = Compressor::default();
        for len in [58_254, 65_536, 140_000] {
            let text: Vec<u8> = (0..len).map(|_| rng.r#gen()).collect();
            assert_eq!(gunzip(&gzip([&c.piece(&text)])), text, "{len} random bytes");
        }
    }

    #[test]
    fn no_pieces_is_a_valid_empty_gzip_stream() {
        assert_eq!(gunzip(&gzip(std::iter::empty::<&Piece>())), b"");
    }
}

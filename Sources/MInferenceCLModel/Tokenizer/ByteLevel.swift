/// GPT-2's byte-to-unicode map (`bytes_to_unicode` in OpenAI's encoder.py, `unicode_byte_to_utf8`
/// in llama.cpp): byte-level BPE vocabularies spell every byte as one printable scalar, so a
/// token's text never holds a space or control character. Bytes `!`...`~`, `¡`...`¬` and
/// `®`...`ÿ` stand for themselves; the other 68 take U+0100, U+0101, ... in byte order
/// (space, 0x20, is `Ġ` U+0120).
enum ByteLevel {
    /// The scalar that spells each byte.
    static let scalars: [Unicode.Scalar] = {
        let printable = Array(0x21...0x7E) + Array(0xA1...0xAC) + Array(0xAE...0xFF)
        var map = [Unicode.Scalar](repeating: "\0", count: 256)
        for b in printable { map[b] = Unicode.Scalar(UInt32(b))! }
        var next: UInt32 = 0x100
        for b in 0..<256 where !printable.contains(b) {
            map[b] = Unicode.Scalar(next)!
            next += 1
        }
        return map
    }()

    /// The byte each spelling scalar stands for.
    static let bytes: [Unicode.Scalar: UInt8] = Dictionary(uniqueKeysWithValues: scalars.enumerated().map { ($1, UInt8($0)) })

    /// The bytes a byte-level token's text stands for; a scalar outside the map (a token added by
    /// hand) stands for its own UTF-8.
    static func decode(_ text: String, into out: inout [UInt8]) {
        for s in text.unicodeScalars {
            if let b = bytes[s] { out.append(b) } else { out += String(s).utf8 }
        }
    }
}

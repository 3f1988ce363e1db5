extension Tokenizer {
    /// The bytes `id` stands for: a normal token's byte-level spelling decoded, a user-defined
    /// token's text as it is, a control or unknown token's text only when `renderSpecial`.
    /// - Throws: `TokenizerError.unknownID`.
    public func piece(_ id: Int32, renderSpecial: Bool = true) throws -> [UInt8] {
        var out: [UInt8] = []
        try appendPiece(id, renderSpecial: renderSpecial, to: &out)
        return out
    }

    /// The text of `ids`; bytes that are not whole UTF-8 (a cut inside a character) become U+FFFD.
    /// - Parameter renderSpecial: write control tokens (`<|im_end|>`) as their text (default),
    ///   so `decode(encode(text)) == text`; false leaves them out, as llama.cpp's detokenizer
    ///   does by default.
    /// - Throws: `TokenizerError.unknownID`.
    public func decode(_ ids: [Int32], renderSpecial: Bool = true) throws -> String {
        var out: [UInt8] = []
        for id in ids { try appendPiece(id, renderSpecial: renderSpecial, to: &out) }
        return String(decoding: out, as: UTF8.self)
    }

    private func appendPiece(_ id: Int32, renderSpecial: Bool, to out: inout [UInt8]) throws {
        guard id >= 0, Int(id) < tokens.count else { throw TokenizerError.unknownID(id, vocabularySize: tokens.count) }
        let text = tokens[Int(id)]
        switch tokenTypes[Int(id)] {
        case .normal, .byte, .undefined: ByteLevel.decode(text, into: &out)
        case .userDefined: out += text.utf8
        case .control, .unknown: if renderSpecial { out += text.utf8 }
        case .unused: break
        }
    }
}

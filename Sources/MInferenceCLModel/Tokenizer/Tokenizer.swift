/// A byte-level BPE tokenizer (GPT-2 style) as llama.cpp runs it for `tokenizer.ggml.model`
/// `gpt2`: special tokens are cut out of the text first, the rest is split into words by the
/// `PreTokenizer`, each word's UTF-8 bytes start as byte tokens and are merged by rank.
///
/// Token ids are `Int32` (llama.cpp's `llama_token`). `encode` keeps a cache of word → tokens
/// for one call, so long texts, whose words repeat, cost little more than their distinct words.
public struct Tokenizer: Sendable {
    /// Token texts by id, in the byte-level spelling (`Ġthe`).
    public let tokens: [String]
    public let tokenTypes: [TokenType]
    public let preTokenizer: PreTokenizer
    public let bos: Int32?
    public let eos: Int32?
    public let padding: Int32?
    public let unknown: Int32?
    /// Whether `encode` puts `bos` first unless told otherwise (`tokenizer.ggml.add_bos_token`).
    public let addsBOS: Bool

    let ids: [String: Int32]
    let merges: BPEMerges
    /// The token of each byte, by byte value; -1 where the vocabulary has none (see `missingBytes`).
    let byteTokens: [Int32]
    /// Control and user-defined tokens, longest first: llama.cpp cuts them out in this order.
    let specialTokens: [(bytes: [UInt8], id: Int32)]

    public var vocabularySize: Int { tokens.count }
    /// Merges that name tokens missing from the vocabulary, left out.
    public var skippedMerges: Int { merges.skipped }
    /// Bytes with no token of their own (SmolLM2 has none for 0x04, 0x06, 0x13, 0x14, 0x16, 0x1D
    /// and 15 bytes that never occur in UTF-8 or only outside assigned planes). Such a byte
    /// blocks merges across it and is then left out of the output, as llama.cpp does (Hugging
    /// Face drops it before merging, so its neighbours may merge: `!\u{4}!` differs).
    public var missingBytes: [UInt8] { (0...255).filter { byteTokens[Int($0)] < 0 } }

    /// - Parameters:
    ///   - tokens: token texts by id.
    ///   - tokenTypes: one per token; empty means every token is `.normal`.
    ///   - merges: `"left right"` in rank order.
    /// A text that appears twice maps to its last id, as in llama.cpp.
    /// - Throws: `TokenizerError` (`countMismatch`, `badMerge`, `idOutOfRange`).
    public init(tokens: [String], tokenTypes: [TokenType] = [], merges: [String], preTokenizer: PreTokenizer,
                bos: Int32? = nil, eos: Int32? = nil, padding: Int32? = nil, unknown: Int32? = nil,
                addsBOS: Bool = false) throws {
        let types = tokenTypes.isEmpty ? [TokenType](repeating: .normal, count: tokens.count) : tokenTypes
        guard types.count == tokens.count else { throw TokenizerError.countMismatch(tokens: tokens.count, types: types.count) }
        var ids: [String: Int32] = [:]
        ids.reserveCapacity(tokens.count)
        for (i, t) in tokens.enumerated() { ids[t] = Int32(i) }
        for (key, id) in [("bos", bos), ("eos", eos), ("padding", padding), ("unknown", unknown)] {
            if let id, !(0..<Int32(tokens.count)).contains(id) {
                throw TokenizerError.idOutOfRange(key: key, id: Int(id), vocabularySize: tokens.count)
            }
        }
        byteTokens = ByteLevel.scalars.map { ids[String($0)] ?? -1 }
        self.merges = try BPEMerges(merges, ids: ids)
        specialTokens = types.indices.filter { types[$0].isSpecial && !tokens[$0].isEmpty }
            .map { (Array(tokens[$0].utf8), Int32($0)) }
            .sorted { $0.bytes.count > $1.bytes.count }
        self.tokens = tokens
        self.tokenTypes = types
        self.ids = ids
        self.preTokenizer = preTokenizer
        self.bos = bos
        self.eos = eos
        self.padding = padding
        self.unknown = unknown
        self.addsBOS = addsBOS
    }

    /// The id of a token text in the byte-level spelling (`"Ġthe"`, `"<|im_end|>"`).
    public func id(of token: String) -> Int32? { ids[token] }
}

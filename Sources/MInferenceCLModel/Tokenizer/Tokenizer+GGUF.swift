extension Tokenizer {
    /// The tokenizer stored in a GGUF file's `tokenizer.ggml.*` keys: `model` (must be `gpt2`),
    /// `pre`, `tokens`, `token_type` (optional), `merges`, `bos_token_id`, `eos_token_id`,
    /// `padding_token_id`, `unknown_token_id` (optional), `add_bos_token` (optional, default false).
    /// - Throws: `GGUFError.missingKey`/`wrongType` for absent or mistyped keys;
    ///   `TokenizerError` for a model or pre-tokenizer that is not supported, or a bad vocabulary.
    public init(gguf file: GGUFFile) throws {
        let model = try file.string("tokenizer.ggml.model")
        guard model == "gpt2" else { throw TokenizerError.unsupportedModel(model) }
        // Without the key llama.cpp falls back to its 'default' rules, which are not these.
        let preName = try file.optional("tokenizer.ggml.pre", GGUFFile.string) ?? "default"
        guard let pre = PreTokenizer(ggmlName: preName) else { throw TokenizerError.unsupportedPreTokenizer(preName) }
        let tokens = try file.strings("tokenizer.ggml.tokens")
        let types = try (file.optional("tokenizer.ggml.token_type", GGUFFile.ints) ?? []).enumerated().map { i, raw in
            guard let t = Int32(exactly: raw).flatMap(TokenType.init(rawValue:)) else {
                throw TokenizerError.unknownTokenType(id: i, rawType: raw)
            }
            return t
        }
        func id(_ key: String) throws -> Int32? {
            guard let raw = try file.optional("tokenizer.ggml.\(key)", GGUFFile.int) else { return nil }
            guard let id = Int32(exactly: raw), (0..<tokens.count).contains(raw) else {
                throw TokenizerError.idOutOfRange(key: "tokenizer.ggml.\(key)", id: raw, vocabularySize: tokens.count)
            }
            return id
        }
        try self.init(tokens: tokens, tokenTypes: types, merges: try file.strings("tokenizer.ggml.merges"), preTokenizer: pre,
                      bos: try id("bos_token_id"), eos: try id("eos_token_id"), padding: try id("padding_token_id"),
                      unknown: try id("unknown_token_id"),
                      addsBOS: try file.optional("tokenizer.ggml.add_bos_token", GGUFFile.bool) ?? false)
    }
}

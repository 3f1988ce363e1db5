/// What a vocabulary entry is (`tokenizer.ggml.token_type`, llama.cpp's `llama_token_type`).
/// Control and user-defined tokens are matched whole in the text before BPE; control tokens
/// decode to nothing unless asked for.
public enum TokenType: Int32, Sendable, Hashable {
    case undefined = 0
    case normal = 1
    case unknown = 2
    case control = 3
    case userDefined = 4
    case unused = 5
    case byte = 6

    /// Matched whole in the text when special tokens are parsed.
    var isSpecial: Bool { self == .control || self == .userDefined }
}

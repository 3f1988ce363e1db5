import FoundationEssentials

/// A vocabulary the tokenizer cannot use, or an id it cannot decode. Missing or mistyped GGUF
/// keys are `GGUFError`s.
public enum TokenizerError: Error, CustomStringConvertible, LocalizedError, Sendable, Equatable {
    /// `tokenizer.ggml.model` is not `gpt2` (byte-level BPE).
    case unsupportedModel(String)
    /// `tokenizer.ggml.pre` names a pre-tokenizer whose rules are not implemented.
    case unsupportedPreTokenizer(String)
    case countMismatch(tokens: Int, types: Int)
    case unknownTokenType(id: Int, rawType: Int)
    case badMerge(index: Int, text: String)
    /// A special-token id key (`tokenizer.ggml.bos_token_id`...) names no token.
    case idOutOfRange(key: String, id: Int, vocabularySize: Int)
    /// `decode` was given an id outside the vocabulary.
    case unknownID(Int32, vocabularySize: Int)

    public var description: String {
        switch self {
        case .unsupportedModel(let m): "tokenizer model '\(m)' is not supported (only 'gpt2', byte-level BPE)"
        case .unsupportedPreTokenizer(let p):
            "pre-tokenizer '\(p)' is not supported (supported: smollm, starcoder, refact, command-r, codeshell, exaone, "
                + "minerva-7b, gpt-2, mpt, olmo, jais, trillion)"
        case .countMismatch(let t, let y): "\(t) tokens but \(y) token types"
        case .unknownTokenType(let i, let r): "token \(i) has unknown type \(r)"
        case .badMerge(let i, let t): "merge \(i) '\(t)' is not two tokens separated by a space"
        case .idOutOfRange(let k, let i, let n): "\(k) is \(i), outside the vocabulary of \(n)"
        case .unknownID(let i, let n): "token id \(i) is outside the vocabulary of \(n)"
        }
    }

    public var errorDescription: String? { description }
}

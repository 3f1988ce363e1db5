import MInferenceCL

/// Passkey retrieval, the long-context test of MInference's evaluation (after Mohtashami and
/// Jaggi's landmark-attention test): a random 5-digit key hidden at a depth of a long haystack,
/// asked for at the end, answered greedily.
///
/// The prompt is `intro + haystack[..<d] + needle + haystack[d...] + question`, the needle
/// stating the key twice; the answer is the next `answerTokens` greedy tokens, and the key is
/// found when their text contains its five digits.
public struct Passkey: Sendable, Equatable {
    /// The hidden key, 10000...99999.
    public let key: Int
    /// Greedy tokens read as the answer (the key and its leading space are 6 of the model's tokens).
    public static let answerTokens = 8

    public static let intro = "There is an important info hidden inside a lot of irrelevant text. Find it and memorize it."
    public static let question = " What is the pass key? The pass key is"
    /// The sentence that hides the key.
    public var needle: String { " The pass key is \(key). Remember it. \(key) is the pass key." }

    /// A key drawn from `random`: 10000 + (next() mod 90000).
    public init(random: inout some RandomNumberGenerator) {
        key = 10_000 + Int(random.next() % 90_000)
    }

    public init(key: Int) { self.key = key }

    /// The prompt of `length − answerTokens` tokens (so prompt and answer fill `length` cache
    /// positions), or just intro, needle and question when `length` leaves no room for haystack:
    /// the haystack's tokens repeated cyclically to fill the room, the needle at `depth` (0...1)
    /// of them, moved back to just after a line break when one of the 64 haystack tokens before
    /// that point ends a line (so a real text is not cut mid-sentence; a filler without line
    /// breaks keeps the exact depth).
    /// - Precondition: `haystack` is not empty; `depth` is in 0...1.
    public func prompt(haystack: [Int32], length: Int, depth: Double, tokenizer: Tokenizer) -> [Int32] {
        precondition(!haystack.isEmpty && (0...1).contains(depth), "a haystack and a depth in 0...1")
        let intro = tokenizer.encode(Self.intro), needle = tokenizer.encode(needle), question = tokenizer.encode(Self.question)
        let room = max(0, length - intro.count - needle.count - question.count - Self.answerTokens)
        let filler = (0..<room).map { haystack[$0 % haystack.count] }
        var before = Int(Double(room) * depth)
        let endsLine = { (token: Int32) in (try? tokenizer.piece(token))?.last == UInt8(ascii: "\n") }
        if let lineEnd = (max(0, before - 64)..<before).last(where: { endsLine(filler[$0]) }) { before = lineEnd + 1 }
        return intro + filler[..<before] + needle + filler[before...] + question
    }

    /// Whether the text of `answer` contains the key's digits.
    /// - Throws: `TokenizerError.unknownID` for an id outside the vocabulary.
    public func isFound(in answer: [Int32], tokenizer: Tokenizer) throws -> Bool {
        try tokenizer.decode(answer).contains("\(key)")
    }
}

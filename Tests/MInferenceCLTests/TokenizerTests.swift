import Foundation
@testable import MInferenceCLModel
import Testing

/// The tokenizer's logic on a tiny vocabulary written into a GGUF by the test (the 256 byte
/// tokens, three control tokens, a few merges), so it runs without the real model; and the
/// hand-written pre-tokenizer against Swift Regex running GPT-2's pattern.
@Suite("Tokenizer: BPE, pre-tokenizer, special tokens")
struct TokenizerTests {
    static let specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    static let merged = ["he", "Ġt", "Ġthe", "ll", "hell", "hello", "Ġhello", "aa", "the"]
    /// Ranks in order. "Ġt" (1) outranks "t he" (8), so " the" is Ġt + he, then Ġthe.
    static let merges = ["h e", "Ġ t", "Ġt he", "l l", "he ll", "hell o", "Ġ hello", "a a", "t he",
                         "x q"]  // "xq" is not in the vocabulary: skipped.

    /// The tiny vocabulary as GGUF metadata.
    static func writer(model: String = "gpt2", pre: String = "smollm") -> GGUFWriter {
        let tokens = specials + ByteLevel.scalars.map { String($0) } + merged
        var w = GGUFWriter()
        w.add("tokenizer.ggml.model", .string(model))
        w.add("tokenizer.ggml.pre", .string(pre))
        w.add("tokenizer.ggml.tokens", .array(.string, tokens.map { .string($0) }))
        w.add("tokenizer.ggml.token_type", .array(.int32, tokens.indices.map { .int32($0 < 3 ? 3 : 1) }))
        w.add("tokenizer.ggml.merges", .array(.string, merges.map { .string($0) }))
        w.add("tokenizer.ggml.bos_token_id", .uint32(1))
        w.add("tokenizer.ggml.eos_token_id", .uint32(2))
        w.add("tokenizer.ggml.padding_token_id", .uint32(2))
        return w
    }

    static let tiny: Tokenizer = try! Tokenizer(gguf: writer().readBack())

    func ids(_ tokens: String...) -> [Int32] { tokens.map { Self.tiny.id(of: $0)! } }
    /// Byte tokens of `s`'s UTF-8.
    func bytes(_ s: String) -> [Int32] { s.utf8.map { Self.tiny.byteTokens[Int($0)] } }

    @Test("Reads the vocabulary from GGUF metadata")
    func vocabulary() {
        let t = Self.tiny
        #expect(t.vocabularySize == 3 + 256 + 9)
        #expect(t.bos == 1 && t.eos == 2 && t.padding == 2 && t.unknown == nil && !t.addsBOS)
        #expect(t.preTokenizer == .gpt2SingleDigits)
        #expect(t.skippedMerges == 1)
        // Byte tokens follow the three control tokens in byte order here.
        #expect(t.id(of: "Ġ") == 3 + 0x20 && t.byteTokens[0x20] == 3 + 0x20)
        #expect(ByteLevel.scalars[0x20] == "Ġ" && ByteLevel.scalars[0x0A] == "Ċ" && ByteLevel.scalars[0x41] == "A")
    }

    @Test("Merges go by rank, ties to the leftmost pair")
    func mergeOrder() {
        let t = Self.tiny
        #expect(t.encode("the hello") == ids("the", "Ġhello"))
        #expect(t.encode(" the") == ids("Ġthe"))
        #expect(t.encode("hell") == ids("hell"))
        #expect(t.encode("helo") == ids("he", "l", "o"))
        #expect(t.encode("aaa") == ids("aa", "a"))
        #expect(t.encode("aaaaa") == ids("aa", "aa", "a"))
        // "xq" is no token, so its merge was dropped.
        #expect(t.encode("xq") == ids("x", "q"))
    }

    @Test("Words: digits one by one, contractions, space prefixes, whitespace runs")
    func words() {
        let t = Self.tiny
        // Digits split off first, so the space before them is a word of its own.
        #expect(t.encode("a 12") == bytes("a") + bytes(" ") + bytes("1") + bytes("2"))
        // "  the": the last space of a run goes to the next word.
        #expect(t.encode("  the") == bytes(" ") + ids("Ġthe"))
        #expect(t.encode("x  \n") == bytes("x") + bytes("  \n"))
        #expect(t.encode("they're") == ids("the") + bytes("y") + bytes("'re"))
        #expect(t.encode("hello!?") == ids("hello") + bytes("!?"))
        #expect(t.encode("") == [])
    }

    @Test("Special tokens are cut out whole; without parsing they are plain text")
    func specialTokens() throws {
        let t = Self.tiny
        let chat = "<|im_start|>the<|im_end|>\n<|im_start|"
        #expect(t.encode(chat) == [1] + ids("the") + [2] + bytes("\n") + bytes("<|") + bytes("im") + bytes("_") + bytes("start") + bytes("|"))
        #expect(!t.encode(chat, parseSpecial: false).contains(1))
        #expect(t.encode("<|endoftext|><|endoftext|>") == [0, 0])
        #expect(t.encode("x", addBOS: true) == [1] + bytes("x"))
        #expect(try t.decode(t.encode(chat)) == chat)
        #expect(try t.decode(t.encode(chat), renderSpecial: false) == "the\n<|im_start|")
    }

    @Test("decode(encode(s)) == s for random Unicode text")
    func roundTrip() throws {
        let alphabet: [String] = ["a", "Z", "é", "ß", "日", "한", "ي", "7", "٣", "½", " ", "  ", "\n", "\t", "\r\n", "'", "!",
                                     "🦙", "👍🏽", "👨‍👩‍👧", "\u{0}", "\u{85}", "\u{A0}", "\u{3000}", "\u{301}", "<|im_end|>"]
        var rng = SeededGenerator(seed: 7)
        for _ in 0..<300 {
            let s = (0..<Int.random(in: 0...40, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! }.joined()
            #expect(try Self.tiny.decode(Self.tiny.encode(s)) == s)
        }
    }

    /// Words from Swift Regex running the same rules: every `\p{N}` alone, then GPT-2's pattern
    /// over each run between them.
    static func regexWords(_ text: String) throws -> [String] {
        let gpt2 = try Regex(#"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#)
            .matchingSemantics(.unicodeScalar)
        var words: [String] = []
        var run = ""
        func flush() throws {
            for m in run.matches(of: gpt2) { words.append(String(run.unicodeScalars[m.range])) }
            run = ""
        }
        for s in text.unicodeScalars {
            if ScalarClass(s) == .number {
                try flush()
                words.append(String(s))
            } else {
                run.unicodeScalars.append(s)
            }
        }
        try flush()
        return words
    }

    static func scannedWords(_ text: String, _ pre: PreTokenizer = .gpt2SingleDigits) -> [String] {
        let scalars = Array(text.unicodeScalars)
        let classes = scalars.map(ScalarClass.init)
        var words: [Range<Int>] = []
        scalars.withUnsafeBufferPointer { s in classes.withUnsafeBufferPointer { pre.split(s, classes: $0, 0..<s.count, into: &words) } }
        return words.map { r in var w = ""; w.unicodeScalars.append(contentsOf: scalars[r]); return w }
    }

    @Test("The scanner cuts words exactly as Swift Regex with GPT-2's pattern does")
    func scannerMatchesRegex() throws {
        #expect(Self.scannedWords("Hello  world's 12\n\n  x  ") == ["Hello", " ", " world", "'s", " ", "1", "2", "\n\n ", " x", "  "])
        let pieces: [String] = ["a", "Q", "é", "日本", "ي", "7", "٣", "Ⅷ", "½", " ", "\n", "\t", "\r", "\u{B}", "\u{C}", "'", "'s", "'S",
                                "'re", "'ll", "'d", "!", ".", "-", "🦙", "👍🏽", "\u{0}", "\u{1F}", "\u{85}", "\u{A0}", "\u{2028}",
                                "\u{3000}", "\u{301}", "\u{200B}", "\u{E000}", "\u{10FFFF}", "\u{0378}"]
        var rng = SeededGenerator(seed: 11)
        for _ in 0..<2000 {
            let text = (0..<Int.random(in: 1...16, using: &rng)).map { _ in pieces.randomElement(using: &rng)! }.joined()
            let expected = try Self.regexWords(text)
            #expect(Self.scannedWords(text) == expected, "\(text.unicodeScalars.map { String($0.value, radix: 16) })")
            #expect(Self.scannedWords(text).joined() == text)
        }
    }

    @Test("A 10,000-byte word merges in n log n")
    func longWord() {
        let start = ContinuousClock.now
        #expect(Self.tiny.encode(String(repeating: "a", count: 10_001)) == Array(repeating: ids("aa")[0], count: 5000) + ids("a"))
        // No merges of spaces: 9,999 spaces, then " x", all byte tokens.
        #expect(Self.tiny.encode(String(repeating: " ", count: 10_000) + "x").count == 10_001)
        #expect(ContinuousClock.now - start < .seconds(10))
    }

    @Test("A byte without a token blocks merges across it and is left out, as in llama.cpp")
    func missingByte() throws {
        let t = try Tokenizer(tokens: ByteLevel.scalars.map { String($0) }.filter { $0 != "Ą" } + ["!!"], merges: ["! !"],
                              preTokenizer: .gpt2)
        #expect(t.missingBytes == [0x04])
        let bang = t.id(of: "!")!
        #expect(t.encode("!!") == [t.id(of: "!!")!])
        #expect(t.encode("!\u{4}!") == [bang, bang])
        #expect(t.encode("\u{4}") == [])
        #expect(try t.decode(t.encode("a\u{4}b")) == "ab")
    }

    @Test("Bad vocabularies and ids are refused with a TokenizerError")
    func errors() throws {
        #expect(throws: TokenizerError.unsupportedModel("llama")) { try Tokenizer(gguf: Self.writer(model: "llama").readBack()) }
        #expect(throws: TokenizerError.unsupportedPreTokenizer("qwen2")) { try Tokenizer(gguf: Self.writer(pre: "qwen2").readBack()) }
        var w = GGUFWriter()
        w.add("tokenizer.ggml.model", .string("gpt2"))
        #expect(throws: GGUFError.missingKey(path: "<memory>", key: "tokenizer.ggml.tokens")) {
            var v = w
            v.add("tokenizer.ggml.pre", .string("smollm"))
            return try Tokenizer(gguf: v.readBack())
        }
        w = Self.writer()
        w.add("tokenizer.ggml.unknown_token_id", .int32(-1))
        #expect(throws: TokenizerError.idOutOfRange(key: "tokenizer.ggml.unknown_token_id", id: -1, vocabularySize: 268)) {
            try Tokenizer(gguf: w.readBack())
        }
        let bytes = ByteLevel.scalars.map { String($0) }
        #expect(throws: TokenizerError.badMerge(index: 0, text: "ab")) { try Tokenizer(tokens: bytes, merges: ["ab"], preTokenizer: .gpt2) }
        #expect(throws: TokenizerError.countMismatch(tokens: 256, types: 1)) {
            try Tokenizer(tokens: bytes, tokenTypes: [.normal], merges: [], preTokenizer: .gpt2)
        }
        // A repeated text maps to its last id, as in llama.cpp.
        #expect(try Tokenizer(tokens: bytes + ["a"], merges: [], preTokenizer: .gpt2).encode("a") == [256])
        #expect(throws: TokenizerError.unknownID(268, vocabularySize: 268)) { try Self.tiny.decode([268]) }
        #expect(throws: TokenizerError.unknownID(-1, vocabularySize: 268)) { try Self.tiny.decode([-1]) }
        w = Self.writer()
        var types = Array(repeating: GGUFValue.int32(1), count: 268)
        types[5] = .int32(9)
        var v = GGUFWriter()
        for (k, value) in w.metadata where k != "tokenizer.ggml.token_type" { v.add(k, value) }
        v.add("tokenizer.ggml.token_type", .array(.int32, types))
        #expect(throws: TokenizerError.unknownTokenType(id: 5, rawType: 9)) { try Tokenizer(gguf: v.readBack()) }
    }
}

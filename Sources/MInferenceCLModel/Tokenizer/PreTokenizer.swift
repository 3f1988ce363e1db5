/// How text is cut into words before BPE, as llama.cpp does for `tokenizer.ggml.pre`.
///
/// `gpt2` is GPT-2's pattern
/// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`, scanned by hand
/// over Unicode scalars the way llama.cpp's `unicode_regex_split_custom_gpt2` does (a regex
/// engine is an order of magnitude slower on long texts; the tests check both agree).
/// `gpt2SingleDigits` first cuts every `\p{N}` scalar into a word of its own, then applies the
/// GPT-2 pattern to each remaining run (llama.cpp's `smollm`, `starcoder`... regex pair; the
/// Hugging Face tokenizer's `Digits(individual_digits)` before `ByteLevel`).
public enum PreTokenizer: String, Sendable, Hashable {
    case gpt2
    case gpt2SingleDigits

    /// The pre-tokenizer of a `tokenizer.ggml.pre` name; nil for names whose rules are not
    /// implemented. Names from llama.cpp's llama-vocab.cpp.
    public init?(ggmlName: String) {
        switch ggmlName {
        case "smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva-7b": self = .gpt2SingleDigits
        case "gpt-2", "mpt", "olmo", "jais", "trillion": self = .gpt2
        default: return nil
        }
    }

    /// The words of `scalars[range]`, as consecutive ranges of scalar indices that cover it.
    func split(_ scalars: UnsafeBufferPointer<Unicode.Scalar>, classes: UnsafeBufferPointer<ScalarClass>,
               _ range: Range<Int>, into words: inout [Range<Int>]) {
        switch self {
        case .gpt2:
            Self.splitGPT2(scalars, classes, range, into: &words)
        case .gpt2SingleDigits:
            var start = range.lowerBound
            for i in range where classes[i] == .number {
                if start < i { Self.splitGPT2(scalars, classes, start..<i, into: &words) }
                words.append(i..<i + 1)
                start = i + 1
            }
            if start < range.upperBound { Self.splitGPT2(scalars, classes, start..<range.upperBound, into: &words) }
        }
    }

    /// GPT-2's pattern over `range`; the lookahead `(?!\S)` and every other test stop at the end of
    /// `range`, as if it were the whole text.
    static func splitGPT2(_ s: UnsafeBufferPointer<Unicode.Scalar>, _ classes: UnsafeBufferPointer<ScalarClass>,
                          _ range: Range<Int>, into words: inout [Range<Int>]) {
        let end = range.upperBound
        var pos = range.lowerBound
        func cls(_ i: Int) -> ScalarClass { i < end ? classes[i] : .end }
        func emit(_ to: Int) {
            words.append(pos..<to)
            pos = to
        }
        while pos < end {
            let c = s[pos]
            // 's|'t|'re|'ve|'m|'ll|'d (case-sensitive)
            if c == "'", pos + 1 < end {
                let n = s[pos + 1]
                if n == "s" || n == "t" || n == "m" || n == "d" {
                    emit(pos + 2)
                    continue
                }
                if pos + 2 < end {
                    let nn = s[pos + 2]
                    if (n == "r" && nn == "e") || (n == "v" && nn == "e") || (n == "l" && nn == "l") {
                        emit(pos + 3)
                        continue
                    }
                }
            }
            // An optional leading U+0020, then a run of one class: ` ?\p{L}+`, ` ?\p{N}+`,
            // ` ?[^\s\p{L}\p{N}]+`.
            let space = c == " " ? 1 : 0
            let run = cls(pos + space)
            if run == .letter || run == .number || run == .other {
                var p = pos + space
                while cls(p) == run { p += 1 }
                emit(p)
                continue
            }
            var spaces = 0
            while cls(pos + spaces) == .whitespace { spaces += 1 }
            if spaces > 1 && pos + spaces < end {
                // \s+(?!\S): leave the last whitespace to prefix the next word.
                emit(pos + spaces - 1)
            } else if spaces > 0 {
                emit(pos + spaces)  // \s+
            } else {
                emit(pos + 1)
            }
        }
    }
}

/// The classes GPT-2's pattern distinguishes: `\p{L}`, `\p{N}`, `\s` (Unicode White_Space),
/// anything else; `end` stands past the end of the text.
enum ScalarClass: UInt8, Sendable {
    case end
    case letter
    case number
    case whitespace
    case other

    init(_ s: Unicode.Scalar) {
        if s.value < 0x80 {
            self = Self.ascii[Int(s.value)]
            return
        }
        let p = s.properties
        if p.isWhitespace {
            self = .whitespace
            return
        }
        switch p.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: self = .letter
        case .decimalNumber, .letterNumber, .otherNumber: self = .number
        default: self = .other
        }
    }

    static let ascii: [ScalarClass] = (0..<128).map { v in
        switch UInt8(v) {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"): .letter
        case UInt8(ascii: "0")...UInt8(ascii: "9"): .number
        case 0x09...0x0D, 0x20: .whitespace
        default: .other
        }
    }
}
